/* test_td3.c: TD3's clipped double-Q targets with target policy smoothing on a hand-built
 * network, a float64 reference of its losses with central finite differences checking every
 * actor and critic gradient, the delayed actor and target updates, the smoothing noise's
 * clipping and spread, the exploration noise, refusal of non-finite batches with nothing
 * changed, no allocation per update or action, and convergence on a one-step bandit. Behaviour
 * cloning: its loss and head gradient by hand, every actor gradient against finite differences,
 * the target policy copied, and cloning a linear expert onto held-out states. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "numeric_check.h"
#include "batch_fixture.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mlp.h"
#include "rng.h"
#include "td3.h"

#include "alloc_counter.h"
#include "mlp_reference.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static frl_td3_config_t base_config(int obs_dim, int act_dim, int hidden1, int hidden2, int batch) {
  frl_td3_config_t c = {.obs_dim = obs_dim,
                        .act_dim = act_dim,
                        .hidden1 = hidden1,
                        .hidden2 = hidden2,
                        .batch = batch,
                        .lr_actor = 3e-4f,
                        .lr_critic = 3e-4f,
                        .tau = 0.005f,
                        .policy_noise = 0.2f,
                        .noise_clip = 0.5f,
                        .policy_delay = 2,
                        .grad_clip = 0.0f,
                        .seed = 1};
  return c;
}

/* Q(s, a) = c_s s + c_a a + k exactly for |s|, |a| < 10 (see test_sac.c): block {2, 2, 2, 1}. */
static void set_linear_critic(frl_mlp_t *m, double cs, double ca, double k) {
  const float p[] = {
      1, 0, 0, 1, 10, 10, 1, 0, 0, 1, 0, 0, (float)cs, (float)ca, (float)(k - 10.0 * (cs + ca))};
  assert_int_equal(frl_mlp_n_params(m), FRL_ARRAY_LEN(p));
  memcpy(frl_mlp_params(m), p, sizeof p);
}

/* mu(s) = tanh(m1 s + m0): block {1, 2, 2, 1}, hidden (s + 10, 1). */
static void set_linear_actor(frl_mlp_t *m, double m1, double m0) {
  const float p[] = {1, 0, 10, 1, 1, 0, 0, 1, 0, 0, (float)m1, (float)m0, (float)(-10.0 * m1)};
  assert_int_equal(frl_mlp_n_params(m), FRL_ARRAY_LEN(p));
  memcpy(frl_mlp_params(m), p, sizeof p);
}

static double clip(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/* ---- targets and losses by hand -------------------------------------------------------------- */

static void test_targets_and_losses_by_hand(void **state) {
  frl_td3_config_t c = base_config(1, 1, 2, 2, 4);
  frl_td3_t *t = frl_td3_new(&c);
  assert_non_null(t);
  const double cq[2][3] = {{0.5, -1.0, 0.2}, {0.3, 0.8, -0.1}};
  const double ct[2][3] = {{1.0, 2.0, 0.5}, {-0.5, 1.5, 1.0}};
  for (int i = 0; i < 2; i++) {
    set_linear_critic(frl__td3_critic(t, i, false), cq[i][0], cq[i][1], cq[i][2]);
    set_linear_critic(frl__td3_critic(t, i, true), ct[i][0], ct[i][1], ct[i][2]);
  }
  const double m1 = 0.4, m0 = 0.1, tm1 = 0.9, tm0 = 0.8; /* online and target policies */
  set_linear_actor(frl_td3_actor(t), m1, m0);
  set_linear_actor(frl__td3_target_actor(t), tm1, tm0);
  enum { B = 4 };
  const float obs[B] = {0.5f, -1.0f, 2.0f, 0.1f}, act[B] = {0.2f, -0.6f, 0.9f, 0.0f};
  const float rew[B] = {1.0f, -0.5f, 2.0f, 0.3f}, disc[B] = {0.99f, 0.9801f, 0.0f, 0.99f};
  const float next[B] = {0.3f, -1.5f, 7.0f, 1.2f}, weight[B] = {1.0f, 0.5f, 2.0f, 1.5f};
  /* Smoothing draws: 0.5 sigma = 0.1 passes; +-10 sigma = +-2 clip to +-0.5; row 3's target
   * action tanh(1.88) = 0.95 plus 0.5 leaves [-1, 1] and is clipped to 1. */
  const float z[B] = {0.5f, 10.0f, -10.0f, 3.0f};
  frl__td3_fix_noise(t, z);
  frl_batch_t b = {.B = B,
                   .obs = obs,
                   .action = act,
                   .reward = rew,
                   .discount = disc,
                   .next_obs = next,
                   .weight = weight};
  double y[B], td[B], closs[2] = {0, 0}, actor = 0, sum_q = 0;
  for (int r = 0; r < B; r++) {
    double noise = clip(c.policy_noise * z[r], -c.noise_clip, c.noise_clip);
    double an = clip(tanh(tm1 * next[r] + tm0) + noise, -1, 1);
    if (r == 3) assert_true(an == 1.0);
    double qn = fmin(ct[0][0] * next[r] + ct[0][1] * an + ct[0][2],
                     ct[1][0] * next[r] + ct[1][1] * an + ct[1][2]);
    y[r] = disc[r] != 0 ? rew[r] + disc[r] * qn : rew[r];
    double q[2];
    for (int i = 0; i < 2; i++) {
      q[i] = cq[i][0] * obs[r] + cq[i][1] * act[r] + cq[i][2];
      closs[i] += weight[r] * (q[i] - y[r]) * (q[i] - y[r]) / B;
    }
    td[r] = fabs(y[r] - fmin(q[0], q[1]));
    sum_q += fmin(q[0], q[1]);
    /* Actor loss: -Q_1(s, mu(s)) (critic 1 only). */
    actor -= (cq[0][0] * obs[r] + cq[0][1] * tanh(m1 * obs[r] + m0) + cq[0][2]) / B;
  }
  float td_got[B];
  frl_td3_stats_t st;
  assert_int_equal(frl__td3_compute(t, &b, true, td_got, &st), 0);
  for (int r = 0; r < B; r++) expect_close("td_abs", r, td_got[r], td[r], 1e-5, 1e-5);
  expect_close("critic1_loss", 0, st.critic1_loss, closs[0], 1e-5, 1e-5);
  expect_close("critic2_loss", 0, st.critic2_loss, closs[1], 1e-5, 1e-5);
  expect_close("actor_loss", 0, st.actor_loss, actor, 1e-5, 1e-5);
  expect_close("mean_q", 0, st.mean_q, sum_q / B, 1e-5, 1e-5);
  assert_true(st.actor_updated);
  /* The same through frl_td3_update (its first step is a critic-only step). */
  float td2[B];
  assert_int_equal(frl_td3_update(t, &b, td2, &st), 0);
  for (int r = 0; r < B; r++) expect_close("update td_abs", r, td2[r], td[r], 1e-5, 1e-5);
  expect_close("update critic1_loss", 0, st.critic1_loss, closs[0], 1e-5, 1e-5);
  assert_false(st.actor_updated);
  frl_td3_destroy(&t);
  assert_null(t);
  frl_td3_destroy(NULL);
}

/* ---- float64 reference and gradients by finite differences ----------------------------------- */

typedef struct {
  frl_mlp_shape_t actor_shape, critic_shape;
  int D, A, B;
  double *actor, *actor_target, *critic[2], *target[2];
  double sigma, noise_clip;
  const float *obs, *act, *rew, *disc, *next, *weight, *z;
} ref_t;

static double ref_q(const ref_t *R, const double *p, const float *s, const double *a) {
  double x[64], q;
  for (int k = 0; k < R->D; k++) x[k] = s[k];
  for (int k = 0; k < R->A; k++) x[R->D + k] = a[k];
  ref_forward(&q, &R->critic_shape, p, x);
  return q;
}

static void ref_targets(const ref_t *R, double *y) {
  for (int r = 0; r < R->B; r++) {
    double x[64], mu[32];
    for (int k = 0; k < R->D; k++) x[k] = R->next[r * R->D + k];
    ref_forward(mu, &R->actor_shape, R->actor_target, x);
    for (int k = 0; k < R->A; k++)
      mu[k] =
          clip(mu[k] + clip(R->sigma * R->z[r * R->A + k], -R->noise_clip, R->noise_clip), -1, 1);
    double q = fmin(ref_q(R, R->target[0], R->next + r * R->D, mu),
                    ref_q(R, R->target[1], R->next + r * R->D, mu));
    y[r] = R->disc[r] != 0 ? R->rew[r] + R->disc[r] * q : R->rew[r];
  }
}

static double ref_critic_loss(const ref_t *R, const double *p, const double *y) {
  double L = 0, a[32];
  for (int r = 0; r < R->B; r++) {
    for (int k = 0; k < R->A; k++) a[k] = R->act[r * R->A + k];
    double d = ref_q(R, p, R->obs + r * R->D, a) - y[r];
    L += (R->weight ? R->weight[r] : 1.0) * d * d;
  }
  return L / R->B;
}

static double ref_actor_loss(const ref_t *R) {
  double L = 0;
  for (int r = 0; r < R->B; r++) {
    double x[64], mu[32];
    for (int k = 0; k < R->D; k++) x[k] = R->obs[r * R->D + k];
    ref_forward(mu, &R->actor_shape, R->actor, x);
    L -= ref_q(R, R->critic[0], R->obs + r * R->D, mu);
  }
  return L / R->B;
}

static void test_reference_and_gradients(void **state) {
  enum { D = 3, A = 2, H1 = 5, H2 = 4, B = 6 };
  frl_td3_config_t c = base_config(D, A, H1, H2, 8);
  c.seed = 41;
  frl_td3_t *t = frl_td3_new(&c);
  assert_non_null(t);
  frl_rng_t rng;
  frl_rng_seed(&rng, 42);
  float *pa = frl_mlp_params(frl_td3_actor(t));
  const size_t NA = frl_mlp_n_params(frl_td3_actor(t));
  for (size_t k = 0; k < NA; k++) pa[k] *= 2.0f; /* actions away from 0, tanh off its linear part */
  float *pta = frl_mlp_params(frl__td3_target_actor(t));
  for (size_t k = 0; k < NA; k++) pta[k] = pa[k] + (float)(0.3 * frl_rng_normal(&rng));
  for (int i = 0; i < 2; i++) {
    float *tp = frl_mlp_params(frl__td3_critic(t, i, true));
    for (size_t k = 0; k < frl_mlp_n_params(frl__td3_critic(t, i, true)); k++)
      tp[k] += (float)(0.2 * frl_rng_normal(&rng));
  }
  float obs[B * D], act[B * A], rew[B], disc[B], next[B * D], weight[B], z[B * A];
  fill_uniform(obs, B * D, -1.5, 1.5, &rng);
  fill_uniform(next, B * D, -1.5, 1.5, &rng);
  fill_uniform(act, B * A, -1, 1, &rng);
  fill_uniform(rew, B, -2, 2, &rng);
  fill_uniform(weight, B, 0.2, 1.0, &rng);
  for (int r = 0; r < B; r++) disc[r] = r == 2 ? 0.0f : 0.97f;
  for (int k = 0; k < B * A; k++) z[k] = (float)(2.0 * frl_rng_normal(&rng)); /* some clip */
  frl__td3_fix_noise(t, z);
  frl_batch_t b = {.B = B,
                   .obs = obs,
                   .action = act,
                   .reward = rew,
                   .discount = disc,
                   .next_obs = next,
                   .weight = weight};
  const size_t NC = frl_mlp_n_params(frl__td3_critic(t, 0, false));
  ref_t R = {.actor_shape = *frl_mlp_shape(frl_td3_actor(t)),
             .critic_shape = *frl_mlp_shape(frl__td3_critic(t, 0, false)),
             .D = D,
             .A = A,
             .B = B,
             .sigma = c.policy_noise,
             .noise_clip = c.noise_clip,
             .obs = obs,
             .act = act,
             .rew = rew,
             .disc = disc,
             .next = next,
             .weight = weight,
             .z = z};
  R.actor = to_double(pa, NA);
  R.actor_target = to_double(pta, NA);
  for (int i = 0; i < 2; i++) {
    R.critic[i] = to_double(frl_mlp_params(frl__td3_critic(t, i, false)), NC);
    R.target[i] = to_double(frl_mlp_params(frl__td3_critic(t, i, true)), NC);
  }
  float td[B];
  frl_td3_stats_t st;
  assert_int_equal(frl__td3_compute(t, &b, true, td, &st), 0);
  double y[B];
  ref_targets(&R, y);
  expect_close("critic1_loss", 0, st.critic1_loss, ref_critic_loss(&R, R.critic[0], y), 1e-5, 1e-4);
  expect_close("critic2_loss", 0, st.critic2_loss, ref_critic_loss(&R, R.critic[1], y), 1e-5, 1e-4);
  expect_close("actor_loss", 0, st.actor_loss, ref_actor_loss(&R), 1e-5, 1e-4);
  for (int r = 0; r < B; r++) {
    double a[A];
    for (int k = 0; k < A; k++) a[k] = act[r * A + k];
    double q = fmin(ref_q(&R, R.critic[0], obs + r * D, a), ref_q(&R, R.critic[1], obs + r * D, a));
    expect_close("td_abs", r, td[r], fabs(y[r] - q), 1e-5, 1e-4);
  }
  const double h = 1e-6;
  const float *ga = frl__td3_grad(t, 0);
  for (size_t k = 0; k < NA; k++) {
    double p0 = R.actor[k];
    R.actor[k] = p0 + h;
    double lp = ref_actor_loss(&R);
    R.actor[k] = p0 - h;
    double lm = ref_actor_loss(&R);
    R.actor[k] = p0;
    expect_close("actor grad", (int)k, ga[k], (lp - lm) / (2 * h), 2e-5, 1e-3);
  }
  for (int i = 0; i < 2; i++) {
    const float *gc = frl__td3_grad(t, 1 + i);
    for (size_t k = 0; k < NC; k++) {
      double p0 = R.critic[i][k];
      R.critic[i][k] = p0 + h;
      double lp = ref_critic_loss(&R, R.critic[i], y);
      R.critic[i][k] = p0 - h;
      double lm = ref_critic_loss(&R, R.critic[i], y);
      R.critic[i][k] = p0;
      expect_close(i ? "critic2 grad" : "critic1 grad", (int)k, gc[k], (lp - lm) / (2 * h), 2e-5,
                   1e-3);
    }
  }
  /* A critic-only step computes the same critic gradients. */
  float *gc0 = malloc(NC * sizeof(float));
  memcpy(gc0, frl__td3_grad(t, 1), NC * sizeof(float));
  assert_int_equal(frl__td3_compute(t, &b, false, td, &st), 0);
  assert_false(st.actor_updated);
  for (size_t k = 0; k < NC; k++)
    expect_close("critic-only grad", (int)k, frl__td3_grad(t, 1)[k], gc0[k], 1e-7, 1e-5);
  free(gc0);
  free(R.actor), free(R.actor_target);
  for (int i = 0; i < 2; i++) free(R.critic[i]), free(R.target[i]);
  frl_td3_destroy(&t);
}

/* ---- delayed updates ------------------------------------------------------------------------- */


static void check_delay(int delay) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 51);
  batch_store_t store;
  frl_batch_t b = random_batch(&store, 12, 3, 2, &rng);
  frl_td3_config_t c = base_config(3, 2, 6, 5, 12);
  c.policy_delay = delay;
  c.tau = 0.1f;
  frl_td3_t *t = frl_td3_new(&c);
  frl_mlp_t *actor = frl_td3_actor(t), *actor_t = frl__td3_target_actor(t);
  assert_memory_equal(frl_mlp_params(actor), frl_mlp_params(actor_t),
                      frl_mlp_n_params(actor) * sizeof(float));
  for (int u = 1; u <= 3 * delay; u++) {
    float *a0 = snapshot(actor), *at0 = snapshot(actor_t),
          *c0 = snapshot(frl__td3_critic(t, 0, false));
    float *ct0 = snapshot(frl__td3_critic(t, 0, true)),
          *ct1 = snapshot(frl__td3_critic(t, 1, true));
    frl_td3_stats_t st;
    assert_int_equal(frl_td3_update(t, &b, NULL, &st), 0);
    const bool actor_step = u % delay == 0; /* the delay-th, 2 delay-th, ... critic step */
    assert_int_equal(st.actor_updated, actor_step);
    assert_false(same_params(frl__td3_critic(t, 0, false), c0)); /* critics: every step */
    assert_int_equal(same_params(actor, a0), !actor_step);
    assert_int_equal(same_params(actor_t, at0), !actor_step);
    assert_int_equal(same_params(frl__td3_critic(t, 0, true), ct0), !actor_step);
    assert_int_equal(same_params(frl__td3_critic(t, 1, true), ct1), !actor_step);
    if (actor_step) {
      /* Polyak, exactly: target + tau (online - target) in float. */
      const float *pa = frl_mlp_params(actor), *pt = frl_mlp_params(actor_t);
      for (size_t k = 0; k < frl_mlp_n_params(actor); k++)
        assert_true(pt[k] == at0[k] + c.tau * (pa[k] - at0[k]));
      const float *pc = frl_mlp_params(frl__td3_critic(t, 0, false));
      const float *pct = frl_mlp_params(frl__td3_critic(t, 0, true));
      for (size_t k = 0; k < frl_mlp_n_params(frl__td3_critic(t, 0, true)); k++)
        assert_true(pct[k] == ct0[k] + c.tau * (pc[k] - ct0[k]));
    }
    free(a0), free(at0), free(c0), free(ct0), free(ct1);
  }
  assert_int_equal(frl_td3_updates(t), 3 * delay);
  frl_td3_destroy(&t);
}

static void test_delayed_updates(void **state) {
  check_delay(2);
  check_delay(3);
  check_delay(1);
}

/* ---- smoothing noise, sampled ---------------------------------------------------------------- */

/* Target policy constant mu' = tanh(bias), both target critics Q = a, online critics Q = 0,
 * reward 5 and discount 1: then td_abs = y = 5 + clip(mu' + noise, -1, 1), which exposes each
 * row's smoothing noise. */
static void sampled_noise(frl_td3_t *t, float mu_bias, float *noise, int B) {
  frl_mlp_t *ta = frl__td3_target_actor(t);
  float *p = frl_mlp_params(ta);
  memset(p, 0, frl_mlp_n_params(ta) * sizeof(float));
  p[frl_mlp_n_params(ta) - 1] = mu_bias;
  for (int i = 0; i < 2; i++) {
    set_linear_critic(frl__td3_critic(t, i, true), 0.0, 1.0, 0.0);
    frl_mlp_t *oc = frl__td3_critic(t, i, false);
    memset(frl_mlp_params(oc), 0, frl_mlp_n_params(oc) * sizeof(float));
  }
  static float obs[512], act[512], rew[512], disc[512], td[512];
  for (int r = 0; r < B; r++) obs[r] = 0.1f, act[r] = 0.0f, rew[r] = 5.0f, disc[r] = 1.0f;
  frl_batch_t b = {
      .B = B, .obs = obs, .action = act, .reward = rew, .discount = disc, .next_obs = obs};
  frl_td3_stats_t st;
  assert_int_equal(frl__td3_compute(t, &b, false, td, &st), 0);
  for (int r = 0; r < B; r++) noise[r] = td[r] - 5.0f;
}

static void test_smoothing_noise(void **state) {
  enum { B = 512 };
  frl_td3_config_t c = base_config(1, 1, 2, 2, B);
  c.policy_noise = 0.4f; /* P(|0.4 z| > 0.5) = P(|z| > 1.25) = 0.211: clipping is frequent */
  c.noise_clip = 0.5f;
  frl_td3_t *t = frl_td3_new(&c);
  float a_next[B];
  sampled_noise(t, 0.0f, a_next, B); /* mu' = 0: a' = noise, never beyond +-1 */
  int clipped = 0;
  double sum = 0, sq = 0;
  for (int r = 0; r < B; r++) {
    float n = a_next[r];
    assert_true(fabsf(n) <= 0.5f + 1e-5f);
    if (fabsf(n) >= 0.5f - 1e-5f) {
      clipped++;
    } else {
      sum += n;
      sq += (double)n * n;
    }
  }
  /* Binomial(512, 0.211): mean 108, sd 9.2; [60, 160] is beyond 5 sd either way. */
  print_message("smoothing: %d of %d clipped at +-0.5\n", clipped, B);
  assert_true(clipped >= 60 && clipped <= 160);
  /* The unclipped draws are a truncated N(0, 0.4^2): variance 0.16 (1 - 2 phi(1.25) 1.25 /
   * (1 - 0.211)) = 0.0866, sd 0.294. */
  int n_in = B - clipped;
  double mean = sum / n_in, sd = sqrt(sq / n_in - mean * mean);
  expect_close("unclipped mean", 0, mean, 0.0, 0.06, 0);
  expect_close("unclipped sd", 0, sd, 0.294, 0.04, 0);
  /* mu' = tanh(2) = 0.964: a' = min(mu' + noise, 1), so a' is never above 1 and often 1. */
  sampled_noise(t, 2.0f, a_next, B);
  int at_one = 0;
  for (int r = 0; r < B; r++) {
    assert_true(a_next[r] <= 1.0f + 1e-5f);
    assert_true(a_next[r] >= (float)tanh(2.0) - 0.5f - 1e-5f);
    at_one += a_next[r] >= 1.0f - 1e-5f;
  }
  assert_true(at_one > B / 4); /* P(noise > 0.036) = 0.46 */
  frl_td3_destroy(&t);
}

/* ---- acting ---------------------------------------------------------------------------------- */

static void test_act(void **state) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 61);
  frl_mlp_shape_t s = frl_td3_actor_shape(3, 2, 8, 8);
  assert_int_equal(s.out_act, FRL_ACT_TANH);
  assert_int_equal(s.sizes[3], 2);
  frl_mlp_t *m = frl_mlp_new(&s, 1, &rng);
  float *p = frl_mlp_params(m);
  memset(p, 0, frl_mlp_n_params(m) * sizeof(float));
  p[frl_mlp_n_params(m) - 2] = 0.2f; /* mu = (tanh 0.2, tanh 3) = (0.197, 0.995) */
  p[frl_mlp_n_params(m) - 1] = 3.0f;
  const float obs[3] = {0.5f, -0.5f, 1.0f};
  float a[2];
  frl_rng_t before = rng;
  frl_td3_act(m, obs, 0.0f, &rng, a);
  expect_close("mu 0", 0, a[0], tanh(0.2), 1e-7, 1e-6);
  expect_close("mu 1", 1, a[1], tanh(3.0), 1e-7, 1e-6);
  assert_memory_equal(&before, &rng, sizeof rng); /* no noise drawn for evaluation */
  enum { N = 20000 };
  double sum = 0, sq = 0;
  int at_one = 0;
  for (int k = 0; k < N; k++) {
    frl_td3_act(m, obs, 0.1f, &rng, a);
    double n = a[0] - tanh(0.2);
    sum += n, sq += n * n;
    assert_true(a[1] <= 1.0f && a[0] >= -1.0f);
    at_one += a[1] == 1.0f;
  }
  /* Gaussian exploration noise of sd 0.1 on dimension 0 (no clipping there). */
  expect_close("noise mean", 0, sum / N, 0.0, 0.003, 0);
  expect_close("noise sd", 0, sqrt(sq / N), 0.1, 0.003, 0);
  /* Dimension 1 sits at 0.995: about P(z > 0.05) = 48% of its actions clip to 1. */
  assert_true(at_one > N / 3 && at_one < 2 * N / 3);
  frl_mlp_destroy(&m);
}

/* ---- refusal --------------------------------------------------------------------------------- */

static void test_rejects_non_finite(void **state) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 71);
  enum { B = 8, D = 3, A = 2 };
  frl_td3_config_t c = base_config(D, A, 6, 5, B);
  frl_td3_t *t = frl_td3_new(&c), *twin = frl_td3_new(&c);
  batch_store_t store;
  frl_batch_t good = random_batch(&store, B, D, A, &rng);
  assert_int_equal(frl_td3_update(t, &good, NULL, NULL), 0);
  assert_int_equal(frl_td3_update(twin, &good, NULL, NULL), 0);
  /* The next step is an actor step (update 2): refusals must not advance the delay either. */
  frl_mlp_t *nets[6] = {frl_td3_actor(t),
                        frl__td3_target_actor(t),
                        frl__td3_critic(t, 0, false),
                        frl__td3_critic(t, 1, false),
                        frl__td3_critic(t, 0, true),
                        frl__td3_critic(t, 1, true)};
  float *saved[6];
  for (int n = 0; n < 6; n++) saved[n] = snapshot(nets[n]);
  for (int poison = 0; poison < 5; poison++) {
    batch_store_t bs = store;
    frl_batch_t bad = {.B = B,
                       .obs = bs.obs,
                       .action = bs.act,
                       .reward = bs.rew,
                       .discount = bs.disc,
                       .next_obs = bs.next,
                       .weight = bs.weight};
    switch (poison) {
      case 0:
        bs.rew[3] = NAN;
        break;
      case 1:
        bs.obs[2] = INFINITY;
        break;
      case 2:
        bs.act[1] = NAN;
        break;
      case 3:
        bs.weight[5] = INFINITY;
        break;
      case 4:
        bs.next[D * 1] = NAN;
        break; /* row 1 is not terminal */
    }
    float td[B] = {-1, -1, -1, -1, -1, -1, -1, -1};
    assert_int_equal(frl_td3_update(t, &bad, td, NULL), -ERANGE);
    for (int n = 0; n < 6; n++) assert_true(same_params(nets[n], saved[n]));
    for (int r = 0; r < B; r++) assert_true(td[r] == -1.0f);
    assert_int_equal(frl_td3_updates(t), 1);
  }
  frl_batch_t wrong = good;
  wrong.B = B + 1;
  assert_int_equal(frl_td3_update(t, &wrong, NULL, NULL), FRL_EDIM);
  wrong.B = 0;
  assert_int_equal(frl_td3_update(t, &wrong, NULL, NULL), FRL_EDIM);
  /* Same next step as a twin that never saw the refusals: actor step, same noise. */
  frl_td3_stats_t st;
  assert_int_equal(frl_td3_update(t, &good, NULL, &st), 0);
  assert_true(st.actor_updated);
  assert_int_equal(frl_td3_update(twin, &good, NULL, NULL), 0);
  for (int n = 0; n < 6; n++) free(saved[n]);
  assert_memory_equal(frl_mlp_params(frl__td3_critic(t, 0, true)),
                      frl_mlp_params(frl__td3_critic(twin, 0, true)),
                      frl_mlp_n_params(frl__td3_critic(t, 0, true)) * sizeof(float));
  assert_memory_equal(frl_mlp_params(frl_td3_actor(t)), frl_mlp_params(frl_td3_actor(twin)),
                      frl_mlp_n_params(frl_td3_actor(t)) * sizeof(float));
  frl_td3_destroy(&twin);
  frl_td3_destroy(&t);
}

static void test_rejects_bad_config(void **state) {
  frl_td3_config_t ok = base_config(3, 2, 8, 8, 16), c;
  frl_td3_t *t = frl_td3_new(&ok);
  assert_non_null(t);
  frl_td3_destroy(&t);
  c = ok, c.obs_dim = 0;
  assert_null(frl_td3_new(&c));
  c = ok, c.act_dim = 0;
  assert_null(frl_td3_new(&c));
  c = ok, c.hidden1 = -4;
  assert_null(frl_td3_new(&c));
  c = ok, c.batch = 0;
  assert_null(frl_td3_new(&c));
  c = ok, c.lr_actor = -1.0f;
  assert_null(frl_td3_new(&c));
  c = ok, c.lr_critic = INFINITY;
  assert_null(frl_td3_new(&c));
  c = ok, c.tau = -0.1f;
  assert_null(frl_td3_new(&c));
  c = ok, c.policy_noise = NAN;
  assert_null(frl_td3_new(&c));
  c = ok, c.noise_clip = -0.5f;
  assert_null(frl_td3_new(&c));
  c = ok, c.policy_delay = 0;
  assert_null(frl_td3_new(&c));
  c = ok, c.grad_clip = NAN;
  assert_null(frl_td3_new(&c));
}

static void test_no_allocation(void **state) {
#if COUNT_ALLOCS
  frl_rng_t rng;
  frl_rng_seed(&rng, 81);
  enum { B = 16, D = 5, A = 3 };
  frl_td3_config_t c = base_config(D, A, 32, 32, B);
  c.grad_clip = 1.0f;
  frl_td3_t *t = frl_td3_new(&c);
  batch_store_t store;
  frl_batch_t b = random_batch(&store, B, D, A, &rng);
  float td[B], action[A];
  frl_td3_stats_t st;
  assert_int_equal(frl_td3_update(t, &b, td, &st), 0);
  assert_int_equal(frl_td3_update(t, &b, td, &st), 0); /* warm-up, both kinds of step */
  frl_td3_act(frl_td3_actor(t), store.obs, 0.1f, &rng, action);
  atomic_store(&g_allocs, 0);
  atomic_store(&g_counting, 1);
  for (int u = 0; u < 20; u++) frl_td3_update(t, &b, td, &st);
  for (int k = 0; k < 100; k++) frl_td3_act(frl_td3_actor(t), store.obs, 0.1f, &rng, action);
  for (int u = 0; u < 10; u++) frl_td3_bc_update(t, &b, NULL, NULL);
  atomic_store(&g_counting, 0);
  assert_int_equal(atomic_load(&g_allocs), 0);
  frl_td3_destroy(&t);
#else
  print_message("SKIP allocation count: ASan owns malloc\n");
  skip();
#endif
}

/* One-step continuous bandit, reward -(a - 0.3)^2, discount 0, uniform behaviour actions. */
static void test_learns_bandit(void **state) {
  enum { B = 64 };
  frl_td3_config_t c = base_config(1, 1, 32, 32, B);
  c.lr_actor = c.lr_critic = 3e-3f;
  c.tau = 0.01f;
  c.seed = 91;
  frl_td3_t *t = frl_td3_new(&c);
  frl_rng_t rng;
  frl_rng_seed(&rng, 92);
  float obs[B], act[B], rew[B], disc[B];
  for (int r = 0; r < B; r++) obs[r] = 1.0f, disc[r] = 0.0f;
  frl_batch_t b = {
      .B = B, .obs = obs, .action = act, .reward = rew, .discount = disc, .next_obs = obs};
  frl_td3_stats_t st;
  for (int u = 0; u < 3000; u++) {
    for (int r = 0; r < B; r++) {
      act[r] = (float)(2.0 * frl_rng_uniform(&rng) - 1.0);
      rew[r] = -(act[r] - 0.3f) * (act[r] - 0.3f);
    }
    assert_int_equal(frl_td3_update(t, &b, NULL, &st), 0);
  }
  float a;
  frl_td3_act(frl_td3_actor(t), obs, 0.0f, &rng, &a);
  print_message("bandit after 3000 updates: action %.4f (optimum 0.3), critic loss %.2e\n", a,
                st.critic1_loss);
  expect_close("bandit action", 0, a, 0.3, 0.05, 0);
  frl_td3_destroy(&t);
}

