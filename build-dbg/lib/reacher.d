build-dbg/lib/reacher.o: lib/reacher.c lib/common.h lib/env_impl.h \
 lib/env.h lib/rng.h
lib/common.h:
lib/env_impl.h:
lib/env.h:
lib/rng.h:
