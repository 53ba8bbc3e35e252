build-dbg/actor/actor.o: actor/actor.c actor/actor.h lib/config.h \
 broker/broker.h lib/common.h lib/env.h lib/rng.h lib/log.h actor/nstep.h \
 actor/outbox.h lib/policy.h lib/rng.h lib/transport.h schema/fb.h \
 schema/msg.h schema/fb.h
actor/actor.h:
lib/config.h:
broker/broker.h:
lib/common.h:
lib/env.h:
lib/rng.h:
lib/log.h:
actor/nstep.h:
actor/outbox.h:
lib/policy.h:
lib/rng.h:
lib/transport.h:
schema/fb.h:
schema/msg.h:
schema/fb.h:
