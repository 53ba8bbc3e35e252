/* export.c: `fleetrl export RUN`: writes a policy file (policy.bin format) from the newest
 * learner checkpoint in a run's replay store, so that a policy can be handed on while the run
 * still trains, or after a learner died before writing its own policy.bin. The store is opened
 * read-only: exporting never takes a write lock from a running learner. The checkpoint is
 * untrusted bytes and is verified completely (frl_checkpoint_restore) before anything is
 * written. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "checkpoint.h"
#include "export.h"
#include "common.h"
#include "config.h"
#include "env.h"
#include "history.h"
#include "log.h"
#include "normalizer.h"
#include "policy_file.h"

#define EXPORT_BUSY_MS 5000

static void usage(FILE *out) {
  fprintf(out,
          "usage: fleetrl export RUN [--out FILE] [--rank K] [learner flags]\n\n"
          "Writes the policy of the newest learner checkpoint in RUN (a run folder or its\n"
          "replay.db) to FILE (default RUN/policy-export.bin), in the policy.bin format that\n"
          "`fleetrl eval` and actors read. --rank 1 takes the checkpoint before the newest.\n"
          "The task comes from the store; pass the flags the run was started with when they\n"
          "changed the network (e.g. --hidden1): a checkpoint of another shape is refused.\n");
}

/* Reads one text value of the meta table, or "" when absent. */
static int read_meta(sqlite3 *db, const char *key, char *out, size_t len) {
  sqlite3_stmt *st = NULL;
  out[0] = '\0';
  if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) != SQLITE_OK)
    return FRL_ESQL;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
    snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : FRL_ESQL;
}

/* Copies the checkpoint of the given rank (0 newest) into a new heap blob. */
static int read_checkpoint(sqlite3 *db, int rank, uint8_t **blob, size_t *len, long long *id,
                           long long *updates) {
  sqlite3_stmt *st = NULL;
  int err = FRL_ESQL;
  if (sqlite3_prepare_v2(db,
                         "SELECT id, updates, blob FROM checkpoints ORDER BY id DESC "
                         "LIMIT 1 OFFSET ?1",
                         -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "fleetrl export: the store has no checkpoints table (%s): was the run made "
                    "by an older build?\n", sqlite3_errmsg(db));
    return FRL_ESQL;
  }
  sqlite3_bind_int(st, 1, rank);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    fprintf(stderr, "fleetrl export: the store holds no checkpoint of rank %d (the learner "
                    "writes one every --checkpoint-period seconds and at a clean stop)\n", rank);
    err = -ENOENT;
  } else if (rc == SQLITE_ROW && sqlite3_column_type(st, 2) == SQLITE_BLOB) {
    *id = sqlite3_column_int64(st, 0);
    *updates = sqlite3_column_int64(st, 1);
    *len = (size_t)sqlite3_column_bytes(st, 2);
    *blob = frl_xmalloc(*len ? *len : 1);
    memcpy(*blob, sqlite3_column_blob(st, 2), *len);
    err = 0;
  } else {
    fprintf(stderr, "fleetrl export: cannot read the checkpoint: %s\n", sqlite3_errmsg(db));
  }
  sqlite3_finalize(st);
  return err;
}

int frl_export_main(int argc, char **argv) {
  const char *run = NULL, *out_path = NULL;
  int rank = 0;
  /* Our own flags first; the rest are learner flags, parsed after the store's task. */
  char **rest = frl_xcalloc((size_t)argc + 2, sizeof *rest);
  int n_rest = 2;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      free(rest);
      return 0;
    } else if (!strcmp(a, "--out") && i + 1 < argc) {
      out_path = argv[++i];
    } else if (!strcmp(a, "--rank") && i + 1 < argc) {
      char *end = NULL;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 0 || v > 1000) {
        fprintf(stderr, "fleetrl export: --rank: '%s' is outside [0, 1000]\n", argv[i]);
        free(rest);
        return 2;
      }
      rank = (int)v;
    } else if (a[0] != '-' && !run) {
      run = a;
    } else {
      rest[n_rest++] = argv[i];
    }
  }
  if (!run) {
    usage(stderr);
    free(rest);
    return 2;
  }
  char db_path[1024], default_out[1100];
  struct stat sb;
  if (stat(run, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    snprintf(db_path, sizeof db_path, "%s/replay.db", run);
    snprintf(default_out, sizeof default_out, "%s/policy-export.bin", run);
  } else {
    snprintf(db_path, sizeof db_path, "%s", run);
    snprintf(default_out, sizeof default_out, "policy-export.bin");
  }
  if (!out_path) out_path = default_out;

  int code = 1;
  sqlite3 *db = NULL;
  uint8_t *blob = NULL;
  size_t len = 0;
  frl_env_t *env = NULL;
  frl_agent_t *agent = NULL;
  frl_normalizer_t *norm = NULL;
  float *mean = NULL, *std = NULL;
  char task[FRL_CHECKPOINT_TASK_MAX], taskflag[FRL_CHECKPOINT_TASK_MAX + 8], err[512];
  if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    fprintf(stderr, "fleetrl export: cannot open %s: %s\n", db_path,
            db ? sqlite3_errmsg(db) : "out of memory");
    goto done;
  }
  sqlite3_busy_timeout(db, EXPORT_BUSY_MS);
  if (read_meta(db, "task", task, sizeof task) != 0 || !task[0]) {
    fprintf(stderr, "fleetrl export: %s is not a fleetrl replay store (no task in meta)\n",
            db_path);
    goto done;
  }
  long long id = 0, updates = 0;
  if (read_checkpoint(db, rank, &blob, &len, &id, &updates) != 0) goto done;

  frl_config_t cfg;
  snprintf(taskflag, sizeof taskflag, "--task=%s", task);
  rest[1] = taskflag;
  rest[0] = "export";
  if (frl_config_parse(&cfg, FRL_CFG_LEARNER, n_rest - 1, rest + 1, stdout, stderr) != 0) {
    code = 2;
    goto done;
  }
  if (frl_env_new(&env, cfg.env, 1, err, sizeof err) != 0) {
    fprintf(stderr, "fleetrl export: --env: %s\n", err);
    goto done;
  }
  if (frl_history_wrap(&env, cfg.action_history, cfg.obs_history, err, sizeof err) != 0) {
    fprintf(stderr, "fleetrl export: %s\n", err);
    goto done;
  }
  frl_policy_info_t info = {.action_scale = (float)cfg.action_scale,
                            .action_history = cfg.action_history,
                            .obs_history = cfg.obs_history};
  if (frl_policy_shape_from_config(&cfg, frl_env_spec(env), &info.shape, err, sizeof err) != 0) {
    fprintf(stderr, "fleetrl export: %s\n", err);
    goto done;
  }
  frl_agent_config_t ac;
  frl_agent_config_from(&cfg, &info.shape, &ac);
  agent = frl_agent_new(&ac);
  if (!agent) goto done;
  if (cfg.normalize_obs) norm = frl_normalizer_new(info.shape.obs_dim);
  frl_checkpoint_learner_t state;
  memset(&state, 0, sizeof state);
  if (frl_checkpoint_restore(blob, len, cfg.task, agent, norm, &state, err, sizeof err) != 0) {
    fprintf(stderr, "fleetrl export: checkpoint %lld of %s: %s\n", id, db_path, err);
    goto done;
  }
  snprintf(info.task, sizeof info.task, "%s", cfg.task);
  snprintf(info.env, sizeof info.env, "%s", cfg.env);
  info.params_version = state.params_version;
  info.updates = state.updates;
  size_t n = 0;
  const float *params = frl_agent_policy_params(agent, &n);
  if (norm) {
    mean = frl_xcalloc((size_t)info.shape.obs_dim, sizeof *mean);
    std = frl_xcalloc((size_t)info.shape.obs_dim, sizeof *std);
    frl_normalizer_export(norm, mean, std);
  }
  int rc = frl_policy_save(out_path, &info, params, n, mean, std);
  if (rc != 0) {
    fprintf(stderr, "fleetrl export: cannot write %s: %s\n", out_path, frl_strerror(rc));
    goto done;
  }
  printf("wrote %s: %s (%s), checkpoint %lld, %llu updates, %llu env steps, params v%llu\n",
         out_path, cfg.task, cfg.algo, id, (unsigned long long)state.updates,
         (unsigned long long)state.env_steps, (unsigned long long)state.params_version);
  code = 0;
done:
  free(mean);
  free(std);
  frl_normalizer_destroy(&norm);
  frl_agent_destroy(&agent);
  frl_env_destroy(&env);
  free(blob);
  if (db) sqlite3_close(db);
  free(rest);
  return code;
}
