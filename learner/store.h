/* store.h: the SQLite system of record for a run: replay items, actors, batches (for
 * exactly-once dedup), episodes, learner progress and evaluations, run metadata.
 * WAL mode, prepared statements, one transaction per ingested batch. The tables and views are
 * a user-facing interface (documented in README.md), so columns are named for people. */
#ifndef FRL_STORE_H
#define FRL_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "msg.h"

typedef struct frl_store frl_store_t;

typedef struct {
  const char *path;      /* replay.db, or a file: URI (e.g. "file:replay.db?mode=ro") */
  uint32_t obs_dim;
  uint32_t act_dim;      /* 1 for discrete tasks */
  bool discrete;
  uint64_t max_bytes;    /* 0: no limit; else the database may not grow beyond about this many
                          * bytes (PRAGMA max_page_count) and inserts then fail with -ENOSPC */
  /* WAL upkeep (0: the defaults, FRL_STORE_CKPT_PAGES and FRL_STORE_WAL_LIMIT in store.c; tests
   * set small values to exercise it on a small file). */
  uint32_t wal_checkpoint_pages; /* checkpoint once the WAL holds this many pages */
  uint64_t wal_limit_bytes;      /* journal_size_limit, and the WAL size above which a checkpoint
                                  * waits briefly for readers so that the WAL can restart */
} frl_store_config_t;

/* Opens or creates the database and its schema (idempotent), WAL mode, synchronous=NORMAL,
 * busy_timeout for readers, and starts the store's checkpointer thread (its own connection;
 * see store.c for how it keeps the WAL bounded). Fails with FRL_EDIM if an existing store was
 * made for other dimensions, FRL_EUSAGE for a bad config, -EROFS for a read-only file,
 * FRL_ESQL (logged with SQLite's message) on other errors. The store is used by one thread at
 * a time; the checkpointer never touches the caller's connection. */
int frl_store_open(frl_store_t **out, const frl_store_config_t *cfg);
/* Stops the checkpointer, then closes the connection (the last connection to the file
 * checkpoints and removes the WAL). NULL-safe; sets *self_p to NULL. */
void frl_store_close(frl_store_t **self_p);

/* What the checkpointer did so far (a consistent copy, cheap, callable at any time). */
typedef struct {
  uint64_t checkpoints;     /* checkpoint calls made (passive and restarting) */
  uint64_t restarts;        /* checkpoints that emptied the WAL for reuse, readers waited for */
  uint64_t restarts_busy;   /* restart attempts given up because a reader stayed too long */
  int wal_pages;            /* pages in the WAL after the latest commit */
  int wal_pages_max;        /* the largest wal_pages seen */
} frl_store_wal_stats_t;
void frl_store_wal_stats(frl_store_t *s, frl_store_wal_stats_t *out);

/* One transaction per batch: looks up/creates the actor row; if (actor, seq) is already in
 * batches, commits nothing and sets *duplicate. Otherwise inserts the batch row, count item
 * rows with item ids first_item_id.. and the given priorities, the episodes, updates the
 * actor's counters, and deletes items with item_id < evict_below (FIFO eviction, only within
 * the id range, agent or demonstration, that first_item_id is in), then commits.
 * Returns 0, -ENOSPC when the disk is full, -EROFS when read-only, FRL_ESQL otherwise; on
 * error nothing is committed. now is wall-clock Unix seconds (frl_wall()), as are all times
 * in the tables. Episodes are read from batch->episodes_in when non-NULL, else through
 * frl_msg_episode() (a decoded view). */
int frl_store_insert_batch(frl_store_t *s, const frl_experience_t *batch, uint64_t first_item_id,
                           const float *priority, int64_t evict_below, double now, bool *duplicate);

/* Writes back priorities and sample counts in one transaction; ids no longer stored are
 * skipped. Returns 0 or the codes of frl_store_insert_batch; on error nothing is committed. */
int frl_store_update_items(frl_store_t *s, const uint64_t *item_id, const float *priority,
                           const uint32_t *times_sampled_delta, uint32_t n);

/* One bounded step of the dedup window: deletes at most max_rows `batches` records received
 * before `before` (Unix seconds), in one short transaction, visiting a few actors per call in
 * turn (each actor's oldest records first, in seq order), so that repeated calls cover every
 * actor. *deleted receives how many went; a step that deleted max_rows leaves more to do.
 * Items, episodes and the actors' counters are untouched. Returns 0, FRL_EUSAGE for max_rows
 * 0, or the codes of frl_store_insert_batch (nothing deleted). */
int frl_store_prune_batches(frl_store_t *s, double before, uint32_t max_rows, uint32_t *deleted);

/* Calls fn for each stored item in item_id order, for rebuilding the in-memory index at
 * startup. Only items with item_id >= min_item_id. action_index is -1 for continuous items,
 * action NULL for discrete ones; priority is NaN when the row has none. The pointers are valid
 * during the call only. fn returns 0 to continue; a non-zero value stops the scan and is
 * returned. Rows whose blobs do not match the store's dimensions give FRL_ECORRUPT. */
typedef int (*frl_store_item_fn)(void *ctx, uint64_t item_id, const float *obs,
                                 int32_t action_index, const float *action, float reward,
                                 float discount, const float *next_obs, float priority);
int frl_store_scan_items(frl_store_t *s, uint64_t min_item_id, frl_store_item_fn fn, void *ctx);
/* Demonstrations get item ids from FRL_DEMO_ID_BASE up, agent experience below it, so that the
 * FIFO eviction of each (a delete of the ids below a bound, within its own range) never
 * reaches the other. frl_store_insert_batch evicts in the range its first_item_id is in. */
#define FRL_DEMO_ID_BASE (1ull << 62)
/* Largest agent item_id stored (below FRL_DEMO_ID_BASE; 0 when none; ids start at 1). */
int frl_store_max_item_id(frl_store_t *s, uint64_t *out);
/* Largest demonstration item_id stored (0 when none). */
int frl_store_max_demo_id(frl_store_t *s, uint64_t *out);

/* A progress row of the learner (training table). */
typedef struct {
  uint64_t updates, env_steps, replay_size, params_version;
  double loss, mean_q, beta, updates_per_s, env_steps_per_s;
  double recent_return;   /* mean return of recent episodes, NaN when none */
  /* SAC/TD3 diagnostics of the last update: actor loss, SAC's temperature and entropy
   * estimate; NaN (stored as NULL) where the algorithm has none */
  double actor_loss, alpha, entropy;
} frl_store_progress_t;
int frl_store_log_progress(frl_store_t *s, const frl_store_progress_t *p, double now);
/* A greedy evaluation (evaluations table); success_rate in [0, 1], or NaN (stored as NULL) for
 * an environment without a success signal. */
int frl_store_log_eval(frl_store_t *s, uint64_t updates, uint64_t env_steps, double mean_return,
                       double std_return, uint32_t episodes, double success_rate, double now);
/* Run metadata (meta table: key/value text). */
int frl_store_set_meta(frl_store_t *s, const char *key, const char *value);

/* ---- learner checkpoints (checkpoints table; the blob format is learner/checkpoint.h) ---- */

/* A checkpoint row without its blob. */
typedef struct {
  int64_t id;          /* increasing: the newest checkpoint has the largest id */
  double created;      /* Unix seconds */
  uint64_t env_steps, updates, params_version;
  uint64_t bytes;      /* length of the blob */
} frl_store_checkpoint_t;

/* Stores blob[len] as a new checkpoint row described by info (its id and bytes are set here)
 * and deletes all but the newest `keep` (>= 1) rows, in one transaction: a crash at any moment
 * leaves either the old set or the new one. Sets info->id on success. Returns 0, FRL_EUSAGE
 * for keep < 1 or a blob above the store's limit, or the codes of frl_store_insert_batch (on
 * error nothing is committed). */
int frl_store_save_checkpoint(frl_store_t *s, frl_store_checkpoint_t *info, const void *blob,
                              size_t len, int keep);
/* Reads the checkpoint of rank `rank` (0 the newest, 1 the one before, ...): its row into
 * *info and a heap copy of its blob into *blob (free() it). Returns 0, FRL_ENOTFOUND when
 * there are not that many, FRL_ECORRUPT (logged) when the row's columns are not what this
 * build writes (bytes differing from the blob's length, a non-blob), or FRL_ESQL. The blob's
 * contents are not checked here: that is frl_checkpoint_restore's job. */
int frl_store_load_checkpoint(frl_store_t *s, int rank, frl_store_checkpoint_t *info,
                              void **blob, size_t *len);
/* Number of checkpoint rows. */
int frl_store_count_checkpoints(frl_store_t *s, int *out);

/* Running totals of the store, cheap to read at any time (from the actors table's counters
 * and the episodes key, not a scan): accepted batches, their transitions and environment
 * steps, and the largest episode_id (episodes are never deleted, so also their number). */
typedef struct {
  uint64_t batches, transitions, env_steps, last_episode_id;
} frl_store_totals_t;
int frl_store_totals(frl_store_t *s, frl_store_totals_t *out);

/* The newest up to `max` episode returns, oldest first, into out (NaN where a return was not
 * finite); *n receives how many. */
int frl_store_recent_returns(frl_store_t *s, float *out, int max, int *n);

/* The newest parameter version anything in the store mentions: the last training row's
 * params_version and the policy_version of the newest items and episodes (a bounded read).
 * A learner resuming from an older checkpoint continues above it, since actors apply only
 * newer versions than they hold. */
int frl_store_latest_version(frl_store_t *s, uint64_t *out);

#endif
