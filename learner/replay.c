/* replay.c: prioritized experience replay (Schaul et al. 2016; Ape-X, Horgan et al. 2018):
 * a payload cache of `capacity` slots in memory, indexed by a sum-tree and a min-tree, with
 * the SQLite store as the system of record. Item ids are issued in order from 1; item i lives
 * in slot i mod capacity, so the FIFO eviction of the store (ids < newest - capacity + 1) and
 * the overwrite of slots in memory evict the same items. Sampling and priority updates never
 * touch SQLite; they mark slots dirty, and frl_replay_flush_some writes them back in passes
 * over the ids in order, a bounded slice per transaction, so that ingest never waits for a
 * write-back of the whole replay.
 */
#include "replay.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "log.h"
#include "sumtree.h"

/* Largest sample batch a config may ask for (the output arrays are sized by it). */
#define FRL_REPLAY_MAX_BATCH 65536u

struct frl_replay {
  frl_replay_config_t cfg;
  frl_store_t *store;
  frl_sumtree_t *tree;
  bool discrete;
  uint32_t capacity, D, A; /* agent slots, obs_dim, act_dim */
  uint32_t demo_cap, slots; /* demonstration slots (after the agent's), all slots */

  /* Slot i is one record at rec + i * stride: a record_t, then obs[D], next_obs[D] and, for
   * continuous tasks, action[A], padded to whole 64-byte cache lines, so that gathering a
   * sample or updating a priority costs one cache miss per item (CartPole: exactly one line)
   * rather than one per field. */
  unsigned char *rec;
  size_t stride;
  uint64_t *dirty;       /* bitmap: priority or count changed since the last flush */
  uint32_t n_dirty;
  uint64_t flush_cursor; /* the flush pass under way has written every dirty id below this
                          * (0: no pass under way) */

  uint64_t size;     /* occupied slots */
  uint64_t demo_size; /* occupied demonstration slots */
  uint64_t next_id;  /* id of the next inserted item */
  uint64_t next_demo_id; /* id of the next demonstration, from FRL_DEMO_ID_BASE */
  uint64_t demo_skipped; /* stored demonstrations not loaded (demo_cap 0) */
  double max_priority; /* largest p set so far, 0 before any */

  float *new_priority; /* [FRL_MSG_MAX_COUNT] priorities of a batch being inserted */
  /* flush scratch, grown as needed */
  uint32_t *flush_slot;
  uint64_t *flush_id;
  float *flush_priority;
  uint32_t *flush_sampled;
  uint32_t flush_cap;

  /* sample output, [max_batch] */
  frl_replay_sample_t out;
  uint32_t *out_slot;
  double *mass;
};

typedef struct {
  uint64_t id;      /* 0: empty slot (ids start at 1) */
  float reward, discount;
  int32_t action_index;
  /* p in float, the exact value the store holds, so that a rebuilt tree is bit-identical to
   * the live one; -1 while a rebuild has not assigned it yet. */
  float priority;
  uint32_t sampled; /* samples counted since the last flush */
  uint32_t unused;
} record_t;

static inline record_t *record(const frl_replay_t *r, uint32_t slot) {
  return (record_t *)(void *)(r->rec + (size_t)slot * r->stride);
}
/* obs, then next_obs at + D, then the action vector at + 2D. */
static inline float *record_floats(const frl_replay_t *r, uint32_t slot) {
  return (float *)(void *)(r->rec + (size_t)slot * r->stride + sizeof(record_t));
}

/* p = (|delta| + eps)^alpha: the numerator p_i^alpha of Schaul et al. 2016, eq. 1, with the
 * proportional p_i = |delta_i| + eps; eps > 0 keeps every item sampleable even at zero TD
 * error. Rounded to float: the stored precision. */
static float priority_of(const frl_replay_t *r, double td_abs) {
  return (float)pow(td_abs + r->cfg.eps, r->cfg.alpha);
}

/* Items without an actor priority get the running max, so that every new transition is
 * sampled soon at least once (Schaul et al. 2016, Alg. 1 line 6, with p_1 = 1 before any
 * priority exists). Giving them a constant 1.0 instead, as an earlier version did, starves them
 * once priorities exceed 1 and over-samples them while priorities are below it. The max is
 * monotone, as in Schaul et al. and most implementations; after a restart it is the max of the
 * stored items. */
static float new_item_priority(const frl_replay_t *r) {
  return r->max_priority > 0.0 ? (float)r->max_priority : 1.0f;
}

static inline bool is_demo(uint64_t id) { return id >= FRL_DEMO_ID_BASE; }

/* Agent item id -> slot id mod capacity; demonstration id -> one of the demo_cap slots after
 * them. Only called for ids of the replay's own ranges (a demo id needs demo_cap > 0). */
static inline uint32_t slot_of(const frl_replay_t *r, uint64_t id) {
  if (is_demo(id)) return r->capacity + (uint32_t)((id - FRL_DEMO_ID_BASE) % r->demo_cap);
  return (uint32_t)(id % r->capacity);
}

/* Demonstrations keep a bonus eps_d on top of their TD error (Hester et al. 2018, sec. 3),
 * so that the few of them keep being replayed among many agent transitions. */
static float priority_for(const frl_replay_t *r, uint64_t id, double td_abs) {
  return priority_of(r, is_demo(id) ? td_abs + r->cfg.demo_bonus : td_abs);
}

static void set_slot_priority(frl_replay_t *r, uint32_t slot, float p) {
  record(r, slot)->priority = p;
  frl_sumtree_set(r->tree, slot, r->cfg.prioritized ? (double)p : 1.0);
  if (p > r->max_priority) r->max_priority = p;
}

static void mark_dirty(frl_replay_t *r, uint32_t slot) {
  uint64_t bit = 1ull << (slot % 64);
  if (r->dirty[slot / 64] & bit) return;
  r->dirty[slot / 64] |= bit;
  r->n_dirty++;
}

/* Index of the first non-finite float in x[0..n), or n. */
static size_t first_nonfinite(const float *x, size_t n) {
  size_t i = 0;
  while (i < n && isfinite(x[i])) i++;
  return i;
}

static void episode_at(const frl_experience_t *b, uint32_t i, frl_episode_stat_t *ep) {
  if (b->episodes_in)
    *ep = b->episodes_in[i];
  else
    frl_msg_episode(b, i, ep);
}

/* Checks a batch against the task. Shapes give FRL_EDIM, values FRL_EPROTO; err names the
 * field, the offending index and value, and the bound. */
static int validate(const frl_replay_t *r, const frl_experience_t *b, char *err, size_t errlen) {
  const uint32_t n = b->count, D = r->D, A = r->A;
  size_t name_len = b->actor ? strnlen(b->actor, FRL_MSG_MAX_STRING + 1) : 0;
  if (name_len == 0) {
    frl_errf(0, err, errlen, "ExperienceBatch.actor: missing or empty");
    return FRL_EPROTO;
  }
  if (name_len > FRL_MSG_MAX_STRING) {
    frl_errf(0, err, errlen, "ExperienceBatch.actor: longer than %u bytes", FRL_MSG_MAX_STRING);
    return FRL_EPROTO;
  }
  if (n > FRL_MSG_MAX_COUNT) {
    frl_errf(0, err, errlen, "ExperienceBatch.count: %u, limit %u", n, FRL_MSG_MAX_COUNT);
    return FRL_EPROTO;
  }
  if (b->obs_dim != D) {
    frl_errf(0, err, errlen, "ExperienceBatch.obs_dim: %u, task has obs_dim %u", b->obs_dim, D);
    return FRL_EDIM;
  }
  if (b->act_dim != A) {
    frl_errf(0, err, errlen, "ExperienceBatch.act_dim: %u, task has act_dim %u", b->act_dim, A);
    return FRL_EDIM;
  }
  if (r->discrete) {
    if (b->n_action_index != n || (n && !b->action_index)) {
      frl_errf(0, err, errlen,
               "ExperienceBatch.action_index: %u ints, expected count = %u "
               "(discrete task)",
               b->n_action_index, n);
      return FRL_EDIM;
    }
    if (b->n_action != 0) {
      frl_errf(0, err, errlen, "ExperienceBatch.action: %u floats, expected 0 (discrete task)",
               b->n_action);
      return FRL_EDIM;
    }
  } else {
    if ((uint64_t)b->n_action != (uint64_t)n * A || (n && !b->action)) {
      frl_errf(0, err, errlen,
               "ExperienceBatch.action: %u floats, expected count*act_dim = %llu "
               "(continuous task)",
               b->n_action, (unsigned long long)n * A);
      return FRL_EDIM;
    }
    if (b->n_action_index != 0) {
      frl_errf(0, err, errlen,
               "ExperienceBatch.action_index: %u ints, expected 0 (continuous "
               "task)",
               b->n_action_index);
      return FRL_EDIM;
    }
  }
  if (n && (!b->obs || !b->next_obs || !b->reward || !b->discount)) {
    frl_errf(0, err, errlen, "ExperienceBatch.%s: missing, expected %u values",
             !b->obs        ? "obs"
             : !b->next_obs ? "next_obs"
             : !b->reward   ? "reward"
                            : "discount",
             n);
    return FRL_EDIM;
  }
  if ((b->n_priority != 0 && b->n_priority != n) || (b->n_priority && !b->priority)) {
    frl_errf(0, err, errlen, "ExperienceBatch.priority: %u floats, expected 0 or count = %u",
             b->n_priority, n);
    return FRL_EDIM;
  }
  if ((b->n_policy_version != 0 && b->n_policy_version != n) ||
      (b->n_policy_version && !b->policy_version)) {
    frl_errf(0, err, errlen, "ExperienceBatch.policy_version: %u values, expected 0 or count = %u",
             b->n_policy_version, n);
    return FRL_EDIM;
  }
  if (b->n_episodes > FRL_MSG_MAX_EPISODES || (b->n_episodes && !b->episodes_in &&
                                               !b->episodes_vec)) {
    frl_errf(0, err, errlen, "ExperienceBatch.episodes: %u, limit %u", b->n_episodes,
             FRL_MSG_MAX_EPISODES);
    return FRL_EPROTO;
  }

  size_t i;
  if ((i = first_nonfinite(b->obs, (size_t)n * D)) < (size_t)n * D) {
    frl_errf(0, err, errlen, "ExperienceBatch.obs[%zu][%zu]: %g, must be finite", i / D, i % D,
             (double)b->obs[i]);
    return FRL_EPROTO;
  }
  if ((i = first_nonfinite(b->next_obs, (size_t)n * D)) < (size_t)n * D) {
    frl_errf(0, err, errlen, "ExperienceBatch.next_obs[%zu][%zu]: %g, must be finite", i / D, i % D,
             (double)b->next_obs[i]);
    return FRL_EPROTO;
  }
  if ((i = first_nonfinite(b->reward, n)) < n) {
    frl_errf(0, err, errlen, "ExperienceBatch.reward[%zu]: %g, must be finite", i,
             (double)b->reward[i]);
    return FRL_EPROTO;
  }
  for (i = 0; i < n; i++) {
    float d = b->discount[i];
    if (!(d >= 0.0f && d <= 1.0f)) {
      frl_errf(0, err, errlen, "ExperienceBatch.discount[%zu]: %g, must be in [0, 1]", i,
               (double)d);
      return FRL_EPROTO;
    }
  }
  if (r->discrete) {
    for (i = 0; i < n; i++) {
      int32_t a = b->action_index[i];
      if (a < 0 || (uint32_t)a >= r->cfg.n_actions) {
        frl_errf(0, err, errlen, "ExperienceBatch.action_index[%zu]: %d, must be in [0, %u)", i, a,
                 r->cfg.n_actions);
        return FRL_EPROTO;
      }
    }
  } else if ((i = first_nonfinite(b->action, (size_t)n * A)) < (size_t)n * A) {
    frl_errf(0, err, errlen, "ExperienceBatch.action[%zu][%zu]: %g, must be finite", i / A, i % A,
             (double)b->action[i]);
    return FRL_EPROTO;
  }
  for (i = 0; i < b->n_priority; i++) {
    float p = b->priority[i];
    if (!(isfinite(p) && p >= 0.0f)) {
      frl_errf(0, err, errlen, "ExperienceBatch.priority[%zu]: %g, must be finite and >= 0", i,
               (double)p);
      return FRL_EPROTO;
    }
  }
  for (uint32_t e = 0; e < b->n_episodes; e++) {
    frl_episode_stat_t ep;
    episode_at(b, e, &ep);
    if (!isfinite(ep.episode_return)) {
      frl_errf(0, err, errlen, "ExperienceBatch.episodes[%u].episode_return: %g, must be finite", e,
               (double)ep.episode_return);
      return FRL_EPROTO;
    }
  }
  return 0;
}

/* Writes item id into its slot (payload, priority); the slot's previous item, if any, is the
 * one FIFO eviction just removed from the store. */
static void place(frl_replay_t *r, uint64_t id, const float *obs, int32_t action_index,
                  const float *action, float reward, float discount, const float *next_obs,
                  float p) {
  const uint32_t slot = slot_of(r, id), D = r->D, A = r->A;
  record_t *h = record(r, slot);
  float *f = record_floats(r, slot);
  if (h->id == 0) {
    r->size++;
    if (is_demo(id)) r->demo_size++;
  }
  h->id = id;
  h->reward = reward;
  h->discount = discount;
  h->action_index = action_index;
  memcpy(f, obs, D * sizeof(float));
  memcpy(f + D, next_obs, D * sizeof(float));
  if (!r->discrete) memcpy(f + 2 * D, action, A * sizeof(float));
  /* A pending count belonged to the evicted item, whose row is gone. If the slot is still
   * marked dirty, the next flush rewrites the new item's own values: harmless. */
  h->sampled = 0;
  set_slot_priority(r, slot, p);
}

/* Rebuild from the store (frl_store_scan_items callback). The file is untrusted, since users
 * can edit it while the learner is down: values are checked as strictly as incoming batches. */
static int rebuild_item(void *ctx, uint64_t id, const float *obs, int32_t action_index,
                        const float *action, float reward, float discount, const float *next_obs,
                        float priority) {
  frl_replay_t *r = ctx;
  const char *bad = NULL;
  if (is_demo(id) && r->demo_cap == 0) {
    r->demo_skipped++; /* kept in the store; not replayed while demo_capacity is 0 */
    return 0;
  }
  if (first_nonfinite(obs, r->D) < r->D) bad = "obs";
  else if (first_nonfinite(next_obs, r->D) < r->D) bad = "next_obs";
  else if (!isfinite(reward)) bad = "reward";
  else if (!(discount >= 0.0f && discount <= 1.0f)) bad = "discount";
  else if (r->discrete && (action_index < 0 || (uint32_t)action_index >= r->cfg.n_actions))
    bad = "action";
  else if (!r->discrete && first_nonfinite(action, r->A) < r->A) bad = "action_vec";
  if (bad) {
    frl_error("replay: stored item %llu has an invalid %s (non-finite, or out of range for "
              "the task)", (unsigned long long)id, bad);
    return FRL_ECORRUPT;
  }
  /* A missing or unusable priority (NULL, negative, inf: possible after a manual edit) gets
   * the running max once all items are loaded; mark it with -1 meanwhile. */
  bool usable = isfinite(priority) && priority >= 0.0f;
  place(r, id, obs, action_index, action, reward, discount, next_obs, usable ? priority : 0.0f);
  if (!usable) record(r, slot_of(r, id))->priority = -1.0f;
  return 0;
}

static int rebuild(frl_replay_t *r) {
  uint64_t max_id = 0;
  int err = frl_store_max_item_id(r->store, &max_id);
  if (err) return err;
  uint64_t max_demo = 0;
  if ((err = frl_store_max_demo_id(r->store, &max_demo))) return err;
  uint64_t min_id = max_id >= r->capacity ? max_id - r->capacity + 1 : 1;
  /* The scan runs in id order, agent items first, then demonstrations (whose ids are above):
   * where more demonstrations are stored than slots, the newest win their slots. */
  if ((max_id > 0 || max_demo > 0) &&
      (err = frl_store_scan_items(r->store, min_id, rebuild_item, r)))
    return err;
  if (r->demo_skipped)
    frl_warn("replay: %llu stored demonstrations are not replayed (demo capacity is 0)",
             (unsigned long long)r->demo_skipped);
  uint64_t fixed = 0;
  for (uint32_t slot = 0; slot < r->slots; slot++) {
    if (record(r, slot)->id && record(r, slot)->priority < 0.0f) {
      set_slot_priority(r, slot, new_item_priority(r));
      mark_dirty(r, slot);
      fixed++;
    }
  }
  if (fixed)
    frl_warn("replay: %llu stored items had no usable priority; gave them the max %g",
             (unsigned long long)fixed, (double)new_item_priority(r));
  r->next_id = max_id + 1;
  r->next_demo_id = max_demo > 0 ? max_demo + 1 : FRL_DEMO_ID_BASE;
  return 0;
}

static int check_config(const frl_replay_config_t *c) {
  const char *what = NULL;
  if (c->capacity == 0 || c->capacity > (1u << 31)) what = "capacity must be in 1..2^31";
  else if (c->obs_dim == 0 || c->obs_dim > FRL_MSG_MAX_DIM) what = "obs_dim out of range";
  else if (c->act_dim == 0 || c->act_dim > FRL_MSG_MAX_DIM) what = "act_dim out of range";
  else if (c->n_actions > 0 && c->act_dim != 1) what = "discrete tasks need act_dim 1";
  else if (c->n_actions > INT32_MAX) what = "n_actions too large";
  else if (!(isfinite(c->alpha) && c->alpha >= 0.0)) what = "alpha must be finite and >= 0";
  else if (!(isfinite(c->eps) && c->eps > 0.0)) what = "eps must be finite and > 0";
  else if (c->max_batch == 0 || c->max_batch > FRL_REPLAY_MAX_BATCH)
    what = "max_batch must be in 1..65536";
  else if ((uint64_t)c->capacity + c->demo_capacity > (1u << 31))
    what = "capacity + demo_capacity must be at most 2^31";
  else if (!(isfinite(c->demo_bonus) && c->demo_bonus >= 0.0))
    what = "demo_bonus must be finite and >= 0";
  if (!what) return 0;
  frl_error("replay: bad config: %s", what);
  return FRL_EUSAGE;
}

int frl_replay_open(frl_replay_t **out, const frl_replay_config_t *cfg, frl_store_t *store) {
  int err = check_config(cfg);
  if (err) return err;
  frl_replay_t *r = frl_xcalloc(1, sizeof *r);
  const size_t C = (size_t)cfg->capacity + cfg->demo_capacity, D = cfg->obs_dim,
               A = cfg->act_dim, B = cfg->max_batch;
  r->cfg = *cfg;
  r->store = store;
  r->discrete = cfg->n_actions > 0;
  r->capacity = cfg->capacity;
  r->demo_cap = cfg->demo_capacity;
  r->slots = (uint32_t)C;
  r->D = cfg->obs_dim;
  r->A = cfg->act_dim;
  r->max_priority = 0.0; /* none seen yet: see new_item_priority() */
  r->stride = sizeof(record_t) + (2 * D + (r->discrete ? 0 : A)) * sizeof(float);
  r->stride = (r->stride + 63) / 64 * 64;
  /* The one allocation that scales with a user's capacity: refuse it rather than abort. */
  r->rec = aligned_alloc(64, C * r->stride);
  if (!r->rec) {
    frl_error("replay: cannot allocate %zu MiB for %zu slots of %zu bytes; lower the capacity",
              C * r->stride >> 20, C, r->stride);
    free(r);
    return -ENOMEM;
  }
  memset(r->rec, 0, C * r->stride);
  r->tree = frl_sumtree_new(r->slots);
  r->dirty = frl_xcalloc((C + 63) / 64, sizeof *r->dirty);
  r->new_priority = frl_xcalloc(FRL_MSG_MAX_COUNT, sizeof *r->new_priority);
  r->out.item_id = frl_xcalloc(B, sizeof *r->out.item_id);
  r->out.weight = frl_xcalloc(B, sizeof *r->out.weight);
  r->out.obs = frl_xcalloc(B * D, sizeof *r->out.obs);
  r->out.next_obs = frl_xcalloc(B * D, sizeof *r->out.next_obs);
  if (r->discrete)
    r->out.action_index = frl_xcalloc(B, sizeof *r->out.action_index);
  else
    r->out.action = frl_xcalloc(B * A, sizeof *r->out.action);
  r->out.reward = frl_xcalloc(B, sizeof *r->out.reward);
  r->out.discount = frl_xcalloc(B, sizeof *r->out.discount);
  r->out_slot = frl_xcalloc(B, sizeof *r->out_slot);
  r->mass = frl_xcalloc(B, sizeof *r->mass);
  if ((err = rebuild(r))) goto fail;
  *out = r;
  return 0;
fail:
  r->n_dirty = 0; /* nothing to write back from a failed open */
  frl_replay_close(&r);
  return err;
}

void frl_replay_close(frl_replay_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_replay_t *r = *self_p;
  if (r->n_dirty) {
    int err = frl_replay_flush(r);
    if (err)
      frl_warn("replay: final flush failed (%s); the last priority updates are lost",
               frl_strerror(err));
  }
  frl_sumtree_destroy(&r->tree);
  free(r->rec);
  free(r->dirty);
  free(r->new_priority);
  free(r->flush_slot);
  free(r->flush_id);
  free(r->flush_priority);
  free(r->flush_sampled);
  free(r->out.item_id);
  free(r->out.weight);
  free(r->out.obs);
  free(r->out.next_obs);
  free(r->out.action_index);
  free(r->out.action);
  free(r->out.reward);
  free(r->out.discount);
  free(r->out_slot);
  free(r->mass);
  free(r);
  *self_p = NULL;
}

int frl_replay_insert(frl_replay_t *r, const frl_experience_t *batch, double now,
                      frl_insert_outcome_t *outcome, char *err, size_t errlen) {
  int rc = validate(r, batch, err, errlen);
  if (rc) return rc;
  const uint32_t n = batch->count, D = r->D, A = r->A;
  const bool demo = batch->demonstration && r->demo_cap > 0;
  const uint64_t first = demo ? r->next_demo_id : r->next_id;
  const uint32_t cap = demo ? r->demo_cap : r->capacity;
  const float p_new = new_item_priority(r);
  for (uint32_t i = 0; i < n; i++)
    r->new_priority[i] =
        batch->n_priority ? priority_for(r, first, batch->priority[i]) : p_new;
  /* After this batch the replay holds ids first+n-cap .. first+n-1 of this range. */
  const int64_t evict_below = (int64_t)(first + n) - (int64_t)cap;
  bool duplicate = false;
  rc = frl_store_insert_batch(r->store, batch, first, r->new_priority, evict_below, now,
                              &duplicate);
  if (rc) {
    frl_errf(0, err, errlen, "replay store: %s", frl_strerror(rc));
    return rc;
  }
  if (duplicate) {
    *outcome = FRL_INSERT_DUPLICATE;
    return 0;
  }
  /* Only the newest capacity items of an oversized batch survive; skip the others. */
  const uint32_t skip = n > cap ? n - cap : 0;
  for (uint32_t i = skip; i < n; i++) {
    place(r, first + i, batch->obs + (size_t)i * D,
          r->discrete ? batch->action_index[i] : -1,
          r->discrete ? NULL : batch->action + (size_t)i * A, batch->reward[i],
          batch->discount[i], batch->next_obs + (size_t)i * D, r->new_priority[i]);
  }
  if (demo)
    r->next_demo_id = first + n;
  else
    r->next_id = first + n;
  *outcome = FRL_INSERT_OK;
  return 0;
}

/* Copies the records of out_slot[0..B) into the sample arrays (all but the weights). */
static void gather(frl_replay_t *r, uint32_t B) {
  const uint32_t D = r->D, A = r->A;
  frl_replay_sample_t *s = &r->out;
  for (uint32_t j = 0; j < B; j++) {
    const uint32_t slot = r->out_slot[j];
    const record_t *h = record(r, slot);
    const float *f = record_floats(r, slot);
    s->item_id[j] = h->id;
    s->reward[j] = h->reward;
    s->discount[j] = h->discount;
    memcpy(s->obs + (size_t)j * D, f, D * sizeof(float));
    memcpy(s->next_obs + (size_t)j * D, f + D, D * sizeof(float));
    if (r->discrete)
      s->action_index[j] = h->action_index;
    else
      memcpy(s->action + (size_t)j * A, f + 2 * D, A * sizeof(float));
  }
}

int frl_replay_sample(frl_replay_t *r, uint32_t B, double beta, frl_rng_t *rng,
                      const frl_replay_sample_t **out) {
  if (r->size == 0) return FRL_EBUSY;
  if (B == 0 || B > r->cfg.max_batch || !(isfinite(beta) && beta >= 0.0)) return FRL_EUSAGE;
  /* Stratified: one uniform draw in each of B equal slices of the total mass (Schaul et al.
   * 2016, appendix B.2.1), which lowers the variance of the batch composition. */
  const double total = frl_sumtree_total(r->tree);
  const double segment = total / B;
  for (uint32_t j = 0; j < B; j++) r->mass[j] = ((double)j + frl_rng_uniform(rng)) * segment;
  frl_sumtree_find_batch(r->tree, r->mass, r->out_slot, B);

  /* Start fetching every record now; the weights below give the loads time to land. */
  for (uint32_t j = 0; j < B; j++) __builtin_prefetch(record(r, r->out_slot[j]));

  /* w_i = (N P(i))^-beta / max_j w_j with P(i) = p_i / total; the largest weight belongs to
   * the smallest priority, so the normalised weight is (p_i / p_min)^-beta, exactly 1 for
   * the least likely item and never above 1. */
  const double p_min = frl_sumtree_min(r->tree);
  frl_replay_sample_t *s = &r->out;
  s->B = B;
  for (uint32_t j = 0; j < B; j++)
    s->weight[j] = r->cfg.prioritized
                       ? (float)pow(frl_sumtree_get(r->tree, r->out_slot[j]) / p_min, -beta)
                       : 1.0f;
  gather(r, B);
  *out = s;
  return 0;
}

int frl_replay_sample_demos(frl_replay_t *r, uint32_t B, frl_rng_t *rng,
                            const frl_replay_sample_t **out) {
  if (r->demo_size == 0) return FRL_EBUSY;
  if (B == 0 || B > r->cfg.max_batch) return FRL_EUSAGE;
  /* The demonstrations held are the newest of the ids issued, at most demo_cap of them, each in
   * its own slot: draw an id uniformly from that window and keep it if its slot still holds it.
   * Every id is held in normal operation; only a store edited by hand can leave holes (ids
   * missing, their slots empty or holding older ones), where the draw is repeated and, in the
   * unlikely case that 64 draws all miss, the next occupied demonstration slot is taken. */
  const uint64_t issued = r->next_demo_id - FRL_DEMO_ID_BASE;
  const uint32_t window = issued < r->demo_cap ? (uint32_t)issued : r->demo_cap;
  for (uint32_t j = 0; j < B; j++) {
    uint32_t slot = 0;
    bool found = false;
    for (int tries = 0; tries < 64 && !found; tries++) {
      const uint64_t id = r->next_demo_id - 1 - frl_rng_below(rng, window);
      slot = slot_of(r, id);
      found = record(r, slot)->id == id;
    }
    for (uint32_t k = 0; !found && k < r->demo_cap; k++) {
      slot = r->capacity + (slot - r->capacity + 1) % r->demo_cap;
      found = record(r, slot)->id != 0;
    }
    r->out_slot[j] = slot;
  }
  frl_replay_sample_t *s = &r->out;
  s->B = B;
  for (uint32_t j = 0; j < B; j++) s->weight[j] = 1.0f;
  gather(r, B);
  *out = s;
  return 0;
}

void frl_replay_update_priorities(frl_replay_t *r, const uint64_t *item_id, const float *td_abs,
                                  uint32_t B) {
  /* Fetch all records first: their misses then overlap instead of stalling one by one. */
  for (uint32_t j = 0; j < B; j++)
    if (item_id[j] && (!is_demo(item_id[j]) || r->demo_cap))
      __builtin_prefetch(record(r, slot_of(r, item_id[j])));
  for (uint32_t j = 0; j < B; j++) {
    const uint64_t id = item_id[j];
    if (id == 0 || (is_demo(id) && r->demo_cap == 0)) continue;
    const uint32_t slot = slot_of(r, id);
    record_t *h = record(r, slot);
    /* The item may have been evicted (and its slot reused) since it was sampled. */
    if (h->id != id) continue;
    if (h->sampled < UINT32_MAX) h->sampled++;
    /* A non-finite TD error (a diverging network) must not poison the tree's sums; the item
     * keeps its old priority. */
    const float td = td_abs[j];
    if (isfinite(td) && td >= 0.0f) set_slot_priority(r, slot, priority_for(r, id, td));
    mark_dirty(r, slot);
  }
}

/* A ring of the replay for the flush walk: items with ids [lo, hi) live in slots
 * base + (id - id0) % len. */
typedef struct {
  uint32_t base, len;
  uint64_t id0, lo, hi;
} ring_t;

static ring_t agent_ring(const frl_replay_t *r) {
  return (ring_t){.base = 0, .len = r->capacity, .id0 = 0,
                  .lo = r->next_id > r->capacity ? r->next_id - r->capacity : 1,
                  .hi = r->next_id};
}

static ring_t demo_ring(const frl_replay_t *r) {
  const uint64_t issued = r->next_demo_id - FRL_DEMO_ID_BASE;
  return (ring_t){.base = r->capacity, .len = r->demo_cap, .id0 = FRL_DEMO_ID_BASE,
                  .lo = r->next_demo_id - (issued < r->demo_cap ? issued : r->demo_cap),
                  .hi = r->next_demo_id};
}

/* Appends the dirty slots of ring g's items with ids in [from, g.hi), in id order, to the flush
 * arrays from index *k until max entries; returns the id the walk stopped at (the one after
 * the last collected when the arrays filled, else g.hi). Clean stretches are skipped a word
 * of the bitmap at a time (to its next set bit), never past the ring's last slot, where the
 * slots wrap around to its first. */
static uint64_t collect_dirty(frl_replay_t *r, const ring_t *g, uint64_t from, uint32_t *k,
                              uint32_t max) {
  uint64_t id = FRL_MAX(from, g->lo);
  while (id < g->hi && *k < max) {
    const uint32_t off = (uint32_t)((id - g->id0) % g->len), slot = g->base + off;
    const uint64_t word = r->dirty[slot / 64] >> (slot % 64);
    if (!(word & 1)) {
      uint64_t skip = word ? (uint64_t)__builtin_ctzll(word) : 64 - slot % 64;
      skip = FRL_MIN(skip, (uint64_t)(g->len - off));
      id += FRL_MIN(skip, g->hi - id);
      continue;
    }
    const record_t *h = record(r, slot);
    r->flush_slot[*k] = slot;
    r->flush_id[*k] = h->id;
    r->flush_priority[*k] = h->priority;
    r->flush_sampled[*k] = h->sampled;
    (*k)++;
    id++;
  }
  return id < g->hi ? id : g->hi;
}

/* Dirty slots in bitmap positions [a, b). */
static uint32_t count_bits(const uint64_t *bits, uint32_t a, uint32_t b) {
  uint32_t n = 0;
  while (a < b) {
    const uint32_t w = a / 64, lo = a % 64, hi = b - w * 64 >= 64 ? 64 : b - w * 64;
    uint64_t word = bits[w] >> lo;
    if (hi - lo < 64) word &= (1ull << (hi - lo)) - 1;
    n += (uint32_t)__builtin_popcountll(word);
    a = w * 64 + hi;
  }
  return n;
}

/* Dirty items of ring g with ids in [from, g.hi): the rest of a pass there. */
static uint32_t count_dirty(const frl_replay_t *r, const ring_t *g, uint64_t from) {
  const uint64_t id = FRL_MAX(from, g->lo);
  if (id >= g->hi) return 0;
  const uint32_t off = (uint32_t)((id - g->id0) % g->len);
  const uint64_t n = g->hi - id; /* <= len */
  if (off + n <= g->len) return count_bits(r->dirty, g->base + off, g->base + off + (uint32_t)n);
  return count_bits(r->dirty, g->base + off, g->base + g->len) +
         count_bits(r->dirty, g->base, g->base + (uint32_t)(off + n - g->len));
}

int frl_replay_flush_some(frl_replay_t *r, uint32_t max_rows, uint32_t *remaining) {
  if (max_rows == 0) return FRL_EUSAGE;
  const uint32_t n = FRL_MIN(max_rows, r->n_dirty);
  if (n > r->flush_cap) {
    r->flush_slot = frl_xrealloc(r->flush_slot, n * sizeof *r->flush_slot);
    r->flush_id = frl_xrealloc(r->flush_id, n * sizeof *r->flush_id);
    r->flush_priority = frl_xrealloc(r->flush_priority, n * sizeof *r->flush_priority);
    r->flush_sampled = frl_xrealloc(r->flush_sampled, n * sizeof *r->flush_sampled);
    r->flush_cap = n;
  }
  /* The pass walks agent ids, then demonstration ids (all larger), in increasing order from
   * the cursor, so that every slice, and so the whole pass, reaches SQLite in item_id order:
   * each b-tree page is then modified once per pass and in order. */
  const ring_t agent = agent_ring(r);
  ring_t demo = {0};
  uint32_t k = 0;
  uint64_t at = r->flush_cursor;
  if (at < agent.hi) at = collect_dirty(r, &agent, at, &k, n);
  if (r->demo_cap) {
    demo = demo_ring(r);
    if (k < n && at >= agent.hi) at = collect_dirty(r, &demo, at, &k, n);
  }
  if (k > 0) {
    int err =
        frl_store_update_items(r->store, r->flush_id, r->flush_priority, r->flush_sampled, k);
    if (err) return err; /* still dirty, the cursor where it was: the next call retries */
    for (uint32_t j = 0; j < k; j++) {
      const uint32_t slot = r->flush_slot[j];
      r->dirty[slot / 64] &= ~(1ull << (slot % 64));
      record(r, slot)->sampled = 0;
    }
    r->n_dirty -= k;
  }
  uint32_t ahead = count_dirty(r, &agent, at);
  if (r->demo_cap) ahead += count_dirty(r, &demo, at);
  /* Nothing left ahead of the cursor: the pass is complete; the next starts from the oldest. */
  r->flush_cursor = ahead ? at : 0;
  if (remaining) *remaining = ahead;
  return 0;
}

int frl_replay_flush(frl_replay_t *r) {
  /* Finishing the pass under way writes what is ahead of its cursor; a new pass then writes
   * what was marked behind it. Each call leaves nothing ahead, so two suffice. */
  for (int pass = 0; pass < 2 && r->n_dirty; pass++) {
    int err = frl_replay_flush_some(r, UINT32_MAX, NULL);
    if (err) return err;
  }
  return 0;
}

uint64_t frl_replay_size(const frl_replay_t *r) { return r->size; }

uint64_t frl_replay_demo_size(const frl_replay_t *r) { return r->demo_size; }

void frl_replay_priority_stats(const frl_replay_t *r, double *sum, double *min) {
  *sum = r->size ? frl_sumtree_total(r->tree) : 0.0;
  *min = r->size ? frl_sumtree_min(r->tree) : 0.0;
}

uint64_t frl_replay_inserted_total(const frl_replay_t *r) { return r->next_id - 1; }

double frl_replay_max_priority(const frl_replay_t *r) { return new_item_priority(r); }
