build-dbg/lib/common.o: lib/common.c lib/common.h
lib/common.h:
