build-dbg/schema/msg.o: schema/msg.c schema/msg.h schema/fb.h \
 lib/common.h lib/log.h build-dbg/gen/schema_hash.h
schema/msg.h:
schema/fb.h:
lib/common.h:
lib/log.h:
build-dbg/gen/schema_hash.h:
