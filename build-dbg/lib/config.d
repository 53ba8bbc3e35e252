build-dbg/lib/config.o: lib/config.c lib/config.h lib/common.h lib/log.h
lib/config.h:
lib/common.h:
lib/log.h:
