build-dbg/lib/qnet.o: lib/qnet.c lib/qnet.h lib/rng.h lib/common.h \
 lib/log.h lib/nn.h
lib/qnet.h:
lib/rng.h:
lib/common.h:
lib/log.h:
lib/nn.h:
