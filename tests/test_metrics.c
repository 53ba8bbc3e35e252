/* test_metrics.c: the Prometheus text rendering, checked against hand-written expositions:
 * HELP/TYPE lines, label escaping of backslash, double quote and line feed, invalid UTF-8,
 * value formatting (integers, shortest round-trip decimals, NaN and infinities), histograms,
 * name validation, and many series through the hash index. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "metrics.h"

static void expect_text(const frl_metrics_t *m, const char *want) {
  char *text = NULL;
  size_t len = 0;
  assert_int_equal(frl_metrics_render(m, &text, &len), 0);
  assert_int_equal(len, strlen(text));
  if (strcmp(text, want) != 0) fprintf(stderr, "got:\n%s\nwant:\n%s\n", text, want);
  assert_string_equal(text, want);
  free(text);
}

static void test_counter_and_gauge(void **state) {
  (void)state;
  frl_metrics_t *m = frl_metrics_new();
  int steps, q;
  assert_int_equal(frl_metrics_counter(m, "fleetrl_env_steps_total", "Environment steps.", NULL,
                                       &steps), 0);
  assert_int_equal(frl_metrics_gauge(m, "fleetrl_mean_q", "Mean Q of the last batch.", NULL, &q),
                   0);
  /* Unlabelled series exist from the start, at 0. */
  expect_text(m, "# HELP fleetrl_env_steps_total Environment steps.\n"
                 "# TYPE fleetrl_env_steps_total counter\n"
                 "fleetrl_env_steps_total 0\n"
                 "# HELP fleetrl_mean_q Mean Q of the last batch.\n"
                 "# TYPE fleetrl_mean_q gauge\n"
                 "fleetrl_mean_q 0\n");
  assert_int_equal(frl_metrics_set(m, steps, NULL, 12345), 0);
  assert_int_equal(frl_metrics_add(m, steps, NULL, 5), 0);
  assert_int_equal(frl_metrics_set(m, q, NULL, -0.25), 0);
  expect_text(m, "# HELP fleetrl_env_steps_total Environment steps.\n"
                 "# TYPE fleetrl_env_steps_total counter\n"
                 "fleetrl_env_steps_total 12350\n"
                 "# HELP fleetrl_mean_q Mean Q of the last batch.\n"
                 "# TYPE fleetrl_mean_q gauge\n"
                 "fleetrl_mean_q -0.25\n");
  /* The shorthand registers and sets in one call; a negative counter registers nothing. */
  assert_int_equal(frl_metrics_put(m, "up_seconds", FRL_METRIC_GAUGE, "Up.", 2.5), 0);
  assert_int_equal(frl_metrics_put(m, "bad_total", FRL_METRIC_COUNTER, "", -1), FRL_EUSAGE);
  assert_int_equal(frl_metrics_put(m, "up_seconds", FRL_METRIC_GAUGE, "", 1), FRL_EUSAGE);
  expect_text(m, "# HELP fleetrl_env_steps_total Environment steps.\n"
                 "# TYPE fleetrl_env_steps_total counter\n"
                 "fleetrl_env_steps_total 12350\n"
                 "# HELP fleetrl_mean_q Mean Q of the last batch.\n"
                 "# TYPE fleetrl_mean_q gauge\n"
                 "fleetrl_mean_q -0.25\n"
                 "# HELP up_seconds Up.\n"
                 "# TYPE up_seconds gauge\n"
                 "up_seconds 2.5\n");
  frl_metrics_destroy(&m);
  assert_null(m);
  frl_metrics_destroy(&m); /* NULL is fine */
}

static void test_labels_and_escaping(void **state) {
  (void)state;
  frl_metrics_t *m = frl_metrics_new();
  int id;
  assert_int_equal(frl_metrics_counter(m, "x_total", "Help with \\ backslash\nand \"quotes\".",
                                       FRL_LABELS("actor", "kind"), &id), 0);
  /* A labelled family shows no sample until a series exists. */
  expect_text(m, "# HELP x_total Help with \\\\ backslash\\nand \"quotes\".\n"
                 "# TYPE x_total counter\n");
  assert_int_equal(frl_metrics_set(m, id, FRL_LABELS("a\\b", "say \"hi\"\nbye"), 3), 0);
  assert_int_equal(frl_metrics_set(m, id, FRL_LABELS("plain", ""), 1), 0);
  assert_int_equal(frl_metrics_add(m, id, FRL_LABELS("a\\b", "say \"hi\"\nbye"), 2), 0);
  /* UTF-8 passes; a lone 0xff and a truncated sequence become U+FFFD each. */
  assert_int_equal(frl_metrics_set(m, id, FRL_LABELS("r\xc3\xb6" "bot", "bad\xff" "x\xe2\x82"), 7),
                   0);
  expect_text(m, "# HELP x_total Help with \\\\ backslash\\nand \"quotes\".\n"
                 "# TYPE x_total counter\n"
                 "x_total{actor=\"a\\\\b\",kind=\"say \\\"hi\\\"\\nbye\"} 5\n"
                 "x_total{actor=\"plain\",kind=\"\"} 1\n"
                 "x_total{actor=\"r\xc3\xb6" "bot\",kind=\"bad\xef\xbf\xbdx\xef\xbf\xbd\xef\xbf\xbd\"} 7\n");
  /* Clearing drops the series but keeps the family. */
  assert_int_equal(frl_metrics_clear(m, id), 0);
  assert_int_equal(frl_metrics_set(m, id, FRL_LABELS("new", "k"), 1), 0);
  expect_text(m, "# HELP x_total Help with \\\\ backslash\\nand \"quotes\".\n"
                 "# TYPE x_total counter\n"
                 "x_total{actor=\"new\",kind=\"k\"} 1\n");
  frl_metrics_destroy(&m);
}

static void test_values(void **state) {
  (void)state;
  struct {
    double v;
    const char *want;
  } cases[] = {
      {0, "0"},
      {-0.0, "-0"},
      {1, "1"},
      {-42, "-42"},
      {0.1, "0.1"},
      {1.0 / 3.0, "0.3333333333333333"},
      {2.5e-7, "2.5e-07"},
      {9007199254740992.0, "9007199254740992"},
      {1e300, "1e+300"},
      {0.1 + 0.2, "0.30000000000000004"},
      {123456.789, "123456.789"},
      {NAN, "NaN"},
      {INFINITY, "+Inf"},
      {-INFINITY, "-Inf"},
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(cases); i++) {
    char out[32];
    frl_metrics_format_value(cases[i].v, out, sizeof out);
    assert_string_equal(out, cases[i].want);
    if (isfinite(cases[i].v)) assert_true(strtod(out, NULL) == cases[i].v);
  }
  frl_metrics_t *m = frl_metrics_new();
  int g;
  assert_int_equal(frl_metrics_gauge(m, "g", "", FRL_LABELS("k"), &g), 0);
  assert_int_equal(frl_metrics_set(m, g, FRL_LABELS("nan"), NAN), 0);
  assert_int_equal(frl_metrics_set(m, g, FRL_LABELS("inf"), -INFINITY), 0);
  /* An empty help writes no HELP line. */
  expect_text(m, "# TYPE g gauge\n"
                 "g{k=\"nan\"} NaN\n"
                 "g{k=\"inf\"} -Inf\n");
  frl_metrics_destroy(&m);
}

static void test_histogram(void **state) {
  (void)state;
  frl_metrics_t *m = frl_metrics_new();
  int h, hl;
  const double b[] = {10, 100, 500};
  assert_int_equal(frl_metrics_family(m, "len", FRL_METRIC_HISTOGRAM, "Episode length.", NULL, b,
                                      3, &h), 0);
  assert_int_equal(frl_metrics_family(m, "lat_seconds", FRL_METRIC_HISTOGRAM, "By role.",
                                      FRL_LABELS("role"), (const double[]){0.5}, 1, &hl), 0);
  const double xs[] = {5, 10, 11, 100, 499, 501, 1e9};
  for (size_t i = 0; i < FRL_ARRAY_LEN(xs); i++)
    assert_int_equal(frl_metrics_observe(m, h, NULL, xs[i]), 0);
  assert_int_equal(frl_metrics_observe(m, hl, FRL_LABELS("actor"), 0.25), 0);
  assert_int_equal(frl_metrics_observe(m, hl, FRL_LABELS("actor"), 0.75), 0);
  /* Buckets are cumulative (le includes equality); +Inf equals _count. */
  expect_text(m, "# HELP len Episode length.\n"
                 "# TYPE len histogram\n"
                 "len_bucket{le=\"10\"} 2\n"
                 "len_bucket{le=\"100\"} 4\n"
                 "len_bucket{le=\"500\"} 5\n"
                 "len_bucket{le=\"+Inf\"} 7\n"
                 "len_sum 1000001126\n"
                 "len_count 7\n"
                 "# HELP lat_seconds By role.\n"
                 "# TYPE lat_seconds histogram\n"
                 "lat_seconds_bucket{role=\"actor\",le=\"0.5\"} 1\n"
                 "lat_seconds_bucket{role=\"actor\",le=\"+Inf\"} 2\n"
                 "lat_seconds_sum{role=\"actor\"} 1\n"
                 "lat_seconds_count{role=\"actor\"} 2\n");
  /* Observing is for histograms only; setting is not for histograms. */
  int c;
  assert_int_equal(frl_metrics_counter(m, "c_total", "", NULL, &c), 0);
  assert_int_equal(frl_metrics_observe(m, c, NULL, 1), FRL_EUSAGE);
  assert_int_equal(frl_metrics_set(m, h, NULL, 1), FRL_EUSAGE);
  assert_int_equal(frl_metrics_clear(m, h), 0);
  char *text;
  size_t len;
  frl_metrics_render(m, &text, &len);
  assert_non_null(strstr(text, "len_bucket{le=\"+Inf\"} 0\nlen_sum 0\nlen_count 0\n"));
  free(text);
  frl_metrics_destroy(&m);
}

static void test_refusals(void **state) {
  (void)state;
  frl_metrics_t *m = frl_metrics_new();
  int id = 77;
  /* Names. */
  assert_int_equal(frl_metrics_counter(m, "", "", NULL, &id), FRL_EUSAGE);
  assert_int_equal(frl_metrics_counter(m, "9lives", "", NULL, &id), FRL_EUSAGE);
  assert_int_equal(frl_metrics_counter(m, "has-dash", "", NULL, &id), FRL_EUSAGE);
  assert_int_equal(frl_metrics_counter(m, "has space", "", NULL, &id), FRL_EUSAGE);
  assert_int_equal(frl_metrics_counter(m, "ok", "", FRL_LABELS("__reserved"), &id), FRL_EUSAGE);
  assert_int_equal(frl_metrics_counter(m, "ok", "", FRL_LABELS("a:b"), &id), FRL_EUSAGE);
  assert_int_equal(frl_metrics_counter(m, "ok", "", FRL_LABELS("a", "a"), &id), FRL_EUSAGE);
  assert_int_equal(frl_metrics_counter(m, "ok", "", FRL_LABELS("a", "b", "c", "d", "e"), &id),
                   FRL_EUSAGE);
  assert_int_equal(frl_metrics_family(m, "h", FRL_METRIC_HISTOGRAM, "", FRL_LABELS("le"),
                                      (const double[]){1}, 1, &id), FRL_EUSAGE);
  assert_int_equal(frl_metrics_family(m, "h", FRL_METRIC_HISTOGRAM, "", NULL,
                                      (const double[]){2, 1}, 2, &id), FRL_EUSAGE);
  assert_int_equal(frl_metrics_family(m, "h", FRL_METRIC_HISTOGRAM, "", NULL,
                                      (const double[]){1, NAN}, 2, &id), FRL_EUSAGE);
  assert_int_equal(frl_metrics_family(m, "h", FRL_METRIC_HISTOGRAM, "", NULL, NULL, 0, &id),
                   FRL_EUSAGE);
  assert_int_equal(id, 77); /* untouched on refusal */
  assert_int_equal(frl_metrics_counter(m, "ns:ok_total", "", FRL_LABELS("_x1"), &id), 0);
  assert_int_equal(id, 0);
  assert_int_equal(frl_metrics_gauge(m, "ns:ok_total", "", NULL, &id), FRL_EUSAGE); /* taken */
  /* Values and label counts. */
  assert_int_equal(frl_metrics_set(m, 0, FRL_LABELS("v"), -1), FRL_EUSAGE);
  assert_int_equal(frl_metrics_set(m, 0, FRL_LABELS("v"), NAN), FRL_EUSAGE);
  assert_int_equal(frl_metrics_add(m, 0, FRL_LABELS("v"), -1), FRL_EUSAGE);
  assert_int_equal(frl_metrics_set(m, 0, NULL, 1), FRL_EUSAGE);
  assert_int_equal(frl_metrics_set(m, 0, FRL_LABELS("v", "w"), 1), FRL_EUSAGE);
  assert_int_equal(frl_metrics_set(m, 5, FRL_LABELS("v"), 1), FRL_EUSAGE);
  assert_int_equal(frl_metrics_set(m, -1, NULL, 1), FRL_EUSAGE);
  assert_int_equal(frl_metrics_clear(m, 3), FRL_EUSAGE);
  expect_text(m, "# TYPE ns:ok_total counter\n");
  frl_metrics_destroy(&m);
}

/* Thousands of series through the hash index: each found again, in creation order. */
static void test_many_series(void **state) {
  (void)state;
  frl_metrics_t *m = frl_metrics_new();
  int id;
  assert_int_equal(frl_metrics_gauge(m, "per_actor", "", FRL_LABELS("actor", "host"), &id), 0);
  enum { N = 5000 };
  char a[32], h[32];
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < N; i++) {
      snprintf(a, sizeof a, "actor-%d", i);
      snprintf(h, sizeof h, "h%d", i % 7);
      assert_int_equal(frl_metrics_add(m, id, FRL_LABELS(a, h), i + 0.5), 0);
    }
  char *text;
  size_t len;
  assert_int_equal(frl_metrics_render(m, &text, &len), 0);
  const char *p = strchr(text, '\n') + 1;
  for (int i = 0; i < N; i++) {
    char want[96];
    snprintf(want, sizeof want, "per_actor{actor=\"actor-%d\",host=\"h%d\"} %d\n", i, i % 7,
             2 * i + 1);
    assert_memory_equal(p, want, strlen(want));
    p += strlen(want);
  }
  assert_int_equal(*p, '\0');
  free(text);
  frl_metrics_destroy(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counter_and_gauge), cmocka_unit_test(test_labels_and_escaping),
      cmocka_unit_test(test_values),            cmocka_unit_test(test_histogram),
      cmocka_unit_test(test_refusals),          cmocka_unit_test(test_many_series),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
