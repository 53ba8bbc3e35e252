/* policy.c: the actor-side policy of each algorithm behind one interface. */
#include "policy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "env.h"
#include "dqn.h"
#include "log.h"
#include "mlp.h"
#include "normalizer.h"
#include "qnet.h"
#include "sac.h"
#include "td3.h"

struct frl_policy {
  frl_policy_shape_t shape;
  int max_batch;
  frl_qnet_t *q;   /* DQN */
  frl_mlp_t *net;  /* SAC, TD3 */
  bool normalize;
  float *mean, *std;
  float *scratch;  /* normalized observations: 2 * max_batch rows */
};

int frl_algo_parse(const char *s, frl_algo_t *out) {
  static const char *names[] = {"dqn", "sac", "td3"};
  for (int i = 0; i < 3; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = (frl_algo_t)i;
      return 0;
    }
  return FRL_EUSAGE;
}

const char *frl_algo_name(frl_algo_t a) {
  switch (a) {
  case FRL_ALGO_DQN: return "dqn";
  case FRL_ALGO_SAC: return "sac";
  case FRL_ALGO_TD3: return "td3";
  }
  return "unknown";
}

int frl_policy_shape_from_config(const frl_config_t *cfg, const frl_env_spec_t *spec,
                                 frl_policy_shape_t *out, char *err, size_t errlen) {
  frl_policy_shape_t s = {.obs_dim = spec->obs_dim, .hidden1 = cfg->hidden1,
                          .hidden2 = cfg->hidden2, .dueling = cfg->dueling};
  if (frl_algo_parse(cfg->algo, &s.algo) != 0) {
    snprintf(err, errlen, "--algo: '%s' is not one of dqn|sac|td3", cfg->algo);
    return FRL_EUSAGE;
  }
  if (s.algo == FRL_ALGO_DQN) {
    if (spec->n_actions <= 0) {
      snprintf(err, errlen, "--env %s has continuous actions; --algo dqn needs a discrete one "
               "(use sac or td3)", spec->name);
      return FRL_EUSAGE;
    }
    s.act_dim = 1;
    s.n_actions = spec->n_actions;
  } else {
    if (spec->n_actions > 0) {
      snprintf(err, errlen, "--env %s has discrete actions; --algo %s needs continuous ones "
               "(use dqn)", spec->name, cfg->algo);
      return FRL_EUSAGE;
    }
    if (cfg->hidden2 <= 0) {
      snprintf(err, errlen, "--hidden2: %s needs two hidden layers (got 0)", cfg->algo);
      return FRL_EUSAGE;
    }
    s.act_dim = spec->act_dim;
  }
  *out = s;
  return 0;
}

size_t frl_policy_param_count(const frl_policy_shape_t *s) {
  if (s->algo == FRL_ALGO_DQN) {
    frl_qnet_shape_t qs = {.obs_dim = s->obs_dim, .n_actions = s->n_actions,
                           .n_hidden = s->hidden2 > 0 ? 2 : 1,
                           .hidden = {s->hidden1, s->hidden2}, .dueling = s->dueling};
    return frl_qnet_param_count(&qs);
  }
  frl_mlp_shape_t ms = s->algo == FRL_ALGO_SAC
                           ? frl_sac_actor_shape(s->obs_dim, s->act_dim, s->hidden1, s->hidden2)
                           : frl_td3_actor_shape(s->obs_dim, s->act_dim, s->hidden1, s->hidden2);
  return frl_mlp_param_count(&ms);
}

frl_policy_t *frl_policy_new(const frl_policy_shape_t *shape, int max_batch, frl_rng_t *rng) {
  if (shape->obs_dim < 1 || shape->obs_dim > 4096 || max_batch < 1) {
    frl_error("policy: obs_dim %d must be in [1, 4096] and max_batch %d >= 1", shape->obs_dim,
              max_batch);
    return NULL;
  }
  frl_policy_t *p = frl_xcalloc(1, sizeof *p);
  p->shape = *shape;
  p->max_batch = max_batch;
  if (shape->algo == FRL_ALGO_DQN) {
    frl_qnet_shape_t qs = {.obs_dim = shape->obs_dim, .n_actions = shape->n_actions,
                           .n_hidden = shape->hidden2 > 0 ? 2 : 1,
                           .hidden = {shape->hidden1, shape->hidden2}, .dueling = shape->dueling};
    p->q = frl_qnet_new(&qs, max_batch, rng);
  } else {
    frl_mlp_shape_t ms =
        shape->algo == FRL_ALGO_SAC
            ? frl_sac_actor_shape(shape->obs_dim, shape->act_dim, shape->hidden1, shape->hidden2)
            : frl_td3_actor_shape(shape->obs_dim, shape->act_dim, shape->hidden1, shape->hidden2);
    p->net = frl_mlp_new(&ms, 1, rng);
  }
  if (!p->q && !p->net) {
    free(p);
    return NULL;
  }
  p->mean = frl_xcalloc((size_t)shape->obs_dim, sizeof(float));
  p->std = frl_xcalloc((size_t)shape->obs_dim, sizeof(float));
  p->scratch = frl_xmalloc(sizeof(float) * 2 * (size_t)max_batch * (size_t)shape->obs_dim);
  return p;
}

void frl_policy_destroy(frl_policy_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_policy_t *p = *self_p;
  frl_qnet_destroy(&p->q);
  frl_mlp_destroy(&p->net);
  free(p->mean);
  free(p->std);
  free(p->scratch);
  free(p);
  *self_p = NULL;
}

const frl_policy_shape_t *frl_policy_shape(const frl_policy_t *p) { return &p->shape; }

size_t frl_policy_n_params(const frl_policy_t *p) {
  return p->q ? frl_qnet_n_params(p->q) : frl_mlp_n_params(p->net);
}

float *frl_policy_params(frl_policy_t *p) {
  return p->q ? frl_qnet_params(p->q) : frl_mlp_params(p->net);
}

int frl_policy_set_normalizer(frl_policy_t *p, const float *mean, const float *std, size_t n) {
  if (!mean) {
    p->normalize = false;
    return 0;
  }
  if (n != (size_t)p->shape.obs_dim) return FRL_EDIM;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(mean[i]) || !isfinite(std[i]) || !(std[i] > 0)) return FRL_EDIM;
  memcpy(p->mean, mean, n * sizeof(float));
  memcpy(p->std, std, n * sizeof(float));
  p->normalize = true;
  return 0;
}

bool frl_policy_has_normalizer(const frl_policy_t *p) { return p->normalize; }

/* The observation rows as the network sees them. */
static const float *prepare(frl_policy_t *p, const float *obs, int B, int slot) {
  if (!p->normalize) return obs;
  float *out = p->scratch + (size_t)slot * (size_t)p->max_batch * (size_t)p->shape.obs_dim;
  frl_normalize(out, obs, p->mean, p->std, B, p->shape.obs_dim);
  return out;
}

void frl_policy_act(frl_policy_t *p, const float *obs, double exploration, frl_rng_t *rng,
                    float *action) {
  const float *x = prepare(p, obs, 1, 0);
  switch (p->shape.algo) {
  case FRL_ALGO_DQN:
    if (exploration > 0 && frl_rng_uniform(rng) < exploration)
      action[0] = (float)frl_rng_below(rng, (uint32_t)p->shape.n_actions);
    else
      action[0] = (float)frl_qnet_argmax(p->q, x);
    break;
  case FRL_ALGO_SAC:
    frl_sac_act(p->net, x, exploration <= 0, rng, action);
    break;
  case FRL_ALGO_TD3:
    frl_td3_act(p->net, x, (float)exploration, rng, action);
    break;
  }
}

int frl_policy_priorities(frl_policy_t *p, int B, const float *obs, const int32_t *action,
                          const float *reward, const float *discount, const float *next_obs,
                          float *td_abs) {
  if (p->shape.algo != FRL_ALGO_DQN) return FRL_EUSAGE;
  if (B < 1 || B > p->max_batch) return FRL_EDIM;
  frl_dqn_batch_t db = {.B = B, .obs = prepare(p, obs, B, 0), .action = action,
                        .reward = reward, .discount = discount,
                        .next_obs = prepare(p, next_obs, B, 1)};
  return frl_dqn_td_abs(p->q, &db, td_abs);
}

void frl_policy_scale(float *out, const float *a, const float *low, const float *high,
                      float scale, int n) {
  for (int i = 0; i < n; i++)
    out[i] = 0.5f * (low[i] + high[i]) + scale * a[i] * 0.5f * (high[i] - low[i]);
}
