/* ratelimit.c: samples-per-insert flow control between actors (inserts) and the learner
 * (samples), after Reverb's SampleToInsertRatio (Cassirer et al. 2021).
 *
 * The sampler is owed target = spi * (inserts - min_size) samples (with the rebasing of
 * set_spi, target_at + spi * (inserts - anchor)). Sampling n is allowed once min_size items
 * were inserted and samples + n <= target + tolerance; inserting n is allowed while
 * target(inserts + n) - samples <= tolerance, or while samples >= target (see the header on why
 * that second clause keeps the two sides from deadlocking). All arithmetic is in doubles:
 * counts stay far below 2^53 in any run. */
#include "ratelimit.h"

#include <assert.h>
#include <math.h>

static double target(const frl_ratelimit_t *r, uint64_t inserts) {
  return r->target_at + r->spi * ((double)inserts - (double)r->anchor);
}

/* The learner has drawn everything it is owed (or we are still filling up). */
static bool sampler_caught_up(const frl_ratelimit_t *r) {
  return (double)r->samples >= target(r, r->inserts);
}

/* Largest n with target(inserts + n) - samples <= tolerance, 0 if none. */
static uint64_t strict_room(const frl_ratelimit_t *r) {
  double slack = r->tolerance - (target(r, r->inserts) - (double)r->samples);
  if (!(slack >= 0.0)) return 0;
  double n = floor(slack / r->spi);
  if (n >= 18446744073709551615.0) return UINT64_MAX;
  return (uint64_t)n;
}

void frl_ratelimit_init(frl_ratelimit_t *r, double spi, uint64_t min_size, double tolerance) {
  assert(spi > 0.0 && tolerance >= 0.0);
  r->spi = spi;
  r->min_size = min_size;
  r->tolerance = tolerance;
  r->inserts = 0;
  r->samples = 0;
  r->anchor = min_size;
  r->target_at = 0.0;
}

void frl_ratelimit_set_spi(frl_ratelimit_t *r, double spi) {
  assert(spi > 0.0);
  /* Before min_size is reached the target is still "spi * (inserts - min_size)" under the new
   * ratio; after it, freeze what is owed so far and continue with the new slope. */
  if (r->inserts > r->anchor) {
    r->target_at = target(r, r->inserts);
    r->anchor = r->inserts;
  }
  r->spi = spi;
}

bool frl_ratelimit_can_insert(const frl_ratelimit_t *r, uint64_t n) {
  return sampler_caught_up(r) || n <= strict_room(r);
}

bool frl_ratelimit_can_sample(const frl_ratelimit_t *r, uint64_t n) {
  if (r->inserts < r->min_size) return false;
  return (double)r->samples + (double)n <= target(r, r->inserts) + r->tolerance;
}

uint64_t frl_ratelimit_insert_room(const frl_ratelimit_t *r) {
  uint64_t room = strict_room(r);
  if (room == 0 && sampler_caught_up(r)) return 1;
  return room;
}

void frl_ratelimit_inserted(frl_ratelimit_t *r, uint64_t n) { r->inserts += n; }

void frl_ratelimit_sampled(frl_ratelimit_t *r, uint64_t n) { r->samples += n; }
