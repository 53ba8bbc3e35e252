build-dbg/lib/nn.o: lib/nn.c lib/nn.h lib/rng.h \
 /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h \
 /usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h \
 lib/common.h
lib/nn.h:
lib/rng.h:
/usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h:
/usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h:
lib/common.h:
