/* outbox.h: an actor's encoded ExperienceBatches not yet acknowledged by the learner, kept for
 * resending after a timeout or a reconnect (at-least-once delivery). Bounded by count and
 * bytes; a full outbox refuses new batches and the caller counts what it sheds. */
#ifndef FRL_OUTBOX_H
#define FRL_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

typedef struct frl_outbox frl_outbox_t;

frl_outbox_t *frl_outbox_new(uint32_t max_batches, size_t max_bytes);
void frl_outbox_destroy(frl_outbox_t **self_p);
/* Copies buf. Returns 0 or FRL_EFULL (nothing stored). seq must be new. */
int frl_outbox_push(frl_outbox_t *o, uint64_t seq, const void *buf, size_t len);
/* Removes seq if present; returns 0 or FRL_ENOTFOUND. */
int frl_outbox_ack(frl_outbox_t *o, uint64_t seq);
/* Finds the oldest batch that was never sent or was last sent at or before now - timeout,
 * marks it sent at now and returns it through seq/buf/len (valid until it is acked or the
 * outbox changes). Returns 0, or FRL_ENOTFOUND when nothing is due. */
int frl_outbox_next_due(frl_outbox_t *o, double now, double timeout, uint64_t *seq,
                        const void **buf, size_t *len);
/* Postpones seq's resend: treat it as sent at now (e.g. after a Busy ack). */
void frl_outbox_defer(frl_outbox_t *o, uint64_t seq, double now);
/* Marks every batch unsent, so all are resent at once (after a reconnect). */
void frl_outbox_mark_all_unsent(frl_outbox_t *o);
uint32_t frl_outbox_depth(const frl_outbox_t *o);
size_t frl_outbox_bytes(const frl_outbox_t *o);
uint32_t frl_outbox_capacity(const frl_outbox_t *o);

#endif
