/* batch_fixture.h: random continuous-action batches for the SAC and TD3 tests (include after
 * numeric_check.h). */
#ifndef FRL_TESTS_BATCH_FIXTURE_H
#define FRL_TESTS_BATCH_FIXTURE_H

#include "batch.h"
#include "numeric_check.h"

/* Storage for up to 64 transitions with obs_dim <= 8 and act_dim <= 4, owned by the caller. */
typedef struct {
  float obs[64 * 8], act[64 * 4], rew[64], disc[64], next[64 * 8], weight[64];
} batch_store_t;

/* A batch of B random transitions (every fifth terminal) for obs_dim D and act_dim A. */
static inline frl_batch_t random_batch(batch_store_t *st, int B, int D, int A, frl_rng_t *rng) {
  fill_uniform(st->obs, (size_t)B * D, -1, 1, rng);
  fill_uniform(st->next, (size_t)B * D, -1, 1, rng);
  fill_uniform(st->act, (size_t)B * A, -1, 1, rng);
  fill_uniform(st->rew, (size_t)B, -1, 1, rng);
  fill_uniform(st->weight, (size_t)B, 0.5, 1, rng);
  for (int r = 0; r < B; r++) st->disc[r] = r % 5 == 4 ? 0.0f : 0.99f;
  return (frl_batch_t){.B = B, .obs = st->obs, .action = st->act, .reward = st->rew,
                       .discount = st->disc, .next_obs = st->next, .weight = st->weight};
}

#endif
