build-dbg/lib/transport.o: lib/transport.c lib/transport.h schema/fb.h \
 schema/msg.h schema/fb.h lib/common.h lib/log.h
lib/transport.h:
schema/fb.h:
schema/msg.h:
schema/fb.h:
lib/common.h:
lib/log.h:
