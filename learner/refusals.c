/* refusals.c: log throttling for the batches the learner refuses (see refusals.h). */
#include "refusals.h"

#include <string.h>

#include "common.h"

/* The key of an (actor, field) pair. The field is the reason's leading name, so refusals that
 * differ only in the index or value they quote ("obs[0][2]: nan", "obs[7][1]: inf") share one. */
static uint64_t pair_key(const char *actor, const char *reason) {
  const char *a = actor ? actor : "";
  const char *f = reason ? reason : "";
  uint64_t h = frl_fnv1a64(a, strlen(a), FRL_FNV_SEED);
  h = frl_fnv1a64("", 1, h); /* the NUL between the two, so ("ab", "c") is not ("a", "bc") */
  h = frl_fnv1a64(f, strcspn(f, "[:"), h);
  return h ? h : 1;
}

/* Whether a period that began at `start` is over; a clock that stepped back ends it too. */
static bool over(double start, double now) {
  return now < start || now - start >= FRL_REFUSALS_REPORT_S;
}

bool frl_refusals_note(frl_refusals_t *r, const char *actor, const char *reason, double now,
                       frl_refusal_report_t *out) {
  const uint64_t key = pair_key(actor, reason);
  frl_refusal_slot_t *s = &r->slot[key % FRL_REFUSALS_SLOTS];
  if (s->key == key && !over(s->at, now)) {
    s->repeats++;
    return false;
  }
  if (r->lines == 0 || over(r->window_start, now)) {
    r->window_start = now;
    r->lines = 0;
  }
  if (r->lines >= FRL_REFUSALS_LINES) {
    r->unlogged++;
    return false;
  }
  r->lines++;
  out->repeats = s->key == key ? s->repeats : 0;
  out->unlogged = r->unlogged;
  r->unlogged = 0;
  s->key = key;
  s->at = now;
  s->repeats = 0;
  return true;
}
