/* test_policy.c: the actor-side policy: action scaling, layouts derived from configuration,
 * the acting rule of each algorithm against its own network computed independently, and the
 * observation normalizer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "env.h"
#include "mlp.h"
#include "normalizer.h"
#include "policy.h"
#include "qnet.h"

static void test_scale(void **state) {
  const float low[2] = {-2.0f, 0.0f}, high[2] = {2.0f, 10.0f};
  const float a[2] = {-1.0f, 0.5f};
  float out[2];
  frl_policy_scale(out, a, low, high, 1.0f, 2);
  assert_float_equal(out[0], -2.0f, 1e-6);
  assert_float_equal(out[1], 7.5f, 1e-6); /* 5 + 0.5 * 5 */
  frl_policy_scale(out, a, low, high, 0.2f, 2);
  assert_float_equal(out[0], -0.4f, 1e-6);
  assert_float_equal(out[1], 5.5f, 1e-6); /* 5 + 0.2 * 0.5 * 5 */
}

static void test_shape_from_config(void **state) {
  frl_config_t cfg;
  char *argv[] = {"--algo", "sac"};
  unsetenv("FLEETRL_TASK");
  FILE *devnull = fopen("/dev/null", "w");
  assert_int_equal(frl_config_parse(&cfg, FRL_CFG_LEARNER, 2, argv, devnull, devnull), 0);
  fclose(devnull);
  frl_env_t *cart = NULL, *pend = NULL;
  assert_int_equal(frl_env_new(&cart, "cartpole", 1, NULL, 0), 0);
  assert_int_equal(frl_env_new(&pend, "pendulum", 1, NULL, 0), 0);
  frl_policy_shape_t s;
  char err[256] = "";
  assert_int_equal(frl_policy_shape_from_config(&cfg, frl_env_spec(cart), &s, err, sizeof err),
                   FRL_EUSAGE);
  assert_non_null(strstr(err, "discrete actions; --algo sac needs continuous"));
  assert_int_equal(frl_policy_shape_from_config(&cfg, frl_env_spec(pend), &s, err, sizeof err), 0);
  assert_int_equal(s.algo, FRL_ALGO_SAC);
  assert_int_equal(s.obs_dim, 3);
  assert_int_equal(s.act_dim, 1);
  snprintf(cfg.algo, sizeof cfg.algo, "dqn");
  assert_int_equal(frl_policy_shape_from_config(&cfg, frl_env_spec(pend), &s, err, sizeof err),
                   FRL_EUSAGE);
  assert_non_null(strstr(err, "continuous actions; --algo dqn needs a discrete one"));
  assert_int_equal(frl_policy_shape_from_config(&cfg, frl_env_spec(cart), &s, err, sizeof err), 0);
  assert_int_equal(s.n_actions, 2);
  frl_env_destroy(&cart);
  frl_env_destroy(&pend);
}

/* Forward pass of an MLP in double, written out here, as the independent reference. */
static void mlp_ref(const frl_mlp_shape_t *sh, const float *params, const float *in, double *out) {
  double x[512], y[512];
  for (int i = 0; i < sh->sizes[0]; i++) x[i] = in[i];
  const float *p = params;
  for (int l = 0; l < sh->n_layers; l++) {
    int I = sh->sizes[l], O = sh->sizes[l + 1];
    const float *w = p, *b = p + (size_t)O * I;
    for (int o = 0; o < O; o++) {
      double acc = b[o];
      for (int i = 0; i < I; i++) acc += (double)w[o * I + i] * x[i];
      frl_activation_t act = l + 1 < sh->n_layers ? sh->hidden_act : sh->out_act;
      y[o] = act == FRL_ACT_RELU ? (acc > 0 ? acc : 0) : act == FRL_ACT_TANH ? tanh(acc) : acc;
    }
    p += (size_t)O * I + O;
    memcpy(x, y, sizeof(double) * O);
  }
  memcpy(out, x, sizeof(double) * sh->sizes[sh->n_layers]);
}

static void test_continuous_acting_rules(void **state) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 5);
  const float obs[3] = {0.3f, -0.7f, 1.5f};
  /* SAC deterministic: tanh of the mean head. */
  frl_policy_shape_t s = {.algo = FRL_ALGO_SAC, .obs_dim = 3, .act_dim = 2, .hidden1 = 16,
                          .hidden2 = 8};
  frl_policy_t *p = frl_policy_new(&s, 1, &rng);
  assert_non_null(p);
  frl_mlp_shape_t ms = {.n_layers = 3, .sizes = {3, 16, 8, 4}, .hidden_act = FRL_ACT_RELU,
                        .out_act = FRL_ACT_NONE};
  assert_int_equal(frl_policy_n_params(p), frl_mlp_param_count(&ms));
  double ref[4];
  mlp_ref(&ms, frl_policy_params(p), obs, ref);
  float a[2];
  frl_policy_act(p, obs, 0.0, &rng, a);
  for (int i = 0; i < 2; i++) assert_float_equal(a[i], tanh(ref[i]), 1e-5);
  /* Exploring samples differ from the mean but stay in [-1, 1]. */
  int differ = 0;
  for (int k = 0; k < 50; k++) {
    float b[2];
    frl_policy_act(p, obs, 1.0, &rng, b);
    for (int i = 0; i < 2; i++) {
      assert_true(b[i] >= -1.0f && b[i] <= 1.0f);
      differ += fabsf(b[i] - a[i]) > 1e-4f;
    }
  }
  assert_true(differ > 50);
  /* The normalizer is applied before the network. */
  const float mean[3] = {1.0f, 2.0f, -1.0f}, std[3] = {2.0f, 0.5f, 4.0f};
  assert_int_equal(frl_policy_set_normalizer(p, mean, std, 3), 0);
  float nobs[3];
  frl_normalize(nobs, obs, mean, std, 1, 3);
  mlp_ref(&ms, frl_policy_params(p), nobs, ref);
  frl_policy_act(p, obs, 0.0, &rng, a);
  for (int i = 0; i < 2; i++) assert_float_equal(a[i], tanh(ref[i]), 1e-5);
  assert_int_equal(frl_policy_set_normalizer(p, mean, std, 2), FRL_EDIM);
  /* No critic on a SAC actor: no initial priorities. */
  float td;
  assert_int_equal(frl_policy_priorities(p, 1, obs, NULL, NULL, NULL, obs, &td), FRL_EUSAGE);
  frl_policy_destroy(&p);
  /* TD3 without noise is the deterministic tanh network. */
  s.algo = FRL_ALGO_TD3;
  p = frl_policy_new(&s, 1, &rng);
  frl_mlp_shape_t ts = {.n_layers = 3, .sizes = {3, 16, 8, 2}, .hidden_act = FRL_ACT_RELU,
                        .out_act = FRL_ACT_TANH};
  assert_int_equal(frl_policy_n_params(p), frl_mlp_param_count(&ts));
  mlp_ref(&ts, frl_policy_params(p), obs, ref);
  frl_policy_act(p, obs, 0.0, &rng, a);
  for (int i = 0; i < 2; i++) assert_float_equal(a[i], ref[i], 1e-5);
  frl_policy_destroy(&p);
}

static void test_dqn_epsilon(void **state) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 9);
  frl_policy_shape_t s = {.algo = FRL_ALGO_DQN, .obs_dim = 4, .act_dim = 1, .n_actions = 3,
                          .hidden1 = 8, .hidden2 = 8, .dueling = true};
  frl_policy_t *p = frl_policy_new(&s, 4, &rng);
  const float obs[4] = {0.1f, 0.2f, -0.3f, 0.4f};
  float greedy;
  frl_policy_act(p, obs, 0.0, &rng, &greedy);
  int counts[3] = {0};
  for (int k = 0; k < 3000; k++) {
    float a;
    frl_policy_act(p, obs, 1.0, &rng, &a);
    counts[(int)a]++;
  }
  for (int i = 0; i < 3; i++) assert_true(counts[i] > 850 && counts[i] < 1150);
  for (int k = 0; k < 100; k++) {
    float a;
    frl_policy_act(p, obs, 0.0, &rng, &a);
    assert_float_equal(a, greedy, 0);
  }
  frl_policy_destroy(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scale),
      cmocka_unit_test(test_shape_from_config),
      cmocka_unit_test(test_continuous_acting_rules),
      cmocka_unit_test(test_dqn_epsilon),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
