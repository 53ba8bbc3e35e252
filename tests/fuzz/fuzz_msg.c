/* fuzz_msg.c: libFuzzer target for the wire codec. Every input is verified and decoded as the
 * processes do (8-byte aligned copy first); whatever decodes has every field read (so ASan sees
 * any out-of-bounds view), is encoded again from its view, and must decode to the same values.
 * Build and run: make fuzz FUZZ_SECONDS=600 (seed corpus: tests/fuzz/corpus). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fb.h"
#include "msg.h"

static frl_fb_builder_t *g_builder;
static uint64_t g_sink;

static void touch(const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) g_sink += c[i];
}

static void touch_str(const char *s) {
  if (s) touch(s, strlen(s) + 1);
}

/* Reads every field of a decoded view. */
static void read_all(const frl_msg_t *m) {
  switch (m->type) {
  case FRL_MSG_HELLO:
    touch_str(m->u.hello.name);
    touch_str(m->u.hello.task);
    break;
  case FRL_MSG_WELCOME: touch_str(m->u.welcome.error); break;
  case FRL_MSG_EXPERIENCE: {
    const frl_experience_t *x = &m->u.experience;
    touch_str(x->actor);
    size_t od = (size_t)x->count * x->obs_dim;
    touch(x->obs, od * 4);
    touch(x->next_obs, od * 4);
    touch(x->reward, (size_t)x->count * 4);
    touch(x->discount, (size_t)x->count * 4);
    if (x->action_index) touch(x->action_index, (size_t)x->n_action_index * 4);
    if (x->action) touch(x->action, (size_t)x->n_action * 4);
    if (x->priority) touch(x->priority, (size_t)x->n_priority * 4);
    if (x->policy_version) touch(x->policy_version, (size_t)x->n_policy_version * 8);
    for (uint32_t i = 0; i < x->n_episodes; i++) {
      frl_episode_stat_t e;
      frl_msg_episode(x, i, &e);
      touch(&e, sizeof e);
      touch_str(e.physics);
    }
    for (uint32_t i = 0; i < x->n_safety; i++) {
      frl_safety_event_t e;
      frl_msg_safety(x, i, &e);
      touch(&e, sizeof e);
      touch_str(e.detail);
    }
    break;
  }
  case FRL_MSG_ACK:
    touch_str(m->u.ack.actor);
    touch_str(m->u.ack.reason);
    break;
  case FRL_MSG_PARAMS:
    touch_str(m->u.params.task);
    touch(m->u.params.data, (size_t)m->u.params.n_data * 4);
    if (m->u.params.obs_mean) touch(m->u.params.obs_mean, (size_t)m->u.params.n_obs_mean * 4);
    if (m->u.params.obs_std) touch(m->u.params.obs_std, (size_t)m->u.params.n_obs_std * 4);
    break;
  case FRL_MSG_HEARTBEAT: touch_str(m->u.heartbeat.name); break;
  case FRL_MSG_CONTROL: touch_str(m->u.control.reason); break;
  default: break;
  }
}

/* Encodes a decoded view again; returns 0 when the message type has an encoder. */
static int reencode(const frl_msg_t *m) {
  switch (m->type) {
  case FRL_MSG_HELLO: return frl_msg_encode_hello(g_builder, &m->u.hello);
  case FRL_MSG_WELCOME: return frl_msg_encode_welcome(g_builder, &m->u.welcome);
  case FRL_MSG_ACK: return frl_msg_encode_ack(g_builder, &m->u.ack);
  case FRL_MSG_HEARTBEAT: return frl_msg_encode_heartbeat(g_builder, &m->u.heartbeat);
  case FRL_MSG_CONTROL: return frl_msg_encode_control(g_builder, &m->u.control);
  case FRL_MSG_CREDIT: return frl_msg_encode_credit(g_builder, &m->u.credit);
  case FRL_MSG_PARAMS: return frl_msg_encode_params(g_builder, &m->u.params);
  default: return -1; /* experience views carry decode-only episode storage */
  }
}

static int same_str(const char *a, const char *b) {
  if (!a || !b) return (!a || !*a) && (!b || !*b);
  return strcmp(a, b) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_builder) g_builder = frl_fb_builder_new(1 << 16);
  void *buf = NULL;
  if (posix_memalign(&buf, 8, size ? size : 1) != 0) return 0;
  memcpy(buf, data, size);
  frl_msg_t m;
  char err[256];
  if (frl_msg_decode(buf, size, &m, err, sizeof err) == 0) {
    read_all(&m);
    if (reencode(&m) == 0) {
      size_t len = 0;
      const void *again = frl_fb_builder_data(g_builder, &len);
      void *copy = NULL;
      if (posix_memalign(&copy, 8, len) == 0) {
        memcpy(copy, again, len);
        frl_msg_t m2;
        if (frl_msg_decode(copy, len, &m2, err, sizeof err) != 0 || m2.type != m.type) abort();
        /* Spot-check values that every encoder must carry over unchanged. */
        if (m.type == FRL_MSG_HELLO &&
            (m2.u.hello.schema_hash != m.u.hello.schema_hash ||
             !same_str(m2.u.hello.name, m.u.hello.name)))
          abort();
        if (m.type == FRL_MSG_ACK &&
            (m2.u.ack.seq != m.u.ack.seq || m2.u.ack.status != m.u.ack.status))
          abort();
        if (m.type == FRL_MSG_PARAMS &&
            (m2.u.params.n_data != m.u.params.n_data ||
             (m.u.params.n_data > 0 &&
              memcmp(m2.u.params.data, m.u.params.data, (size_t)m.u.params.n_data * 4) != 0)))
          abort();
        free(copy);
      }
    }
  }
  free(buf);
  return 0;
}
