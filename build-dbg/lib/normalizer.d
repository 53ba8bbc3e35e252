build-dbg/lib/normalizer.o: lib/normalizer.c lib/normalizer.h \
 lib/common.h
lib/normalizer.h:
lib/common.h:
