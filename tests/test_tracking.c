/* test_tracking.c: "joint-tracking" (seed 000:2620-2786) against its damped joint dynamics and
 * reward computed independently here, its violation and success rules, time limit, target
 * sampling and seeding, and a PD controller that shows every sampled target can be tracked. */
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

enum { J = 3, OBS = 9 };

typedef struct {
  double reward;
  bool terminal, success;
  uint32_t violations;
} ref_result_t;

/* One step on s = {q[3], qd[3], q*[3]} with a in [-1, 1]: M = I, D = 0.1 I, g = 0 (the seed's
 * defaults), tau = 10 a, velocity first, then position with the new velocity. */
static ref_result_t ref_step(double *s, const double *a) {
  double *q = s, *qd = s + J;
  const double *target = s + 2 * J;
  double e0 = 0, e1 = 0, an = 0;
  for (int i = 0; i < J; i++) e0 += (target[i] - q[i]) * (target[i] - q[i]);
  for (int i = 0; i < J; i++) {
    qd[i] += 0.01 * (10.0 * a[i] - 0.1 * qd[i] - 0.0) / 1.0;
    q[i] += 0.01 * qd[i];
    e1 += (target[i] - q[i]) * (target[i] - q[i]);
    an += a[i] * a[i];
  }
  e0 = sqrt(e0);
  e1 = sqrt(e1);
  ref_result_t r = {0};
  for (int i = 0; i < J; i++)
    r.violations += (q[i] < -M_PI || q[i] > M_PI) + (qd[i] < -5 || qd[i] > 5);
  r.reward = -e1 - 0.01 * sqrt(an) + (e1 < e0 ? 0.1 : 0.0) - 10.0 * r.violations;
  r.terminal = r.violations > 0;
  r.success = !r.terminal && e1 < 0.05;
  return r;
}

static frl_env_t *make(uint64_t seed) {
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "joint-tracking", seed, NULL, 0), 0);
  return e;
}

static void test_spec(void **unused) {
  frl_env_t *e = make(1);
  const frl_env_spec_t *sp = frl_env_spec(e);
  assert_string_equal(sp->name, "joint-tracking");
  assert_int_equal(sp->obs_dim, OBS);
  assert_int_equal(sp->act_dim, J);
  assert_int_equal(sp->n_actions, 0);
  for (int i = 0; i < J; i++) assert_true(sp->act_low[i] == -1.0f && sp->act_high[i] == 1.0f);
  assert_int_equal(sp->max_steps, 200);

  float obs[OBS];
  frl_env_reset(e, obs);
  double s[OBS] = {0};
  assert_int_equal(frl__env_set_state(e, s, OBS + 1, obs), FRL_EDIM);
  s[8] = 3.2; /* a target outside the position limits */
  assert_int_equal(frl__env_set_state(e, s, OBS, obs), FRL_EUSAGE);
  s[8] = 0;
  s[3] = INFINITY;
  assert_int_equal(frl__env_set_state(e, s, OBS, obs), FRL_EUSAGE);
  frl_env_destroy(&e);
}

static void test_matches_equations(void **unused) {
  frl_rng_t gen;
  frl_rng_seed(&gen, 31);
  frl_env_t *e = make(2);
  float obs[OBS];
  frl_step_t st;
  int steps = 0, terminals = 0, bonuses = 0;
  for (int k = 0; k < 60; k++) {
    double s[OBS], ref[OBS];
    for (int i = 0; i < J; i++) {
      s[i] = 6.3 * frl_rng_uniform(&gen) - 3.15;       /* q, some near or past the limits */
      s[J + i] = 10.1 * frl_rng_uniform(&gen) - 5.05;  /* qd, some near or past the limits */
      s[2 * J + i] = 6.0 * frl_rng_uniform(&gen) - 3.0; /* q* */
    }
    memcpy(ref, s, sizeof ref);
    frl_env_reset(e, obs);
    assert_int_equal(frl__env_set_state(e, s, OBS, obs), 0);
    for (int t = 0; t < 4; t++) {
      float act[J];
      double a[J];
      for (int i = 0; i < J; i++) {
        act[i] = (float)(3.0 * frl_rng_uniform(&gen) - 1.5);
        a[i] = fmax(-1.0, fmin(1.0, (double)act[i]));
      }
      const double err_before = sqrt(pow(ref[6] - ref[0], 2) + pow(ref[7] - ref[1], 2) +
                                     pow(ref[8] - ref[2], 2));
      const ref_result_t want = ref_step(ref, a);
      const double err_after = sqrt(pow(ref[6] - ref[0], 2) + pow(ref[7] - ref[1], 2) +
                                    pow(ref[8] - ref[2], 2));
      frl_env_step(e, act, obs, &st);
      steps++;
      for (int i = 0; i < OBS; i++) assert_float_equal(obs[i], ref[i], 1e-6 * (1 + fabs(ref[i])));
      assert_float_equal(st.reward, want.reward, 1e-6 * (1 + fabs(want.reward)));
      assert_int_equal(st.violations, want.violations);
      assert_int_equal(st.terminal, want.terminal);
      assert_int_equal(st.success, want.success);
      assert_false(st.truncated);
      bonuses += err_after < err_before;
      if (st.terminal) {
        terminals++;
        break;
      }
    }
  }
  assert_true(terminals > 5 && terminals < 55 && bonuses > 20 && bonuses < steps - 20);
  frl_env_destroy(&e);
}

static frl_step_t step_from(frl_env_t *e, const double *s, const float *act, float *obs) {
  frl_step_t st;
  frl_env_reset(e, obs);
  assert_int_equal(frl__env_set_state(e, s, OBS, obs), 0);
  frl_env_step(e, act, obs, &st);
  return st;
}

static void test_reward_terms(void **unused) {
  frl_env_t *e = make(3);
  float obs[OBS];
  frl_step_t st;
  /* Tracking error alone: at rest, no torque, error unchanged (no progress bonus, strict). */
  const double rest[OBS] = {0.5, 0, 0, 0, 0, 0, 0.5, 0.3, -0.4};
  const float none[J] = {0, 0, 0};
  st = step_from(e, rest, none, obs);
  assert_float_equal(st.reward, -0.5, 1e-7);
  assert_false(st.success);
  assert_false(st.terminal);
  /* Progress bonus: one full-torque step toward q*_0 = 1 from rest: qd_0 = 0.01 * 10 = 0.1,
   * q_0 = 0.001; the error falls from 1 to 0.999. */
  const double start[OBS] = {0, 0, 0, 0, 0, 0, 1, 0, 0};
  const float toward[J] = {1, 0, 0}, away[J] = {-1, 0, 0};
  st = step_from(e, start, toward, obs);
  assert_float_equal(obs[3], 0.1, 1e-7);
  assert_float_equal(obs[0], 0.001, 1e-9);
  assert_float_equal(st.reward, -0.999 - 0.01 + 0.1, 1e-7);
  st = step_from(e, start, away, obs);
  assert_float_equal(st.reward, -1.001 - 0.01, 1e-7);
  /* Action cost on ||a||, not on the torque: a = (0.6, 0.8, 0) has norm 1 and moves the arm
   * away from q* = (-1, -1, 0), so no bonus. */
  const double away_target[OBS] = {0, 0, 0, 0, 0, 0, -1, -1, 0};
  const float diag[J] = {0.6f, 0.8f, 0};
  st = step_from(e, away_target, diag, obs);
  const double q0 = 0.01 * 0.01 * 10 * (double)0.6f, q1 = 0.01 * 0.01 * 10 * (double)0.8f;
  assert_float_equal(st.reward, -sqrt(pow(1 + q0, 2) + pow(1 + q1, 2)) - 0.01, 1e-6);
  /* Damping: at qd = 2 with no torque, qd falls by 0.01 * 0.1 * 2 = 0.002. */
  const double coast[OBS] = {0, 0, 0, 2.0, 0, 0, 0, 0, 0};
  step_from(e, coast, none, obs);
  assert_float_equal(obs[3], 1.998, 1e-6);
  assert_float_equal(obs[0], 0.01998, 1e-7);
  /* Position violation: q_0 = 3.14 moving at 1 rad/s crosses pi: -10, terminal. */
  const double edge[OBS] = {3.14, 0, 0, 1.0, 0, 0, 3.0, 0, 0};
  st = step_from(e, edge, none, obs);
  assert_int_equal(st.violations, 1);
  assert_true(st.terminal);
  assert_float_equal(st.reward, -fabs(3.0 - (3.14 + 0.01 * 0.999)) - 10.0, 1e-6);
  /* Velocity violation: qd_1 = -5 pushed further down. Both at once: two violations. */
  const double fast[OBS] = {0, 0, 0, 0, -5.0, 0, 0, 0, 0};
  const float down[J] = {0, -1, 0};
  st = step_from(e, fast, down, obs);
  assert_int_equal(st.violations, 1);
  assert_true(st.terminal);
  const double both[OBS] = {0, 0, -3.14, 0, 0, -5.0, 0, 0, 0};
  const float down2[J] = {0, 0, -1};
  st = step_from(e, both, down2, obs);
  assert_int_equal(st.violations, 2);
  assert_true(st.terminal);
  assert_true(st.reward < -20.0f);
  /* Just inside both limits: no violation. qd 5 decays to 4.995 without torque. */
  const double inside[OBS] = {3.0, 0, 0, 5.0, 0, 0, 3.0, 0, 0};
  st = step_from(e, inside, none, obs);
  assert_int_equal(st.violations, 0);
  assert_false(st.terminal);
  frl_env_destroy(&e);
}

