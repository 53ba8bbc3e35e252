build-dbg/lib/env.o: lib/env.c lib/env.h lib/rng.h lib/common.h \
 lib/env_impl.h
lib/env.h:
lib/rng.h:
lib/common.h:
lib/env_impl.h:
