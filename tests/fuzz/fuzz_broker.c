/* fuzz_broker.c: libFuzzer target for the broker's message handlers. Each input is a short
 * exchange (format: tests/fuzz/fuzz_broker.h): messages from actors, operators and a learner
 * on up to 8 connections, fed one by one through the broker's own dispatch
 * (frl_broker_handle, the call its poll loop makes for every message it receives) with a
 * clock the input moves, the queue pumped after each message as the loop does. Nothing goes
 * on a network: the broker's sends come to a hook here. A refusal is fine; a crash, a
 * sanitizer report or a broken invariant is a finding:
 *   - every message the broker sends verifies and decodes, goes to one of the connections
 *     the input used, and is of a type meant for that endpoint;
 *   - the registry and the queue stay within their bounds and consistent (frl_broker_check:
 *     one entry per name, one live entry per connection, queued bytes that add up);
 *   - experience reaches the learner only under credit, the broker's forwarded count is what
 *     actually left, and credit is never invented;
 *   - a Welcome that admits a peer on the actor endpoint says whether an e-stop is in force,
 *     and the broker's heartbeats report it.
 * Every input starts a fresh broker, so a finding replays alone. Logging is off (the broker
 * logs every refusal) unless FUZZ_BROKER_LOG=1. Build and run: make fuzz (seed corpus:
 * tests/fuzz/corpus_broker, written by tests/fuzz/broker_seeds.c). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "common.h"
#include "config.h"
#include "fuzz_broker.h"
#include "log.h"
#include "msg.h"
#include "transport.h"

/* The CURVE user ids a connection may carry ("": plaintext) and the clock steps, in seconds. */
static const char *const USERS[4] = {"", "robot-a", "robot-b", "learner"};
static const double CLOCK_STEP[4] = {0.0, 0.01, 0.6, 4.0};

/* Small limits, so that short inputs reach them: 3 queued batches, 4 batches/s per actor. */
static const frl_config_t CONFIG = {.heartbeat_s = 0.5,
                                    .peer_timeout_s = 3.0,
                                    .queue_batches = 3,
                                    .actor_max_batch_bytes = 2048,
                                    .actor_rate_bytes = 8192,
                                    .actor_rate_batches = 4,
                                    .actor_burst_s = 1.0};

/* What the hook saw during one message. */
typedef struct {
  int send_result;      /* what every send returns while this message is handled */
  bool estopped_before; /* the e-stop state when the message arrived */
  uint64_t experience_sent; /* ExperienceBatches the learner accepted */
  frl_broker_t *broker;
} hook_t;

static void rid_of(int conn, uint8_t rid[5]) {
  /* The shape of the routing ids a ROUTER makes up: a zero byte, then four. */
  rid[0] = 0;
  rid[1] = 0x80;
  rid[2] = 0;
  rid[3] = 0;
  rid[4] = (uint8_t)(conn + 1);
}

static bool known_rid(const uint8_t *rid, size_t len) {
  uint8_t r[5];
  rid_of(0, r);
  return len == 5 && memcmp(rid, r, 4) == 0 && rid[4] >= 1 && rid[4] <= FB_CONNS;
}

static int on_send(void *arg, frl_broker_side_t side, const uint8_t *rid, size_t rid_len,
                   const void *data, size_t len) {
  hook_t *h = arg;
  if (!known_rid(rid, rid_len)) abort();
  /* The receiver's view: an exact-size aligned copy, so that ASan sees any read past it. */
  void *copy = NULL;
  if (posix_memalign(&copy, 8, len ? len : 1) != 0) abort();
  if (len) memcpy(copy, data, len);
  frl_msg_t m;
  char err[256];
  if (frl_msg_decode(copy, len, &m, err, sizeof err) != 0) abort();
  frl_broker_stats_t st;
  frl_broker_stats(h->broker, &st);
  if (side == FRL_BROKER_LEARNER) {
    if (m.type != FRL_MSG_WELCOME && m.type != FRL_MSG_HEARTBEAT &&
        m.type != FRL_MSG_EXPERIENCE && m.type != FRL_MSG_CONTROL)
      abort();
    if (m.type == FRL_MSG_EXPERIENCE && h->send_result == 0) h->experience_sent++;
  } else {
    if (m.type != FRL_MSG_WELCOME && m.type != FRL_MSG_HEARTBEAT && m.type != FRL_MSG_ACK &&
        m.type != FRL_MSG_PARAMS && m.type != FRL_MSG_CONTROL)
      abort();
    if (m.type == FRL_MSG_WELCOME && m.u.welcome.ok && m.u.welcome.estop != h->estopped_before)
      abort();
  }
  /* The broker's own heartbeats (it forwards no one else's) carry its e-stop state. */
  if (m.type == FRL_MSG_HEARTBEAT && m.u.heartbeat.safe_mode != st.estopped) abort();
  free(copy);
  return h->send_result;
}

static void check_state(const frl_broker_t *b, const frl_broker_stats_t *s) {
  const char *broken = frl_broker_check(b);
  if (broken) {
    fprintf(stderr, "fuzz_broker: %s\n", broken);
    abort();
  }
  if (s->live_actors < 0 || s->live_actors > s->peers) abort();
  if ((s->queued == 0) != (s->queued_bytes == 0)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool log_set;
  if (!log_set) {
    /* FUZZ_BROKER_LOG=1 shows the broker's log, to read what an input does. */
    const char *show = getenv("FUZZ_BROKER_LOG");
    frl_log_init("broker", show && *show == '1' ? FRL_LOG_DEBUG : FRL_LOG_ERROR + 1);
    log_set = true;
  }
  hook_t h = {0};
  if (frl_broker_new(&CONFIG, on_send, &h, &h.broker) != 0) abort();
  double now = 1000.0;
  size_t at = 0;
  for (int n = 0; n < FB_MAX_RECORDS && size - at >= FB_HEADER; n++) {
    const unsigned who = data[at], how = data[at + 1];
    size_t len = (size_t)data[at + 2] | (size_t)data[at + 3] << 8;
    at += FB_HEADER;
    if (len > size - at) len = size - at;
    const frl_broker_side_t side = (who & FB_LEARNER) ? FRL_BROKER_LEARNER : FRL_BROKER_ACTORS;
    now += CLOCK_STEP[who >> 6 & 3];

    /* The message as frl_recv leaves it, in storage of exactly its size. */
    frl_inbox_t in;
    frl_inbox_init(&in);
    rid_of(who >> 1 & 7, in.routing_id);
    in.routing_id_len = 5;
    snprintf(in.user_id, sizeof in.user_id, "%s", USERS[who >> 4 & 3]);
    if (posix_memalign(&in.data, 64, len ? len : 1) != 0) abort();
    in.cap = len;
    int rc = frl_inbox_load(&in, data + at, len);
    at += len;
    if (rc != 1 && rc != FRL_EPROTO && rc != FRL_ESCHEMA) abort();

    frl_broker_stats_t before, after;
    frl_broker_stats(h.broker, &before);
    h.send_result = (how & 3) == 1 ? FRL_EBUSY : (how & 3) == 2 ? -EHOSTUNREACH : 0;
    h.estopped_before = before.estopped;
    h.experience_sent = 0;
    const uint64_t granted = rc == 1 && side == FRL_BROKER_LEARNER && in.msg.type == FRL_MSG_CREDIT
                                 ? in.msg.u.credit.batches
                                 : 0;
    frl_broker_handle(h.broker, side, &in, rc, now);
    frl_broker_pump(h.broker);
    if (how & FB_EXPIRE) frl_broker_expire(h.broker, now);
    frl_broker_stats(h.broker, &after);
    check_state(h.broker, &after);
    if (after.forwarded - before.forwarded != h.experience_sent) abort();
    if (h.experience_sent > before.credit + granted) abort();
    if (after.credit + h.experience_sent > before.credit + granted) abort();
    frl_inbox_free(&in);
  }
  frl_broker_destroy(&h.broker);
  return 0;
}
