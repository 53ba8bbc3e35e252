/* actor.h: a stateless simulated actor. Runs an environment with the latest policy
 * (epsilon-greedy, Ape-X per-actor epsilon), builds n-step transitions with initial priorities,
 * keeps unacknowledged batches in an outbox and resends them after a timeout or a reconnect,
 * applies parameter broadcasts, obeys e-stop. Holds no learning state: kill it any time. */
#ifndef FRL_ACTOR_H
#define FRL_ACTOR_H

#include "config.h"

/* Ape-X exploration (Horgan et al. 2018): eps_i = base^(1 + alpha * i / (N - 1)); N = 1 gives
 * base. */
double frl_actor_epsilon(int i, int n, double base, double alpha);

/* Runs until SIGINT/SIGTERM or a Shutdown control; returns a process exit code (0 on a normal
 * stop, 2 when the broker refuses this actor, 3 when it never answers). */
int frl_actor_main(const frl_config_t *cfg);

#endif
