/* peer_limits.h: per-actor admission limits at the broker, so that one broken or hostile robot
 * cannot starve the others: a maximum message size, and two token buckets per actor (batches/s
 * and bytes/s). A batch over a rate is refused for now (the actor keeps it and resends: Busy);
 * a batch over the size limit can never pass (Rejected). The table of actors is bounded and
 * entries expire once idle, so memory does not grow with the names a peer invents.
 *
 * Every call takes the current time from the caller (seconds on any monotonic clock), so the
 * arithmetic is testable with hand values. */
#ifndef FRL_PEER_LIMITS_H
#define FRL_PEER_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRL_PEER_LIMITS_NAME_MAX 64     /* actor names the broker accepts: 1-64 bytes */
#define FRL_PEER_LIMITS_REPORT_S 10.0   /* at most one report per actor per this long */

typedef struct {
  double rate_batches;      /* batches/s per actor; 0: no batch-rate limit */
  double rate_bytes;        /* bytes/s per actor; 0: no byte-rate limit */
  double burst_s;           /* bucket depth, in seconds of each rate (> 0) */
  uint64_t max_batch_bytes; /* larger messages are refused outright */
  int max_actors;           /* table capacity (> 0) */
  double idle_s;            /* entries untouched this long are dropped (0: 300 s) */
} frl_peer_limits_config_t;

typedef enum {
  FRL_LIMIT_OK = 0,
  FRL_LIMIT_SIZE,        /* over max_batch_bytes, or a name too long to track: Rejected */
  FRL_LIMIT_BATCH_RATE,  /* over rate_batches: Busy */
  FRL_LIMIT_BYTE_RATE,   /* over rate_bytes: Busy */
  FRL_LIMIT_TABLE_FULL,  /* max_actors others active: Busy */
} frl_limit_verdict_t;

/* What frl_peer_limits_admit decided, with a reason naming the limit and the flag that sets it. */
typedef struct {
  frl_limit_verdict_t verdict;
  double retry_s;     /* rate verdicts: when this batch would fit (0 otherwise) */
  bool report;        /* log this one: true at most once per FRL_PEER_LIMITS_REPORT_S per actor
                         and kind (size, rate) */
  uint64_t refused;   /* refusals for this actor so far (including this one) */
  char reason[200];
} frl_limit_result_t;

/* Counters of one actor, kept while its entry lives. */
typedef struct {
  uint64_t admitted, admitted_bytes;
  uint64_t refused_rate, refused_size;
} frl_peer_limits_counts_t;

typedef struct frl_peer_limits frl_peer_limits_t;

/* Creates a table; a NULL or invalid config (negative rates, burst <= 0, max_actors <= 0,
 * max_batch_bytes 0) is refused with FRL_EUSAGE. Returns 0 with *out owned by the caller. */
int frl_peer_limits_new(const frl_peer_limits_config_t *cfg, frl_peer_limits_t **out);
/* Frees the table and sets *self_p to NULL; NULL is fine. */
void frl_peer_limits_destroy(frl_peer_limits_t **self_p);

/* Decides whether `actor` may send a batch of `bytes` at time `now`. Only an admitted batch
 * takes tokens (one batch and `bytes` bytes), so an actor that keeps retrying is served as soon
 * as it is back under its rates. Both buckets start full, hold at most max(1, rate * burst)
 * batches and max(max_batch_bytes, rate * burst) bytes (so every admissible batch fits), and
 * refill at their rates; a clock that steps back refills nothing. Returns the verdict (also in
 * out->verdict when out is not NULL). */
frl_limit_verdict_t frl_peer_limits_admit(frl_peer_limits_t *self, const char *actor, size_t bytes,
                                     double now, frl_limit_result_t *out);

/* Drops entries idle longer than the idle time (and at least the time their buckets take to
 * refill, so a dropped actor returns to exactly the full buckets it would have had). Returns
 * how many were dropped. */
int frl_peer_limits_expire(frl_peer_limits_t *self, double now);

/* Counters for one actor; FRL_ENOTFOUND when it has no entry. */
int frl_peer_limits_counts(const frl_peer_limits_t *self, const char *actor, frl_peer_limits_counts_t *out);
/* Entries in the table now. */
int frl_peer_limits_size(const frl_peer_limits_t *self);
/* Totals since creation: admitted, refused for rate, refused for size or name, refused for a
 * full table (any pointer may be NULL). */
void frl_peer_limits_totals(const frl_peer_limits_t *self, uint64_t *admitted, uint64_t *rate,
                       uint64_t *size, uint64_t *full);

#endif
