/* agent.h: the learner's side of an algorithm: given sampled batches it updates its networks
 * (DQN, SAC or TD3) and reports per-item TD errors for prioritized replay; it exposes the
 * policy parameters that actors need, in the layout frl_policy_t expects. */
#ifndef FRL_AGENT_H
#define FRL_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn.h"
#include "policy.h"
#include "sac.h"

typedef struct {
  frl_policy_shape_t shape;
  int batch;
  float lr;             /* DQN Adam; SAC/TD3 actor and critics */
  float lr_alpha;       /* SAC temperature */
  float adam_eps, grad_clip, huber_delta;
  bool double_q;
  int target_period;    /* DQN hard copies */
  float tau;            /* SAC/TD3 Polyak */
  float init_alpha;
  float target_entropy; /* NAN: -act_dim */
  float policy_noise, noise_clip;
  int policy_delay;
  frl_sac_bc_loss_t sac_bc_loss; /* SAC behaviour cloning: MSE or NLL (--bc-loss) */
  uint64_t seed;
} frl_agent_config_t;

/* Samples as the replay returns them; observations already normalized by the learner. */
typedef struct {
  int B;
  const float *obs, *next_obs;
  const int32_t *action_index; /* DQN */
  const float *action;         /* SAC/TD3, [-1, 1] */
  const float *reward, *discount, *weight;
} frl_agent_batch_t;

/* Named scalars of the last update, for logs and the training table. */
typedef struct {
  float loss;       /* DQN loss; SAC/TD3 mean critic loss */
  float mean_q;
  float actor_loss; /* SAC/TD3 */
  float alpha;      /* SAC */
  float entropy;    /* SAC */
} frl_agent_stats_t;

typedef struct frl_agent frl_agent_t;

struct frl_config;
/* The agent configuration a run's settings (flags, environment, task preset) describe for a
 * policy shape: the one place that maps them, used by the learner and by `fleetrl export`. */
void frl_agent_config_from(const struct frl_config *cfg, const frl_policy_shape_t *shape,
                           frl_agent_config_t *out);

/* Returns NULL (after logging why) for an invalid configuration. */
frl_agent_t *frl_agent_new(const frl_agent_config_t *cfg);
void frl_agent_destroy(frl_agent_t **self_p);
/* One update. Returns 0, FRL_EDIM (bad batch), or -ERANGE (non-finite; nothing changed). */
int frl_agent_update(frl_agent_t *a, const frl_agent_batch_t *b, float *td_abs,
                     frl_agent_stats_t *stats);
/* Figures of one behaviour-cloning step, at the parameters before it. */
typedef struct {
  float loss;         /* SAC: NLL or MSE; TD3: MSE; DQN: large-margin loss */
  float action_error; /* SAC/TD3: mean |deterministic action - demonstrated| (normalized
                         units); DQN: fraction of rows whose greedy action is not the demo's */
} frl_agent_bc_stats_t;

/* One behaviour-cloning step: supervised learning of the policy toward the demonstrated actions
 * of b (obs, action_index or action, weight; the rest is not read), to pretrain it before RL
 * (Hester et al. 2018 pretrain DQN on demonstrations; Nair et al. 2018 add a BC loss to an
 * actor-critic's policy). DQN: DQfD's large-margin loss (frl_dqn_bc_update, margin 0.8); SAC:
 * cfg.sac_bc_loss (frl_sac_bc_update); TD3: MSE (frl_td3_bc_update). Each updates the policy's
 * parameters with the policy's own Adam, so a checkpoint holds BC's optimizer state too;
 * critics are untouched, target copies of the policy follow it, and frl_agent_updates does
 * not count BC steps. Writes *stats on success. Returns 0, FRL_EDIM (bad batch), or -ERANGE
 * (non-finite; nothing changed). */
int frl_agent_bc_update(frl_agent_t *a, const frl_agent_batch_t *b, frl_agent_bc_stats_t *stats);
/* The parameters actors act with (DQN online Q-network, SAC/TD3 actor network). */
const float *frl_agent_policy_params(frl_agent_t *a, size_t *n);
uint64_t frl_agent_updates(const frl_agent_t *a);
/* The policy shape the agent was built for (owned by a). */
const frl_policy_shape_t *frl_agent_shape(const frl_agent_t *a);
/* Appends the algorithm's whole learning state to st: frl_dqn_state, frl_sac_state or
 * frl_td3_state (their part names, unprefixed). The parts point into a. */
void frl_agent_state(frl_agent_t *a, frl_state_t *st);

#endif
