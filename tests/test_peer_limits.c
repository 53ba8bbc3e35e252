/* test_peer_limits.c: the per-actor token buckets against hand-computed values (an injected clock,
 * rates and depths chosen so every number is exact in binary), the size limit, fairness between
 * actors, a clock stepping back, report throttling, and the bounded table with expiry checked
 * against a simple reference model over a long random run. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "peer_limits.h"
#include "rng.h"

static frl_peer_limits_t *make(double rate_batches, double rate_bytes, double burst,
                          uint64_t max_batch_bytes, int max_actors, double idle_s) {
  frl_peer_limits_config_t c = {.rate_batches = rate_batches,
                           .rate_bytes = rate_bytes,
                           .burst_s = burst,
                           .max_batch_bytes = max_batch_bytes,
                           .max_actors = max_actors,
                           .idle_s = idle_s};
  frl_peer_limits_t *l = NULL;
  assert_int_equal(frl_peer_limits_new(&c, &l), 0);
  return l;
}

/* 8 batches/s with a 0.5 s burst: the bucket holds 4 and gains one every 0.125 s. */
static void test_batch_bucket_hand_values(void **state) {
  (void)state;
  frl_peer_limits_t *l = make(8, 0, 0.5, 1 << 20, 16, 0);
  frl_limit_result_t r;
  for (int i = 0; i < 4; i++) assert_int_equal(frl_peer_limits_admit(l, "a", 100, 10.0, &r), FRL_LIMIT_OK);
  assert_int_equal(frl_peer_limits_admit(l, "a", 100, 10.0, &r), FRL_LIMIT_BATCH_RATE);
  assert_true(r.retry_s == 0.125);
  assert_non_null(strstr(r.reason, "--actor-rate-batches 8 batches/s"));
  /* Half a token later: still refused, and the refusal took nothing. */
  assert_int_equal(frl_peer_limits_admit(l, "a", 100, 10.0625, &r), FRL_LIMIT_BATCH_RATE);
  assert_true(r.retry_s == 0.0625);
  assert_int_equal(frl_peer_limits_admit(l, "a", 100, 10.125, &r), FRL_LIMIT_OK);
  assert_int_equal(frl_peer_limits_admit(l, "a", 100, 10.125, &r), FRL_LIMIT_BATCH_RATE);
  /* 0.375 s more is 3 tokens. */
  for (int i = 0; i < 3; i++) assert_int_equal(frl_peer_limits_admit(l, "a", 1, 10.5, &r), FRL_LIMIT_OK);
  assert_int_equal(frl_peer_limits_admit(l, "a", 1, 10.5, &r), FRL_LIMIT_BATCH_RATE);
  /* A long pause refills to the depth, never beyond. */
  for (int i = 0; i < 4; i++) assert_int_equal(frl_peer_limits_admit(l, "a", 1, 1000.0, &r), FRL_LIMIT_OK);
  assert_int_equal(frl_peer_limits_admit(l, "a", 1, 1000.0, &r), FRL_LIMIT_BATCH_RATE);
  frl_peer_limits_counts_t c;
  assert_int_equal(frl_peer_limits_counts(l, "a", &c), 0);
  assert_int_equal(c.admitted, 12);
  assert_int_equal(c.refused_rate, 5);
  assert_int_equal(c.admitted_bytes, 4 * 100 + 100 + 3 + 4);
  frl_peer_limits_destroy(&l);
  assert_null(l);
}

/* 1024 bytes/s with a 2 s burst: 2048 bytes deep. */
static void test_byte_bucket_hand_values(void **state) {
  (void)state;
  frl_peer_limits_t *l = make(0, 1024, 2, 1536, 16, 0);
  frl_limit_result_t r;
  assert_int_equal(frl_peer_limits_admit(l, "a", 1536, 0.0, &r), FRL_LIMIT_OK); /* 512 left */
  assert_int_equal(frl_peer_limits_admit(l, "a", 768, 0.0, &r), FRL_LIMIT_BYTE_RATE);
  assert_true(r.retry_s == 0.25); /* (768 - 512) / 1024 */
  assert_non_null(strstr(r.reason, "--actor-rate-bytes 1024 bytes/s"));
  assert_int_equal(frl_peer_limits_admit(l, "a", 512, 0.0, &r), FRL_LIMIT_OK); /* exactly what is left */
  assert_int_equal(frl_peer_limits_admit(l, "a", 1, 0.0, &r), FRL_LIMIT_BYTE_RATE);
  assert_true(r.retry_s == 1.0 / 1024);
  assert_int_equal(frl_peer_limits_admit(l, "a", 768, 0.75, &r), FRL_LIMIT_OK);
  assert_int_equal(frl_peer_limits_admit(l, "a", 1, 0.75, &r), FRL_LIMIT_BYTE_RATE);
  /* Over the size limit: Rejected whatever the tokens, and no tokens taken. */
  assert_int_equal(frl_peer_limits_admit(l, "a", 1537, 100.0, &r), FRL_LIMIT_SIZE);
  assert_int_equal(r.retry_s, 0);
  assert_non_null(strstr(r.reason, "batch of 1537 bytes is over --actor-max-batch-bytes 1536"));
  assert_int_equal(frl_peer_limits_admit(l, "a", 1536, 100.0, &r), FRL_LIMIT_OK);
  assert_int_equal(frl_peer_limits_admit(l, "a", 512, 100.0, &r), FRL_LIMIT_OK);
  frl_peer_limits_counts_t c;
  assert_int_equal(frl_peer_limits_counts(l, "a", &c), 0);
  assert_int_equal(c.refused_size, 1);
  assert_int_equal(c.refused_rate, 3);
  frl_peer_limits_destroy(&l);
}

/* The buckets are never shallower than one batch and one maximum-size message, so every
 * admissible batch eventually passes. */
static void test_depth_floors(void **state) {
  (void)state;
  frl_peer_limits_t *l = make(0.5, 1024, 1, 4096, 4, 0);
  frl_limit_result_t r;
  assert_int_equal(frl_peer_limits_admit(l, "a", 4096, 0.0, &r), FRL_LIMIT_OK);
  assert_int_equal(frl_peer_limits_admit(l, "a", 1, 0.0, &r), FRL_LIMIT_BATCH_RATE);
  assert_true(r.retry_s == 2.0);
  assert_int_equal(frl_peer_limits_admit(l, "a", 4096, 2.0, &r), FRL_LIMIT_BYTE_RATE);
  assert_true(r.retry_s == 2.0); /* 2048 of 4096 bytes back */
  assert_int_equal(frl_peer_limits_admit(l, "a", 4096, 4.0, &r), FRL_LIMIT_OK);
  frl_peer_limits_destroy(&l);
}

static void test_actors_are_independent(void **state) {
  (void)state;
  frl_peer_limits_t *l = make(4, 0, 1, 1 << 20, 16, 0);
  frl_limit_result_t r;
  for (int i = 0; i < 4; i++) frl_peer_limits_admit(l, "flood", 10, 0.0, &r);
  for (int i = 0; i < 100; i++)
    assert_int_equal(frl_peer_limits_admit(l, "flood", 10, 0.0, &r), FRL_LIMIT_BATCH_RATE);
  for (int i = 0; i < 4; i++)
    assert_int_equal(frl_peer_limits_admit(l, "steady", 10, 0.0, &r), FRL_LIMIT_OK);
  uint64_t admitted, rate, size, full;
  frl_peer_limits_totals(l, &admitted, &rate, &size, &full);
  assert_int_equal(admitted, 8);
  assert_int_equal(rate, 100);
  assert_int_equal(size + full, 0);
  frl_peer_limits_destroy(&l);
}

static void test_clock_stepping_back_refills_nothing(void **state) {
  (void)state;
  frl_peer_limits_t *l = make(8, 0, 0.5, 1 << 20, 16, 0);
  frl_limit_result_t r;
  for (int i = 0; i < 4; i++) frl_peer_limits_admit(l, "a", 1, 10.0, &r);
  assert_int_equal(frl_peer_limits_admit(l, "a", 1, 5.0, &r), FRL_LIMIT_BATCH_RATE);
  /* Refill is measured from 10.0, the latest time seen, not from 5.0. */
  assert_int_equal(frl_peer_limits_admit(l, "a", 1, 10.0625, &r), FRL_LIMIT_BATCH_RATE);
  assert_int_equal(frl_peer_limits_admit(l, "a", 1, 10.125, &r), FRL_LIMIT_OK);
  assert_int_equal(frl_peer_limits_admit(l, "a", 1, 10.125, &r), FRL_LIMIT_BATCH_RATE);
  frl_peer_limits_destroy(&l);
}

static void test_reports_once_per_window(void **state) {
  (void)state;
  frl_peer_limits_t *l = make(1, 0, 1, 1 << 20, 16, 0);
  frl_limit_result_t r;
  frl_peer_limits_admit(l, "a", 1, 0.0, &r);
  assert_int_equal(frl_peer_limits_admit(l, "a", 1, 0.0, &r), FRL_LIMIT_BATCH_RATE);
  assert_true(r.report);
  assert_int_equal(r.refused, 1);
  assert_int_equal(frl_peer_limits_admit(l, "a", 1, 0.5, &r), FRL_LIMIT_BATCH_RATE);
  assert_false(r.report);
  assert_int_equal(r.refused, 2);
  /* Another limit in the same window is reported on its own. */
  assert_int_equal(frl_peer_limits_admit(l, "a", 2 << 20, 0.5, &r), FRL_LIMIT_SIZE);
  assert_true(r.report);
  assert_int_equal(frl_peer_limits_admit(l, "a", 2 << 20, 0.6, &r), FRL_LIMIT_SIZE);
  assert_false(r.report);
  assert_int_equal(r.refused, 4);
  assert_int_equal(frl_peer_limits_admit(l, "a", 2, 1e9, &r), FRL_LIMIT_OK);
  assert_int_equal(frl_peer_limits_admit(l, "a", 1, 1e9, &r), FRL_LIMIT_BATCH_RATE);
  assert_true(r.report); /* FRL_PEER_LIMITS_REPORT_S later */
  assert_int_equal(r.refused, 5);
  frl_peer_limits_destroy(&l);
}

static void test_names_and_config_checked(void **state) {
  (void)state;
  frl_peer_limits_t *l = make(1, 1, 1, 1024, 4, 0);
  frl_limit_result_t r;
  char name[80];
  memset(name, 'n', 64);
  name[64] = '\0';
  assert_int_equal(frl_peer_limits_admit(l, name, 1, 0.0, &r), FRL_LIMIT_OK);
  name[64] = 'n';
  name[65] = '\0';
  assert_int_equal(frl_peer_limits_admit(l, name, 1, 0.0, &r), FRL_LIMIT_SIZE);
  assert_int_equal(frl_peer_limits_admit(l, "", 1, 0.0, &r), FRL_LIMIT_SIZE);
  assert_int_equal(frl_peer_limits_admit(l, NULL, 1, 0.0, &r), FRL_LIMIT_SIZE);
  assert_int_equal(frl_peer_limits_size(l), 1);
  frl_peer_limits_destroy(&l);
  frl_peer_limits_destroy(&l); /* NULL is fine */

  frl_peer_limits_config_t bad[] = {
      {.rate_batches = -1, .burst_s = 1, .max_batch_bytes = 1, .max_actors = 1},
      {.rate_bytes = NAN, .burst_s = 1, .max_batch_bytes = 1, .max_actors = 1},
      {.burst_s = 0, .max_batch_bytes = 1, .max_actors = 1},
      {.burst_s = 1, .max_batch_bytes = 0, .max_actors = 1},
      {.burst_s = 1, .max_batch_bytes = 1, .max_actors = 0},
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(bad); i++) {
    frl_peer_limits_t *x = NULL;
    assert_int_equal(frl_peer_limits_new(&bad[i], &x), FRL_EUSAGE);
    assert_null(x);
  }
}

static void test_table_full_then_expiry(void **state) {
  (void)state;
  frl_peer_limits_t *l = make(0, 0, 1, 1024, 4, 60);
  frl_limit_result_t r;
  char name[32];
  for (int i = 0; i < 4; i++) {
    snprintf(name, sizeof name, "actor-%d", i);
    assert_int_equal(frl_peer_limits_admit(l, name, 1, (double)i, &r), FRL_LIMIT_OK);
  }
  assert_int_equal(frl_peer_limits_admit(l, "late", 1, 10.0, &r), FRL_LIMIT_TABLE_FULL);
  assert_non_null(strstr(r.reason, "at most 4 actors"));
  /* actor-0 was last seen at 0: idle for more than 60 s at 60.5, the others not yet. */
  assert_int_equal(frl_peer_limits_admit(l, "late", 1, 60.5, &r), FRL_LIMIT_OK);
  frl_peer_limits_counts_t c;
  assert_int_equal(frl_peer_limits_counts(l, "actor-0", &c), FRL_ENOTFOUND);
  assert_int_equal(frl_peer_limits_counts(l, "actor-1", &c), 0);
  assert_int_equal(frl_peer_limits_size(l), 4);
  assert_int_equal(frl_peer_limits_expire(l, 1000.0), 4);
  assert_int_equal(frl_peer_limits_size(l), 0);
  frl_peer_limits_destroy(&l);
}

/* Idle expiry never undercuts the buckets' refill time: a dropped actor comes back to exactly
 * the full buckets it would have had. */
static void test_expiry_waits_for_refill(void **state) {
  (void)state;
  frl_peer_limits_t *l = make(0.01, 0, 1000, 1024, 4, 1); /* 10 deep, refills in 1000 s */
  frl_limit_result_t r;
  frl_peer_limits_admit(l, "a", 1, 0.0, &r);
  assert_int_equal(frl_peer_limits_expire(l, 999.0), 0);
  assert_int_equal(frl_peer_limits_expire(l, 1000.5), 1);
  frl_peer_limits_destroy(&l);
}

/* A long random run against a reference model of the table (a plain array): verdicts, sizes
 * and per-actor counts agree, which exercises probing and backward-shift deletion with many
 * collisions (40 names in a 16-slot table capped at 8). */
static void test_table_matches_model(void **state) {
  (void)state;
  enum { NAMES = 40, CAP = 8 };
  const double idle = 5.0;
  frl_peer_limits_t *l = make(0, 0, 1, 1 << 20, CAP, idle);
  struct {
    bool present;
    double seen;
    uint64_t admitted;
  } model[NAMES] = {{0}};
  int size = 0;
  frl_rng_t rng;
  frl_rng_seed(&rng, 11);
  double now = 0;
  char name[32];
  for (int step = 0; step < 40000; step++) {
    now += frl_rng_uniform(&rng) * 0.4;
    if (frl_rng_below(&rng, 50) == 0) {
      int dropped = 0;
      for (int k = 0; k < NAMES; k++)
        if (model[k].present && now - model[k].seen > idle) {
          model[k].present = false;
          dropped++;
        }
      size -= dropped;
      assert_int_equal(frl_peer_limits_expire(l, now), dropped);
      continue;
    }
    int k = (int)frl_rng_below(&rng, NAMES);
    snprintf(name, sizeof name, "robot-%d", k);
    frl_limit_verdict_t want = FRL_LIMIT_OK;
    if (!model[k].present) {
      if (size >= CAP)
        for (int j = 0; j < NAMES; j++)
          if (model[j].present && now - model[j].seen > idle) {
            model[j].present = false;
            size--;
          }
      if (size >= CAP) want = FRL_LIMIT_TABLE_FULL;
      else {
        model[k].present = true;
        model[k].admitted = 0;
        size++;
      }
    }
    if (want == FRL_LIMIT_OK) {
      model[k].seen = now;
      model[k].admitted++;
    }
    assert_int_equal(frl_peer_limits_admit(l, name, 1, now, NULL), want);
    assert_int_equal(frl_peer_limits_size(l), size);
    if (step % 97 == 0)
      for (int j = 0; j < NAMES; j++) {
        snprintf(name, sizeof name, "robot-%d", j);
        frl_peer_limits_counts_t c;
        int rc = frl_peer_limits_counts(l, name, &c);
        assert_int_equal(rc, model[j].present ? 0 : FRL_ENOTFOUND);
        if (rc == 0) assert_int_equal(c.admitted, model[j].admitted);
      }
  }
  frl_peer_limits_destroy(&l);
}

/* Whatever the arrival pattern, an actor is admitted at most depth + rate * T over a span T. */
static void test_admissions_bounded_by_rate(void **state) {
  (void)state;
  const double rate = 50, burst = 0.2; /* depth 10 */
  frl_peer_limits_t *l = make(rate, 0, burst, 1 << 20, 4, 0);
  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
  double now = 0;
  uint64_t admitted = 0;
  for (int i = 0; i < 100000; i++) {
    now += frl_rng_uniform(&rng) * 0.002; /* ~1000 requests/s, 20x the rate */
    if (frl_peer_limits_admit(l, "a", 1, now, NULL) == FRL_LIMIT_OK) admitted++;
    assert_true((double)admitted <= rate * burst + rate * now + 1e-9);
  }
  /* ... and not much less: refused requests took nothing, so the rate is used. */
  assert_true((double)admitted >= rate * now - 1.0);
  frl_peer_limits_destroy(&l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batch_bucket_hand_values),
      cmocka_unit_test(test_byte_bucket_hand_values),
      cmocka_unit_test(test_depth_floors),
      cmocka_unit_test(test_actors_are_independent),
      cmocka_unit_test(test_clock_stepping_back_refills_nothing),
      cmocka_unit_test(test_reports_once_per_window),
      cmocka_unit_test(test_names_and_config_checked),
      cmocka_unit_test(test_table_full_then_expiry),
      cmocka_unit_test(test_expiry_waits_for_refill),
      cmocka_unit_test(test_table_matches_model),
      cmocka_unit_test(test_admissions_bounded_by_rate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
