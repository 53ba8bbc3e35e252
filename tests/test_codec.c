/* test_codec.c: the wire codec (schema/fb.c, schema/msg.c): round trips, hostile input, and
 * conformance with the reference FlatBuffers implementation (flatc and its Python runtime). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "fb.h"
#include "log.h"
#include "msg.h"
#include "rng.h"

#define SCHEMA_PATH "schema/fleetrl.fbs"
#define CONFORMANCE_DIR "tests/conformance"

/* ---- the conformance messages: the same values as tests/conformance/<name>.json ------------- */

static const float EXP_OBS[12] = {0.5f, -0.25f, 1.5f,  -2.0f, 0.125f, 3.0f,
                                  -4.5f, 0.0625f, 7.0f, -8.0f, 9.5f,  10.25f};
static const int32_t EXP_ACTION_INDEX[3] = {1, 0, 1};
static const float EXP_REWARD[3] = {1.0f, 2.875f, -0.5f};
static const float EXP_DISCOUNT[3] = {0.96875f, 0.9375f, 0.0f};
static const float EXP_NEXT_OBS[12] = {0.25f,  -0.5f,   1.75f, -2.5f, 0.375f, 3.5f,
                                       -4.25f, 0.1875f, 7.5f,  -8.5f, 9.75f,  10.5f};
static const float EXP_PRIORITY[3] = {1.5f, 0.75f, 2.25f};
static const uint64_t EXP_POLICY_VERSION[3] = {7, 7, UINT64_MAX};
static const frl_episode_stat_t EXP_EPISODES[2] = {
    {.episode_return = 21.5f, .length = 22, .truncated = true, .violations = 2,
     .policy_version = 6},
    {.episode_return = -3.25f, .length = 500, .success = true, .policy_version = 7},
};
static const frl_episode_stat_t ROBOT_EPISODES[1] = {
    {.episode_return = -12.5f, .length = 100, .success = true, .policy_version = 3,
     .physics = "{\"mass\":1.125,\"damping\":0.875,\"gravity\":9.75}"},
};
static const frl_safety_event_t ROBOT_SAFETY[3] = {
    {.kind = FRL_SAFETY_CLIP, .count = 17, .time_ns = 1763700000123456789ULL,
     .detail = "joint 2 torque"},
    {.kind = FRL_SAFETY_SAFE_MODE_ENTER, .count = 1, .time_ns = 1763700001000000000ULL,
     .detail = "params 2.4 s old (bound 2.0 s)"},
    {.kind = FRL_SAFETY_RESUME, .count = 2, .time_ns = 5},
};
static const float CONT_OBS[6] = {1, 2, 3, 4, 5, 6};
static const float CONT_ACTION[4] = {0.5f, -0.5f, 0.25f, -0.25f};
static const float CONT_REWARD[2] = {0.0f, 1.0f};
static const float CONT_DISCOUNT[2] = {0.5f, 0.0f};
static const float CONT_NEXT_OBS[6] = {2, 3, 4, 5, 6, 7};
static const float PARAMS_DATA[7] = {0.5f, -1.5f, 2.25f, -3.125f, 1e-3f, 65504.0f, -0.0078125f};
static const float PARAMS_MEAN[4] = {0.0f, 0.5f, -0.5f, 1.0f};
static const float PARAMS_STD[4] = {1.0f, 2.0f, 0.25f, 4.0f};

typedef struct {
  const char *name; /* tests/conformance/<name>.json */
  frl_msg_t msg;
} case_t;

static const case_t CASES[] = {
    {"hello",
     {.type = FRL_MSG_HELLO,
      .schema_version = 1,
      .u.hello = {.schema_hash = 14226335797473980966ULL,
                  .role = FRL_ROLE_OPERATOR,
                  .name = "actor-3",
                  .actor_index = 3,
                  .num_actors = 8,
                  .task = "cartpole-dqn",
                  .obs_dim = 4,
                  .act_dim = 2}}},
    {"hello_defaults",
     {.type = FRL_MSG_HELLO, .schema_version = 1, .u.hello = {.name = "", .actor_index = -1}}},
    {"welcome",
     {.type = FRL_MSG_WELCOME,
      .schema_version = 1,
      .u.welcome = {.ok = true,
                    .error = "schema hash 0x1 does not match",
                    .schema_hash = 9223372036854775809ULL,
                    .params_version = 42,
                    .heartbeat_ms = 500,
                    .estop = true,
                    .estop_reason = "operator: gripper jammed"}}},
    {"experience",
     {.type = FRL_MSG_EXPERIENCE,
      .schema_version = 1,
      .u.experience = {.actor = "actor-0",
                       .seq = 4294967301ULL,
                       .count = 3,
                       .obs_dim = 4,
                       .act_dim = 2,
                       .obs = EXP_OBS,
                       .action_index = EXP_ACTION_INDEX,
                       .n_action_index = 3,
                       .reward = EXP_REWARD,
                       .discount = EXP_DISCOUNT,
                       .next_obs = EXP_NEXT_OBS,
                       .priority = EXP_PRIORITY,
                       .n_priority = 3,
                       .policy_version = EXP_POLICY_VERSION,
                       .n_policy_version = 3,
                       .n_episodes = 2,
                       .episodes_in = EXP_EPISODES,
                       .env_steps = 5}}},
    {"experience_continuous",
     {.type = FRL_MSG_EXPERIENCE,
      .schema_version = 1,
      .u.experience = {.actor = "robot-arm",
                       .seq = 1,
                       .count = 2,
                       .obs_dim = 3,
                       .act_dim = 2,
                       .obs = CONT_OBS,
                       .action = CONT_ACTION,
                       .n_action = 4,
                       .reward = CONT_REWARD,
                       .discount = CONT_DISCOUNT,
                       .next_obs = CONT_NEXT_OBS,
                       .env_steps = 2}}},
    {"experience_robot",
     {.type = FRL_MSG_EXPERIENCE,
      .schema_version = 1,
      .u.experience = {.actor = "arm-7",
                       .seq = 9,
                       .count = 2,
                       .obs_dim = 3,
                       .act_dim = 2,
                       .obs = CONT_OBS,
                       .action = CONT_ACTION,
                       .n_action = 4,
                       .reward = CONT_REWARD,
                       .discount = CONT_DISCOUNT,
                       .next_obs = CONT_NEXT_OBS,
                       .n_episodes = 1,
                       .episodes_in = ROBOT_EPISODES,
                       .env_steps = 2,
                       .demonstration = true,
                       .n_safety = 3,
                       .safety_in = ROBOT_SAFETY}}},
    {"experience_report",
     {.type = FRL_MSG_EXPERIENCE,
      .schema_version = 1,
      .u.experience = {.actor = "arm-7",
                       .seq = 10,
                       .count = 0,
                       .obs_dim = 3,
                       .act_dim = 2,
                       .n_safety = 1,
                       .safety_in = ROBOT_SAFETY + 1}}},
    {"ack",
     {.type = FRL_MSG_ACK,
      .schema_version = 1,
      .u.ack = {.actor = "actor-0",
                .seq = 12345678901ULL,
                .status = FRL_ACK_REJECTED,
                .reason = "ExperienceBatch.obs: 12 floats, expected count*obs_dim = 16"}}},
    {"params",
     {.type = FRL_MSG_PARAMS,
      .schema_version = 1,
      .u.params = {.version = 3,
                   .checksum = 16045690984833335023ULL,
                   .task = "cartpole-dqn",
                   .data = PARAMS_DATA,
                   .n_data = 7,
                   .obs_mean = PARAMS_MEAN,
                   .n_obs_mean = 4,
                   .obs_std = PARAMS_STD,
                   .n_obs_std = 4}}},
    {"heartbeat",
     {.type = FRL_MSG_HEARTBEAT,
      .schema_version = 1,
      .u.heartbeat = {.name = "learner",
                      .role = FRL_ROLE_LEARNER,
                      .params_version = 99,
                      .outbox = 17,
                      .shed = 3,
                      .env_steps = 1000000007ULL,
                      .time_ns = UINT64_MAX,
                      .safe_mode = true,
                      .estop = true}}},
    {"control",
     {.type = FRL_MSG_CONTROL,
      .schema_version = 1,
      .u.control = {.command = FRL_CONTROL_SET_SPI, .reason = "operator request", .value = 0.125}}},
    {"credit", {.type = FRL_MSG_CREDIT, .schema_version = 1, .u.credit = {.batches = 16}}},
};
#define N_CASES FRL_ARRAY_LEN(CASES)

/* ---- helpers -------------------------------------------------------------------------------- */

static int encode(frl_fb_builder_t *b, const frl_msg_t *m) {
  switch (m->type) {
  case FRL_MSG_HELLO: return frl_msg_encode_hello(b, &m->u.hello);
  case FRL_MSG_WELCOME: return frl_msg_encode_welcome(b, &m->u.welcome);
  case FRL_MSG_EXPERIENCE: return frl_msg_encode_experience(b, &m->u.experience);
  case FRL_MSG_ACK: return frl_msg_encode_ack(b, &m->u.ack);
  case FRL_MSG_PARAMS: return frl_msg_encode_params(b, &m->u.params);
  case FRL_MSG_HEARTBEAT: return frl_msg_encode_heartbeat(b, &m->u.heartbeat);
  case FRL_MSG_CONTROL: return frl_msg_encode_control(b, &m->u.control);
  case FRL_MSG_CREDIT: return frl_msg_encode_credit(b, &m->u.credit);
  default: fail_msg("no encoder for type %d", m->type);
  }
  return -1;
}

/* An exact-size heap copy, so AddressSanitizer flags any read past len. */
static uint8_t *copy_of(const void *p, size_t len) {
  uint8_t *c = frl_xmalloc(len);
  if (len) memcpy(c, p, len);
  return c;
}

static void assert_str_same(const char *want, const char *got) {
  if (!want) {
    assert_null(got);
    return;
  }
  assert_non_null(got);
  assert_string_equal(want, got);
}

/* Bitwise, so -0.0 and NaN payloads count. */
static void assert_bytes_same(const void *want, const void *got, size_t bytes) {
  if (bytes == 0) {
    assert_null(got);
    return;
  }
  assert_non_null(got);
  assert_memory_equal(want, got, bytes);
}

static void episode_of(const frl_experience_t *m, uint32_t i, frl_episode_stat_t *e) {
  if (m->episodes_in)
    *e = m->episodes_in[i];
  else
    frl_msg_episode(m, i, e);
}

static void safety_of(const frl_experience_t *m, uint32_t i, frl_safety_event_t *e) {
  if (m->safety_in)
    *e = m->safety_in[i];
  else
    frl_msg_safety(m, i, e);
}

/* want is an encoder input or a decoded view; got is a decoded view. */
static void assert_msg_equal(const frl_msg_t *want, const frl_msg_t *got) {
  assert_int_equal(got->type, want->type);
  assert_int_equal(got->schema_version, FRL_SCHEMA_VERSION);
  switch (want->type) {
  case FRL_MSG_HELLO: {
    const frl_hello_t *w = &want->u.hello, *g = &got->u.hello;
    assert_true(g->schema_hash == w->schema_hash);
    assert_int_equal(g->role, w->role);
    assert_str_same(w->name, g->name);
    assert_int_equal(g->actor_index, w->actor_index);
    assert_int_equal(g->num_actors, w->num_actors);
    assert_str_same(w->task, g->task);
    assert_int_equal(g->obs_dim, w->obs_dim);
    assert_int_equal(g->act_dim, w->act_dim);
    break;
  }
  case FRL_MSG_WELCOME: {
    const frl_welcome_t *w = &want->u.welcome, *g = &got->u.welcome;
    assert_int_equal(g->ok, w->ok);
    assert_str_same(w->error, g->error);
    assert_true(g->schema_hash == w->schema_hash);
    assert_true(g->params_version == w->params_version);
    assert_int_equal(g->heartbeat_ms, w->heartbeat_ms);
    assert_int_equal(g->estop, w->estop);
    assert_str_same(w->estop_reason, g->estop_reason);
    break;
  }
  case FRL_MSG_EXPERIENCE: {
    const frl_experience_t *w = &want->u.experience, *g = &got->u.experience;
    size_t rows = (size_t)w->count * w->obs_dim;
    assert_str_same(w->actor, g->actor);
    assert_true(g->seq == w->seq);
    assert_int_equal(g->count, w->count);
    assert_int_equal(g->obs_dim, w->obs_dim);
    assert_int_equal(g->act_dim, w->act_dim);
    assert_bytes_same(w->obs, g->obs, rows * 4);
    assert_int_equal(g->n_action_index, w->n_action_index);
    assert_bytes_same(w->action_index, g->action_index, w->n_action_index * 4u);
    assert_int_equal(g->n_action, w->n_action);
    assert_bytes_same(w->action, g->action, w->n_action * 4u);
    assert_bytes_same(w->reward, g->reward, w->count * 4u);
    assert_bytes_same(w->discount, g->discount, w->count * 4u);
    assert_bytes_same(w->next_obs, g->next_obs, rows * 4);
    assert_int_equal(g->n_priority, w->n_priority);
    assert_bytes_same(w->priority, g->priority, w->n_priority * 4u);
    assert_int_equal(g->n_policy_version, w->n_policy_version);
    assert_bytes_same(w->policy_version, g->policy_version, w->n_policy_version * 8u);
    assert_int_equal(g->n_episodes, w->n_episodes);
    assert_null(g->episodes_in);
    for (uint32_t i = 0; i < w->n_episodes; i++) {
      frl_episode_stat_t we, ge;
      episode_of(w, i, &we);
      frl_msg_episode(g, i, &ge);
      assert_memory_equal(&ge.episode_return, &we.episode_return, 4);
      assert_int_equal(ge.length, we.length);
      assert_int_equal(ge.success, we.success);
      assert_int_equal(ge.truncated, we.truncated);
      assert_int_equal(ge.violations, we.violations);
      assert_true(ge.policy_version == we.policy_version);
      assert_str_same(we.physics, ge.physics);
    }
    assert_int_equal(g->env_steps, w->env_steps);
    assert_int_equal(g->demonstration, w->demonstration);
    assert_int_equal(g->n_safety, w->n_safety);
    assert_null(g->safety_in);
    for (uint32_t i = 0; i < w->n_safety; i++) {
      frl_safety_event_t we, ge;
      safety_of(w, i, &we);
      frl_msg_safety(g, i, &ge);
      assert_int_equal(ge.kind, we.kind);
      assert_int_equal(ge.count, we.count);
      assert_true(ge.time_ns == we.time_ns);
      assert_str_same(we.detail, ge.detail);
    }
    break;
  }
  case FRL_MSG_ACK: {
    const frl_ack_t *w = &want->u.ack, *g = &got->u.ack;
    assert_str_same(w->actor, g->actor);
    assert_true(g->seq == w->seq);
    assert_int_equal(g->status, w->status);
    assert_str_same(w->reason, g->reason);
    break;
  }
  case FRL_MSG_PARAMS: {
    const frl_params_t *w = &want->u.params, *g = &got->u.params;
    assert_true(g->version == w->version);
    assert_true(g->checksum == w->checksum);
    assert_str_same(w->task, g->task);
    assert_int_equal(g->n_data, w->n_data);
    assert_bytes_same(w->data, g->data, w->n_data * 4u);
    assert_int_equal(g->n_obs_mean, w->n_obs_mean);
    assert_bytes_same(w->obs_mean, g->obs_mean, w->n_obs_mean * 4u);
    assert_int_equal(g->n_obs_std, w->n_obs_std);
    assert_bytes_same(w->obs_std, g->obs_std, w->n_obs_std * 4u);
    break;
  }
  case FRL_MSG_HEARTBEAT: {
    const frl_heartbeat_t *w = &want->u.heartbeat, *g = &got->u.heartbeat;
    assert_str_same(w->name, g->name);
    assert_int_equal(g->role, w->role);
    assert_true(g->params_version == w->params_version);
    assert_int_equal(g->outbox, w->outbox);
    assert_true(g->shed == w->shed);
    assert_true(g->env_steps == w->env_steps);
    assert_true(g->time_ns == w->time_ns);
    assert_int_equal(g->safe_mode, w->safe_mode);
    assert_int_equal(g->estop, w->estop);
    break;
  }
  case FRL_MSG_CONTROL: {
    const frl_control_t *w = &want->u.control, *g = &got->u.control;
    assert_int_equal(g->command, w->command);
    assert_str_same(w->reason, g->reason);
    assert_memory_equal(&g->value, &w->value, sizeof(double));
    break;
  }
  case FRL_MSG_CREDIT: assert_int_equal(got->u.credit.batches, want->u.credit.batches); break;
  default: fail_msg("unexpected type %d", want->type);
  }
}

/* Encodes m, decodes an exact-size copy and checks it equals m. */
static void roundtrip(frl_fb_builder_t *b, const frl_msg_t *m) {
  size_t len;
  char err[256];
  frl_msg_t got;
  assert_int_equal(encode(b, m), 0);
  const void *data = frl_fb_builder_data(b, &len);
  assert_non_null(data);
  assert_int_equal((uintptr_t)data % 8, 0);
  assert_int_equal(len % 8, 0);
  assert_memory_equal((const uint8_t *)data + 4, FRL_FILE_IDENTIFIER, 4);
  uint8_t *copy = copy_of(data, len);
  int rc = frl_msg_decode(copy, len, &got, err, sizeof err);
  if (rc) fail_msg("decode of %s failed: %s", frl_msg_type_name(m->type), err);
  assert_msg_equal(m, &got);
  free(copy);
}

/* Reads every byte a decoded view points at (ASan checks they are inside the buffer). */
static uint64_t touch_all(const frl_msg_t *m) {
  uint64_t h = 0;
#define TOUCH(p, bytes) h = frl_fnv1a64((p), (bytes), h)
#define TOUCH_STR(s)                                                                               \
  if (s) TOUCH(s, strlen(s) + 1)
  switch (m->type) {
  case FRL_MSG_HELLO:
    TOUCH_STR(m->u.hello.name);
    TOUCH_STR(m->u.hello.task);
    break;
  case FRL_MSG_WELCOME: TOUCH_STR(m->u.welcome.error); break;
  case FRL_MSG_EXPERIENCE: {
    const frl_experience_t *e = &m->u.experience;
    size_t rows = (size_t)e->count * e->obs_dim;
    TOUCH_STR(e->actor);
    TOUCH(e->obs, rows * 4);
    TOUCH(e->next_obs, rows * 4);
    if (e->n_action_index) TOUCH(e->action_index, e->n_action_index * 4u);
    if (e->n_action) TOUCH(e->action, e->n_action * 4u);
    TOUCH(e->reward, e->count * 4u);
    TOUCH(e->discount, e->count * 4u);
    if (e->n_priority) TOUCH(e->priority, e->n_priority * 4u);
    if (e->n_policy_version) TOUCH(e->policy_version, e->n_policy_version * 8u);
    for (uint32_t i = 0; i < e->n_episodes; i++) {
      frl_episode_stat_t s;
      frl_msg_episode(e, i, &s);
      TOUCH(&s, sizeof s);
      TOUCH_STR(s.physics);
    }
    for (uint32_t i = 0; i < e->n_safety; i++) {
      frl_safety_event_t s;
      frl_msg_safety(e, i, &s);
      TOUCH(&s, sizeof s);
      TOUCH_STR(s.detail);
    }
    break;
  }
  case FRL_MSG_ACK:
    TOUCH_STR(m->u.ack.actor);
    TOUCH_STR(m->u.ack.reason);
    break;
  case FRL_MSG_PARAMS:
    TOUCH_STR(m->u.params.task);
    if (m->u.params.n_data) TOUCH(m->u.params.data, m->u.params.n_data * 4u);
    if (m->u.params.n_obs_mean) TOUCH(m->u.params.obs_mean, m->u.params.n_obs_mean * 4u);
    if (m->u.params.n_obs_std) TOUCH(m->u.params.obs_std, m->u.params.n_obs_std * 4u);
    break;
  case FRL_MSG_HEARTBEAT: TOUCH_STR(m->u.heartbeat.name); break;
  case FRL_MSG_CONTROL: TOUCH_STR(m->u.control.reason); break;
  case FRL_MSG_CREDIT: h ^= m->u.credit.batches; break;
  default: fail_msg("decoded an unknown type %d", m->type);
  }
#undef TOUCH
#undef TOUCH_STR
  return h;
}

/* Decodes an exact-size copy of p[0..len) and returns the code; err gets the reason. */
static int decode_copy(const void *p, size_t len, char *err, size_t errlen) {
  uint8_t *copy = copy_of(p, len);
  frl_msg_t m;
  int rc = frl_msg_decode(copy, len, &m, err, errlen);
  if (rc == 0) touch_all(&m);
  free(copy);
  return rc;
}

/* Asserts that decoding p[0..len) fails with code rc and a reason containing want. */
static void assert_refused(const void *p, size_t len, int rc, const char *want) {
  char err[256] = "";
  int got = decode_copy(p, len, err, sizeof err);
  if (got != rc || !strstr(err, want))
    fail_msg("decode gave %d \"%s\", expected %d with \"%s\"", got, err, rc, want);
}

static uint32_t rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* Finishes a Message around body with the given type and version, as a hostile peer might. */
static void raw_message(frl_fb_builder_t *b, uint8_t type, frl_fb_ref_t body, uint16_t version) {
  frl_fb_ref_t msg;
  frl_fb_table_start(b);
  frl_fb_add_ref(b, 2, body);
  frl_fb_add_u16(b, 0, version, 0);
  frl_fb_add_u8(b, 1, type, 0);
  assert_int_equal(frl_fb_table_end(b, &msg), 0);
  assert_int_equal(frl_fb_finish(b, msg, FRL_FILE_IDENTIFIER), 0);
}

/* Vector lengths for a hand-built ExperienceBatch; negative omits the vector. */
typedef struct {
  uint32_t count, obs_dim, act_dim;
  int n_obs, n_action_index, n_action, n_reward, n_discount, n_next_obs, n_priority, n_pv,
      n_episodes;
} raw_exp_t;

static const raw_exp_t RAW_OK = {4, 4, 2, 16, 4, -1, 4, 4, 16, -1, -1, -1};

/* Builds an ExperienceBatch field by field, bypassing the encoder's checks. */
static void raw_experience(frl_fb_builder_t *b, const raw_exp_t *r) {
  static const uint8_t zeros[8 * 64] = {0};
  frl_fb_ref_t v[8] = {0}, eps = 0, body;
  const int lens[8] = {r->n_obs,      r->n_action_index, r->n_action, r->n_reward,
                       r->n_discount, r->n_next_obs,     r->n_priority, r->n_pv};
  frl_fb_builder_reset(b);
  if (r->n_episodes >= 0) {
    frl_fb_ref_t *refs = frl_xmalloc(((size_t)r->n_episodes + 1) * sizeof *refs);
    for (int i = 0; i < r->n_episodes; i++) {
      frl_fb_table_start(b);
      frl_fb_add_u32(b, 1, (uint32_t)i + 1, 0);
      assert_int_equal(frl_fb_table_end(b, &refs[i]), 0);
    }
    assert_int_equal(frl_fb_create_ref_vector(b, refs, (size_t)r->n_episodes, &eps), 0);
    free(refs);
  }
  for (int i = 0; i < 8; i++) {
    if (lens[i] < 0) continue;
    size_t es = i == 7 ? 8 : 4;
    assert_true((size_t)lens[i] * es <= sizeof zeros);
    assert_int_equal(frl_fb_create_vector(b, zeros, (size_t)lens[i], es, &v[i]), 0);
  }
  frl_fb_table_start(b);
  frl_fb_add_u32(b, 2, r->count, 0);
  frl_fb_add_u32(b, 3, r->obs_dim, 0);
  frl_fb_add_u32(b, 4, r->act_dim, 0);
  for (int i = 0; i < 8; i++) frl_fb_add_ref(b, 5 + (unsigned)i, v[i]);
  frl_fb_add_ref(b, 13, eps);
  assert_int_equal(frl_fb_table_end(b, &body), 0);
  raw_message(b, FRL_MSG_EXPERIENCE, body, FRL_SCHEMA_VERSION);
}

static const void *data_of(frl_fb_builder_t *b, size_t *len) {
  const void *p = frl_fb_builder_data(b, len);
  assert_non_null(p);
  return p;
}

/* A CartPole-like batch with random contents; storage lives in the caller's arrays. */
typedef struct {
  float obs[64 * 4], next_obs[64 * 4], reward[64], discount[64], priority[64];
  int32_t action_index[64];
  uint64_t policy_version[64];
  frl_episode_stat_t episodes[3];
  frl_msg_t msg;
} batch_t;

static void make_batch(batch_t *s, frl_rng_t *rng, uint32_t count) {
  assert_true(count <= 64);
  for (uint32_t i = 0; i < count * 4; i++) {
    s->obs[i] = (float)frl_rng_normal(rng);
    s->next_obs[i] = (float)frl_rng_normal(rng);
  }
  for (uint32_t i = 0; i < count; i++) {
    s->reward[i] = (float)frl_rng_uniform(rng);
    s->discount[i] = frl_rng_below(rng, 10) ? 0.99f * 0.99f * 0.99f : 0.0f;
    s->priority[i] = (float)frl_rng_uniform(rng) + 0.01f;
    s->action_index[i] = (int32_t)frl_rng_below(rng, 2);
    s->policy_version[i] = 1000 + i / 16;
  }
  for (int i = 0; i < 3; i++)
    s->episodes[i] = (frl_episode_stat_t){.episode_return = 10.0f * (float)(i + 1),
                                          .length = 10u * (uint32_t)(i + 1),
                                          .success = i == 1,
                                          .truncated = i == 2,
                                          .violations = (uint32_t)i,
                                          .policy_version = 1000};
  memset(&s->msg, 0, sizeof s->msg);
  s->msg.type = FRL_MSG_EXPERIENCE;
  s->msg.schema_version = FRL_SCHEMA_VERSION;
  frl_experience_t *e = &s->msg.u.experience;
  e->actor = "actor-7";
  e->seq = 12;
  e->count = count;
  e->obs_dim = 4;
  e->act_dim = 2;
  e->obs = s->obs;
  e->next_obs = s->next_obs;
  e->action_index = s->action_index;
  e->n_action_index = count;
  e->reward = s->reward;
  e->discount = s->discount;
  e->priority = s->priority;
  e->n_priority = count;
  e->policy_version = s->policy_version;
  e->n_policy_version = count;
  e->episodes_in = s->episodes;
  e->n_episodes = 3;
  e->env_steps = count;
}

/* ---- schema hash ---------------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = frl_xmalloc((size_t)n + 1);
  size_t got = fread(p, 1, (size_t)n, f);
  fclose(f);
  p[got] = '\0';
  *len = got;
  return p;
}

static void test_schema_hash(void **state) {
  (void)state;
  size_t len;
  char *text = read_file(SCHEMA_PATH, &len);
  assert_non_null(text);
  /* The compiled-in hash comes from the build-time generator; both must agree. */
  assert_true(frl_schema_hash() == frl_schema_hash_text(text, len));
  free(text);

  /* The normalisation against an independent FNV-1a of the hand-normalised text. */
  const char *t1 = "table A {\n  x: int;  // a comment / with // slashes\n\ty:uint;\r\n}\n";
  const char *norm = "tableA{x:int;y:uint;}";
  uint64_t want = frl_fnv1a64(norm, strlen(norm), FRL_FNV_SEED);
  assert_true(frl_schema_hash_text(t1, strlen(t1)) == want);
  assert_true(frl_schema_hash_text(norm, strlen(norm)) == want);
  /* A lone slash is text, not a comment; a comment may end the file without a newline. */
  const char *t2 = "a / b // tail";
  assert_true(frl_schema_hash_text(t2, strlen(t2)) == frl_fnv1a64("a/b", 3, FRL_FNV_SEED));
  /* Anything a peer could notice changes the hash. */
  const char *t3 = "table A { x: long; y: uint; }";
  assert_true(frl_schema_hash_text(t3, strlen(t3)) != want);
  assert_true(frl_schema_hash_text("", 0) == FRL_FNV_SEED);
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void test_roundtrip_cases(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(64);
  for (size_t i = 0; i < N_CASES; i++) roundtrip(b, &CASES[i].msg);
  frl_fb_builder_destroy(&b);
  assert_null(b);
  frl_fb_builder_destroy(&b); /* accepts NULL */
}

