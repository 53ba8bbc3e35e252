/* sac.c: the Soft Actor-Critic learner step (twin critics, Polyak targets, tanh-squashed
 * Gaussian policy, automatic temperature) and the policy side the actors run every step. */
#include "sac.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ac_common.h"
#include "common.h"
#include "log.h"
#include "nn.h"

/* Adam for all three optimizers (Haarnoja et al. 2018, arXiv:1812.05905, Table 1: learning rate
 * 3e-4), with the moment decays and epsilon of Kingma & Ba 2015. */
#define FRL_SAC_BETA1 0.9f
#define FRL_SAC_BETA2 0.999f
#define FRL_SAC_ADAM_EPS 1e-8f
/* log_std bounds of the policy head, as in the authors' reference code: exp(-20) keeps the
 * density finite, exp(2) ~ 7.4 keeps samples from piling up at tanh's saturated ends. */
#define FRL_SAC_LOG_STD_MIN -20.0f
#define FRL_SAC_LOG_STD_MAX 2.0f
/* The actor and the critics evaluate obs and next_obs (or two action sets) as one 2B-row
 * batch, so a batch must fit twice in the MLP batch limit (65536). */
#define FRL_SAC_MAX_BATCH 32768
#define FRL_SAC_MAX_DIM 65536

#define FRL_LOG_SQRT_2PI 0.91893853320467274178
#define FRL_LOG2 0.69314718055994530942

struct frl_sac {
  frl_sac_config_t cfg;
  float target_entropy;
  int D, A, C; /* obs_dim, act_dim, critic input D + A */
  frl_mlp_t *actor, *critic[2], *target[2];
  frl_adam_t *adam_actor, *adam_critic[2], *adam_alpha;
  float log_alpha;
  float g_log_alpha;
  float *g_actor, *g_critic[2]; /* gradient blocks, same layout as the parameters */
  /* Workspace (one allocation), sized for 2 * batch policy rows: */
  float *work;
  float *eps;     /* [2B, A] N(0, 1) draws */
  float *pi_act;  /* [2B, A] a = tanh(u) */
  float *std_eps; /* [2B, A] std * eps = du / dlog_std */
  float *logp;    /* [2B] log pi(a|s) */
  float *q[2];    /* [2B] Q_i(obs, action) rows, then Q_i(obs, a ~ pi) rows */
  float *qt[2];   /* [B] Q_targ_i(next_obs, a' ~ pi) */
  float *y;       /* [B] critic targets */
  float *dq[2];   /* [2B] dL/dQ_i: critic loss rows, then actor loss rows */
  float *dact[2]; /* [B, A] dQ-part of the actor loss through critic i w.r.t. a ~ pi */
  float *dhead;   /* [B, 2A] actor loss gradient w.r.t. the policy head (mean, log_std) */
  frl_rng_t rng;
  const float *fixed_eps;
  uint64_t updates;
};

/* ---- the policy: a tanh-squashed Gaussian ---------------------------------------------------- */

frl_mlp_shape_t frl_sac_actor_shape(int obs_dim, int act_dim, int hidden1, int hidden2) {
  frl_mlp_shape_t s = {.n_layers = 3,
                       .sizes = {obs_dim, hidden1, hidden2, 2 * act_dim},
                       .hidden_act = FRL_ACT_RELU,
                       .out_act = FRL_ACT_NONE};
  return s;
}

static inline float clamp_log_std(float x) {
  /* Comparisons, not fminf/fmaxf: a NaN stays NaN (and poisons the loss) instead of being
   * clamped to a bound. */
  if (x < FRL_SAC_LOG_STD_MIN) return FRL_SAC_LOG_STD_MIN;
  if (x > FRL_SAC_LOG_STD_MAX) return FRL_SAC_LOG_STD_MAX;
  return x;
}

void frl_sac_act(frl_mlp_t *actor, const float *obs, bool deterministic, frl_rng_t *rng,
                 float *action) {
  const frl_mlp_shape_t *shape = frl_mlp_shape(actor);
  assert(shape->sizes[shape->n_layers] % 2 == 0); /* [mean, log_std] */
  const int A = shape->sizes[shape->n_layers] / 2;
  float *out = frl__mlp_output(actor);
  frl_mlp_forward(actor, out, obs, 1);
  for (int i = 0; i < A; i++) {
    float u = out[i];
    if (!deterministic) u += expf(clamp_log_std(out[A + i])) * (float)frl_rng_normal(rng);
    action[i] = tanhf(u);
  }
}

double frl_sac_log_prob(const float *mean, const float *log_std, const float *u, int act_dim) {
  /* Haarnoja et al. 2018 (arXiv:1801.01290), appendix C: for a = tanh(u),
   * log pi(a|s) = log N(u; mean, std) - sum_i log(1 - tanh(u_i)^2). The Jacobian term is
   * rewritten as log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), exact for every u and
   * without the cancellation of 1 - tanh^2 near +-1 (which the usual "+ 1e-6" only hides). */
  double lp = 0.0;
  for (int i = 0; i < act_dim; i++) {
    double ls = log_std[i], z = ((double)u[i] - mean[i]) / exp(ls);
    double x = -2.0 * u[i];
    double softplus = x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x));
    lp += -0.5 * z * z - ls - FRL_LOG_SQRT_2PI - 2.0 * (FRL_LOG2 - u[i] - softplus);
  }
  return lp;
}

/* ---- construction ---------------------------------------------------------------------------- */

static int config_check(const frl_sac_config_t *c) {
  if (c->obs_dim < 1 || c->obs_dim > FRL_SAC_MAX_DIM || c->act_dim < 1 ||
      c->act_dim > FRL_SAC_MAX_DIM / 2) {
    frl_error("sac: obs_dim %d / act_dim %d out of range [1, %d] / [1, %d]", c->obs_dim, c->act_dim,
              FRL_SAC_MAX_DIM, FRL_SAC_MAX_DIM / 2);
    return FRL_EUSAGE;
  }
  if (c->hidden1 < 1 || c->hidden1 > FRL_SAC_MAX_DIM || c->hidden2 < 1 ||
      c->hidden2 > FRL_SAC_MAX_DIM) {
    frl_error("sac: hidden1 %d / hidden2 %d out of range [1, %d]", c->hidden1, c->hidden2,
              FRL_SAC_MAX_DIM);
    return FRL_EUSAGE;
  }
  if (c->batch < 1 || c->batch > FRL_SAC_MAX_BATCH) {
    frl_error("sac: batch %d out of range [1, %d]", c->batch, FRL_SAC_MAX_BATCH);
    return FRL_EUSAGE;
  }
  const float lr[3] = {c->lr_actor, c->lr_critic, c->lr_alpha};
  const char *lr_name[3] = {"lr_actor", "lr_critic", "lr_alpha"};
  for (int k = 0; k < 3; k++) {
    if (!(lr[k] > 0.0f) || !isfinite(lr[k])) {
      frl_error("sac: %s %g must be finite and > 0", lr_name[k], (double)lr[k]);
      return FRL_EUSAGE;
    }
  }
  if (!(c->tau >= 0.0f && c->tau <= 1.0f)) {
    frl_error("sac: tau %g out of range [0, 1]", (double)c->tau);
    return FRL_EUSAGE;
  }
  if (!(c->init_alpha > 0.0f) || !isfinite(c->init_alpha)) {
    frl_error("sac: init_alpha %g must be finite and > 0", (double)c->init_alpha);
    return FRL_EUSAGE;
  }
  if (isinf(c->target_entropy)) {
    frl_error("sac: target_entropy is infinite (NAN selects -act_dim)");
    return FRL_EUSAGE;
  }
  if (isnan(c->grad_clip)) {
    frl_error("sac: grad_clip is NaN (use a value <= 0 to disable clipping)");
    return FRL_EUSAGE;
  }
  return 0;
}

frl_sac_t *frl_sac_new(const frl_sac_config_t *cfg) {
  if (config_check(cfg) != 0) return NULL;
  frl_sac_t *s = frl_xcalloc(1, sizeof *s);
  s->cfg = *cfg;
  s->D = cfg->obs_dim;
  s->A = cfg->act_dim;
  s->C = cfg->obs_dim + cfg->act_dim;
  /* Haarnoja et al. 2018 (arXiv:1812.05905), section 5 and Table 1: target entropy -dim(A). The
   * seed code took -prod(torch.Tensor(act_dim)), the product of an UNINITIALIZED tensor of
   * act_dim elements, i.e. an arbitrary number; here it is -act_dim unless configured. */
  s->target_entropy = isnan(cfg->target_entropy) ? -(float)cfg->act_dim : cfg->target_entropy;
  s->log_alpha = logf(cfg->init_alpha);
  frl_rng_seed(&s->rng, cfg->seed);

  const int MB2 = 2 * cfg->batch;
  frl_mlp_shape_t actor_shape = frl_sac_actor_shape(s->D, s->A, cfg->hidden1, cfg->hidden2);
  frl_mlp_shape_t critic_shape = {.n_layers = 3,
                                  .sizes = {s->C, cfg->hidden1, cfg->hidden2, 1},
                                  .hidden_act = FRL_ACT_RELU,
                                  .out_act = FRL_ACT_NONE};
  s->actor = frl_mlp_new(&actor_shape, MB2, &s->rng);
  if (!s->actor) goto fail;
  for (int i = 0; i < 2; i++) {
    s->critic[i] = frl_mlp_new(&critic_shape, MB2, &s->rng);
    if (!s->critic[i]) goto fail;
    s->target[i] = frl_mlp_new(&critic_shape, cfg->batch, &s->rng);
    if (!s->target[i]) goto fail;
    /* The targets start as exact copies (Haarnoja et al. 2018, Algorithm 1). */
    memcpy(frl_mlp_params(s->target[i]), frl_mlp_params(s->critic[i]),
           frl_mlp_n_params(s->critic[i]) * sizeof(float));
    s->adam_critic[i] = frl_adam_new(frl_mlp_n_params(s->critic[i]), cfg->lr_critic, FRL_SAC_BETA1,
                                     FRL_SAC_BETA2, FRL_SAC_ADAM_EPS);
    s->g_critic[i] = frl_xcalloc(frl_mlp_n_params(s->critic[i]), sizeof(float));
  }
  s->adam_actor = frl_adam_new(frl_mlp_n_params(s->actor), cfg->lr_actor, FRL_SAC_BETA1,
                               FRL_SAC_BETA2, FRL_SAC_ADAM_EPS);
  s->adam_alpha = frl_adam_new(1, cfg->lr_alpha, FRL_SAC_BETA1, FRL_SAC_BETA2, FRL_SAC_ADAM_EPS);
  s->g_actor = frl_xcalloc(frl_mlp_n_params(s->actor), sizeof(float));

  const size_t R = (size_t)MB2, B1 = (size_t)cfg->batch, A = (size_t)s->A;
  size_t n_work = 3 * R * A + R + 2 * R + 2 * B1 + B1 + 2 * R + 2 * B1 * A + B1 * 2 * A;
  s->work = frl_xcalloc(n_work, sizeof(float));
  float *p = s->work;
  s->eps = p, p += R * A;
  s->pi_act = p, p += R * A;
  s->std_eps = p, p += R * A;
  s->logp = p, p += R;
  for (int i = 0; i < 2; i++) s->q[i] = p, p += R;
  for (int i = 0; i < 2; i++) s->qt[i] = p, p += B1;
  s->y = p, p += B1;
  for (int i = 0; i < 2; i++) s->dq[i] = p, p += R;
  for (int i = 0; i < 2; i++) s->dact[i] = p, p += B1 * A;
  s->dhead = p, p += B1 * 2 * A;
  assert((size_t)(p - s->work) == n_work);
  return s;

fail:
  frl_sac_destroy(&s);
  return NULL;
}

void frl_sac_destroy(frl_sac_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_sac_t *s = *self_p;
  free(s->work);
  free(s->g_actor);
  frl_adam_destroy(&s->adam_alpha);
  frl_adam_destroy(&s->adam_actor);
  for (int i = 1; i >= 0; i--) {
    free(s->g_critic[i]);
    frl_adam_destroy(&s->adam_critic[i]);
    frl_mlp_destroy(&s->target[i]);
    frl_mlp_destroy(&s->critic[i]);
  }
  frl_mlp_destroy(&s->actor);
  free(s);
  *self_p = NULL;
}

frl_mlp_t *frl_sac_actor(frl_sac_t *s) { return s->actor; }
uint64_t frl_sac_updates(const frl_sac_t *s) { return s->updates; }
float frl_sac_alpha(const frl_sac_t *s) { return expf(s->log_alpha); }

void frl_sac_state(frl_sac_t *s, frl_state_t *st) {
  static const char *critic[2] = {"critic1", "critic2"}, *target[2] = {"target1", "target2"};
  frl_state_add(st, NULL, "actor", FRL_STATE_F32, 0, frl_mlp_params(s->actor),
                frl_mlp_n_params(s->actor));
  for (int i = 0; i < 2; i++) {
    frl_state_add(st, NULL, critic[i], FRL_STATE_F32, 0, frl_mlp_params(s->critic[i]),
                  frl_mlp_n_params(s->critic[i]));
    frl_state_add(st, NULL, target[i], FRL_STATE_F32, 0, frl_mlp_params(s->target[i]),
                  frl_mlp_n_params(s->target[i]));
  }
  frl_adam_state(s->adam_actor, "adam.actor", st);
  frl_adam_state(s->adam_critic[0], "adam.critic1", st);
  frl_adam_state(s->adam_critic[1], "adam.critic2", st);
  frl_adam_state(s->adam_alpha, "adam.alpha", st);
  frl_state_add(st, NULL, "log_alpha", FRL_STATE_F32, 0, &s->log_alpha, 1);
  frl_state_add(st, NULL, "rng", FRL_STATE_U64, FRL_STATE_NONZERO, s->rng.s, 4);
  frl_state_add(st, NULL, "updates", FRL_STATE_U64, 0, &s->updates, 1);
}
frl_mlp_t *frl__sac_critic(frl_sac_t *s, int i, bool target) {
  assert(i == 0 || i == 1);
  return target ? s->target[i] : s->critic[i];
}
void frl__sac_fix_noise(frl_sac_t *s, const float *eps) { s->fixed_eps = eps; }
const float *frl__sac_grad(const frl_sac_t *s, int which) {
  assert(which >= 0 && which <= 3);
  return which == 0 ? s->g_actor : which == 3 ? &s->g_log_alpha : s->g_critic[which - 1];
}

/* ---- the update ------------------------------------------------------------------------------ */

/* The policy head for rows [0, R): a = tanh(mean + std eps) and log pi(a|s) (see
 * frl_sac_log_prob), keeping std eps for the backward pass. The seed code squashed the mean
 * with tanh BEFORE sampling and then squashed the sample again, so its actions were
 * tanh(tanh(mean) + std eps) (never near +-1 when std is small) while its log-prob corrected
 * for one tanh only; here the Gaussian is over the unsquashed u and tanh is applied once. */
static void policy_head(frl_sac_t *s, const float *head, int R) {
  const int A = s->A;
  for (int r = 0; r < R; r++) {
    const float *mean = head + (size_t)r * 2 * A, *raw_ls = mean + A;
    const float *e = s->eps + (size_t)r * A;
    float *a = s->pi_act + (size_t)r * A, *se = s->std_eps + (size_t)r * A;
    float lp = 0.0f;
    for (int i = 0; i < A; i++) {
      float ls = clamp_log_std(raw_ls[i]);
      se[i] = expf(ls) * e[i];
      float u = mean[i] + se[i];
      /* One exponential gives both tanh(u) and softplus(-2u): with t = exp(-2|u|),
       * tanh|u| = (1 - t) / (1 + t) and log 2 - u - softplus(-2u) = log 2 - |u| - log1p(t). */
      float au = fabsf(u), t = expf(-2.0f * au);
      float th = (1.0f - t) / (1.0f + t);
      a[i] = u < 0.0f ? -th : th;
      /* log N(u; mean, std) = -eps^2/2 - log std - log sqrt(2 pi), since (u - mean)/std = eps. */
      lp += -0.5f * e[i] * e[i] - ls - (float)FRL_LOG_SQRT_2PI -
            2.0f * ((float)FRL_LOG2 - au - log1pf(t));
    }
    s->logp[r] = lp;
  }
}

int frl__sac_compute(frl_sac_t *s, const frl_batch_t *b, float *td_abs, frl_sac_stats_t *stats) {
  assert(b && b->obs && b->action && b->reward && b->discount && b->next_obs);
  if (b->B < 1 || b->B > s->cfg.batch) {
    frl_error("sac: batch size %d out of range [1, %d]", b->B, s->cfg.batch);
    return FRL_EDIM;
  }
  const int B = b->B, D = s->D, A = s->A, C = s->C;
  const size_t BD = (size_t)B * D;
  const float alpha = expf(s->log_alpha);

  /* All losses are taken at the parameters before this step, and all optimizers then step
   * together (as rlkit's SAC trainer does). That lets the actor evaluate obs and
   * next_obs in one 2B-row forward, and each critic evaluate (obs, action) and (obs, a ~ pi)
   * in one 2B-row forward: one GEMM per layer instead of two. */
  float *x = frl__mlp_input(s->actor);
  memcpy(x, b->obs, BD * sizeof(float));
  memcpy(x + BD, b->next_obs, BD * sizeof(float));
  float *head = frl__mlp_output(s->actor);
  frl_mlp_forward(s->actor, head, x, 2 * B);
  if (s->fixed_eps)
    memcpy(s->eps, s->fixed_eps, (size_t)2 * B * A * sizeof(float));
  else
    frl__fill_normal(s->eps, (size_t)2 * B * A, &s->rng);
  policy_head(s, head, 2 * B);
  const float *a_pi = s->pi_act, *a_next = s->pi_act + (size_t)B * A;
  const float *logp = s->logp, *logp_next = s->logp + B;

  /* Soft Bellman target (Haarnoja et al. 2018, arXiv:1812.05905, section 4.2, with the clipped
   * double-Q of Fujimoto et al. 2018):
   *   y = r + discount (min_i Q_targ_i(s', a') - alpha log pi(a'|s')),  a' ~ pi(.|s').
   * discount is gamma^k of the n-step return, or 0 at a terminal, where the next observation
   * may be anything: 0 * NaN must not leak into y. */
  float *tin = frl__mlp_input(s->target[0]);
  frl__concat_rows(tin, b->next_obs, D, a_next, A, B);
  for (int i = 0; i < 2; i++) frl_mlp_forward(s->target[i], s->qt[i], tin, B);
  for (int r = 0; r < B; r++) {
    float soft_v = fminf(s->qt[0][r], s->qt[1][r]) - alpha * logp_next[r];
    s->y[r] = b->discount[r] != 0.0f ? b->reward[r] + b->discount[r] * soft_v : b->reward[r];
  }

  float *cin = frl__mlp_input(s->critic[0]);
  frl__concat_rows(cin, b->obs, D, b->action, A, B);
  frl__concat_rows(cin + (size_t)B * C, b->obs, D, a_pi, A, B);
  for (int i = 0; i < 2; i++) frl_mlp_forward(s->critic[i], s->q[i], cin, 2 * B);

  /* Critic losses: importance-weighted MSE to y (Schaul et al. 2016: w_i scales each
   * transition's term). Rows [0, B) of dq_i. */
  float closs[2];
  for (int i = 0; i < 2; i++) closs[i] = frl_mse_loss(s->dq[i], s->q[i], s->y, b->weight, B, 1);

  /* Actor loss (section 4.2, reparameterized: a = tanh(mean + std eps) with eps fixed):
   * L_pi = mean_b [alpha log pi(a_b|s_b) - min_i Q_i(s_b, a_b)]. dL/dQ_i = -1/B on the row's
   * smaller critic: rows [B, 2B) of dq_i. */
  const float inv_b = 1.0f / (float)B;
  double sum_actor = 0.0, sum_logp = 0.0, sum_q = 0.0;
  const float *q0 = s->q[0] + B, *q1 = s->q[1] + B;
  for (int r = 0; r < B; r++) {
    bool first = q0[r] <= q1[r];
    s->dq[0][B + r] = first ? -inv_b : 0.0f;
    s->dq[1][B + r] = first ? 0.0f : -inv_b;
    sum_actor += (double)alpha * logp[r] - (first ? q0[r] : q1[r]);
    sum_logp += logp[r];
    sum_q += fminf(s->q[0][r], s->q[1][r]);
  }
  float actor_loss = (float)(sum_actor / B);

  /* One backward per critic covers both losses: parameter gradients from the critic-loss rows
   * only (the actor loss must not train the critics), dQ/da for the actor-loss rows only. */
  for (int i = 0; i < 2; i++) {
    memset(s->g_critic[i], 0, frl_mlp_n_params(s->critic[i]) * sizeof(float));
    frl__mlp_backward_rows(s->critic[i], s->g_critic[i], B, s->dact[i], B, D, A, s->dq[i], 2 * B);
  }

  /* Through a = tanh(u), u = mean + std eps, std = exp(clamp(raw)): with dlog pi/du = 2 tanh(u)
   * (the derivative of -log(1 - tanh^2 u)) and dlog pi/dlog std = -1 for fixed eps,
   * dL/du = dL/da (1 - a^2) + (alpha / B) 2 a, dL/dmean = dL/du,
   * dL/draw = (dL/du std eps - alpha / B) where the clamp is inactive, else 0. */
  const float ab = alpha * inv_b;
  for (int r = 0; r < B; r++) {
    const float *a = a_pi + (size_t)r * A, *se = s->std_eps + (size_t)r * A;
    const float *raw = head + (size_t)r * 2 * A + A;
    const float *d0 = s->dact[0] + (size_t)r * A, *d1 = s->dact[1] + (size_t)r * A;
    float *dmean = s->dhead + (size_t)r * 2 * A, *dls = dmean + A;
    for (int i = 0; i < A; i++) {
      float du = (d0[i] + d1[i]) * (1.0f - a[i] * a[i]) + 2.0f * ab * a[i];
      dmean[i] = du;
      bool inside = raw[i] >= FRL_SAC_LOG_STD_MIN && raw[i] <= FRL_SAC_LOG_STD_MAX;
      dls[i] = inside ? du * se[i] - ab : 0.0f;
    }
  }
  memset(s->g_actor, 0, frl_mlp_n_params(s->actor) * sizeof(float));
  frl__mlp_backward_rows(s->actor, s->g_actor, B, NULL, 0, 0, 0, s->dhead, B);

  /* Temperature (section 5): J(alpha) = mean_b [-log alpha (log pi(a_b|s_b) + target entropy)],
   * with log pi held fixed; optimized over log alpha, which keeps alpha positive. */
  float mean_logp = (float)(sum_logp / B);
  float alpha_loss = -s->log_alpha * (mean_logp + s->target_entropy);
  s->g_log_alpha = s->cfg.auto_alpha ? -(mean_logp + s->target_entropy) : 0.0f;

  float norm_actor = frl_clip_grad_norm(s->g_actor, frl_mlp_n_params(s->actor), s->cfg.grad_clip);
  float norm_c[2];
  for (int i = 0; i < 2; i++)
    norm_c[i] =
        frl_clip_grad_norm(s->g_critic[i], frl_mlp_n_params(s->critic[i]), s->cfg.grad_clip);
  /* A NaN or infinity anywhere (in the batch, which comes from the network, or a diverged
   * network) would poison every parameter and Adam moment at once: refuse the step. */
  if (!isfinite(closs[0]) || !isfinite(closs[1]) || !isfinite(actor_loss) ||
      !isfinite(alpha_loss) || !isfinite(norm_actor) || !isfinite(norm_c[0]) ||
      !isfinite(norm_c[1])) {
    frl_error(
        "sac: non-finite loss (critic %g %g, actor %g, alpha %g) or gradient norm "
        "(actor %g, critic %g %g) at update %llu; step skipped",
        (double)closs[0], (double)closs[1], (double)actor_loss, (double)alpha_loss,
        (double)norm_actor, (double)norm_c[0], (double)norm_c[1], (unsigned long long)s->updates);
    return -ERANGE;
  }
  if (td_abs)
    for (int r = 0; r < B; r++) td_abs[r] = fabsf(s->y[r] - fminf(s->q[0][r], s->q[1][r]));
  if (stats) {
    stats->critic1_loss = closs[0];
    stats->critic2_loss = closs[1];
    stats->actor_loss = actor_loss;
    stats->alpha_loss = s->cfg.auto_alpha ? alpha_loss : 0.0f;
    stats->alpha = alpha;
    stats->entropy = -mean_logp;
    stats->mean_q = (float)(sum_q / B);
  }
  return 0;
}

int frl_sac_update(frl_sac_t *s, const frl_batch_t *b, float *td_abs, frl_sac_stats_t *stats) {
  /* A refused step must leave everything as it was, including the noise stream. */
  frl_rng_t rng_before = s->rng;
  int rc = frl__sac_compute(s, b, td_abs, stats);
  if (rc != 0) {
    s->rng = rng_before;
    return rc;
  }
  for (int i = 0; i < 2; i++)
    frl_adam_step(s->adam_critic[i], frl_mlp_params(s->critic[i]), s->g_critic[i]);
  frl_adam_step(s->adam_actor, frl_mlp_params(s->actor), s->g_actor);
  if (s->cfg.auto_alpha) frl_adam_step(s->adam_alpha, &s->log_alpha, &s->g_log_alpha);
  /* Target critics track the online ones by Polyak averaging (Haarnoja et al. 2018, Alg. 1). */
  for (int i = 0; i < 2; i++) frl__mlp_polyak(s->target[i], s->critic[i], s->cfg.tau);
  s->updates++;
  return 0;
}

/* ---- behaviour cloning ----------------------------------------------------------------------- */

/* The NLL inverts the squash at the demonstrated action, so actions on the boundary (a saturated
 * command: +-1 after normalization) are pulled in to where atanh is finite: atanh(1 - 1e-6) is
 * about 7.25, as far as a float mean needs to go for tanh to round to the boundary. */
#define FRL_SAC_BC_ACTION_BOUND (1.0 - 1e-6)

static inline double clamp_unit(double x, double bound) {
  return x < -bound ? -bound : x > bound ? bound : x;
}

int frl__sac_bc_compute(frl_sac_t *s, const frl_batch_t *b, frl_sac_bc_loss_t kind, float *loss,
                        float *action_error) {
  assert(b && b->obs && b->action);
  if (b->B < 1 || b->B > s->cfg.batch) {
    frl_error("sac: behaviour-cloning batch size %d out of range [1, %d]", b->B, s->cfg.batch);
    return FRL_EDIM;
  }
  if (kind != FRL_SAC_BC_NLL && kind != FRL_SAC_BC_MSE) {
    frl_error("sac: unknown behaviour-cloning loss %d", (int)kind);
    return FRL_EUSAGE;
  }
  const int B = b->B, A = s->A;
  float *head = frl__mlp_output(s->actor);
  frl_mlp_forward(s->actor, head, b->obs, B);
  double sum_loss = 0.0, sum_err = 0.0;
  for (int r = 0; r < B; r++) {
    const float *mean = head + (size_t)r * 2 * A, *raw = mean + A;
    const float *a_e = b->action + (size_t)r * A;
    float *dmean = s->dhead + (size_t)r * 2 * A, *dls = dmean + A;
    const double w = b->weight ? b->weight[r] : 1.0, wb = w / B;
    double row = 0.0;
    for (int i = 0; i < A; i++) {
      const double target = clamp_unit(a_e[i], 1.0);
      sum_err += fabs(tanh((double)mean[i]) - target);
      if (kind == FRL_SAC_BC_NLL) {
        /* Haarnoja et al. 2018 (arXiv:1801.01290), appendix C, read backwards: the action a_E
         * came from u = atanh(a_E), so -log pi(a_E|s) = -log N(u; mean, std) + log(1 - a_E^2),
         * with z = (u - mean) / std:
         *   -log N = z^2 / 2 + log std + log sqrt(2 pi),
         *   d/dmean = -z / std,  d/dlog std = 1 - z^2 (zero where log_std is clamped).
         * The Jacobian term depends on a_E only: it shifts the loss, not the gradient. */
        const double ac = clamp_unit(a_e[i], FRL_SAC_BC_ACTION_BOUND);
        const double u = atanh(ac), ls = clamp_log_std(raw[i]);
        const double inv_std = exp(-ls), z = (u - mean[i]) * inv_std;
        row += 0.5 * z * z + ls + FRL_LOG_SQRT_2PI + log((1.0 - ac) * (1.0 + ac));
        dmean[i] = (float)(-wb * z * inv_std);
        bool inside = raw[i] >= FRL_SAC_LOG_STD_MIN && raw[i] <= FRL_SAC_LOG_STD_MAX;
        dls[i] = inside ? (float)(wb * (1.0 - z * z)) : 0.0f;
      } else {
        /* (1/A) (tanh(mean) - a_E)^2 per row; through tanh: d/dmean = (2/A) (t - a_E)(1 - t^2). */
        const double t = tanh((double)mean[i]), e = t - target;
        row += e * e / A;
        dmean[i] = (float)(wb * 2.0 / A * e * (1.0 - t * t));
        dls[i] = 0.0f;
      }
    }
    sum_loss += w * row;
  }
  const float bc_loss = (float)(sum_loss / B);
  memset(s->g_actor, 0, frl_mlp_n_params(s->actor) * sizeof(float));
  frl_mlp_backward(s->actor, s->g_actor, NULL, s->dhead, B);
  float norm = frl_clip_grad_norm(s->g_actor, frl_mlp_n_params(s->actor), s->cfg.grad_clip);
  if (!isfinite(bc_loss) || !isfinite(norm)) {
    frl_error("sac: non-finite behaviour-cloning loss %g or gradient norm %g; step skipped",
              (double)bc_loss, (double)norm);
    return -ERANGE;
  }
  if (loss) *loss = bc_loss;
  if (action_error) *action_error = (float)(sum_err / ((double)B * A));
  return 0;
}

int frl_sac_bc_update(frl_sac_t *s, const frl_batch_t *b, frl_sac_bc_loss_t kind, float *loss,
                      float *action_error) {
  int rc = frl__sac_bc_compute(s, b, kind, loss, action_error);
  if (rc != 0) return rc;
  frl_adam_step(s->adam_actor, frl_mlp_params(s->actor), s->g_actor);
  return 0;
}
