/* planar_arm.c: "planar-arm", the seed's ReachingTaskMDP (seed 002:235-408): a six-joint arm
 * whose first three joints form a planar chain that must put its tip on a reachable target. */
#include <math.h>
#include <string.h>

#include "common.h"
#include "env_impl.h"

#define PA_JOINTS 6
#define PA_CHAIN 3           /* joints that move the tip; the other three only cost effort */
#define PA_STATE (2 * PA_JOINTS + 3) /* q, qd, target */
/* and the tip, target - tip, the tip's velocity, link directions, target - tip at goal scale */
#define PA_OBS (PA_STATE + 18)
/* Where write_obs puts each part after q and qd. */
#define PA_OBS_TARGET (2 * PA_JOINTS)
#define PA_OBS_TIP PA_STATE
#define PA_OBS_OFFSET (PA_STATE + 3)
#define PA_OBS_TIP_VEL (PA_STATE + 6)
#define PA_OBS_DIRS (PA_STATE + 9)
#define PA_OBS_NEAR (PA_STATE + 15)
#define PA_MAX_TORQUE 100.0
#define PA_INERTIA 10.0      /* qdd = tau / 10 (seed 002:320) */
/* Nominal viscous joint damping. The seed has none, so it is 0 and damping_scale has no effect
 * until a nominal value is set here. */
#define PA_DAMPING 0.0
#define PA_DT 0.01
#define PA_POS_LIMIT M_PI    /* positions are clipped to [-pi, pi] (seed 002:327) */
/* Velocity limit, added here: the seed's velocities were unbounded (and kept growing while a
 * joint was pinned at its position limit), reaching 20 rad/s after one episode of full torque,
 * at which the tip can move 0.36 m in one step, seven times the goal radius, and observations
 * have no fixed scale. 5 rad/s is the limit the book's joint-control task uses (seed
 * 000:2644): full torque reaches it in 0.5 s, and the longest joint move from a reset state
 * (1.5 pi) still takes under 1.5 s of the 2 s episode. */
#define PA_MAX_VEL 5.0
#define PA_LINK 0.3          /* each of the three planar links (seed 002:396) */
#define PA_BASE_Z 0.1
#define PA_INIT_POS (M_PI / 2) /* q ~ U(-pi/2, pi/2), qd = 0 (seed 002:302-303) */
#define PA_ACTION_COST 0.001
#define PA_GOAL_DIST 0.05
#define PA_GOAL_BONUS 10.0
#define PA_MAX_STEPS 200
#define PA_SET_BOUND 1e6

/* The seed drew targets uniformly in [-1, 1]^2 x [0, 1]; its arm moves in the x-z plane with
 * reach 0.9 around (0, 0, 0.1), so nearly every target had y != 0 and many lay beyond reach,
 * and no policy could succeed on them. Targets here are the tip position of random joint
 * angles inside the limits (see pa_reset), so each one has a joint configuration reaching it.
 *
 * Success ends the episode (terminal), as in the seed (done = success or timeout, seed
 * 002:341): the goal is to reach the target, and the +10 bonus is paid once.
 *
 * link_scale, motor_scale, damping_scale and mass_scale are the physical parameters domain
 * randomization perturbs (seed 002:1906-1990: link x[0.98, 1.02], motor, damping and mass
 * x[0.8, 1.2]; mass scales the joint inertia). They are set to 1 when the environment is made and
 * are not touched by reset. */
typedef struct {
  double q[PA_JOINTS], qd[PA_JOINTS], target[3];
  double link_scale;    /* multiplies the 0.3 m link length */
  double motor_scale;   /* multiplies the applied torque */
  double damping_scale; /* multiplies PA_DAMPING */
  double mass_scale;    /* multiplies PA_INERTIA */
} planar_arm_t;

/* Tip of the planar chain (seed 002:389-408): with phi_k = q_0 + ... + q_k, the chain lies in
 * the x-z plane above the base at height 0.1:
 *   x = L sum_k cos(phi_k),  y = 0,  z = 0.1 + L sum_k sin(phi_k),  k = 0..2. */
static void forward_kinematics(const double *q, double link, double *tip) {
  double phi = 0.0, x = 0.0, z = PA_BASE_Z;
  for (int k = 0; k < PA_CHAIN; k++) {
    phi += q[k];
    x += link * cos(phi);
    z += link * sin(phi);
  }
  tip[0] = x;
  tip[1] = 0.0;
  tip[2] = z;
}

static double tip_distance(const planar_arm_t *p) {
  double tip[3], sq = 0.0;
  forward_kinematics(p->q, PA_LINK * p->link_scale, tip);
  for (int i = 0; i < 3; i++) sq += (tip[i] - p->target[i]) * (tip[i] - p->target[i]);
  return sqrt(sq);
}

static void write_obs(const planar_arm_t *p, float *obs) {
  for (int i = 0; i < PA_JOINTS; i++) {
    obs[i] = (float)p->q[i];
    obs[PA_JOINTS + i] = (float)p->qd[i];
  }
  /* One pass over the chain's cumulative angles phi_k = q_0 + ... + q_k gives four things:
   * - the tip (as forward_kinematics) and its offset to the target, as in the usual reacher
   *   observations: the policy need not learn forward kinematics before it can learn to reach,
   *   and the offset is what the success test and the distance reward measure;
   * - the tip's velocity, J(q) qd: with the tip up to 9 cm a step at full joint speed, nearly
   *   twice the goal's width, passing through the goal rather than over it takes knowing where
   *   the tip is heading;
   * - each link's direction (cos phi_k, sin phi_k), as reacher observations give cos and sin of
   *   the joint angles: the Jacobian is linear in them (column k is L sum_{j >= k}
   *   (-sin phi_j, cos phi_j)), where from raw angles a network has to learn sines of sums
   *   over several periods first;
   * - the offset again at the goal's scale, tanh((target - tip) / 0.05): linear within the
   *   goal radius and saturated beyond a few radii. The raw offset spans the workspace (its
   *   normalized unit is some 0.4 m), so the last few centimetres, where success is decided,
   *   were a small fraction of a unit; policies came within 6-8 cm and hovered there
   *   (seed 1, 30 values: 67% success at 80k env steps, 88% with this). */
  const double link = PA_LINK * p->link_scale;
  double phi = 0.0, phid = 0.0, x = 0.0, z = PA_BASE_Z, vx = 0.0, vz = 0.0;
  for (int k = 0; k < PA_CHAIN; k++) {
    phi += p->q[k];
    phid += p->qd[k];
    const double c = cos(phi), s = sin(phi);
    x += link * c;
    z += link * s;
    vx -= link * s * phid;
    vz += link * c * phid;
    obs[PA_OBS_DIRS + 2 * k] = (float)c;
    obs[PA_OBS_DIRS + 2 * k + 1] = (float)s;
  }
  const double tip[3] = {x, 0.0, z}, vel[3] = {vx, 0.0, vz};
  for (int i = 0; i < 3; i++) {
    obs[PA_OBS_TARGET + i] = (float)p->target[i];
    obs[PA_OBS_TIP + i] = (float)tip[i];
    obs[PA_OBS_OFFSET + i] = (float)(p->target[i] - tip[i]);
    obs[PA_OBS_TIP_VEL + i] = (float)vel[i];
    obs[PA_OBS_NEAR + i] = (float)tanh((p->target[i] - tip[i]) / PA_GOAL_DIST);
  }
}

static double clip(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

static void pa_init(void *state, frl_env_spec_t *spec) {
  planar_arm_t *p = state;
  p->link_scale = 1.0;
  p->motor_scale = 1.0;
  p->damping_scale = 1.0;
  p->mass_scale = 1.0;
  spec->obs_dim = PA_OBS;
  spec->act_dim = PA_JOINTS;
  spec->n_actions = 0;
  for (int i = 0; i < PA_JOINTS; i++) {
    spec->act_low[i] = (float)-PA_MAX_TORQUE;
    spec->act_high[i] = (float)PA_MAX_TORQUE;
  }
  spec->max_steps = PA_MAX_STEPS;
}

/* q ~ U(-pi/2, pi/2)^6, qd = 0. The target is FK(w) for w ~ U(-pi, pi)^3, joint angles inside
 * the limits, so w witnesses that it is reachable. The seed kept targets above the ground
 * (z >= 0); a w whose tip is below it is replaced by -w, whose tip is the mirror image in the
 * plane z = 0.1 (sin is odd, cos even), at z = 0.2 - z > 0.2. One draw, no rejection loop. */
static void pa_reset(void *state, frl_rng_t *rng, float *obs) {
  planar_arm_t *p = state;
  for (int i = 0; i < PA_JOINTS; i++) {
    p->q[i] = PA_INIT_POS * (2.0 * frl_rng_uniform(rng) - 1.0);
    p->qd[i] = 0.0;
  }
  double w[PA_CHAIN];
  for (int k = 0; k < PA_CHAIN; k++) w[k] = PA_POS_LIMIT * (2.0 * frl_rng_uniform(rng) - 1.0);
  const double link = PA_LINK * p->link_scale;
  forward_kinematics(w, link, p->target);
  if (p->target[2] < 0.0) {
    for (int k = 0; k < PA_CHAIN; k++) w[k] = -w[k];
    forward_kinematics(w, link, p->target);
  }
  write_obs(p, obs);
}

/* qdd = (motor_scale tau - damping_scale b qd) / 10, then semi-implicit Euler as in the seed
 * (qd += dt qdd, q += dt qd). Velocities are clipped to +-5 rad/s; positions to +-pi, and a
 * joint stopped at its limit loses the velocity pushing into it (an inelastic end stop; the
 * seed kept that velocity, so the joint stayed pinned long after the torque reversed).
 * Reward on the new state, with d the tip's distance to the target and a the clipped torques:
 *   r = -d - 0.001 sum (a / 100)^2 + 10 [d < 0.05].
 * The seed (002:330) charged 0.001 sum a^2 on raw torques of up to 100 N m: effort then
 * outweighed distance by up to 10^4, and reaching a far target within the episode (which needs
 * near-full torque for about a second: some 3000 of effort) cost far more than it could earn
 * (at most ~150 of distance and the +10 bonus), so the return-optimal arm did not reach, against
 * the task's own success criterion. The coefficient is applied to the torque as a fraction of
 * its bound instead, so effort still breaks ties toward gentle motion but never forbids the
 * task. */
static double pa_reward(double d, double act_sq, bool *reached) {
  *reached = d < PA_GOAL_DIST;
  return -d - PA_ACTION_COST * act_sq + (*reached ? PA_GOAL_BONUS : 0.0);
}

static void pa_step(void *state, frl_rng_t *rng, const float *action, float *obs, frl_step_t *out) {
  planar_arm_t *p = state;
  double act_sq = 0.0;
  for (int i = 0; i < PA_JOINTS; i++) {
    const double a = action[i];
    act_sq += (a / PA_MAX_TORQUE) * (a / PA_MAX_TORQUE);
    const double qdd =
        (p->motor_scale * a - p->damping_scale * PA_DAMPING * p->qd[i]) /
        (p->mass_scale * PA_INERTIA);
    p->qd[i] = clip(p->qd[i] + PA_DT * qdd, -PA_MAX_VEL, PA_MAX_VEL);
    const double q = p->q[i] + PA_DT * p->qd[i];
    p->q[i] = clip(q, -PA_POS_LIMIT, PA_POS_LIMIT);
    if (q != p->q[i]) p->qd[i] = 0.0;
  }
  bool reached;
  const double reward = pa_reward(tip_distance(p), act_sq, &reached);
  write_obs(p, obs);
  out->reward = (float)reward;
  out->success = reached;
  out->terminal = reached;
}

/* s = {q[6], qd[6], target[3]}: q inside [-pi, pi], qd inside [-5, 5], the target finite and
 * within +-1e6 (any point, reachable or not, so tests can place it freely). */
static int pa_set_state(void *state, const double *s, int n, float *obs) {
  if (n != PA_STATE) return FRL_EDIM;
  for (int i = 0; i < PA_JOINTS; i++) {
    if (!(fabs(s[i]) <= PA_POS_LIMIT)) return FRL_EUSAGE;
    if (!(fabs(s[PA_JOINTS + i]) <= PA_MAX_VEL)) return FRL_EUSAGE;
  }
  for (int i = 0; i < 3; i++)
    if (!(fabs(s[2 * PA_JOINTS + i]) <= PA_SET_BOUND)) return FRL_EUSAGE;
  planar_arm_t *p = state;
  memcpy(p->q, s, sizeof p->q);
  memcpy(p->qd, s + PA_JOINTS, sizeof p->qd);
  memcpy(p->target, s + 2 * PA_JOINTS, sizeof p->target);
  write_obs(p, obs);
  return 0;
}

/* Physical parameters: mass (joint inertia), motor strength and link length, as multipliers;
 * damping only once PA_DAMPING is non-zero (scaling zero damping would change nothing). */
static void pa_physics_nominal(const void *state, double *nominal) {
  nominal[FRL_PHYS_MASS] = 1.0;
  nominal[FRL_PHYS_MOTOR] = 1.0;
  nominal[FRL_PHYS_LINK] = 1.0;
  nominal[FRL_PHYS_DAMPING] = PA_DAMPING != 0.0 ? 1.0 : NAN;
}

static void pa_set_physics(void *state, const double *value) {
  planar_arm_t *p = state;
  p->mass_scale = frl__phys_or(value, FRL_PHYS_MASS, 1.0);
  p->motor_scale = frl__phys_or(value, FRL_PHYS_MOTOR, 1.0);
  p->link_scale = frl__phys_or(value, FRL_PHYS_LINK, 1.0);
  p->damping_scale = frl__phys_or(value, FRL_PHYS_DAMPING, 1.0);
}

/* The goal is the target; the tip achieves it. Relabeling rewrites the target and target - tip
 * (at both scales) in the observation; the reward is pa_step's, from the observation's
 * target - tip (float, so within float rounding of the simulator's double distance) and the
 * clipped torques. */

static void pa_achieved(const float *obs, float *goal) {
  memcpy(goal, obs + PA_OBS_TIP, 3 * sizeof *goal);
}

static void pa_relabel(float *obs, const float *goal) {
  for (int i = 0; i < 3; i++) {
    const double offset = (double)goal[i] - obs[PA_OBS_TIP + i];
    obs[PA_OBS_TARGET + i] = goal[i];
    obs[PA_OBS_OFFSET + i] = (float)offset;
    obs[PA_OBS_NEAR + i] = (float)tanh(offset / PA_GOAL_DIST);
  }
}

static float pa_goal_reward(const float *next_obs, const float *env_action, bool *success) {
  double sq = 0.0, act_sq = 0.0;
  for (int i = 0; i < 3; i++) sq += (double)next_obs[PA_OBS_OFFSET + i] * next_obs[PA_OBS_OFFSET + i];
  for (int i = 0; i < PA_JOINTS; i++) {
    const double a = clip(env_action[i], -PA_MAX_TORQUE, PA_MAX_TORQUE) / PA_MAX_TORQUE;
    act_sq += a * a;
  }
  return (float)pa_reward(sqrt(sq), act_sq, success);
}

static const frl_env_goal_t pa_goal = {
    .goal_dim = 3, .achieved = pa_achieved, .relabel = pa_relabel, .reward = pa_goal_reward};

const frl_env_impl_t frl_env_planar_arm = {
    .name = "planar-arm",
    .state_size = sizeof(planar_arm_t),
    .init = pa_init,
    .reset = pa_reset,
    .step = pa_step,
    .set_state = pa_set_state,
    .physics_nominal = pa_physics_nominal,
    .set_physics = pa_set_physics,
    .goal = &pa_goal,
};
