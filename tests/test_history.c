/* test_history.c: the history of commands and observations (history.h): the wrapper's
 * observation is the inner one followed by the previous m observations and the last k commands
 * newest first, as fractions of their range, computed here independently; neutral commands and
 * the first observation at every reset; clipped and NaN commands as the environment applies them;
 * it sits outside the delay line, so it holds what the policy commanded, not what has landed; the
 * settings' refusals name the flag and the limit; and policy files carry k and m. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "env.h"
#include "history.h"
#include "policy_file.h"
#include "randomize.h"
#include "rng.h"

static frl_env_t *make(const char *name, uint64_t seed) {
  frl_env_t *e = NULL;
  char err[256];
  if (frl_env_new(&e, name, seed, err, sizeof err) != 0) fail_msg("%s", err);
  return e;
}

/* An action delay of 2 steps around the planar arm, as domain randomization makes it. */
static void delay2(frl_env_t **e) {
  double v[FRL_RANDOMIZE_COUNT];
  char err[256];
  assert_int_equal(frl_randomize_parse_values("action_delay=2", v, err, sizeof err), 0);
  frl_randomize_opts_t o;
  frl_randomize_fixed(&o, v);
  assert_int_equal(frl_randomize_wrap(e, &o, 5, err, sizeof err), 0);
}

/* Commands (some beyond the bounds, one NaN) through a twin pair of delayed planar arms, one
 * inside the history wrapper: the wrapper's observation starts with the twin's, exactly, then
 * holds the twin's previous two observations (the first one, before the episode's second step)
 * and ends with the last three commands newest first as fractions of the range. */
static void test_wrapper_layout(void **unused) {
  (void)unused;
  frl_env_t *plain = make("planar-arm", 11), *wrapped = make("planar-arm", 11);
  delay2(&plain);
  delay2(&wrapped);
  char err[256];
  assert_int_equal(frl_history_wrap(&wrapped, 3, 2, err, sizeof err), 0);
  const frl_env_spec_t *ps = frl_env_spec(plain), *ws = frl_env_spec(wrapped);
  const int od = ps->obs_dim, ad = ps->act_dim, cmd = 3 * od; /* where the commands start */
  assert_int_equal(ws->obs_dim, 3 * od + 3 * ad);
  assert_int_equal(ws->act_dim, ad);
  assert_int_equal(ws->max_steps, ps->max_steps);
  frl_rng_t rng;
  frl_rng_seed(&rng, 99);
  float po[FRL_ENV_MAX_DIM], wo[FRL_ENV_MAX_DIM];
  float past[64][FRL_ENV_MAX_DIM]; /* the commands of this episode, as fractions */
  float seen[65][FRL_ENV_MAX_DIM]; /* the twin's observations of this episode */
  for (int ep = 0; ep < 2; ep++) {
    frl_env_reset(plain, po);
    frl_env_reset(wrapped, wo);
    memcpy(seen[0], po, sizeof(float) * (size_t)od);
    for (int i = 0; i < 3 * od; i++) assert_float_equal(wo[i], po[i % od], 0);
    for (int i = cmd; i < ws->obs_dim; i++) {
      /* Neutral: zero torque, the middle of a symmetric range. */
      int d = (i - cmd) % ad;
      float lo = ps->act_low[d], hi = ps->act_high[d];
      assert_float_equal(wo[i], (0.0f - 0.5f * (lo + hi)) / (0.5f * (hi - lo)), 1e-6);
    }
    for (int t = 0; t < 40; t++) {
      float a[FRL_ENV_MAX_DIM];
      for (int d = 0; d < ad; d++) {
        float lo = ps->act_low[d], hi = ps->act_high[d];
        a[d] = lo + (hi - lo) * (float)(1.6 * frl_rng_uniform(&rng) - 0.3); /* 30% beyond */
        float mid = 0.5f * (lo + hi), half = 0.5f * (hi - lo);
        float u = (a[d] - mid) / half;
        past[t][d] = u < -1.0f ? -1.0f : (u > 1.0f ? 1.0f : u);
      }
      if (t == 7) {
        a[1] = NAN; /* the environment applies the middle of the range */
        past[t][1] = 0.0f;
      }
      frl_step_t s1, s2;
      frl_env_step(plain, a, po, &s1);
      frl_env_step(wrapped, a, wo, &s2);
      assert_float_equal(s2.reward, s1.reward, 0);
      memcpy(seen[t + 1], po, sizeof(float) * (size_t)od);
      for (int i = 0; i < od; i++) assert_float_equal(wo[i], po[i], 0);
      for (int j = 1; j <= 2; j++) /* block j: the observation before j steps, or the first */
        for (int i = 0; i < od; i++)
          assert_float_equal(wo[j * od + i], seen[t + 1 - j >= 0 ? t + 1 - j : 0][i], 0);
      for (int j = 0; j < 3; j++)
        for (int d = 0; d < ad; d++) {
          /* Block j holds the command of step t - j, or neutral before the episode's first. */
          float want = t - j >= 0 ? past[t - j][d] : 0.0f;
          assert_float_equal(wo[cmd + j * ad + d], want, 1e-6);
        }
    }
  }
  frl_env_destroy(&plain);
  frl_env_destroy(&wrapped);
}

/* The history alone: a range that does not straddle zero has its neutral at the nearer bound;
 * k 0 adds nothing and leaves an environment unwrapped. */
static void test_history_values(void **unused) {
  (void)unused;
  frl_env_spec_t spec = {.name = "test", .obs_dim = 4, .act_dim = 2, .max_steps = 10};
  spec.act_low[0] = 1.0f;
  spec.act_high[0] = 3.0f;
  spec.act_low[1] = -4.0f;
  spec.act_high[1] = 0.0f;
  frl_history_t h;
  char err[256];
  assert_int_equal(frl_history_init(&h, 2, 0, &spec, err, sizeof err), 0);
  assert_int_equal(frl_history_dim(&h), 4);
  float out[4];
  frl_history_write(&h, NULL, out);
  /* Zero clipped into [1, 3] is 1: fraction -1; zero in [-4, 0] is 0: fraction 1. */
  const float neutral[4] = {-1.0f, 1.0f, -1.0f, 1.0f};
  for (int i = 0; i < 4; i++) assert_float_equal(out[i], neutral[i], 0);
  const float a1[2] = {2.5f, -1.0f}, a2[2] = {7.0f, -3.0f};
  frl_history_push(&h, a1);
  frl_history_push(&h, a2);
  frl_history_write(&h, NULL, out);
  const float want[4] = {1.0f, -0.5f, 0.5f, 0.5f}; /* a2 (7 clipped to 3), then a1 */
  for (int i = 0; i < 4; i++) assert_float_equal(out[i], want[i], 1e-7);
  frl_history_push(&h, a1); /* a2 drops to second place, the first a1 out */
  frl_history_write(&h, NULL, out);
  assert_float_equal(out[0], 0.5f, 1e-7);
  assert_float_equal(out[2], 1.0f, 1e-7);
  frl_history_reset(&h);
  frl_history_write(&h, NULL, out);
  for (int i = 0; i < 4; i++) assert_float_equal(out[i], neutral[i], 0);

  frl_env_t *e = make("pendulum", 1), *same = e;
  assert_int_equal(frl_history_wrap(&e, 0, 0, err, sizeof err), 0);
  assert_ptr_equal(e, same);
  assert_int_equal(frl_env_spec(e)->obs_dim, 3);
  frl_env_destroy(&e);
}

/* Past observations alone: the first observation stands for the whole past until a step; then
 * newest first, the oldest dropping out; a non-finite (or missing) observation restarts the past
 * as a reset does. */
static void test_observation_values(void **unused) {
  (void)unused;
  frl_env_spec_t spec = {.name = "test", .obs_dim = 2, .act_dim = 1, .max_steps = 10};
  spec.act_low[0] = -1.0f;
  spec.act_high[0] = 1.0f;
  frl_history_t h;
  char err[256];
  assert_int_equal(frl_history_init(&h, 1, 2, &spec, err, sizeof err), 0);
  assert_int_equal(frl_history_dim(&h), 5);
  float out[5];
  const float o0[2] = {1, 2}, o1[2] = {3, 4}, o2[2] = {5, 6}, o3[2] = {7, 8};
  const float bad[2] = {9, NAN};
  frl_history_write(&h, o0, out);
  const float w0[5] = {1, 2, 1, 2, 0};
  for (int i = 0; i < 5; i++) assert_float_equal(out[i], w0[i], 0);
  frl_history_observe(&h, o0); /* a step from o0 to o1 */
  frl_history_write(&h, o1, out);
  for (int i = 0; i < 5; i++) assert_float_equal(out[i], w0[i], 0);
  frl_history_observe(&h, o1);
  frl_history_observe(&h, o2);
  const float a[1] = {0.5f};
  frl_history_push(&h, a);
  frl_history_write(&h, o3, out);
  const float w2[5] = {5, 6, 3, 4, 0.5f};
  for (int i = 0; i < 5; i++) assert_float_equal(out[i], w2[i], 0);
  frl_history_observe(&h, bad); /* restarts the past from the next observation */
  frl_history_write(&h, o3, out);
  const float w3[5] = {7, 8, 7, 8, 0.5f};
  for (int i = 0; i < 5; i++) assert_float_equal(out[i], w3[i], 0);
  frl_history_observe(&h, o2);
  frl_history_observe(&h, NULL);
  frl_history_observe(&h, o1);
  frl_history_write(&h, o0, out);
  const float w4[5] = {3, 4, 3, 4, 0.5f};
  for (int i = 0; i < 5; i++) assert_float_equal(out[i], w4[i], 0);
  frl_history_reset(&h);
  frl_history_write(&h, o0, out);
  for (int i = 0; i < 5; i++) assert_float_equal(out[i], w0[i], 0);
}

static void test_refusals(void **unused) {
  (void)unused;
  char err[256];
  frl_env_t *e = make("pendulum", 1), *same = e;
  assert_int_equal(frl_history_wrap(&e, 17, 0, err, sizeof err), FRL_EUSAGE);
  assert_ptr_equal(e, same);
  assert_non_null(strstr(err, "--action-history: 17 is outside the allowed range [0, 16]"));
  assert_int_equal(frl_history_wrap(&e, -1, 0, err, sizeof err), FRL_EUSAGE);
  assert_int_equal(frl_history_wrap(&e, 0, 9, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "--obs-history: 9 is outside the allowed range [0, 8]"));
  assert_int_equal(frl_history_wrap(&e, 0, -1, err, sizeof err), FRL_EUSAGE);
  assert_ptr_equal(e, same);
  frl_env_destroy(&e);
  e = make("cartpole", 1);
  assert_int_equal(frl_history_wrap(&e, 2, 0, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "--action-history: environment cartpole has discrete actions"));
  assert_int_equal(frl_history_wrap(&e, 0, 2, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "--obs-history: environment cartpole has discrete actions"));
  frl_env_destroy(&e);
  frl_env_spec_t big = {.name = "big", .obs_dim = 250, .act_dim = 2};
  frl_history_t h;
  assert_int_equal(frl_history_init(&h, 4, 0, &big, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "258 values (limit 256)"));
  assert_int_equal(frl_history_init(&h, 3, 0, &big, err, sizeof err), 0);
  frl_env_spec_t mid = {.name = "mid", .obs_dim = 60, .act_dim = 2};
  assert_int_equal(frl_history_init(&h, 3, 3, &mid, err, sizeof err), 0); /* 4 * 60 + 6 */
  assert_int_equal(frl_history_init(&h, 9, 3, &mid, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "--obs-history: 3 past observations of 60 values (and 9 commands of "
                              "2) make an observation of 258 values (limit 256)"));
}

/* A policy file keeps k and m; a file claiming more history than the limits, or a history its
 * observation cannot hold (m + 1 whole frames of at least one value, then k commands), is
 * refused. */
static void test_policy_file_keeps_k(void **unused) {
  (void)unused;
  frl_policy_shape_t shape = {.algo = FRL_ALGO_SAC, .obs_dim = 5, .act_dim = 1, .hidden1 = 4,
                              .hidden2 = 4};
  size_t n = frl_policy_param_count(&shape);
  float *w = frl_xcalloc(n, sizeof *w);
  char path[64], err[512];
  snprintf(path, sizeof path, "/tmp/fleetrl-test-history-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  /* An observation of 5 values: 2 commands after 3, or 1 after two frames of 2 fit; 17 commands
   * or 9 observations are past the limits; 5 commands fill all 5 values; 3 frames do not divide
   * 5; 4 frames of 1 value and 1 command fit. */
  const struct {
    int k, m;
    bool ok;
  } cases[] = {{2, 0, true}, {1, 1, true}, {17, 0, false}, {0, 9, false},
               {5, 0, false}, {0, 2, false}, {1, 3, true}};
  for (size_t i = 0; i < FRL_ARRAY_LEN(cases); i++) {
    frl_policy_info_t info = {.shape = shape, .action_scale = 1.0f,
                              .action_history = cases[i].k, .obs_history = cases[i].m};
    snprintf(info.task, sizeof info.task, "pendulum-sac");
    snprintf(info.env, sizeof info.env, "pendulum");
    assert_int_equal(frl_policy_save(path, &info, w, n, NULL, NULL), 0);
    frl_policy_info_t back;
    float *p = NULL, *mean = NULL, *std = NULL;
    size_t got = 0;
    int rc = frl_policy_load(path, &back, &p, &got, &mean, &std, err, sizeof err);
    if (cases[i].ok) {
      assert_int_equal(rc, 0);
      assert_int_equal(back.action_history, cases[i].k);
      assert_int_equal(back.obs_history, cases[i].m);
      free(p);
    } else {
      assert_int_equal(rc, FRL_ECORRUPT);
      assert_non_null(strstr(err, "header is invalid"));
    }
  }
  unlink(path);
  free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wrapper_layout),
      cmocka_unit_test(test_history_values),
      cmocka_unit_test(test_observation_values),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_policy_file_keeps_k),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
