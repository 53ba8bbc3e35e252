build-dbg/broker/broker.o: broker/broker.c broker/broker.h lib/config.h \
 lib/common.h lib/log.h lib/transport.h schema/fb.h schema/msg.h \
 schema/fb.h
broker/broker.h:
lib/config.h:
lib/common.h:
lib/log.h:
lib/transport.h:
schema/fb.h:
schema/msg.h:
schema/fb.h:
