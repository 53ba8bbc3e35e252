/* test_env.c: the environment registry and wrapper, CartPole against its equations computed
 * independently here, and GridWorld against its rules and a hand-computed optimal return. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "env.h"
#include "env_impl.h"
#include "rng.h"

/* ---- registry and wrapper ------------------------------------------------------------------ */

static void test_registry(void **unused) {
  /* Every listed name creates an environment of that name; both built-ins are listed. */
  const char *names = frl_env_names();
  assert_ptr_equal(names, frl_env_names());
  char list[256];
  snprintf(list, sizeof list, ",%s,", names);
  assert_non_null(strstr(list, ",cartpole,"));
  assert_non_null(strstr(list, ",gridworld,"));
  char copy[256];
  snprintf(copy, sizeof copy, "%s", names);
  int listed = 0;
  for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    frl_env_t *made = NULL;
    assert_int_equal(frl_env_new(&made, tok, 7, NULL, 0), 0);
    assert_string_equal(frl_env_spec(made)->name, tok);
    frl_env_destroy(&made);
    listed++;
  }
  assert_true(listed >= 2);

  frl_env_t *e = (frl_env_t *)0x1;
  assert_int_equal(frl_env_new(&e, "no-such-env", 1, NULL, 0), FRL_ENOTFOUND);
  assert_ptr_equal(e, (frl_env_t *)0x1); /* untouched on error */
  assert_int_equal(frl_env_new(&e, "cartpol", 1, NULL, 0), FRL_ENOTFOUND);
  assert_int_equal(frl_env_new(&e, NULL, 1, NULL, 0), FRL_EUSAGE);

  e = NULL;
  assert_int_equal(frl_env_new(&e, "cartpole", 1, NULL, 0), 0);
  const frl_env_spec_t *sp = frl_env_spec(e);
  assert_string_equal(sp->name, "cartpole");
  assert_int_equal(sp->obs_dim, 4);
  assert_int_equal(sp->act_dim, 1);
  assert_int_equal(sp->n_actions, 2);
  assert_int_equal(sp->max_steps, 500);
  frl_env_destroy(&e);
  assert_null(e);
  frl_env_destroy(&e); /* NULL is fine */
  frl_env_destroy(NULL);

  assert_int_equal(frl_env_new(&e, "gridworld", 1, NULL, 0), 0);
  sp = frl_env_spec(e);
  assert_string_equal(sp->name, "gridworld");
  assert_int_equal(sp->obs_dim, 16);
  assert_int_equal(sp->act_dim, 1);
  assert_int_equal(sp->n_actions, 4);
  assert_int_equal(sp->max_steps, 100);
  frl_env_destroy(&e);
}

/* A continuous test impl that records the action the wrapper hands it and draws one number
 * from the wrapper's rng per reset, so clipping, truncation and seeding can be observed. */
typedef struct {
  float seen[3];
  double drawn;
} probe_t;

static void probe_init(void *state, frl_env_spec_t *spec) {
  spec->obs_dim = 1;
  spec->act_dim = 3;
  spec->n_actions = 0;
  spec->max_steps = 4;
  const float lo[3] = {-1.0f, 0.0f, -2.0f}, hi[3] = {1.0f, 5.0f, -1.0f};
  memcpy(spec->act_low, lo, sizeof lo);
  memcpy(spec->act_high, hi, sizeof hi);
}

static void probe_reset(void *state, frl_rng_t *rng, float *obs) {
  probe_t *p = state;
  p->drawn = frl_rng_uniform(rng);
  obs[0] = (float)p->drawn;
}

static void probe_step(void *state, frl_rng_t *rng, const float *action, float *obs,
                       frl_step_t *out) {
  probe_t *p = state;
  memcpy(p->seen, action, sizeof p->seen);
  obs[0] = 0.0f;
  out->reward = 1.0f;
  out->terminal = action[0] == 1.0f && action[1] == 5.0f && action[2] == -1.0f; /* all at high */
}

static const frl_env_impl_t probe_impl = {
    .name = "probe",
    .state_size = sizeof(probe_t),
    .init = probe_init,
    .reset = probe_reset,
    .step = probe_step,
    .set_state = NULL,
};

static void test_wrapper_clips_and_truncates(void **unused) {
  frl_env_t *e = frl__env_new_impl(&probe_impl, 42);
  float obs[1];
  frl_step_t st;
  frl_env_reset(e, obs);

  /* The wrapper's rng is seeded from the seed through splitmix64, as frl_rng_seed does. */
  frl_rng_t ref;
  frl_rng_seed(&ref, 42);
  assert_true(obs[0] == (float)frl_rng_uniform(&ref));
  assert_int_equal(frl__env_set_state(e, NULL, 0, obs), FRL_EUSAGE); /* no hook */

  const float a1[3] = {-3.0f, 2.5f, 7.0f};
  frl_env_step(e, a1, obs, &st);
  assert_false(st.terminal);
  assert_false(st.truncated);

  const float a2[3] = {NAN, INFINITY, -INFINITY};
  frl_env_step(e, a2, obs, &st);
  assert_false(st.terminal); /* NaN -> middle 0, +inf -> 5, -inf -> -2: not all at high */
  assert_false(st.truncated);

  const float a3[3] = {1e9f, 1e9f, 1e9f};
  frl_env_step(e, a3, obs, &st);
  assert_true(st.terminal); /* everything clipped to the high bounds */
  assert_false(st.truncated);

  /* Truncation after max_steps = 4 non-terminal steps; terminal wins when both would apply. */
  frl_env_reset(e, obs);
  for (int t = 1; t <= 4; t++) {
    frl_env_step(e, a1, obs, &st);
    assert_false(st.terminal);
    assert_int_equal(st.truncated, t == 4);
    assert_float_equal(st.reward, 1.0f, 0.0f);
  }
  frl_env_reset(e, obs);
  for (int t = 1; t <= 3; t++) frl_env_step(e, a1, obs, &st);
  frl_env_step(e, a3, obs, &st);
  assert_true(st.terminal);
  assert_false(st.truncated);
  frl_env_destroy(&e);
}

/* Checks the exact action values the wrapper passes, using an impl that copies them out. */
static float g_seen[3];
static void copy_step(void *state, frl_rng_t *rng, const float *action, float *obs,
                      frl_step_t *out) {
  memcpy(g_seen, action, sizeof g_seen);
  obs[0] = 0.0f;
}
static const frl_env_impl_t copy_impl = {
    .name = "copy",
    .state_size = sizeof(probe_t),
    .init = probe_init,
    .reset = probe_reset,
    .step = copy_step,
};

static void test_wrapper_clip_values(void **unused) {
  frl_env_t *e = frl__env_new_impl(&copy_impl, 1);
  float obs[1];
  frl_step_t st;
  frl_env_reset(e, obs);
  const float in[][3] = {{-3.0f, 2.5f, 7.0f}, {NAN, INFINITY, -INFINITY}, {0.25f, 0.0f, -1.5f}};
  const float want[][3] = {{-1.0f, 2.5f, -1.0f}, {0.0f, 5.0f, -2.0f}, {0.25f, 0.0f, -1.5f}};
  for (size_t k = 0; k < FRL_ARRAY_LEN(in); k++) {
    frl_env_step(e, in[k], obs, &st);
    for (int i = 0; i < 3; i++) assert_true(g_seen[i] == want[k][i]);
  }
  frl_env_destroy(&e);
}

/* ---- CartPole -------------------------------------------------------------------------------- */

/* Reference dynamics in the form of Barto, Sutton & Anderson (1983), eqs. (21)-(22), with
 * friction set to zero, written out independently of lib/cartpole.c:
 *   theta'' = [g sin th + cos th ((-F - m l th'^2 sin th) / (mc + m))]
 *             / [l (4/3 - m cos^2 th / (mc + m))]
 *   x''     = [F + m l (th'^2 sin th - theta'' cos th)] / (mc + m)
 * and x_{t+1} = x + tau x', x'_{t+1} = x' + tau x'', same for theta. */
static void ref_cartpole(double s[4], int action) {
  const double g = 9.8, mc = 1.0, m = 0.1, l = 0.5, tau = 0.02;
  double F = action == 1 ? 10.0 : -10.0;
  double x = s[0], xd = s[1], th = s[2], thd = s[3];
  double thdd = (g * sin(th) + cos(th) * ((-F - m * l * thd * thd * sin(th)) / (mc + m))) /
                (l * (4.0 / 3.0 - m * cos(th) * cos(th) / (mc + m)));
  double xdd = (F + m * l * (thd * thd * sin(th) - thdd * cos(th))) / (mc + m);
  s[0] = x + tau * xd;
  s[1] = xd + tau * xdd;
  s[2] = th + tau * thd;
  s[3] = thd + tau * thdd;
}

static void test_cartpole_hand_step(void **unused) {
  /* From rest, pushing right: theta'' = -(100/11) / (41/66) = -600/41 and
   * x'' = 100/11 + 0.05 (600/41) / 1.1 = 400/41, so after one step x' = 8/41 and
   * theta' = -12/41 while x and theta are still 0. */
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "cartpole", 3, NULL, 0), 0);
  float obs[4];
  frl_step_t st;
  frl_env_reset(e, obs);
  const double zero[4] = {0, 0, 0, 0};
  assert_int_equal(frl__env_set_state(e, zero, 4, obs), 0);
  const float right = 1.0f;
  frl_env_step(e, &right, obs, &st);
  assert_float_equal(obs[0], 0.0f, 0.0f);
  assert_float_equal(obs[1], 8.0 / 41.0, 1e-7);
  assert_float_equal(obs[2], 0.0f, 0.0f);
  assert_float_equal(obs[3], -12.0 / 41.0, 1e-7);
  assert_float_equal(st.reward, 1.0f, 0.0f);
  assert_false(st.terminal);
  assert_false(st.truncated);
  frl_env_destroy(&e);
}

static void test_cartpole_matches_equations(void **unused) {
  const double states[][4] = {
      {0.0, 0.0, 0.0, 0.0},        {0.1, -0.3, 0.05, 0.4},   {-1.0, 1.2, -0.15, -1.1},
      {2.0, 0.5, 0.18, 1.5},       {0.03, 0.02, -0.04, 0.01}, {-2.2, -0.7, 0.2, -2.0},
  };
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "cartpole", 9, NULL, 0), 0);
  for (size_t k = 0; k < FRL_ARRAY_LEN(states); k++) {
    for (int first = 0; first < 2; first++) {
      float obs[4];
      frl_step_t st;
      frl_env_reset(e, obs);
      assert_int_equal(frl__env_set_state(e, states[k], 4, obs), 0);
      double ref[4];
      memcpy(ref, states[k], sizeof ref);
      /* Two steps, so the state carried between steps (not just the obs) is checked too. */
      for (int t = 0; t < 2; t++) {
        int a = (first + t) % 2;
        const float act = (float)a;
        ref_cartpole(ref, a);
        frl_env_step(e, &act, obs, &st);
        for (int i = 0; i < 4; i++) assert_float_equal(obs[i], ref[i], 1e-6 * (1 + fabs(ref[i])));
        bool term = fabs(ref[0]) > 2.4 || fabs(ref[2]) > 12.0 * M_PI / 180.0;
        assert_int_equal(st.terminal, term);
        assert_float_equal(st.reward, 1.0f, 0.0f);
        if (st.terminal) break;
      }
    }
  }
  frl_env_destroy(&e);
}

/* Steps once from s with action 0 and reports whether the step was terminal. */
static bool cartpole_terminal_from(frl_env_t *e, double x, double x_dot, double th, double th_dot) {
  float obs[4];
  frl_step_t st;
  frl_env_reset(e, obs);
  const double s[4] = {x, x_dot, th, th_dot};
  assert_int_equal(frl__env_set_state(e, s, 4, obs), 0);
  const float left = 0.0f;
  frl_env_step(e, &left, obs, &st);
  assert_float_equal(st.reward, 1.0f, 0.0f); /* the failing step is rewarded too */
  assert_false(st.truncated);
  return st.terminal;
}

static void test_cartpole_thresholds(void **unused) {
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "cartpole", 5, NULL, 0), 0);
  /* Positions move by tau * velocity = 0 here, so the new x and theta equal the set ones:
   * |x| > 2.4 and |theta| > 12 deg = 0.20944 rad end the episode. */
  assert_false(cartpole_terminal_from(e, 2.3999, 0, 0, 0));
  assert_true(cartpole_terminal_from(e, 2.4001, 0, 0, 0));
  assert_false(cartpole_terminal_from(e, -2.3999, 0, 0, 0));
  assert_true(cartpole_terminal_from(e, -2.4001, 0, 0, 0));
  assert_false(cartpole_terminal_from(e, 0, 0, 0.2094, 0));
  assert_true(cartpole_terminal_from(e, 0, 0, 0.2095, 0));
  assert_false(cartpole_terminal_from(e, 0, 0, -0.2094, 0));
  assert_true(cartpole_terminal_from(e, 0, 0, -0.2095, 0));
  /* Crossing during the step: x 2.39 + 0.02 * 1.0 = 2.41. */
  assert_true(cartpole_terminal_from(e, 2.39, 1.0, 0, 0));
  assert_false(cartpole_terminal_from(e, 2.39, 0.4, 0, 0));
  assert_true(cartpole_terminal_from(e, 0, 0, -0.2, -0.5));
  assert_false(cartpole_terminal_from(e, 0, 0, -0.2, -0.4));

  float obs[4];
  frl_env_reset(e, obs);
  const double bad[4] = {0, NAN, 0, 0};
  assert_int_equal(frl__env_set_state(e, bad, 4, obs), FRL_EUSAGE);
  assert_int_equal(frl__env_set_state(e, bad, 3, obs), FRL_EDIM);
  frl_env_destroy(&e);
}

static void test_cartpole_truncation(void **unused) {
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "cartpole", 11, NULL, 0), 0);
  float obs[4];
  frl_step_t st;
  const double upright[4] = {0, 0, 0, 0};
  for (int episode = 0; episode < 2; episode++) {
    frl_env_reset(e, obs);
    /* Holding the pole upright before every step keeps the episode alive until the limit. */
    for (int t = 1; t <= 500; t++) {
      assert_int_equal(frl__env_set_state(e, upright, 4, obs), 0);
      const float act = (float)(t % 2);
      frl_env_step(e, &act, obs, &st);
      assert_false(st.terminal);
      assert_int_equal(st.truncated, t == 500);
    }
  }
  frl_env_destroy(&e);
}

/* Runs one random-policy episode; writes every obs into trace and returns its length. */
static int cartpole_episode(frl_env_t *e, uint64_t policy_seed, float *trace, int max) {
  frl_rng_t pol;
  frl_rng_seed(&pol, policy_seed);
  float obs[4];
  frl_step_t st = {0};
  frl_env_reset(e, obs);
  memcpy(trace, obs, sizeof obs);
  int t = 0;
  float ret = 0;
  while (!st.terminal && !st.truncated) {
    assert_true(t + 1 < max);
    const float act = (float)frl_rng_below(&pol, 2);
    frl_env_step(e, &act, obs, &st);
    t++;
    ret += st.reward;
    memcpy(trace + 4 * t, obs, sizeof obs);
    bool out_of_bounds = fabsf(obs[0]) > 2.4f || fabsf(obs[2]) > 0.2094396f;
    if (!out_of_bounds) assert_false(st.terminal);
    if (st.terminal) assert_true(fabsf(obs[0]) > 2.39999f || fabsf(obs[2]) > 0.2094f);
  }
  assert_float_equal(ret, (float)t, 0.0f);
  return t;
}

static void test_cartpole_reset_and_seeds(void **unused) {
  enum { MAX = 600 };
  static float a[4 * MAX], b[4 * MAX];
  frl_env_t *e1 = NULL, *e2 = NULL, *e3 = NULL;
  assert_int_equal(frl_env_new(&e1, "cartpole", 1234, NULL, 0), 0);
  assert_int_equal(frl_env_new(&e2, "cartpole", 1234, NULL, 0), 0);
  assert_int_equal(frl_env_new(&e3, "cartpole", 1235, NULL, 0), 0);
  for (int ep = 0; ep < 5; ep++) {
    int n1 = cartpole_episode(e1, 77 + ep, a, MAX);
    int n2 = cartpole_episode(e2, 77 + ep, b, MAX);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, sizeof(float) * 4 * (n1 + 1));
    for (int i = 0; i < 4; i++) assert_true(a[i] >= -0.05f && a[i] <= 0.05f);
    cartpole_episode(e3, 77 + ep, b, MAX);
    assert_memory_not_equal(a, b, sizeof(float) * 4);
  }

  /* The initial state is uniform on [-0.05, 0.05]^4: over many resets every coordinate's mean
   * is near 0 (sd of the mean 0.0289/sqrt(4000) = 4.6e-4) and the extremes reach the ends. */
  float obs[4];
  double sum[4] = {0}, lo[4] = {1, 1, 1, 1}, hi[4] = {-1, -1, -1, -1};
  for (int k = 0; k < 4000; k++) {
    frl_env_reset(e1, obs);
    for (int i = 0; i < 4; i++) {
      assert_true(obs[i] >= -0.05f && obs[i] <= 0.05f);
      sum[i] += obs[i];
      lo[i] = fmin(lo[i], obs[i]);
      hi[i] = fmax(hi[i], obs[i]);
    }
  }
  for (int i = 0; i < 4; i++) {
    assert_float_equal(sum[i] / 4000, 0.0, 5 * 4.6e-4);
    assert_true(lo[i] < -0.049 && hi[i] > 0.049);
  }
  frl_env_destroy(&e1);
  frl_env_destroy(&e2);
  frl_env_destroy(&e3);
}

/* ---- GridWorld ------------------------------------------------------------------------------- */

enum { UP = 0, RIGHT = 1, DOWN = 2, LEFT = 3 };

static int onehot_cell(const float *obs) {
  int cell = -1;
  for (int i = 0; i < 16; i++) {
    if (obs[i] == 1.0f) {
      assert_int_equal(cell, -1);
      cell = i;
    } else {
      assert_true(obs[i] == 0.0f);
    }
  }
  assert_true(cell >= 0);
  return cell;
}

static void test_gridworld_rules(void **unused) {
  /* Row-major 4x4 grid, goal 3, obstacle 5 (see the seed's drawing). */
  const struct {
    int from, action, to;
    float reward;
    bool terminal;
    uint32_t violations;
  } cases[] = {
      {0, UP, 0, -0.1f, false, 0},     {0, LEFT, 0, -0.1f, false, 0},   /* walls */
      {0, RIGHT, 1, -0.1f, false, 0},  {0, DOWN, 4, -0.1f, false, 0},
      {15, RIGHT, 15, -0.1f, false, 0}, {15, DOWN, 15, -0.1f, false, 0},
      {12, LEFT, 12, -0.1f, false, 0}, {7, RIGHT, 7, -0.1f, false, 0},
      {1, DOWN, 1, -5.0f, false, 1},   {4, RIGHT, 4, -5.0f, false, 1},  /* obstacle */
      {6, LEFT, 6, -5.0f, false, 1},   {9, UP, 9, -5.0f, false, 1},
      {2, RIGHT, 3, 10.0f, true, 0},   {7, UP, 3, 10.0f, true, 0},      /* goal */
      {10, UP, 6, -0.1f, false, 0},    {6, UP, 2, -0.1f, false, 0},
      {14, LEFT, 13, -0.1f, false, 0}, {11, DOWN, 15, -0.1f, false, 0},
      {1, LEFT, 0, -0.1f, false, 0},   {13, LEFT, 12, -0.1f, false, 0},
      {8, UP, 4, -0.1f, false, 0},     {4, DOWN, 8, -0.1f, false, 0},
  };
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "gridworld", 1, NULL, 0), 0);
  float obs[16];
  frl_step_t st;
  for (size_t k = 0; k < FRL_ARRAY_LEN(cases); k++) {
    frl_env_reset(e, obs);
    assert_int_equal(onehot_cell(obs), 0);
    const double from = cases[k].from;
    assert_int_equal(frl__env_set_state(e, &from, 1, obs), 0);
    assert_int_equal(onehot_cell(obs), cases[k].from);
    const float act = (float)cases[k].action;
    frl_env_step(e, &act, obs, &st);
    assert_int_equal(onehot_cell(obs), cases[k].to);
    assert_float_equal(st.reward, cases[k].reward, 0.0f);
    assert_int_equal(st.terminal, cases[k].terminal);
    assert_int_equal(st.success, cases[k].terminal);
    assert_int_equal(st.violations, cases[k].violations);
    assert_false(st.truncated);
  }
  float obs2[16];
  frl_env_reset(e, obs2);
  const double obstacle = 5, goal = 3, off = 16, frac = 2.5, two[2] = {1, 2};
  assert_int_equal(frl__env_set_state(e, &obstacle, 1, obs2), FRL_EUSAGE);
  assert_int_equal(frl__env_set_state(e, &goal, 1, obs2), FRL_EUSAGE);
  assert_int_equal(frl__env_set_state(e, &off, 1, obs2), FRL_EUSAGE);
  assert_int_equal(frl__env_set_state(e, &frac, 1, obs2), FRL_EUSAGE);
  assert_int_equal(frl__env_set_state(e, two, 2, obs2), FRL_EDIM);
  frl_env_destroy(&e);
}

static void test_gridworld_optimal_return(void **unused) {
  /* By hand: the goal is 3 cells right of the start along the top row, which avoids the
   * obstacle, so the best episode is right, right, right: -0.1 - 0.1 + 10 = 9.8. Any longer
   * path to the goal pays another -0.1 per extra step and paths that miss it are negative.
   * Exhaustively run every action sequence of length 6 to confirm nothing does better. */
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "gridworld", 1, NULL, 0), 0);
  float obs[16];
  frl_step_t st;
  double best = -1e9;
  int best_len = 0;
  const int rrr = RIGHT + 4 * RIGHT + 16 * RIGHT; /* first three actions, base 4, low first */
  for (int code = 0; code < 4096; code++) {
    frl_env_reset(e, obs);
    double ret = 0;
    int c = code, len = 0;
    st.terminal = false;
    while (len < 6 && !st.terminal) {
      const float act = (float)(c % 4);
      c /= 4;
      frl_env_step(e, &act, obs, &st);
      ret += st.reward;
      len++;
    }
    if (ret > best + 1e-6) {
      best = ret;
      best_len = len;
    }
    if (ret > 9.8 - 1e-5) assert_int_equal(code % 64, rrr); /* the only optimal episode */
  }
  assert_float_equal(best, 9.8, 1e-5);
  assert_int_equal(best_len, 3);

  /* And the optimal path itself, step by step. */
  frl_env_reset(e, obs);
  const float right = RIGHT;
  const int want_cell[3] = {1, 2, 3};
  double ret = 0;
  for (int t = 0; t < 3; t++) {
    frl_env_step(e, &right, obs, &st);
    ret += st.reward;
    assert_int_equal(onehot_cell(obs), want_cell[t]);
    assert_int_equal(st.terminal, t == 2);
    assert_int_equal(st.success, t == 2);
  }
  assert_float_equal(ret, 9.8, 1e-5);
  frl_env_destroy(&e);
}

static void test_gridworld_truncation(void **unused) {
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "gridworld", 1, NULL, 0), 0);
  float obs[16];
  frl_step_t st;
  const float up = UP;
  for (int episode = 0; episode < 2; episode++) {
    frl_env_reset(e, obs);
    double ret = 0;
    for (int t = 1; t <= 100; t++) {
      frl_env_step(e, &up, obs, &st); /* into the top wall, forever */
      ret += st.reward;
      assert_false(st.terminal);
      assert_false(st.success);
      assert_int_equal(st.truncated, t == 100);
      assert_int_equal(onehot_cell(obs), 0);
    }
    assert_float_equal(ret, -10.0, 1e-4);
  }
  frl_env_destroy(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_registry),
      cmocka_unit_test(test_wrapper_clips_and_truncates),
      cmocka_unit_test(test_wrapper_clip_values),
      cmocka_unit_test(test_cartpole_hand_step),
      cmocka_unit_test(test_cartpole_matches_equations),
      cmocka_unit_test(test_cartpole_thresholds),
      cmocka_unit_test(test_cartpole_truncation),
      cmocka_unit_test(test_cartpole_reset_and_seeds),
      cmocka_unit_test(test_gridworld_rules),
      cmocka_unit_test(test_gridworld_optimal_return),
      cmocka_unit_test(test_gridworld_truncation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
