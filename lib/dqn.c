/* dqn.c: the DQN learner step (double-DQN n-step targets, importance-weighted Huber loss,
 * global-norm clipping, Adam, hard or Polyak target updates) and the actor's initial priority. */
#include "dqn.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "log.h"
#include "nn.h"
#include "rng.h"

/* Adam's moment decays are not part of the config: the defaults of Kingma & Ba 2015 are what
 * every DQN variant cited in dqn.h uses. */
#define FRL_DQN_BETA1 0.9f
#define FRL_DQN_BETA2 0.999f
/* The online net evaluates obs and next_obs as one 2B-row forward, so a batch must fit twice
 * in the qnet's batch limit. */
#define FRL_DQN_MAX_BATCH 32768

struct frl_dqn {
  frl_dqn_config_t cfg;
  frl_qnet_t *online, *target;
  frl_adam_t *adam;
  size_t n_params;
  float *grads;     /* [n_params] */
  float *pair_obs;  /* [2 batch, obs_dim]: obs rows then next_obs rows (double DQN) */
  float *q_online;  /* [2 batch, A]: Q(obs) rows then Q(next_obs) rows */
  float *q_target;  /* [batch, A]: Q_target(next_obs) */
  float *y;         /* [batch] targets */
  float *pred;      /* [batch] Q(obs, action) */
  float *dpred;     /* [batch] */
  float *dq;        /* [batch, A] */
  uint64_t updates;
};

/* Validates a config (user input): 0 or FRL_EUSAGE after logging the field and its bound. */
static int config_check(const frl_dqn_config_t *c) {
  if (c->batch < 1 || c->batch > FRL_DQN_MAX_BATCH) {
    frl_error("dqn: batch %d out of range [1, %d]", c->batch, FRL_DQN_MAX_BATCH);
    return FRL_EUSAGE;
  }
  if (!(c->lr > 0.0f) || !isfinite(c->lr)) {
    frl_error("dqn: lr %g must be finite and > 0", (double)c->lr);
    return FRL_EUSAGE;
  }
  if (!(c->adam_eps >= 0.0f) || !isfinite(c->adam_eps)) {
    frl_error("dqn: adam_eps %g must be finite and >= 0", (double)c->adam_eps);
    return FRL_EUSAGE;
  }
  if (!(c->huber_delta > 0.0f) || !isfinite(c->huber_delta)) {
    frl_error("dqn: huber_delta %g must be finite and > 0", (double)c->huber_delta);
    return FRL_EUSAGE;
  }
  if (isnan(c->grad_clip)) {
    frl_error("dqn: grad_clip is NaN (use a value <= 0 to disable clipping)");
    return FRL_EUSAGE;
  }
  if (!(c->tau >= 0.0f && c->tau <= 1.0f)) {
    frl_error("dqn: tau %g out of range [0, 1]", (double)c->tau);
    return FRL_EUSAGE;
  }
  if (c->tau == 0.0f && c->target_period < 1) {
    frl_error("dqn: target_period %d must be >= 1 when tau is 0", c->target_period);
    return FRL_EUSAGE;
  }
  return 0;
}

frl_dqn_t *frl_dqn_new(const frl_dqn_config_t *cfg) {
  if (config_check(cfg) != 0) return NULL;
  frl_dqn_t *d = frl_xcalloc(1, sizeof *d);
  d->cfg = *cfg;
  frl_rng_t rng;
  frl_rng_seed(&rng, cfg->seed);
  const int online_batch = cfg->double_q ? 2 * cfg->batch : cfg->batch;
  d->online = frl_qnet_new(&cfg->shape, online_batch, &rng);
  if (!d->online) goto fail;
  d->target = frl_qnet_new(&cfg->shape, cfg->batch, &rng);
  if (!d->target) goto fail;
  d->n_params = frl_qnet_n_params(d->online);
  /* The target starts as an exact copy (Mnih et al. 2015, Algorithm 1: theta^- = theta). */
  memcpy(frl_qnet_params(d->target), frl_qnet_params(d->online), d->n_params * sizeof(float));
  d->adam = frl_adam_new(d->n_params, cfg->lr, FRL_DQN_BETA1, FRL_DQN_BETA2, cfg->adam_eps);

  const size_t MB = (size_t)cfg->batch, A = (size_t)cfg->shape.n_actions;
  const size_t D = (size_t)cfg->shape.obs_dim;
  d->grads = frl_xcalloc(d->n_params, sizeof *d->grads);
  d->pair_obs = frl_xcalloc(2 * MB * D, sizeof(float));
  d->q_online = frl_xcalloc(2 * MB * A, sizeof(float));
  d->q_target = frl_xcalloc(MB * A, sizeof(float));
  d->y = frl_xcalloc(MB, sizeof(float));
  d->pred = frl_xcalloc(MB, sizeof(float));
  d->dpred = frl_xcalloc(MB, sizeof(float));
  d->dq = frl_xcalloc(MB * A, sizeof(float));
  return d;

fail:
  frl_dqn_destroy(&d);
  return NULL;
}

void frl_dqn_destroy(frl_dqn_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_dqn_t *d = *self_p;
  free(d->dq);
  free(d->dpred);
  free(d->pred);
  free(d->y);
  free(d->q_target);
  free(d->q_online);
  free(d->pair_obs);
  free(d->grads);
  frl_adam_destroy(&d->adam);
  frl_qnet_destroy(&d->target);
  frl_qnet_destroy(&d->online);
  free(d);
  *self_p = NULL;
}

frl_qnet_t *frl_dqn_online(frl_dqn_t *d) { return d->online; }
frl_qnet_t *frl_dqn_target(frl_dqn_t *d) { return d->target; }
uint64_t frl_dqn_updates(const frl_dqn_t *d) { return d->updates; }

void frl_dqn_state(frl_dqn_t *d, frl_state_t *st) {
  frl_state_add(st, NULL, "online", FRL_STATE_F32, 0, frl_qnet_params(d->online), d->n_params);
  frl_state_add(st, NULL, "target", FRL_STATE_F32, 0, frl_qnet_params(d->target), d->n_params);
  frl_adam_state(d->adam, "adam", st);
  frl_state_add(st, NULL, "updates", FRL_STATE_U64, 0, &d->updates, 1);
}

static int argmax_row(const float *q, int A) {
  int best = 0;
  for (int a = 1; a < A; a++)
    if (q[a] > q[best]) best = a;
  return best;
}

/* y = r + discount * bootstrap. Double DQN (van Hasselt et al. 2016, eq. 4) picks a* with the
 * online net and evaluates it with the target net, which removes max's upward bias; plain DQN
 * (Mnih et al. 2015) takes the target net's max. discount is gamma^k of the n-step return, 0
 * after a terminal (Horgan et al. 2018, eq. 1), so the bootstrap term vanishes there. */
static void targets_from_q(float *y, const frl_dqn_batch_t *b, const float *q_next_online,
                           const float *q_next_target, int A, bool double_q) {
  for (int r = 0; r < b->B; r++) {
    const float *qt = q_next_target + (size_t)r * A;
    int a_star = double_q ? argmax_row(q_next_online + (size_t)r * A, A) : argmax_row(qt, A);
    /* At a terminal the next observation may be arbitrary; 0 * NaN must not leak in. */
    y[r] = b->discount[r] != 0.0f ? b->reward[r] + b->discount[r] * qt[a_star] : b->reward[r];
  }
}

/* Checks the data a batch carries (it comes from replay, i.e. from the network): batch size
 * and action indices. */
static int batch_check(const frl_dqn_batch_t *b, int max_batch, int A) {
  if (b->B < 1 || b->B > max_batch) {
    frl_error("dqn: batch size %d out of range [1, %d]", b->B, max_batch);
    return FRL_EDIM;
  }
  for (int r = 0; r < b->B; r++) {
    if (b->action[r] < 0 || b->action[r] >= A) {
      frl_error("dqn: action[%d] = %d out of range [0, %d)", r, (int)b->action[r], A);
      return FRL_EDIM;
    }
  }
  return 0;
}

void frl_dqn_targets(frl_dqn_t *d, const frl_dqn_batch_t *batch, float *y) {
  const int B = batch->B, A = d->cfg.shape.n_actions;
  assert(B >= 1 && B <= d->cfg.batch);
  frl_qnet_forward(d->target, d->q_target, batch->next_obs, B);
  if (d->cfg.double_q) frl_qnet_forward(d->online, d->q_online, batch->next_obs, B);
  targets_from_q(y, batch, d->q_online, d->q_target, A, d->cfg.double_q);
}

int frl_dqn_update(frl_dqn_t *d, const frl_dqn_batch_t *batch, float *td_abs,
                   frl_dqn_stats_t *stats) {
  const int A = d->cfg.shape.n_actions, D = d->cfg.shape.obs_dim;
  int rc = batch_check(batch, d->cfg.batch, A);
  if (rc != 0) return rc;
  const int B = batch->B;
  const size_t BD = (size_t)B * D;

  /* Online forward. With double DQN, obs and next_obs go through the online net as one
   * 2B-row forward (one GEMM per layer instead of two, same parameters since both are
   * evaluated before the step); backward then uses only the first B rows. */
  const float *q_next_online = NULL;
  if (d->cfg.double_q) {
    memcpy(d->pair_obs, batch->obs, BD * sizeof(float));
    memcpy(d->pair_obs + BD, batch->next_obs, BD * sizeof(float));
    frl_qnet_forward(d->online, d->q_online, d->pair_obs, 2 * B);
    q_next_online = d->q_online + (size_t)B * A;
  } else {
    frl_qnet_forward(d->online, d->q_online, batch->obs, B);
  }
  frl_qnet_forward(d->target, d->q_target, batch->next_obs, B);
  targets_from_q(d->y, batch, q_next_online, d->q_target, A, d->cfg.double_q);

  /* Only Q(s, a) for the taken action enters the loss, so dL/dQ is zero elsewhere. The
   * targets are constants (no gradient through the target net or the argmax). */
  double sum_q = 0.0;
  for (int r = 0; r < B; r++) {
    d->pred[r] = d->q_online[(size_t)r * A + batch->action[r]];
    sum_q += d->pred[r];
  }
  /* Schaul et al. 2016, Algorithm 1 line 11: the TD error weighted by w_i enters the loss. */
  float loss = frl_huber_loss(d->dpred, d->pred, d->y, batch->weight, B, d->cfg.huber_delta);
  memset(d->dq, 0, (size_t)B * A * sizeof(float));
  for (int r = 0; r < B; r++) d->dq[(size_t)r * A + batch->action[r]] = d->dpred[r];

  memset(d->grads, 0, d->n_params * sizeof(float));
  frl_qnet_backward(d->online, d->grads, d->dq, B);
  float norm = frl_clip_grad_norm(d->grads, d->n_params, d->cfg.grad_clip);

  /* A non-finite loss or gradient (a NaN/inf reward, observation or weight that got past
   * ingest, or a diverged network) would poison every parameter and Adam's moments at once;
   * refuse the step and leave the learner exactly as it was. */
  if (!isfinite(loss) || !isfinite(norm)) {
    frl_error("dqn: non-finite loss %g or gradient norm %g at update %llu; step skipped",
              (double)loss, (double)norm, (unsigned long long)d->updates);
    return -ERANGE;
  }

  frl_adam_step(d->adam, frl_qnet_params(d->online), d->grads);
  d->updates++;

  float *tp = frl_qnet_params(d->target);
  const float *op = frl_qnet_params(d->online);
  if (d->cfg.tau > 0.0f) {
    /* Polyak averaging (Lillicrap et al. 2016): theta^- <- tau theta + (1 - tau) theta^-. */
    const float tau = d->cfg.tau;
    for (size_t k = 0; k < d->n_params; k++) tp[k] += tau * (op[k] - tp[k]);
  } else if (d->updates % (uint64_t)d->cfg.target_period == 0) {
    memcpy(tp, op, d->n_params * sizeof(float));
  }

  double sum_td = 0.0;
  for (int r = 0; r < B; r++) {
    float td = fabsf(d->y[r] - d->pred[r]);
    if (td_abs) td_abs[r] = td;
    sum_td += td;
  }
  if (stats) {
    stats->loss = loss;
    stats->grad_norm = norm;
    stats->mean_q = (float)(sum_q / B);
    stats->mean_abs_td = (float)(sum_td / B);
  }
  return 0;
}

int frl_dqn_td_abs(frl_qnet_t *q, const frl_dqn_batch_t *batch, float *td_abs) {
  const int A = frl_qnet_shape(q)->n_actions;
  int rc = batch_check(batch, frl_qnet_max_batch(q), A);
  if (rc != 0) return rc;
  const int B = batch->B;
  float *qv = frl__qnet_scratch(q);
  /* Ape-X (Horgan et al. 2018, section 3): the actor's priority uses its own copy of the
   * network for both terms. td_abs holds the target y until the second forward. */
  frl_qnet_forward(q, qv, batch->next_obs, B);
  for (int r = 0; r < B; r++) {
    const float *row = qv + (size_t)r * A;
    float disc = batch->discount[r];
    td_abs[r] = disc != 0.0f ? batch->reward[r] + disc * row[argmax_row(row, A)] : batch->reward[r];
  }
  frl_qnet_forward(q, qv, batch->obs, B);
  rc = 0;
  for (int r = 0; r < B; r++) {
    td_abs[r] = fabsf(td_abs[r] - qv[(size_t)r * A + batch->action[r]]);
    if (!isfinite(td_abs[r])) rc = -ERANGE;
  }
  return rc;
}

/* ---- behaviour cloning ----------------------------------------------------------------------- */

/* The large-margin loss of DQfD (Hester et al. 2018, eq. 2, after Piot et al. 2014) rather than
 * cross-entropy with Q as logits: a softmax over Q values keeps pushing Q(s, a_E) - Q(s, a) up
 * without bound even where it already ranks a_E first, inflating the Q scale that TD learning
 * must then undo, while the margin loss is zero once a_E leads by the margin and leaves the
 * values otherwise free to become returns. */
int frl__dqn_bc_compute(frl_dqn_t *d, const frl_dqn_batch_t *batch, float margin, float *loss,
                        float *disagreement) {
  const int A = d->cfg.shape.n_actions;
  if (!(margin >= 0.0f) || !isfinite(margin)) {
    frl_error("dqn: behaviour-cloning margin %g must be finite and >= 0", (double)margin);
    return FRL_EUSAGE;
  }
  int rc = batch_check(batch, d->cfg.batch, A);
  if (rc != 0) return rc;
  const int B = batch->B;
  frl_qnet_forward(d->online, d->q_online, batch->obs, B);
  memset(d->dq, 0, (size_t)B * A * sizeof(float));
  double sum = 0.0;
  int disagree = 0;
  for (int r = 0; r < B; r++) {
    const float *q = d->q_online + (size_t)r * A;
    const int a_e = batch->action[r];
    int best = 0;
    float best_v = q[0] + (a_e == 0 ? 0.0f : margin);
    for (int a = 1; a < A; a++) {
      float v = q[a] + (a == a_e ? 0.0f : margin);
      if (v > best_v) best = a, best_v = v;
    }
    const float w = batch->weight ? batch->weight[r] : 1.0f;
    sum += (double)w * ((double)best_v - q[a_e]);
    d->dq[(size_t)r * A + best] += w / (float)B;
    d->dq[(size_t)r * A + a_e] -= w / (float)B;
    disagree += argmax_row(q, A) != a_e;
  }
  const float bc_loss = (float)(sum / B);
  memset(d->grads, 0, d->n_params * sizeof(float));
  frl_qnet_backward(d->online, d->grads, d->dq, B);
  float norm = frl_clip_grad_norm(d->grads, d->n_params, d->cfg.grad_clip);
  if (!isfinite(bc_loss) || !isfinite(norm)) {
    frl_error("dqn: non-finite behaviour-cloning loss %g or gradient norm %g; step skipped",
              (double)bc_loss, (double)norm);
    return -ERANGE;
  }
  if (loss) *loss = bc_loss;
  if (disagreement) *disagreement = (float)disagree / (float)B;
  return 0;
}

int frl_dqn_bc_update(frl_dqn_t *d, const frl_dqn_batch_t *batch, float margin, float *loss,
                      float *disagreement) {
  int rc = frl__dqn_bc_compute(d, batch, margin, loss, disagreement);
  if (rc != 0) return rc;
  frl_adam_step(d->adam, frl_qnet_params(d->online), d->grads);
  memcpy(frl_qnet_params(d->target), frl_qnet_params(d->online), d->n_params * sizeof(float));
  return 0;
}

const float *frl__dqn_grad(const frl_dqn_t *d) { return d->grads; }
