/* test_store.c: the SQLite store against a real file: schema and pragmas, item contents,
 * exactly-once dedup and its window, FIFO eviction, write-back, scans, persistence across
 * reopen, the views, a full disk (nothing partially committed), a read-only file, a file that
 * stops growing under churn, and a bounded WAL, also while readers hold snapshots back to back
 * and with one read transaction left open. Checks read the file through a second, independent
 * SQLite connection, as a user's sqlite3 would. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "store.h"
#include "temp_store.h"

#define OBS 4
#define MAXN 64

typedef temp_store_t fixture_t;

typedef struct {
  float obs[MAXN * OBS], next_obs[MAXN * OBS], reward[MAXN], discount[MAXN];
  int32_t action[MAXN];
  uint64_t version[MAXN];
  float priority[MAXN];
  frl_episode_stat_t ep[4];
  frl_experience_t b;
} batch_t;

/* Row i of a batch tagged `tag` holds values derived from (tag, i), so any row can be checked
 * without keeping the batch. */
static float obs_value(float tag, uint32_t i, uint32_t k) { return tag * 1000.0f + i * 10.0f + k; }

static void make_batch(batch_t *t, const char *actor, uint64_t seq, uint32_t count,
                       uint32_t episodes, float tag) {
  memset(t, 0, sizeof *t);
  for (uint32_t i = 0; i < count; i++) {
    for (uint32_t k = 0; k < OBS; k++) {
      t->obs[i * OBS + k] = obs_value(tag, i, k);
      t->next_obs[i * OBS + k] = -obs_value(tag, i, k);
    }
    t->action[i] = (int32_t)(i % 2);
    t->reward[i] = 0.5f * (float)i;
    t->discount[i] = (i % 7 == 6) ? 0.0f : 0.97f;
    t->version[i] = 7;
    t->priority[i] = 0.25f + (float)i;
  }
  for (uint32_t e = 0; e < episodes; e++) {
    t->ep[e] = (frl_episode_stat_t){.episode_return = 10.0f * (float)(e + 1),
                                    .length = 20 + e,
                                    .success = e % 2 == 0,
                                    .truncated = e % 2 == 1,
                                    .violations = e,
                                    .policy_version = 6};
  }
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
                            .policy_version = t->version,
                            .n_policy_version = count,
                            .n_episodes = episodes,
                            .episodes_in = episodes ? t->ep : NULL,
                            .env_steps = count + 3};
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  if (temp_store_make(f, "test_store") != 0) {
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  temp_store_remove(f);
  free(f);
  return 0;
}

static frl_store_t *open_store(const fixture_t *f, uint32_t obs_dim, uint64_t max_bytes) {
  frl_store_config_t cfg = {
      .path = f->path, .obs_dim = obs_dim, .act_dim = 1, .discrete = true, .max_bytes = max_bytes};
  frl_store_t *s = NULL;
  assert_int_equal(frl_store_open(&s, &cfg), 0);
  assert_non_null(s);
  return s;
}

static sqlite3 *reader(const fixture_t *f) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  return db;
}

/* The single integer (or 0 for NULL) a query returns. */
static int64_t q_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static double q_real(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  double v = sqlite3_column_type(st, 0) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void q_text(sqlite3 *db, const char *sql, char *out, size_t len) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  const unsigned char *t = sqlite3_column_text(st, 0);
  snprintf(out, len, "%s", t ? (const char *)t : "(null)");
  sqlite3_finalize(st);
}

static void insert(frl_store_t *s, const batch_t *t, uint64_t first, int64_t evict_below,
                   bool expect_dup) {
  bool dup = !expect_dup;
  assert_int_equal(frl_store_insert_batch(s, &t->b, first, t->priority, evict_below, 1000.0, &dup),
                   0);
  assert_true(dup == expect_dup);
}

static void test_schema_and_pragmas(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 0);
  sqlite3 *db = reader(f);
  char text[512];
  q_text(db, "PRAGMA journal_mode", text, sizeof text);
  assert_string_equal(text, "wal");
  q_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('items')", text, sizeof text);
  assert_string_equal(text, "item_id,actor_id,batch_seq,inserted_at,policy_version,priority,"
                            "times_sampled,action,reward,discount,action_vec,obs,next_obs,demo");
  q_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('actors')", text, sizeof text);
  assert_string_equal(text, "actor_id,name,first_seen,last_seen,batches,transitions,env_steps");
  q_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('batches')", text, sizeof text);
  assert_string_equal(text, "actor_id,seq,received_at,transitions,first_item_id,env_steps");
  q_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('episodes')", text,
         sizeof text);
  assert_string_equal(text, "episode_id,actor_id,ended_at,episode_return,length,success,"
                            "truncated,violations,policy_version,physics");
  q_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('safety_events')", text,
         sizeof text);
  assert_string_equal(text, "event_id,actor_id,received_at,kind,count,at,detail");
  q_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('training')", text,
         sizeof text);
  assert_string_equal(text, "at,updates,env_steps,replay_size,loss,mean_q,beta,updates_per_s,"
                            "env_steps_per_s,recent_return,params_version,actor_loss,alpha,entropy");
  q_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('evaluations')", text,
         sizeof text);
  assert_string_equal(text, "at,updates,env_steps,mean_return,std_return,episodes,success_rate");
  q_text(db, "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE "
             "type = 'view' ORDER BY name)", text, sizeof text);
  assert_string_equal(text, "actor_summary,policy_lag,priority_summary,returns_by_minute");
  q_text(db, "SELECT value FROM meta WHERE key = 'obs_dim'", text, sizeof text);
  assert_string_equal(text, "4");
  q_text(db, "SELECT value FROM meta WHERE key = 'action_type'", text, sizeof text);
  assert_string_equal(text, "discrete");
  assert_int_equal(q_int(db, "PRAGMA user_version"), 3);
  sqlite3_close(db);
  frl_store_close(&s);
  assert_null(s);
  frl_store_close(&s); /* NULL-safe */
}

static void test_insert_contents(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 0);
  batch_t t;
  make_batch(&t, "actor-1", 1, 5, 2, 1.0f);
  insert(s, &t, 1, 0, false);
  sqlite3 *db = reader(f);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM items"), 5);
  assert_int_equal(q_int(db, "SELECT MIN(item_id) FROM items"), 1);
  assert_int_equal(q_int(db, "SELECT MAX(item_id) FROM items"), 5);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM items WHERE action_vec IS NULL AND "
                             "times_sampled = 0 AND policy_version = 7 AND batch_seq = 1"), 5);
  assert_int_equal(q_int(db, "SELECT action FROM items WHERE item_id = 4"), 1);
  assert_true(q_real(db, "SELECT reward FROM items WHERE item_id = 4") == 1.5);
  assert_true(q_real(db, "SELECT discount FROM items WHERE item_id = 4") == (double)0.97f);
  assert_true(q_real(db, "SELECT priority FROM items WHERE item_id = 4") == 3.25);
  assert_true(q_real(db, "SELECT inserted_at FROM items WHERE item_id = 4") == 1000.0);

  /* obs is the raw float32 row. */
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT obs, next_obs FROM items WHERE item_id = 3", -1,
                                      &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_bytes(st, 0), OBS * 4);
  float row[OBS];
  memcpy(row, sqlite3_column_blob(st, 0), sizeof row);
  for (int k = 0; k < OBS; k++) assert_true(row[k] == obs_value(1.0f, 2, (uint32_t)k));
  memcpy(row, sqlite3_column_blob(st, 1), sizeof row);
  for (int k = 0; k < OBS; k++) assert_true(row[k] == -obs_value(1.0f, 2, (uint32_t)k));
  sqlite3_finalize(st);

  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM batches WHERE seq = 1 AND transitions = 5 AND "
                             "first_item_id = 1 AND env_steps = 8 AND received_at = 1000.0"), 1);
  assert_int_equal(q_int(db, "SELECT batches FROM actors WHERE name = 'actor-1'"), 1);
  assert_int_equal(q_int(db, "SELECT transitions FROM actors WHERE name = 'actor-1'"), 5);
  assert_int_equal(q_int(db, "SELECT env_steps FROM actors WHERE name = 'actor-1'"), 8);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM episodes"), 2);
  assert_true(q_real(db, "SELECT SUM(episode_return) FROM episodes") == 30.0);
  assert_int_equal(q_int(db, "SELECT SUM(length) FROM episodes"), 41);
  assert_int_equal(q_int(db, "SELECT SUM(success) + 10 * SUM(truncated) FROM episodes"), 11);
  assert_int_equal(q_int(db, "SELECT MAX(violations) FROM episodes"), 1);
  sqlite3_close(db);
  frl_store_close(&s);
}

static void test_dedup(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 0);
  batch_t t;
  make_batch(&t, "actor-1", 42, 5, 1, 1.0f);
  insert(s, &t, 1, 0, false);
  insert(s, &t, 6, 0, true); /* a resend: nothing changes */
  make_batch(&t, "actor-2", 42, 5, 1, 2.0f); /* same seq, another actor: a new batch */
  insert(s, &t, 6, 0, false);
  sqlite3 *db = reader(f);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM items"), 10);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM batches"), 2);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM episodes"), 2);
  assert_int_equal(q_int(db, "SELECT batches FROM actors WHERE name = 'actor-1'"), 1);
  assert_int_equal(q_int(db, "SELECT transitions FROM actors WHERE name = 'actor-1'"), 5);
  sqlite3_close(db);
  frl_store_close(&s);
}

static void test_eviction(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 0);
  const int64_t capacity = 8;
  batch_t t;
  uint64_t next = 1;
  for (uint64_t seq = 1; seq <= 4; seq++) {
    make_batch(&t, "actor-1", seq, 5, 0, (float)seq);
    insert(s, &t, next, (int64_t)(next + 5) - capacity, false);
    next += 5;
  }
  sqlite3 *db = reader(f);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM items"), 8);
  assert_int_equal(q_int(db, "SELECT MIN(item_id) FROM items"), 13);
  assert_int_equal(q_int(db, "SELECT MAX(item_id) FROM items"), 20);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM batches"), 4); /* dedup records stay */
  assert_int_equal(q_int(db, "SELECT transitions FROM actors"), 20);
  /* A resend of an evicted batch is still recognised. */
  make_batch(&t, "actor-1", 1, 5, 0, 1.0f);
  insert(s, &t, next, (int64_t)(next + 5) - capacity, true);
  assert_int_equal(q_int(db, "SELECT MIN(item_id) FROM items"), 13);
  sqlite3_close(db);
  frl_store_close(&s);
}

static void test_update_items(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 0);
  batch_t t;
  make_batch(&t, "actor-1", 1, 5, 0, 1.0f);
  insert(s, &t, 1, 0, false);
  uint64_t ids[3] = {2, 4, 99}; /* 99 does not exist: skipped */
  float prio[3] = {0.5f, 8.0f, 1.0f};
  uint32_t delta[3] = {1, 3, 1};
  assert_int_equal(frl_store_update_items(s, ids, prio, delta, 3), 0);
  assert_int_equal(frl_store_update_items(s, ids, prio, delta, 2), 0);
  assert_int_equal(frl_store_update_items(s, ids, prio, delta, 0), 0);
  sqlite3 *db = reader(f);
  assert_true(q_real(db, "SELECT priority FROM items WHERE item_id = 2") == 0.5);
  assert_true(q_real(db, "SELECT priority FROM items WHERE item_id = 4") == 8.0);
  assert_int_equal(q_int(db, "SELECT times_sampled FROM items WHERE item_id = 2"), 2);
  assert_int_equal(q_int(db, "SELECT times_sampled FROM items WHERE item_id = 4"), 6);
  assert_int_equal(q_int(db, "SELECT SUM(times_sampled) FROM items"), 8);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM items"), 5);
  sqlite3_close(db);
  frl_store_close(&s);
}

typedef struct {
  uint64_t ids[16];
  int n;
  int stop_after;
  bool bad;
} scan_ctx_t;

static int scan_cb(void *ctx, uint64_t item_id, const float *obs, int32_t action_index,
                   const float *action, float reward, float discount, const float *next_obs,
                   float priority) {
  scan_ctx_t *c = ctx;
  uint32_t i = (uint32_t)(item_id - 1) % 5; /* row within its batch of 5 */
  float tag = (float)((item_id - 1) / 5 + 1);
  for (uint32_t k = 0; k < OBS; k++)
    if (obs[k] != obs_value(tag, i, k) || next_obs[k] != -obs_value(tag, i, k)) c->bad = true;
  if (action != NULL || action_index != (int32_t)(i % 2) || reward != 0.5f * (float)i ||
      priority != 0.25f + (float)i || discount != ((i % 7 == 6) ? 0.0f : 0.97f))
    c->bad = true;
  c->ids[c->n++] = item_id;
  return c->n == c->stop_after ? 77 : 0;
}

static void test_scan_and_max(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 0);
  uint64_t max = 123;
  assert_int_equal(frl_store_max_item_id(s, &max), 0);
  assert_int_equal(max, 0);
  batch_t t;
  make_batch(&t, "actor-1", 1, 5, 0, 1.0f);
  insert(s, &t, 1, 0, false);
  make_batch(&t, "actor-1", 2, 5, 0, 2.0f);
  insert(s, &t, 6, 0, false);
  assert_int_equal(frl_store_max_item_id(s, &max), 0);
  assert_int_equal(max, 10);

  scan_ctx_t c = {.stop_after = -1};
  assert_int_equal(frl_store_scan_items(s, 4, scan_cb, &c), 0);
  assert_false(c.bad);
  assert_int_equal(c.n, 7);
  for (int k = 0; k < 7; k++) assert_int_equal(c.ids[k], 4 + k);

  scan_ctx_t stop = {.stop_after = 2};
  assert_int_equal(frl_store_scan_items(s, 1, scan_cb, &stop), 77);
  assert_int_equal(stop.n, 2);

  /* A row whose blob does not fit the task (edited by hand) is reported, not misread. */
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "UPDATE items SET obs = x'0000' WHERE item_id = 7", NULL,
                                NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  scan_ctx_t c2 = {.stop_after = -1};
  assert_int_equal(frl_store_scan_items(s, 1, scan_cb, &c2), FRL_ECORRUPT);
  assert_int_equal(c2.n, 6);
  frl_store_close(&s);
}

static void test_persistence_and_views(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 0);
  batch_t t;
  make_batch(&t, "actor-1", 1, 5, 2, 1.0f);
  insert(s, &t, 1, 0, false);
  make_batch(&t, "actor-2", 1, 3, 1, 2.0f);
  insert(s, &t, 6, 0, false);
  frl_store_progress_t p = {.updates = 100, .env_steps = 5000, .replay_size = 8,
                            .params_version = 10, .loss = 0.5, .mean_q = 3.0, .beta = 0.4,
                            .updates_per_s = 50, .env_steps_per_s = 2500, .recent_return = NAN,
                            .actor_loss = NAN, .alpha = NAN, .entropy = NAN};

  assert_int_equal(frl_store_log_progress(s, &p, 2000.0), 0);
  frl_store_progress_t sac = p; /* an actor-critic's row has its diagnostics */
  sac.updates = 110;
  sac.actor_loss = -3.5;
  sac.alpha = 0.05;
  sac.entropy = -6.25;
  assert_int_equal(frl_store_log_progress(s, &sac, 2000.5), 0);
  assert_int_equal(frl_store_log_eval(s, 100, 5000, 195.5, 4.25, 10, NAN, 2001.0), 0);
  assert_int_equal(frl_store_log_eval(s, 120, 6000, 197.0, 3.5, 10, 0.7, 2002.0), 0);
  assert_int_equal(frl_store_set_meta(s, "task", "cartpole-dqn"), 0);
  assert_int_equal(frl_store_set_meta(s, "task", "cartpole"), 0); /* overwrites */
  frl_store_close(&s);

  /* Reopen: counters and rows are all there; the schema step is idempotent. */
  s = open_store(f, OBS, 0);
  make_batch(&t, "actor-1", 2, 5, 0, 3.0f);
  insert(s, &t, 9, 0, false);
  sqlite3 *db = reader(f);
  char text[128];
  assert_int_equal(q_int(db, "SELECT batches FROM actors WHERE name = 'actor-1'"), 2);
  assert_int_equal(q_int(db, "SELECT transitions FROM actors WHERE name = 'actor-1'"), 10);
  assert_int_equal(q_int(db, "SELECT env_steps FROM actors WHERE name = 'actor-2'"), 6);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM episodes"), 3);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM meta WHERE key = 'task'"), 1);
  q_text(db, "SELECT value FROM meta WHERE key = 'task'", text, sizeof text);
  assert_string_equal(text, "cartpole");
  assert_true(isnan(q_real(db, "SELECT recent_return FROM training")));
  assert_int_equal(q_int(db, "SELECT params_version FROM training WHERE at = 2000.0"), 10);
  assert_true(isnan(q_real(db, "SELECT alpha FROM training WHERE updates = 100")));
  assert_true(q_real(db, "SELECT actor_loss FROM training WHERE updates = 110") == -3.5);
  assert_true(q_real(db, "SELECT alpha FROM training WHERE updates = 110") == 0.05);
  assert_true(q_real(db, "SELECT entropy FROM training WHERE updates = 110") == -6.25);
  assert_true(q_real(db, "SELECT mean_return FROM evaluations WHERE updates = 100") == 195.5);
  /* success_rate: NULL for an environment without a success signal. */
  assert_true(isnan(q_real(db, "SELECT success_rate FROM evaluations WHERE updates = 100")));
  assert_true(q_real(db, "SELECT success_rate FROM evaluations WHERE updates = 120") == 0.7);

  /* Views. actor-1: items 1..5 and 9..13 with priorities 0.25..4.25 twice. */
  assert_int_equal(q_int(db, "SELECT items_in_replay FROM actor_summary WHERE name = 'actor-1'"),
                   10);
  assert_int_equal(q_int(db, "SELECT items_in_replay FROM actor_summary WHERE name = 'actor-2'"),
                   3);
  assert_true(q_real(db, "SELECT mean_priority FROM actor_summary WHERE name = 'actor-1'") == 2.25);
  assert_true(q_real(db, "SELECT max_priority FROM actor_summary WHERE name = 'actor-2'") == 2.25);
  assert_int_equal(q_int(db, "SELECT episodes FROM actor_summary WHERE name = 'actor-1'"), 2);
  assert_int_equal(q_int(db, "SELECT items FROM priority_summary"), 13);
  assert_int_equal(q_int(db, "SELECT never_sampled FROM priority_summary"), 13);
  assert_true(q_real(db, "SELECT max_priority FROM priority_summary") == 4.25);
  assert_int_equal(q_int(db, "SELECT mean_lag FROM policy_lag WHERE name = 'actor-2'"), 3);
  assert_int_equal(q_int(db, "SELECT episodes FROM returns_by_minute WHERE minute_start = 960"), 3);
  q_text(db, "SELECT minute_utc FROM returns_by_minute", text, sizeof text);
  assert_string_equal(text, "1970-01-01 00:16:00");
  sqlite3_close(db);
  frl_store_close(&s);

  /* Another task's dimensions are refused. */
  frl_store_config_t cfg = {.path = f->path, .obs_dim = OBS + 1, .act_dim = 1, .discrete = true};
  assert_int_equal(frl_store_open(&s, &cfg), FRL_EDIM);
  assert_null(s);
  cfg = (frl_store_config_t){.path = f->path, .obs_dim = OBS, .act_dim = 1, .discrete = false};
  assert_int_equal(frl_store_open(&s, &cfg), FRL_EDIM);
}

/* PRAGMA max_page_count makes SQLite answer SQLITE_FULL exactly as a full disk does. The batch
 * that hits the limit must leave nothing behind: no items, no dedup record, no counters, so
 * that its resend later is accepted as new. */
static void test_disk_full(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 512 * 1024);
  batch_t t;
  uint64_t next = 1, seq = 1;
  int err = 0;
  for (; seq < 10000; seq++) {
    make_batch(&t, "actor-1", seq, MAXN, 1, (float)(seq % 100));
    bool dup = true;
    err = frl_store_insert_batch(s, &t.b, next, t.priority, 0, 1000.0, &dup);
    if (err) break;
    assert_false(dup);
    next += MAXN;
  }
  assert_int_equal(err, -ENOSPC);
  const uint64_t committed = seq - 1;
  assert_true(committed > 5);
  /* Small writes elsewhere may still fit; the store stays usable after the error. */
  uint64_t max = 0;
  assert_int_equal(frl_store_max_item_id(s, &max), 0);
  assert_int_equal(max, committed * MAXN);
  frl_store_close(&s);

  s = open_store(f, OBS, 0); /* no limit now */
  sqlite3 *db = reader(f);
  char sql[128];
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM items"), (int64_t)(committed * MAXN));
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM batches"), (int64_t)committed);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM episodes"), (int64_t)committed);
  assert_int_equal(q_int(db, "SELECT transitions FROM actors"), (int64_t)(committed * MAXN));
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM batches WHERE seq = %llu",
           (unsigned long long)seq);
  assert_int_equal(q_int(db, sql), 0);
  make_batch(&t, "actor-1", seq, MAXN, 1, 1.0f); /* the resend */
  insert(s, &t, next, 0, false);
  assert_int_equal(q_int(db, sql), 1);
  sqlite3_close(db);
  frl_store_close(&s);
}

static void test_read_only(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 0); /* create it */
  frl_store_close(&s);
  char uri[160];
  snprintf(uri, sizeof uri, "file:%s?mode=ro", f->path);
  frl_store_config_t cfg = {.path = uri, .obs_dim = OBS, .act_dim = 1, .discrete = true};
  assert_int_equal(frl_store_open(&s, &cfg), -EROFS);
  assert_null(s);
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Turns the store at path into what a build of schema `version` (1 or 2) wrote: version 2
 * lacked evaluations.success_rate and training's SAC diagnostics, version 1 also items.demo,
 * episodes.physics and the safety_events table. */
static void make_old(const char *path, int version) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "ALTER TABLE evaluations DROP COLUMN success_rate;"
                                "ALTER TABLE training DROP COLUMN actor_loss;"
                                "ALTER TABLE training DROP COLUMN alpha;"
                                "ALTER TABLE training DROP COLUMN entropy;"
                                "PRAGMA user_version=2;",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  if (version == 1)
    assert_int_equal(sqlite3_exec(db,
                                  "ALTER TABLE items DROP COLUMN demo;"
                                  "ALTER TABLE episodes DROP COLUMN physics;"
                                  "DROP TABLE safety_events; PRAGMA user_version=1;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
  sqlite3_close(db);
}

/* A robot's report: safety events and per-episode physics land in their tables, a batch of
 * count 0 carries them alone, and a version-1 store is upgraded in place (a version-2 one in
 * test_upgrade_v2). */
static void test_safety_physics_and_upgrade(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 0);
  frl_store_close(&s);
  make_old(f->path, 1);
  s = open_store(f, OBS, 0);

  batch_t t;
  make_batch(&t, "arm-1", 1, 3, 1, 1.0f);
  t.ep[0].physics = "{\"mass\":1.1}";
  t.b.demonstration = true;
  const frl_safety_event_t ev[2] = {
      {.kind = FRL_SAFETY_CLIP, .count = 12, .time_ns = 1500000000ull * 1000000000ull,
       .detail = "joint 1 torque"},
      {.kind = FRL_SAFETY_SAFE_MODE_ENTER, .count = 1, .time_ns = 2000000000ull}};
  t.b.safety_in = ev;
  t.b.n_safety = 2;
  insert(s, &t, 1, 0, false);
  /* Events only: nothing to replay, still recorded and deduplicated. */
  frl_experience_t report = {.actor = "arm-1", .seq = 2, .count = 0, .obs_dim = OBS,
                             .act_dim = 1, .safety_in = ev + 1, .n_safety = 1};
  bool dup = true;
  assert_int_equal(frl_store_insert_batch(s, &report, 4, NULL, 0, 1001.0, &dup), 0);
  assert_false(dup);
  assert_int_equal(frl_store_insert_batch(s, &report, 4, NULL, 0, 1002.0, &dup), 0);
  assert_true(dup);
  frl_store_close(&s);

  sqlite3 *db = reader(f);
  assert_int_equal(q_int(db, "PRAGMA user_version"), 3);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM pragma_table_info('evaluations') WHERE name = "
                             "'success_rate'"), 1);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM pragma_table_info('training') WHERE name IN "
                             "('actor_loss', 'alpha', 'entropy')"), 3);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM items WHERE demo = 1"), 3);
  char text[64];
  q_text(db, "SELECT json_extract(physics, '$.mass') FROM episodes", text, sizeof text);
  assert_string_equal(text, "1.1");
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM safety_events"), 3);
  assert_int_equal(q_int(db, "SELECT SUM(count) FROM safety_events WHERE kind = 'clip'"), 12);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM safety_events WHERE kind = "
                             "'safe_mode_enter' AND detail IS NULL"), 2);
  assert_float_equal(q_real(db, "SELECT MIN(at) FROM safety_events"), 2.0, 1e-9);
  q_text(db, "SELECT a.name FROM safety_events e JOIN actors a USING(actor_id) LIMIT 1", text,
         sizeof text);
  assert_string_equal(text, "arm-1");
  sqlite3_close(db);
}

/* A version-2 store (no evaluations.success_rate, no SAC diagnostics in training) is upgraded
 * in place: its evaluations stay, with no success rate, and new rows record the new columns. */
static void test_upgrade_v2(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 0);
  assert_int_equal(frl_store_log_eval(s, 10, 500, -150.0, 20.0, 10, 0.2, 1000.0), 0);
  frl_store_close(&s);
  make_old(f->path, 2);
  s = open_store(f, OBS, 0);
  assert_int_equal(frl_store_log_eval(s, 20, 1000, -120.0, 15.0, 10, 0.4, 1001.0), 0);
  frl_store_close(&s);
  sqlite3 *db = reader(f);
  assert_int_equal(q_int(db, "PRAGMA user_version"), 3);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM evaluations"), 2);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM evaluations WHERE success_rate IS NULL"), 1);
  assert_float_equal(q_real(db, "SELECT success_rate FROM evaluations WHERE updates = 20"), 0.4,
                     1e-12);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM pragma_table_info('training') WHERE name IN "
                             "('actor_loss', 'alpha', 'entropy')"), 3);
  sqlite3_close(db);
}

/* 32 MiB of items through a 16 MiB checkpoint threshold, with a reader querying in between
 * as a user would: the WAL must not grow past about one threshold plus what is committed
 * while the last passive copy runs (the store's thread copies while ingest goes on). */
static void test_wal_bounded(void **state) {
  fixture_t *f = *state;
  enum { BIG = 512, ROWS = 16 }; /* 4 KiB of blobs a row */
  frl_store_t *s = open_store(f, BIG, 0);
  float *obs = calloc((size_t)ROWS * BIG, sizeof *obs);
  int32_t action[ROWS] = {0};
  float reward[ROWS] = {0}, discount[ROWS] = {0};
  frl_experience_t b = {.actor = "big", .count = ROWS, .obs_dim = BIG, .act_dim = 1,
                        .obs = obs, .next_obs = obs, .action_index = action,
                        .n_action_index = ROWS, .reward = reward, .discount = discount};
  sqlite3 *db = reader(f);
  char wal[128];
  snprintf(wal, sizeof wal, "%s-wal", f->path);
  long max_wal = 0;
  uint64_t next = 1;
  for (uint64_t seq = 1; seq <= 32 * 1024 * 1024 / (ROWS * 4096); seq++) {
    b.seq = seq;
    bool dup = true;
    assert_int_equal(frl_store_insert_batch(s, &b, next, NULL, (int64_t)next - 2000, 1.0, &dup),
                     0);
    next += ROWS;
    if (seq % 50 == 0) assert_true(q_int(db, "SELECT COUNT(*) FROM items") > 0);
    long size = file_size(wal);
    if (size > max_wal) max_wal = size;
  }
  print_message("largest WAL %.1f MiB\n", max_wal / 1048576.0);
  assert_true(max_wal > 8L << 20);   /* the test did exercise the WAL */
  assert_true(max_wal < 24L << 20);  /* 16 MiB threshold + a quarter of it + slack */
  frl_store_wal_stats_t st;
  frl_store_wal_stats(s, &st);
  assert_true(st.restarts >= 1);
  assert_int_equal(st.restarts_busy, 0); /* no reader held a restart off */
  sqlite3_close(db);
  free(obs);
  frl_store_close(&s);
}

/* ---- dedup window --------------------------------------------------------------------------- */

static int64_t count_where(sqlite3 *db, const char *sql, int64_t a) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s", sqlite3_errmsg(db));
  sqlite3_bind_int64(st, 1, a);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* Batch records received before the cut go, in steps of at most max_rows, whichever actor they
 * belong to (more actors than one step visits); newer ones stay, as do items, episodes and the
 * actors' counters. A resend inside the window is still a Duplicate; one of a pruned record
 * is stored again, which is the bound the window puts on the guarantee. */
static void test_prune_batches(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 0);
  enum { ACTORS = 40, OLD = 7, NEW = 3 };
  batch_t t;
  uint64_t next = 1;
  char name[32];
  for (int a = 0; a < ACTORS; a++) {
    snprintf(name, sizeof name, "actor-%02d", a);
    for (uint64_t seq = 1; seq <= OLD + NEW; seq++) {
      /* Old records first in seq order, as an actor's clock makes them; one actor also has an
       * old record behind a new one (received late, e.g. a resend after a lost first try). */
      double at = seq <= OLD ? 1000.0 + (double)seq : 5000.0 + (double)seq;
      if (a == 3 && seq == 2) at = 5100.0;
      make_batch(&t, name, 1000 + seq, 2, seq == 1 ? 1 : 0, (float)seq);
      bool dup = true;
      assert_int_equal(frl_store_insert_batch(s, &t.b, next, t.priority, 0, at, &dup), 0);
      assert_false(dup);
      next += 2;
    }
  }
  uint32_t gone = 99;
  assert_int_equal(frl_store_prune_batches(s, 3000.0, 0, &gone), FRL_EUSAGE);
  const int64_t expect = ACTORS * OLD - 1;
  int64_t total = 0;
  int steps = 0;
  while (total < expect && steps < 1000) {
    assert_int_equal(frl_store_prune_batches(s, 3000.0, 25, &gone), 0);
    assert_true(gone <= 25);
    total += gone;
    steps++;
  }
  assert_int_equal(total, expect);
  /* Nothing older is left: further steps, over every actor, delete nothing. */
  for (int k = 0; k < 2 * ACTORS; k++) {
    assert_int_equal(frl_store_prune_batches(s, 3000.0, 25, &gone), 0);
    assert_int_equal(gone, 0);
  }
  sqlite3 *db = reader(f);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM batches WHERE received_at < 3000"), 0);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM batches"), ACTORS * NEW + 1);
  assert_int_equal(count_where(db, "SELECT COUNT(*) FROM batches WHERE seq = ?1", 1002), 1);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM items"), ACTORS * (OLD + NEW) * 2);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM episodes"), ACTORS);
  assert_int_equal(q_int(db, "SELECT SUM(batches) FROM actors"), ACTORS * (OLD + NEW));
  /* The cut moves on: the new ones go too. */
  total = 0;
  for (steps = 0; steps < 100 && total < ACTORS * NEW + 1; steps++) {
    assert_int_equal(frl_store_prune_batches(s, 6000.0, 1000, &gone), 0);
    total += gone;
  }
  assert_int_equal(total, ACTORS * NEW + 1);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM batches"), 0);
  sqlite3_close(db);
  frl_store_close(&s);

  /* Inside the window a resend is a Duplicate; past it, a record is gone and a resend of it
   * would be stored again. */
  s = open_store(f, OBS, 0);
  make_batch(&t, "late", 1, 2, 0, 1.0f);
  insert(s, &t, next, 0, false); /* received_at 1000 */
  next += 2;
  make_batch(&t, "late", 2, 2, 0, 2.0f);
  bool dup = false;
  assert_int_equal(frl_store_insert_batch(s, &t.b, next, t.priority, 0, 2500.0, &dup), 0);
  next += 2;
  uint32_t sum = 0;
  for (int k = 0; k < 4; k++) { /* a step visits 16 of the 41 actors */
    assert_int_equal(frl_store_prune_batches(s, 2000.0, 100, &gone), 0);
    sum += gone;
  }
  assert_int_equal(sum, 1);
  make_batch(&t, "late", 2, 2, 0, 2.0f);
  insert(s, &t, next, 0, true);
  make_batch(&t, "late", 1, 2, 0, 1.0f);
  insert(s, &t, next, 0, false);
  frl_store_close(&s);
}

/* Replay churn: FIFO eviction of items and the dedup window deleting batch records free pages
 * that later inserts reuse, so once both are at steady state the file stops growing. */
static void test_file_plateaus(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_store(f, OBS, 0);
  enum { CAPACITY = 600, N = 12, WINDOW = 50 };
  batch_t t;
  uint64_t next = 1;
  int64_t pages_at[3] = {0};
  sqlite3 *db = reader(f);
  for (uint64_t seq = 1; seq <= 1500; seq++) {
    make_batch(&t, seq % 3 ? "actor-a" : "actor-b", seq, N, seq % 10 == 0, (float)(seq % 50));
    bool dup = true;
    assert_int_equal(frl_store_insert_batch(s, &t.b, next, t.priority,
                                            (int64_t)(next + N) - CAPACITY, (double)seq, &dup),
                     0);
    next += N;
    uint32_t gone = 0;
    if (seq % 5 == 0) assert_int_equal(frl_store_prune_batches(s, (double)seq - WINDOW, 50,
                                                                &gone), 0);
    if (seq % 500 == 0) pages_at[seq / 500 - 1] = q_int(db, "PRAGMA page_count");
  }
  print_message("pages after 500, 1000, 1500 batches: %lld %lld %lld (episodes grow: %lld)\n",
                (long long)pages_at[0], (long long)pages_at[1], (long long)pages_at[2],
                (long long)q_int(db, "SELECT COUNT(*) FROM episodes"));
  assert_true(q_int(db, "SELECT COUNT(*) FROM batches") <= WINDOW + 10);
  assert_int_equal(q_int(db, "SELECT COUNT(*) FROM items"), CAPACITY);
  /* Only the episodes table (user data, 150 short rows here: a few pages) may still grow. */
  assert_true(pages_at[2] <= pages_at[1] + 4);
  assert_true(pages_at[1] <= pages_at[0] + 4);
  sqlite3_close(db);
  frl_store_close(&s);
}

/* ---- the WAL with readers ------------------------------------------------------------------ */

typedef struct {
  const char *path;
  volatile int stop;
  int hold_us;      /* how long each read transaction stays open */
  long snapshots;   /* read transactions completed */
  int failures;     /* SQLite errors */
} reader_ctx_t;

/* A user's read transactions back to back: BEGIN, a read (which takes the snapshot), hold it,
 * COMMIT, at once again. */
static void *reader_loop(void *arg) {
  reader_ctx_t *c = arg;
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    c->failures++;
    return NULL;
  }
  sqlite3_busy_timeout(db, 5000);
  while (!c->stop) {
    int rc = sqlite3_exec(db, "BEGIN; SELECT COUNT(*) FROM batches;", NULL, NULL, NULL);
    if (rc != SQLITE_OK) c->failures++;
    usleep((useconds_t)c->hold_us);
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) c->failures++;
    c->snapshots++;
  }
  sqlite3_close(db);
  return NULL;
}

typedef struct {
  frl_store_t *s;
  frl_experience_t b;
  float *obs;
  int32_t action[16];
  float reward[16], discount[16];
  uint64_t seq, next;
} big_writer_t;

enum { BIG_DIM = 512, BIG_ROWS = 16 }; /* 4 KiB of blobs a row, 64 KiB a batch */

static void big_writer_init(big_writer_t *w, frl_store_t *s) {
  memset(w, 0, sizeof *w);
  w->s = s;
  w->obs = calloc((size_t)BIG_ROWS * BIG_DIM, sizeof *w->obs);
  w->b = (frl_experience_t){.actor = "big", .count = BIG_ROWS, .obs_dim = BIG_DIM, .act_dim = 1,
                            .obs = w->obs, .next_obs = w->obs, .action_index = w->action,
                            .n_action_index = BIG_ROWS, .reward = w->reward,
                            .discount = w->discount};
  w->next = 1;
}

/* One batch, keeping the newest 512 rows (2 MiB of blobs); returns the store's result. */
static int big_write(big_writer_t *w) {
  w->b.seq = ++w->seq;
  bool dup = true;
  int err = frl_store_insert_batch(w->s, &w->b, w->next, NULL, (int64_t)w->next - 512, 1.0, &dup);
  w->next += BIG_ROWS;
  return err;
}

static frl_store_t *open_small_wal(const fixture_t *f, uint32_t ckpt_pages, uint64_t limit) {
  frl_store_config_t cfg = {.path = f->path, .obs_dim = BIG_DIM, .act_dim = 1, .discrete = true,
                            .wal_checkpoint_pages = ckpt_pages, .wal_limit_bytes = limit};
  frl_store_t *s = NULL;
  assert_int_equal(frl_store_open(&s, &cfg), 0);
  return s;
}

/* Two readers whose read transactions overlap, so that at every moment one holds a snapshot
 * (the case that kept the WAL from ever being reused), while batches are inserted. With a
 * 1 MiB checkpoint threshold, 12 MiB of rows (about 27 MiB of WAL frames) go through; each
 * reader holds its snapshot 2 ms, well within the restart's wait, so restarts find them gone,
 * except when a loaded machine keeps a reader from running: then the next attempt comes after
 * 1 MiB more, then 2, then 4. The WAL must stay within what the restart rule allows for the
 * attempts given up (8 MiB with at most one; without restarts it would hold everything), every
 * insert commits, and the readers keep reading throughout. */
static void test_wal_bounded_with_readers(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_small_wal(f, 256, 1 << 20);
  big_writer_t w;
  big_writer_init(&w, s);
  assert_int_equal(big_write(&w), 0);
  reader_ctx_t rc[2] = {{.path = f->path, .hold_us = 2000}, {.path = f->path, .hold_us = 2000}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, reader_loop, &rc[i]), 0);
  char wal[128];
  snprintf(wal, sizeof wal, "%s-wal", f->path);
  long max_wal = 0;
  const int batches = 12 * 16; /* 12 MiB of blobs */
  long snaps_before = 0;
  for (int k = 0; k < batches; k++) {
    assert_int_equal(big_write(&w), 0);
    long size = file_size(wal);
    if (size > max_wal) max_wal = size;
    if (k == batches / 2) snaps_before = rc[0].snapshots + rc[1].snapshots;
  }
  long snaps = rc[0].snapshots + rc[1].snapshots;
  for (int i = 0; i < 2; i++) {
    rc[i].stop = 1;
    pthread_join(th[i], NULL);
    assert_int_equal(rc[i].failures, 0);
  }
  frl_store_wal_stats_t st;
  frl_store_wal_stats(s, &st);
  print_message("largest WAL %.1f MiB with readers (%ld snapshots), %llu checkpoints, %llu "
                "restarts, %llu given up\n", max_wal / 1048576.0, snaps,
                (unsigned long long)st.checkpoints, (unsigned long long)st.restarts,
                (unsigned long long)st.restarts_busy);
  assert_true(snaps > snaps_before); /* the readers were reading in the second half too */
  assert_true(st.restarts >= 5);
  /* How many restart attempts give up depends on how the machine schedules the readers (a
   * loaded one gave up 13 of 13 and still kept the WAL at 3.5 MiB): printed above, not
   * asserted. The bound is what matters, and it is the restart rule's: the WAL is cut at an
   * attempt that finds the readers gone; after k attempts given up the next comes at most
   * 4 + 4k thresholds of 256 pages in (steps of 1, 2, then 4 thresholds, or 4 at once after a
   * slow success), one batch's frames (under 64 pages) past it. With none or one given up that
   * is 8 MiB; without restarts the WAL would hold all 27 MiB of frames. */
  const long frame = 4096 + 24, busy = (long)st.restarts_busy;
  const long bound = ((4 + 4 * busy) * 256 + 64) * frame + 32;
  if (max_wal > bound)
    fail_msg("largest WAL %ld bytes, over the restart rule's %ld after %ld attempts given up",
             max_wal, bound, busy);
  free(w.obs);
  frl_store_close(&s);
}

/* One read transaction held open while batches are inserted (an idle BEGIN in a sqlite3
 * session): the WAL cannot be reused under it, so it grows, but ingest keeps committing (each
 * restart attempt gives up after its short wait, and attempts back off); once the reader ends
 * the next restart succeeds and the file is cut back to journal_size_limit. */
static void test_wal_pinned_reader(void **state) {
  fixture_t *f = *state;
  frl_store_t *s = open_small_wal(f, 256, 2 << 20);
  big_writer_t w;
  big_writer_init(&w, s);
  assert_int_equal(big_write(&w), 0);
  sqlite3 *db = reader(f);
  assert_int_equal(sqlite3_exec(db, "BEGIN; SELECT COUNT(*) FROM batches;", NULL, NULL, NULL),
                   SQLITE_OK);
  char wal[128];
  snprintf(wal, sizeof wal, "%s-wal", f->path);
  frl_store_wal_stats_t st;
  for (int k = 0; k < 4 * 16; k++) assert_int_equal(big_write(&w), 0); /* 4 MiB of rows */
  frl_store_wal_stats(s, &st);
  const long pinned = file_size(wal);
  print_message("WAL %.1f MiB under an open reader; %llu restarts given up\n",
                pinned / 1048576.0, (unsigned long long)st.restarts_busy);
  assert_true(pinned > 6L << 20); /* nothing could be reused under the reader */
  /* Attempts when the WAL held 1, 2, 4 and 8 MiB (steps of 1, 2, then 4 at most), not at
   * every commit; each waited 100 ms only, since the same reader held every one of them off. */
  assert_true(st.restarts_busy >= 1 && st.restarts_busy <= (uint64_t)(pinned >> 20) / 4 + 3);
  const uint64_t restarts = st.restarts;
  assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  /* Ingest goes on; the WAL is reused at the first restart after the retry delay. */
  long after = pinned;
  for (int k = 0; k < 4000 && (st.restarts == restarts || after > pinned); k++) {
    assert_int_equal(big_write(&w), 0);
    frl_store_wal_stats(s, &st);
    after = file_size(wal);
  }
  assert_true(st.restarts > restarts);
  for (int k = 0; k < 4 * 16; k++) assert_int_equal(big_write(&w), 0); /* one more cycle */
  after = file_size(wal);
  print_message("WAL %.1f MiB after the reader ended\n", after / 1048576.0);
  assert_true(after <= (2L << 20) + (2L << 20)); /* the limit, plus the cycle under way */
  free(w.obs);
  frl_store_close(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_schema_and_pragmas, setup, teardown),
      cmocka_unit_test_setup_teardown(test_insert_contents, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
      cmocka_unit_test_setup_teardown(test_update_items, setup, teardown),
      cmocka_unit_test_setup_teardown(test_scan_and_max, setup, teardown),
      cmocka_unit_test_setup_teardown(test_persistence_and_views, setup, teardown),
      cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_safety_physics_and_upgrade, setup, teardown),
      cmocka_unit_test_setup_teardown(test_upgrade_v2, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wal_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune_batches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_plateaus, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wal_bounded_with_readers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wal_pinned_reader, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
