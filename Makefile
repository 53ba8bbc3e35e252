# fleetrl build. `make test` and `make run` are the two commands the README promises.
# Switches: SANITIZE=1 (ASan+UBSan), DEBUG=1 (-O0 -g), V=1 (echo commands).

SANITIZE ?= 0
DEBUG ?= 0
BUILD ?= build
PKGS := libzmq libuv sqlite3 cmocka openblas
# Debian packages needed to build, test and run (installed by `make deps` when missing).
DEBS := build-essential pkg-config libzmq3-dev libuv1-dev libsqlite3-dev sqlite3 libcmocka-dev \
        libopenblas-dev flatbuffers-compiler python3 python3-flatbuffers python3-zmq python3-numpy \
        libmujoco-dev libmujoco-samples docker-compose python3-yaml prometheus chromium \
        iproute2 iptables python3-fusepy
# Only the benchmarks need these (PyTorch is the comparison peer).
BENCH_DEBS := python3-torch

CC ?= cc
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
               -fno-strict-aliasing -pthread -MMD -MP
# -iquote: project headers are found for #include "x.h" only, so a module named like a system
# header (broker/limits.h) never shadows <limits.h>.
PROJECT_DIRS := lib schema actor broker learner cli tests $(BUILD)/gen
INCLUDES := $(addprefix -iquote ,$(PROJECT_DIRS))
ifeq ($(DEBUG),1)
  OPT := -O0 -g
else
  OPT := -O2 -g -march=x86-64-v2
endif
ifeq ($(SANITIZE),1)
  BUILD := build-san
  OPT := -O1 -g -fno-omit-frame-pointer
  SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS := $(CFLAGS_BASE) $(OPT) $(SAN) $(INCLUDES)
# MuJoCo ships no pkg-config file in Debian 12.
LDLIBS = $(PKG_LIBS) -lmujoco -lm -pthread
LDFLAGS := $(SAN)

ifneq ($(V),1)
  Q := @
endif

# --- sources: one module per noun -------------------------------------------------------------
# Continuous-control modules, one line per area.
ENV_CLASSIC_SRCS := lib/pendulum.c lib/reacher.c lib/tracking.c lib/planar_arm.c
ENV_MUJOCO_SRCS := lib/mujoco_env.c
ALGO_SRCS := lib/mlp.c lib/sac.c lib/td3.c
OBSERVE_SRCS := lib/http.c lib/metrics.c learner/status.c
SECURITY_SRCS := lib/curve.c broker/zap.c broker/peer_limits.c cli/keygen.c
CHECKPOINT_SRCS := learner/checkpoint.c
ROBOT_SRCS := lib/shield.c lib/watchdog.c actor/client.c cli/emulator.c
SIM2REAL_SRCS := lib/randomize.c lib/hardware.c lib/history.c
LIB_SRCS := lib/common.c lib/log.c lib/rng.c lib/config.c lib/nn.c lib/qnet.c lib/dqn.c \
            lib/env.c lib/cartpole.c lib/gridworld.c lib/transport.c lib/policy_file.c lib/policy.c lib/agent.c \
            lib/normalizer.c \
            schema/fb.c schema/msg.c \
            broker/broker.c \
            actor/actor.c actor/hindsight.c actor/nstep.c actor/outbox.c \
            learner/learner.c learner/store.c learner/replay.c learner/sumtree.c \
            learner/ratelimit.c learner/refusals.c \
            cli/run.c cli/stats.c cli/control.c cli/eval.c cli/plot.c cli/export.c \
            $(ENV_CLASSIC_SRCS) $(ENV_MUJOCO_SRCS) $(ALGO_SRCS) $(OBSERVE_SRCS) $(SECURITY_SRCS) \
            $(CHECKPOINT_SRCS) $(ROBOT_SRCS) $(SIM2REAL_SRCS)
MAIN_SRCS := cli/main.c
TEST_SRCS := $(sort $(wildcard tests/test_*.c))
BENCH_SRCS := $(sort $(wildcard bench/bench_*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libfleetrl.a
BIN := $(BUILD)/fleetrl
TESTS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
BENCHES := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
SCHEMA_HASH_H := $(BUILD)/gen/schema_hash.h

.PRECIOUS: $(BUILD)/%.o

.PHONY: all test unit-tests integration-tests run deps bench-deps install-debs check-deps bench \
        clean cppcheck fuzz

all: check-deps $(BIN) $(TESTS)

# --- dependencies -------------------------------------------------------------------------------
# Installs missing Debian packages (needs root or sudo), then checks pkg-config sees them.
deps:
	@$(MAKE) --no-print-directory install-debs PACKAGES="$(DEBS)"

bench-deps:
	@$(MAKE) --no-print-directory install-debs PACKAGES="$(DEBS) $(BENCH_DEBS)"

install-debs:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
	    || { echo "error: could not install:$$missing (run: sudo apt-get install$$missing)"; exit 1; }; \
	fi

check-deps:
	@pkg-config --exists $(PKGS) && [ -f /usr/include/mujoco/mujoco.h ] || \
	  { echo "error: missing libraries; run 'make deps' (Debian: $(DEBS))"; exit 1; }

# --- build --------------------------------------------------------------------------------------
$(SCHEMA_HASH_H): schema/fleetrl.fbs schema/schema_hash_gen.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) -O1 -o $(BUILD)/gen/schema_hash_gen schema/schema_hash_gen.c
	$(Q)$(BUILD)/gen/schema_hash_gen schema/fleetrl.fbs > $@.tmp && mv $@.tmp $@

$(BUILD)/%.o: %.c | $(SCHEMA_HASH_H)
	@mkdir -p $(dir $@)
	@echo "  CC  $<"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

# The network kernels: their elementwise loops (FRL_VEC_CLONES, lib/common.h) vectorize only
# under the dynamic cost model (GCC 12's -O2 default leaves loops of unknown length scalar), and
# sqrtf only when it need not set errno, a select of a product only when a product cannot trap.
$(BUILD)/lib/nn.o $(BUILD)/lib/mlp.o: CFLAGS += -fvect-cost-model=dynamic -fno-math-errno -fno-trapping-math

$(LIB): $(LIB_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(BUILD)/cli/main.o $(LIB)
	@echo "  LD  $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# --- test ---------------------------------------------------------------------------------------
# Unit tests (cmocka, one binary per module) in the normal and the sanitizer build, then the
# integration tests that run the real processes on loopback.
test: deps
	$(Q)$(MAKE) --no-print-directory all
	@mkdir -p $(BUILD) && rm -f $(BUILD)/test-counts
	$(Q)FLEETRL_TEST_COUNTS=$(abspath $(BUILD)/test-counts) $(MAKE) --no-print-directory unit-tests
	$(Q)FLEETRL_TEST_COUNTS=$(abspath $(BUILD)/test-counts) $(MAKE) --no-print-directory SANITIZE=1 unit-tests
	$(Q)FLEETRL_TEST_COUNTS=$(abspath $(BUILD)/test-counts) $(MAKE) --no-print-directory integration-tests
	@awk '{p += $$1; f += $$2} END {print "total: " p " passed, " f " failed"}' $(BUILD)/test-counts

unit-tests: $(TESTS) $(BIN)
	$(Q)PATH=/usr/bin:$$PATH FLEETRL_BIN=$(abspath $(BIN)) sh tests/run_suite.sh unit $(TESTS)

integration-tests: $(BIN)
	$(Q)PATH=/usr/bin:$$PATH FLEETRL_BIN=$(abspath $(BIN)) sh tests/run_suite.sh integration \
	  $(sort $(wildcard tests/integration/test_*.py))

# --- run: the main job, CartPole with Ape-X DQN, everything on this host ------------------------
run: deps
	$(Q)$(MAKE) --no-print-directory $(BIN)
	$(BIN) run --task cartpole-dqn

bench: bench-deps
	$(Q)$(MAKE) --no-print-directory run-benches

run-benches: $(BIN) $(BENCHES)
	$(Q)for b in $(BENCHES); do echo "== $$b"; $$b || exit 1; done
	$(Q)for b in $(sort $(wildcard bench/bench_*.sh)); do echo "== $$b"; \
	  FLEETRL_BIN=$(abspath $(BIN)) sh $$b || exit 1; done
	$(Q)for b in $(sort $(wildcard bench/bench_*.py)); do echo "== $$b"; \
	  PATH=/usr/bin:$$PATH FLEETRL_BIN=$(abspath $(BIN)) python3 $$b || exit 1; done

# Coverage-guided fuzzing (libFuzzer, ASan, UBSan) of the wire codec (fuzz_msg) and of the
# learner's ingest handler down to SQLite and the sum-tree (fuzz_ingest), FUZZ_SECONDS each:
# prints executions and findings; crashes are written to build-fuzz/<target>/ as crash-* files.
FUZZ_SECONDS ?= 600
FUZZ_DEBS := clang libclang-rt-14-dev
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=undefined $(INCLUDES)
FUZZ_CODEC := schema/fb.c schema/msg.c lib/common.c lib/log.c
fuzz: $(SCHEMA_HASH_H)
	@$(MAKE) --no-print-directory install-debs PACKAGES="$(FUZZ_DEBS)"
	@mkdir -p build-fuzz/msg/corpus build-fuzz/ingest/corpus
	$(Q)clang $(FUZZ_CFLAGS) -o build-fuzz/msg/fuzz tests/fuzz/fuzz_msg.c $(FUZZ_CODEC) -pthread -lm
	$(Q)clang $(FUZZ_CFLAGS) -o build-fuzz/ingest/fuzz tests/fuzz/fuzz_ingest.c $(FUZZ_CODEC) \
	  lib/rng.c learner/replay.c learner/store.c learner/sumtree.c -lsqlite3 -pthread -lm
	$(Q)for t in msg ingest; do \
	  cp tests/fuzz/corpus/* build-fuzz/$$t/corpus/; echo "== fuzz_$$t"; \
	  ( cd build-fuzz/$$t && ./fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 corpus 2>&1 \
	    | grep -E "stat::number_of_executed_units|stat::peak_rss|stat::new_units_added|ERROR|SUMMARY|Done" ; \
	    if ls crash-* leak-* timeout-* 2>/dev/null | grep -q .; then \
	      echo "findings: $$(ls crash-* leak-* timeout-* 2>/dev/null | tr '\n' ' ')(in build-fuzz/$$t/)"; \
	    else echo "no findings"; fi ); done

cppcheck:
	cppcheck --quiet --enable=warning,performance,portability --error-exitcode=1 \
	  --suppress=missingIncludeSystem $(addprefix -I,$(PROJECT_DIRS)) lib schema broker actor learner cli

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
