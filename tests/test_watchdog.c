/* test_watchdog.c: the safe-mode decision driven by an injected clock: broker silence, stale
 * parameters, non-finite observations and e-stop each enter safe mode and leave it when they
 * clear, transitions are reported exactly once, and a random schedule agrees with a direct
 * model of the rules. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "rng.h"
#include "watchdog.h"

static void expect_change(frl_watchdog_t *w, double now, bool entered, uint32_t after) {
  frl_watchdog_change_t c;
  assert_true(frl_watchdog_update(w, now, &c));
  assert_int_equal(c.entered, entered);
  assert_int_equal(c.after, after);
  assert_int_equal(frl_watchdog_causes(w), after);
  assert_int_equal(frl_watchdog_safe(w), entered);
}

static void expect_no_change(frl_watchdog_t *w, double now, uint32_t causes) {
  frl_watchdog_change_t c = {.before = 99};
  assert_false(frl_watchdog_update(w, now, &c));
  assert_int_equal(c.before, 99); /* untouched */
  assert_int_equal(frl_watchdog_causes(w), causes);
}

static void test_new_refuses_bad_bounds(void **unused) {
  frl_watchdog_limits_t l = {.max_broker_silence_s = -1};
  assert_null(frl_watchdog_new(&l, 0));
  l = (frl_watchdog_limits_t){.max_params_age_s = NAN};
  assert_null(frl_watchdog_new(&l, 0));
  l = (frl_watchdog_limits_t){.max_broker_silence_s = INFINITY};
  assert_null(frl_watchdog_new(&l, 0));
  frl_watchdog_t *w = frl_watchdog_new(&(frl_watchdog_limits_t){0}, 0);
  assert_non_null(w);
  /* With both bounds off only e-stop and observations matter, whatever the time. */
  expect_no_change(w, 1e9, 0);
  frl_watchdog_destroy(&w);
  assert_null(w);
  frl_watchdog_destroy(&w);
}

static void test_broker_silence(void **unused) {
  frl_watchdog_t *w = frl_watchdog_new(&(frl_watchdog_limits_t){.max_broker_silence_s = 1.5}, 100);
  expect_no_change(w, 101.5, 0); /* exactly the bound: not yet */
  expect_change(w, 101.51, true, FRL_WD_BROKER);
  expect_no_change(w, 105, FRL_WD_BROKER);
  frl_watchdog_heard(w, 104); /* heard at 104: silence 1 s at 105 */
  expect_change(w, 105, false, 0);
  frl_watchdog_heard(w, 50);  /* an older time changes nothing */
  expect_no_change(w, 105.4, 0);
  expect_change(w, 105.6, true, FRL_WD_BROKER);
  frl_watchdog_destroy(&w);
}

static void test_params_age(void **unused) {
  frl_watchdog_t *w = frl_watchdog_new(&(frl_watchdog_limits_t){.max_params_age_s = 10}, 0);
  /* No parameters yet: not stale, however long. */
  expect_no_change(w, 1000, 0);
  frl_watchdog_params(w, 1000);
  expect_no_change(w, 1010, 0);
  expect_change(w, 1010.5, true, FRL_WD_PARAMS);
  frl_watchdog_params(w, 1011);
  expect_change(w, 1011, false, 0);
  frl_watchdog_destroy(&w);
}

static void test_observation_and_estop(void **unused) {
  frl_watchdog_t *w = frl_watchdog_new(&(frl_watchdog_limits_t){.max_broker_silence_s = 5}, 0);
  float ok[3] = {1, 2, 3}, nan[3] = {1, NAN, 3}, inf[3] = {-INFINITY, 0, 0};
  assert_true(frl_watchdog_observation(w, ok, 3));
  expect_no_change(w, 1, 0);
  assert_false(frl_watchdog_observation(w, nan, 3));
  expect_change(w, 1, true, FRL_WD_OBS);
  assert_false(frl_watchdog_observation(w, inf, 3));
  expect_no_change(w, 1, FRL_WD_OBS);
  /* An e-stop arrives while the observation is bad: still one safe-mode period. */
  frl_watchdog_estop(w, true);
  expect_no_change(w, 1, FRL_WD_OBS | FRL_WD_ESTOP);
  assert_true(frl_watchdog_observation(w, ok, 3));
  expect_no_change(w, 1, FRL_WD_ESTOP);
  /* ... and the e-stop holds until Resume even when everything else is healthy. */
  frl_watchdog_heard(w, 3);
  expect_no_change(w, 4, FRL_WD_ESTOP);
  frl_watchdog_estop(w, false);
  expect_change(w, 4, false, 0);
  /* The check covers every value, also the last. */
  float last[3] = {0, 0, NAN};
  assert_false(frl_watchdog_observation(w, last, 3));
  assert_true(frl_watchdog_observation(w, last, 2));
  frl_watchdog_destroy(&w);
}

static void test_describe(void **unused) {
  char buf[128];
  assert_string_equal(frl_watchdog_describe(0, buf, sizeof buf), "healthy");
  assert_string_equal(frl_watchdog_describe(FRL_WD_ESTOP | FRL_WD_BROKER, buf, sizeof buf),
                      "e-stop, broker silent");
  assert_string_equal(frl_watchdog_describe(FRL_WD_PARAMS | FRL_WD_OBS, buf, sizeof buf),
                      "parameters stale, observation not finite");
  char tiny[8];
  frl_watchdog_describe(FRL_WD_ESTOP | FRL_WD_BROKER, tiny, sizeof tiny);
  assert_true(strlen(tiny) < sizeof tiny);
}

/* A random schedule of inputs against the rules written out directly. */
static void test_against_model(void **unused) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
  const double silence = 0.7, age = 2.0;
  frl_watchdog_t *w =
      frl_watchdog_new(&(frl_watchdog_limits_t){.max_broker_silence_s = silence, .max_params_age_s = age}, 0);
  double now = 0, heard = 0, params = -1;
  bool estop = false, bad = false, safe = false;
  int transitions = 0;
  for (int it = 0; it < 20000; it++) {
    now += 0.05 * frl_rng_uniform(&rng);
    switch (frl_rng_below(&rng, 8)) {
    case 0: heard = now; frl_watchdog_heard(w, now); break;
    case 1: params = now; frl_watchdog_params(w, now); break;
    case 2: estop = frl_rng_below(&rng, 4) == 0; frl_watchdog_estop(w, estop); break;
    case 3: {
      float o[2] = {0, frl_rng_below(&rng, 5) == 0 ? NAN : 1.0f};
      bad = !isfinite(o[1]);
      assert_int_equal(frl_watchdog_observation(w, o, 2), !bad);
      break;
    }
    default: break;
    }
    uint32_t want = (estop ? FRL_WD_ESTOP : 0) | (bad ? FRL_WD_OBS : 0) |
                    (now - heard > silence ? FRL_WD_BROKER : 0) |
                    (params >= 0 && now - params > age ? FRL_WD_PARAMS : 0);
    frl_watchdog_change_t c;
    bool changed = frl_watchdog_update(w, now, &c);
    assert_int_equal(frl_watchdog_causes(w), want);
    assert_int_equal(changed, (want != 0) != safe);
    if (changed) {
      assert_int_equal(c.entered, want != 0);
      transitions++;
    }
    safe = want != 0;
  }
  assert_true(transitions > 100);
  frl_watchdog_destroy(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_refuses_bad_bounds),
      cmocka_unit_test(test_broker_silence),
      cmocka_unit_test(test_params_age),
      cmocka_unit_test(test_observation_and_estop),
      cmocka_unit_test(test_describe),
      cmocka_unit_test(test_against_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
