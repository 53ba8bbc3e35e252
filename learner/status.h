/* status.h: what the learner shows about itself over HTTP, on its own libuv loop: /metrics in
 * the Prometheus text format, a live status page at / (learning curve, actors, replay, safety;
 * self-contained HTML, no external resources) and the page's data at /api/status as JSON. The
 * learner hands over each accepted batch and evaluation; everything else it reports when
 * asked, through a fill callback, so nothing is computed unless someone looks. */
#ifndef FRL_STATUS_H
#define FRL_STATUS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "msg.h"

/* The learner's running figures, filled on request. */
typedef struct {
  uint64_t env_steps, inserted, duplicates, rejected, samples, updates, skipped_updates;
  uint64_t episodes, params_version, replay_size, capacity;
  int evals;
  double loss, mean_q, recent_return, last_eval, best_eval, last_success, lag;
  double actor_loss, alpha, entropy; /* SAC/TD3's last update; NAN where not applicable */
  double priority_max, priority_sum, priority_min, env_rate, upd_rate, spi, beta;
  uint64_t demo_size;
  uint64_t wal_restarts, wal_restarts_busy; /* the store's WAL restarts, done and given up */
  int wal_pages, wal_pages_max;
  bool connected, store_failing, solved;
} frl_status_figures_t;

typedef void (*frl_status_fill_fn)(void *arg, frl_status_figures_t *out);

typedef struct frl_status frl_status_t;

/* Starts serving on `loop` at cfg->http (auto: FRL_HTTP_LEARNER_DEFAULT, or a free port if that
 * is taken; off: nothing) and writes the bound address to <cfg->run_dir>/http.addr. cfg must
 * outlive the status. Returns 0 with *out (NULL when off), or the listen error with *out NULL
 * (logged; the learner goes on without HTTP). Every function below accepts a NULL status. */
int frl_status_new(frl_status_t **out, uv_loop_t *loop, const frl_config_t *cfg,
                   frl_status_fill_fn fill, void *arg);

/* Stops serving and frees the status; the HTTP handles finish closing when `loop` next runs.
 * Sets *self_p to NULL. */
void frl_status_destroy(frl_status_t **self_p);

/* The bound address ("127.0.0.1:9464"), or "" for a NULL status. */
const char *frl_status_address(const frl_status_t *s);

/* Counts a batch the learner stored (not duplicates or refusals): per-actor transitions,
 * batches, environment steps and policy lag, the episodes it closes (returns for the curve,
 * lengths, successes, safety violations) and its safety events. env_steps is the learner's
 * total after this batch (the curve's x axis). */
void frl_status_batch(frl_status_t *s, const frl_experience_t *x, uint64_t params_version,
                      uint64_t env_steps);

/* Counts a batch the learner refused as invalid for the task, for the actor that sent it (a
 * name the table has not seen gets its row, within the same bound), and keeps the reason as
 * that actor's last. */
void frl_status_rejected(frl_status_t *s, const char *actor, const char *reason);

/* Records an evaluation for the curve: mean and standard deviation of its returns. */
void frl_status_eval(frl_status_t *s, uint64_t env_steps, double mean, double sd);

#endif
