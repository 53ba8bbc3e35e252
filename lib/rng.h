/* rng.h: xoshiro256** pseudo-random numbers; small, fast, seedable, state is 32 bytes. */
#ifndef FRL_RNG_H
#define FRL_RNG_H

#include <stdint.h>

typedef struct {
  uint64_t s[4];
} frl_rng_t;

/* Seeds the generator from one 64-bit value through splitmix64. */
void frl_rng_seed(frl_rng_t *rng, uint64_t seed);
uint64_t frl_rng_next(frl_rng_t *rng);
/* Uniform in [0, 1). */
double frl_rng_uniform(frl_rng_t *rng);
/* Uniform integer in [0, n); n > 0. */
uint32_t frl_rng_below(frl_rng_t *rng, uint32_t n);
/* Standard normal (Box-Muller). */
double frl_rng_normal(frl_rng_t *rng);

#endif
