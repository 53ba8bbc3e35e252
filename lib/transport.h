/* transport.h: ZeroMQ framing shared by every process. A message on the wire is one frame
 * holding one FlatBuffers Message (schema/fleetrl.fbs); ROUTER sockets add the peer's routing
 * id as a first frame. Received payloads are placed in 8-byte-aligned storage, verified and
 * decoded before anyone reads them. */
#ifndef FRL_TRANSPORT_H
#define FRL_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fb.h"
#include "msg.h"

#define FRL_ROUTING_ID_MAX 256
#define FRL_USER_ID_MAX 65 /* an authenticated peer's name (ZAP User-Id) and its NUL */
#define FRL_ZAP_DOMAIN_ACTORS "fleetrl"          /* ZAP domain of the actor endpoint */
#define FRL_ZAP_DOMAIN_LEARNER "fleetrl-learner" /* ... and of the learner endpoint */

/* A received message: the decoded view points into `data`, valid until the next receive into
 * the same frl_inbox_t. */
typedef struct {
  uint8_t routing_id[FRL_ROUTING_ID_MAX];
  size_t routing_id_len;  /* 0 on DEALER sockets */
  char user_id[FRL_USER_ID_MAX]; /* the sender's allowlisted name under CURVE, else "" */
  void *data;             /* 8-byte aligned copy of the payload */
  size_t len, cap;
  frl_msg_t msg;
  char err[256];          /* why the last message was refused */
} frl_inbox_t;

void frl_inbox_init(frl_inbox_t *in);
void frl_inbox_free(frl_inbox_t *in);

/* Receives one message without blocking. Returns 1 when a valid message is in `in`, 0 when
 * nothing is waiting, FRL_EPROTO/FRL_ESCHEMA when a message arrived but failed verification
 * (reason in in->err; the caller reports it and goes on), or -errno on a socket error. With
 * `router` the first frame is taken as the routing id. Extra frames are refused. */
int frl_recv(void *sock, bool router, frl_inbox_t *in);

/* Copies one payload into in's aligned storage, verifies and decodes it, as frl_recv does with
 * what it receives (routing and user id are left as they are). Returns 1 with the view in
 * in->msg, FRL_EPROTO/FRL_ESCHEMA with the reason in in->err, or -ENOMEM. */
int frl_inbox_load(frl_inbox_t *in, const void *data, size_t len);

/* Like frl_recv, but a message that fails verification is logged (naming `peer` and the
 * reason), counted in *refused when not NULL, and skipped. Returns 1 with a valid message in
 * `in`, 0 when nothing valid is waiting, or -errno on a socket error (logged). */
int frl_recv_next(void *sock, bool router, frl_inbox_t *in, const char *peer, uint64_t *refused);

/* Sends bytes as one message, to routing id `rid` on a ROUTER (rid NULL on DEALER). Never
 * blocks: returns 0, FRL_EBUSY when the peer's queue is at its high-water mark, -EHOSTUNREACH
 * when a ROUTER does not know rid, or -errno. */
int frl_send_raw(void *sock, const void *rid, size_t rid_len, const void *data, size_t len);
/* Sends the message finished in builder b. */
int frl_send(void *sock, const void *rid, size_t rid_len, const frl_fb_builder_t *b);

/* This process's transport security. With curve set, every DEALER is a CURVE client that
 * authenticates to the server key, and every ROUTER is a CURVE server whose peers a ZAP
 * handler (broker/zap.c) must admit; without it, sockets are plaintext. */
typedef struct {
  bool curve;
  uint8_t public_key[32], secret_key[32];
  uint8_t server_key[32]; /* DEALERs: the broker's public key */
} frl_security_t;

/* Sets the security every later frl_socket_dealer/frl_socket_router applies (a copy is kept;
 * NULL returns to plaintext). Call once at start, before sockets exist and before threads that
 * create sockets. */
void frl_transport_set_security(const frl_security_t *sec);
/* True when CURVE is configured. */
bool frl_transport_curve(void);
/* What to check when the broker never answers, given this process's security setting: a
 * CURVE handshake the broker refuses looks like silence to the client. */
const char *frl_transport_hint(void);
/* Records that a ZAP handler is bound in ctx (broker/zap.c calls it; NULL when it stops).
 * A CURVE ROUTER is created only in that context: without a handler libzmq would admit every
 * CURVE client, so frl_socket_router refuses (errno EACCES) rather than open the door. */
void frl_transport_set_zap_context(void *ctx);

/* Socket setup with the options every fleetrl socket uses: linger 0 so close never hangs,
 * high-water marks, TCP keepalive, reconnect backoff; ROUTERs get ROUTER_MANDATORY so that an
 * unroutable send is reported instead of silently dropped. The security set above is applied
 * before connect/bind. Returns NULL with errno set. */
void *frl_socket_dealer(void *ctx, const char *endpoint, const char *routing_id);
void *frl_socket_router(void *ctx, const char *endpoint, char *bound, size_t bound_len);
/* frl_socket_router whose CURVE handshakes reach the ZAP handler under zap_domain, so that the
 * handler can admit different keys on different endpoints (frl_socket_router uses
 * FRL_ZAP_DOMAIN_ACTORS). Without CURVE the domain is unused. */
void *frl_socket_router_zap(void *ctx, const char *endpoint, const char *zap_domain, char *bound,
                            size_t bound_len);

/* Builds and sends a Hello / Heartbeat; convenience for peers. */
int frl_send_hello(void *sock, frl_fb_builder_t *b, frl_role_t role, const char *name,
                   const char *task, int actor_index, int num_actors, uint32_t obs_dim,
                   uint32_t act_dim);

#endif
