/* history.h: the recent past as part of the observation (--action-history K, --obs-history M).
 *
 * A reactive policy sees neither an actuation delay nor how strongly the system answers: with a
 * delay of d steps the command of step t acts at step t + d, and one observation does not say
 * which commands are still on their way, nor how much the last ones changed the velocities.
 * Appending the last k commands and the previous m observations makes both visible, so that a
 * feed-forward policy can infer the delay and the response within an episode (Peng et al. 2018,
 * "Sim-to-Real Transfer of Robotic Control with Dynamics Randomization", feed-forward policies
 * with a history of states and actions; Kumar et al. 2021, "RMA").
 *
 * Layout: the environment's own observation o_t, then m blocks of obs_dim values, the previous
 * observations o_{t-1}, ..., o_{t-m} newest first, then k blocks of act_dim values, the last
 * commands newest first. Each command is a fraction of its range, (a - mid) / half with mid and
 * half the centre and half-width of the action bounds, so it lies in [-1, 1] whatever the units.
 * Before the first command of an episode every command block holds the neutral command (zero
 * clipped into the bounds, what an actuator that has not been commanded yet does); before the
 * first step every observation block holds the episode's first observation (nothing has moved
 * yet). Continuous actions only.
 *
 * The same history runs in two places: frl_history_wrap puts it around a simulated environment
 * (outermost, so that it records the commands the policy gave, before any delay or motor model,
 * and the observations the policy saw, after any sensor noise or delay), and the robot client
 * keeps one itself, pushing each command it sends to the actuators and each observation it
 * steps from. */
#ifndef FRL_HISTORY_H
#define FRL_HISTORY_H

#include <stdbool.h>
#include <stddef.h>

#include "env.h"

#define FRL_HISTORY_MAX 16     /* commands (--action-history) */
#define FRL_OBS_HISTORY_MAX 8  /* observations (--obs-history) */

typedef struct {
  int k, act_dim, m, obs_dim;
  int head; /* slot of the newest command */
  float mid[FRL_ENV_MAX_DIM], half[FRL_ENV_MAX_DIM];
  float neutral[FRL_ENV_MAX_DIM]; /* as a fraction of the range */
  float slot[FRL_HISTORY_MAX][FRL_ENV_MAX_DIM];
  int past_head; /* slot of the newest past observation */
  bool fresh;    /* no step yet: every past observation is the current one */
  float past[FRL_OBS_HISTORY_MAX][FRL_ENV_MAX_DIM];
} frl_history_t;

/* Prepares a history of k commands and m observations for an environment of this spec (its own
 * observation, before the history). Returns 0, or FRL_EUSAGE with a one-line reason naming the
 * flag: k outside [0, FRL_HISTORY_MAX] (--action-history), m outside [0, FRL_OBS_HISTORY_MAX]
 * (--obs-history), either with discrete actions, or an observation that would exceed
 * FRL_ENV_MAX_DIM. k = m = 0 is a history of nothing. The history starts reset. */
int frl_history_init(frl_history_t *h, int k, int m, const frl_env_spec_t *spec, char *err,
                     size_t errlen);
/* Values the history adds to an observation: m * obs_dim + k * act_dim. */
int frl_history_dim(const frl_history_t *h);
/* A new episode: every command neutral, no past observation. */
void frl_history_reset(frl_history_t *h);
/* Records a command (environment units, act_dim values; NaN counts as neutral, values outside the
 * bounds as the bound, as the environment applies them). */
void frl_history_push(frl_history_t *h, const float *action);
/* Records the observation a step was taken from (obs_dim values), as the newest past one. NULL, or
 * an observation with a non-finite value, restarts the past as at a reset: the next observation
 * written stands for all of it. */
void frl_history_observe(frl_history_t *h, const float *obs);
/* Writes the history for the current observation obs (obs_dim values): the m past observations,
 * then the k commands, newest first. */
void frl_history_write(const frl_history_t *h, const float *obs, float *out);

/* Wraps *env (taking ownership; *env becomes the wrapper) so that its observation carries the
 * last k commands and m observations. k = m = 0 leaves *env untouched. Returns 0, or FRL_EUSAGE
 * as frl_history_init (*env untouched). */
int frl_history_wrap(frl_env_t **env, int k, int m, char *err, size_t errlen);

#endif
