/* test_ratelimit.c: samples-per-insert arithmetic, min_size, tolerance, the runtime ratio
 * change, and a randomized run showing the two sides never block each other. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>

#include "ratelimit.h"
#include "rng.h"

static void test_fill_phase(void **state) {
  (void)state;
  frl_ratelimit_t r;
  frl_ratelimit_init(&r, 4.0, 100, 64.0);
  assert_false(frl_ratelimit_can_sample(&r, 1));
  assert_true(frl_ratelimit_can_insert(&r, 1000000)); /* filling never blocks */
  frl_ratelimit_inserted(&r, 99);
  assert_false(frl_ratelimit_can_sample(&r, 1));
  frl_ratelimit_inserted(&r, 1);
  /* At min_size the target is 0 samples, so up to tolerance may be drawn ahead. */
  assert_true(frl_ratelimit_can_sample(&r, 64));
  assert_false(frl_ratelimit_can_sample(&r, 65));
}

static void test_steady_state_arithmetic(void **state) {
  (void)state;
  frl_ratelimit_t r;
  frl_ratelimit_init(&r, 4.0, 100, 64.0);
  frl_ratelimit_inserted(&r, 150); /* target = 4 * (150 - 100) = 200 */
  assert_true(frl_ratelimit_can_sample(&r, 264));
  assert_false(frl_ratelimit_can_sample(&r, 265));

  frl_ratelimit_sampled(&r, 150); /* 50 behind: inserts may add (64 - 50) / 4 = 3.5 -> 3 */
  assert_int_equal(frl_ratelimit_insert_room(&r), 3);
  assert_true(frl_ratelimit_can_insert(&r, 3));
  assert_false(frl_ratelimit_can_insert(&r, 4));
  assert_true(frl_ratelimit_can_sample(&r, 114));
  assert_false(frl_ratelimit_can_sample(&r, 115));

  frl_ratelimit_sampled(&r, 14); /* 36 behind: (64 - 36) / 4 = 7 */
  assert_int_equal(frl_ratelimit_insert_room(&r), 7);
  assert_false(frl_ratelimit_can_insert(&r, 8));

  frl_ratelimit_sampled(&r, 36 + 10); /* 10 ahead: strict room (64 + 10) / 4 = 18 */
  assert_int_equal(frl_ratelimit_insert_room(&r), 18);
  /* ... but the sampler has drawn its share, so a larger batch is admitted too. */
  assert_true(frl_ratelimit_can_insert(&r, 1000));
  assert_true(frl_ratelimit_can_sample(&r, 54));
  assert_false(frl_ratelimit_can_sample(&r, 55));

  frl_ratelimit_inserted(&r, 100); /* target 600, samples 210: 390 behind, over tolerance */
  assert_int_equal(frl_ratelimit_insert_room(&r), 0);
  assert_false(frl_ratelimit_can_insert(&r, 1));
}

static void test_room_at_least_one_when_caught_up(void **state) {
  (void)state;
  frl_ratelimit_t r;
  frl_ratelimit_init(&r, 100.0, 10, 50.0); /* one insert is worth more than the tolerance */
  frl_ratelimit_inserted(&r, 11);          /* target 100 */
  assert_int_equal(frl_ratelimit_insert_room(&r), 0); /* 100 behind > 50 */
  frl_ratelimit_sampled(&r, 100);
  /* strict room floor(50 / 100) = 0, yet the sampler can draw nothing more: admit one. */
  assert_false(frl_ratelimit_can_sample(&r, 51));
  assert_int_equal(frl_ratelimit_insert_room(&r), 1);
  assert_true(frl_ratelimit_can_insert(&r, 64));
}

static void test_set_spi_rebases(void **state) {
  (void)state;
  frl_ratelimit_t r;
  frl_ratelimit_init(&r, 4.0, 100, 64.0);
  frl_ratelimit_inserted(&r, 150);
  frl_ratelimit_sampled(&r, 200); /* exactly on target */
  frl_ratelimit_set_spi(&r, 8.0);
  /* Still on target right after the change: no backlog of 8 * 50 - 200 samples. */
  assert_true(frl_ratelimit_can_sample(&r, 64));
  assert_false(frl_ratelimit_can_sample(&r, 65));
  frl_ratelimit_inserted(&r, 10); /* target 200 + 8 * 10 = 280 */
  assert_true(frl_ratelimit_can_sample(&r, 80 + 64));
  assert_false(frl_ratelimit_can_sample(&r, 80 + 65));
  frl_ratelimit_set_spi(&r, 0.5);
  frl_ratelimit_inserted(&r, 20); /* target 280 + 10 = 290 */
  assert_true(frl_ratelimit_can_sample(&r, 90 + 64));
  assert_false(frl_ratelimit_can_sample(&r, 90 + 65));

  /* Before min_size the ratio simply applies from min_size on. */
  frl_ratelimit_init(&r, 4.0, 100, 64.0);
  frl_ratelimit_inserted(&r, 50);
  frl_ratelimit_set_spi(&r, 2.0);
  frl_ratelimit_inserted(&r, 80); /* target 2 * (130 - 100) = 60 */
  assert_true(frl_ratelimit_can_sample(&r, 124));
  assert_false(frl_ratelimit_can_sample(&r, 125));
}

/* Actors push batches of random size, the learner draws fixed batches, for ratios from well
 * below to far above insert batch / tolerance. Whenever neither side may proceed the test
 * fails (deadlock); throughout, samples never run ahead of the target by more than the
 * tolerance nor behind by more than max(tolerance, one insert batch's worth). */
static void test_random_run_no_deadlock(void **state) {
  (void)state;
  static const double ratios[] = {0.25, 1.0, 4.0, 32.0, 300.0};
  const uint64_t sample_batch = 64;
  const double tolerance = 2.0 * sample_batch;
  frl_rng_t rng;
  frl_rng_seed(&rng, 5);
  for (size_t k = 0; k < sizeof ratios / sizeof ratios[0]; k++) {
    frl_ratelimit_t r;
    frl_ratelimit_init(&r, ratios[k], 1000, tolerance);
    for (int step = 0; step < 200000; step++) {
      uint64_t n = 1 + frl_rng_below(&rng, 256);
      bool prefer_insert = frl_rng_below(&rng, 2) == 0;
      bool ins = frl_ratelimit_can_insert(&r, n);
      bool smp = frl_ratelimit_can_sample(&r, sample_batch);
      assert_true(ins || smp);
      if (ins && (prefer_insert || !smp))
        frl_ratelimit_inserted(&r, n);
      else
        frl_ratelimit_sampled(&r, sample_batch);
      double target = ratios[k] * ((double)r.inserts - 1000.0);
      assert_true((double)r.samples <= fmax(target, 0.0) + tolerance);
      assert_true(target - (double)r.samples <= fmax(tolerance, ratios[k] * 256.0));
    }
    double target = ratios[k] * ((double)r.inserts - 1000.0);
    assert_true(fabs((double)r.samples - target) <= tolerance + ratios[k] * 256.0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fill_phase),
      cmocka_unit_test(test_steady_state_arithmetic),
      cmocka_unit_test(test_room_at_least_one_when_caught_up),
      cmocka_unit_test(test_set_spi_rebases),
      cmocka_unit_test(test_random_run_no_deadlock),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
