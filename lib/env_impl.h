/* env_impl.h: internals shared by env.c, the environment modules and the wrappers around them
 * (domain randomization, the hardware model): the built-in impl tables, a state-setting hook
 * that tests use to start a step from a chosen state, and the wrapping machinery. */
#ifndef FRL_ENV_IMPL_H
#define FRL_ENV_IMPL_H

#include <math.h>

#include "env.h"

/* For set_physics hooks: value[p], or nominal when value is NULL or value[p] is NAN. */
static inline double frl__phys_or(const double *value, int p, double nominal) {
  return value && !isnan(value[p]) ? value[p] : nominal;
}

extern const frl_env_impl_t frl_env_cartpole;
extern const frl_env_impl_t frl_env_gridworld;
extern const frl_env_impl_t frl_env_pendulum;
extern const frl_env_impl_t frl_env_reacher6;
extern const frl_env_impl_t frl_env_joint_tracking;
extern const frl_env_impl_t frl_env_planar_arm;
extern const frl_env_impl_t frl_env_humanoid_standup;
extern const frl_env_impl_t frl_env_humanoid_walk;
extern const frl_env_impl_t frl_env_mj_reacher;
extern const frl_env_impl_t frl_env_walker;

/* Creates an environment around any impl table (what frl_env_new does for a registered name);
 * lets tests drive the wrapper with an impl of their own. Never returns NULL. */
frl_env_t *frl__env_new_impl(const frl_env_impl_t *impl, uint64_t seed);

/* Like frl__env_new_impl, but an impl whose open fails returns its error and reason. */
int frl__env_open_impl(frl_env_t **out, const frl_env_impl_t *impl, uint64_t seed, char *err,
                       size_t errlen);

/* Overwrites the running episode's simulated state through the impl's set_state hook (the
 * step counter is kept) and writes the matching obs. Returns 0, FRL_EUSAGE when the impl has no
 * hook or no episode is running, or the hook's error (state unchanged). */
int frl__env_set_state(frl_env_t *e, const double *s, int n, float *obs);

/* Wraps *inner in a new environment driven by impl (whose wrap hook receives inner and arg):
 * the wrapper's reset and step see validated actions and run the inner environment's own reset
 * and step, so wrappers compose (hardware model around domain randomization around a task). The
 * wrapper's generator is seeded from seed. On success *inner is owned by the wrapper (destroyed
 * with it) and replaced by the wrapper; on error *inner is untouched and still the caller's, and
 * err holds the wrap hook's reason. */
int frl__env_wrap(frl_env_t **inner, const frl_env_impl_t *impl, const void *arg, uint64_t seed,
                  char *err, size_t errlen);
/* The environment a wrapper wraps, NULL for a plain one. */
frl_env_t *frl__env_inner(const frl_env_t *e);
/* The impl table and its state (for wrappers and tests that look inside). */
const frl_env_impl_t *frl__env_impl(const frl_env_t *e);
void *frl__env_state(const frl_env_t *e);

/* The MuJoCo model of a built-in MuJoCo environment (after unwrapping wrappers), NULL for any
 * other; tests read physical parameters back from it. */
struct mjModel_;
const struct mjModel_ *frl__env_mj_model(const frl_env_t *e);

#endif
