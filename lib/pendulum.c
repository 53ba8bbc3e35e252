/* pendulum.c: the torque-limited inverted-pendulum swing-up with the constants, integration and
 * cost of OpenAI Gym's Pendulum-v1; observations are [cos theta, sin theta, theta_dot]. */
#include <math.h>
#include <string.h>

#include "common.h"
#include "env_impl.h"

#define PD_GRAVITY 10.0
#define PD_MASS 1.0
#define PD_LENGTH 1.0
#define PD_DT 0.05        /* seconds per step */
#define PD_MAX_SPEED 8.0  /* |theta_dot| is clipped to this after every step */
#define PD_MAX_TORQUE 2.0
#define PD_MAX_STEPS 200

/* theta = 0 is upright. theta is not wrapped between steps (only its cos and sin are
 * observed), exactly as in the reference; the cost wraps it. gravity, mass, length and motor are
 * the physical parameters in effect (the constants above unless domain randomization set them;
 * motor multiplies the torque the action commands). */
typedef struct {
  double theta, theta_dot;
  double gravity, mass, length, motor;
} pendulum_t;

static void write_obs(const pendulum_t *p, float *obs) {
  obs[0] = (float)cos(p->theta);
  obs[1] = (float)sin(p->theta);
  obs[2] = (float)p->theta_dot;
}

/* Maps x to [-pi, pi) like Python's ((x + pi) % (2 pi)) - pi, whose % floors toward -inf
 * (C's fmod truncates toward zero and would give the wrong branch for negative x). */
static double angle_normalize(double x) {
  const double two_pi = 2.0 * M_PI;
  return x + M_PI - two_pi * floor((x + M_PI) / two_pi) - M_PI;
}

static void pd_set_physics(void *state, const double *value);

static void pd_init(void *state, frl_env_spec_t *spec) {
  pd_set_physics(state, NULL);
  spec->obs_dim = 3;
  spec->act_dim = 1;
  spec->n_actions = 0;
  spec->act_low[0] = (float)-PD_MAX_TORQUE;
  spec->act_high[0] = (float)PD_MAX_TORQUE;
  spec->max_steps = PD_MAX_STEPS;
}

/* theta ~ U(-pi, pi), theta_dot ~ U(-1, 1): the reference's uniform(-[pi, 1], [pi, 1]). */
static void pd_reset(void *state, frl_rng_t *rng, float *obs) {
  pendulum_t *p = state;
  p->theta = M_PI * (2.0 * frl_rng_uniform(rng) - 1.0);
  p->theta_dot = 2.0 * frl_rng_uniform(rng) - 1.0;
  write_obs(p, obs);
}

/* A uniform rod of mass m and length l pivoting at one end, torque u at the pivot, theta from
 * upright: I = m l^2 / 3 and gravity's torque m g (l/2) sin(theta) give
 *   theta_acc = 3 g / (2 l) sin(theta) + 3 / (m l^2) u.
 * Semi-implicit Euler: the velocity is updated and clipped to +-8 first, then the angle moves
 * with the new velocity. The cost angle^2 + 0.1 theta_dot^2 + 0.001 u^2 is taken on the state
 * the action was applied in, so the reward is in [-16.27, 0]. The task never terminates. */
static void pd_step(void *state, frl_rng_t *rng, const float *action, float *obs, frl_step_t *out) {
  pendulum_t *p = state;
  const double u = action[0];
  const double th = angle_normalize(p->theta);
  const double cost = th * th + 0.1 * p->theta_dot * p->theta_dot + 0.001 * u * u;

  const double theta_acc = 3.0 * p->gravity / (2.0 * p->length) * sin(p->theta) +
                           3.0 / (p->mass * p->length * p->length) * (p->motor * u);
  double v = p->theta_dot + theta_acc * PD_DT;
  v = v < -PD_MAX_SPEED ? -PD_MAX_SPEED : (v > PD_MAX_SPEED ? PD_MAX_SPEED : v);
  p->theta_dot = v;
  p->theta += v * PD_DT;
  write_obs(p, obs);
  out->reward = (float)-cost;
}

/* s = {theta, theta_dot}; theta_dot must lie in [-8, 8], the range the dynamics keep it in. */
static int pd_set_state(void *state, const double *s, int n, float *obs) {
  if (n != 2) return FRL_EDIM;
  if (!isfinite(s[0]) || !isfinite(s[1]) || fabs(s[1]) > PD_MAX_SPEED) return FRL_EUSAGE;
  pendulum_t *p = state;
  p->theta = s[0];
  p->theta_dot = s[1];
  write_obs(p, obs);
  return 0;
}

/* Physical parameters: gravity (absolute, m/s^2), mass, link length and motor strength (as
 * multipliers). */
static void pd_physics_nominal(const void *state, double *nominal) {
  nominal[FRL_PHYS_GRAVITY] = PD_GRAVITY;
  nominal[FRL_PHYS_MASS] = 1.0;
  nominal[FRL_PHYS_LINK] = 1.0;
  nominal[FRL_PHYS_MOTOR] = 1.0;
}

/* value NULL (or NAN entries) restores the constants. */
static void pd_set_physics(void *state, const double *value) {
  pendulum_t *p = state;
  p->gravity = frl__phys_or(value, FRL_PHYS_GRAVITY, PD_GRAVITY);
  p->mass = PD_MASS * frl__phys_or(value, FRL_PHYS_MASS, 1.0);
  p->length = PD_LENGTH * frl__phys_or(value, FRL_PHYS_LINK, 1.0);
  p->motor = frl__phys_or(value, FRL_PHYS_MOTOR, 1.0);
}

const frl_env_impl_t frl_env_pendulum = {
    .name = "pendulum",
    .state_size = sizeof(pendulum_t),
    .init = pd_init,
    .reset = pd_reset,
    .step = pd_step,
    .set_state = pd_set_state,
    .physics_nominal = pd_physics_nominal,
    .set_physics = pd_set_physics,
};
