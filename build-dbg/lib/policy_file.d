build-dbg/lib/policy_file.o: lib/policy_file.c lib/policy_file.h \
 lib/policy.h lib/rng.h lib/common.h
lib/policy_file.h:
lib/policy.h:
lib/rng.h:
lib/common.h:
