/* randomize.c: the domain-randomization wrapper (see randomize.h): range arithmetic, uniform and
 * clipped-Gaussian draws, the curriculum, the per-episode physics, observation noise, the action
 * delay line and the episode's JSON record. */
#include "randomize.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "env_impl.h"

/* ---- names, bounds and options ----------------------------------------------------------------- */

const char *frl_randomize_name(int p) {
  if (p == FRL_RANDOMIZE_SENSOR_NOISE) return "sensor_noise";
  if (p == FRL_RANDOMIZE_ACTION_DELAY) return "action_delay";
  return frl_phys_name(p);
}

int frl_randomize_lookup(const char *name) {
  for (int p = 0; name && p < FRL_RANDOMIZE_COUNT; p++)
    if (strcmp(frl_randomize_name(p), name) == 0) return p;
  return -1;
}

void frl_randomize_bounds(int p, double *lo, double *hi) {
  assert(p >= 0 && p < FRL_RANDOMIZE_COUNT);
  if (p == FRL_RANDOMIZE_SENSOR_NOISE) {
    *lo = 0.0;
    *hi = FRL_RANDOMIZE_MAX_NOISE;
  } else if (p == FRL_RANDOMIZE_ACTION_DELAY) {
    *lo = 0.0;
    *hi = FRL_RANDOMIZE_MAX_DELAY;
  } else {
    frl_phys_bounds(p, lo, hi);
  }
}

/* The seed's ranges (002:1906-1990), in frl_randomize_name order. */
static const double g_default_range[FRL_RANDOMIZE_COUNT][2] = {
    [FRL_PHYS_MASS] = {0.8, 1.2},     [FRL_PHYS_DAMPING] = {0.8, 1.2},
    [FRL_PHYS_MOTOR] = {0.8, 1.2},    [FRL_PHYS_FRICTION] = {0.5, 1.5},
    [FRL_PHYS_GRAVITY] = {9.5, 10.1}, [FRL_PHYS_LINK] = {0.98, 1.02},
    [FRL_RANDOMIZE_SENSOR_NOISE] = {0.0, 0.05}, [FRL_RANDOMIZE_ACTION_DELAY] = {0.0, 2.0},
};

void frl_randomize_defaults(frl_randomize_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->mode = FRL_RANDOMIZE_UNIFORM;
  for (int p = 0; p < FRL_RANDOMIZE_COUNT; p++) {
    o->lo[p] = g_default_range[p][0];
    o->hi[p] = g_default_range[p][1];
  }
  o->scale = 1.0;
  o->curriculum_steps = 0;
  o->curriculum_start = 0.1;
}

void frl_randomize_fixed(frl_randomize_opts_t *o, const double value[FRL_RANDOMIZE_COUNT]) {
  memset(o, 0, sizeof *o);
  o->mode = FRL_RANDOMIZE_UNIFORM;
  for (int p = 0; p < FRL_RANDOMIZE_COUNT; p++) o->lo[p] = o->hi[p] = value[p];
  o->scale = 1.0;
  o->curriculum_start = 1.0;
}

/* Checks one range against the parameter's bounds; `what` names its source for the message. */
static int check_range(int p, double lo, double hi, const char *what, char *err, size_t errlen) {
  if (isnan(lo) && isnan(hi)) return 0;
  double blo, bhi;
  frl_randomize_bounds(p, &blo, &bhi);
  if (!(lo >= blo && hi <= bhi && lo <= hi)) {
    snprintf(err, errlen, "%s: [%g, %g] must be an ordered range inside [%g, %g]", what, lo, hi,
             blo, bhi);
    return FRL_EUSAGE;
  }
  if (p == FRL_RANDOMIZE_ACTION_DELAY && (lo != floor(lo) || hi != floor(hi))) {
    snprintf(err, errlen, "%s: the action delay range needs whole steps, got [%g, %g]", what, lo,
             hi);
    return FRL_EUSAGE;
  }
  return 0;
}

/* Parses one finite number that fills the whole of [s, s + len). */
static int parse_number(const char *s, size_t len, double *out) {
  char buf[64];
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  char *end = NULL;
  errno = 0;
  double v = strtod(buf, &end);
  if (end == buf || *end != '\0' || errno == ERANGE || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

/* "LO:HI", or "off" (lo = hi = NAN). */
static int parse_range(const char *text, double *lo, double *hi) {
  if (strcmp(text, "off") == 0) {
    *lo = *hi = NAN;
    return 0;
  }
  const char *colon = strchr(text, ':');
  if (!colon || parse_number(text, (size_t)(colon - text), lo) != 0 ||
      parse_number(colon + 1, strlen(colon + 1), hi) != 0)
    return -1;
  return 0;
}

/* The --dr-<name> flag of each parameter and where its text lives in the config. */
static const char *range_text(const frl_config_t *cfg, int p, const char **flag) {
  static const char *const flags[FRL_RANDOMIZE_COUNT] = {
      [FRL_PHYS_MASS] = "--dr-mass",
      [FRL_PHYS_DAMPING] = "--dr-damping",
      [FRL_PHYS_MOTOR] = "--dr-motor-strength",
      [FRL_PHYS_FRICTION] = "--dr-friction",
      [FRL_PHYS_GRAVITY] = "--dr-gravity",
      [FRL_PHYS_LINK] = "--dr-link-length",
      [FRL_RANDOMIZE_SENSOR_NOISE] = "--dr-sensor-noise",
      [FRL_RANDOMIZE_ACTION_DELAY] = "--dr-action-delay",
  };
  const char *const texts[FRL_RANDOMIZE_COUNT] = {
      [FRL_PHYS_MASS] = cfg->dr_mass,
      [FRL_PHYS_DAMPING] = cfg->dr_damping,
      [FRL_PHYS_MOTOR] = cfg->dr_motor_strength,
      [FRL_PHYS_FRICTION] = cfg->dr_friction,
      [FRL_PHYS_GRAVITY] = cfg->dr_gravity,
      [FRL_PHYS_LINK] = cfg->dr_link_length,
      [FRL_RANDOMIZE_SENSOR_NOISE] = cfg->dr_sensor_noise,
      [FRL_RANDOMIZE_ACTION_DELAY] = cfg->dr_action_delay,
  };
  *flag = flags[p];
  return texts[p];
}

int frl_randomize_from_config(frl_randomize_opts_t *o, const frl_config_t *cfg, char *err,
                              size_t errlen) {
  char scratch[8];
  if (!err || errlen == 0) {
    err = scratch;
    errlen = sizeof scratch;
  }
  frl_randomize_defaults(o);
  if (strcmp(cfg->randomize, "off") == 0) o->mode = FRL_RANDOMIZE_OFF;
  else if (strcmp(cfg->randomize, "uniform") == 0) o->mode = FRL_RANDOMIZE_UNIFORM;
  else if (strcmp(cfg->randomize, "gaussian") == 0) o->mode = FRL_RANDOMIZE_GAUSSIAN;
  else if (strcmp(cfg->randomize, "arcsine") == 0) o->mode = FRL_RANDOMIZE_ARCSINE;
  else {
    snprintf(err, errlen, "--randomize: '%s' is not one of off|uniform|gaussian|arcsine", cfg->randomize);
    return FRL_EUSAGE;
  }
  o->scale = cfg->randomize_scale;
  o->curriculum_steps = cfg->curriculum_steps;
  o->curriculum_start = cfg->curriculum_start;
  for (int p = 0; p < FRL_RANDOMIZE_COUNT; p++) {
    const char *flag;
    const char *text = range_text(cfg, p, &flag);
    if (!text[0]) continue; /* empty: the seed's range */
    if (parse_range(text, &o->lo[p], &o->hi[p]) != 0) {
      snprintf(err, errlen, "%s: '%s' is not LO:HI (two numbers) or off", flag, text);
      return FRL_EUSAGE;
    }
    int rc = check_range(p, o->lo[p], o->hi[p], flag, err, errlen);
    if (rc) return rc;
  }
  return 0;
}

int frl_randomize_parse_values(const char *text, double value[FRL_RANDOMIZE_COUNT], char *err,
                               size_t errlen) {
  char scratch[8];
  if (!err || errlen == 0) {
    err = scratch;
    errlen = sizeof scratch;
  }
  for (int p = 0; p < FRL_RANDOMIZE_COUNT; p++) value[p] = NAN;
  if (!text || !*text) {
    snprintf(err, errlen, "no parameters given (name=value,...)");
    return FRL_EUSAGE;
  }
  const char *s = text;
  while (*s) {
    size_t len = strcspn(s, ",");
    const char *eq = memchr(s, '=', len);
    char name[32];
    size_t nlen = eq ? (size_t)(eq - s) : len;
    if (!eq || nlen == 0 || nlen >= sizeof name) {
      snprintf(err, errlen, "'%.*s' is not name=value", (int)FRL_MIN(len, 64), s);
      return FRL_EUSAGE;
    }
    memcpy(name, s, nlen);
    name[nlen] = '\0';
    int p = frl_randomize_lookup(name);
    if (p < 0) {
      snprintf(err, errlen,
               "unknown parameter '%s' (known: mass, damping, motor_strength, friction, gravity, "
               "link_length, sensor_noise, action_delay)",
               name);
      return FRL_EUSAGE;
    }
    if (!isnan(value[p])) {
      snprintf(err, errlen, "'%s' is given twice", name);
      return FRL_EUSAGE;
    }
    double v;
    if (parse_number(eq + 1, len - nlen - 1, &v) != 0) {
      snprintf(err, errlen, "%s: '%.*s' is not a finite number", name,
               (int)FRL_MIN(len - nlen - 1, 64), eq + 1);
      return FRL_EUSAGE;
    }
    double lo, hi;
    frl_randomize_bounds(p, &lo, &hi);
    if (v < lo || v > hi || (p == FRL_RANDOMIZE_ACTION_DELAY && v != floor(v))) {
      snprintf(err, errlen, "%s: %g is outside the allowed range [%g, %g]%s", name, v, lo, hi,
               p == FRL_RANDOMIZE_ACTION_DELAY ? " of whole steps" : "");
      return FRL_EUSAGE;
    }
    value[p] = v;
    s += len;
    if (*s == ',') s++;
  }
  return 0;
}

/* ---- ranges and draws -------------------------------------------------------------------------- */

double frl_randomize_fraction(const frl_randomize_opts_t *o, uint64_t steps) {
  if (o->curriculum_steps == 0) return 1.0;
  double progress = (double)steps / (double)o->curriculum_steps;
  if (progress > 1.0) progress = 1.0;
  return o->curriculum_start + (1.0 - o->curriculum_start) * progress;
}

bool frl_randomize_range(const frl_randomize_opts_t *o, int p, double nominal, double f,
                         double *lo, double *hi) {
  double a = o->lo[p], b = o->hi[p];
  if (isnan(a) || isnan(b)) return false;
  double c = isnan(nominal) ? 0.5 * (a + b) : (nominal < a ? a : (nominal > b ? b : nominal));
  double k = o->scale * f;
  double blo, bhi;
  frl_randomize_bounds(p, &blo, &bhi);
  a = c + k * (a - c);
  b = c + k * (b - c);
  *lo = a < blo ? blo : (a > bhi ? bhi : a);
  *hi = b < blo ? blo : (b > bhi ? bhi : b);
  return true;
}

/* A draw from the arcsine law on [0, 1]: sin^2(pi u / 2) for u uniform on [0, 1). */
static double arcsine_unit(frl_rng_t *rng) {
  double s = sin(0.5 * M_PI * frl_rng_uniform(rng));
  return s * s;
}

double frl_randomize_draw(const frl_randomize_opts_t *o, int p, double nominal, double f,
                          frl_rng_t *rng) {
  double lo, hi;
  if (o->mode == FRL_RANDOMIZE_OFF || !frl_randomize_range(o, p, nominal, f, &lo, &hi)) return NAN;
  if (p == FRL_RANDOMIZE_ACTION_DELAY) {
    /* Whole steps: uniform over the integers nearest the range's ends; Gaussian rounded;
     * arcsine over [ilo - 1/2, ihi + 1/2), rounded. */
    double ilo = floor(lo + 0.5), ihi = floor(hi + 0.5);
    if (o->mode == FRL_RANDOMIZE_UNIFORM)
      return ilo + (double)frl_rng_below(rng, (uint32_t)(ihi - ilo) + 1u);
    if (o->mode == FRL_RANDOMIZE_ARCSINE) {
      /* The unit draw can round to 1, which would give ihi + 1. */
      double x = floor(ilo + (ihi - ilo + 1.0) * arcsine_unit(rng));
      return x > ihi ? ihi : x;
    }
    double x = 0.5 * (lo + hi) + 0.25 * (hi - lo) * frl_rng_normal(rng);
    x = floor((x < lo ? lo : (x > hi ? hi : x)) + 0.5);
    return x < ilo ? ilo : (x > ihi ? ihi : x);
  }
  if (o->mode == FRL_RANDOMIZE_UNIFORM) return lo + (hi - lo) * frl_rng_uniform(rng);
  if (o->mode == FRL_RANDOMIZE_ARCSINE) return lo + (hi - lo) * arcsine_unit(rng);
  double x = 0.5 * (lo + hi) + 0.25 * (hi - lo) * frl_rng_normal(rng);
  return x < lo ? lo : (x > hi ? hi : x);
}

/* ---- the wrapper ------------------------------------------------------------------------------- */

typedef struct {
  frl_env_t *inner;
  frl_randomize_opts_t o;
  double nominal[FRL_RANDOMIZE_COUNT]; /* NAN: the environment lacks the parameter */
  double value[FRL_RANDOMIZE_COUNT];   /* this episode's (NAN: nominal) */
  uint64_t steps;
  int obs_dim, act_dim;
  bool reset_done;
  double noise;                        /* this episode's sensor-noise sigma */
  int delay;                           /* this episode's action delay */
  int head;                            /* oldest entry of the delay line */
  float neutral[FRL_ENV_MAX_DIM];      /* what the actuators do before the first action lands */
  float line[FRL_RANDOMIZE_MAX_DELAY][FRL_ENV_MAX_DIM];
  char json[FRL_RANDOMIZE_JSON_MAX];
} dr_t;

static int dr_wrap(void *state, frl_env_t *inner, const void *arg, frl_env_spec_t *spec,
                   char *err, size_t errlen) {
  dr_t *r = state;
  const frl_randomize_opts_t *o = arg;
  for (int p = 0; p < FRL_RANDOMIZE_COUNT; p++) {
    int rc = check_range(p, o->lo[p], o->hi[p], frl_randomize_name(p), err, errlen);
    if (rc) return rc;
  }
  if (!(o->scale >= 0.0 && o->scale <= 100.0) ||
      !(o->curriculum_start >= 0.0 && o->curriculum_start <= 1.0)) {
    snprintf(err, errlen, "randomization scale %g (allowed [0, 100]) or curriculum start %g "
             "(allowed [0, 1]) out of range", o->scale, o->curriculum_start);
    return FRL_EUSAGE;
  }
  r->inner = inner;
  r->o = *o;
  *spec = *frl_env_spec(inner);
  r->obs_dim = spec->obs_dim;
  r->act_dim = spec->act_dim;
  frl_env_physics_nominal(inner, r->nominal);
  r->nominal[FRL_RANDOMIZE_SENSOR_NOISE] = 0.0;
  r->nominal[FRL_RANDOMIZE_ACTION_DELAY] = 0.0;
  /* Before the first delayed action arrives the motors receive zero command (clipped into the
   * bounds), the usual state of a drive that has not been commanded yet; a discrete task gets
   * its first action, having no idle one. */
  for (int i = 0; i < r->act_dim; i++) {
    float lo = spec->n_actions > 0 ? 0.0f : spec->act_low[i];
    float hi = spec->n_actions > 0 ? 0.0f : spec->act_high[i];
    r->neutral[i] = 0.0f < lo ? lo : (0.0f > hi ? hi : 0.0f);
  }
  return 0;
}

static void add_noise(dr_t *r, frl_rng_t *rng, float *obs) {
  if (r->noise <= 0.0) return;
  for (int i = 0; i < r->obs_dim; i++) obs[i] += (float)(r->noise * frl_rng_normal(rng));
}

static void write_json(dr_t *r) {
  size_t used = 0;
  int n = snprintf(r->json, sizeof r->json, "{");
  used = (size_t)n;
  bool first = true;
  for (int p = 0; p < FRL_RANDOMIZE_COUNT; p++) {
    if (isnan(r->nominal[p])) continue;
    double v = isnan(r->value[p]) ? r->nominal[p] : r->value[p];
    n = snprintf(r->json + used, sizeof r->json - used,
                 p == FRL_RANDOMIZE_ACTION_DELAY ? "%s\"%s\":%.0f" : "%s\"%s\":%.6g",
                 first ? "" : ",", frl_randomize_name(p), v);
    /* Eight short names and numbers fit with room to spare; a cut record would not be JSON. */
    assert(n > 0 && used + (size_t)n < sizeof r->json - 1);
    used += (size_t)n;
    first = false;
  }
  snprintf(r->json + used, sizeof r->json - used, "}");
}

/* Draws the episode's parameters with the wrapper's generator, sets the physical ones on the
 * inner environment (which restores every other to nominal), then resets it. */
static void dr_reset(void *state, frl_rng_t *rng, float *obs) {
  dr_t *r = state;
  const double f = frl_randomize_fraction(&r->o, r->steps);
  for (int p = 0; p < FRL_RANDOMIZE_COUNT; p++)
    r->value[p] = isnan(r->nominal[p]) ? NAN : frl_randomize_draw(&r->o, p, r->nominal[p], f, rng);
  char why[256];
  int rc = frl_env_set_physics(r->inner, r->value, why, sizeof why);
  /* The draws lie inside the bounds dr_wrap checked and only cover parameters the inner
   * environment reported, so a refusal is a bug. */
  assert(rc == 0 && "randomize: the inner environment refused a draw");
  (void)rc;
  r->noise = isnan(r->value[FRL_RANDOMIZE_SENSOR_NOISE]) ? 0.0 : r->value[FRL_RANDOMIZE_SENSOR_NOISE];
  r->delay = isnan(r->value[FRL_RANDOMIZE_ACTION_DELAY]) ? 0 : (int)r->value[FRL_RANDOMIZE_ACTION_DELAY];
  r->head = 0;
  for (int k = 0; k < r->delay; k++)
    memcpy(r->line[k], r->neutral, sizeof(float) * (size_t)r->act_dim);
  frl_env_reset(r->inner, obs);
  add_noise(r, rng, obs);
  write_json(r);
  r->reset_done = true;
}

/* The action goes into a delay line of `delay` slots and the one `delay` steps old comes out
 * (the seed's FIFO, 002:2013-2095), so with delay k the action of step t acts at step t + k. */
static void dr_step(void *state, frl_rng_t *rng, const float *action, float *obs, frl_step_t *out) {
  dr_t *r = state;
  float applied[FRL_ENV_MAX_DIM];
  const size_t bytes = sizeof(float) * (size_t)r->act_dim;
  if (r->delay == 0) {
    memcpy(applied, action, bytes);
  } else {
    memcpy(applied, r->line[r->head], bytes);
    memcpy(r->line[r->head], action, bytes);
    r->head = (r->head + 1) % r->delay;
  }
  frl_env_step(r->inner, applied, obs, out);
  add_noise(r, rng, obs);
  r->steps++;
}

static int dr_set_state(void *state, const double *s, int n, float *obs) {
  return frl__env_set_state(((dr_t *)state)->inner, s, n, obs);
}

static const frl_env_impl_t g_dr_impl = {
    .name = "randomize",
    .state_size = sizeof(dr_t),
    .reset = dr_reset,
    .step = dr_step,
    .set_state = dr_set_state,
    .wrap = dr_wrap,
};

int frl_randomize_wrap(frl_env_t **env, const frl_randomize_opts_t *o, uint64_t seed, char *err,
                       size_t errlen) {
  if (o->mode == FRL_RANDOMIZE_OFF) return 0;
  return frl__env_wrap(env, &g_dr_impl, o, seed, err, errlen);
}

static const dr_t *find(const frl_env_t *e) {
  for (; e; e = frl__env_inner(e))
    if (frl__env_impl(e) == &g_dr_impl) return frl__env_state(e);
  return NULL;
}

const char *frl_randomize_json(const frl_env_t *e) {
  const dr_t *r = find(e);
  return r && r->reset_done ? r->json : NULL;
}

int frl_randomize_values(const frl_env_t *e, double value[FRL_RANDOMIZE_COUNT]) {
  const dr_t *r = find(e);
  if (!r) return FRL_ENOTFOUND;
  memcpy(value, r->value, sizeof r->value);
  return 0;
}
