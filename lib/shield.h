/* shield.h: the safety shield between a policy and a robot's actuators, configured per robot by
 * a limits file. Every action passes through it: non-finite values are replaced, the change per
 * step and the action bounds are enforced, and joints near a position limit are slowed by a
 * discrete-time control-barrier rule so that the limit is approached geometrically and never
 * crossed. It also produces the robot's safe action (hold, zero, or a named posture) for safe
 * mode. Every change it makes is counted, so that interventions reach the learner as safety
 * events.
 *
 * The limits file is a text file, one setting per line, '#' starts a comment:
 *
 *   action_dim 3                 # must equal the task's action dimension
 *   action_min -10 -10 -10       # per action dimension, robot units (one value: all dims)
 *   action_max 10 10 10
 *   max_delta 2 2 2              # largest change of a dimension from one step to the next
 *   barrier_gain 20              # k (1/s): speed toward a limit <= k * distance to it
 *   control_period 0.01          # s; k * control_period must be <= 1
 *   joint elbow position=1 velocity=4 action=1 min=-2.5 max=2.5 vmax=3 command=velocity scale=1
 *   posture home 0 0.3 -0.3      # a named action vector
 *   safe_action hold             # hold | zero | posture NAME
 *
 * A joint names the observation indices of its position (required) and velocity (optional),
 * the action dimension that drives it, its position limits and speed limit. command=velocity
 * (the default) means the action commands the joint's velocity, v = scale * a; the barrier
 * then bounds v to [-k (q - min), k (max - q)] (and |v| <= vmax), the discrete-time control
 * barrier condition h(q_{t+1}) >= (1 - k dt) h(q_t) for h = max - q and h = q - min (Agrawal and
 * Sreenath 2017, "Discrete Control Barrier Functions"), so with k dt <= 1 a joint inside its
 * limits stays inside. command=effort means the action is a torque or force: there the shield
 * needs the joint's velocity and, when the observed speed toward a limit exceeds k * distance
 * (or vmax), caps the effort toward it at -brake * excess; without a dynamics model this slows
 * the joint but is not a guarantee.
 *
 * Discrete-action tasks accept only action_dim 1, posture and safe_action: the safe action is
 * an action index. Everything in the file is untrusted input: each error names the source, the
 * line and the key. */
#ifndef FRL_SHIELD_H
#define FRL_SHIELD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRL_SHIELD_MAX_DIM 256     /* action dimensions (FRL_ENV_MAX_DIM) */
#define FRL_SHIELD_MAX_JOINTS 64
#define FRL_SHIELD_MAX_POSTURES 16
#define FRL_SHIELD_MAX_NAME 32     /* joint and posture names, including the terminator */
#define FRL_SHIELD_MAX_FILE (1u << 20)
#define FRL_SHIELD_MAX_LINE 4096
#define FRL_SHIELD_MAX_VALUE 1e9   /* magnitude of any number in the file */

typedef enum { FRL_SAFE_HOLD = 0, FRL_SAFE_ZERO = 1, FRL_SAFE_POSTURE = 2 } frl_safe_kind_t;
typedef enum { FRL_JOINT_VELOCITY = 0, FRL_JOINT_EFFORT = 1 } frl_joint_command_t;

typedef struct {
  char name[FRL_SHIELD_MAX_NAME];
  int position;       /* observation index of the joint position */
  int velocity;       /* observation index of the joint velocity, -1 when not observed */
  int action;         /* action dimension driving the joint */
  double min, max;    /* position limits */
  double vmax;        /* speed limit (> 0); INFINITY when not given */
  frl_joint_command_t command;
  double scale;       /* velocity command: joint velocity per action unit (> 0) */
  double brake;       /* effort command: effort per unit of excess speed (> 0) */
} frl_joint_limit_t;

typedef struct {
  char name[FRL_SHIELD_MAX_NAME];
  float action[FRL_SHIELD_MAX_DIM];
} frl_posture_t;

/* A parsed limits file. n_action_min/n_action_max/n_max_delta count the values given: 0 (not
 * set: -INFINITY/INFINITY/INFINITY), 1 (one value for every dimension) or one per dimension. */
typedef struct {
  int action_dim;     /* 0 when the file does not say (then any dimension is accepted) */
  double action_min[FRL_SHIELD_MAX_DIM], action_max[FRL_SHIELD_MAX_DIM];
  double max_delta[FRL_SHIELD_MAX_DIM];
  int n_action_min, n_action_max, n_max_delta;
  double barrier_gain;    /* k, 1/s */
  double control_period;  /* dt, s */
  int n_joints;
  frl_joint_limit_t joints[FRL_SHIELD_MAX_JOINTS];
  int n_postures;
  frl_posture_t postures[FRL_SHIELD_MAX_POSTURES];
  frl_safe_kind_t safe;
  int safe_posture;       /* index into postures when safe == FRL_SAFE_POSTURE */
} frl_limits_t;

/* Default limits: no bounds beyond what the shield is given at creation, safe action hold,
 * barrier gain 10 1/s, control period 0.01 s. */
void frl_limits_init(frl_limits_t *lim);

/* Parses a limits text (len bytes, need not be NUL-terminated) into *out. source names the
 * text in messages (a path). Returns 0, or FRL_EUSAGE with one line in err such as
 * "robot.limits:7: joint elbow: key 'min': 'abc' is not a number"; *out is untouched on
 * error. Checks everything that does not need the task's dimensions (those are checked by
 * frl_shield_new). */
int frl_limits_parse(const char *text, size_t len, const char *source, frl_limits_t *out,
                     char *err, size_t errlen);

/* Reads and parses a file (at most FRL_SHIELD_MAX_FILE bytes). Returns 0, FRL_EUSAGE (bad
 * content, as above) or -errno (cannot read, message in err). */
int frl_limits_load(const char *path, frl_limits_t *out, char *err, size_t errlen);

typedef struct frl_shield frl_shield_t;

/* What one call changed: dimensions clipped (non-finite, rate, bounds) and dimensions the
 * barrier changed, with the first of each for a message (-1 when none). */
typedef struct {
  uint32_t clipped;
  uint32_t barrier;
  int first_clipped;   /* action dimension */
  int first_barrier;   /* joint index into the limits */
} frl_shield_result_t;

/* Creates a shield for a task with obs_dim observations and act_dim action dimensions, whose
 * own action bounds are low/high (NULL for discrete tasks, where n_actions > 0 and act_dim is
 * 1). The limits are copied (NULL: frl_limits_init defaults) and intersected with the task
 * bounds. Returns 0 and *out, or FRL_EUSAGE with the reason in err when the limits do not fit
 * the task (an index beyond obs_dim or act_dim, action_dim different from act_dim, a barrier
 * joint whose action bounds exclude 0, k * control_period > 1, bounds in a discrete task). */
int frl_shield_new(frl_shield_t **out, const frl_limits_t *lim, int obs_dim, int act_dim,
                   int n_actions, const float *low, const float *high, char *err,
                   size_t errlen);
void frl_shield_destroy(frl_shield_t **self_p);

/* Makes action[act_dim] (in robot units, changed in place) safe for the state in obs: non-finite
 * values, rate, bounds, then the barrier (which wins over the rate limit: safety over
 * smoothness). Remembers the result as the last applied action. r may be NULL. */
void frl_shield_apply(frl_shield_t *s, const float *obs, float *action, frl_shield_result_t *r);

/* Writes the safe action for obs into action: hold (the last applied action; before any, zero
 * moved into the bounds), zero, or the posture, then bounds and barrier (never the rate limit:
 * stopping must not wait). Remembers it as the last applied action. For a discrete task the
 * safe action is an index: the last one, 0, or the posture's first value. */
void frl_shield_safe_action(frl_shield_t *s, const float *obs, float *action,
                            frl_shield_result_t *r);

/* Forgets the last applied action (the rate limit restarts), e.g. at an episode start. */
void frl_shield_reset(frl_shield_t *s);

/* The limits in effect (after intersecting with the task's bounds). */
const frl_limits_t *frl_shield_limits(const frl_shield_t *s);

/* Writes a one-line summary ("3 dims, bounds, max_delta, 2 joints (k 20/s), safe hold"). */
void frl_shield_describe(const frl_shield_t *s, char *buf, size_t n);

#endif
