/* test_hardware.c: the hardware model against hand-computed values: saturation and the Coulomb
 * dead-band on symmetric and offset action ranges, the energy charge on the reward next to the
 * bare environment, the sensor delay line and noise moments, discrete actions passed through,
 * composition with domain randomization (action and sensor delays add up), and refused options. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "env.h"
#include "env_impl.h"
#include "hardware.h"
#include "numeric_check.h"
#include "randomize.h"

static frl_hardware_opts_t opts(double deadband, double saturation, double energy, double noise,
                                int delay) {
  frl_hardware_opts_t o = {.deadband = deadband,
                           .saturation = saturation,
                           .energy_penalty = energy,
                           .sensor_noise = noise,
                           .sensor_delay = delay};
  return o;
}

static void wrap(frl_env_t **e, frl_hardware_opts_t o) {
  char err[256];
  if (frl_hardware_wrap(e, &o, 5, err, sizeof err) != 0) fail_msg("%s", err);
}

/* An environment that observes what its actuators received and counts its steps:
 * obs = [action (2), step count]; bounds [-2, 2] x [0, 10]; reward 1 per step. */
typedef struct {
  double t;
} echo_t;

static void echo_init(void *state, frl_env_spec_t *spec) {
  spec->obs_dim = 3;
  spec->act_dim = 2;
  spec->act_low[0] = -2;
  spec->act_high[0] = 2;
  spec->act_low[1] = 0;
  spec->act_high[1] = 10;
}
static void echo_reset(void *state, frl_rng_t *rng, float *obs) {
  ((echo_t *)state)->t = 0;
  obs[0] = obs[1] = obs[2] = 0.0f;
}
static void echo_step(void *state, frl_rng_t *rng, const float *action, float *obs, frl_step_t *out) {
  echo_t *s = state;
  s->t += 1;
  obs[0] = action[0];
  obs[1] = action[1];
  obs[2] = (float)s->t;
  out->reward = 1.0f;
}
static const frl_env_impl_t echo_impl = {
    .name = "echo", .state_size = sizeof(echo_t), .init = echo_init, .reset = echo_reset,
    .step = echo_step,
};

/* Hand values. Range [-2, 2]: centre 0, half-range 2; saturation 0.5 -> |v| <= 1; dead-band 0.1
 * -> 0.2 is lost. Range [0, 10]: centre 5, half-range 5; saturation 0.9 -> |v| <= 4.5;
 * dead-band 0.02 -> 0.1 lost. */
static void test_actuate_hand_values(void **unused) {
  const float lo1[1] = {-2}, hi1[1] = {2};
  frl_hardware_opts_t o = opts(0.1, 0.5, 0, 0, 0);
  const float in[] = {0.0f, 0.1f, 0.2f, -0.15f, 0.5f, -0.7f, 1.0f, 1.5f, -3.0f};
  const float want[] = {0.0f, 0.0f, 0.0f, 0.0f, 0.3f, -0.5f, 0.8f, 0.8f, -0.8f};
  for (size_t i = 0; i < FRL_ARRAY_LEN(in); i++) {
    float out;
    double effort = frl_hardware_actuate(&o, lo1, hi1, 1, &in[i], &out);
    expect_close("symmetric range", (int)i, out, want[i], 1e-6, 0);
    expect_close("effort", (int)i, effort, fabs(want[i]), 1e-6, 0);
  }
  const float lo2[1] = {0}, hi2[1] = {10};
  o = opts(0.02, 0.9, 0, 0, 0);
  const float in2[] = {10.0f, 0.0f, 5.05f, 4.9f, 7.0f, 2.0f};
  const float want2[] = {9.4f, 0.6f, 5.0f, 5.0f, 6.9f, 2.1f};
  for (size_t i = 0; i < FRL_ARRAY_LEN(in2); i++) {
    float out;
    frl_hardware_actuate(&o, lo2, hi2, 1, &in2[i], &out);
    expect_close("offset range", (int)i, out, want2[i], 1e-5, 0);
  }
  /* Several components at once, in place; no dead-band and full saturation change nothing. */
  const float lo3[2] = {-2, 0}, hi3[2] = {2, 10};
  float x[2] = {1.25f, 7.5f};
  o = opts(0, 1, 0, 0, 0);
  double effort = frl_hardware_actuate(&o, lo3, hi3, 2, x, x);
  assert_true(x[0] == 1.25f && x[1] == 7.5f);
  expect_close("effort", 0, effort, 8.75, 1e-6, 0);
}

/* Through the environment: the actuators receive the modelled command; reward = 1 - penalty *
 * sum |delivered|. */
static void test_wrapped_actuation_and_energy(void **unused) {
  frl_env_t *e = frl__env_new_impl(&echo_impl, 1);
  wrap(&e, opts(0.1, 0.5, 0.25, 0, 0));
  float obs[3];
  frl_env_reset(e, obs);
  const float a[2] = {1.5f, 9.0f}; /* -> 0.8; centre 5 + clip(4, 2.5) - 0.5 = 7 */
  frl_step_t st;
  frl_env_step(e, a, obs, &st);
  expect_close("delivered 0", 0, obs[0], 0.8, 1e-6, 0);
  expect_close("delivered 1", 1, obs[1], 7.0, 1e-6, 0);
  expect_close("reward", 0, st.reward, 1.0 - 0.25 * (0.8 + 7.0), 1e-6, 0);
  frl_env_destroy(&e);

  /* The pendulum next to the bare one (same seed, same episode): rewards differ by exactly the
   * energy charge on the torques it received. */
  frl_env_t *bare = NULL, *hw = NULL;
  assert_int_equal(frl_env_new(&bare, "pendulum", 3, NULL, 0), 0);
  assert_int_equal(frl_env_new(&hw, "pendulum", 3, NULL, 0), 0);
  wrap(&hw, opts(0, 1, 0.5, 0, 0));
  float ob[3], oh[3];
  frl_env_reset(bare, ob);
  frl_env_reset(hw, oh);
  for (int t = 0; t < 50; t++) {
    const float u = 2.0f * sinf(0.3f * (float)t);
    frl_step_t sb, sh;
    frl_env_step(bare, &u, ob, &sb);
    frl_env_step(hw, &u, oh, &sh);
    assert_memory_equal(ob, oh, sizeof ob);
    expect_close("energy charge", t, sb.reward - sh.reward, 0.5 * fabs(u), 1e-5, 1e-5);
  }
  frl_env_destroy(&bare);
  frl_env_destroy(&hw);
}

/* With delay k the observation after step t is the measurement of step t - k; until then the
 * reset's. */
static void test_sensor_delay(void **unused) {
  for (int k = 0; k <= 3; k++) {
    frl_env_t *e = frl__env_new_impl(&echo_impl, 1);
    wrap(&e, opts(0, 1, 0, 0, k));
    for (int episode = 0; episode < 2; episode++) {
      float obs[3];
      frl_env_reset(e, obs);
      assert_true(obs[2] == 0.0f);
      for (int t = 1; t <= 10; t++) {
        const float a[2] = {0.0f, (float)t};
        frl_step_t st;
        frl_env_step(e, a, obs, &st);
        const float seen = t - k > 0 ? (float)(t - k) : 0.0f;
        if (obs[2] != seen || obs[1] != seen)
          fail_msg("delay %d, step %d: saw step %g, action %g; want %g", k, t, obs[2], obs[1], seen);
      }
    }
    frl_env_destroy(&e);
  }
}

static void test_sensor_noise(void **unused) {
  frl_env_t *e = frl__env_new_impl(&echo_impl, 1);
  wrap(&e, opts(0, 1, 0, 0.2, 0));
  float obs[3];
  frl_env_reset(e, obs);
  const float a[2] = {1.0f, 5.0f};
  const int n = 40000;
  double sum = 0, sum2 = 0;
  for (int t = 0; t < n; t++) {
    frl_step_t st;
    frl_env_step(e, a, obs, &st);
    const double x = (double)obs[0] - 1.0;
    sum += x;
    sum2 += x * x;
  }
  expect_close("noise mean", 0, sum / n, 0.0, 5 * 0.2 / sqrt(n), 0);
  expect_close("noise variance", 0, sum2 / n, 0.04, 5 * 0.04 * sqrt(2.0 / n), 0);
  frl_env_destroy(&e);
}

/* A discrete task: indices pass through untouched and nothing is charged. */
static void test_discrete_passthrough(void **unused) {
  frl_env_t *bare = NULL, *hw = NULL;
  assert_int_equal(frl_env_new(&bare, "gridworld", 1, NULL, 0), 0);
  assert_int_equal(frl_env_new(&hw, "gridworld", 1, NULL, 0), 0);
  wrap(&hw, opts(0.5, 0.6, 3.0, 0, 0));
  float ob[16], oh[16];
  frl_env_reset(bare, ob);
  frl_env_reset(hw, oh);
  const float path[] = {1, 1, 2, 0, 1}; /* right, right, down, up, right: the goal */
  for (size_t t = 0; t < FRL_ARRAY_LEN(path); t++) {
    frl_step_t sb, sh;
    frl_env_step(bare, &path[t], ob, &sb);
    frl_env_step(hw, &path[t], oh, &sh);
    assert_memory_equal(ob, oh, sizeof ob);
    assert_true(sb.reward == sh.reward && sb.terminal == sh.terminal);
  }
  frl_env_destroy(&bare);
  frl_env_destroy(&hw);
}

/* Hardware around randomization around the task: an action delay of 2 and a sensor delay of 1
 * mean the observation after step t shows the action of step t - 3, dead-banded. */
static void test_composition(void **unused) {
  frl_env_t *e = frl__env_new_impl(&echo_impl, 1);
  double v[FRL_RANDOMIZE_COUNT];
  assert_int_equal(frl_randomize_parse_values("action_delay=2", v, NULL, 0), 0);
  frl_randomize_opts_t ro;
  frl_randomize_fixed(&ro, v);
  assert_int_equal(frl_randomize_wrap(&e, &ro, 2, NULL, 0), 0);
  wrap(&e, opts(0.1, 1, 0, 0, 1));
  assert_null(frl_randomize_json(e)); /* no episode yet */
  float obs[3];
  frl_env_reset(e, obs);
  assert_string_equal(frl_randomize_json(e), "{\"sensor_noise\":0,\"action_delay\":2}");
  for (int t = 0; t < 10; t++) {
    const float a[2] = {1.0f + 0.05f * (float)t, 5.0f};
    frl_step_t st;
    frl_env_step(e, a, obs, &st);
    /* Step t's observation is measured after step t - 1 (sensor delay 1), when the actuators got
     * the action of step t - 1 - 2 (action delay 2), or the idle 0 before any arrived. */
    const int src = t - 3;
    const float want = src >= 0 ? 1.0f + 0.05f * (float)src - 0.2f : 0.0f;
    expect_close("composed delays", t, obs[0], want, 1e-6, 0);
  }
  frl_env_destroy(&e);
}

static void test_options(void **unused) {
  frl_hardware_opts_t d;
  frl_hardware_defaults(&d);
  assert_true(d.deadband == 0.02 && d.saturation == 0.9 && d.energy_penalty == 1e-5);
  assert_true(d.sensor_noise == 0.01 && d.sensor_delay == 1);
  /* The flags' defaults are these. */
  frl_config_t cfg;
  assert_int_equal(frl_config_parse(&cfg, FRL_CFG_ACTOR, 0, NULL, stdout, stderr), 0);
  frl_hardware_opts_t c;
  assert_int_equal(frl_hardware_from_config(&c, &cfg, NULL, 0), 0);
  assert_true(c.deadband == d.deadband && c.saturation == d.saturation &&
              c.energy_penalty == d.energy_penalty && c.sensor_noise == d.sensor_noise &&
              c.sensor_delay == d.sensor_delay);
  assert_false(cfg.hardware_model);

  const frl_hardware_opts_t bad[] = {
      opts(0.5, 0.5, 0, 0, 0), opts(-0.1, 1, 0, 0, 0), opts(0, 0, 0, 0, 0),
      opts(0, 1.5, 0, 0, 0),   opts(0, 1, -1, 0, 0),   opts(0, 1, 0, NAN, 0),
      opts(0, 1, 0, 0, 51),    opts(0, 1, 0, 0, -1),
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(bad); i++) {
    frl_env_t *e = frl__env_new_impl(&echo_impl, 1), *orig = e;
    char err[256] = "";
    assert_int_equal(frl_hardware_wrap(&e, &bad[i], 1, err, sizeof err), FRL_EUSAGE);
    assert_ptr_equal(e, orig);
    assert_true(strlen(err) > 0);
    frl_env_destroy(&e);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_actuate_hand_values), cmocka_unit_test(test_wrapped_actuation_and_energy),
      cmocka_unit_test(test_sensor_delay),        cmocka_unit_test(test_sensor_noise),
      cmocka_unit_test(test_discrete_passthrough), cmocka_unit_test(test_composition),
      cmocka_unit_test(test_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