/* ---- behaviour cloning ----------------------------------------------------------------------- */

/* Weighted mean over rows and dimensions of (mu(s) - clip(a, -1, 1))^2 in double, and the mean
 * |mu(s) - clip(a)|, for an actor parameter block p. */
static double ref_bc_loss(const frl_mlp_shape_t *shape, const double *p, const float *obs,
                          const float *act, const float *weight, int B, int D, int A,
                          double *action_error) {
  double L = 0, err = 0;
  for (int r = 0; r < B; r++) {
    double x[64], mu[64], row = 0;
    for (int k = 0; k < D; k++) x[k] = obs[r * D + k];
    ref_forward(mu, shape, p, x);
    for (int i = 0; i < A; i++) {
      double e = mu[i] - clip(act[r * A + i], -1, 1);
      row += e * e;
      err += fabs(e);
    }
    L += (weight ? weight[r] : 1.0) * row;
  }
  if (action_error) *action_error = err / (B * A);
  return L / ((double)B * A);
}

/* mu(s) = tanh(m1 s + m0) (set_linear_actor): loss, action error and the head bias's gradient
 * sum_b w_b 2 (mu - a)(1 - mu^2) / B by hand, with one target beyond the range clipped to 1. */
static void test_bc_by_hand(void **state) {
  frl_td3_config_t c = base_config(1, 1, 2, 2, 4);
  frl_td3_t *t = frl_td3_new(&c);
  const double m1 = 0.7, m0 = -0.1;
  set_linear_actor(frl_td3_actor(t), m1, m0);
  enum { B = 3 };
  const float obs[B] = {0.5f, -1.5f, 2.5f}, act[B] = {0.2f, -0.9f, 1.4f};
  const float weight[B] = {1.0f, 0.25f, 2.0f};
  double loss = 0, err = 0, g = 0;
  for (int r = 0; r < B; r++) {
    double mu = tanh(m1 * obs[r] + m0), a = r == 2 ? 1.0 : act[r];
    loss += weight[r] * (mu - a) * (mu - a) / B;
    err += fabs(mu - a) / B;
    g += weight[r] * 2.0 * (mu - a) * (1.0 - mu * mu) / B;
  }
  frl_batch_t b = {.B = B, .obs = obs, .action = act, .weight = weight};
  float got_loss, got_err;
  assert_int_equal(frl__td3_bc_compute(t, &b, &got_loss, &got_err), 0);
  expect_close("bc loss", 0, got_loss, loss, 1e-6, 1e-5);
  expect_close("bc action error", 0, got_err, err, 1e-6, 1e-5);
  const size_t n = frl_mlp_n_params(frl_td3_actor(t));
  expect_close("d/d head bias", 0, frl__td3_grad(t, 0)[n - 1], g, 1e-6, 1e-4);
  frl_td3_destroy(&t);
}

/* Every actor gradient against central differences of the reference; the update then moves
 * the actor by Adam's first step, copies it into the target policy exactly, and leaves the
 * critics, their targets and the delay count alone. */
static void test_bc_gradients(void **state) {
  enum { D = 3, A = 2, B = 6 };
  frl_rng_t rng;
  frl_rng_seed(&rng, 141);
  frl_td3_config_t c = base_config(D, A, 5, 4, 8);
  c.seed = 142;
  frl_td3_t *t = frl_td3_new(&c);
  frl_mlp_t *actor = frl_td3_actor(t);
  float *pa = frl_mlp_params(actor);
  const size_t NA = frl_mlp_n_params(actor);
  for (size_t k = 0; k < NA; k++) pa[k] *= 2.0f;
  float obs[B * D], act[B * A], weight[B];
  fill_uniform(obs, B * D, -1.5, 1.5, &rng);
  fill_uniform(act, B * A, -0.95, 0.95, &rng);
  fill_uniform(weight, B, 0.2, 1.0, &rng);
  act[5] = -1.2f;
  frl_batch_t b = {.B = B, .obs = obs, .action = act, .weight = weight};
  double *p = to_double(pa, NA), want_err;
  double want = ref_bc_loss(frl_mlp_shape(actor), p, obs, act, weight, B, D, A, &want_err);
  float loss, err;
  assert_int_equal(frl__td3_bc_compute(t, &b, &loss, &err), 0);
  expect_close("bc loss", 0, loss, want, 1e-6, 1e-5);
  expect_close("bc action error", 0, err, want_err, 1e-6, 1e-5);
  const float *g = frl__td3_grad(t, 0);
  const double h = 1e-6;
  for (size_t k = 0; k < NA; k++) {
    double p0 = p[k];
    p[k] = p0 + h;
    double lp = ref_bc_loss(frl_mlp_shape(actor), p, obs, act, weight, B, D, A, NULL);
    p[k] = p0 - h;
    double lm = ref_bc_loss(frl_mlp_shape(actor), p, obs, act, weight, B, D, A, NULL);
    p[k] = p0;
    expect_close("bc grad", (int)k, g[k], (lp - lm) / (2 * h), 2e-6, 1e-3);
  }
  frl_mlp_t *critics[4] = {frl__td3_critic(t, 0, false), frl__td3_critic(t, 1, false),
                           frl__td3_critic(t, 0, true), frl__td3_critic(t, 1, true)};
  float *saved[4], *before = snapshot(actor);
  for (int n = 0; n < 4; n++) saved[n] = snapshot(critics[n]);
  assert_int_equal(frl_td3_bc_update(t, &b, NULL, NULL), 0);
  for (size_t k = 0; k < NA; k++)
    if (g[k] != 0.0f)
      expect_close("adam step", (int)k, pa[k], before[k] - copysign(c.lr_actor, g[k]), 1e-6, 1e-3);
  assert_memory_equal(frl_mlp_params(frl__td3_target_actor(t)), pa, NA * sizeof(float));
  for (int n = 0; n < 4; n++) {
    assert_true(same_params(critics[n], saved[n]));
    free(saved[n]);
  }
  assert_int_equal(frl_td3_updates(t), 0);
  free(before);
  free(p);
  frl_td3_destroy(&t);
}

