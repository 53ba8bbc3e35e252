build-dbg/lib/agent.o: lib/agent.c lib/agent.h lib/policy.h lib/rng.h \
 lib/common.h lib/dqn.h lib/qnet.h lib/log.h lib/mlp.h lib/sac.h \
 lib/batch.h lib/td3.h
lib/agent.h:
lib/policy.h:
lib/rng.h:
lib/common.h:
lib/dqn.h:
lib/qnet.h:
lib/log.h:
lib/mlp.h:
lib/sac.h:
lib/batch.h:
lib/td3.h:
