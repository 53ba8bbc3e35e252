/* td3.h: Twin Delayed DDPG (Fujimoto et al. 2018): twin critics with clipped double-Q targets,
 * target policy smoothing (noise sigma 0.2 clipped to 0.5), actor and target networks updated
 * every policy_delay (2) critic steps with Polyak tau. Exploration noise is the actor's. */
#ifndef FRL_TD3_H
#define FRL_TD3_H

#include <stdbool.h>
#include <stdint.h>

#include "batch.h"
#include "mlp.h"
#include "nn.h"
#include "rng.h"

typedef struct {
  int obs_dim, act_dim;
  int hidden1, hidden2;   /* 256, 256 */
  int batch;              /* 256 */
  float lr_actor, lr_critic; /* 3e-4 */
  float tau;              /* 0.005 */
  float policy_noise;     /* 0.2, in normalized action units */
  float noise_clip;       /* 0.5 */
  int policy_delay;       /* 2 */
  float grad_clip;        /* <= 0: none */
  uint64_t seed;
} frl_td3_config_t;

/* One update's figures at the parameters before its step. actor_loss = -mean Q1(s, mu(s)) of
 * this step when actor_updated, else of the last actor step (0 before any); mean_q is the mean
 * of min(Q1, Q2)(s, a). */
typedef struct {
  float critic1_loss, critic2_loss, actor_loss, mean_q;
  bool actor_updated;
} frl_td3_stats_t;

typedef struct frl_td3 frl_td3_t;

/* Returns NULL (after logging the field and bound) for an invalid config. */
frl_td3_t *frl_td3_new(const frl_td3_config_t *cfg);
void frl_td3_destroy(frl_td3_t **self_p);
/* One critic step (and, every policy_delay steps, an actor step and target update). td_abs as
 * in SAC. Returns 0, FRL_EDIM or -ERANGE (nothing changed, including the delay count and the
 * noise stream; td_abs and stats not written). Does not allocate. */
int frl_td3_update(frl_td3_t *t, const frl_batch_t *b, float *td_abs, frl_td3_stats_t *stats);
frl_mlp_t *frl_td3_actor(frl_td3_t *t);
uint64_t frl_td3_updates(const frl_td3_t *t);
/* Appends t's learning state to st (see nn.h): the parameter blocks "actor", "actor_target",
 * "critic1", "critic2", "target1", "target2"; Adam "adam.actor", "adam.critic1",
 * "adam.critic2"; the smoothing-noise stream "rng"; "last_actor_loss"; and "updates", which is
 * also the policy-delay counter (the actor steps when updates + 1 is a multiple of the delay).
 * The parts point into t; restoring them between updates makes the next updates
 * bit-identical to those of the learner they came from. */
void frl_td3_state(frl_td3_t *t, frl_state_t *st);

/* One behaviour-cloning step (pretraining on demonstrations, see agent.h) of the policy alone:
 * L = mean over rows and action dimensions of w_b (mu(s_b) - a_E)^2, the demonstrated actions
 * b->action clipped to the policy's range [-1, 1], rows weighted by b->weight (NULL: ones);
 * only obs, action and weight are read. Adam with the actor's own optimizer (listed by
 * frl_td3_state) after the configured gradient clipping; the target policy is then set to the
 * policy exactly, so that the first critic targets after cloning use the cloned actions.
 * Critics, their targets, the noise stream and the update (delay) count are not touched.
 * Writes, at the parameters before the step, *loss and *action_error = mean |mu(s) - a_E|
 * (each when not NULL). Returns 0, FRL_EDIM for B outside [1, cfg.batch], or -ERANGE when the
 * loss or gradient is not finite (nothing changed, outputs not written). Does not allocate. */
int frl_td3_bc_update(frl_td3_t *t, const frl_batch_t *b, float *loss, float *action_error);

/* The deterministic policy's shape: obs -> hidden -> hidden -> act_dim with tanh output. */
frl_mlp_shape_t frl_td3_actor_shape(int obs_dim, int act_dim, int hidden1, int hidden2);
/* action = clip(actor(obs) + N(0, noise_std), -1, 1); noise_std 0 for evaluation (rng then
 * unused). Batch-1 forward in the network's workspace: no allocation, one network per thread. */
void frl_td3_act(frl_mlp_t *actor, const float *obs, float noise_std, frl_rng_t *rng,
                 float *action);

/* Internal (tests). */

/* Online critic i (0, 1), or its Polyak target when target is true; owned by t. */
frl_mlp_t *frl__td3_critic(frl_td3_t *t, int i, bool target);
/* The Polyak-averaged target policy; owned by t. */
frl_mlp_t *frl__td3_target_actor(frl_td3_t *t);
/* Replaces the target-smoothing N(0, 1) draws with z[B, act_dim] (the noise is then
 * clip(policy_noise z, -noise_clip, noise_clip)); NULL samples again. z is borrowed. */
void frl__td3_fix_noise(frl_td3_t *t, const float *z);
/* Everything an update computes before its optimizer steps (critic targets, losses, td_abs,
 * clipped gradients, and the actor's when actor_step), with no parameter changed. Returns as
 * frl_td3_update. stats->actor_updated reports actor_step. */
int frl__td3_compute(frl_td3_t *t, const frl_batch_t *b, bool actor_step, float *td_abs,
                     frl_td3_stats_t *stats);
/* frl_td3_bc_update without the optimizer step and the target copy: loss, action error and the
 * actor's gradient (after clipping; frl__td3_grad(t, 0)), nothing else changed. */
int frl__td3_bc_compute(frl_td3_t *t, const frl_batch_t *b, float *loss, float *action_error);
/* Gradient blocks of the last compute: which 0 actor, 1 critic 1, 2 critic 2. */
const float *frl__td3_grad(const frl_td3_t *t, int which);

#endif
