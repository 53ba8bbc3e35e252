build-dbg/learner/learner.o: learner/learner.c learner/learner.h \
 lib/config.h broker/broker.h lib/common.h lib/agent.h lib/policy.h \
 lib/rng.h lib/env.h lib/log.h lib/normalizer.h lib/policy.h \
 lib/policy_file.h learner/ratelimit.h learner/replay.h schema/msg.h \
 schema/fb.h lib/rng.h learner/store.h lib/transport.h schema/fb.h
learner/learner.h:
lib/config.h:
broker/broker.h:
lib/common.h:
lib/agent.h:
lib/policy.h:
lib/rng.h:
lib/env.h:
lib/log.h:
lib/normalizer.h:
lib/policy.h:
lib/policy_file.h:
learner/ratelimit.h:
learner/replay.h:
schema/msg.h:
schema/fb.h:
lib/rng.h:
learner/store.h:
lib/transport.h:
schema/fb.h:
