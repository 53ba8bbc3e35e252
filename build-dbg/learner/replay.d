build-dbg/learner/replay.o: learner/replay.c learner/replay.h \
 schema/msg.h schema/fb.h lib/rng.h learner/store.h lib/common.h \
 lib/log.h learner/sumtree.h
learner/replay.h:
schema/msg.h:
schema/fb.h:
lib/rng.h:
learner/store.h:
lib/common.h:
lib/log.h:
learner/sumtree.h:
