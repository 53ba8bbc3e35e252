build-dbg/cli/stats.o: cli/stats.c cli/stats.h lib/common.h
cli/stats.h:
lib/common.h:
