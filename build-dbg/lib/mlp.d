build-dbg/lib/mlp.o: lib/mlp.c lib/mlp.h lib/rng.h \
 /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h \
 /usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h \
 lib/common.h lib/log.h lib/nn.h
lib/mlp.h:
lib/rng.h:
/usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h:
/usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h:
lib/common.h:
lib/log.h:
lib/nn.h:
