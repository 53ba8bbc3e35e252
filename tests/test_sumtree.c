/* test_sumtree.c: the sum-tree's sampling distribution (chi-square against the priorities),
 * find() at boundaries and under rounding, the min-tree, and freedom from drift. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "rng.h"
#include "sumtree.h"

/* Upper 0.999 quantile of chi-square with k degrees of freedom by the Wilson-Hilferty cube
 * approximation (Wilson & Hilferty 1931), within 0.5% for k >= 30; z_0.999 = 3.0902. */
static double chi2_quantile_999(double k) {
  const double z = 3.090232306167813;
  double c = 2.0 / (9.0 * k);
  double t = 1.0 - c + z * sqrt(c);
  return k * t * t * t;
}

static void test_quantile_reference(void **state) {
  (void)state;
  /* Exact quantiles, by bisection on the regularized upper incomplete gamma function
   * Q(k/2, x/2) = 0.001: chi2_0.999(100) = 149.449, chi2_0.999(1000) = 1143.917. */
  assert_true(fabs(chi2_quantile_999(100) - 149.449) < 0.5);
  assert_true(fabs(chi2_quantile_999(1000) - 1143.92) < 1.0);
}

/* Draws N masses uniform in [0, total) and checks the slot frequencies against p_i / total
 * with Pearson's chi-square; zero-priority slots must never come out. The same counts tested
 * against a uniform expectation must fail, which shows the test can tell the difference. */
static void test_distribution_chi_square(void **state) {
  (void)state;
  const uint32_t C = 1000; /* not a power of two: the padded leaves must stay unused */
  const int N = 400000;
  frl_sumtree_t *t = frl_sumtree_new(C);
  double *p = calloc(C, sizeof *p);
  long *count = calloc(C, sizeof *count);
  frl_rng_t rng;
  frl_rng_seed(&rng, 1);
  uint32_t nonzero = 0;
  for (uint32_t i = 0; i < C; i++) {
    p[i] = (i % 10 == 3) ? 0.0 : 0.1 + frl_rng_uniform(&rng); /* every tenth slot empty */
    frl_sumtree_set(t, i, p[i]);
    if (p[i] > 0) nonzero++;
  }
  double total = 0;
  for (uint32_t i = 0; i < C; i++) total += p[i];
  assert_true(fabs(frl_sumtree_total(t) - total) < 1e-9 * total);
  for (int k = 0; k < N; k++) {
    uint32_t slot = frl_sumtree_find(t, frl_rng_uniform(&rng) * frl_sumtree_total(t));
    assert_true(slot < C);
    count[slot]++;
  }
  double chi2 = 0, chi2_uniform = 0;
  for (uint32_t i = 0; i < C; i++) {
    if (p[i] == 0) {
      assert_int_equal(count[i], 0);
      continue;
    }
    double e = N * p[i] / total, eu = (double)N / nonzero;
    chi2 += (count[i] - e) * (count[i] - e) / e;
    chi2_uniform += (count[i] - eu) * (count[i] - eu) / eu;
  }
  double bound = chi2_quantile_999(nonzero - 1);
  print_message("chi2 %.1f (uniform hypothesis %.1f), 0.999 quantile %.1f, dof %u\n", chi2,
                chi2_uniform, bound, nonzero - 1);
  assert_true(chi2 < bound);
  assert_true(chi2_uniform > bound);
  free(count);
  free(p);
  frl_sumtree_destroy(&t);
  assert_null(t);
}

/* The batched walk must return exactly what single finds return. */
static void test_find_batch_matches_find(void **state) {
  (void)state;
  const uint32_t C = 777;
  frl_sumtree_t *t = frl_sumtree_new(C);
  frl_rng_t rng;
  frl_rng_seed(&rng, 7);
  for (uint32_t i = 0; i < C; i++)
    frl_sumtree_set(t, i, (i % 5 == 0) ? 0.0 : frl_rng_uniform(&rng));
  enum { B = 300 };
  double mass[B], copy[B];
  uint32_t slot[B];
  for (int j = 0; j < B; j++) mass[j] = copy[j] = frl_rng_uniform(&rng) * frl_sumtree_total(t);
  mass[0] = copy[0] = 0.0;
  mass[1] = copy[1] = nextafter(frl_sumtree_total(t), 0.0);
  frl_sumtree_find_batch(t, mass, slot, B);
  for (int j = 0; j < B; j++) assert_int_equal(slot[j], frl_sumtree_find(t, copy[j]));
  frl_sumtree_destroy(&t);
}

static void test_find_edges(void **state) {
  (void)state;
  frl_sumtree_t *t = frl_sumtree_new(5);
  assert_int_equal(frl_sumtree_capacity(t), 5);
  assert_true(frl_sumtree_total(t) == 0.0);
  /* priorities 0, 1, 0, 2, 4: intervals [0,1) -> 1, [1,3) -> 3, [3,7) -> 4 */
  frl_sumtree_set(t, 1, 1.0);
  frl_sumtree_set(t, 3, 2.0);
  frl_sumtree_set(t, 4, 4.0);
  assert_true(frl_sumtree_total(t) == 7.0);
  assert_int_equal(frl_sumtree_find(t, 0.0), 1);
  assert_int_equal(frl_sumtree_find(t, 0.999), 1);
  assert_int_equal(frl_sumtree_find(t, 1.0), 3); /* intervals are half-open */
  assert_int_equal(frl_sumtree_find(t, 2.999), 3);
  assert_int_equal(frl_sumtree_find(t, 3.0), 4);
  assert_int_equal(frl_sumtree_find(t, nextafter(7.0, 0.0)), 4);
  /* Out of contract but reachable through rounding: mass == total must still give a
   * non-empty slot, the last one. */
  assert_int_equal(frl_sumtree_find(t, 7.0), 4);
  assert_int_equal(frl_sumtree_find(t, 7.5), 4);
  /* Emptying the last slot: masses at or past the end fall back to the last non-empty one. */
  frl_sumtree_set(t, 4, 0.0);
  assert_true(frl_sumtree_total(t) == 3.0);
  assert_int_equal(frl_sumtree_find(t, 3.0), 3);
  assert_int_equal(frl_sumtree_find(t, 100.0), 3);
  assert_true(frl_sumtree_get(t, 3) == 2.0);
  frl_sumtree_destroy(&t);

  /* A single slot. */
  t = frl_sumtree_new(1);
  frl_sumtree_set(t, 0, 0.5);
  assert_int_equal(frl_sumtree_find(t, 0.0), 0);
  assert_int_equal(frl_sumtree_find(t, 0.5), 0);
  assert_true(frl_sumtree_min(t) == 0.5);
  frl_sumtree_destroy(&t);
  frl_sumtree_destroy(&t); /* NULL-safe */
}

static void test_min_tree(void **state) {
  (void)state;
  frl_sumtree_t *t = frl_sumtree_new(100);
  assert_true(frl_sumtree_min(t) == 0.0); /* empty */
  frl_sumtree_set(t, 10, 3.0);
  frl_sumtree_set(t, 20, 0.25);
  frl_sumtree_set(t, 99, 7.0);
  assert_true(frl_sumtree_min(t) == 0.25);
  frl_sumtree_set(t, 5, 0.0); /* zero is "absent", not a minimum */
  assert_true(frl_sumtree_min(t) == 0.25);
  frl_sumtree_set(t, 20, 0.0);
  assert_true(frl_sumtree_min(t) == 3.0);
  frl_sumtree_set(t, 10, 8.0);
  assert_true(frl_sumtree_min(t) == 7.0);
  frl_sumtree_set(t, 10, 0.0);
  frl_sumtree_set(t, 99, 0.0);
  assert_true(frl_sumtree_min(t) == 0.0);
  assert_true(frl_sumtree_total(t) == 0.0);
  frl_sumtree_destroy(&t);
}

/* Many updates spanning 24 orders of magnitude, then the tree is emptied but for one slot:
 * the total must be exactly that slot's priority (a delta-updated tree would keep a residue),
 * and find() must never return an empty slot even for masses at the very top of the range. */
static void test_no_drift(void **state) {
  (void)state;
  const uint32_t C = 4096;
  frl_sumtree_t *t = frl_sumtree_new(C);
  frl_rng_t rng;
  frl_rng_seed(&rng, 99);
  for (int k = 0; k < 200000; k++) {
    uint32_t slot = frl_rng_below(&rng, C);
    double p = pow(10.0, -12.0 + 24.0 * frl_rng_uniform(&rng));
    if (frl_rng_below(&rng, 4) == 0) p = 0.0;
    frl_sumtree_set(t, slot, p);
  }
  for (int k = 0; k < 20000; k++) {
    double total = frl_sumtree_total(t);
    double mass = k == 0 ? nextafter(total, 0.0) : frl_rng_uniform(&rng) * total;
    uint32_t slot = frl_sumtree_find(t, mass);
    assert_true(frl_sumtree_get(t, slot) > 0.0);
  }
  for (uint32_t i = 0; i < C; i++) frl_sumtree_set(t, i, i == 1234 ? 1e-9 : 0.0);
  assert_true(frl_sumtree_total(t) == 1e-9);
  assert_true(frl_sumtree_min(t) == 1e-9);
  assert_int_equal(frl_sumtree_find(t, 0.0), 1234);
  assert_int_equal(frl_sumtree_find(t, 1.0), 1234);
  frl_sumtree_destroy(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quantile_reference),
      cmocka_unit_test(test_distribution_chi_square),
      cmocka_unit_test(test_find_batch_matches_find),
      cmocka_unit_test(test_find_edges),
      cmocka_unit_test(test_min_tree),
      cmocka_unit_test(test_no_drift),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
