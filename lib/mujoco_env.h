/* mujoco_env.h: MuJoCo environments described by task files (a model, the observation, a reward
 * that is a weighted sum of named terms, termination and success rules, reset noise), and the
 * folder the built-in task and model files are found in. The built-in environments registered
 * in env.c ("humanoid-standup", "humanoid-walk", "mj-reacher", "walker") wrap these calls.
 *
 * Task file format: one `key value...` per line, `#` starts a comment. Keys (see
 * lib/mujoco/<name>.task for examples):
 *   model PATH                      MJCF file; relative paths are relative to the task file
 *   frame_skip N | control_dt SEC   physics steps per env step (control_dt: a multiple of the
 *                                   model's timestep)
 *   max_steps N                     time limit (truncation); 0 = none
 *   obs qpos START COUNT | obs qvel START COUNT | obs sensor NAME | obs pos OBJ |
 *   obs height OBJ | obs com_vel BODY | obs delta OBJ_A OBJ_B
 *   reward WEIGHT TERM ARGS...      TERM: velocity OBJ AXIS | com_velocity BODY AXIS |
 *                                   height OBJ LEVEL | ctrl_cost | torque_cost | alive |
 *                                   distance OBJ_A OBJ_B | limit_violations
 *   terminate height OBJ LO HI | terminate tilt BODY MAX_RADIANS
 *   success distance OBJ_A OBJ_B BOUND [terminal]
 *   limit_margin RADIANS            slack before a joint counts as past its limit
 *   init_qpos START V...            | noise qpos|qvel START COUNT uniform|normal SCALE |
 *   init_disk START RMIN RMAX       reset operations, applied in file order
 * OBJ is `body:NAME` (the body frame's origin), `site:NAME` or a bare body NAME; AXIS is x, y
 * or z. Terms: velocity = displacement of OBJ over the env step / its duration; com_velocity
 * the same for the centre of mass of BODY's subtree; height = z - LEVEL; ctrl_cost = sum u^2;
 * torque_cost = sum |actuator generalized force|; alive = 1; distance in metres;
 * limit_violations = limited hinge/slide joints past their range by more than limit_margin
 * (also reported as the step's violations). obs com_vel is the instantaneous subtree velocity.
 * Defaults: frame_skip 1, max_steps 1000, limit_margin 0. */
#ifndef FRL_MUJOCO_ENV_H
#define FRL_MUJOCO_ENV_H

#include <stddef.h>

#include <mujoco/mujoco.h>

#include "env.h"
#include "rng.h"

typedef struct frl_mjenv frl_mjenv_t;

/* Writes the folder holding the built-in task and model files into buf: $FLEETRL_MODEL_DIR when
 * set, else `lib/mujoco` under the current directory when that is a folder, else
 * /usr/local/share/fleetrl/models. Returns 0, or FRL_EUSAGE when buf is too small. */
int frl_mjenv_model_dir(char *buf, size_t len);

/* Parses the task file at task_path, loads its model and checks every name and range against
 * it. On success returns 0, *out owns the model and data, and spec gets obs_dim, act_dim,
 * n_actions = 0, the action bounds (each actuator's ctrlrange) and max_steps; spec->name is not
 * touched. On error returns FRL_ENOTFOUND (task or model file missing), FRL_EUSAGE (malformed
 * task, unknown name, bad range) or FRL_EDIM (too many dimensions); err holds one line naming
 * the file, line and field, and *out and spec are untouched. */
int frl_mjenv_open(frl_mjenv_t **out, const char *task_path, frl_env_spec_t *spec, char *err,
                   size_t errlen);
void frl_mjenv_destroy(frl_mjenv_t **self_p);

/* Starts an episode: the model's initial state, then the task's reset operations drawing from
 * rng; writes obs[obs_dim]. */
void frl_mjenv_reset(frl_mjenv_t *e, frl_rng_t *rng, float *obs);

/* Sets ctrl = action (clipped to the ctrlrange; NaN -> its middle), runs mj_step frame_skip
 * times and then mj_forward, so that every mjData quantity (positions, contacts, sensors)
 * describes the new state; writes obs and out->reward/terminal/success/violations (other fields
 * untouched). An unstable simulation (NaN or a value beyond MuJoCo's 1e10 bound) ends the
 * episode: terminal, reward 0, a warning logged, and the data reset to the model's initial
 * state. */
void frl_mjenv_step(frl_mjenv_t *e, const float *action, float *obs, frl_step_t *out);

/* Overwrites the state with s = [qpos (nq), qvel (nv)], clears ctrl, actuator activations and
 * the solver's warm start (as in freshly made data), runs mj_forward and writes the matching
 * obs. Returns 0, FRL_EDIM when n != nq + nv, or FRL_EUSAGE for a non-finite value (state
 * unchanged). */
int frl_mjenv_set_state(frl_mjenv_t *e, const double *s, int n, float *obs);

/* The model and data, read-only, for tests and tools; valid until destroy. */
const mjModel *frl_mjenv_model(const frl_mjenv_t *e);
const mjData *frl_mjenv_data(const frl_mjenv_t *e);
/* Physics steps per env step. */
int frl_mjenv_frame_skip(const frl_mjenv_t *e);

#endif