static void test_success(void **unused) {
  frl_env_t *e = make(4);
  float obs[OBS];
  const float none[J] = {0, 0, 0};
  /* At rest on the target: error 0, success, and the episode continues. */
  const double on[OBS] = {1.0, -2.0, 0.5, 0, 0, 0, 1.0, -2.0, 0.5};
  frl_step_t st = step_from(e, on, none, obs);
  assert_true(st.success);
  assert_false(st.terminal);
  assert_float_equal(st.reward, 0.0, 1e-9);
  /* The threshold 0.05 on the Euclidean joint-space error. */
  const double in[OBS] = {1.0, -2.0, 0.5, 0, 0, 0, 1.03, -2.0 + 0.0399, 0.5};
  const double out[OBS] = {1.0, -2.0, 0.5, 0, 0, 0, 1.03, -2.0 + 0.0401, 0.5};
  assert_true(step_from(e, in, none, obs).success);
  assert_false(step_from(e, out, none, obs).success);
  frl_env_destroy(&e);
}

static void test_truncation(void **unused) {
  /* With no torque from a reset state nothing reaches a limit: truncated at 200, not before. */
  frl_env_t *e = make(5);
  float obs[OBS];
  frl_step_t st;
  const float none[J] = {0, 0, 0};
  for (int episode = 0; episode < 5; episode++) {
    frl_env_reset(e, obs);
    for (int t = 1; t <= 200; t++) {
      frl_env_step(e, none, obs, &st);
      assert_false(st.terminal);
      assert_int_equal(st.violations, 0);
      assert_int_equal(st.truncated, t == 200);
    }
  }
  frl_env_destroy(&e);
}

/* Runs a PD controller a = clip(2 (q* - q) - 0.9 qd) for one episode; returns the step at
 * which the error first fell below 0.05 (0 if never) and asserts it never violates a limit. */
