/* actor.c: the simulated actor's loop: act, step, build transitions, ship, listen. The
 * network is serviced between environment steps and never blocks stepping for longer than a
 * short poll; a full outbox pauses a simulated actor (backpressure) or sheds (physical). */
#include "actor.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "broker.h"
#include "common.h"
#include "env.h"
#include "hardware.h"
#include "hindsight.h"
#include "history.h"
#include "log.h"
#include "nstep.h"
#include "outbox.h"
#include "policy.h"
#include "randomize.h"
#include "rng.h"
#include "transport.h"

#define MAX_EPISODES_PER_BATCH 256

typedef struct {
  const frl_config_t *cfg;
  frl_env_t *env;
  const frl_env_spec_t *spec;
  frl_policy_t *policy;
  bool discrete;
  int act_dim;
  double exploration;   /* DQN epsilon, SAC sampling (1), TD3 noise std */
  frl_nstep_t *ns;
  frl_hindsight_t *hindsight; /* relabeled copies of finished episodes (NULL: off) */
  frl_outbox_t *outbox;
  frl_rng_t rng;
  uint64_t params_version;
  /* the batch being filled */
  int cap, count;
  float *obs, *next_obs, *reward, *discount, *priority, *action_vec;
  int32_t *action;
  uint64_t *version;
  frl_episode_stat_t episodes[MAX_EPISODES_PER_BATCH];
  char *physics;        /* per episode of the batch: its randomized physics (JSON) */
  int n_episodes;
  uint32_t batch_env_steps;
  uint64_t seq;
  /* counters */
  uint64_t env_steps, shed, rejected, episodes_done;
  /* network */
  void *ctx, *sock;
  frl_fb_builder_t *fb;
  frl_inbox_t in;
  bool welcomed, estopped, shutdown;
  double last_heard, last_hello, last_heartbeat, lost_since;
  FILE *ack_log;
} actor_t;

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { g_stop = sig; }

double frl_actor_epsilon(int i, int n, double base, double alpha) {
  if (n <= 1) return base;
  return pow(base, 1.0 + alpha * (double)i / (double)(n - 1));
}

static void on_transition(void *ctx, const frl_transition_t *t) {
  actor_t *a = ctx;
  int d = a->spec->obs_dim, i = a->count;
  memcpy(a->obs + (size_t)i * d, t->obs, sizeof(float) * (size_t)d);
  memcpy(a->next_obs + (size_t)i * d, t->next_obs, sizeof(float) * (size_t)d);
  if (a->discrete)
    a->action[i] = (int32_t)t->action[0];
  else
    memcpy(a->action_vec + (size_t)i * a->act_dim, t->action, sizeof(float) * (size_t)a->act_dim);
  a->reward[i] = t->reward;
  a->discount[i] = t->discount;
  a->version[i] = a->params_version;
  a->count++;
}

/* Encodes the filled batch with initial priorities and hands it to the outbox. Returns false
 * when the outbox is full and the batch must wait (backpressure mode). */
static bool seal_batch(actor_t *a) {
  if (a->count == 0 && a->n_episodes == 0) return true;
  if (frl_outbox_depth(a->outbox) >= frl_outbox_capacity(a->outbox) && a->cfg->backpressure)
    return false;
  /* Without usable initial priorities (no critic on this actor, or a non-finite result) the
   * learner gives the batch its running max priority. */
  bool have_priority = a->count > 0 &&
                       frl_policy_priorities(a->policy, a->count, a->obs, a->action, a->reward,
                                             a->discount, a->next_obs, a->priority) == 0;
  frl_experience_t x = {.actor = a->cfg->name,
                        .seq = a->seq + 1,
                        .count = (uint32_t)a->count,
                        .obs_dim = (uint32_t)a->spec->obs_dim,
                        .act_dim = (uint32_t)a->act_dim,
                        .obs = a->obs,
                        .action_index = a->discrete ? a->action : NULL,
                        .n_action_index = a->discrete ? (uint32_t)a->count : 0,
                        .action = a->discrete ? NULL : a->action_vec,
                        .n_action = a->discrete ? 0 : (uint32_t)(a->count * a->act_dim),
                        .reward = a->reward,
                        .discount = a->discount,
                        .next_obs = a->next_obs,
                        .priority = have_priority ? a->priority : NULL,
                        .n_priority = have_priority ? (uint32_t)a->count : 0,
                        .policy_version = a->version,
                        .n_policy_version = (uint32_t)a->count,
                        .n_episodes = (uint32_t)a->n_episodes,
                        .episodes_in = a->episodes,
                        .env_steps = a->batch_env_steps};
  int rc = frl_msg_encode_experience(a->fb, &x);
  if (rc != 0) {
    frl_error("cannot encode a batch of %d transitions: %s", a->count, frl_strerror(rc));
    a->shed++;
  } else {
    size_t len;
    const void *data = frl_fb_builder_data(a->fb, &len);
    if (frl_outbox_push(a->outbox, a->seq + 1, data, len) == 0) {
      a->seq++;
    } else {
      a->shed++; /* physical robots never wait on the network: the batch is shed and counted */
    }
  }
  a->count = 0;
  a->n_episodes = 0;
  a->batch_env_steps = 0;
  return true;
}

static void send_heartbeat(actor_t *a) {
  frl_heartbeat_t h = {.name = a->cfg->name,
                       .role = FRL_ROLE_ACTOR,
                       .params_version = a->params_version,
                       .outbox = frl_outbox_depth(a->outbox),
                       .shed = a->shed,
                       .env_steps = a->env_steps,
                       .time_ns = frl_now_ns(),
                       .safe_mode = a->estopped,
                       .estop = a->estopped};
  if (frl_msg_encode_heartbeat(a->fb, &h) == 0) frl_send(a->sock, NULL, 0, a->fb);
}

static void send_hello(actor_t *a, double now) {
  frl_send_hello(a->sock, a->fb, FRL_ROLE_ACTOR, a->cfg->name, a->cfg->task,
                 a->cfg->actor_index, a->cfg->num_actors, (uint32_t)a->spec->obs_dim,
                 (uint32_t)a->act_dim);
  a->last_hello = now;
}

static void apply_params(actor_t *a, const frl_params_t *p) {
  size_t n = frl_policy_n_params(a->policy);
  if (p->version <= a->params_version) return;
  if (p->n_data != n) {
    frl_error("Params v%llu: %u floats, this actor's %s network has %zu (check --algo, "
              "--hidden1/--hidden2 and --dueling match the learner); ignored",
              (unsigned long long)p->version, p->n_data, a->cfg->algo, n);
    return;
  }
  if (frl_fnv1a64(p->data, sizeof(float) * n, FRL_FNV_SEED) != p->checksum) {
    frl_error("Params v%llu: checksum mismatch; ignored", (unsigned long long)p->version);
    return;
  }
  if (p->n_obs_mean > 0 &&
      frl_policy_set_normalizer(a->policy, p->obs_mean, p->obs_std, p->n_obs_mean) != 0) {
    frl_error("Params v%llu: observation normalizer has %u entries (obs_dim %d) or invalid "
              "values; ignored",
              (unsigned long long)p->version, p->n_obs_mean, a->spec->obs_dim);
    return;
  }
  memcpy(frl_policy_params(a->policy), p->data, sizeof(float) * n);
  a->params_version = p->version;
}

static int handle_message(actor_t *a, double now) {
  const frl_msg_t *m = &a->in.msg;
  a->last_heard = now;
  switch (m->type) {
  case FRL_MSG_WELCOME:
    if (m->u.welcome.ok) {
      if (!a->welcomed)
        frl_info("connected to the broker (params v%llu available)",
                 (unsigned long long)m->u.welcome.params_version);
      a->welcomed = true;
      a->lost_since = 0;
      frl_outbox_mark_all_unsent(a->outbox);
      if (m->u.welcome.estop && !a->estopped) {
        frl_warn("E-STOP: %s", m->u.welcome.estop_reason ? m->u.welcome.estop_reason : "");
        a->estopped = true;
      }
    } else if (m->u.welcome.error &&
               strncmp(m->u.welcome.error, FRL_WELCOME_HELLO_AGAIN,
                       strlen(FRL_WELCOME_HELLO_AGAIN)) == 0) {
      a->welcomed = false;
      if (now - a->last_hello > 0.2) send_hello(a, now);
    } else {
      frl_error("the broker refused this actor: %s",
                m->u.welcome.error ? m->u.welcome.error : "(no reason given)");
      return 2;
    }
    break;
  case FRL_MSG_ACK: {
    const frl_ack_t *k = &m->u.ack;
    if (k->status == FRL_ACK_OK || k->status == FRL_ACK_DUPLICATE) {
      if (frl_outbox_ack(a->outbox, k->seq) == 0 && a->ack_log) {
        fprintf(a->ack_log, "%llu %s\n", (unsigned long long)k->seq,
                k->status == FRL_ACK_OK ? "ok" : "duplicate");
        fflush(a->ack_log);
      }
    } else if (k->status == FRL_ACK_BUSY) {
      frl_outbox_busy(a->outbox, k->seq, now, a->cfg->resend_s);
    } else {
      a->rejected++;
      frl_error("batch %llu rejected: %s", (unsigned long long)k->seq,
                k->reason ? k->reason : "(no reason)");
      frl_outbox_ack(a->outbox, k->seq);
    }
    break;
  }
  case FRL_MSG_PARAMS:
    apply_params(a, &m->u.params);
    break;
  case FRL_MSG_CONTROL:
    if (m->u.control.command == FRL_CONTROL_ESTOP) {
      if (!a->estopped) frl_warn("E-STOP: %s", m->u.control.reason ? m->u.control.reason : "");
      a->estopped = true;
    } else if (m->u.control.command == FRL_CONTROL_RESUME) {
      if (a->estopped) frl_info("resumed");
      a->estopped = false;
    } else if (m->u.control.command == FRL_CONTROL_SHUTDOWN) {
      frl_info("shutdown requested: %s", m->u.control.reason ? m->u.control.reason : "");
      a->shutdown = true;
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

/* Receives, resends, heartbeats. Waits up to wait_ms for the first message. Returns non-zero
 * exit code when the actor must stop. */
static int service_network(actor_t *a, long wait_ms) {
  if (wait_ms > 0) {
    zmq_pollitem_t it = {a->sock, 0, ZMQ_POLLIN, 0};
    zmq_poll(&it, 1, wait_ms);
  }
  double now = frl_now();
  for (int i = 0; i < 1024; i++) {
    if (frl_recv_next(a->sock, false, &a->in, "the broker", NULL) <= 0) break;
    int code = handle_message(a, now);
    if (code) return code;
  }
  const frl_config_t *cfg = a->cfg;
  if (a->welcomed && now - a->last_heard > cfg->peer_timeout_s) {
    frl_warn("broker silent for %.1f s; reconnecting", now - a->last_heard);
    a->welcomed = false;
    a->lost_since = now;
  }
  if (!a->welcomed) {
    if (now - a->last_hello > cfg->heartbeat_s) send_hello(a, now);
    if (a->lost_since > 0 && now - a->lost_since > cfg->connect_timeout_s) {
      if (a->last_heard == 0) {
        frl_error("no answer from the broker at %s after %.0f s (%s)", cfg->actor_endpoint,
                  cfg->connect_timeout_s, frl_transport_hint());
        return 3;
      }
      frl_warn("still no broker at %s after %.0f s; holding %u batches and retrying",
               cfg->actor_endpoint, now - a->lost_since, frl_outbox_depth(a->outbox));
      a->lost_since = now;
    }
    return 0;
  }
  if (now - a->last_heartbeat > cfg->heartbeat_s) {
    send_heartbeat(a);
    a->last_heartbeat = now;
  }
  uint64_t seq;
  const void *buf;
  size_t len;
  for (int i = 0; i < 64; i++) {
    if (frl_outbox_next_due(a->outbox, now, cfg->resend_s, &seq, &buf, &len) != 0) break;
    int rc = frl_send_raw(a->sock, NULL, 0, buf, len);
    if (rc != 0) {
      frl_outbox_defer(a->outbox, seq, now - cfg->resend_s + 0.05);
      break;
    }
  }
  return 0;
}

int frl_actor_main(const frl_config_t *cfg) {
  actor_t a = {.cfg = cfg};
  int code = 1;
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  frl_inbox_init(&a.in);

  uint64_t seed = cfg->seed * 1000003ULL + (uint64_t)cfg->actor_index * 7919ULL + 17;
  char err[320];
  int rc = frl_env_new(&a.env, cfg->env, seed, err, sizeof err);
  if (rc != 0) {
    frl_error("--env: %s", err);
    return 1;
  }
  /* Sim-to-real: domain randomization around the task and the hardware model around both, so
   * that commands meet the motors first and observations leave through the sensors last. */
  frl_randomize_opts_t dr;
  frl_hardware_opts_t hw;
  if (frl_randomize_from_config(&dr, cfg, err, sizeof err) != 0 ||
      frl_randomize_wrap(&a.env, &dr, seed ^ 0x2545f4914f6cdd1dULL, err, sizeof err) != 0 ||
      frl_hardware_from_config(&hw, cfg, err, sizeof err) != 0 ||
      (cfg->hardware_model &&
       frl_hardware_wrap(&a.env, &hw, seed ^ 0x9e3779b97f4a7c15ULL, err, sizeof err) != 0)) {
    frl_error("%s", err);
    goto done;
  }
  /* The history outermost: it records what the policy commanded, before the delay line and the
   * motor model change it, and what the policy saw, after sensor noise and delay. */
  const int frame_dim = frl_env_spec(a.env)->obs_dim;
  if (frl_history_wrap(&a.env, cfg->action_history, cfg->obs_history, err, sizeof err) != 0) {
    frl_error("%s", err);
    goto done;
  }
  if (dr.mode != FRL_RANDOMIZE_OFF || cfg->hardware_model)
    frl_info("domain randomization %s (scale %g, curriculum over %llu steps), hardware model %s",
             cfg->randomize, dr.scale, (unsigned long long)dr.curriculum_steps,
             cfg->hardware_model ? "on" : "off");
  a.physics = frl_xcalloc(MAX_EPISODES_PER_BATCH, FRL_RANDOMIZE_JSON_MAX);
  a.spec = frl_env_spec(a.env);
  frl_policy_shape_t shape;
  if (frl_policy_shape_from_config(cfg, a.spec, &shape, err, sizeof err) != 0) {
    frl_error("%s", err);
    goto done;
  }
  a.discrete = shape.algo == FRL_ALGO_DQN;
  a.act_dim = a.discrete ? 1 : a.spec->act_dim;
  frl_rng_seed(&a.rng, seed ^ 0x5bd1e995ULL);
  if (shape.algo == FRL_ALGO_DQN)
    a.exploration =
        frl_actor_epsilon(cfg->actor_index, cfg->num_actors, cfg->eps_base, cfg->eps_alpha);
  else
    a.exploration = shape.algo == FRL_ALGO_SAC ? 1.0 : cfg->explore_noise;
  a.cap = cfg->batch_transitions;
  a.policy = frl_policy_new(&shape, a.cap, &a.rng);
  if (!a.policy) {
    frl_error("cannot build the %s policy network (see the message above)", cfg->algo);
    goto done;
  }
  a.ns = frl_nstep_new(cfg->n_step, (float)cfg->gamma, a.spec->obs_dim, a.act_dim);
  if (cfg->hindsight > 0) {
    const frl_env_goal_t *goal = frl_env_goal(a.env);
    if (!goal || a.discrete) {
      frl_error("--hindsight %d: environment '%s' %s; use --hindsight 0", cfg->hindsight,
                cfg->env, goal ? "is discrete (relabeling is for continuous goal-reaching tasks)"
                               : "has no goal to relabel (goal-reaching environments: planar-arm)");
      goto done;
    }
    a.hindsight = frl_hindsight_new(goal, cfg->hindsight, a.spec->max_steps, a.spec->obs_dim,
                                    a.act_dim, cfg->n_step, (float)cfg->gamma);
    /* With past observations in it, each names the goal too: all are relabeled. */
    if (!a.hindsight ||
        frl_hindsight_set_frames(a.hindsight, cfg->obs_history + 1, frame_dim) != 0) {
      frl_error("--hindsight %d: cannot relabel episodes of %d steps", cfg->hindsight,
                a.spec->max_steps);
      goto done;
    }
  }
  a.outbox = frl_outbox_new((uint32_t)cfg->outbox_batches, (size_t)256 << 20);
  size_t od = (size_t)a.spec->obs_dim;
  a.obs = frl_xmalloc(sizeof(float) * od * (size_t)a.cap);
  a.next_obs = frl_xmalloc(sizeof(float) * od * (size_t)a.cap);
  a.reward = frl_xmalloc(sizeof(float) * (size_t)a.cap);
  a.discount = frl_xmalloc(sizeof(float) * (size_t)a.cap);
  a.priority = frl_xmalloc(sizeof(float) * (size_t)a.cap);
  a.action = frl_xmalloc(sizeof(int32_t) * (size_t)a.cap);
  a.action_vec = frl_xmalloc(sizeof(float) * (size_t)a.cap * (size_t)a.act_dim);
  a.version = frl_xmalloc(sizeof(uint64_t) * (size_t)a.cap);
  a.fb = frl_fb_builder_new(1 << 16);
  if (cfg->ack_log[0]) {
    a.ack_log = fopen(cfg->ack_log, "a");
    if (!a.ack_log) {
      frl_error("--ack-log: cannot open %s: %s", cfg->ack_log, strerror(errno));
      goto done;
    }
  }
  a.ctx = zmq_ctx_new();
  a.sock = frl_socket_dealer(a.ctx, cfg->actor_endpoint, cfg->name);
  if (!a.sock) {
    frl_error("--actor-endpoint: cannot connect to %s: %s", cfg->actor_endpoint,
              zmq_strerror(errno));
    goto done;
  }
  frl_info("%s: env %s, %s policy, exploration %.4f, %d-step, batches of %d", cfg->name,
           cfg->env, cfg->algo, a.exploration, cfg->n_step, a.cap);
  /* (actor, seq) must stay unique across restarts of a stateless actor with the same name, so
   * sequences start at the start time in microseconds: a successor always starts above
   * anything its predecessor can have sent (far fewer than 10^6 batches per second). */
  a.seq = (uint64_t)(frl_wall() * 1e6);
  uint64_t first_seq = a.seq;
  double start = frl_now();
  a.lost_since = start;
  send_hello(&a, start);

  float obs[FRL_ENV_MAX_DIM], next[FRL_ENV_MAX_DIM];
  frl_env_reset(a.env, obs);
  double ep_return = 0, next_service = 0;
  uint32_t ep_len = 0, ep_violations = 0;
  bool ep_success = false;
  code = 0;
  while (!g_stop && !a.shutdown) {
    double now = frl_now();
    /* A simulated actor runs at most --inflight batches ahead of the learner, so that what it
     * ships was acted with recent parameters; the outbox's full capacity is for riding out a
     * lost broker. */
    bool ahead = frl_outbox_depth(a.outbox) >= (uint32_t)cfg->inflight;
    bool paused = a.estopped || (cfg->backpressure && (ahead || !a.welcomed));
    if (paused || now >= next_service) {
      code = service_network(&a, paused ? 20 : 0);
      if (code) break;
      next_service = now + 0.001;
      if (paused) continue;
    }
    if (a.count >= a.cap || a.n_episodes >= MAX_EPISODES_PER_BATCH) {
      if (!seal_batch(&a)) continue;
    }
    /* The last episode's relabeled copies go out before the next step. */
    if (a.hindsight && frl_hindsight_pending(a.hindsight) > 0) {
      frl_hindsight_emit(a.hindsight, a.cap - a.count, on_transition, &a);
      continue;
    }
    float action[FRL_ENV_MAX_DIM], env_action[FRL_ENV_MAX_DIM];
    if (!a.discrete && a.params_version == 0) {
      /* Until the learner's first parameters arrive, continuous actors explore uniformly
       * (the usual random warm-up of SAC and TD3) instead of acting with an untrained net. */
      for (int i = 0; i < a.act_dim; i++) action[i] = 2.0f * (float)frl_rng_uniform(&a.rng) - 1.0f;
    } else {
      frl_policy_act(a.policy, obs, a.exploration, &a.rng, action);
    }
    if (a.discrete)
      env_action[0] = action[0];
    else
      frl_policy_scale(env_action, action, a.spec->act_low, a.spec->act_high,
                       (float)cfg->action_scale, a.act_dim);
    frl_step_t st;
    frl_env_step(a.env, env_action, next, &st);
    a.env_steps++;
    a.batch_env_steps++;
    ep_return += st.reward;
    ep_len++;
    ep_violations += st.violations;
    ep_success |= st.success;
    /* n-step emits at most n transitions at an episode end; make room first. */
    if (a.count + cfg->n_step > a.cap && (st.terminal || st.truncated) && a.count > 0) {
      if (!seal_batch(&a)) {
        /* Backpressure with no room: keep the step's data by waiting for acks. */
        while (!g_stop && !a.shutdown && !seal_batch(&a)) {
          code = service_network(&a, 20);
          if (code) break;
        }
        if (code) break;
      }
    }
    frl_nstep_push(a.ns, obs, action, st.reward, next, st.terminal, st.truncated, on_transition,
                   &a);
    if (a.hindsight) {
      frl_hindsight_record(a.hindsight, obs, action, env_action, next);
      if (st.terminal || st.truncated) frl_hindsight_end_episode(a.hindsight, &a.rng);
    }
    if (st.terminal || st.truncated) {
      frl_episode_stat_t *e = &a.episodes[a.n_episodes++];
      *e = (frl_episode_stat_t){.episode_return = (float)ep_return,
                                .length = ep_len,
                                .success = ep_success,
                                .truncated = st.truncated && !st.terminal,
                                .violations = ep_violations,
                                .policy_version = a.params_version};
      /* The episode's physics, copied before the reset below draws the next episode's. */
      const char *physics = frl_randomize_json(a.env);
      if (physics) {
        char *slot = a.physics + (size_t)(a.n_episodes - 1) * FRL_RANDOMIZE_JSON_MAX;
        snprintf(slot, FRL_RANDOMIZE_JSON_MAX, "%s", physics);
        e->physics = slot;
      }
      a.episodes_done++;
      ep_return = 0;
      ep_len = 0;
      ep_violations = 0;
      ep_success = false;
      frl_env_reset(a.env, obs);
    } else {
      memcpy(obs, next, sizeof(float) * od);
    }
  }
  frl_info("%s stopping: %llu env steps, %llu episodes, %llu batches sent, %u unacked, "
           "%llu shed, %llu rejected",
           cfg->name, (unsigned long long)a.env_steps, (unsigned long long)a.episodes_done,
           (unsigned long long)(a.seq - first_seq), frl_outbox_depth(a.outbox), (unsigned long long)a.shed,
           (unsigned long long)a.rejected);
done:
  if (a.ack_log) fclose(a.ack_log);
  if (a.sock) zmq_close(a.sock);
  if (a.ctx) zmq_ctx_term(a.ctx);
  frl_fb_builder_destroy(&a.fb);
  frl_inbox_free(&a.in);
  free(a.obs);
  free(a.next_obs);
  free(a.reward);
  free(a.discount);
  free(a.priority);
  free(a.action);
  free(a.action_vec);
  free(a.version);
  free(a.physics);
  frl_outbox_destroy(&a.outbox);
  frl_nstep_destroy(&a.ns);
  frl_hindsight_destroy(&a.hindsight);
  frl_policy_destroy(&a.policy);
  frl_env_destroy(&a.env);
  return code;
}
