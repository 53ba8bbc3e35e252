/* replay.h: prioritized replay (Schaul et al. 2016; Ape-X, Horgan et al. 2018): an in-memory
 * payload cache indexed by a sum-tree and min-tree, backed by the SQLite store. Sampling never
 * touches SQLite. Priorities p = (|delta| + eps)^alpha; new items get the actor's initial
 * priority or, without one, the running max; importance weights (N P(i))^-beta / max_j w_j;
 * FIFO eviction at capacity (slot = item_id mod capacity). Demonstrations (batches flagged
 * demonstration) live in a separate segment of demo_capacity slots after those, with ids from
 * FRL_DEMO_ID_BASE, so agent experience never evicts them; they are evicted FIFO only among
 * themselves, and their priorities get a bonus (DQfD, Hester et al. 2018: eps_d). */
#ifndef FRL_REPLAY_H
#define FRL_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "msg.h"
#include "rng.h"
#include "store.h"

typedef struct {
  uint32_t capacity;
  uint32_t obs_dim;
  uint32_t act_dim;      /* 1 for discrete */
  uint32_t n_actions;    /* > 0 for discrete tasks; 0 for continuous */
  double alpha;          /* 0.6 */
  double eps;            /* 1e-6 .. 1e-2, > 0 so no item starves */
  bool prioritized;      /* false: uniform sampling, weights 1 */
  uint32_t max_batch;    /* largest sample batch */
  uint32_t demo_capacity; /* slots kept for demonstrations; 0: they are ordinary experience */
  double demo_bonus;      /* added to |delta| + eps of demonstrations, >= 0 */
} frl_replay_config_t;

typedef struct frl_replay frl_replay_t;

/* Builds the index over the store's newest `capacity` items. The replay does not own the
 * store (the learner does); it must outlive the replay. Returns 0, FRL_EUSAGE for a bad config,
 * -ENOMEM when capacity slots do not fit in memory, FRL_ECORRUPT when a stored item does not
 * fit the task, or the store's error. */
int frl_replay_open(frl_replay_t **out, const frl_replay_config_t *cfg, frl_store_t *store);
void frl_replay_close(frl_replay_t **self_p);

typedef enum { FRL_INSERT_OK = 0, FRL_INSERT_DUPLICATE = 1 } frl_insert_outcome_t;

/* Validates a decoded batch against the task (dimensions, action range, finite values,
 * discount in [0, 1], priorities finite and >= 0; priority holds the actor's |delta|) and
 * stores it: SQLite transaction first, then the in-memory index.
 * Returns 0 with *outcome, FRL_EDIM/FRL_EPROTO with a reason in err (naming field and bound)
 * for an invalid batch (nothing stored), or the store's error (nothing stored). */
int frl_replay_insert(frl_replay_t *r, const frl_experience_t *batch, double now,
                      frl_insert_outcome_t *outcome, char *err, size_t errlen);

/* A sampled batch; arrays are owned by the replay and valid until the next sample call. */
typedef struct {
  uint32_t B;
  uint64_t *item_id;
  float *weight;          /* importance weights, max-normalized to 1 */
  float *obs;             /* [B, obs_dim] */
  int32_t *action_index;  /* [B] discrete */
  float *action;          /* [B, act_dim] continuous */
  float *reward;
  float *discount;
  float *next_obs;
} frl_replay_sample_t;

/* Draws B items (stratified: one uniform draw in each of B equal mass segments) with
 * importance exponent beta. Returns FRL_EBUSY when the replay holds no items, FRL_EUSAGE when
 * B is 0 or above max_batch or beta is not finite and >= 0. Never allocates. */
int frl_replay_sample(frl_replay_t *r, uint32_t B, double beta, frl_rng_t *rng,
                      const frl_replay_sample_t **out);

/* Draws B demonstrations uniformly (with replacement) from the demonstration slots alone, for
 * behaviour cloning: every held demonstration is equally likely whatever its priority, weights
 * are 1, and nothing is counted as sampled (times_sampled stays the RL replay's count). The
 * batch is in the same arrays as frl_replay_sample's (valid until the next sample call).
 * Returns FRL_EBUSY when no demonstration is held (also with demo_capacity 0, where they are
 * ordinary experience), FRL_EUSAGE when B is 0 or above max_batch. Never allocates. */
int frl_replay_sample_demos(frl_replay_t *r, uint32_t B, frl_rng_t *rng,
                            const frl_replay_sample_t **out);

/* Sets p = (td_abs + eps)^alpha for items still present (evicted ids are ignored), counts the
 * sample, and marks them for the next flush. */
void frl_replay_update_priorities(frl_replay_t *r, const uint64_t *item_id, const float *td_abs,
                                  uint32_t B);

/* Writes dirty priorities and sample counts back to the store, a slice at a time: one call
 * writes at most max_rows (>= 1) items in one transaction, continuing a pass that walks the
 * items in item_id order (agent experience, then demonstrations) from where the previous call
 * stopped, so that every b-tree page is rewritten once per pass and in order. Dirty marks are
 * cleared only after the commit; on error nothing is committed, the items stay dirty and the
 * pass stays where it was, so the next call retries. *remaining (may be NULL) receives how
 * many dirty items the pass has still ahead of it; 0 means the pass is complete (items marked
 * behind its cursor meanwhile wait for the next pass, which starts from the oldest item), so
 * callers loop until 0 and then wait for their next period. Returns 0, FRL_EUSAGE for
 * max_rows 0, or the store's error. The cost follows the number of distinct table pages
 * touched: rows sampled at random from a large replay touch most pages once their count nears
 * capacity/40 (CartPole), after which a pass costs about a rewrite of the items table whatever
 * the row count; so run passes every tens of seconds, not per update (bench/bench_replay.c
 * prints both regimes). */
int frl_replay_flush_some(frl_replay_t *r, uint32_t max_rows, uint32_t *remaining);

/* Writes every dirty item back (finishing the pass under way, then one more pass for what was
 * marked behind it), in at most two transactions; errors as frl_replay_flush_some's, the items
 * not written staying dirty. frl_replay_close calls it (best effort). */
int frl_replay_flush(frl_replay_t *r);

uint64_t frl_replay_size(const frl_replay_t *r);
uint64_t frl_replay_demo_size(const frl_replay_t *r); /* demonstrations held */
/* Sum and minimum of the priorities p held (the trees' roots: O(1)); 0 and 0 when empty. In
 * uniform mode the trees hold 1 per item, so sum is the size and min 1. */
void frl_replay_priority_stats(const frl_replay_t *r, double *sum, double *min);
uint64_t frl_replay_inserted_total(const frl_replay_t *r); /* items ever inserted (ids issued) */
/* The priority a new item without an actor priority gets: the largest p set so far (1 before
 * any). */
double frl_replay_max_priority(const frl_replay_t *r);

#endif
