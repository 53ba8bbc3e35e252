build-dbg/learner/store.o: learner/store.c learner/store.h schema/msg.h \
 schema/fb.h lib/common.h lib/log.h
learner/store.h:
schema/msg.h:
schema/fb.h:
lib/common.h:
lib/log.h:
