/* test_agent.c: the agent's behaviour-cloning dispatch, from settings as the learner reads them
 * (frl_agent_config_from): for DQN, SAC (both --bc-loss values) and TD3, the loss and action
 * error one step reports are checked against the policy the actors would run with the same
 * parameters (frl_policy_act, deterministic), the step moves the published policy parameters
 * and counts no RL update, and a bad batch is refused with nothing changed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "numeric_check.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "common.h"
#include "config.h"
#include "policy.h"
#include "rng.h"

enum { D = 3, A = 2, N_ACTIONS = 3, B = 16 };

/* Learner settings from flags, as `fleetrl learner` parses them. */
static void settings(frl_config_t *cfg, const char *algo, const char *bc_loss) {
  char a[32], l[32];
  snprintf(a, sizeof a, "--algo=%s", algo);
  snprintf(l, sizeof l, "--bc-loss=%s", bc_loss);
  char *argv[] = {a, l, "--hidden1=8", "--hidden2=8", "--batch=16", "--lr=1e-3", "--seed=5"};
  assert_int_equal(frl_config_parse(cfg, FRL_CFG_LEARNER, (int)FRL_ARRAY_LEN(argv), argv, stdout,
                                    stderr),
                   0);
}

static void check_algo(const char *algo, const char *bc_loss) {
  frl_config_t cfg;
  settings(&cfg, algo, bc_loss);
  const bool dqn = strcmp(algo, "dqn") == 0;
  frl_policy_shape_t shape = {.obs_dim = D, .act_dim = dqn ? 1 : A,
                              .n_actions = dqn ? N_ACTIONS : 0, .hidden1 = 8, .hidden2 = 8,
                              .dueling = dqn};
  assert_int_equal(frl_algo_parse(algo, &shape.algo), 0);
  frl_agent_config_t ac;
  frl_agent_config_from(&cfg, &shape, &ac);
  frl_agent_t *agent = frl_agent_new(&ac);
  assert_non_null(agent);

  frl_rng_t rng;
  frl_rng_seed(&rng, 181);
  float obs[B * D], act[B * A], weight[B];
  int32_t index[B];
  fill_uniform(obs, B * D, -1, 1, &rng);
  fill_uniform(act, B * A, -1, 1, &rng);
  for (int r = 0; r < B; r++) weight[r] = 1.0f, index[r] = (int32_t)frl_rng_below(&rng, N_ACTIONS);
  frl_agent_batch_t b = {.B = B, .obs = obs, .action_index = index, .action = act,
                         .weight = weight};

  /* What the actors would do with the parameters before the step. */
  size_t n;
  const float *params = frl_agent_policy_params(agent, &n);
  frl_policy_t *pol = frl_policy_new(&shape, 1, &rng);
  assert_non_null(pol);
  memcpy(frl_policy_params(pol), params, n * sizeof(float));
  double mse = 0, err = 0;
  for (int r = 0; r < B; r++) {
    float a[A];
    frl_policy_act(pol, obs + r * D, 0.0, &rng, a);
    if (dqn) {
      err += ((int)a[0] != index[r]) / (double)B;
      continue;
    }
    for (int i = 0; i < A; i++) {
      double e = a[i] - act[r * A + i];
      mse += e * e / (B * A);
      err += fabs(e) / (B * A);
    }
  }
  float *before = malloc(n * sizeof(float));
  memcpy(before, params, n * sizeof(float));

  frl_agent_bc_stats_t st = {.loss = NAN};
  assert_int_equal(frl_agent_bc_update(agent, &b, &st), 0);
  print_message("%s %s: loss %.5f, action error %.4f\n", algo, dqn ? "margin" : bc_loss, st.loss,
                st.action_error);
  expect_close("action error", 0, st.action_error, err, 1e-5, 1e-4);
  if (dqn)
    assert_true(st.loss >= 0.0f); /* the margin loss: never negative */
  else if (strcmp(bc_loss, "mse") == 0 || strcmp(algo, "td3") == 0)
    expect_close("mse", 0, st.loss, mse, 1e-6, 1e-4);
  else
    assert_true(fabs(st.loss - mse) > 0.1); /* the NLL, not the MSE */
  params = frl_agent_policy_params(agent, &n);
  assert_true(memcmp(params, before, n * sizeof(float)) != 0);
  assert_int_equal(frl_agent_updates(agent), 0);

  /* A non-finite observation: refused, nothing changed. */
  memcpy(before, params, n * sizeof(float));
  obs[5] = NAN;
  assert_int_equal(frl_agent_bc_update(agent, &b, &st), -ERANGE);
  assert_memory_equal(frl_agent_policy_params(agent, &n), before, n * sizeof(float));
  free(before);
  frl_policy_destroy(&pol);
  frl_agent_destroy(&agent);
  assert_null(agent);
}

static void test_bc_dqn(void **state) { check_algo("dqn", "mse"); }
static void test_bc_sac_mse(void **state) { check_algo("sac", "mse"); }
static void test_bc_sac_nll(void **state) { check_algo("sac", "nll"); }
static void test_bc_td3(void **state) { check_algo("td3", "mse"); }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bc_dqn),
      cmocka_unit_test(test_bc_sac_mse),
      cmocka_unit_test(test_bc_sac_nll),
      cmocka_unit_test(test_bc_td3),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
