/* stats.c: prints what a person first asks of a run: which task, how far it got, how the
 * learning went, what each actor contributed and what the replay holds. */
#include "stats.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

#define TABLE_MAX_COLS 16
#define TABLE_MAX_ROWS 200 /* a fleet's actors; the rest is counted, not printed */
#define CELL 40            /* characters of a cell (longer text is cut) */

/* One cell as printed: integers as they are, reals to 4 significant digits, NULL as "-". */
static void cell_text(sqlite3_stmt *st, int c, char *buf) {
  switch (sqlite3_column_type(st, c)) {
  case SQLITE_NULL: snprintf(buf, CELL + 1, "-"); break;
  case SQLITE_INTEGER: snprintf(buf, CELL + 1, "%lld", (long long)sqlite3_column_int64(st, c)); break;
  case SQLITE_FLOAT: snprintf(buf, CELL + 1, "%.4g", sqlite3_column_double(st, c)); break;
  default: snprintf(buf, CELL + 1, "%s", (const char *)sqlite3_column_text(st, c)); break;
  }
}

/* Prints the rows of a query as a table whose columns are as wide as their widest cell;
 * returns the number of rows. */
static int table(sqlite3 *db, FILE *out, const char *title, const char *sql) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(out, "%s: unavailable (%s)\n", title, sqlite3_errmsg(db));
    return 0;
  }
  int cols = sqlite3_column_count(st), rows = 0, kept = 0;
  if (cols > TABLE_MAX_COLS) cols = TABLE_MAX_COLS;
  char(*cells)[CELL + 1] = frl_xcalloc((size_t)(TABLE_MAX_ROWS + 1) * (size_t)cols, CELL + 1);
  int width[TABLE_MAX_COLS];
  for (int c = 0; c < cols; c++) {
    snprintf(cells[c], CELL + 1, "%s", sqlite3_column_name(st, c));
    width[c] = (int)strlen(cells[c]);
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    rows++;
    if (kept == TABLE_MAX_ROWS) continue;
    kept++;
    for (int c = 0; c < cols; c++) {
      char *t = cells[(size_t)kept * (size_t)cols + (size_t)c];
      cell_text(st, c, t);
      int n = (int)strlen(t);
      if (n > width[c]) width[c] = n;
    }
  }
  sqlite3_finalize(st);
  fprintf(out, "\n%s\n", title);
  if (rows == 0) {
    fprintf(out, "  (none yet)\n");
  } else {
    for (int r = 0; r <= kept; r++) {
      for (int c = 0; c < cols; c++)
        fprintf(out, "  %-*s", c + 1 < cols ? width[c] : 0,
                cells[(size_t)r * (size_t)cols + (size_t)c]);
      fputc('\n', out);
    }
    if (rows > kept) fprintf(out, "  ... and %d more rows\n", rows - kept);
  }
  free(cells);
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
  /* A store an older build wrote and no learner has opened since has no success_rate. */
  bool has_success = false;
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('evaluations') WHERE name = "
                             "'success_rate'", -1, &st, NULL) == SQLITE_OK) {
    has_success = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
  }
  const char *rate = has_success ? "success_rate, " : "";
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT * FROM (SELECT env_steps, updates, mean_return, std_return, %sepisodes FROM "
           "evaluations ORDER BY at DESC LIMIT 5) UNION ALL SELECT env_steps, updates, "
           "max(mean_return), std_return, %sepisodes FROM evaluations",
           rate, rate);
  table(db, out, "evaluations (last 5 and best)", sql);
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
