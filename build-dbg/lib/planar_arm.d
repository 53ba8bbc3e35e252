build-dbg/lib/planar_arm.o: lib/planar_arm.c lib/common.h lib/env_impl.h \
 lib/env.h lib/rng.h
lib/common.h:
lib/env_impl.h:
lib/env.h:
lib/rng.h:
