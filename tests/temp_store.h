/* temp_store.h: a replay.db in a fresh folder under /tmp for the store, replay and checkpoint
 * tests, and its removal with SQLite's side files. */
#ifndef FRL_TESTS_TEMP_STORE_H
#define FRL_TESTS_TEMP_STORE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
  char dir[64];
  char path[96];
} temp_store_t;

/* Makes /tmp/<prefix>_XXXXXX; path is replay.db inside it. 0, or -1 when mkdtemp fails. */
static inline int temp_store_make(temp_store_t *t, const char *prefix) {
  snprintf(t->dir, sizeof t->dir, "/tmp/%s_XXXXXX", prefix);
  if (!mkdtemp(t->dir)) return -1;
  snprintf(t->path, sizeof t->path, "%s/replay.db", t->dir);
  return 0;
}

/* Removes the database, its WAL, shared-memory and journal files, and the folder. */
static inline void temp_store_remove(const temp_store_t *t) {
  static const char *suffix[] = {"", "-wal", "-shm", "-journal"};
  char p[128];
  for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
    snprintf(p, sizeof p, "%s%s", t->path, suffix[i]);
    unlink(p);
  }
  rmdir(t->dir);
}

#endif
