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

/* Demonstrations of the fixed linear expert a = W s + c (obs 3, act 2) that the behaviour-cloning
 * tests clone: n observations uniform in [-1, 1]^3 with the expert's actions, and `hold`
 * held-out observations drawn after them from the same stream. */
enum { EXPERT_D = 3, EXPERT_A = 2 };
static const double EXPERT_W[EXPERT_A][EXPERT_D] = {{0.5, -0.3, 0.0}, {-0.4, 0.2, 0.3}};
static const double EXPERT_C[EXPERT_A] = {0.1, 0.0};

static inline void linear_expert_demos(float *obs, float *act, int n, float *held, int hold,
                                       frl_rng_t *rng) {
  fill_uniform(obs, (size_t)n * EXPERT_D, -1, 1, rng);
  fill_uniform(held, (size_t)hold * EXPERT_D, -1, 1, rng);
  for (int r = 0; r < n; r++)
    for (int i = 0; i < EXPERT_A; i++) {
      double a = EXPERT_C[i];
      for (int k = 0; k < EXPERT_D; k++) a += EXPERT_W[i][k] * obs[r * EXPERT_D + k];
      act[r * EXPERT_A + i] = (float)a;
    }
}

#endif
