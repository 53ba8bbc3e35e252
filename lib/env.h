/* env.h: the environment interface every simulated task implements, and the registry of
 * built-in environments by name (frl_env_names() lists them). Shared by actors (acting) and the
 * learner (greedy evaluation). Actions are float arrays: for discrete environments act_dim is
 * 1 and action[0] holds the action index. */
#ifndef FRL_ENV_H
#define FRL_ENV_H

#include <stdbool.h>
#include <stddef.h>
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
/* Comma-separated list of built-in environment names. */
const char *frl_env_names(void);

#endif
