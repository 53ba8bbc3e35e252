/* broker.c: peer registry, experience fan-in with credit flow control, params last-value
 * cache and fan-out, control fan-out. A single-threaded zmq_poll loop. */
#include "broker.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common.h"
#include "http.h"
#include "peer_limits.h"
#include "log.h"
#include "metrics.h"
#include "transport.h"
#include "zap.h"

#define QUEUE_MAX_BYTES (512u << 20)

/* Kinds of batch refusal the broker logs per peer (see report_refusal). */
enum { REFUSED_SENDER, REFUSED_DIMS, REFUSED_MESSAGE, REFUSED_KINDS };

typedef struct {
  char name[FRL_MSG_MAX_STRING + 1];
  uint8_t rid[FRL_ROUTING_ID_MAX];
  size_t rid_len;
  frl_role_t role;
  bool live;
  double first_seen, last_seen;
  uint64_t params_version, env_steps, shed;
  uint32_t outbox;
  uint64_t batches, busy, rejected;
  uint64_t forwarded; /* batches of this actor passed on to the learner */
  double reported[REFUSED_KINDS]; /* when a refusal of each kind was last logged (0: never) */
  char user_id[FRL_USER_ID_MAX]; /* the CURVE key (allowlist name) that holds this name */
} peer_t;

typedef struct {
  void *data;
  size_t len;
  int peer; /* index of the sender in peers, for its forwarded count */
} queued_t;

struct frl_broker {
  const frl_config_t *cfg;
  void *ctx, *front, *back;
  /* Where replies and forwards go: the two sockets (send NULL), or the caller's hook. */
  frl_broker_send_fn send;
  void *send_arg;
  frl_fb_builder_t *fb;
  frl_inbox_t inbox;      /* the main loop receives into this */
  const frl_inbox_t *in;  /* the message being handled */
  peer_t *peers;
  int n_peers;
  /* the learner */
  bool learner_live;
  uint8_t learner_rid[FRL_ROUTING_ID_MAX];
  size_t learner_rid_len;
  double learner_seen;
  char task[FRL_MSG_MAX_STRING + 1];
  uint32_t obs_dim, act_dim;
  uint64_t credit;
  /* experience waiting for credit: a ring */
  queued_t *queue;
  int q_head, q_len, q_cap;
  size_t q_bytes;
  /* last-value caches */
  void *params;
  size_t params_len;
  uint64_t params_version;
  bool estopped;
  /* An operator sent EStop or Resume to this broker process: from then on it knows the fleet's
   * state and no longer adopts e-stops that actors report as latched. */
  bool estop_known;
  char estop_reason[FRL_MSG_MAX_STRING + 1];
  /* counters */
  uint64_t forwarded, busy, rejected, acks_routed, acks_unroutable, bad_messages;
  double bad_reported; /* when a refused message from an unregistered peer was last logged */
  /* security: the ZAP handler (CURVE only) and the per-actor limits */
  frl_zap_t *zap;
  frl_peer_limits_t *limits;
  uint64_t throttled;
  /* observability: /metrics on an own libuv loop polled along with the sockets */
  frl_http_server_t *http;
  char http_addr[FRL_HTTP_ADDR_MAX]; /* bound address, "" without HTTP */
};
typedef struct frl_broker broker_t;

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { g_stop = sig; }

/* The live peer on a connection. Entries that are gone keep their routing id, and a later
 * peer may come on the same one: only the live entry speaks for the connection. */
static peer_t *peer_by_rid(broker_t *b, const uint8_t *rid, size_t len) {
  for (int i = 0; i < b->n_peers; i++) {
    peer_t *p = &b->peers[i];
    if (p->live && p->rid_len == len && memcmp(p->rid, rid, len) == 0) return p;
  }
  return NULL;
}

static peer_t *peer_by_name(broker_t *b, const char *name) {
  for (int i = 0; i < b->n_peers; i++)
    if (strcmp(b->peers[i].name, name) == 0) return &b->peers[i];
  return NULL;
}

static int live_actors(const broker_t *b) {
  int n = 0;
  for (int i = 0; i < b->n_peers; i++) n += b->peers[i].live && b->peers[i].role == FRL_ROLE_ACTOR;
  return n;
}

static int send_to(broker_t *b, frl_broker_side_t side, const uint8_t *rid, size_t rid_len,
                   const void *data, size_t len) {
  if (b->send) return b->send(b->send_arg, side, rid, rid_len, data, len);
  return frl_send_raw(side == FRL_BROKER_ACTORS ? b->front : b->back, rid, rid_len, data, len);
}

/* Sends the message just finished in b->fb. */
static int send_built(broker_t *b, frl_broker_side_t side, const uint8_t *rid, size_t rid_len) {
  size_t len = 0;
  const void *data = frl_fb_builder_data(b->fb, &len);
  return send_to(b, side, rid, rid_len, data, len);
}

static void send_welcome(broker_t *b, frl_broker_side_t side, const uint8_t *rid, size_t rid_len,
                         bool ok, const char *error) {
  /* A newcomer learns of an e-stop in the Welcome itself, before it could act (the Control
   * that follows arrives after it may already have stepped). */
  const bool estop = ok && b->estopped && side == FRL_BROKER_ACTORS;
  frl_welcome_t w = {.ok = ok,
                     .error = error,
                     .schema_hash = frl_schema_hash(),
                     .params_version = b->params_version,
                     .heartbeat_ms = (uint32_t)(b->cfg->heartbeat_s * 1000),
                     .estop = estop,
                     .estop_reason = estop ? b->estop_reason : NULL};
  if (frl_msg_encode_welcome(b->fb, &w) == 0) send_built(b, side, rid, rid_len);
}

static void send_ack(broker_t *b, const uint8_t *rid, size_t rid_len, const char *actor,
                     uint64_t seq, frl_ack_status_t status, const char *reason) {
  frl_ack_t a = {.actor = actor, .seq = seq, .status = status, .reason = reason};
  if (frl_msg_encode_ack(b->fb, &a) == 0) send_built(b, FRL_BROKER_ACTORS, rid, rid_len);
}

static void send_control_to(broker_t *b, const uint8_t *rid, size_t rid_len, frl_control_cmd_t c,
                            const char *reason) {
  frl_control_t m = {.command = c, .reason = reason};
  if (frl_msg_encode_control(b->fb, &m) == 0) send_built(b, FRL_BROKER_ACTORS, rid, rid_len);
}

void frl_broker_pump(frl_broker_t *b) {
  while (b->q_len > 0 && b->credit > 0 && b->learner_live) {
    queued_t *q = &b->queue[b->q_head];
    int rc = send_to(b, FRL_BROKER_LEARNER, b->learner_rid, b->learner_rid_len, q->data, q->len);
    if (rc == FRL_EBUSY) return; /* the learner's pipe is full; try on the next turn */
    if (rc != 0) {
      frl_warn("forwarding to the learner failed: %s; will retry", frl_strerror(rc));
      return;
    }
    free(q->data);
    b->q_bytes -= q->len;
    b->q_head = (b->q_head + 1) % b->q_cap;
    b->q_len--;
    b->credit--;
    b->forwarded++;
    if (q->peer >= 0 && q->peer < b->n_peers) b->peers[q->peer].forwarded++;
  }
}

/* Per-actor limits (broker/peer_limits.c), keyed by the CURVE identity when there is one, so that a
 * key holder cannot escape its limits by changing names, else by the actor's name. A batch over
 * a rate is answered Busy (the actor keeps it), one over the size limit Rejected. Returns true
 * when the batch may go on. */
static bool within_limits(broker_t *b, peer_t *p, const frl_experience_t *x, double now) {
  const char *who = b->in->user_id[0] ? b->in->user_id : p->name;
  frl_limit_result_t r;
  frl_limit_verdict_t v = frl_peer_limits_admit(b->limits, who, b->in->len, now, &r);
  if (v == FRL_LIMIT_OK) return true;
  bool busy = v != FRL_LIMIT_SIZE;
  if (busy) {
    p->busy++;
    b->busy++;
    b->throttled++;
  } else {
    p->rejected++;
    b->rejected++;
  }
  if (r.report)
    frl_warn("%s batch %llu of actor %s (limits of '%s'): %s (%llu refused so far)",
             busy ? "throttled" : "rejected", (unsigned long long)x->seq, p->name, who, r.reason,
             (unsigned long long)r.refused);
  send_ack(b, b->in->routing_id, b->in->routing_id_len, x->actor, x->seq,
           busy ? FRL_ACK_BUSY : FRL_ACK_REJECTED, r.reason);
  return false;
}

/* Whether to log this peer's refusal of a kind: at most once per FRL_PEER_LIMITS_REPORT_S per
 * peer and kind, as the per-actor limits report theirs, so that a peer that keeps sending the
 * same wrong batch cannot flood the log; every refusal is counted (per actor on /metrics) and
 * its reason goes back in the Ack. A clock that stepped back reports again. */
static bool report_due(double *at, double now) {
  if (*at != 0 && now >= *at && now - *at < FRL_PEER_LIMITS_REPORT_S) return false;
  *at = now;
  return true;
}

static bool report_refusal(peer_t *p, int kind, double now) {
  return report_due(&p->reported[kind], now);
}

static void on_experience(broker_t *b, peer_t *p, double now) {
  const frl_experience_t *x = &b->in->msg.u.experience;
  if (!x->actor || strcmp(x->actor, p->name) != 0) {
    char reason[FRL_MSG_MAX_STRING]; /* a reason longer than the wire allows is cut */
    snprintf(reason, sizeof reason, "ExperienceBatch.actor '%.64s' is not the sender '%.64s'",
             x->actor ? x->actor : "", p->name);
    p->rejected++;
    b->rejected++;
    if (report_refusal(p, REFUSED_SENDER, now))
      frl_warn("refused batch from %s: %s (%llu refused so far)", p->name, reason,
               (unsigned long long)p->rejected);
    send_ack(b, b->in->routing_id, b->in->routing_id_len, x->actor, x->seq, FRL_ACK_REJECTED,
             reason);
    return;
  }
  if (!within_limits(b, p, x, now)) return;
  if (b->learner_live && (x->obs_dim != b->obs_dim || x->act_dim != b->act_dim)) {
    char reason[160];
    snprintf(reason, sizeof reason,
             "ExperienceBatch dimensions obs %u act %u, the learner's task needs obs %u act %u",
             x->obs_dim, x->act_dim, b->obs_dim, b->act_dim);
    p->rejected++;
    b->rejected++;
    if (report_refusal(p, REFUSED_DIMS, now))
      frl_warn("rejected batch %llu of actor %s: %s (%llu refused so far)",
               (unsigned long long)x->seq, p->name, reason, (unsigned long long)p->rejected);
    send_ack(b, b->in->routing_id, b->in->routing_id_len, x->actor, x->seq, FRL_ACK_REJECTED,
             reason);
    return;
  }
  p->batches++;
  if (b->q_len == 0 && b->credit > 0 && b->learner_live) {
    int rc = send_to(b, FRL_BROKER_LEARNER, b->learner_rid, b->learner_rid_len, b->in->data,
                     b->in->len);
    if (rc == 0) {
      b->credit--;
      b->forwarded++;
      p->forwarded++;
      return;
    }
  }
  if (b->q_len < b->q_cap && b->q_bytes + b->in->len <= QUEUE_MAX_BYTES) {
    queued_t *q = &b->queue[(b->q_head + b->q_len) % b->q_cap];
    q->data = frl_xmalloc(b->in->len);
    memcpy(q->data, b->in->data, b->in->len);
    q->len = b->in->len;
    q->peer = (int)(p - b->peers);
    b->q_len++;
    b->q_bytes += b->in->len;
    return;
  }
  /* Refuse rather than drop: the actor keeps the batch and resends later. */
  p->busy++;
  b->busy++;
  send_ack(b, b->in->routing_id, b->in->routing_id_len, x->actor, x->seq, FRL_ACK_BUSY,
           b->learner_live ? "broker queue full (learner is behind)" : "no learner connected");
}

static void fan_out_params(broker_t *b) {
  for (int i = 0; i < b->n_peers; i++) {
    peer_t *p = &b->peers[i];
    if (p->live && p->role == FRL_ROLE_ACTOR)
      send_to(b, FRL_BROKER_ACTORS, p->rid, p->rid_len, b->params, b->params_len);
  }
}

static void fan_out_control(broker_t *b, const void *data, size_t len, bool to_learner) {
  for (int i = 0; i < b->n_peers; i++) {
    peer_t *p = &b->peers[i];
    if (p->live && p->role == FRL_ROLE_ACTOR)
      send_to(b, FRL_BROKER_ACTORS, p->rid, p->rid_len, data, len);
  }
  if (to_learner && b->learner_live)
    send_to(b, FRL_BROKER_LEARNER, b->learner_rid, b->learner_rid_len, data, len);
}

/* An actor reports an e-stop latched (it got EStop and no Resume since) while this broker
 * process has heard neither: the broker restarted after the e-stop. The e-stop is still in
 * force for the fleet, so the broker takes it up again and stops every actor, newcomers
 * included, until an operator resumes. A broker that has handled an EStop or Resume itself
 * ignores such reports: a heartbeat sent just before a Resume arrived must not undo it. */
static void adopt_estop(broker_t *b, const peer_t *p) {
  b->estopped = true;
  snprintf(b->estop_reason, sizeof b->estop_reason, "e-stop latched at %.64s before a broker restart",
           p->name);
  frl_warn("E-STOP taken up again: %s reports an e-stop latched (the broker restarted after it); "
           "every actor is stopped until `fleetrl resume`", p->name);
  frl_control_t m = {.command = FRL_CONTROL_ESTOP, .reason = b->estop_reason};
  if (frl_msg_encode_control(b->fb, &m) != 0) return;
  size_t len;
  const void *data = frl_fb_builder_data(b->fb, &len);
  fan_out_control(b, data, len, true);
}

static void reply_heartbeat(broker_t *b, frl_broker_side_t side, const uint8_t *rid,
                            size_t rid_len) {
  frl_heartbeat_t h = {.name = "broker",
                       .role = FRL_ROLE_OPERATOR,
                       .params_version = b->params_version,
                       .time_ns = frl_now_ns(),
                       .safe_mode = b->estopped};
  if (frl_msg_encode_heartbeat(b->fb, &h) == 0) send_built(b, side, rid, rid_len);
}

static bool valid_name(const char *s) {
  if (!s || !*s || strlen(s) > 64) return false;
  for (; *s; s++)
    if (*s <= ' ' || *s > '~') return false;
  return true;
}

static void on_front_hello(broker_t *b, double now) {
  const frl_hello_t *h = &b->in->msg.u.hello;
  const uint8_t *rid = b->in->routing_id;
  size_t rl = b->in->routing_id_len;
  char err[400];
  if (h->schema_hash != frl_schema_hash()) {
    snprintf(err, sizeof err, "schema mismatch: peer has schema hash 0x%016llx, broker 0x%016llx",
             (unsigned long long)h->schema_hash, (unsigned long long)frl_schema_hash());
    frl_warn("refused %s: %s", h->name ? h->name : "(unnamed)", err);
    send_welcome(b, FRL_BROKER_ACTORS, rid, rl, false, err);
    return;
  }
  if (!valid_name(h->name)) {
    send_welcome(b, FRL_BROKER_ACTORS, rid, rl, false,
                 "Hello.name must be 1-64 printable characters without spaces");
    return;
  }
  if (h->role == FRL_ROLE_ACTOR && b->task[0] &&
      (strcmp(h->task ? h->task : "", b->task) != 0 || h->obs_dim != b->obs_dim ||
       h->act_dim != b->act_dim)) {
    snprintf(err, sizeof err, "task mismatch: actor runs '%s' (obs %u, act %u), learner '%s' (obs %u, act %u)",
             h->task ? h->task : "", h->obs_dim, h->act_dim, b->task, b->obs_dim, b->act_dim);
    frl_warn("refused %s: %s", h->name, err);
    send_welcome(b, FRL_BROKER_ACTORS, rid, rl, false, err);
    return;
  }
  if (h->role == FRL_ROLE_LEARNER) {
    send_welcome(b, FRL_BROKER_ACTORS, rid, rl, false, "learners connect to the learner endpoint");
    return;
  }
  peer_t *p = peer_by_name(b, h->name);
  if (p && p->live && strcmp(p->user_id, b->in->user_id) != 0) {
    /* Under CURVE a live name belongs to the key that holds it: another robot's key cannot
     * take it over (and receive its acks and parameters). */
    snprintf(err, sizeof err, "name '%s' is in use by another CURVE key", h->name);
    frl_warn("refused %s from CURVE key '%s': the name is held by key '%s'", h->name,
             b->in->user_id, p->user_id);
    send_welcome(b, FRL_BROKER_ACTORS, rid, rl, false, err);
    return;
  }
  if (!p) {
    if (b->n_peers == FRL_BROKER_MAX_PEERS) {
      /* Reuse the slot of a peer that is gone. */
      for (int i = 0; i < b->n_peers && !p; i++)
        if (!b->peers[i].live) p = &b->peers[i];
      if (!p) {
        send_welcome(b, FRL_BROKER_ACTORS, rid, rl, false, "broker peer table full (4096 peers)");
        return;
      }
    } else {
      p = &b->peers[b->n_peers++];
    }
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", h->name);
    p->first_seen = now;
  } else if (p->live && (p->rid_len != rl || memcmp(p->rid, rid, rl) != 0)) {
    frl_warn("%s said Hello from a new connection; the old one is replaced", p->name);
  }
  /* One connection is one peer: a connection that says Hello under a new name gives up its
   * old one. Kept live, the old entry would still speak for the connection (its heartbeats
   * keeping it so) and every batch in the new name would be refused as not the sender's. */
  for (int i = 0; i < b->n_peers; i++) {
    peer_t *o = &b->peers[i];
    if (o != p && o->live && o->rid_len == rl && memcmp(o->rid, rid, rl) == 0) {
      o->live = false;
      frl_info("%s %s is now %s on its connection",
               o->role == FRL_ROLE_ACTOR ? "actor" : "operator", o->name, h->name);
    }
  }
  bool was_live = p->live;
  snprintf(p->user_id, sizeof p->user_id, "%s", b->in->user_id);
  memcpy(p->rid, rid, rl);
  p->rid_len = rl;
  p->role = h->role;
  p->live = true;
  p->last_seen = now;
  if (!was_live)
    frl_info("%s %s joined (%d actors live)%s%s", h->role == FRL_ROLE_ACTOR ? "actor" : "operator",
             p->name, live_actors(b), b->in->user_id[0] ? "; CURVE key " : "", b->in->user_id);
  send_welcome(b, FRL_BROKER_ACTORS, rid, rl, true, NULL);
  if (h->role == FRL_ROLE_ACTOR) {
    if (b->params) send_to(b, FRL_BROKER_ACTORS, rid, rl, b->params, b->params_len);
    if (b->estopped) send_control_to(b, rid, rl, FRL_CONTROL_ESTOP, b->estop_reason);
  }
}

static void on_front(broker_t *b, double now) {
  const frl_msg_t *m = &b->in->msg;
  if (m->type == FRL_MSG_HELLO) {
    on_front_hello(b, now);
    return;
  }
  peer_t *p = peer_by_rid(b, b->in->routing_id, b->in->routing_id_len);
  /* A routing id taken over by a connection with another CURVE key is a stranger too. */
  if (!p || !p->live || strcmp(p->user_id, b->in->user_id) != 0) {
    /* After a broker restart peers do not know they are strangers: ask for Hello. */
    if (m->type == FRL_MSG_EXPERIENCE)
      send_ack(b, b->in->routing_id, b->in->routing_id_len, m->u.experience.actor,
               m->u.experience.seq, FRL_ACK_BUSY, "not registered: send Hello first");
    send_welcome(b, FRL_BROKER_ACTORS, b->in->routing_id, b->in->routing_id_len, false,
                 FRL_WELCOME_HELLO_AGAIN ": send Hello first");
    return;
  }
  p->last_seen = now;
  switch (m->type) {
  case FRL_MSG_EXPERIENCE:
    on_experience(b, p, now);
    break;
  case FRL_MSG_HEARTBEAT:
    p->params_version = m->u.heartbeat.params_version;
    p->outbox = m->u.heartbeat.outbox;
    p->env_steps = m->u.heartbeat.env_steps;
    p->shed = m->u.heartbeat.shed;
    if (m->u.heartbeat.estop && !b->estopped && !b->estop_known) adopt_estop(b, p);
    reply_heartbeat(b, FRL_BROKER_ACTORS, b->in->routing_id, b->in->routing_id_len);
    break;
  case FRL_MSG_CONTROL: {
    const frl_control_t *c = &m->u.control;
    frl_info("control %d from %s: %s", (int)c->command, p->name, c->reason ? c->reason : "");
    if (c->command == FRL_CONTROL_ESTOP) {
      b->estopped = true;
      b->estop_known = true;
      snprintf(b->estop_reason, sizeof b->estop_reason, "%s", c->reason ? c->reason : "");
    } else if (c->command == FRL_CONTROL_RESUME) {
      b->estopped = false;
      b->estop_known = true;
    }
    fan_out_control(b, b->in->data, b->in->len, true);
    reply_heartbeat(b, FRL_BROKER_ACTORS, b->in->routing_id, b->in->routing_id_len);
    break;
  }
  default:
    frl_warn("%s sent a %s, which actors may not send; ignored", p->name,
             frl_msg_type_name(m->type));
    b->bad_messages++;
    break;
  }
}

static void on_back(broker_t *b, double now) {
  const frl_msg_t *m = &b->in->msg;
  const uint8_t *rid = b->in->routing_id;
  size_t rl = b->in->routing_id_len;
  if (m->type == FRL_MSG_HELLO) {
    const frl_hello_t *h = &m->u.hello;
    if (h->schema_hash != frl_schema_hash()) {
      char err[200];
      snprintf(err, sizeof err, "schema mismatch: learner has schema hash 0x%016llx, broker 0x%016llx",
               (unsigned long long)h->schema_hash, (unsigned long long)frl_schema_hash());
      frl_error("refused learner: %s", err);
      send_welcome(b, FRL_BROKER_LEARNER, rid, rl, false, err);
      return;
    }
    if (h->role != FRL_ROLE_LEARNER) {
      send_welcome(b, FRL_BROKER_LEARNER, rid, rl, false,
                   "only a learner may connect to this endpoint");
      return;
    }
    if (b->learner_live && (b->learner_rid_len != rl || memcmp(b->learner_rid, rid, rl) != 0))
      frl_warn("a new learner replaces the previous one");
    memcpy(b->learner_rid, rid, rl);
    b->learner_rid_len = rl;
    b->learner_live = true;
    b->learner_seen = now;
    b->credit = 0; /* a (re)started learner grants its own credit */
    snprintf(b->task, sizeof b->task, "%s", h->task ? h->task : "");
    b->obs_dim = h->obs_dim;
    b->act_dim = h->act_dim;
    frl_info("learner joined: task %s (obs %u, act %u)%s%s", b->task, b->obs_dim, b->act_dim,
             b->in->user_id[0] ? "; CURVE key " : "", b->in->user_id);
    send_welcome(b, FRL_BROKER_LEARNER, rid, rl, true, NULL);
    return;
  }
  if (!b->learner_live || b->learner_rid_len != rl || memcmp(b->learner_rid, rid, rl) != 0) {
    send_welcome(b, FRL_BROKER_LEARNER, rid, rl, false,
                 FRL_WELCOME_HELLO_AGAIN ": send Hello first");
    return;
  }
  b->learner_seen = now;
  switch (m->type) {
  case FRL_MSG_CREDIT:
    b->credit += m->u.credit.batches;
    break;
  case FRL_MSG_ACK: {
    const frl_ack_t *a = &m->u.ack;
    peer_t *p = a->actor ? peer_by_name(b, a->actor) : NULL;
    if (p && p->live &&
        send_to(b, FRL_BROKER_ACTORS, p->rid, p->rid_len, b->in->data, b->in->len) == 0) {
      b->acks_routed++;
    } else {
      /* The actor is gone or unreachable: it resends after reconnecting and the learner
       * answers Duplicate, so nothing is lost; counted for the operator. */
      b->acks_unroutable++;
    }
    break;
  }
  case FRL_MSG_PARAMS: {
    void *copy = frl_xmalloc(b->in->len);
    memcpy(copy, b->in->data, b->in->len);
    free(b->params);
    b->params = copy;
    b->params_len = b->in->len;
    b->params_version = m->u.params.version;
    fan_out_params(b);
    break;
  }
  case FRL_MSG_HEARTBEAT:
    reply_heartbeat(b, FRL_BROKER_LEARNER, rid, rl);
    break;
  case FRL_MSG_CONTROL:
    frl_info("control %d from the learner: %s", (int)m->u.control.command,
             m->u.control.reason ? m->u.control.reason : "");
    /* A learner's Shutdown ends its run, not the broker: the broker is shared infrastructure
     * and keeps serving (a new learner may start); whoever started it stops it. */
    fan_out_control(b, b->in->data, b->in->len, false);
    break;
  default:
    frl_warn("the learner sent a %s, which is not for the broker; ignored",
             frl_msg_type_name(m->type));
    b->bad_messages++;
    break;
  }
}

void frl_broker_expire(frl_broker_t *b, double now) {
  double timeout = b->cfg->peer_timeout_s;
  for (int i = 0; i < b->n_peers; i++) {
    peer_t *p = &b->peers[i];
    if (p->live && now - p->last_seen > timeout) {
      p->live = false;
      frl_info("%s %s gone (silent %.1f s; %d actors live)",
               p->role == FRL_ROLE_ACTOR ? "actor" : "operator", p->name, now - p->last_seen,
               live_actors(b));
    }
  }
  if (b->learner_live && now - b->learner_seen > timeout) {
    b->learner_live = false;
    b->credit = 0;
    frl_warn("learner gone (silent %.1f s); experience is queued, then refused as busy",
             now - b->learner_seen);
  }
  frl_peer_limits_expire(b->limits, now);
}

/* Bad messages are logged and counted, never fatal. */
void frl_broker_handle(frl_broker_t *b, frl_broker_side_t side, const frl_inbox_t *in, int rc,
                       double now) {
  const bool front = side == FRL_BROKER_ACTORS;
  b->in = in;
  if (rc < 0) {
    b->bad_messages++;
    peer_t *p = front ? peer_by_rid(b, in->routing_id, in->routing_id_len) : NULL;
    if (p) p->rejected++;
    /* Logged at most once per FRL_PEER_LIMITS_REPORT_S per peer (and once for all the peers
     * that never said Hello), so that a stream of garbage cannot flood the log. */
    if (p ? report_refusal(p, REFUSED_MESSAGE, now) : report_due(&b->bad_reported, now))
      frl_warn("refused a message from %s: %s (%llu refused messages in all)",
               p ? p->name : (front ? "an unknown peer" : "the learner"), in->err,
               (unsigned long long)b->bad_messages);
    /* The sender is told why, as an Ack of no batch (seq 0): the message may not even say who
     * it is from, but its connection is known. */
    if (front && in->routing_id_len > 0) {
      char reason[FRL_MSG_MAX_STRING];
      snprintf(reason, sizeof reason, "message refused: %.200s", in->err);
      send_ack(b, in->routing_id, in->routing_id_len, p ? p->name : "", 0, FRL_ACK_REJECTED,
               reason);
    }
  } else if (front) {
    on_front(b, now);
  } else {
    on_back(b, now);
  }
  b->in = NULL; /* the view is the caller's and ends with this call */
}

void frl_broker_stats(const frl_broker_t *b, frl_broker_stats_t *out) {
  *out = (frl_broker_stats_t){.peers = b->n_peers,
                              .live_actors = live_actors(b),
                              .learner_live = b->learner_live,
                              .credit = b->credit,
                              .queued = b->q_len,
                              .queue_capacity = b->q_cap,
                              .queued_bytes = b->q_bytes,
                              .forwarded = b->forwarded,
                              .busy = b->busy,
                              .rejected = b->rejected,
                              .bad_messages = b->bad_messages,
                              .estopped = b->estopped,
                              .params_version = b->params_version};
}

const char *frl_broker_check(const frl_broker_t *b) {
  if (b->n_peers < 0 || b->n_peers > FRL_BROKER_MAX_PEERS) return "registry size out of bounds";
  for (int i = 0; i < b->n_peers; i++) {
    const peer_t *p = &b->peers[i];
    if (!valid_name(p->name)) return "a registry entry has an invalid name";
    if (p->rid_len == 0 || p->rid_len > FRL_ROUTING_ID_MAX)
      return "a registry entry has no routing id";
    for (int j = i + 1; j < b->n_peers; j++) {
      const peer_t *o = &b->peers[j];
      if (strcmp(p->name, o->name) == 0) return "two registry entries have one name";
      if (p->live && o->live && p->rid_len == o->rid_len && memcmp(p->rid, o->rid, p->rid_len) == 0)
        return "two live registry entries have one routing id";
    }
  }
  if (b->q_len < 0 || b->q_len > b->q_cap) return "queue length out of bounds";
  size_t bytes = 0;
  for (int i = 0; i < b->q_len; i++) {
    const queued_t *q = &b->queue[(b->q_head + i) % b->q_cap];
    if (q->peer < 0 || q->peer >= b->n_peers) return "a queued batch names no registry entry";
    bytes += q->len;
  }
  if (bytes != b->q_bytes || bytes > QUEUE_MAX_BYTES) return "queued bytes do not add up";
  if (!b->learner_live && b->credit != 0) return "credit without a learner";
  return NULL;
}

int frl_broker_new(const frl_config_t *cfg, frl_broker_send_fn send, void *send_arg,
                   frl_broker_t **out) {
  *out = NULL;
  frl_peer_limits_config_t lc = {.rate_batches = cfg->actor_rate_batches,
                                 .rate_bytes = cfg->actor_rate_bytes,
                                 .burst_s = cfg->actor_burst_s,
                                 .max_batch_bytes = cfg->actor_max_batch_bytes,
                                 .max_actors = FRL_BROKER_MAX_PEERS};
  frl_peer_limits_t *limits = NULL;
  int rc = frl_peer_limits_new(&lc, &limits);
  if (rc != 0) return rc;
  broker_t *b = frl_xcalloc(1, sizeof *b);
  b->cfg = cfg;
  b->send = send;
  b->send_arg = send_arg;
  b->limits = limits;
  b->fb = frl_fb_builder_new(1 << 16);
  frl_inbox_init(&b->inbox);
  b->peers = frl_xcalloc(FRL_BROKER_MAX_PEERS, sizeof *b->peers);
  b->q_cap = cfg->queue_batches > 0 ? cfg->queue_batches : 1;
  b->queue = frl_xcalloc((size_t)b->q_cap, sizeof *b->queue);
  if (cfg->queue_batches == 0) b->q_cap = 0;
  *out = b;
  return 0;
}

void frl_broker_destroy(frl_broker_t **bp) {
  broker_t *b = *bp;
  if (!b) return;
  for (int i = 0; i < b->q_len; i++)
    free(b->queue[(b->q_head + i) % (b->q_cap ? b->q_cap : 1)].data);
  free(b->queue);
  free(b->params);
  free(b->peers);
  frl_inbox_free(&b->inbox);
  frl_fb_builder_destroy(&b->fb);
  frl_peer_limits_destroy(&b->limits);
  free(b);
  *bp = NULL;
}

/* Drains one socket. */
static void drain(broker_t *b, frl_broker_side_t side, double now) {
  void *sock = side == FRL_BROKER_ACTORS ? b->front : b->back;
  for (int budget = 0; budget < 4096; budget++) {
    int rc = frl_recv(sock, true, &b->inbox);
    if (rc == 0) return;
    if (rc < 0 && rc != FRL_EPROTO && rc != FRL_ESCHEMA) {
      frl_error("receive failed: %s", frl_strerror(rc));
      return;
    }
    frl_broker_handle(b, side, &b->inbox, rc, now);
  }
}

/* GET /metrics: the broker's figures in the Prometheus text format, collected when scraped. */
static void serve_metrics(void *arg, const frl_http_request_t *req, frl_http_response_t *res) {
  const broker_t *b = arg;
  double now = frl_now();
  frl_metrics_t *m = frl_metrics_new();
  int live[3] = {0, 0, 0};
  for (int i = 0; i < b->n_peers; i++)
    if (b->peers[i].live && (unsigned)b->peers[i].role < 3) live[b->peers[i].role]++;
  live[FRL_ROLE_LEARNER] = b->learner_live;
  int peers, fwd, busy, rej, age, up, pv, outbox, steps, shed;
  frl_metrics_gauge(m, "fleetrl_broker_peers", "Live peers registered at the broker, by role.",
                    FRL_LABELS("role"), &peers);
  frl_metrics_set(m, peers, FRL_LABELS("actor"), live[FRL_ROLE_ACTOR]);
  frl_metrics_set(m, peers, FRL_LABELS("learner"), live[FRL_ROLE_LEARNER]);
  frl_metrics_set(m, peers, FRL_LABELS("operator"), live[FRL_ROLE_OPERATOR]);
  frl_metrics_put(m, "fleetrl_broker_forwarded_batches_total", FRL_METRIC_COUNTER,
                  "Experience batches forwarded to the learner.", (double)b->forwarded);
  frl_metrics_put(m, "fleetrl_broker_busy_refusals_total", FRL_METRIC_COUNTER,
                  "Batches refused with a Busy ack (the actor keeps and resends them).",
                  (double)b->busy);
  frl_metrics_put(m, "fleetrl_broker_throttled_batches_total", FRL_METRIC_COUNTER,
                  "Busy refusals because an actor exceeded its rate limit.", (double)b->throttled);
  frl_metrics_put(m, "fleetrl_broker_rejected_batches_total", FRL_METRIC_COUNTER,
                  "Batches refused for good (wrong sender, dimensions or size).",
                  (double)b->rejected);
  frl_metrics_put(m, "fleetrl_broker_refused_messages_total", FRL_METRIC_COUNTER,
                  "Malformed or unexpected messages refused.", (double)b->bad_messages);
  frl_metrics_put(m, "fleetrl_broker_acks_routed_total", FRL_METRIC_COUNTER,
                  "Learner acks passed back to their actor.", (double)b->acks_routed);
  frl_metrics_put(m, "fleetrl_broker_acks_unroutable_total", FRL_METRIC_COUNTER,
                  "Acks whose actor was gone (it resends; the learner answers Duplicate).",
                  (double)b->acks_unroutable);
  frl_metrics_put(m, "fleetrl_broker_queue_batches", FRL_METRIC_GAUGE,
                  "Batches queued while the learner has no credit.", b->q_len);
  frl_metrics_put(m, "fleetrl_broker_queue_bytes", FRL_METRIC_GAUGE, "Bytes of those batches.",
                  (double)b->q_bytes);
  frl_metrics_put(m, "fleetrl_broker_queue_capacity_batches", FRL_METRIC_GAUGE,
                  "Batches the queue holds at most (--queue).", b->q_cap);
  frl_metrics_put(m, "fleetrl_broker_learner_credit_batches", FRL_METRIC_GAUGE,
                  "Batches the learner currently lets the broker forward.", (double)b->credit);
  if (b->zap) {
    frl_zap_stats_t z;
    frl_zap_stats(b->zap, &z);
    int hs;
    frl_metrics_counter(m, "fleetrl_broker_curve_handshakes_total",
                        "CURVE handshakes judged by the allowlist, by outcome.",
                        FRL_LABELS("outcome"), &hs);
    frl_metrics_set(m, hs, FRL_LABELS("admitted"), (double)z.admitted);
    frl_metrics_set(m, hs, FRL_LABELS("unknown_key"), (double)z.refused_key);
    frl_metrics_set(m, hs, FRL_LABELS("wrong_role"), (double)z.refused_role);
    frl_metrics_set(m, hs, FRL_LABELS("not_curve"),
                    (double)(z.refused_mechanism + z.refused_plaintext));
    frl_metrics_set(m, hs, FRL_LABELS("malformed"), (double)z.refused_malformed);
    frl_metrics_set(m, hs, FRL_LABELS("failed"), (double)z.refused_protocol);
  }
  frl_metrics_put(m, "fleetrl_broker_estop", FRL_METRIC_GAUGE,
                  "1 while an e-stop is in force, else 0.", b->estopped);
  frl_metrics_put(m, "fleetrl_broker_params_version", FRL_METRIC_GAUGE,
                  "Version of the parameters cached for newcomers (0: none yet).",
                  (double)b->params_version);
  frl_metrics_counter(m, "fleetrl_broker_actor_forwarded_batches_total",
                      "Batches of this actor forwarded to the learner.", FRL_LABELS("actor"),
                      &fwd);
  frl_metrics_counter(m, "fleetrl_broker_actor_busy_refusals_total",
                      "Batches of this actor refused with a Busy ack.", FRL_LABELS("actor"), &busy);
  frl_metrics_counter(m, "fleetrl_broker_actor_rejected_batches_total",
                      "Batches or messages of this actor refused for good.", FRL_LABELS("actor"),
                      &rej);
  frl_metrics_gauge(m, "fleetrl_broker_actor_last_heard_seconds",
                    "Seconds since the broker last heard from this actor.", FRL_LABELS("actor"),
                    &age);
  frl_metrics_gauge(m, "fleetrl_broker_actor_up", "1 while this actor is live, else 0.",
                    FRL_LABELS("actor"), &up);
  frl_metrics_gauge(m, "fleetrl_broker_actor_params_version",
                    "Parameters version the actor reported in its last heartbeat.",
                    FRL_LABELS("actor"), &pv);
  frl_metrics_gauge(m, "fleetrl_broker_actor_outbox_batches",
                    "Unacknowledged batches the actor reported holding.", FRL_LABELS("actor"),
                    &outbox);
  frl_metrics_counter(m, "fleetrl_broker_actor_env_steps_total",
                      "Environment steps the actor reported (restarts from 0 with the actor).",
                      FRL_LABELS("actor"), &steps);
  frl_metrics_counter(m, "fleetrl_broker_actor_shed_batches_total",
                      "Batches the actor could not keep and reported shed.", FRL_LABELS("actor"),
                      &shed);
  for (int i = 0; i < b->n_peers; i++) {
    const peer_t *p = &b->peers[i];
    if (p->role != FRL_ROLE_ACTOR) continue;
    const char *const *who = FRL_LABELS(p->name);
    frl_metrics_set(m, fwd, who, (double)p->forwarded);
    frl_metrics_set(m, busy, who, (double)p->busy);
    frl_metrics_set(m, rej, who, (double)p->rejected);
    frl_metrics_set(m, age, who, now - p->last_seen);
    frl_metrics_set(m, up, who, p->live);
    frl_metrics_set(m, pv, who, (double)p->params_version);
    frl_metrics_set(m, outbox, who, p->outbox);
    frl_metrics_set(m, steps, who, (double)p->env_steps);
    frl_metrics_set(m, shed, who, (double)p->shed);
  }
  char *text;
  size_t len;
  frl_metrics_render(m, &text, &len);
  frl_metrics_destroy(&m);
  frl_http_set_body(res, text, len);
  res->content_type = FRL_METRICS_CONTENT_TYPE;
}

static void write_endpoints(const broker_t *b, const char *path, const char *front,
                            const char *back) {
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    frl_error("--endpoints-file: cannot write %s: %s", tmp, strerror(errno));
    return;
  }
  fprintf(f, "actor_endpoint=%s\nlearner_endpoint=%s\n", front, back);
  if (b->http_addr[0]) fprintf(f, "http_address=%s\n", b->http_addr);
  fclose(f);
  if (rename(tmp, path) != 0) frl_error("--endpoints-file: cannot rename to %s", path);
}

int frl_broker_main(const frl_config_t *cfg) {
  broker_t *b = NULL;
  if (frl_broker_new(cfg, NULL, NULL, &b) != 0) {
    frl_error("the per-actor limits (--actor-rate-*, --actor-burst) are not valid");
    return 1;
  }
  int exit_code = 1;
  char front_ep[256] = "", back_ep[256] = "";
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  b->ctx = zmq_ctx_new();
  if (cfg->allow[0]) {
    /* The ZAP handler must be bound before any CURVE socket: without it libzmq admits all. */
    char err[600];
    if (frl_zap_new(b->ctx, cfg->allow, &b->zap, err, sizeof err) != 0) {
      frl_error("--allow: %s", err);
      goto done;
    }
  }
  b->front = frl_socket_router(b->ctx, cfg->actor_endpoint, front_ep, sizeof front_ep);
  if (!b->front) {
    frl_error("cannot bind actor endpoint %s: %s", cfg->actor_endpoint, zmq_strerror(errno));
    goto done;
  }
  /* Its own ZAP domain: under CURVE only the learner's key is admitted there. */
  b->back = frl_socket_router_zap(b->ctx, cfg->learner_endpoint, FRL_ZAP_DOMAIN_LEARNER, back_ep,
                                 sizeof back_ep);
  if (!b->back) {
    frl_error("cannot bind learner endpoint %s: %s", cfg->learner_endpoint, zmq_strerror(errno));
    goto done;
  }
  if (b->zap) {
    void *watch[2] = {b->front, b->back};
    const char *labels[2] = {"actor", "learner"};
    if (frl_zap_start(b->zap, watch, labels, 2) != 0) goto done;
  }
  /* /metrics runs on a libuv loop of its own whose epoll fd is polled with the sockets. It is
   * an aid: a port that cannot be had is a warning, not a reason to stop brokering. */
  if (frl_http_server_new(&b->http, NULL, NULL) == 0) {
    frl_http_server_route(b->http, "/metrics", serve_metrics, b);
    frl_http_server_start(b->http, cfg->http, FRL_HTTP_BROKER_DEFAULT, "/metrics",
                          cfg->http_addr_file, b->http_addr, sizeof b->http_addr);
    if (!b->http_addr[0]) frl_http_server_destroy(&b->http);
  }
  if (cfg->endpoints_file[0]) write_endpoints(b, cfg->endpoints_file, front_ep, back_ep);
  frl_info("listening: actors %s, learner %s", front_ep, back_ep);

  double next_tick = frl_now(), next_report = frl_now() + 10;
  uint64_t last_forwarded = 0;
  while (!g_stop) {
    zmq_pollitem_t items[3] = {{b->front, 0, ZMQ_POLLIN, 0}, {b->back, 0, ZMQ_POLLIN, 0},
                               {NULL, b->http ? frl_http_server_fd(b->http) : -1, ZMQ_POLLIN, 0}};
    long wait_ms = (long)((next_tick - frl_now()) * 1000);
    if (wait_ms < 0) wait_ms = 0;
    if (b->q_len > 0 && b->credit > 0 && wait_ms > 5) wait_ms = 5;
    int http_ms = b->http ? frl_http_server_timeout_ms(b->http) : -1;
    if (http_ms >= 0 && http_ms < wait_ms) wait_ms = http_ms;
    int n = zmq_poll(items, b->http ? 3 : 2, wait_ms);
    if (n < 0 && zmq_errno() != EINTR) {
      frl_error("poll failed: %s", zmq_strerror(zmq_errno()));
      goto done;
    }
    double now = frl_now();
    if (n > 0) {
      if (items[1].revents & ZMQ_POLLIN) drain(b, FRL_BROKER_LEARNER, now);
      if (items[0].revents & ZMQ_POLLIN) drain(b, FRL_BROKER_ACTORS, now);
    }
    frl_broker_pump(b);
    if (b->http) frl_http_server_run_nowait(b->http); /* cheap when nothing is due */
    if (now >= next_tick) {
      frl_broker_expire(b, now);
      next_tick = now + cfg->heartbeat_s;
    }
    if (now >= next_report) {
      frl_info("%d actors live, learner %s, forwarded %.0f batches/s, queue %d, refused busy %llu, "
               "rejected %llu, bad messages %llu, throttled %llu",
               live_actors(b), b->learner_live ? "up" : "DOWN",
               (double)(b->forwarded - last_forwarded) / 10.0, b->q_len,
               (unsigned long long)b->busy, (unsigned long long)b->rejected,
               (unsigned long long)b->bad_messages, (unsigned long long)b->throttled);
      last_forwarded = b->forwarded;
      next_report = now + 10;
    }
  }
  frl_info("stopping: forwarded %llu batches, %d still queued (their actors resend them)",
           (unsigned long long)b->forwarded, b->q_len);
  exit_code = 0;
done:
  frl_http_server_destroy(&b->http);
  /* Let what was just fanned out (a Shutdown, final acks) leave, for at most a second. */
  int linger = 1000;
  if (b->front) {
    zmq_setsockopt(b->front, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(b->front);
  }
  if (b->back) {
    zmq_setsockopt(b->back, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(b->back);
  }
  /* After the sockets close, so that no handshake ever finds the ZAP handler gone. */
  frl_zap_destroy(&b->zap);
  void *ctx = b->ctx;
  frl_broker_destroy(&b);
  zmq_ctx_term(ctx);
  return exit_code;
}
