/* hardware.h: a model of the hardware between a policy and a robot, wrapped around any
 * environment (the seed's hardware-aware environment, 003:731-804): motors that saturate and
 * lose a Coulomb-friction dead-band of every command, an energy charge on the torque they deliver,
 * and sensors with Gaussian noise and a fixed delay.
 *
 * Actuation, per continuous action component u with bounds [lo, hi], centre m = (lo + hi) / 2
 * and half-range h = (hi - lo) / 2, writing v = u - m:
 *   saturation:  v <- clip(v, -s h, s h)                     (s = saturation, a fraction)
 *   dead-band:   v <- sign(v) max(0, |v| - d h)              (d = deadband, a fraction)
 * and the motor delivers m + v. The dead-band is the seed's friction model (003:776-779): static
 * friction eats the first d h of every command, so small commands do nothing and the response
 * stays continuous. Energy: the step's reward is reduced by energy_penalty * sum |m + v| (the
 * seed's 0.01 * 0.001 * sum |tau|, 003:783-786, is energy_penalty 1e-5), a proxy for the
 * electrical energy a torque costs. Discrete actions (an index) pass through unchanged and are
 * not charged.
 *
 * Sensing: every observation gets N(0, sensor_noise^2) noise per component when it is measured,
 * and the policy receives the measurement of sensor_delay steps earlier (at reset the delay line
 * is filled with the first measurement: a sensor that has only seen the start). The seed declared
 * a delay buffer but never used it. */
#ifndef FRL_HARDWARE_H
#define FRL_HARDWARE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "env.h"

#define FRL_HARDWARE_MAX_DELAY 50

typedef struct {
  double deadband;       /* fraction of the half-range lost to static friction, [0, 1) */
  double saturation;     /* largest command, as a fraction of the half-range, (0, 1] */
  double energy_penalty; /* reward charged per unit of sum |delivered action| */
  double sensor_noise;   /* observation noise sigma */
  int sensor_delay;      /* steps, [0, FRL_HARDWARE_MAX_DELAY] */
} frl_hardware_opts_t;

/* deadband 0.02, saturation 0.9, energy_penalty 1e-5, sensor_noise 0.01, sensor_delay 1. */
void frl_hardware_defaults(frl_hardware_opts_t *o);

/* Builds the options from --hw-deadband, --hw-saturation, --hw-energy-penalty,
 * --hw-sensor-noise and --hw-sensor-delay. Returns 0, or FRL_EUSAGE with a one-line message in
 * err (a dead-band that swallows every command). */
int frl_hardware_from_config(frl_hardware_opts_t *o, const frl_config_t *cfg, char *err,
                             size_t errlen);

/* The motor model on n continuous action components with bounds low/high: writes the delivered
 * actions to out (which may alias in) and returns sum |out|. */
double frl_hardware_actuate(const frl_hardware_opts_t *o, const float *low, const float *high,
                            int n, const float *in, float *out);

/* Wraps *env (taking ownership; *env becomes the wrapper) with the hardware model, the sensor
 * noise drawn from its own generator seeded from seed. Returns 0, or FRL_EUSAGE for options out
 * of range (the reason in err; *env untouched). */
int frl_hardware_wrap(frl_env_t **env, const frl_hardware_opts_t *o, uint64_t seed, char *err,
                      size_t errlen);

#endif
