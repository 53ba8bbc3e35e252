build-dbg/lib/mujoco_env.o: lib/mujoco_env.c lib/mujoco_env.h lib/env.h \
 lib/rng.h lib/common.h lib/env_impl.h lib/log.h
lib/mujoco_env.h:
lib/env.h:
lib/rng.h:
lib/common.h:
lib/env_impl.h:
lib/log.h:
