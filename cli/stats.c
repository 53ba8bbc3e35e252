/* stats.c: prints what a person first asks of a run: which task, how far it got, how the
 * learning went, what each actor contributed and what the replay holds. */
#include "stats.h"

#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

/* Prints the rows of a query as an aligned table; returns the number of rows. */
static int table(sqlite3 *db, FILE *out, const char *title, const char *sql) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(out, "%s: unavailable (%s)\n", title, sqlite3_errmsg(db));
    return 0;
  }
  int cols = sqlite3_column_count(st), rows = 0;
  fprintf(out, "\n%s\n", title);
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (rows == 0) {
      for (int c = 0; c < cols; c++) fprintf(out, "  %-14s", sqlite3_column_name(st, c));
      fputc('\n', out);
    }
    for (int c = 0; c < cols; c++) {
      switch (sqlite3_column_type(st, c)) {
      case SQLITE_NULL: fprintf(out, "  %-14s", "-"); break;
      case SQLITE_INTEGER: fprintf(out, "  %-14lld", (long long)sqlite3_column_int64(st, c)); break;
      case SQLITE_FLOAT: fprintf(out, "  %-14.4g", sqlite3_column_double(st, c)); break;
      default: fprintf(out, "  %-20s", (const char *)sqlite3_column_text(st, c)); break;
      }
    }
    fputc('\n', out);
    rows++;
  }
  if (rows == 0) fprintf(out, "  (none yet)\n");
  sqlite3_finalize(st);
  return rows;
}

int frl_stats_main(const char *path, FILE *out) {
  char db_path[1200];
  struct stat sb;
  if (stat(path, &sb) != 0) {
    fprintf(stderr, "fleetrl stats: %s: %s\n", path, strerror(errno));
    return 1;
  }
  if (S_ISDIR(sb.st_mode)) snprintf(db_path, sizeof db_path, "%s/replay.db", path);
  else snprintf(db_path, sizeof db_path, "%s", path);
  char uri[1300];
  snprintf(uri, sizeof uri, "file:%s?mode=ro", db_path);
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
    fprintf(stderr, "fleetrl stats: cannot open %s: %s\n", db_path, db ? sqlite3_errmsg(db) : "");
    sqlite3_close(db);
    return 1;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'task'", -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "fleetrl stats: %s is not a fleetrl replay store (%s)\n", db_path,
            sqlite3_errmsg(db));
    sqlite3_close(db);
    return 1;
  }
  sqlite3_finalize(st);
  fprintf(out, "run store %s\n", db_path);
  table(db, out, "run", "SELECT key, value FROM meta ORDER BY key");
  table(db, out, "progress (latest)",
        "SELECT env_steps, updates, replay_size, round(updates_per_s) AS updates_per_s, "
        "round(env_steps_per_s) AS env_steps_per_s, recent_return, loss, params_version "
        "FROM training ORDER BY at DESC LIMIT 1");
  table(db, out, "evaluations (last 5 and best)",
        "SELECT * FROM (SELECT env_steps, updates, mean_return, std_return, episodes FROM "
        "evaluations ORDER BY at DESC LIMIT 5) UNION ALL SELECT env_steps, updates, "
        "max(mean_return), std_return, episodes FROM evaluations");
  table(db, out, "actors",
        "SELECT name, batches, transitions, items_in_replay, episodes, mean_return, "
        "mean_priority, mean_times_sampled FROM actor_summary ORDER BY name");
  table(db, out, "replay", "SELECT items, mean_priority, min_priority, max_priority, "
        "mean_times_sampled, max_times_sampled, never_sampled FROM priority_summary");
  table(db, out, "episode returns by minute (last 10)",
        "SELECT * FROM (SELECT minute_utc, episodes, mean_return, max_return, successes "
        "FROM returns_by_minute ORDER BY minute_start DESC LIMIT 10) ORDER BY minute_utc");
  sqlite3_close(db);
  return 0;
}
