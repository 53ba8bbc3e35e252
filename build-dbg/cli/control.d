build-dbg/cli/control.o: cli/control.c cli/control.h lib/config.h \
 schema/msg.h schema/fb.h broker/broker.h lib/common.h lib/log.h \
 lib/transport.h schema/fb.h
cli/control.h:
lib/config.h:
schema/msg.h:
schema/fb.h:
broker/broker.h:
lib/common.h:
lib/log.h:
lib/transport.h:
schema/fb.h:
