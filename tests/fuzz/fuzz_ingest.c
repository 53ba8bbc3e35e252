/* fuzz_ingest.c: libFuzzer target for the learner's ingest handler: bytes as they arrive from
 * the broker are verified and decoded (schema/msg.c), and whatever decodes as an
 * ExperienceBatch goes through the replay's validation into a real SQLite store and the
 * sum-tree, as learner.c's on_experience does; then the replay is sampled and priorities are
 * updated from the input's bytes. A refusal is fine; a crash, a sanitizer report, or a broken
 * invariant (size above capacity, a sampled item whose id the replay never issued, a
 * non-finite importance weight) is a finding. Two replays cover both task kinds: discrete
 * (obs 4, 2 actions, as CartPole) and continuous (obs 3, act 2), each with a few
 * demonstration slots. The store lives in /dev/shm (or TMPDIR) and is rebuilt every 4096 inputs
 * so that it stays small. Build and run: make fuzz (seed corpus: tests/fuzz/corpus). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"
#include "replay.h"
#include "rng.h"
#include "store.h"

#define CAPACITY 64
#define DEMO_CAPACITY 8
#define MAX_BATCH 16
#define RENEW_EVERY 4096

typedef struct {
  char path[256];
  frl_store_t *store;
  frl_replay_t *replay;
  uint32_t obs_dim, act_dim, n_actions;
} target_t;

static target_t g_disc = {.obs_dim = 4, .act_dim = 1, .n_actions = 2};
static target_t g_cont = {.obs_dim = 3, .act_dim = 2, .n_actions = 0};
static unsigned g_inputs;

static void unlink_store(const char *path) {
  static const char *suffix[] = {"", "-wal", "-shm", "-journal"};
  char p[300];
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", path, suffix[i]);
    unlink(p);
  }
}

static void close_target(target_t *t) {
  frl_replay_close(&t->replay);
  frl_store_close(&t->store);
  unlink_store(t->path);
}

static void open_target(target_t *t, const char *tag) {
  const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
  snprintf(t->path, sizeof t->path, "%s/fuzz_ingest_%d_%s.db", dir ? dir : "/tmp", (int)getpid(),
           tag);
  unlink_store(t->path);
  frl_store_config_t sc = {.path = t->path, .obs_dim = t->obs_dim, .act_dim = t->act_dim,
                           .discrete = t->n_actions > 0};
  frl_replay_config_t rc = {.capacity = CAPACITY, .obs_dim = t->obs_dim, .act_dim = t->act_dim,
                            .n_actions = t->n_actions, .alpha = 0.6, .eps = 1e-3,
                            .prioritized = true, .max_batch = MAX_BATCH,
                            .demo_capacity = DEMO_CAPACITY, .demo_bonus = 1.0};
  if (frl_store_open(&t->store, &sc) != 0 || frl_replay_open(&t->replay, &rc, t->store) != 0)
    abort(); /* the harness itself failed: not a finding in the code under test */
}

static void close_all(void) {
  if (g_disc.store) close_target(&g_disc);
  if (g_cont.store) close_target(&g_cont);
}

static void renew(void) {
  /* At exit too (the end of a timed run, the corpus replay of make test): the stores would
   * otherwise stay in /dev/shm. */
  if (!g_disc.store && !g_cont.store) atexit(close_all);
  close_all();
  open_target(&g_disc, "disc");
  open_target(&g_cont, "cont");
}

static void exercise(target_t *t, const frl_experience_t *x, const uint8_t *data, size_t size) {
  frl_insert_outcome_t outcome;
  char err[256];
  if (frl_replay_insert(t->replay, x, 1000.0, &outcome, err, sizeof err) != 0) return;
  if (frl_replay_size(t->replay) > CAPACITY + DEMO_CAPACITY) abort();
  if (frl_replay_size(t->replay) == 0) return;
  frl_rng_t rng;
  frl_rng_seed(&rng, size);
  const frl_replay_sample_t *s = NULL;
  uint32_t B = 1 + (uint32_t)(size % MAX_BATCH);
  if (frl_replay_sample(t->replay, B, 0.5, &rng, &s) != 0) abort();
  float td[MAX_BATCH];
  uint64_t ids[MAX_BATCH];
  for (uint32_t j = 0; j < B; j++) {
    const uint64_t id = s->item_id[j];
    const bool agent = id >= 1 && id <= frl_replay_inserted_total(t->replay);
    if (!agent && id < FRL_DEMO_ID_BASE) abort();
    if (!isfinite(s->weight[j]) || s->weight[j] <= 0.0f || s->weight[j] > 1.0f) abort();
    ids[j] = id;
    /* TD errors from the input itself, including the hostile ones (NaN, inf, negative). */
    float v = 0.0f;
    if (size >= 4) memcpy(&v, data + (j * 4) % (size - 3), 4);
    td[j] = v;
  }
  frl_replay_update_priorities(t->replay, ids, td, B);
  if (g_inputs % 64 == 0 && frl_replay_flush(t->replay) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (g_inputs++ % RENEW_EVERY == 0) renew();
  void *buf = NULL;
  if (posix_memalign(&buf, 8, size ? size : 1) != 0) return 0;
  memcpy(buf, data, size);
  frl_msg_t m;
  char err[256];
  if (frl_msg_decode(buf, size, &m, err, sizeof err) == 0 && m.type == FRL_MSG_EXPERIENCE) {
    const frl_experience_t *x = &m.u.experience;
    exercise(x->n_action ? &g_cont : &g_disc, x, data, size);
  }
  free(buf);
  return 0;
}
