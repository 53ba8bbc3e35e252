/* checkpoint.c: serialization of the learner's whole state to one versioned blob and its
 * verified restore (layout in checkpoint.h).
 *
 * The agent, the normalizer and the learner's counters each list their state as named parts
 * (frl_state_t, nn.h) that point into their own memory; a checkpoint writes one section per
 * part and a restore matches sections to the parts a freshly built learner lists, by name,
 * type and element count. Any difference in algorithm or network shape therefore shows up
 * twice: in the header's identity (refused with both sides named) and, should a blob lie
 * about its identity, as a section that does not fit. Restoring is all-or-nothing: every
 * length, the checksum, the identity and every value (finite floats, non-negative second
 * moments, a non-zero RNG state, a beta in [0, 1], ...) are checked on the blob's bytes before
 * the first byte is copied, so a refused checkpoint leaves the learner as it was built. */
#include "checkpoint.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "log.h"

/* Floats and counters are copied as they lie in memory, which the format defines as little-
 * endian. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "checkpoints assume a little-endian host");

static const char MAGIC[8] = {'F', 'R', 'L', 'C', 'K', 'P', 'T', '\0'};
#define HEADER_BYTES 136
#define SECTION_HEADER_BYTES 48
#define TRAILER_BYTES 8
/* Bounds on a sane range of the samples-per-insert ratio, as for --spi and set-spi. */
#define SPI_MIN 0.01
#define SPI_MAX 10000.0

/* ---- checksum -----------------------------------------------------------------------------
 * Four interleaved lanes over 64-bit words, each step h = (h ^ w) * K followed by h ^= h >> 32,
 * then the lanes folded into the length the same way. For fixed other words every step is a
 * bijection of the lane and injective in the word, so any change confined to one 8-byte word
 * (every single flipped bit or byte) always changes the result; wider damage is caught with
 * the usual 2^-64 odds. Not cryptographic: it detects damage, not forgery. The four
 * independent lanes run at several bytes per cycle, where byte-wise FNV-1a would spend about
 * 1 ns per byte, i.e. milliseconds per checkpoint of a 256-256 SAC learner on every write and
 * every load. */
#define SUM_K 0x9e3779b97f4a7c15ULL

static inline uint64_t sum_step(uint64_t h, uint64_t w) {
  h = (h ^ w) * SUM_K;
  return h ^ (h >> 32);
}

uint64_t frl_checkpoint_checksum(const uint8_t *data, size_t n) {
  uint64_t lane[4] = {0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL, 0xa4093822299f31d0ULL,
                      0x082efa98ec4e6c89ULL};
  const size_t words = n / 8;
  size_t k = 0;
  for (; k + 4 <= words; k += 4) {
    uint64_t w[4];
    memcpy(w, data + 8 * k, sizeof w);
    for (int j = 0; j < 4; j++) lane[j] = sum_step(lane[j], w[j]);
  }
  for (; k < words; k++) {
    uint64_t w;
    memcpy(&w, data + 8 * k, sizeof w);
    lane[k % 4] = sum_step(lane[k % 4], w);
  }
  if (n % 8) {
    uint64_t w = 0;
    memcpy(&w, data + 8 * words, n % 8);
    lane[0] = sum_step(lane[0], w);
  }
  uint64_t h = sum_step(SUM_K, (uint64_t)n);
  for (int j = 0; j < 4; j++) h = sum_step(h, lane[j]);
  return h;
}

/* ---- the learner's parts ------------------------------------------------------------------- */

typedef struct {
  const char *name;
  frl_state_type_t type;
  size_t off;
} field_t;

#define FIELD(prefix_field, type) \
  { #prefix_field, type, offsetof(frl_checkpoint_learner_t, prefix_field) }
static const field_t LEARNER_FIELDS[] = {
    FIELD(env_steps, FRL_STATE_U64),    FIELD(transitions, FRL_STATE_U64),
    FIELD(updates, FRL_STATE_U64),      FIELD(params_version, FRL_STATE_U64),
    FIELD(episodes, FRL_STATE_U64),     FIELD(duplicates, FRL_STATE_U64),
    FIELD(rejected, FRL_STATE_U64),     FIELD(skipped_updates, FRL_STATE_U64),
    FIELD(next_eval_at, FRL_STATE_U64), FIELD(last_eval_steps, FRL_STATE_U64),
    FIELD(evals, FRL_STATE_U64),        FIELD(reports_success, FRL_STATE_U64),
    FIELD(last_eval, FRL_STATE_F64),    FIELD(best_eval, FRL_STATE_F64),
    FIELD(last_success, FRL_STATE_F64), FIELD(best_score, FRL_STATE_F64),
    FIELD(beta, FRL_STATE_F64),         FIELD(lag_ewma, FRL_STATE_F64),
    FIELD(last_loss, FRL_STATE_F64),    FIELD(last_mean_q, FRL_STATE_F64),
    FIELD(spi_flag, FRL_STATE_F64),
};
#undef FIELD

/* Lists c's fields as parts "learner.*", "ratelimit.*", "store.*", as checkpoint format
 * `format` has them. */
static void learner_state(frl_checkpoint_learner_t *c, frl_state_t *st, uint32_t format) {
  for (size_t i = 0; i < FRL_ARRAY_LEN(LEARNER_FIELDS); i++)
    frl_state_add(st, "learner", LEARNER_FIELDS[i].name, LEARNER_FIELDS[i].type, 0,
                  (char *)c + LEARNER_FIELDS[i].off, 1);
  if (format >= 2) {
    frl_state_add(st, "learner", "solve_streak", FRL_STATE_U64, 0, &c->solve_streak, 1);
    frl_state_add(st, "learner", "solve_level", FRL_STATE_F64, 0, &c->solve_level, 1);
    frl_state_add(st, "learner", "solve_by_success", FRL_STATE_U64, 0, &c->solve_by_success, 1);
  }
  frl_state_add(st, "learner", "rng", FRL_STATE_U64, FRL_STATE_NONZERO, c->rng.s, 4);
  frl_ratelimit_t *r = &c->ratelimit;
  frl_state_add(st, "ratelimit", "spi", FRL_STATE_F64, 0, &r->spi, 1);
  frl_state_add(st, "ratelimit", "min_size", FRL_STATE_U64, 0, &r->min_size, 1);
  frl_state_add(st, "ratelimit", "tolerance", FRL_STATE_F64, FRL_STATE_NONNEG, &r->tolerance, 1);
  frl_state_add(st, "ratelimit", "inserts", FRL_STATE_U64, 0, &r->inserts, 1);
  frl_state_add(st, "ratelimit", "samples", FRL_STATE_U64, 0, &r->samples, 1);
  frl_state_add(st, "ratelimit", "anchor", FRL_STATE_U64, 0, &r->anchor, 1);
  frl_state_add(st, "ratelimit", "target_at", FRL_STATE_F64, 0, &r->target_at, 1);
  frl_checkpoint_store_t *s = &c->store;
  frl_state_add(st, "store", "batches", FRL_STATE_U64, 0, &s->batches, 1);
  frl_state_add(st, "store", "transitions", FRL_STATE_U64, 0, &s->transitions, 1);
  frl_state_add(st, "store", "env_steps", FRL_STATE_U64, 0, &s->env_steps, 1);
  frl_state_add(st, "store", "last_episode_id", FRL_STATE_U64, 0, &s->last_episode_id, 1);
}

/* Everything a checkpoint of `format` holds, learner parts first (they are restored into a
 * scratch copy and checked before the agent is touched). Returns the number of learner parts. */
static int all_parts(frl_state_t *st, frl_checkpoint_learner_t *c, frl_agent_t *agent,
                     frl_normalizer_t *norm, uint32_t format) {
  st->n = 0;
  learner_state(c, st, format);
  int n_learner = st->n;
  frl_agent_state(agent, st);
  if (norm) frl_normalizer_state(norm, "obs_norm", st);
  return n_learner;
}

/* ---- identity ------------------------------------------------------------------------------ */

typedef struct {
  uint32_t algo, obs_dim, act_dim, n_actions, hidden1, hidden2, dueling, norm_dim;
  char task[FRL_CHECKPOINT_TASK_MAX];
} identity_t;

static identity_t identity_of(const char *task, frl_agent_t *agent, frl_normalizer_t *norm) {
  const frl_policy_shape_t *s = frl_agent_shape(agent);
  identity_t id = {.algo = (uint32_t)s->algo,
                   .obs_dim = (uint32_t)s->obs_dim,
                   .act_dim = (uint32_t)s->act_dim,
                   .n_actions = (uint32_t)s->n_actions,
                   .hidden1 = (uint32_t)s->hidden1,
                   .hidden2 = (uint32_t)s->hidden2,
                   .dueling = s->dueling ? 1u : 0u,
                   .norm_dim = norm ? (uint32_t)frl_normalizer_dim(norm) : 0u};
  snprintf(id.task, sizeof id.task, "%s", task);
  return id;
}

static void describe(const identity_t *id, char *out, size_t n) {
  const char *algo = id->algo == FRL_ALGO_DQN   ? "dqn"
                     : id->algo == FRL_ALGO_SAC ? "sac"
                     : id->algo == FRL_ALGO_TD3 ? "td3"
                                                : "unknown algorithm";
  char head[64] = "";
  if (id->algo == FRL_ALGO_DQN)
    snprintf(head, sizeof head, "n_actions %u, %s head", id->n_actions,
             id->dueling ? "dueling" : "plain");
  else
    snprintf(head, sizeof head, "act_dim %u", id->act_dim);
  char norm[32] = "no normalizer";
  if (id->norm_dim) snprintf(norm, sizeof norm, "normalizer of %u", id->norm_dim);
  snprintf(out, n, "task '%s', %s, obs_dim %u, %s, hidden %ux%u, %s", id->task, algo, id->obs_dim,
           head, id->hidden1, id->hidden2, norm);
}

/* ---- encode -------------------------------------------------------------------------------- */

static int check_values(const frl_state_part_t *p, const uint8_t *data, char *err, size_t errlen);
static int check_learner(const frl_checkpoint_learner_t *c, char *err, size_t errlen);

typedef struct {
  uint8_t *p;
  size_t off;
} writer_t;

static void put(writer_t *w, const void *src, size_t n) {
  memcpy(w->p + w->off, src, n);
  w->off += n;
}
static void put_u32(writer_t *w, uint32_t v) { put(w, &v, sizeof v); }
static void put_u64(writer_t *w, uint64_t v) { put(w, &v, sizeof v); }
static void put_f64(writer_t *w, double v) { put(w, &v, sizeof v); }

static size_t padded(size_t n) { return (n + 7) & ~(size_t)7; }

int frl_checkpoint_encode(const char *task, frl_agent_t *agent, frl_normalizer_t *norm,
                          const frl_checkpoint_learner_t *learner, double created, uint8_t **out,
                          size_t *out_len) {
  if (strlen(task) >= FRL_CHECKPOINT_TASK_MAX) {
    frl_error("checkpoint: task name '%s' is longer than %d bytes", task,
              FRL_CHECKPOINT_TASK_MAX - 1);
    return FRL_EUSAGE;
  }
  /* The parts list wants writable pointers; a copy keeps the caller's struct const. */
  frl_checkpoint_learner_t copy = *learner;
  frl_state_t *st = frl_xmalloc(sizeof *st);
  all_parts(st, &copy, agent, norm, FRL_CHECKPOINT_FORMAT);
  /* Write only what a restore accepts: a value it would refuse (a non-finite moment, say) is
   * reported now, while the previous checkpoint is still there, not at the next start. */
  char err[200];
  int rc = check_learner(&copy, err, sizeof err);
  for (int i = 0; rc == 0 && i < st->n; i++)
    rc = check_values(&st->part[i], st->part[i].data, err, sizeof err);
  if (rc != 0) {
    frl_error("checkpoint not written: %s", err);
    free(st);
    return rc;
  }
  size_t total = HEADER_BYTES + TRAILER_BYTES;
  for (int i = 0; i < st->n; i++)
    total +=
        SECTION_HEADER_BYTES + padded(st->part[i].count * frl_state_elem_size(st->part[i].type));

  writer_t w = {.p = frl_xmalloc(total), .off = 0};
  identity_t id = identity_of(task, agent, norm);
  put(&w, MAGIC, sizeof MAGIC);
  put_u32(&w, FRL_CHECKPOINT_FORMAT);
  put_u32(&w, HEADER_BYTES);
  put_u64(&w, total);
  put_u32(&w, id.algo);
  put_u32(&w, id.obs_dim);
  put_u32(&w, id.act_dim);
  put_u32(&w, id.n_actions);
  put_u32(&w, id.hidden1);
  put_u32(&w, id.hidden2);
  put_u32(&w, id.dueling);
  put_u32(&w, id.norm_dim);
  put_u32(&w, (uint32_t)st->n);
  put_u32(&w, 0);
  put_f64(&w, created);
  char name[FRL_CHECKPOINT_TASK_MAX] = {0};
  memcpy(name, id.task, strlen(id.task));
  put(&w, name, sizeof name);

  for (int i = 0; i < st->n; i++) {
    const frl_state_part_t *p = &st->part[i];
    char pname[FRL_STATE_NAME_MAX] = {0};
    memcpy(pname, p->name, strlen(p->name));
    put(&w, pname, sizeof pname);
    put_u32(&w, (uint32_t)p->type);
    put_u32(&w, 0);
    put_u64(&w, (uint64_t)p->count);
    size_t bytes = p->count * frl_state_elem_size(p->type);
    if (bytes) put(&w, p->data, bytes);
    size_t pad = padded(bytes) - bytes;
    memset(w.p + w.off, 0, pad);
    w.off += pad;
  }
  put_u64(&w, frl_checkpoint_checksum(w.p, w.off));
  free(st);
  *out = w.p;
  *out_len = w.off;
  return 0;
}

/* ---- restore ------------------------------------------------------------------------------- */

static uint32_t get_u32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}
static uint64_t get_u64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Checks the values of one section against its part's constraints. 0, or FRL_ECORRUPT with the
 * first offending element in err. */
static int check_values(const frl_state_part_t *p, const uint8_t *data, char *err, size_t errlen) {
  /* The common case, a large float block with nothing wrong, is settled on the bit patterns
   * (exponent all ones: inf or NaN; sign set on a non-zero: negative) in one branch-free pass
   * over millions of values; the loop below then only runs to name what is wrong. */
  if (p->type == FRL_STATE_F32 && !(p->flags & FRL_STATE_NONZERO)) {
    const uint32_t neg_mask = (p->flags & FRL_STATE_NONNEG) ? 0x80000000u : 0u;
    uint32_t bad = 0;
    for (size_t k = 0; k < p->count; k++) {
      uint32_t w;
      memcpy(&w, data + 4 * k, sizeof w);
      bad |= (uint32_t)((w & 0x7f800000u) == 0x7f800000u) |
             (uint32_t)((w & neg_mask) != 0 && (w & 0x7fffffffu) != 0);
    }
    if (!bad) return 0;
  }
  bool any_nonzero = false;
  for (size_t k = 0; k < p->count; k++) {
    if (p->type == FRL_STATE_U64) {
      any_nonzero |= get_u64(data + 8 * k) != 0;
      continue;
    }
    double v;
    if (p->type == FRL_STATE_F32) {
      float f;
      memcpy(&f, data + 4 * k, sizeof f);
      v = f;
    } else {
      memcpy(&v, data + 8 * k, sizeof v);
    }
    if (!isfinite(v))
      return frl_errf(FRL_ECORRUPT, err, errlen, "section '%s': element %zu is %g, not finite",
                      p->name, k, v);
    if ((p->flags & FRL_STATE_NONNEG) && v < 0.0)
      return frl_errf(FRL_ECORRUPT, err, errlen, "section '%s': element %zu is %g, must be >= 0",
                      p->name, k, v);
    any_nonzero |= v != 0.0;
  }
  if ((p->flags & FRL_STATE_NONZERO) && !any_nonzero)
    return frl_errf(FRL_ECORRUPT, err, errlen, "section '%s': all %zu elements are zero", p->name,
                    p->count);
  return 0;
}

/* Semantic checks of the learner's restored values (beyond finiteness). */
static int check_learner(const frl_checkpoint_learner_t *c, char *err, size_t errlen) {
  if (!(c->beta >= 0.0 && c->beta <= 1.0))
    return frl_errf(FRL_ECORRUPT, err, errlen, "section 'learner.beta': %g outside [0, 1]",
                    c->beta);
  if (c->reports_success > 1)
    return frl_errf(FRL_ECORRUPT, err, errlen,
                    "section 'learner.reports_success': %llu, not 0 or 1",
                    (unsigned long long)c->reports_success);
  if (c->solve_by_success > 1)
    return frl_errf(FRL_ECORRUPT, err, errlen,
                    "section 'learner.solve_by_success': %llu, not 0 or 1",
                    (unsigned long long)c->solve_by_success);
  if (!(c->ratelimit.spi >= SPI_MIN && c->ratelimit.spi <= SPI_MAX))
    return frl_errf(FRL_ECORRUPT, err, errlen, "section 'ratelimit.spi': %g outside [%g, %g]",
                    c->ratelimit.spi, SPI_MIN, SPI_MAX);
  if (!(c->spi_flag >= SPI_MIN && c->spi_flag <= SPI_MAX))
    return frl_errf(FRL_ECORRUPT, err, errlen, "section 'learner.spi_flag': %g outside [%g, %g]",
                    c->spi_flag, SPI_MIN, SPI_MAX);
  return 0;
}

int frl_checkpoint_restore(const uint8_t *blob, size_t len, const char *task, frl_agent_t *agent,
                           frl_normalizer_t *norm, frl_checkpoint_learner_t *learner, char *err,
                           size_t errlen) {
  char local_err[8];
  if (!err || errlen == 0) {
    err = local_err;
    errlen = sizeof local_err;
  }
  err[0] = '\0';
  int rc = 0;
  frl_state_t *st = NULL;
  const uint8_t **at = NULL;

  /* The frame: size, magic, version, total length, checksum, before any field is believed. */
  if (len < HEADER_BYTES + TRAILER_BYTES) {
    rc = frl_errf(
        FRL_ECORRUPT, err, errlen,
        "checkpoint is %zu bytes, shorter than its %d-byte header and checksum (truncated)", len,
        HEADER_BYTES + TRAILER_BYTES);
    goto done;
  }
  if (memcmp(blob, MAGIC, sizeof MAGIC) != 0) {
    rc = frl_errf(FRL_ECORRUPT, err, errlen, "header.magic: not a fleetrl checkpoint");
    goto done;
  }
  uint32_t format = get_u32(blob + 8), header_bytes = get_u32(blob + 12);
  uint64_t total = get_u64(blob + 16);
  if (format < FRL_CHECKPOINT_FORMAT_OLDEST || format > FRL_CHECKPOINT_FORMAT) {
    rc = frl_errf(FRL_ECORRUPT, err, errlen,
                  "header.format: version %u, this build reads versions %d to %d", format,
                  FRL_CHECKPOINT_FORMAT_OLDEST, FRL_CHECKPOINT_FORMAT);
    goto done;
  }
  if (header_bytes != HEADER_BYTES) {
    rc = frl_errf(FRL_ECORRUPT, err, errlen, "header.header_bytes: %u, expected %d", header_bytes,
                  HEADER_BYTES);
    goto done;
  }
  if (total != (uint64_t)len) {
    rc = frl_errf(
        FRL_ECORRUPT, err, errlen,
        "header.total_bytes: %llu, but the checkpoint has %zu bytes (truncated or damaged)",
        (unsigned long long)total, len);
    goto done;
  }
  if (len % 8 != 0) {
    rc = frl_errf(FRL_ECORRUPT, err, errlen, "checkpoint length %zu is not a multiple of 8", len);
    goto done;
  }
  const size_t body = len - TRAILER_BYTES;
  uint64_t want_sum = get_u64(blob + body), have_sum = frl_checkpoint_checksum(blob, body);
  if (want_sum != have_sum) {
    rc = frl_errf(FRL_ECORRUPT, err, errlen,
                  "checksum: stored %016llx, computed %016llx over %zu bytes (the checkpoint is "
                  "damaged)",
                  (unsigned long long)want_sum, (unsigned long long)have_sum, body);
    goto done;
  }

  /* The identity: refuse another task, algorithm, shape or normalizer with both sides named. */
  identity_t have = {.algo = get_u32(blob + 24),
                     .obs_dim = get_u32(blob + 28),
                     .act_dim = get_u32(blob + 32),
                     .n_actions = get_u32(blob + 36),
                     .hidden1 = get_u32(blob + 40),
                     .hidden2 = get_u32(blob + 44),
                     .dueling = get_u32(blob + 48),
                     .norm_dim = get_u32(blob + 52)};
  const uint32_t n_sections = get_u32(blob + 56), reserved = get_u32(blob + 60);
  const uint8_t *task_field = blob + 72;
  if (!memchr(task_field, '\0', FRL_CHECKPOINT_TASK_MAX)) {
    rc = frl_errf(FRL_ECORRUPT, err, errlen, "header.task: not NUL-terminated within %d bytes",
                  FRL_CHECKPOINT_TASK_MAX);
    goto done;
  }
  memcpy(have.task, task_field, FRL_CHECKPOINT_TASK_MAX);
  if (reserved != 0) {
    rc = frl_errf(FRL_ECORRUPT, err, errlen, "header.reserved: %u, expected 0", reserved);
    goto done;
  }
  identity_t want = identity_of(task, agent, norm);
  if (memcmp(&have, &want, offsetof(identity_t, task)) != 0 || strcmp(have.task, want.task) != 0) {
    char a[200], b[200];
    describe(&have, a, sizeof a);
    describe(&want, b, sizeof b);
    rc = frl_errf(FRL_EDIM, err, errlen, "the checkpoint is for %s; this learner runs %s", a, b);
    goto done;
  }

  /* Sections: each must be one of the parts this learner lists, once, with its type and
   * element count, inside the body, zero-padded, with valid values. */
  frl_checkpoint_learner_t scratch = *learner;
  if (format < 2) {
    scratch.solve_streak = scratch.solve_by_success = 0;
    scratch.solve_level = 0.0;
  }
  st = frl_xmalloc(sizeof *st);
  const int n_learner = all_parts(st, &scratch, agent, norm, format);
  if (n_sections != (uint32_t)st->n) {
    rc = frl_errf(FRL_ECORRUPT, err, errlen,
                  "header.sections: %u, a checkpoint of this learner has %d", n_sections, st->n);
    goto done;
  }
  at = frl_xcalloc((size_t)st->n, sizeof *at);
  size_t off = HEADER_BYTES;
  for (uint32_t i = 0; i < n_sections; i++) {
    if (body - off < SECTION_HEADER_BYTES) {
      rc = frl_errf(FRL_ECORRUPT, err, errlen, "section %u of %u: header runs past the end", i + 1,
                    n_sections);
      goto done;
    }
    const uint8_t *h = blob + off;
    if (!memchr(h, '\0', FRL_STATE_NAME_MAX)) {
      rc =
          frl_errf(FRL_ECORRUPT, err, errlen, "section %u: name not NUL-terminated within %d bytes",
                   i + 1, FRL_STATE_NAME_MAX);
      goto done;
    }
    const char *name = (const char *)h;
    uint32_t type = get_u32(h + 32), sreserved = get_u32(h + 36);
    uint64_t count = get_u64(h + 40);
    int match = -1;
    for (int j = 0; j < st->n; j++)
      if (strcmp(st->part[j].name, name) == 0) match = j;
    if (match < 0) {
      rc = frl_errf(FRL_ECORRUPT, err, errlen, "section '%.31s': not part of this learner's state",
                    name);
      goto done;
    }
    const frl_state_part_t *p = &st->part[match];
    if (at[match]) {
      rc = frl_errf(FRL_ECORRUPT, err, errlen, "section '%s': appears twice", p->name);
      goto done;
    }
    if (type != (uint32_t)p->type || sreserved != 0) {
      rc = frl_errf(FRL_ECORRUPT, err, errlen,
                    "section '%s': type %u (reserved %u), expected %d (0)", p->name, type,
                    sreserved, (int)p->type);
      goto done;
    }
    if (count != (uint64_t)p->count) {
      rc = frl_errf(FRL_ECORRUPT, err, errlen, "section '%s': %llu elements, expected %zu", p->name,
                    (unsigned long long)count, p->count);
      goto done;
    }
    off += SECTION_HEADER_BYTES;
    const size_t bytes = p->count * frl_state_elem_size(p->type), span = padded(bytes);
    if (body - off < span) {
      rc = frl_errf(FRL_ECORRUPT, err, errlen,
                    "section '%s': %zu bytes of data, only %zu left before the checksum", p->name,
                    span, body - off);
      goto done;
    }
    for (size_t k = bytes; k < span; k++) {
      if (blob[off + k] != 0) {
        rc = frl_errf(FRL_ECORRUPT, err, errlen, "section '%s': padding byte %zu is not zero",
                      p->name, k - bytes);
        goto done;
      }
    }
    if ((rc = check_values(p, blob + off, err, errlen))) goto done;
    at[match] = blob + off;
    off += span;
  }
  if (off != body) {
    rc = frl_errf(FRL_ECORRUPT, err, errlen, "%zu unexplained bytes after the last section",
                  body - off);
    goto done;
  }

  /* Everything is sound: learner parts into the scratch copy, checked, then the agent. */
  for (int j = 0; j < n_learner; j++)
    memcpy(st->part[j].data, at[j], st->part[j].count * frl_state_elem_size(st->part[j].type));
  if ((rc = check_learner(&scratch, err, errlen))) goto done;
  for (int j = n_learner; j < st->n; j++)
    memcpy(st->part[j].data, at[j], st->part[j].count * frl_state_elem_size(st->part[j].type));
  *learner = scratch;
done:
  free(at);
  free(st);
  return rc;
}
