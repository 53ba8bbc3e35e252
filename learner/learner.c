/* learner.c: the learner process. Everything runs on one libuv loop thread: ZeroMQ readiness
 * arrives through ZMQ_FD (edge-triggered, so every wake-up drains until ZMQ_EVENTS says empty,
 * and a prepare handle re-checks before the loop blocks, since sending can consume the edge);
 * training runs in an idle handle in time slices of a few milliseconds so that ingest, acks
 * and heartbeats are never held up by more than one slice. */
#include "learner.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <zmq.h>

#include "broker.h"
#include "checkpoint.h"
#include "common.h"
#include "agent.h"
#include "env.h"
#include "history.h"
#include "log.h"
#include "normalizer.h"
#include "policy.h"
#include "policy_file.h"
#include "randomize.h"
#include "ratelimit.h"
#include "refusals.h"
#include "replay.h"
#include "status.h"
#include "store.h"
#include "transport.h"

#define RECENT 100
#define TRAIN_SLICE_S 0.004
/* Store upkeep runs between events, one bounded slice per loop turn, so that ingest never
 * waits for long: rows of the priority write-back per transaction, batch records of the dedup
 * window per step. */
#define FLUSH_SLICE_ROWS 2048
#define PRUNE_STEP_ROWS 1000

typedef struct {
  const frl_config_t *cfg;
  uv_loop_t loop;
  uv_poll_t zpoll;
  uv_prepare_t prepare;
  uv_idle_t train;
  uv_idle_t upkeep;       /* store upkeep, a slice per loop turn while there is some */
  bool flushing, pruning; /* a priority write-back pass / a dedup-window round under way */
  double last_prune;
  uv_timer_t tick;
  uv_signal_t sigint, sigterm;
  bool training_active;

  void *ctx, *sock;
  frl_fb_builder_t *fb;
  frl_inbox_t in;

  frl_store_t *store;
  frl_replay_t *replay;
  frl_agent_t *agent;
  frl_policy_shape_t shape;
  frl_policy_t *eval_policy;   /* acts in evaluations exactly as actors do */
  frl_normalizer_t *norm;      /* NULL unless --normalize-obs */
  float *norm_mean, *norm_std; /* exported statistics, shipped with Params */
  float *nobs, *nnext;         /* normalized sampled observations */
  frl_ratelimit_t rl;
  frl_rng_t rng;
  frl_env_t *eval_env;
  const frl_env_spec_t *spec;
  float *td_abs;
  char run_dir[512];

  /* broker session and credit */
  bool welcomed;
  double started, last_heard, last_hello, last_heartbeat, lost_since;
  uint64_t granted, received;
  uint32_t batch_items; /* largest batch seen, to size credit */
  bool store_failing;
  double store_fail_logged, store_probe_at;

  /* progress */
  uint64_t env_steps, inserted, duplicates, rejected, updates, params_version, skipped_updates;
  frl_refusals_t refusals; /* which refused batches get a log line */
  double beta, last_loss, last_mean_q, lag_ewma;
  /* SAC/TD3 diagnostics of the last update (NAN where the algorithm has none, or before the
   * first update since start) */
  double last_actor_loss, last_alpha, last_entropy;
  float recent[RECENT];
  int n_recent, recent_pos;
  uint64_t episodes;
  uint64_t next_eval_at, last_eval_steps;
  double last_eval, best_eval, last_success, best_score;
  bool reports_success; /* the task has reported a success at least once */
  int evals;
  uint64_t solve_streak; /* latest evaluations in a row at --solve-return */
  bool solved;
  /* rates */
  double rate_t;
  uint64_t rate_env, rate_upd;
  double env_rate, upd_rate, last_progress_print, last_progress_row, last_flush;
  int exit_code;
  bool stopping;
  /* checkpoints: when the last was written, and the progress it (or the one resumed) held */
  double last_checkpoint;
  uint64_t checkpoint_updates, checkpoint_env_steps;
  frl_status_t *status; /* /metrics and the status page; NULL with --http off */
  /* behaviour cloning before RL (--bc-updates): updates still to run, and figures for logs */
  uint64_t bc_left, bc_done, bc_skipped;
  double bc_started, bc_last_log, bc_loss_avg, bc_err_avg, bc_first_loss, bc_first_err;
  bool bc_wait_logged;
} learner_t;

static void stop(learner_t *l, int code, const char *why);

static double recent_return(const learner_t *l) {
  if (l->n_recent == 0) return NAN;
  double s = 0;
  for (int i = 0; i < l->n_recent; i++) s += l->recent[i];
  return s / l->n_recent;
}

/* ---- sending ---------------------------------------------------------------------------- */

static void send_built(learner_t *l) {
  int rc = frl_send(l->sock, NULL, 0, l->fb);
  if (rc != 0 && rc != FRL_EBUSY) frl_debug("send failed: %s", frl_strerror(rc));
}

static void send_hello(learner_t *l, double now) {
  frl_send_hello(l->sock, l->fb, FRL_ROLE_LEARNER, "learner", l->cfg->task, -1, 0,
                 (uint32_t)l->shape.obs_dim, (uint32_t)l->shape.act_dim);
  l->last_hello = now;
}

static void send_ack(learner_t *l, const char *actor, uint64_t seq, frl_ack_status_t st,
                     const char *reason) {
  frl_ack_t a = {.actor = actor, .seq = seq, .status = st, .reason = reason};
  if (frl_msg_encode_ack(l->fb, &a) == 0) send_built(l);
}

static void publish_params(learner_t *l) {
  size_t n;
  const float *data = frl_agent_policy_params(l->agent, &n);
  l->params_version++;
  frl_params_t p = {.version = l->params_version,
                    .checksum = frl_fnv1a64(data, n * sizeof(float), FRL_FNV_SEED),
                    .task = l->cfg->task,
                    .data = data,
                    .n_data = (uint32_t)n};
  if (l->norm) {
    frl_normalizer_export(l->norm, l->norm_mean, l->norm_std);
    p.obs_mean = l->norm_mean;
    p.obs_std = l->norm_std;
    p.n_obs_mean = p.n_obs_std = (uint32_t)l->shape.obs_dim;
  }
  if (frl_msg_encode_params(l->fb, &p) == 0) send_built(l);
}

/* Grants the broker credit for as many batches as the rate limiter lets in, up to the window. */
static void grant_credit(learner_t *l, double now) {
  if (!l->welcomed || l->stopping) return;
  uint64_t outstanding = l->granted > l->received ? l->granted - l->received : 0;
  uint64_t window = (uint64_t)l->cfg->credit_window;
  if (l->store_failing) {
    /* Probe with one batch now and then to learn when the store accepts again. */
    if (outstanding > 0 || now < l->store_probe_at) return;
    window = 1;
    l->store_probe_at = now + 2.0;
  } else {
    uint64_t room = frl_ratelimit_insert_room(&l->rl);
    uint64_t per = l->batch_items ? l->batch_items : (uint64_t)l->cfg->batch_transitions;
    uint64_t fit = room == UINT64_MAX ? window : (room + per - 1) / per;
    if (fit < window) window = fit;
  }
  if (outstanding >= window) return;
  frl_credit_t c = {.batches = (uint32_t)(window - outstanding)};
  if (frl_msg_encode_credit(l->fb, &c) == 0 && frl_send(l->sock, NULL, 0, l->fb) == 0)
    l->granted += c.batches;
}

/* ---- ingest ----------------------------------------------------------------------------- */

static void start_training(learner_t *l);
static void on_train(uv_idle_t *h);

/* While RL waits for behaviour cloning, experience is not owed samples: the limiter's target
 * stays at the samples drawn so far, so actors keep inserting (the demonstrations cloning waits
 * for need credit as well) and RL starts at the configured ratio from where cloning ends,
 * without a backlog of samples owed for the experience collected meanwhile. */
static void hold_ratelimit(learner_t *l) {
  if (l->rl.inserts > l->rl.anchor) {
    l->rl.anchor = l->rl.inserts;
    l->rl.target_at = (double)l->rl.samples;
  }
}

/* A batch that can never be stored (wrong shape, or values the task cannot take): counted in
 * all and for its actor, the reason sent back in the Ack (the actor drops the batch and logs
 * it), and logged here within the limits of refusals.h, so that an actor sending a stream of
 * broken batches cannot flood the log. */
static void reject(learner_t *l, const frl_experience_t *x, const char *err, double now) {
  const char *who = x->actor && x->actor[0] ? x->actor : "(unnamed)";
  l->rejected++;
  frl_status_rejected(l->status, who, err);
  frl_refusal_report_t r;
  if (frl_refusals_note(&l->refusals, who, err, now, &r)) {
    char repeats[80] = "", unlogged[120] = "";
    if (r.repeats)
      snprintf(repeats, sizeof repeats, "%llu more like it since the last such line",
               (unsigned long long)r.repeats);
    if (r.unlogged)
      snprintf(unlogged, sizeof unlogged, "%llu other refusals not logged, over the limit of %d "
               "lines per %.0f s", (unsigned long long)r.unlogged, FRL_REFUSALS_LINES,
               FRL_REFUSALS_REPORT_S);
    const bool both = r.repeats && r.unlogged, any = r.repeats || r.unlogged;
    frl_warn("rejected batch %llu from %s: %s%s%s%s%s%s", (unsigned long long)x->seq, who, err,
             any ? " (" : "", repeats, both ? "; " : "", unlogged, any ? ")" : "");
  }
  send_ack(l, x->actor, x->seq, FRL_ACK_REJECTED, err);
}

static void on_experience(learner_t *l, double now) {
  const frl_experience_t *x = &l->in.msg.u.experience;
  l->received++;
  if (x->count > l->batch_items) l->batch_items = x->count;
  char err[256] = "";
  frl_insert_outcome_t outcome;
  int rc = frl_replay_insert(l->replay, x, frl_wall(), &outcome, err, sizeof err);
  if (rc == FRL_EDIM || rc == FRL_EPROTO) {
    reject(l, x, err, now);
    return;
  }
  if (rc != 0) {
    /* The store cannot take it (disk full, read-only, I/O): nothing was committed, so the actor
     * keeps the batch and resends; we stop granting credit until a probe succeeds. */
    char reason[200];
    snprintf(reason, sizeof reason, "replay store cannot accept: %s", frl_strerror(rc));
    if (!l->store_failing || now - l->store_fail_logged > 10) {
      frl_error("%s (%s/replay.db); holding ingest until it recovers", reason, l->run_dir);
      l->store_fail_logged = now;
    }
    l->store_failing = true;
    l->store_probe_at = now + 2.0;
    send_ack(l, x->actor, x->seq, FRL_ACK_BUSY, reason);
    return;
  }
  if (l->store_failing) {
    frl_info("replay store accepts again");
    l->store_failing = false;
  }
  if (outcome == FRL_INSERT_DUPLICATE) {
    l->duplicates++;
    send_ack(l, x->actor, x->seq, FRL_ACK_DUPLICATE, NULL);
    return;
  }
  send_ack(l, x->actor, x->seq, FRL_ACK_OK, NULL);
  l->inserted += x->count;
  l->env_steps += x->env_steps;
  frl_ratelimit_inserted(&l->rl, x->count);
  if (l->bc_left) hold_ratelimit(l);
  if (l->norm) frl_normalizer_update(l->norm, x->obs, (int)x->count);
  for (uint32_t i = 0; i < x->n_policy_version; i++) {
    double lag = (double)l->params_version - (double)x->policy_version[i];
    l->lag_ewma += 0.01 * (lag - l->lag_ewma);
  }
  /* A demonstrator's episodes are in the store, but the learning curve is the policy's. */
  for (uint32_t i = 0; i < x->n_episodes && !x->demonstration; i++) {
    frl_episode_stat_t e;
    frl_msg_episode(x, i, &e);
    l->recent[l->recent_pos] = e.episode_return;
    l->recent_pos = (l->recent_pos + 1) % RECENT;
    if (l->n_recent < RECENT) l->n_recent++;
    l->episodes++;
  }
  frl_status_batch(l->status, x, l->params_version, l->env_steps);
  start_training(l);
}

static int on_message(learner_t *l, double now) {
  const frl_msg_t *m = &l->in.msg;
  l->last_heard = now;
  switch (m->type) {
  case FRL_MSG_EXPERIENCE:
    on_experience(l, now);
    break;
  case FRL_MSG_WELCOME:
    if (m->u.welcome.ok) {
      if (!l->welcomed) frl_info("connected to the broker");
      l->welcomed = true;
      l->lost_since = 0;
      /* A new broker session: nothing is in flight there any more. */
      l->granted = l->received = 0;
      /* The broker may hold parameters a previous learner published after the checkpoint we
       * resumed from; actors apply only newer versions, so continue above them. */
      if (l->params_version > 0 && m->u.welcome.params_version >= l->params_version)
        l->params_version = m->u.welcome.params_version + 1;
      if (l->params_version > 0) {
        l->params_version--; /* republish the current parameters for the new session */
        publish_params(l);
      }
    } else if (m->u.welcome.error && strncmp(m->u.welcome.error, FRL_WELCOME_HELLO_AGAIN,
                                             strlen(FRL_WELCOME_HELLO_AGAIN)) == 0) {
      l->welcomed = false;
      if (now - l->last_hello > 0.2) send_hello(l, now);
    } else {
      frl_error("the broker refused this learner: %s",
                m->u.welcome.error ? m->u.welcome.error : "(no reason given)");
      stop(l, FRL_LEARNER_REFUSED, NULL);
    }
    break;
  case FRL_MSG_CONTROL:
    if (m->u.control.command == FRL_CONTROL_SET_SPI) {
      double spi = m->u.control.value;
      if (isfinite(spi) && spi >= 0.01 && spi <= 10000) {
        frl_ratelimit_set_spi(&l->rl, spi);
        frl_info("samples per insert set to %g", spi);
      } else {
        frl_warn("Control.value: samples per insert %g outside [0.01, 10000]; ignored", spi);
      }
    } else if (m->u.control.command == FRL_CONTROL_SHUTDOWN) {
      stop(l, FRL_LEARNER_STOPPED, "shutdown requested");
    } else {
      frl_info("control %d: %s", (int)m->u.control.command,
               m->u.control.reason ? m->u.control.reason : "");
    }
    break;
  case FRL_MSG_HEARTBEAT:
    break;
  default:
    frl_warn("ignored an unexpected %s from the broker", frl_msg_type_name(m->type));
    break;
  }
  return 0;
}

static void drain_socket(learner_t *l) {
  double now = frl_now();
  for (int i = 0; i < 256 && !l->stopping; i++) {
    if (frl_recv_next(l->sock, false, &l->in, "the broker", NULL) <= 0) break;
    on_message(l, now);
  }
  grant_credit(l, now);
}

static bool socket_readable(learner_t *l) {
  int ev = 0;
  size_t sz = sizeof ev;
  return l->sock && zmq_getsockopt(l->sock, ZMQ_EVENTS, &ev, &sz) == 0 && (ev & ZMQ_POLLIN);
}

static void on_zpoll(uv_poll_t *h, int status, int events) {
  learner_t *l = h->data;
  drain_socket(l);
}

static void on_prepare(uv_prepare_t *h) {
  learner_t *l = h->data;
  while (!l->stopping && socket_readable(l)) drain_socket(l);
}

/* ---- training and evaluation ------------------------------------------------------------ */

/* Loads the current policy (and normalizer) into the evaluation policy. */
static void sync_eval_policy(learner_t *l) {
  size_t n;
  const float *data = frl_agent_policy_params(l->agent, &n);
  memcpy(frl_policy_params(l->eval_policy), data, n * sizeof(float));
  if (l->norm) {
    frl_normalizer_export(l->norm, l->norm_mean, l->norm_std);
    frl_policy_set_normalizer(l->eval_policy, l->norm_mean, l->norm_std,
                              (size_t)l->shape.obs_dim);
  }
}

/* --eval-physics: every evaluation episode runs on these physical parameters (the rest
 * nominal), e.g. outside the training ranges, to follow how the policy transfers as it learns.
 * Returns 0, or -1 after logging why (a parameter the environment lacks is refused, as by
 * `fleetrl eval --physics`, rather than silently left nominal). */
static int eval_physics(learner_t *l) {
  double value[FRL_RANDOMIZE_COUNT], nominal[FRL_PHYS_COUNT];
  char err[320];
  if (frl_randomize_parse_values(l->cfg->eval_physics, value, err, sizeof err) != 0) {
    frl_error("--eval-physics: %s", err);
    return -1;
  }
  frl_env_physics_nominal(l->eval_env, nominal);
  for (int p = 0; p < FRL_PHYS_COUNT; p++) {
    if (!isnan(value[p]) && isnan(nominal[p])) {
      frl_error("--eval-physics: environment %s has no parameter '%s'", l->cfg->env,
                frl_phys_name(p));
      return -1;
    }
  }
  frl_randomize_opts_t o;
  frl_randomize_fixed(&o, value);
  if (frl_randomize_wrap(&l->eval_env, &o, l->cfg->seed * 7777ULL + 4242ULL, err, sizeof err)) {
    frl_error("--eval-physics: %s", err);
    return -1;
  }
  frl_info("evaluations run on physics %s", l->cfg->eval_physics);
  return 0;
}

/* Whether --solve-return is a success rate (else a mean return). */
static bool solve_by_success(const learner_t *l) {
  return strcmp(l->cfg->solve_metric, "success") == 0;
}

/* Greedy (DQN) or deterministic (SAC mean, TD3 without noise) episodes on the learner's own
 * copy of the environment, acted by the same policy code actors run. */
static void evaluate(learner_t *l) {
  sync_eval_policy(l);
  int n = l->cfg->eval_episodes;
  double sum = 0, sum2 = 0;
  int successes = 0;
  float obs[FRL_ENV_MAX_DIM], action[FRL_ENV_MAX_DIM], env_action[FRL_ENV_MAX_DIM];
  bool discrete = l->shape.algo == FRL_ALGO_DQN;
  for (int e = 0; e < n; e++) {
    frl_env_reset(l->eval_env, obs);
    double ret = 0;
    bool success = false;
    for (;;) {
      frl_policy_act(l->eval_policy, obs, 0.0, &l->rng, action);
      if (discrete)
        env_action[0] = action[0];
      else
        frl_policy_scale(env_action, action, l->spec->act_low, l->spec->act_high,
                         (float)l->cfg->action_scale, l->shape.act_dim);
      frl_step_t st;
      frl_env_step(l->eval_env, env_action, obs, &st);
      ret += st.reward;
      success |= st.success;
      if (st.terminal || st.truncated) break;
    }
    successes += success;
    sum += ret;
    sum2 += ret * ret;
  }
  double mean = sum / n, var = sum2 / n - mean * mean;
  double sd = sqrt(var > 0 ? var : 0);
  double success_rate = (double)successes / n;
  const bool by_success = solve_by_success(l);
  double score = by_success ? success_rate : mean;
  l->last_eval = mean;
  l->last_success = success_rate;
  if (l->evals == 0 || score > l->best_score) {
    l->best_score = score;
    l->best_eval = mean;
  }
  l->evals++;
  l->last_eval_steps = l->env_steps;
  l->reports_success |= successes > 0 || by_success;
  frl_store_log_eval(l->store, l->updates, l->env_steps, mean, sd, (uint32_t)n,
                     l->reports_success ? success_rate : NAN, frl_wall());
  frl_status_eval(l->status, l->env_steps, mean, sd);
  char success_text[48] = "", streak_text[80] = "";
  if (l->reports_success)
    snprintf(success_text, sizeof success_text, ", success %.0f%%", 100.0 * success_rate);
  /* One reading over the level is the best of many noisy ones and flatters the policy;
   * --solve-evals asks for several in a row. */
  l->solve_streak = score >= l->cfg->solve_return ? l->solve_streak + 1 : 0;
  const uint64_t need = (uint64_t)l->cfg->solve_evals;
  if (l->solve_streak && need > 1)
    snprintf(streak_text, sizeof streak_text, " (%llu of %llu in a row at the solve level)",
             (unsigned long long)(l->solve_streak < need ? l->solve_streak : need),
             (unsigned long long)need);
  frl_info("evaluation at %llu env steps, %llu updates: mean return %.1f ± %.1f%s over %d "
           "episodes%s",
           (unsigned long long)l->env_steps, (unsigned long long)l->updates, mean, sd,
           success_text, n, streak_text);
  if (l->solve_streak >= need) {
    l->solved = true;
    stop(l, FRL_LEARNER_SOLVED, "solved");
  }
}

/* ---- behaviour cloning before RL (--bc-updates) ------------------------------------------ */

/* Whether the trainer has work now: cloning once a batch of demonstrations is held, else RL as
 * the rate limiter allows. */
static bool can_train(learner_t *l) {
  if (l->bc_left) return frl_replay_demo_size(l->replay) >= (uint64_t)l->cfg->batch;
  return frl_ratelimit_can_sample(&l->rl, (uint64_t)l->cfg->batch);
}

static void bc_finish(learner_t *l, double now) {
  const char *err_name = l->shape.algo == FRL_ALGO_DQN ? "greedy disagreement" : "action error";
  if (l->bc_skipped)
    frl_warn("behaviour cloning: %llu updates skipped (non-finite loss or gradient)",
             (unsigned long long)l->bc_skipped);
  frl_info("behaviour cloning done: %llu updates in %.1f s; loss %.4f -> %.4f, %s %.3f -> %.3f "
           "(first batch -> mean of the last 100)",
           (unsigned long long)l->bc_done, now - l->bc_started, l->bc_first_loss, l->bc_loss_avg,
           err_name, l->bc_first_err, l->bc_err_avg);
  hold_ratelimit(l);
  publish_params(l); /* actors act with the cloned policy from here */
  frl_info("evaluating the cloned policy (params v%llu)", (unsigned long long)l->params_version);
  evaluate(l);
}

/* Supervised updates of the policy on batches drawn uniformly from the demonstrations alone
 * (frl_agent_bc_update), in the same time slices as RL so that ingest, acks and heartbeats go
 * on; when they are done the cloned policy is published and evaluated, and RL starts from it
 * (pretraining as in DQfD, Hester et al. 2018, with the supervised loss alone). */
static void bc_slice(learner_t *l) {
  const uint32_t B = (uint32_t)l->cfg->batch;
  const double t0 = frl_now();
  if (l->bc_started == 0) {
    l->bc_started = l->bc_last_log = t0;
    frl_info("behaviour cloning: %llu updates (batch %u) on the %llu demonstrations held, "
             "before RL",
             (unsigned long long)l->bc_left, B,
             (unsigned long long)frl_replay_demo_size(l->replay));
  }
  while (!l->stopping && l->bc_left > 0 && frl_now() - t0 < TRAIN_SLICE_S) {
    const frl_replay_sample_t *s;
    if (frl_replay_sample_demos(l->replay, B, &l->rng, &s) != 0) break;
    frl_agent_batch_t ab = {.B = (int)s->B, .obs = s->obs, .action_index = s->action_index,
                            .action = s->action, .weight = s->weight};
    if (l->norm) {
      frl_normalizer_export(l->norm, l->norm_mean, l->norm_std);
      frl_normalize(l->nobs, s->obs, l->norm_mean, l->norm_std, (int)s->B, l->shape.obs_dim);
      ab.obs = l->nobs;
    }
    frl_agent_bc_stats_t st;
    int rc = frl_agent_bc_update(l->agent, &ab, &st);
    l->bc_left--;
    if (rc == -ERANGE) {
      l->bc_skipped++;
      continue;
    }
    if (rc != 0) {
      frl_error("behaviour-cloning update failed: %s", frl_strerror(rc));
      stop(l, FRL_LEARNER_ERROR, NULL);
      return;
    }
    if (l->bc_done == 0) l->bc_first_loss = st.loss, l->bc_first_err = st.action_error;
    l->bc_done++;
    /* The mean of the last 100 updates (of all of them before the 100th). */
    double k = l->bc_done < 100 ? (double)l->bc_done : 100.0;
    l->bc_loss_avg += (st.loss - l->bc_loss_avg) / k;
    l->bc_err_avg += (st.action_error - l->bc_err_avg) / k;
  }
  double now = frl_now();
  if (l->bc_left == 0 && !l->stopping) {
    bc_finish(l, now);
  } else if (now - l->bc_last_log >= 5.0) {
    frl_info("behaviour cloning: %llu of %llu updates, loss %.4f, %s %.3f",
             (unsigned long long)l->bc_done, (unsigned long long)(l->bc_done + l->bc_left),
             l->bc_loss_avg, l->shape.algo == FRL_ALGO_DQN ? "greedy disagreement" : "action error",
             l->bc_err_avg);
    l->bc_last_log = now;
  }
}

static void train_slice(learner_t *l) {
  const frl_config_t *cfg = l->cfg;
  if (l->bc_left) {
    bc_slice(l);
    return;
  }
  double t0 = frl_now();
  uint32_t B = (uint32_t)cfg->batch;
  while (!l->stopping && frl_ratelimit_can_sample(&l->rl, B) && frl_now() - t0 < TRAIN_SLICE_S) {
    double frac = (double)l->env_steps / (double)cfg->beta_anneal_steps;
    l->beta = cfg->beta0 + (1.0 - cfg->beta0) * (frac < 1 ? frac : 1);
    const frl_replay_sample_t *s;
    if (frl_replay_sample(l->replay, B, l->beta, &l->rng, &s) != 0) break;
    frl_agent_batch_t ab = {.B = (int)s->B, .obs = s->obs, .next_obs = s->next_obs,
                            .action_index = s->action_index, .action = s->action,
                            .reward = s->reward, .discount = s->discount, .weight = s->weight};
    if (l->norm) {
      /* Stored observations are raw; the networks see them normalized by today's statistics. */
      frl_normalizer_export(l->norm, l->norm_mean, l->norm_std);
      frl_normalize(l->nobs, s->obs, l->norm_mean, l->norm_std, (int)s->B, l->shape.obs_dim);
      frl_normalize(l->nnext, s->next_obs, l->norm_mean, l->norm_std, (int)s->B,
                    l->shape.obs_dim);
      ab.obs = l->nobs;
      ab.next_obs = l->nnext;
    }
    frl_agent_stats_t st;
    int rc = frl_agent_update(l->agent, &ab, l->td_abs, &st);
    frl_ratelimit_sampled(&l->rl, s->B);
    if (rc == -ERANGE) {
      /* A non-finite loss or gradient: the update was not applied. Skip the batch, count it;
       * if it keeps happening the network has diverged and the run must stop. */
      l->skipped_updates++;
      if (l->skipped_updates % 100 == 1)
        frl_warn("skipped %llu updates with a non-finite loss or gradient",
                 (unsigned long long)l->skipped_updates);
      if (l->skipped_updates > 1000 && l->skipped_updates > l->updates / 10) {
        frl_error("the network diverged: %llu of %llu updates were not finite",
                  (unsigned long long)l->skipped_updates, (unsigned long long)l->updates);
        stop(l, FRL_LEARNER_ERROR, NULL);
        return;
      }
      continue;
    }
    if (rc != 0) {
      frl_error("update failed: %s", frl_strerror(rc));
      stop(l, FRL_LEARNER_ERROR, NULL);
      return;
    }
    frl_replay_update_priorities(l->replay, s->item_id, l->td_abs, s->B);
    l->updates++;
    l->last_loss = st.loss;
    l->last_mean_q = st.mean_q;
    if (l->shape.algo != FRL_ALGO_DQN) l->last_actor_loss = st.actor_loss;
    if (l->shape.algo == FRL_ALGO_SAC) {
      l->last_alpha = st.alpha;
      l->last_entropy = st.entropy;
    }
    if (l->updates % (uint64_t)cfg->params_period == 0) publish_params(l);
  }
}

static void check_milestones(learner_t *l) {
  if (l->stopping) return;
  if (l->updates > 0 && l->env_steps >= l->next_eval_at) {
    l->next_eval_at = l->env_steps + l->cfg->eval_period;
    evaluate(l);
  }
  if (!l->stopping && l->env_steps >= l->cfg->max_env_steps) {
    /* A final evaluation, unless one was just taken at this very point. */
    if (l->updates > 0 && l->last_eval_steps != l->env_steps) evaluate(l);
    if (!l->stopping) stop(l, FRL_LEARNER_UNSOLVED, "environment-step budget spent");
  }
}

static void on_train(uv_idle_t *h) {
  learner_t *l = h->data;
  train_slice(l);
  check_milestones(l);
  if (!l->stopping && !can_train(l)) {
    uv_idle_stop(&l->train);
    l->training_active = false;
  }
  grant_credit(l, frl_now());
}

static void start_training(learner_t *l) {
  check_milestones(l);
  if (l->bc_left && !l->bc_wait_logged && frl_ratelimit_can_sample(&l->rl, l->cfg->batch) &&
      frl_replay_demo_size(l->replay) < (uint64_t)l->cfg->batch) {
    frl_info("RL waits for behaviour cloning: %llu of the %d demonstrations it needs are held",
             (unsigned long long)frl_replay_demo_size(l->replay), l->cfg->batch);
    l->bc_wait_logged = true;
  }
  if (!l->training_active && !l->stopping && can_train(l)) {
    uv_idle_start(&l->train, on_train);
    l->training_active = true;
  }
}

/* ---- checkpoints ------------------------------------------------------------------------ */

/* Writes the learner's whole state into the store's checkpoints table (the newest 2 are kept).
 * It runs on the loop thread between events, as every store access does (the connection is
 * single-threaded, and a second writer would only make ingest wait for its lock instead); the
 * time it takes is logged. Skipped when nothing changed since the last one; a failure is
 * logged and the previous checkpoints stay. */
static void write_checkpoint(learner_t *l, double now) {
  l->last_checkpoint = now;
  if (l->updates == l->checkpoint_updates && l->env_steps == l->checkpoint_env_steps) return;
  double t0 = frl_now();
  frl_checkpoint_learner_t c = {
      .env_steps = l->env_steps, .transitions = l->inserted, .updates = l->updates,
      .params_version = l->params_version, .episodes = l->episodes,
      .duplicates = l->duplicates, .rejected = l->rejected,
      .skipped_updates = l->skipped_updates, .next_eval_at = l->next_eval_at,
      .last_eval_steps = l->last_eval_steps, .evals = (uint64_t)l->evals,
      .reports_success = l->reports_success, .solve_streak = l->solve_streak,
      .solve_level = l->cfg->solve_return,
      .solve_by_success = solve_by_success(l),
      .last_eval = l->last_eval,
      .best_eval = l->best_eval, .last_success = l->last_success, .best_score = l->best_score,
      .beta = l->beta, .lag_ewma = l->lag_ewma, .last_loss = l->last_loss,
      .last_mean_q = l->last_mean_q, .ratelimit = l->rl, .spi_flag = l->cfg->spi,
      .rng = l->rng};
  frl_store_totals_t t;
  uint8_t *blob = NULL;
  size_t n = 0;
  frl_store_checkpoint_t info = {.created = frl_wall(), .env_steps = l->env_steps,
                                 .updates = l->updates, .params_version = l->params_version};
  int rc = frl_store_totals(l->store, &t);
  c.store = (frl_checkpoint_store_t){.batches = t.batches, .transitions = t.transitions,
                                     .env_steps = t.env_steps,
                                     .last_episode_id = t.last_episode_id};
  if (rc == 0)
    rc = frl_checkpoint_encode(l->cfg->task, l->agent, l->norm, &c, info.created, &blob, &n);
  if (rc == 0) rc = frl_store_save_checkpoint(l->store, &info, blob, n, 2);
  free(blob);
  if (rc != 0) {
    frl_warn("checkpoint not written: %s; the previous one stays", frl_strerror(rc));
    return;
  }
  l->checkpoint_updates = l->updates;
  l->checkpoint_env_steps = l->env_steps;
  frl_info("checkpoint %lld: %llu updates, %llu env steps, params v%llu; %.2f MB in %.1f ms",
           (long long)info.id, (unsigned long long)l->updates,
           (unsigned long long)l->env_steps, (unsigned long long)l->params_version,
           (double)n / 1e6, 1e3 * (frl_now() - t0));
}

/* Takes over a restored checkpoint. Counters the store also keeps (environment steps,
 * transitions, episodes, recent returns) add what it committed after the checkpoint was taken,
 * since those batches were acknowledged and are not sent again; the rate limiter counts them
 * as inserted, so training first catches up on them. */
static void take_checkpoint(learner_t *l, const frl_checkpoint_learner_t *c,
                            const frl_store_checkpoint_t *info) {
  frl_store_totals_t t = {0};
  uint64_t latest = 0;
  if (frl_store_totals(l->store, &t) != 0) t = (frl_store_totals_t){0};
  uint64_t d_env = t.env_steps > c->store.env_steps ? t.env_steps - c->store.env_steps : 0;
  uint64_t d_tr = t.transitions > c->store.transitions ? t.transitions - c->store.transitions : 0;
  uint64_t d_ep = t.last_episode_id > c->store.last_episode_id
                      ? t.last_episode_id - c->store.last_episode_id
                      : 0;
  l->env_steps = c->env_steps + d_env;
  l->inserted = c->transitions + d_tr;
  l->episodes = c->episodes + d_ep;
  l->updates = c->updates;
  l->params_version = c->params_version;
  l->duplicates = c->duplicates;
  l->rejected = c->rejected;
  l->skipped_updates = c->skipped_updates;
  l->next_eval_at = c->next_eval_at;
  l->last_eval_steps = c->last_eval_steps;
  l->evals = (int)c->evals;
  l->reports_success = c->reports_success != 0;
  /* A streak counts only against the level and metric it was reached at. */
  l->solve_streak = c->solve_level == l->cfg->solve_return &&
                            (c->solve_by_success != 0) == solve_by_success(l)
                        ? c->solve_streak
                        : 0;
  if (c->solve_streak && !l->solve_streak)
    frl_info("solve level changed since the checkpoint: its %llu evaluation(s) in a row at it "
             "no longer count", (unsigned long long)c->solve_streak);
  l->last_eval = c->last_eval;
  l->best_eval = c->best_eval;
  l->last_success = c->last_success;
  l->best_score = c->best_score;
  l->beta = c->beta;
  l->lag_ewma = c->lag_ewma;
  l->last_loss = c->last_loss;
  l->last_mean_q = c->last_mean_q;
  l->rng = c->rng;
  /* The limiter's counters and ratio are state; its warm-up size and slack follow the flags. */
  l->rl.inserts = c->ratelimit.inserts + d_tr;
  l->rl.samples = c->ratelimit.samples;
  l->rl.anchor = c->ratelimit.anchor;
  l->rl.target_at = c->ratelimit.target_at;
  l->rl.spi = c->ratelimit.spi;
  if (l->cfg->spi != c->spi_flag) {
    frl_ratelimit_set_spi(&l->rl, l->cfg->spi);
    frl_info("samples per insert: --spi changed from %g to %g since the checkpoint", c->spi_flag,
             l->cfg->spi);
  }
  if (frl_store_recent_returns(l->store, l->recent, RECENT, &l->n_recent) != 0) l->n_recent = 0;
  l->recent_pos = l->n_recent % RECENT;
  if (frl_store_latest_version(l->store, &latest) == 0 && latest > l->params_version)
    l->params_version = latest;
  l->checkpoint_updates = c->updates;
  l->checkpoint_env_steps = c->env_steps;
  frl_info("resumed from checkpoint %lld (%.0f s old): %llu updates, %llu env steps (%llu of "
           "them stored after it), params v%llu%s, %llu evaluations",
           (long long)info->id, frl_wall() - info->created, (unsigned long long)l->updates,
           (unsigned long long)l->env_steps, (unsigned long long)d_env,
           (unsigned long long)l->params_version,
           l->params_version > c->params_version ? " (above newer versions seen in the store)" : "",
           (unsigned long long)c->evals);
}

/* At start, once the replay index is rebuilt: resumes from the newest checkpoint in the store,
 * or from the one before it when the newest does not restore. Returns 0 (also when the store
 * has none), or -1 after logging why the learner must not start: checkpoints of another task
 * or network, or none usable (starting afresh would soon replace them). */
static int resume_checkpoint(learner_t *l) {
  int count = 0;
  if (frl_store_count_checkpoints(l->store, &count) != 0) return -1;
  char err[400];
  for (int rank = 0; rank < count; rank++) {
    frl_store_checkpoint_t info;
    void *blob = NULL;
    size_t n = 0;
    int rc = frl_store_load_checkpoint(l->store, rank, &info, &blob, &n);
    if (rc == FRL_ECORRUPT) continue; /* logged */
    if (rc != 0) return -1;
    frl_checkpoint_learner_t c = {0};
    rc = frl_checkpoint_restore(blob, n, l->cfg->task, l->agent, l->norm, &c, err, sizeof err);
    free(blob);
    if (rc == 0) {
      take_checkpoint(l, &c, &info);
      return 0;
    }
    if (rc == FRL_EDIM) {
      frl_error("cannot resume from checkpoint %lld in %s/replay.db: %s. Use another --run-dir "
                "for another task or network, or delete the checkpoints (sqlite3 replay.db "
                "'DELETE FROM checkpoints') to train this store's data afresh",
                (long long)info.id, l->run_dir, err);
      return -1;
    }
    frl_error("checkpoint %lld in %s/replay.db is damaged: %s", (long long)info.id, l->run_dir,
              err);
  }
  if (count > 0) {
    frl_error("none of the %d checkpoints in %s/replay.db can be restored; not starting afresh "
              "over them (delete them with sqlite3 replay.db 'DELETE FROM checkpoints' to do so)",
              count, l->run_dir);
    return -1;
  }
  return 0;
}

/* ---- progress --------------------------------------------------------------------------- */

static void print_progress(learner_t *l, bool final) {
  if (!l->cfg->progress) return;
  char line[300];
  double rr = recent_return(l);
  char eval[48] = "-";
  if (l->evals && l->reports_success)
    snprintf(eval, sizeof eval, "%.1f (%.0f%%)", l->last_eval, 100.0 * l->last_success);
  else if (l->evals)
    snprintf(eval, sizeof eval, "%.1f", l->last_eval);
  snprintf(line, sizeof line,
           "env %7llu steps %6.0f/s | updates %6llu %5.0f/s | replay %6llu | return %6.1f | "
           "eval %s | lag %.1f",
           (unsigned long long)l->env_steps, l->env_rate, (unsigned long long)l->updates,
           l->upd_rate, (unsigned long long)frl_replay_size(l->replay), isnan(rr) ? 0.0 : rr,
           eval, l->lag_ewma);
  if (isatty(STDOUT_FILENO)) {
    printf("\r%s\033[K%s", line, final ? "\n" : "");
  } else {
    printf("%s\n", line);
  }
  fflush(stdout);
}

/* One slice of store upkeep per loop turn, between events: a slice of the priority
 * write-back pass first, else a step of the dedup window (batch records older than
 * --dedup-window go; see learner/store.c for why that is safe). Stops itself when neither has
 * work left; on_tick starts them again. */
static void on_upkeep(uv_idle_t *h) {
  learner_t *l = h->data;
  if (l->flushing) {
    uint32_t left = 0;
    int rc = frl_replay_flush_some(l->replay, FLUSH_SLICE_ROWS, &left);
    if (rc != 0) /* still dirty: the next period resumes the pass where it stopped */
      frl_warn("writing priorities back failed: %s", frl_strerror(rc));
    if (rc != 0 || left == 0) l->flushing = false;
  } else if (l->pruning) {
    uint32_t gone = 0;
    int rc = frl_store_prune_batches(l->store, frl_wall() - l->cfg->dedup_window_s,
                                     PRUNE_STEP_ROWS, &gone);
    if (rc != 0) frl_warn("deleting batch records past the dedup window failed: %s",
                          frl_strerror(rc));
    if (rc != 0 || gone < PRUNE_STEP_ROWS) l->pruning = false;
  }
  if (!l->flushing && !l->pruning) uv_idle_stop(&l->upkeep);
}

static void on_tick(uv_timer_t *h) {
  learner_t *l = h->data;
  const frl_config_t *cfg = l->cfg;
  double now = frl_now();
  if (l->welcomed && now - l->last_heard > cfg->peer_timeout_s) {
    frl_warn("broker silent for %.1f s; reconnecting", now - l->last_heard);
    l->welcomed = false;
    l->lost_since = now;
  }
  if (!l->welcomed) {
    if (now - l->last_hello >= cfg->heartbeat_s) send_hello(l, now);
    if (l->lost_since > 0 && now - l->lost_since > cfg->connect_timeout_s) {
      if (l->last_heard == 0) {
        frl_error("no answer from the broker at %s after %.0f s (%s)", cfg->learner_endpoint,
                  cfg->connect_timeout_s, frl_transport_hint());
        stop(l, FRL_LEARNER_NO_BROKER, NULL);
        return;
      }
      frl_warn("still no broker at %s; retrying", cfg->learner_endpoint);
      l->lost_since = now;
    }
  } else if (now - l->last_heartbeat >= cfg->heartbeat_s) {
    frl_heartbeat_t hb = {.name = "learner", .role = FRL_ROLE_LEARNER,
                          .params_version = l->params_version, .env_steps = l->env_steps,
                          .time_ns = frl_now_ns()};
    if (frl_msg_encode_heartbeat(l->fb, &hb) == 0) send_built(l);
    l->last_heartbeat = now;
  }
  /* Training also starts without new experience: a learner restarted on a full store owes the
   * rate limiter samples before it grants credit, so waiting for a batch would deadlock. */
  start_training(l);
  grant_credit(l, now);
  if (now - l->rate_t >= 1.0) {
    double dt = now - l->rate_t;
    l->env_rate = (double)(l->env_steps - l->rate_env) / dt;
    l->upd_rate = (double)(l->updates - l->rate_upd) / dt;
    l->rate_t = now;
    l->rate_env = l->env_steps;
    l->rate_upd = l->updates;
    double every = isatty(STDOUT_FILENO) ? 1.0 : l->cfg->progress_period_s;
    if (now - l->last_progress_print >= every) {
      print_progress(l, false);
      l->last_progress_print = now;
    }
  }
  if (now - l->last_flush >= cfg->flush_s && !l->flushing) {
    l->flushing = true; /* a write-back pass, written by on_upkeep a slice at a time */
    l->last_flush = now;
    uv_idle_start(&l->upkeep, on_upkeep);
  }
  if (now - l->last_prune >= 1.0 && !l->pruning) {
    l->pruning = true;
    l->last_prune = now;
    uv_idle_start(&l->upkeep, on_upkeep);
  }
  if (now - l->last_progress_row >= 5.0) {
    frl_store_progress_t p = {.updates = l->updates, .env_steps = l->env_steps,
                              .replay_size = frl_replay_size(l->replay),
                              .params_version = l->params_version, .loss = l->last_loss,
                              .mean_q = l->last_mean_q, .beta = l->beta,
                              .updates_per_s = l->upd_rate, .env_steps_per_s = l->env_rate,
                              .recent_return = recent_return(l),
                              .actor_loss = l->last_actor_loss, .alpha = l->last_alpha,
                              .entropy = l->last_entropy};
    frl_store_log_progress(l->store, &p, frl_wall());
    l->last_progress_row = now;
  }
  if (cfg->checkpoint_s > 0 && now - l->last_checkpoint >= cfg->checkpoint_s)
    write_checkpoint(l, now);
}

/* ---- stopping --------------------------------------------------------------------------- */

static void close_cb(uv_handle_t *h) { (void)h; }

static void stop(learner_t *l, int code, const char *why) {
  if (l->stopping) return;
  l->stopping = true;
  l->exit_code = code;
  if (why) frl_info("stopping: %s", why);
  uv_stop(&l->loop);
}

static void on_signal(uv_signal_t *h, int sig) {
  learner_t *l = h->data;
  frl_info("%s received", sig == SIGINT ? "SIGINT" : "SIGTERM");
  stop(l, FRL_LEARNER_STOPPED, NULL);
}

/* The figures /metrics and the status page show, read when someone asks. */
static void fill_status(void *arg, frl_status_figures_t *f) {
  const learner_t *l = arg;
  double psum, pmin;
  frl_replay_priority_stats(l->replay, &psum, &pmin);
  *f = (frl_status_figures_t){
      .env_steps = l->env_steps, .inserted = l->inserted, .duplicates = l->duplicates,
      .rejected = l->rejected, .samples = l->rl.samples, .updates = l->updates,
      .skipped_updates = l->skipped_updates, .episodes = l->episodes,
      .params_version = l->params_version, .replay_size = frl_replay_size(l->replay),
      .capacity = l->cfg->capacity, .evals = l->evals, .loss = l->last_loss,
      .mean_q = l->last_mean_q, .actor_loss = l->last_actor_loss, .alpha = l->last_alpha,
      .entropy = l->last_entropy, .recent_return = recent_return(l), .last_eval = l->last_eval,
      .best_eval = l->best_eval, .last_success = l->last_success, .lag = l->lag_ewma,
      .priority_max = frl_replay_max_priority(l->replay), .env_rate = l->env_rate,
      .upd_rate = l->upd_rate, .spi = l->rl.spi, .beta = l->beta, .connected = l->welcomed,
      .store_failing = l->store_failing, .solved = l->solved, .priority_sum = psum,
      .priority_min = pmin, .demo_size = frl_replay_demo_size(l->replay)};
  frl_store_wal_stats_t w;
  frl_store_wal_stats(l->store, &w);
  f->wal_restarts = w.restarts;
  f->wal_restarts_busy = w.restarts_busy;
  f->wal_pages = w.wal_pages;
  f->wal_pages_max = w.wal_pages_max;
}

static void write_summary(learner_t *l) {
  char path[600], tmp[610];
  snprintf(path, sizeof path, "%s/summary.json", l->run_dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    frl_error("cannot write %s: %s", tmp, strerror(errno));
    return;
  }
  double rr = recent_return(l);
  fprintf(f,
          "{\n  \"task\": \"%s\",\n  \"env\": \"%s\",\n  \"algo\": \"%s\",\n"
          "  \"solved\": %s,\n  \"solve_metric\": \"%s\",\n  \"eval_success_rate\": %.3f,\n"
          "  \"eval_return\": %.3f,\n  \"best_eval_return\": %.3f,\n  \"evaluations\": %d,\n"
          "  \"eval_episodes\": %d,\n  \"solve_return\": %.3f,\n  \"env_steps\": %llu,\n"
          "  \"updates\": %llu,\n  \"transitions\": %llu,\n  \"episodes\": %llu,\n"
          "  \"recent_return\": %.3f,\n  \"params_version\": %llu,\n  \"replay_size\": %llu,\n"
          "  \"duplicates\": %llu,\n  \"rejected\": %llu,\n  \"wall_seconds\": %.3f,\n"
          "  \"seed\": %llu,\n  \"exit_code\": %d,\n  \"policy\": \"policy.bin\"\n}\n",
          l->cfg->task, l->cfg->env, l->cfg->algo, l->solved ? "true" : "false",
          l->cfg->solve_metric, l->evals ? l->last_success : 0.0,
          l->evals ? l->last_eval : 0.0, l->evals ? l->best_eval : 0.0, l->evals,
          l->cfg->eval_episodes, l->cfg->solve_return, (unsigned long long)l->env_steps,
          (unsigned long long)l->updates, (unsigned long long)l->inserted,
          (unsigned long long)l->episodes, isnan(rr) ? 0.0 : rr,
          (unsigned long long)l->params_version, (unsigned long long)frl_replay_size(l->replay),
          (unsigned long long)l->duplicates, (unsigned long long)l->rejected,
          frl_now() - l->started, (unsigned long long)l->cfg->seed, l->exit_code);
  if (fclose(f) != 0 || rename(tmp, path) != 0)
    frl_error("cannot write %s: %s", path, strerror(errno));
}

static void save_policy(learner_t *l) {
  frl_policy_info_t info = {.shape = l->shape, .params_version = l->params_version,
                            .updates = l->updates, .action_scale = (float)l->cfg->action_scale,
                            .action_history = l->cfg->action_history,
                            .obs_history = l->cfg->obs_history};
  snprintf(info.task, sizeof info.task, "%s", l->cfg->task);
  snprintf(info.env, sizeof info.env, "%s", l->cfg->env);
  char path[600];
  snprintf(path, sizeof path, "%s/policy.bin", l->run_dir);
  size_t n;
  const float *data = frl_agent_policy_params(l->agent, &n);
  if (l->norm) frl_normalizer_export(l->norm, l->norm_mean, l->norm_std);
  int rc = frl_policy_save(path, &info, data, n, l->norm ? l->norm_mean : NULL,
                           l->norm ? l->norm_std : NULL);
  if (rc != 0) frl_error("cannot write %s: %s", path, frl_strerror(rc));
}

int frl_learner_main(const frl_config_t *cfg) {
  learner_t *l = frl_xcalloc(1, sizeof *l);
  l->cfg = cfg;
  l->exit_code = FRL_LEARNER_ERROR;
  l->started = frl_now();
  l->last_actor_loss = l->last_alpha = l->last_entropy = NAN;
  snprintf(l->run_dir, sizeof l->run_dir, "%s", cfg->run_dir);
  signal(SIGPIPE, SIG_IGN);
  frl_inbox_init(&l->in);
  int rc = frl_mkdir_p(l->run_dir);
  if (rc != 0) {
    frl_error("--run-dir: cannot create %s: %s", l->run_dir, frl_strerror(rc));
    goto out;
  }
  char err[256];
  rc = frl_env_new(&l->eval_env, cfg->env, cfg->seed * 7777ULL + 99991ULL, err, sizeof err);
  if (rc != 0) {
    frl_error("--env: %s", err);
    goto out;
  }
  if (cfg->eval_physics[0] && eval_physics(l) != 0) goto out;
  /* Outermost, as on the actors: the history records the policy's commands before any delay. */
  if (frl_history_wrap(&l->eval_env, cfg->action_history, cfg->obs_history, err, sizeof err) !=
      0) {
    frl_error("%s", err);
    goto out;
  }
  l->spec = frl_env_spec(l->eval_env);
  if (frl_policy_shape_from_config(cfg, l->spec, &l->shape, err, sizeof err) != 0) {
    frl_error("%s", err);
    goto out;
  }
  bool discrete = l->shape.algo == FRL_ALGO_DQN;
  char db[600];
  snprintf(db, sizeof db, "%s/replay.db", l->run_dir);
  frl_store_config_t sc = {.path = db, .obs_dim = (uint32_t)l->shape.obs_dim,
                           .act_dim = (uint32_t)l->shape.act_dim, .discrete = discrete};
  rc = frl_store_open(&l->store, &sc);
  if (rc != 0) {
    frl_error("cannot open the replay store %s: %s", db, frl_strerror(rc));
    goto out;
  }
  frl_store_set_meta(l->store, "task", cfg->task);
  frl_store_set_meta(l->store, "env", cfg->env);
  frl_replay_config_t rcfg = {.capacity = cfg->capacity, .obs_dim = (uint32_t)l->spec->obs_dim,
                              .act_dim = (uint32_t)l->shape.act_dim,
                              .n_actions = (uint32_t)l->shape.n_actions,
                              .alpha = cfg->alpha, .eps = cfg->priority_eps,
                              .prioritized = cfg->prioritized,
                              .max_batch = (uint32_t)cfg->batch,
                              .demo_capacity = cfg->demo_capacity,
                              .demo_bonus = cfg->demo_bonus};
  rc = frl_replay_open(&l->replay, &rcfg, l->store);
  if (rc != 0) {
    frl_error("cannot build the replay index from %s: %s", db, frl_strerror(rc));
    goto out;
  }
  frl_rng_seed(&l->rng, cfg->seed * 31337ULL + 1);
  frl_agent_config_t ac;
  frl_agent_config_from(cfg, &l->shape, &ac);
  l->agent = frl_agent_new(&ac);
  if (!l->agent) {
    frl_error("cannot build the %s learner (see the message above)", cfg->algo);
    goto out;
  }
  l->eval_policy = frl_policy_new(&l->shape, 1, &l->rng);
  if (!l->eval_policy) goto out;
  size_t od = (size_t)l->shape.obs_dim;
  if (cfg->normalize_obs) l->norm = frl_normalizer_new(l->shape.obs_dim);
  l->norm_mean = frl_xcalloc(od, sizeof(float));
  l->norm_std = frl_xcalloc(od, sizeof(float));
  l->nobs = frl_xmalloc(sizeof(float) * od * (size_t)cfg->batch);
  l->nnext = frl_xmalloc(sizeof(float) * od * (size_t)cfg->batch);
  l->td_abs = frl_xmalloc(sizeof(float) * (size_t)cfg->batch);
  /* The limiter's slack covers the credit window, so actors and learner overlap instead of
   * taking turns. */
  double tolerance = cfg->spi * cfg->credit_window * cfg->batch_transitions;
  if (tolerance < 2.0 * cfg->batch) tolerance = 2.0 * cfg->batch;
  frl_ratelimit_init(&l->rl, cfg->spi, cfg->min_replay, tolerance);
  /* Items already in a resumed store count as inserted, so training can use them. */
  frl_ratelimit_inserted(&l->rl, frl_replay_size(l->replay));
  l->next_eval_at = cfg->eval_period;
  l->beta = cfg->beta0;
  l->last_checkpoint = l->started;
  if (resume_checkpoint(l) != 0) goto out;
  if (cfg->bc_updates > 0 && l->updates > 0) {
    frl_info("behaviour cloning skipped: resumed after %llu RL updates",
             (unsigned long long)l->updates);
  } else if (cfg->bc_updates > 0) {
    l->bc_left = cfg->bc_updates;
    hold_ratelimit(l);
  }

  l->fb = frl_fb_builder_new(1 << 20);
  l->ctx = zmq_ctx_new();
  l->sock = frl_socket_dealer(l->ctx, cfg->learner_endpoint, "learner");
  if (!l->sock) {
    frl_error("--learner-endpoint: cannot connect to %s: %s", cfg->learner_endpoint,
              zmq_strerror(errno));
    goto out;
  }
  int fd;
  size_t fdsz = sizeof fd;
  zmq_getsockopt(l->sock, ZMQ_FD, &fd, &fdsz);

  uv_loop_init(&l->loop);
  uv_poll_init(&l->loop, &l->zpoll, fd);
  uv_prepare_init(&l->loop, &l->prepare);
  uv_idle_init(&l->loop, &l->train);
  uv_idle_init(&l->loop, &l->upkeep);
  l->upkeep.data = l;
  uv_timer_init(&l->loop, &l->tick);
  uv_signal_init(&l->loop, &l->sigint);
  uv_signal_init(&l->loop, &l->sigterm);
  l->zpoll.data = l->prepare.data = l->train.data = l->tick.data = l;
  l->sigint.data = l->sigterm.data = l;
  uv_poll_start(&l->zpoll, UV_READABLE, on_zpoll);
  uv_prepare_start(&l->prepare, on_prepare);
  uint64_t tick_ms = (uint64_t)(cfg->heartbeat_s * 1000 / 2);
  uv_timer_start(&l->tick, on_tick, 0, tick_ms ? tick_ms : 1);
  uv_signal_start(&l->sigint, on_signal, SIGINT);
  uv_signal_start(&l->sigterm, on_signal, SIGTERM);
  /* Without its HTTP port the learner still trains (the reason is logged). */
  frl_status_new(&l->status, &l->loop, cfg, fill_status, l);
  if (l->status && cfg->progress) {
    printf("status page: http://%s/  (Prometheus metrics: /metrics)\n",
           frl_status_address(l->status));
    fflush(stdout);
  }

  frl_info("task %s: env %s, replay %s (%llu items), capacity %u, batch %d, spi %g, budget %llu "
           "env steps",
           cfg->task, cfg->env, db, (unsigned long long)frl_replay_size(l->replay), cfg->capacity,
           cfg->batch, cfg->spi, (unsigned long long)cfg->max_env_steps);
  l->lost_since = l->started;
  l->rate_t = l->started;
  send_hello(l, l->started);
  uv_run(&l->loop, UV_RUN_DEFAULT);

  print_progress(l, true);
  /* Orderly end: persist what the run learned, tell the fleet if the run is over. */
  frl_replay_flush(l->replay);
  if (cfg->checkpoint_s > 0) write_checkpoint(l, frl_now());
  if (l->exit_code == FRL_LEARNER_SOLVED || l->exit_code == FRL_LEARNER_UNSOLVED) {
    frl_control_t c = {.command = FRL_CONTROL_SHUTDOWN,
                       .reason = l->solved ? "task solved" : "environment-step budget spent"};
    if (l->welcomed && frl_msg_encode_control(l->fb, &c) == 0) send_built(l);
  }
  save_policy(l);
  write_summary(l);
  frl_info("%s after %llu env steps, %llu updates, %.1f s; best evaluation %.1f; summary in "
           "%s/summary.json",
           l->solved ? "SOLVED" : "not solved", (unsigned long long)l->env_steps,
           (unsigned long long)l->updates, frl_now() - l->started, l->best_eval, l->run_dir);

  frl_status_destroy(&l->status);
  uv_close((uv_handle_t *)&l->zpoll, close_cb);
  uv_close((uv_handle_t *)&l->prepare, close_cb);
  uv_close((uv_handle_t *)&l->train, close_cb);
  uv_close((uv_handle_t *)&l->upkeep, close_cb);
  uv_close((uv_handle_t *)&l->tick, close_cb);
  uv_close((uv_handle_t *)&l->sigint, close_cb);
  uv_close((uv_handle_t *)&l->sigterm, close_cb);
  uv_run(&l->loop, UV_RUN_DEFAULT);
  uv_loop_close(&l->loop);
out:;
  int code = l->exit_code;
  if (l->sock) {
    /* Give the final messages a moment to leave before the socket closes (linger is 0). */
    int linger = 500;
    zmq_setsockopt(l->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(l->sock);
  }
  if (l->ctx) zmq_ctx_term(l->ctx);
  frl_fb_builder_destroy(&l->fb);
  frl_inbox_free(&l->in);
  free(l->td_abs);
  frl_agent_destroy(&l->agent);
  frl_policy_destroy(&l->eval_policy);
  frl_normalizer_destroy(&l->norm);
  free(l->norm_mean);
  free(l->norm_std);
  free(l->nobs);
  free(l->nnext);
  frl_replay_close(&l->replay);
  frl_store_close(&l->store);
  frl_env_destroy(&l->eval_env);
  free(l);
  return code;
}
