/* env.h: the environment interface every simulated task implements, and the registry of
 * built-in environments by name ("cartpole", "gridworld"). Shared by actors (acting) and the
 * learner (greedy evaluation). Actions are float arrays: for discrete environments act_dim is
 * 1 and action[0] holds the action index. */
#ifndef FRL_ENV_H
#define FRL_ENV_H

#include <stdbool.h>
#include <stdint.h>

#define FRL_ENV_MAX_DIM 256

typedef struct {
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

/* Implementation table; each environment module defines one. */
typedef struct {
  const char *name;
  size_t state_size;
  void (*init)(void *state, frl_env_spec_t *spec);
  void (*reset)(void *state, uint64_t *rng_state, float *obs);
  void (*step)(void *state, const float *action, float *obs, frl_step_t *out);
} frl_env_impl_t;

/* Creates the named environment, seeded. Returns 0, or FRL_ENOTFOUND with the list of known
 * names logged by the caller via frl_env_names(). */
int frl_env_new(frl_env_t **out, const char *name, uint64_t seed);
void frl_env_destroy(frl_env_t **self_p);
const frl_env_spec_t *frl_env_spec(const frl_env_t *e);
/* Starts an episode; writes obs[obs_dim]. */
void frl_env_reset(frl_env_t *e, float *obs);
/* Applies action (discrete index in action[0], or act_dim floats which are clipped to the
 * bounds), writes the next observation and the step result. Stepping after terminal or
 * truncation without reset is a programmer error. */
void frl_env_step(frl_env_t *e, const float *action, float *obs, frl_step_t *out);
/* Comma-separated list of built-in environment names. */
const char *frl_env_names(void);

#endif
