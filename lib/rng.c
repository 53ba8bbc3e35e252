/* rng.c: xoshiro256** (Blackman & Vigna 2018) seeded by splitmix64. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void frl_rng_seed(frl_rng_t *rng, uint64_t seed) {
  for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t frl_rng_next(frl_rng_t *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double frl_rng_uniform(frl_rng_t *rng) { return (double)(frl_rng_next(rng) >> 11) * 0x1.0p-53; }

uint32_t frl_rng_below(frl_rng_t *rng, uint32_t n) {
  /* Lemire's multiply-shift; the bias for n << 2^32 is negligible for RL sampling. */
  return (uint32_t)(((frl_rng_next(rng) >> 32) * (uint64_t)n) >> 32);
}

double frl_rng_normal(frl_rng_t *rng) {
  double u1 = frl_rng_uniform(rng), u2 = frl_rng_uniform(rng);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
