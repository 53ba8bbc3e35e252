/* test_planar_arm.c: "planar-arm" (seed 002:235-408) against its dynamics, limits and planar
 * forward kinematics computed independently here, its reward terms, success and time rules,
 * the reachability of every sampled target (within the episode's time, too), and seeding. */
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

/* The state is {q[6], qd[6], target[3]}; the observation adds the tip, target - tip, the tip's
 * velocity, the link directions and target - tip at the goal's scale. */
enum { J = 6, STATE = 15, OBS = 33 };

/* Tip of the 3-link chain by composing planar rotations (no angle sums): each joint rotates
 * the running direction (c, s) by q_k, then a 0.3 link is laid along it from (0, 0.1). */
static void ref_fk(const double *q, double *tip) {
  double c = 1.0, s = 0.0, x = 0.0, z = 0.1;
  for (int k = 0; k < 3; k++) {
    const double ck = cos(q[k]), sk = sin(q[k]);
    const double c2 = c * ck - s * sk, s2 = s * ck + c * sk;
    c = c2;
    s = s2;
    x += 0.3 * c;
    z += 0.3 * s;
  }
  tip[0] = x;
  tip[1] = 0.0;
  tip[2] = z;
}

static double dist3(const double *a, const double *b) {
  return sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) +
              (a[2] - b[2]) * (a[2] - b[2]));
}

/* One step on s = {q[6], qd[6], target[3]} with torques a in [-100, 100]; returns the reward
 * and writes the distance. */
static double ref_step(double *s, const double *a, double *d) {
  double act_sq = 0;
  for (int i = 0; i < J; i++) {
    double v = s[J + i] + 0.01 * a[i] / 10.0;
    v = fmin(5.0, fmax(-5.0, v));
    double q = s[i] + 0.01 * v;
    if (q > M_PI) {
      q = M_PI;
      v = 0;
    } else if (q < -M_PI) {
      q = -M_PI;
      v = 0;
    }
    s[i] = q;
    s[J + i] = v;
    act_sq += (a[i] / 100.0) * (a[i] / 100.0);
  }
  double tip[3];
  ref_fk(s, tip);
  *d = dist3(tip, s + 2 * J);
  return -*d - 0.001 * act_sq + (*d < 0.05 ? 10.0 : 0.0);
}

static frl_env_t *make(uint64_t seed) {
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "planar-arm", seed, NULL, 0), 0);
  return e;
}

static void test_spec(void **unused) {
  frl_env_t *e = make(1);
  const frl_env_spec_t *sp = frl_env_spec(e);
  assert_string_equal(sp->name, "planar-arm");
  assert_int_equal(sp->obs_dim, OBS);
  assert_int_equal(sp->act_dim, J);
  assert_int_equal(sp->n_actions, 0);
  for (int i = 0; i < J; i++) assert_true(sp->act_low[i] == -100.0f && sp->act_high[i] == 100.0f);
  assert_int_equal(sp->max_steps, 200);

  float obs[OBS];
  frl_env_reset(e, obs);
  double s[STATE] = {0};
  assert_int_equal(frl__env_set_state(e, s, 12, obs), FRL_EDIM);
  s[2] = 3.2; /* outside the position limits */
  assert_int_equal(frl__env_set_state(e, s, STATE, obs), FRL_EUSAGE);
  s[2] = 0;
  s[8] = -5.1; /* outside the velocity limit */
  assert_int_equal(frl__env_set_state(e, s, STATE, obs), FRL_EUSAGE);
  s[8] = 0;
  s[13] = NAN;
  assert_int_equal(frl__env_set_state(e, s, STATE, obs), FRL_EUSAGE);
  frl_env_destroy(&e);
}

static void test_matches_equations(void **unused) {
  frl_rng_t gen;
  frl_rng_seed(&gen, 41);
  frl_env_t *e = make(2);
  float obs[OBS];
  frl_step_t st;
  int vel_clips = 0, pos_clips = 0;
  for (int k = 0; k < 80; k++) {
    double s[STATE], ref[STATE];
    for (int i = 0; i < J; i++) {
      s[i] = (2.0 * frl_rng_uniform(&gen) - 1.0) * M_PI;
      s[J + i] = 10.0 * frl_rng_uniform(&gen) - 5.0;
    }
    /* Every fourth state starts a joint next to a limit, moving into it. */
    if (k % 4 == 0) {
      s[k % J] = (k % 8 ? 1 : -1) * (M_PI - 0.01);
      s[J + k % J] = (k % 8 ? 1 : -1) * 4.0;
    }
    for (int i = 0; i < 3; i++) s[2 * J + i] = 2.0 * frl_rng_uniform(&gen) - 1.0;
    memcpy(ref, s, sizeof ref);
    frl_env_reset(e, obs);
    assert_int_equal(frl__env_set_state(e, s, STATE, obs), 0);
    for (int t = 0; t < 3; t++) {
      float act[J];
      double a[J];
      for (int i = 0; i < J; i++) {
        act[i] = (float)(300.0 * frl_rng_uniform(&gen) - 150.0);
        a[i] = fmax(-100.0, fmin(100.0, (double)act[i]));
      }
      double before[STATE];
      memcpy(before, ref, sizeof before);
      double d;
      const double want = ref_step(ref, a, &d);
      for (int i = 0; i < J; i++) {
        vel_clips += fabs(ref[J + i]) == 5.0;
        pos_clips += fabs(ref[i]) == M_PI;
      }
      frl_env_step(e, act, obs, &st);
      for (int i = 0; i < STATE; i++)
        assert_float_equal(obs[i], ref[i], 1e-6 * (1 + fabs(ref[i])));
      double tip[3];
      ref_fk(ref, tip);
      for (int i = 0; i < 3; i++) {
        assert_float_equal(obs[STATE + i], tip[i], 1e-6);
        assert_float_equal(obs[STATE + 3 + i], ref[2 * J + i] - tip[i], 1e-6);
      }
      /* The tip's velocity against a central difference of the kinematics along qd. */
      double qp[STATE], qm[STATE], tp[3], tm[3];
      const double h = 1e-6;
      memcpy(qp, ref, sizeof qp);
      memcpy(qm, ref, sizeof qm);
      for (int i = 0; i < J; i++) {
        qp[i] += h * ref[J + i];
        qm[i] -= h * ref[J + i];
      }
      ref_fk(qp, tp);
      ref_fk(qm, tm);
      for (int i = 0; i < 3; i++)
        assert_float_equal(obs[STATE + 6 + i], (tp[i] - tm[i]) / (2 * h), 1e-5);
      /* Link directions: unit vectors, the first at angle q0, and the three links laid end
       * to end from the base at height 0.1 end at the reference tip. */
      double sx = 0.0, sz = 0.1;
      for (int l = 0; l < 3; l++) {
        const double c = obs[STATE + 9 + 2 * l], sn = obs[STATE + 10 + 2 * l];
        assert_float_equal(c * c + sn * sn, 1.0, 1e-6);
        sx += 0.3 * c;
        sz += 0.3 * sn;
      }
      assert_float_equal(obs[STATE + 9], cos(ref[0]), 1e-6);
      assert_float_equal(obs[STATE + 10], sin(ref[0]), 1e-6);
      assert_float_equal(sx, tip[0], 1e-6);
      assert_float_equal(sz, tip[2], 1e-6);
      /* The offset at the goal's scale: tanh(offset / 0.05), exact within float rounding. */
      for (int i = 0; i < 3; i++)
        assert_float_equal(obs[STATE + 15 + i], tanh((ref[2 * J + i] - tip[i]) / 0.05), 2e-5);
      assert_float_equal(st.reward, want, 1e-6 * (1 + fabs(want)));
      assert_int_equal(st.success, d < 0.05);
      assert_int_equal(st.terminal, d < 0.05);
      assert_int_equal(st.violations, 0);
      if (st.terminal) break;
    }
  }
  assert_true(vel_clips > 5 && pos_clips > 5);
  frl_env_destroy(&e);
}

/* Sets q (qd = 0) and the target, steps once with act, returns the result. */
static frl_step_t step_at(frl_env_t *e, const double *q3, const double *target, const float *act,
                          float *obs) {
  double s[STATE] = {0};
  memcpy(s, q3, 3 * sizeof *q3);
  memcpy(s + 2 * J, target, 3 * sizeof *target);
  frl_env_reset(e, obs);
  assert_int_equal(frl__env_set_state(e, s, STATE, obs), 0);
  frl_step_t st;
  frl_env_step(e, act, obs, &st);
  return st;
}

static void test_kinematics_and_reward_terms(void **unused) {
  frl_env_t *e = make(3);
  float obs[OBS];
  const float none[J] = {0};
  /* Hand-computed tips: stretched along x; straight up; up, right, down. From rest with no
   * torque the arm does not move, so a target on the tip gives d = 0: reward 10, success, and
   * the episode ends. */
  const double q_flat[3] = {0, 0, 0}, tip_flat[3] = {0.9, 0, 0.1};
  const double q_up[3] = {M_PI / 2, 0, 0}, tip_up[3] = {0, 0, 1.0};
  const double q_hook[3] = {M_PI / 2, -M_PI / 2, -M_PI / 2}, tip_hook[3] = {0.3, 0, 0.1};
  const double q_back[3] = {M_PI, 0, 0}, tip_back[3] = {-0.9, 0, 0.1};
  const double *qs[] = {q_flat, q_up, q_hook, q_back};
  const double *tips[] = {tip_flat, tip_up, tip_hook, tip_back};
  for (int k = 0; k < 4; k++) {
    frl_step_t st = step_at(e, qs[k], tips[k], none, obs);
    assert_float_equal(st.reward, 10.0, 1e-6);
    assert_true(st.success);
    assert_true(st.terminal);
    assert_false(st.truncated);
  }
  /* Distance alone: the target 0.3 in x and 0.4 in z away: d = 0.5. */
  const double off[3] = {0.9 - 0.3, 0.0, 0.1 + 0.4};
  frl_step_t st = step_at(e, q_flat, off, none, obs);
  assert_float_equal(st.reward, -0.5, 1e-6);
  assert_false(st.success);
  assert_false(st.terminal);
  /* A target off the plane (y != 0) is at least |y| away. */
  const double off_plane[3] = {0.9, 0.2, 0.1};
  assert_float_equal(step_at(e, q_flat, off_plane, none, obs).reward, -0.2, 1e-6);
  /* Effort alone: torques on joints 3..5 move joints the tip does not depend on, so the
   * distance stays 0.5 and the cost is 0.001 (1^2 + 1^2 + 0.5^2) = 0.00225 of torque as a
   * fraction of its bound. A torque beyond the bound is charged as the clipped torque. */
  const float effort[J] = {0, 0, 0, 100, -250, 50};
  st = step_at(e, q_flat, off, effort, obs);
  assert_float_equal(st.reward, -0.5 - 0.00225, 1e-6);
  assert_float_equal(obs[J + 3], 0.1, 1e-7); /* qd = dt a / 10 */
  assert_float_equal(obs[J + 4], -0.1, 1e-7);
  assert_float_equal(obs[3], 0.001, 1e-9);
  /* The goal bonus at d < 0.05, both sides of the threshold. */
  const double near[3] = {0.9, 0.0, 0.1 + 0.0499}, far[3] = {0.9, 0.0, 0.1 + 0.0501};
  st = step_at(e, q_flat, near, none, obs);
  assert_float_equal(st.reward, 10.0 - 0.0499, 1e-6);
  assert_true(st.success && st.terminal);
  st = step_at(e, q_flat, far, none, obs);
  assert_float_equal(st.reward, -0.0501, 1e-6);
  assert_false(st.success || st.terminal);
  frl_env_destroy(&e);
}

static void test_limits(void **unused) {
  frl_env_t *e = make(4);
  float obs[OBS];
  frl_step_t st;
  const double far_target[3] = {5, 0, 5};
  /* Velocity limit: from 4.99 rad/s a full torque step would give 5.09; it is held at 5. */
  double s[STATE] = {0};
  s[J + 1] = 4.99;
  memcpy(s + 2 * J, far_target, sizeof far_target);
  frl_env_reset(e, obs);
  assert_int_equal(frl__env_set_state(e, s, STATE, obs), 0);
  const float full[J] = {100, 100, 100, -100, -100, -100};
  for (int t = 0; t < 50; t++) {
    frl_env_step(e, full, obs, &st);
    for (int i = 0; i < 3; i++) assert_true(obs[J + i] <= 5.0f);
    for (int i = 3; i < J; i++) assert_true(obs[J + i] >= -5.0f);
  }
  assert_true(obs[J + 1] == 5.0f && obs[J + 4] == -5.0f);
  assert_float_equal(obs[1], 50 * 0.05, 1e-6); /* q moved 0.05 per step from 0 */
  /* Position limit: at pi - 0.001 moving at 1 rad/s, the joint stops at pi with qd = 0, and
   * the opposite torque moves it off the stop on the next step. Same at -pi. */
  for (int side = -1; side <= 1; side += 2) {
    double lim[STATE] = {0};
    lim[2] = side * (M_PI - 0.001);
    lim[J + 2] = side * 1.0;
    memcpy(lim + 2 * J, far_target, sizeof far_target);
    frl_env_reset(e, obs);
    assert_int_equal(frl__env_set_state(e, lim, STATE, obs), 0);
    const float none[J] = {0};
    frl_env_step(e, none, obs, &st);
    assert_true(obs[2] == (float)(side * M_PI));
    assert_true(obs[J + 2] == 0.0f);
    float back[J] = {0};
    back[2] = (float)(-side * 100);
    frl_env_step(e, back, obs, &st);
    assert_float_equal(obs[J + 2], -side * 0.1, 1e-7);
    assert_float_equal(obs[2], side * (M_PI - 0.001), 1e-6);
  }
  frl_env_destroy(&e);
}

static void test_truncation(void **unused) {
  /* An unreachable target (set for the test) keeps the episode going: truncated at 200. */
  frl_env_t *e = make(5);
  float obs[OBS];
  frl_step_t st;
  for (int episode = 0; episode < 2; episode++) {
    frl_env_reset(e, obs);
    double s[STATE] = {0};
    s[2 * J] = 3.0;
    assert_int_equal(frl__env_set_state(e, s, STATE, obs), 0);
    for (int t = 1; t <= 200; t++) {
      const float act[J] = {(float)(100 * sin(0.05 * t)), 30, -30, 0, 0, 100};
      frl_env_step(e, act, obs, &st);
      assert_false(st.terminal);
      assert_false(st.success);
      assert_int_equal(st.truncated, t == 200);
    }
  }
  frl_env_destroy(&e);
}

static void test_targets_reachable(void **unused) {
  /* The target is FK(w) for joint angles w drawn after the six initial angles: replaying the
   * environment's generator gives w, an IK-free witness that the target is reachable. */
  const uint64_t seed = 2024;
  frl_env_t *e = make(seed);
  frl_rng_t replay;
  frl_rng_seed(&replay, seed);
  float obs[OBS];
  frl_step_t st;
  int near_base = 0, far_out = 0, behind = 0, mirrored = 0;
  for (int ep = 0; ep < 2000; ep++) {
    frl_env_reset(e, obs);
    for (int i = 0; i < J; i++) {
      const double q0 = M_PI / 2 * (2.0 * frl_rng_uniform(&replay) - 1.0);
      assert_true(obs[i] == (float)q0);
      assert_true(fabsf(obs[i]) <= (float)(M_PI / 2));
      assert_true(obs[J + i] == 0.0f);
    }
    double w[3], tip[3];
    for (int k = 0; k < 3; k++) w[k] = M_PI * (2.0 * frl_rng_uniform(&replay) - 1.0);
    ref_fk(w, tip);
    if (tip[2] < 0) { /* below the ground: the mirrored joints -w */
      for (int k = 0; k < 3; k++) w[k] = -w[k];
      ref_fk(w, tip);
      mirrored++;
    }
    const double target[3] = {obs[12], obs[13], obs[14]};
    for (int k = 0; k < 3; k++) assert_true(fabs(w[k]) <= M_PI);
    assert_true(dist3(tip, target) < 1e-6);
    /* In the arm's plane, above the ground, within the total reach 0.9 of the base at
     * (0, 0, 0.1), so |target| <= 1. */
    const double base[3] = {0, 0, 0.1};
    assert_true(target[1] == 0.0);
    assert_true(target[2] >= 0.0);
    assert_true(dist3(target, base) <= 0.9 + 1e-6);
    assert_true(sqrt(target[0] * target[0] + target[2] * target[2]) <= 1.0 + 1e-6);
    near_base += dist3(target, base) < 0.3;
    far_out += dist3(target, base) > 0.8;
    behind += target[0] < -0.3;
    /* The witness works in the environment itself: placed at w and at rest, one step with no
     * torque reports success. */
    if (ep % 10 == 0) {
      double s[STATE] = {w[0], w[1], w[2], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      memcpy(s + 2 * J, target, sizeof target);
      assert_int_equal(frl__env_set_state(e, s, STATE, obs), 0);
      const float none[J] = {0};
      frl_env_step(e, none, obs, &st);
      assert_true(st.success && st.terminal);
    }
  }
  /* The targets cover the workspace, and the mirroring was exercised. */
  assert_true(near_base > 20 && far_out > 20 && behind > 20 && mirrored > 100);
  frl_env_destroy(&e);
}

/* Drives each joint to the witness w along a braking-limited velocity profile: commanded
 * speed min(5, sqrt(2 * 8 |w - q|)) toward w (deceleration 8 of the 10 rad/s^2 the torque
 * bound allows), with the torque that reaches that speed in one step. Returns the step at which
 * the episode ended in success, or 0. */
static int witness_episode(frl_env_t *e, frl_rng_t *replay) {
  float obs[OBS];
  frl_step_t st = {0};
  frl_env_reset(e, obs);
  double w[3], tip[3];
  for (int i = 0; i < J; i++) frl_rng_uniform(replay);
  for (int k = 0; k < 3; k++) w[k] = M_PI * (2.0 * frl_rng_uniform(replay) - 1.0);
  ref_fk(w, tip);
  if (tip[2] < 0)
    for (int k = 0; k < 3; k++) w[k] = -w[k];
  int t = 0;
  while (!st.terminal && !st.truncated) {
    float act[J] = {0};
    for (int k = 0; k < 3; k++) {
      const double err = w[k] - obs[k];
      const double speed = fmin(5.0, sqrt(2.0 * 8.0 * fabs(err)));
      act[k] = (float)(1000.0 * (copysign(speed, err) - obs[J + k])); /* clipped to +-100 */
    }
    frl_env_step(e, act, obs, &st);
    t++;
  }
  return st.success ? t : 0;
}

static void test_targets_reachable_in_time(void **unused) {
  /* From every initial state the witness configuration can be reached within the episode under
   * the torque, velocity and position limits (the longest joint move, 1.5 pi, takes about 1.45
   * s of the 2 s), so every episode can end in success. */
  const uint64_t seed = 6;
  frl_env_t *e = make(seed);
  frl_rng_t replay;
  frl_rng_seed(&replay, seed);
  int slowest = 0;
  for (int ep = 0; ep < 500; ep++) {
    const int t = witness_episode(e, &replay);
    assert_true(t > 0);
    slowest = FRL_MAX(slowest, t);
  }
  assert_true(slowest < 200);
  frl_env_destroy(&e);
}

/* One episode with random torques from policy_seed; writes obs into trace, returns length. */
static void test_seeds(void **unused) { env_check_seeds("planar-arm", 66); }

static void test_long_rollout_finite(void **unused) {
  /* Random, bang-bang and NaN torques for 300 episodes: every obs finite and within the
   * position and velocity limits, every reward finite and at most 10. */
  frl_env_t *e = make(9);
  frl_rng_t pol;
  frl_rng_seed(&pol, 12);
  float obs[OBS];
  frl_step_t st;
  for (int ep = 0; ep < 300; ep++) {
    frl_env_reset(e, obs);
    do {
      float act[J];
      for (int i = 0; i < J; i++) {
        act[i] = ep % 2 ? (float)(400.0 * frl_rng_uniform(&pol) - 200.0)
                        : (frl_rng_below(&pol, 2) ? 1e6f : -1e6f);
        if (frl_rng_below(&pol, 50) == 0) act[i] = NAN;
      }
      frl_env_step(e, act, obs, &st);
      for (int i = 0; i < OBS; i++) assert_true(isfinite(obs[i]));
      for (int i = 0; i < J; i++) {
        assert_true(fabsf(obs[i]) <= (float)M_PI);
        assert_true(fabsf(obs[J + i]) <= 5.0f);
      }
      assert_true(isfinite(st.reward) && st.reward <= 10.0f);
    } while (!st.truncated && !st.terminal);
  }
  frl_env_destroy(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec),
      cmocka_unit_test(test_matches_equations),
      cmocka_unit_test(test_kinematics_and_reward_terms),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_truncation),
      cmocka_unit_test(test_targets_reachable),
      cmocka_unit_test(test_targets_reachable_in_time),
      cmocka_unit_test(test_seeds),
      cmocka_unit_test(test_long_rollout_finite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
