/* ac_common.h: small helpers shared by the actor-critic learners (sac.c, td3.c); internal. */
#ifndef FRL_AC_COMMON_H
#define FRL_AC_COMMON_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "rng.h"

/* n standard normal floats from Box-Muller, using both values of each pair (frl_rng_normal
 * returns one per pair); an update draws thousands of them. */
static inline void frl__fill_normal(float *x, size_t n, frl_rng_t *rng) {
  for (size_t k = 0; k < n; k += 2) {
    double u1 = frl_rng_uniform(rng), u2 = frl_rng_uniform(rng);
    if (u1 < 1e-300) u1 = 1e-300;
    double r = sqrt(-2.0 * log(u1)), c = 6.283185307179586 * u2;
    x[k] = (float)(r * cos(c));
    if (k + 1 < n) x[k + 1] = (float)(r * sin(c));
  }
}

/* rows[r] = [x[r, 0..X), z[r, 0..Z)] for r < B: a critic's (obs, action) input. */
static inline void frl__concat_rows(float *rows, const float *x, int X, const float *z, int Z,
                                    int B) {
  for (int r = 0; r < B; r++) {
    float *d = rows + (size_t)r * (size_t)(X + Z);
    memcpy(d, x + (size_t)r * (size_t)X, (size_t)X * sizeof(float));
    memcpy(d + X, z + (size_t)r * (size_t)Z, (size_t)Z * sizeof(float));
  }
}

#endif
