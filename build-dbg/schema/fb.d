build-dbg/schema/fb.o: schema/fb.c schema/fb.h lib/common.h
schema/fb.h:
lib/common.h:
