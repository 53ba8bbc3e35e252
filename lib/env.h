/* env.h: the environment interface every simulated task implements, and the registry of
 * built-in environments by name (frl_env_names() lists them). Shared by actors (acting) and the
 * learner (greedy evaluation). Actions are float arrays: for discrete environments act_dim is
 * 1 and action[0] holds the action index. */
#ifndef FRL_ENV_H
#define FRL_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"

#define FRL_ENV_MAX_DIM 256

typedef struct frl_env_spec {
  const char *name;
  int obs_dim;
  int act_dim;       /* 1 for discrete */
  int n_actions;     /* > 0: discrete with this many actions; 0: continuous */
  float act_low[FRL_ENV_MAX_DIM], act_high[FRL_ENV_MAX_DIM]; /* continuous bounds */
  int max_steps;     /* episode is truncated (not terminated) at this many steps */
} frl_env_spec_t;

typedef struct {
  float reward;
  bool terminal;     /* a true end state: no bootstrapping past it */
  bool truncated;    /* time limit: bootstrap from the next observation */
  bool success;      /* task-defined success reached this step */
  uint32_t violations; /* safety/limit violations this step */
} frl_step_t;

typedef struct frl_env frl_env_t;

/* A goal-reaching environment's goal, for hindsight relabeling: its observation carries the
 * goal, and a step's reward and success can be recomputed for any other goal from the step's
 * next observation and action alone. Functions of their arguments only (no environment state),
 * so relabeling can run on recorded steps long after they happened. */
typedef struct {
  int goal_dim;
  /* The goal the state behind obs achieved (the fingertip, say): goal[goal_dim]. */
  void (*achieved)(const float *obs, float *goal);
  /* Rewrites obs in place as if goal had been the episode's goal. */
  void (*relabel)(float *obs, const float *goal);
  /* The reward of a step that took env_action (in the environment's units; clipped to its
   * bounds here) and ended in next_obs (already relabeled), and whether it reached the goal
   * (which ends the episode, as in the environment). */
  float (*reward)(const float *next_obs, const float *env_action, bool *success);
} frl_env_goal_t;

/* Implementation table; each environment module defines one and lists it in env.c's registry.
 * state is state_size zeroed bytes owned by the frl_env_t. rng is the environment's own
 * generator (seeded by frl_env_new), for initial states and any stochastic dynamics. The
 * wrapper in env.c counts steps and sets `truncated` at spec->max_steps, clips continuous
 * actions and validates discrete ones, so impls only simulate. */
typedef struct {
  const char *name;
  size_t state_size;
  /* Fills the spec; name is preset, everything else is zero until the impl sets it. */
  void (*init)(void *state, frl_env_spec_t *spec);
  void (*reset)(void *state, frl_rng_t *rng, float *obs);
  /* Writes obs[obs_dim] and out->reward/terminal/success/violations (out is zeroed first). */
  void (*step)(void *state, frl_rng_t *rng, const float *action, float *obs, frl_step_t *out);
  /* Optional (may be NULL): overwrites the simulated state with n values in the impl's own
   * layout and writes the matching obs; returns 0 or FRL_EDIM/FRL_EUSAGE. For tests. */
  int (*set_state)(void *state, const double *s, int n, float *obs);
  /* Optional, used instead of init when set: for environments that can fail to start (a model
   * file missing, a library error). Returns 0, or a negative code with a one-line reason in
   * err; close is then not called. */
  int (*open)(void *state, frl_env_spec_t *spec, char *err, size_t errlen);
  /* Optional: releases what open acquired. */
  void (*close)(void *state);
  /* Optional, both or neither: the physical parameters (see frl_phys_t below). physics_nominal
   * writes nominal[p] for every p < FRL_PHYS_COUNT, NAN for a parameter the impl lacks.
   * set_physics applies value[p] (NAN: nominal) for every parameter it has; env.c has checked
   * the bounds and that absent ones are NAN. It must derive everything from the nominal values,
   * never from what an earlier call set, so that nominal is restored exactly. */
  void (*physics_nominal)(const void *state, double *nominal);
  void (*set_physics)(void *state, const double *value);
  /* Optional, used instead of init and open by a wrapper made with frl__env_wrap (env_impl.h):
   * receives the wrapped environment (owned by the wrapper's frl_env_t, destroyed after close)
   * and the wrapper's argument; fills spec (typically a copy of the inner spec). Returns 0, or a
   * negative code with a one-line reason in err; close is then not called. */
  int (*wrap)(void *state, frl_env_t *inner, const void *arg, frl_env_spec_t *spec,
              char *err, size_t errlen);
  /* Optional: the goal, for a goal-reaching environment (see frl_env_goal_t). */
  const frl_env_goal_t *goal;
} frl_env_impl_t;

/* Creates the named environment with its own generator seeded from seed (same name and seed:
 * same episodes for the same actions). Returns 0 and *out; FRL_ENOTFOUND for an unknown name,
 * FRL_EUSAGE for a NULL name, or the impl's open error; then *out is untouched and err (when
 * not NULL) holds a one-line reason, listing the known names for an unknown one. */
int frl_env_new(frl_env_t **out, const char *name, uint64_t seed, char *err, size_t errlen);
void frl_env_destroy(frl_env_t **self_p);
const frl_env_spec_t *frl_env_spec(const frl_env_t *e);
/* Starts an episode; writes obs[obs_dim]. */
void frl_env_reset(frl_env_t *e, float *obs);
/* Applies action (discrete index in action[0], or act_dim floats which are clipped to the
 * bounds), writes the next observation and the step result. Stepping after terminal or
 * truncation without reset is a programmer error. */
void frl_env_step(frl_env_t *e, const float *action, float *obs, frl_step_t *out);
/* The goal of a goal-reaching environment (a wrapped one reports the innermost's), NULL for
 * any other. */
const frl_env_goal_t *frl_env_goal(const frl_env_t *e);
/* Comma-separated list of built-in environment names. */
const char *frl_env_names(void);

/* ---- physical parameters ----------------------------------------------------------------------
 * What domain randomization perturbs and `fleetrl eval --physics` sets. Each environment has the
 * subset that exists in its dynamics (frl_env_physics_nominal reports which). Multipliers of the
 * environment's own values (nominal 1): mass (every mass and inertia), damping (viscous joint
 * damping), motor_strength (torque or force per unit action), link_length (the kinematic lengths).
 * Absolute values: friction (sliding friction coefficient of every contact surface) and gravity
 * (magnitude in m/s^2, direction kept). */
typedef enum {
  FRL_PHYS_MASS = 0,
  FRL_PHYS_DAMPING,
  FRL_PHYS_MOTOR,
  FRL_PHYS_FRICTION,
  FRL_PHYS_GRAVITY,
  FRL_PHYS_LINK,
  FRL_PHYS_COUNT
} frl_phys_t;

/* "mass", "damping", "motor_strength", "friction", "gravity", "link_length"; NULL out of range. */
const char *frl_phys_name(int p);
/* The index of a parameter name, or -1. */
int frl_phys_lookup(const char *name);
/* The values a parameter may be set to, [lo, hi]: wide enough for any experiment, narrow enough
 * that every built-in simulation stays well defined. */
void frl_phys_bounds(int p, double *lo, double *hi);

/* Writes nominal[p] for every p < FRL_PHYS_COUNT: the environment's own value (1 for the
 * multipliers) when it has the parameter, NAN when it does not. A wrapped environment reports
 * the innermost one's. Returns how many parameters it has. */
int frl_env_physics_nominal(const frl_env_t *e, double nominal[FRL_PHYS_COUNT]);
/* Sets the physical parameters from value[FRL_PHYS_COUNT] (NULL: all nominal). NAN means
 * nominal; a parameter the environment lacks must be NAN. Every call starts from the nominal
 * model, so a parameter left NAN is restored whatever an earlier call set. Takes effect at once;
 * call it between episodes (before frl_env_reset), since some environments derive the episode's
 * start (a reachable target, say) from them at reset. Returns 0, or FRL_EUSAGE for a value
 * outside frl_phys_bounds or a parameter the environment lacks (nothing changed); err (when not
 * NULL) names the parameter and the bound. */
int frl_env_set_physics(frl_env_t *e, const double *value, char *err, size_t errlen);
/* Writes the values in effect (NAN for nominal or absent ones). */
void frl_env_physics(const frl_env_t *e, double value[FRL_PHYS_COUNT]);

#endif
