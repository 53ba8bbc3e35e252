/* test_checkpoint.c: learner checkpoints. DQN, SAC (with an observation normalizer) and TD3
 * agents trained on fixed batches, checkpointed, restored into agents built from another seed,
 * then trained further side by side: every parameter, optimizer moment, step count, target,
 * temperature and noise stream stays bit-identical. A blob is a file's bytes, so every
 * truncation of a small one, every flipped byte, and damage behind a valid checksum (NaN,
 * negative moments, a zero RNG, unknown, repeated, resized or retyped sections, padding, trailing
 * bytes) are refused with the section named and the agent untouched; a checkpoint of another
 * task, algorithm, shape or normalizer is refused with both sides named, and what a restore
 * would refuse is not written in the first place. The checkpoints table against a real SQLite
 * file: newest two kept, rows checked on load, a write that does not fit leaves the previous
 * ones, and the totals a resume adds up. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "numeric_check.h"

#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "checkpoint.h"
#include "common.h"
#include "log.h"
#include "normalizer.h"
#include "store.h"
#include "temp_store.h"

#define NB 8
#define MAX_OBS 4
#define MAX_ACT 4
#define N_BATCHES 40

/* ---- fixtures -------------------------------------------------------------------------------- */

typedef struct {
  float obs[NB * MAX_OBS], next[NB * MAX_OBS], act[NB * MAX_ACT], rew[NB], disc[NB], weight[NB];
  int32_t index[NB];
} batch_data_t;

static batch_data_t g_batches[N_BATCHES];

/* Fixed random batches, the same for every agent; every fourth transition terminal. */
static void make_batches(int obs_dim, int act_dim, int n_actions, uint64_t seed) {
  frl_rng_t rng;
  frl_rng_seed(&rng, seed);
  for (int k = 0; k < N_BATCHES; k++) {
    batch_data_t *d = &g_batches[k];
    fill_uniform(d->obs, (size_t)NB * obs_dim, -1, 1, &rng);
    fill_uniform(d->next, (size_t)NB * obs_dim, -1, 1, &rng);
    fill_uniform(d->act, (size_t)NB * act_dim, -1, 1, &rng);
    fill_uniform(d->rew, NB, -1, 1, &rng);
    fill_uniform(d->weight, NB, 0.5, 1, &rng);
    for (int r = 0; r < NB; r++) {
      d->disc[r] = r % 4 == 3 ? 0.0f : 0.97f;
      d->index[r] = n_actions ? (int32_t)frl_rng_below(&rng, (uint32_t)n_actions) : 0;
    }
  }
}

static frl_agent_batch_t batch(int k) {
  batch_data_t *d = &g_batches[k % N_BATCHES];
  return (frl_agent_batch_t){.B = NB,
                             .obs = d->obs,
                             .next_obs = d->next,
                             .action_index = d->index,
                             .action = d->act,
                             .reward = d->rew,
                             .discount = d->disc,
                             .weight = d->weight};
}

static frl_agent_config_t agent_config(frl_algo_t algo, int obs_dim, int act_dim, int hidden1,
                                       int hidden2, uint64_t seed) {
  frl_agent_config_t c = {.shape = {.algo = algo,
                                    .obs_dim = obs_dim,
                                    .act_dim = algo == FRL_ALGO_DQN ? 1 : act_dim,
                                    .n_actions = algo == FRL_ALGO_DQN ? act_dim : 0,
                                    .hidden1 = hidden1,
                                    .hidden2 = hidden2,
                                    .dueling = algo == FRL_ALGO_DQN},
                          .batch = NB,
                          .lr = 1e-3f,
                          .lr_alpha = 1e-3f,
                          .adam_eps = 1e-8f,
                          .grad_clip = 10.0f,
                          .huber_delta = 1.0f,
                          .double_q = true,
                          .target_period = 7,
                          .tau = 0.05f,
                          .init_alpha = 0.5f,
                          .target_entropy = NAN,
                          .policy_noise = 0.2f,
                          .noise_clip = 0.5f,
                          .policy_delay = 2,
                          .seed = seed};
  return c;
}

static void train(frl_agent_t *a, int first, int n) {
  float td[NB];
  for (int k = first; k < first + n; k++) {
    frl_agent_batch_t b = batch(k);
    frl_agent_stats_t st;
    assert_int_equal(frl_agent_update(a, &b, td, &st), 0);
  }
}

/* The agent's (and normalizer's) state, flattened: a snapshot to compare bit for bit. */
typedef struct {
  uint8_t *bytes;
  size_t n;
} snapshot_t;

static snapshot_t snapshot(frl_agent_t *a, frl_normalizer_t *norm) {
  frl_state_t *st = malloc(sizeof *st);
  st->n = 0;
  frl_agent_state(a, st);
  if (norm) frl_normalizer_state(norm, "obs_norm", st);
  snapshot_t s = {0};
  for (int i = 0; i < st->n; i++) s.n += st->part[i].count * frl_state_elem_size(st->part[i].type);
  s.bytes = malloc(s.n);
  size_t off = 0;
  for (int i = 0; i < st->n; i++) {
    size_t k = st->part[i].count * frl_state_elem_size(st->part[i].type);
    memcpy(s.bytes + off, st->part[i].data, k);
    off += k;
  }
  free(st);
  return s;
}

static bool same(snapshot_t x, snapshot_t y) {
  return x.n == y.n && memcmp(x.bytes, y.bytes, x.n) == 0;
}
static void drop(snapshot_t *s) {
  free(s->bytes);
  s->bytes = NULL;
}

/* Learner counters with a distinct value in every field. */
static frl_checkpoint_learner_t some_learner(void) {
  frl_checkpoint_learner_t c = {
      .env_steps = 12345,
      .transitions = 12000,
      .updates = 20,
      .params_version = 7,
      .episodes = 99,
      .duplicates = 3,
      .rejected = 1,
      .skipped_updates = 2,
      .next_eval_at = 14000,
      .last_eval_steps = 12000,
      .evals = 6,
      .reports_success = 1,
      .solve_streak = 2,
      .solve_by_success = 1,
      .solve_level = 0.9,
      .last_eval = 101.5,
      .best_eval = 130.25,
      .last_success = 0.5,
      .best_score = 130.25,
      .beta = 0.55,
      .lag_ewma = 1.75,
      .last_loss = 0.125,
      .last_mean_q = 12.5,
      .spi_flag = 16,
      .store = {.batches = 400, .transitions = 12800, .env_steps = 13000, .last_episode_id = 101}};
  frl_ratelimit_init(&c.ratelimit, 8.0, 1000, 512);
  frl_ratelimit_inserted(&c.ratelimit, 12000);
  frl_ratelimit_sampled(&c.ratelimit, 88000);
  frl_ratelimit_set_spi(&c.ratelimit, 4.0);
  frl_rng_seed(&c.rng, 4242);
  return c;
}

/* ---- continuation is bit-identical ------------------------------------------------------------
 */

/* Trains a for 20 updates, checkpoints, restores into b (built from another seed), and trains
 * both 15 more updates on the same batches: their whole state must match bit for bit. */
static void continues_identically(frl_algo_t algo, int obs_dim, int act_dim, bool with_norm) {
  make_batches(obs_dim, act_dim, algo == FRL_ALGO_DQN ? act_dim : 0, 77);
  frl_agent_config_t ca = agent_config(algo, obs_dim, act_dim, 16, 16, 1);
  frl_agent_config_t cb = agent_config(algo, obs_dim, act_dim, 16, 16, 2);
  frl_agent_t *a = frl_agent_new(&ca), *b = frl_agent_new(&cb);
  assert_non_null(a);
  assert_non_null(b);
  frl_normalizer_t *na = with_norm ? frl_normalizer_new(obs_dim) : NULL;
  frl_normalizer_t *nb = with_norm ? frl_normalizer_new(obs_dim) : NULL;
  train(a, 0, 20);
  if (na)
    for (int k = 0; k < 5; k++) frl_normalizer_update(na, g_batches[k].obs, NB);

  frl_checkpoint_learner_t la = some_learner();
  uint8_t *blob = NULL;
  size_t len = 0;
  assert_int_equal(frl_checkpoint_encode("test-task", a, na, &la, 1.7e9, &blob, &len), 0);
  assert_int_equal(len % 8, 0);

  /* Built from another seed, b differs from a before the restore: the comparison can fail. */
  snapshot_t sa = snapshot(a, na), sb = snapshot(b, nb);
  assert_false(same(sa, sb));
  drop(&sb);
  frl_checkpoint_learner_t lb = {0};
  char err[300];
  int rc = frl_checkpoint_restore(blob, len, "test-task", b, nb, &lb, err, sizeof err);
  if (rc != 0) fail_msg("restore: %s", err);
  sb = snapshot(b, nb);
  assert_true(same(sa, sb));
  assert_memory_equal(&la, &lb, sizeof la);
  assert_int_equal(frl_agent_updates(b), 20);
  drop(&sa);
  drop(&sb);

  /* Fifteen more updates each: the noise streams, Adam's step counts, the TD3 delay phase and
   * DQN's target-copy phase (period 7) all carry on as if nothing happened. */
  for (int k = 20; k < 35; k++) {
    float td_a[NB], td_b[NB];
    frl_agent_batch_t bt = batch(k);
    frl_agent_stats_t st_a, st_b;
    assert_int_equal(frl_agent_update(a, &bt, td_a, &st_a), 0);
    assert_int_equal(frl_agent_update(b, &bt, td_b, &st_b), 0);
    assert_memory_equal(td_a, td_b, sizeof td_a);
    assert_memory_equal(&st_a, &st_b, sizeof st_a);
  }
  sa = snapshot(a, na);
  sb = snapshot(b, nb);
  assert_true(same(sa, sb));
  size_t pa, pb;
  const float *qa = frl_agent_policy_params(a, &pa), *qb = frl_agent_policy_params(b, &pb);
  assert_int_equal(pa, pb);
  assert_memory_equal(qa, qb, pa * sizeof(float));
  if (na) {
    float ma[MAX_OBS], sda[MAX_OBS], mb[MAX_OBS], sdb[MAX_OBS];
    frl_normalizer_export(na, ma, sda);
    frl_normalizer_export(nb, mb, sdb);
    assert_memory_equal(ma, mb, sizeof(float) * (size_t)obs_dim);
    assert_memory_equal(sda, sdb, sizeof(float) * (size_t)obs_dim);
    assert_int_equal(frl_normalizer_count(nb), 5 * NB);
  }
  drop(&sa);
  drop(&sb);
  free(blob);
  frl_normalizer_destroy(&na);
  frl_normalizer_destroy(&nb);
  frl_agent_destroy(&a);
  frl_agent_destroy(&b);
}

static void test_dqn_continues_identically(void **state) {
  (void)state;
  continues_identically(FRL_ALGO_DQN, 4, 3, false);
}

static void test_sac_continues_identically(void **state) {
  (void)state;
  continues_identically(FRL_ALGO_SAC, 3, 2, true);
}

static void test_td3_continues_identically(void **state) {
  (void)state;
  continues_identically(FRL_ALGO_TD3, 3, 1, false);
}

/* ---- the checksum ------------------------------------------------------------------------------
 */

static void test_checksum_catches_every_bit_and_length(void **state) {
  (void)state;
  uint8_t buf[72];
  frl_rng_t rng;
  frl_rng_seed(&rng, 9);
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)frl_rng_below(&rng, 256);
  const uint64_t base = frl_checkpoint_checksum(buf, sizeof buf);
  assert_true(base == frl_checkpoint_checksum(buf, sizeof buf));
  for (size_t bit = 0; bit < 8 * sizeof buf; bit++) {
    buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    if (frl_checkpoint_checksum(buf, sizeof buf) == base)
      fail_msg("bit %zu flip not detected", bit);
    buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
  }
  for (size_t n = 0; n < sizeof buf; n++)
    if (frl_checkpoint_checksum(buf, n) == base) fail_msg("prefix of %zu bytes collides", n);
  /* The length is folded in: runs of zeros of different lengths differ. */
  uint8_t zeros[64] = {0};
  for (size_t n = 1; n < sizeof zeros; n++)
    assert_true(frl_checkpoint_checksum(zeros, n) != frl_checkpoint_checksum(zeros, n - 1));
}

/* ---- damaged blobs ------------------------------------------------------------------------------
 */

/* A small DQN learner (obs 2, one hidden layer of 3, 2 actions, plain head): 17 floats per
 * network, so its sections include padding. */
typedef struct {
  frl_agent_t *agent;
  uint8_t *blob;
  size_t len;
  snapshot_t fresh; /* the agent restores go into, as built */
  frl_agent_t *target;
} small_t;

static small_t small_fixture(void) {
  small_t s = {0};
  frl_agent_config_t c = agent_config(FRL_ALGO_DQN, 2, 2, 3, 0, 5);
  c.shape.dueling = false;
  make_batches(2, 2, 2, 3);
  s.agent = frl_agent_new(&c);
  assert_non_null(s.agent);
  train(s.agent, 0, 3);
  frl_checkpoint_learner_t l = some_learner();
  assert_int_equal(frl_checkpoint_encode("small", s.agent, NULL, &l, 1.0, &s.blob, &s.len), 0);
  c.seed = 6;
  s.target = frl_agent_new(&c);
  s.fresh = snapshot(s.target, NULL);
  return s;
}

static void small_free(small_t *s) {
  free(s->blob);
  drop(&s->fresh);
  frl_agent_destroy(&s->agent);
  frl_agent_destroy(&s->target);
}

/* Restores b[n] into the small fixture's target; returns the code and keeps the message. */
static int try_restore(small_t *s, const uint8_t *b, size_t n, char *err, size_t errlen) {
  frl_checkpoint_learner_t l = {0};
  return frl_checkpoint_restore(b, n, "small", s->target, NULL, &l, err, errlen);
}

static void expect_untouched(small_t *s) {
  snapshot_t now = snapshot(s->target, NULL);
  assert_true(same(now, s->fresh));
  drop(&now);
}

static void test_every_truncation_refused(void **state) {
  (void)state;
  small_t s = small_fixture();
  char err[300];
  assert_true(s.len < 4096); /* small enough to try every length */
  for (size_t n = 0; n < s.len; n++) {
    int rc = try_restore(&s, s.blob, n, err, sizeof err);
    if (rc != FRL_ECORRUPT) fail_msg("a blob cut to %zu of %zu bytes gave %d", n, s.len, rc);
    assert_true(strlen(err) > 0);
  }
  try_restore(&s, s.blob, 100, err, sizeof err);
  assert_non_null(strstr(err, "truncated"));
  /* Longer than it says (a stray tail) is refused too. */
  uint8_t *longer = calloc(1, s.len + 8);
  memcpy(longer, s.blob, s.len);
  assert_int_equal(try_restore(&s, longer, s.len + 8, err, sizeof err), FRL_ECORRUPT);
  assert_non_null(strstr(err, "header.total_bytes"));
  free(longer);
  expect_untouched(&s);
  /* The intact blob restores (so the refusals above were about the damage). */
  assert_int_equal(try_restore(&s, s.blob, s.len, err, sizeof err), 0);
  small_free(&s);
}

static void test_every_byte_flip_refused(void **state) {
  (void)state;
  small_t s = small_fixture();
  char err[300];
  uint8_t *b = malloc(s.len);
  static const uint8_t masks[] = {0x01, 0x80, 0xff};
  for (size_t i = 0; i < s.len; i++) {
    for (size_t m = 0; m < FRL_ARRAY_LEN(masks); m++) {
      memcpy(b, s.blob, s.len);
      b[i] ^= masks[m];
      int rc = try_restore(&s, b, s.len, err, sizeof err);
      if (rc != FRL_ECORRUPT)
        fail_msg("byte %zu ^ 0x%02x of %zu: code %d (%s)", i, masks[m], s.len, rc, err);
    }
  }
  memcpy(b, s.blob, s.len);
  b[s.len / 2] ^= 0x10;
  try_restore(&s, b, s.len, err, sizeof err);
  assert_non_null(strstr(err, "checksum"));
  memcpy(b, s.blob, s.len);
  b[0] = 'X';
  try_restore(&s, b, s.len, err, sizeof err);
  assert_non_null(strstr(err, "magic"));
  expect_untouched(&s);
  free(b);
  small_free(&s);
}

/* ---- damage behind a valid checksum ---------------------------------------------------------
 * Helpers that walk the layout as checkpoint.h documents it. */

static uint32_t rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void reseal(uint8_t *b, size_t len) {
  wr64(b + len - 8, frl_checkpoint_checksum(b, len - 8));
}

/* Offset of the section header named `name`, or a test failure. */
static size_t section(const uint8_t *b, size_t len, const char *name) {
  size_t off = 136;
  uint32_t n = rd32(b + 56);
  for (uint32_t i = 0; i < n && off + 48 <= len - 8; i++) {
    uint32_t type = rd32(b + off + 32);
    uint64_t count = rd64(b + off + 40);
    if (strcmp((const char *)b + off, name) == 0) return off;
    size_t bytes = (size_t)count * (type == 1 ? 4 : 8);
    off += 48 + ((bytes + 7) & ~(size_t)7);
  }
  fail_msg("no section %s", name);
  return 0;
}

typedef void (*damage_fn)(uint8_t *b, size_t len);

/* Applies damage to a copy, reseals it and expects a refusal whose message holds `want`. */
static void refused_with(small_t *s, damage_fn damage, const char *want) {
  uint8_t *b = malloc(s->len);
  memcpy(b, s->blob, s->len);
  damage(b, s->len);
  reseal(b, s->len);
  char err[300] = "";
  int rc = try_restore(s, b, s->len, err, sizeof err);
  if (rc != FRL_ECORRUPT || !strstr(err, want))
    fail_msg("expected a refusal naming '%s', got %d: %s", want, rc, err);
  free(b);
  expect_untouched(s);
}

static void nan_param(uint8_t *b, size_t len) {
  float nan = NAN;
  memcpy(b + section(b, len, "online") + 48 + 4 * 5, &nan, 4);
}
static void negative_moment(uint8_t *b, size_t len) {
  float neg = -1e-3f;
  memcpy(b + section(b, len, "adam.v") + 48 + 4 * 2, &neg, 4);
}
static void zero_rng(uint8_t *b, size_t len) {
  memset(b + section(b, len, "learner.rng") + 48, 0, 32);
}
static void bad_beta(uint8_t *b, size_t len) {
  double beta = 1.5;
  memcpy(b + section(b, len, "learner.beta") + 48, &beta, 8);
}
static void bad_solve_metric(uint8_t *b, size_t len) {
  wr64(b + section(b, len, "learner.solve_by_success") + 48, 2);
}
static void bad_spi(uint8_t *b, size_t len) {
  double spi = 0.0;
  memcpy(b + section(b, len, "ratelimit.spi") + 48, &spi, 8);
}
static void more_sections(uint8_t *b, size_t len) { wr32(b + 56, rd32(b + 56) + 1); }
static void unknown_name(uint8_t *b, size_t len) { b[section(b, len, "target") + 5] = 'X'; }
static void repeated_name(uint8_t *b, size_t len) {
  memcpy(b + section(b, len, "target"), "online\0", 7);
}
static void other_type(uint8_t *b, size_t len) { wr32(b + section(b, len, "online") + 32, 2); }
static void other_count(uint8_t *b, size_t len) {
  size_t off = section(b, len, "learner.updates");
  wr64(b + off + 40, 2);
}
static void nonzero_padding(uint8_t *b, size_t len) {
  b[section(b, len, "online") + 48 + 17 * 4 + 1] = 1; /* 17 floats, padded to 72 bytes */
}
static void reserved_field(uint8_t *b, size_t len) { wr32(b + 60, 1); }
static void section_reserved(uint8_t *b, size_t len) {
  wr32(b + section(b, len, "target") + 36, 3);
}
static void newer_format(uint8_t *b, size_t len) { wr32(b + 8, FRL_CHECKPOINT_FORMAT + 1); }
static void format_zero(uint8_t *b, size_t len) { wr32(b + 8, 0); }
static void unterminated_task(uint8_t *b, size_t len) { memset(b + 72, 'a', 64); }
static void unterminated_name(uint8_t *b, size_t len) {
  memset(b + section(b, len, "online"), 'o', 32);
}

static void test_damage_behind_valid_checksum_refused(void **state) {
  (void)state;
  small_t s = small_fixture();
  refused_with(&s, nan_param, "section 'online': element 5 is nan, not finite");
  refused_with(&s, negative_moment, "section 'adam.v': element 2");
  refused_with(&s, zero_rng, "section 'learner.rng': all 4 elements are zero");
  refused_with(&s, bad_beta, "learner.beta");
  refused_with(&s, bad_solve_metric, "section 'learner.solve_by_success': 2, not 0 or 1");
  refused_with(&s, bad_spi, "ratelimit.spi");
  refused_with(&s, more_sections, "header.sections");
  refused_with(&s, unknown_name, "not part of this learner's state");
  refused_with(&s, repeated_name, "section 'online': appears twice");
  refused_with(&s, other_type, "section 'online': type 2");
  refused_with(&s, other_count, "section 'learner.updates': 2 elements, expected 1");
  refused_with(&s, nonzero_padding, "section 'online': padding byte 1");
  refused_with(&s, reserved_field, "header.reserved");
  refused_with(&s, section_reserved, "section 'target': type 1 (reserved 3)");
  refused_with(&s, newer_format, "version 3, this build reads versions 1 to 2");
  refused_with(&s, format_zero, "version 0, this build reads versions 1 to 2");
  refused_with(&s, unterminated_task, "header.task");
  refused_with(&s, unterminated_name, "name not NUL-terminated");

  /* Eight unexplained bytes before the checksum (the total updated to match). */
  uint8_t *b = calloc(1, s.len + 8);
  memcpy(b, s.blob, s.len - 8);
  wr64(b + 16, s.len + 8);
  reseal(b, s.len + 8);
  char err[300];
  assert_int_equal(try_restore(&s, b, s.len + 8, err, sizeof err), FRL_ECORRUPT);
  assert_non_null(strstr(err, "8 unexplained bytes"));
  free(b);
  expect_untouched(&s);
  small_free(&s);
}

/* What could not be restored is not written: the previous checkpoint stays the newest. */
static void test_encode_refuses_what_restore_would(void **state) {
  (void)state;
  small_t s = small_fixture();
  frl_state_t *st = malloc(sizeof *st);
  st->n = 0;
  frl_agent_state(s.agent, st);
  float *v = NULL;
  for (int i = 0; i < st->n; i++)
    if (strcmp(st->part[i].name, "adam.v") == 0) v = st->part[i].data;
  assert_non_null(v);
  uint8_t *blob = NULL;
  size_t len = 0;
  frl_checkpoint_learner_t l = some_learner();
  v[3] = INFINITY;
  assert_int_equal(frl_checkpoint_encode("small", s.agent, NULL, &l, 1.0, &blob, &len),
                   FRL_ECORRUPT);
  assert_null(blob);
  v[3] = 0.0f;
  l.beta = -0.25;
  assert_int_equal(frl_checkpoint_encode("small", s.agent, NULL, &l, 1.0, &blob, &len),
                   FRL_ECORRUPT);
  l.beta = 0.25;
  assert_int_equal(frl_checkpoint_encode("small", s.agent, NULL, &l, 1.0, &blob, &len), 0);
  free(blob);
  free(st);
  small_free(&s);
}

/* ---- older formats -------------------------------------------------------------------------- */

/* A format-1 checkpoint (a build before learner.solve_streak, solve_level, solve_by_success)
 * restores, with a streak of 0; the same blob still claiming format 2 lacks sections and is
 * refused. */
static void test_format_1_restores(void **state) {
  (void)state;
  small_t s = small_fixture();
  /* The three are listed one after another, each a header and one 8-byte value. */
  const size_t off = section(s.blob, s.len, "learner.solve_streak");
  assert_int_equal(section(s.blob, s.len, "learner.solve_level"), off + 56);
  assert_int_equal(section(s.blob, s.len, "learner.solve_by_success"), off + 112);
  const size_t cut = 3 * (48 + 8);
  assert_int_equal(rd64(s.blob + off + 48), 2);
  const size_t n = s.len - cut;
  uint8_t *b = malloc(n);
  memcpy(b, s.blob, off);
  memcpy(b + off, s.blob + off + cut, s.len - off - cut);
  wr32(b + 56, rd32(b + 56) - 3);
  wr64(b + 16, n);
  char err[300] = "";
  reseal(b, n);
  assert_int_equal(try_restore(&s, b, n, err, sizeof err), FRL_ECORRUPT);
  assert_non_null(strstr(err, "header.sections"));
  expect_untouched(&s);

  wr32(b + 8, 1);
  reseal(b, n);
  frl_checkpoint_learner_t l = {.solve_streak = 7, .solve_level = 3, .solve_by_success = 1},
                           want = some_learner();
  assert_int_equal(frl_checkpoint_restore(b, n, "small", s.target, NULL, &l, err, sizeof err), 0);
  assert_int_equal(l.solve_streak, 0);
  assert_int_equal(l.solve_by_success, 0);
  assert_true(l.solve_level == 0.0);
  assert_int_equal(l.evals, want.evals);
  assert_int_equal(l.updates, want.updates);
  snapshot_t got = snapshot(s.target, NULL), from = snapshot(s.agent, NULL);
  assert_true(same(got, from));
  drop(&got);
  drop(&from);
  free(b);
  small_free(&s);
}

/* ---- another task, algorithm or shape ------------------------------------------------------- */

static void test_other_identity_refused(void **state) {
  (void)state;
  make_batches(3, 1, 0, 8);
  frl_agent_config_t c = agent_config(FRL_ALGO_SAC, 3, 1, 16, 16, 1);
  frl_agent_t *sac = frl_agent_new(&c);
  train(sac, 0, 2);
  frl_checkpoint_learner_t l = some_learner(), out = {0};
  uint8_t *blob = NULL;
  size_t len = 0;
  assert_int_equal(frl_checkpoint_encode("pendulum-sac", sac, NULL, &l, 2.0, &blob, &len), 0);
  char err[400];

  /* Another task name. */
  assert_int_equal(frl_checkpoint_restore(blob, len, "reach-sac", sac, NULL, &out, err, sizeof err),
                   FRL_EDIM);
  assert_non_null(strstr(err, "the checkpoint is for task 'pendulum-sac', sac, obs_dim 3"));
  assert_non_null(strstr(err, "this learner runs task 'reach-sac'"));

  /* Another algorithm with the same dimensions. */
  c = agent_config(FRL_ALGO_TD3, 3, 1, 16, 16, 1);
  frl_agent_t *td3 = frl_agent_new(&c);
  snapshot_t before = snapshot(td3, NULL);
  assert_int_equal(
      frl_checkpoint_restore(blob, len, "pendulum-sac", td3, NULL, &out, err, sizeof err),
      FRL_EDIM);
  assert_non_null(strstr(err, "this learner runs task 'pendulum-sac', td3"));

  /* Another width. */
  c = agent_config(FRL_ALGO_SAC, 3, 1, 16, 8, 1);
  frl_agent_t *narrow = frl_agent_new(&c);
  assert_int_equal(
      frl_checkpoint_restore(blob, len, "pendulum-sac", narrow, NULL, &out, err, sizeof err),
      FRL_EDIM);
  assert_non_null(strstr(err, "hidden 16x16"));
  assert_non_null(strstr(err, "hidden 16x8"));

  /* With a normalizer where the checkpoint had none. */
  frl_normalizer_t *norm = frl_normalizer_new(3);
  assert_int_equal(
      frl_checkpoint_restore(blob, len, "pendulum-sac", sac, norm, &out, err, sizeof err),
      FRL_EDIM);
  assert_non_null(strstr(err, "no normalizer"));
  assert_non_null(strstr(err, "normalizer of 3"));

  /* A blob that claims the narrow shape still does not fit it: its sections say otherwise. */
  wr32(blob + 44, 8);
  reseal(blob, len);
  assert_int_equal(
      frl_checkpoint_restore(blob, len, "pendulum-sac", narrow, NULL, &out, err, sizeof err),
      FRL_ECORRUPT);
  assert_non_null(strstr(err, "elements, expected"));

  snapshot_t after = snapshot(td3, NULL);
  assert_true(same(before, after));
  assert_memory_equal(&out, &(frl_checkpoint_learner_t){0}, sizeof out);
  drop(&before);
  drop(&after);
  free(blob);
  frl_normalizer_destroy(&norm);
  frl_agent_destroy(&sac);
  frl_agent_destroy(&td3);
  frl_agent_destroy(&narrow);
}

/* ---- the checkpoints table ------------------------------------------------------------------ */

typedef temp_store_t store_fixture_t;

static int store_setup(void **state) {
  store_fixture_t *f = calloc(1, sizeof *f);
  if (temp_store_make(f, "test_checkpoint") != 0) {
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int store_teardown(void **state) {
  store_fixture_t *f = *state;
  temp_store_remove(f);
  free(f);
  return 0;
}

static frl_store_t *open_store(const store_fixture_t *f, uint64_t max_bytes) {
  frl_store_config_t cfg = {
      .path = f->path, .obs_dim = 2, .act_dim = 1, .discrete = true, .max_bytes = max_bytes};
  frl_store_t *s = NULL;
  assert_int_equal(frl_store_open(&s, &cfg), 0);
  return s;
}

static int64_t q_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void exec_sql(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
}

/* A blob of n bytes whose content depends on tag. */
static uint8_t *tagged(size_t n, uint8_t tag) {
  uint8_t *b = malloc(n);
  for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(tag + i * 7);
  return b;
}

static void save(frl_store_t *s, size_t n, uint8_t tag, uint64_t updates) {
  uint8_t *b = tagged(n, tag);
  frl_store_checkpoint_t info = {.created = 1000.0 + tag,
                                 .env_steps = 10 * updates,
                                 .updates = updates,
                                 .params_version = updates / 100};
  assert_int_equal(frl_store_save_checkpoint(s, &info, b, n, 2), 0);
  assert_true(info.id > 0);
  assert_int_equal(info.bytes, n);
  free(b);
}

static void expect_loaded(frl_store_t *s, int rank, size_t n, uint8_t tag, uint64_t updates) {
  frl_store_checkpoint_t info;
  void *blob = NULL;
  size_t len = 0;
  assert_int_equal(frl_store_load_checkpoint(s, rank, &info, &blob, &len), 0);
  uint8_t *want = tagged(n, tag);
  assert_int_equal(len, n);
  assert_memory_equal(blob, want, n);
  assert_int_equal(info.updates, updates);
  assert_int_equal(info.env_steps, 10 * updates);
  assert_int_equal(info.params_version, updates / 100);
  assert_true(info.created == 1000.0 + tag);
  free(want);
  free(blob);
}

static void test_store_keeps_newest_two(void **state) {
  store_fixture_t *f = *state;
  frl_store_t *s = open_store(f, 0);
  int count = -1;
  void *blob = NULL;
  size_t len = 0;
  frl_store_checkpoint_t info;
  assert_int_equal(frl_store_count_checkpoints(s, &count), 0);
  assert_int_equal(count, 0);
  assert_int_equal(frl_store_load_checkpoint(s, 0, &info, &blob, &len), FRL_ENOTFOUND);
  save(s, 5000, 1, 100);
  save(s, 7000, 2, 200);
  save(s, 6000, 3, 300);
  assert_int_equal(frl_store_count_checkpoints(s, &count), 0);
  assert_int_equal(count, 2);
  expect_loaded(s, 0, 6000, 3, 300);
  expect_loaded(s, 1, 7000, 2, 200);
  assert_int_equal(frl_store_load_checkpoint(s, 2, &info, &blob, &len), FRL_ENOTFOUND);
  frl_store_close(&s);

  /* As a user sees the table, after reopening. */
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM checkpoints"), 2);
  assert_int_equal(q_int(db, "SELECT SUM(bytes = length(blob)) FROM checkpoints"), 2);
  assert_int_equal(q_int(db,
                         "SELECT group_concat(updates) = '200,300' FROM "
                         "(SELECT updates FROM checkpoints ORDER BY id)"),
                   1);
  assert_int_equal(q_int(db, "SELECT MIN(id) < MAX(id) FROM checkpoints"), 1);

  /* Rows that are not what the store writes are refused on load. */
  s = open_store(f, 0);
  exec_sql(db, "UPDATE checkpoints SET bytes = bytes + 1 WHERE updates = 300");
  assert_int_equal(frl_store_load_checkpoint(s, 0, &info, &blob, &len), FRL_ECORRUPT);
  exec_sql(db, "UPDATE checkpoints SET blob = 'text', bytes = 4 WHERE updates = 300");
  assert_int_equal(frl_store_load_checkpoint(s, 0, &info, &blob, &len), FRL_ECORRUPT);
  expect_loaded(s, 1, 7000, 2, 200);
  assert_int_equal(frl_store_save_checkpoint(s, &info, "x", 1, 0), FRL_EUSAGE);
  sqlite3_close(db);
  frl_store_close(&s);
}

/* A checkpoint that does not fit (PRAGMA max_page_count, as a full disk) commits nothing: the
 * previous two stay whole. */
static void test_store_write_that_fails_keeps_previous(void **state) {
  store_fixture_t *f = *state;
  frl_store_t *s = open_store(f, 256 * 1024);
  save(s, 20000, 1, 100);
  save(s, 20000, 2, 200);
  uint8_t *big = tagged(1 << 20, 9);
  frl_store_checkpoint_t info = {.created = 1.0, .updates = 999};
  assert_int_equal(frl_store_save_checkpoint(s, &info, big, 1 << 20, 2), -ENOSPC);
  free(big);
  int count = 0;
  assert_int_equal(frl_store_count_checkpoints(s, &count), 0);
  assert_int_equal(count, 2);
  expect_loaded(s, 0, 20000, 2, 200);
  expect_loaded(s, 1, 20000, 1, 100);
  /* And the store still takes a checkpoint that fits, trimming the oldest. */
  save(s, 20000, 3, 300);
  expect_loaded(s, 0, 20000, 3, 300);
  expect_loaded(s, 1, 20000, 2, 200);
  frl_store_close(&s);
}

/* The totals a resumed learner adds up, read from the actors table and the episodes key. */
static void test_store_totals_returns_and_versions(void **state) {
  store_fixture_t *f = *state;
  frl_store_t *s = open_store(f, 0);
  frl_store_totals_t t;
  assert_int_equal(frl_store_totals(s, &t), 0);
  assert_memory_equal(&t, &(frl_store_totals_t){0}, sizeof t);
  uint64_t v = 99;
  assert_int_equal(frl_store_latest_version(s, &v), 0);
  assert_int_equal(v, 0);

  float obs[6 * 2] = {0}, rew[6] = {0}, disc[6] = {0};
  int32_t act[6] = {0};
  uint64_t version[6] = {3, 3, 4, 4, 5, 9};
  frl_episode_stat_t ep[3] = {{.episode_return = 1.5f, .length = 10},
                              {.episode_return = 2.5f, .length = 11},
                              {.episode_return = NAN, .length = 12}};
  uint64_t next = 1;
  const char *actors[] = {"a", "b", "a"};
  const uint32_t counts[] = {6, 4, 2}, episodes[] = {1, 0, 2}, steps[] = {7, 5, 30};
  for (int k = 0; k < 3; k++) {
    frl_experience_t b = {.actor = actors[k],
                          .seq = (uint64_t)k + 1,
                          .count = counts[k],
                          .obs_dim = 2,
                          .act_dim = 1,
                          .obs = obs,
                          .action_index = act,
                          .n_action_index = counts[k],
                          .reward = rew,
                          .discount = disc,
                          .next_obs = obs,
                          .policy_version = version,
                          .n_policy_version = counts[k],
                          .n_episodes = episodes[k],
                          .episodes_in = k == 0 ? ep : ep + 1,
                          .env_steps = steps[k]};
    bool dup = true;
    assert_int_equal(frl_store_insert_batch(s, &b, next, NULL, 0, 5.0, &dup), 0);
    assert_false(dup);
    next += counts[k];
  }
  assert_int_equal(frl_store_totals(s, &t), 0);
  assert_int_equal(t.batches, 3);
  assert_int_equal(t.transitions, 12);
  assert_int_equal(t.env_steps, 42);
  assert_int_equal(t.last_episode_id, 3);

  float r[8];
  int n = -1;
  assert_int_equal(frl_store_recent_returns(s, r, 8, &n), 0);
  assert_int_equal(n, 3);
  assert_true(r[0] == 1.5f && r[1] == 2.5f && isnan(r[2])); /* oldest first; NULL is NaN */
  assert_int_equal(frl_store_recent_returns(s, r, 2, &n), 0);
  assert_int_equal(n, 2);
  assert_true(r[0] == 2.5f && isnan(r[1]));

  /* Items acted with up to v9 (first batch's last row); a training row says v12. */
  assert_int_equal(frl_store_latest_version(s, &v), 0);
  assert_int_equal(v, 9);
  frl_store_progress_t p = {.updates = 1, .params_version = 12};
  assert_int_equal(frl_store_log_progress(s, &p, 6.0), 0);
  assert_int_equal(frl_store_latest_version(s, &v), 0);
  assert_int_equal(v, 12);
  frl_store_close(&s);
}

/* ---- a checkpoint through the store, end to end --------------------------------------------- */

static void test_checkpoint_through_store(void **state) {
  store_fixture_t *f = *state;
  make_batches(3, 2, 0, 4);
  frl_agent_config_t c = agent_config(FRL_ALGO_SAC, 3, 2, 16, 16, 1);
  frl_agent_t *a = frl_agent_new(&c);
  train(a, 0, 4);
  frl_checkpoint_learner_t l = some_learner(), out = {0};
  uint8_t *blob = NULL;
  size_t len = 0;
  assert_int_equal(frl_checkpoint_encode("t", a, NULL, &l, 3.0, &blob, &len), 0);
  frl_store_t *s = open_store(f, 0);
  frl_store_checkpoint_t info = {.created = 3.0, .updates = 4};
  assert_int_equal(frl_store_save_checkpoint(s, &info, blob, len, 2), 0);
  frl_store_close(&s);
  free(blob);

  s = open_store(f, 0);
  void *back = NULL;
  assert_int_equal(frl_store_load_checkpoint(s, 0, &info, &back, &len), 0);
  c.seed = 2;
  frl_agent_t *b = frl_agent_new(&c);
  assert_int_equal(frl_checkpoint_restore(back, len, "t", b, NULL, &out, NULL, 0), 0);
  snapshot_t sa = snapshot(a, NULL), sb = snapshot(b, NULL);
  assert_true(same(sa, sb));
  assert_memory_equal(&l, &out, sizeof l);
  drop(&sa);
  drop(&sb);
  free(back);
  frl_store_close(&s);
  frl_agent_destroy(&a);
  frl_agent_destroy(&b);
}

int main(void) {
  frl_log_init("test", FRL_LOG_ERROR + 1); /* refusals log; keep the output to results */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dqn_continues_identically),
      cmocka_unit_test(test_sac_continues_identically),
      cmocka_unit_test(test_td3_continues_identically),
      cmocka_unit_test(test_checksum_catches_every_bit_and_length),
      cmocka_unit_test(test_every_truncation_refused),
      cmocka_unit_test(test_every_byte_flip_refused),
      cmocka_unit_test(test_damage_behind_valid_checksum_refused),
      cmocka_unit_test(test_encode_refuses_what_restore_would),
      cmocka_unit_test(test_format_1_restores),
      cmocka_unit_test(test_other_identity_refused),
      cmocka_unit_test_setup_teardown(test_store_keeps_newest_two, store_setup, store_teardown),
      cmocka_unit_test_setup_teardown(test_store_write_that_fails_keeps_previous, store_setup,
                                      store_teardown),
      cmocka_unit_test_setup_teardown(test_store_totals_returns_and_versions, store_setup,
                                      store_teardown),
      cmocka_unit_test_setup_teardown(test_checkpoint_through_store, store_setup, store_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
