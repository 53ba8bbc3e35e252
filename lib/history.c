/* history.c: the history of commands and observations (see history.h) and its environment
 * wrapper. */
#include "history.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "env_impl.h"

int frl_history_init(frl_history_t *h, int k, int m, const frl_env_spec_t *spec, char *err,
                     size_t errlen) {
  char scratch[8];
  if (!err || errlen == 0) {
    err = scratch;
    errlen = sizeof scratch;
  }
  if (k < 0 || k > FRL_HISTORY_MAX) {
    snprintf(err, errlen, "--action-history: %d is outside the allowed range [0, %d]", k,
             FRL_HISTORY_MAX);
    return FRL_EUSAGE;
  }
  if (m < 0 || m > FRL_OBS_HISTORY_MAX) {
    snprintf(err, errlen, "--obs-history: %d is outside the allowed range [0, %d]", m,
             FRL_OBS_HISTORY_MAX);
    return FRL_EUSAGE;
  }
  if ((k > 0 || m > 0) && spec->n_actions > 0) {
    snprintf(err, errlen, "--%s-history: environment %s has discrete actions; the history is for "
             "continuous ones (use 0)", k > 0 ? "action" : "obs", spec->name ? spec->name : "?");
    return FRL_EUSAGE;
  }
  const int total = (m + 1) * spec->obs_dim + k * spec->act_dim;
  if (total > FRL_ENV_MAX_DIM) {
    if (m == 0)
      snprintf(err, errlen, "--action-history: %d commands of %d values make an observation of "
               "%d values (limit %d)", k, spec->act_dim, total, FRL_ENV_MAX_DIM);
    else
      snprintf(err, errlen, "--obs-history: %d past observations of %d values (and %d commands "
               "of %d) make an observation of %d values (limit %d)", m, spec->obs_dim, k,
               spec->act_dim, total, FRL_ENV_MAX_DIM);
    return FRL_EUSAGE;
  }
  memset(h, 0, sizeof *h);
  h->k = k;
  h->m = m;
  h->act_dim = spec->act_dim;
  h->obs_dim = spec->obs_dim;
  for (int i = 0; i < h->act_dim; i++) {
    float lo = spec->act_low[i], hi = spec->act_high[i];
    h->mid[i] = 0.5f * (lo + hi);
    h->half[i] = 0.5f * (hi - lo);
    float zero = 0.0f < lo ? lo : (0.0f > hi ? hi : 0.0f);
    h->neutral[i] = h->half[i] > 0.0f ? (zero - h->mid[i]) / h->half[i] : 0.0f;
  }
  frl_history_reset(h);
  return 0;
}

int frl_history_dim(const frl_history_t *h) { return h->m * h->obs_dim + h->k * h->act_dim; }

void frl_history_reset(frl_history_t *h) {
  for (int s = 0; s < h->k; s++)
    memcpy(h->slot[s], h->neutral, sizeof(float) * (size_t)h->act_dim);
  h->head = 0;
  h->past_head = 0;
  h->fresh = true;
}

void frl_history_push(frl_history_t *h, const float *action) {
  if (h->k == 0) return;
  h->head = (h->head + h->k - 1) % h->k;
  float *s = h->slot[h->head];
  for (int i = 0; i < h->act_dim; i++) {
    float u = h->half[i] > 0.0f ? (action[i] - h->mid[i]) / h->half[i] : 0.0f;
    s[i] = isnan(u) ? h->neutral[i] : (u < -1.0f ? -1.0f : (u > 1.0f ? 1.0f : u));
  }
}

void frl_history_observe(frl_history_t *h, const float *obs) {
  if (h->m == 0) return;
  bool finite = obs != NULL;
  for (int i = 0; finite && i < h->obs_dim; i++) finite = isfinite(obs[i]);
  if (!finite) {
    h->fresh = true;
    return;
  }
  const size_t bytes = sizeof(float) * (size_t)h->obs_dim;
  if (h->fresh) {
    /* The episode's first step: everything before it is the observation it started from. */
    for (int j = 0; j < h->m; j++) memcpy(h->past[j], obs, bytes);
    h->past_head = 0;
    h->fresh = false;
    return;
  }
  h->past_head = (h->past_head + h->m - 1) % h->m;
  memcpy(h->past[h->past_head], obs, bytes);
}

void frl_history_write(const frl_history_t *h, const float *obs, float *out) {
  const size_t od = (size_t)h->obs_dim, ad = (size_t)h->act_dim;
  for (int j = 0; j < h->m; j++)
    memcpy(out + (size_t)j * od, h->fresh ? obs : h->past[(h->past_head + j) % h->m],
           sizeof(float) * od);
  out += (size_t)h->m * od;
  for (int j = 0; j < h->k; j++)
    memcpy(out + (size_t)j * ad, h->slot[(h->head + j) % h->k], sizeof(float) * ad);
}

/* ---- the wrapper ------------------------------------------------------------------------------- */

typedef struct {
  frl_env_t *inner;
  int inner_dim;
  frl_history_t h;
  float last[FRL_ENV_MAX_DIM]; /* the inner observation the next step is taken from */
} wrap_t;

typedef struct {
  int k, m;
} wrap_arg_t;

static int hist_wrap(void *state, frl_env_t *inner, const void *arg, frl_env_spec_t *spec,
                     char *err, size_t errlen) {
  wrap_t *w = state;
  const wrap_arg_t *a = arg;
  const frl_env_spec_t *in = frl_env_spec(inner);
  int rc = frl_history_init(&w->h, a->k, a->m, in, err, errlen);
  if (rc) return rc;
  w->inner = inner;
  w->inner_dim = in->obs_dim;
  *spec = *in;
  spec->obs_dim = in->obs_dim + frl_history_dim(&w->h);
  return 0;
}

/* The observation: the inner one, then the history for it. */
static void hist_emit(wrap_t *w, float *obs) {
  if (w->h.m > 0) memcpy(w->last, obs, sizeof(float) * (size_t)w->inner_dim);
  frl_history_write(&w->h, obs, obs + w->inner_dim);
}

static void hist_reset(void *state, frl_rng_t *rng, float *obs) {
  (void)rng;
  wrap_t *w = state;
  frl_history_reset(&w->h);
  frl_env_reset(w->inner, obs);
  hist_emit(w, obs);
}

static void hist_step(void *state, frl_rng_t *rng, const float *action, float *obs,
                      frl_step_t *out) {
  (void)rng;
  wrap_t *w = state;
  frl_history_push(&w->h, action);
  frl_history_observe(&w->h, w->last);
  frl_env_step(w->inner, action, obs, out);
  hist_emit(w, obs);
}

/* A state set midway keeps the history: the commands were given and the observations seen. */
static int hist_set_state(void *state, const double *s, int n, float *obs) {
  wrap_t *w = state;
  int rc = frl__env_set_state(w->inner, s, n, obs);
  if (rc == 0) hist_emit(w, obs);
  return rc;
}

static const frl_env_impl_t g_history_impl = {
    .name = "history",
    .state_size = sizeof(wrap_t),
    .reset = hist_reset,
    .step = hist_step,
    .set_state = hist_set_state,
    .wrap = hist_wrap,
};

int frl_history_wrap(frl_env_t **env, int k, int m, char *err, size_t errlen) {
  if (k == 0 && m == 0) return 0;
  const wrap_arg_t arg = {.k = k, .m = m};
  return frl__env_wrap(env, &g_history_impl, &arg, 0, err, errlen);
}
