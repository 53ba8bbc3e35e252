build-dbg/lib/tracking.o: lib/tracking.c lib/common.h lib/env_impl.h \
 lib/env.h lib/rng.h
lib/common.h:
lib/env_impl.h:
lib/env.h:
lib/rng.h:
