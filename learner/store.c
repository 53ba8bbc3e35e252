/* store.c: the SQLite system of record of a run (replay items, actors, batch dedup records,
 * episodes, learner progress, evaluations, metadata).
 *
 * Schema (user-facing: people query this file with sqlite3 while training runs; every time is
 * Unix seconds as REAL, every vector a BLOB of little-endian float32):
 *
 *   meta(key TEXT PRIMARY KEY, value TEXT)
 *       run metadata; the store itself writes store_schema_version, created_at, obs_dim,
 *       act_dim, action_type ('discrete' | 'continuous').
 *   actors(actor_id INTEGER PRIMARY KEY, name TEXT UNIQUE, first_seen, last_seen,
 *          batches, transitions, env_steps)
 *       one row per actor name ever seen; counters cover accepted (non-duplicate) batches.
 *   batches(actor_id, seq, received_at, transitions, first_item_id, env_steps,
 *           PRIMARY KEY(actor_id, seq)) WITHOUT ROWID
 *       the exactly-once record: a batch is accepted at most once per (actor, seq). Rows are
 *       kept when their items are evicted, so a late resend is still recognised, for as long
 *       as the dedup window (the learner's --dedup-window, 7 days): frl_store_prune_batches
 *       deletes older ones. Why a window suffices: an actor resends only a batch it still
 *       holds unacknowledged; outboxes live in the actor's memory, so a batch outlives
 *       neither its process nor its acknowledgement; and an actor's seq numbers start at its
 *       start time in microseconds, so a restarted actor never reuses an old seq. A resend
 *       older than the window therefore needs an actor that held that batch unacknowledged
 *       for the whole window: that is the bound of the exactly-once guarantee.
 *   items(item_id INTEGER PRIMARY KEY, actor_id, batch_seq, inserted_at, policy_version,
 *         priority, times_sampled, action, reward, discount, action_vec, obs, next_obs)
 *       the replay contents, newest `capacity` transitions. priority is the sampling priority
 *       p = (|delta| + eps)^alpha; action is the index (discrete tasks, else NULL), action_vec
 *       the float32 vector (continuous tasks, else NULL); reward is the n-step return and
 *       discount gamma^k (0 at a terminal). priority and times_sampled are written back by the
 *       learner's periodic flush. Small columns come before the blobs so that the summary
 *       queries (priority, times_sampled) never follow a large row's overflow pages. demo is 1
 *       for experience a demonstrator sent (ExperienceBatch.demonstration).
 *   episodes(episode_id INTEGER PRIMARY KEY, actor_id, ended_at, episode_return, length,
 *            success, truncated, violations, policy_version, physics): physics is the JSON
 *            object of physics parameters an actor sampled for the episode (NULL: nominal).
 *   safety_events(event_id INTEGER PRIMARY KEY, actor_id, received_at, kind, count, at, detail):
 *            what robot-side shields and watchdogs did (kind clip, barrier, safe_mode_enter,
 *            safe_mode_exit, estop, resume; count occurrences folded into the row; at is the
 *            sender's wall clock of the first one, in Unix seconds).
 *   training(at, updates, env_steps, replay_size, loss, mean_q, beta, updates_per_s,
 *            env_steps_per_s, recent_return, params_version)
 *   evaluations(at, updates, env_steps, mean_return, std_return, episodes, success_rate)
 *   checkpoints(id INTEGER PRIMARY KEY, created, env_steps, updates, params_version, bytes,
 *               blob)
 *       the learner's newest checkpoints (learner/checkpoint.h), written and trimmed in one
 *       transaction, so a crash leaves the previous set intact.
 *   views: actor_summary, priority_summary, policy_lag, returns_by_minute (see SCHEMA_SQL).
 *
 * Ingest path: one BEGIN IMMEDIATE .. COMMIT per batch holding the dedup insert, the item rows
 * (one reused prepared statement, blobs bound SQLITE_STATIC straight from the decoded message,
 * no per-row allocation), the episodes, the actor counters and the FIFO eviction, which is a
 * rowid range delete (item_id < evict_below) and so walks only the leftmost leaves of the items
 * b-tree; freed pages are reused by later inserts, so the file stays bounded.
 *
 * Pruned `batches` records and evicted items free their pages, which later inserts reuse
 * (auto_vacuum stays off: giving pages back to the file system would only make the next
 * inserts grow it again), so the file levels off once the replay is full; only the user data
 * tables (episodes, safety_events, training, evaluations) keep growing, slowly.
 *
 * WAL: journal_mode=WAL lets readers run while we write; synchronous=NORMAL syncs only at
 * checkpoints (a power loss can drop the last commits, never corrupt the file; actors resend
 * unacknowledged batches, so nothing is lost). SQLite writes the WAL from its start again only
 * when a writer finds it completely copied back into replay.db and no reader using it;
 * otherwise the file grows. Two things kept that from happening with the hook that used to run
 * a PASSIVE checkpoint after commits: under continuous ingest a checkpoint that does not stop
 * writers never finds the WAL without new frames, and with queries running back to back some
 * reader always holds a snapshot in the WAL (measured: 57 -> 572 MiB in 15 s with three sqlite3
 * loops). So the ingest connection's wal hook (which replaces wal_autocheckpoint) does two
 * things. Every quarter of FRL_STORE_CKPT_PAGES it wakes a thread of the store that runs a
 * PASSIVE checkpoint on a connection of its own: that copy waits for nobody and takes no lock
 * ingest needs, and it leaves little for the next step. Once the WAL holds
 * FRL_STORE_CKPT_PAGES, the hook, right after a commit, runs a RESTART checkpoint on the
 * ingest connection itself: with the write lock (ours at once: a second connection asking for
 * it could starve behind back-to-back commits), it copies the few frames committed since the
 * last passive copy, waits up to FRL_STORE_RESTART_WAIT_MS for the readers present to leave
 * the WAL, and so lets the next commit write the WAL from its start (truncating the file to
 * journal_size_limit, FRL_STORE_WAL_LIMIT, if it had grown past it). Readers that start once
 * everything is copied back read replay.db alone and are not waited for, so the readers that
 * count are those present when the restart begins and those that start during its copy.
 * Ingest pauses meanwhile: two syncs and a short copy without readers, the wait more with them.
 * When a reader stays longer, the attempt gives up, and the next one waits until the WAL has
 * grown by FRL_STORE_CKPT_PAGES more, then by twice that after each attempt given up, up to
 * FRL_STORE_RESTART_STEP_MAX times it, or until a passive copy (they go on meanwhile) gets to
 * the end of the WAL, which tells that the readers holding it have left; then the attempt is
 * made at once. Spacing attempts by the WAL's growth rather than by time keeps the bound a
 * size: the WAL grows at most one step past an attempt given up. How long the next attempt
 * waits depends on what held the last one off. Readers that came and went (everything was
 * copied back, or more than at the attempt before) end, only later than we waited: queries of
 * a few hundred ms run back to back (bench/bench_readers.py: three sqlite3 loops over the
 * README's queries and a full scan) let no 100 ms or 250 ms attempt through, so the wait
 * doubles, up to FRL_STORE_RESTART_WAIT_MAX_MS; and once an attempt gets through only that
 * way, each restart costs ingest about one such query, so the next ones come every
 * FRL_STORE_RESTART_STEP_MAX thresholds with that wait (measured there: one peak of 190 to
 * 240 MiB, then under 130 MiB, pauses of 0.3 to 0.9 s; before, 750 MiB after 20 s and
 * growing), until one gets through quickly again. The same reader still there (a read
 * transaction left open: an idle BEGIN in a sqlite3 session) will not end sooner for a longer
 * wait, so it is waited for the least: it costs ingest one pause of FRL_STORE_RESTART_WAIT_MS
 * per step while the WAL grows (about one every 2 s at full CartPole ingest), and the store
 * warns (at most once a minute) with what it found. */
#include "store.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "log.h"

#define FRL_STORE_SCHEMA_VERSION 3
#define FRL_STORE_CKPT_PAGES 4096             /* 16 MiB of 4 KiB pages */
#define FRL_STORE_WAL_LIMIT (64LL << 20)      /* journal_size_limit, bytes */
#define FRL_STORE_WAL_WARN_FACTOR 4           /* warn from 4 x the limit: 256 MiB */
#define FRL_STORE_BUSY_MS 5000
/* The longest a RESTART checkpoint waits for the readers present (and so holds ingest): long
 * enough for the README's queries on a full replay, short against the peers' 3 s timeout. */
#ifndef FRL_STORE_RESTART_WAIT_MS
#define FRL_STORE_RESTART_WAIT_MS 100
#endif
/* ... and the longest, after attempts given up while readers kept coming and going. */
#ifndef FRL_STORE_RESTART_WAIT_MAX_MS
#define FRL_STORE_RESTART_WAIT_MAX_MS 800
#endif
#define FRL_STORE_RESTART_STEP_MAX 4          /* x FRL_STORE_CKPT_PAGES between attempts */
/* While readers keep a passive checkpoint from finishing, every commit asks for another one;
 * this spaces them so the thread does not spin on a WAL it cannot copy back. */
#define FRL_STORE_CKPT_GAP_MS 50
/* Actors visited per dedup-window step (each reads at most max_rows of its oldest records). */
#define FRL_STORE_PRUNE_ACTORS 16

static const char SCHEMA_SQL[] =
    "CREATE TABLE IF NOT EXISTS meta(\n"
    "  key TEXT PRIMARY KEY,\n"
    "  value TEXT\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS actors(\n"
    "  actor_id INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL UNIQUE,\n"
    "  first_seen REAL NOT NULL,\n"
    "  last_seen REAL NOT NULL,\n"
    "  batches INTEGER NOT NULL DEFAULT 0,\n"
    "  transitions INTEGER NOT NULL DEFAULT 0,\n"
    "  env_steps INTEGER NOT NULL DEFAULT 0\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS batches(\n"
    "  actor_id INTEGER NOT NULL REFERENCES actors(actor_id),\n"
    "  seq INTEGER NOT NULL,\n"
    "  received_at REAL NOT NULL,\n"
    "  transitions INTEGER NOT NULL,\n"
    "  first_item_id INTEGER NOT NULL,\n"
    "  env_steps INTEGER NOT NULL,\n"
    "  PRIMARY KEY(actor_id, seq)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS items(\n"
    "  item_id INTEGER PRIMARY KEY,\n"
    "  actor_id INTEGER NOT NULL REFERENCES actors(actor_id),\n"
    "  batch_seq INTEGER NOT NULL,\n"
    "  inserted_at REAL NOT NULL,\n"
    "  policy_version INTEGER,\n"
    "  priority REAL,\n"
    "  times_sampled INTEGER NOT NULL DEFAULT 0,\n"
    "  action INTEGER,\n"
    "  reward REAL NOT NULL,\n"
    "  discount REAL NOT NULL,\n"
    "  action_vec BLOB,\n"
    "  obs BLOB NOT NULL,\n"
    "  next_obs BLOB NOT NULL,\n"
    "  demo INTEGER NOT NULL DEFAULT 0\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS episodes(\n"
    "  episode_id INTEGER PRIMARY KEY,\n"
    "  actor_id INTEGER NOT NULL REFERENCES actors(actor_id),\n"
    "  ended_at REAL NOT NULL,\n"
    "  episode_return REAL,\n"
    "  length INTEGER NOT NULL,\n"
    "  success INTEGER NOT NULL,\n"
    "  truncated INTEGER NOT NULL,\n"
    "  violations INTEGER NOT NULL,\n"
    "  policy_version INTEGER NOT NULL,\n"
    "  physics TEXT\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS safety_events(\n"
    "  event_id INTEGER PRIMARY KEY,\n"
    "  actor_id INTEGER NOT NULL REFERENCES actors(actor_id),\n"
    "  received_at REAL NOT NULL,\n"
    "  kind TEXT NOT NULL,\n"
    "  count INTEGER NOT NULL,\n"
    "  at REAL NOT NULL,\n"
    "  detail TEXT\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS training(\n"
    "  at REAL NOT NULL,\n"
    "  updates INTEGER NOT NULL,\n"
    "  env_steps INTEGER NOT NULL,\n"
    "  replay_size INTEGER NOT NULL,\n"
    "  loss REAL,\n"
    "  mean_q REAL,\n"
    "  beta REAL,\n"
    "  updates_per_s REAL,\n"
    "  env_steps_per_s REAL,\n"
    "  recent_return REAL,\n"
    "  params_version INTEGER NOT NULL,\n"
    "  actor_loss REAL,\n"
    "  alpha REAL,\n"
    "  entropy REAL\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS evaluations(\n"
    "  at REAL NOT NULL,\n"
    "  updates INTEGER NOT NULL,\n"
    "  env_steps INTEGER NOT NULL,\n"
    "  mean_return REAL,\n"
    "  std_return REAL,\n"
    "  episodes INTEGER NOT NULL,\n"
    "  success_rate REAL\n"
    ");\n"
    /* IF NOT EXISTS adds it to an older store when it is opened. The blob comes last so that
     * listing the rows reads no overflow pages. */
    "CREATE TABLE IF NOT EXISTS checkpoints(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  created REAL NOT NULL,\n"
    "  env_steps INTEGER NOT NULL,\n"
    "  updates INTEGER NOT NULL,\n"
    "  params_version INTEGER NOT NULL,\n"
    "  bytes INTEGER NOT NULL,\n"
    "  blob BLOB NOT NULL\n"
    ");\n"
    /* Aggregate first, join after: items has no index on actor_id (it would slow every
     * insert), so a per-actor correlated subquery would scan items once per actor. */
    "CREATE VIEW IF NOT EXISTS actor_summary AS\n"
    "SELECT a.actor_id, a.name, a.first_seen, a.last_seen, a.batches, a.transitions,\n"
    "       a.env_steps, COALESCE(i.items, 0) AS items_in_replay, i.mean_priority,\n"
    "       i.max_priority, i.mean_times_sampled, COALESCE(e.episodes, 0) AS episodes,\n"
    "       e.mean_return\n"
    "FROM actors a\n"
    "LEFT JOIN (SELECT actor_id, COUNT(*) AS items, AVG(priority) AS mean_priority,\n"
    "                  MAX(priority) AS max_priority, AVG(times_sampled) AS mean_times_sampled\n"
    "           FROM items GROUP BY actor_id) i ON i.actor_id = a.actor_id\n"
    "LEFT JOIN (SELECT actor_id, COUNT(*) AS episodes, AVG(episode_return) AS mean_return\n"
    "           FROM episodes GROUP BY actor_id) e ON e.actor_id = a.actor_id;\n"
    "CREATE VIEW IF NOT EXISTS priority_summary AS\n"
    "SELECT COUNT(*) AS items, MIN(item_id) AS oldest_item_id, MAX(item_id) AS newest_item_id,\n"
    "       SUM(priority) AS total_priority, AVG(priority) AS mean_priority,\n"
    "       MIN(priority) AS min_priority, MAX(priority) AS max_priority,\n"
    "       AVG(times_sampled) AS mean_times_sampled, MAX(times_sampled) AS max_times_sampled,\n"
    "       SUM(times_sampled = 0) AS never_sampled\n"
    "FROM items;\n"
    "CREATE VIEW IF NOT EXISTS policy_lag AS\n"
    "SELECT a.actor_id, a.name, v.current_version, l.items,\n"
    "       v.current_version - l.mean_version AS mean_lag,\n"
    "       v.current_version - l.oldest_version AS max_lag,\n"
    "       v.current_version - l.newest_version AS min_lag\n"
    "FROM (SELECT actor_id, COUNT(*) AS items, AVG(policy_version) AS mean_version,\n"
    "             MIN(policy_version) AS oldest_version, MAX(policy_version) AS newest_version\n"
    "      FROM items WHERE policy_version IS NOT NULL GROUP BY actor_id) l\n"
    "JOIN actors a ON a.actor_id = l.actor_id\n"
    "CROSS JOIN (SELECT MAX(params_version) AS current_version FROM training) v;\n"
    "CREATE VIEW IF NOT EXISTS returns_by_minute AS\n"
    "SELECT CAST(ended_at / 60 AS INTEGER) * 60 AS minute_start,\n"
    "       datetime(CAST(ended_at / 60 AS INTEGER) * 60, 'unixepoch') AS minute_utc,\n"
    "       COUNT(*) AS episodes, AVG(episode_return) AS mean_return,\n"
    "       MIN(episode_return) AS min_return, MAX(episode_return) AS max_return,\n"
    "       AVG(length) AS mean_length, SUM(success) AS successes\n"
    "FROM episodes GROUP BY 1 ORDER BY 1;\n";

struct frl_store {
  sqlite3 *db;
  frl_store_config_t cfg;
  char *path;
  double wal_warned_at; /* frl_now() of the last "WAL is large" warning */
  int old_version;      /* user_version found at open: 0 new, 1 or 2 need migrate() */
  bool wal_mode;        /* journal_mode is wal (else there is no WAL to keep bounded) */
  double busy_since;    /* frl_now() when the ingest connection began waiting for a lock */
  int page_size;
  int ckpt_pages;       /* checkpoint from this many WAL pages */
  int warn_pages;       /* warn from this many (FRL_STORE_WAL_WARN_FACTOR x the limit) */
  int64_t prune_actor;  /* the dedup-window step resumes after this actor_id */

  /* Restarting the WAL (ingest thread only). */
  double restart_deadline;   /* > 0 during a restart: when its busy wait gives up */
  int restart_at;            /* no attempt before the WAL holds this many pages */
  int restart_step;          /* the growth to wait for after the next attempt given up */
  int restart_wait_ms;       /* how long the next attempt waits for readers */
  int restart_failed_done;   /* frames copied back by the last attempt given up (-1: none) */
  double restart_busy_since; /* frl_now() of the first of the attempts given up in a row */
  uint64_t restart_busy_in_row;

  /* The checkpointer thread and its connection (see the file comment). ckpt_db belongs to the
   * thread; the fields below ckpt_mu are shared under it. */
  sqlite3 *ckpt_db;
  pthread_t ckpt_thread;
  bool ckpt_running;
  pthread_mutex_t ckpt_mu;
  pthread_cond_t ckpt_cv;
  bool ckpt_wanted, ckpt_stop;
  bool ckpt_active;     /* the thread is checkpointing */
  bool restart_active;  /* the ingest thread is restarting the WAL */
  bool readers_left;    /* the last passive copy reached the WAL's end: no reader held it */
  int ckpt_next;        /* the hook wakes the thread when the WAL reaches this many pages */
  frl_store_wal_stats_t wal;
  sqlite3_stmt *begin, *commit, *rollback;
  sqlite3_stmt *actor_find, *actor_add, *actor_count;
  sqlite3_stmt *batch_add, *item_add, *episode_add, *safety_add, *evict;
  sqlite3_stmt *item_update, *item_max, *item_scan;
  sqlite3_stmt *progress_add, *eval_add, *meta_set, *meta_get;
  sqlite3_stmt *ckpt_add, *ckpt_trim, *ckpt_get, *ckpt_count, *totals, *recent_returns,
      *latest_version, *prune_actors, *prune_batches;
};

/* The OS error behind an I/O result, or 0. SQLite does not always keep it (3.40 leaves it 0 for
 * a write to the WAL refused with EROFS), and a filesystem turned read-only under the open store
 * is the case an operator must be told about, so when SQLite has none the file is asked. */
static int os_error(frl_store_t *s, int primary) {
  int sys = sqlite3_system_errno(s->db);
  if (sys == 0 && primary == SQLITE_IOERR && access(s->path, W_OK) != 0 && errno == EROFS)
    sys = EROFS;
  return sys;
}

/* Logs SQLite's own message and maps the result code for callers: a full disk and a read-only
 * file are conditions an operator acts on, everything else is "SQLite failed". */
static int sql_error(frl_store_t *s, int rc, const char *what) {
  int primary = rc & 0xff;
  /* For I/O results the OS error says what SQLite's "disk I/O error" does not (SQLite records
   * it only for these, so for the others it would be stale). */
  int sys = primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN ? os_error(s, primary) : 0;
  frl_error("store %s: %s: %s (sqlite code %d%s%s)", s->path, what, sqlite3_errmsg(s->db), rc,
            sys ? "; " : "", sys ? strerror(sys) : "");
  if (primary == SQLITE_FULL) return -ENOSPC;
  if (primary == SQLITE_READONLY) return -EROFS;
  if (primary == SQLITE_IOERR && sys == ENOSPC) return -ENOSPC;
  /* A filesystem turned read-only under an open store (ext4's errors=remount-ro, a network
   * volume) fails the write itself: SQLite says only "disk I/O error", the OS error says why. */
  if (primary == SQLITE_IOERR && sys == EROFS) return -EROFS;
  if (primary == SQLITE_NOMEM) return -ENOMEM;
  return FRL_ESQL;
}

/* Steps a statement that returns no rows (or whose rows we ignore) and resets it. */
static int run(frl_store_t *s, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  int err = 0;
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) err = sql_error(s, rc, what);
  sqlite3_reset(st);
  return err;
}

static int exec(frl_store_t *s, const char *sql, const char *what) {
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : sql_error(s, rc, what);
}

static int prepare(frl_store_t *s, sqlite3_stmt **st, const char *sql) {
  int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
  return rc == SQLITE_OK ? 0 : sql_error(s, rc, sql);
}

/* Undoes the open transaction, if SQLite has not already rolled it back itself (it does so
 * on SQLITE_FULL and some I/O errors). */
static void rollback(frl_store_t *s) {
  if (!sqlite3_get_autocommit(s->db)) {
    int rc = sqlite3_step(s->rollback);
    if (rc != SQLITE_DONE) frl_error("store %s: rollback: %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_reset(s->rollback);
  }
}

static void bind_real_or_null(sqlite3_stmt *st, int col, double v) {
  if (isfinite(v))
    sqlite3_bind_double(st, col, v);
  else
    sqlite3_bind_null(st, col);
}

static void sleep_ms(double ms) {
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(fmod(ms, 1000) * 1e6)};
  nanosleep(&ts, NULL);
}

/* The ingest connection waits up to FRL_STORE_BUSY_MS for a lock, polling every millisecond
 * (SQLite's own timeout sleeps up to 100 ms at a time, which would add up to that to a wait
 * for a lock held a few milliseconds); during a restarting checkpoint, only until its
 * deadline. */
static int ingest_busy(void *ctx, int count) {
  frl_store_t *s = ctx;
  double now = frl_now();
  if (s->restart_deadline > 0) {
    if (now >= s->restart_deadline) return 0;
  } else {
    if (count == 0) s->busy_since = now;
    if (now - s->busy_since >= FRL_STORE_BUSY_MS / 1000.0) return 0;
  }
  sleep_ms(count < 10 ? 0.2 : 1.0);
  return 1;
}

static void note_wal_pages(frl_store_t *s, int pages) {
  s->wal.wal_pages = pages;
  if (pages > s->wal.wal_pages_max) s->wal.wal_pages_max = pages;
}

/* The RESTART checkpoint of the file comment, on the ingest connection between two
 * transactions: the write lock is ours at once (a checkpointer thread asking for it could
 * starve behind back-to-back commits), and ingest would wait for it anyway. */
static void restart_wal(frl_store_t *s, sqlite3 *db) {
  double now = frl_now();
  int log_frames = 0, done_frames = 0;
  const int wait_ms = s->restart_wait_ms;
  s->restart_deadline = now + wait_ms / 1000.0;
  int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_RESTART, &log_frames,
                                     &done_frames);
  s->restart_deadline = 0;
  const bool ok = rc == SQLITE_OK;
  const double took_ms = 1e3 * (frl_now() - now);
  frl_debug("store %s: WAL restart %s after %.1f ms (wait %d ms; %d pages, %d copied back)",
            s->path, ok ? "done" : "given up", took_ms, wait_ms, log_frames, done_frames);
  if (ok && wait_ms > FRL_STORE_RESTART_WAIT_MS && took_ms > FRL_STORE_RESTART_WAIT_MS) {
    /* Through only after attempts given up, and with a longer wait than the shortest: readers
     * that run long keep coming. Each restart then costs ingest about one of them, so make
     * restarts rarer (every FRL_STORE_RESTART_STEP_MAX thresholds) and let the next one wait
     * as long at once, or half as long when this one needed at most half. */
    s->restart_busy_in_row = 0;
    s->restart_step = s->restart_at = s->ckpt_pages * FRL_STORE_RESTART_STEP_MAX;
    while (s->restart_wait_ms / 2 >= took_ms && s->restart_wait_ms / 2 >= FRL_STORE_RESTART_WAIT_MS)
      s->restart_wait_ms /= 2;
    s->restart_failed_done = -1;
  } else if (ok) {
    s->restart_busy_in_row = 0;
    s->restart_step = s->ckpt_pages;
    s->restart_at = s->ckpt_pages;
    s->restart_wait_ms = FRL_STORE_RESTART_WAIT_MS;
    s->restart_failed_done = -1;
  } else {
    if ((rc & 0xff) != SQLITE_BUSY)
      frl_warn("store %s: checkpoint: %s (sqlite code %d)", s->path, sqlite3_errmsg(db), rc);
    /* A reader stayed longer than we may hold ingest: try again later, less often the longer
     * it lasts; the passive checkpoints go on meanwhile. */
    if (s->restart_busy_in_row++ == 0) s->restart_busy_since = now;
    s->restart_at = (int)FRL_MIN((int64_t)log_frames + s->restart_step, INT32_MAX);
    s->restart_step = (int)FRL_MIN(2 * (int64_t)s->restart_step,
                                   (int64_t)s->ckpt_pages * FRL_STORE_RESTART_STEP_MAX);
    /* Readers that come and go (everything got copied back, so the readers present at the
     * start had left; or more than at the last attempt) end, only later than we waited: wait
     * longer next time. The same reader still there (an open transaction) will not end
     * sooner for a longer wait: wait the least. */
    const bool turnover = done_frames >= log_frames ||
                          (s->restart_failed_done >= 0 && done_frames > s->restart_failed_done);
    s->restart_wait_ms = turnover ? FRL_MIN(2 * s->restart_wait_ms, FRL_STORE_RESTART_WAIT_MAX_MS)
                                  : FRL_STORE_RESTART_WAIT_MS;
    s->restart_failed_done = done_frames;
  }
  if (log_frames >= s->warn_pages && !ok &&
      (s->wal_warned_at == 0.0 || now - s->wal_warned_at > 60.0)) {
    s->wal_warned_at = now;
    frl_warn("store %s: the WAL holds %d pages (%.0f MiB) because readers keep using it: for "
             "%.0f s, %llu attempts to restart it, the last waiting %d ms for the readers "
             "present, found one still reading. A read transaction left open (an idle BEGIN "
             "in a sqlite3 session) or queries running longer than that back to back keep it "
             "growing; ingest goes on, and the -wal file is cut back to %lld MiB as soon as "
             "the readers present finish within the wait",
             s->path, log_frames, log_frames * (s->page_size + 24.0) / 1048576.0,
             now - s->restart_busy_since, (unsigned long long)s->restart_busy_in_row,
             wait_ms, (long long)(s->cfg.wal_limit_bytes >> 20));
  }
  if (s->ckpt_running) pthread_mutex_lock(&s->ckpt_mu);
  s->wal.checkpoints++;
  if (ok) s->wal.restarts++;
  else s->wal.restarts_busy++;
  if (s->ckpt_running) {
    s->restart_active = false;
    pthread_cond_broadcast(&s->ckpt_cv); /* the thread may have been asked meanwhile */
    pthread_mutex_unlock(&s->ckpt_mu);
  }
}

/* Replaces wal_autocheckpoint (installing a hook disables it): see the file comment. Runs on
 * the ingest thread after each commit, with the write lock released. It asks the thread for
 * a passive checkpoint every quarter of ckpt_pages, so that the copy left for the restart
 * stays short, and restarts the WAL itself once it holds restart_at pages (ckpt_pages, more
 * after attempts given up), after the thread's copy under way if there is one. Without the
 * thread (SQLite built without threads, or it could not start) the restart alone does all the
 * copying. */
static int wal_hook(void *ctx, sqlite3 *db, const char *name, int pages) {
  frl_store_t *s = ctx;
  bool restart;
  if (s->ckpt_running) {
    const int step = FRL_MAX(s->ckpt_pages / 4, 1);
    pthread_mutex_lock(&s->ckpt_mu);
    /* A passive copy went through to the end: the readers that held the last restart off
     * have left, so try again now rather than after the delay. */
    if (s->readers_left) s->restart_at = s->ckpt_pages;
    s->readers_left = false;
    restart = pages >= s->restart_at;
    if (pages < s->wal.wal_pages) s->ckpt_next = step; /* the WAL was restarted */
    note_wal_pages(s, pages);
    /* From ckpt_pages on the restart copies the rest, unless readers hold it off. */
    if (pages >= s->ckpt_next && (pages < s->ckpt_pages || !restart)) {
      s->ckpt_next = pages + step;
      s->ckpt_wanted = true;
      pthread_cond_signal(&s->ckpt_cv);
    }
    /* The thread's copy is under way (both need the checkpoint lock): let it finish rather
     * than skip, or a writer faster than the copies would outrun the bound. */
    while (restart && s->ckpt_active) pthread_cond_wait(&s->ckpt_cv, &s->ckpt_mu);
    s->restart_active = restart;
    pthread_mutex_unlock(&s->ckpt_mu);
  } else {
    note_wal_pages(s, pages);
    restart = pages >= s->restart_at;
  }
  if (restart) restart_wal(s, db);
  return SQLITE_OK;
}

/* Waits on the condition until `until` (frl_now() seconds) or until stopped; ckpt_mu held. */
static void ckpt_wait_until(frl_store_t *s, double until) {
  while (!s->ckpt_stop) {
    double left = until - frl_now();
    if (left <= 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + left;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&s->ckpt_cv, &s->ckpt_mu, &ts);
  }
}

/* The checkpointer thread: PASSIVE checkpoints on its own connection when the hook asks,
 * never while the ingest connection is restarting the WAL (both need the checkpoint lock). */
static void *checkpointer(void *arg) {
  frl_store_t *s = arg;
  pthread_mutex_lock(&s->ckpt_mu);
  for (;;) {
    while (!s->ckpt_stop && !(s->ckpt_wanted && !s->restart_active))
      pthread_cond_wait(&s->ckpt_cv, &s->ckpt_mu);
    if (s->ckpt_stop) break;
    s->ckpt_wanted = false;
    s->ckpt_active = true;
    pthread_mutex_unlock(&s->ckpt_mu);

    int log_frames = 0, done_frames = 0;
    int rc = sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                       &done_frames);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
      frl_warn("store %s: checkpoint: %s (sqlite code %d)", s->path, sqlite3_errmsg(s->ckpt_db),
               rc);

    pthread_mutex_lock(&s->ckpt_mu);
    s->ckpt_active = false;
    s->readers_left = rc == SQLITE_OK && log_frames > 0 && done_frames == log_frames;
    pthread_cond_broadcast(&s->ckpt_cv); /* the hook may be waiting to restart */
    s->wal.checkpoints++;
    /* Readers kept it from copying everything: space the next ones. */
    if (done_frames < log_frames) ckpt_wait_until(s, frl_now() + FRL_STORE_CKPT_GAP_MS / 1000.0);
  }
  pthread_mutex_unlock(&s->ckpt_mu);
  return NULL;
}

/* Opens the checkpointer's connection and starts its thread. On failure the store goes on
 * with the hook's restarts alone, which then copy everything themselves (logged). */
static void start_checkpointer(frl_store_t *s) {
  if (!sqlite3_threadsafe()) {
    frl_warn("store %s: SQLite is built without threads; checkpoints run on the ingest "
             "connection alone, so ingest pauses for each whole copy", s->path);
    return;
  }
  int rc = sqlite3_open_v2(s->path, &s->ckpt_db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, NULL);
  /* Reading the schema opens the WAL on this connection, which a checkpoint needs. */
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(s->ckpt_db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    frl_warn("store %s: cannot open the checkpointer's connection: %s; checkpoints run on the "
             "ingest connection", s->path, s->ckpt_db ? sqlite3_errmsg(s->ckpt_db) : "no memory");
    sqlite3_close(s->ckpt_db);
    s->ckpt_db = NULL;
    return;
  }
  sqlite3_extended_result_codes(s->ckpt_db, 1);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&s->ckpt_cv, &attr);
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&s->ckpt_mu, NULL);
  s->ckpt_next = FRL_MAX(s->ckpt_pages / 4, 1);
  s->ckpt_running = true; /* before the thread exists: the hook reads it on this thread only */
  if ((rc = pthread_create(&s->ckpt_thread, NULL, checkpointer, s)) != 0) {
    frl_warn("store %s: cannot start the checkpointer thread: %s; checkpoints run on the "
             "ingest connection", s->path, strerror(rc));
    s->ckpt_running = false;
    pthread_cond_destroy(&s->ckpt_cv);
    pthread_mutex_destroy(&s->ckpt_mu);
    sqlite3_close(s->ckpt_db);
    s->ckpt_db = NULL;
  }
}

static void stop_checkpointer(frl_store_t *s) {
  if (!s->ckpt_running) return;
  pthread_mutex_lock(&s->ckpt_mu);
  s->ckpt_stop = true;
  pthread_cond_signal(&s->ckpt_cv);
  pthread_mutex_unlock(&s->ckpt_mu);
  pthread_join(s->ckpt_thread, NULL);
  s->ckpt_running = false;
  pthread_cond_destroy(&s->ckpt_cv);
  pthread_mutex_destroy(&s->ckpt_mu);
  sqlite3_close(s->ckpt_db);
  s->ckpt_db = NULL;
}

void frl_store_wal_stats(frl_store_t *s, frl_store_wal_stats_t *out) {
  if (!s->ckpt_running) {
    *out = s->wal;
    return;
  }
  pthread_mutex_lock(&s->ckpt_mu);
  *out = s->wal;
  pthread_mutex_unlock(&s->ckpt_mu);
}

/* Reads meta.value for key into text (empty string when absent: *found false). */
static int meta_get(frl_store_t *s, const char *key, bool *found, char *text, size_t len) {
  *found = false;
  text[0] = '\0';
  sqlite3_bind_text(s->meta_get, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s->meta_get);
  int err = 0;
  if (rc == SQLITE_ROW) {
    const unsigned char *v = sqlite3_column_text(s->meta_get, 0);
    *found = true;
    snprintf(text, len, "%s", v ? (const char *)v : "");
  } else if (rc != SQLITE_DONE) {
    err = sql_error(s, rc, "reading meta");
  }
  sqlite3_reset(s->meta_get);
  return err;
}

/* Records the task's shape in a new store, or checks it against an existing one: items of
 * another shape would be misread as this task's observations. */
static int check_dims(frl_store_t *s) {
  char want[3][32], have[64];
  snprintf(want[0], sizeof want[0], "%u", s->cfg.obs_dim);
  snprintf(want[1], sizeof want[1], "%u", s->cfg.act_dim);
  snprintf(want[2], sizeof want[2], "%s", s->cfg.discrete ? "discrete" : "continuous");
  static const char *keys[] = {"obs_dim", "act_dim", "action_type"};
  int err;
  bool found;
  for (int k = 0; k < 3; k++) {
    if ((err = meta_get(s, keys[k], &found, have, sizeof have))) return err;
    if (found && strcmp(have, want[k]) != 0) {
      frl_error("store %s: made for %s = %s, this run has %s; use another file", s->path,
                keys[k], have, want[k]);
      return FRL_EDIM;
    }
    if (!found && (err = frl_store_set_meta(s, keys[k], want[k]))) return err;
  }
  if ((err = meta_get(s, "created_at", &found, have, sizeof have))) return err;
  if (!found) {
    snprintf(have, sizeof have, "%.3f", frl_wall());
    if ((err = frl_store_set_meta(s, "created_at", have))) return err;
    snprintf(have, sizeof have, "%d", FRL_STORE_SCHEMA_VERSION);
    if ((err = frl_store_set_meta(s, "store_schema_version", have))) return err;
  }
  return 0;
}

/* Reads PRAGMA user_version: 0 for a new file, FRL_STORE_SCHEMA_VERSION for ours. */
static int check_version(frl_store_t *s) {
  sqlite3_stmt *st = NULL;
  int err = prepare(s, &st, "PRAGMA user_version");
  if (err) return err;
  int rc = sqlite3_step(st);
  int64_t version = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  if (rc != SQLITE_ROW) err = sql_error(s, rc, "PRAGMA user_version");
  sqlite3_finalize(st);
  if (err) return err;
  if (version > FRL_STORE_SCHEMA_VERSION) {
    frl_error("store %s: schema version %lld is newer than this build's %d", s->path,
              (long long)version, FRL_STORE_SCHEMA_VERSION);
    return FRL_ESCHEMA;
  }
  s->old_version = (int)version;
  return 0;
}

/* Brings a store written by an older build up to this schema inside the caller's transaction.
 * Version 1 lacked items.demo and episodes.physics (safety_events is created with the rest);
 * versions 1 and 2 lacked evaluations.success_rate and training's actor_loss, alpha and
 * entropy. */
static int migrate(frl_store_t *s) {
  if (s->old_version < 1 || s->old_version >= FRL_STORE_SCHEMA_VERSION) return 0;
  frl_info("store %s: upgrading schema version %d to %d", s->path, s->old_version,
           FRL_STORE_SCHEMA_VERSION);
  int err = 0;
  if (s->old_version < 2) {
    err = exec(s, "ALTER TABLE items ADD COLUMN demo INTEGER NOT NULL DEFAULT 0",
               "adding items.demo");
    if (!err)
      err = exec(s, "ALTER TABLE episodes ADD COLUMN physics TEXT", "adding episodes.physics");
  }
  static const char *const v3[][2] = {
      {"ALTER TABLE evaluations ADD COLUMN success_rate REAL", "adding evaluations.success_rate"},
      {"ALTER TABLE training ADD COLUMN actor_loss REAL", "adding training.actor_loss"},
      {"ALTER TABLE training ADD COLUMN alpha REAL", "adding training.alpha"},
      {"ALTER TABLE training ADD COLUMN entropy REAL", "adding training.entropy"}};
  for (size_t i = 0; !err && i < FRL_ARRAY_LEN(v3); i++) err = exec(s, v3[i][0], v3[i][1]);
  return err;
}

static int configure(frl_store_t *s) {
  int err;
  sqlite3_extended_result_codes(s->db, 1);
  sqlite3_busy_handler(s->db, ingest_busy, s);
  /* journal_mode answers with the mode actually in effect: a file system without shared
   * memory support keeps the rollback journal, which still works, only without concurrent
   * readers during writes. */
  sqlite3_stmt *st = NULL;
  if ((err = prepare(s, &st, "PRAGMA journal_mode=WAL"))) return err;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    s->wal_mode = mode && strcmp(mode, "wal") == 0;
    if (!s->wal_mode)
      frl_warn("store %s: journal_mode is %s, not wal: readers will block ingest", s->path,
               mode ? mode : "?");
  } else {
    err = sql_error(s, rc, "PRAGMA journal_mode=WAL");
  }
  sqlite3_finalize(st);
  if (err) return err;
  char sql[256];
  snprintf(sql, sizeof sql,
           "PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=%lld; PRAGMA cache_size=-65536;",
           (long long)s->cfg.wal_limit_bytes);
  if ((err = exec(s, sql, "setting pragmas"))) return err;
  /* The WAL thresholds in pages: a WAL frame is a page plus a 24-byte header. */
  if ((err = prepare(s, &st, "PRAGMA page_size"))) return err;
  int page = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 4096;
  sqlite3_finalize(st);
  if (page < 512) page = 4096;
  s->page_size = page;
  s->ckpt_pages = (int)s->cfg.wal_checkpoint_pages;
  s->restart_at = s->restart_step = s->ckpt_pages;
  s->restart_wait_ms = FRL_STORE_RESTART_WAIT_MS;
  s->restart_failed_done = -1;
  int64_t limit_pages = ((int64_t)s->cfg.wal_limit_bytes - 32) / (page + 24);
  s->warn_pages = (int)FRL_MIN(FRL_MAX(limit_pages, (int64_t)s->ckpt_pages) *
                                   FRL_STORE_WAL_WARN_FACTOR, INT32_MAX);
  if (s->cfg.max_bytes) {
    uint64_t pages = s->cfg.max_bytes / 4096;
    if (pages < 8) pages = 8;
    snprintf(sql, sizeof sql, "PRAGMA max_page_count=%llu;", (unsigned long long)pages);
    if ((err = exec(s, sql, "PRAGMA max_page_count"))) return err;
  }
  sqlite3_wal_hook(s->db, wal_hook, s);
  return 0;
}

static int prepare_all(frl_store_t *s) {
  struct {
    sqlite3_stmt **st;
    const char *sql;
  } list[] = {
      {&s->begin, "BEGIN IMMEDIATE"},
      {&s->commit, "COMMIT"},
      {&s->rollback, "ROLLBACK"},
      {&s->actor_find, "SELECT actor_id FROM actors WHERE name = ?1"},
      {&s->actor_add, "INSERT INTO actors(name, first_seen, last_seen) VALUES(?1, ?2, ?2)"},
      {&s->actor_count, "UPDATE actors SET last_seen = ?1, batches = batches + 1,"
                        " transitions = transitions + ?2, env_steps = env_steps + ?3"
                        " WHERE actor_id = ?4"},
      {&s->batch_add, "INSERT INTO batches(actor_id, seq, received_at, transitions,"
                      " first_item_id, env_steps) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"
                      " ON CONFLICT(actor_id, seq) DO NOTHING"},
      {&s->item_add, "INSERT INTO items(item_id, actor_id, batch_seq, inserted_at,"
                     " policy_version, priority, action, reward, discount, action_vec, obs,"
                     " next_obs, demo)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"},
      {&s->episode_add, "INSERT INTO episodes(actor_id, ended_at, episode_return, length,"
                        " success, truncated, violations, policy_version, physics)"
                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
      {&s->safety_add, "INSERT INTO safety_events(actor_id, received_at, kind, count, at,"
                       " detail) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"},
      /* A range, so that evicting agent experience never reaches the demonstrations kept at
       * ids from FRL_DEMO_ID_BASE up, and evicting demonstrations never reaches the agent's. */
      {&s->evict, "DELETE FROM items WHERE item_id >= ?2 AND item_id < ?1"},
      {&s->item_update, "UPDATE items SET priority = ?1, times_sampled = times_sampled + ?2"
                        " WHERE item_id = ?3"},
      {&s->item_max, "SELECT MAX(item_id) FROM items WHERE item_id >= ?1 AND item_id < ?2"},
      {&s->item_scan, "SELECT item_id, action, action_vec, reward, discount, obs, next_obs,"
                      " priority FROM items WHERE item_id >= ?1 ORDER BY item_id"},
      {&s->progress_add, "INSERT INTO training(at, updates, env_steps, replay_size, loss,"
                         " mean_q, beta, updates_per_s, env_steps_per_s, recent_return,"
                         " params_version, actor_loss, alpha, entropy)"
                         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"},
      {&s->eval_add, "INSERT INTO evaluations(at, updates, env_steps, mean_return, std_return,"
                     " episodes, success_rate) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
      {&s->meta_set, "INSERT INTO meta(key, value) VALUES(?1, ?2)"
                     " ON CONFLICT(key) DO UPDATE SET value = excluded.value"},
      {&s->meta_get, "SELECT value FROM meta WHERE key = ?1"},
      {&s->ckpt_add, "INSERT INTO checkpoints(created, env_steps, updates, params_version,"
                     " bytes, blob) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"},
      /* Everything from the (keep+1)-th newest down; nothing while there are <= keep rows. */
      {&s->ckpt_trim, "DELETE FROM checkpoints WHERE id <= (SELECT id FROM checkpoints"
                      " ORDER BY id DESC LIMIT 1 OFFSET ?1)"},
      {&s->ckpt_get, "SELECT id, created, env_steps, updates, params_version, bytes, blob"
                     " FROM checkpoints ORDER BY id DESC LIMIT 1 OFFSET ?1"},
      {&s->ckpt_count, "SELECT COUNT(*) FROM checkpoints"},
      /* The dedup window, a few actors a step, in actor_id order. */
      {&s->prune_actors, "SELECT actor_id FROM actors WHERE actor_id > ?1 ORDER BY actor_id"
                         " LIMIT ?2"},
      /* Among an actor's ?3 lowest seqs (a prefix of its primary-key range, so the step reads
       * no more than that), those received before ?2. seq follows the actor's clock, so its
       * oldest records come first; a record received late (a resend after a lost first try)
       * only waits in the prefix until it too is older than the window. */
      {&s->prune_batches, "DELETE FROM batches WHERE actor_id = ?1 AND seq IN"
                          " (SELECT seq FROM (SELECT seq, received_at FROM batches"
                          "  WHERE actor_id = ?1 ORDER BY seq LIMIT ?3) WHERE received_at < ?2)"},
      {&s->totals, "SELECT COALESCE(SUM(batches), 0), COALESCE(SUM(transitions), 0),"
                   " COALESCE(SUM(env_steps), 0),"
                   " (SELECT COALESCE(MAX(episode_id), 0) FROM episodes) FROM actors"},
      {&s->recent_returns, "SELECT episode_return FROM episodes ORDER BY episode_id DESC"
                           " LIMIT ?1"},
      /* Bounded: the last training row and the newest items and episodes, each read
       * backwards along its primary key. */
      {&s->latest_version,
       "SELECT MAX(v) FROM ("
       " SELECT params_version AS v FROM"
       "  (SELECT params_version FROM training ORDER BY rowid DESC LIMIT 1)"
       " UNION ALL SELECT MAX(policy_version) FROM"
       "  (SELECT policy_version FROM items ORDER BY item_id DESC LIMIT 4096)"
       " UNION ALL SELECT MAX(policy_version) FROM"
       "  (SELECT policy_version FROM episodes ORDER BY episode_id DESC LIMIT 1024))"},
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(list); i++) {
    int err = prepare(s, list[i].st, list[i].sql);
    if (err) return err;
  }
  return 0;
}

int frl_store_open(frl_store_t **out, const frl_store_config_t *cfg) {
  int err = 0;
  frl_store_t *s = NULL;
  if (!cfg || !cfg->path || cfg->obs_dim == 0 || cfg->obs_dim > FRL_MSG_MAX_DIM ||
      cfg->act_dim == 0 || cfg->act_dim > FRL_MSG_MAX_DIM || (cfg->discrete && cfg->act_dim != 1)) {
    frl_error("store: bad config (obs_dim and act_dim must be in 1..%u, act_dim 1 for discrete "
              "tasks)", FRL_MSG_MAX_DIM);
    return FRL_EUSAGE;
  }
  if (cfg->wal_checkpoint_pages > (1u << 30) || cfg->wal_limit_bytes > (1ull << 40) ||
      (cfg->wal_limit_bytes && cfg->wal_limit_bytes < (64u << 10))) {
    frl_error("store: bad config (wal_checkpoint_pages at most 2^30, wal_limit_bytes 0 or in "
              "64 KiB..1 TiB)");
    return FRL_EUSAGE;
  }
  s = frl_xcalloc(1, sizeof *s);
  s->cfg = *cfg;
  s->path = frl_xstrdup(cfg->path);
  s->cfg.path = s->path;
  if (!s->cfg.wal_checkpoint_pages) s->cfg.wal_checkpoint_pages = FRL_STORE_CKPT_PAGES;
  if (!s->cfg.wal_limit_bytes) s->cfg.wal_limit_bytes = FRL_STORE_WAL_LIMIT;
  int rc = sqlite3_open_v2(s->path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                               SQLITE_OPEN_URI, NULL);
  if (rc != SQLITE_OK) {
    if (!s->db) {
      frl_error("store %s: cannot open: out of memory", s->path);
      err = -ENOMEM;
    } else {
      err = sql_error(s, rc, "opening");
    }
    goto fail;
  }
  if ((err = configure(s))) goto fail;
  if ((err = check_version(s))) goto fail;
  if ((err = exec(s, "BEGIN IMMEDIATE", "creating the schema"))) goto fail;
  if ((err = migrate(s))) goto fail_txn;
  if ((err = exec(s, SCHEMA_SQL, "creating the schema"))) goto fail_txn;
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version=%d", FRL_STORE_SCHEMA_VERSION);
  if ((err = exec(s, sql, "setting user_version"))) goto fail_txn;
  if ((err = prepare_all(s))) goto fail_txn;
  if ((err = check_dims(s))) goto fail_txn;
  if ((err = exec(s, "COMMIT", "creating the schema"))) goto fail_txn;
  if (s->wal_mode) start_checkpointer(s);
  *out = s;
  return 0;
fail_txn:
  if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
fail:
  frl_store_close(&s);
  return err;
}

void frl_store_close(frl_store_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_store_t *s = *self_p;
  stop_checkpointer(s);
  sqlite3_stmt **all[] = {&s->begin,      &s->commit,    &s->rollback,   &s->actor_find,
                          &s->actor_add,  &s->actor_count, &s->batch_add, &s->item_add,
                          &s->episode_add, &s->safety_add, &s->evict,    &s->item_update, &s->item_max,
                          &s->item_scan,  &s->progress_add, &s->eval_add, &s->meta_set,
                          &s->meta_get,   &s->ckpt_add,  &s->ckpt_trim,  &s->ckpt_get,
                          &s->ckpt_count, &s->totals,    &s->recent_returns,
                          &s->latest_version, &s->prune_actors, &s->prune_batches};
  for (size_t i = 0; i < FRL_ARRAY_LEN(all); i++) sqlite3_finalize(*all[i]);
  if (s->db) {
    /* The last connection to close checkpoints and removes the WAL; a reader still open keeps
     * it, which is fine. */
    if (sqlite3_close(s->db) != SQLITE_OK)
      frl_error("store %s: close: %s", s->path, sqlite3_errmsg(s->db));
  }
  free(s->path);
  free(s);
  *self_p = NULL;
}

/* Finds the actor's id, creating the row inside the caller's transaction. */
static int actor_id(frl_store_t *s, const char *name, int name_len, double now, int64_t *out) {
  sqlite3_bind_text(s->actor_find, 1, name, name_len, SQLITE_STATIC);
  int rc = sqlite3_step(s->actor_find);
  if (rc == SQLITE_ROW) {
    *out = sqlite3_column_int64(s->actor_find, 0);
    sqlite3_reset(s->actor_find);
    return 0;
  }
  int err = rc == SQLITE_DONE ? 0 : sql_error(s, rc, "looking up the actor");
  sqlite3_reset(s->actor_find);
  if (err) return err;
  sqlite3_bind_text(s->actor_add, 1, name, name_len, SQLITE_STATIC);
  sqlite3_bind_double(s->actor_add, 2, now);
  if ((err = run(s, s->actor_add, "adding the actor"))) return err;
  *out = sqlite3_last_insert_rowid(s->db);
  return 0;
}

static void episode_at(const frl_experience_t *b, uint32_t i, frl_episode_stat_t *ep) {
  if (b->episodes_in)
    *ep = b->episodes_in[i];
  else
    frl_msg_episode(b, i, ep);
}

static void safety_at(const frl_experience_t *b, uint32_t i, frl_safety_event_t *ev) {
  if (b->safety_in)
    *ev = b->safety_in[i];
  else
    frl_msg_safety(b, i, ev);
}

/* The store trusts the replay's value checks but not the shape of what it is handed, since a
 * wrong shape here would read past the message buffer. */
static int check_batch(frl_store_t *s, const frl_experience_t *b, int *name_len) {
  size_t len = b->actor ? strnlen(b->actor, FRL_MSG_MAX_STRING + 1) : 0;
  if (len == 0 || len > FRL_MSG_MAX_STRING) {
    frl_error("store %s: batch actor name missing or longer than %u bytes", s->path,
              FRL_MSG_MAX_STRING);
    return FRL_EPROTO;
  }
  *name_len = (int)len;
  uint64_t n = b->count;
  bool actions_ok = s->cfg.discrete ? (b->action_index && b->n_action_index == n) || n == 0
                                    : (b->action && b->n_action == n * s->cfg.act_dim) || n == 0;
  if (b->obs_dim != s->cfg.obs_dim || b->act_dim != s->cfg.act_dim ||
      b->count > FRL_MSG_MAX_COUNT || !actions_ok ||
      (n && (!b->obs || !b->next_obs || !b->reward || !b->discount)) ||
      (b->n_policy_version && (b->n_policy_version != n || !b->policy_version)) ||
      b->n_episodes > FRL_MSG_MAX_EPISODES ||
      (b->n_episodes && !b->episodes_in && !b->episodes_vec) ||
      b->n_safety > FRL_MSG_MAX_SAFETY || (b->n_safety && !b->safety_in && !b->safety_vec)) {
    frl_error("store %s: batch shape does not match the store (obs_dim %u act_dim %u)", s->path,
              s->cfg.obs_dim, s->cfg.act_dim);
    return FRL_EDIM;
  }
  return 0;
}

int frl_store_insert_batch(frl_store_t *s, const frl_experience_t *batch, uint64_t first_item_id,
                           const float *priority, int64_t evict_below, double now,
                           bool *duplicate) {
  int name_len = 0;
  int err = check_batch(s, batch, &name_len);
  if (err) return err;
  const uint32_t n = batch->count, D = s->cfg.obs_dim, A = s->cfg.act_dim;
  const int obs_bytes = (int)(D * sizeof(float)), act_bytes = (int)(A * sizeof(float));
  /* Sequence numbers and versions are unsigned 64-bit on the wire; SQLite integers are signed.
   * The cast keeps them distinct (values >= 2^63 read back negative), which is all dedup needs. */
  const sqlite3_int64 seq = (sqlite3_int64)batch->seq;
  int64_t actor = 0;

  if ((err = run(s, s->begin, "BEGIN"))) return err;
  if ((err = actor_id(s, batch->actor, name_len, now, &actor))) goto fail;

  /* Dedup and the batch record in one statement: the primary key conflict is the test. */
  sqlite3_stmt *st = s->batch_add;
  sqlite3_bind_int64(st, 1, actor);
  sqlite3_bind_int64(st, 2, seq);
  sqlite3_bind_double(st, 3, now);
  sqlite3_bind_int64(st, 4, n);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)first_item_id);
  sqlite3_bind_int64(st, 6, batch->env_steps);
  if ((err = run(s, st, "recording the batch"))) goto fail;
  if (sqlite3_changes(s->db) == 0) {
    rollback(s);
    *duplicate = true;
    return 0;
  }

  /* Items: the per-batch columns are bound once; bindings survive sqlite3_reset. */
  st = s->item_add;
  sqlite3_bind_int64(st, 2, actor);
  sqlite3_bind_int64(st, 3, seq);
  sqlite3_bind_double(st, 4, now);
  sqlite3_bind_int(st, 13, batch->demonstration ? 1 : 0);
  const bool have_version = batch->n_policy_version == n && batch->policy_version;
  if (!have_version) sqlite3_bind_null(st, 5);
  if (!priority) sqlite3_bind_null(st, 6);
  if (s->cfg.discrete)
    sqlite3_bind_null(st, 10);
  else
    sqlite3_bind_null(st, 7);
  for (uint32_t i = 0; i < n; i++) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(first_item_id + i));
    if (have_version) sqlite3_bind_int64(st, 5, (sqlite3_int64)batch->policy_version[i]);
    if (priority) sqlite3_bind_double(st, 6, priority[i]);
    if (s->cfg.discrete)
      sqlite3_bind_int(st, 7, batch->action_index[i]);
    else
      sqlite3_bind_blob(st, 10, batch->action + (size_t)i * A, act_bytes, SQLITE_STATIC);
    sqlite3_bind_double(st, 8, batch->reward[i]);
    sqlite3_bind_double(st, 9, batch->discount[i]);
    sqlite3_bind_blob(st, 11, batch->obs + (size_t)i * D, obs_bytes, SQLITE_STATIC);
    sqlite3_bind_blob(st, 12, batch->next_obs + (size_t)i * D, obs_bytes, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
      err = sql_error(s, rc, "inserting an item");
      sqlite3_reset(st);
      goto fail;
    }
    sqlite3_reset(st);
  }
  /* Drop the pointers into the caller's message now rather than keep them bound. */
  sqlite3_clear_bindings(st);

  st = s->episode_add;
  for (uint32_t e = 0; e < batch->n_episodes; e++) {
    frl_episode_stat_t ep;
    episode_at(batch, e, &ep);
    sqlite3_bind_int64(st, 1, actor);
    sqlite3_bind_double(st, 2, now);
    bind_real_or_null(st, 3, ep.episode_return);
    sqlite3_bind_int64(st, 4, ep.length);
    sqlite3_bind_int(st, 5, ep.success ? 1 : 0);
    sqlite3_bind_int(st, 6, ep.truncated ? 1 : 0);
    sqlite3_bind_int64(st, 7, ep.violations);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)ep.policy_version);
    if (ep.physics)
      sqlite3_bind_text(st, 9, ep.physics, -1, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, 9);
    if ((err = run(s, st, "inserting an episode"))) goto fail;
  }
  sqlite3_clear_bindings(st);

  st = s->safety_add;
  for (uint32_t e = 0; e < batch->n_safety; e++) {
    frl_safety_event_t ev;
    safety_at(batch, e, &ev);
    sqlite3_bind_int64(st, 1, actor);
    sqlite3_bind_double(st, 2, now);
    sqlite3_bind_text(st, 3, frl_safety_kind_name(ev.kind), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, ev.count);
    sqlite3_bind_double(st, 5, (double)ev.time_ns * 1e-9);
    if (ev.detail)
      sqlite3_bind_text(st, 6, ev.detail, -1, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, 6);
    if ((err = run(s, st, "inserting a safety event"))) goto fail;
  }
  sqlite3_clear_bindings(st);

  st = s->actor_count;
  sqlite3_bind_double(st, 1, now);
  sqlite3_bind_int64(st, 2, n);
  sqlite3_bind_int64(st, 3, batch->env_steps);
  sqlite3_bind_int64(st, 4, actor);
  if ((err = run(s, st, "updating the actor's counters"))) goto fail;

  if (evict_below > 1) {
    sqlite3_bind_int64(s->evict, 1, evict_below);
    sqlite3_bind_int64(s->evict, 2, first_item_id >= FRL_DEMO_ID_BASE ? (sqlite3_int64)FRL_DEMO_ID_BASE : 0);
    if ((err = run(s, s->evict, "evicting old items"))) goto fail;
  }
  if ((err = run(s, s->commit, "COMMIT"))) goto fail;
  *duplicate = false;
  return 0;
fail:
  sqlite3_clear_bindings(s->item_add);
  rollback(s);
  return err;
}

int frl_store_update_items(frl_store_t *s, const uint64_t *item_id, const float *priority,
                           const uint32_t *times_sampled_delta, uint32_t n) {
  if (n == 0) return 0;
  const double t0 = frl_now();
  int err = run(s, s->begin, "BEGIN");
  if (err) return err;
  sqlite3_stmt *st = s->item_update;
  for (uint32_t i = 0; i < n; i++) {
    bind_real_or_null(st, 1, priority[i]);
    sqlite3_bind_int64(st, 2, times_sampled_delta ? times_sampled_delta[i] : 0);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)item_id[i]);
    if ((err = run(s, st, "updating an item"))) goto fail;
  }
  if ((err = run(s, s->commit, "COMMIT"))) goto fail;
  frl_debug("store %s: wrote back %u items in %.1f ms", s->path, n, 1e3 * (frl_now() - t0));
  return 0;
fail:
  rollback(s);
  return err;
}

int frl_store_prune_batches(frl_store_t *s, double before, uint32_t max_rows,
                            uint32_t *deleted) {
  if (max_rows == 0) return FRL_EUSAGE;
  int64_t actors[FRL_STORE_PRUNE_ACTORS];
  int n = 0, rc, err;
  uint32_t gone = 0;
  int64_t cursor = s->prune_actor;
  const double t0 = frl_now();
  if ((err = run(s, s->begin, "BEGIN"))) return err;
  /* The next few actors after the cursor, wrapping around to the first. */
  for (int pass = 0; pass < 2 && n == 0; pass++) {
    sqlite3_bind_int64(s->prune_actors, 1, pass == 0 ? cursor : 0);
    sqlite3_bind_int(s->prune_actors, 2, FRL_STORE_PRUNE_ACTORS);
    while (n < FRL_STORE_PRUNE_ACTORS && (rc = sqlite3_step(s->prune_actors)) == SQLITE_ROW)
      actors[n++] = sqlite3_column_int64(s->prune_actors, 0);
    sqlite3_reset(s->prune_actors);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      err = sql_error(s, rc, "listing actors for the dedup window");
      goto fail;
    }
  }
  for (int i = 0; i < n; i++) {
    const uint32_t limit = max_rows - gone;
    sqlite3_bind_int64(s->prune_batches, 1, actors[i]);
    sqlite3_bind_double(s->prune_batches, 2, before);
    sqlite3_bind_int64(s->prune_batches, 3, limit);
    if ((err = run(s, s->prune_batches, "deleting batch records past the dedup window")))
      goto fail;
    const uint32_t k = (uint32_t)sqlite3_changes(s->db);
    gone += k;
    /* A whole prefix went: this actor may have more, so the next step starts with it. */
    cursor = k == limit ? actors[i] - 1 : actors[i];
    if (gone >= max_rows) break;
  }
  if ((err = run(s, s->commit, "COMMIT"))) goto fail;
  s->prune_actor = cursor;
  *deleted = gone;
  if (gone)
    frl_debug("store %s: deleted %u batch records past the dedup window in %.1f ms", s->path,
              gone, 1e3 * (frl_now() - t0));
  return 0;
fail:
  rollback(s);
  return err;
}

/* Copies a float blob into an aligned buffer (SQLite's column pointers are not guaranteed to
 * be 4-byte aligned), checking its size against the store's dimension. */
static int blob_floats(frl_store_t *s, sqlite3_stmt *st, int col, float *dst, uint32_t dim,
                       const char *field, uint64_t id) {
  const void *p = sqlite3_column_blob(st, col);
  int bytes = sqlite3_column_bytes(st, col);
  if (!p || bytes != (int)(dim * sizeof(float))) {
    frl_error("store %s: items.%s of item %llu is %d bytes, expected %u (dim %u float32)",
              s->path, field, (unsigned long long)id, bytes, (unsigned)(dim * sizeof(float)), dim);
    return FRL_ECORRUPT;
  }
  memcpy(dst, p, (size_t)bytes);
  return 0;
}

int frl_store_scan_items(frl_store_t *s, uint64_t min_item_id, frl_store_item_fn fn, void *ctx) {
  const uint32_t D = s->cfg.obs_dim, A = s->cfg.act_dim;
  float *obs = frl_xmalloc(D * sizeof *obs);
  float *next_obs = frl_xmalloc(D * sizeof *next_obs);
  float *action = frl_xmalloc(A * sizeof *action);
  sqlite3_stmt *st = s->item_scan;
  int err = 0, rc;
  sqlite3_bind_int64(st, 1, min_item_id > INT64_MAX ? INT64_MAX : (sqlite3_int64)min_item_id);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(st, 0);
    int32_t action_index = -1;
    const float *act = NULL;
    if (id <= 0) {
      frl_error("store %s: items.item_id %lld is not positive", s->path, (long long)id);
      err = FRL_ECORRUPT;
      goto done;
    }
    if (s->cfg.discrete) {
      int64_t a = sqlite3_column_int64(st, 1);
      if (sqlite3_column_type(st, 1) != SQLITE_INTEGER || a < 0 || a > INT32_MAX) {
        frl_error("store %s: items.action of item %lld is not an action index", s->path,
                  (long long)id);
        err = FRL_ECORRUPT;
        goto done;
      }
      action_index = (int32_t)a;
    } else {
      if ((err = blob_floats(s, st, 2, action, A, "action_vec", (uint64_t)id))) goto done;
      act = action;
    }
    if ((err = blob_floats(s, st, 5, obs, D, "obs", (uint64_t)id))) goto done;
    if ((err = blob_floats(s, st, 6, next_obs, D, "next_obs", (uint64_t)id))) goto done;
    float priority =
        sqlite3_column_type(st, 7) == SQLITE_NULL ? NAN : (float)sqlite3_column_double(st, 7);
    err = fn(ctx, (uint64_t)id, obs, action_index, act, (float)sqlite3_column_double(st, 3),
             (float)sqlite3_column_double(st, 4), next_obs, priority);
    if (err) goto done;
  }
  if (rc != SQLITE_DONE) err = sql_error(s, rc, "scanning items");
done:
  sqlite3_reset(st);
  free(action);
  free(next_obs);
  free(obs);
  return err;
}

static int max_id_in(frl_store_t *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  sqlite3_bind_int64(s->item_max, 1, (sqlite3_int64)lo);
  sqlite3_bind_int64(s->item_max, 2, (sqlite3_int64)hi);
  int rc = sqlite3_step(s->item_max);
  int err = 0;
  if (rc == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(s->item_max, 0); /* NULL (empty) reads as 0 */
    *out = id > 0 ? (uint64_t)id : 0;
  } else {
    err = sql_error(s, rc, "reading the largest item_id");
  }
  sqlite3_reset(s->item_max);
  return err;
}

int frl_store_max_item_id(frl_store_t *s, uint64_t *out) {
  return max_id_in(s, 0, FRL_DEMO_ID_BASE, out);
}

int frl_store_max_demo_id(frl_store_t *s, uint64_t *out) {
  return max_id_in(s, FRL_DEMO_ID_BASE, INT64_MAX, out);
}

int frl_store_log_progress(frl_store_t *s, const frl_store_progress_t *p, double now) {
  sqlite3_stmt *st = s->progress_add;
  sqlite3_bind_double(st, 1, now);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)p->updates);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)p->env_steps);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)p->replay_size);
  bind_real_or_null(st, 5, p->loss);
  bind_real_or_null(st, 6, p->mean_q);
  bind_real_or_null(st, 7, p->beta);
  bind_real_or_null(st, 8, p->updates_per_s);
  bind_real_or_null(st, 9, p->env_steps_per_s);
  bind_real_or_null(st, 10, p->recent_return);
  sqlite3_bind_int64(st, 11, (sqlite3_int64)p->params_version);
  bind_real_or_null(st, 12, p->actor_loss);
  bind_real_or_null(st, 13, p->alpha);
  bind_real_or_null(st, 14, p->entropy);
  return run(s, st, "logging progress");
}

int frl_store_log_eval(frl_store_t *s, uint64_t updates, uint64_t env_steps, double mean_return,
                       double std_return, uint32_t episodes, double success_rate, double now) {
  sqlite3_stmt *st = s->eval_add;
  sqlite3_bind_double(st, 1, now);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)updates);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)env_steps);
  bind_real_or_null(st, 4, mean_return);
  bind_real_or_null(st, 5, std_return);
  sqlite3_bind_int64(st, 6, episodes);
  bind_real_or_null(st, 7, success_rate);
  return run(s, st, "logging an evaluation");
}

int frl_store_set_meta(frl_store_t *s, const char *key, const char *value) {
  sqlite3_stmt *st = s->meta_set;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
  if (value)
    sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null(st, 2);
  int err = run(s, st, "setting meta");
  sqlite3_clear_bindings(st);
  return err;
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

int frl_store_save_checkpoint(frl_store_t *s, frl_store_checkpoint_t *info, const void *blob,
                              size_t len, int keep) {
  if (keep < 1 || len == 0 || len > (size_t)INT32_MAX) {
    frl_error("store %s: checkpoint of %zu bytes (limit %d) or keep %d (must be >= 1) refused",
              s->path, len, INT32_MAX, keep);
    return FRL_EUSAGE;
  }
  int err = run(s, s->begin, "BEGIN");
  if (err) return err;
  sqlite3_stmt *st = s->ckpt_add;
  sqlite3_bind_double(st, 1, info->created);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)info->env_steps);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)info->updates);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)info->params_version);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)len);
  sqlite3_bind_blob64(st, 6, blob, (sqlite3_uint64)len, SQLITE_STATIC);
  err = run(s, st, "writing a checkpoint");
  sqlite3_clear_bindings(st);
  if (err) goto fail;
  int64_t id = sqlite3_last_insert_rowid(s->db);
  sqlite3_bind_int(s->ckpt_trim, 1, keep);
  if ((err = run(s, s->ckpt_trim, "deleting old checkpoints"))) goto fail;
  if ((err = run(s, s->commit, "COMMIT"))) goto fail;
  info->id = id;
  info->bytes = len;
  return 0;
fail:
  rollback(s);
  return err;
}

int frl_store_load_checkpoint(frl_store_t *s, int rank, frl_store_checkpoint_t *info,
                              void **blob, size_t *len) {
  if (rank < 0) return FRL_ENOTFOUND;
  sqlite3_stmt *st = s->ckpt_get;
  sqlite3_bind_int(st, 1, rank);
  int rc = sqlite3_step(st);
  int err = 0;
  if (rc == SQLITE_DONE) {
    err = FRL_ENOTFOUND;
  } else if (rc != SQLITE_ROW) {
    err = sql_error(s, rc, "reading a checkpoint");
  } else {
    /* The row is read back from a file: check that its columns are what we write. */
    int64_t id = sqlite3_column_int64(st, 0), bytes = sqlite3_column_int64(st, 5);
    const void *p = sqlite3_column_blob(st, 6);
    int n = sqlite3_column_bytes(st, 6);
    if (sqlite3_column_type(st, 6) != SQLITE_BLOB || !p || n <= 0 || bytes != n) {
      frl_error("store %s: checkpoints row %lld: bytes is %lld but the blob holds %d bytes "
                "(type %d)",
                s->path, (long long)id, (long long)bytes, n, sqlite3_column_type(st, 6));
      err = FRL_ECORRUPT;
    } else {
      info->id = id;
      info->created = sqlite3_column_double(st, 1);
      info->env_steps = (uint64_t)sqlite3_column_int64(st, 2);
      info->updates = (uint64_t)sqlite3_column_int64(st, 3);
      info->params_version = (uint64_t)sqlite3_column_int64(st, 4);
      info->bytes = (uint64_t)n;
      *blob = frl_xmalloc((size_t)n);
      memcpy(*blob, p, (size_t)n);
      *len = (size_t)n;
    }
  }
  sqlite3_reset(st);
  return err;
}

int frl_store_count_checkpoints(frl_store_t *s, int *out) {
  int rc = sqlite3_step(s->ckpt_count);
  int err = 0;
  if (rc == SQLITE_ROW)
    *out = sqlite3_column_int(s->ckpt_count, 0);
  else
    err = sql_error(s, rc, "counting checkpoints");
  sqlite3_reset(s->ckpt_count);
  return err;
}

int frl_store_totals(frl_store_t *s, frl_store_totals_t *out) {
  sqlite3_stmt *st = s->totals;
  int rc = sqlite3_step(st);
  int err = 0;
  if (rc == SQLITE_ROW) {
    int64_t v[4];
    for (int i = 0; i < 4; i++) v[i] = sqlite3_column_int64(st, i);
    out->batches = v[0] > 0 ? (uint64_t)v[0] : 0;
    out->transitions = v[1] > 0 ? (uint64_t)v[1] : 0;
    out->env_steps = v[2] > 0 ? (uint64_t)v[2] : 0;
    out->last_episode_id = v[3] > 0 ? (uint64_t)v[3] : 0;
  } else {
    err = sql_error(s, rc, "reading the store's totals");
  }
  sqlite3_reset(st);
  return err;
}

int frl_store_recent_returns(frl_store_t *s, float *out, int max, int *n) {
  sqlite3_stmt *st = s->recent_returns;
  sqlite3_bind_int(st, 1, max > 0 ? max : 0);
  int k = 0, rc, err = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW && k < max)
    out[k++] =
        sqlite3_column_type(st, 0) == SQLITE_NULL ? NAN : (float)sqlite3_column_double(st, 0);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) err = sql_error(s, rc, "reading recent returns");
  sqlite3_reset(st);
  if (err) return err;
  /* Newest first from the query; callers keep them oldest first. */
  for (int i = 0; i < k / 2; i++) {
    float t = out[i];
    out[i] = out[k - 1 - i];
    out[k - 1 - i] = t;
  }
  *n = k;
  return 0;
}

int frl_store_latest_version(frl_store_t *s, uint64_t *out) {
  sqlite3_stmt *st = s->latest_version;
  int rc = sqlite3_step(st);
  int err = 0;
  if (rc == SQLITE_ROW) {
    int64_t v = sqlite3_column_int64(st, 0); /* NULL (nothing stored) reads as 0 */
    *out = v > 0 ? (uint64_t)v : 0;
  } else {
    err = sql_error(s, rc, "reading the latest parameter version");
  }
  sqlite3_reset(st);
  return err;
}
