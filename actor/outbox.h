/* outbox.h: an actor's encoded ExperienceBatches not yet acknowledged by the learner, kept for
 * resending after a timeout or a reconnect (at-least-once delivery). Bounded by count and
 * bytes; a full outbox refuses new batches and the caller counts what it sheds. */
#ifndef FRL_OUTBOX_H
#define FRL_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

typedef struct frl_outbox frl_outbox_t;

#define FRL_OUTBOX_MAX_BATCHES 65536

/* Creates an empty outbox holding at most max_batches batches (1..FRL_OUTBOX_MAX_BATCHES) and
 * max_bytes payload bytes in total (> 0). Returns NULL only for arguments outside those ranges.
 * Batches are kept in seq order; ack and push are O(log n) search plus an O(n) shift, next_due
 * is O(n), which is cheap at the sizes an actor uses (hundreds). */
frl_outbox_t *frl_outbox_new(uint32_t max_batches, size_t max_bytes);
/* Frees the outbox and every batch still in it. */
void frl_outbox_destroy(frl_outbox_t **self_p);
/* Copies buf as a never-sent batch. Returns 0, FRL_EFULL when it would exceed the count or the
 * byte bound (a batch larger than max_bytes never fits), or FRL_EUSAGE when seq is already
 * held (seq must be new); nothing is stored on error. */
int frl_outbox_push(frl_outbox_t *o, uint64_t seq, const void *buf, size_t len);
/* Removes seq if present; returns 0 or FRL_ENOTFOUND. */
int frl_outbox_ack(frl_outbox_t *o, uint64_t seq);
/* Finds the oldest batch that was never sent or was last sent at or before now - timeout,
 * marks it sent at now and returns it through seq/buf/len (valid until it is acked or the
 * outbox changes). Returns 0, or FRL_ENOTFOUND when nothing is due. */
int frl_outbox_next_due(frl_outbox_t *o, double now, double timeout, uint64_t *seq,
                        const void **buf, size_t *len);
/* Postpones seq's resend: treat it as sent at now (e.g. after a Busy ack). Unknown seq: no-op. */
void frl_outbox_defer(frl_outbox_t *o, uint64_t seq, double now);
/* A Busy ack for seq: flow control (the broker's queue, this actor's rate limit, a store
 * refusing writes) wants the batch soon, so its resend comes after FRL_OUTBOX_BUSY_RETRY_S (or
 * timeout, if shorter) rather than after the full timeout meant for a lost message. */
#define FRL_OUTBOX_BUSY_RETRY_S 0.25
void frl_outbox_busy(frl_outbox_t *o, uint64_t seq, double now, double timeout);
/* Marks every batch unsent, so all are resent at once (after a reconnect). */
void frl_outbox_mark_all_unsent(frl_outbox_t *o);
/* Batches held, payload bytes held, and max_batches. */
uint32_t frl_outbox_depth(const frl_outbox_t *o);
size_t frl_outbox_bytes(const frl_outbox_t *o);
uint32_t frl_outbox_capacity(const frl_outbox_t *o);

#endif