/* Cloning a fixed linear expert from 512 demonstrations: the loss falls tenfold and on 200
 * held-out states the policy's action comes within 0.05 of the expert's. Refusals: a
 * non-finite value changes nothing; bad sizes are refused. */
static void test_bc_learns_linear_expert(void **state) {
  enum { D = EXPERT_D, A = EXPERT_A, N = 512, HOLD = 200, B = 64 };
  static float obs[N * D], act[N * A], held[HOLD * D];
  frl_rng_t rng;
  frl_rng_seed(&rng, 151);
  linear_expert_demos(obs, act, N, held, HOLD, &rng);
  frl_td3_config_t c = base_config(D, A, 32, 32, B);
  c.lr_actor = 3e-3f;
  c.seed = 152;
  frl_td3_t *t = frl_td3_new(&c);
  float bo[B * D], ba[B * A], first = NAN, last = NAN;
  double held_err[2];
  for (int phase = 0; phase < 2; phase++) {
    double e = 0;
    for (int r = 0; r < HOLD; r++) {
      float a[A];
      frl_td3_act(frl_td3_actor(t), held + r * D, 0.0f, NULL, a);
      for (int i = 0; i < A; i++) {
        double want = EXPERT_C[i];
        for (int k = 0; k < D; k++) want += EXPERT_W[i][k] * held[r * D + k];
        e += fabs(a[i] - want) / (HOLD * A);
      }
    }
    held_err[phase] = e;
    for (int u = 0; phase == 0 && u < 1500; u++) {
      for (int r = 0; r < B; r++) {
        uint32_t j = frl_rng_below(&rng, N);
        memcpy(bo + r * D, obs + j * D, D * sizeof(float));
        memcpy(ba + r * A, act + j * A, A * sizeof(float));
      }
      frl_batch_t b = {.B = B, .obs = bo, .action = ba};
      float loss;
      assert_int_equal(frl_td3_bc_update(t, &b, &loss, NULL), 0);
      if (u == 0) first = loss;
      last = loss;
    }
  }
  print_message("bc: loss %.5f -> %.5f, held-out action error %.4f -> %.4f\n", first, last,
                held_err[0], held_err[1]);
  assert_true(last < 0.1 * first);
  assert_true(held_err[0] > 0.1);
  assert_true(held_err[1] < 0.05);

  float *saved = snapshot(frl_td3_actor(t));
  static float bad_obs[B * D], bad_act[B * A];
  memcpy(bad_obs, obs, sizeof bad_obs);
  memcpy(bad_act, act, sizeof bad_act);
  frl_batch_t bad = {.B = B, .obs = bad_obs, .action = bad_act};
  bad_obs[7] = NAN;
  assert_int_equal(frl_td3_bc_update(t, &bad, NULL, NULL), -ERANGE);
  bad_obs[7] = 0.0f;
  bad_act[3] = NAN;
  assert_int_equal(frl_td3_bc_update(t, &bad, NULL, NULL), -ERANGE);
  assert_true(same_params(frl_td3_actor(t), saved));
  bad_act[3] = 0.0f;
  bad.B = 0;
  assert_int_equal(frl_td3_bc_update(t, &bad, NULL, NULL), FRL_EDIM);
  bad.B = B + 1;
  assert_int_equal(frl_td3_bc_update(t, &bad, NULL, NULL), FRL_EDIM);
  assert_true(same_params(frl_td3_actor(t), saved));
  free(saved);
  frl_td3_destroy(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_targets_and_losses_by_hand),
      cmocka_unit_test(test_reference_and_gradients),
      cmocka_unit_test(test_delayed_updates),
      cmocka_unit_test(test_smoothing_noise),
      cmocka_unit_test(test_act),
      cmocka_unit_test(test_rejects_non_finite),
      cmocka_unit_test(test_rejects_bad_config),
      cmocka_unit_test(test_no_allocation),
      cmocka_unit_test(test_learns_bandit),
      cmocka_unit_test(test_bc_by_hand),
      cmocka_unit_test(test_bc_gradients),
      cmocka_unit_test(test_bc_learns_linear_expert),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
