build-dbg/lib/rng.o: lib/rng.c lib/rng.h
lib/rng.h:
