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
# Fuzz targets (tests/fuzz/fuzz_<target>.c): `make test` replays their corpora.
FUZZ_TARGETS := msg ingest broker
FUZZ_REPLAYS := $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/replay_%)
SCHEMA_HASH_H := $(BUILD)/gen/schema_hash.h

.PRECIOUS: $(BUILD)/%.o

.PHONY: all test unit-tests integration-tests run deps bench-deps install-debs check-deps bench \
        clean cppcheck fuzz fuzz-build fuzz-list fuzz-seeds fuzz-replay

all: check-deps $(BIN) $(TESTS) $(FUZZ_REPLAYS)

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
# Unit tests (cmocka, one binary per module) and the fuzz targets over their seeds and past
# findings, each in the normal and the sanitizer build, then the integration tests that run the
# real processes on loopback.
test: deps
	$(Q)$(MAKE) --no-print-directory all
	@mkdir -p $(BUILD) && rm -f $(BUILD)/test-counts
	$(Q)FLEETRL_TEST_COUNTS=$(abspath $(BUILD)/test-counts) $(MAKE) --no-print-directory unit-tests
	$(Q)FLEETRL_TEST_COUNTS=$(abspath $(BUILD)/test-counts) $(MAKE) --no-print-directory SANITIZE=1 unit-tests
	$(Q)FLEETRL_TEST_COUNTS=$(abspath $(BUILD)/test-counts) $(MAKE) --no-print-directory fuzz-replay
	$(Q)FLEETRL_TEST_COUNTS=$(abspath $(BUILD)/test-counts) $(MAKE) --no-print-directory SANITIZE=1 fuzz-replay
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

# --- fuzzing ------------------------------------------------------------------------------------
# Coverage-guided fuzzing (libFuzzer, ASan, UBSan) of the wire codec (fuzz_msg), of the
# learner's ingest handler down to SQLite and the sum-tree (fuzz_ingest) and of the broker's
# message handlers (fuzz_broker). `make fuzz-build` builds build-fuzz/<target>/fuzz; `make fuzz`
# runs each target for FUZZ_SECONDS (bench/bench_fuzz.sh: executions, coverage, corpus growth,
# findings; crashes are kept as build-fuzz/<target>/crash-* files). Every finding's input goes
# to tests/fuzz/regressions/<target>/, which `make test` replays with the seed corpus.
FUZZ_SECONDS ?= 600
FUZZ_DEBS := clang libclang-rt-14-dev
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=undefined $(INCLUDES)
FUZZ_CODEC := schema/fb.c schema/msg.c lib/common.c lib/log.c
# Per target: its seed folder, the sources it runs on, the libraries they need.
FUZZ_CORPUS_msg := tests/fuzz/corpus
FUZZ_CORPUS_ingest := tests/fuzz/corpus
FUZZ_CORPUS_broker := tests/fuzz/corpus_broker
FUZZ_SRCS_msg := $(FUZZ_CODEC)
FUZZ_SRCS_ingest := $(FUZZ_CODEC) lib/rng.c learner/replay.c learner/store.c learner/sumtree.c
FUZZ_LIBS_ingest := -lsqlite3
FUZZ_SRCS_broker := $(FUZZ_CODEC) broker/broker.c broker/peer_limits.c broker/zap.c lib/curve.c \
                    lib/transport.c lib/http.c lib/metrics.c
FUZZ_LIBS_broker := -lzmq -luv
FUZZ_BINS := $(FUZZ_TARGETS:%=build-fuzz/%/fuzz)
FUZZ_HEADERS := $(wildcard lib/*.h schema/*.h broker/*.h learner/*.h tests/fuzz/*.h)

define FUZZ_RULE
build-fuzz/$(1)/fuzz: tests/fuzz/fuzz_$(1).c $$(FUZZ_SRCS_$(1)) $$(FUZZ_HEADERS) | $$(SCHEMA_HASH_H)
	@mkdir -p $$(dir $$@)
	@echo "  FUZZ $$@"
	$$(Q)clang $$(FUZZ_CFLAGS) -o $$@ $$< $$(FUZZ_SRCS_$(1)) $$(FUZZ_LIBS_$(1)) -pthread -lm
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_RULE,$(t))))

fuzz-build:
	@$(MAKE) --no-print-directory install-debs PACKAGES="$(FUZZ_DEBS)"
	$(Q)$(MAKE) --no-print-directory $(FUZZ_BINS)

fuzz:
	$(Q)sh bench/bench_fuzz.sh $(FUZZ_SECONDS)

# One line per target: its name and its seed folder (bench/bench_fuzz.sh reads them).
fuzz-list:
	@$(foreach t,$(FUZZ_TARGETS),echo "$(t) $(FUZZ_CORPUS_$(t))";)

# The broker target's seeds are exchanges of real messages written by tests/fuzz/broker_seeds.c;
# their Hello messages carry the schema hash, so they are written again after a schema change.
build-fuzz/broker_seeds: tests/fuzz/broker_seeds.c $(FUZZ_CODEC) $(FUZZ_HEADERS) | $(SCHEMA_HASH_H)
	@mkdir -p $(dir $@)
	$(Q)clang -std=c11 -D_GNU_SOURCE -O1 $(INCLUDES) -o $@ $< $(FUZZ_CODEC) -pthread -lm

fuzz-seeds: build-fuzz/broker_seeds
	$(Q)mkdir -p $(FUZZ_CORPUS_broker) && rm -f $(FUZZ_CORPUS_broker)/*.bin
	$(Q)build-fuzz/broker_seeds $(FUZZ_CORPUS_broker) && ls -l $(FUZZ_CORPUS_broker)

# Each target's LLVMFuzzerTestOneInput without libFuzzer (tests/fuzz/replay.c), over its seeds
# and its regression folder: run by `make test` in the normal and the sanitizer build.
# Static pattern rules: as plain patterns they would also match the .d files make includes.
$(FUZZ_REPLAYS:%=%.o): $(BUILD)/tests/fuzz/replay_%.o: tests/fuzz/replay.c | $(SCHEMA_HASH_H)
	@mkdir -p $(dir $@)
	@echo "  CC  $< ($*)"
	$(Q)$(CC) $(CFLAGS) -DFUZZ_TARGET='"$*"' -DFUZZ_CORPUS='"$(FUZZ_CORPUS_$*)"' -c $< -o $@

$(FUZZ_REPLAYS): $(BUILD)/tests/fuzz/replay_%: $(BUILD)/tests/fuzz/replay_%.o $(BUILD)/tests/fuzz/fuzz_%.o $(LIB)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

fuzz-replay: $(FUZZ_REPLAYS)
	$(Q)sh tests/run_suite.sh fuzz-replay $(FUZZ_REPLAYS)

cppcheck:
	cppcheck --quiet --enable=warning,performance,portability --error-exitcode=1 \
	  --suppress=missingIncludeSystem $(addprefix -I,$(PROJECT_DIRS)) lib schema broker actor learner cli

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