static int pd_episode(frl_env_t *e) {
  float obs[OBS];
  frl_step_t st = {0};
  frl_env_reset(e, obs);
  int first = 0;
  for (int t = 1; !st.truncated; t++) {
    float act[J];
    for (int i = 0; i < J; i++) act[i] = 2.0f * (obs[6 + i] - obs[i]) - 0.9f * obs[3 + i];
    frl_env_step(e, act, obs, &st);
    assert_false(st.terminal);
    if (st.success && !first) first = t;
  }
  assert_true(st.success); /* and still on target at the end */
  return first;
}

static void test_targets_trackable(void **unused) {
  /* Every sampled target lies in [-2.5, 2.5]^3 and is reached and held by a plain PD law
   * within the 200 steps, without touching a limit. */
  frl_env_t *e = make(6);
  int worst = 0;
  for (int ep = 0; ep < 200; ep++) worst = FRL_MAX(worst, pd_episode(e));
  assert_true(worst > 0 && worst < 200);
  float obs[OBS];
  double lo = 9, hi = -9, sum = 0, sum_q2 = 0, sum_v2 = 0;
  const int n = 3000;
  for (int k = 0; k < n; k++) {
    frl_env_reset(e, obs);
    for (int i = 0; i < J; i++) {
      assert_true(fabsf(obs[6 + i]) <= 2.5f);
      lo = fmin(lo, obs[6 + i]);
      hi = fmax(hi, obs[6 + i]);
      sum += obs[6 + i];
      sum_q2 += (double)obs[i] * obs[i];
      sum_v2 += (double)obs[3 + i] * obs[3 + i];
    }
  }
  /* Uniform targets: mean 0 (sd of the mean 1.443 / sqrt(9000) = 0.0152), extremes near the
   * ends. Initial q and qd ~ N(0, 0.1^2): the sample variance is 0.01 within 5 standard errors
   * (0.01 sqrt(2 / 9000) = 1.5e-4). */
  assert_float_equal(sum / (J * n), 0.0, 5 * 0.0152);
  assert_true(lo < -2.49 && hi > 2.49);
  assert_float_equal(sum_q2 / (J * n), 0.01, 5 * 1.5e-4);
  assert_float_equal(sum_v2 / (J * n), 0.01, 5 * 1.5e-4);
  frl_env_destroy(&e);
}

/* One episode with random actions from policy_seed; writes obs into trace, returns length. */
static void test_seeds(void **unused) { env_check_seeds("joint-tracking", 55); }

static void test_long_rollout_finite(void **unused) {
  /* Bang-bang, random and NaN actions for 300 episodes: every obs finite, and every episode
   * that ends before the time limit ends on a reported violation. */
  frl_env_t *e = make(9);
  frl_rng_t pol;
  frl_rng_seed(&pol, 10);
  float obs[OBS];
  frl_step_t st;
  int violated = 0;
  for (int ep = 0; ep < 300; ep++) {
    frl_env_reset(e, obs);
    const bool bang = ep % 2 == 0;
    do {
      float act[J];
      for (int i = 0; i < J; i++) {
        if (bang)
          act[i] = frl_rng_below(&pol, 2) ? 5.0f : -5.0f;
        else
          act[i] = (float)(2.0 * frl_rng_uniform(&pol) - 1.0);
        if (frl_rng_below(&pol, 50) == 0) act[i] = NAN;
      }
      frl_env_step(e, act, obs, &st);
      for (int i = 0; i < OBS; i++) assert_true(isfinite(obs[i]));
      assert_true(isfinite(st.reward));
      assert_int_equal(st.terminal, st.violations > 0);
    } while (!st.truncated && !st.terminal);
    violated += st.terminal;
  }
  assert_true(violated > 0);
  frl_env_destroy(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec),
      cmocka_unit_test(test_matches_equations),
      cmocka_unit_test(test_reward_terms),
      cmocka_unit_test(test_success),
      cmocka_unit_test(test_truncation),
      cmocka_unit_test(test_targets_trackable),
      cmocka_unit_test(test_seeds),
      cmocka_unit_test(test_long_rollout_finite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
