/* test_randomize.c: domain randomization and the environments' physical-parameter hooks: draws
 * inside their ranges with the closed-form moments of the uniform and the clipped normal, the
 * curriculum's ranges, flag and value parsing, one step of the pendulum and the cart-pole against
 * their equations with changed physics, the action delay line, observation noise, skipped
 * parameters, nominal restored exactly, and MuJoCo model fields read back from mjModel. Runs
 * from the repository root (the MuJoCo task files in lib/mujoco). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mujoco/mujoco.h>

#include "common.h"
#include "config.h"
#include "env.h"
#include "env_impl.h"
#include "numeric_check.h"
#include "randomize.h"
#include "rng.h"

#define DRAWS 200000

static frl_env_t *make(const char *name, uint64_t seed) {
  frl_env_t *e = NULL;
  char err[256];
  if (frl_env_new(&e, name, seed, err, sizeof err) != 0) fail_msg("%s", err);
  return e;
}

/* Wraps e so that every episode has exactly the values of `spec` ("name=value,..."). */
static void wrap_fixed(frl_env_t **e, const char *spec, uint64_t seed) {
  double v[FRL_RANDOMIZE_COUNT];
  char err[256];
  if (frl_randomize_parse_values(spec, v, err, sizeof err) != 0) fail_msg("%s", err);
  frl_randomize_opts_t o;
  frl_randomize_fixed(&o, v);
  if (frl_randomize_wrap(e, &o, seed, err, sizeof err) != 0) fail_msg("%s", err);
}

/* ---- names, defaults, parsing ------------------------------------------------------------------ */

static void test_names_and_defaults(void **unused) {
  const char *names[] = {"mass",    "damping",     "motor_strength", "friction",
                         "gravity", "link_length", "sensor_noise",   "action_delay"};
  assert_int_equal(FRL_RANDOMIZE_COUNT, 8);
  for (int p = 0; p < FRL_RANDOMIZE_COUNT; p++) {
    assert_string_equal(frl_randomize_name(p), names[p]);
    assert_int_equal(frl_randomize_lookup(names[p]), p);
  }
  assert_null(frl_randomize_name(FRL_RANDOMIZE_COUNT));
  assert_int_equal(frl_randomize_lookup("inertia"), -1);
  /* The seed's DomainRandomizer ranges (002:1906-1990). */
  const double want[8][2] = {{0.8, 1.2}, {0.8, 1.2},  {0.8, 1.2},  {0.5, 1.5},
                             {9.5, 10.1}, {0.98, 1.02}, {0.0, 0.05}, {0.0, 2.0}};
  frl_randomize_opts_t o;
  frl_randomize_defaults(&o);
  assert_int_equal(o.mode, FRL_RANDOMIZE_UNIFORM);
  for (int p = 0; p < 8; p++) {
    assert_true(o.lo[p] == want[p][0] && o.hi[p] == want[p][1]);
  }
  /* The flags' defaults are the same ranges. */
  frl_config_t cfg;
  char *argv[] = {"--randomize", "uniform"};
  assert_int_equal(frl_config_parse(&cfg, FRL_CFG_ACTOR, 2, argv, stdout, stderr), 0);
  frl_randomize_opts_t c;
  assert_int_equal(frl_randomize_from_config(&c, &cfg, NULL, 0), 0);
  assert_memory_equal(c.lo, o.lo, sizeof o.lo);
  assert_memory_equal(c.hi, o.hi, sizeof o.hi);
  assert_true(c.scale == 1.0 && c.curriculum_steps == 0);
}

static void test_config_flags(void **unused) {
  frl_config_t cfg;
  char *ok[] = {"--randomize", "gaussian", "--dr-mass", "0.5:1.5", "--dr-gravity", "off",
                "--curriculum-steps", "5000", "--randomize-scale", "0.5"};
  assert_int_equal(frl_config_parse(&cfg, FRL_CFG_ACTOR, 10, ok, stdout, stderr), 0);
  frl_randomize_opts_t o;
  assert_int_equal(frl_randomize_from_config(&o, &cfg, NULL, 0), 0);
  assert_int_equal(o.mode, FRL_RANDOMIZE_GAUSSIAN);
  assert_true(o.lo[FRL_PHYS_MASS] == 0.5 && o.hi[FRL_PHYS_MASS] == 1.5);
  assert_true(isnan(o.lo[FRL_PHYS_GRAVITY]) && isnan(o.hi[FRL_PHYS_GRAVITY]));
  assert_true(o.curriculum_steps == 5000 && o.scale == 0.5 && o.curriculum_start == 0.1);

  /* Refusals name the flag; the environment twin works like the flag. */
  struct {
    const char *flag, *value, *needle;
  } bad[] = {
      {"--randomize", "sometimes", "--randomize"},
      {"--dr-mass", "1.2:0.8", "--dr-mass"},
      {"--dr-mass", "0:1", "--dr-mass"},         /* mass must stay positive */
      {"--dr-action-delay", "0:1.5", "--dr-action-delay"},
      {"--dr-friction", "0.5", "--dr-friction"},
      {"--dr-link-length", "a:b", "--dr-link-length"},
      {"--dr-sensor-noise", "0:nan", "--dr-sensor-noise"},
      {"--hw-deadband", "0.95", "dead-band"}, /* above the default saturation 0.9 */
      {"--randomize-scale", "11", "--randomize-scale"},
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(bad); i++) {
    char *argv[] = {(char *)bad[i].flag, (char *)bad[i].value};
    char msg[512] = "";
    FILE *err = fmemopen(msg, sizeof msg, "w");
    assert_int_equal(frl_config_parse(&cfg, FRL_CFG_ACTOR, 2, argv, stdout, err), FRL_EUSAGE);
    fclose(err);
    if (!strstr(msg, bad[i].needle)) fail_msg("%s %s: message '%s'", bad[i].flag, bad[i].value, msg);
  }
  assert_int_equal(setenv("FLEETRL_DR_DAMPING", "0.9:1.1", 1), 0);
  assert_int_equal(frl_config_parse(&cfg, FRL_CFG_ACTOR, 0, NULL, stdout, stderr), 0);
  assert_int_equal(frl_randomize_from_config(&o, &cfg, NULL, 0), 0);
  assert_true(o.lo[FRL_PHYS_DAMPING] == 0.9 && o.hi[FRL_PHYS_DAMPING] == 1.1);
  assert_int_equal(o.mode, FRL_RANDOMIZE_OFF);
  assert_int_equal(setenv("FLEETRL_DR_DAMPING", "1.1:0.9", 1), 0);
  assert_int_equal(frl_config_parse(&cfg, FRL_CFG_ACTOR, 0, NULL, stdout, fopen("/dev/null", "w")),
                   FRL_EUSAGE);
  unsetenv("FLEETRL_DR_DAMPING");
}

static void test_parse_values(void **unused) {
  double v[FRL_RANDOMIZE_COUNT];
  char err[256];
  assert_int_equal(frl_randomize_parse_values("mass=1.3,damping=1.4,action_delay=3", v, err,
                                              sizeof err),
                   0);
  assert_true(v[FRL_PHYS_MASS] == 1.3 && v[FRL_PHYS_DAMPING] == 1.4);
  assert_true(v[FRL_RANDOMIZE_ACTION_DELAY] == 3.0);
  assert_true(isnan(v[FRL_PHYS_GRAVITY]) && isnan(v[FRL_RANDOMIZE_SENSOR_NOISE]));
  struct {
    const char *text, *needle;
  } bad[] = {
      {"", "no parameters"},          {"mass", "name=value"},
      {"=1", "name=value"},           {"weight=1", "unknown parameter 'weight'"},
      {"mass=abc", "mass"},           {"mass=1,mass=2", "twice"},
      {"mass=0", "mass: 0 is outside"}, {"action_delay=1.5", "whole steps"},
      {"gravity=1e400", "gravity"},   {"link_length=", "link_length"},
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(bad); i++) {
    err[0] = '\0';
    assert_int_equal(frl_randomize_parse_values(bad[i].text, v, err, sizeof err), FRL_EUSAGE);
    if (!strstr(err, bad[i].needle)) fail_msg("'%s': message '%s'", bad[i].text, err);
  }
}

/* ---- draws and their moments ------------------------------------------------------------------- */

static double phi(double z) { return exp(-0.5 * z * z) / sqrt(2.0 * M_PI); }
static double cdf(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }

/* Every parameter, drawn DRAWS times with a fixed seed: inside its range, with the uniform's mean
 * (a + b) / 2 and variance (b - a)^2 / 12 within five standard errors (the variance's from the
 * fourth central moment (b - a)^4 / 80). The delay's three values each have frequency 1/3
 * (chi-square, 2 degrees of freedom, below 13.8: p = 0.001). */
static void test_uniform_moments(void **unused) {
  frl_randomize_opts_t o;
  frl_randomize_defaults(&o);
  frl_rng_t rng;
  frl_rng_seed(&rng, 42);
  const double nominal[FRL_RANDOMIZE_COUNT] = {1, 1, 1, 1, 9.81, 1, 0, 0};
  for (int p = 0; p < FRL_RANDOMIZE_COUNT; p++) {
    const double a = o.lo[p], b = o.hi[p];
    double sum = 0, sum2 = 0, lo = INFINITY, hi = -INFINITY;
    long counts[3] = {0, 0, 0};
    for (int i = 0; i < DRAWS; i++) {
      double x = frl_randomize_draw(&o, p, nominal[p], 1.0, &rng);
      sum += x;
      sum2 += x * x;
      lo = fmin(lo, x);
      hi = fmax(hi, x);
      if (p == FRL_RANDOMIZE_ACTION_DELAY) {
        assert_true(x == floor(x) && x >= 0 && x <= 2);
        counts[(int)x]++;
      }
    }
    if (!(lo >= a && hi <= b)) fail_msg("%s: draws in [%g, %g] outside [%g, %g]",
                                        frl_randomize_name(p), lo, hi, a, b);
    const double mean = sum / DRAWS, var = sum2 / DRAWS - mean * mean;
    if (p == FRL_RANDOMIZE_ACTION_DELAY) {
      double chi2 = 0;
      for (int k = 0; k < 3; k++) chi2 += pow(counts[k] - DRAWS / 3.0, 2) / (DRAWS / 3.0);
      if (chi2 > 13.8) fail_msg("action delay frequencies %ld %ld %ld, chi2 %.2f", counts[0],
                                counts[1], counts[2], chi2);
      expect_close("delay mean", p, mean, 1.0, 5 * sqrt(2.0 / 3.0 / DRAWS), 0);
      continue;
    }
    const double w = b - a, want_var = w * w / 12.0;
    expect_close("uniform mean", p, mean, 0.5 * (a + b), 5 * sqrt(want_var / DRAWS), 0);
    const double var_se = sqrt((pow(w, 4) / 80.0 - want_var * want_var) / DRAWS);
    expect_close("uniform variance", p, var, want_var, 5 * var_se, 0);
    /* The ends are reached: the draws fill the range. */
    assert_true(lo < a + 0.001 * w && hi > b - 0.001 * w);
  }
}

/* Gaussian mode: centred on the range's middle c with sigma = w/4, clipped at c +- 2 sigma. The
 * clipped normal has mean c and variance
 *   sigma^2 [(2 Phi(2) - 1) - 4 phi(2) + 8 (1 - Phi(2))],
 * and puts 2 (1 - Phi(2)) = 4.55% of the draws exactly on the ends. */
static void test_gaussian_moments(void **unused) {
  frl_randomize_opts_t o;
  frl_randomize_defaults(&o);
  o.mode = FRL_RANDOMIZE_GAUSSIAN;
  frl_rng_t rng;
  frl_rng_seed(&rng, 7);
  const double factor = (2 * cdf(2) - 1) - 4 * phi(2) + 8 * (1 - cdf(2));
  for (int p = 0; p < FRL_PHYS_COUNT + 1; p++) {
    const double a = o.lo[p], b = o.hi[p], c = 0.5 * (a + b), sigma = (b - a) / 4;
    double sum = 0, sum2 = 0, sum4 = 0;
    long ends = 0;
    for (int i = 0; i < DRAWS; i++) {
      double x = frl_randomize_draw(&o, p, 1.0, 1.0, &rng);
      assert_true(x >= a && x <= b);
      ends += x == a || x == b;
      sum += x - c;
      sum2 += (x - c) * (x - c);
      sum4 += pow(x - c, 4);
    }
    const double want_var = sigma * sigma * factor;
    const double mean = sum / DRAWS, var = sum2 / DRAWS - mean * mean;
    expect_close("gaussian mean", p, mean, 0.0, 5 * sqrt(want_var / DRAWS), 0);
    expect_close("gaussian variance", p, var, want_var,
                 5 * sqrt((sum4 / DRAWS - want_var * want_var) / DRAWS), 0);
    const double pe = 2 * (1 - cdf(2));
    expect_close("gaussian mass on the ends", p, (double)ends / DRAWS, pe,
                 5 * sqrt(pe * (1 - pe) / DRAWS), 0);
  }
}

/* Arcsine mode: Beta(1/2, 1/2) on [a, b], the law of a + w (1 + cos theta) / 2 for theta
 * uniform: mean (a + b) / 2, variance w^2 / 8, fourth central moment 3 w^4 / 128, CDF
 * (2 / pi) asin(sqrt((x - a) / w)), so (4 / pi) asin(sqrt(1/8)) = 46.0% of the draws lie in the
 * range's outer eighths (uniform: 25%). The delay rounds a draw over [-1/2, 5/2): its values have
 * frequencies F(1/3), F(2/3) - F(1/3), 1 - F(2/3) (39.2%, 21.6%, 39.2%; chi-square below 13.8). */
static void test_arcsine_moments(void **unused) {
  frl_randomize_opts_t o;
  frl_randomize_defaults(&o);
  o.mode = FRL_RANDOMIZE_ARCSINE;
  frl_rng_t rng;
  frl_rng_seed(&rng, 11);
  for (int p = 0; p < FRL_RANDOMIZE_COUNT; p++) {
    const double a = o.lo[p], b = o.hi[p], w = b - a;
    double sum = 0, sum2 = 0;
    long outer = 0, counts[3] = {0, 0, 0};
    for (int i = 0; i < DRAWS; i++) {
      double x = frl_randomize_draw(&o, p, 1.0, 1.0, &rng);
      if (!(x >= a && x <= b)) fail_msg("%s: draw %g outside [%g, %g]", frl_randomize_name(p), x, a, b);
      if (p == FRL_RANDOMIZE_ACTION_DELAY) {
        assert_true(x == floor(x));
        counts[(int)x]++;
        continue;
      }
      sum += x;
      sum2 += x * x;
      outer += x < a + w / 8 || x > b - w / 8;
    }
    if (p == FRL_RANDOMIZE_ACTION_DELAY) {
      const double f1 = 2 / M_PI * asin(sqrt(1.0 / 3)), f2 = 2 / M_PI * asin(sqrt(2.0 / 3));
      const double want[3] = {f1, f2 - f1, 1 - f2};
      double chi2 = 0;
      for (int k = 0; k < 3; k++) chi2 += pow(counts[k] - DRAWS * want[k], 2) / (DRAWS * want[k]);
      if (chi2 > 13.8) fail_msg("arcsine delay frequencies %ld %ld %ld, chi2 %.2f", counts[0],
                                counts[1], counts[2], chi2);
      continue;
    }
    const double mean = sum / DRAWS, var = sum2 / DRAWS - mean * mean, want_var = w * w / 8;
    expect_close("arcsine mean", p, mean, 0.5 * (a + b), 5 * sqrt(want_var / DRAWS), 0);
    expect_close("arcsine variance", p, var, want_var, 5 * sqrt(pow(w, 4) / 128 / DRAWS), 0);
    const double po = 4 / M_PI * asin(sqrt(1.0 / 8));
    expect_close("arcsine mass in the outer eighths", p, (double)outer / DRAWS, po,
                 5 * sqrt(po * (1 - po) / DRAWS), 0);
  }
}

/* The curriculum fraction 0.1 + 0.9 min(1, t/N) (seed 002:2098-2159) and the ranges it gives:
 * [c + f (lo - c), c + f (hi - c)] about the nominal value c clamped into the range. */
static void test_curriculum(void **unused) {
  frl_randomize_opts_t o;
  frl_randomize_defaults(&o);
  assert_true(frl_randomize_fraction(&o, 0) == 1.0);
  o.curriculum_steps = 1000;
  const uint64_t steps[] = {0, 250, 500, 1000, 5000};
  const double want[] = {0.1, 0.325, 0.55, 1.0, 1.0};
  for (int i = 0; i < 5; i++) expect_close("fraction", i, frl_randomize_fraction(&o, steps[i]), want[i], 1e-12, 0);

  double lo, hi;
  assert_true(frl_randomize_range(&o, FRL_PHYS_MASS, 1.0, 0.55, &lo, &hi));
  expect_close("mass lo", 0, lo, 1 - 0.55 * 0.2, 1e-12, 0);
  expect_close("mass hi", 0, hi, 1 + 0.55 * 0.2, 1e-12, 0);
  /* Gravity about the cart-pole's 9.8. */
  assert_true(frl_randomize_range(&o, FRL_PHYS_GRAVITY, 9.8, 0.5, &lo, &hi));
  expect_close("gravity lo", 0, lo, 9.8 - 0.5 * 0.3, 1e-12, 0);
  expect_close("gravity hi", 0, hi, 9.8 + 0.5 * 0.3, 1e-12, 0);
  /* A nominal value outside the range is clamped to its end, so draws stay in the range. */
  assert_true(frl_randomize_range(&o, FRL_PHYS_GRAVITY, 12.0, 0.5, &lo, &hi));
  expect_close("gravity lo (clamped centre)", 0, lo, 10.1 - 0.5 * 0.6, 1e-12, 0);
  expect_close("gravity hi (clamped centre)", 0, hi, 10.1, 1e-12, 0);
  /* The scale stretches further, but never past the parameter's bounds. */
  o.scale = 10;
  assert_true(frl_randomize_range(&o, FRL_PHYS_MASS, 1.0, 1.0, &lo, &hi));
  expect_close("stretched mass lo", 0, lo, 0.05, 0, 0);
  expect_close("stretched mass hi", 0, hi, 3.0, 1e-12, 0);
  o.scale = 1;
  /* The delay's integer range grows with the fraction: 0 only until f = 0.25. */
  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
  for (int i = 0; i < 1000; i++) {
    assert_true(frl_randomize_draw(&o, FRL_RANDOMIZE_ACTION_DELAY, 0, 0.2, &rng) == 0);
    assert_true(frl_randomize_draw(&o, FRL_RANDOMIZE_ACTION_DELAY, 0, 0.5, &rng) <= 1);
  }
  /* A parameter turned off is never drawn. */
  o.lo[FRL_PHYS_MASS] = o.hi[FRL_PHYS_MASS] = NAN;
  assert_false(frl_randomize_range(&o, FRL_PHYS_MASS, 1.0, 1.0, &lo, &hi));
  assert_true(isnan(frl_randomize_draw(&o, FRL_PHYS_MASS, 1.0, 1.0, &rng)));

  /* Through the wrapper: the mass drawn at each reset lies within the curriculum's range for the
   * steps taken so far, and the widest draws come late. */
  frl_randomize_defaults(&o);
  o.curriculum_steps = 4000;
  frl_env_t *e = make("pendulum", 5);
  assert_int_equal(frl_randomize_wrap(&e, &o, 9, NULL, 0), 0);
  float obs[3];
  const float zero = 0.0f;
  frl_step_t st;
  double early = 0, late = 0;
  for (int ep = 0; ep < 60; ep++) {
    uint64_t taken = (uint64_t)ep * 200;
    frl_env_reset(e, obs);
    double v[FRL_RANDOMIZE_COUNT];
    assert_int_equal(frl_randomize_values(e, v), 0);
    double f = frl_randomize_fraction(&o, taken), dev = fabs(v[FRL_PHYS_MASS] - 1.0);
    if (dev > 0.2 * f + 1e-12) fail_msg("episode %d: mass %g outside +-%g", ep, v[FRL_PHYS_MASS], 0.2 * f);
    if (ep < 5) early = fmax(early, dev);
    else late = fmax(late, dev);
    do frl_env_step(e, &zero, obs, &st);
    while (!st.truncated);
  }
  assert_true(early <= 0.2 * frl_randomize_fraction(&o, 800) && late > 0.15);
  frl_env_destroy(&e);
}

/* ---- the environments' physics ----------------------------------------------------------------- */

static void test_nominal_and_absent(void **unused) {
  struct {
    const char *env;
    double nominal[FRL_PHYS_COUNT]; /* mass, damping, motor, friction, gravity, link */
  } want[] = {
      {"cartpole", {1, NAN, 1, NAN, 9.8, 1}},   {"pendulum", {1, NAN, 1, NAN, 10, 1}},
      {"reacher6", {1, NAN, 1, NAN, NAN, NAN}}, {"joint-tracking", {1, 1, 1, NAN, NAN, NAN}},
      {"planar-arm", {1, NAN, 1, NAN, NAN, 1}}, {"gridworld", {NAN, NAN, NAN, NAN, NAN, NAN}},
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(want); i++) {
    frl_env_t *e = make(want[i].env, 1);
    double n[FRL_PHYS_COUNT];
    int have = frl_env_physics_nominal(e, n), count = 0;
    for (int p = 0; p < FRL_PHYS_COUNT; p++) {
      count += !isnan(want[i].nominal[p]);
      if (isnan(want[i].nominal[p]) != isnan(n[p]) ||
          (!isnan(n[p]) && n[p] != want[i].nominal[p]))
        fail_msg("%s %s: nominal %g, want %g", want[i].env, frl_phys_name(p), n[p],
                 want[i].nominal[p]);
    }
    assert_int_equal(have, count);
    frl_env_destroy(&e);
  }
  /* Setting what an environment lacks, or a value out of bounds, is refused with the name. */
  frl_env_t *e = make("pendulum", 1);
  double v[FRL_PHYS_COUNT] = {NAN, NAN, NAN, 0.8, NAN, NAN};
  char err[256];
  assert_int_equal(frl_env_set_physics(e, v, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "friction"));
  v[FRL_PHYS_FRICTION] = NAN;
  v[FRL_PHYS_MASS] = 0.0;
  assert_int_equal(frl_env_set_physics(e, v, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "mass"));
  v[FRL_PHYS_MASS] = NAN;
  v[FRL_PHYS_LINK] = INFINITY;
  assert_int_equal(frl_env_set_physics(e, v, err, sizeof err), FRL_EUSAGE);
  frl_env_destroy(&e);
}

/* Pendulum: theta_acc = 3 g / (2 l) sin(theta) + 3 / (m l^2) k u with k the motor strength,
 * integrated semi-implicitly over dt = 0.05 (Gym's Pendulum-v1). One step from a chosen state,
 * through the randomization wrapper with fixed parameters, against that closed form; then the
 * scaling itself: gravity's part goes as g / l, the torque's as k / (m l^2). */
static double pendulum_accel(const char *physics, double theta, double theta_dot, float u) {
  frl_env_t *e = make("pendulum", 1);
  if (physics) wrap_fixed(&e, physics, 2);
  float obs[3];
  frl_env_reset(e, obs);
  const double s[2] = {theta, theta_dot};
  assert_int_equal(frl__env_set_state(e, s, 2, obs), 0);
  frl_step_t st;
  frl_env_step(e, &u, obs, &st);
  frl_env_destroy(&e);
  return ((double)obs[2] - theta_dot) / 0.05;
}

static void test_pendulum_physics(void **unused) {
  const struct {
    const char *spec;
    double g, m, l, k;
  } cases[] = {
      {NULL, 10, 1, 1, 1},
      {"gravity=9.5,link_length=1.02", 9.5, 1, 1.02, 1},
      {"mass=1.2,motor_strength=0.8", 10, 1.2, 1, 0.8},
      {"mass=0.7,link_length=1.3,gravity=3.7,motor_strength=1.6", 3.7, 0.7, 1.3, 1.6},
  };
  const double theta = 0.7, theta_dot = -0.4;
  const float u = 1.3f;
  for (size_t i = 0; i < FRL_ARRAY_LEN(cases); i++) {
    const double g = cases[i].g, m = cases[i].m, l = cases[i].l, k = cases[i].k;
    const double want = 3 * g / (2 * l) * sin(theta) + 3 / (m * l * l) * k * (double)u;
    /* obs[2] is a float: its rounding (6e-8 relative of ~0.5) over dt. */
    expect_close("pendulum theta_acc", (int)i, pendulum_accel(cases[i].spec, theta, theta_dot, u),
                 want, 2e-5, 0);
  }
  /* The scalings, measured from the simulation alone. At theta = 0 only the torque acts. */
  const double base_g = pendulum_accel(NULL, 0.9, 0.0, 0.0f);
  const double g_l = pendulum_accel("gravity=9.6,link_length=1.2", 0.9, 0.0, 0.0f);
  expect_close("gravity term ~ g/l", 0, g_l / base_g, (9.6 / 1.2) / 10.0, 1e-5, 0);
  const double base_u = pendulum_accel(NULL, 0.0, 0.0, 1.0f);
  const double ml = pendulum_accel("mass=1.25,link_length=0.9", 0.0, 0.0, 1.0f);
  expect_close("torque term ~ 1/(m l^2)", 0, ml / base_u, 1.0 / (1.25 * 0.81), 1e-5, 0);
}

/* Cart-pole (Barto et al. 1983; Gym's equations) with masses m_c = 1 s_m, m_p = 0.1 s_m,
 * half-length 0.5 s_l, force 10 s_k and gravity g, one Euler step of 0.02 s. */
static void test_cartpole_physics(void **unused) {
  const double sm = 1.15, sl = 0.99, sk = 0.85, g = 9.6;
  frl_env_t *e = make("cartpole", 1);
  wrap_fixed(&e, "mass=1.15,link_length=0.99,motor_strength=0.85,gravity=9.6", 3);
  float obs[4];
  frl_env_reset(e, obs);
  const double s[4] = {0.1, -0.2, 0.05, 0.3};
  assert_int_equal(frl__env_set_state(e, s, 4, obs), 0);
  const float push_right = 1.0f;
  frl_step_t st;
  frl_env_step(e, &push_right, obs, &st);
  const double mc = 1.0 * sm, mp = 0.1 * sm, l = 0.5 * sl, F = 10.0 * sk, M = mc + mp;
  const double tmp = (F + mp * l * s[3] * s[3] * sin(s[2])) / M;
  const double th_acc =
      (g * sin(s[2]) - cos(s[2]) * tmp) / (l * (4.0 / 3.0 - mp * cos(s[2]) * cos(s[2]) / M));
  const double x_acc = tmp - mp * l * th_acc * cos(s[2]) / M;
  const double want[4] = {s[0] + 0.02 * s[1], s[1] + 0.02 * x_acc, s[2] + 0.02 * s[3],
                          s[3] + 0.02 * th_acc};
  for (int i = 0; i < 4; i++) expect_close("cartpole state", i, obs[i], want[i], 1e-6, 1e-6);
  frl_env_destroy(&e);
}

/* After any setting, NULL (or all NAN) restores nominal: the trajectory of a fresh environment
 * with the same seed is reproduced bit for bit; a parameter left out of a later setting is back
 * at nominal too. */
static void run_episode(frl_env_t *e, float *trace, int n, int act_dim) {
  float obs[FRL_ENV_MAX_DIM], a[FRL_ENV_MAX_DIM];
  frl_rng_t rng;
  frl_rng_seed(&rng, 99);
  frl_env_reset(e, obs);
  const frl_env_spec_t *sp = frl_env_spec(e);
  for (int t = 0; t < n; t++) {
    for (int i = 0; i < act_dim; i++)
      a[i] = sp->n_actions ? (float)frl_rng_below(&rng, (uint32_t)sp->n_actions)
                           : sp->act_low[i] + (sp->act_high[i] - sp->act_low[i]) * (float)frl_rng_uniform(&rng);
    frl_step_t st;
    frl_env_step(e, a, obs, &st);
    memcpy(trace + (size_t)t * sp->obs_dim, obs, sizeof(float) * (size_t)sp->obs_dim);
    if (st.terminal || st.truncated) frl_env_reset(e, obs);
  }
}

static void test_nominal_restored(void **unused) {
  const char *envs[] = {"cartpole", "pendulum", "reacher6", "joint-tracking", "planar-arm",
                        "mj-reacher"};
  enum { N = 120 };
  for (size_t k = 0; k < FRL_ARRAY_LEN(envs); k++) {
    frl_env_t *fresh = make(envs[k], 11), *used = make(envs[k], 11);
    const frl_env_spec_t *sp = frl_env_spec(fresh);
    const int od = sp->obs_dim, ad = sp->act_dim;
    float *a = calloc((size_t)N * od, sizeof(float)), *b = calloc((size_t)N * od, sizeof(float));
    double nominal[FRL_PHYS_COUNT], v[FRL_PHYS_COUNT];
    frl_env_physics_nominal(used, nominal);
    for (int p = 0; p < FRL_PHYS_COUNT; p++)
      v[p] = isnan(nominal[p]) ? NAN : (const double[]){1.3, 1.4, 0.7, 0.6, 7.0, 1.1}[p];
    char err[256];
    assert_int_equal(frl_env_set_physics(used, v, err, sizeof err), 0);
    run_episode(fresh, a, N, ad);
    run_episode(used, b, N, ad);
    /* Changed physics change the trajectory... */
    if (memcmp(a, b, sizeof(float) * (size_t)N * od) == 0) fail_msg("%s: physics had no effect", envs[k]);
    double got[FRL_PHYS_COUNT];
    frl_env_physics(used, got);
    assert_true(got[FRL_PHYS_MASS] == 1.3);
    /* ...a later setting that leaves mass out puts it back... */
    double only_motor[FRL_PHYS_COUNT] = {NAN, NAN, 1.3, NAN, NAN, NAN};
    assert_int_equal(frl_env_set_physics(used, only_motor, err, sizeof err), 0);
    frl_env_physics(used, got);
    assert_true(isnan(got[FRL_PHYS_MASS]) && got[FRL_PHYS_MOTOR] == 1.3);
    /* ...and NULL restores everything: the same episodes as a fresh environment, to the bit (a
     * new pair with one seed, so that both generators start alike). */
    frl_env_destroy(&fresh);
    fresh = make(envs[k], 12);
    frl_env_t *restored = make(envs[k], 12);
    assert_int_equal(frl_env_set_physics(restored, v, err, sizeof err), 0);
    assert_int_equal(frl_env_set_physics(restored, NULL, err, sizeof err), 0);
    run_episode(fresh, a, N, ad);
    run_episode(restored, b, N, ad);
    if (memcmp(a, b, sizeof(float) * (size_t)N * od) != 0) fail_msg("%s: nominal not restored", envs[k]);
    free(a);
    free(b);
    frl_env_destroy(&fresh);
    frl_env_destroy(&used);
    frl_env_destroy(&restored);
  }
}

/* ---- the wrapper's own parameters --------------------------------------------------------------- */

/* A test environment that observes the action it received and counts steps:
 * obs = [action (2), step count, constant 0.5]. Actions in [-3, 3] x [1, 5] (zero outside the
 * second range, so the idle command is its low end). */
typedef struct {
  double t;
} echo_t;

static void echo_init(void *state, frl_env_spec_t *spec) {
  spec->obs_dim = 4;
  spec->act_dim = 2;
  spec->act_low[0] = -3;
  spec->act_high[0] = 3;
  spec->act_low[1] = 1;
  spec->act_high[1] = 5;
  spec->max_steps = 0;
}
static void echo_reset(void *state, frl_rng_t *rng, float *obs) {
  ((echo_t *)state)->t = 0;
  obs[0] = obs[1] = -99.0f;
  obs[2] = 0.0f;
  obs[3] = 0.5f;
}
static void echo_step(void *state, frl_rng_t *rng, const float *action, float *obs, frl_step_t *out) {
  echo_t *s = state;
  s->t += 1;
  obs[0] = action[0];
  obs[1] = action[1];
  obs[2] = (float)s->t;
  obs[3] = 0.5f;
  out->reward = action[0];
}
static const frl_env_impl_t echo_impl = {
    .name = "echo", .state_size = sizeof(echo_t), .init = echo_init, .reset = echo_reset,
    .step = echo_step,
};

/* With delay k the environment receives the idle command (0, clipped into the bounds) for k
 * steps, then the action of step t - k exactly. */
static void test_action_delay(void **unused) {
  for (int k = 0; k <= 4; k++) {
    frl_env_t *e = frl__env_new_impl(&echo_impl, 1);
    char spec[64];
    snprintf(spec, sizeof spec, "action_delay=%d", k);
    wrap_fixed(&e, spec, 2);
    for (int episode = 0; episode < 2; episode++) {
      float obs[4];
      frl_env_reset(e, obs);
      for (int t = 0; t < 12; t++) {
        const float a[2] = {(float)(t % 5) * 0.5f - 1.0f, 1.5f + 0.25f * (float)t};
        frl_step_t st;
        frl_env_step(e, a, obs, &st);
        float want0 = 0.0f, want1 = 1.0f;
        if (t >= k) {
          want0 = (float)((t - k) % 5) * 0.5f - 1.0f;
          want1 = 1.5f + 0.25f * (float)(t - k);
        }
        if (obs[0] != want0 || obs[1] != want1)
          fail_msg("delay %d, episode %d, step %d: got (%g, %g), want (%g, %g)", k, episode, t,
                   obs[0], obs[1], want0, want1);
      }
    }
    double v[FRL_RANDOMIZE_COUNT];
    assert_int_equal(frl_randomize_values(e, v), 0);
    assert_true(v[FRL_RANDOMIZE_ACTION_DELAY] == k);
    frl_env_destroy(&e);
  }
}

/* Observation noise: N(0, sigma^2) per component, sigma the episode's draw. */
static void test_sensor_noise(void **unused) {
  frl_env_t *e = frl__env_new_impl(&echo_impl, 1);
  wrap_fixed(&e, "sensor_noise=0.05", 8);
  float obs[4];
  frl_env_reset(e, obs);
  const float a[2] = {0.0f, 2.0f};
  double sum = 0, sum2 = 0;
  const int n = 50000;
  for (int t = 0; t < n; t++) {
    frl_step_t st;
    frl_env_step(e, a, obs, &st);
    double x = (double)obs[3] - 0.5;
    sum += x;
    sum2 += x * x;
  }
  expect_close("noise mean", 0, sum / n, 0.0, 5 * 0.05 / sqrt(n), 0);
  expect_close("noise variance", 0, sum2 / n, 0.0025, 5 * 0.0025 * sqrt(2.0 / n), 0);
  frl_env_destroy(&e);
}

/* Parameters an environment lacks are skipped: gridworld gets only the wrapper's own, reacher6
 * its mass and motor strength; the JSON names exactly those, with the values in effect. */
static void test_skipped_and_json(void **unused) {
  frl_randomize_opts_t o;
  frl_randomize_defaults(&o);
  frl_env_t *g = make("gridworld", 1);
  assert_int_equal(frl_randomize_wrap(&g, &o, 4, NULL, 0), 0);
  assert_null(frl_randomize_json(g));
  float obs[16];
  frl_env_reset(g, obs);
  double v[FRL_RANDOMIZE_COUNT];
  assert_int_equal(frl_randomize_values(g, v), 0);
  for (int p = 0; p < FRL_PHYS_COUNT; p++) assert_true(isnan(v[p]));
  const char *json = frl_randomize_json(g);
  char want[256];
  snprintf(want, sizeof want, "{\"sensor_noise\":%.6g,\"action_delay\":%.0f}",
           v[FRL_RANDOMIZE_SENSOR_NOISE], v[FRL_RANDOMIZE_ACTION_DELAY]);
  assert_string_equal(json, want);
  frl_env_destroy(&g);

  frl_env_t *r = make("reacher6", 1);
  assert_int_equal(frl_randomize_wrap(&r, &o, 4, NULL, 0), 0);
  frl_env_reset(r, obs);
  assert_int_equal(frl_randomize_values(r, v), 0);
  snprintf(want, sizeof want,
           "{\"mass\":%.6g,\"motor_strength\":%.6g,\"sensor_noise\":%.6g,\"action_delay\":%.0f}",
           v[FRL_PHYS_MASS], v[FRL_PHYS_MOTOR], v[FRL_RANDOMIZE_SENSOR_NOISE],
           v[FRL_RANDOMIZE_ACTION_DELAY]);
  assert_string_equal(frl_randomize_json(r), want);
  /* The values drawn are the values in effect in the environment. */
  double in_env[FRL_PHYS_COUNT];
  frl_env_physics(r, in_env);
  assert_true(in_env[FRL_PHYS_MASS] == v[FRL_PHYS_MASS] && in_env[FRL_PHYS_MOTOR] == v[FRL_PHYS_MOTOR]);
  assert_true(isnan(in_env[FRL_PHYS_GRAVITY]));
  frl_env_destroy(&r);

  /* A parameter switched off stays nominal and is reported at its nominal value. */
  o.lo[FRL_PHYS_GRAVITY] = o.hi[FRL_PHYS_GRAVITY] = NAN;
  frl_env_t *p = make("pendulum", 1);
  assert_int_equal(frl_randomize_wrap(&p, &o, 4, NULL, 0), 0);
  float pobs[3];
  frl_env_reset(p, pobs);
  assert_non_null(strstr(frl_randomize_json(p), "\"gravity\":10,"));
  frl_env_destroy(&p);

  /* Off wraps nothing; a range outside the bounds is refused and the environment kept. */
  frl_env_t *c = make("cartpole", 1), *orig = c;
  o.mode = FRL_RANDOMIZE_OFF;
  assert_int_equal(frl_randomize_wrap(&c, &o, 4, NULL, 0), 0);
  assert_ptr_equal(c, orig);
  assert_int_equal(frl_randomize_values(c, v), FRL_ENOTFOUND);
  o.mode = FRL_RANDOMIZE_UNIFORM;
  o.lo[FRL_PHYS_MASS] = -1;
  char err[256];
  assert_int_equal(frl_randomize_wrap(&c, &o, 4, err, sizeof err), FRL_EUSAGE);
  assert_ptr_equal(c, orig);
  assert_non_null(strstr(err, "mass"));
  frl_env_destroy(&c);
}

/* ---- MuJoCo -------------------------------------------------------------------------------------- */

static void expect_scaled(const char *what, const mjtNum *got, const mjtNum *nominal, int n,
                          double factor) {
  for (int i = 0; i < n; i++) expect_close(what, i, got[i], nominal[i] * factor, 1e-12, 1e-12);
}

static mjtNum *snapshot(const mjtNum *x, int n) {
  mjtNum *c = malloc(sizeof(mjtNum) * (size_t)(n > 0 ? n : 1));
  memcpy(c, x, sizeof(mjtNum) * (size_t)n);
  return c;
}

/* mj-reacher (reacher2.xml): every parameter but friction (its geoms never touch), read back
 * from mjModel after a setting, including what mj_setConst derives (the subtree mass), then
 * restored to the compiled values exactly. */
static void test_mujoco_reacher(void **unused) {
  frl_env_t *e = make("mj-reacher", 1);
  const mjModel *m = frl__env_mj_model(e);
  assert_non_null(m);
  frl_env_t *plain = make("pendulum", 1);
  assert_null(frl__env_mj_model(plain));
  frl_env_destroy(&plain);
  double n[FRL_PHYS_COUNT];
  assert_int_equal(frl_env_physics_nominal(e, n), 5);
  assert_true(isnan(n[FRL_PHYS_FRICTION]));
  expect_close("gravity nominal", 0, n[FRL_PHYS_GRAVITY], 9.81, 1e-12, 0);

  const int nb = m->nbody, ng = m->ngeom, ns = m->nsite;
  mjtNum *mass = snapshot(m->body_mass, nb), *inertia = snapshot(m->body_inertia, 3 * nb);
  mjtNum *bpos = snapshot(m->body_pos, 3 * nb), *damping = snapshot(m->dof_damping, m->nv);
  mjtNum *gear = snapshot(m->actuator_gear, 6 * m->nu), *gsize = snapshot(m->geom_size, 3 * ng);
  mjtNum *spos = snapshot(m->site_pos, 3 * ns), *subtree = snapshot(m->body_subtreemass, nb);
  mjtNum *gpos = snapshot(m->geom_pos, 3 * ng);

  /* Wrapped, so the setting goes through the randomization wrapper to the model. */
  wrap_fixed(&e, "mass=1.3,damping=1.4,motor_strength=0.7,gravity=5,link_length=1.1", 3);
  assert_ptr_equal(frl__env_mj_model(e), m);
  float obs[FRL_ENV_MAX_DIM];
  frl_env_reset(e, obs);
  expect_scaled("body_mass", m->body_mass, mass, nb, 1.3);
  expect_scaled("body_subtreemass", m->body_subtreemass, subtree, nb, 1.3);
  expect_scaled("body_inertia", m->body_inertia, inertia, 3 * nb, 1.3 * 1.1 * 1.1);
  expect_scaled("dof_damping", m->dof_damping, damping, m->nv, 1.4);
  expect_scaled("actuator_gear", m->actuator_gear, gear, 6 * m->nu, 0.7);
  expect_close("gravity z", 0, m->opt.gravity[2], -5.0, 1e-12, 0);
  const int fore = mj_name2id(m, mjOBJ_BODY, "fore"), upper = mj_name2id(m, mjOBJ_BODY, "upper");
  const int tip = mj_name2id(m, mjOBJ_SITE, "fingertip"), ug = mj_name2id(m, mjOBJ_GEOM, "upper");
  const int table = mj_name2id(m, mjOBJ_GEOM, "table");
  expect_close("fore offset (0.1 m link)", 0, m->body_pos[3 * fore], 0.11, 1e-12, 0);
  expect_scaled("upper placement kept", m->body_pos + 3 * upper, bpos + 3 * upper, 3, 1.0);
  expect_close("fingertip site", 0, m->site_pos[3 * tip], 0.11 * 1.1, 1e-12, 0);
  expect_close("upper capsule half-length", 0, m->geom_size[3 * ug + 1], 0.05 * 1.1, 1e-12, 0);
  expect_close("upper capsule radius", 0, m->geom_size[3 * ug], 0.01, 1e-12, 0);
  expect_scaled("table untouched", m->geom_size + 3 * table, gsize + 3 * table, 3, 1.0);
  expect_scaled("table position", m->geom_pos + 3 * table, gpos + 3 * table, 3, 1.0);
  /* Reach follows the links: the fingertip at zero angles lies at 1.1 x 0.21 m. */
  const double s[8] = {0, 0, 0.1, 0.1, 0, 0, 0, 0};
  assert_int_equal(frl__env_set_state(e, s, 8, obs), 0);
  expect_close("fingertip x", 0, obs[6], 0.21 * 1.1, 1e-6, 0);

  /* Back to nominal: every field equal to the compiled model's. */
  assert_int_equal(frl_env_set_physics(e, NULL, NULL, 0), 0);
  expect_scaled("body_mass restored", m->body_mass, mass, nb, 1.0);
  expect_scaled("body_subtreemass restored", m->body_subtreemass, subtree, nb, 1.0);
  expect_scaled("body_inertia restored", m->body_inertia, inertia, 3 * nb, 1.0);
  expect_scaled("body_pos restored", m->body_pos, bpos, 3 * nb, 1.0);
  expect_scaled("dof_damping restored", m->dof_damping, damping, m->nv, 1.0);
  expect_scaled("actuator_gear restored", m->actuator_gear, gear, 6 * m->nu, 1.0);
  expect_scaled("geom_size restored", m->geom_size, gsize, 3 * ng, 1.0);
  expect_scaled("site_pos restored", m->site_pos, spos, 3 * ns, 1.0);
  expect_close("gravity restored", 0, m->opt.gravity[2], -9.81, 1e-12, 0);
  /* Friction is not a parameter of this model. */
  double f[FRL_PHYS_COUNT] = {NAN, NAN, NAN, 0.7, NAN, NAN};
  assert_int_equal(frl_env_set_physics(e, f, NULL, 0), FRL_EUSAGE);
  free(mass), free(inertia), free(bpos), free(damping), free(gear), free(gsize), free(spos);
  free(subtree), free(gpos);
  frl_env_destroy(&e);
}

/* walker.xml: its geoms touch the floor, so friction is a parameter (nominal: the largest sliding
 * friction among colliding geoms, 0.9 from the model's default class); setting it writes every
 * geom's sliding coefficient and keeps the torsional and rolling ones; restoring brings back
 * each geom's own. */
static void test_mujoco_friction(void **unused) {
  frl_env_t *e = make("walker", 1);
  const mjModel *m = frl__env_mj_model(e);
  double n[FRL_PHYS_COUNT];
  assert_int_equal(frl_env_physics_nominal(e, n), FRL_PHYS_COUNT);
  expect_close("friction nominal", 0, n[FRL_PHYS_FRICTION], 0.9, 1e-12, 0);
  mjtNum *friction = snapshot(m->geom_friction, 3 * m->ngeom);
  double v[FRL_PHYS_COUNT] = {NAN, NAN, NAN, 0.65, NAN, NAN};
  assert_int_equal(frl_env_set_physics(e, v, NULL, 0), 0);
  for (int g = 0; g < m->ngeom; g++) {
    expect_close("sliding friction", g, m->geom_friction[3 * g], 0.65, 0, 0);
    expect_close("torsional friction", g, m->geom_friction[3 * g + 1], friction[3 * g + 1], 0, 0);
    expect_close("rolling friction", g, m->geom_friction[3 * g + 2], friction[3 * g + 2], 0, 0);
  }
  /* A later setting without friction restores each geom's own. */
  double mass_only[FRL_PHYS_COUNT] = {1.1, NAN, NAN, NAN, NAN, NAN};
  assert_int_equal(frl_env_set_physics(e, mass_only, NULL, 0), 0);
  expect_scaled("geom_friction restored", m->geom_friction, friction, 3 * m->ngeom, 1.0);
  assert_int_equal(frl_env_set_physics(e, NULL, NULL, 0), 0);
  free(friction);
  frl_env_destroy(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_and_defaults), cmocka_unit_test(test_config_flags),
      cmocka_unit_test(test_parse_values),       cmocka_unit_test(test_uniform_moments),
      cmocka_unit_test(test_gaussian_moments),
      cmocka_unit_test(test_arcsine_moments),
      cmocka_unit_test(test_curriculum),
      cmocka_unit_test(test_nominal_and_absent), cmocka_unit_test(test_pendulum_physics),
      cmocka_unit_test(test_cartpole_physics),   cmocka_unit_test(test_nominal_restored),
      cmocka_unit_test(test_action_delay),       cmocka_unit_test(test_sensor_noise),
      cmocka_unit_test(test_skipped_and_json),   cmocka_unit_test(test_mujoco_reacher),
      cmocka_unit_test(test_mujoco_friction),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
