/* broker_seeds.c: writes the seed corpus of tests/fuzz/fuzz_broker.c: exchanges of real
 * messages, built with the codec the processes use, in the record format of
 * tests/fuzz/fuzz_broker.h. Each seed walks one area of the broker (the path of a batch
 * through credit and the queue, e-stops, refusals, strangers, CURVE names, timeouts) so that
 * fuzzing starts from states a random input would seldom reach. Hello messages carry this
 * build's schema hash: after a schema change, run `make fuzz-seeds` to write them again.
 * Usage: broker_seeds DIR */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fb.h"
#include "fuzz_broker.h"
#include "msg.h"

#define OBS 4
#define ACT 2
#define TASK "cartpole-dqn"

static frl_fb_builder_t *g_fb;
static uint8_t g_buf[1 << 16];
static size_t g_len;

/* Appends the message just built in g_fb as a record from connection `who` (FB_* bits). */
static void put(unsigned who, unsigned how) {
  size_t n = 0;
  const void *data = frl_fb_builder_data(g_fb, &n);
  if (n > 0xffff || g_len + FB_HEADER + n > sizeof g_buf) {
    fprintf(stderr, "broker_seeds: a seed outgrew its buffer\n");
    exit(1);
  }
  g_buf[g_len++] = (uint8_t)who;
  g_buf[g_len++] = (uint8_t)how;
  g_buf[g_len++] = (uint8_t)(n & 0xff);
  g_buf[g_len++] = (uint8_t)(n >> 8);
  memcpy(g_buf + g_len, data, n);
  g_len += n;
}

/* Appends bytes that are not a message. */
static void put_raw(unsigned who, const void *data, size_t n) {
  g_buf[g_len++] = (uint8_t)who;
  g_buf[g_len++] = 0;
  g_buf[g_len++] = (uint8_t)(n & 0xff);
  g_buf[g_len++] = (uint8_t)(n >> 8);
  memcpy(g_buf + g_len, data, n);
  g_len += n;
}

static void check(int rc) {
  if (rc != 0) {
    fprintf(stderr, "broker_seeds: encoding failed (%d)\n", rc);
    exit(1);
  }
}

static void hello(unsigned who, frl_role_t role, const char *name, const char *task, uint32_t obs,
                  uint64_t schema_hash) {
  frl_hello_t h = {.schema_hash = schema_hash, .role = role, .name = name, .actor_index = 0,
                   .num_actors = 2, .task = task, .obs_dim = obs, .act_dim = ACT};
  check(frl_msg_encode_hello(g_fb, &h));
  put(who, 0);
}

static void learner_hello(unsigned who) {
  hello(who, FRL_ROLE_LEARNER, "learner", TASK, OBS, frl_schema_hash());
}

static void actor_hello(unsigned who, const char *name) {
  hello(who, FRL_ROLE_ACTOR, name, TASK, OBS, frl_schema_hash());
}

static void operator_hello(unsigned who, const char *name) {
  hello(who, FRL_ROLE_OPERATOR, name, NULL, 0, frl_schema_hash());
}

/* A CartPole-shaped batch of `count` transitions (obs_dim `obs`), with an episode. */
static void experience(unsigned who, unsigned how, const char *actor, uint64_t seq, uint32_t count,
                       uint32_t obs) {
  static float o[4096], r[512], d[512];
  static int32_t a[512];
  for (uint32_t i = 0; i < count * obs; i++) o[i] = 0.01f * (float)i - 0.5f;
  for (uint32_t i = 0; i < count; i++) {
    r[i] = 1.0f;
    d[i] = i + 1 == count ? 0.0f : 0.99f;
    a[i] = (int32_t)(i & 1);
  }
  frl_episode_stat_t ep = {.episode_return = (float)count, .length = count, .truncated = false,
                           .policy_version = 1};
  frl_experience_t x = {.actor = actor, .seq = seq, .count = count, .obs_dim = obs,
                        .act_dim = ACT, .obs = o, .action_index = a, .n_action_index = count,
                        .reward = r, .discount = d, .next_obs = o, .n_episodes = 1,
                        .episodes_in = &ep, .env_steps = count};
  check(frl_msg_encode_experience(g_fb, &x));
  put(who, how);
}

static void credit(unsigned who, unsigned how, uint32_t batches) {
  frl_credit_t c = {.batches = batches};
  check(frl_msg_encode_credit(g_fb, &c));
  put(who, how);
}

static void ack(unsigned who, const char *actor, uint64_t seq, frl_ack_status_t status) {
  frl_ack_t k = {.actor = actor, .seq = seq, .status = status,
                 .reason = status == FRL_ACK_OK ? NULL : "duplicate"};
  check(frl_msg_encode_ack(g_fb, &k));
  put(who, 0);
}

static void params(unsigned who, uint64_t version) {
  static const float w[8] = {0.5f, -0.25f, 0.125f, 1.0f, -1.0f, 2.0f, 0.0f, 3.5f};
  frl_params_t p = {.version = version, .checksum = frl_fnv1a64(w, sizeof w, FRL_FNV_SEED),
                    .task = TASK, .data = w, .n_data = 8};
  check(frl_msg_encode_params(g_fb, &p));
  put(who, 0);
}

static void heartbeat(unsigned who, unsigned how, const char *name, frl_role_t role, bool estop) {
  frl_heartbeat_t h = {.name = name, .role = role, .params_version = 1, .outbox = 2,
                       .env_steps = 500, .time_ns = 1000000000ull, .estop = estop,
                       .safe_mode = estop};
  check(frl_msg_encode_heartbeat(g_fb, &h));
  put(who, how);
}

static void control(unsigned who, frl_control_cmd_t cmd, const char *reason, double value) {
  frl_control_t c = {.command = cmd, .reason = reason, .value = value};
  check(frl_msg_encode_control(g_fb, &c));
  put(who, 0);
}

static void welcome(unsigned who) {
  frl_welcome_t w = {.ok = true, .schema_hash = frl_schema_hash(), .heartbeat_ms = 500};
  check(frl_msg_encode_welcome(g_fb, &w));
  put(who, 0);
}

static void write_seed(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s.bin", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(g_buf, 1, g_len, f) != g_len || fclose(f) != 0) {
    fprintf(stderr, "broker_seeds: cannot write %s\n", path);
    exit(1);
  }
  g_len = 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: broker_seeds DIR\n");
    return 2;
  }
  const char *dir = argv[1];
  g_fb = frl_fb_builder_new(1 << 16);
  /* Connections: the learner's (and a second learner's), two actors', an operator's. */
  const unsigned L = FB_CONN(0) | FB_LEARNER, L2 = FB_CONN(4) | FB_LEARNER, A = FB_CONN(1),
                 B = FB_CONN(2), OP = FB_CONN(3);

  /* A batch's way: forwarded under credit, queued without it, pumped when credit comes; the
   * ack routed back; Params cached and fanned out, and given to a newcomer. */
  learner_hello(L);
  credit(L, 0, 2);
  actor_hello(A, "actor-0");
  experience(A, 0, "actor-0", 1, 3, OBS);
  experience(A, 0, "actor-0", 2, 3, OBS);
  experience(A | FB_CLOCK(2), 0, "actor-0", 3, 3, OBS);
  ack(L, "actor-0", 1, FRL_ACK_OK);
  ack(L, "actor-0", 2, FRL_ACK_DUPLICATE);
  credit(L, 0, 1);
  heartbeat(A, 0, "actor-0", FRL_ROLE_ACTOR, false);
  heartbeat(L, 0, "learner", FRL_ROLE_LEARNER, false);
  params(L, 1);
  actor_hello(B, "actor-1");
  write_seed(dir, "flow");

  /* No learner: the queue fills, then batches are refused Busy; a learner comes and takes
   * them under credit; a send the learner's pipe refuses (FRL_EBUSY) leaves a batch queued. */
  actor_hello(A, "actor-0");
  for (uint64_t s = 1; s <= 5; s++) experience(A | FB_CLOCK(2), 0, "actor-0", s, 2, OBS);
  learner_hello(L);
  credit(L, FB_SEND_BUSY, 4);
  credit(L, 0, 4);
  experience(A | FB_CLOCK(2), FB_SEND_UNREACHABLE, "actor-0", 6, 2, OBS);
  write_seed(dir, "queue");

  /* E-stop from an operator: fanned out to actors and the learner; a newcomer learns of it in
   * its Welcome and gets the Control; resume; a set-spi control; a learner's own Control. */
  learner_hello(L);
  actor_hello(A, "actor-0");
  operator_hello(OP, "operator");
  control(OP, FRL_CONTROL_ESTOP, "operator pressed stop", 0);
  actor_hello(B, "actor-1");
  heartbeat(B, 0, "actor-1", FRL_ROLE_ACTOR, true);
  control(OP, FRL_CONTROL_RESUME, "clear", 0);
  control(OP, FRL_CONTROL_SET_SPI, NULL, 8);
  control(L, FRL_CONTROL_SHUTDOWN, "run solved", 0);
  write_seed(dir, "estop");

  /* After a broker restart an actor reports an e-stop latched: the broker takes it up again
   * and stops newcomers too. */
  learner_hello(L);
  actor_hello(A, "actor-0");
  heartbeat(A, 0, "actor-0", FRL_ROLE_ACTOR, true);
  actor_hello(B, "actor-1");
  heartbeat(B, 0, "actor-1", FRL_ROLE_ACTOR, false);
  write_seed(dir, "estop_adopted");

  /* Strangers: messages before Hello on both endpoints, bytes that are no message, a cut
   * Hello, an unknown body type. */
  experience(A, 0, "actor-0", 1, 2, OBS);
  heartbeat(A, 0, "actor-0", FRL_ROLE_ACTOR, false);
  credit(L, 0, 5);
  put_raw(A, "not a flatbuffer", 16);
  {
    frl_hello_t h = {.schema_hash = frl_schema_hash(), .role = FRL_ROLE_ACTOR, .name = "actor-0",
                     .task = TASK, .obs_dim = OBS, .act_dim = ACT};
    check(frl_msg_encode_hello(g_fb, &h));
    size_t n = 0;
    const uint8_t *data = frl_fb_builder_data(g_fb, &n);
    put_raw(A, data, n / 2);
  }
  welcome(A);
  write_seed(dir, "strangers");

  /* Refusals: another schema, a bad name, another task, a learner on the actor endpoint and an
   * actor on the learner's, a batch in another name, of other dimensions, over the size
   * limit, over the batch rate; messages neither side may send the broker. */
  learner_hello(L);
  hello(A, FRL_ROLE_ACTOR, "actor-0", TASK, OBS, frl_schema_hash() ^ 1);
  hello(A, FRL_ROLE_ACTOR, "bad name", TASK, OBS, frl_schema_hash());
  hello(A, FRL_ROLE_ACTOR, "actor-0", "pendulum-sac", 3, frl_schema_hash());
  hello(A, FRL_ROLE_LEARNER, "learner", TASK, OBS, frl_schema_hash());
  hello(B | FB_LEARNER, FRL_ROLE_ACTOR, "actor-1", TASK, OBS, frl_schema_hash());
  actor_hello(A, "actor-0");
  credit(L, 0, 100);
  experience(A, 0, "actor-9", 1, 2, OBS);
  experience(A, 0, "actor-0", 2, 2, 3);
  experience(A, 0, "actor-0", 3, 60, OBS);
  for (uint64_t s = 4; s <= 9; s++) experience(A | FB_CLOCK(1), 0, "actor-0", s, 2, OBS);
  welcome(A);
  ack(A, "actor-0", 1, FRL_ACK_OK);
  welcome(L);
  experience(L, 0, "actor-0", 10, 2, OBS);
  write_seed(dir, "refusals");

  /* CURVE: a name belongs to the key that holds it; a routing id whose key changed is a
   * stranger; the same key may move its name to a new connection. */
  learner_hello(L | FB_USER(3));
  actor_hello(A | FB_USER(1), "actor-0");
  actor_hello(B | FB_USER(2), "actor-0");
  experience(A | FB_USER(2), 0, "actor-0", 1, 2, OBS);
  actor_hello(B | FB_USER(1), "actor-0");
  credit(L | FB_USER(3), 0, 2);
  experience(B | FB_USER(1), 0, "actor-0", 1, 2, OBS);
  write_seed(dir, "curve");

  /* Time: peers and the learner fall silent past the timeout and are gone; an ack for a gone
   * actor is unroutable; a second learner replaces the first. */
  learner_hello(L);
  actor_hello(A, "actor-0");
  operator_hello(OP, "operator");
  heartbeat(A | FB_CLOCK(2), FB_EXPIRE, "actor-0", FRL_ROLE_ACTOR, false);
  credit(L | FB_CLOCK(3), FB_EXPIRE, 3);
  ack(L2 | FB_CLOCK(3), "actor-0", 1, FRL_ACK_OK);
  experience(A, 0, "actor-0", 2, 2, OBS);
  learner_hello(L2);
  learner_hello(L);
  ack(L, "actor-0", 1, FRL_ACK_OK);
  actor_hello(A, "actor-0");
  heartbeat(A | FB_CLOCK(3), FB_EXPIRE, "actor-0", FRL_ROLE_ACTOR, false);
  actor_hello(B, "actor-2");
  write_seed(dir, "timeouts");

  frl_fb_builder_destroy(&g_fb);
  return 0;
}
