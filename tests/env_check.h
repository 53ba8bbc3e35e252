/* env_check.h: checks every environment test makes the same way (include after cmocka.h):
 * same seed, same episodes; another seed, another start. */
#ifndef FRL_TESTS_ENV_CHECK_H
#define FRL_TESTS_ENV_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "rng.h"

/* One episode from reset with actions drawn from policy_seed: uniform over 1.5 times the
 * bounds (so clipping is exercised) for a continuous environment, uniform indices for a
 * discrete one. trace receives the reset obs and every step's obs, (max_steps + 1) * obs_dim
 * floats; returns the number of steps. */
static inline int env_check_episode(frl_env_t *e, uint64_t policy_seed, float *trace) {
  const frl_env_spec_t *s = frl_env_spec(e);
  frl_rng_t pol;
  frl_rng_seed(&pol, policy_seed);
  frl_step_t st = {0};
  frl_env_reset(e, trace);
  int t = 0;
  while (!st.truncated && !st.terminal) {
    t++;
    float act[FRL_ENV_MAX_DIM];
    for (int i = 0; i < s->act_dim; i++) {
      const double mid = 0.5 * (s->act_low[i] + s->act_high[i]);
      const double half = 0.75 * (s->act_high[i] - s->act_low[i]);
      act[i] = s->n_actions > 0 ? (float)frl_rng_below(&pol, (uint64_t)s->n_actions)
                                : (float)(mid + half * (2.0 * frl_rng_uniform(&pol) - 1.0));
    }
    frl_env_step(e, act, trace + (size_t)s->obs_dim * t, &st);
    assert_true(t <= s->max_steps);
  }
  return t;
}

/* Two environments of this name made with seed give identical episodes for identical actions,
 * four episodes in a row; one made with seed + 1 starts elsewhere. */
static inline void env_check_seeds(const char *name, uint64_t seed) {
  frl_env_t *e1 = NULL, *e2 = NULL, *e3 = NULL;
  assert_int_equal(frl_env_new(&e1, name, seed, NULL, 0), 0);
  assert_int_equal(frl_env_new(&e2, name, seed, NULL, 0), 0);
  assert_int_equal(frl_env_new(&e3, name, seed + 1, NULL, 0), 0);
  const frl_env_spec_t *s = frl_env_spec(e1);
  const size_t n = (size_t)s->obs_dim * (size_t)(s->max_steps + 1);
  float *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
  for (int ep = 0; ep < 4; ep++) {
    const int n1 = env_check_episode(e1, 30 + ep, a), n2 = env_check_episode(e2, 30 + ep, b);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, sizeof(float) * (size_t)s->obs_dim * (size_t)(n1 + 1));
    env_check_episode(e3, 30 + ep, b);
    assert_memory_not_equal(a, b, sizeof(float) * (size_t)s->obs_dim);
  }
  free(a);
  free(b);
  frl_env_destroy(&e1);
  frl_env_destroy(&e2);
  frl_env_destroy(&e3);
}

#endif
