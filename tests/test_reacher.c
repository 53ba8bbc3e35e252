/* test_reacher.c: "reacher6" (seed 004:267-316) against its double-integrator dynamics and
 * reward computed independently here, its success and violation reports, the time limit,
 * seeding, and the reach bound its documentation states. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "common.h"
#include "env.h"
#include "env_impl.h"
#include "rng.h"
#include "env_check.h"

enum { J = 6, OBS = 12 };

/* One step of the seed's update on s = {q[6], qd[6]} with a in [-1, 1]; returns the reward
 * and writes the success flag and violation count. */
static double ref_step(double *s, const double *a, bool *success, uint32_t *violations) {
  for (int i = 0; i < J; i++) s[i] += 0.01 * s[J + i];
  for (int i = 0; i < J; i++) s[J + i] += 0.01 * a[i];
  const double dx = s[0] - 1.0, dy = s[1], dz = s[2] - 0.8;
  const double dist = sqrt(dx * dx + dy * dy + dz * dz);
  uint32_t v = 0;
  for (int i = 0; i < J; i++)
    if (s[i] > 1.5 || s[i] < -1.5) v++;
  *success = dist < 0.05;
  *violations = v;
  return -dist + (s[2] > 0.5 ? 0.1 : 0.0) - 0.5 * v;
}

static frl_env_t *make(uint64_t seed) {
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "reacher6", seed, NULL, 0), 0);
  return e;
}

static void test_spec(void **unused) {
  frl_env_t *e = make(1);
  const frl_env_spec_t *sp = frl_env_spec(e);
  assert_string_equal(sp->name, "reacher6");
  assert_int_equal(sp->obs_dim, OBS);
  assert_int_equal(sp->act_dim, J);
  assert_int_equal(sp->n_actions, 0);
  for (int i = 0; i < J; i++) assert_true(sp->act_low[i] == -1.0f && sp->act_high[i] == 1.0f);
  assert_int_equal(sp->max_steps, 100);

  float obs[OBS];
  frl_env_reset(e, obs);
  double s[OBS] = {0};
  assert_int_equal(frl__env_set_state(e, s, OBS - 1, obs), FRL_EDIM);
  s[7] = NAN;
  assert_int_equal(frl__env_set_state(e, s, OBS, obs), FRL_EUSAGE);
  s[7] = 2e6; /* beyond the bound that keeps observations finite floats */
  assert_int_equal(frl__env_set_state(e, s, OBS, obs), FRL_EUSAGE);
  frl_env_destroy(&e);
}

static void test_matches_equations(void **unused) {
  frl_rng_t gen;
  frl_rng_seed(&gen, 21);
  frl_env_t *e = make(2);
  float obs[OBS];
  frl_step_t st;
  int violated = 0, bonus = 0;
  for (int k = 0; k < 40; k++) {
    /* States spread over and beyond the joint limits so every reward term is exercised. */
    double s[OBS], ref[OBS];
    for (int i = 0; i < OBS; i++) s[i] = 4.0 * frl_rng_uniform(&gen) - 2.0;
    memcpy(ref, s, sizeof ref);
    frl_env_reset(e, obs);
    assert_int_equal(frl__env_set_state(e, s, OBS, obs), 0);
    for (int i = 0; i < OBS; i++) assert_true(obs[i] == (float)s[i]);
    for (int t = 0; t < 3; t++) {
      float act[J];
      double a[J];
      for (int i = 0; i < J; i++) {
        act[i] = (float)(3.0 * frl_rng_uniform(&gen) - 1.5); /* some beyond +-1 */
        a[i] = fmax(-1.0, fmin(1.0, (double)act[i]));
      }
      bool success;
      uint32_t viol;
      const double want = ref_step(ref, a, &success, &viol);
      frl_env_step(e, act, obs, &st);
      for (int i = 0; i < OBS; i++) assert_float_equal(obs[i], ref[i], 1e-6 * (1 + fabs(ref[i])));
      assert_float_equal(st.reward, want, 1e-6 * (1 + fabs(want)));
      assert_int_equal(st.violations, viol);
      assert_int_equal(st.success, success);
      assert_false(st.terminal);
      assert_false(st.truncated);
      violated += viol > 0;
      bonus += ref[2] > 0.5;
    }
  }
  assert_true(violated > 10 && bonus > 10);
  frl_env_destroy(&e);
}

/* Steps once from q with zero velocity and zero action, which leaves q unchanged, so the
 * reward is a function of q alone. */
static frl_step_t step_at(frl_env_t *e, const double *q) {
  float obs[OBS];
  frl_step_t st;
  double s[OBS] = {0};
  memcpy(s, q, J * sizeof *q);
  frl_env_reset(e, obs);
  assert_int_equal(frl__env_set_state(e, s, OBS, obs), 0);
  const float zero[J] = {0};
  frl_env_step(e, zero, obs, &st);
  for (int i = 0; i < J; i++) assert_true(obs[i] == (float)q[i]);
  assert_false(st.terminal);
  return st;
}

static void test_reward_terms(void **unused) {
  frl_env_t *e = make(3);
  /* Distance alone: from the origin the target (1, 0, 0.8) is sqrt(1.64) away. */
  const double origin[J] = {0};
  frl_step_t st = step_at(e, origin);
  assert_float_equal(st.reward, -sqrt(1.64), 1e-7);
  assert_false(st.success);
  assert_int_equal(st.violations, 0);
  /* Distance along each axis; joints 3..5 do not enter the distance. */
  const double on_x[J] = {1.0, 0.3, 0.8, 1.0, -1.0, 1.4};
  assert_float_equal(step_at(e, on_x).reward, -0.3 + 0.1, 1e-7);
  const double below[J] = {1.0, 0.0, 0.5, 0, 0, 0};
  assert_float_equal(step_at(e, below).reward, -0.3, 1e-7); /* q2 = 0.5: no bonus (strict) */
  const double above[J] = {1.0, 0.0, 0.5001, 0, 0, 0};
  assert_float_equal(step_at(e, above).reward, -0.2999 + 0.1, 1e-7);
  /* At the target: zero distance, the balance bonus, success. */
  const double at[J] = {1.0, 0.0, 0.8, 0, 0, 0};
  st = step_at(e, at);
  assert_float_equal(st.reward, 0.1, 1e-7);
  assert_true(st.success);
  /* Success threshold 0.05 on the distance. */
  const double near[J] = {1.0, 0.0, 0.8 - 0.0499, 0, 0, 0};
  const double far[J] = {1.0, 0.0, 0.8 - 0.0501, 0, 0, 0};
  assert_true(step_at(e, near).success);
  assert_false(step_at(e, far).success);
  /* Violations: |q_i| > 1.5 strictly, any of the six joints, 0.5 each. */
  const double limits[J] = {0.0, 0.0, 0.0, 1.6, -1.6, 1.5};
  st = step_at(e, limits);
  assert_int_equal(st.violations, 2);
  assert_float_equal(st.reward, -sqrt(1.64) - 1.0, 1e-6);
  const double all[J] = {-1.51, 1.51, 1.51, -2, 2, -3};
  st = step_at(e, all);
  assert_int_equal(st.violations, 6);
  const double d = sqrt(2.51 * 2.51 + 1.51 * 1.51 + 0.71 * 0.71);
  assert_float_equal(st.reward, -d + 0.1 - 3.0, 1e-6);
  frl_env_destroy(&e);
}

static void test_truncation_never_terminal(void **unused) {
  /* Full action drives joints past the limits; still never terminal, truncated at 100. */
  frl_env_t *e = make(4);
  float obs[OBS];
  frl_step_t st;
  const float push[J] = {1, -1, 1, -1, 1, -1};
  for (int episode = 0; episode < 2; episode++) {
    frl_env_reset(e, obs);
    const double fast[OBS] = {1.4, -1.4, 1.4, -1.4, 1.4, -1.4, 1, -1, 1, -1, 1, -1};
    assert_int_equal(frl__env_set_state(e, fast, OBS, obs), 0);
    uint32_t seen = 0;
    for (int t = 1; t <= 100; t++) {
      frl_env_step(e, push, obs, &st);
      seen += st.violations;
      assert_false(st.terminal);
      assert_int_equal(st.truncated, t == 100);
    }
    assert_int_equal(st.violations, 6);
    assert_true(seen > 500);
  }
  frl_env_destroy(&e);
}

static void test_reach_bound(void **unused) {
  /* The documented bound: from the most favourable start (q = qd = 0.1) with a = +1 for 100
   * steps, q_i = 0.1 + 0.01 * (100 * 0.1 + 0.01 * 4950) = 0.695 exactly in closed form; the
   * distance to the target stays above 0.305, so success is never reported. */
  frl_env_t *e = make(5);
  float obs[OBS];
  frl_step_t st;
  frl_env_reset(e, obs);
  double s[OBS];
  for (int i = 0; i < OBS; i++) s[i] = 0.1;
  assert_int_equal(frl__env_set_state(e, s, OBS, obs), 0);
  const float one[J] = {1, 1, 1, 1, 1, 1};
  for (int t = 1; t <= 100; t++) {
    frl_env_step(e, one, obs, &st);
    assert_false(st.success);
  }
  assert_true(st.truncated);
  for (int i = 0; i < J; i++) assert_float_equal(obs[i], 0.695, 1e-6);
  assert_float_equal(st.reward, -sqrt(0.305 * 0.305 + 0.695 * 0.695 + 0.105 * 0.105) + 0.1, 1e-6);
  frl_env_destroy(&e);
}

/* One episode with actions from policy_seed; writes every obs into trace. */
static void test_seeds_and_reset(void **unused) {
  env_check_seeds("reacher6", 77);
  frl_env_t *e1 = make(77);
  /* q and qd ~ U(-0.1, 0.1): range, means (sd of the mean 0.0577 / sqrt(3000) = 1.05e-3)
   * and extremes. */
  float obs[OBS];
  double sum[OBS] = {0}, lo = 1, hi = -1;
  for (int k = 0; k < 3000; k++) {
    frl_env_reset(e1, obs);
    for (int i = 0; i < OBS; i++) {
      assert_true(obs[i] >= -0.1f && obs[i] <= 0.1f);
      sum[i] += obs[i];
      lo = fmin(lo, obs[i]);
      hi = fmax(hi, obs[i]);
    }
  }
  for (int i = 0; i < OBS; i++) assert_float_equal(sum[i] / 3000, 0.0, 5 * 1.05e-3);
  assert_true(lo < -0.0999 && hi > 0.0999);
  frl_env_destroy(&e1);
}

static void test_long_rollout_finite(void **unused) {
  /* Random, extreme and NaN actions for 200 episodes: every obs and reward finite, and the
   * velocities within the +-1.1 that 100 steps of |a| <= 1 allow from |qd| <= 0.1. */
  frl_env_t *e = make(8);
  frl_rng_t pol;
  frl_rng_seed(&pol, 9);
  float obs[OBS];
  frl_step_t st;
  for (int ep = 0; ep < 200; ep++) {
    frl_env_reset(e, obs);
    do {
      float act[J];
      for (int i = 0; i < J; i++) {
        act[i] = (float)(4.0 * frl_rng_uniform(&pol) - 2.0);
        if (frl_rng_below(&pol, 40) == 0) act[i] = NAN;
        if (frl_rng_below(&pol, 40) == 0) act[i] = -INFINITY;
      }
      frl_env_step(e, act, obs, &st);
      for (int i = 0; i < OBS; i++) assert_true(isfinite(obs[i]));
      for (int i = J; i < OBS; i++) assert_true(fabsf(obs[i]) <= 1.1f + 1e-5f);
      assert_true(isfinite(st.reward));
      assert_true(st.violations <= J);
    } while (!st.truncated);
  }
  frl_env_destroy(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec),
      cmocka_unit_test(test_matches_equations),
      cmocka_unit_test(test_reward_terms),
      cmocka_unit_test(test_truncation_never_terminal),
      cmocka_unit_test(test_reach_bound),
      cmocka_unit_test(test_seeds_and_reset),
      cmocka_unit_test(test_long_rollout_finite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
