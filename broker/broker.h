/* broker.h: the fleet's switchboard. Binds the actor-facing and learner-facing ROUTER
 * endpoints, keeps the registry of live peers by heartbeat, forwards experience to the learner
 * under credit-based flow control (queueing a bounded amount, refusing the rest with a Busy ack
 * so the sender keeps it), routes acks back, caches the latest Params for newcomers and fans
 * Params and Control out. It never drops a message silently. */
#ifndef FRL_BROKER_H
#define FRL_BROKER_H

#include "config.h"

/* Runs the broker until SIGINT/SIGTERM or a Shutdown control. Returns a process exit code. */
int frl_broker_main(const frl_config_t *cfg);

/* The prefix of Welcome.error that asks a peer to send Hello again (the broker does not know
 * it, e.g. after a broker restart); any other refusal is final. */
#define FRL_WELCOME_HELLO_AGAIN "unknown peer"

#endif
