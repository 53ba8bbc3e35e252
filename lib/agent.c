/* agent.c: dispatch of learner updates to DQN, SAC or TD3. */
#include "agent.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "dqn.h"
#include "log.h"
#include "mlp.h"
#include "qnet.h"
#include "sac.h"
#include "td3.h"

struct frl_agent {
  frl_algo_t algo;
  frl_policy_shape_t shape;
  frl_sac_bc_loss_t sac_bc_loss;
  frl_dqn_t *dqn;
  frl_sac_t *sac;
  frl_td3_t *td3;
};

frl_agent_t *frl_agent_new(const frl_agent_config_t *c) {
  frl_agent_t *a = frl_xcalloc(1, sizeof *a);
  const frl_policy_shape_t *s = &c->shape;
  a->algo = s->algo;
  a->shape = *s;
  a->sac_bc_loss = c->sac_bc_loss;
  switch (s->algo) {
  case FRL_ALGO_DQN: {
    frl_dqn_config_t dc = {.shape = {.obs_dim = s->obs_dim, .n_actions = s->n_actions,
                                     .n_hidden = s->hidden2 > 0 ? 2 : 1,
                                     .hidden = {s->hidden1, s->hidden2}, .dueling = s->dueling},
                           .batch = c->batch, .lr = c->lr, .adam_eps = c->adam_eps,
                           .huber_delta = c->huber_delta, .grad_clip = c->grad_clip,
                           .double_q = c->double_q, .target_period = c->target_period,
                           .seed = c->seed};
    a->dqn = frl_dqn_new(&dc);
    break;
  }
  case FRL_ALGO_SAC: {
    frl_sac_config_t sc = {.obs_dim = s->obs_dim, .act_dim = s->act_dim, .hidden1 = s->hidden1,
                           .hidden2 = s->hidden2, .batch = c->batch, .lr_actor = c->lr,
                           .lr_critic = c->lr, .lr_alpha = c->lr_alpha, .tau = c->tau,
                           .init_alpha = c->init_alpha, .auto_alpha = true,
                           .target_entropy = c->target_entropy, .grad_clip = c->grad_clip,
                           .seed = c->seed};
    a->sac = frl_sac_new(&sc);
    break;
  }
  case FRL_ALGO_TD3: {
    frl_td3_config_t tc = {.obs_dim = s->obs_dim, .act_dim = s->act_dim, .hidden1 = s->hidden1,
                           .hidden2 = s->hidden2, .batch = c->batch, .lr_actor = c->lr,
                           .lr_critic = c->lr, .tau = c->tau, .policy_noise = c->policy_noise,
                           .noise_clip = c->noise_clip, .policy_delay = c->policy_delay,
                           .grad_clip = c->grad_clip, .seed = c->seed};
    a->td3 = frl_td3_new(&tc);
    break;
  }
  }
  if (!a->dqn && !a->sac && !a->td3) {
    free(a);
    return NULL;
  }
  return a;
}

void frl_agent_destroy(frl_agent_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_agent_t *a = *self_p;
  frl_dqn_destroy(&a->dqn);
  frl_sac_destroy(&a->sac);
  frl_td3_destroy(&a->td3);
  free(a);
  *self_p = NULL;
}

