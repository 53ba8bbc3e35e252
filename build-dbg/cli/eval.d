build-dbg/cli/eval.o: cli/eval.c cli/eval.h lib/common.h lib/env.h \
 lib/rng.h lib/policy.h lib/policy_file.h lib/policy.h
cli/eval.h:
lib/common.h:
lib/env.h:
lib/rng.h:
lib/policy.h:
lib/policy_file.h:
lib/policy.h:
