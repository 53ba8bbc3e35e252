build-dbg/cli/run.o: cli/run.c cli/run.h lib/config.h lib/common.h \
 learner/learner.h lib/log.h
cli/run.h:
lib/config.h:
lib/common.h:
learner/learner.h:
lib/log.h:
