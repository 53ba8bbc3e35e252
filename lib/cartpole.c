/* cartpole.c: the cart-pole balancing task of Barto, Sutton & Anderson (1983), with the
 * constants, Euler integration, thresholds and reward of OpenAI Gym's CartPole-v1. */
#include <math.h>
#include <string.h>

#include "common.h"
#include "env_impl.h"

#define CP_GRAVITY 9.8
#define CP_MASS_CART 1.0
#define CP_MASS_POLE 0.1
#define CP_HALF_LENGTH 0.5  /* l: distance from the pivot to the pole's centre of mass */
#define CP_FORCE 10.0
#define CP_TAU 0.02         /* seconds per step */
#define CP_X_LIMIT 2.4
#define CP_THETA_LIMIT (12.0 * 2.0 * M_PI / 360.0) /* 12 degrees, 0.2094 rad */
#define CP_MAX_STEPS 500

/* State in double as in the reference formulation; observations are its float rounding. The
 * physical constants in effect follow: the defines above unless domain randomization set them
 * (mass scales both masses, motor strength the push force, link length the pole). */
typedef struct {
  double x, x_dot, theta, theta_dot;
  double gravity, mass_cart, mass_pole, half_length, force;
} cartpole_t;

static void write_obs(const cartpole_t *c, float *obs) {
  obs[0] = (float)c->x;
  obs[1] = (float)c->x_dot;
  obs[2] = (float)c->theta;
  obs[3] = (float)c->theta_dot;
}

static void cp_set_physics(void *state, const double *value);

static void cp_init(void *state, frl_env_spec_t *spec) {
  cp_set_physics(state, NULL);
  spec->obs_dim = 4;
  spec->act_dim = 1;
  spec->n_actions = 2;
  spec->max_steps = CP_MAX_STEPS;
}

static void cp_reset(void *state, frl_rng_t *rng, float *obs) {
  cartpole_t *c = state;
  double *v[4] = {&c->x, &c->x_dot, &c->theta, &c->theta_dot};
  for (int i = 0; i < 4; i++) *v[i] = -0.05 + 0.1 * frl_rng_uniform(rng);
  write_obs(c, obs);
}

/* Frictionless cart-pole dynamics (Barto et al. 1983, eqs. 21-22 with mu_c = mu_p = 0; see
 * also Florian 2007, "Correct equations for the dynamics of the cart-pole system"), with
 * M = m_c + m_p, F = +-force and theta measured from upright:
 *   theta_acc = (g sin(theta) - cos(theta) (F + m_p l theta_dot^2 sin(theta)) / M)
 *               / (l (4/3 - m_p cos^2(theta) / M))
 *   x_acc     = (F + m_p l (theta_dot^2 sin(theta) - theta_acc cos(theta))) / M
 * then one explicit Euler step of length tau, positions updated with the old velocities. */
static void cp_step(void *state, frl_rng_t *rng, const float *action, float *obs, frl_step_t *out) {
  cartpole_t *c = state;
  const double total_mass = c->mass_cart + c->mass_pole;
  const double pole_ml = c->mass_pole * c->half_length;
  double force = (int)action[0] == 1 ? c->force : -c->force;
  double sin_t = sin(c->theta), cos_t = cos(c->theta);
  double common_term = (force + pole_ml * c->theta_dot * c->theta_dot * sin_t) / total_mass;
  double theta_acc = (c->gravity * sin_t - cos_t * common_term) /
                     (c->half_length * (4.0 / 3.0 - c->mass_pole * cos_t * cos_t / total_mass));
  double x_acc = common_term - pole_ml * theta_acc * cos_t / total_mass;

  c->x += CP_TAU * c->x_dot;
  c->x_dot += CP_TAU * x_acc;
  c->theta += CP_TAU * c->theta_dot;
  c->theta_dot += CP_TAU * theta_acc;
  write_obs(c, obs);

  out->terminal = c->x < -CP_X_LIMIT || c->x > CP_X_LIMIT || c->theta < -CP_THETA_LIMIT ||
                  c->theta > CP_THETA_LIMIT;
  out->reward = 1.0f; /* every step the pole was balanced at its start, the failing one too */
}

/* s = {x, x_dot, theta, theta_dot}. */
static int cp_set_state(void *state, const double *s, int n, float *obs) {
  if (n != 4) return FRL_EDIM;
  for (int i = 0; i < 4; i++)
    if (!isfinite(s[i])) return FRL_EUSAGE;
  cartpole_t *c = state;
  c->x = s[0];
  c->x_dot = s[1];
  c->theta = s[2];
  c->theta_dot = s[3];
  write_obs(c, obs);
  return 0;
}

/* Physical parameters: gravity (absolute), mass, motor strength and link length (multipliers).
 * The cart-pole has no friction in this formulation, so it has no friction parameter. */
static void cp_physics_nominal(const void *state, double *nominal) {
  nominal[FRL_PHYS_GRAVITY] = CP_GRAVITY;
  nominal[FRL_PHYS_MASS] = 1.0;
  nominal[FRL_PHYS_MOTOR] = 1.0;
  nominal[FRL_PHYS_LINK] = 1.0;
}

static void cp_set_physics(void *state, const double *value) {
  cartpole_t *c = state;
  const double mass = frl__phys_or(value, FRL_PHYS_MASS, 1.0);
  c->gravity = frl__phys_or(value, FRL_PHYS_GRAVITY, CP_GRAVITY);
  c->mass_cart = CP_MASS_CART * mass;
  c->mass_pole = CP_MASS_POLE * mass;
  c->half_length = CP_HALF_LENGTH * frl__phys_or(value, FRL_PHYS_LINK, 1.0);
  c->force = CP_FORCE * frl__phys_or(value, FRL_PHYS_MOTOR, 1.0);
}

const frl_env_impl_t frl_env_cartpole = {
    .name = "cartpole",
    .state_size = sizeof(cartpole_t),
    .init = cp_init,
    .reset = cp_reset,
    .step = cp_step,
    .set_state = cp_set_state,
    .physics_nominal = cp_physics_nominal,
    .set_physics = cp_set_physics,
};
