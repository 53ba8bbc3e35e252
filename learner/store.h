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
} frl_store_config_t;

/* Opens or creates the database and its schema (idempotent), WAL mode, synchronous=NORMAL,
 * busy_timeout for readers. Fails with FRL_EDIM if an existing store was made for other
 * dimensions, FRL_EUSAGE for a bad config, -EROFS for a read-only file, FRL_ESQL (logged with
 * SQLite's message) on other errors. The store is used by one thread at a time. */
int frl_store_open(frl_store_t **out, const frl_store_config_t *cfg);
void frl_store_close(frl_store_t **self_p);

/* One transaction per batch: looks up/creates the actor row; if (actor, seq) is already in
 * batches, commits nothing and sets *duplicate. Otherwise inserts the batch row, count item
 * rows with item ids first_item_id.. and the given priorities, the episodes, updates the
 * actor's counters, and deletes items with item_id < evict_below (FIFO eviction), then commits.
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

/* Calls fn for each stored item in item_id order, for rebuilding the in-memory index at
 * startup. Only items with item_id >= min_item_id. action_index is -1 for continuous items,
 * action NULL for discrete ones; priority is NaN when the row has none. The pointers are valid
 * during the call only. fn returns 0 to continue; a non-zero value stops the scan and is
 * returned. Rows whose blobs do not match the store's dimensions give FRL_ECORRUPT. */
typedef int (*frl_store_item_fn)(void *ctx, uint64_t item_id, const float *obs,
                                 int32_t action_index, const float *action, float reward,
                                 float discount, const float *next_obs, float priority);
int frl_store_scan_items(frl_store_t *s, uint64_t min_item_id, frl_store_item_fn fn, void *ctx);
/* Largest item_id stored (0 when empty; ids start at 1). */
int frl_store_max_item_id(frl_store_t *s, uint64_t *out);

/* A progress row of the learner (training table). */
typedef struct {
  uint64_t updates, env_steps, replay_size, params_version;
  double loss, mean_q, beta, updates_per_s, env_steps_per_s;
  double recent_return;   /* mean return of recent episodes, NaN when none */
} frl_store_progress_t;
int frl_store_log_progress(frl_store_t *s, const frl_store_progress_t *p, double now);
/* A greedy evaluation (evaluations table). */
int frl_store_log_eval(frl_store_t *s, uint64_t updates, uint64_t env_steps, double mean_return,
                       double std_return, uint32_t episodes, double now);
/* Run metadata (meta table: key/value text). */
int frl_store_set_meta(frl_store_t *s, const char *key, const char *value);

#endif