static void test_roundtrip_defaults_and_absent(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  /* All defaults: absent strings stay NULL, actor_index reads its schema default -1. */
  frl_msg_t m = {.type = FRL_MSG_HELLO, .u.hello = {.actor_index = -1}};
  roundtrip(b, &m);
  /* A non-default value of a field whose default is -1 (0 must be written). */
  m.u.hello.actor_index = 0;
  roundtrip(b, &m);
  /* Empty strings are present and distinct from absent. */
  m = (frl_msg_t){.type = FRL_MSG_ACK, .u.ack = {.actor = "", .reason = NULL}};
  roundtrip(b, &m);
  /* A string at the length limit. */
  char longest[FRL_MSG_MAX_STRING + 1];
  memset(longest, 'z', FRL_MSG_MAX_STRING);
  longest[FRL_MSG_MAX_STRING] = '\0';
  m = (frl_msg_t){.type = FRL_MSG_WELCOME, .u.welcome = {.ok = false, .error = longest}};
  roundtrip(b, &m);
  m = (frl_msg_t){.type = FRL_MSG_CREDIT, .u.credit = {.batches = 0}};
  roundtrip(b, &m);
  m = (frl_msg_t){.type = FRL_MSG_HEARTBEAT, .u.heartbeat = {.role = FRL_ROLE_ACTOR}};
  roundtrip(b, &m);
  m = (frl_msg_t){.type = FRL_MSG_PARAMS, .u.params = {.version = 1}};
  roundtrip(b, &m);
  /* -0.0 differs from the default bitwise and must survive; so must NaN and infinities. */
  m = (frl_msg_t){.type = FRL_MSG_CONTROL, .u.control = {.command = FRL_CONTROL_SHUTDOWN,
                                                         .value = -0.0}};
  roundtrip(b, &m);
  m.u.control.value = NAN;
  roundtrip(b, &m);
  float odd[8] = {-0.0f, NAN, INFINITY, -INFINITY, 1e-45f, 3.4e38f, 0.0f, -1.0f};
  frl_episode_stat_t ep = {.episode_return = -0.0f};
  m = (frl_msg_t){.type = FRL_MSG_EXPERIENCE,
                  .u.experience = {.count = 2, .obs_dim = 4, .act_dim = 1, .obs = odd,
                                   .next_obs = odd, .action = odd, .n_action = 2,
                                   .reward = odd + 4, .discount = odd + 6, .n_episodes = 1,
                                   .episodes_in = &ep}};
  roundtrip(b, &m);
  frl_fb_builder_destroy(&b);
}

static void test_roundtrip_random_batches(void **state) {
  (void)state;
  frl_rng_t rng;
  frl_rng_seed(&rng, 7);
  batch_t *s = frl_xmalloc(sizeof *s);
  frl_fb_builder_t *b = frl_fb_builder_new(256);
  for (uint32_t count = 1; count <= 64; count++) {
    make_batch(s, &rng, count);
    s->msg.u.experience.n_episodes = count % 4;
    s->msg.u.experience.n_priority = count % 2 ? count : 0;
    s->msg.u.experience.n_policy_version = count % 3 ? count : 0;
    roundtrip(b, &s->msg);
  }
  free(s);
  frl_fb_builder_destroy(&b);
}

/* The largest batch and an episode list long enough to leave the encoder's stack array. */
static void test_roundtrip_large(void **state) {
  (void)state;
  const uint32_t count = FRL_MSG_MAX_COUNT, dim = 4, n_ep = FRL_MSG_MAX_EPISODES;
  float *obs = frl_xmalloc((size_t)count * dim * sizeof *obs);
  int32_t *ai = frl_xmalloc(count * sizeof *ai);
  frl_episode_stat_t *eps = frl_xcalloc(n_ep, sizeof *eps);
  for (size_t i = 0; i < (size_t)count * dim; i++) obs[i] = (float)i;
  for (uint32_t i = 0; i < count; i++) ai[i] = (int32_t)(i % 3);
  for (uint32_t i = 0; i < n_ep; i++) eps[i].length = i;
  frl_msg_t m = {.type = FRL_MSG_EXPERIENCE,
                 .u.experience = {.actor = "big", .count = count, .obs_dim = dim, .act_dim = 3,
                                  .obs = obs, .next_obs = obs, .action_index = ai,
                                  .n_action_index = count, .reward = obs, .discount = obs,
                                  .n_episodes = n_ep, .episodes_in = eps}};
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  roundtrip(b, &m);
  /* Vtable deduplication: the episodes share one or two vtables, so turning it off grows the
   * buffer by at least one vtable per episode, and the result still decodes the same. */
  size_t with_dedup, without;
  data_of(b, &with_dedup);
  frl_fb_builder_set_dedup(b, false);
  roundtrip(b, &m);
  data_of(b, &without);
  assert_true(without >= with_dedup + 6 * (size_t)(n_ep - 2));
  frl_fb_builder_destroy(&b);
  free(obs);
  free(ai);
  free(eps);
}

/* Steady-state encoding reuses the builder's memory: the finished buffer does not move. */
static void test_builder_reuse(void **state) {
  (void)state;
  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
  batch_t *s = frl_xmalloc(sizeof *s);
  make_batch(s, &rng, 64);
  frl_fb_builder_t *b = frl_fb_builder_new(64);
  size_t len0, len;
  assert_null(frl_fb_builder_data(b, &len));
  assert_int_equal(len, 0);
  assert_int_equal(encode(b, &s->msg), 0);
  const void *first = data_of(b, &len0);
  for (int i = 0; i < 200; i++) {
    assert_int_equal(encode(b, &s->msg), 0);
    assert_ptr_equal(data_of(b, &len), first);
    assert_int_equal(len, len0);
  }
  frl_fb_builder_reset(b);
  assert_null(frl_fb_builder_data(b, &len));
  free(s);
  frl_fb_builder_destroy(&b);
}

static void test_type_names(void **state) {
  (void)state;
  assert_string_equal(frl_msg_type_name(FRL_MSG_EXPERIENCE), "ExperienceBatch");
  assert_string_equal(frl_msg_type_name(FRL_MSG_HELLO), "Hello");
  assert_string_equal(frl_msg_type_name(FRL_MSG_CREDIT), "Credit");
  assert_string_equal(frl_msg_type_name((frl_msg_type_t)99), "unknown");
  assert_string_equal(frl_msg_type_name(FRL_MSG_NONE), "unknown");
}

/* ---- encoder refusals ----------------------------------------------------------------------- */

static void test_encoder_refuses_inconsistent_input(void **state) {
  (void)state;
  frl_rng_t rng;
  frl_rng_seed(&rng, 5);
  batch_t *s = frl_xmalloc(sizeof *s);
  make_batch(s, &rng, 8);
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  const frl_experience_t ok = s->msg.u.experience;
  frl_experience_t e;
  frl_episode_stat_t many[FRL_MSG_MAX_EPISODES + 1];
  memset(many, 0, sizeof many);

#define REFUSED(mutation)                                                                          \
  do {                                                                                             \
    e = ok;                                                                                        \
    mutation;                                                                                      \
    assert_int_equal(frl_msg_encode_experience(b, &e), FRL_EPROTO);                                \
  } while (0)
  REFUSED(e.count = 0);
  REFUSED(e.count = FRL_MSG_MAX_COUNT + 1);
  REFUSED(e.obs_dim = 0);
  REFUSED(e.act_dim = FRL_MSG_MAX_DIM + 1);
  REFUSED(e.n_action_index = 7);
  REFUSED((e.action = s->obs, e.n_action = 16));             /* both kinds of action */
  REFUSED((e.action_index = NULL, e.n_action_index = 0));    /* neither */
  REFUSED((e.action_index = NULL, e.n_action_index = 0, e.action = s->obs, e.n_action = 15));
  REFUSED(e.n_priority = 3);
  REFUSED(e.n_policy_version = 9);
  REFUSED(e.obs = NULL);
  REFUSED(e.reward = NULL);
  REFUSED(e.episodes_in = NULL);
  REFUSED((e.episodes_in = many, e.n_episodes = FRL_MSG_MAX_EPISODES + 1));
#undef REFUSED
  /* A refused encode leaves the builder usable. */
  e = ok;
  assert_int_equal(frl_msg_encode_experience(b, &e), 0);

  char name[FRL_MSG_MAX_STRING + 2];
  memset(name, 'n', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  frl_hello_t h = {.name = name, .actor_index = -1};
  assert_int_equal(frl_msg_encode_hello(b, &h), FRL_EPROTO);
  frl_ack_t a = {.actor = "a", .reason = name};
  assert_int_equal(frl_msg_encode_ack(b, &a), FRL_EPROTO);

  frl_params_t p = {.obs_mean = PARAMS_MEAN, .n_obs_mean = 4, .obs_std = PARAMS_STD,
                    .n_obs_std = 3};
  assert_int_equal(frl_msg_encode_params(b, &p), FRL_EPROTO);
  p = (frl_params_t){.data = NULL, .n_data = 5};
  assert_int_equal(frl_msg_encode_params(b, &p), FRL_EPROTO);
  p = (frl_params_t){.data = PARAMS_DATA, .n_data = FRL_MSG_MAX_PARAMS + 1};
  assert_int_equal(frl_msg_encode_params(b, &p), FRL_EPROTO);
  /* Within the count limit but over the byte limit of a whole message: refused before the
   * builder allocates or copies anything. */
  float *huge = frl_xcalloc(FRL_MSG_MAX_PARAMS, sizeof *huge);
  p = (frl_params_t){.data = huge, .n_data = FRL_MSG_MAX_PARAMS};
  assert_int_equal(frl_msg_encode_params(b, &p), FRL_EPROTO);
  free(huge);
  frl_credit_t c = {.batches = 1};
  assert_int_equal(frl_msg_encode_credit(b, &c), 0);
  free(s);
  frl_fb_builder_destroy(&b);
}

/* ---- verifier: hostile input ---------------------------------------------------------------- */

static void test_refuses_truncated(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  char err[256];
  for (size_t c = 0; c < N_CASES; c++) {
    size_t len;
    assert_int_equal(encode(b, &CASES[c].msg), 0);
    const uint8_t *full = data_of(b, &len);
    for (size_t n = 0; n < len; n++) {
      uint8_t *copy = copy_of(full, n);
      frl_msg_t m;
      err[0] = '\0';
      int rc = frl_msg_decode(copy, n, &m, err, sizeof err);
      if (rc == 0) {
        /* Only trailing alignment padding (under 8 bytes) may be cut without losing data. */
        if (n + 8 <= len) fail_msg("%s cut to %zu of %zu bytes decoded", CASES[c].name, n, len);
        assert_msg_equal(&CASES[c].msg, &m);
      } else {
        assert_int_equal(rc, FRL_EPROTO);
        assert_true(err[0] != '\0');
      }
      free(copy);
    }
  }
  frl_fb_builder_destroy(&b);
}

static void test_refuses_random_corruption(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  frl_rng_t rng;
  frl_rng_seed(&rng, 12345);
  batch_t *s = frl_xmalloc(sizeof *s);
  make_batch(s, &rng, 16);
  uint8_t *bufs[N_CASES + 1];
  size_t lens[N_CASES + 1];
  for (size_t c = 0; c <= N_CASES; c++) {
    assert_int_equal(encode(b, c < N_CASES ? &CASES[c].msg : &s->msg), 0);
    const void *p = data_of(b, &lens[c]);
    bufs[c] = copy_of(p, lens[c]);
  }
  char err[256];
  int decoded = 0, refused = 0;
  for (int it = 0; it < 6000; it++) {
    size_t c = frl_rng_below(&rng, N_CASES + 1), len = lens[c];
    uint8_t *m = copy_of(bufs[c], len);
    int flips = 1 + (int)frl_rng_below(&rng, 4);
    for (int f = 0; f < flips; f++) {
      uint32_t at = frl_rng_below(&rng, (uint32_t)len);
      if (frl_rng_below(&rng, 3) == 0 && at + 4 <= len) {
        /* Offsets and lengths are where verifiers go wrong: write plausible small ones. */
        wr32(m + (at & ~3u), frl_rng_below(&rng, 2) ? frl_rng_below(&rng, (uint32_t)len + 16)
                                                     : (uint32_t)frl_rng_next(&rng));
      } else {
        m[at] ^= (uint8_t)(1 + frl_rng_below(&rng, 255));
      }
    }
    frl_msg_t out;
    err[0] = '\0';
    int rc = frl_msg_decode(m, len, &out, err, sizeof err);
    if (rc == 0) {
      touch_all(&out);
      decoded++;
    } else {
      assert_true(rc == FRL_EPROTO || rc == FRL_ESCHEMA);
      assert_true(err[0] != '\0');
      refused++;
    }
    free(m);
  }
  /* Both outcomes must occur, or the corruption is not exercising the verifier. */
  assert_true(decoded > 100);
  assert_true(refused > 1000);
  for (size_t c = 0; c <= N_CASES; c++) free(bufs[c]);
  free(s);
  frl_fb_builder_destroy(&b);
}

static void test_refuses_bad_header(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  frl_credit_t credit = {.batches = 3};
  size_t len;
  assert_int_equal(frl_msg_encode_credit(b, &credit), 0);
  const uint8_t *good = data_of(b, &len);
  uint8_t *m = copy_of(good, len);
  char err[256];

  /* Not 8-byte aligned: the same bytes one byte further on. */
  uint8_t *shifted = frl_xmalloc(len + 1);
  memcpy(shifted + 1, good, len);
  frl_msg_t out;
  assert_int_equal(frl_msg_decode(shifted + 1, len, &out, err, sizeof err), FRL_EPROTO);
  assert_non_null(strstr(err, "8-byte aligned"));
  free(shifted);

  memcpy(m + 4, "FRL2", 4);
  assert_refused(m, len, FRL_EPROTO, "file identifier \"FRL2\", expected \"FRL1\"");
  memcpy(m + 4, "\x01\x02\x03\x04", 4);
  assert_refused(m, len, FRL_EPROTO, "file identifier 01 02 03 04");
  memcpy(m, good, len);

  wr32(m, (uint32_t)len + 100);
  assert_refused(m, len, FRL_EPROTO, "Message: root offset");
  wr32(m, 0);
  assert_refused(m, len, FRL_EPROTO, "Message: root offset");
  wr32(m, 10); /* inside the buffer but not 4-aligned */
  assert_refused(m, len, FRL_EPROTO, "not 4-byte aligned");
  memcpy(m, good, len);

  assert_refused(m, 7, FRL_EPROTO, "too short");
  assert_refused(m, 0, FRL_EPROTO, "too short");
  assert_refused(NULL, 0, FRL_EPROTO, "too short");

  /* The whole-message limit is applied before anything is read. */
  uint8_t *big = frl_xcalloc(FRL_MSG_MAX_BYTES + 8, 1);
  assert_int_equal(frl_msg_decode(big, FRL_MSG_MAX_BYTES + 8, &out, err, sizeof err),
                   FRL_EPROTO);
  assert_non_null(strstr(err, "Message: 67108872 bytes, max 67108864"));
  free(big);

  /* err may be NULL or tiny. */
  memcpy(m + 4, "XXXX", 4);
  assert_int_equal(frl_msg_decode(m, len, &out, NULL, 0), FRL_EPROTO);
  assert_int_equal(frl_msg_decode(m, len, &out, err, 1), FRL_EPROTO);
  assert_int_equal(err[0], '\0');
  free(m);
  frl_fb_builder_destroy(&b);
}

/* Hostile tables and vtables, patched into a valid Credit message. */
static void test_refuses_bad_tables(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  frl_credit_t credit = {.batches = 3};
  size_t len;
  assert_int_equal(frl_msg_encode_credit(b, &credit), 0);
  const uint8_t *good = data_of(b, &len);
  uint8_t *m = copy_of(good, len);
  uint32_t root = rd32(m);
  int32_t soff;
  memcpy(&soff, m + root, 4);
  uint32_t vt = (uint32_t)((int32_t)root - soff);

  wr32(m + root, 0x7fffffffu);
  assert_refused(m, len, FRL_EPROTO, "Message: vtable at");
  wr32(m + root, (uint32_t)-(int32_t)len);
  assert_refused(m, len, FRL_EPROTO, "Message: vtable at");
  wr32(m + root, (uint32_t)(soff + 1));
  assert_refused(m, len, FRL_EPROTO, "not 2-byte aligned");
  memcpy(m, good, len);

  m[vt] = 3; /* odd vtable size */
  assert_refused(m, len, FRL_EPROTO, "Message: vtable of 3 bytes");
  m[vt] = 0xfe;
  m[vt + 1] = 0xff; /* vtable runs past the end */
  assert_refused(m, len, FRL_EPROTO, "Message: vtable of 65534 bytes");
  memcpy(m, good, len);
  m[vt + 2] = 0xff;
  m[vt + 3] = 0xff; /* the table's inline size runs past the end */
  assert_refused(m, len, FRL_EPROTO, "Message: table of 65535 bytes");
  memcpy(m, good, len);
  /* schema_version's slot pointing past its table / into the soffset. */
  m[vt + 4] = 0x40;
  m[vt + 5] = 0;
  assert_refused(m, len, FRL_EPROTO, "Message.schema_version: field at +64 does not fit");
  m[vt + 4] = 2;
  assert_refused(m, len, FRL_EPROTO, "Message.schema_version: field at +2 does not fit");
  m[vt + 4] = 5; /* a u16 at an odd address */
  assert_refused(m, len, FRL_EPROTO, "Message.schema_version: field at");
  memcpy(m, good, len);
  /* The body offset (slot 2) pointing outside the buffer. */
  uint16_t body_slot;
  memcpy(&body_slot, m + vt + 8, 2);
  wr32(m + root + body_slot, (uint32_t)len);
  assert_refused(m, len, FRL_EPROTO, "Message.body: offset");
  free(m);
  frl_fb_builder_destroy(&b);
}

static void test_refuses_bad_union_and_version(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  frl_fb_ref_t body;
  size_t len;
  const void *p;
#define CREDIT_BODY()                                                                              \
  do {                                                                                             \
    frl_fb_builder_reset(b);                                                                       \
    frl_fb_table_start(b);                                                                         \
    frl_fb_add_u32(b, 0, 5, 0);                                                                    \
    assert_int_equal(frl_fb_table_end(b, &body), 0);                                               \
  } while (0)
  CREDIT_BODY();
  raw_message(b, 9, body, FRL_SCHEMA_VERSION);
  p = data_of(b, &len);
  assert_refused(p, len, FRL_EPROTO, "Message.body_type: 9, expected 1..8");
  CREDIT_BODY();
  raw_message(b, 255, body, FRL_SCHEMA_VERSION);
  p = data_of(b, &len);
  assert_refused(p, len, FRL_EPROTO, "Message.body_type: 255");
  CREDIT_BODY();
  raw_message(b, FRL_MSG_NONE, body, FRL_SCHEMA_VERSION);
  p = data_of(b, &len);
  assert_refused(p, len, FRL_EPROTO, "Message.body: missing");
  frl_fb_builder_reset(b);
  raw_message(b, FRL_MSG_CREDIT, 0, FRL_SCHEMA_VERSION);
  p = data_of(b, &len);
  assert_refused(p, len, FRL_EPROTO, "Message.body: missing");
  /* Another schema version is reported as such, whatever the body. */
  CREDIT_BODY();
  raw_message(b, FRL_MSG_CREDIT, body, 2);
  p = data_of(b, &len);
  assert_refused(p, len, FRL_ESCHEMA, "Message.schema_version: 2, expected 1");
  CREDIT_BODY();
  raw_message(b, 77, body, 0);
  p = data_of(b, &len);
  assert_refused(p, len, FRL_ESCHEMA, "Message.schema_version: 0, expected 1");
  /* The body of the right type verified as that type: a Credit body tagged Hello whose
   * slot 0 is a 4-byte value where Hello expects an 8-byte schema_hash. */
  CREDIT_BODY();
  raw_message(b, FRL_MSG_HELLO, body, FRL_SCHEMA_VERSION);
  p = data_of(b, &len);
  assert_refused(p, len, FRL_EPROTO, "Hello.schema_hash: field at");
#undef CREDIT_BODY
  frl_fb_builder_destroy(&b);
}

static void test_refuses_bad_enums(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  frl_fb_ref_t body;
  size_t len;
  const void *p;
  static const struct {
    uint8_t type;
    unsigned slot;
    uint8_t value;
    const char *want;
  } cases[] = {
      {FRL_MSG_HELLO, 1, 3, "Hello.role: 3, expected 0..2"},
      {FRL_MSG_HEARTBEAT, 1, 200, "Heartbeat.role: 200, expected 0..2"},
      {FRL_MSG_ACK, 2, 4, "Ack.status: 4, expected 0..3"},
      {FRL_MSG_CONTROL, 0, 4, "Control.command: 4, expected 0..3"},
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(cases); i++) {
    frl_fb_builder_reset(b);
    frl_fb_table_start(b);
    frl_fb_add_u8(b, cases[i].slot, cases[i].value, 0);
    assert_int_equal(frl_fb_table_end(b, &body), 0);
    raw_message(b, cases[i].type, body, FRL_SCHEMA_VERSION);
    p = data_of(b, &len);
    assert_refused(p, len, FRL_EPROTO, cases[i].want);
    /* The largest valid value is accepted. */
    frl_fb_builder_reset(b);
    frl_fb_table_start(b);
    frl_fb_add_u8(b, cases[i].slot, cases[i].type == FRL_MSG_HELLO ||
                                        cases[i].type == FRL_MSG_HEARTBEAT ? 2 : 3, 0);
    assert_int_equal(frl_fb_table_end(b, &body), 0);
    raw_message(b, cases[i].type, body, FRL_SCHEMA_VERSION);
    p = data_of(b, &len);
    char err[256];
    assert_int_equal(decode_copy(p, len, err, sizeof err), 0);
  }
  frl_fb_builder_destroy(&b);
}

static void test_refuses_bad_strings(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  frl_hello_t h = {.name = "actor-3", .task = "cartpole", .actor_index = -1};
  size_t len;
  assert_int_equal(frl_msg_encode_hello(b, &h), 0);
  const uint8_t *good = data_of(b, &len);
  uint8_t *m = copy_of(good, len);
  uint8_t *name = memmem(m, len, "actor-3", 8);
  assert_non_null(name);
  name[7] = 'X'; /* the terminator */
  assert_refused(m, len, FRL_EPROTO, "Hello.name: string not NUL-terminated");
  name[7] = '\0';
  name[2] = '\0';
  assert_refused(m, len, FRL_EPROTO, "Hello.name: string has a NUL byte inside");
  name[2] = 't';
  /* A length that runs past the buffer, and one over the limit. */
  wr32(name - 4, 0x7ffffff0u);
  assert_refused(m, len, FRL_EPROTO, "Hello.name: string of 2147483632 bytes, max 256");
  wr32(name - 4, (uint32_t)(m + len - name));
  assert_refused(m, len, FRL_EPROTO, "overruns");
  free(m);

  /* A string over the limit built by a peer that ignores it. */
  char big[FRL_MSG_MAX_STRING + 1];
  memset(big, 'q', sizeof big);
  frl_fb_ref_t s, body;
  frl_fb_builder_reset(b);
  assert_int_equal(frl_fb_create_string(b, big, sizeof big, &s), 0);
  frl_fb_table_start(b);
  frl_fb_add_ref(b, 1, s);
  assert_int_equal(frl_fb_table_end(b, &body), 0);
  raw_message(b, FRL_MSG_CONTROL, body, FRL_SCHEMA_VERSION);
  const void *p = data_of(b, &len);
  assert_refused(p, len, FRL_EPROTO, "Control.reason: string of 257 bytes, max 256");
  frl_fb_builder_destroy(&b);
}

/* Finds the 4-aligned uoffset in m that points at target; exactly one must exist. */
static uint8_t *find_offset_to(uint8_t *m, size_t len, size_t target) {
  uint8_t *found = NULL;
  for (size_t at = 4; at + 4 <= target; at += 4) {
    if (at + rd32(m + at) == target) {
      assert_null(found);
      found = m + at;
    }
  }
  assert_non_null(found);
  return found;
}

static void test_refuses_bad_vectors(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  size_t len;
  const void *p;
  const frl_msg_t *exp = &CASES[3].msg; /* "experience" */
  assert_string_equal(CASES[3].name, "experience");
  assert_int_equal(encode(b, exp), 0);
  p = data_of(b, &len);
  uint8_t *m = copy_of(p, len);
  frl_msg_t view;
  char err[256];
  assert_int_equal(frl_msg_decode(m, len, &view, err, sizeof err), 0);
  size_t obs_at = (size_t)((const uint8_t *)view.u.experience.obs - m) - 4;
  size_t pv_at = (size_t)((const uint8_t *)view.u.experience.policy_version - m) - 4;
  uint8_t *obs_ref = find_offset_to(m, len, obs_at);
  uint8_t *pv_ref = find_offset_to(m, len, pv_at);

  wr32(obs_ref, rd32(obs_ref) + 2);
  assert_refused(m, len, FRL_EPROTO, "ExperienceBatch.obs: length at");
  wr32(obs_ref, rd32(obs_ref) - 2);
  wr32(pv_ref, rd32(pv_ref) + 4); /* length word aligned, 8-byte elements no longer */
  assert_refused(m, len, FRL_EPROTO, "ExperienceBatch.policy_version: elements at");
  wr32(pv_ref, rd32(pv_ref) - 4);
  wr32(m + obs_at, 0xfffffff0u);
  assert_refused(m, len, FRL_EPROTO, "ExperienceBatch.obs: 4294967280 elements of 4 bytes");
  wr32(m + obs_at, 11);
  assert_refused(m, len, FRL_EPROTO,
                 "ExperienceBatch.obs: 11 floats, expected count*obs_dim = 12");
  wr32(m + obs_at, 12);
  assert_int_equal(decode_copy(m, len, err, sizeof err), 0);
  free(m);

  /* Hand-built batches that break one invariant each. */
  static const struct {
    raw_exp_t r;
    const char *want;
  } cases[] = {
      {{4, 4, 2, 12, 4, -1, 4, 4, 16, -1, -1, -1},
       "ExperienceBatch.obs: 12 floats, expected count*obs_dim = 16"},
      {{4, 4, 2, 16, 4, -1, 4, 4, 20, -1, -1, -1},
       "ExperienceBatch.next_obs: 20 floats, expected count*obs_dim = 16"},
      {{4, 4, 2, -1, 4, -1, 4, 4, 16, -1, -1, -1},
       "ExperienceBatch.obs: 0 floats, expected count*obs_dim = 16"},
      {{4, 4, 2, 16, 4, -1, 3, 4, 16, -1, -1, -1},
       "ExperienceBatch.reward: 3 floats, expected count = 4"},
      {{4, 4, 2, 16, 4, -1, 4, 5, 16, -1, -1, -1},
       "ExperienceBatch.discount: 5 floats, expected count = 4"},
      {{4, 4, 2, 16, 5, -1, 4, 4, 16, -1, -1, -1},
       "ExperienceBatch.action_index: 5 ints, expected count = 4"},
      {{4, 4, 2, 16, -1, 7, 4, 4, 16, -1, -1, -1},
       "ExperienceBatch.action: 7 floats, expected count*act_dim = 8"},
      {{4, 4, 2, 16, 4, 8, 4, 4, 16, -1, -1, -1},
       "ExperienceBatch.action: action_index has 4 and action 8 elements, expected exactly one"},
      {{4, 4, 2, 16, -1, -1, 4, 4, 16, -1, -1, -1},
       "ExperienceBatch.action: action_index has 0 and action 0 elements"},
      {{4, 4, 2, 16, 4, -1, 4, 4, 16, 2, -1, -1},
       "ExperienceBatch.priority: 2 floats, expected 0 or count = 4"},
      {{4, 4, 2, 16, 4, -1, 4, 4, 16, -1, 5, -1},
       "ExperienceBatch.policy_version: 5 ulongs, expected 0 or count = 4"},
      {{0, 4, 2, 0, 0, -1, 0, 0, 0, -1, -1, -1}, "ExperienceBatch.count: 0 with no episodes or safety events, expected 1..65536"},
      {{70000, 4, 2, 16, 4, -1, 4, 4, 16, -1, -1, -1},
       "ExperienceBatch.count: 70000, expected 1..65536"},
      {{4, 0, 2, 0, 4, -1, 4, 4, 0, -1, -1, -1}, "ExperienceBatch.obs_dim: 0, expected 1..4096"},
      {{4, 5000, 2, 16, 4, -1, 4, 4, 16, -1, -1, -1},
       "ExperienceBatch.obs_dim: 5000, expected 1..4096"},
      {{4, 4, 4097, 16, 4, -1, 4, 4, 16, -1, -1, -1},
       "ExperienceBatch.act_dim: 4097, expected 1..4096"},
      {{4, 4, 2, 16, 4, -1, 4, 4, 16, -1, -1, 4097},
       "ExperienceBatch.episodes: 4097 elements, max 4096"},
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(cases); i++) {
    raw_experience(b, &cases[i].r);
    p = data_of(b, &len);
    assert_refused(p, len, FRL_EPROTO, cases[i].want);
  }
  /* The hand-built batch itself is valid when no invariant is broken, with episodes too. */
  raw_exp_t r = RAW_OK;
  r.n_episodes = FRL_MSG_MAX_EPISODES;
  raw_experience(b, &r);
  p = data_of(b, &len);
  assert_int_equal(decode_copy(p, len, err, sizeof err), 0);

  /* Params limits. */
  frl_fb_ref_t mean, std, body;
  static const float f[8] = {0};
  frl_fb_builder_reset(b);
  assert_int_equal(frl_fb_create_vector(b, f, 4, 4, &mean), 0);
  assert_int_equal(frl_fb_create_vector(b, f, 3, 4, &std), 0);
  frl_fb_table_start(b);
  frl_fb_add_ref(b, 4, mean);
  frl_fb_add_ref(b, 5, std);
  assert_int_equal(frl_fb_table_end(b, &body), 0);
  raw_message(b, FRL_MSG_PARAMS, body, FRL_SCHEMA_VERSION);
  p = data_of(b, &len);
  assert_refused(p, len, FRL_EPROTO,
                 "Params.obs_std: 3 floats, expected as many as obs_mean = 4");
  float *wide = frl_xcalloc(FRL_MSG_MAX_DIM + 1, sizeof *wide);
  frl_fb_builder_reset(b);
  assert_int_equal(frl_fb_create_vector(b, wide, FRL_MSG_MAX_DIM + 1, 4, &mean), 0);
  frl_fb_table_start(b);
  frl_fb_add_ref(b, 4, mean);
  frl_fb_add_ref(b, 5, mean); /* both fields may share one vector */
  assert_int_equal(frl_fb_table_end(b, &body), 0);
  raw_message(b, FRL_MSG_PARAMS, body, FRL_SCHEMA_VERSION);
  p = data_of(b, &len);
  assert_refused(p, len, FRL_EPROTO, "Params.obs_mean: 4097 floats, max 4096");
  free(wide);

  /* Hello's dimensions are bounded too (0 is allowed: an operator has none). */
  frl_fb_builder_reset(b);
  frl_fb_table_start(b);
  frl_fb_add_u32(b, 7, FRL_MSG_MAX_DIM + 1, 0);
  assert_int_equal(frl_fb_table_end(b, &body), 0);
  raw_message(b, FRL_MSG_HELLO, body, FRL_SCHEMA_VERSION);
  p = data_of(b, &len);
  assert_refused(p, len, FRL_EPROTO, "Hello.act_dim: 4097, max 4096");
  frl_fb_builder_destroy(&b);
}

/* The generic verifier's depth and table-count limits, on a message with nested tables. */
/* The robot-side fields: a safety kind outside the enum, an over-long physics string, a
 * transition-less batch that carries transitions or nothing at all. */
static void test_refuses_bad_safety_and_physics(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(256);
  frl_fb_ref_t ev, vec, body;
  const void *p;
  size_t len;
  /* kind 6 is one past Resume */
  frl_fb_builder_reset(b);
  frl_fb_table_start(b);
  frl_fb_add_u8(b, 0, 6, 0);
  assert_int_equal(frl_fb_table_end(b, &ev), 0);
  assert_int_equal(frl_fb_create_ref_vector(b, &ev, 1, &vec), 0);
  frl_fb_table_start(b);
  frl_fb_add_u32(b, 3, 3, 0); /* obs_dim */
  frl_fb_add_u32(b, 4, 2, 0); /* act_dim */
  frl_fb_add_ref(b, 16, vec); /* safety */
  assert_int_equal(frl_fb_table_end(b, &body), 0);
  raw_message(b, FRL_MSG_EXPERIENCE, body, FRL_SCHEMA_VERSION);
  p = frl_fb_builder_data(b, &len);
  assert_refused(p, len, FRL_EPROTO, "SafetyEvent.kind: 6, expected 0..5");

  /* the encoder refuses the same input, and physics past its bound */
  char big[FRL_MSG_MAX_PHYSICS + 2];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  frl_episode_stat_t ep = {.physics = big};
  frl_safety_event_t bad = {.kind = (frl_safety_kind_t)6};
  frl_experience_t x = {.actor = "a", .count = 0, .obs_dim = 3, .act_dim = 2, .n_episodes = 1,
                        .episodes_in = &ep};
  assert_int_equal(frl_msg_encode_experience(b, &x), FRL_EPROTO);
  big[FRL_MSG_MAX_PHYSICS] = '\0'; /* exactly at the bound: accepted */
  assert_int_equal(frl_msg_encode_experience(b, &x), 0);
  x.n_episodes = 0;
  x.n_safety = 1;
  x.safety_in = &bad;
  assert_int_equal(frl_msg_encode_experience(b, &x), FRL_EPROTO);
  x.n_safety = 0;
  assert_int_equal(frl_msg_encode_experience(b, &x), FRL_EPROTO); /* nothing to report */
  const float r[1] = {0};
  x.n_episodes = 1;
  x.reward = r;
  x.priority = r;
  x.n_priority = 1;
  assert_int_equal(frl_msg_encode_experience(b, &x), FRL_EPROTO); /* transitions in count 0 */
  frl_fb_builder_destroy(&b);
}

static void test_verifier_limits(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  size_t len;
  assert_int_equal(encode(b, &CASES[3].msg), 0); /* 2 episodes: 4 tables, 3 deep */
  const void *p = data_of(b, &len);
  char err[256];
  for (int round = 0; round < 3; round++) {
    uint32_t max_depth = round == 0 ? 2 : 3, max_tables = round == 1 ? 3 : 4;
    frl_fb_verifier_t v;
    frl_fb_table_t root, body;
    bool present;
    const void *elems;
    uint32_t n;
    frl_fb_verifier_init(&v, p, len, max_depth, max_tables, err, sizeof err);
    assert_int_equal(frl_fb_verify_root(&v, "FRL1", "Message", &root), 0);
    assert_int_equal(frl_fb_get_table(&v, &root, 2, "Message.body", &body, &present), 0);
    assert_true(present);
    int rc = frl_fb_get_table_vector(&v, &body, 13, 10, "ExperienceBatch.episodes", NULL, NULL,
                                     &elems, &n);
    if (round == 0) {
      assert_int_equal(rc, FRL_EPROTO);
      assert_non_null(strstr(err, "ExperienceBatch.episodes: tables nested 3 deep, max 2"));
    } else if (round == 1) {
      assert_int_equal(rc, FRL_EPROTO);
      assert_non_null(strstr(err, "ExperienceBatch.episodes: more than 3 tables"));
    } else {
      assert_int_equal(rc, 0);
      assert_int_equal(n, 2);
      frl_fb_table_t e = frl_fb_vector_table(elems, 1);
      uint32_t length = 0;
      assert_true(frl_fb_read_scalar(&e, 1, 4, &length));
      assert_int_equal(length, 500);
      assert_false(frl_fb_read_scalar(&e, 4, 4, &length)); /* violations 0: absent */
    }
  }
  /* The vector's own count bound. */
  frl_fb_verifier_t v;
  frl_fb_table_t root, body;
  bool present;
  const void *data;
  uint32_t n;
  frl_fb_verifier_init(&v, p, len, 8, 100, err, sizeof err);
  assert_int_equal(frl_fb_verify_root(&v, "FRL1", "Message", &root), 0);
  assert_int_equal(frl_fb_get_table(&v, &root, 2, "Message.body", &body, &present), 0);
  assert_int_equal(frl_fb_get_vector(&v, &body, 5, 4, 11, "ExperienceBatch.obs", &data, &n),
                   FRL_EPROTO);
  assert_string_equal(err, "ExperienceBatch.obs: 12 elements, max 11");
  assert_int_equal(frl_fb_get_vector(&v, &body, 5, 4, 12, "ExperienceBatch.obs", &data, &n), 0);
  assert_int_equal(n, 12);
  /* Without an identifier the first table may follow the root offset directly. */
  frl_fb_verifier_init(&v, p, len, 8, 100, err, sizeof err);
  assert_int_equal(frl_fb_verify_root(&v, NULL, "Message", &root), 0);
  frl_fb_builder_destroy(&b);
}

/* Tables sharing one vtable, a builder size cap, and a buffer without identifier. */
static void test_builder_primitives(void **state) {
  (void)state;
  frl_fb_builder_t *b = frl_fb_builder_new(8);
  frl_fb_ref_t t1, t2, s;
  size_t len;
  /* Two u32 fields: 12-byte table, 8-byte vtable, so the second table needs no padding and
   * has the same inline size (padding counts in it, as in the reference builder). */
  frl_fb_table_start(b);
  frl_fb_add_u32(b, 0, 1, 0);
  frl_fb_add_u32(b, 1, 7, 0);
  assert_int_equal(frl_fb_table_end(b, &t1), 0);
  frl_fb_table_start(b);
  frl_fb_add_u32(b, 0, 2, 0);
  frl_fb_add_u32(b, 1, 8, 0);
  assert_int_equal(frl_fb_table_end(b, &t2), 0);
  assert_int_equal(frl_fb_create_string(b, "hi", 2, &s), 0);
  frl_fb_ref_t refs[2] = {t1, t2}, vec;
  assert_int_equal(frl_fb_create_ref_vector(b, refs, 2, &vec), 0);
  assert_int_equal(frl_fb_finish(b, t2, NULL), 0);
  const uint8_t *p = data_of(b, &len);
  assert_int_equal((uintptr_t)p % 8, 0);
  /* Second table (the root) reuses the first's vtable: its soffset is negative. */
  uint32_t root = rd32(p);
  int32_t soff;
  memcpy(&soff, p + root, 4);
  assert_true(soff < 0);
  char err[128];
  frl_fb_verifier_t v;
  frl_fb_table_t t;
  uint32_t x = 0;
  frl_fb_verifier_init(&v, p, len, 4, 4, err, sizeof err);
  assert_int_equal(frl_fb_verify_root(&v, NULL, "Root", &t), 0);
  assert_int_equal(frl_fb_get_scalar(&v, &t, 0, 4, "Root.x", &x), 0);
  assert_int_equal(x, 2);

  /* The size cap fails cleanly (sticky) and the builder recovers on reset. */
  frl_fb_builder_reset(b);
  frl_fb_builder_set_max_size(b, 100);
  static const uint8_t bytes[200] = {0};
  assert_int_equal(frl_fb_create_vector(b, bytes, 200, 1, &s), -EMSGSIZE);
  assert_int_equal(frl_fb_builder_error(b), -EMSGSIZE);
  frl_fb_table_start(b);
  frl_fb_add_u64(b, 0, 1, 0);
  assert_int_equal(frl_fb_table_end(b, &t1), -EMSGSIZE);
  assert_int_equal(frl_fb_finish(b, 1, NULL), -EMSGSIZE);
  assert_null(frl_fb_builder_data(b, &len));
  frl_fb_builder_reset(b);
  assert_int_equal(frl_fb_create_vector(b, bytes, 50, 1, &s), 0);
  frl_fb_builder_destroy(&b);
}

/* ---- conformance with the reference implementation ------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void rm_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* Runs a shell command; returns its exit status (or -1 if it did not exit). */
static int run(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  assert_true(n > 0 && (size_t)n < sizeof cmd);
  int st = system(cmd);
  return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool have_flatc(void) { return run("flatc --version >/dev/null 2>&1") == 0; }

static void write_file(const char *path, const void *p, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

/* Reads a file into an 8-byte aligned heap buffer of exactly its size. */
static uint8_t *load(const char *path, size_t *len) {
  char *p = read_file(path, len);
  if (!p) fail_msg("cannot read %s", path);
  uint8_t *c = copy_of(p, *len);
  free(p);
  return c;
}

/* Makes a temp dir with subdirs, and writes our encoding of every case to <dir>/ours. */
static void conformance_setup(char *dir, frl_fb_builder_t *b) {
  strcpy(dir, "/tmp/frl_codec_XXXXXX");
  assert_non_null(mkdtemp(dir));
  char path[512];
  static const char *subs[] = {"ours", "ref", "ours_json", "ref_json", "py"};
  for (size_t i = 0; i < FRL_ARRAY_LEN(subs); i++) {
    snprintf(path, sizeof path, "%s/%s", dir, subs[i]);
    assert_int_equal(mkdir(path, 0700), 0);
  }
  for (size_t c = 0; c < N_CASES; c++) {
    size_t len;
    assert_int_equal(encode(b, &CASES[c].msg), 0);
    const void *p = data_of(b, &len);
    snprintf(path, sizeof path, "%s/ours/%s.bin", dir, CASES[c].name);
    write_file(path, p, len);
  }
}

/* Appends " <prefix><name><suffix>" for every case to s. */
static void case_list(char *s, size_t cap, const char *prefix, const char *suffix) {
  for (size_t c = 0; c < N_CASES; c++) {
    size_t n = strlen(s);
    snprintf(s + n, cap - n, " %s%s%s", prefix, CASES[c].name, suffix);
  }
}

/* (a) flatc builds each JSON message; our decoder reads it field by field. (b) flatc prints our
 * encodings and its own as JSON; the two texts must be identical. */
static void test_conformance_flatc(void **state) {
  (void)state;
  if (!have_flatc()) {
    print_message("flatc not found (Debian package flatbuffers-compiler): skipping\n");
    skip();
  }
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  char dir[64], files[4096] = "", prefix[128], path[512];
  conformance_setup(dir, b);

  snprintf(prefix, sizeof prefix, "%s/", CONFORMANCE_DIR);
  case_list(files, sizeof files, prefix, ".json");
  assert_int_equal(run("flatc -b -o %s/ref %s%s", dir, SCHEMA_PATH, files), 0);
  for (size_t c = 0; c < N_CASES; c++) {
    size_t len;
    char err[256];
    frl_msg_t m;
    snprintf(path, sizeof path, "%s/ref/%s.bin", dir, CASES[c].name);
    uint8_t *buf = load(path, &len);
    int rc = frl_msg_decode(buf, len, &m, err, sizeof err);
    if (rc) fail_msg("%s built by flatc: %s", CASES[c].name, err);
    assert_msg_equal(&CASES[c].msg, &m);
    free(buf);
  }

  /* Without --raw-binary, flatc also checks our file identifier. */
  files[0] = '\0';
  snprintf(prefix, sizeof prefix, "%s/ours/", dir);
  case_list(files, sizeof files, prefix, ".bin");
  assert_int_equal(
      run("flatc --json --strict-json -o %s/ours_json %s --%s", dir, SCHEMA_PATH, files), 0);
  files[0] = '\0';
  snprintf(prefix, sizeof prefix, "%s/ref/", dir);
  case_list(files, sizeof files, prefix, ".bin");
  assert_int_equal(
      run("flatc --json --strict-json -o %s/ref_json %s --%s", dir, SCHEMA_PATH, files), 0);
  for (size_t c = 0; c < N_CASES; c++) {
    size_t n1, n2;
    snprintf(path, sizeof path, "%s/ours_json/%s.json", dir, CASES[c].name);
    char *ours = read_file(path, &n1);
    snprintf(path, sizeof path, "%s/ref_json/%s.json", dir, CASES[c].name);
    char *ref = read_file(path, &n2);
    assert_non_null(ours);
    assert_non_null(ref);
    if (strcmp(ours, ref) != 0)
      fail_msg("%s: flatc reads our buffer as\n%s\nbut its own as\n%s", CASES[c].name, ours,
               ref);
    assert_true(n1 > 20);
    free(ours);
    free(ref);
  }
  rm_tree(dir);
  frl_fb_builder_destroy(&b);
}

/* Finds a Python with the reference FlatBuffers runtime; *any_python says whether some python3
 * ran at all (so a missing module can be told from a missing interpreter). */
static const char *find_python(bool *any_python) {
  static const char *candidates[] = {"python3", "/usr/bin/python3"};
  const char *env = getenv("FLEETRL_PYTHON");
  *any_python = false;
  if (env && run("%s -c 'import flatbuffers' >/dev/null 2>&1", env) == 0) return env;
  for (size_t i = 0; i < FRL_ARRAY_LEN(candidates); i++) {
    int st = run("%s -c 'import flatbuffers' >/dev/null 2>&1", candidates[i]);
    if (st == 0) return candidates[i];
    if (st == 1) *any_python = true; /* it ran, but lacks the module */
  }
  return NULL;
}

/* (c) The Python runtime reads our encodings (asserting every field against the JSON) and builds
 * its own, which our decoder must read back as the same messages. */
static void test_conformance_python(void **state) {
  (void)state;
  bool any_python;
  if (!have_flatc()) {
    print_message("flatc not found (Debian package flatbuffers-compiler): skipping\n");
    skip();
  }
  const char *py = find_python(&any_python);
  if (!py) {
    if (any_python)
      fail_msg("python3 runs but cannot import flatbuffers: install python3-flatbuffers "
               "(or set FLEETRL_PYTHON to an interpreter that has it)");
    print_message("python3 not found: skipping the Python runtime check\n");
    skip();
  }
  frl_fb_builder_t *b = frl_fb_builder_new(0);
  char dir[64], names[4096] = "", path[512];
  conformance_setup(dir, b);
  case_list(names, sizeof names, "", "");
  int st = run("%s tests/conformance/check_python.py --schema %s --json-dir %s --c-dir %s/ours "
               "--out-dir %s/py%s",
               py, SCHEMA_PATH, CONFORMANCE_DIR, dir, dir, names);
  assert_int_equal(st, 0);
  for (size_t c = 0; c < N_CASES; c++) {
    size_t len;
    char err[256];
    frl_msg_t m;
    snprintf(path, sizeof path, "%s/py/%s.bin", dir, CASES[c].name);
    uint8_t *buf = load(path, &len);
    int rc = frl_msg_decode(buf, len, &m, err, sizeof err);
    if (rc) fail_msg("%s built by Python: %s", CASES[c].name, err);
    assert_msg_equal(&CASES[c].msg, &m);
    free(buf);
  }
  rm_tree(dir);
  frl_fb_builder_destroy(&b);
}

int main(void) {
  /* The encoder-refusal tests would otherwise fill the output with the warnings they cause. */
  frl_log_init("test_codec", FRL_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schema_hash),
      cmocka_unit_test(test_roundtrip_cases),
      cmocka_unit_test(test_roundtrip_defaults_and_absent),
      cmocka_unit_test(test_roundtrip_random_batches),
      cmocka_unit_test(test_roundtrip_large),
      cmocka_unit_test(test_builder_reuse),
      cmocka_unit_test(test_type_names),
      cmocka_unit_test(test_encoder_refuses_inconsistent_input),
      cmocka_unit_test(test_refuses_truncated),
      cmocka_unit_test(test_refuses_random_corruption),
      cmocka_unit_test(test_refuses_bad_header),
      cmocka_unit_test(test_refuses_bad_tables),
      cmocka_unit_test(test_refuses_bad_union_and_version),
      cmocka_unit_test(test_refuses_bad_enums),
      cmocka_unit_test(test_refuses_bad_strings),
      cmocka_unit_test(test_refuses_bad_vectors),
      cmocka_unit_test(test_refuses_bad_safety_and_physics),
      cmocka_unit_test(test_verifier_limits),
      cmocka_unit_test(test_builder_primitives),
      cmocka_unit_test(test_conformance_flatc),
      cmocka_unit_test(test_conformance_python),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
