/* dqn.h: the DQN learner: online and target Q-networks, Adam, double-DQN n-step targets,
 * importance-weighted Huber loss and gradient clipping (Mnih et al. 2015; van Hasselt et al.
 * 2016; Wang et al. 2016; Schaul et al. 2016; Horgan et al. 2018). */
#ifndef FRL_DQN_H
#define FRL_DQN_H

#include <stdbool.h>
#include <stdint.h>

#include "nn.h"
#include "qnet.h"

typedef struct {
  frl_qnet_shape_t shape;
  int batch;                  /* max batch for updates */
  float lr;                   /* Adam learning rate */
  float adam_eps;
  float huber_delta;          /* 1.0 */
  float grad_clip;            /* global-norm clip; <= 0 disables */
  bool double_q;              /* select a' with online net, evaluate with target net */
  int target_period;          /* hard copy every K updates when tau == 0 */
  float tau;                  /* Polyak averaging per update when > 0 */
  uint64_t seed;
} frl_dqn_config_t;

/* One batch of n-step transitions: target y = reward + discount * Q_target(next_obs, a*),
 * discount already holds gamma^k (0 at a terminal), so the learner never needs gamma. */
typedef struct {
  int B;
  const float *obs;       /* [B, obs_dim] */
  const int32_t *action;  /* [B] */
  const float *reward;    /* [B] */
  const float *discount;  /* [B] */
  const float *next_obs;  /* [B, obs_dim] */
  const float *weight;    /* [B] importance weights, NULL for all ones */
} frl_dqn_batch_t;

typedef struct {
  float loss;             /* weighted Huber loss, mean over the batch */
  float grad_norm;        /* before clipping */
  float mean_q;           /* mean of Q(obs, action) over the batch, before the step */
  float mean_abs_td;
} frl_dqn_stats_t;

typedef struct frl_dqn frl_dqn_t;

/* New learner; the target starts as a copy of the online net. Adam uses beta1 0.9 and
 * beta2 0.999. Returns NULL, after logging the field and its bound, for an invalid config
 * (batch outside [1, 32768], lr <= 0, adam_eps < 0, huber_delta <= 0, NaN grad_clip, tau
 * outside [0, 1], target_period < 1 with tau 0, or an invalid shape). Not thread-safe. */
frl_dqn_t *frl_dqn_new(const frl_dqn_config_t *cfg);
/* Frees d and both networks; accepts NULL and sets *self_p to NULL. */
void frl_dqn_destroy(frl_dqn_t **self_p);

/* One gradient step. Writes td_abs[B] = |y - Q(obs, action)| (before the update) for priority
 * updates (td_abs and stats may be NULL); returns 0, or FRL_EDIM when B is outside
 * [1, cfg.batch] or an action is out of range, or -ERANGE when the loss or the gradient is not
 * finite (NaN/inf in the batch, or a diverged net). On error nothing is updated (parameters,
 * Adam state, update count, target) and td_abs/stats are not written. Allocation-free. */
int frl_dqn_update(frl_dqn_t *d, const frl_dqn_batch_t *batch, float *td_abs,
                   frl_dqn_stats_t *stats);

/* The margin l(a_E, a) of the supervised loss for a != a_E (Hester et al. 2018, section 4). */
#define FRL_DQN_BC_MARGIN 0.8f

/* One behaviour-cloning step (pretraining on demonstrations, see agent.h): the large-margin
 * supervised loss of DQfD (Hester et al. 2018, eq. 2),
 *   J_E = mean_b w_b [max_a (Q(s_b, a) + l(a_E, a)) - Q(s_b, a_E)],  l = margin for a != a_E,
 * with the demonstrated actions a_E = batch->action at batch->obs, w = batch->weight (NULL:
 * ones); only obs, action and weight are read. Its subgradient is +w/B at the maximizing action
 * (the lowest index on ties) and -w/B at a_E, zero once Q(s, a_E) leads every other action by
 * the margin. Adam with the learner's optimizer after the configured gradient clipping; the
 * target network is then set to the online one exactly, so that RL's first bootstraps use the
 * cloned values. The update count (and with it the phase of hard target copies) is not
 * touched. Writes, at the parameters before the step, *loss and *disagreement = the fraction
 * of rows whose greedy action is not a_E (each when not NULL). Returns 0, FRL_EDIM for B
 * outside [1, cfg.batch] or an action out of range, FRL_EUSAGE for a margin that is not finite
 * and >= 0, or -ERANGE when the loss or gradient is not finite (nothing changed, outputs not
 * written). Allocation-free. */
int frl_dqn_bc_update(frl_dqn_t *d, const frl_dqn_batch_t *batch, float margin, float *loss,
                      float *disagreement);

/* The online network (parameters to publish; greedy evaluation) and the target network,
 * both owned by d. Using one for a forward between updates is fine (it only overwrites its
 * workspace); writing its parameters changes what the next update starts from. */
frl_qnet_t *frl_dqn_online(frl_dqn_t *d);
frl_qnet_t *frl_dqn_target(frl_dqn_t *d);
/* Number of successful frl_dqn_update calls. */
uint64_t frl_dqn_updates(const frl_dqn_t *d);
/* Appends d's learning state to st (see nn.h): "online" and "target" parameter blocks,
 * Adam ("adam.m", "adam.v", "adam.t") and "updates", which also fixes the phase of the hard
 * target copies. The parts point into d; writing them between updates restores a learner
 * exactly (the next updates are bit-identical to those of the learner they came from). */
void frl_dqn_state(frl_dqn_t *d, frl_state_t *st);

/* Computes targets y[B] for a batch without updating anything (exposed for tests; B must be
 * in [1, cfg.batch], a programmer error otherwise):
 * y = reward + discount * Q_target(next_obs, argmax_a Q_online(next_obs, a)) when double_q,
 * else reward + discount * max_a Q_target(next_obs, a). */
void frl_dqn_targets(frl_dqn_t *d, const frl_dqn_batch_t *batch, float *y);

/* Internal (tests): frl_dqn_bc_update without the optimizer step and the target copy; the
 * gradient of the online parameters (after clipping) is then frl__dqn_grad(d). */
int frl__dqn_bc_compute(frl_dqn_t *d, const frl_dqn_batch_t *batch, float margin, float *loss,
                        float *disagreement);
const float *frl__dqn_grad(const frl_dqn_t *d);

/* Actor-side initial priority (Ape-X): |R + discount * max_a Q(s',a) - Q(s,a)| with one
 * network, for B transitions (batch->weight is ignored). Uses q's workspace, no allocation.
 * Returns 0; FRL_EDIM when B is outside [1, max_batch of q] or an action is out of range
 * (td_abs not written); -ERANGE when some td_abs is not finite (all entries written). */
int frl_dqn_td_abs(frl_qnet_t *q, const frl_dqn_batch_t *batch, float *td_abs);

#endif
