/* history.h: the last k commanded actions as part of the observation (--action-history K).
 *
 * A reactive policy cannot see an actuation delay: with a delay of d steps the command of step t
 * acts at step t + d, and the observation alone does not say which commands are still on their
 * way. Appending the last k commands to the observation makes them visible, and with the
 * velocities already observed it lets the policy infer how strongly the arm answers its
 * commands (Peng et al. 2018, "Sim-to-Real Transfer of Robotic Control with Dynamics
 * Randomization", feed-forward policies with a history of actions; Kumar et al. 2021, "RMA").
 *
 * Layout: the environment's own observation, then k blocks of act_dim values, newest first.
 * Each value is the command as a fraction of its range, (a - mid) / half with mid and half the
 * centre and half-width of the action bounds, so it lies in [-1, 1] whatever the units. Before
 * the first command of an episode every block holds the neutral command (zero clipped into the
 * bounds, what an actuator that has not been commanded yet does). Continuous actions only.
 *
 * The same history runs in two places: frl_history_wrap puts it around a simulated environment
 * (outermost, so that it records the commands the policy gave, before any delay or motor model),
 * and the robot client keeps one itself, pushing each command it sends to the actuators. */
#ifndef FRL_HISTORY_H
#define FRL_HISTORY_H

#include <stddef.h>

#include "env.h"

#define FRL_HISTORY_MAX 16

typedef struct {
  int k, act_dim;
  int head; /* slot of the newest command */
  float mid[FRL_ENV_MAX_DIM], half[FRL_ENV_MAX_DIM];
  float neutral[FRL_ENV_MAX_DIM]; /* as a fraction of the range */
  float slot[FRL_HISTORY_MAX][FRL_ENV_MAX_DIM];
} frl_history_t;

/* Prepares a history of k commands for an environment of this spec (its own observation, before
 * the history). Returns 0, or FRL_EUSAGE with a one-line reason naming --action-history: k outside
 * [0, FRL_HISTORY_MAX], a discrete action space, or an observation that would exceed
 * FRL_ENV_MAX_DIM. k 0 is a history of nothing. The history starts reset. */
int frl_history_init(frl_history_t *h, int k, const frl_env_spec_t *spec, char *err,
                     size_t errlen);
/* Values the history adds to an observation: k * act_dim. */
int frl_history_dim(const frl_history_t *h);
/* A new episode: every slot neutral. */
void frl_history_reset(frl_history_t *h);
/* Records a command (environment units, act_dim values; NaN counts as neutral, values outside the
 * bounds as the bound, as the environment applies them). */
void frl_history_push(frl_history_t *h, const float *action);
/* Writes the k * act_dim values, newest first. */
void frl_history_write(const frl_history_t *h, float *out);

/* Wraps *env (taking ownership; *env becomes the wrapper) so that its observation carries the
 * last k commands. k 0 leaves *env untouched. Returns 0, or FRL_EUSAGE as frl_history_init
 * (*env untouched). */
int frl_history_wrap(frl_env_t **env, int k, char *err, size_t errlen);

#endif
