/* test_replay.c: prioritized replay over a real SQLite store: validation messages, payload
 * round trip, FIFO eviction, dedup, priority formula and the running max, importance weights
 * against the closed form, the sampling distribution (chi-square), priority updates for
 * evicted ids, flush (whole, and in slices: same end state, item_id order, bounded slices,
 * items marked during a pass, retry after an injected error), and a rebuild after reopen that
 * samples identically. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "replay.h"
#include "store.h"
#include "temp_store.h"

#define OBS 4
#define MAXN 64
#define ALPHA 0.6
#define EPS 0.01

typedef struct {
  temp_store_t tmp;
  frl_store_t *store;
  frl_replay_t *replay;
  frl_replay_config_t cfg;
} fixture_t;

typedef struct {
  float obs[MAXN * OBS], next_obs[MAXN * OBS], reward[MAXN], discount[MAXN], td[MAXN];
  int32_t action[MAXN];
  float action_vec[MAXN * 2];
  frl_episode_stat_t ep[2];
  frl_experience_t b;
} batch_t;

/* Every payload field of item `id` is a function of id, so a sample can be checked alone. */
static float obs_of(uint64_t id, uint32_t k) { return (float)id * 10.0f + (float)k; }
static int32_t action_of(uint64_t id) { return (int32_t)(id % 3 == 0); }
static float reward_of(uint64_t id) { return 0.5f * (float)id; }
static float discount_of(uint64_t id) { return id % 4 == 0 ? 0.0f : 0.99f; }

/* A discrete batch of count items for ids first.. (the ids the replay will issue).
 * td NULL: no actor priorities. */
static void make_batch(batch_t *t, const char *actor, uint64_t seq, uint64_t first, uint32_t count,
                       const float *td) {
  memset(t, 0, sizeof *t);
  for (uint32_t i = 0; i < count; i++) {
    uint64_t id = first + i;
    for (uint32_t k = 0; k < OBS; k++) {
      t->obs[i * OBS + k] = obs_of(id, k);
      t->next_obs[i * OBS + k] = -obs_of(id, k);
    }
    t->action[i] = action_of(id);
    t->reward[i] = reward_of(id);
    t->discount[i] = discount_of(id);
    if (td) t->td[i] = td[i];
  }
  t->ep[0] = (frl_episode_stat_t){.episode_return = 12.0f, .length = 12};
  t->b = (frl_experience_t){.actor = actor,
                            .seq = seq,
                            .count = count,
                            .obs_dim = OBS,
                            .act_dim = 1,
                            .obs = t->obs,
                            .action_index = t->action,
                            .n_action_index = count,
                            .reward = t->reward,
                            .discount = t->discount,
                            .next_obs = t->next_obs,
                            .priority = td ? t->td : NULL,
                            .n_priority = td ? count : 0,
                            .n_episodes = 1,
                            .episodes_in = t->ep,
                            .env_steps = count};
}

static frl_replay_config_t default_config(uint32_t capacity) {
  return (frl_replay_config_t){.capacity = capacity, .obs_dim = OBS, .act_dim = 1, .n_actions = 2,
                               .alpha = ALPHA, .eps = EPS, .prioritized = true, .max_batch = 256};
}

static void open_all(fixture_t *f, const frl_replay_config_t *cfg) {
  frl_store_config_t sc = {.path = f->tmp.path, .obs_dim = cfg->obs_dim, .act_dim = cfg->act_dim,
                           .discrete = cfg->n_actions > 0};
  assert_int_equal(frl_store_open(&f->store, &sc), 0);
  f->cfg = *cfg;
  assert_int_equal(frl_replay_open(&f->replay, cfg, f->store), 0);
}

static void close_all(fixture_t *f) {
  frl_replay_close(&f->replay);
  frl_store_close(&f->store);
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  if (temp_store_make(&f->tmp, "test_replay") != 0) {
    free(f);
    return -1;
  }
  frl_replay_config_t cfg = default_config(1000);
  open_all(f, &cfg);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  close_all(f);
  temp_store_remove(&f->tmp);
  free(f);
  return 0;
}

static void reopen(fixture_t *f, const frl_replay_config_t *cfg) {
  close_all(f);
  open_all(f, cfg);
}

/* Inserts count items with the next ids; returns the outcome. */
static frl_insert_outcome_t insert(fixture_t *f, const char *actor, uint64_t seq, uint32_t count,
                                   const float *td) {
  batch_t t;
  make_batch(&t, actor, seq, frl_replay_inserted_total(f->replay) + 1, count, td);
  frl_insert_outcome_t outcome = FRL_INSERT_DUPLICATE;
  char err[256] = "";
  int rc = frl_replay_insert(f->replay, &t.b, 1000.0, &outcome, err, sizeof err);
  if (rc) fail_msg("insert: %s (%s)", err, frl_strerror(rc));
  return outcome;
}

static void check_payload(const fixture_t *f, const frl_replay_sample_t *s) {
  for (uint32_t j = 0; j < s->B; j++) {
    uint64_t id = s->item_id[j];
    for (uint32_t k = 0; k < f->cfg.obs_dim; k++) {
      assert_true(s->obs[j * f->cfg.obs_dim + k] == obs_of(id, k));
      assert_true(s->next_obs[j * f->cfg.obs_dim + k] == -obs_of(id, k));
    }
    if (f->cfg.n_actions) assert_int_equal(s->action_index[j], action_of(id));
    assert_true(s->reward[j] == reward_of(id));
    assert_true(s->discount[j] == discount_of(id));
  }
}

static double q_real(const fixture_t *f, const char *sql) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_open_v2(f->tmp.path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s", sqlite3_errmsg(db));
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  double v = sqlite3_column_type(st, 0) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static void exec_sql(const fixture_t *f, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(f->tmp.path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

/* chi-square 0.999 quantile, Wilson-Hilferty (see test_sumtree.c). */
static double chi2_quantile_999(double k) {
  const double z = 3.090232306167813;
  double c = 2.0 / (9.0 * k);
  double t = 1.0 - c + z * sqrt(c);
  return k * t * t * t;
}

/* ---------------------------------------------------------------------------------------- */

typedef void (*mutate_fn)(batch_t *t);
static void m_obs_dim(batch_t *t) { t->b.obs_dim = 5; }
static void m_act_dim(batch_t *t) { t->b.act_dim = 2; }
static void m_action_high(batch_t *t) { t->action[3] = 2; }
static void m_action_negative(batch_t *t) { t->action[0] = -1; }
static void m_obs_nan(batch_t *t) { t->obs[2 * OBS + 1] = NAN; }
static void m_next_obs_inf(batch_t *t) { t->next_obs[3] = INFINITY; }
static void m_reward_nan(batch_t *t) { t->reward[4] = NAN; }
static void m_discount_high(batch_t *t) { t->discount[1] = 1.5f; }
static void m_discount_negative(batch_t *t) { t->discount[2] = -0.25f; }
static void m_priority_negative(batch_t *t) {
  t->b.priority = t->td;
  t->b.n_priority = t->b.count;
  t->td[0] = -1.0f;
}
static void m_priority_nan(batch_t *t) {
  t->b.priority = t->td;
  t->b.n_priority = t->b.count;
  t->td[2] = NAN;
}
static void m_priority_count(batch_t *t) {
  t->b.priority = t->td;
  t->b.n_priority = 3;
}
static void m_action_vec_on_discrete(batch_t *t) {
  t->b.action = t->action_vec;
  t->b.n_action = t->b.count;
}
static void m_no_action_index(batch_t *t) {
  t->b.action_index = NULL;
  t->b.n_action_index = 0;
}
static void m_no_actor(batch_t *t) { t->b.actor = NULL; }
static void m_episode_nan(batch_t *t) { t->ep[0].episode_return = NAN; }

static void test_validation_messages(void **state) {
  fixture_t *f = *state;
  static const struct {
    mutate_fn mutate;
    int code;
    const char *message;
  } cases[] = {
      {m_obs_dim, FRL_EDIM, "ExperienceBatch.obs_dim: 5, task has obs_dim 4"},
      {m_act_dim, FRL_EDIM, "ExperienceBatch.act_dim: 2, task has act_dim 1"},
      {m_action_high, FRL_EPROTO, "ExperienceBatch.action_index[3]: 2, must be in [0, 2)"},
      {m_action_negative, FRL_EPROTO, "ExperienceBatch.action_index[0]: -1, must be in [0, 2)"},
      {m_obs_nan, FRL_EPROTO, "ExperienceBatch.obs[2][1]: nan, must be finite"},
      {m_next_obs_inf, FRL_EPROTO, "ExperienceBatch.next_obs[0][3]: inf, must be finite"},
      {m_reward_nan, FRL_EPROTO, "ExperienceBatch.reward[4]: nan, must be finite"},
      {m_discount_high, FRL_EPROTO, "ExperienceBatch.discount[1]: 1.5, must be in [0, 1]"},
      {m_discount_negative, FRL_EPROTO, "ExperienceBatch.discount[2]: -0.25, must be in [0, 1]"},
      {m_priority_negative, FRL_EPROTO, "ExperienceBatch.priority[0]: -1, must be finite and >= 0"},
      {m_priority_nan, FRL_EPROTO, "ExperienceBatch.priority[2]: nan, must be finite and >= 0"},
      {m_priority_count, FRL_EDIM, "ExperienceBatch.priority: 3 floats, expected 0 or count = 5"},
      {m_action_vec_on_discrete, FRL_EDIM,
       "ExperienceBatch.action: 5 floats, expected 0 (discrete task)"},
      {m_no_action_index, FRL_EDIM,
       "ExperienceBatch.action_index: 0 ints, expected count = 5 (discrete task)"},
      {m_no_actor, FRL_EPROTO, "ExperienceBatch.actor: missing or empty"},
      {m_episode_nan, FRL_EPROTO,
       "ExperienceBatch.episodes[0].episode_return: nan, must be finite"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    batch_t t;
    make_batch(&t, "actor-1", c + 1, 1, 5, NULL);
    cases[c].mutate(&t);
    char err[256] = "";
    frl_insert_outcome_t outcome = FRL_INSERT_OK;
    int rc = frl_replay_insert(f->replay, &t.b, 1000.0, &outcome, err, sizeof err);
    assert_int_equal(rc, cases[c].code);
    assert_string_equal(err, cases[c].message);
  }
  /* Nothing was stored, in memory or on disk. */
  assert_int_equal(frl_replay_size(f->replay), 0);
  assert_int_equal(frl_replay_inserted_total(f->replay), 0);
  uint64_t max_id = 1;
  assert_int_equal(frl_store_max_item_id(f->store, &max_id), 0);
  assert_int_equal(max_id, 0);
  /* The unmutated batch is fine. */
  assert_int_equal(insert(f, "actor-1", 100, 5, NULL), FRL_INSERT_OK);
}

static void test_sample_payload_and_errors(void **state) {
  fixture_t *f = *state;
  frl_rng_t rng;
  frl_rng_seed(&rng, 1);
  const frl_replay_sample_t *s = NULL;
  assert_int_equal(frl_replay_sample(f->replay, 32, 0.4, &rng, &s), FRL_EBUSY);
  for (uint64_t seq = 1; seq <= 3; seq++)
    assert_int_equal(insert(f, "a", seq, 50, NULL), FRL_INSERT_OK);
  assert_int_equal(frl_replay_size(f->replay), 150);
  assert_int_equal(frl_replay_sample(f->replay, 0, 0.4, &rng, &s), FRL_EUSAGE);
  assert_int_equal(frl_replay_sample(f->replay, 257, 0.4, &rng, &s), FRL_EUSAGE);
  assert_int_equal(frl_replay_sample(f->replay, 256, NAN, &rng, &s), FRL_EUSAGE);
  for (int k = 0; k < 20; k++) {
    assert_int_equal(frl_replay_sample(f->replay, 256, 0.4, &rng, &s), 0);
    assert_int_equal(s->B, 256);
    assert_null(s->action);
    for (uint32_t j = 0; j < s->B; j++) {
      assert_true(s->item_id[j] >= 1 && s->item_id[j] <= 150);
      assert_true(s->weight[j] == 1.0f); /* all priorities equal */
    }
    check_payload(f, s);
  }
}

static void test_fifo_eviction(void **state) {
  fixture_t *f = *state;
  frl_replay_config_t cfg = default_config(8);
  reopen(f, &cfg);
  for (uint64_t seq = 1; seq <= 4; seq++) insert(f, "a", seq, 5, NULL);
  assert_int_equal(frl_replay_size(f->replay), 8);
  assert_int_equal(frl_replay_inserted_total(f->replay), 20);
  frl_rng_t rng;
  frl_rng_seed(&rng, 2);
  int seen[21] = {0};
  for (int k = 0; k < 50; k++) {
    const frl_replay_sample_t *s = NULL;
    assert_int_equal(frl_replay_sample(f->replay, 16, 0.4, &rng, &s), 0);
    check_payload(f, s);
    for (uint32_t j = 0; j < s->B; j++) {
      assert_true(s->item_id[j] >= 13 && s->item_id[j] <= 20);
      seen[s->item_id[j]]++;
    }
  }
  for (int id = 13; id <= 20; id++) assert_true(seen[id] > 0);
  assert_true(q_real(f, "SELECT MIN(item_id) FROM items") == 13);
  assert_true(q_real(f, "SELECT COUNT(*) FROM items") == 8);
  /* A batch larger than the capacity keeps only its newest items. */
  insert(f, "a", 5, 12, NULL);
  assert_int_equal(frl_replay_size(f->replay), 8);
  assert_true(q_real(f, "SELECT MIN(item_id) FROM items") == 25);
  const frl_replay_sample_t *s = NULL;
  assert_int_equal(frl_replay_sample(f->replay, 64, 0.4, &rng, &s), 0);
  for (uint32_t j = 0; j < s->B; j++) assert_true(s->item_id[j] >= 25 && s->item_id[j] <= 32);
  check_payload(f, s);
}

static void test_dedup(void **state) {
  fixture_t *f = *state;
  batch_t t;
  make_batch(&t, "actor-7", 9, 1, 5, NULL);
  frl_insert_outcome_t outcome;
  char err[128];
  assert_int_equal(frl_replay_insert(f->replay, &t.b, 1.0, &outcome, err, sizeof err), 0);
  assert_int_equal(outcome, FRL_INSERT_OK);
  assert_int_equal(frl_replay_insert(f->replay, &t.b, 2.0, &outcome, err, sizeof err), 0);
  assert_int_equal(outcome, FRL_INSERT_DUPLICATE);
  assert_int_equal(frl_replay_size(f->replay), 5);
  assert_int_equal(frl_replay_inserted_total(f->replay), 5);
  assert_true(q_real(f, "SELECT COUNT(*) FROM items") == 5);
  assert_true(q_real(f, "SELECT COUNT(*) FROM episodes") == 1);
}

/* p = (|delta| + eps)^alpha for actor priorities; the first items without one get 1 (p_1 of
 * Schaul et al.), later ones the running max, whatever it is. */
static void test_priorities_and_running_max(void **state) {
  fixture_t *f = *state;
  insert(f, "a", 1, 2, NULL);
  assert_true(frl_replay_max_priority(f->replay) == 1.0);
  assert_true(q_real(f, "SELECT priority FROM items WHERE item_id = 1") == 1.0);
  const float td[3] = {0.0f, 2.5f, 10.0f};
  insert(f, "a", 2, 3, td);
  for (int i = 0; i < 3; i++) {
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT priority FROM items WHERE item_id = %d", 3 + i);
    assert_true(q_real(f, sql) == (double)(float)pow(td[i] + EPS, ALPHA));
  }
  const double pmax = (float)pow(10.0 + EPS, ALPHA);
  assert_true(frl_replay_max_priority(f->replay) == pmax);
  insert(f, "a", 3, 2, NULL);
  assert_true(q_real(f, "SELECT priority FROM items WHERE item_id = 6") == pmax);
  assert_true(q_real(f, "SELECT priority FROM items WHERE item_id = 7") == pmax);
  /* The max only rises: updates to small priorities leave it. */
  uint64_t ids[1] = {5};
  float small[1] = {0.0f};
  frl_replay_update_priorities(f->replay, ids, small, 1);
  assert_true(frl_replay_max_priority(f->replay) == pmax);
}

/* When every priority so far is small, new items get that small max, not 1. */
static void test_running_max_below_one(void **state) {
  fixture_t *f = *state;
  const float td[4] = {0.001f, 0.002f, 0.0f, 0.003f};
  insert(f, "a", 1, 4, td);
  const double pmax = (float)pow(0.003 + EPS, ALPHA);
  assert_true(pmax < 0.1);
  assert_true(frl_replay_max_priority(f->replay) == (double)(float)pmax);
  insert(f, "a", 2, 3, NULL);
  assert_true(q_real(f, "SELECT MAX(priority) FROM items") == (double)(float)pmax);
  assert_true(q_real(f, "SELECT COUNT(*) FROM items WHERE priority = "
                        "(SELECT MAX(priority) FROM items)") == 4);
}

/* 50 items with known priorities: the sampled frequencies follow p_i / sum p (chi-square),
 * and each weight equals the closed form (N P(i))^-beta / max_j (N P(j))^-beta. */
static void test_distribution_and_weights(void **state) {
  fixture_t *f = *state;
  enum { N = 50 };
  float td[N];
  double p[N], total = 0;
  for (int i = 0; i < N; i++) {
    td[i] = 0.05f * (float)(i * i % 37) + 0.1f;
    p[i] = (float)pow(td[i] + EPS, ALPHA);
    total += p[i];
  }
  insert(f, "a", 1, N, td);
  const double beta = 0.4;
  double wmax = 0;
  for (int i = 0; i < N; i++) wmax = fmax(wmax, pow(N * p[i] / total, -beta));
  long count[N] = {0};
  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
  const int batches = 400, B = 128;
  for (int k = 0; k < batches; k++) {
    const frl_replay_sample_t *s = NULL;
    assert_int_equal(frl_replay_sample(f->replay, B, beta, &rng, &s), 0);
    for (int j = 0; j < B; j++) {
      const uint64_t i = s->item_id[j] - 1;
      assert_true(i < N);
      if (i >= N) continue; /* not reached; tells static analysis the index is bounded */
      count[i]++;
      double w = pow(N * p[i] / total, -beta) / wmax;
      assert_true(fabs(s->weight[j] - w) <= 1e-6 * w);
      assert_true(s->weight[j] <= 1.0f);
    }
  }
  double chi2 = 0, chi2_uniform = 0;
  const double draws = (double)batches * B;
  for (int i = 0; i < N; i++) {
    double e = draws * p[i] / total, eu = draws / N;
    chi2 += (count[i] - e) * (count[i] - e) / e;
    chi2_uniform += (count[i] - eu) * (count[i] - eu) / eu;
  }
  assert_true(chi2 < chi2_quantile_999(N - 1));
  assert_true(chi2_uniform > chi2_quantile_999(N - 1));
}

static void test_uniform_mode(void **state) {
  fixture_t *f = *state;
  frl_replay_config_t cfg = default_config(1000);
  cfg.prioritized = false;
  reopen(f, &cfg);
  enum { N = 40 };
  float td[N];
  for (int i = 0; i < N; i++) td[i] = (float)(i * i);
  insert(f, "a", 1, N, td);
  long count[N] = {0};
  frl_rng_t rng;
  frl_rng_seed(&rng, 4);
  for (int k = 0; k < 200; k++) {
    const frl_replay_sample_t *s = NULL;
    assert_int_equal(frl_replay_sample(f->replay, 100, 1.0, &rng, &s), 0);
    for (uint32_t j = 0; j < s->B; j++) {
      assert_true(s->weight[j] == 1.0f);
      count[s->item_id[j] - 1]++;
    }
  }
  double chi2 = 0, e = 200.0 * 100 / N;
  for (int i = 0; i < N; i++) chi2 += (count[i] - e) * (count[i] - e) / e;
  assert_true(chi2 < chi2_quantile_999(N - 1));
  /* Priorities are still kept for the store (and a later prioritized run). */
  assert_true(q_real(f, "SELECT priority FROM items WHERE item_id = 40") ==
              (double)(float)pow(39.0 * 39.0 + EPS, ALPHA));
}

static void test_update_priorities_and_flush(void **state) {
  fixture_t *f = *state;
  frl_replay_config_t cfg = default_config(8);
  reopen(f, &cfg);
  insert(f, "a", 1, 5, NULL); /* ids 1..5 */
  insert(f, "a", 2, 5, NULL); /* ids 6..10: 1 and 2 evicted, their slots hold 9 and 10 */
  const uint64_t ids[5] = {1, 9, 12345, 9, 4};
  const float td[5] = {100.0f, 0.0f, 50.0f, 0.0f, NAN};
  frl_replay_update_priorities(f->replay, ids, td, 5);
  /* The evicted id and the never-issued one changed nothing, nor raised the max. */
  assert_true(frl_replay_max_priority(f->replay) == 1.0);
  assert_int_equal(frl_replay_flush(f->replay), 0);
  const double p0 = (float)pow(EPS, ALPHA);
  assert_true(q_real(f, "SELECT priority FROM items WHERE item_id = 9") == p0);
  assert_true(q_real(f, "SELECT times_sampled FROM items WHERE item_id = 9") == 2);
  assert_true(q_real(f, "SELECT priority FROM items WHERE item_id = 10") == 1.0);
  assert_true(q_real(f, "SELECT times_sampled FROM items WHERE item_id = 10") == 0);
  /* A NaN TD error counts the sample but keeps the priority. */
  assert_true(q_real(f, "SELECT priority FROM items WHERE item_id = 4") == 1.0);
  assert_true(q_real(f, "SELECT times_sampled FROM items WHERE item_id = 4") == 1);
  assert_true(q_real(f, "SELECT SUM(times_sampled) FROM items") == 3);
  /* Nothing dirty: a second flush writes nothing. */
  assert_int_equal(frl_replay_flush(f->replay), 0);
  assert_true(q_real(f, "SELECT SUM(times_sampled) FROM items") == 3);

  /* Sample/update rounds: the store's counts add up to the updates made. */
  frl_rng_t rng;
  frl_rng_seed(&rng, 5);
  long updates = 0;
  for (int k = 0; k < 30; k++) {
    const frl_replay_sample_t *s = NULL;
    assert_int_equal(frl_replay_sample(f->replay, 16, 0.5, &rng, &s), 0);
    float tds[16];
    uint64_t sampled[16];
    for (uint32_t j = 0; j < s->B; j++) {
      tds[j] = (float)(s->item_id[j] % 5);
      sampled[j] = s->item_id[j];
    }
    frl_replay_update_priorities(f->replay, sampled, tds, s->B);
    updates += s->B;
    if (k % 10 == 9) assert_int_equal(frl_replay_flush(f->replay), 0);
  }
  assert_true(q_real(f, "SELECT SUM(times_sampled) FROM items") == 3 + updates);
  assert_true(q_real(f, "SELECT priority FROM items WHERE item_id = 7") ==
              (double)(float)pow(2.0 + EPS, ALPHA));
}

/* Flush walks the ring in id order from the oldest slot, skipping clean 64-slot words; with the
 * ring wrapped and dirty slots spread over several words every update must still arrive. */
static void test_flush_wrapped_ring(void **state) {
  fixture_t *f = *state;
  frl_replay_config_t cfg = default_config(200);
  reopen(f, &cfg);
  for (uint64_t seq = 1; seq <= 7; seq++) insert(f, "a", seq, 50, NULL); /* ids 1..350 */
  assert_int_equal(frl_replay_size(f->replay), 200);
  uint64_t ids[200];
  float td[200];
  uint32_t n = 0;
  double expected = 0;
  for (uint64_t id = 151; id <= 350; id++) {
    if (id % 3 != 0 && id != 151 && id != 350) continue;
    ids[n] = id;
    td[n] = (float)(id % 7);
    expected += (float)pow(td[n] + EPS, ALPHA);
    n++;
  }
  frl_replay_update_priorities(f->replay, ids, td, n);
  frl_replay_update_priorities(f->replay, ids, td, 1); /* id 151 twice */
  assert_int_equal(frl_replay_flush(f->replay), 0);
  assert_true(q_real(f, "SELECT SUM(times_sampled) FROM items") == n + 1);
  assert_true(q_real(f, "SELECT COUNT(*) FROM items WHERE times_sampled > 0") == n);
  assert_true(q_real(f, "SELECT times_sampled FROM items WHERE item_id = 151") == 2);
  assert_true(q_real(f, "SELECT times_sampled FROM items WHERE item_id = 350") == 1);
  double sum = q_real(f, "SELECT SUM(priority) FROM items WHERE times_sampled > 0");
  assert_true(fabs(sum - expected) < 1e-9 * expected);
}

/* Close and reopen: the rebuilt index has the same size, ids, priorities and so the same
 * samples for the same seed; a smaller capacity keeps the newest items. */
static void test_rebuild_identical(void **state) {
  fixture_t *f = *state;
  frl_replay_config_t cfg = default_config(64);
  reopen(f, &cfg);
  frl_rng_t rng;
  frl_rng_seed(&rng, 6);
  for (uint64_t seq = 1; seq <= 10; seq++) {
    float td[10];
    for (int i = 0; i < 10; i++) td[i] = (float)frl_rng_uniform(&rng) * 3.0f;
    insert(f, seq % 2 ? "a" : "b", seq, 10, seq % 3 ? td : NULL);
    const frl_replay_sample_t *s = NULL;
    assert_int_equal(frl_replay_sample(f->replay, 8, 0.5, &rng, &s), 0);
    float tds[8];
    uint64_t ids[8];
    for (int j = 0; j < 8; j++) {
      ids[j] = s->item_id[j];
      tds[j] = (float)frl_rng_uniform(&rng);
    }
    frl_replay_update_priorities(f->replay, ids, tds, 8);
  }
  /* No explicit flush: closing the replay writes the dirty entries back. */
  enum { B = 200 };
  uint64_t ids[B];
  float weights[B];
  frl_rng_seed(&rng, 77);
  const frl_replay_sample_t *s = NULL;
  assert_int_equal(frl_replay_sample(f->replay, B, 0.7, &rng, &s), 0);
  memcpy(ids, s->item_id, sizeof ids);
  memcpy(weights, s->weight, sizeof weights);
  uint64_t size = frl_replay_size(f->replay), total = frl_replay_inserted_total(f->replay);
  assert_int_equal(size, 64);
  assert_int_equal(total, 100);

  reopen(f, &cfg);
  assert_int_equal(frl_replay_size(f->replay), size);
  assert_int_equal(frl_replay_inserted_total(f->replay), total);
  frl_rng_seed(&rng, 77);
  assert_int_equal(frl_replay_sample(f->replay, B, 0.7, &rng, &s), 0);
  for (int j = 0; j < B; j++) {
    assert_int_equal(s->item_id[j], ids[j]);
    assert_true(s->weight[j] == weights[j]);
  }
  check_payload(f, s);
  /* Ids continue where they stopped. */
  insert(f, "a", 11, 3, NULL);
  assert_int_equal(frl_replay_inserted_total(f->replay), 103);
  assert_true(q_real(f, "SELECT MAX(item_id) FROM items") == 103);

  cfg.capacity = 32;
  reopen(f, &cfg);
  assert_int_equal(frl_replay_size(f->replay), 32);
  for (int k = 0; k < 10; k++) {
    assert_int_equal(frl_replay_sample(f->replay, 64, 0.7, &rng, &s), 0);
    for (uint32_t j = 0; j < s->B; j++) assert_true(s->item_id[j] >= 72 && s->item_id[j] <= 103);
    check_payload(f, s);
  }
}

/* Inserts a demonstration batch of count items with the next demonstration ids. */
static void insert_demo(fixture_t *f, uint64_t seq, uint64_t first, uint32_t count) {
  batch_t t;
  make_batch(&t, "teacher", seq, first, count, NULL);
  t.b.demonstration = true;
  frl_insert_outcome_t outcome = FRL_INSERT_DUPLICATE;
  char err[256] = "";
  int rc = frl_replay_insert(f->replay, &t.b, 1000.0, &outcome, err, sizeof err);
  if (rc) fail_msg("insert: %s (%s)", err, frl_strerror(rc));
  assert_int_equal(outcome, FRL_INSERT_OK);
}

/* Demonstrations: never evicted by agent experience, FIFO among themselves, replayed with
 * the priority bonus, stored with demo = 1, rebuilt after a reopen. */
static void test_demonstrations(void **state) {
  fixture_t *f = *state;
  const uint64_t D0 = FRL_DEMO_ID_BASE;
  frl_replay_config_t cfg = default_config(8);
  cfg.demo_capacity = 4;
  cfg.demo_bonus = 1.0;
  reopen(f, &cfg);
  insert_demo(f, 1, D0, 3);
  for (uint64_t seq = 1; seq <= 5; seq++) insert(f, "a", seq, 5, NULL);
  assert_int_equal(frl_replay_size(f->replay), 8 + 3);
  assert_int_equal(frl_replay_demo_size(f->replay), 3);
  assert_true(q_real(f, "SELECT COUNT(*) FROM items WHERE demo = 1") == 3);
  assert_true(q_real(f, "SELECT MIN(item_id) FROM items WHERE demo = 0") == 18);

  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
  int demo_seen = 0;
  for (int k = 0; k < 40; k++) {
    const frl_replay_sample_t *s = NULL;
    assert_int_equal(frl_replay_sample(f->replay, 16, 0.4, &rng, &s), 0);
    check_payload(f, s);
    for (uint32_t j = 0; j < s->B; j++) {
      uint64_t id = s->item_id[j];
      assert_true((id >= 18 && id <= 25) || (id >= D0 && id < D0 + 3));
      demo_seen += id >= D0;
    }
  }
  assert_true(demo_seen > 0);

  /* The bonus: at zero TD error a demonstration keeps (0 + eps + 1)^alpha, an agent item
   * eps^alpha (Hester et al. 2018). */
  uint64_t ids[2] = {D0 + 1, 20};
  float td[2] = {0.0f, 0.0f};
  frl_replay_update_priorities(f->replay, ids, td, 2);
  assert_int_equal(frl_replay_flush(f->replay), 0);
  char sql[160];
  snprintf(sql, sizeof sql, "SELECT priority FROM items WHERE item_id = %llu",
           (unsigned long long)(D0 + 1));
  assert_float_equal(q_real(f, sql), pow(EPS + 1.0, ALPHA), 1e-6);
  assert_float_equal(q_real(f, "SELECT priority FROM items WHERE item_id = 20"), pow(EPS, ALPHA),
                     1e-6);

  /* FIFO among demonstrations only: 3 + 3 + 3 through 4 slots keeps the newest 4. */
  insert_demo(f, 2, D0 + 3, 3);
  insert_demo(f, 3, D0 + 6, 3);
  assert_int_equal(frl_replay_demo_size(f->replay), 4);
  assert_int_equal(frl_replay_size(f->replay), 8 + 4);
  assert_true(q_real(f, "SELECT COUNT(*) FROM items WHERE demo = 1") == 4);
  snprintf(sql, sizeof sql, "SELECT MIN(item_id) - %llu FROM items WHERE demo = 1",
           (unsigned long long)D0);
  assert_true(q_real(f, sql) == 5);
  assert_true(q_real(f, "SELECT COUNT(*) FROM items WHERE demo = 0") == 8);

  /* Rebuilt after a reopen; demonstration ids continue where they stopped. */
  reopen(f, &cfg);
  assert_int_equal(frl_replay_size(f->replay), 12);
  assert_int_equal(frl_replay_demo_size(f->replay), 4);
  insert_demo(f, 4, D0 + 9, 1);
  snprintf(sql, sizeof sql, "SELECT MAX(item_id) - %llu FROM items", (unsigned long long)D0);
  assert_true(q_real(f, sql) == 9);
  for (int k = 0; k < 10; k++) {
    const frl_replay_sample_t *s = NULL;
    assert_int_equal(frl_replay_sample(f->replay, 32, 0.4, &rng, &s), 0);
    check_payload(f, s);
    for (uint32_t j = 0; j < s->B; j++)
      assert_true(s->item_id[j] < D0 || s->item_id[j] >= D0 + 6);
  }
  /* Without demonstration slots they stay in the store but are not replayed. */
  cfg.demo_capacity = 0;
  reopen(f, &cfg);
  assert_int_equal(frl_replay_size(f->replay), 8);
  assert_int_equal(frl_replay_demo_size(f->replay), 0);
  assert_true(q_real(f, "SELECT COUNT(*) FROM items WHERE demo = 1") == 4);
}

/* frl_replay_sample_demos: only demonstrations, uniformly whatever their priority, weights 1,
 * not counted as samples; only the newest demo_capacity after FIFO eviction; busy without any;
 * and a store edited by hand down to one demonstration in a window of 4096 (the fallback). */
static void test_sample_demos(void **state) {
  fixture_t *f = *state;
  const uint64_t D0 = FRL_DEMO_ID_BASE;
  frl_rng_t rng;
  frl_rng_seed(&rng, 17);
  const frl_replay_sample_t *s = NULL;
  insert(f, "a", 1, 10, NULL);
  assert_int_equal(frl_replay_sample_demos(f->replay, 4, &rng, &s), FRL_EBUSY); /* no slots */
  frl_replay_config_t cfg = default_config(8);
  cfg.demo_capacity = 6;
  reopen(f, &cfg);
  assert_int_equal(frl_replay_sample_demos(f->replay, 4, &rng, &s), FRL_EBUSY); /* none yet */
  insert_demo(f, 1, D0, 5);
  assert_int_equal(frl_replay_sample_demos(f->replay, 0, &rng, &s), FRL_EUSAGE);
  assert_int_equal(frl_replay_sample_demos(f->replay, cfg.max_batch + 1, &rng, &s), FRL_EUSAGE);

  /* One demonstration gets a far larger priority than the rest; cloning still sees each of
   * the five equally often (chi-square, 4 degrees of freedom, 0.1%). */
  uint64_t big = D0 + 2;
  float td = 1000.0f;
  frl_replay_update_priorities(f->replay, &big, &td, 1);
  enum { DRAWS = 200, PER = 100 };
  int count[5] = {0};
  for (int k = 0; k < DRAWS; k++) {
    assert_int_equal(frl_replay_sample_demos(f->replay, PER, &rng, &s), 0);
    assert_int_equal(s->B, PER);
    check_payload(f, s);
    for (uint32_t j = 0; j < s->B; j++) {
      assert_true(s->item_id[j] >= D0 && s->item_id[j] < D0 + 5);
      assert_true(s->weight[j] == 1.0f);
      count[s->item_id[j] - D0]++;
    }
  }
  double chi2 = 0, e = DRAWS * PER / 5.0;
  for (int i = 0; i < 5; i++) chi2 += (count[i] - e) * (count[i] - e) / e;
  if (chi2 > chi2_quantile_999(4)) fail_msg("demonstration draws not uniform: chi2 %.1f", chi2);
  /* Only the priority update counted as a sample. */
  assert_int_equal(frl_replay_flush(f->replay), 0);
  assert_true(q_real(f, "SELECT SUM(times_sampled) FROM items WHERE demo = 1") == 1);

  /* After 4 more, the 6 slots hold the newest 6: ids 3..8. */
  insert_demo(f, 2, D0 + 5, 4);
  int seen[9] = {0};
  for (int k = 0; k < 50; k++) {
    assert_int_equal(frl_replay_sample_demos(f->replay, 64, &rng, &s), 0);
    check_payload(f, s);
    for (uint32_t j = 0; j < s->B; j++) {
      assert_true(s->item_id[j] >= D0 + 3 && s->item_id[j] <= D0 + 8);
      seen[s->item_id[j] - D0] = 1;
    }
  }
  for (int i = 3; i <= 8; i++) assert_true(seen[i]);

  /* 4096 demonstrations in 4096 slots, then all but the newest deleted by hand: almost every
   * draw from the window misses, and the walk to the next occupied slot finds the one left. */
  cfg.demo_capacity = 4096;
  reopen(f, &cfg);
  for (uint64_t k = 0; k < 4096 / 64; k++) insert_demo(f, 3 + k, D0 + 9 + 64 * k, 64);
  const uint64_t newest = D0 + 9 + 4096 - 1;
  close_all(f);
  char sql[160];
  snprintf(sql, sizeof sql, "DELETE FROM items WHERE demo = 1 AND item_id < %llu",
           (unsigned long long)newest);
  exec_sql(f, sql);
  open_all(f, &cfg);
  assert_int_equal(frl_replay_demo_size(f->replay), 1);
  for (int k = 0; k < 10; k++) {
    assert_int_equal(frl_replay_sample_demos(f->replay, 64, &rng, &s), 0);
    for (uint32_t j = 0; j < s->B; j++) assert_true(s->item_id[j] == newest);
    check_payload(f, s);
  }
}

static void test_rebuild_checks_stored_values(void **state) {
  fixture_t *f = *state;
  insert(f, "a", 1, 10, NULL);
  frl_replay_config_t cfg = default_config(1000);
  /* A priority removed by hand gets the max; an impossible discount is refused. */
  close_all(f);
  exec_sql(f, "UPDATE items SET priority = NULL WHERE item_id = 3");
  open_all(f, &cfg);
  assert_int_equal(frl_replay_size(f->replay), 10);
  assert_int_equal(frl_replay_flush(f->replay), 0);
  assert_true(q_real(f, "SELECT priority FROM items WHERE item_id = 3") == 1.0);
  close_all(f);
  exec_sql(f, "UPDATE items SET discount = 2.0 WHERE item_id = 4");
  frl_store_config_t sc = {.path = f->tmp.path, .obs_dim = OBS, .act_dim = 1, .discrete = true};
  assert_int_equal(frl_store_open(&f->store, &sc), 0);
  assert_int_equal(frl_replay_open(&f->replay, &cfg, f->store), FRL_ECORRUPT);
  assert_null(f->replay);
  frl_replay_config_t bad = cfg;
  bad.eps = 0.0;
  assert_int_equal(frl_replay_open(&f->replay, &bad, f->store), FRL_EUSAGE);
  bad = cfg;
  bad.max_batch = 0;
  assert_int_equal(frl_replay_open(&f->replay, &bad, f->store), FRL_EUSAGE);
}

static void test_continuous_task(void **state) {
  fixture_t *f = *state;
  close_all(f);
  unlink(f->tmp.path);
  frl_replay_config_t cfg = default_config(100);
  cfg.act_dim = 2;
  cfg.n_actions = 0;
  open_all(f, &cfg);
  batch_t t;
  make_batch(&t, "a", 1, 1, 6, NULL);
  t.b.action_index = NULL;
  t.b.n_action_index = 0;
  t.b.act_dim = 2;
  for (int i = 0; i < 12; i++) t.action_vec[i] = 0.25f * (float)i;
  t.b.action = t.action_vec;
  t.b.n_action = 12;
  frl_insert_outcome_t outcome;
  char err[256] = "";
  t.action_vec[2] = NAN;
  assert_int_equal(frl_replay_insert(f->replay, &t.b, 1.0, &outcome, err, sizeof err), FRL_EPROTO);
  assert_string_equal(err, "ExperienceBatch.action[1][0]: nan, must be finite");
  t.action_vec[2] = 0.5f;
  assert_int_equal(frl_replay_insert(f->replay, &t.b, 1.0, &outcome, err, sizeof err), 0);
  assert_true(q_real(f, "SELECT COUNT(*) FROM items WHERE action IS NULL AND "
                        "length(action_vec) = 8") == 6);
  for (int pass = 0; pass < 2; pass++) {
    frl_rng_t rng;
    frl_rng_seed(&rng, 8);
    const frl_replay_sample_t *s = NULL;
    assert_int_equal(frl_replay_sample(f->replay, 32, 0.4, &rng, &s), 0);
    assert_null(s->action_index);
    for (uint32_t j = 0; j < s->B; j++) {
      uint64_t i = s->item_id[j] - 1;
      assert_true(s->action[2 * j] == 0.25f * (float)(2 * i));
      assert_true(s->action[2 * j + 1] == 0.25f * (float)(2 * i + 1));
    }
    check_payload(f, s);
    reopen(f, &cfg); /* the second pass checks the rebuilt vectors */
  }
}

/* ---- incremental write-back --------------------------------------------------------------- */

/* Inserts count items into r with its next ids (agent or demonstration). */
static void insert_into(frl_replay_t *r, const char *actor, uint64_t seq, uint32_t count,
                        bool demo, uint64_t first) {
  batch_t t;
  make_batch(&t, actor, seq, first, count, NULL);
  t.b.demonstration = demo;
  frl_insert_outcome_t outcome = FRL_INSERT_DUPLICATE;
  char err[256] = "";
  int rc = frl_replay_insert(r, &t.b, 1000.0, &outcome, err, sizeof err);
  if (rc) fail_msg("insert: %s (%s)", err, frl_strerror(rc));
  assert_int_equal(outcome, FRL_INSERT_OK);
}

/* A log of the item updates that reach the file, in the order they arrive, kept by a trigger
 * that a second connection installs (the store re-prepares its statements by itself). */
static void install_update_log(const char *path) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "CREATE TABLE update_log(seq INTEGER PRIMARY KEY, item_id);"
                                "CREATE TRIGGER log_update AFTER UPDATE ON items BEGIN"
                                " INSERT INTO update_log(item_id) VALUES (new.item_id); END;",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
}

/* The item ids logged after log row `after`, in arrival order; returns how many (<= max). */
static int logged_since(const char *path, int64_t after, uint64_t *ids, int max) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT item_id FROM update_log WHERE seq > ?1 "
                                          "ORDER BY seq", -1, &st, NULL), SQLITE_OK);
  sqlite3_bind_int64(st, 1, after);
  int n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    assert_true(n < max);
    ids[n++] = (uint64_t)sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

/* Every item's (id, priority, times_sampled) of the file, in id order; returns the count. */
static int item_state(const char *path, uint64_t *id, double *priority, int64_t *sampled,
                      int max) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT item_id, priority, times_sampled FROM items "
                                          "ORDER BY item_id", -1, &st, NULL), SQLITE_OK);
  int n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    assert_true(n < max);
    id[n] = (uint64_t)sqlite3_column_int64(st, 0);
    priority[n] = sqlite3_column_double(st, 1);
    sampled[n] = sqlite3_column_int64(st, 2);
    n++;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

/* The same inserts and updates into two replays, one written back whole, the other in slices
 * of 7 rows: the files end identical; every slice holds at most 7 rows, the last one fewer or
 * equal; the whole pass arrives in strictly increasing item_id order, agent items then
 * demonstrations; *remaining counts down exactly by what was written. */
static void test_flush_slices_same_as_full(void **state) {
  fixture_t *f = *state;
  frl_replay_config_t cfg = default_config(300);
  cfg.demo_capacity = 40;
  reopen(f, &cfg);
  char path2[128];
  snprintf(path2, sizeof path2, "%s/sliced.db", f->tmp.dir);
  frl_store_config_t sc = {.path = path2, .obs_dim = OBS, .act_dim = 1, .discrete = true};
  frl_store_t *store2 = NULL;
  frl_replay_t *replay2 = NULL;
  assert_int_equal(frl_store_open(&store2, &sc), 0);
  assert_int_equal(frl_replay_open(&replay2, &cfg, store2), 0);
  frl_replay_t *both[2] = {f->replay, replay2};
  for (int k = 0; k < 2; k++) {
    for (uint64_t seq = 1; seq <= 8; seq++) /* ids 1..400: the ring wrapped, 101..400 live */
      insert_into(both[k], "a", seq, 50, false, (seq - 1) * 50 + 1);
    for (uint64_t seq = 1; seq <= 2; seq++) /* 60 demonstrations, the newest 40 live */
      insert_into(both[k], "teacher", seq, 30, true, FRL_DEMO_ID_BASE + (seq - 1) * 30);
  }
  uint64_t ids[256];
  float td[256];
  uint32_t n = 0;
  for (uint64_t id = 90; id <= 400; id += 3, n++) { /* 90..99 evicted: ignored */
    ids[n] = id;
    td[n] = (float)(id % 11) * 0.5f;
  }
  for (uint64_t d = 25; d < 60; d += 4, n++) {
    ids[n] = FRL_DEMO_ID_BASE + d;
    td[n] = (float)d * 0.1f;
  }
  for (int k = 0; k < 2; k++) {
    frl_replay_update_priorities(both[k], ids, td, n);
    frl_replay_update_priorities(both[k], ids + 10, td + 10, 20); /* sampled twice */
  }
  assert_int_equal(frl_replay_flush_some(replay2, 0, NULL), FRL_EUSAGE);

  assert_int_equal(frl_replay_flush(f->replay), 0);
  install_update_log(path2);
  enum { SLICE = 7 };
  uint32_t before = 0, left = 0, calls = 0, written = 0;
  uint64_t last = 0, got[SLICE + 1];
  assert_int_equal(frl_replay_flush_some(replay2, SLICE, &before), 0);
  int64_t seen = 0;
  int k = logged_since(path2, seen, got, SLICE + 1);
  calls = 1;
  for (;;) {
    assert_true(k <= SLICE);
    for (int j = 0; j < k; j++) {
      assert_true(got[j] > last); /* in item_id order across the whole pass */
      last = got[j];
    }
    seen += k;
    written += (uint32_t)k;
    if (before == 0) break;
    assert_int_equal(k, SLICE); /* full slices until the last */
    assert_int_equal(frl_replay_flush_some(replay2, SLICE, &left), 0);
    calls++;
    k = logged_since(path2, seen, got, SLICE + 1);
    assert_int_equal(left, before - (uint32_t)k);
    before = left;
  }
  /* 100..400 step 3 (101 ids, 99 of them live from 102 on... counted below) and 9 demos. */
  uint64_t live = 0;
  for (uint32_t j = 0; j < n; j++)
    if (ids[j] >= FRL_DEMO_ID_BASE + 20 || (ids[j] >= 101 && ids[j] <= 400)) live++;
  assert_int_equal(written, live);
  assert_int_equal(calls, (live + SLICE - 1) / SLICE);
  assert_true(last >= FRL_DEMO_ID_BASE); /* the demonstrations came last */
  /* Nothing dirty: a call writes nothing and reports nothing left. */
  assert_int_equal(frl_replay_flush_some(replay2, SLICE, &left), 0);
  assert_int_equal(left, 0);
  assert_int_equal(logged_since(path2, seen, got, SLICE + 1), 0);

  enum { MAXI = 400 };
  static uint64_t id_a[MAXI], id_b[MAXI];
  static double p_a[MAXI], p_b[MAXI];
  static int64_t s_a[MAXI], s_b[MAXI];
  int na = item_state(f->tmp.path, id_a, p_a, s_a, MAXI);
  int nb = item_state(path2, id_b, p_b, s_b, MAXI);
  assert_int_equal(na, 340);
  assert_int_equal(nb, na);
  int64_t total = 0;
  for (int j = 0; j < na; j++) {
    assert_int_equal(id_a[j], id_b[j]);
    assert_true(p_a[j] == p_b[j]);
    assert_int_equal(s_a[j], s_b[j]);
    total += s_a[j];
  }
  assert_int_equal(total, (int64_t)live + 20); /* ids 10..29 of the list were sampled twice */
  frl_replay_close(&replay2);
  frl_store_close(&store2);
  unlink(path2);
}

/* Items marked during a pass: ahead of its cursor they are written in the same pass (and
 * counted in *remaining at once), behind it they wait for the next pass; items evicted and
 * replaced meanwhile change nothing but the new items' own values. */
static void test_flush_pass_with_updates(void **state) {
  fixture_t *f = *state;
  frl_replay_config_t cfg = default_config(200);
  reopen(f, &cfg);
  for (uint64_t seq = 1; seq <= 4; seq++) insert(f, "a", seq, 50, NULL); /* ids 1..200 */
  install_update_log(f->tmp.path);
  uint64_t ids[20];
  float td[20];
  for (int j = 0; j < 20; j++) {
    ids[j] = 10 * (uint64_t)(j + 1); /* 10, 20, .. 200 */
    td[j] = 1.0f;
  }
  frl_replay_update_priorities(f->replay, ids, td, 20);
  uint32_t left = 0;
  uint64_t got[64];
  assert_int_equal(frl_replay_flush_some(f->replay, 3, &left), 0); /* 10, 20, 30 */
  assert_int_equal(left, 17);
  const uint64_t behind[1] = {5}, ahead[2] = {150, 155}; /* 150 was dirty already */
  const float two[2] = {2.0f, 2.0f};
  frl_replay_update_priorities(f->replay, behind, two, 1);
  frl_replay_update_priorities(f->replay, ahead, two, 2);
  assert_int_equal(frl_replay_flush_some(f->replay, 3, &left), 0); /* 40, 50, 60 */
  assert_int_equal(left, 18 - 3);
  /* New experience evicts ids 1..50 (5 among them, still dirty: its slot now holds 205). */
  insert(f, "a", 5, 50, NULL);
  uint32_t prev = left;
  while (left) {
    assert_int_equal(frl_replay_flush_some(f->replay, 3, &left), 0);
    assert_true(left < prev);
    prev = left;
  }
  int n = logged_since(f->tmp.path, 0, got, 64);
  const uint64_t pass1[] = {10,  20,  30,  40,  50,  60,  70,  80,  90,  100, 110,
                            120, 130, 140, 150, 155, 160, 170, 180, 190, 200, 205};
  assert_int_equal(n, (int)FRL_ARRAY_LEN(pass1));
  for (int j = 0; j < n; j++) assert_int_equal(got[j], pass1[j]);
  /* Nothing is left dirty: slot 5's mark went with id 205 in this pass. */
  assert_int_equal(frl_replay_flush_some(f->replay, 3, &left), 0);
  assert_int_equal(left, 0);
  assert_int_equal(logged_since(f->tmp.path, n, got, 64), 0);
  assert_true(q_real(f, "SELECT times_sampled FROM items WHERE item_id = 150") == 2);
  assert_true(q_real(f, "SELECT times_sampled FROM items WHERE item_id = 155") == 1);
  assert_true(q_real(f, "SELECT times_sampled FROM items WHERE item_id = 205") == 0);
  /* 60..200 once (10..50 were evicted), 150 once more, 155 once. */
  assert_true(q_real(f, "SELECT SUM(times_sampled) FROM items") == 15 + 1 + 1);
  assert_true(q_real(f, "SELECT priority FROM items WHERE item_id = 155") ==
              (double)(float)pow(2.0 + EPS, ALPHA));

  /* Marked behind the cursor of a pass: written by the next pass, from the oldest item. */
  const uint64_t later[3] = {190, 60, 120};
  frl_replay_update_priorities(f->replay, later, two, 2);
  assert_int_equal(frl_replay_flush_some(f->replay, 1, &left), 0); /* 60 */
  assert_int_equal(left, 1);
  frl_replay_update_priorities(f->replay, later + 2, two, 1); /* 120, ahead again */
  assert_int_equal(frl_replay_flush_some(f->replay, 1, &left), 0); /* 120 */
  assert_int_equal(left, 1);
  assert_int_equal(frl_replay_flush_some(f->replay, 1, &left), 0); /* 190 */
  assert_int_equal(left, 0);
  assert_int_equal(logged_since(f->tmp.path, n, got, 64), 3);
  assert_int_equal(got[0], 60);
  assert_int_equal(got[1], 120);
  assert_int_equal(got[2], 190);
}

/* A slice that fails (a trigger rejects one of its rows, as a read-only or full disk would) is
 * rolled back whole; its items stay dirty and the pass stays at its place, so retries write
 * each item exactly once; frl_replay_flush reports the error the same way. */
static void test_flush_retry_after_error(void **state) {
  fixture_t *f = *state;
  frl_replay_config_t cfg = default_config(100);
  reopen(f, &cfg);
  insert(f, "a", 1, 50, NULL);
  insert(f, "a", 2, 50, NULL); /* ids 1..100 */
  uint64_t ids[50];
  float td[50];
  for (int j = 0; j < 50; j++) {
    ids[j] = 2 * (uint64_t)j + 1; /* 1, 3, .. 99 */
    td[j] = 0.5f;
  }
  frl_replay_update_priorities(f->replay, ids, td, 50);
  exec_sql(f, "CREATE TRIGGER refuse BEFORE UPDATE ON items WHEN old.item_id = 61 BEGIN"
              " SELECT RAISE(ABORT, 'injected failure'); END;");
  uint32_t left = 0;
  for (int k = 0; k < 3; k++) assert_int_equal(frl_replay_flush_some(f->replay, 10, &left), 0);
  assert_int_equal(left, 20); /* 1..59 written */
  for (int k = 0; k < 2; k++) {
    left = 12345;
    assert_int_equal(frl_replay_flush_some(f->replay, 10, &left), FRL_ESQL); /* 61..79 */
    assert_int_equal(left, 12345); /* untouched on error */
    assert_true(q_real(f, "SELECT SUM(times_sampled) FROM items WHERE item_id >= 60") == 0);
    assert_true(q_real(f, "SELECT SUM(times_sampled) FROM items") == 30);
  }
  assert_int_equal(frl_replay_flush(f->replay), FRL_ESQL);
  assert_true(q_real(f, "SELECT SUM(times_sampled) FROM items") == 30);
  exec_sql(f, "DROP TRIGGER refuse");
  assert_int_equal(frl_replay_flush_some(f->replay, 10, &left), 0); /* 61..79 */
  assert_int_equal(left, 10);
  assert_true(q_real(f, "SELECT SUM(times_sampled) FROM items") == 40);
  /* The whole-replay flush finishes the pass. */
  exec_sql(f, "CREATE TRIGGER refuse BEFORE UPDATE ON items WHEN old.item_id = 99 BEGIN"
              " SELECT RAISE(ABORT, 'injected failure'); END;");
  assert_int_equal(frl_replay_flush(f->replay), FRL_ESQL);
  exec_sql(f, "DROP TRIGGER refuse");
  assert_int_equal(frl_replay_flush(f->replay), 0);
  assert_true(q_real(f, "SELECT SUM(times_sampled) FROM items") == 50);
  assert_true(q_real(f, "SELECT COUNT(*) FROM items WHERE times_sampled = 1 AND "
                        "item_id % 2 = 1") == 50);
  assert_int_equal(frl_replay_flush_some(f->replay, 10, &left), 0);
  assert_int_equal(left, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_validation_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sample_payload_and_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fifo_eviction, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_priorities_and_running_max, setup, teardown),
      cmocka_unit_test_setup_teardown(test_running_max_below_one, setup, teardown),
      cmocka_unit_test_setup_teardown(test_distribution_and_weights, setup, teardown),
      cmocka_unit_test_setup_teardown(test_uniform_mode, setup, teardown),
      cmocka_unit_test_setup_teardown(test_update_priorities_and_flush, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flush_wrapped_ring, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rebuild_identical, setup, teardown),
      cmocka_unit_test_setup_teardown(test_demonstrations, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sample_demos, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rebuild_checks_stored_values, setup, teardown),
      cmocka_unit_test_setup_teardown(test_continuous_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flush_slices_same_as_full, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flush_pass_with_updates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flush_retry_after_error, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
