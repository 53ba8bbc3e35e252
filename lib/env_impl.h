/* env_impl.h: internals shared by env.c and the environment modules: the built-in impl tables
 * and a state-setting hook that tests use to start a step from a chosen state. */
#ifndef FRL_ENV_IMPL_H
#define FRL_ENV_IMPL_H

#include "env.h"

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

#endif
