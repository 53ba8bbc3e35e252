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
  /* The sample target is target_at + spi * (inserts - anchor): anchor = min_size and
   * target_at = 0 until the ratio is changed, when both are moved to the current point. */
  uint64_t anchor;
  double target_at;
} frl_ratelimit_t;

void frl_ratelimit_init(frl_ratelimit_t *r, double spi, uint64_t min_size, double tolerance);
/* Changes the ratio at runtime (Control SetSamplesPerInsert). spi must be > 0. The new ratio
 * applies from now on: the target is rebased at the current insert count, so a change creates
 * neither a backlog of owed samples nor a long stall of inserts. */
void frl_ratelimit_set_spi(frl_ratelimit_t *r, double spi);
/* Whether n more transitions may be inserted now / n more drawn now. An insert that would
 * overshoot the tolerance is still admitted while the sampler has drawn at least its share
 * (samples >= target), since refusing it could only stall both sides; so the two can never
 * block each other as long as tolerance >= the sample batch, whatever the insert batch. */
bool frl_ratelimit_can_insert(const frl_ratelimit_t *r, uint64_t n);
bool frl_ratelimit_can_sample(const frl_ratelimit_t *r, uint64_t n);
/* How many transitions may be inserted before inserts would block (0 if blocked now). At least
 * 1 whenever can_insert(any n) holds, so a caller granting whole batches should grant one
 * batch whenever this is > 0. */
uint64_t frl_ratelimit_insert_room(const frl_ratelimit_t *r);
void frl_ratelimit_inserted(frl_ratelimit_t *r, uint64_t n);
void frl_ratelimit_sampled(frl_ratelimit_t *r, uint64_t n);

#endif
