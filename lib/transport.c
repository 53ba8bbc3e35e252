/* transport.c: receive-verify-decode and non-blocking send over ZeroMQ sockets, and the
 * socket constructors that apply the process's security setting (CURVE or plaintext). */
#include "transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common.h"
#include "log.h"

void frl_inbox_init(frl_inbox_t *in) { memset(in, 0, sizeof *in); }

void frl_inbox_free(frl_inbox_t *in) {
  free(in->data);
  memset(in, 0, sizeof *in);
}

static int reserve(frl_inbox_t *in, size_t len) {
  if (len <= in->cap) return 0;
  size_t cap = in->cap ? in->cap : 4096;
  while (cap < len) cap *= 2;
  void *p = NULL;
  if (posix_memalign(&p, 64, cap) != 0) return -ENOMEM;
  free(in->data);
  in->data = p;
  in->cap = cap;
  return 0;
}

/* Discards the remaining frames of a multipart message. */
static void drain_more(void *sock) {
  int more = 1;
  size_t sz = sizeof more;
  while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    zmq_msg_recv(&m, sock, ZMQ_DONTWAIT);
    zmq_msg_close(&m);
  }
}

static bool has_more(void *sock) {
  int more = 0;
  size_t sz = sizeof more;
  return zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more;
}

int frl_recv(void *sock, bool router, frl_inbox_t *in) {
  zmq_msg_t m;
  zmq_msg_init(&m);
  in->err[0] = '\0';
  in->routing_id_len = 0;
  in->user_id[0] = '\0';
  if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
    int e = zmq_errno();
    zmq_msg_close(&m);
    return e == EAGAIN ? 0 : -e;
  }
  if (router) {
    size_t n = zmq_msg_size(&m);
    if (n > FRL_ROUTING_ID_MAX) n = FRL_ROUTING_ID_MAX;
    memcpy(in->routing_id, zmq_msg_data(&m), n);
    in->routing_id_len = n;
    if (!has_more(sock)) {
      zmq_msg_close(&m);
      snprintf(in->err, sizeof in->err, "message has no payload frame");
      return FRL_EPROTO;
    }
    zmq_msg_close(&m);
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
      int e = zmq_errno();
      zmq_msg_close(&m);
      snprintf(in->err, sizeof in->err, "payload frame missing: %s", zmq_strerror(e));
      return FRL_EPROTO;
    }
  }
  /* Under CURVE the ZAP handler names each connection; libzmq attaches that name to every
   * message the connection delivers, so it cannot be forged by the peer. */
  const char *uid = zmq_msg_gets(&m, "User-Id");
  if (uid) snprintf(in->user_id, sizeof in->user_id, "%s", uid);
  int rc = 0;
  size_t len = zmq_msg_size(&m);
  if (has_more(sock)) {
    drain_more(sock);
    snprintf(in->err, sizeof in->err, "message has more than one payload frame");
    rc = FRL_EPROTO;
  } else {
    rc = frl_inbox_load(in, zmq_msg_data(&m), len);
  }
  zmq_msg_close(&m);
  return rc;
}

int frl_inbox_load(frl_inbox_t *in, const void *data, size_t len) {
  in->err[0] = '\0';
  if (len > FRL_MSG_MAX_BYTES) {
    snprintf(in->err, sizeof in->err, "message is %zu bytes, the limit is %u", len,
             FRL_MSG_MAX_BYTES);
    return FRL_EPROTO;
  }
  int rc = reserve(in, len);
  if (rc != 0) return rc;
  if (len) memcpy(in->data, data, len);
  in->len = len;
  rc = frl_msg_decode(in->data, len, &in->msg, in->err, sizeof in->err);
  return rc == 0 ? 1 : rc;
}

int frl_recv_next(void *sock, bool router, frl_inbox_t *in, const char *peer, uint64_t *refused) {
  for (;;) {
    int rc = frl_recv(sock, router, in);
    if (rc >= 0) return rc;
    if (rc != FRL_EPROTO && rc != FRL_ESCHEMA) {
      frl_error("receive from %s failed: %s", peer, frl_strerror(rc));
      return rc;
    }
    if (refused) (*refused)++;
    frl_warn("refused a message from %s: %s", peer, in->err);
  }
}

int frl_send_raw(void *sock, const void *rid, size_t rid_len, const void *data, size_t len) {
  if (rid && zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
    int e = zmq_errno();
    return e == EAGAIN ? FRL_EBUSY : -e;
  }
  if (zmq_send(sock, data, len, ZMQ_DONTWAIT) < 0) {
    int e = zmq_errno();
    return e == EAGAIN ? FRL_EBUSY : -e;
  }
  return 0;
}

int frl_send(void *sock, const void *rid, size_t rid_len, const frl_fb_builder_t *b) {
  size_t len = 0;
  const void *data = frl_fb_builder_data(b, &len);
  return frl_send_raw(sock, rid, rid_len, data, len);
}

static frl_security_t g_security;
static void *g_zap_ctx;

void frl_transport_set_security(const frl_security_t *sec) {
  if (sec) g_security = *sec;
  else memset(&g_security, 0, sizeof g_security);
}

bool frl_transport_curve(void) { return g_security.curve; }

const char *frl_transport_hint(void) {
  return g_security.curve
             ? "is `fleetrl broker` running, is this key on its --allow list, and is "
               "--broker-key its public key?"
             : "is `fleetrl broker` running? If it uses CURVE, pass --curve-secret and "
               "--broker-key";
}

void frl_transport_set_zap_context(void *ctx) { g_zap_ctx = ctx; }

/* The CURVE options for one socket; -1 with errno set when libzmq refuses them (for example a
 * build without CURVE: ENOTSUP), so that no socket silently falls back to plaintext. */
static int curve_opts(void *s, bool server, const char *zap_domain) {
  const frl_security_t *c = &g_security;
  if (server) {
    int one = 1;
    if (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one) != 0) return -1;
    if (zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, c->secret_key, 32) != 0) return -1;
    /* The domain names this service in each ZAP request (RFC 27). */
    return zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, zap_domain, strlen(zap_domain));
  }
  if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, c->server_key, 32) != 0) return -1;
  if (zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, c->public_key, 32) != 0) return -1;
  return zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, c->secret_key, 32);
}

static void common_opts(void *s) {
  int zero = 0, hwm = 10000, keepalive = 1, ivl = 100, ivl_max = 2000;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_TCP_KEEPALIVE, &keepalive, sizeof keepalive);
  zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
  zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
  int64_t maxmsg = (int64_t)FRL_MSG_MAX_BYTES + 1024;
  zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
}

void *frl_socket_dealer(void *ctx, const char *endpoint, const char *routing_id) {
  void *s = zmq_socket(ctx, ZMQ_DEALER);
  if (!s) return NULL;
  common_opts(s);
  /* Messages queue only for completed connections, so nothing waits for a broker that is
   * not there; the outbox owns resending. */
  int one = 1;
  zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one);
  if (routing_id && *routing_id) zmq_setsockopt(s, ZMQ_ROUTING_ID, routing_id, strlen(routing_id));
  if ((g_security.curve && curve_opts(s, false, NULL) != 0) || zmq_connect(s, endpoint) != 0) {
    int e = zmq_errno();
    zmq_close(s);
    errno = e;
    return NULL;
  }
  return s;
}

void *frl_socket_router(void *ctx, const char *endpoint, char *bound, size_t bound_len) {
  return frl_socket_router_zap(ctx, endpoint, FRL_ZAP_DOMAIN_ACTORS, bound, bound_len);
}

void *frl_socket_router_zap(void *ctx, const char *endpoint, const char *zap_domain, char *bound,
                            size_t bound_len) {
  if (g_security.curve && ctx != g_zap_ctx) {
    errno = EACCES; /* CURVE without a ZAP handler would admit anyone */
    return NULL;
  }
  void *s = zmq_socket(ctx, ZMQ_ROUTER);
  if (!s) return NULL;
  common_opts(s);
  int one = 1;
  zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
  /* A peer that reconnects with the same routing id takes over its old connection. */
  zmq_setsockopt(s, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
  if ((g_security.curve && curve_opts(s, true, zap_domain) != 0) || zmq_bind(s, endpoint) != 0) {
    int e = zmq_errno();
    zmq_close(s);
    errno = e;
    return NULL;
  }
  if (bound && bound_len) {
    size_t n = bound_len;
    if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, bound, &n) != 0) snprintf(bound, bound_len, "%s", endpoint);
  }
  return s;
}

int frl_send_hello(void *sock, frl_fb_builder_t *b, frl_role_t role, const char *name,
                   const char *task, int actor_index, int num_actors, uint32_t obs_dim,
                   uint32_t act_dim) {
  frl_hello_t h = {.schema_hash = frl_schema_hash(),
                   .role = role,
                   .name = name,
                   .actor_index = actor_index,
                   .num_actors = num_actors,
                   .task = task,
                   .obs_dim = obs_dim,
                   .act_dim = act_dim};
  int rc = frl_msg_encode_hello(b, &h);
  if (rc) return rc;
  return frl_send(sock, NULL, 0, b);
}
