build-dbg/actor/outbox.o: actor/outbox.c actor/outbox.h lib/common.h
actor/outbox.h:
lib/common.h:
