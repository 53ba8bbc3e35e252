/* history.c: the commanded-action history (see history.h) and its environment wrapper. */
#include "history.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "env_impl.h"

int frl_history_init(frl_history_t *h, int k, const frl_env_spec_t *spec, char *err,
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
  if (k > 0 && spec->n_actions > 0) {
    snprintf(err, errlen, "--action-history: environment %s has discrete actions; the history of "
             "commands is for continuous ones (use 0)", spec->name ? spec->name : "?");
    return FRL_EUSAGE;
  }
  if (spec->obs_dim + k * spec->act_dim > FRL_ENV_MAX_DIM) {
    snprintf(err, errlen, "--action-history: %d commands of %d values make an observation of %d "
             "values (limit %d)", k, spec->act_dim, spec->obs_dim + k * spec->act_dim,
             FRL_ENV_MAX_DIM);
    return FRL_EUSAGE;
  }
  memset(h, 0, sizeof *h);
  h->k = k;
  h->act_dim = spec->act_dim;
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

int frl_history_dim(const frl_history_t *h) { return h->k * h->act_dim; }

void frl_history_reset(frl_history_t *h) {
  for (int s = 0; s < h->k; s++)
    memcpy(h->slot[s], h->neutral, sizeof(float) * (size_t)h->act_dim);
  h->head = 0;
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

void frl_history_write(const frl_history_t *h, float *out) {
  for (int j = 0; j < h->k; j++)
    memcpy(out + (size_t)j * (size_t)h->act_dim, h->slot[(h->head + j) % h->k],
           sizeof(float) * (size_t)h->act_dim);
}

/* ---- the wrapper ------------------------------------------------------------------------------- */

typedef struct {
  frl_env_t *inner;
  int inner_dim;
  frl_history_t h;
} wrap_t;

static int hist_wrap(void *state, frl_env_t *inner, const void *arg, frl_env_spec_t *spec,
                     char *err, size_t errlen) {
  wrap_t *w = state;
  const frl_env_spec_t *in = frl_env_spec(inner);
  int rc = frl_history_init(&w->h, *(const int *)arg, in, err, errlen);
  if (rc) return rc;
  w->inner = inner;
  w->inner_dim = in->obs_dim;
  *spec = *in;
  spec->obs_dim = in->obs_dim + frl_history_dim(&w->h);
  return 0;
}

static void hist_reset(void *state, frl_rng_t *rng, float *obs) {
  (void)rng;
  wrap_t *w = state;
  frl_history_reset(&w->h);
  frl_env_reset(w->inner, obs);
  frl_history_write(&w->h, obs + w->inner_dim);
}

static void hist_step(void *state, frl_rng_t *rng, const float *action, float *obs,
                      frl_step_t *out) {
  (void)rng;
  wrap_t *w = state;
  frl_history_push(&w->h, action);
  frl_env_step(w->inner, action, obs, out);
  frl_history_write(&w->h, obs + w->inner_dim);
}

static int hist_set_state(void *state, const double *s, int n, float *obs) {
  wrap_t *w = state;
  int rc = frl__env_set_state(w->inner, s, n, obs);
  if (rc == 0) frl_history_write(&w->h, obs + w->inner_dim);
  return rc;
}

static const frl_env_impl_t g_history_impl = {
    .name = "action-history",
    .state_size = sizeof(wrap_t),
    .reset = hist_reset,
    .step = hist_step,
    .set_state = hist_set_state,
    .wrap = hist_wrap,
};

int frl_history_wrap(frl_env_t **env, int k, char *err, size_t errlen) {
  if (k == 0) return 0;
  return frl__env_wrap(env, &g_history_impl, &k, 0, err, errlen);
}
