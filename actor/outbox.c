/* outbox.c: the actor's unacknowledged batches, an array kept sorted by seq, each with the time
 * it was last sent, so the oldest due batch is resent first. */
#include "outbox.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

typedef struct {
  uint64_t seq;
  void *buf;
  size_t len;
  double sent_at;  /* valid when sent */
  bool sent;
} entry_t;

struct frl_outbox {
  entry_t *items;  /* [max_batches], items[0..depth) sorted by seq ascending */
  uint32_t depth, max_batches;
  size_t bytes, max_bytes;
};

frl_outbox_t *frl_outbox_new(uint32_t max_batches, size_t max_bytes) {
  if (max_batches < 1 || max_batches > FRL_OUTBOX_MAX_BATCHES || max_bytes < 1) return NULL;
  frl_outbox_t *o = frl_xcalloc(1, sizeof *o);
  o->items = frl_xcalloc(max_batches, sizeof *o->items);
  o->max_batches = max_batches;
  o->max_bytes = max_bytes;
  return o;
}

void frl_outbox_destroy(frl_outbox_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_outbox_t *o = *self_p;
  for (uint32_t i = 0; i < o->depth; i++) free(o->items[i].buf);
  free(o->items);
  free(o);
  *self_p = NULL;
}

/* Index of the first entry with seq >= key (depth if none). */
static uint32_t lower_bound(const frl_outbox_t *o, uint64_t key) {
  uint32_t lo = 0, hi = o->depth;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (o->items[mid].seq < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static entry_t *find(frl_outbox_t *o, uint64_t seq) {
  uint32_t i = lower_bound(o, seq);
  return i < o->depth && o->items[i].seq == seq ? &o->items[i] : NULL;
}

int frl_outbox_push(frl_outbox_t *o, uint64_t seq, const void *buf, size_t len) {
  if (o->depth >= o->max_batches || len > o->max_bytes - o->bytes) return FRL_EFULL;
  /* Sequence numbers normally grow, so the common case appends without a search. */
  uint32_t i = o->depth;
  if (o->depth > 0 && o->items[o->depth - 1].seq >= seq) {
    i = lower_bound(o, seq);
    if (o->items[i].seq == seq) return FRL_EUSAGE;
    memmove(&o->items[i + 1], &o->items[i], (o->depth - i) * sizeof *o->items);
  }
  entry_t *e = &o->items[i];
  e->seq = seq;
  e->buf = frl_xmalloc(len);
  if (len > 0) memcpy(e->buf, buf, len);
  e->len = len;
  e->sent = false;
  e->sent_at = 0.0;
  o->depth++;
  o->bytes += len;
  return 0;
}

int frl_outbox_ack(frl_outbox_t *o, uint64_t seq) {
  entry_t *e = find(o, seq);
  if (!e) return FRL_ENOTFOUND;
  uint32_t i = (uint32_t)(e - o->items);
  o->bytes -= e->len;
  free(e->buf);
  memmove(&o->items[i], &o->items[i + 1], (o->depth - i - 1) * sizeof *o->items);
  o->depth--;
  return 0;
}

int frl_outbox_next_due(frl_outbox_t *o, double now, double timeout, uint64_t *seq,
                        const void **buf, size_t *len) {
  for (uint32_t i = 0; i < o->depth; i++) {
    entry_t *e = &o->items[i];
    if (e->sent && e->sent_at > now - timeout) continue;
    e->sent = true;
    e->sent_at = now;
    *seq = e->seq;
    *buf = e->buf;
    *len = e->len;
    return 0;
  }
  return FRL_ENOTFOUND;
}

void frl_outbox_defer(frl_outbox_t *o, uint64_t seq, double now) {
  entry_t *e = find(o, seq);
  if (!e) return;
  e->sent = true;
  e->sent_at = now;
}

void frl_outbox_busy(frl_outbox_t *o, uint64_t seq, double now, double timeout) {
  const double retry = timeout < FRL_OUTBOX_BUSY_RETRY_S ? timeout : FRL_OUTBOX_BUSY_RETRY_S;
  frl_outbox_defer(o, seq, now - timeout + retry);
}

void frl_outbox_mark_all_unsent(frl_outbox_t *o) {
  for (uint32_t i = 0; i < o->depth; i++) o->items[i].sent = false;
}

uint32_t frl_outbox_depth(const frl_outbox_t *o) { return o->depth; }
size_t frl_outbox_bytes(const frl_outbox_t *o) { return o->bytes; }
uint32_t frl_outbox_capacity(const frl_outbox_t *o) { return o->max_batches; }
