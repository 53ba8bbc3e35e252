/* client.c: a physical robot as a fleet actor. The robot's control thread acts (policy, shield,
 * watchdog) and records steps into a single-producer single-consumer ring; a background thread
 * owns the ZeroMQ socket and turns the ring into n-step batches, ships them through an outbox,
 * applies parameter broadcasts by filling a spare policy and swapping pointers, and relays
 * e-stops. The control thread never waits for that thread except for the pointer swap.
 * With a policy file the robot acts with that fixed policy instead, as `fleetrl eval` does;
 * without an endpoint it then runs offline, with no network thread at all, which is how a
 * trained policy is evaluated on the robot itself. */
#include "client.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "actor.h"
#include "broker.h"
#include "common.h"
#include "config.h"
#include "env.h"
#include "history.h"
#include "log.h"
#include "msg.h"
#include "nstep.h"
#include "outbox.h"
#include "policy.h"
#include "policy_file.h"
#include "rng.h"
#include "shield.h"
#include "transport.h"
#include "watchdog.h"

#define MAX_EPISODES_PER_BATCH 64
#define EVENT_QUEUE 64
#define EVENT_DETAIL 160
#define RING_MAX_STEPS 4096
#define RING_MAX_BYTES ((size_t)64 << 20)
#define REFUSED_RETRY_S 5.0  /* a refused robot says Hello again this often (the broker may change) */
#define POLL_MS 2            /* the network thread's longest sleep */

/* One recorded step in the hand-over ring; vectors live in the ring's parallel arrays. */
typedef struct {
  bool gap;        /* steps before this one were lost: the n-step window restarts */
  bool terminal, truncated, success, demo;
  uint32_t violations;
  float reward;
  uint64_t version;
} step_t;

typedef struct {
  frl_safety_kind_t kind;
  uint32_t count;
  uint64_t time_ns;
  char detail[EVENT_DETAIL];
} event_t;

/* Parameter version and demonstration flag of each step in the n-step window, oldest first:
 * the builder emits one transition per pushed step, in push order. */
typedef struct {
  uint64_t version;
  bool demo;
} meta_t;

struct frl_client {
  frl_config_t cfg;
  int obs_dim, act_dim, n_actions, wire_act_dim;
  int robot_obs_dim; /* what the robot passes; obs_dim adds the history (history.h) */
  bool discrete;
  float low[FRL_ENV_MAX_DIM], high[FRL_ENV_MAX_DIM];
  double exploration;
  bool fixed;      /* acting with a policy file: deterministic, never replaced by Params */
  bool offline;    /* a policy file and no endpoint: no socket, no network thread */
  float act_scale; /* what act() maps [-1, 1] with: the file's action scale, else --action-scale */
  char policy_path[256];

  /* control thread */
  frl_shield_t *shield;
  frl_watchdog_t *wd;
  frl_rng_t rng;
  frl_history_t hist; /* the robot's last commands and observations (history.h) */
  bool acted;         /* act() ran since the last record(): its command is in the history */
  float *cur_obs;     /* obs_dim: the robot's observation, then the history */
  float *next_obs;    /* scratch of obs_dim for record() */
  bool have_cur, gap_pending, demo_default;
  bool mid_episode; /* a step of an unfinished episode was recorded */
  uint64_t acted_version;
  uint64_t dropped_steps, clipped, barrier, safe_actions, steps;
  /* the robot's own episode tally, kept here so that it exists offline too */
  double tally_return;
  uint64_t tally_len, tally_violations;
  bool tally_success;
  uint64_t tally_episodes, tally_successes, tally_violations_sum, tally_steps;
  double return_mean, return_m2; /* Welford's running mean and sum of squared deviations */

  /* the acting policy and its spare: the network thread fills the spare, then swaps */
  pthread_mutex_t policy_mu;
  frl_policy_t *policy[2];
  uint64_t policy_version[2];
  int active;

  /* the hand-over ring (control thread produces, network thread consumes) */
  uint32_t ring_cap;
  step_t *ring;
  float *ring_obs, *ring_next, *ring_act;
  _Atomic uint64_t ring_head, ring_tail;
  _Atomic uint64_t shed_steps;

  /* safety events waiting for the next batch */
  pthread_mutex_t ev_mu;
  event_t events[EVENT_QUEUE];
  int n_events;
  int open_clip, open_barrier; /* queue index of the aggregate being counted, -1 none */

  /* state the network thread publishes */
  _Atomic uint64_t heard_ns, params_ns, params_version, latest_version;
  _Atomic uint32_t outbox_depth;
  _Atomic uint64_t shed_batches, acked_batches;
  _Atomic bool estop, welcomed, refused, safe_mode, stop;
  pthread_mutex_t reason_mu;
  char refusal[FRL_MSG_MAX_STRING + 1];

  /* network thread */
  pthread_t thread;
  bool thread_started;
  void *ctx, *sock;
  frl_fb_builder_t *fb;
  frl_inbox_t in;
  frl_nstep_t *ns;
  frl_outbox_t *outbox;
  FILE *ack_log;
  meta_t *meta;
  int meta_head, meta_len;
  int cap, count;
  float *b_obs, *b_next, *b_reward, *b_discount, *b_action;
  int32_t *b_index;
  uint64_t *b_version;
  bool b_demo;
  double b_started; /* when the unsealed batch got its first content; 0 when empty */
  frl_episode_stat_t episodes[MAX_EPISODES_PER_BATCH];
  int n_episodes;
  event_t sealing[EVENT_QUEUE];
  frl_safety_event_t wire_events[EVENT_QUEUE];
  uint32_t batch_env_steps;
  uint64_t seq, env_steps, rejected;
  bool params_ignored; /* a broadcast was ignored for the policy file (logged once) */
  double ep_return;
  uint32_t ep_len, ep_violations;
  bool ep_success, ep_broken;
  double last_heard, last_hello, last_heartbeat, last_refusal_log;
};

/* ---- safety events ----------------------------------------------------------------------- */

static uint64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Queues an event; Clip and Barrier aggregate into one event per kind per batch (count and the
 * first occurrence's time and detail). A full queue folds the event into the last one of its
 * kind, so counts are never lost. */
static void push_event(frl_client_t *c, frl_safety_kind_t kind, uint32_t count, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void push_event(frl_client_t *c, frl_safety_kind_t kind, uint32_t count, const char *fmt, ...) {
  pthread_mutex_lock(&c->ev_mu);
  int *open = kind == FRL_SAFETY_CLIP ? &c->open_clip : kind == FRL_SAFETY_BARRIER ? &c->open_barrier : NULL;
  event_t *e = NULL;
  if (open && *open >= 0) {
    e = &c->events[*open];
    e->count += count;
  } else if (c->n_events < EVENT_QUEUE) {
    e = &c->events[c->n_events];
    e->kind = kind;
    e->count = count;
    e->time_ns = wall_ns();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof e->detail, fmt, ap);
    va_end(ap);
    if (open) *open = c->n_events;
    c->n_events++;
  } else {
    for (int i = c->n_events - 1; i >= 0 && !e; i--)
      if (c->events[i].kind == kind) e = &c->events[i];
    if (!e) e = &c->events[c->n_events - 1]; /* never happens with 6 kinds in 64 slots */
    e->count += count;
  }
  pthread_mutex_unlock(&c->ev_mu);
}

/* ---- control thread ---------------------------------------------------------------------- */

static double ns_to_s(uint64_t ns) { return (double)ns * 1e-9; }

/* Feeds the watchdog what the network thread saw and applies a safe-mode change: log line,
 * safety event, heartbeat flag. */
static void check_watchdog(frl_client_t *c, double now) {
  frl_watchdog_heard(c->wd, ns_to_s(atomic_load(&c->heard_ns)));
  uint64_t pn = atomic_load(&c->params_ns);
  if (pn) frl_watchdog_params(c->wd, ns_to_s(pn));
  frl_watchdog_estop(c->wd, atomic_load(&c->estop));
  frl_watchdog_change_t ch;
  if (!frl_watchdog_update(c->wd, now, &ch)) return;
  char why[128];
  frl_watchdog_describe(ch.entered ? ch.after : ch.before, why, sizeof why);
  if (ch.entered) {
    frl_warn("SAFE MODE: %s; applying the safe action", why);
    push_event(c, FRL_SAFETY_SAFE_MODE_ENTER, 1, "%s", why);
  } else {
    frl_info("safe mode lifted (was: %s); acting with the policy again", why);
    push_event(c, FRL_SAFETY_SAFE_MODE_EXIT, 1, "was: %s", why);
  }
  atomic_store(&c->safe_mode, ch.entered);
}

/* Adds one record to the robot's own episode tally; an episode's end folds its return into
 * the running mean and variance (Welford 1962, numerically stable for long evaluations). */
static void tally_record(frl_client_t *c, float reward, bool done, const frl_client_info_t *info) {
  if (isfinite(reward)) c->tally_return += reward;
  c->tally_len++;
  if (info) {
    c->tally_violations += info->violations;
    c->tally_success |= info->success;
  }
  if (!done) return;
  c->tally_episodes++;
  double delta = c->tally_return - c->return_mean;
  c->return_mean += delta / (double)c->tally_episodes;
  c->return_m2 += delta * (c->tally_return - c->return_mean);
  c->tally_successes += c->tally_success;
  c->tally_violations_sum += c->tally_violations;
  c->tally_steps += c->tally_len;
  c->tally_return = 0;
  c->tally_len = c->tally_violations = 0;
  c->tally_success = false;
}

/* The policy's observation: the robot's, then its past observations and last commands (nothing
 * when there is no history). */
static void augment(const frl_client_t *c, const float *obs, float *out) {
  memcpy(out, obs, sizeof(float) * (size_t)c->robot_obs_dim);
  frl_history_write(&c->hist, obs, out + c->robot_obs_dim);
}

void frl_client_reset(frl_client_t *c, const float *obs) {
  /* An episode abandoned midway must not chain into the next one's n-step returns, nor count
   * as an episode of the robot's tally. */
  if (c->mid_episode) c->gap_pending = true;
  c->mid_episode = false;
  c->tally_return = 0;
  c->tally_len = c->tally_violations = 0;
  c->tally_success = false;
  frl_history_reset(&c->hist);
  c->acted = false;
  bool ok = true;
  for (int i = 0; i < c->robot_obs_dim && ok; i++) ok = isfinite(obs[i]);
  if (ok) augment(c, obs, c->cur_obs);
  else c->gap_pending = true;
  c->have_cur = ok;
}

int frl_client_act(frl_client_t *c, const float *obs, float *action) {
  double now = frl_now();
  bool finite = frl_watchdog_observation(c->wd, obs, c->robot_obs_dim);
  check_watchdog(c, now);
  if (finite) {
    augment(c, obs, c->cur_obs);
    c->have_cur = true;
  } else {
    c->have_cur = false;
    c->gap_pending = true;
  }
  frl_shield_result_t r;
  if (frl_watchdog_safe(c->wd)) {
    frl_shield_safe_action(c->shield, obs, action, &r);
    c->safe_actions++;
    if (!c->discrete) frl_history_push(&c->hist, action);
    c->acted = true;
    return 1;
  }
  float a[FRL_ENV_MAX_DIM];
  pthread_mutex_lock(&c->policy_mu);
  int k = c->active;
  uint64_t version = c->policy_version[k];
  if (!c->discrete && version == 0 && c->cfg.explore && !c->fixed) {
    /* Before the first parameters, continuous actors explore uniformly (the usual warm-up),
     * here inside the shield. */
    for (int i = 0; i < c->act_dim; i++) a[i] = 2.0f * (float)frl_rng_uniform(&c->rng) - 1.0f;
  } else {
    frl_policy_act(c->policy[k], c->cur_obs, c->exploration, &c->rng, a);
  }
  pthread_mutex_unlock(&c->policy_mu);
  c->acted_version = version;
  if (c->discrete)
    action[0] = a[0];
  else
    frl_policy_scale(action, a, c->low, c->high, c->act_scale, c->act_dim);
  frl_shield_apply(c->shield, obs, action, &r);
  if (r.clipped) {
    c->clipped += r.clipped;
    push_event(c, FRL_SAFETY_CLIP, r.clipped, "action[%d] clipped to %g", r.first_clipped,
               (double)action[r.first_clipped]);
  }
  if (r.barrier) {
    c->barrier += r.barrier;
    const frl_joint_limit_t *j = &frl_shield_limits(c->shield)->joints[r.first_barrier];
    push_event(c, FRL_SAFETY_BARRIER, r.barrier, "joint %s at %g (limits %g..%g)", j->name,
               (double)obs[j->position], j->min, j->max);
  }
  /* The command joins the history as it leaves, as in simulation, where the history sits
   * outside any actuation delay: what is in flight is what the policy must see. */
  if (!c->discrete) frl_history_push(&c->hist, action);
  c->acted = true;
  return 0;
}

/* Robot units to the wire's normalized action, the inverse of frl_policy_scale with the
 * learner's --action-scale (which a policy file's own scale does not change: the learner reads
 * the wire with its setting). */
static void normalize_action(const frl_client_t *c, const float *in, float *out) {
  float scale = (float)c->cfg.action_scale;
  for (int i = 0; i < c->act_dim; i++) {
    float half = 0.5f * (c->high[i] - c->low[i]) * scale, mid = 0.5f * (c->low[i] + c->high[i]);
    float v = half > 0 ? (in[i] - mid) / half : 0.0f;
    out[i] = v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : v);
  }
}

int frl_client_record(frl_client_t *c, const float *obs, const float *action, float reward,
                      bool terminal, bool truncated, const frl_client_info_t *info) {
  tally_record(c, reward, terminal || truncated, info);
  /* A step nobody asked act() for (a demonstrator's) brings its command into the history here. */
  if (!c->acted && !c->discrete) frl_history_push(&c->hist, action);
  c->acted = false;
  /* The observation this step was taken from becomes the newest past one (as in simulation);
   * without a usable one the past starts again from the next. */
  frl_history_observe(&c->hist, c->have_cur ? c->cur_obs : NULL);
  bool ok = c->have_cur && isfinite(reward);
  for (int i = 0; i < c->robot_obs_dim && ok; i++) ok = isfinite(obs[i]);
  for (int i = 0; i < c->act_dim && ok; i++) ok = isfinite(action[i]);
  if (ok && c->discrete) ok = action[0] >= 0 && action[0] < (float)c->n_actions;
  bool obs_ok = true;
  for (int i = 0; i < c->robot_obs_dim && obs_ok; i++) obs_ok = isfinite(obs[i]);
  augment(c, obs, c->next_obs);
  obs = c->next_obs;
  if (!ok) {
    c->dropped_steps++;
    c->gap_pending = true;
    /* The chain resumes from this observation when it is usable. */
    c->have_cur = obs_ok && !terminal && !truncated;
    if (c->have_cur) memcpy(c->cur_obs, obs, sizeof(float) * (size_t)c->obs_dim);
    return 1;
  }
  int rc = 0;
  if (c->offline) {
    /* Nothing to ship: the step counts, and the tally above is the whole record. */
    c->gap_pending = false;
    c->mid_episode = !terminal && !truncated;
    c->steps++;
    c->have_cur = !terminal && !truncated;
    if (c->have_cur) memcpy(c->cur_obs, obs, sizeof(float) * (size_t)c->obs_dim);
    return 0;
  }
  uint64_t head = atomic_load_explicit(&c->ring_head, memory_order_relaxed);
  uint64_t tail = atomic_load_explicit(&c->ring_tail, memory_order_acquire);
  if (head - tail >= c->ring_cap) {
    atomic_fetch_add(&c->shed_steps, 1);
    c->gap_pending = true;
    rc = FRL_EFULL;
  } else {
    uint32_t slot = (uint32_t)(head % c->ring_cap);
    size_t od = (size_t)c->obs_dim;
    step_t *s = &c->ring[slot];
    bool demo = c->demo_default;
    if (info && info->demonstration == FRL_DEMO_YES) demo = true;
    if (info && info->demonstration == FRL_DEMO_NO) demo = false;
    *s = (step_t){.gap = c->gap_pending, .terminal = terminal, .truncated = truncated,
                  .success = info && info->success, .demo = demo,
                  .violations = info ? info->violations : 0, .reward = reward,
                  .version = c->acted_version};
    memcpy(c->ring_obs + slot * od, c->cur_obs, sizeof(float) * od);
    memcpy(c->ring_next + slot * od, obs, sizeof(float) * od);
    float *a = c->ring_act + (size_t)slot * (size_t)c->wire_act_dim;
    if (c->discrete) a[0] = floorf(action[0]);
    else normalize_action(c, action, a);
    atomic_store_explicit(&c->ring_head, head + 1, memory_order_release);
    c->gap_pending = false;
    c->mid_episode = !terminal && !truncated;
    c->steps++;
  }
  c->have_cur = !terminal && !truncated;
  if (c->have_cur) memcpy(c->cur_obs, obs, sizeof(float) * (size_t)c->obs_dim);
  return rc;
}

void frl_client_set_demonstration(frl_client_t *c, bool on) { c->demo_default = on; }

void frl_client_status(frl_client_t *c, frl_client_status_t *st) {
  double now = frl_now();
  check_watchdog(c, now);
  memset(st, 0, sizeof *st);
  double heard = ns_to_s(atomic_load(&c->heard_ns));
  uint64_t pn = atomic_load(&c->params_ns);
  st->offline = c->offline;
  st->broker_silence_s = c->offline ? 0 : now - heard;
  st->params_age_s = pn ? now - ns_to_s(pn) : -1;
  st->refused = atomic_load(&c->refused);
  st->connected = atomic_load(&c->welcomed) &&
                  (c->cfg.max_broker_silence_s <= 0 || st->broker_silence_s <= c->cfg.max_broker_silence_s);
  pthread_mutex_lock(&c->policy_mu);
  st->params_version = c->policy_version[c->active];
  pthread_mutex_unlock(&c->policy_mu);
  uint64_t latest = atomic_load(&c->latest_version);
  st->policy_lag = latest > st->params_version ? latest - st->params_version : 0;
  st->outbox = atomic_load(&c->outbox_depth);
  st->safe_mode = frl_watchdog_safe(c->wd);
  st->safe_causes = frl_watchdog_causes(c->wd);
  if (st->refused) {
    pthread_mutex_lock(&c->reason_mu);
    snprintf(st->reason, sizeof st->reason, "refused by the broker: %s", c->refusal);
    pthread_mutex_unlock(&c->reason_mu);
  } else {
    frl_watchdog_describe(st->safe_causes, st->reason, sizeof st->reason);
  }
  st->steps = c->steps;
  st->dropped_steps = c->dropped_steps;
  st->shed_steps = atomic_load(&c->shed_steps);
  st->shed_batches = atomic_load(&c->shed_batches);
  st->acked_batches = atomic_load(&c->acked_batches);
  st->clipped = c->clipped;
  st->barrier = c->barrier;
  st->safe_actions = c->safe_actions;
  st->episodes = c->tally_episodes;
  if (c->tally_episodes > 0) {
    st->mean_return = c->return_mean;
    st->std_return = sqrt(c->return_m2 / (double)c->tally_episodes);
    st->mean_length = (double)c->tally_steps / (double)c->tally_episodes;
  }
  st->successes = c->tally_successes;
  st->violations = c->tally_violations_sum;
}

int frl_client_obs_dim(const frl_client_t *c) { return c->robot_obs_dim; }
int frl_client_act_dim(const frl_client_t *c) { return c->act_dim; }
int frl_client_n_actions(const frl_client_t *c) { return c->n_actions; }

/* ---- network thread: batches ------------------------------------------------------------- */

/* Encodes the unsealed batch with the pending safety events and hands it to the outbox; a full
 * outbox sheds it (a robot never waits), counted. */
static void seal_batch(frl_client_t *c) {
  pthread_mutex_lock(&c->ev_mu);
  int n_ev = c->n_events;
  memcpy(c->sealing, c->events, sizeof(event_t) * (size_t)n_ev);
  c->n_events = 0;
  c->open_clip = c->open_barrier = -1;
  pthread_mutex_unlock(&c->ev_mu);
  if (c->count == 0 && c->n_episodes == 0 && n_ev == 0) return;
  for (int i = 0; i < n_ev; i++)
    c->wire_events[i] = (frl_safety_event_t){.kind = c->sealing[i].kind,
                                             .count = c->sealing[i].count,
                                             .time_ns = c->sealing[i].time_ns,
                                             .detail = c->sealing[i].detail};
  uint32_t n = (uint32_t)c->count;
  frl_experience_t x = {.actor = c->cfg.name,
                        .seq = c->seq + 1,
                        .count = n,
                        .obs_dim = (uint32_t)c->obs_dim,
                        .act_dim = (uint32_t)c->wire_act_dim,
                        .obs = n ? c->b_obs : NULL,
                        .action_index = n && c->discrete ? c->b_index : NULL,
                        .n_action_index = c->discrete ? n : 0,
                        .action = n && !c->discrete ? c->b_action : NULL,
                        .n_action = c->discrete ? 0 : n * (uint32_t)c->wire_act_dim,
                        .reward = n ? c->b_reward : NULL,
                        .discount = n ? c->b_discount : NULL,
                        .next_obs = n ? c->b_next : NULL,
                        .policy_version = n ? c->b_version : NULL,
                        .n_policy_version = n,
                        .n_episodes = (uint32_t)c->n_episodes,
                        .episodes_in = c->episodes,
                        .env_steps = c->batch_env_steps,
                        .demonstration = c->b_demo,
                        .n_safety = (uint32_t)n_ev,
                        .safety_in = c->wire_events};
  int rc = frl_msg_encode_experience(c->fb, &x);
  if (rc != 0) {
    frl_error("cannot encode a batch of %u transitions: %s", n, frl_strerror(rc));
    atomic_fetch_add(&c->shed_batches, 1);
  } else {
    size_t len;
    const void *data = frl_fb_builder_data(c->fb, &len);
    if (frl_outbox_push(c->outbox, c->seq + 1, data, len) == 0) {
      c->seq++;
    } else {
      uint64_t shed = atomic_fetch_add(&c->shed_batches, 1) + 1;
      if ((shed & (shed - 1)) == 0) /* 1, 2, 4, 8, ...: a lost broker must not flood the log */
        frl_warn("outbox full (%u batches unacknowledged): %llu batches shed so far",
                 frl_outbox_depth(c->outbox), (unsigned long long)shed);
    }
    atomic_store(&c->outbox_depth, frl_outbox_depth(c->outbox));
  }
  c->count = 0;
  c->n_episodes = 0;
  c->batch_env_steps = 0;
  c->b_started = 0;
}

static void on_transition(void *ctx, const frl_transition_t *t) {
  frl_client_t *c = ctx;
  meta_t m = {0};
  if (c->meta_len > 0) {
    m = c->meta[c->meta_head];
    c->meta_head = (c->meta_head + 1) % (c->cfg.n_step + 1);
    c->meta_len--;
  }
  if (c->count > 0 && (m.demo != c->b_demo || c->count >= c->cap)) seal_batch(c);
  if (c->count == 0) {
    c->b_demo = m.demo;
    if (c->b_started == 0) c->b_started = frl_now();
  }
  int i = c->count;
  size_t od = (size_t)c->obs_dim;
  memcpy(c->b_obs + (size_t)i * od, t->obs, sizeof(float) * od);
  memcpy(c->b_next + (size_t)i * od, t->next_obs, sizeof(float) * od);
  if (c->discrete) c->b_index[i] = (int32_t)t->action[0];
  else memcpy(c->b_action + (size_t)i * (size_t)c->act_dim, t->action, sizeof(float) * (size_t)c->act_dim);
  c->b_reward[i] = t->reward;
  c->b_discount[i] = t->discount;
  c->b_version[i] = m.version;
  c->count++;
}

static void take_step(frl_client_t *c, uint32_t slot) {
  const step_t *s = &c->ring[slot];
  size_t od = (size_t)c->obs_dim;
  if (s->gap) {
    frl_nstep_clear(c->ns);
    c->meta_len = 0;
    c->ep_broken = true; /* a partial episode's return would mislead the learning curve */
  }
  int window = c->cfg.n_step + 1;
  c->meta[(c->meta_head + c->meta_len) % window] = (meta_t){.version = s->version, .demo = s->demo};
  c->meta_len++;
  bool done = s->terminal || s->truncated;
  if (c->count > 0 && c->count + (done ? c->cfg.n_step : 1) > c->cap) seal_batch(c);
  frl_nstep_push(c->ns, c->ring_obs + slot * od, c->ring_act + (size_t)slot * (size_t)c->wire_act_dim,
                 s->reward, c->ring_next + slot * od, s->terminal, s->truncated, on_transition, c);
  c->env_steps++;
  c->batch_env_steps++;
  c->ep_return += s->reward;
  c->ep_len++;
  c->ep_violations += s->violations;
  c->ep_success |= s->success;
  if (done) {
    if (!c->ep_broken) {
      if (c->n_episodes == MAX_EPISODES_PER_BATCH) seal_batch(c);
      c->episodes[c->n_episodes++] = (frl_episode_stat_t){.episode_return = (float)c->ep_return,
                                                          .length = c->ep_len,
                                                          .success = c->ep_success,
                                                          .truncated = s->truncated && !s->terminal,
                                                          .violations = c->ep_violations,
                                                          .policy_version = s->version};
      if (c->b_started == 0) c->b_started = frl_now();
    }
    c->ep_return = 0;
    c->ep_len = 0;
    c->ep_violations = 0;
    c->ep_success = false;
    c->ep_broken = false;
  }
}

static void drain_ring(frl_client_t *c) {
  uint64_t tail = atomic_load_explicit(&c->ring_tail, memory_order_relaxed);
  uint64_t head = atomic_load_explicit(&c->ring_head, memory_order_acquire);
  for (; tail != head; tail++) {
    take_step(c, (uint32_t)(tail % c->ring_cap));
    atomic_store_explicit(&c->ring_tail, tail + 1, memory_order_release);
  }
}

/* ---- network thread: the broker ---------------------------------------------------------- */

static void send_hello(frl_client_t *c, double now) {
  frl_send_hello(c->sock, c->fb, FRL_ROLE_ACTOR, c->cfg.name, c->cfg.task, c->cfg.actor_index,
                 c->cfg.num_actors, (uint32_t)c->obs_dim, (uint32_t)c->wire_act_dim);
  c->last_hello = now;
}

static void send_heartbeat(frl_client_t *c, double now) {
  pthread_mutex_lock(&c->policy_mu);
  uint64_t version = c->policy_version[c->active];
  pthread_mutex_unlock(&c->policy_mu);
  frl_heartbeat_t h = {.name = c->cfg.name,
                       .role = FRL_ROLE_ACTOR,
                       .params_version = version,
                       .outbox = frl_outbox_depth(c->outbox),
                       .shed = atomic_load(&c->shed_batches),
                       .env_steps = c->env_steps,
                       .time_ns = frl_now_ns(),
                       .safe_mode = atomic_load(&c->safe_mode),
                       .estop = atomic_load(&c->estop)};
  if (frl_msg_encode_heartbeat(c->fb, &h) == 0) frl_send(c->sock, NULL, 0, c->fb);
  c->last_heartbeat = now;
}

static void raise_latest(frl_client_t *c, uint64_t v) {
  uint64_t cur = atomic_load(&c->latest_version);
  while (v > cur && !atomic_compare_exchange_weak(&c->latest_version, &cur, v)) {
  }
}

/* Verifies a parameter broadcast, fills the spare policy and swaps it in. */
static void apply_params(frl_client_t *c, const frl_params_t *p) {
  raise_latest(c, p->version);
  if (c->fixed) {
    /* The policy file is what this robot was told to run; the learner's newer parameters
     * are announced (policy lag) but never acted with. */
    if (!c->params_ignored)
      frl_info("Params v%llu not applied: acting with the policy file %s",
               (unsigned long long)p->version, c->policy_path);
    c->params_ignored = true;
    return;
  }
  int spare = 1 - c->active; /* only this thread changes active */
  if (p->version <= c->policy_version[c->active]) return;
  frl_policy_t *pol = c->policy[spare];
  size_t n = frl_policy_n_params(pol);
  if (p->n_data != n) {
    frl_error("Params v%llu: %u floats, this robot's %s network has %zu (check --algo, "
              "--hidden1/--hidden2 and --dueling match the learner); ignored",
              (unsigned long long)p->version, p->n_data, c->cfg.algo, n);
    return;
  }
  if (frl_fnv1a64(p->data, sizeof(float) * n, FRL_FNV_SEED) != p->checksum) {
    frl_error("Params v%llu: checksum mismatch; ignored", (unsigned long long)p->version);
    return;
  }
  int rc = p->n_obs_mean > 0 ? (p->n_obs_std == p->n_obs_mean
                                    ? frl_policy_set_normalizer(pol, p->obs_mean, p->obs_std, p->n_obs_mean)
                                    : FRL_EDIM)
                             : frl_policy_set_normalizer(pol, NULL, NULL, 0);
  if (rc != 0) {
    frl_error("Params v%llu: observation normalizer has %u/%u entries (obs_dim %d) or invalid "
              "values; ignored", (unsigned long long)p->version, p->n_obs_mean, p->n_obs_std,
              c->obs_dim);
    return;
  }
  memcpy(frl_policy_params(pol), p->data, sizeof(float) * n);
  pthread_mutex_lock(&c->policy_mu);
  c->policy_version[spare] = p->version;
  c->active = spare;
  pthread_mutex_unlock(&c->policy_mu);
  atomic_store(&c->params_version, p->version);
  atomic_store(&c->params_ns, frl_now_ns());
  if (c->policy_version[1 - spare] == 0) frl_info("first parameters: v%llu", (unsigned long long)p->version);
}

static void handle_message(frl_client_t *c, double now) {
  const frl_msg_t *m = &c->in.msg;
  c->last_heard = now;
  atomic_store(&c->heard_ns, frl_now_ns());
  switch (m->type) {
  case FRL_MSG_WELCOME:
    if (m->u.welcome.ok) {
      if (!atomic_load(&c->welcomed))
        frl_info("connected to the broker (params v%llu available)",
                 (unsigned long long)m->u.welcome.params_version);
      atomic_store(&c->welcomed, true);
      atomic_store(&c->refused, false);
      raise_latest(c, m->u.welcome.params_version);
      frl_outbox_mark_all_unsent(c->outbox);
      if (m->u.welcome.estop && !atomic_exchange(&c->estop, true)) {
        const char *reason = m->u.welcome.estop_reason ? m->u.welcome.estop_reason : "";
        frl_warn("E-STOP: %s", reason);
        push_event(c, FRL_SAFETY_ESTOP, 1, "%s", reason);
      }
    } else if (m->u.welcome.error && strncmp(m->u.welcome.error, FRL_WELCOME_HELLO_AGAIN,
                                             strlen(FRL_WELCOME_HELLO_AGAIN)) == 0) {
      atomic_store(&c->welcomed, false);
      if (now - c->last_hello > 0.2) send_hello(c, now);
    } else {
      const char *why = m->u.welcome.error ? m->u.welcome.error : "(no reason given)";
      pthread_mutex_lock(&c->reason_mu);
      snprintf(c->refusal, sizeof c->refusal, "%s", why);
      pthread_mutex_unlock(&c->reason_mu);
      atomic_store(&c->welcomed, false);
      atomic_store(&c->refused, true);
      if (now - c->last_refusal_log > 60) {
        frl_error("the broker refused this robot: %s (retrying every %.0f s)", why, REFUSED_RETRY_S);
        c->last_refusal_log = now;
      }
    }
    break;
  case FRL_MSG_ACK: {
    const frl_ack_t *k = &m->u.ack;
    if (k->status == FRL_ACK_OK || k->status == FRL_ACK_DUPLICATE) {
      if (frl_outbox_ack(c->outbox, k->seq) == 0) {
        atomic_fetch_add(&c->acked_batches, 1);
        if (c->ack_log) {
          fprintf(c->ack_log, "%llu %s\n", (unsigned long long)k->seq,
                  k->status == FRL_ACK_OK ? "ok" : "duplicate");
          fflush(c->ack_log);
        }
      }
    } else if (k->status == FRL_ACK_BUSY) {
      frl_outbox_busy(c->outbox, k->seq, now, c->cfg.resend_s);
    } else {
      c->rejected++;
      frl_error("batch %llu rejected: %s", (unsigned long long)k->seq, k->reason ? k->reason : "(no reason)");
      frl_outbox_ack(c->outbox, k->seq);
    }
    atomic_store(&c->outbox_depth, frl_outbox_depth(c->outbox));
    break;
  }
  case FRL_MSG_PARAMS:
    apply_params(c, &m->u.params);
    break;
  case FRL_MSG_CONTROL: {
    const char *reason = m->u.control.reason ? m->u.control.reason : "";
    if (m->u.control.command == FRL_CONTROL_ESTOP) {
      if (!atomic_exchange(&c->estop, true)) {
        frl_warn("E-STOP: %s", reason);
        push_event(c, FRL_SAFETY_ESTOP, 1, "%s", reason);
      }
    } else if (m->u.control.command == FRL_CONTROL_RESUME) {
      if (atomic_exchange(&c->estop, false)) {
        frl_info("e-stop lifted: %s", reason);
        push_event(c, FRL_SAFETY_RESUME, 1, "%s", reason);
      }
    } else if (m->u.control.command == FRL_CONTROL_SHUTDOWN) {
      /* A learner's run ended; a robot's process belongs to its host (systemd), so it keeps
       * serving and waits for the next learner. */
      frl_info("the learner ended its run (%s); waiting for a new one", reason);
    }
    break;
  }
  case FRL_MSG_HEARTBEAT:
    raise_latest(c, m->u.heartbeat.params_version);
    break;
  default:
    frl_warn("ignored an unexpected %s from the broker", frl_msg_type_name(m->type));
    break;
  }
}

static void service_network(frl_client_t *c, double now) {
  for (int i = 0; i < 1024; i++) {
    if (frl_recv_next(c->sock, false, &c->in, "the broker", NULL) <= 0) break;
    handle_message(c, now);
  }
  bool welcomed = atomic_load(&c->welcomed);
  if (welcomed && now - c->last_heard > c->cfg.peer_timeout_s) {
    frl_warn("broker silent for %.1f s; reconnecting", now - c->last_heard);
    atomic_store(&c->welcomed, false);
    welcomed = false;
  }
  if (!welcomed) {
    double retry = atomic_load(&c->refused) ? REFUSED_RETRY_S : c->cfg.heartbeat_s;
    if (now - c->last_hello > retry) send_hello(c, now);
    return;
  }
  if (now - c->last_heartbeat > c->cfg.heartbeat_s) send_heartbeat(c, now);
  uint64_t seq;
  const void *buf;
  size_t len;
  for (int i = 0; i < 64; i++) {
    if (frl_outbox_next_due(c->outbox, now, c->cfg.resend_s, &seq, &buf, &len) != 0) break;
    if (frl_send_raw(c->sock, NULL, 0, buf, len) != 0) {
      frl_outbox_defer(c->outbox, seq, now - c->cfg.resend_s + 0.05);
      break;
    }
  }
}

static void *net_main(void *arg) {
  frl_client_t *c = arg;
  send_hello(c, frl_now());
  while (!atomic_load(&c->stop)) {
    zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
    zmq_poll(&it, 1, POLL_MS);
    double now = frl_now();
    drain_ring(c);
    pthread_mutex_lock(&c->ev_mu);
    bool events = c->n_events > 0;
    pthread_mutex_unlock(&c->ev_mu);
    if (events && c->b_started == 0) c->b_started = now;
    /* A partial batch, a finished episode or a safety event waits at most two heartbeat
     * periods for more company, so that a slow robot's data and its safety events reach the
     * learner promptly. */
    if (c->b_started > 0 && now - c->b_started >= 2 * c->cfg.heartbeat_s) seal_batch(c);
    service_network(c, now);
  }
  /* What is recorded and sealed gets one more chance to leave. */
  drain_ring(c);
  seal_batch(c);
  service_network(c, frl_now());
  return NULL;
}

/* ---- construction ------------------------------------------------------------------------ */

static bool valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64) return false;
  for (; *s; s++)
    if (*s <= ' ' || *s > '~') return false;
  return true;
}

/* Settings when the caller gives none: as `fleetrl actor` would parse them, with the connect
 * arguments as flags. */
static int default_config(frl_config_t *cfg, const char *endpoint, const char *name,
                          const char *limits, const char *task, char *err, size_t errlen) {
  char *argv[8];
  int argc = 0;
  char a_ep[200], a_name[100], a_lim[300], a_task[100];
  if (endpoint) snprintf(a_ep, sizeof a_ep, "--actor-endpoint=%s", endpoint), argv[argc++] = a_ep;
  if (name) snprintf(a_name, sizeof a_name, "--name=%s", name), argv[argc++] = a_name;
  if (limits) snprintf(a_lim, sizeof a_lim, "--limits=%s", limits), argv[argc++] = a_lim;
  if (task) snprintf(a_task, sizeof a_task, "--task=%s", task), argv[argc++] = a_task;
  char msg[400] = "";
  FILE *ef = fmemopen(msg, sizeof msg - 1, "w");
  FILE *of = fopen("/dev/null", "w");
  int rc = frl_config_parse(cfg, FRL_CFG_ACTOR | FRL_CFG_ROBOT, argc, argv, of ? of : stderr,
                            ef ? ef : stderr);
  if (ef) fclose(ef);
  if (of) fclose(of);
  if (rc != 0) {
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n') msg[--n] = '\0';
    snprintf(err, errlen, "%s", msg[0] ? msg : "invalid settings");
    return FRL_EUSAGE;
  }
  return 0;
}

static int set_field(char *dst, size_t cap, const char *v, const char *what, char *err, size_t errlen) {
  if (!v) return 0;
  if (strlen(v) >= cap) {
    snprintf(err, errlen, "%s: %zu characters, the limit is %zu", what, strlen(v), cap - 1);
    return FRL_EUSAGE;
  }
  memcpy(dst, v, strlen(v) + 1);
  return 0;
}

/* Loads the policy file and checks that it is for the robot's task: the same task name,
 * environment and dimensions (any hidden sizes: the file carries its network's shape). On
 * success the arrays are the caller's to free. */
static int load_policy_file(const char *path, const frl_config_t *cfg, const frl_env_spec_t *spec,
                            frl_policy_info_t *info, float **params, size_t *n, float **mean,
                            float **std, char *err, size_t errlen) {
  char why[600];
  int rc = frl_policy_load(path, info, params, n, mean, std, why, sizeof why);
  if (rc != 0) {
    snprintf(err, errlen, "--policy: %s", why);
    return rc;
  }
  const frl_policy_shape_t *s = &info->shape;
  bool discrete = s->algo == FRL_ALGO_DQN;
  /* A policy trained with a history sees the robot's observation and then the history. */
  bool fits = strcmp(info->task, cfg->task) == 0 && strcmp(info->env, cfg->env) == 0 &&
              s->obs_dim == (info->obs_history + 1) * spec->obs_dim +
                                info->action_history * spec->act_dim &&
              (discrete ? s->n_actions > 0 && s->n_actions == spec->n_actions
                        : spec->n_actions == 0 && s->act_dim == spec->act_dim);
  if (fits) return 0;
  char hist[96] = "";
  if (info->action_history > 0 || info->obs_history > 0)
    snprintf(hist, sizeof hist, " with the last %d commands and %d observations",
             info->action_history, info->obs_history);
  snprintf(err, errlen,
           "--policy: %s is a %s policy for task %s (env %s: obs %d%s, %d %s); this robot's task "
           "is %s (env %s: obs %d, %d %s)",
           path, frl_algo_name(s->algo), info->task, info->env, s->obs_dim, hist,
           discrete ? s->n_actions : s->act_dim, discrete ? "actions" : "action dims", cfg->task,
           cfg->env, spec->obs_dim, spec->n_actions > 0 ? spec->n_actions : spec->act_dim,
           spec->n_actions > 0 ? "actions" : "action dims");
  free(*params);
  free(*mean);
  free(*std);
  *params = *mean = *std = NULL;
  return FRL_EDIM;
}

int frl_client_connect(frl_client_t **out, const char *endpoint, const char *name,
                       const char *limits_path, const char *task,
                       const frl_client_options_t *opts, char *err, size_t errlen) {
  frl_client_t *c = frl_xcalloc(1, sizeof *c);
  pthread_mutex_init(&c->policy_mu, NULL);
  pthread_mutex_init(&c->ev_mu, NULL);
  pthread_mutex_init(&c->reason_mu, NULL);
  c->open_clip = c->open_barrier = -1;
  frl_env_t *env = NULL;
  float *file_params = NULL, *file_mean = NULL, *file_std = NULL;
  size_t file_n = 0;
  frl_policy_info_t file_info = {0};
  int rc;
  if (opts && opts->cfg) {
    c->cfg = *opts->cfg;
    if ((rc = set_field(c->cfg.actor_endpoint, sizeof c->cfg.actor_endpoint, endpoint, "endpoint", err, errlen)) ||
        (rc = set_field(c->cfg.name, sizeof c->cfg.name, name, "name", err, errlen)) ||
        (rc = set_field(c->cfg.limits, sizeof c->cfg.limits, limits_path, "limits", err, errlen)) ||
        (rc = set_field(c->cfg.task, sizeof c->cfg.task, task, "task", err, errlen)))
      goto fail;
  } else if ((rc = default_config(&c->cfg, endpoint, name, limits_path, task, err, errlen)) != 0) {
    goto fail;
  }
  c->demo_default = (opts && opts->demonstration) || c->cfg.demonstration;
  const frl_config_t *cfg = &c->cfg;
  const char *policy_path = opts && opts->policy_path ? opts->policy_path : cfg->policy_path;
  if ((rc = set_field(c->policy_path, sizeof c->policy_path, policy_path, "policy", err, errlen)) != 0)
    goto fail;
  c->fixed = c->policy_path[0] != '\0';
  /* With a policy file only an explicit endpoint connects: the settings' default endpoint
   * must not quietly turn an evaluation into a robot waiting in safe mode for a broker. */
  c->offline = c->fixed && endpoint == NULL;
  if (!valid_name(cfg->name)) {
    snprintf(err, errlen, "name '%.64s': must be 1-64 printable characters without spaces", cfg->name);
    rc = FRL_EUSAGE;
    goto fail;
  }
  if (!c->offline && !cfg->actor_endpoint[0]) {
    snprintf(err, errlen, "endpoint: empty (e.g. tcp://broker-host:5555)");
    rc = FRL_EUSAGE;
    goto fail;
  }
  uint64_t seed = frl_fnv1a64(cfg->name, strlen(cfg->name), cfg->seed * 1000003ULL) ^ frl_now_ns();
  char why[400];
  rc = frl_env_new(&env, cfg->env, seed, why, sizeof why);
  if (rc != 0) {
    snprintf(err, errlen, "task %s: environment: %s", cfg->task, why);
    goto fail;
  }
  const frl_env_spec_t *spec = frl_env_spec(env);
  frl_policy_shape_t shape;
  if (c->fixed) {
    rc = load_policy_file(c->policy_path, cfg, spec, &file_info, &file_params, &file_n, &file_mean,
                          &file_std, err, errlen);
    if (rc != 0) goto fail;
    shape = file_info.shape;
    c->act_scale = file_info.action_scale;
  }
  /* The file's history when acting with a file, else the settings' (the learner's). */
  int history = c->fixed ? file_info.action_history : cfg->action_history;
  int obs_history = c->fixed ? file_info.obs_history : cfg->obs_history;
  if ((rc = frl_history_init(&c->hist, history, obs_history, spec, why, sizeof why)) != 0) {
    snprintf(err, errlen, "task %s: %s", cfg->task, why);
    goto fail;
  }
  if (!c->fixed) {
    frl_env_spec_t seen = *spec;
    seen.obs_dim += frl_history_dim(&c->hist);
    if ((rc = frl_policy_shape_from_config(cfg, &seen, &shape, why, sizeof why)) != 0) {
      snprintf(err, errlen, "%s", why);
      goto fail;
    }
    c->act_scale = (float)cfg->action_scale;
  }
  c->robot_obs_dim = spec->obs_dim;
  c->obs_dim = spec->obs_dim + frl_history_dim(&c->hist);
  c->discrete = shape.algo == FRL_ALGO_DQN;
  c->n_actions = spec->n_actions;
  c->act_dim = c->discrete ? 1 : spec->act_dim;
  c->wire_act_dim = c->act_dim;
  memcpy(c->low, spec->act_low, sizeof c->low);
  memcpy(c->high, spec->act_high, sizeof c->high);
  frl_env_destroy(&env);
  frl_rng_seed(&c->rng, seed ^ 0x9e3779b97f4a7c15ULL);
  if (c->fixed)
    c->exploration = 0.0; /* greedy Q, the mean action, no noise: what evaluation measures */
  else if (shape.algo == FRL_ALGO_DQN)
    c->exploration = cfg->explore ? frl_actor_epsilon(cfg->actor_index, cfg->num_actors,
                                                      cfg->eps_base, cfg->eps_alpha)
                                  : 0.0;
  else if (shape.algo == FRL_ALGO_SAC)
    c->exploration = cfg->explore ? 1.0 : 0.0;
  else
    c->exploration = cfg->explore ? cfg->explore_noise : 0.0;

  frl_limits_t *lim = frl_xmalloc(sizeof *lim);
  frl_limits_init(lim);
  if (cfg->limits[0] && (rc = frl_limits_load(cfg->limits, lim, err, errlen)) != 0) {
    free(lim);
    if (rc != FRL_EUSAGE) rc = FRL_EUSAGE;
    goto fail;
  }
  rc = frl_shield_new(&c->shield, lim, c->robot_obs_dim, c->act_dim, c->discrete ? c->n_actions : 0,
                      c->discrete ? NULL : c->low, c->discrete ? NULL : c->high, why, sizeof why);
  free(lim);
  if (rc != 0) {
    snprintf(err, errlen, "%s: %s", cfg->limits[0] ? cfg->limits : "limits", why);
    goto fail;
  }
  /* Offline there is no broker to fall silent; a policy file never ages (it is the policy). */
  frl_watchdog_limits_t wl = {.max_broker_silence_s = c->offline ? 0 : cfg->max_broker_silence_s,
                              .max_params_age_s = c->fixed ? 0 : cfg->max_params_age_s};
  c->wd = frl_watchdog_new(&wl, frl_now());
  if (!c->wd) {
    snprintf(err, errlen, "--max-broker-silence %g / --max-params-age %g must be >= 0",
             cfg->max_broker_silence_s, cfg->max_params_age_s);
    rc = FRL_EUSAGE;
    goto fail;
  }
  atomic_store(&c->heard_ns, frl_now_ns());
  if (c->fixed) {
    /* One policy: nothing is ever swapped in. */
    c->policy[0] = frl_policy_new(&shape, 1, &c->rng);
    if (!c->policy[0] || frl_policy_n_params(c->policy[0]) != file_n) {
      snprintf(err, errlen, "--policy: cannot build the %s network of %s (see the log)",
               frl_algo_name(shape.algo), c->policy_path);
      rc = FRL_ECORRUPT;
      goto fail;
    }
    memcpy(frl_policy_params(c->policy[0]), file_params, sizeof(float) * file_n);
    if (file_mean &&
        frl_policy_set_normalizer(c->policy[0], file_mean, file_std, (size_t)c->obs_dim) != 0) {
      snprintf(err, errlen, "--policy: %s: the observation normalizer has a non-finite mean or a "
               "std that is not > 0", c->policy_path);
      rc = FRL_ECORRUPT;
      goto fail;
    }
    c->policy_version[0] = file_info.params_version;
    c->acted_version = file_info.params_version;
  } else {
    for (int k = 0; k < 2; k++) {
      c->policy[k] = frl_policy_new(&shape, 1, &c->rng);
      if (!c->policy[k]) {
        snprintf(err, errlen, "cannot build the %s policy network (see the log)", cfg->algo);
        rc = FRL_EUSAGE;
        goto fail;
      }
    }
    /* Both copies start identical, so a robot acts the same whichever is active. */
    memcpy(frl_policy_params(c->policy[1]), frl_policy_params(c->policy[0]),
           sizeof(float) * frl_policy_n_params(c->policy[0]));
  }
  free(file_params);
  free(file_mean);
  free(file_std);
  file_params = file_mean = file_std = NULL;

  size_t od = (size_t)c->obs_dim, ad = (size_t)c->wire_act_dim;
  c->cur_obs = frl_xcalloc(od, sizeof(float));
  c->next_obs = frl_xcalloc(od, sizeof(float));
  frl_inbox_init(&c->in);
  char desc[256];
  frl_shield_describe(c->shield, desc, sizeof desc);
  if (c->offline) {
    frl_info("robot %s: task %s (obs %d, act %d), OFFLINE with the policy file %s (%s %d-%d, params "
             "v%llu after %llu updates, %s, action scale %g); shield: %s", cfg->name, cfg->task,
             c->obs_dim, c->act_dim, c->policy_path, frl_algo_name(shape.algo), shape.hidden1,
             shape.hidden2, (unsigned long long)file_info.params_version,
             (unsigned long long)file_info.updates,
             frl_policy_has_normalizer(c->policy[0]) ? "normalized observations" : "raw observations",
             (double)c->act_scale, desc);
    *out = c;
    return 0;
  }

  size_t step_bytes = sizeof(step_t) + sizeof(float) * (2 * od + ad);
  size_t cap = RING_MAX_BYTES / step_bytes;
  c->ring_cap = (uint32_t)FRL_MAX((size_t)64, FRL_MIN((size_t)RING_MAX_STEPS, cap));
  c->ring = frl_xcalloc(c->ring_cap, sizeof *c->ring);
  c->ring_obs = frl_xcalloc((size_t)c->ring_cap * od, sizeof(float));
  c->ring_next = frl_xcalloc((size_t)c->ring_cap * od, sizeof(float));
  c->ring_act = frl_xcalloc((size_t)c->ring_cap * ad, sizeof(float));

  c->cap = cfg->batch_transitions;
  c->ns = frl_nstep_new(cfg->n_step, (float)cfg->gamma, c->obs_dim, c->wire_act_dim);
  c->outbox = frl_outbox_new((uint32_t)cfg->outbox_batches, (size_t)256 << 20);
  if (!c->ns || !c->outbox) {
    snprintf(err, errlen, "--n-step %d / --outbox %d out of range", cfg->n_step, cfg->outbox_batches);
    rc = FRL_EUSAGE;
    goto fail;
  }
  c->meta = frl_xcalloc((size_t)cfg->n_step + 1, sizeof *c->meta);
  c->b_obs = frl_xcalloc((size_t)c->cap * od, sizeof(float));
  c->b_next = frl_xcalloc((size_t)c->cap * od, sizeof(float));
  c->b_action = frl_xcalloc((size_t)c->cap * ad, sizeof(float));
  c->b_index = frl_xcalloc((size_t)c->cap, sizeof(int32_t));
  c->b_reward = frl_xcalloc((size_t)c->cap, sizeof(float));
  c->b_discount = frl_xcalloc((size_t)c->cap, sizeof(float));
  c->b_version = frl_xcalloc((size_t)c->cap, sizeof(uint64_t));
  c->fb = frl_fb_builder_new(1 << 16);
  if (cfg->ack_log[0] && !(c->ack_log = fopen(cfg->ack_log, "a"))) {
    rc = -errno;
    snprintf(err, errlen, "--ack-log: cannot open %s: %s", cfg->ack_log, strerror(-rc));
    goto fail;
  }
  c->ctx = zmq_ctx_new();
  c->sock = frl_socket_dealer(c->ctx, cfg->actor_endpoint, cfg->name);
  if (!c->sock) {
    rc = -errno;
    snprintf(err, errlen, "endpoint: cannot connect to %s: %s", cfg->actor_endpoint, zmq_strerror(-rc));
    goto fail;
  }
  /* (actor, seq) stays unique across restarts of a robot: sequences start at the start time in
   * microseconds, as a simulated actor's do. */
  c->seq = (uint64_t)(frl_wall() * 1e6);
  c->last_heard = frl_now();
  if ((rc = -pthread_create(&c->thread, NULL, net_main, c)) != 0) {
    snprintf(err, errlen, "cannot start the network thread: %s", strerror(-rc));
    goto fail;
  }
  c->thread_started = true;
  if (c->fixed)
    frl_info("robot %s: task %s (obs %d, act %d), broker %s, acting with the policy file %s (%s "
             "%d-%d, params v%llu; the learner's parameters are not applied); shield: %s; safe "
             "mode after %g s of broker silence", cfg->name, cfg->task, c->obs_dim, c->act_dim,
             cfg->actor_endpoint, c->policy_path, frl_algo_name(shape.algo), shape.hidden1,
             shape.hidden2, (unsigned long long)file_info.params_version, desc,
             cfg->max_broker_silence_s);
  else
    frl_info("robot %s: task %s (%s, obs %d, act %d), broker %s; shield: %s; safe mode after %g s "
             "of broker silence%s", cfg->name, cfg->task, cfg->algo, c->obs_dim, c->act_dim,
             cfg->actor_endpoint, desc, cfg->max_broker_silence_s,
             cfg->max_params_age_s > 0 ? " or stale parameters" : "");
  *out = c;
  return 0;
fail:
  free(file_params);
  free(file_mean);
  free(file_std);
  frl_env_destroy(&env);
  frl_client_close(&c);
  return rc;
}

void frl_client_close(frl_client_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_client_t *c = *self_p;
  if (c->thread_started) {
    atomic_store(&c->stop, true);
    pthread_join(c->thread, NULL);
  }
  if (c->sock) zmq_close(c->sock);
  if (c->ctx) zmq_ctx_term(c->ctx);
  if (c->ack_log) fclose(c->ack_log);
  frl_fb_builder_destroy(&c->fb);
  frl_inbox_free(&c->in);
  free(c->meta);
  free(c->b_obs);
  free(c->b_next);
  free(c->b_action);
  free(c->b_index);
  free(c->b_reward);
  free(c->b_discount);
  free(c->b_version);
  frl_outbox_destroy(&c->outbox);
  frl_nstep_destroy(&c->ns);
  free(c->ring);
  free(c->ring_obs);
  free(c->ring_next);
  free(c->ring_act);
  free(c->cur_obs);
  free(c->next_obs);
  frl_policy_destroy(&c->policy[0]);
  frl_policy_destroy(&c->policy[1]);
  frl_watchdog_destroy(&c->wd);
  frl_shield_destroy(&c->shield);
  pthread_mutex_destroy(&c->policy_mu);
  pthread_mutex_destroy(&c->ev_mu);
  pthread_mutex_destroy(&c->reason_mu);
  free(c);
  *self_p = NULL;
}
