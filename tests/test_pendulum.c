/* test_pendulum.c: the "pendulum" swing-up against Pendulum-v1's equations and cost computed
 * independently here in double, its time limit, seeding and initial-state distribution. */
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

/* Python's ((x + pi) % (2 pi)) - pi: % takes the sign of the divisor. */
static double ref_angle_normalize(double x) {
  double r = fmod(x + M_PI, 2.0 * M_PI);
  if (r < 0) r += 2.0 * M_PI;
  return r - M_PI;
}

static double ref_cost(double th, double thdot, double u) {
  const double a = ref_angle_normalize(th);
  return a * a + 0.1 * thdot * thdot + 0.001 * u * u;
}

/* One Pendulum-v1 step on s = {theta, theta_dot} with u already clipped to [-2, 2]. */
static void ref_step(double *s, double u) {
  const double g = 10.0, m = 1.0, l = 1.0, dt = 0.05;
  double v = s[1] + (3.0 * g / (2.0 * l) * sin(s[0]) + 3.0 / (m * l * l) * u) * dt;
  if (v > 8.0) v = 8.0;
  if (v < -8.0) v = -8.0;
  s[1] = v;
  s[0] += v * dt;
}

static frl_env_t *make(uint64_t seed) {
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "pendulum", seed, NULL, 0), 0);
  return e;
}

static void test_spec(void **unused) {
  frl_env_t *e = make(1);
  const frl_env_spec_t *sp = frl_env_spec(e);
  assert_string_equal(sp->name, "pendulum");
  assert_int_equal(sp->obs_dim, 3);
  assert_int_equal(sp->act_dim, 1);
  assert_int_equal(sp->n_actions, 0);
  assert_true(sp->act_low[0] == -2.0f && sp->act_high[0] == 2.0f);
  assert_int_equal(sp->max_steps, 200);

  float obs[3];
  frl_env_reset(e, obs);
  const double bad_speed[2] = {0.0, 8.5}, nan_angle[2] = {NAN, 0.0}, inf_speed[2] = {0, INFINITY};
  assert_int_equal(frl__env_set_state(e, bad_speed, 2, obs), FRL_EUSAGE);
  assert_int_equal(frl__env_set_state(e, nan_angle, 2, obs), FRL_EUSAGE);
  assert_int_equal(frl__env_set_state(e, inf_speed, 2, obs), FRL_EUSAGE);
  assert_int_equal(frl__env_set_state(e, bad_speed, 3, obs), FRL_EDIM);
  frl_env_destroy(&e);
}

static void test_matches_equations(void **unused) {
  /* Angles outside [-pi, pi] (theta is not wrapped between steps), speeds that get clipped at
   * +-8 in both directions, and torques beyond the +-2 bounds, which the wrapper clips. */
  const double states[][2] = {
      {0.0, 0.0},  {M_PI, 0.0},  {0.3, -0.7}, {-2.9, 1.0},  {7.0, 7.9},
      {-9.5, -7.95}, {1.2, 7.99}, {-1.2, -7.99}, {3.0, 0.0}, {-40.0, 5.0},
  };
  const float actions[] = {0.0f, 1.3f, -2.0f, 2.0f, 5.0f, -7.5f, 0.25f};
  frl_env_t *e = make(3);
  float obs[3];
  frl_step_t st;
  int clipped_speed = 0;
  for (size_t k = 0; k < FRL_ARRAY_LEN(states); k++) {
    for (size_t j = 0; j < FRL_ARRAY_LEN(actions); j++) {
      frl_env_reset(e, obs);
      assert_int_equal(frl__env_set_state(e, states[k], 2, obs), 0);
      assert_float_equal(obs[0], cos(states[k][0]), 1e-7);
      assert_float_equal(obs[1], sin(states[k][0]), 1e-7);
      assert_float_equal(obs[2], states[k][1], 1e-6);
      double ref[2] = {states[k][0], states[k][1]};
      /* Three steps, so the state carried between steps (not only the obs) is checked. */
      for (int t = 0; t < 3; t++) {
        const float act = actions[(j + (size_t)t) % FRL_ARRAY_LEN(actions)];
        const double u = fmax(-2.0, fmin(2.0, (double)act));
        const double want_reward = -ref_cost(ref[0], ref[1], u);
        ref_step(ref, u);
        clipped_speed += fabs(ref[1]) == 8.0;
        frl_env_step(e, &act, obs, &st);
        assert_float_equal(obs[0], cos(ref[0]), 1e-6);
        assert_float_equal(obs[1], sin(ref[0]), 1e-6);
        assert_float_equal(obs[2], ref[1], 1e-6 * (1 + fabs(ref[1])));
        assert_float_equal(st.reward, want_reward, 1e-6 * (1 + fabs(want_reward)));
        assert_false(st.terminal);
        assert_false(st.truncated);
        assert_false(st.success);
        assert_int_equal(st.violations, 0);
      }
    }
  }
  assert_true(clipped_speed > 10); /* the speed clip was exercised */
  frl_env_destroy(&e);
}

/* Steps once from (th, thdot) with torque u and returns the reward. */
static float reward_from(frl_env_t *e, double th, double thdot, float u) {
  float obs[3];
  frl_step_t st;
  frl_env_reset(e, obs);
  const double s[2] = {th, thdot};
  assert_int_equal(frl__env_set_state(e, s, 2, obs), 0);
  frl_env_step(e, &u, obs, &st);
  return st.reward;
}