int frl_agent_update(frl_agent_t *a, const frl_agent_batch_t *b, float *td_abs,
                     frl_agent_stats_t *st) {
  *st = (frl_agent_stats_t){.alpha = NAN, .entropy = NAN, .actor_loss = NAN};
  int rc;
  if (a->dqn) {
    frl_dqn_batch_t db = {.B = b->B, .obs = b->obs, .action = b->action_index,
                          .reward = b->reward, .discount = b->discount,
                          .next_obs = b->next_obs, .weight = b->weight};
    frl_dqn_stats_t ds;
    rc = frl_dqn_update(a->dqn, &db, td_abs, &ds);
    if (rc == 0) {
      st->loss = ds.loss;
      st->mean_q = ds.mean_q;
    }
    return rc;
  }
  frl_batch_t cb = {.B = b->B, .obs = b->obs, .action = b->action, .reward = b->reward,
                    .discount = b->discount, .next_obs = b->next_obs, .weight = b->weight};
  if (a->sac) {
    frl_sac_stats_t ss;
    rc = frl_sac_update(a->sac, &cb, td_abs, &ss);
    if (rc == 0) {
      st->loss = 0.5f * (ss.critic1_loss + ss.critic2_loss);
      st->mean_q = ss.mean_q;
      st->actor_loss = ss.actor_loss;
      st->alpha = ss.alpha;
      st->entropy = ss.entropy;
    }
    return rc;
  }
  frl_td3_stats_t ts;
  rc = frl_td3_update(a->td3, &cb, td_abs, &ts);
  if (rc == 0) {
    st->loss = 0.5f * (ts.critic1_loss + ts.critic2_loss);
    st->mean_q = ts.mean_q;
    st->actor_loss = ts.actor_loss;
  }
  return rc;
}

int frl_agent_bc_update(frl_agent_t *a, const frl_agent_batch_t *b, frl_agent_bc_stats_t *st) {
  float loss = NAN, err = NAN;
  int rc;
  if (a->dqn) {
    frl_dqn_batch_t db = {.B = b->B, .obs = b->obs, .action = b->action_index,
                          .weight = b->weight};
    rc = frl_dqn_bc_update(a->dqn, &db, FRL_DQN_BC_MARGIN, &loss, &err);
  } else {
    frl_batch_t cb = {.B = b->B, .obs = b->obs, .action = b->action, .weight = b->weight};
    rc = a->sac ? frl_sac_bc_update(a->sac, &cb, a->sac_bc_loss, &loss, &err)
                : frl_td3_bc_update(a->td3, &cb, &loss, &err);
  }
  if (rc == 0) *st = (frl_agent_bc_stats_t){.loss = loss, .action_error = err};
  return rc;
}

const float *frl_agent_policy_params(frl_agent_t *a, size_t *n) {
  if (a->dqn) {
    frl_qnet_t *q = frl_dqn_online(a->dqn);
    *n = frl_qnet_n_params(q);
    return frl_qnet_params(q);
  }
  frl_mlp_t *m = a->sac ? frl_sac_actor(a->sac) : frl_td3_actor(a->td3);
  *n = frl_mlp_n_params(m);
  return frl_mlp_params(m);
}

uint64_t frl_agent_updates(const frl_agent_t *a) {
  if (a->dqn) return frl_dqn_updates(a->dqn);
  return a->sac ? frl_sac_updates(a->sac) : frl_td3_updates(a->td3);
}

const frl_policy_shape_t *frl_agent_shape(const frl_agent_t *a) { return &a->shape; }

void frl_agent_state(frl_agent_t *a, frl_state_t *st) {
  if (a->dqn)
    frl_dqn_state(a->dqn, st);
  else if (a->sac)
    frl_sac_state(a->sac, st);
  else
    frl_td3_state(a->td3, st);
}

void frl_agent_config_from(const frl_config_t *cfg, const frl_policy_shape_t *shape,
                           frl_agent_config_t *out) {
  *out = (frl_agent_config_t){.shape = *shape, .batch = cfg->batch, .lr = (float)cfg->lr,
                              .lr_alpha = (float)cfg->lr_alpha, .adam_eps = (float)cfg->adam_eps,
                              .grad_clip = (float)cfg->grad_clip,
                              .huber_delta = (float)cfg->huber_delta, .double_q = cfg->double_q,
                              .target_period = cfg->target_period, .tau = (float)cfg->tau,
                              .init_alpha = (float)cfg->init_alpha, .target_entropy = NAN,
                              .policy_noise = (float)cfg->policy_noise,
                              .noise_clip = (float)cfg->noise_clip,
                              .policy_delay = cfg->policy_delay,
                              .sac_bc_loss = strcmp(cfg->bc_loss, "nll") == 0 ? FRL_SAC_BC_NLL
                                                                              : FRL_SAC_BC_MSE,
                              .seed = cfg->seed};
}
