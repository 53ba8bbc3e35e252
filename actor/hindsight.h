/* hindsight.h: hindsight experience replay for goal-reaching environments (Andrychowicz et al.
 * 2017, the "future" strategy). The actor records each episode's steps; when the episode ends,
 * k copies of it are relabeled, each with the goal its tip (say) achieved at a random step t_g,
 * and cover the steps up to that one, so every copy ends by reaching its goal. Copies run
 * through their own n-step builder and wait in a queue the actor drains into its batches
 * between environment steps. They are extra transitions, not extra experience: they count
 * toward neither environment steps nor episodes. */
#ifndef FRL_HINDSIGHT_H
#define FRL_HINDSIGHT_H

#include "env.h"
#include "nstep.h"
#include "rng.h"

#define FRL_HINDSIGHT_MAX_K 16

typedef struct frl_hindsight frl_hindsight_t;

/* For episodes of at most max_steps steps (longer ones are relabeled over their first
 * max_steps). 1 <= k <= FRL_HINDSIGHT_MAX_K; n_step and gamma as frl_nstep_new; dims > 0.
 * Allocates everything here; nothing after allocates. NULL for arguments out of range. */
frl_hindsight_t *frl_hindsight_new(const frl_env_goal_t *goal, int k, int max_steps, int obs_dim,
                                   int act_dim, int n_step, float gamma);
void frl_hindsight_destroy(frl_hindsight_t **self_p);
/* Observations that stack `frames` observations of frame_dim values each at their start (the
 * current one and, with --obs-history, the past ones; history.h) have every one relabeled, so
 * that the past ones name the same goal as the current one. Default 1 frame of obs_dim. Returns
 * 0, or FRL_EUSAGE if frames < 1, frame_dim < 1 or frames * frame_dim > obs_dim (unchanged). */
int frl_hindsight_set_frames(frl_hindsight_t *h, int frames, int frame_dim);
/* Records a step of the running episode: obs and next_obs as observed, action as stored in
 * transitions (normalized), env_action as the environment received it (for the reward). */
void frl_hindsight_record(frl_hindsight_t *h, const float *obs, const float *action,
                          const float *env_action, const float *next_obs);
/* Ends the episode: queues its k relabeled copies (after anything still queued) and forgets the
 * episode. Returns the number of transitions queued. */
int frl_hindsight_end_episode(frl_hindsight_t *h, frl_rng_t *rng);
/* Drops the recorded episode without relabeling it. */
void frl_hindsight_discard(frl_hindsight_t *h);
/* Transitions waiting in the queue. */
int frl_hindsight_pending(const frl_hindsight_t *h);
/* Emits up to max queued transitions, oldest first; returns how many it emitted. */
int frl_hindsight_emit(frl_hindsight_t *h, int max, frl_nstep_emit_fn emit, void *ctx);

#endif
