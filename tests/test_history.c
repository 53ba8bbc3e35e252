/* test_history.c: the commanded-action history (history.h): the wrapper's observation is the
 * inner one followed by the last k commands newest first, as fractions of their range, computed
 * here independently; neutral at every reset; clipped and NaN commands as the environment applies
 * them; it sits outside the delay line, so it holds what the policy commanded, not what has
 * landed; the setting's refusals name the flag and the limit; and policy files carry k. */
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
 * inside the history wrapper: the wrapper's observation starts with the twin's, exactly, and
 * ends with the last three commands newest first as fractions of the range. */
static void test_wrapper_layout(void **unused) {
  (void)unused;
  frl_env_t *plain = make("planar-arm", 11), *wrapped = make("planar-arm", 11);
  delay2(&plain);
  delay2(&wrapped);
  char err[256];
  assert_int_equal(frl_history_wrap(&wrapped, 3, err, sizeof err), 0);
  const frl_env_spec_t *ps = frl_env_spec(plain), *ws = frl_env_spec(wrapped);
  const int od = ps->obs_dim, ad = ps->act_dim;
  assert_int_equal(ws->obs_dim, od + 3 * ad);
  assert_int_equal(ws->act_dim, ad);
  assert_int_equal(ws->max_steps, ps->max_steps);
  frl_rng_t rng;
  frl_rng_seed(&rng, 99);
  float po[FRL_ENV_MAX_DIM], wo[FRL_ENV_MAX_DIM];
  float past[64][FRL_ENV_MAX_DIM]; /* the commands of this episode, as fractions */
  for (int ep = 0; ep < 2; ep++) {
    frl_env_reset(plain, po);
    frl_env_reset(wrapped, wo);
    for (int i = 0; i < od; i++) assert_float_equal(wo[i], po[i], 0);
    for (int i = od; i < ws->obs_dim; i++) {
      /* Neutral: zero torque, the middle of a symmetric range. */
      int d = (i - od) % ad;
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
      for (int i = 0; i < od; i++) assert_float_equal(wo[i], po[i], 0);
      for (int j = 0; j < 3; j++)
        for (int d = 0; d < ad; d++) {
          /* Block j holds the command of step t - j, or neutral before the episode's first. */
          float want = t - j >= 0 ? past[t - j][d] : 0.0f;
          assert_float_equal(wo[od + j * ad + d], want, 1e-6);
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
  assert_int_equal(frl_history_init(&h, 2, &spec, err, sizeof err), 0);
  assert_int_equal(frl_history_dim(&h), 4);
  float out[4];
  frl_history_write(&h, out);
  /* Zero clipped into [1, 3] is 1: fraction -1; zero in [-4, 0] is 0: fraction 1. */
  const float neutral[4] = {-1.0f, 1.0f, -1.0f, 1.0f};
  for (int i = 0; i < 4; i++) assert_float_equal(out[i], neutral[i], 0);
  const float a1[2] = {2.5f, -1.0f}, a2[2] = {7.0f, -3.0f};
  frl_history_push(&h, a1);
  frl_history_push(&h, a2);
  frl_history_write(&h, out);
  const float want[4] = {1.0f, -0.5f, 0.5f, 0.5f}; /* a2 (7 clipped to 3), then a1 */
  for (int i = 0; i < 4; i++) assert_float_equal(out[i], want[i], 1e-7);
  frl_history_push(&h, a1); /* a2 drops to second place, the first a1 out */
  frl_history_write(&h, out);
  assert_float_equal(out[0], 0.5f, 1e-7);
  assert_float_equal(out[2], 1.0f, 1e-7);
  frl_history_reset(&h);
  frl_history_write(&h, out);
  for (int i = 0; i < 4; i++) assert_float_equal(out[i], neutral[i], 0);

  frl_env_t *e = make("pendulum", 1), *same = e;
  assert_int_equal(frl_history_wrap(&e, 0, err, sizeof err), 0);
  assert_ptr_equal(e, same);
  assert_int_equal(frl_env_spec(e)->obs_dim, 3);
  frl_env_destroy(&e);
}

static void test_refusals(void **unused) {
  (void)unused;
  char err[256];
  frl_env_t *e = make("pendulum", 1), *same = e;
  assert_int_equal(frl_history_wrap(&e, 17, err, sizeof err), FRL_EUSAGE);
  assert_ptr_equal(e, same);
  assert_non_null(strstr(err, "--action-history: 17 is outside the allowed range [0, 16]"));
  assert_int_equal(frl_history_wrap(&e, -1, err, sizeof err), FRL_EUSAGE);
  frl_env_destroy(&e);
  e = make("cartpole", 1);
  assert_int_equal(frl_history_wrap(&e, 2, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "discrete actions"));
  frl_env_destroy(&e);
  frl_env_spec_t big = {.name = "big", .obs_dim = 250, .act_dim = 2};
  frl_history_t h;
  assert_int_equal(frl_history_init(&h, 4, &big, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "258 values (limit 256)"));
  assert_int_equal(frl_history_init(&h, 3, &big, err, sizeof err), 0);
}

/* A policy file keeps k; a file claiming more history than the limit, or more history values
 * than its observation has, is refused. */
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
  const int ks[] = {2, 17, 5};
  for (size_t i = 0; i < FRL_ARRAY_LEN(ks); i++) {
    frl_policy_info_t info = {.shape = shape, .action_scale = 1.0f, .action_history = ks[i]};
    snprintf(info.task, sizeof info.task, "pendulum-sac");
    snprintf(info.env, sizeof info.env, "pendulum");
    assert_int_equal(frl_policy_save(path, &info, w, n, NULL, NULL), 0);
    frl_policy_info_t back;
    float *p = NULL, *mean = NULL, *std = NULL;
    size_t got = 0;
    int rc = frl_policy_load(path, &back, &p, &got, &mean, &std, err, sizeof err);
    if (ks[i] == 2) {
      assert_int_equal(rc, 0);
      assert_int_equal(back.action_history, 2);
      free(p);
    } else {
      /* 17 is past the limit; 5 commands of one value fill all 5 observation values. */
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
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_policy_file_keeps_k),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
