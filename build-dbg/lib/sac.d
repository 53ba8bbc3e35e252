build-dbg/lib/sac.o: lib/sac.c lib/sac.h lib/batch.h lib/mlp.h lib/rng.h \
 lib/ac_common.h lib/common.h lib/log.h lib/nn.h
lib/sac.h:
lib/batch.h:
lib/mlp.h:
lib/rng.h:
lib/ac_common.h:
lib/common.h:
lib/log.h:
lib/nn.h:
