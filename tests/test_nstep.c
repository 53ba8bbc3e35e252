/* test_nstep.c: n-step returns and discounts against hand-computed sums and a direct
 * re-computation from the whole episode, for episodes ending by terminal and by truncation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "common.h"
#include "nstep.h"
#include "rng.h"

enum { OBS = 3, ACT = 2, MAX_T = 64 };

/* Copies of everything emitted, since emitted pointers are only valid during the callback. */
typedef struct {
  int count;
  float obs[MAX_T][OBS], action[MAX_T][ACT], reward[MAX_T], discount[MAX_T], next_obs[MAX_T][OBS];
} sink_t;

static void collect(void *ctx, const frl_transition_t *t) {
  sink_t *s = ctx;
  assert_true(s->count < MAX_T);
  memcpy(s->obs[s->count], t->obs, sizeof s->obs[0]);
  memcpy(s->action[s->count], t->action, sizeof s->action[0]);
  memcpy(s->next_obs[s->count], t->next_obs, sizeof s->next_obs[0]);
  s->reward[s->count] = t->reward;
  s->discount[s->count] = t->discount;
  s->count++;
}

/* Step t's observation is s_t = (t, 100 + t, -t) + base; its action (10 t, -10 t) + base. */
static void obs_of(float *o, int t, int base) {
  o[0] = (float)(t + base);
  o[1] = (float)(100 + t + base);
  o[2] = (float)(-t - base);
}
static void action_of(float *a, int t, int base) {
  a[0] = (float)(10 * t + base);
  a[1] = (float)(-10 * t - base);
}

/* Runs one episode of T steps with the given rewards, ending by terminal or truncation, through
 * caller buffers that are overwritten every step (as an actor's are), and checks how many
 * transitions appear after each push. */
static void run_episode(frl_nstep_t *ns, int n, const float *rewards, int T, bool terminal,
                        int base, sink_t *s) {
  float obs[OBS], next_obs[OBS], action[ACT];
  memset(s, 0, sizeof *s);
  for (int t = 0; t < T; t++) {
    obs_of(obs, t, base);
    action_of(action, t, base);
    obs_of(next_obs, t + 1, base);
    bool last = t == T - 1;
    frl_nstep_push(ns, obs, action, rewards[t], next_obs, last && terminal, last && !terminal,
                   collect, s);
    int want = last ? T : (t + 1 >= n ? t + 2 - n : 0);
    assert_int_equal(s->count, want);
    /* Scribble over the caller's buffers: the builder must have kept its own copies. */
    memset(obs, 0xff, sizeof obs);
    memset(action, 0xff, sizeof action);
    memset(next_obs, 0xff, sizeof next_obs);
  }
}

/* Checks s against a direct recomputation from the full episode, in double:
 * for start j, k = min(n, T - j), R_j = sum_{i<k} gamma^i r_{j+i}, and discount gamma^k,
 * except 0 when the window reaches a terminal last step. */
static void check_against_episode(const sink_t *s, int n, float gamma, const float *rewards,
                                  int T, bool terminal, int base) {
  assert_int_equal(s->count, T);
  for (int j = 0; j < T; j++) {
    int k = FRL_MIN(n, T - j);
    double R = 0;
    for (int i = 0; i < k; i++) R += pow(gamma, i) * rewards[j + i];
    double disc = (terminal && j + k == T) ? 0.0 : pow(gamma, k);
    assert_float_equal(s->reward[j], R, 1e-5 * (1 + fabs(R)));
    assert_float_equal(s->discount[j], disc, 1e-6);
    float want_obs[OBS], want_act[ACT], want_next[OBS];
    obs_of(want_obs, j, base);
    action_of(want_act, j, base);
    obs_of(want_next, j + k, base);
    assert_memory_equal(s->obs[j], want_obs, sizeof want_obs);
    assert_memory_equal(s->action[j], want_act, sizeof want_act);
    assert_memory_equal(s->next_obs[j], want_next, sizeof want_next);
  }
}

static void expect_values(const sink_t *s, const double *R, const double *disc, int T) {
  assert_int_equal(s->count, T);
  for (int j = 0; j < T; j++) {
    assert_float_equal(s->reward[j], R[j], 1e-6);
    assert_float_equal(s->discount[j], disc[j], 1e-7);
  }
}

static void test_hand_computed(void **unused) {
  const float r[4] = {1, 2, 3, 4};
  sink_t s;

  /* n = 3, gamma = 0.5, rewards 1,2,3,4:
   *   R_0 = 1 + 0.5*2 + 0.25*3 = 2.75   R_1 = 2 + 0.5*3 + 0.25*4 = 4.5
   *   R_2 = 3 + 0.5*4 = 5               R_3 = 4
   * Terminal at step 4: the windows of steps 1..3 reach it, so their discounts are 0; R_0
   * bootstraps from s_3 with 0.5^3. Truncated: 0.125, 0.125, 0.25, 0.5. */
  frl_nstep_t *ns = frl_nstep_new(3, 0.5f, OBS, ACT);
  assert_non_null(ns);
  run_episode(ns, 3, r, 4, true, 0, &s);
  expect_values(&s, (const double[]){2.75, 4.5, 5, 4}, (const double[]){0.125, 0, 0, 0}, 4);
  run_episode(ns, 3, r, 4, false, 0, &s);
  expect_values(&s, (const double[]){2.75, 4.5, 5, 4}, (const double[]){0.125, 0.125, 0.25, 0.5},
                4);
  frl_nstep_destroy(&ns);
  assert_null(ns);

  /* n = 5 over the same 4-step episode (shorter than n): every window runs to the end.
   *   R_0 = 1 + 1 + 0.75 + 0.5 = 3.25, R_1 = 2 + 1.5 + 1 = 4.5, R_2 = 5, R_3 = 4. */
  ns = frl_nstep_new(5, 0.5f, OBS, ACT);
  run_episode(ns, 5, r, 4, true, 0, &s);
  expect_values(&s, (const double[]){3.25, 4.5, 5, 4}, (const double[]){0, 0, 0, 0}, 4);
  run_episode(ns, 5, r, 4, false, 0, &s);
  expect_values(&s, (const double[]){3.25, 4.5, 5, 4},
                (const double[]){0.0625, 0.125, 0.25, 0.5}, 4);
  frl_nstep_destroy(&ns);

  /* n = 1 is one-step TD: R = r, discount gamma, 0 only on the terminal step. */
  ns = frl_nstep_new(1, 0.5f, OBS, ACT);
  run_episode(ns, 1, r, 4, true, 0, &s);
  expect_values(&s, (const double[]){1, 2, 3, 4}, (const double[]){0.5, 0.5, 0.5, 0}, 4);
  run_episode(ns, 1, r, 4, false, 0, &s);
  expect_values(&s, (const double[]){1, 2, 3, 4}, (const double[]){0.5, 0.5, 0.5, 0.5}, 4);
  frl_nstep_destroy(&ns);

  /* gamma = 1 (plain sums) and gamma = 0 (only the first reward, no bootstrapping weight). */
  ns = frl_nstep_new(3, 1.0f, OBS, ACT);
  run_episode(ns, 3, r, 4, false, 0, &s);
  expect_values(&s, (const double[]){6, 9, 7, 4}, (const double[]){1, 1, 1, 1}, 4);
  frl_nstep_destroy(&ns);
  ns = frl_nstep_new(3, 0.0f, OBS, ACT);
  run_episode(ns, 3, r, 4, false, 0, &s);
  expect_values(&s, (const double[]){1, 2, 3, 4}, (const double[]){0, 0, 0, 0}, 4);
  frl_nstep_destroy(&ns);
}

static void test_against_episode(void **unused) {
  const int ns_to_try[] = {1, 3, 5};
  const int lengths[] = {1, 2, 3, 4, 5, 6, 7, 12, 40};
  frl_rng_t rng;
  frl_rng_seed(&rng, 2024);
  static sink_t s;
  float rewards[MAX_T];
  for (size_t a = 0; a < FRL_ARRAY_LEN(ns_to_try); a++) {
    int n = ns_to_try[a];
    const float gamma = 0.9f;
    /* One builder across many episodes: each must start from an empty window. */
    frl_nstep_t *ns = frl_nstep_new(n, gamma, OBS, ACT);
    assert_non_null(ns);
    for (size_t b = 0; b < FRL_ARRAY_LEN(lengths); b++) {
      for (int terminal = 0; terminal < 2; terminal++) {
        int T = lengths[b];
        for (int t = 0; t < T; t++) rewards[t] = (float)(4.0 * frl_rng_uniform(&rng) - 2.0);
        int base = (int)(b * 1000 + (size_t)terminal * 500);
        run_episode(ns, n, rewards, T, terminal, base, &s);
        check_against_episode(&s, n, gamma, rewards, T, terminal, base);
      }
    }
    frl_nstep_destroy(&ns);
  }
}

static void test_clear_drops_pending(void **unused) {
  frl_nstep_t *ns = frl_nstep_new(3, 0.5f, OBS, ACT);
  sink_t s;
  memset(&s, 0, sizeof s);
  float obs[OBS], act[ACT], next[OBS];
  /* Two steps of an abandoned episode: nothing is complete yet, and clear drops both. */
  for (int t = 0; t < 2; t++) {
    obs_of(obs, t, 7000);
    action_of(act, t, 7000);
    obs_of(next, t + 1, 7000);
    frl_nstep_push(ns, obs, act, 100.0f, next, false, false, collect, &s);
  }
  assert_int_equal(s.count, 0);
  frl_nstep_clear(ns);
  const float r[4] = {1, 2, 3, 4};
  run_episode(ns, 3, r, 4, false, 0, &s);
  check_against_episode(&s, 3, 0.5f, r, 4, false, 0);
  expect_values(&s, (const double[]){2.75, 4.5, 5, 4}, (const double[]){0.125, 0.125, 0.25, 0.5},
                4);
  frl_nstep_destroy(&ns);
  frl_nstep_destroy(&ns);
  frl_nstep_destroy(NULL);
}

static void test_terminal_wins_over_truncated(void **unused) {
  frl_nstep_t *ns = frl_nstep_new(2, 0.5f, OBS, ACT);
  sink_t s;
  memset(&s, 0, sizeof s);
  float obs[OBS], act[ACT], next[OBS];
  obs_of(obs, 0, 0);
  action_of(act, 0, 0);
  obs_of(next, 1, 0);
  frl_nstep_push(ns, obs, act, 3.0f, next, true, true, collect, &s);
  assert_int_equal(s.count, 1);
  assert_float_equal(s.reward[0], 3.0f, 0.0f);
  assert_float_equal(s.discount[0], 0.0f, 0.0f);
  frl_nstep_destroy(&ns);
}

static void test_bad_arguments(void **unused) {
  assert_null(frl_nstep_new(0, 0.9f, 4, 1));
  assert_null(frl_nstep_new(-1, 0.9f, 4, 1));
  assert_null(frl_nstep_new(FRL_NSTEP_MAX_N + 1, 0.9f, 4, 1));
  assert_null(frl_nstep_new(3, -0.1f, 4, 1));
  assert_null(frl_nstep_new(3, 1.5f, 4, 1));
  assert_null(frl_nstep_new(3, NAN, 4, 1));
  assert_null(frl_nstep_new(3, 0.9f, 0, 1));
  assert_null(frl_nstep_new(3, 0.9f, 4, 0));
  frl_nstep_t *ns = frl_nstep_new(FRL_NSTEP_MAX_N, 0.99f, 4, 1);
  assert_non_null(ns);
  frl_nstep_destroy(&ns);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_computed),
      cmocka_unit_test(test_against_episode),
      cmocka_unit_test(test_clear_drops_pending),
      cmocka_unit_test(test_terminal_wins_over_truncated),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
