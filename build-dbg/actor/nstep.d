build-dbg/actor/nstep.o: actor/nstep.c actor/nstep.h lib/common.h
actor/nstep.h:
lib/common.h:
