/* ratelimit.h: samples-per-insert rate limiter (as in Reverb's SampleToInsertRatio).
 * Keeps samples ≈ spi * (inserts - min_size) within ±tolerance samples, so that the replay
 * ratio does not depend on how fast actors or learner happen to run. */
#ifndef FRL_RATELIMIT_H
#define FRL_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
  double spi;          /* samples (transitions drawn) per inserted transition, > 0 */
  uint64_t min_size;   /* no sampling until this many inserts */
  double tolerance;    /* allowed drift in samples, >= 2*batch recommended */
  uint64_t inserts;
  uint64_t samples;
} frl_ratelimit_t;

void frl_ratelimit_init(frl_ratelimit_t *r, double spi, uint64_t min_size, double tolerance);
/* Changes the ratio at runtime (Control SetSamplesPerInsert). spi must be > 0. */
void frl_ratelimit_set_spi(frl_ratelimit_t *r, double spi);
/* Whether n more transitions may be inserted now / n more drawn now. */
bool frl_ratelimit_can_insert(const frl_ratelimit_t *r, uint64_t n);
bool frl_ratelimit_can_sample(const frl_ratelimit_t *r, uint64_t n);
/* How many transitions may be inserted before inserts would block (0 if blocked now). */
uint64_t frl_ratelimit_insert_room(const frl_ratelimit_t *r);
void frl_ratelimit_inserted(frl_ratelimit_t *r, uint64_t n);
void frl_ratelimit_sampled(frl_ratelimit_t *r, uint64_t n);

#endif
