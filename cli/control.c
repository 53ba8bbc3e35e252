/* control.c: one operator command, with a deadline on every wait. */
#include "control.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "broker.h"
#include "common.h"
#include "log.h"
#include "transport.h"

int frl_control_main(const frl_config_t *cfg, frl_control_cmd_t command, const char *reason,
                     double value) {
  char name[64];
  snprintf(name, sizeof name, "operator-%ld", (long)getpid());
  void *ctx = zmq_ctx_new();
  void *sock = frl_socket_dealer(ctx, cfg->actor_endpoint, name);
  frl_fb_builder_t *fb = frl_fb_builder_new(4096);
  frl_inbox_t in;
  frl_inbox_init(&in);
  int code = 3;
  if (!sock) {
    frl_error("--actor-endpoint: cannot connect to %s: %s", cfg->actor_endpoint,
              zmq_strerror(errno));
    goto done;
  }
  double deadline = frl_now() + cfg->connect_timeout_s, last_hello = 0;
  bool welcomed = false, sent = false, queued = false;
  while (frl_now() < deadline) {
    double now = frl_now();
    /* Until the connection is up a dealer refuses to queue (ZMQ_IMMEDIATE), so the Hello is
     * retried every poll (10 ms) until it is queued, then every 0.2 s until welcomed: an
     * e-stop must not wait a fixed retry period for a TCP handshake. */
    if (!welcomed && (!queued || now - last_hello > 0.2)) {
      queued = frl_send_hello(sock, fb, FRL_ROLE_OPERATOR, name, "", -1, 0, 0, 0) == 0;
      last_hello = now;
    }
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    zmq_poll(&it, 1, 10);
    while (frl_recv_next(sock, false, &in, "the broker", NULL) == 1) {
      if (in.msg.type == FRL_MSG_WELCOME) {
        if (!in.msg.u.welcome.ok) {
          frl_error("the broker refused this operator: %s",
                    in.msg.u.welcome.error ? in.msg.u.welcome.error : "(no reason)");
          code = 2;
          goto done;
        }
        welcomed = true;
        frl_control_t c = {.command = command, .reason = reason, .value = value};
        if (frl_msg_encode_control(fb, &c) == 0 && frl_send(sock, NULL, 0, fb) == 0) sent = true;
      } else if (in.msg.type == FRL_MSG_HEARTBEAT && sent) {
        /* The broker answers a Control with a heartbeat once it has fanned it out. */
        code = 0;
        goto done;
      }
    }
  }
  frl_error("no answer from the broker at %s after %.0f s (%s)", cfg->actor_endpoint,
            cfg->connect_timeout_s, frl_transport_hint());
done:
  frl_inbox_free(&in);
  frl_fb_builder_destroy(&fb);
  if (sock) zmq_close(sock);
  zmq_ctx_term(ctx);
  return code;
}
