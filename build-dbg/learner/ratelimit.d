build-dbg/learner/ratelimit.o: learner/ratelimit.c learner/ratelimit.h
learner/ratelimit.h:
