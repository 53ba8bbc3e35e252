build-dbg/lib/td3.o: lib/td3.c lib/td3.h lib/batch.h lib/mlp.h lib/rng.h \
 lib/ac_common.h lib/common.h lib/log.h lib/nn.h
lib/td3.h:
lib/batch.h:
lib/mlp.h:
lib/rng.h:
lib/ac_common.h:
lib/common.h:
lib/log.h:
lib/nn.h:
