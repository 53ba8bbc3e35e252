/* test_refusals.c: the learner's log throttling for refused batches against hand values (an
 * injected clock): one line per actor and field per period with the count held back, fields
 * told apart by name and not by the index or value quoted, the cap on lines in all, a clock
 * stepping back, and a flood under many names bounded by the cap. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "refusals.h"

static frl_refusals_t *fresh(void) {
  frl_refusals_t *r = calloc(1, sizeof *r); /* all zero is an empty table */
  assert_non_null(r);
  return r;
}

static void test_one_line_per_actor_and_field_per_period(void **state) {
  (void)state;
  frl_refusals_t *r = fresh();
  frl_refusal_report_t out;
  assert_true(frl_refusals_note(r, "a", "ExperienceBatch.obs[0][2]: nan, must be finite", 100.0,
                                &out));
  assert_int_equal(out.repeats, 0);
  assert_int_equal(out.unlogged, 0);
  /* The same field with another index and value is the same burst: counted, not logged. */
  for (int i = 0; i < 5; i++)
    assert_false(frl_refusals_note(r, "a", "ExperienceBatch.obs[7][1]: inf, must be finite",
                                   100.0 + i, &out));
  /* Another field of the same actor, and the same field of another actor, are their own. */
  assert_true(frl_refusals_note(r, "a", "ExperienceBatch.action_index[0]: 5, must be in [0, 2)",
                                101.0, &out));
  assert_int_equal(out.repeats, 0);
  assert_true(frl_refusals_note(r, "b", "ExperienceBatch.obs[0][0]: nan, must be finite", 101.0,
                                &out));
  /* Just before the period ends: still held back; at its end, logged with the count. */
  assert_false(frl_refusals_note(r, "a", "ExperienceBatch.obs: x", 109.99, &out));
  assert_true(frl_refusals_note(r, "a", "ExperienceBatch.obs: x", 110.0, &out));
  assert_int_equal(out.repeats, 6);
  assert_int_equal(out.unlogged, 0);
  assert_false(frl_refusals_note(r, "a", "ExperienceBatch.obs: x", 110.0, &out));
  free(r);
}

static void test_names_are_not_run_together(void **state) {
  (void)state;
  frl_refusals_t *r = fresh();
  frl_refusal_report_t out;
  assert_true(frl_refusals_note(r, "ab", "c: x", 0.0, &out));
  assert_true(frl_refusals_note(r, "a", "bc: x", 0.0, &out));
  /* No name is one unnamed actor. */
  assert_true(frl_refusals_note(r, NULL, "f: x", 0.0, &out));
  assert_false(frl_refusals_note(r, "", "f: y", 1.0, &out));
  free(r);
}

static void test_cap_on_lines_in_all(void **state) {
  (void)state;
  frl_refusals_t *r = fresh();
  frl_refusal_report_t out;
  char name[32];
  int lines = 0;
  /* 50 names refused within one period: FRL_REFUSALS_LINES lines, the rest counted. */
  for (int i = 0; i < 50; i++) {
    snprintf(name, sizeof name, "robot-%d", i);
    lines += frl_refusals_note(r, name, "ExperienceBatch.reward[0]: nan", 5.0 + 0.1 * i, &out);
  }
  assert_int_equal(lines, FRL_REFUSALS_LINES);
  /* The next period's first line says how many went unlogged. */
  assert_true(frl_refusals_note(r, "robot-49", "ExperienceBatch.reward[0]: nan", 15.0, &out));
  assert_int_equal(out.unlogged, 50 - FRL_REFUSALS_LINES);
  assert_int_equal(out.repeats, 0);
  assert_true(frl_refusals_note(r, "robot-48", "ExperienceBatch.reward[0]: nan", 15.0, &out));
  assert_int_equal(out.unlogged, 0);
  free(r);
}

static void test_clock_stepping_back_ends_the_period(void **state) {
  (void)state;
  frl_refusals_t *r = fresh();
  frl_refusal_report_t out;
  assert_true(frl_refusals_note(r, "a", "f: x", 1000.0, &out));
  assert_false(frl_refusals_note(r, "a", "f: x", 1001.0, &out));
  /* Rather than stay silent until the clock catches up again. */
  assert_true(frl_refusals_note(r, "a", "f: x", 10.0, &out));
  assert_int_equal(out.repeats, 1);
  free(r);
}

/* A flood of refusals under ever new names, for many periods: never more than the cap per
 * period, and every refusal either logged, held back as a repeat, or counted as unlogged. */
static void test_flood_is_bounded(void **state) {
  (void)state;
  frl_refusals_t *r = fresh();
  frl_refusal_report_t out;
  char name[32];
  const int periods = 20, per_period = 5000;
  uint64_t logged = 0, reported = 0;
  for (int p = 0; p < periods; p++) {
    int lines = 0;
    for (int i = 0; i < per_period; i++) {
      snprintf(name, sizeof name, "n%d", (p * per_period + i) % 3000);
      double now = p * FRL_REFUSALS_REPORT_S + i * (FRL_REFUSALS_REPORT_S / (2 * per_period));
      if (frl_refusals_note(r, name, "ExperienceBatch.obs[0][0]: nan", now, &out)) {
        lines++;
        logged++;
        reported += out.repeats + out.unlogged;
      }
    }
    assert_true(lines <= FRL_REFUSALS_LINES);
  }
  assert_true(logged <= (uint64_t)(periods * FRL_REFUSALS_LINES));
  assert_true(logged + reported <= (uint64_t)(periods * per_period));
  free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_line_per_actor_and_field_per_period),
      cmocka_unit_test(test_names_are_not_run_together),
      cmocka_unit_test(test_cap_on_lines_in_all),
      cmocka_unit_test(test_clock_stepping_back_ends_the_period),
      cmocka_unit_test(test_flood_is_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
