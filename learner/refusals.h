/* refusals.h: which of the batches the learner refuses as invalid get a log line. Every refusal
 * is counted (in all, and per actor on /metrics and the status page), and its reason goes back
 * to the sender in the Ack; the log names the actor, the batch and the reason, but an actor
 * that keeps sending broken batches, or a peer sending them under many names, must not be able
 * to flood it. So a line is written at most once per FRL_REFUSALS_REPORT_S per actor and field
 * (the reason up to its first '[' or ':', e.g. "ExperienceBatch.obs"), saying how many like it
 * went unlogged since, and at most FRL_REFUSALS_LINES lines in all per FRL_REFUSALS_REPORT_S.
 *
 * The state is a fixed-size table (no allocation; all zero is a valid empty table). Every call
 * takes the current time from the caller (seconds on any monotonic clock), so the arithmetic
 * is testable with hand values. */
#ifndef FRL_REFUSALS_H
#define FRL_REFUSALS_H

#include <stdbool.h>
#include <stdint.h>

#define FRL_REFUSALS_REPORT_S 10.0 /* at most one line per actor and field per this long */
#define FRL_REFUSALS_LINES 10      /* and at most this many lines in all per that long */
#define FRL_REFUSALS_SLOTS 256     /* (actor, field) pairs remembered; a pair that loses its
                                      slot to another is reported afresh, within the cap */

typedef struct {
  uint64_t key;     /* hash of (actor, field); 0: empty */
  double at;        /* when its last line was written */
  uint64_t repeats; /* refusals of it held back since */
} frl_refusal_slot_t;

typedef struct {
  frl_refusal_slot_t slot[FRL_REFUSALS_SLOTS];
  double window_start;
  int lines;         /* lines written since window_start */
  uint64_t unlogged; /* refusals held back by the line cap since the last line */
} frl_refusals_t;

/* What a line for this refusal should add, when one is due. */
typedef struct {
  uint64_t repeats;  /* refusals of this actor and field not logged since its last line */
  uint64_t unlogged; /* refusals of any actor not logged over the line cap since the last line */
} frl_refusal_report_t;

/* Notes one refusal of a batch from `actor` (NULL or "" count as one unnamed actor) for
 * `reason`. Returns true when it should be logged, with *out filled; false when it is only
 * counted. */
bool frl_refusals_note(frl_refusals_t *r, const char *actor, const char *reason, double now,
                       frl_refusal_report_t *out);

#endif
