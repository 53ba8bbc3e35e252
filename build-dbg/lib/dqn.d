build-dbg/lib/dqn.o: lib/dqn.c lib/dqn.h lib/qnet.h lib/rng.h \
 lib/common.h lib/log.h lib/nn.h
lib/dqn.h:
lib/qnet.h:
lib/rng.h:
lib/common.h:
lib/log.h:
lib/nn.h:
