/* td3.c: the TD3 learner step (clipped double-Q targets with target policy smoothing, delayed
 * actor and target updates) and the deterministic policy the actors run every step. */
#include "td3.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ac_common.h"
#include "common.h"
#include "log.h"
#include "nn.h"

/* Adam with the moment decays and epsilon of Kingma & Ba 2015 (Fujimoto et al. 2018 train both
 * networks with Adam). */
#define FRL_TD3_BETA1 0.9f
#define FRL_TD3_BETA2 0.999f
#define FRL_TD3_ADAM_EPS 1e-8f
/* Critic 1 evaluates (obs, action) and (obs, mu(obs)) as one 2B-row batch. */
#define FRL_TD3_MAX_BATCH 32768
#define FRL_TD3_MAX_DIM 65536
#define FRL_TD3_MAX_DELAY 1000000

struct frl_td3 {
  frl_td3_config_t cfg;
  int D, A, C; /* obs_dim, act_dim, critic input D + A */
  frl_mlp_t *actor, *actor_target, *critic[2], *target[2];
  frl_adam_t *adam_actor, *adam_critic[2];
  float *g_actor, *g_critic[2];
  /* Workspace (one allocation): */
  float *work;
  float *z;      /* [B, A] N(0, 1) draws for target policy smoothing */
  float *a_next; /* [B, A] smoothed target action */
  float *qt[2];  /* [B] Q_targ_i(next_obs, a') */
  float *y;      /* [B] */
  float *q[2];   /* [2B] Q_i(obs, action) rows, then (critic 1 only) Q_1(obs, mu(obs)) rows */
  float *dq[2];  /* [2B] */
  float *dact;   /* [B, A] dL_actor/dmu */
  frl_rng_t rng;
  const float *fixed_z;
  float last_actor_loss;
  uint64_t updates;
};

frl_mlp_shape_t frl_td3_actor_shape(int obs_dim, int act_dim, int hidden1, int hidden2) {
  frl_mlp_shape_t s = {.n_layers = 3,
                       .sizes = {obs_dim, hidden1, hidden2, act_dim},
                       .hidden_act = FRL_ACT_RELU,
                       .out_act = FRL_ACT_TANH};
  return s;
}

static inline float clip1(float x) { return x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x; }

void frl_td3_act(frl_mlp_t *actor, const float *obs, float noise_std, frl_rng_t *rng,
                 float *action) {
  const frl_mlp_shape_t *s = frl_mlp_shape(actor);
  const int A = s->sizes[s->n_layers];
  float *out = frl__mlp_output(actor);
  frl_mlp_forward(actor, out, obs, 1);
  /* Gaussian exploration noise on the deterministic action (Fujimoto et al. 2018, Alg. 1). */
  for (int i = 0; i < A; i++)
    action[i] = clip1(noise_std > 0.0f ? out[i] + noise_std * (float)frl_rng_normal(rng) : out[i]);
}

/* ---- construction ---------------------------------------------------------------------------- */

static int config_check(const frl_td3_config_t *c) {
  if (c->obs_dim < 1 || c->obs_dim > FRL_TD3_MAX_DIM || c->act_dim < 1 ||
      c->act_dim > FRL_TD3_MAX_DIM) {
    frl_error("td3: obs_dim %d / act_dim %d out of range [1, %d]", c->obs_dim, c->act_dim,
              FRL_TD3_MAX_DIM);
    return FRL_EUSAGE;
  }
  if (c->hidden1 < 1 || c->hidden1 > FRL_TD3_MAX_DIM || c->hidden2 < 1 ||
      c->hidden2 > FRL_TD3_MAX_DIM) {
    frl_error("td3: hidden1 %d / hidden2 %d out of range [1, %d]", c->hidden1, c->hidden2,
              FRL_TD3_MAX_DIM);
    return FRL_EUSAGE;
  }
  if (c->batch < 1 || c->batch > FRL_TD3_MAX_BATCH) {
    frl_error("td3: batch %d out of range [1, %d]", c->batch, FRL_TD3_MAX_BATCH);
    return FRL_EUSAGE;
  }
  if (!(c->lr_actor > 0.0f) || !isfinite(c->lr_actor) || !(c->lr_critic > 0.0f) ||
      !isfinite(c->lr_critic)) {
    frl_error("td3: lr_actor %g and lr_critic %g must be finite and > 0", (double)c->lr_actor,
              (double)c->lr_critic);
    return FRL_EUSAGE;
  }
  if (!(c->tau >= 0.0f && c->tau <= 1.0f)) {
    frl_error("td3: tau %g out of range [0, 1]", (double)c->tau);
    return FRL_EUSAGE;
  }
  if (!(c->policy_noise >= 0.0f) || !isfinite(c->policy_noise) || !(c->noise_clip >= 0.0f) ||
      !isfinite(c->noise_clip)) {
    frl_error("td3: policy_noise %g and noise_clip %g must be finite and >= 0",
              (double)c->policy_noise, (double)c->noise_clip);
    return FRL_EUSAGE;
  }
  if (c->policy_delay < 1 || c->policy_delay > FRL_TD3_MAX_DELAY) {
    frl_error("td3: policy_delay %d out of range [1, %d]", c->policy_delay, FRL_TD3_MAX_DELAY);
    return FRL_EUSAGE;
  }
  if (isnan(c->grad_clip)) {
    frl_error("td3: grad_clip is NaN (use a value <= 0 to disable clipping)");
    return FRL_EUSAGE;
  }
  return 0;
}

frl_td3_t *frl_td3_new(const frl_td3_config_t *cfg) {
  if (config_check(cfg) != 0) return NULL;
  frl_td3_t *t = frl_xcalloc(1, sizeof *t);
  t->cfg = *cfg;
  t->D = cfg->obs_dim;
  t->A = cfg->act_dim;
  t->C = cfg->obs_dim + cfg->act_dim;
  frl_rng_seed(&t->rng, cfg->seed);

  const int MB = cfg->batch;
  frl_mlp_shape_t actor_shape = frl_td3_actor_shape(t->D, t->A, cfg->hidden1, cfg->hidden2);
  frl_mlp_shape_t critic_shape = {.n_layers = 3,
                                  .sizes = {t->C, cfg->hidden1, cfg->hidden2, 1},
                                  .hidden_act = FRL_ACT_RELU,
                                  .out_act = FRL_ACT_NONE};
  t->actor = frl_mlp_new(&actor_shape, MB, &t->rng);
  if (!t->actor) goto fail;
  t->actor_target = frl_mlp_new(&actor_shape, MB, &t->rng);
  if (!t->actor_target) goto fail;
  /* Targets start as exact copies (Fujimoto et al. 2018, Algorithm 1). */
  memcpy(frl_mlp_params(t->actor_target), frl_mlp_params(t->actor),
         frl_mlp_n_params(t->actor) * sizeof(float));
  for (int i = 0; i < 2; i++) {
    t->critic[i] = frl_mlp_new(&critic_shape, i == 0 ? 2 * MB : MB, &t->rng);
    if (!t->critic[i]) goto fail;
    t->target[i] = frl_mlp_new(&critic_shape, MB, &t->rng);
    if (!t->target[i]) goto fail;
    memcpy(frl_mlp_params(t->target[i]), frl_mlp_params(t->critic[i]),
           frl_mlp_n_params(t->critic[i]) * sizeof(float));
    t->adam_critic[i] = frl_adam_new(frl_mlp_n_params(t->critic[i]), cfg->lr_critic, FRL_TD3_BETA1,
                                     FRL_TD3_BETA2, FRL_TD3_ADAM_EPS);
    t->g_critic[i] = frl_xcalloc(frl_mlp_n_params(t->critic[i]), sizeof(float));
  }
  t->adam_actor = frl_adam_new(frl_mlp_n_params(t->actor), cfg->lr_actor, FRL_TD3_BETA1,
                               FRL_TD3_BETA2, FRL_TD3_ADAM_EPS);
  t->g_actor = frl_xcalloc(frl_mlp_n_params(t->actor), sizeof(float));

  const size_t B1 = (size_t)MB, A = (size_t)t->A;
  size_t n_work = 2 * B1 * A + 2 * B1 + B1 + 4 * B1 + 4 * B1 + B1 * A;
  t->work = frl_xcalloc(n_work, sizeof(float));
  float *p = t->work;
  t->z = p, p += B1 * A;
  t->a_next = p, p += B1 * A;
  for (int i = 0; i < 2; i++) t->qt[i] = p, p += B1;
  t->y = p, p += B1;
  for (int i = 0; i < 2; i++) t->q[i] = p, p += 2 * B1;
  for (int i = 0; i < 2; i++) t->dq[i] = p, p += 2 * B1;
  t->dact = p, p += B1 * A;
  assert((size_t)(p - t->work) == n_work);
  return t;

fail:
  frl_td3_destroy(&t);
  return NULL;
}

void frl_td3_destroy(frl_td3_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_td3_t *t = *self_p;
  free(t->work);
  free(t->g_actor);
  frl_adam_destroy(&t->adam_actor);
  for (int i = 1; i >= 0; i--) {
    free(t->g_critic[i]);
    frl_adam_destroy(&t->adam_critic[i]);
    frl_mlp_destroy(&t->target[i]);
    frl_mlp_destroy(&t->critic[i]);
  }
  frl_mlp_destroy(&t->actor_target);
  frl_mlp_destroy(&t->actor);
  free(t);
  *self_p = NULL;
}

frl_mlp_t *frl_td3_actor(frl_td3_t *t) { return t->actor; }
uint64_t frl_td3_updates(const frl_td3_t *t) { return t->updates; }

void frl_td3_state(frl_td3_t *t, frl_state_t *st) {
  static const char *critic[2] = {"critic1", "critic2"}, *target[2] = {"target1", "target2"};
  frl_state_add(st, NULL, "actor", FRL_STATE_F32, 0, frl_mlp_params(t->actor),
                frl_mlp_n_params(t->actor));
  frl_state_add(st, NULL, "actor_target", FRL_STATE_F32, 0, frl_mlp_params(t->actor_target),
                frl_mlp_n_params(t->actor_target));
  for (int i = 0; i < 2; i++) {
    frl_state_add(st, NULL, critic[i], FRL_STATE_F32, 0, frl_mlp_params(t->critic[i]),
                  frl_mlp_n_params(t->critic[i]));
    frl_state_add(st, NULL, target[i], FRL_STATE_F32, 0, frl_mlp_params(t->target[i]),
                  frl_mlp_n_params(t->target[i]));
  }
  frl_adam_state(t->adam_actor, "adam.actor", st);
  frl_adam_state(t->adam_critic[0], "adam.critic1", st);
  frl_adam_state(t->adam_critic[1], "adam.critic2", st);
  frl_state_add(st, NULL, "rng", FRL_STATE_U64, FRL_STATE_NONZERO, t->rng.s, 4);
  frl_state_add(st, NULL, "last_actor_loss", FRL_STATE_F32, 0, &t->last_actor_loss, 1);
  frl_state_add(st, NULL, "updates", FRL_STATE_U64, 0, &t->updates, 1);
}
frl_mlp_t *frl__td3_critic(frl_td3_t *t, int i, bool target) {
  assert(i == 0 || i == 1);
  return target ? t->target[i] : t->critic[i];
}
frl_mlp_t *frl__td3_target_actor(frl_td3_t *t) { return t->actor_target; }
void frl__td3_fix_noise(frl_td3_t *t, const float *z) { t->fixed_z = z; }
const float *frl__td3_grad(const frl_td3_t *t, int which) {
  assert(which >= 0 && which <= 2);
  return which == 0 ? t->g_actor : t->g_critic[which - 1];
}

/* ---- the update ------------------------------------------------------------------------------ */

int frl__td3_compute(frl_td3_t *t, const frl_batch_t *b, bool actor_step, float *td_abs,
                     frl_td3_stats_t *stats) {
  assert(b && b->obs && b->action && b->reward && b->discount && b->next_obs);
  if (b->B < 1 || b->B > t->cfg.batch) {
    frl_error("td3: batch size %d out of range [1, %d]", b->B, t->cfg.batch);
    return FRL_EDIM;
  }
  const int B = b->B, D = t->D, A = t->A, C = t->C;
  const size_t BA = (size_t)B * A;

  /* Target policy smoothing (Fujimoto et al. 2018, section 5.3):
   * a' = clip(mu_targ(s') + clip(sigma z, -c, c), -1, 1), z ~ N(0, 1). */
  float *mu_next = frl__mlp_output(t->actor_target);
  frl_mlp_forward(t->actor_target, mu_next, b->next_obs, B);
  if (t->fixed_z)
    memcpy(t->z, t->fixed_z, BA * sizeof(float));
  else
    frl__fill_normal(t->z, BA, &t->rng);
  const float sigma = t->cfg.policy_noise, c = t->cfg.noise_clip;
  for (size_t k = 0; k < BA; k++) {
    float e = sigma * t->z[k];
    e = e < -c ? -c : e > c ? c : e;
    t->a_next[k] = clip1(mu_next[k] + e);
  }
  /* Clipped double-Q target (section 4.2): y = r + discount min_i Q_targ_i(s', a'); at a terminal
   * (discount 0) the next observation may be anything, so y = r exactly. */
  float *tin = frl__mlp_input(t->target[0]);
  frl__concat_rows(tin, b->next_obs, D, t->a_next, A, B);
  for (int i = 0; i < 2; i++) frl_mlp_forward(t->target[i], t->qt[i], tin, B);
  for (int r = 0; r < B; r++) {
    float q = fminf(t->qt[0][r], t->qt[1][r]);
    t->y[r] = b->discount[r] != 0.0f ? b->reward[r] + b->discount[r] * q : b->reward[r];
  }

  /* The actor loss is taken at the critic before this step, so critic 1 evaluates (obs, action)
   * and (obs, mu(obs)) as one 2B-row forward on actor steps. */
  const int rows0 = actor_step ? 2 * B : B;
  float *cin = frl__mlp_input(t->critic[0]);
  frl__concat_rows(cin, b->obs, D, b->action, A, B);
  if (actor_step) {
    float *mu = frl__mlp_output(t->actor);
    frl_mlp_forward(t->actor, mu, b->obs, B);
    frl__concat_rows(cin + (size_t)B * C, b->obs, D, mu, A, B);
  }
  frl_mlp_forward(t->critic[0], t->q[0], cin, rows0);
  frl_mlp_forward(t->critic[1], t->q[1], cin, B);
  float closs[2];
  for (int i = 0; i < 2; i++) closs[i] = frl_mse_loss(t->dq[i], t->q[i], t->y, b->weight, B, 1);

  /* Deterministic policy gradient through critic 1 only (Fujimoto et al. 2018, Alg. 1):
   * L_actor = -mean_b Q_1(s_b, mu(s_b)). */
  double sum_actor = 0.0, sum_q = 0.0;
  for (int r = 0; r < B; r++) sum_q += fminf(t->q[0][r], t->q[1][r]);
  if (actor_step) {
    for (int r = 0; r < B; r++) {
      t->dq[0][B + r] = -1.0f / (float)B;
      sum_actor -= t->q[0][B + r];
    }
  }
  float actor_loss = (float)(sum_actor / B);
  for (int i = 0; i < 2; i++) {
    memset(t->g_critic[i], 0, frl_mlp_n_params(t->critic[i]) * sizeof(float));
    frl__mlp_backward_rows(t->critic[i], t->g_critic[i], B, i == 0 && actor_step ? t->dact : NULL,
                           B, D, A, t->dq[i], i == 0 ? rows0 : B);
  }
  float norm_actor = 0.0f;
  if (actor_step) {
    memset(t->g_actor, 0, frl_mlp_n_params(t->actor) * sizeof(float));
    frl_mlp_backward(t->actor, t->g_actor, NULL, t->dact, B);
    norm_actor = frl_clip_grad_norm(t->g_actor, frl_mlp_n_params(t->actor), t->cfg.grad_clip);
  }
  float norm_c[2];
  for (int i = 0; i < 2; i++)
    norm_c[i] =
        frl_clip_grad_norm(t->g_critic[i], frl_mlp_n_params(t->critic[i]), t->cfg.grad_clip);
  /* Refuse a step that would poison the parameters and Adam moments (bad batch data or a
   * diverged network). */
  if (!isfinite(closs[0]) || !isfinite(closs[1]) || !isfinite(actor_loss) ||
      !isfinite(norm_actor) || !isfinite(norm_c[0]) || !isfinite(norm_c[1])) {
    frl_error(
        "td3: non-finite loss (critic %g %g, actor %g) or gradient norm (actor %g, critic "
        "%g %g) at update %llu; step skipped",
        (double)closs[0], (double)closs[1], (double)actor_loss, (double)norm_actor,
        (double)norm_c[0], (double)norm_c[1], (unsigned long long)t->updates);
    return -ERANGE;
  }
  if (td_abs)
    for (int r = 0; r < B; r++) td_abs[r] = fabsf(t->y[r] - fminf(t->q[0][r], t->q[1][r]));
  if (stats) {
    stats->critic1_loss = closs[0];
    stats->critic2_loss = closs[1];
    stats->actor_loss = actor_step ? actor_loss : t->last_actor_loss;
    stats->mean_q = (float)(sum_q / B);
    stats->actor_updated = actor_step;
  }
  return 0;
}

int frl_td3_update(frl_td3_t *t, const frl_batch_t *b, float *td_abs, frl_td3_stats_t *stats) {
  /* Delayed policy updates (Fujimoto et al. 2018, section 5.2): the actor and all targets move
   * on every policy_delay-th critic step (the 2nd, 4th, ... for the default 2). */
  const bool actor_step = (t->updates + 1) % (uint64_t)t->cfg.policy_delay == 0;
  frl_rng_t rng_before = t->rng;
  frl_td3_stats_t st;
  int rc = frl__td3_compute(t, b, actor_step, td_abs, &st);
  if (rc != 0) {
    t->rng = rng_before; /* a refused step leaves everything as it was */
    return rc;
  }
  for (int i = 0; i < 2; i++)
    frl_adam_step(t->adam_critic[i], frl_mlp_params(t->critic[i]), t->g_critic[i]);
  if (actor_step) {
    frl_adam_step(t->adam_actor, frl_mlp_params(t->actor), t->g_actor);
    frl__mlp_polyak(t->actor_target, t->actor, t->cfg.tau);
    for (int i = 0; i < 2; i++) frl__mlp_polyak(t->target[i], t->critic[i], t->cfg.tau);
    t->last_actor_loss = st.actor_loss;
  }
  t->updates++;
  if (stats) *stats = st;
  return 0;
}

/* ---- behaviour cloning ----------------------------------------------------------------------- */

int frl__td3_bc_compute(frl_td3_t *t, const frl_batch_t *b, float *loss, float *action_error) {
  assert(b && b->obs && b->action);
  if (b->B < 1 || b->B > t->cfg.batch) {
    frl_error("td3: behaviour-cloning batch size %d out of range [1, %d]", b->B, t->cfg.batch);
    return FRL_EDIM;
  }
  const int B = b->B, A = t->A;
  const size_t BA = (size_t)B * A;
  /* The policy is a deterministic map into [-1, 1] (tanh output), so cloning is regression of
   * mu(s) onto the demonstrated action (the BC term of Fujimoto & Gu 2021, TD3+BC, alone). A
   * target outside the range could only pull the output into tanh's flat tails. */
  float *target = t->a_next;
  for (size_t k = 0; k < BA; k++) target[k] = clip1(b->action[k]);
  float *mu = frl__mlp_output(t->actor);
  frl_mlp_forward(t->actor, mu, b->obs, B);
  double sum_err = 0.0;
  for (size_t k = 0; k < BA; k++) sum_err += fabsf(mu[k] - target[k]);
  float bc_loss = frl_mse_loss(t->dact, mu, target, b->weight, B, A);
  memset(t->g_actor, 0, frl_mlp_n_params(t->actor) * sizeof(float));
  frl_mlp_backward(t->actor, t->g_actor, NULL, t->dact, B);
  float norm = frl_clip_grad_norm(t->g_actor, frl_mlp_n_params(t->actor), t->cfg.grad_clip);
  if (!isfinite(bc_loss) || !isfinite(norm)) {
    frl_error("td3: non-finite behaviour-cloning loss %g or gradient norm %g; step skipped",
              (double)bc_loss, (double)norm);
    return -ERANGE;
  }
  if (loss) *loss = bc_loss;
  if (action_error) *action_error = (float)(sum_err / (double)BA);
  return 0;
}

int frl_td3_bc_update(frl_td3_t *t, const frl_batch_t *b, float *loss, float *action_error) {
  int rc = frl__td3_bc_compute(t, b, loss, action_error);
  if (rc != 0) return rc;
  frl_adam_step(t->adam_actor, frl_mlp_params(t->actor), t->g_actor);
  frl__mlp_polyak(t->actor_target, t->actor, 1.0f);
  return 0;
}
