/* learner.h: the central learner. One libuv loop: the broker connection (ZMQ_FD under
 * uv_poll), ingest (verify -> SQLite transaction -> sum-tree -> Ack after commit), credit to
 * the broker under the samples-per-insert rate limiter, DQN updates between events, parameter
 * broadcasts, greedy evaluation, progress, and a clean stop on SIGINT/SIGTERM. */
#ifndef FRL_LEARNER_H
#define FRL_LEARNER_H

#include "config.h"

/* Exit codes of frl_learner_main. */
enum {
  FRL_LEARNER_SOLVED = 0,      /* reached --solve-return */
  FRL_LEARNER_ERROR = 1,       /* could not start, or a fatal error */
  FRL_LEARNER_REFUSED = 2,     /* the broker refused this learner (schema mismatch) */
  FRL_LEARNER_NO_BROKER = 3,   /* the broker never answered */
  FRL_LEARNER_UNSOLVED = 4,    /* budget spent without solving */
  FRL_LEARNER_STOPPED = 5,     /* stopped by a signal */
};

int frl_learner_main(const frl_config_t *cfg);

#endif
