/* batch.h: a batch of n-step transitions with continuous actions, as the learner samples it.
 * Actions are in the policy's normalized range [-1, 1]^act_dim (the actor scales them to the
 * environment's bounds); discount is gamma^k, or 0 at a terminal state. */
#ifndef FRL_BATCH_H
#define FRL_BATCH_H

typedef struct {
  int B;
  const float *obs;      /* [B, obs_dim] */
  const float *action;   /* [B, act_dim] in [-1, 1] */
  const float *reward;   /* [B] */
  const float *discount; /* [B] */
  const float *next_obs; /* [B, obs_dim] */
  const float *weight;   /* [B] importance weights, NULL for all ones */
} frl_batch_t;

#endif
