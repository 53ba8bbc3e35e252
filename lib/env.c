/* env.c: the registry of built-in environments and the wrapper every impl runs inside: seeding,
 * action validation and clipping, step counting and the time-limit truncation. */
#include "env.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "env_impl.h"

/* Built-in environments. Adding one is one line here plus its module. */
static const frl_env_impl_t *const g_impls[] = {
    &frl_env_cartpole,
    &frl_env_gridworld,
    &frl_env_pendulum,
    &frl_env_reacher6,
    &frl_env_joint_tracking,
    &frl_env_planar_arm,
    &frl_env_humanoid_standup,
    &frl_env_humanoid_walk,
    &frl_env_mj_reacher,
    &frl_env_walker,
};

struct frl_env {
  const frl_env_impl_t *impl;
  frl_env_spec_t spec;
  frl_rng_t rng;
  int steps;     /* steps taken in the current episode */
  bool running;  /* reset was called and the episode has not ended */
  void *state;   /* impl->state_size bytes */
  float action[FRL_ENV_MAX_DIM]; /* the validated/clipped copy handed to the impl */
};

int frl_env_new(frl_env_t **out, const char *name, uint64_t seed, char *err, size_t errlen) {
  char scratch[8];
  if (!err) {
    err = scratch;
    errlen = sizeof scratch;
  }
  if (!name) {
    snprintf(err, errlen, "no environment name given");
    return FRL_EUSAGE;
  }
  for (size_t i = 0; i < FRL_ARRAY_LEN(g_impls); i++)
    if (strcmp(g_impls[i]->name, name) == 0) {
      frl_env_t *e = NULL;
      int rc = frl__env_open_impl(&e, g_impls[i], seed, err, errlen);
      if (rc == 0) *out = e;
      return rc;
    }
  snprintf(err, errlen, "unknown environment '%s'; known: %s", name, frl_env_names());
  return FRL_ENOTFOUND;
}

frl_env_t *frl__env_new_impl(const frl_env_impl_t *impl, uint64_t seed) {
  frl_env_t *e = NULL;
  char err[256];
  int rc = frl__env_open_impl(&e, impl, seed, err, sizeof err);
  assert(rc == 0 && "frl__env_new_impl: the impl failed to open");
  (void)rc;
  return e;
}

int frl__env_open_impl(frl_env_t **out, const frl_env_impl_t *impl, uint64_t seed, char *err,
                       size_t errlen) {
  frl_env_t *e = frl_xcalloc(1, sizeof *e);
  e->impl = impl;
  e->state = frl_xcalloc(1, impl->state_size);
  e->spec.name = impl->name;
  if (impl->open) {
    int rc = impl->open(e->state, &e->spec, err, errlen);
    if (rc != 0) {
      free(e->state);
      free(e);
      return rc;
    }
  } else {
    impl->init(e->state, &e->spec);
  }
  /* A malformed spec is a bug in the impl, not bad input. */
  assert(e->spec.obs_dim > 0 && e->spec.obs_dim <= FRL_ENV_MAX_DIM);
  assert(e->spec.act_dim > 0 && e->spec.act_dim <= FRL_ENV_MAX_DIM);
  assert(e->spec.n_actions >= 0 && (e->spec.n_actions == 0 || e->spec.act_dim == 1));
  assert(e->spec.max_steps >= 0);
  frl_rng_seed(&e->rng, seed);
  *out = e;
  return 0;
}

void frl_env_destroy(frl_env_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_env_t *e = *self_p;
  if (e->impl->close) e->impl->close(e->state);
  free(e->state);
  free(e);
  *self_p = NULL;
}

const frl_env_spec_t *frl_env_spec(const frl_env_t *e) { return &e->spec; }

void frl_env_reset(frl_env_t *e, float *obs) {
  e->steps = 0;
  e->running = true;
  e->impl->reset(e->state, &e->rng, obs);
}

/* Clips x into [lo, hi]; NaN maps to the middle of the range, a neutral action, so that one bad
 * policy output cannot poison the simulation. */
static float clip_action(float x, float lo, float hi) {
  if (isnan(x)) return 0.5f * (lo + hi);
  return x < lo ? lo : (x > hi ? hi : x);
}

void frl_env_step(frl_env_t *e, const float *action, float *obs, frl_step_t *out) {
  assert(e->running && "frl_env_step after the episode ended; call frl_env_reset");
  const frl_env_spec_t *sp = &e->spec;
  if (sp->n_actions > 0) {
    /* The index comes from this process's own policy, so a bad one is a programmer error;
     * without asserts it is clamped so the conversion below stays defined. */
    float a = action[0];
    assert(a >= 0.0f && a < (float)sp->n_actions);
    if (!(a >= 0.0f)) a = 0.0f;
    if (a >= (float)sp->n_actions) a = (float)(sp->n_actions - 1);
    e->action[0] = (float)(int)a;
  } else {
    for (int i = 0; i < sp->act_dim; i++)
      e->action[i] = clip_action(action[i], sp->act_low[i], sp->act_high[i]);
  }
  memset(out, 0, sizeof *out);
  e->impl->step(e->state, &e->rng, e->action, obs, out);
  e->steps++;
  /* A time limit is not part of the task's state, so it is reported as truncation (bootstrap
   * from obs), never as terminal (Pardo et al. 2018, "Time Limits in RL"). A step that is both
   * terminal and at the limit is terminal only. */
  if (!out->terminal && sp->max_steps > 0 && e->steps >= sp->max_steps) out->truncated = true;
  if (out->terminal || out->truncated) e->running = false;
}

int frl__env_set_state(frl_env_t *e, const double *s, int n, float *obs) {
  if (!e->impl->set_state || !e->running) return FRL_EUSAGE;
  return e->impl->set_state(e->state, s, n, obs);
}

static pthread_once_t g_names_once = PTHREAD_ONCE_INIT;
static char g_names[256];

static void build_names(void) {
  size_t used = 0;
  for (size_t i = 0; i < FRL_ARRAY_LEN(g_impls); i++) {
    size_t len = strlen(g_impls[i]->name);
    size_t need = len + (i > 0);
    assert(used + need < sizeof g_names && "grow g_names");
    if (used + need >= sizeof g_names) break;
    if (i > 0) g_names[used++] = ',';
    memcpy(g_names + used, g_impls[i]->name, len);
    used += len;
  }
  g_names[used] = '\0';
}

const char *frl_env_names(void) {
  pthread_once(&g_names_once, build_names);
  return g_names;
}
