/* numeric_check.h: comparison and fill helpers shared by the numeric cmocka tests (include
 * after <cmocka.h>). */
#ifndef FRL_TESTS_NUMERIC_CHECK_H
#define FRL_TESTS_NUMERIC_CHECK_H

#include <math.h>
#include <stddef.h>

#include "rng.h"

/* |got - want| <= atol + rtol |want|, with a message naming the element on failure. */
static inline void expect_close(const char *what, int k, double got, double want, double atol,
                                double rtol) {
  double err = fabs(got - want);
  if (!(err <= atol + rtol * fabs(want))) {
    fail_msg("%s[%d]: got %.9g, want %.9g (err %.3g > %.3g)", what, k, got, want, err,
             atol + rtol * fabs(want));
  }
}

/* x[k] uniform in [lo, hi). */
static inline void fill_uniform(float *x, size_t n, double lo, double hi, frl_rng_t *rng) {
  for (size_t k = 0; k < n; k++) x[k] = (float)(lo + (hi - lo) * frl_rng_uniform(rng));
}

#endif
