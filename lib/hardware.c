/* hardware.c: the hardware-model wrapper (see hardware.h): motor saturation and dead-band, the
 * energy charge, and noisy, delayed sensors. */
#include "hardware.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "env_impl.h"

void frl_hardware_defaults(frl_hardware_opts_t *o) {
  o->deadband = 0.02;
  o->saturation = 0.9;
  o->energy_penalty = 1e-5;
  o->sensor_noise = 0.01;
  o->sensor_delay = 1;
}

static int check(const frl_hardware_opts_t *o, char *err, size_t errlen) {
  if (!(o->saturation > 0.0 && o->saturation <= 1.0)) {
    snprintf(err, errlen, "hardware saturation %g is outside (0, 1]", o->saturation);
    return FRL_EUSAGE;
  }
  if (!(o->deadband >= 0.0 && o->deadband < o->saturation)) {
    snprintf(err, errlen,
             "hardware dead-band %g must lie in [0, saturation %g): a larger one swallows every "
             "command",
             o->deadband, o->saturation);
    return FRL_EUSAGE;
  }
  if (!(o->energy_penalty >= 0.0 && o->energy_penalty <= 1e3) ||
      !(o->sensor_noise >= 0.0 && o->sensor_noise <= 10.0) ||
      !(o->sensor_delay >= 0 && o->sensor_delay <= FRL_HARDWARE_MAX_DELAY)) {
    snprintf(err, errlen,
             "hardware energy penalty %g (allowed [0, 1000]), sensor noise %g ([0, 10]) or "
             "sensor delay %d ([0, %d]) out of range",
             o->energy_penalty, o->sensor_noise, o->sensor_delay, FRL_HARDWARE_MAX_DELAY);
    return FRL_EUSAGE;
  }
  return 0;
}

int frl_hardware_from_config(frl_hardware_opts_t *o, const frl_config_t *cfg, char *err,
                             size_t errlen) {
  char scratch[8];
  if (!err || errlen == 0) {
    err = scratch;
    errlen = sizeof scratch;
  }
  o->deadband = cfg->hw_deadband;
  o->saturation = cfg->hw_saturation;
  o->energy_penalty = cfg->hw_energy_penalty;
  o->sensor_noise = cfg->hw_sensor_noise;
  o->sensor_delay = cfg->hw_sensor_delay;
  int rc = check(o, err, errlen);
  if (rc) {
    char why[256];
    snprintf(why, sizeof why, "%s", err);
    snprintf(err, errlen, "--hw-*: %s", why);
  }
  return rc;
}

double frl_hardware_actuate(const frl_hardware_opts_t *o, const float *low, const float *high,
                            int n, const float *in, float *out) {
  double effort = 0.0;
  for (int i = 0; i < n; i++) {
    const double mid = 0.5 * ((double)low[i] + (double)high[i]);
    const double half = 0.5 * ((double)high[i] - (double)low[i]);
    const double limit = o->saturation * half, band = o->deadband * half;
    double v = (double)in[i] - mid;
    v = v < -limit ? -limit : (v > limit ? limit : v);
    const double mag = fabs(v) - band;
    v = mag > 0.0 ? copysign(mag, v) : 0.0;
    out[i] = (float)(mid + v);
    effort += fabs((double)out[i]);
  }
  return effort;
}

typedef struct {
  frl_env_t *inner;
  frl_hardware_opts_t o;
  frl_env_spec_t spec;
  int head; /* oldest measurement in the delay line */
  float line[FRL_HARDWARE_MAX_DELAY][FRL_ENV_MAX_DIM];
} hw_t;

static int hw_wrap(void *state, frl_env_t *inner, const void *arg, frl_env_spec_t *spec,
                   char *err, size_t errlen) {
  hw_t *h = state;
  int rc = check(arg, err, errlen);
  if (rc) return rc;
  h->inner = inner;
  h->o = *(const frl_hardware_opts_t *)arg;
  h->spec = *frl_env_spec(inner);
  *spec = h->spec;
  return 0;
}

/* Measures obs in place (noise), then swaps it through the delay line: obs leaves holding the
 * measurement of sensor_delay steps ago. */
static void sense(hw_t *h, frl_rng_t *rng, float *obs) {
  const int d = h->spec.obs_dim;
  if (h->o.sensor_noise > 0.0)
    for (int i = 0; i < d; i++) obs[i] += (float)(h->o.sensor_noise * frl_rng_normal(rng));
  if (h->o.sensor_delay == 0) return;
  float now[FRL_ENV_MAX_DIM];
  memcpy(now, obs, sizeof(float) * (size_t)d);
  memcpy(obs, h->line[h->head], sizeof(float) * (size_t)d);
  memcpy(h->line[h->head], now, sizeof(float) * (size_t)d);
  h->head = (h->head + 1) % h->o.sensor_delay;
}

static void hw_reset(void *state, frl_rng_t *rng, float *obs) {
  hw_t *h = state;
  frl_env_reset(h->inner, obs);
  if (h->o.sensor_noise > 0.0)
    for (int i = 0; i < h->spec.obs_dim; i++)
      obs[i] += (float)(h->o.sensor_noise * frl_rng_normal(rng));
  h->head = 0;
  for (int k = 0; k < h->o.sensor_delay; k++)
    memcpy(h->line[k], obs, sizeof(float) * (size_t)h->spec.obs_dim);
}

static void hw_step(void *state, frl_rng_t *rng, const float *action, float *obs, frl_step_t *out) {
  hw_t *h = state;
  const frl_env_spec_t *sp = &h->spec;
  if (sp->n_actions > 0) {
    frl_env_step(h->inner, action, obs, out);
  } else {
    float delivered[FRL_ENV_MAX_DIM];
    double effort =
        frl_hardware_actuate(&h->o, sp->act_low, sp->act_high, sp->act_dim, action, delivered);
    frl_env_step(h->inner, delivered, obs, out);
    out->reward -= (float)(h->o.energy_penalty * effort);
  }
  sense(h, rng, obs);
}

static int hw_set_state(void *state, const double *s, int n, float *obs) {
  hw_t *h = state;
  int rc = frl__env_set_state(h->inner, s, n, obs);
  if (rc == 0) {
    h->head = 0;
    for (int k = 0; k < h->o.sensor_delay; k++)
      memcpy(h->line[k], obs, sizeof(float) * (size_t)h->spec.obs_dim);
  }
  return rc;
}

static const frl_env_impl_t g_hw_impl = {
    .name = "hardware",
    .state_size = sizeof(hw_t),
    .reset = hw_reset,
    .step = hw_step,
    .set_state = hw_set_state,
    .wrap = hw_wrap,
};

int frl_hardware_wrap(frl_env_t **env, const frl_hardware_opts_t *o, uint64_t seed, char *err,
                      size_t errlen) {
  return frl__env_wrap(env, &g_hw_impl, o, seed, err, errlen);
}
