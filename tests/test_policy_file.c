/* test_policy_file.c: policy files round-trip and refuse damage (magic, version, truncation,
 * checksum, inconsistent shape); also the actor's Ape-X exploration schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor.h"
#include "common.h"
#include "policy.h"
#include "policy_file.h"

static char g_path[64];

static const float g_mean[4] = {0.5f, -1.0f, 2.0f, 0.0f};
static const float g_std[4] = {1.0f, 0.5f, 3.0f, 0.01f};

static void write_shape(const frl_policy_shape_t *shape, bool with_norm, float **params_out,
                        size_t *n_out) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
  frl_policy_t *p = frl_policy_new(shape, 1, &rng);
  assert_non_null(p);
  frl_policy_info_t info = {.shape = *shape, .params_version = 42, .updates = 1000};
  snprintf(info.task, sizeof info.task, "cartpole-dqn");
  snprintf(info.env, sizeof info.env, "cartpole");
  size_t n = frl_policy_n_params(p);
  assert_int_equal(n, frl_policy_param_count(shape));
  assert_int_equal(frl_policy_save(g_path, &info, frl_policy_params(p), n,
                                   with_norm ? g_mean : NULL, with_norm ? g_std : NULL),
                   0);
  *params_out = frl_xmalloc(n * sizeof(float));
  memcpy(*params_out, frl_policy_params(p), n * sizeof(float));
  *n_out = n;
  frl_policy_destroy(&p);
}

static const frl_policy_shape_t g_dqn = {.algo = FRL_ALGO_DQN, .obs_dim = 4, .act_dim = 1,
                                         .n_actions = 2, .hidden1 = 8, .hidden2 = 6,
                                         .dueling = true};

static void write_valid(float **params_out, size_t *n_out) {
  write_shape(&g_dqn, false, params_out, n_out);
}

static void test_round_trip(void **state) {
  float *orig;
  size_t n;
  write_valid(&orig, &n);
  frl_policy_info_t info;
  float *p = NULL, *mean = NULL, *std = NULL;
  size_t m = 0;
  char err[256];
  assert_int_equal(frl_policy_load(g_path, &info, &p, &m, &mean, &std, err, sizeof err), 0);
  assert_int_equal(m, n);
  assert_memory_equal(p, orig, n * sizeof(float));
  assert_null(mean);
  assert_string_equal(info.task, "cartpole-dqn");
  assert_int_equal(info.shape.hidden2, 6);
  assert_true(info.shape.dueling);
  assert_int_equal(info.params_version, 42);
  free(p);
  free(orig);
  /* A SAC policy with a normalizer. */
  frl_policy_shape_t sac = {.algo = FRL_ALGO_SAC, .obs_dim = 4, .act_dim = 3, .hidden1 = 16,
                            .hidden2 = 8};
  write_shape(&sac, true, &orig, &n);
  assert_int_equal(frl_policy_load(g_path, &info, &p, &m, &mean, &std, err, sizeof err), 0);
  assert_int_equal(info.shape.algo, FRL_ALGO_SAC);
  assert_int_equal(info.shape.act_dim, 3);
  assert_memory_equal(p, orig, n * sizeof(float));
  assert_non_null(mean);
  assert_memory_equal(mean, g_mean, sizeof g_mean);
  assert_memory_equal(std, g_std, sizeof g_std);
  free(p);
  free(mean);
  free(std);
  free(orig);
}

/* Rewrites byte `at` of the file (or truncates at `at` when truncate is set). */
static void damage(long at, bool cut) {
  if (cut) {
    assert_int_equal(truncate(g_path, at), 0);
    return;
  }
  FILE *f = fopen(g_path, "r+b");
  fseek(f, at, SEEK_SET);
  int c = fgetc(f);
  fseek(f, at, SEEK_SET);
  fputc(c ^ 0x5a, f);
  fclose(f);
}

static void expect_refusal(const char *needle) {
  frl_policy_info_t info;
  float *p = NULL, *mean = NULL, *std = NULL;
  size_t m = 0;
  char err[256] = "";
  assert_int_equal(frl_policy_load(g_path, &info, &p, &m, &mean, &std, err, sizeof err),
                   FRL_ECORRUPT);
  assert_null(p);
  if (!strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_refuses_damage(void **state) {
  float *orig;
  size_t n;
  write_valid(&orig, &n);
  free(orig);
  damage(0, false);
  expect_refusal("bad magic");
  write_valid(&orig, &n);
  free(orig);
  damage(8, false);
  expect_refusal("unsupported policy file version");
  write_valid(&orig, &n);
  free(orig);
  long size;
  FILE *f = fopen(g_path, "rb");
  fseek(f, 0, SEEK_END);
  size = ftell(f);
  fclose(f);
  damage(size - 20, false); /* a parameter byte */
  expect_refusal("checksum mismatch");
  write_valid(&orig, &n);
  free(orig);
  damage(size - 30, true);
  expect_refusal("truncated");
}

static void test_epsilon_schedule(void **state) {
  /* Ape-X: eps_i = 0.4^(1 + 7 i / (N - 1)) */
  assert_float_equal(frl_actor_epsilon(0, 1, 0.4, 7), 0.4, 1e-12);
  assert_float_equal(frl_actor_epsilon(0, 4, 0.4, 7), 0.4, 1e-12);
  assert_float_equal(frl_actor_epsilon(3, 4, 0.4, 7), pow(0.4, 8), 1e-12);
  assert_float_equal(frl_actor_epsilon(1, 3, 0.4, 7), pow(0.4, 4.5), 1e-12);
  for (int i = 1; i < 16; i++)
    assert_true(frl_actor_epsilon(i, 16, 0.4, 7) < frl_actor_epsilon(i - 1, 16, 0.4, 7));
}

int main(void) {
  snprintf(g_path, sizeof g_path, "/tmp/fleetrl-test-policy-%d.bin", (int)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_refuses_damage),
      cmocka_unit_test(test_epsilon_schedule),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  unlink(g_path);
  return rc;
}
