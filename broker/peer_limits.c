/* peer_limits.c: per-actor token buckets in an open-addressing hash table (linear probing,
 * backward-shift deletion, so no tombstones accumulate as entries expire).
 *
 * A token bucket of rate r and depth c holds t tokens; after dt seconds it holds
 * min(c, t + r * dt), and a request of cost k passes when t >= k, leaving t - k. Over any
 * interval of length T an actor is therefore admitted at most c + r * T batches and bytes:
 * bursts up to the depth, the rate on average. Refused requests take nothing, which is what
 * lets an actor that resends after a Busy get through as soon as it is back under its rate. */
#include "peer_limits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define DEFAULT_IDLE_S 300.0

typedef struct {
  bool used;
  uint64_t hash;
  char name[FRL_PEER_LIMITS_NAME_MAX + 1];
  double batches, bytes; /* tokens */
  double refilled_at;    /* the time the tokens were brought up to date */
  double seen_at;        /* last request */
  double reported_at[2]; /* last refusal the caller was told to report: size, rate */
  bool reported[2];
  uint64_t refused;
  frl_peer_limits_counts_t counts;
} entry_t;

struct frl_peer_limits {
  frl_peer_limits_config_t cfg;
  double cap_batches, cap_bytes; /* bucket depths */
  double idle_s;                 /* expiry, at least the time to refill from empty */
  entry_t *slots;
  size_t n_slots; /* a power of two, at least twice max_actors */
  int size;
  uint64_t admitted, refused_rate, refused_size, refused_full;
};

int frl_peer_limits_new(const frl_peer_limits_config_t *cfg, frl_peer_limits_t **out) {
  if (!cfg || !out || !(cfg->rate_batches >= 0) || !(cfg->rate_bytes >= 0) ||
      !(cfg->burst_s > 0) || !isfinite(cfg->rate_batches) || !isfinite(cfg->rate_bytes) ||
      !isfinite(cfg->burst_s) || cfg->max_actors <= 0 || cfg->max_actors > (1 << 24) ||
      cfg->max_batch_bytes == 0 || !(cfg->idle_s >= 0))
    return FRL_EUSAGE;
  frl_peer_limits_t *self = frl_xcalloc(1, sizeof *self);
  self->cfg = *cfg;
  self->cap_batches = FRL_MAX(1.0, cfg->rate_batches * cfg->burst_s);
  self->cap_bytes = FRL_MAX((double)cfg->max_batch_bytes, cfg->rate_bytes * cfg->burst_s);
  double refill = 0;
  if (cfg->rate_batches > 0) refill = FRL_MAX(refill, self->cap_batches / cfg->rate_batches);
  if (cfg->rate_bytes > 0) refill = FRL_MAX(refill, self->cap_bytes / cfg->rate_bytes);
  self->idle_s = FRL_MAX(cfg->idle_s > 0 ? cfg->idle_s : DEFAULT_IDLE_S, refill);
  self->n_slots = 16;
  while (self->n_slots < 2 * (size_t)cfg->max_actors) self->n_slots *= 2;
  self->slots = frl_xcalloc(self->n_slots, sizeof *self->slots);
  *out = self;
  return 0;
}

void frl_peer_limits_destroy(frl_peer_limits_t **self_p) {
  if (!self_p || !*self_p) return;
  free((*self_p)->slots);
  free(*self_p);
  *self_p = NULL;
}

static uint64_t name_hash(const char *name, size_t len) {
  return frl_fnv1a64(name, len, FRL_FNV_SEED);
}

/* The slot holding name, or the empty slot where it would go. */
static size_t probe(const frl_peer_limits_t *self, const char *name, uint64_t h) {
  size_t mask = self->n_slots - 1, i = (size_t)h & mask;
  while (self->slots[i].used &&
         (self->slots[i].hash != h || strcmp(self->slots[i].name, name) != 0))
    i = (i + 1) & mask;
  return i;
}

/* Empties slot i and shifts later members of its probe run back, so every entry stays
 * reachable from its home slot without tombstones (Knuth 6.4, Algorithm R). */
static void remove_slot(frl_peer_limits_t *self, size_t i) {
  size_t mask = self->n_slots - 1, j = i;
  self->slots[i].used = false;
  for (;;) {
    j = (j + 1) & mask;
    if (!self->slots[j].used) break;
    size_t home = (size_t)self->slots[j].hash & mask;
    /* Entry j may move to the hole at i unless its home lies cyclically in (i, j]. */
    bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    self->slots[i] = self->slots[j];
    self->slots[j].used = false;
    i = j;
  }
  self->size--;
}

int frl_peer_limits_expire(frl_peer_limits_t *self, double now) {
  int dropped = 0;
  for (size_t i = 0; i < self->n_slots;) {
    entry_t *e = &self->slots[i];
    if (e->used && now - e->seen_at > self->idle_s) {
      remove_slot(self, i);
      dropped++;
      continue; /* slot i may now hold a shifted entry: look at it again */
    }
    i++;
  }
  return dropped;
}

static void refill(const frl_peer_limits_t *self, entry_t *e, double now) {
  double dt = now - e->refilled_at;
  if (!(dt > 0)) return; /* a clock that steps back (or stands still) adds nothing */
  e->batches = FRL_MIN(self->cap_batches, e->batches + self->cfg.rate_batches * dt);
  e->bytes = FRL_MIN(self->cap_bytes, e->bytes + self->cfg.rate_bytes * dt);
  e->refilled_at = now;
}

static frl_limit_verdict_t finish(frl_limit_result_t *out, frl_limit_verdict_t v) {
  if (out) out->verdict = v;
  return v;
}

/* Marks a refusal on e and decides whether the caller should log it; size and rate refusals
 * are reported separately, so a log shows each limit an actor runs into. */
static void refused(entry_t *e, int kind, double now, frl_limit_result_t *out) {
  e->refused++;
  bool report = !e->reported[kind] || now - e->reported_at[kind] >= FRL_PEER_LIMITS_REPORT_S;
  if (report) {
    e->reported[kind] = true;
    e->reported_at[kind] = now;
  }
  if (out) {
    out->report = report;
    out->refused = e->refused;
  }
}

frl_limit_verdict_t frl_peer_limits_admit(frl_peer_limits_t *self, const char *actor, size_t bytes,
                                     double now, frl_limit_result_t *out) {
  if (out) memset(out, 0, sizeof *out);
  size_t len = actor ? strnlen(actor, FRL_PEER_LIMITS_NAME_MAX + 1) : 0;
  if (len == 0 || len > FRL_PEER_LIMITS_NAME_MAX) {
    self->refused_size++;
    if (out) {
      out->report = true;
      snprintf(out->reason, sizeof out->reason,
               "actor name must be 1-%d bytes to be rate-limited", FRL_PEER_LIMITS_NAME_MAX);
    }
    return finish(out, FRL_LIMIT_SIZE);
  }
  uint64_t h = name_hash(actor, len);
  size_t i = probe(self, actor, h);
  entry_t *e = &self->slots[i];
  if (!e->used) {
    if (self->size >= self->cfg.max_actors && frl_peer_limits_expire(self, now) > 0) {
      i = probe(self, actor, h); /* expiry moved entries */
      e = &self->slots[i];
    }
    if (self->size >= self->cfg.max_actors) {
      self->refused_full++;
      if (out) {
        out->report = true;
        out->retry_s = 1.0;
        snprintf(out->reason, sizeof out->reason,
                 "the broker tracks at most %d actors' limits and all are active; retry later",
                 self->cfg.max_actors);
      }
      return finish(out, FRL_LIMIT_TABLE_FULL);
    }
    memset(e, 0, sizeof *e);
    e->used = true;
    e->hash = h;
    memcpy(e->name, actor, len);
    e->name[len] = '\0';
    e->batches = self->cap_batches;
    e->bytes = self->cap_bytes;
    e->refilled_at = now;
    self->size++;
  }
  e->seen_at = now;
  if ((uint64_t)bytes > self->cfg.max_batch_bytes) {
    e->counts.refused_size++;
    self->refused_size++;
    refused(e, 0, now, out);
    if (out)
      snprintf(out->reason, sizeof out->reason,
               "batch of %zu bytes is over --actor-max-batch-bytes %llu", bytes,
               (unsigned long long)self->cfg.max_batch_bytes);
    return finish(out, FRL_LIMIT_SIZE);
  }
  refill(self, e, now);
  frl_limit_verdict_t v = FRL_LIMIT_OK;
  double retry = 0;
  if (self->cfg.rate_batches > 0 && e->batches < 1.0) {
    v = FRL_LIMIT_BATCH_RATE;
    retry = (1.0 - e->batches) / self->cfg.rate_batches;
  } else if (self->cfg.rate_bytes > 0 && e->bytes < (double)bytes) {
    v = FRL_LIMIT_BYTE_RATE;
    retry = ((double)bytes - e->bytes) / self->cfg.rate_bytes;
  }
  if (v != FRL_LIMIT_OK) {
    e->counts.refused_rate++;
    self->refused_rate++;
    refused(e, 1, now, out);
    if (out) {
      out->retry_s = retry;
      if (v == FRL_LIMIT_BATCH_RATE)
        snprintf(out->reason, sizeof out->reason,
                 "over --actor-rate-batches %g batches/s (burst %g); retry in %.3f s",
                 self->cfg.rate_batches, self->cap_batches, retry);
      else
        snprintf(out->reason, sizeof out->reason,
                 "over --actor-rate-bytes %g bytes/s (burst %.0f bytes); retry in %.3f s",
                 self->cfg.rate_bytes, self->cap_bytes, retry);
    }
    return finish(out, v);
  }
  if (self->cfg.rate_batches > 0) e->batches -= 1.0;
  if (self->cfg.rate_bytes > 0) e->bytes -= (double)bytes;
  e->counts.admitted++;
  e->counts.admitted_bytes += bytes;
  self->admitted++;
  return finish(out, FRL_LIMIT_OK);
}

int frl_peer_limits_counts(const frl_peer_limits_t *self, const char *actor, frl_peer_limits_counts_t *out) {
  size_t len = actor ? strnlen(actor, FRL_PEER_LIMITS_NAME_MAX + 1) : 0;
  if (len == 0 || len > FRL_PEER_LIMITS_NAME_MAX) return FRL_ENOTFOUND;
  size_t i = probe(self, actor, name_hash(actor, len));
  if (!self->slots[i].used) return FRL_ENOTFOUND;
  *out = self->slots[i].counts;
  return 0;
}

int frl_peer_limits_size(const frl_peer_limits_t *self) { return self->size; }

void frl_peer_limits_totals(const frl_peer_limits_t *self, uint64_t *admitted, uint64_t *rate,
                       uint64_t *size, uint64_t *full) {
  if (admitted) *admitted = self->admitted;
  if (rate) *rate = self->refused_rate;
  if (size) *size = self->refused_size;
  if (full) *full = self->refused_full;
}