static void test_reward_terms(void **unused) {
  frl_env_t *e = make(5);
  /* Upright and still with no torque costs nothing. */
  assert_true(reward_from(e, 0.0, 0.0, 0.0f) == 0.0f);
  /* Each term alone, by hand. The cost is taken before the update: a torque of 2 from rest
   * upright moves the pendulum but costs only 0.001 * 4. */
  assert_float_equal(reward_from(e, 0.0, 0.0, 2.0f), -0.004, 1e-9);
  assert_float_equal(reward_from(e, 0.0, 0.0, -1.0f), -0.001, 1e-9);
  assert_float_equal(reward_from(e, 0.0, 3.0, 0.0f), -0.9, 1e-7);
  assert_float_equal(reward_from(e, 0.0, -8.0, 0.0f), -6.4, 1e-6);
  assert_float_equal(reward_from(e, 0.5, 0.0, 0.0f), -0.25, 1e-7);
  assert_float_equal(reward_from(e, -0.5, 0.0, 0.0f), -0.25, 1e-7);
  /* The angle is wrapped to [-pi, pi) before squaring. */
  assert_float_equal(reward_from(e, 2 * M_PI + 0.5, 0.0, 0.0f), -0.25, 1e-6);
  assert_float_equal(reward_from(e, -4 * M_PI - 0.5, 0.0, 0.0f), -0.25, 1e-6);
  assert_float_equal(reward_from(e, 1.5 * M_PI, 0.0, 0.0f), -M_PI * M_PI / 4, 1e-6);
  assert_float_equal(reward_from(e, M_PI, 0.0, 0.0f), -M_PI * M_PI, 1e-6);
  /* All three together, and the worst case: hanging down at full speed and torque. */
  assert_float_equal(reward_from(e, M_PI / 2, 2.0, -2.0f), -(M_PI * M_PI / 4 + 0.4 + 0.004), 1e-6);
  assert_float_equal(reward_from(e, M_PI, -8.0, 2.0f), -(M_PI * M_PI + 6.4 + 0.004), 1e-5);
  /* A torque beyond the bound is charged as the clipped torque. */
  assert_float_equal(reward_from(e, 0.0, 0.0, 100.0f), -0.004, 1e-9);
  frl_env_destroy(&e);
}

static void test_truncation(void **unused) {
  frl_env_t *e = make(7);
  float obs[3];
  frl_step_t st;
  for (int episode = 0; episode < 3; episode++) {
    frl_env_reset(e, obs);
    for (int t = 1; t <= 200; t++) {
      const float u = (float)(2.0 * sin(0.1 * t + episode));
      frl_env_step(e, &u, obs, &st);
      assert_false(st.terminal);
      assert_int_equal(st.truncated, t == 200);
    }
  }
  frl_env_destroy(&e);
}

/* Runs one episode with torques from policy_seed; writes every obs into trace. */
static void test_seeds_and_reset(void **unused) {
  env_check_seeds("pendulum", 1234);
  frl_env_t *e1 = make(1234);
  /* theta ~ U(-pi, pi) and theta_dot ~ U(-1, 1): recover theta with atan2, check the range,
   * means near 0 (sd of the mean pi/sqrt(3)/sqrt(4000) = 0.029 and 0.0091) and the extremes. */
  float obs[3];
  double sum_th = 0, sum_v = 0, lo_th = 9, hi_th = -9, lo_v = 9, hi_v = -9;
  for (int k = 0; k < 4000; k++) {
    frl_env_reset(e1, obs);
    assert_float_equal(obs[0] * obs[0] + obs[1] * obs[1], 1.0, 1e-6);
    const double th = atan2(obs[1], obs[0]);
    assert_true(obs[2] >= -1.0f && obs[2] <= 1.0f);
    sum_th += th;
    sum_v += obs[2];
    lo_th = fmin(lo_th, th);
    hi_th = fmax(hi_th, th);
    lo_v = fmin(lo_v, obs[2]);
    hi_v = fmax(hi_v, obs[2]);
  }
  assert_float_equal(sum_th / 4000, 0.0, 5 * 0.029);
  assert_float_equal(sum_v / 4000, 0.0, 5 * 0.0091);
  assert_true(lo_th < -3.1 && hi_th > 3.1 && lo_v < -0.99 && hi_v > 0.99);
  frl_env_destroy(&e1);
}

static void test_long_rollout_finite(void **unused) {
  /* Random, extreme and NaN torques for 100 episodes: every obs finite and on the unit circle,
   * |theta_dot| <= 8 and the reward within [-(pi^2 + 6.4 + 0.004), 0]. */
  frl_env_t *e = make(99);
  frl_rng_t pol;
  frl_rng_seed(&pol, 4);
  float obs[3];
  frl_step_t st;
  const float worst = (float)-(M_PI * M_PI + 6.4 + 0.004) - 1e-5f;
  for (int ep = 0; ep < 100; ep++) {
    frl_env_reset(e, obs);
    do {
      float u = (float)(10.0 * frl_rng_uniform(&pol) - 5.0);
      if (frl_rng_below(&pol, 50) == 0) u = NAN;
      if (frl_rng_below(&pol, 50) == 0) u = INFINITY;
      frl_env_step(e, &u, obs, &st);
      for (int i = 0; i < 3; i++) assert_true(isfinite(obs[i]));
      assert_float_equal(obs[0] * obs[0] + obs[1] * obs[1], 1.0, 1e-5);
      assert_true(fabsf(obs[2]) <= 8.0f);
      assert_true(st.reward <= 0.0f && st.reward >= worst);
    } while (!st.truncated);
  }
  frl_env_destroy(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec),
      cmocka_unit_test(test_matches_equations),
      cmocka_unit_test(test_reward_terms),
      cmocka_unit_test(test_truncation),
      cmocka_unit_test(test_seeds_and_reset),
      cmocka_unit_test(test_long_rollout_finite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
