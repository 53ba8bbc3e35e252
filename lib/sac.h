/* sac.h: Soft Actor-Critic (Haarnoja et al. 2018, "SAC: Algorithms and Applications"):
 * twin Q critics with Polyak-averaged targets, a tanh-squashed Gaussian policy, and automatic
 * temperature tuning toward a target entropy (default -act_dim; the seed code's target entropy
 * was wrong). The policy side (frl_sac_act) is shared by actors and the learner. */
#ifndef FRL_SAC_H
#define FRL_SAC_H

#include <stdbool.h>
#include <stdint.h>

#include "batch.h"
#include "mlp.h"
#include "nn.h"
#include "rng.h"

typedef struct {
  int obs_dim, act_dim;
  int hidden1, hidden2;     /* 256, 256 for actor and critics */
  int batch;                /* max update batch (256) */
  float lr_actor, lr_critic, lr_alpha; /* 3e-4 */
  float tau;                /* 0.005 */
  float init_alpha;         /* 1.0 (log alpha 0) */
  bool auto_alpha;          /* learn alpha */
  float target_entropy;     /* NAN: use -act_dim */
  float grad_clip;          /* <= 0: none */
  uint64_t seed;
} frl_sac_config_t;

/* One update's figures, all at the parameters before its step: the losses, the temperature its
 * losses used, the policy's entropy estimate -mean log pi(a|s) over the batch, and the mean of
 * min(Q1, Q2)(s, a). alpha_loss is 0 when alpha is fixed. */
typedef struct {
  float critic1_loss, critic2_loss, actor_loss, alpha_loss, alpha, entropy, mean_q;
} frl_sac_stats_t;

typedef struct frl_sac frl_sac_t;

/* Returns NULL (after logging the field and bound) for an invalid config. */
frl_sac_t *frl_sac_new(const frl_sac_config_t *cfg);
void frl_sac_destroy(frl_sac_t **self_p);
/* One update of critics, actor and temperature on a batch of B <= cfg.batch transitions.
 * Writes td_abs[B] = |y - min(Q1, Q2)(s, a)| before the update (for prioritized replay) and
 * *stats, each when not NULL. Returns 0, FRL_EDIM for a bad B, -ERANGE when a loss or gradient
 * is not finite (then nothing changed: parameters, optimizer state, temperature, the update
 * count and the noise stream are as before, and td_abs and stats are not written). Does not
 * allocate. */
int frl_sac_update(frl_sac_t *s, const frl_batch_t *b, float *td_abs, frl_sac_stats_t *stats);
/* The policy network: outputs [mean (act_dim), log_std (act_dim)] per observation. Its params
 * are what the learner publishes to actors. */
frl_mlp_t *frl_sac_actor(frl_sac_t *s);
uint64_t frl_sac_updates(const frl_sac_t *s);

/* The policy's output shape for given sizes (actors build their network from it). */
frl_mlp_shape_t frl_sac_actor_shape(int obs_dim, int act_dim, int hidden1, int hidden2);
/* Acts for one observation with a SAC policy network: tanh(mean) when deterministic, else
 * tanh(mean + std * N(0, 1)) with log_std clamped to [-20, 2]. action[act_dim] in [-1, 1].
 * rng is not used when deterministic. Runs a batch-1 forward in the network's workspace (no
 * allocation; one network per thread). */
void frl_sac_act(frl_mlp_t *actor, const float *obs, bool deterministic, frl_rng_t *rng,
                 float *action);

/* log pi(a|s) of the tanh-squashed Gaussian for pre-squash sample u = mean + std * eps:
 * sum_i [log N(u_i; mean_i, std_i) - log(1 - tanh(u_i)^2)], the correction computed in the
 * stable form 2 (log 2 - u - softplus(-2u)). std_i = exp(log_std_i) as given (no clamp).
 * Computed in double. Exposed for tests. */
double frl_sac_log_prob(const float *mean, const float *log_std, const float *u, int act_dim);

/* ---- behaviour cloning: pretraining the policy on demonstrations (see agent.h) ----------- */

typedef enum {
  /* Negative log-likelihood -log pi(a_E|s) of the demonstrated action under the squashed
   * Gaussian: fits the mean and the log-std together (maximum likelihood of the policy SAC
   * itself acts with). */
  FRL_SAC_BC_NLL = 0,
  /* Mean squared error (tanh(mean) - a_E)^2 of the deterministic action: fits the mean only
   * and leaves the log-std as it was. The learner's default (--bc-loss): controllers and
   * teleoperators often command the bounds (saturated torques, bang-bang), and the NLL must
   * then fit u = atanh(+-(1 - 1e-6)) ~ +-7.25 before the squash, a far larger and more abrupt
   * target than the action itself, which its fit is spent on. Cloning the pendulum swing-up
   * expert of tests/integration/test_demos.py (2400 steps, 1500 updates), the NLL's policy
   * returned -1466 and the MSE's -268 (expert -171, uniformly random -1190). */
  FRL_SAC_BC_MSE = 1,
} frl_sac_bc_loss_t;

/* One behaviour-cloning step on the policy network alone: the loss `kind` of the demonstrated
 * actions b->action (normalized; clipped to [-1, 1], and to +-(1 - 1e-6) where the NLL inverts
 * the squash) at b->obs, each row weighted by b->weight (NULL: ones), averaged over the batch
 * (and, for MSE, over action dimensions); only obs, action and weight are read. The step is
 * Adam with the policy's own optimizer (its moments and step count, which frl_sac_state lists),
 * after the configured gradient clipping. Critics, targets, temperature, the noise stream and
 * frl_sac_updates are not touched. Writes, at the parameters before the step, *loss and
 * *action_error = mean |tanh(mean) - a_E| over rows and dimensions (each when not NULL).
 * Returns 0, FRL_EDIM for B outside [1, cfg.batch], FRL_EUSAGE for an unknown kind, or -ERANGE
 * when the loss or the gradient is not finite (nothing changed, outputs not written). Does not
 * allocate. */
int frl_sac_bc_update(frl_sac_t *s, const frl_batch_t *b, frl_sac_bc_loss_t kind, float *loss,
                      float *action_error);

/* The temperature alpha = exp(log alpha) the next update will use. */
float frl_sac_alpha(const frl_sac_t *s);
/* Appends s's learning state to st (see nn.h): the parameter blocks "actor", "critic1",
 * "critic2", "target1", "target2"; Adam "adam.actor", "adam.critic1", "adam.critic2",
 * "adam.alpha"; the temperature "log_alpha"; the noise stream "rng"; and "updates". The parts
 * point into s; restoring them between updates makes the next updates bit-identical to those
 * of the learner they came from. */
void frl_sac_state(frl_sac_t *s, frl_state_t *st);

/* Internal (tests). */

/* Online critic i (0, 1), or its Polyak target when target is true; owned by s. */
frl_mlp_t *frl__sac_critic(frl_sac_t *s, int i, bool target);
/* Replaces the policy's N(0, 1) draws with eps[2 B, act_dim] for a batch of B (rows [0, B) for
 * obs, rows [B, 2 B) for next_obs), so updates are deterministic; NULL samples again. eps is
 * borrowed and must outlive its use. */
void frl__sac_fix_noise(frl_sac_t *s, const float *eps);
/* Everything an update computes before its optimizer steps: critic targets, losses, td_abs
 * and gradients (after clipping), with no parameter changed. Returns as frl_sac_update. */
int frl__sac_compute(frl_sac_t *s, const frl_batch_t *b, float *td_abs, frl_sac_stats_t *stats);
/* frl_sac_bc_update without the optimizer step: loss, action error and the policy's gradient
 * (after clipping; frl__sac_grad(s, 0)), with no parameter changed. Returns as the update. */
int frl__sac_bc_compute(frl_sac_t *s, const frl_batch_t *b, frl_sac_bc_loss_t kind, float *loss,
                        float *action_error);
/* Gradient blocks of the last compute: which 0 actor, 1 critic 1, 2 critic 2 (same layouts as
 * the parameter blocks), 3 log alpha (one float). */
const float *frl__sac_grad(const frl_sac_t *s, int which);

#endif
