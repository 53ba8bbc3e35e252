/* env.c: the registry of built-in environments and the wrapper every impl runs inside: seeding,
 * action validation and clipping, step counting and the time-limit truncation; wrappers around
 * environments (frl__env_wrap) and the physical-parameter hooks domain randomization drives. */
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
  frl_env_t *inner;              /* the wrapped environment (wrappers only), owned */
  double physics[FRL_PHYS_COUNT]; /* values last set, NAN = nominal */
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
  for (int p = 0; p < FRL_PHYS_COUNT; p++) e->physics[p] = NAN;
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

int frl__env_wrap(frl_env_t **inner, const frl_env_impl_t *impl, const void *arg, uint64_t seed,
                  char *err, size_t errlen) {
  char scratch[8];
  if (!err || errlen == 0) {
    err = scratch;
    errlen = sizeof scratch;
  }
  if (!inner || !*inner || !impl || !impl->wrap) {
    snprintf(err, errlen, "frl__env_wrap: no environment or no wrap hook");
    return FRL_EUSAGE;
  }
  frl_env_t *e = frl_xcalloc(1, sizeof *e);
  e->impl = impl;
  e->state = frl_xcalloc(1, impl->state_size);
  e->spec.name = impl->name;
  for (int p = 0; p < FRL_PHYS_COUNT; p++) e->physics[p] = NAN;
  int rc = impl->wrap(e->state, *inner, arg, &e->spec, err, errlen);
  if (rc != 0) {
    free(e->state);
    free(e);
    return rc;
  }
  assert(e->spec.obs_dim > 0 && e->spec.obs_dim <= FRL_ENV_MAX_DIM);
  assert(e->spec.act_dim > 0 && e->spec.act_dim <= FRL_ENV_MAX_DIM);
  assert(e->spec.n_actions >= 0 && (e->spec.n_actions == 0 || e->spec.act_dim == 1));
  assert(e->spec.max_steps >= 0);
  frl_rng_seed(&e->rng, seed);
  e->inner = *inner;
  *inner = e;
  return 0;
}

frl_env_t *frl__env_inner(const frl_env_t *e) { return e->inner; }
const frl_env_impl_t *frl__env_impl(const frl_env_t *e) { return e->impl; }
void *frl__env_state(const frl_env_t *e) { return e->state; }

void frl_env_destroy(frl_env_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_env_t *e = *self_p;
  if (e->impl->close) e->impl->close(e->state);
  frl_env_destroy(&e->inner);
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

/* ---- physical parameters ----------------------------------------------------------------------- */

static const struct {
  const char *name;
  double lo, hi;
} g_phys[FRL_PHYS_COUNT] = {
    /* Masses and lengths stay positive (they divide); the upper bounds are far outside any
     * randomization range yet keep the explicit integrators of the classic tasks stable. */
    [FRL_PHYS_MASS] = {"mass", 0.05, 20.0},
    [FRL_PHYS_DAMPING] = {"damping", 0.0, 20.0},
    [FRL_PHYS_MOTOR] = {"motor_strength", 0.0, 20.0},
    [FRL_PHYS_FRICTION] = {"friction", 0.0, 5.0},
    [FRL_PHYS_GRAVITY] = {"gravity", 0.0, 50.0},
    [FRL_PHYS_LINK] = {"link_length", 0.2, 5.0},
};

const char *frl_phys_name(int p) { return p >= 0 && p < FRL_PHYS_COUNT ? g_phys[p].name : NULL; }

int frl_phys_lookup(const char *name) {
  for (int p = 0; name && p < FRL_PHYS_COUNT; p++)
    if (strcmp(g_phys[p].name, name) == 0) return p;
  return -1;
}

void frl_phys_bounds(int p, double *lo, double *hi) {
  assert(p >= 0 && p < FRL_PHYS_COUNT);
  *lo = g_phys[p].lo;
  *hi = g_phys[p].hi;
}

const frl_env_goal_t *frl_env_goal(const frl_env_t *e) {
  while (e->inner) e = e->inner;
  return e->impl->goal;
}

/* The environment whose impl owns the physical parameters: the first in the wrapper chain with
 * the hooks, else the innermost. */
static const frl_env_t *physics_owner(const frl_env_t *e) {
  while (!e->impl->physics_nominal && e->inner) e = e->inner;
  return e;
}

int frl_env_physics_nominal(const frl_env_t *e, double nominal[FRL_PHYS_COUNT]) {
  const frl_env_t *o = physics_owner(e);
  for (int p = 0; p < FRL_PHYS_COUNT; p++) nominal[p] = NAN;
  if (o->impl->physics_nominal) o->impl->physics_nominal(o->state, nominal);
  int n = 0;
  for (int p = 0; p < FRL_PHYS_COUNT; p++) n += !isnan(nominal[p]);
  return n;
}

int frl_env_set_physics(frl_env_t *e, const double *value, char *err, size_t errlen) {
  char scratch[8];
  if (!err || errlen == 0) {
    err = scratch;
    errlen = sizeof scratch;
  }
  frl_env_t *o = (frl_env_t *)physics_owner(e);
  double nominal[FRL_PHYS_COUNT], v[FRL_PHYS_COUNT];
  frl_env_physics_nominal(o, nominal);
  for (int p = 0; p < FRL_PHYS_COUNT; p++) {
    v[p] = value ? value[p] : NAN;
    if (isnan(v[p])) continue;
    if (isnan(nominal[p])) {
      snprintf(err, errlen, "%s has no physical parameter '%s'", o->spec.name, g_phys[p].name);
      return FRL_EUSAGE;
    }
    if (!(v[p] >= g_phys[p].lo && v[p] <= g_phys[p].hi)) {
      snprintf(err, errlen, "%s: %g is outside the allowed range [%g, %g]", g_phys[p].name, v[p],
               g_phys[p].lo, g_phys[p].hi);
      return FRL_EUSAGE;
    }
  }
  if (o->impl->set_physics) o->impl->set_physics(o->state, v);
  memcpy(o->physics, v, sizeof v);
  return 0;
}

void frl_env_physics(const frl_env_t *e, double value[FRL_PHYS_COUNT]) {
  memcpy(value, physics_owner(e)->physics, sizeof(double) * FRL_PHYS_COUNT);
}
