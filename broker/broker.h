/* broker.h: the fleet's switchboard. Binds the actor-facing and learner-facing ROUTER
 * endpoints, keeps the registry of live peers by heartbeat, forwards experience to the learner
 * under credit-based flow control (queueing a bounded amount, refusing the rest with a Busy ack
 * so the sender keeps it), routes acks back, caches the latest Params for newcomers and fans
 * Params and Control out. It never drops a message silently. */
#ifndef FRL_BROKER_H
#define FRL_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "transport.h"

/* Runs the broker until SIGINT/SIGTERM or a Shutdown control. Returns a process exit code. */
int frl_broker_main(const frl_config_t *cfg);

/* The broker's message handling apart from its sockets, which frl_broker_main drives from its
 * poll loop: the same calls let a test or a fuzzer feed it messages one at a time and see
 * every message it sends, without a network. */
#define FRL_BROKER_MAX_PEERS 4096 /* actors and operators in the registry */

typedef enum {
  FRL_BROKER_ACTORS = 0,  /* the actor endpoint (actors and operators) */
  FRL_BROKER_LEARNER = 1, /* the learner endpoint */
} frl_broker_side_t;

/* Sends one message to routing id rid on a side. Returns 0, FRL_EBUSY when the peer's queue is
 * full, or -errno, as frl_send_raw does (the broker acts on FRL_EBUSY: it keeps the batch). */
typedef int (*frl_broker_send_fn)(void *arg, frl_broker_side_t side, const uint8_t *rid,
                                  size_t rid_len, const void *data, size_t len);

typedef struct frl_broker frl_broker_t;

/* Figures of the broker's state, for checks. */
typedef struct {
  int peers;          /* registry entries, live or not (at most FRL_BROKER_MAX_PEERS) */
  int live_actors;
  bool learner_live;
  uint64_t credit;    /* batches the learner lets the broker forward now */
  int queued, queue_capacity;
  size_t queued_bytes;
  uint64_t forwarded, busy, rejected, bad_messages;
  bool estopped;
  uint64_t params_version;
} frl_broker_stats_t;

/* Creates a broker's state for cfg (kept by reference: the queue, the per-actor limits, the
 * heartbeat and peer timeouts). With send NULL, messages go to the sockets frl_broker_main
 * opens; otherwise to send(send_arg, ...). Returns 0, or FRL_EUSAGE when the per-actor limits
 * are not valid. */
int frl_broker_new(const frl_config_t *cfg, frl_broker_send_fn send, void *send_arg,
                   frl_broker_t **out);
/* Frees the state (queued batches included) and sets *b to NULL; NULL is fine. */
void frl_broker_destroy(frl_broker_t **b);
/* Handles one message received on a side at time now (seconds, monotonic): in holds its
 * routing id, CURVE user id and bytes, rc what frl_recv returned for it (1: decoded, in->msg
 * is its view; FRL_EPROTO or FRL_ESCHEMA: refused, in->err says why). Replies, forwards and
 * fan-outs are sent before it returns. */
void frl_broker_handle(frl_broker_t *b, frl_broker_side_t side, const frl_inbox_t *in, int rc,
                       double now);
/* Forwards queued experience while the learner has credit. */
void frl_broker_pump(frl_broker_t *b);
/* Marks peers and the learner silent for longer than the peer timeout as gone, and drops idle
 * per-actor limit entries; the poll loop calls it once per heartbeat period. */
void frl_broker_expire(frl_broker_t *b, double now);
void frl_broker_stats(const frl_broker_t *b, frl_broker_stats_t *out);
/* Checks the invariants of the registry (valid names, one entry per name, one live entry per
 * connection) and of the queue (its bytes add up, each batch names its sender's entry).
 * Returns NULL, or what is broken. For tests: the cost is quadratic in the registry. */
const char *frl_broker_check(const frl_broker_t *b);

/* The prefix of Welcome.error that asks a peer to send Hello again (the broker does not know
 * it, e.g. after a broker restart); any other refusal is final. */
#define FRL_WELCOME_HELLO_AGAIN "unknown peer"

#endif
