/* test_sac.c: SAC's log-prob against its closed form, the density's integral and a chi-square
 * test of the sampler; targets, losses and TD errors on a hand-built network; a float64
 * reference of the whole loss computation written here from sac.h, with central finite
 * differences of it checking every actor and critic gradient; the temperature's direction,
 * exact Polyak averaging, refusal of non-finite batches with nothing changed, no allocation
 * per update or action, and convergence on a one-step continuous bandit. Behaviour cloning:
 * both losses and their head gradients by hand on a tiny policy, every policy gradient against
 * finite differences of a float64 reference, Adam's first step on the policy alone, refusal of
 * non-finite batches, and cloning a linear expert onto held-out states. */
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
#include "sac.h"

#include "alloc_counter.h"
#include "mlp_reference.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static frl_sac_config_t base_config(int obs_dim, int act_dim, int hidden1, int hidden2, int batch) {
  frl_sac_config_t c = {.obs_dim = obs_dim,
                        .act_dim = act_dim,
                        .hidden1 = hidden1,
                        .hidden2 = hidden2,
                        .batch = batch,
                        .lr_actor = 3e-4f,
                        .lr_critic = 3e-4f,
                        .lr_alpha = 3e-4f,
                        .tau = 0.005f,
                        .init_alpha = 1.0f,
                        .auto_alpha = true,
                        .target_entropy = NAN,
                        .grad_clip = 0.0f,
                        .seed = 1};
  return c;
}

/* log N(u; mean, exp(log_std)) + 2 log cosh(u) in long double: the density of a = tanh(u)
 * written directly (log(1 - tanh^2 u) = -2 log cosh u), independent of the library's
 * softplus form. */
static double closed_form_log_prob(const float *mean, const float *log_std, const float *u, int A) {
  long double lp = 0;
  for (int i = 0; i < A; i++) {
    long double s = expl((long double)log_std[i]), z = ((long double)u[i] - mean[i]) / s;
    lp += -0.5L * z * z - logl(s) - 0.5L * logl(2.0L * 3.14159265358979323846264338327950288L) +
          2.0L * logl(coshl((long double)u[i]));
  }
  return (double)lp;
}

/* ---- the policy's density -------------------------------------------------------------------- */

static void test_log_prob_closed_form(void **state) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 11);
  enum { A = 6 };
  for (int t = 0; t < 200; t++) {
    float mean[A], log_std[A], u[A];
    fill_uniform(mean, A, -2, 2, &rng);
    fill_uniform(log_std, A, -4, 1.5, &rng);
    for (int i = 0; i < A; i++) u[i] = mean[i] + expf(log_std[i]) * (float)frl_rng_normal(&rng);
    double got = frl_sac_log_prob(mean, log_std, u, A);
    expect_close("log_prob", t, got, closed_form_log_prob(mean, log_std, u, A), 1e-9, 1e-9);
  }
  /* Far in the tails, where 1 - tanh(u)^2 underflows in float and the naive log(1 - a^2 +
   * 1e-6) is off by orders of magnitude, the stable form is still exact. */
  const float m[1] = {0.0f}, ls[1] = {1.5f};
  const float tails[] = {-30.0f, -15.0f, -8.0f, 8.0f, 15.0f, 30.0f};
  for (size_t k = 0; k < FRL_ARRAY_LEN(tails); k++) {
    double got = frl_sac_log_prob(m, ls, &tails[k], 1);
    assert_true(isfinite(got));
    expect_close("log_prob tail", (int)k, got, closed_form_log_prob(m, ls, &tails[k], 1), 1e-9,
                 1e-12);
  }
}

/* The squashed density integrates to 1 over (-1, 1): a = tanh(u), so p(a) = exp(log pi) at
 * u = atanh(a). Midpoint rule in a; a wrong or missing Jacobian term would be far off. The
 * grid's outermost cells sit at |u| ~ 6.8, so the cases keep the Gaussian's mass beyond that
 * below 1e-4. */
static void test_log_prob_integrates_to_one(void **state) {
  const float cases[][2] = {
      {0.0f, 0.0f}, {0.8f, -0.5f}, {-1.5f, 0.3f}, {0.3f, -2.0f}, {1.2f, -0.1f}};
  enum { N = 400000 };
  for (size_t c = 0; c < FRL_ARRAY_LEN(cases); c++) {
    double sum = 0;
    for (int k = 0; k < N; k++) {
      double a = -1.0 + (k + 0.5) * (2.0 / N);
      float u = (float)atanh(a);
      sum += exp(frl_sac_log_prob(&cases[c][0], &cases[c][1], &u, 1)) * (2.0 / N);
    }
    expect_close("density integral", (int)c, sum, 1.0, 2e-4, 0);
  }
}

/* A 1-D policy network that ignores its observation and outputs (mean, log_std): all weights
 * zero, the head's bias set. */
static frl_mlp_t *constant_policy(float mean, float raw_log_std) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 5);
  frl_mlp_shape_t s = frl_sac_actor_shape(2, 1, 4, 3);
  assert_int_equal(s.sizes[3], 2);
  frl_mlp_t *m = frl_mlp_new(&s, 1, &rng);
  float *p = frl_mlp_params(m);
  memset(p, 0, frl_mlp_n_params(m) * sizeof(float));
  size_t head_b = frl_mlp_n_params(m) - 2;
  p[head_b] = mean;
  p[head_b + 1] = raw_log_std;
  return m;
}

static double std_normal_cdf(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }

/* Chi-square test of frl_sac_act's samples against the squashed Gaussian's bin probabilities
 * P(a0 < a < a1) = Phi((atanh a1 - mean)/std) - Phi((atanh a0 - mean)/std). 20 bins, 19 degrees
 * of freedom: 43.8 is the 0.1% critical value; the seed is fixed. */
static void check_sampler(float mean, float raw_log_std, float want_log_std, uint64_t seed) {
  frl_mlp_t *m = constant_policy(mean, raw_log_std);
  frl_rng_t rng;
  frl_rng_seed(&rng, seed);
  enum { N = 20000, BINS = 20 };
  int count[BINS] = {0};
  const float obs[2] = {0.3f, -0.7f};
  for (int k = 0; k < N; k++) {
    float a;
    frl_sac_act(m, obs, false, &rng, &a);
    assert_true(a >= -1.0f && a <= 1.0f);
    int b = (int)((a + 1.0f) * 0.5f * BINS);
    count[b < 0 ? 0 : b >= BINS ? BINS - 1 : b]++;
  }
  double chi2 = 0, sd = exp(want_log_std);
  for (int b = 0; b < BINS; b++) {
    double a0 = -1.0 + 2.0 * b / BINS, a1 = -1.0 + 2.0 * (b + 1) / BINS;
    double p0 = b == 0 ? 0.0 : std_normal_cdf((atanh(a0) - mean) / sd);
    double p1 = b == BINS - 1 ? 1.0 : std_normal_cdf((atanh(a1) - mean) / sd);
    double e = N * (p1 - p0);
    if (e < 1e-9) {
      assert_int_equal(count[b], 0);
      continue;
    }
    chi2 += (count[b] - e) * (count[b] - e) / e;
  }
  if (chi2 > 43.8)
    fail_msg("sampler chi2 %.1f > 43.8 (mean %g, log_std %g)", chi2, mean, want_log_std);
  /* Deterministic: tanh(mean), no noise drawn. */
  frl_rng_t before = rng;
  float a;
  frl_sac_act(m, obs, true, &rng, &a);
  expect_close("deterministic act", 0, a, tanh(mean), 1e-7, 0);
  assert_memory_equal(&before, &rng, sizeof rng);
  frl_mlp_destroy(&m);
}

static void test_sampler_chi_square(void **state) {
  check_sampler(0.4f, -0.5f, -0.5f, 21);
  check_sampler(-1.0f, 0.2f, 0.2f, 22);
  check_sampler(0.0f, 5.0f, 2.0f, 23); /* raw log_std 5 is clamped to 2 */
}

static void test_sampler_min_log_std(void **state) {
  /* raw log_std -50 is clamped to -20: std 2e-9, so every sample is tanh(mean) in float. */
  frl_mlp_t *m = constant_policy(0.7f, -50.0f);
  frl_rng_t rng;
  frl_rng_seed(&rng, 31);
  const float obs[2] = {1.0f, 2.0f};
  for (int k = 0; k < 1000; k++) {
    float a;
    frl_sac_act(m, obs, false, &rng, &a);
    expect_close("clamped act", k, a, tanh(0.7), 1e-6, 0);
  }
  frl_mlp_destroy(&m);
}

/* ---- targets and losses by hand -------------------------------------------------------------- */

/* obs 1, act 1, hidden 2 and 2. Critic block {2, 2, 2, 1}: W1 = I, b1 = (10, 10) so the hidden
 * units are s + 10 and a + 10 (positive for |s|, |a| < 10), W2 = I, b2 = 0, and the head
 * (c_s, c_a) with bias k - 10 (c_s + c_a): Q(s, a) = c_s s + c_a a + k exactly. */
static void set_linear_critic(frl_mlp_t *m, double cs, double ca, double k) {
  const float p[] = {
      1, 0, 0, 1, 10, 10, 1, 0, 0, 1, 0, 0, (float)cs, (float)ca, (float)(k - 10.0 * (cs + ca))};
  assert_int_equal(frl_mlp_n_params(m), FRL_ARRAY_LEN(p));
  memcpy(frl_mlp_params(m), p, sizeof p);
}

/* Actor block {1, 2, 2, 2}: hidden (s + 10, 1), head rows (m1, m0) with bias -10 m1 and (0, 0)
 * with bias ls: mean = m1 s + m0, log_std = ls. */
static void set_linear_actor(frl_mlp_t *m, double m1, double m0, double ls) {
  const float p[] = {
      1, 0, 10, 1, 1, 0, 0, 1, 0, 0, (float)m1, (float)m0, 0, 0, (float)(-10.0 * m1), (float)ls};
  assert_int_equal(frl_mlp_n_params(m), FRL_ARRAY_LEN(p));
  memcpy(frl_mlp_params(m), p, sizeof p);
}

static double hand_log_prob(double u, double eps, double ls) {
  return -0.5 * eps * eps - ls - 0.5 * log(2 * M_PI) + 2.0 * log(cosh(u));
}

static void test_targets_and_losses_by_hand(void **state) {
  frl_sac_config_t c = base_config(1, 1, 2, 2, 4);
  c.init_alpha = 0.5f;
  frl_sac_t *s = frl_sac_new(&c);
  assert_non_null(s);
  const double cq[2][3] = {{0.5, -1.0, 0.2}, {0.3, 0.8, -0.1}}; /* online (c_s, c_a, k) */
  const double ct[2][3] = {{1.0, 2.0, 0.5}, {-0.5, 1.5, 1.0}};  /* targets */
  for (int i = 0; i < 2; i++) {
    set_linear_critic(frl__sac_critic(s, i, false), cq[i][0], cq[i][1], cq[i][2]);
    set_linear_critic(frl__sac_critic(s, i, true), ct[i][0], ct[i][1], ct[i][2]);
  }
  const double m1 = 0.4, m0 = 0.1, ls = -0.7, alpha = 0.5;
  set_linear_actor(frl_sac_actor(s), m1, m0, ls);
  enum { B = 3 };
  const float obs[B] = {0.5f, -1.0f, 2.0f}, act[B] = {0.2f, -0.6f, 0.9f};
  const float rew[B] = {1.0f, -0.5f, 2.0f}, disc[B] = {0.99f, 0.9801f, 0.0f};
  const float next[B] = {0.3f, 1.5f, 7.0f}, weight[B] = {1.0f, 0.5f, 2.0f};
  const float eps[2 * B] = {0.3f, -1.2f, 0.5f, 0.7f, -0.4f, 1.1f};
  frl__sac_fix_noise(s, eps);
  frl_batch_t b = {.B = B,
                   .obs = obs,
                   .action = act,
                   .reward = rew,
                   .discount = disc,
                   .next_obs = next,
                   .weight = weight};

  double y[B], td[B], closs[2] = {0, 0}, actor = 0, sum_logp = 0, sum_q = 0;
  for (int r = 0; r < B; r++) {
    /* Soft target from a' ~ pi(.|s'): y = r + d (min_j Q_targ_j(s', a') - alpha log pi). */
    double un = m1 * next[r] + m0 + exp(ls) * eps[B + r], an = tanh(un);
    double qn = fmin(ct[0][0] * next[r] + ct[0][1] * an + ct[0][2],
                     ct[1][0] * next[r] + ct[1][1] * an + ct[1][2]);
    y[r] =
        disc[r] != 0 ? rew[r] + disc[r] * (qn - alpha * hand_log_prob(un, eps[B + r], ls)) : rew[r];
    double q[2];
    for (int i = 0; i < 2; i++) {
      q[i] = cq[i][0] * obs[r] + cq[i][1] * act[r] + cq[i][2];
      closs[i] += weight[r] * (q[i] - y[r]) * (q[i] - y[r]) / B;
    }
    td[r] = fabs(y[r] - fmin(q[0], q[1]));
    sum_q += fmin(q[0], q[1]);
    /* Actor: a ~ pi(.|s) with the obs half of the noise. */
    double u = m1 * obs[r] + m0 + exp(ls) * eps[r], a = tanh(u);
    double lp = hand_log_prob(u, eps[r], ls);
    double qpi = fmin(cq[0][0] * obs[r] + cq[0][1] * a + cq[0][2],
                      cq[1][0] * obs[r] + cq[1][1] * a + cq[1][2]);
    actor += (alpha * lp - qpi) / B;
    sum_logp += lp;
  }
  const double target_entropy = -1.0; /* -act_dim */
  double alpha_loss = -log(alpha) * (sum_logp / B + target_entropy);

  float td_got[B];
  frl_sac_stats_t st;
  assert_int_equal(frl_sac_update(s, &b, td_got, &st), 0);
  for (int r = 0; r < B; r++) expect_close("td_abs", r, td_got[r], td[r], 1e-5, 1e-5);
  expect_close("critic1_loss", 0, st.critic1_loss, closs[0], 1e-5, 1e-5);
  expect_close("critic2_loss", 0, st.critic2_loss, closs[1], 1e-5, 1e-5);
  expect_close("actor_loss", 0, st.actor_loss, actor, 1e-5, 1e-5);
  expect_close("alpha_loss", 0, st.alpha_loss, alpha_loss, 1e-5, 1e-5);
  expect_close("alpha", 0, st.alpha, alpha, 1e-7, 1e-6);
  expect_close("entropy", 0, st.entropy, -sum_logp / B, 1e-5, 1e-5);
  expect_close("mean_q", 0, st.mean_q, sum_q / B, 1e-5, 1e-5);
  assert_int_equal(frl_sac_updates(s), 1);
  frl_sac_destroy(&s);
  assert_null(s);
  frl_sac_destroy(NULL);
}

/* ---- float64 reference of the whole computation, and gradients by finite differences --------- */

typedef struct {
  frl_mlp_shape_t actor_shape, critic_shape;
  int D, A, B;
  double *actor, *critic[2], *target[2]; /* parameter blocks */
  double log_alpha, target_entropy;
  const float *obs, *act, *rew, *disc, *next, *weight, *eps;
} ref_t;

/* Policy head in double: a = tanh(mean + exp(clamp(raw)) eps) and log pi (closed form). */
static void ref_policy(const ref_t *R, const double *x, const float *eps, double *a, double *lp) {
  double head[64];
  ref_forward(head, &R->actor_shape, R->actor, x);
  *lp = 0;
  for (int i = 0; i < R->A; i++) {
    double raw = head[R->A + i], ls = raw < -20 ? -20 : raw > 2 ? 2 : raw;
    double u = head[i] + exp(ls) * eps[i];
    a[i] = tanh(u);
    *lp += -0.5 * eps[i] * eps[i] - ls - 0.5 * log(2 * M_PI) + 2.0 * log(cosh(u));
  }
}

static double ref_q(const ref_t *R, const double *p, const float *s, const double *a) {
  double x[64], q;
  for (int k = 0; k < R->D; k++) x[k] = s[k];
  for (int k = 0; k < R->A; k++) x[R->D + k] = a[k];
  ref_forward(&q, &R->critic_shape, p, x);
  return q;
}

static void ref_targets(const ref_t *R, double *y) {
  const double alpha = exp(R->log_alpha);
  for (int r = 0; r < R->B; r++) {
    double x[64], a[32], lp;
    for (int k = 0; k < R->D; k++) x[k] = R->next[r * R->D + k];
    ref_policy(R, x, R->eps + (size_t)(R->B + r) * R->A, a, &lp);
    double q = fmin(ref_q(R, R->target[0], R->next + r * R->D, a),
                    ref_q(R, R->target[1], R->next + r * R->D, a));
    y[r] = R->disc[r] != 0 ? R->rew[r] + R->disc[r] * (q - alpha * lp) : R->rew[r];
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

/* Actor loss and mean log pi over the obs rows. */
static double ref_actor_loss(const ref_t *R, double *mean_logp) {
  const double alpha = exp(R->log_alpha);
  double L = 0, sum_lp = 0;
  for (int r = 0; r < R->B; r++) {
    double x[64], a[32], lp;
    for (int k = 0; k < R->D; k++) x[k] = R->obs[r * R->D + k];
    ref_policy(R, x, R->eps + (size_t)r * R->A, a, &lp);
    double q = fmin(ref_q(R, R->critic[0], R->obs + r * R->D, a),
                    ref_q(R, R->critic[1], R->obs + r * R->D, a));
    L += alpha * lp - q;
    sum_lp += lp;
  }
  if (mean_logp) *mean_logp = sum_lp / R->B;
  return L / R->B;
}

static void test_reference_and_gradients(void **state) {
  enum { D = 3, A = 2, H1 = 5, H2 = 4, B = 6 };
  frl_sac_config_t c = base_config(D, A, H1, H2, 8);
  c.init_alpha = 0.7f;
  c.seed = 41;
  frl_sac_t *s = frl_sac_new(&c);
  assert_non_null(s);
  frl_rng_t rng;
  frl_rng_seed(&rng, 42);
  frl_mlp_t *actor = frl_sac_actor(s);
  /* Scale the actor up so its outputs are not near zero, and push log_std output 0 above the
   * clamp (raw ~ 4 > 2): its gradient must vanish there, which the differences also see. */
  float *pa = frl_mlp_params(actor);
  const size_t NA = frl_mlp_n_params(actor);
  for (size_t k = 0; k < NA; k++) pa[k] *= 2.0f;
  pa[NA - A] = 4.0f;
  /* Targets differ from the online critics. */
  for (int i = 0; i < 2; i++) {
    float *t = frl_mlp_params(frl__sac_critic(s, i, true));
    for (size_t k = 0; k < frl_mlp_n_params(frl__sac_critic(s, i, true)); k++)
      t[k] += (float)(0.2 * frl_rng_normal(&rng));
  }
  float obs[B * D], act[B * A], rew[B], disc[B], next[B * D], weight[B], eps[2 * B * A];
  fill_uniform(obs, B * D, -1.5, 1.5, &rng);
  fill_uniform(next, B * D, -1.5, 1.5, &rng);
  fill_uniform(act, B * A, -1, 1, &rng);
  fill_uniform(rew, B, -2, 2, &rng);
  fill_uniform(weight, B, 0.2, 1.0, &rng);
  for (int r = 0; r < B; r++) disc[r] = r == 2 ? 0.0f : 0.97f;
  for (int k = 0; k < 2 * B * A; k++) eps[k] = (float)frl_rng_normal(&rng);
  frl__sac_fix_noise(s, eps);
  frl_batch_t b = {.B = B,
                   .obs = obs,
                   .action = act,
                   .reward = rew,
                   .discount = disc,
                   .next_obs = next,
                   .weight = weight};

  ref_t R = {.actor_shape = *frl_mlp_shape(actor),
             .critic_shape = *frl_mlp_shape(frl__sac_critic(s, 0, false)),
             .D = D,
             .A = A,
             .B = B,
             .log_alpha = log((double)c.init_alpha),
             .target_entropy = -A,
             .obs = obs,
             .act = act,
             .rew = rew,
             .disc = disc,
             .next = next,
             .weight = weight,
             .eps = eps};
  R.actor = to_double(pa, NA);
  const size_t NC = frl_mlp_n_params(frl__sac_critic(s, 0, false));
  for (int i = 0; i < 2; i++) {
    R.critic[i] = to_double(frl_mlp_params(frl__sac_critic(s, i, false)), NC);
    R.target[i] = to_double(frl_mlp_params(frl__sac_critic(s, i, true)), NC);
  }

  float td[B];
  frl_sac_stats_t st;
  assert_int_equal(frl__sac_compute(s, &b, td, &st), 0);

  double y[B], mean_logp;
  ref_targets(&R, y);
  double closs[2] = {ref_critic_loss(&R, R.critic[0], y), ref_critic_loss(&R, R.critic[1], y)};
  double aloss = ref_actor_loss(&R, &mean_logp);
  expect_close("critic1_loss", 0, st.critic1_loss, closs[0], 1e-5, 1e-4);
  expect_close("critic2_loss", 0, st.critic2_loss, closs[1], 1e-5, 1e-4);
  expect_close("actor_loss", 0, st.actor_loss, aloss, 1e-5, 1e-4);
  expect_close("entropy", 0, st.entropy, -mean_logp, 1e-5, 1e-4);
  expect_close("alpha_loss", 0, st.alpha_loss, -R.log_alpha * (mean_logp + R.target_entropy), 1e-5,
               1e-4);
  for (int r = 0; r < B; r++) {
    double a[A], q[2];
    for (int k = 0; k < A; k++) a[k] = act[r * A + k];
    for (int i = 0; i < 2; i++) q[i] = ref_q(&R, R.critic[i], obs + r * D, a);
    expect_close("td_abs", r, td[r], fabs(y[r] - fmin(q[0], q[1])), 1e-5, 1e-4);
  }

  /* Central differences in double: h = 1e-6 keeps truncation far below float resolution and,
   * for these weights, moves no ReLU input or min() across its kink. */
  const double h = 1e-6;
  const float *ga = frl__sac_grad(s, 0);
  int clamped_zero = 0;
  for (size_t k = 0; k < NA; k++) {
    double p0 = R.actor[k];
    R.actor[k] = p0 + h;
    double lp = ref_actor_loss(&R, NULL);
    R.actor[k] = p0 - h;
    double lm = ref_actor_loss(&R, NULL);
    R.actor[k] = p0;
    double want = (lp - lm) / (2 * h);
    expect_close("actor grad", (int)k, ga[k], want, 2e-5, 1e-3);
    if (k == NA - A) {
      assert_true(ga[k] == 0.0f); /* the clamped log_std's bias */
      clamped_zero = 1;
    }
  }
  assert_true(clamped_zero);
  for (int i = 0; i < 2; i++) {
    const float *gc = frl__sac_grad(s, 1 + i);
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
  /* d/dlog alpha of -log alpha (mean log pi + target entropy). */
  expect_close("log_alpha grad", 0, frl__sac_grad(s, 3)[0], -(mean_logp + R.target_entropy), 1e-5,
               1e-4);

  free(R.actor);
  for (int i = 0; i < 2; i++) free(R.critic[i]), free(R.target[i]);
  frl_sac_destroy(&s);
}

/* ---- temperature, Polyak targets, refusal ---------------------------------------------------- */


/* Sets the actor's log_std head to a constant (weights 0, bias ls). */
static void set_log_std(frl_sac_t *s, float ls) {
  frl_mlp_t *m = frl_sac_actor(s);
  const frl_mlp_shape_t *sh = frl_mlp_shape(m);
  const int A = sh->sizes[3] / 2, H = sh->sizes[2];
  float *p = frl_mlp_params(m) + frl_mlp_n_params(m) - (size_t)2 * A * (H + 1);
  for (int i = A; i < 2 * A; i++) {
    for (int j = 0; j < H; j++) p[(size_t)i * H + j] = 0.0f;
    p[(size_t)2 * A * H + i] = ls;
  }
}

static void test_alpha_direction(void **state) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 51);
  batch_store_t store;
  frl_batch_t b = random_batch(&store, 16, 3, 2, &rng);
  /* Entropy far below the target -2 (std e^-6): alpha must grow; far above (std 1, entropy of
   * tanh(N(m, 1)) is about -0.9 per dimension... still above -1 per dimension): alpha must
   * shrink. Several steps, each in the same direction. */
  const float log_stds[2] = {-6.0f, 0.0f};
  for (int k = 0; k < 2; k++) {
    frl_sac_config_t c = base_config(3, 2, 8, 8, 16);
    c.init_alpha = 0.3f;
    c.lr_alpha = 1e-2f;
    frl_sac_t *s = frl_sac_new(&c);
    set_log_std(s, log_stds[k]);
    float prev = frl_sac_alpha(s);
    expect_close("init alpha", k, prev, 0.3, 1e-7, 1e-6);
    for (int u = 0; u < 5; u++) {
      frl_sac_stats_t st;
      assert_int_equal(frl_sac_update(s, &b, NULL, &st), 0);
      float now = frl_sac_alpha(s);
      if (k == 0) {
        assert_true(st.entropy < -2.0f);
        assert_true(now > prev);
      } else {
        assert_true(st.entropy > -2.0f);
        assert_true(now < prev);
      }
      set_log_std(s, log_stds[k]); /* keep the entropy where it was */
      prev = now;
    }
    frl_sac_destroy(&s);
  }
  /* Fixed temperature: never changes, and reports no loss. */
  frl_sac_config_t c = base_config(3, 2, 8, 8, 16);
  c.auto_alpha = false;
  c.init_alpha = 0.2f;
  frl_sac_t *s = frl_sac_new(&c);
  for (int u = 0; u < 3; u++) {
    frl_sac_stats_t st;
    assert_int_equal(frl_sac_update(s, &b, NULL, &st), 0);
    assert_true(st.alpha_loss == 0.0f);
    assert_true(frl_sac_alpha(s) == expf(logf(0.2f)));
  }
  frl_sac_destroy(&s);
  /* A configured target entropy replaces -act_dim. */
  c = base_config(3, 2, 8, 8, 16);
  c.target_entropy = 5.0f; /* above any squashed policy's entropy: alpha must grow */
  s = frl_sac_new(&c);
  float a0 = frl_sac_alpha(s);
  assert_int_equal(frl_sac_update(s, &b, NULL, NULL), 0);
  assert_true(frl_sac_alpha(s) > a0);
  frl_sac_destroy(&s);
}

static void test_target_polyak(void **state) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 61);
  batch_store_t store;
  frl_batch_t b = random_batch(&store, 10, 3, 2, &rng);
  const float taus[3] = {0.005f, 0.0f, 1.0f};
  for (int t = 0; t < 3; t++) {
    frl_sac_config_t c = base_config(3, 2, 6, 5, 10);
    c.tau = taus[t];
    c.lr_critic = 1e-2f;
    frl_sac_t *s = frl_sac_new(&c);
    /* Targets start as exact copies. */
    for (int i = 0; i < 2; i++)
      assert_memory_equal(frl_mlp_params(frl__sac_critic(s, i, true)),
                          frl_mlp_params(frl__sac_critic(s, i, false)),
                          frl_mlp_n_params(frl__sac_critic(s, i, false)) * sizeof(float));
    for (int u = 0; u < 3; u++) {
      float *before[2];
      for (int i = 0; i < 2; i++) before[i] = snapshot(frl__sac_critic(s, i, true));
      assert_int_equal(frl_sac_update(s, &b, NULL, NULL), 0);
      for (int i = 0; i < 2; i++) {
        const float *tp = frl_mlp_params(frl__sac_critic(s, i, true));
        const float *op = frl_mlp_params(frl__sac_critic(s, i, false));
        for (size_t k = 0; k < frl_mlp_n_params(frl__sac_critic(s, i, true)); k++) {
          /* theta_targ <- theta_targ + tau (theta - theta_targ), the float expression once;
           * tau = 1 is an exact copy. */
          float want = taus[t] == 1.0f ? op[k] : before[i][k] + taus[t] * (op[k] - before[i][k]);
          if (tp[k] != want)
            fail_msg("tau %g target %d [%zu]: %.9g != %.9g", taus[t], i, k, tp[k], want);
        }
        free(before[i]);
      }
    }
    frl_sac_destroy(&s);
  }
}

static void expect_unchanged(frl_sac_t *s, float *const saved[5], float alpha, uint64_t updates) {
  frl_mlp_t *nets[5] = {frl_sac_actor(s), frl__sac_critic(s, 0, false),
                        frl__sac_critic(s, 1, false), frl__sac_critic(s, 0, true),
                        frl__sac_critic(s, 1, true)};
  for (int n = 0; n < 5; n++)
    assert_memory_equal(frl_mlp_params(nets[n]), saved[n],
                        frl_mlp_n_params(nets[n]) * sizeof(float));
  assert_true(frl_sac_alpha(s) == alpha);
  assert_int_equal(frl_sac_updates(s), updates);
}

static void test_rejects_non_finite(void **state) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 71);
  enum { B = 8, D = 3, A = 2 };
  frl_sac_config_t c = base_config(D, A, 6, 5, B);
  frl_sac_t *s = frl_sac_new(&c), *twin = frl_sac_new(&c);
  batch_store_t store;
  frl_batch_t good = random_batch(&store, B, D, A, &rng);
  /* One good step first, so Adam's moments and the targets are not trivially zero/equal. */
  assert_int_equal(frl_sac_update(s, &good, NULL, NULL), 0);
  assert_int_equal(frl_sac_update(twin, &good, NULL, NULL), 0);
  frl_mlp_t *nets[5] = {frl_sac_actor(s), frl__sac_critic(s, 0, false),
                        frl__sac_critic(s, 1, false), frl__sac_critic(s, 0, true),
                        frl__sac_critic(s, 1, true)};
  float *saved[5];
  for (int n = 0; n < 5; n++) saved[n] = snapshot(nets[n]);
  const float alpha = frl_sac_alpha(s);

  for (int poison = 0; poison < 6; poison++) {
    batch_store_t bad_store = store;
    frl_batch_t bad = good;
    bad.obs = bad_store.obs, bad.action = bad_store.act, bad.reward = bad_store.rew;
    bad.discount = bad_store.disc, bad.next_obs = bad_store.next, bad.weight = bad_store.weight;
    switch (poison) {
      case 0:
        bad_store.rew[3] = INFINITY;
        break;
      case 1:
        bad_store.obs[1] = NAN;
        break;
      case 2:
        bad_store.act[5] = NAN;
        break;
      case 3:
        bad_store.weight[0] = NAN;
        break;
      case 4:
        bad_store.next[D * 1] = NAN;
        break; /* row 1 is not terminal */
      case 5:
        bad_store.disc[2] = INFINITY;
        break;
    }
    float td[B] = {-1, -1, -1, -1, -1, -1, -1, -1};
    frl_sac_stats_t st = {.actor_loss = -7.0f};
    assert_int_equal(frl_sac_update(s, &bad, td, &st), -ERANGE);
    expect_unchanged(s, saved, alpha, 1);
    for (int r = 0; r < B; r++) assert_true(td[r] == -1.0f); /* outputs untouched */
    assert_true(st.actor_loss == -7.0f);
  }
  /* A NaN next observation at a terminal row (discount 0) does not matter: y = r there. */
  batch_store_t term = store;
  frl_batch_t tb = good;
  tb.next_obs = term.next;
  term.next[D * 4] = NAN; /* row 4 is terminal */
  assert_int_equal(good.discount[4], 0.0f);
  /* Dimension errors. */
  frl_batch_t wrong = good;
  wrong.B = 0;
  assert_int_equal(frl_sac_update(s, &wrong, NULL, NULL), FRL_EDIM);
  wrong.B = B + 1;
  assert_int_equal(frl_sac_update(s, &wrong, NULL, NULL), FRL_EDIM);
  expect_unchanged(s, saved, alpha, 1);
  /* The refusals left the noise stream alone too: the next good step matches a twin that
   * never saw them, bit for bit. */
  assert_int_equal(frl_sac_update(s, &good, NULL, NULL), 0);
  assert_int_equal(frl_sac_update(twin, &good, NULL, NULL), 0);
  assert_memory_equal(frl_mlp_params(frl_sac_actor(s)), frl_mlp_params(frl_sac_actor(twin)),
                      frl_mlp_n_params(frl_sac_actor(s)) * sizeof(float));
  assert_int_equal(frl_sac_update(s, &tb, NULL, NULL), 0);
  for (int n = 0; n < 5; n++) free(saved[n]);
  frl_sac_destroy(&twin);
  frl_sac_destroy(&s);
}

static void test_rejects_bad_config(void **state) {
  frl_sac_config_t ok = base_config(3, 2, 8, 8, 16), c;
  frl_sac_t *s = frl_sac_new(&ok);
  assert_non_null(s);
  frl_sac_destroy(&s);
  c = ok, c.obs_dim = 0;
  assert_null(frl_sac_new(&c));
  c = ok, c.act_dim = -1;
  assert_null(frl_sac_new(&c));
  c = ok, c.hidden2 = 0;
  assert_null(frl_sac_new(&c));
  c = ok, c.batch = 0;
  assert_null(frl_sac_new(&c));
  c = ok, c.batch = 1 << 20;
  assert_null(frl_sac_new(&c));
  c = ok, c.lr_critic = 0.0f;
  assert_null(frl_sac_new(&c));
  c = ok, c.lr_actor = NAN;
  assert_null(frl_sac_new(&c));
  c = ok, c.tau = 1.5f;
  assert_null(frl_sac_new(&c));
  c = ok, c.init_alpha = 0.0f;
  assert_null(frl_sac_new(&c));
  c = ok, c.target_entropy = -INFINITY;
  assert_null(frl_sac_new(&c));
  c = ok, c.grad_clip = NAN;
  assert_null(frl_sac_new(&c));
}

/* ---- no allocation per update or action ------------------------------------------------------ */

static void test_no_allocation(void **state) {
#if COUNT_ALLOCS
  frl_rng_t rng;
  frl_rng_seed(&rng, 81);
  enum { B = 16, D = 5, A = 3 };
  frl_sac_config_t c = base_config(D, A, 32, 32, B);
  c.grad_clip = 1.0f;
  frl_sac_t *s = frl_sac_new(&c);
  batch_store_t store;
  frl_batch_t b = random_batch(&store, B, D, A, &rng);
  float td[B], action[A];
  frl_sac_stats_t st;
  assert_int_equal(frl_sac_update(s, &b, td, &st), 0); /* warm-up: BLAS buffers etc. */
  frl_sac_act(frl_sac_actor(s), store.obs, false, &rng, action);
  atomic_store(&g_allocs, 0);
  atomic_store(&g_counting, 1);
  for (int u = 0; u < 20; u++) frl_sac_update(s, &b, td, &st);
  for (int k = 0; k < 100; k++) frl_sac_act(frl_sac_actor(s), store.obs, k % 2 == 0, &rng, action);
  for (int u = 0; u < 10; u++) frl_sac_bc_update(s, &b, u % 2 ? FRL_SAC_BC_MSE : FRL_SAC_BC_NLL,
                                                 NULL, NULL);
  atomic_store(&g_counting, 0);
  assert_int_equal(atomic_load(&g_allocs), 0);
  /* The counter itself works. */
  atomic_store(&g_counting, 1);
  free(malloc(16));
  atomic_store(&g_counting, 0);
  assert_int_equal(atomic_load(&g_allocs), 1);
  frl_sac_destroy(&s);
#else
  print_message("SKIP allocation count: ASan owns malloc\n");
  skip();
#endif
}

/* ---- learning -------------------------------------------------------------------------------- */

/* A one-step continuous bandit: reward -(a - 0.3)^2, discount 0, actions sampled uniformly (any
 * behaviour policy will do off-policy). The critic learns the parabola, and the policy's mode
 * tanh(mean) moves to its peak at 0.3 while the temperature brings the entropy to -1. */
static void test_learns_bandit(void **state) {
  enum { B = 64 };
  frl_sac_config_t c = base_config(1, 1, 32, 32, B);
  c.lr_actor = c.lr_critic = 3e-3f;
  c.lr_alpha = 1e-2f;
  c.init_alpha = 0.1f;
  c.tau = 0.01f;
  c.seed = 91;
  frl_sac_t *s = frl_sac_new(&c);
  frl_rng_t rng;
  frl_rng_seed(&rng, 92);
  float obs[B], act[B], rew[B], disc[B], td[B];
  for (int r = 0; r < B; r++) obs[r] = 1.0f, disc[r] = 0.0f;
  frl_batch_t b = {.B = B,
                   .obs = obs,
                   .action = act,
                   .reward = rew,
                   .discount = disc,
                   .next_obs = obs,
                   .weight = NULL};
  frl_sac_stats_t st;
  for (int u = 0; u < 3000; u++) {
    for (int r = 0; r < B; r++) {
      act[r] = (float)(2.0 * frl_rng_uniform(&rng) - 1.0);
      rew[r] = -(act[r] - 0.3f) * (act[r] - 0.3f);
    }
    assert_int_equal(frl_sac_update(s, &b, td, &st), 0);
  }
  float a;
  frl_sac_act(frl_sac_actor(s), obs, true, &rng, &a);
  print_message(
      "bandit after 3000 updates: action %.4f (optimum 0.3), alpha %.4f, entropy %.3f, "
      "critic loss %.2e\n",
      a, st.alpha, st.entropy, st.critic1_loss);
  expect_close("bandit action", 0, a, 0.3, 0.05, 0);
  /* Stochastic actions concentrate around it too. */
  double mean = 0;
  for (int k = 0; k < 1000; k++) {
    frl_sac_act(frl_sac_actor(s), obs, false, &rng, &a);
    mean += a / 1000.0;
  }
  expect_close("bandit mean action", 0, mean, 0.3, 0.07, 0);
  frl_sac_destroy(&s);
}

/* The benchmarked size runs (obs 17, act 6, 256-256, batch 256), and the policy shape. */
static void test_full_size(void **state) {
  frl_sac_config_t c = base_config(17, 6, 256, 256, 256);
  frl_sac_t *s = frl_sac_new(&c);
  assert_non_null(s);
  frl_mlp_shape_t as = frl_sac_actor_shape(17, 6, 256, 256);
  const frl_mlp_shape_t *got = frl_mlp_shape(frl_sac_actor(s));
  assert_int_equal(got->n_layers, 3);
  for (int l = 0; l <= 3; l++) assert_int_equal(got->sizes[l], as.sizes[l]);
  assert_int_equal(as.sizes[3], 12);
  static float obs[256 * 17], next[256 * 17], act[256 * 6], rew[256], disc[256], td[256];
  frl_rng_t rng;
  frl_rng_seed(&rng, 101);
  fill_uniform(obs, 256 * 17, -1, 1, &rng);
  fill_uniform(next, 256 * 17, -1, 1, &rng);
  fill_uniform(act, 256 * 6, -1, 1, &rng);
  fill_uniform(rew, 256, -1, 1, &rng);
  for (int r = 0; r < 256; r++) disc[r] = 0.99f;
  frl_batch_t b = {
      .B = 256, .obs = obs, .action = act, .reward = rew, .discount = disc, .next_obs = next};
  for (int u = 0; u < 3; u++) {
    frl_sac_stats_t st;
    assert_int_equal(frl_sac_update(s, &b, td, &st), 0);
    assert_true(isfinite(st.critic1_loss) && isfinite(st.actor_loss) && isfinite(st.entropy));
  }
  assert_int_equal(frl_sac_updates(s), 3);
  frl_sac_destroy(&s);
}

/* ---- behaviour cloning ----------------------------------------------------------------------- */

/* -log pi(a|s) of the squashed Gaussian at a demonstrated action, in double and written from
 * the density itself: u = atanh(a) (a clipped to +-(1 - 1e-6)), -log N(u; mean, std) and the
 * Jacobian as log(1 - tanh^2 u) = -2 log cosh u. MSE: (tanh(mean) - clip(a, -1, 1))^2. */
static double ref_bc_term(int kind, double mean, double raw_ls, double a) {
  if (kind == FRL_SAC_BC_MSE) {
    double t = tanh(mean), target = a < -1 ? -1 : a > 1 ? 1 : a;
    return (t - target) * (t - target);
  }
  const double bound = 1.0 - 1e-6;
  double ac = a < -bound ? -bound : a > bound ? bound : a;
  double ls = raw_ls < -20 ? -20 : raw_ls > 2 ? 2 : raw_ls, u = atanh(ac);
  double z = (u - mean) / exp(ls);
  return 0.5 * z * z + ls + 0.5 * log(2 * M_PI) - 2.0 * log(cosh(u));
}

/* The batch's weighted mean loss (over rows, and for MSE over action dimensions) and mean
 * |tanh(mean) - clip(a)| for an actor parameter block p. */
static double ref_bc_loss(const frl_mlp_shape_t *shape, const double *p, int kind, const float *obs,
                          const float *act, const float *weight, int B, int D, int A,
                          double *action_error) {
  double L = 0, err = 0;
  for (int r = 0; r < B; r++) {
    double x[64], head[64], row = 0;
    for (int k = 0; k < D; k++) x[k] = obs[r * D + k];
    ref_forward(head, shape, p, x);
    for (int i = 0; i < A; i++) {
      double a = act[r * A + i];
      row += ref_bc_term(kind, head[i], head[A + i], a) / (kind == FRL_SAC_BC_MSE ? A : 1);
      err += fabs(tanh(head[i]) - (a < -1 ? -1 : a > 1 ? 1 : a));
    }
    L += (weight ? weight[r] : 1.0) * row;
  }
  if (action_error) *action_error = err / (B * A);
  return L / B;
}

/* The tiny policy of set_linear_actor: mean = m1 s + m0, log_std = ls. The loss, the action
 * error and the gradients of the head's two biases (d/dmean and d/dlog_std summed over rows)
 * against the formulas by hand, for both losses; a demonstrated action on the boundary (-1) is
 * clipped. */
static void test_bc_by_hand(void **state) {
  const double m1 = 0.5, m0 = -0.2, ls = -0.7, sd = exp(ls);
  enum { B = 3 };
  const float obs[B] = {0.4f, -1.2f, 2.0f}, act[B] = {0.3f, -1.0f, 0.95f};
  const float weight[B] = {1.0f, 0.5f, 2.0f};
  frl_batch_t b = {.B = B, .obs = obs, .action = act, .weight = weight};
  for (int kind = 0; kind < 2; kind++) {
    frl_sac_config_t c = base_config(1, 1, 2, 2, 4);
    frl_sac_t *s = frl_sac_new(&c);
    set_linear_actor(frl_sac_actor(s), m1, m0, ls);
    double loss = 0, err = 0, g_mean = 0, g_ls = 0;
    for (int r = 0; r < B; r++) {
      double mean = m1 * obs[r] + m0, a = act[r], w = weight[r];
      err += fabs(tanh(mean) - a) / B;
      if (kind == FRL_SAC_BC_NLL) {
        double ac = r == 1 ? -(1.0 - 1e-6) : a, u = atanh(ac), z = (u - mean) / sd;
        loss += w * (0.5 * z * z + ls + 0.5 * log(2 * M_PI) + log(1.0 - ac * ac)) / B;
        /* The same from the library's log-density (frl_sac_log_prob, the RL path's formula). */
        float fm = (float)mean, fls = (float)ls, fu = (float)u;
        expect_close("-log pi", r, -frl_sac_log_prob(&fm, &fls, &fu, 1),
                     0.5 * z * z + ls + 0.5 * log(2 * M_PI) + log(1.0 - ac * ac), 1e-4, 1e-5);
        g_mean += w * (-z / sd) / B;
        g_ls += w * (1.0 - z * z) / B;
      } else {
        double t = tanh(mean);
        loss += w * (t - a) * (t - a) / B;
        g_mean += w * 2.0 * (t - a) * (1.0 - t * t) / B;
      }
    }
    float got_loss = NAN, got_err = NAN;
    assert_int_equal(frl__sac_bc_compute(s, &b, kind, &got_loss, &got_err), 0);
    expect_close(kind ? "mse loss" : "nll loss", 0, got_loss, loss, 1e-5, 1e-5);
    expect_close("action error", kind, got_err, err, 1e-6, 1e-5);
    const float *g = frl__sac_grad(s, 0);
    const size_t n = frl_mlp_n_params(frl_sac_actor(s));
    expect_close("d/d mean bias", kind, g[n - 2], g_mean, 1e-5, 1e-4);
    expect_close("d/d log_std bias", kind, g[n - 1], g_ls, 1e-5, 1e-4);
    frl_sac_destroy(&s);
  }
}

/* Every policy gradient of both losses against central differences of the float64 reference,
 * on a random network whose first log-std output sits above its clamp (zero gradient there),
 * with weights, a demonstrated action on the boundary and one beyond it. The update then moves
 * the policy alone: critics, targets, temperature and the update count stay. */
static void test_bc_gradients(void **state) {
  enum { D = 3, A = 2, H1 = 5, H2 = 4, B = 6 };
  frl_rng_t rng;
  frl_rng_seed(&rng, 111);
  float obs[B * D], act[B * A], weight[B];
  fill_uniform(obs, B * D, -1.5, 1.5, &rng);
  fill_uniform(act, B * A, -0.95, 0.95, &rng);
  fill_uniform(weight, B, 0.2, 1.0, &rng);
  act[2] = 1.0f;   /* a saturated command */
  act[7] = -1.3f;  /* outside the range: clipped */
  frl_batch_t b = {.B = B, .obs = obs, .action = act, .weight = weight};
  for (int kind = 0; kind < 2; kind++) {
    frl_sac_config_t c = base_config(D, A, H1, H2, 8);
    c.seed = 112 + (uint64_t)kind;
    frl_sac_t *s = frl_sac_new(&c);
    frl_mlp_t *actor = frl_sac_actor(s);
    float *pa = frl_mlp_params(actor);
    const size_t NA = frl_mlp_n_params(actor);
    for (size_t k = 0; k < NA; k++) pa[k] *= 2.0f;
    pa[NA - A] = 4.0f; /* log_std output 0: raw ~ 4 > 2, clamped */
    double *p = to_double(pa, NA);
    double want_err, want = ref_bc_loss(frl_mlp_shape(actor), p, kind, obs, act, weight, B, D, A,
                                        &want_err);
    float loss, err;
    assert_int_equal(frl__sac_bc_compute(s, &b, kind, &loss, &err), 0);
    expect_close("bc loss", kind, loss, want, 1e-5, 1e-5);
    expect_close("bc action error", kind, err, want_err, 1e-6, 1e-5);
    const float *g = frl__sac_grad(s, 0);
    double scale = 0;
    for (size_t k = 0; k < NA; k++) scale = fmax(scale, fabs(g[k]));
    assert_true(scale > 0);
    const double h = 1e-6;
    for (size_t k = 0; k < NA; k++) {
      double p0 = p[k];
      p[k] = p0 + h;
      double lp = ref_bc_loss(frl_mlp_shape(actor), p, kind, obs, act, weight, B, D, A, NULL);
      p[k] = p0 - h;
      double lm = ref_bc_loss(frl_mlp_shape(actor), p, kind, obs, act, weight, B, D, A, NULL);
      p[k] = p0;
      expect_close(kind ? "mse grad" : "nll grad", (int)k, g[k], (lp - lm) / (2 * h),
                   1e-5 * scale, 1e-3);
    }
    assert_true(g[NA - A] == 0.0f); /* the clamped log_std's bias */
    if (kind == FRL_SAC_BC_MSE) assert_true(g[NA - 1] == 0.0f); /* MSE leaves log_std alone */

    frl_mlp_t *others[4] = {frl__sac_critic(s, 0, false), frl__sac_critic(s, 1, false),
                            frl__sac_critic(s, 0, true), frl__sac_critic(s, 1, true)};
    float *saved[4];
    for (int n = 0; n < 4; n++) saved[n] = snapshot(others[n]);
    float *before = snapshot(actor);
    const float alpha = frl_sac_alpha(s);
    assert_int_equal(frl_sac_bc_update(s, &b, kind, NULL, NULL), 0);
    for (int n = 0; n < 4; n++) {
      assert_memory_equal(frl_mlp_params(others[n]), saved[n],
                          frl_mlp_n_params(others[n]) * sizeof(float));
      free(saved[n]);
    }
    /* Adam's first step moves every parameter with a non-zero gradient by lr (mhat/sqrt(vhat)
     * = sign g), against the gradient. */
    for (size_t k = 0; k < NA; k++) {
      if (g[k] == 0.0f) {
        assert_true(pa[k] == before[k]);
      } else {
        expect_close("adam step", (int)k, pa[k], before[k] - copysign(c.lr_actor, g[k]), 1e-6,
                     1e-3);
      }
    }
    assert_true(frl_sac_alpha(s) == alpha);
    assert_int_equal(frl_sac_updates(s), 0);
    free(before);
    free(p);
    frl_sac_destroy(&s);
  }
}

/* Cloning a fixed linear expert a = W s + c from 512 demonstrations: the loss falls and on 200
 * held-out states the deterministic action tanh(mean) comes within 0.05 of the expert's, with
 * either loss. */
static void test_bc_learns_linear_expert(void **state) {
  enum { D = EXPERT_D, A = EXPERT_A, N = 512, HOLD = 200, B = 64 };
  static float obs[N * D], act[N * A], held[HOLD * D];
  frl_rng_t rng;
  frl_rng_seed(&rng, 121);
  linear_expert_demos(obs, act, N, held, HOLD, &rng);
  for (int kind = 0; kind < 2; kind++) {
    frl_sac_config_t c = base_config(D, A, 32, 32, B);
    c.lr_actor = 3e-3f;
    c.seed = 122;
    frl_sac_t *s = frl_sac_new(&c);
    float bo[B * D], ba[B * A], first = NAN, last = NAN, err;
    double held_err[2];
    for (int phase = 0; phase < 2; phase++) {
      double e = 0;
      for (int r = 0; r < HOLD; r++) {
        float a[A];
        frl_sac_act(frl_sac_actor(s), held + r * D, true, NULL, a);
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
        assert_int_equal(frl_sac_bc_update(s, &b, kind, &loss, &err), 0);
        if (u == 0) first = loss;
        last = loss;
      }
    }
    print_message("bc %s: loss %.4f -> %.4f, held-out action error %.4f -> %.4f\n",
                  kind ? "mse" : "nll", first, last, held_err[0], held_err[1]);
    assert_true(last < first - (kind ? 0.9 * first : 1.0));
    assert_true(held_err[0] > 0.1);
    assert_true(held_err[1] < 0.05);
    frl_sac_destroy(&s);
  }
}

/* A non-finite observation, action or weight refuses the step with nothing changed (the next
 * good step matches a twin's bit for bit); bad sizes and an unknown loss are refused. */
static void test_bc_rejects(void **state) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 131);
  enum { B = 8, D = 3, A = 2 };
  frl_sac_config_t c = base_config(D, A, 6, 5, B);
  frl_sac_t *s = frl_sac_new(&c), *twin = frl_sac_new(&c);
  batch_store_t store;
  frl_batch_t good = random_batch(&store, B, D, A, &rng);
  assert_int_equal(frl_sac_bc_update(s, &good, FRL_SAC_BC_NLL, NULL, NULL), 0);
  assert_int_equal(frl_sac_bc_update(twin, &good, FRL_SAC_BC_NLL, NULL, NULL), 0);
  float *saved = snapshot(frl_sac_actor(s));
  for (int poison = 0; poison < 3; poison++) {
    for (int kind = 0; kind < 2; kind++) {
      batch_store_t bs = store;
      frl_batch_t bad = {.B = B, .obs = bs.obs, .action = bs.act, .weight = bs.weight};
      if (poison == 0) bs.obs[4] = NAN;
      if (poison == 1) bs.act[3] = NAN;
      if (poison == 2) bs.weight[6] = INFINITY;
      float loss = -7.0f;
      assert_int_equal(frl_sac_bc_update(s, &bad, kind, &loss, NULL), -ERANGE);
      assert_true(loss == -7.0f);
      assert_memory_equal(frl_mlp_params(frl_sac_actor(s)), saved,
                          frl_mlp_n_params(frl_sac_actor(s)) * sizeof(float));
    }
  }
  frl_batch_t wrong = good;
  wrong.B = 0;
  assert_int_equal(frl_sac_bc_update(s, &wrong, FRL_SAC_BC_MSE, NULL, NULL), FRL_EDIM);
  wrong.B = B + 1;
  assert_int_equal(frl_sac_bc_update(s, &wrong, FRL_SAC_BC_MSE, NULL, NULL), FRL_EDIM);
  assert_int_equal(frl_sac_bc_update(s, &good, (frl_sac_bc_loss_t)7, NULL, NULL), FRL_EUSAGE);
  assert_int_equal(frl_sac_bc_update(s, &good, FRL_SAC_BC_NLL, NULL, NULL), 0);
  assert_int_equal(frl_sac_bc_update(twin, &good, FRL_SAC_BC_NLL, NULL, NULL), 0);
  assert_memory_equal(frl_mlp_params(frl_sac_actor(s)), frl_mlp_params(frl_sac_actor(twin)),
                      frl_mlp_n_params(frl_sac_actor(s)) * sizeof(float));
  free(saved);
  frl_sac_destroy(&twin);
  frl_sac_destroy(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_log_prob_closed_form),
      cmocka_unit_test(test_log_prob_integrates_to_one),
      cmocka_unit_test(test_sampler_chi_square),
      cmocka_unit_test(test_sampler_min_log_std),
      cmocka_unit_test(test_targets_and_losses_by_hand),
      cmocka_unit_test(test_reference_and_gradients),
      cmocka_unit_test(test_alpha_direction),
      cmocka_unit_test(test_target_polyak),
      cmocka_unit_test(test_rejects_non_finite),
      cmocka_unit_test(test_rejects_bad_config),
      cmocka_unit_test(test_no_allocation),
      cmocka_unit_test(test_learns_bandit),
      cmocka_unit_test(test_full_size),
      cmocka_unit_test(test_bc_by_hand),
      cmocka_unit_test(test_bc_gradients),
      cmocka_unit_test(test_bc_learns_linear_expert),
      cmocka_unit_test(test_bc_rejects),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
