build-dbg/lib/policy.o: lib/policy.c lib/policy.h lib/rng.h lib/common.h \
 lib/config.h lib/env.h lib/dqn.h lib/qnet.h lib/log.h lib/mlp.h \
 lib/normalizer.h lib/sac.h lib/batch.h lib/td3.h
lib/policy.h:
lib/rng.h:
lib/common.h:
lib/config.h:
lib/env.h:
lib/dqn.h:
lib/qnet.h:
lib/log.h:
lib/mlp.h:
lib/normalizer.h:
lib/sac.h:
lib/batch.h:
lib/td3.h:
