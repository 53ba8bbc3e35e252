build-dbg/cli/main.o: cli/main.c \
 /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h \
 /usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h \
 actor/actor.h lib/config.h broker/broker.h lib/common.h cli/control.h \
 schema/msg.h schema/fb.h cli/eval.h cli/plot.h learner/learner.h \
 lib/log.h cli/run.h cli/stats.h
/usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h:
/usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h:
actor/actor.h:
lib/config.h:
broker/broker.h:
lib/common.h:
cli/control.h:
schema/msg.h:
schema/fb.h:
cli/eval.h:
cli/plot.h:
learner/learner.h:
lib/log.h:
cli/run.h:
cli/stats.h:
