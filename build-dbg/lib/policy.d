build-dbg/lib/policy.o: lib/policy.c lib/policy.h lib/qnet.h lib/rng.h \
 lib/common.h
lib/policy.h:
lib/qnet.h:
lib/rng.h:
lib/common.h:
