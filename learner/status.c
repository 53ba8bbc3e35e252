/* status.c: the learner's /metrics, status page and /api/status. Per-actor figures and the
 * learning curve are kept here, bounded: at most MAX_ACTORS actors by name (later ones are
 * pooled as "_other"), and curves that halve their resolution when full, so a week-long run
 * shows its whole history in the same memory as a minute-long one. */
#include "status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

#define MAX_ACTORS 1024
#define OTHER_ACTORS "_other"
#define CURVE_POINTS 2048
#define EVAL_POINTS 512
/* Per-actor rates are measured over windows of at least this long. */
#define RATE_WINDOW_S 2.0
#define N_SAFETY (FRL_SAFETY_KIND_MAX + 2) /* the kinds, then "unknown" */

typedef struct {
  char name[FRL_MSG_MAX_STRING + 1];
  uint64_t hash;
  uint64_t batches, transitions, env_steps, episodes, successes, violations;
  uint64_t rejected; /* batches refused as invalid for the task */
  char last_rejection[FRL_MSG_MAX_STRING + 1]; /* the reason the last of them was refused for */
  double recent_return; /* exponential mean over about 20 episodes */
  double lag;           /* exponential mean over transitions, in parameter versions */
  double last_heard;
  /* rate window: steps at t0 (current window start) and t1 (the previous one) */
  double t0, t1, rate;
  uint64_t steps0, steps1;
} actor_t;

/* A curve that keeps every stride-th point and halves itself when full. */
typedef struct {
  double (*p)[3]; /* x, y, and a third value (the eval's std) */
  int n, cap;
  uint64_t stride, seen;
} curve_t;

/* Metric families, registered once; the table below names them. */
enum {
  M_ENV_STEPS, M_INSERTED, M_DUPLICATES, M_REJECTED, M_SAMPLES, M_UPDATES, M_SKIPPED,
  M_EPISODES, M_SUCCESSES, M_VIOLATIONS, M_SAFETY, M_EP_LENGTH, M_LOSS, M_MEAN_Q,
  M_ACTOR_LOSS, M_ALPHA, M_ENTROPY,
  M_RECENT_RETURN, M_EVAL_RETURN, M_EVAL_BEST, M_EVAL_SUCCESS, M_EVALS, M_LAG, M_PARAMS,
  M_ENV_RATE, M_UPD_RATE, M_INSERT_RATE, M_SPI, M_BETA, M_REPLAY_SIZE, M_REPLAY_CAP,
  M_WAL_PAGES, M_WAL_PAGES_MAX, M_WAL_RESTARTS,
  M_PRIORITY_MAX, M_PRIORITY_SUM, M_PRIORITY_MIN, M_DEMO_SIZE, M_CONNECTED, M_STORE_FAILING, M_SOLVED, M_START_TIME,
  M_A_TRANSITIONS, M_A_BATCHES, M_A_ENV_STEPS, M_A_EPISODES, M_A_SUCCESSES, M_A_VIOLATIONS,
  M_A_RETURN, M_A_LAG, M_A_LAST_HEARD, M_A_RATE, M_A_REJECTED,
  M_HTTP_REQUESTS, M_HTTP_BAD, M_HTTP_REFUSED,
  M_COUNT
};

enum { NO_LABEL, ACTOR_LABEL, KIND_LABEL, OUTCOME_LABEL };

static const struct {
  const char *name;
  frl_metric_type_t type;
  int label;
  const char *help;
} g_defs[M_COUNT] = {
  [M_ENV_STEPS] = {"fleetrl_learner_env_steps_total", FRL_METRIC_COUNTER, NO_LABEL,
                   "Environment steps in the experience stored."},
  [M_INSERTED] = {"fleetrl_learner_inserted_transitions_total", FRL_METRIC_COUNTER, NO_LABEL,
                  "Transitions stored in the replay."},
  [M_DUPLICATES] = {"fleetrl_learner_duplicate_batches_total", FRL_METRIC_COUNTER, NO_LABEL,
                    "Resent batches already stored, acknowledged without a second copy."},
  [M_REJECTED] = {"fleetrl_learner_rejected_batches_total", FRL_METRIC_COUNTER, NO_LABEL,
                  "Batches refused as invalid for the task."},
  [M_SAMPLES] = {"fleetrl_learner_sampled_transitions_total", FRL_METRIC_COUNTER, NO_LABEL,
                 "Transitions drawn from the replay for updates."},
  [M_UPDATES] = {"fleetrl_learner_updates_total", FRL_METRIC_COUNTER, NO_LABEL,
                 "Gradient updates applied."},
  [M_SKIPPED] = {"fleetrl_learner_skipped_updates_total", FRL_METRIC_COUNTER, NO_LABEL,
                 "Updates skipped for a non-finite loss or gradient."},
  [M_EPISODES] = {"fleetrl_learner_episodes_total", FRL_METRIC_COUNTER, NO_LABEL,
                  "Training episodes the actors finished."},
  [M_SUCCESSES] = {"fleetrl_learner_episode_successes_total", FRL_METRIC_COUNTER, NO_LABEL,
                   "Training episodes that reached the task's success condition."},
  [M_VIOLATIONS] = {"fleetrl_learner_safety_violations_total", FRL_METRIC_COUNTER, NO_LABEL,
                    "Safety violations counted in finished training episodes."},
  [M_SAFETY] = {"fleetrl_learner_safety_events_total", FRL_METRIC_COUNTER, KIND_LABEL,
                "Safety events the actors reported, by kind."},
  [M_EP_LENGTH] = {"fleetrl_learner_episode_length_steps", FRL_METRIC_HISTOGRAM, NO_LABEL,
                   "Length of finished training episodes."},
  [M_LOSS] = {"fleetrl_learner_loss", FRL_METRIC_GAUGE, NO_LABEL,
              "Loss of the last update (critic loss for SAC and TD3)."},
  [M_MEAN_Q] = {"fleetrl_learner_mean_q", FRL_METRIC_GAUGE, NO_LABEL,
                "Mean Q value of the last update's batch."},
  [M_ACTOR_LOSS] = {"fleetrl_learner_actor_loss", FRL_METRIC_GAUGE, NO_LABEL,
                    "Actor loss of the last SAC or TD3 update (NaN for DQN)."},
  [M_ALPHA] = {"fleetrl_learner_sac_alpha", FRL_METRIC_GAUGE, NO_LABEL,
               "SAC's entropy temperature after the last update (NaN for other algorithms)."},
  [M_ENTROPY] = {"fleetrl_learner_sac_entropy", FRL_METRIC_GAUGE, NO_LABEL,
                 "SAC's policy entropy estimate on the last batch, nats (NaN for others)."},
  [M_RECENT_RETURN] = {"fleetrl_learner_recent_return", FRL_METRIC_GAUGE, NO_LABEL,
                       "Mean return of the last 100 training episodes (NaN before any)."},
  [M_EVAL_RETURN] = {"fleetrl_learner_eval_return", FRL_METRIC_GAUGE, NO_LABEL,
                     "Mean return of the last greedy evaluation (NaN before any)."},
  [M_EVAL_BEST] = {"fleetrl_learner_eval_best_return", FRL_METRIC_GAUGE, NO_LABEL,
                   "Mean return of the best evaluation so far (NaN before any)."},
  [M_EVAL_SUCCESS] = {"fleetrl_learner_eval_success_ratio", FRL_METRIC_GAUGE, NO_LABEL,
                      "Success rate of the last evaluation (NaN before any)."},
  [M_EVALS] = {"fleetrl_learner_evaluations_total", FRL_METRIC_COUNTER, NO_LABEL,
               "Evaluations run."},
  [M_LAG] = {"fleetrl_learner_policy_lag_versions", FRL_METRIC_GAUGE, NO_LABEL,
             "Mean age of the policy that acted, in parameter versions (exponential mean)."},
  [M_PARAMS] = {"fleetrl_learner_params_version", FRL_METRIC_GAUGE, NO_LABEL,
                "Version of the parameters last published."},
  [M_ENV_RATE] = {"fleetrl_learner_env_steps_per_second", FRL_METRIC_GAUGE, NO_LABEL,
                  "Environment steps ingested per second (last second)."},
  [M_UPD_RATE] = {"fleetrl_learner_updates_per_second", FRL_METRIC_GAUGE, NO_LABEL,
                  "Updates per second (last second)."},
  [M_INSERT_RATE] = {"fleetrl_learner_inserted_transitions_per_second", FRL_METRIC_GAUGE,
                     NO_LABEL, "Transitions stored per second (over the last few seconds)."},
  [M_SPI] = {"fleetrl_learner_samples_per_insert", FRL_METRIC_GAUGE, NO_LABEL,
             "The rate limiter's samples-per-insert ratio."},
  [M_BETA] = {"fleetrl_learner_importance_beta", FRL_METRIC_GAUGE, NO_LABEL,
              "Importance-sampling exponent beta of prioritized replay."},
  [M_REPLAY_SIZE] = {"fleetrl_replay_items", FRL_METRIC_GAUGE, NO_LABEL,
                     "Transitions in the replay."},
  [M_WAL_PAGES] = {"fleetrl_store_wal_pages", FRL_METRIC_GAUGE, NO_LABEL,
                   "Pages in the replay store's WAL after the latest commit."},
  [M_WAL_PAGES_MAX] = {"fleetrl_store_wal_pages_max", FRL_METRIC_GAUGE, NO_LABEL,
                       "The most pages the WAL has held since the learner started."},
  [M_WAL_RESTARTS] = {"fleetrl_store_wal_restarts_total", FRL_METRIC_COUNTER, OUTCOME_LABEL,
                      "Attempts to restart the WAL for reuse, by outcome: done, or given_up "
                      "because a reader stayed longer than the wait."},
  [M_REPLAY_CAP] = {"fleetrl_replay_capacity_items", FRL_METRIC_GAUGE, NO_LABEL,
                    "Replay capacity (--capacity)."},
  [M_PRIORITY_MAX] = {"fleetrl_replay_priority_max", FRL_METRIC_GAUGE, NO_LABEL,
                      "Largest priority assigned so far; new items without one enter at it."},
  [M_PRIORITY_SUM] = {"fleetrl_replay_priority_mass", FRL_METRIC_GAUGE, NO_LABEL,
                      "Total priority mass held (the sum of p, the sum-tree's root)."},
  [M_PRIORITY_MIN] = {"fleetrl_replay_priority_min", FRL_METRIC_GAUGE, NO_LABEL,
                      "Smallest priority held (the min-tree's root)."},
  [M_DEMO_SIZE] = {"fleetrl_replay_demonstration_items", FRL_METRIC_GAUGE, NO_LABEL,
                   "Demonstration transitions held in their own replay slots."},
  [M_CONNECTED] = {"fleetrl_learner_broker_connected", FRL_METRIC_GAUGE, NO_LABEL,
                   "1 while the broker session is up, else 0."},
  [M_STORE_FAILING] = {"fleetrl_learner_store_failing", FRL_METRIC_GAUGE, NO_LABEL,
                       "1 while the replay store refuses writes (ingest paused), else 0."},
  [M_SOLVED] = {"fleetrl_learner_solved", FRL_METRIC_GAUGE, NO_LABEL,
                "1 once an evaluation reached --solve-return, else 0."},
  [M_START_TIME] = {"fleetrl_learner_start_time_seconds", FRL_METRIC_GAUGE, NO_LABEL,
                    "Start of this learner process, Unix seconds."},
  [M_A_TRANSITIONS] = {"fleetrl_learner_actor_inserted_transitions_total", FRL_METRIC_COUNTER,
                       ACTOR_LABEL, "Transitions of this actor stored."},
  [M_A_BATCHES] = {"fleetrl_learner_actor_batches_total", FRL_METRIC_COUNTER, ACTOR_LABEL,
                   "Batches of this actor stored."},
  [M_A_ENV_STEPS] = {"fleetrl_learner_actor_env_steps_total", FRL_METRIC_COUNTER, ACTOR_LABEL,
                     "Environment steps of this actor's stored experience."},
  [M_A_EPISODES] = {"fleetrl_learner_actor_episodes_total", FRL_METRIC_COUNTER, ACTOR_LABEL,
                    "Training episodes this actor finished."},
  [M_A_SUCCESSES] = {"fleetrl_learner_actor_episode_successes_total", FRL_METRIC_COUNTER,
                     ACTOR_LABEL, "Successful training episodes of this actor."},
  [M_A_VIOLATIONS] = {"fleetrl_learner_actor_safety_violations_total", FRL_METRIC_COUNTER,
                      ACTOR_LABEL, "Safety violations in this actor's finished episodes."},
  [M_A_RETURN] = {"fleetrl_learner_actor_recent_return", FRL_METRIC_GAUGE, ACTOR_LABEL,
                  "Exponential mean of this actor's episode returns (about 20 episodes)."},
  [M_A_LAG] = {"fleetrl_learner_actor_policy_lag_versions", FRL_METRIC_GAUGE, ACTOR_LABEL,
               "Mean age of the policy this actor acted with, in parameter versions."},
  [M_A_LAST_HEARD] = {"fleetrl_learner_actor_last_heard_seconds", FRL_METRIC_GAUGE, ACTOR_LABEL,
                      "Seconds since a batch of this actor was stored."},
  [M_A_RATE] = {"fleetrl_learner_actor_env_steps_per_second", FRL_METRIC_GAUGE, ACTOR_LABEL,
                "Environment steps of this actor stored per second (last few seconds)."},
  [M_A_REJECTED] = {"fleetrl_learner_actor_rejected_batches_total", FRL_METRIC_COUNTER,
                    ACTOR_LABEL, "Batches of this actor refused as invalid for the task."},
  [M_HTTP_REQUESTS] = {"fleetrl_http_requests_total", FRL_METRIC_COUNTER, NO_LABEL,
                       "HTTP requests answered by a page."},
  [M_HTTP_BAD] = {"fleetrl_http_bad_requests_total", FRL_METRIC_COUNTER, NO_LABEL,
                  "HTTP requests refused as malformed, too large, too slow or not GET/HEAD."},
  [M_HTTP_REFUSED] = {"fleetrl_http_refused_connections_total", FRL_METRIC_COUNTER, NO_LABEL,
                      "HTTP connections refused over the connection limit."},
};

struct frl_status {
  const frl_config_t *cfg;
  frl_status_fill_fn fill;
  void *arg;
  frl_http_server_t *http;
  char addr[FRL_HTTP_ADDR_MAX];
  frl_metrics_t *metrics;
  int ids[M_COUNT];
  actor_t *actors;
  int n_actors;
  curve_t episodes, evals;
  uint64_t episodes_seen, successes, violations, safety[N_SAFETY];
  double started_wall, started;
  /* inserted-transitions rate window */
  double rate_t0, rate_t1, insert_rate;
  uint64_t rate_n0, rate_n1, inserted;
};

static const char *safety_name(int k) {
  return k <= FRL_SAFETY_KIND_MAX ? frl_safety_kind_name((frl_safety_kind_t)k) : "unknown";
}

/* ---- bounded state --------------------------------------------------------------------- */

static void curve_init(curve_t *c, int cap) {
  c->p = frl_xcalloc((size_t)cap, sizeof *c->p);
  c->cap = cap;
  c->stride = 1;
}

static void curve_add(curve_t *c, double x, double y, double z) {
  if (c->seen++ % c->stride != 0) return;
  if (c->n == c->cap) {
    /* Full: keep every other point and take every other one from now on. */
    for (int i = 0; 2 * i < c->n; i++) memcpy(c->p[i], c->p[2 * i], sizeof c->p[0]);
    c->n = (c->n + 1) / 2;
    c->stride *= 2;
  }
  c->p[c->n][0] = x;
  c->p[c->n][1] = y;
  c->p[c->n][2] = z;
  c->n++;
}

static actor_t *actor_for(frl_status_t *s, const char *name) {
  uint64_t h = frl_fnv1a64(name, strlen(name), FRL_FNV_SEED);
  for (int i = 0; i < s->n_actors; i++)
    if (s->actors[i].hash == h && strcmp(s->actors[i].name, name) == 0) return &s->actors[i];
  if (s->n_actors == MAX_ACTORS) {
    /* Bounded cardinality, for the page and for Prometheus: the rest share one row. */
    if (strcmp(name, OTHER_ACTORS) == 0) return &s->actors[MAX_ACTORS - 1];
    return actor_for(s, OTHER_ACTORS);
  }
  actor_t *a = &s->actors[s->n_actors++];
  memset(a, 0, sizeof *a);
  if (s->n_actors == MAX_ACTORS) name = OTHER_ACTORS; /* the last slot pools the rest */
  snprintf(a->name, sizeof a->name, "%s", name);
  a->hash = frl_fnv1a64(a->name, strlen(a->name), FRL_FNV_SEED);
  a->recent_return = NAN;
  return a;
}

/* Seconds since a batch of the actor was stored; NaN when none was (an actor known only for
 * batches refused as invalid). */
static double last_heard(const actor_t *a, double now) {
  return a->batches ? now - a->last_heard : NAN;
}

/* Advances a rate window: the rate of `count` over the last RATE_WINDOW_S..2*RATE_WINDOW_S. */
static double window_rate(double now, uint64_t count, double *t0, uint64_t *n0, double *t1,
                          uint64_t *n1) {
  if (*t0 == 0) {
    *t0 = *t1 = now;
    *n0 = *n1 = count;
  } else if (now - *t0 >= RATE_WINDOW_S) {
    *t1 = *t0;
    *n1 = *n0;
    *t0 = now;
    *n0 = count;
  }
  return now - *t1 > 0.1 ? (double)(count - *n1) / (now - *t1) : 0.0;
}

static void update_rates(frl_status_t *s, double now) {
  for (int i = 0; i < s->n_actors; i++) {
    actor_t *a = &s->actors[i];
    a->rate = window_rate(now, a->env_steps, &a->t0, &a->steps0, &a->t1, &a->steps1);
  }
  s->insert_rate = window_rate(now, s->inserted, &s->rate_t0, &s->rate_n0, &s->rate_t1,
                               &s->rate_n1);
}

void frl_status_batch(frl_status_t *s, const frl_experience_t *x, uint64_t params_version,
                      uint64_t env_steps) {
  if (!s || !x->actor) return;
  double now = frl_now();
  actor_t *a = actor_for(s, x->actor);
  a->batches++;
  a->transitions += x->count;
  a->env_steps += x->env_steps;
  a->last_heard = now;
  s->inserted += x->count;
  for (uint32_t i = 0; i < x->n_policy_version; i++) {
    double lag = (double)params_version - (double)x->policy_version[i];
    a->lag += 0.01 * (lag - a->lag);
  }
  for (uint32_t i = 0; i < x->n_episodes; i++) {
    frl_episode_stat_t e;
    frl_msg_episode(x, i, &e);
    a->episodes++;
    a->successes += e.success;
    a->violations += e.violations;
    s->episodes_seen++;
    s->successes += e.success;
    s->violations += e.violations;
    frl_metrics_observe(s->metrics, s->ids[M_EP_LENGTH], NULL, e.length);
    /* A demonstrator's episodes are counted, but the learning curve is the policy's. */
    if (!isfinite(e.episode_return) || x->demonstration) continue;
    a->recent_return = isnan(a->recent_return)
                           ? e.episode_return
                           : a->recent_return + 0.05 * (e.episode_return - a->recent_return);
    curve_add(&s->episodes, (double)env_steps, e.episode_return, 0);
  }
  for (uint32_t i = 0; i < x->n_safety; i++) {
    frl_safety_event_t ev;
    frl_msg_safety(x, i, &ev);
    int k = (int)ev.kind <= FRL_SAFETY_KIND_MAX ? (int)ev.kind : N_SAFETY - 1;
    s->safety[k] += ev.count;
  }
}

void frl_status_rejected(frl_status_t *s, const char *actor, const char *reason) {
  if (!s) return;
  /* One row for batches that name no actor (the broker refuses those, so this is a guard). */
  actor_t *a = actor_for(s, actor && actor[0] ? actor : "(unnamed)");
  a->rejected++;
  snprintf(a->last_rejection, sizeof a->last_rejection, "%s", reason ? reason : "");
}

void frl_status_eval(frl_status_t *s, uint64_t env_steps, double mean, double sd) {
  if (!s) return;
  curve_add(&s->evals, (double)env_steps, mean, sd);
}

const char *frl_status_address(const frl_status_t *s) { return s ? s->addr : ""; }

/* ---- /metrics -------------------------------------------------------------------------- */

static void put(frl_status_t *s, int which, double v) {
  frl_metrics_set(s->metrics, s->ids[which], NULL, v);
}

static void serve_metrics(void *arg, const frl_http_request_t *req, frl_http_response_t *res) {
  frl_status_t *s = arg;
  frl_status_figures_t f;
  memset(&f, 0, sizeof f);
  s->fill(s->arg, &f);
  double now = frl_now();
  update_rates(s, now);
  put(s, M_ENV_STEPS, (double)f.env_steps);
  put(s, M_INSERTED, (double)f.inserted);
  put(s, M_DUPLICATES, (double)f.duplicates);
  put(s, M_REJECTED, (double)f.rejected);
  put(s, M_SAMPLES, (double)f.samples);
  put(s, M_UPDATES, (double)f.updates);
  put(s, M_SKIPPED, (double)f.skipped_updates);
  put(s, M_EPISODES, (double)f.episodes);
  put(s, M_SUCCESSES, (double)s->successes);
  put(s, M_VIOLATIONS, (double)s->violations);
  for (int k = 0; k < N_SAFETY; k++)
    if (s->safety[k])
      frl_metrics_set(s->metrics, s->ids[M_SAFETY], FRL_LABELS(safety_name(k)),
                      (double)s->safety[k]);
  put(s, M_LOSS, f.updates ? f.loss : NAN);
  put(s, M_MEAN_Q, f.updates ? f.mean_q : NAN);
  put(s, M_ACTOR_LOSS, f.actor_loss);
  put(s, M_ALPHA, f.alpha);
  put(s, M_ENTROPY, f.entropy);
  put(s, M_RECENT_RETURN, f.recent_return);
  put(s, M_EVAL_RETURN, f.evals ? f.last_eval : NAN);
  put(s, M_EVAL_BEST, f.evals ? f.best_eval : NAN);
  put(s, M_EVAL_SUCCESS, f.evals ? f.last_success : NAN);
  put(s, M_EVALS, f.evals);
  put(s, M_LAG, f.lag);
  put(s, M_WAL_PAGES, f.wal_pages);
  put(s, M_WAL_PAGES_MAX, f.wal_pages_max);
  frl_metrics_set(s->metrics, s->ids[M_WAL_RESTARTS], FRL_LABELS("done"), (double)f.wal_restarts);
  frl_metrics_set(s->metrics, s->ids[M_WAL_RESTARTS], FRL_LABELS("given_up"),
                  (double)f.wal_restarts_busy);
  put(s, M_PARAMS, (double)f.params_version);
  put(s, M_ENV_RATE, f.env_rate);
  put(s, M_UPD_RATE, f.upd_rate);
  put(s, M_INSERT_RATE, s->insert_rate);
  put(s, M_SPI, f.spi);
  put(s, M_BETA, f.beta);
  put(s, M_REPLAY_SIZE, (double)f.replay_size);
  put(s, M_REPLAY_CAP, (double)f.capacity);
  put(s, M_PRIORITY_MAX, f.priority_max);
  put(s, M_PRIORITY_SUM, f.priority_sum);
  put(s, M_PRIORITY_MIN, f.priority_min);
  put(s, M_DEMO_SIZE, (double)f.demo_size);
  put(s, M_CONNECTED, f.connected);
  put(s, M_STORE_FAILING, f.store_failing);
  put(s, M_SOLVED, f.solved);
  put(s, M_START_TIME, s->started_wall);
  for (int i = 0; i < s->n_actors; i++) {
    const actor_t *a = &s->actors[i];
    const char *const *who = FRL_LABELS(a->name);
    frl_metrics_set(s->metrics, s->ids[M_A_TRANSITIONS], who, (double)a->transitions);
    frl_metrics_set(s->metrics, s->ids[M_A_BATCHES], who, (double)a->batches);
    frl_metrics_set(s->metrics, s->ids[M_A_ENV_STEPS], who, (double)a->env_steps);
    frl_metrics_set(s->metrics, s->ids[M_A_EPISODES], who, (double)a->episodes);
    frl_metrics_set(s->metrics, s->ids[M_A_SUCCESSES], who, (double)a->successes);
    frl_metrics_set(s->metrics, s->ids[M_A_VIOLATIONS], who, (double)a->violations);
    frl_metrics_set(s->metrics, s->ids[M_A_RETURN], who, a->recent_return);
    frl_metrics_set(s->metrics, s->ids[M_A_LAG], who, a->lag);
    frl_metrics_set(s->metrics, s->ids[M_A_LAST_HEARD], who, last_heard(a, now));
    frl_metrics_set(s->metrics, s->ids[M_A_RATE], who, a->rate);
    frl_metrics_set(s->metrics, s->ids[M_A_REJECTED], who, (double)a->rejected);
  }
  frl_http_stats_t hs;
  frl_http_server_stats(s->http, &hs);
  put(s, M_HTTP_REQUESTS, (double)hs.requests);
  put(s, M_HTTP_BAD, (double)hs.bad_requests);
  put(s, M_HTTP_REFUSED, (double)hs.refused_connections);
  char *text;
  size_t len;
  frl_metrics_render(s->metrics, &text, &len);
  frl_http_set_body(res, text, len);
  res->content_type = FRL_METRICS_CONTENT_TYPE;
}

/* ---- /api/status ----------------------------------------------------------------------- */

/* A JSON number; NaN and infinities, which JSON lacks, are null. */
static void json_num(frl_http_response_t *res, double v) {
  if (!isfinite(v)) frl_http_append(res, "null", 4);
  else if (v == floor(v) && fabs(v) < 9007199254740992.0) frl_http_printf(res, "%.0f", v);
  else frl_http_printf(res, "%.6g", v);
}

/* A JSON string. Names are printable ASCII by protocol (the broker refuses others); any other
 * byte is escaped, so the output is valid JSON whatever arrives. */
static void json_str(frl_http_response_t *res, const char *v) {
  frl_http_append(res, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (*p == '"' || *p == '\\') frl_http_printf(res, "\\%c", *p);
    else if (*p < 0x20 || *p > 0x7e) frl_http_printf(res, "\\u%04x", *p);
    else frl_http_append(res, p, 1);
  }
  frl_http_append(res, "\"", 1);
}

static void json_key(frl_http_response_t *res, const char *key, bool first) {
  frl_http_printf(res, "%s\"%s\":", first ? "" : ",", key);
}

static void json_field(frl_http_response_t *res, const char *key, double v) {
  json_key(res, key, false);
  json_num(res, v);
}

static void serve_api(void *arg, const frl_http_request_t *req, frl_http_response_t *res) {
  frl_status_t *s = arg;
  const frl_config_t *cfg = s->cfg;
  frl_status_figures_t f;
  memset(&f, 0, sizeof f);
  s->fill(s->arg, &f);
  double now = frl_now();
  update_rates(s, now);
  res->content_type = "application/json";
  frl_http_append(res, "{", 1);
  json_key(res, "task", true);
  json_str(res, cfg->task);
  json_key(res, "env", false);
  json_str(res, cfg->env);
  json_key(res, "algo", false);
  json_str(res, cfg->algo);
  json_key(res, "solve_metric", false);
  json_str(res, cfg->solve_metric);
  json_field(res, "solve_return", cfg->solve_return);
  json_field(res, "max_env_steps", (double)cfg->max_env_steps);
  json_field(res, "uptime_s", now - s->started);
  json_field(res, "env_steps", (double)f.env_steps);
  json_field(res, "env_rate", f.env_rate);
  json_field(res, "updates", (double)f.updates);
  json_field(res, "upd_rate", f.upd_rate);
  json_field(res, "inserted", (double)f.inserted);
  json_field(res, "insert_rate", s->insert_rate);
  json_field(res, "duplicates", (double)f.duplicates);
  json_field(res, "rejected", (double)f.rejected);
  json_field(res, "samples", (double)f.samples);
  json_field(res, "spi", f.spi);
  json_field(res, "loss", f.updates ? f.loss : NAN);
  json_field(res, "mean_q", f.updates ? f.mean_q : NAN);
  json_field(res, "actor_loss", f.actor_loss);
  json_field(res, "alpha", f.alpha);
  json_field(res, "entropy", f.entropy);
  json_field(res, "recent_return", f.recent_return);
  json_field(res, "last_eval", f.evals ? f.last_eval : NAN);
  json_field(res, "best_eval", f.evals ? f.best_eval : NAN);
  json_field(res, "eval_success", f.evals ? f.last_success : NAN);
  json_field(res, "evals", f.evals);
  json_field(res, "lag", f.lag);
  json_field(res, "params_version", (double)f.params_version);
  frl_http_printf(res, ",\"connected\":%s,\"store_failing\":%s,\"solved\":%s",
                  f.connected ? "true" : "false", f.store_failing ? "true" : "false",
                  f.solved ? "true" : "false");
  json_key(res, "replay", false);
  frl_http_append(res, "{", 1);
  json_key(res, "size", true);
  json_num(res, (double)f.replay_size);
  json_field(res, "capacity", (double)f.capacity);
  json_field(res, "priority_max", f.priority_max);
  json_field(res, "priority_sum", f.priority_sum);
  json_field(res, "priority_min", f.priority_min);
  json_field(res, "beta", f.beta);
  frl_http_append(res, "}", 1);
  json_key(res, "safety", false);
  frl_http_append(res, "{", 1);
  json_key(res, "episodes", true);
  json_num(res, (double)s->episodes_seen);
  json_field(res, "successes", (double)s->successes);
  json_field(res, "violations", (double)s->violations);
  json_key(res, "events", false);
  frl_http_append(res, "{", 1);
  for (int k = 0; k < N_SAFETY; k++) {
    json_key(res, safety_name(k), k == 0);
    json_num(res, (double)s->safety[k]);
  }
  frl_http_append(res, "}}", 2);
  json_key(res, "curve", false);
  frl_http_append(res, "{\"episodes\":[", 13);
  for (int i = 0; i < s->episodes.n; i++) {
    frl_http_append(res, i ? ",[" : "[", i ? 2 : 1);
    json_num(res, s->episodes.p[i][0]);
    frl_http_append(res, ",", 1);
    json_num(res, s->episodes.p[i][1]);
    frl_http_append(res, "]", 1);
  }
  frl_http_append(res, "],\"evals\":[", 11);
  for (int i = 0; i < s->evals.n; i++) {
    frl_http_append(res, i ? ",[" : "[", i ? 2 : 1);
    json_num(res, s->evals.p[i][0]);
    frl_http_append(res, ",", 1);
    json_num(res, s->evals.p[i][1]);
    frl_http_append(res, ",", 1);
    json_num(res, s->evals.p[i][2]);
    frl_http_append(res, "]", 1);
  }
  frl_http_append(res, "]}", 2);
  json_key(res, "actors", false);
  frl_http_append(res, "[", 1);
  for (int i = 0; i < s->n_actors; i++) {
    const actor_t *a = &s->actors[i];
    frl_http_append(res, i ? ",{" : "{", i ? 2 : 1);
    json_key(res, "name", true);
    json_str(res, a->name);
    json_field(res, "batches", (double)a->batches);
    json_field(res, "transitions", (double)a->transitions);
    json_field(res, "env_steps", (double)a->env_steps);
    json_field(res, "rate", a->rate);
    json_field(res, "episodes", (double)a->episodes);
    json_field(res, "recent_return", a->recent_return);
    json_field(res, "successes", (double)a->successes);
    json_field(res, "violations", (double)a->violations);
    json_field(res, "lag", a->lag);
    json_field(res, "last_heard_s", last_heard(a, now));
    json_field(res, "rejected", (double)a->rejected);
    json_key(res, "last_rejection", false);
    if (a->rejected)
      json_str(res, a->last_rejection);
    else
      frl_http_append(res, "null", 4);
    frl_http_append(res, "}", 1);
  }
  frl_http_append(res, "]}\n", 3);
}

/* ---- the page -------------------------------------------------------------------------- */

/* Self-contained: inline style and script, no fonts, images or scripts from anywhere else
 * (the server's Content-Security-Policy forbids them too). The script polls /api/status and
 * redraws; every text from the learner goes in through textContent, never as markup. */
static const char g_page[] =
    "<!doctype html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n"
    "<title>fleetrl learner</title>\n"
    "<style>\n"
    "body{margin:0;font:14px/1.4 sans-serif;background:#f4f5f7;color:#1d2329}\n"
    "header{height:40px;padding:0 16px;display:flex;align-items:center;gap:18px;"
    "background:#263238;color:#fff}\n"
    "header b{font-size:16px}\n"
    "#state.bad{color:#ff8a80}\n"
    "main{padding:12px 16px}\n"
    "#curve{display:block;width:880px;height:320px;background:#fff;border:1px solid #c9ced6}\n"
    ".legend{margin:4px 0 0;font-size:12px;color:#555}\n"
    ".legend i{display:inline-block;width:18px;height:3px;margin:0 4px 3px 12px;"
    "vertical-align:middle}\n"
    ".cards{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0;max-width:900px}\n"
    ".card{background:#fff;border:1px solid #dde1e6;padding:6px 10px;min-width:112px}\n"
    ".card .k{font-size:12px;color:#5b6670}.card .v{font-size:18px;font-weight:600}\n"
    "h3{margin:16px 0 6px}\n"
    "table{border-collapse:collapse;background:#fff}\n"
    "th,td{border:1px solid #dde1e6;padding:3px 8px;text-align:right}\n"
    "th{background:#eceff1}th:first-child,td:first-child{text-align:left}\n"
    "td.stale{color:#c62828}\n"
    "</style></head><body>\n"
    "<header><b>fleetrl learner</b><span id=\"task\"></span><span id=\"state\">connecting"
    "</span></header>\n"
    "<main>\n"
    "<svg id=\"curve\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 880 320\" "
    "data-episodes=\"0\" data-evals=\"0\" role=\"img\" aria-label=\"learning curve\"></svg>\n"
    "<div class=\"legend\"><i style=\"background:#9ecae1\"></i>training episode returns"
    "<i style=\"background:#1f77b4\"></i>moving mean (20)"
    "<i style=\"background:#d62728\"></i>evaluation (mean)"
    "<i style=\"background:#2ca02c\"></i>solved at</div>\n"
    "<div class=\"cards\" id=\"cards\"></div>\n"
    "<h3>Actors</h3>\n"
    "<table id=\"actors\"><thead><tr><th>actor</th><th>batches</th><th>rejected</th>"
    "<th>transitions</th><th>env steps</th><th>steps/s</th><th>episodes</th>"
    "<th>recent return</th><th>successes</th><th>violations</th><th>policy lag</th>"
    "<th>last heard</th></tr></thead>"
    "<tbody></tbody></table>\n"
    "<h3>Replay</h3><table id=\"replay\"><tbody></tbody></table>\n"
    "<h3>Safety</h3><table id=\"safety\"><tbody></tbody></table>\n"
    "</main>\n"
    "<script>\n"
    "\"use strict\";\n"
    "const NS = \"http://www.w3.org/2000/svg\";\n"
    "function el(tag, attrs, parent) {\n"
    "  const e = document.createElementNS(NS, tag);\n"
    "  for (const k in attrs) e.setAttribute(k, attrs[k]);\n"
    "  if (parent) parent.appendChild(e);\n"
    "  return e;\n"
    "}\n"
    "function fmt(v, d) {\n"
    "  if (v === null || v === undefined) return \"-\";\n"
    "  if (Math.abs(v) >= 1e7) return v.toExponential(2);\n"
    "  return Number(v).toFixed(d === undefined ? 1 : d);\n"
    "}\n"
    "function int(v) { return v === null ? \"-\" : Math.round(v).toLocaleString(\"en\"); }\n"
    "function niceTicks(lo, hi, n) {\n"
    "  const span = hi - lo, raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));\n"
    "  const step = [1, 2, 5, 10].map(m => m * mag).find(s => span / s <= n) || 10 * mag;\n"
    "  const out = [];\n"
    "  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9 * span; t += step) out.push(t);\n"
    "  return out;\n"
    "}\n"
    "function drawCurve(s) {\n"
    "  const svg = document.getElementById(\"curve\");\n"
    "  while (svg.firstChild) svg.removeChild(svg.firstChild);\n"
    "  const W = 880, H = 320, L = 64, R = 16, T = 14, B = 38;\n"
    "  const ep = s.curve.episodes.filter(p => p[1] !== null);\n"
    "  const ev = s.curve.evals.filter(p => p[1] !== null);\n"
    "  let xmax = Math.max(1, s.env_steps || 0), ylo = Infinity, yhi = -Infinity;\n"
    "  for (const p of ep.concat(ev)) { ylo = Math.min(ylo, p[1]); yhi = Math.max(yhi, p[1]); }\n"
    "  let solve = s.solve_metric === \"return\" ? s.solve_return : null;\n"
    "  if (!isFinite(ylo)) { ylo = 0; yhi = 1; }\n"
    "  /* The solve level joins the range unless it would squash the data flat. */\n"
    "  const span = Math.max(yhi - ylo, 1e-9);\n"
    "  if (solve !== null && solve > ylo - 3 * span && solve < yhi + 3 * span) {\n"
    "    ylo = Math.min(ylo, solve); yhi = Math.max(yhi, solve);\n"
    "  } else if (solve !== null) {\n"
    "    el(\"text\", {x: W - R - 4, y: T + 12, \"text-anchor\": \"end\", \"font-size\": 11,"
    " fill: \"#2ca02c\"}, svg).textContent = \"solved at \" + solve + \" (off the chart)\";\n"
    "    solve = null;\n"
    "  }\n"
    "  if (yhi - ylo < 1e-9) { ylo -= 1; yhi += 1; }\n"
    "  const pad = 0.05 * (yhi - ylo); ylo -= pad; yhi += pad;\n"
    "  const sx = x => L + (W - L - R) * x / xmax;\n"
    "  const sy = y => T + (H - T - B) * (1 - (y - ylo) / (yhi - ylo));\n"
    "  const axis = {stroke: \"#c9ced6\", \"stroke-width\": 1};\n"
    "  const yt = niceTicks(ylo, yhi, 6);\n"
    "  const digits = yt.length > 1 ? Math.max(0, -Math.floor(Math.log10(yt[1] - yt[0]))) : 1;\n"
    "  for (const t of yt) {\n"
    "    el(\"line\", Object.assign({x1: L, x2: W - R, y1: sy(t), y2: sy(t)}, axis), svg);\n"
    "    el(\"text\", {x: L - 6, y: sy(t) + 4, \"text-anchor\": \"end\", \"font-size\": 11,"
    " fill: \"#555\"}, svg).textContent = fmt(t, digits);\n"
    "  }\n"
    "  for (const t of niceTicks(0, xmax, 8)) {\n"
    "    el(\"line\", Object.assign({x1: sx(t), x2: sx(t), y1: T, y2: H - B}, axis), svg);\n"
    "    el(\"text\", {x: sx(t), y: H - B + 15, \"text-anchor\": \"middle\", \"font-size\": 11,"
    " fill: \"#555\"}, svg).textContent = int(t);\n"
    "  }\n"
    "  el(\"text\", {x: (L + W - R) / 2, y: H - 6, \"text-anchor\": \"middle\", \"font-size\": 12,"
    " fill: \"#333\"}, svg).textContent = \"environment steps\";\n"
    "  el(\"text\", {x: 14, y: (T + H - B) / 2, \"text-anchor\": \"middle\", \"font-size\": 12,"
    " fill: \"#333\", transform: \"rotate(-90 14 \" + (T + H - B) / 2 + \")\"}, svg).textContent"
    " = \"return\";\n"
    "  if (solve !== null && solve >= ylo && solve <= yhi)\n"
    "    el(\"line\", {x1: L, x2: W - R, y1: sy(solve), y2: sy(solve), stroke: \"#2ca02c\","
    " \"stroke-dasharray\": \"6 4\", \"stroke-width\": 1.5}, svg);\n"
    "  const pts = a => a.map(p => sx(p[0]).toFixed(1) + \",\" + sy(p[1]).toFixed(1)).join(\" \");\n"
    "  el(\"polyline\", {id: \"ep-raw\", points: pts(ep), fill: \"none\", stroke: \"#9ecae1\","
    " \"stroke-width\": 1}, svg);\n"
    "  const mean = [];\n"
    "  let sum = 0;\n"
    "  for (let i = 0; i < ep.length; i++) {\n"
    "    sum += ep[i][1];\n"
    "    if (i >= 20) sum -= ep[i - 20][1];\n"
    "    mean.push([ep[i][0], sum / Math.min(i + 1, 20)]);\n"
    "  }\n"
    "  el(\"polyline\", {id: \"ep-mean\", points: pts(mean), fill: \"none\", stroke: \"#1f77b4\","
    " \"stroke-width\": 2.5}, svg);\n"
    "  el(\"polyline\", {id: \"ev-line\", points: pts(ev), fill: \"none\", stroke: \"#d62728\","
    " \"stroke-width\": 2}, svg);\n"
    "  for (const p of ev)\n"
    "    el(\"circle\", {class: \"ev\", cx: sx(p[0]), cy: sy(p[1]), r: 4, fill: \"#d62728\"}, svg);\n"
    "  svg.setAttribute(\"data-episodes\", ep.length);\n"
    "  svg.setAttribute(\"data-evals\", ev.length);\n"
    "}\n"
    "function cards(s) {\n"
    "  const c = document.getElementById(\"cards\");\n"
    "  const items = [[\"env steps\", int(s.env_steps)], [\"env steps/s\", fmt(s.env_rate, 0)],\n"
    "    [\"updates\", int(s.updates)], [\"updates/s\", fmt(s.upd_rate, 0)],\n"
    "    [\"recent return\", fmt(s.recent_return)], [\"last eval\", fmt(s.last_eval)],\n"
    "    [\"best eval\", fmt(s.best_eval)], [\"policy lag\", fmt(s.lag, 2)],\n"
    "    [\"params\", \"v\" + int(s.params_version)], [\"loss\", fmt(s.loss, 4)],\n"
    "    [\"mean Q\", fmt(s.mean_q, 2)], [\"samples/insert\", fmt(s.spi, 1)]];\n"
    "  c.replaceChildren(...items.map(([k, v]) => {\n"
    "    const d = document.createElement(\"div\"); d.className = \"card\";\n"
    "    const a = document.createElement(\"div\"); a.className = \"k\"; a.textContent = k;\n"
    "    const b = document.createElement(\"div\"); b.className = \"v\"; b.textContent = v;\n"
    "    d.append(a, b); return d;\n"
    "  }));\n"
    "}\n"
    "function rows(id, data) {\n"
    "  const body = document.querySelector(\"#\" + id + \" tbody\");\n"
    "  body.replaceChildren(...data.map(r => {\n"
    "    const tr = document.createElement(\"tr\");\n"
    "    for (const v of r.cells) {\n"
    "      const td = document.createElement(r.head ? \"th\" : \"td\");\n"
    "      td.textContent = v; tr.appendChild(td);\n"
    "    }\n"
    "    if (r.stale) tr.lastChild.className = \"stale\";\n"
    "    if (r.name) tr.setAttribute(\"data-actor\", r.name);\n"
    "    if (r.tip) tr.title = r.tip;\n"
    "    return tr;\n"
    "  }));\n"
    "}\n"
    "function render(s) {\n"
    "  document.getElementById(\"task\").textContent = s.task + \" (\" + s.env + \", \" + s.algo +"
    " \")\" + (s.solved ? \" solved\" : \"\");\n"
    "  const st = document.getElementById(\"state\");\n"
    "  st.textContent = s.store_failing ? \"store refusing writes\" : s.connected ?"
    " \"broker connected\" : \"broker not connected\";\n"
    "  st.className = s.connected && !s.store_failing ? \"\" : \"bad\";\n"
    "  drawCurve(s);\n"
    "  cards(s);\n"
    "  rows(\"actors\", s.actors.map(a => ({name: a.name, stale: a.last_heard_s > 10,"
    " tip: a.last_rejection ? \"last rejected: \" + a.last_rejection : \"\", cells: [a.name,"
    " int(a.batches), int(a.rejected), int(a.transitions), int(a.env_steps), fmt(a.rate, 0),"
    " int(a.episodes), fmt(a.recent_return), int(a.successes), int(a.violations), fmt(a.lag, 2),"
    " fmt(a.last_heard_s) + \" s\"]})));\n"
    "  const r = s.replay;\n"
    "  rows(\"replay\", [{head: false, cells: [\"items\", int(r.size) + \" of \" + int(r.capacity)"
    " + \" (\" + fmt(100 * r.size / Math.max(1, r.capacity), 1) + \"%)\"]},\n"
    "    {cells: [\"inserted transitions\", int(s.inserted)]},\n"
    "    {cells: [\"inserted/s\", fmt(s.insert_rate, 0)]},\n"
    "    {cells: [\"sampled transitions\", int(s.samples)]},\n"
    "    {cells: [\"samples per insert (target)\", fmt(s.spi, 1)]},\n"
    "    {cells: [\"samples per insert (so far)\", fmt(s.samples / Math.max(1, s.inserted), 2)]},\n"
    "    {cells: [\"max priority\", fmt(r.priority_max, 3)]},\n"
    "    {cells: [\"importance beta\", fmt(r.beta, 3)]},\n"
    "    {cells: [\"duplicate batches\", int(s.duplicates)]},\n"
    "    {cells: [\"rejected batches\", int(s.rejected)]}]);\n"
    "  const sf = s.safety;\n"
    "  rows(\"safety\", [{cells: [\"episodes\", int(sf.episodes)]},\n"
    "    {cells: [\"successes\", int(sf.successes) + (sf.episodes ? \" (\" +"
    " fmt(100 * sf.successes / sf.episodes, 1) + \"%)\" : \"\")]},\n"
    "    {cells: [\"violations\", int(sf.violations)]}].concat(Object.keys(sf.events).map(k =>"
    " ({cells: [\"events: \" + k, int(sf.events[k])]}))));\n"
    "}\n"
    "async function poll() {\n"
    "  try {\n"
    "    const r = await fetch(\"/api/status\", {cache: \"no-store\"});\n"
    "    if (!r.ok) throw new Error(\"HTTP \" + r.status);\n"
    "    render(await r.json());\n"
    "  } catch (e) {\n"
    "    const st = document.getElementById(\"state\");\n"
    "    st.textContent = \"learner not answering\"; st.className = \"bad\";\n"
    "  }\n"
    "}\n"
    "poll();\n"
    "setInterval(poll, 1500);\n"
    "</script>\n"
    "</body></html>\n";

static void serve_page(void *arg, const frl_http_request_t *req, frl_http_response_t *res) {
  res->content_type = "text/html; charset=utf-8";
  frl_http_append(res, g_page, sizeof g_page - 1);
}

/* ---- lifetime -------------------------------------------------------------------------- */

void frl_status_destroy(frl_status_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_status_t *s = *self_p;
  frl_http_server_destroy(&s->http);
  frl_metrics_destroy(&s->metrics);
  free(s->actors);
  free(s->episodes.p);
  free(s->evals.p);
  free(s);
  *self_p = NULL;
}

int frl_status_new(frl_status_t **out, uv_loop_t *loop, const frl_config_t *cfg,
                   frl_status_fill_fn fill, void *arg) {
  *out = NULL;
  char file[600];
  snprintf(file, sizeof file, "%s/http.addr", cfg->run_dir);
  if (!frl_http_flag_address(cfg->http, FRL_HTTP_LEARNER_DEFAULT)) {
    unlink(file); /* not serving: no address to find */
    frl_info("http: off (--http off)");
    return 0;
  }
  int rc = FRL_EUSAGE;
  frl_status_t *s = frl_xcalloc(1, sizeof *s);
  s->cfg = cfg;
  s->fill = fill;
  s->arg = arg;
  s->started = frl_now();
  s->started_wall = frl_wall();
  s->actors = frl_xcalloc(MAX_ACTORS, sizeof *s->actors);
  curve_init(&s->episodes, CURVE_POINTS);
  curve_init(&s->evals, EVAL_POINTS);
  s->metrics = frl_metrics_new();
  static const double length_buckets[] = {10, 25, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
  for (int i = 0; i < M_COUNT; i++) {
    const char *const *labels = g_defs[i].label == ACTOR_LABEL  ? FRL_LABELS("actor")
                                : g_defs[i].label == KIND_LABEL ? FRL_LABELS("kind")
                                : g_defs[i].label == OUTCOME_LABEL ? FRL_LABELS("outcome")
                                                                   : NULL;
    bool hist = g_defs[i].type == FRL_METRIC_HISTOGRAM;
    rc = frl_metrics_family(s->metrics, g_defs[i].name, g_defs[i].type, g_defs[i].help,
                                labels, hist ? length_buckets : NULL,
                                hist ? FRL_ARRAY_LEN(length_buckets) : 0, &s->ids[i]);
    if (rc != 0) {
      frl_error("metric %s cannot be registered", g_defs[i].name); /* a bug in the table */
      goto fail;
    }
  }
  rc = frl_http_server_new(&s->http, loop, NULL);
  if (rc != 0) goto fail;
  frl_http_server_route(s->http, "/", serve_page, s);
  frl_http_server_route(s->http, "/index.html", serve_page, s);
  frl_http_server_route(s->http, "/api/status", serve_api, s);
  frl_http_server_route(s->http, "/metrics", serve_metrics, s);
  rc = frl_http_server_start(s->http, cfg->http, FRL_HTTP_LEARNER_DEFAULT,
                             "the status page and /metrics", file, s->addr, sizeof s->addr);
  if (rc != 0) goto fail;
  *out = s;
  return 0;
fail:
  frl_status_destroy(&s);
  return rc;
}
