/* randomize.h: domain randomization around any environment (Tobin et al. 2017, "Domain
 * Randomization for Transferring Deep Neural Networks from Simulation to the Real World"; Peng et
 * al. 2018, "Sim-to-Real Transfer of Robotic Control with Dynamics Randomization"). At every
 * reset the wrapper draws the episode's physical parameters (the ones the environment has, see
 * frl_phys_t in env.h), a sensor-noise level and an action delay, sets them, and reports them as
 * a JSON object for the episode's record (EpisodeStat.physics, stored in episodes.physics).
 *
 * Defaults are the ranges of the seed's DomainRandomizer (seed 002:1893-2095): mass, damping and
 * motor strength x[0.8, 1.2], friction [0.5, 1.5], gravity [9.5, 10.1] m/s^2, link length
 * x[0.98, 1.02], sensor noise sigma [0, 0.05], action delay 0-2 steps (its randint(0, 3)).
 *
 * Sampling. Uniform: each parameter uniform on its range (the delay uniform on the integers of
 * its range). Gaussian: centred on the middle of the range with sigma a quarter of its width,
 * so the range is +-2 sigma, and clipped to the range (about 4.6% of draws land on an end); the
 * delay is the rounded draw. The seed's Gaussian mode ignored its ranges altogether (fixed
 * standard deviations around hard-coded means, an unbounded delay); here every mode honours them.
 * Arcsine: each parameter from the arcsine law (Beta(1/2, 1/2)) on its range, lo + (hi - lo)
 * sin^2(pi u / 2) with u uniform, whose density grows toward both ends: a draw lands in the outer
 * eighth at either end of a range with probability 0.46 (uniform: 0.25), so episodes that combine
 * several extremes, where a policy trained on uniform draws is weakest, come about three times
 * as often for two parameters (0.053 against 0.016 for both in a given outer eighth); the delay
 * is the rounded draw over the integers' half-open span (0-2: 0 and 2 each 39%, 1 22%).
 *
 * Range scale and curriculum. Each range is first stretched about its centre c (the nominal
 * value clamped into the range: 1 for the multipliers, the environment's own gravity or
 * friction, 0 for noise and delay) by --randomize-scale, then by the curriculum fraction
 * f = start + (1 - start) min(1, steps / curriculum_steps) (seed 002:2098-2159, with start 0.1),
 * giving [c + k (lo - c), c + k (hi - c)] with k = scale f, clamped to the parameter's allowed
 * values. For uniform sampling this is exactly the seed's interpolation of a full-range draw
 * toward the nominal value; clamping c keeps every draw inside the configured range even when
 * the nominal value lies outside it. steps counts this wrapper's own environment steps. */
#ifndef FRL_RANDOMIZE_H
#define FRL_RANDOMIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "env.h"
#include "rng.h"

/* Parameters the wrapper samples: the physical ones of frl_phys_t, then two of its own. */
#define FRL_RANDOMIZE_SENSOR_NOISE FRL_PHYS_COUNT       /* sigma of Gaussian observation noise */
#define FRL_RANDOMIZE_ACTION_DELAY (FRL_PHYS_COUNT + 1) /* steps an action waits */
#define FRL_RANDOMIZE_COUNT (FRL_PHYS_COUNT + 2)
#define FRL_RANDOMIZE_MAX_DELAY 50
#define FRL_RANDOMIZE_MAX_NOISE 10.0
/* Bytes of the JSON of one episode's parameters, with the NUL. */
#define FRL_RANDOMIZE_JSON_MAX 512

typedef enum {
  FRL_RANDOMIZE_OFF = 0,
  FRL_RANDOMIZE_UNIFORM,
  FRL_RANDOMIZE_GAUSSIAN,
  FRL_RANDOMIZE_ARCSINE,
} frl_randomize_mode_t;

typedef struct {
  frl_randomize_mode_t mode;
  /* Full ranges; lo = hi = NAN leaves the parameter nominal (never sampled). */
  double lo[FRL_RANDOMIZE_COUNT], hi[FRL_RANDOMIZE_COUNT];
  double scale;              /* stretch of every range about its centre (1: as given) */
  uint64_t curriculum_steps; /* 0: full ranges from the first episode */
  double curriculum_start;   /* range fraction at step 0 */
} frl_randomize_opts_t;

/* "mass" ... "link_length" (frl_phys_name), "sensor_noise", "action_delay"; NULL out of range. */
const char *frl_randomize_name(int p);
/* The index of a parameter name, or -1. */
int frl_randomize_lookup(const char *name);
/* The values parameter p may take: frl_phys_bounds for the physical ones, [0, 10] for the noise
 * and [0, FRL_RANDOMIZE_MAX_DELAY] for the delay. */
void frl_randomize_bounds(int p, double *lo, double *hi);

/* Uniform sampling over the seed's ranges, scale 1, no curriculum. */
void frl_randomize_defaults(frl_randomize_opts_t *o);

/* Builds the options from --randomize, --randomize-scale, --curriculum-steps,
 * --curriculum-start and the --dr-<parameter> ranges ("LO:HI", or "off" to keep the parameter
 * nominal). Returns 0, or FRL_EUSAGE with a one-line message in err naming the flag and the
 * bound (o is then unspecified). */
int frl_randomize_from_config(frl_randomize_opts_t *o, const frl_config_t *cfg, char *err,
                              size_t errlen);

/* Parses "name=value,name=value" (names of frl_randomize_name) into value[FRL_RANDOMIZE_COUNT],
 * NAN for the ones not named. Every value is checked against frl_randomize_bounds and the delay
 * must be an integer. Returns 0, or FRL_EUSAGE with a message in err naming the entry. */
int frl_randomize_parse_values(const char *text, double value[FRL_RANDOMIZE_COUNT], char *err,
                               size_t errlen);

/* Options that give every episode exactly value[] (NAN: nominal): the degenerate ranges
 * lo = hi = value, for evaluating a policy on chosen physics. */
void frl_randomize_fixed(frl_randomize_opts_t *o, const double value[FRL_RANDOMIZE_COUNT]);

/* The curriculum fraction after `steps` environment steps (1 without a curriculum). */
double frl_randomize_fraction(const frl_randomize_opts_t *o, uint64_t steps);
/* The range parameter p is drawn from at curriculum fraction f, for an environment whose
 * nominal value is `nominal` (see the file comment). Returns false (and nothing written) when p
 * is not randomized. */
bool frl_randomize_range(const frl_randomize_opts_t *o, int p, double nominal, double f,
                         double *lo, double *hi);
/* One draw of parameter p (o->mode must not be OFF); NAN when p is not randomized. */
double frl_randomize_draw(const frl_randomize_opts_t *o, int p, double nominal, double f,
                          frl_rng_t *rng);

/* Wraps *env (taking ownership; *env becomes the wrapper) so that every reset draws new
 * parameters, using its own generator seeded from seed. Parameters the environment lacks are
 * skipped. A mode of OFF leaves *env untouched and returns 0. Returns 0, or FRL_EUSAGE (a range
 * outside the parameter's bounds) with the reason in err; *env is then untouched. */
int frl_randomize_wrap(frl_env_t **env, const frl_randomize_opts_t *o, uint64_t seed, char *err,
                       size_t errlen);

/* The current episode's parameters as a JSON object (every physical parameter the environment
 * has, with its value in effect, then sensor_noise and action_delay), from the outermost
 * randomization wrapper in e's chain; NULL when there is none or no episode was reset yet.
 * Valid until the next reset. */
const char *frl_randomize_json(const frl_env_t *e);
/* The current episode's values (NAN: nominal or absent). Returns 0, or FRL_ENOTFOUND when e
 * has no randomization wrapper. */
int frl_randomize_values(const frl_env_t *e, double value[FRL_RANDOMIZE_COUNT]);

#endif
