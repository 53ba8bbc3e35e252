/* msg.c: the fleetrl messages of schema/fleetrl.fbs in FlatBuffers form: one encoder per body
 * table, one decoder that verifies a whole Message before exposing a zero-copy view of it. */
#include "msg.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fb.h"
#include "log.h"
#include "schema_hash.h"

/* Field slot ids: the declaration index of each field in fleetrl.fbs (a union takes two, its
 * _type byte then its offset). These are the wire layout: they change only with the schema. */
enum { MESSAGE_SCHEMA_VERSION = 0, MESSAGE_BODY_TYPE = 1, MESSAGE_BODY = 2 };
enum {
  HELLO_SCHEMA_HASH = 0,
  HELLO_ROLE,
  HELLO_NAME,
  HELLO_ACTOR_INDEX,
  HELLO_NUM_ACTORS,
  HELLO_TASK,
  HELLO_OBS_DIM,
  HELLO_ACT_DIM,
};
enum {
  WELCOME_OK = 0,
  WELCOME_ERROR,
  WELCOME_SCHEMA_HASH,
  WELCOME_PARAMS_VERSION,
  WELCOME_HEARTBEAT_MS,
  WELCOME_ESTOP,
  WELCOME_ESTOP_REASON,
};
enum {
  EPISODE_RETURN = 0,
  EPISODE_LENGTH,
  EPISODE_SUCCESS,
  EPISODE_TRUNCATED,
  EPISODE_VIOLATIONS,
  EPISODE_POLICY_VERSION,
  EPISODE_PHYSICS,
};
enum { SAFETY_KIND = 0, SAFETY_COUNT, SAFETY_TIME_NS, SAFETY_DETAIL };
enum {
  EXP_ACTOR = 0,
  EXP_SEQ,
  EXP_COUNT,
  EXP_OBS_DIM,
  EXP_ACT_DIM,
  EXP_OBS,
  EXP_ACTION_INDEX,
  EXP_ACTION,
  EXP_REWARD,
  EXP_DISCOUNT,
  EXP_NEXT_OBS,
  EXP_PRIORITY,
  EXP_POLICY_VERSION,
  EXP_EPISODES,
  EXP_ENV_STEPS,
  EXP_DEMONSTRATION,
  EXP_SAFETY,
};
enum { ACK_ACTOR = 0, ACK_SEQ, ACK_STATUS, ACK_REASON };
enum {
  PARAMS_VERSION = 0,
  PARAMS_CHECKSUM,
  PARAMS_TASK,
  PARAMS_DATA,
  PARAMS_OBS_MEAN,
  PARAMS_OBS_STD,
};
enum {
  HEARTBEAT_NAME = 0,
  HEARTBEAT_ROLE,
  HEARTBEAT_PARAMS_VERSION,
  HEARTBEAT_OUTBOX,
  HEARTBEAT_SHED,
  HEARTBEAT_ENV_STEPS,
  HEARTBEAT_TIME_NS,
  HEARTBEAT_SAFE_MODE,
  HEARTBEAT_ESTOP,
};
enum { CONTROL_COMMAND = 0, CONTROL_REASON, CONTROL_VALUE };
enum { CREDIT_BATCHES = 0 };

/* Schema defaults that are not zero. */
#define HELLO_ACTOR_INDEX_DEFAULT (-1)
#define SAFETY_COUNT_DEFAULT 1u

/* Message, one body table, up to MAX_EPISODES EpisodeStat and MAX_SAFETY SafetyEvent tables. */
#define MAX_TABLES (FRL_MSG_MAX_EPISODES + FRL_MSG_MAX_SAFETY + 2u)
#define MAX_DEPTH 3u

#define TRY(expr)                                                                                  \
  do {                                                                                             \
    int rc_ = (expr);                                                                              \
    if (rc_) return rc_;                                                                           \
  } while (0)

/* ---- schema hash ---------------------------------------------------------------------------- */

uint64_t frl_schema_hash(void) { return FRL_SCHEMA_HASH; }

uint64_t frl_schema_hash_text(const char *text, size_t len) {
  uint64_t h = FRL_FNV_SEED;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c == '/' && i + 1 < len && text[i + 1] == '/') {
      while (i + 1 < len && text[i + 1] != '\n') i++;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    h = (h ^ c) * 0x100000001b3ULL;
  }
  return h;
}

const char *frl_msg_type_name(frl_msg_type_t t) {
  switch (t) {
  case FRL_MSG_HELLO: return "Hello";
  case FRL_MSG_WELCOME: return "Welcome";
  case FRL_MSG_EXPERIENCE: return "ExperienceBatch";
  case FRL_MSG_ACK: return "Ack";
  case FRL_MSG_PARAMS: return "Params";
  case FRL_MSG_HEARTBEAT: return "Heartbeat";
  case FRL_MSG_CONTROL: return "Control";
  case FRL_MSG_CREDIT: return "Credit";
  default: return "unknown";
  }
}

const char *frl_safety_kind_name(frl_safety_kind_t k) {
  switch (k) {
  case FRL_SAFETY_CLIP: return "clip";
  case FRL_SAFETY_BARRIER: return "barrier";
  case FRL_SAFETY_SAFE_MODE_ENTER: return "safe_mode_enter";
  case FRL_SAFETY_SAFE_MODE_EXIT: return "safe_mode_exit";
  case FRL_SAFETY_ESTOP: return "estop";
  case FRL_SAFETY_RESUME: return "resume";
  default: return "unknown";
  }
}

/* ---- checks shared by encoder and decoder --------------------------------------------------- */

/* The invariants of an ExperienceBatch that both sides can see in the struct (the decoder also
 * checks the lengths of obs, next_obs, reward and discount, which the struct does not hold). */
static int check_experience(const frl_experience_t *m, char *err, size_t errlen) {
  if (m->n_episodes > FRL_MSG_MAX_EPISODES)
    return frl_errf(FRL_EPROTO, err, errlen, "ExperienceBatch.episodes: %u, max %u", m->n_episodes,
                    FRL_MSG_MAX_EPISODES);
  if (m->n_safety > FRL_MSG_MAX_SAFETY)
    return frl_errf(FRL_EPROTO, err, errlen, "ExperienceBatch.safety: %u, max %u", m->n_safety,
                    FRL_MSG_MAX_SAFETY);
  if (m->obs_dim < 1 || m->obs_dim > FRL_MSG_MAX_DIM)
    return frl_errf(FRL_EPROTO, err, errlen, "ExperienceBatch.obs_dim: %u, expected 1..%u",
                    m->obs_dim, FRL_MSG_MAX_DIM);
  if (m->act_dim < 1 || m->act_dim > FRL_MSG_MAX_DIM)
    return frl_errf(FRL_EPROTO, err, errlen, "ExperienceBatch.act_dim: %u, expected 1..%u",
                    m->act_dim, FRL_MSG_MAX_DIM);
  if (m->count == 0) {
    /* A report without transitions: episodes or safety events only (a robot in safe mode
     * still reports what happened to it). */
    if (m->n_episodes == 0 && m->n_safety == 0)
      return frl_errf(FRL_EPROTO, err, errlen,
                      "ExperienceBatch.count: 0 with no episodes or safety events, expected 1..%u",
                      FRL_MSG_MAX_COUNT);
    if (m->n_action_index || m->n_action || m->n_priority || m->n_policy_version)
      return frl_errf(FRL_EPROTO, err, errlen,
                      "ExperienceBatch.count: 0 but transition vectors are non-empty");
    return 0;
  }
  if (m->count > FRL_MSG_MAX_COUNT)
    return frl_errf(FRL_EPROTO, err, errlen, "ExperienceBatch.count: %u, expected 1..%u", m->count,
                    FRL_MSG_MAX_COUNT);
  if ((m->n_action_index == 0) == (m->n_action == 0))
    return frl_errf(FRL_EPROTO, err, errlen,
                    "ExperienceBatch.action: action_index has %u and action %u elements, "
                    "expected exactly one non-empty",
                    m->n_action_index, m->n_action);
  if (m->n_action_index && m->n_action_index != m->count)
    return frl_errf(FRL_EPROTO, err, errlen,
                    "ExperienceBatch.action_index: %u ints, expected count = %u", m->n_action_index,
                    m->count);
  uint64_t n_act = (uint64_t)m->count * m->act_dim;
  if (m->n_action && m->n_action != n_act)
    return frl_errf(FRL_EPROTO, err, errlen,
                    "ExperienceBatch.action: %u floats, expected count*act_dim = %llu", m->n_action,
                    (unsigned long long)n_act);
  if (m->n_priority && m->n_priority != m->count)
    return frl_errf(FRL_EPROTO, err, errlen,
                    "ExperienceBatch.priority: %u floats, expected 0 or count = %u", m->n_priority,
                    m->count);
  if (m->n_policy_version && m->n_policy_version != m->count)
    return frl_errf(FRL_EPROTO, err, errlen,
                    "ExperienceBatch.policy_version: %u ulongs, expected 0 or count = %u",
                    m->n_policy_version, m->count);
  return 0;
}

static int check_params(const frl_params_t *m, char *err, size_t errlen) {
  if (m->n_data > FRL_MSG_MAX_PARAMS)
    return frl_errf(FRL_EPROTO, err, errlen, "Params.data: %u floats, max %u", m->n_data,
                    FRL_MSG_MAX_PARAMS);
  if (m->n_obs_mean > FRL_MSG_MAX_DIM)
    return frl_errf(FRL_EPROTO, err, errlen, "Params.obs_mean: %u floats, max %u", m->n_obs_mean,
                    FRL_MSG_MAX_DIM);
  if (m->n_obs_std != m->n_obs_mean)
    return frl_errf(FRL_EPROTO, err, errlen,
                    "Params.obs_std: %u floats, expected as many as obs_mean = %u", m->n_obs_std,
                    m->n_obs_mean);
  return 0;
}

/* ---- encoding ------------------------------------------------------------------------------- */

static void begin(frl_fb_builder_t *b) {
  frl_fb_builder_reset(b);
  /* Never produce what the receiving verifier would refuse as oversize. */
  frl_fb_builder_set_max_size(b, FRL_MSG_MAX_BYTES);
}

/* Logs why an encoder refused its input: a caller bug, but one worth a readable line. */
static int encode_refused(int rc, const char *err) {
  frl_warn("encode: %s", err);
  return rc;
}

/* The builder's only failure is the size cap: the input was too large to send. */
static int builder_failed(frl_fb_builder_t *b, const char *what) {
  int rc = frl_fb_builder_error(b);
  if (rc == -EMSGSIZE) {
    frl_warn("encode: %s exceeds the %u-byte message limit", what, FRL_MSG_MAX_BYTES);
    return FRL_EPROTO;
  }
  return rc;
}

/* A string field: NULL omits it (ref 0), longer than the limit refuses the message. */
static int put_string(frl_fb_builder_t *b, const char *s, const char *name, frl_fb_ref_t *ref) {
  *ref = 0;
  if (!s) return 0;
  size_t n = strlen(s);
  if (n > FRL_MSG_MAX_STRING) {
    char err[160];
    return encode_refused(frl_errf(FRL_EPROTO, err, sizeof err, "%s: string of %zu bytes, max %u",
                                   name, n, FRL_MSG_MAX_STRING),
                          err);
  }
  return frl_fb_create_string(b, s, n, ref) ? builder_failed(b, name) : 0;
}

/* A scalar vector field: empty omits it; a NULL pointer with a non-zero count is a caller bug
 * reported as FRL_EPROTO. */
static int put_vector(frl_fb_builder_t *b, const void *elems, size_t count, size_t elem_size,
                      const char *name, frl_fb_ref_t *ref) {
  *ref = 0;
  if (count == 0) return 0;
  if (!elems) {
    char err[160];
    return encode_refused(
        frl_errf(FRL_EPROTO, err, sizeof err, "%s: NULL, expected %zu elements", name, count), err);
  }
  return frl_fb_create_vector(b, elems, count, elem_size, ref) ? builder_failed(b, name) : 0;
}

static int finish_message(frl_fb_builder_t *b, frl_msg_type_t type, frl_fb_ref_t body) {
  frl_fb_ref_t msg;
  frl_fb_table_start(b);
  frl_fb_add_ref(b, MESSAGE_BODY, body);
  frl_fb_add_u16(b, MESSAGE_SCHEMA_VERSION, FRL_SCHEMA_VERSION, 0);
  frl_fb_add_u8(b, MESSAGE_BODY_TYPE, (uint8_t)type, 0);
  int rc = frl_fb_table_end(b, &msg);
  if (!rc) rc = frl_fb_finish(b, msg, FRL_FILE_IDENTIFIER);
  return rc ? builder_failed(b, frl_msg_type_name(type)) : 0;
}

/* Each encoder adds 8-byte fields first, then 4-, 2- and 1-byte ones, so the table needs no
 * padding, as flatc's generated builders do. */

int frl_msg_encode_hello(frl_fb_builder_t *b, const frl_hello_t *m) {
  frl_fb_ref_t name, task, body;
  begin(b);
  TRY(put_string(b, m->name, "Hello.name", &name));
  TRY(put_string(b, m->task, "Hello.task", &task));
  frl_fb_table_start(b);
  frl_fb_add_u64(b, HELLO_SCHEMA_HASH, m->schema_hash, 0);
  frl_fb_add_ref(b, HELLO_NAME, name);
  frl_fb_add_i32(b, HELLO_ACTOR_INDEX, m->actor_index, HELLO_ACTOR_INDEX_DEFAULT);
  frl_fb_add_i32(b, HELLO_NUM_ACTORS, m->num_actors, 0);
  frl_fb_add_ref(b, HELLO_TASK, task);
  frl_fb_add_u32(b, HELLO_OBS_DIM, m->obs_dim, 0);
  frl_fb_add_u32(b, HELLO_ACT_DIM, m->act_dim, 0);
  frl_fb_add_u8(b, HELLO_ROLE, (uint8_t)m->role, 0);
  if (frl_fb_table_end(b, &body)) return builder_failed(b, "Hello");
  return finish_message(b, FRL_MSG_HELLO, body);
}

int frl_msg_encode_welcome(frl_fb_builder_t *b, const frl_welcome_t *m) {
  frl_fb_ref_t error, estop_reason, body;
  begin(b);
  TRY(put_string(b, m->error, "Welcome.error", &error));
  TRY(put_string(b, m->estop_reason, "Welcome.estop_reason", &estop_reason));
  frl_fb_table_start(b);
  frl_fb_add_u64(b, WELCOME_SCHEMA_HASH, m->schema_hash, 0);
  frl_fb_add_u64(b, WELCOME_PARAMS_VERSION, m->params_version, 0);
  frl_fb_add_ref(b, WELCOME_ERROR, error);
  frl_fb_add_u32(b, WELCOME_HEARTBEAT_MS, m->heartbeat_ms, 0);
  frl_fb_add_ref(b, WELCOME_ESTOP_REASON, estop_reason);
  frl_fb_add_bool(b, WELCOME_OK, m->ok, false);
  frl_fb_add_bool(b, WELCOME_ESTOP, m->estop, false);
  if (frl_fb_table_end(b, &body)) return builder_failed(b, "Welcome");
  return finish_message(b, FRL_MSG_WELCOME, body);
}

/* Builds the EpisodeStat tables of m and the vector referring to them into *ref. */
static int put_episodes(frl_fb_builder_t *b, const frl_experience_t *m, frl_fb_ref_t *ref) {
  /* The tables must all exist before the vector of their offsets is written (nothing can be
   * built inside an open vector). A stack array holds the offsets for the usual handful of
   * episodes per batch; only an unusually long list costs one allocation. */
  frl_fb_ref_t stack[64];
  frl_fb_ref_t *refs = stack;
  int rc = 0;
  *ref = 0;
  if (m->n_episodes == 0) return 0;
  if (!m->episodes_in) {
    char err[160];
    return encode_refused(frl_errf(FRL_EPROTO, err, sizeof err,
                                   "ExperienceBatch.episodes: NULL, expected %u", m->n_episodes),
                          err);
  }
  if (m->n_episodes > FRL_ARRAY_LEN(stack)) refs = frl_xmalloc(m->n_episodes * sizeof *refs);
  for (uint32_t i = 0; i < m->n_episodes; i++) {
    const frl_episode_stat_t *e = &m->episodes_in[i];
    frl_fb_ref_t physics = 0;
    if (e->physics) {
      size_t n = strlen(e->physics);
      if (n > FRL_MSG_MAX_PHYSICS) {
        char err[160];
        rc = encode_refused(
            frl_errf(FRL_EPROTO, err, sizeof err, "EpisodeStat.physics: %zu bytes, max %u", n,
                     FRL_MSG_MAX_PHYSICS),
            err);
        goto out;
      }
      rc = frl_fb_create_string(b, e->physics, n, &physics);
      if (rc) goto fail;
    }
    frl_fb_table_start(b);
    frl_fb_add_u64(b, EPISODE_POLICY_VERSION, e->policy_version, 0);
    frl_fb_add_f32(b, EPISODE_RETURN, e->episode_return, 0.0f);
    frl_fb_add_u32(b, EPISODE_LENGTH, e->length, 0);
    frl_fb_add_u32(b, EPISODE_VIOLATIONS, e->violations, 0);
    frl_fb_add_bool(b, EPISODE_SUCCESS, e->success, false);
    frl_fb_add_bool(b, EPISODE_TRUNCATED, e->truncated, false);
    frl_fb_add_ref(b, EPISODE_PHYSICS, physics);
    rc = frl_fb_table_end(b, &refs[i]);
    if (rc) goto fail;
  }
  rc = frl_fb_create_ref_vector(b, refs, m->n_episodes, ref);
fail:
  if (rc) rc = builder_failed(b, "ExperienceBatch");
out:
  if (refs != stack) free(refs);
  return rc;
}

/* Builds the SafetyEvent tables of m and the vector referring to them into *ref. */
static int put_safety(frl_fb_builder_t *b, const frl_experience_t *m, frl_fb_ref_t *ref) {
  frl_fb_ref_t stack[32];
  frl_fb_ref_t *refs = stack;
  int rc = 0;
  *ref = 0;
  if (m->n_safety == 0) return 0;
  if (!m->safety_in) {
    char err[160];
    return encode_refused(frl_errf(FRL_EPROTO, err, sizeof err,
                                   "ExperienceBatch.safety: NULL, expected %u", m->n_safety),
                          err);
  }
  if (m->n_safety > FRL_ARRAY_LEN(stack)) refs = frl_xmalloc(m->n_safety * sizeof *refs);
  for (uint32_t i = 0; i < m->n_safety; i++) {
    const frl_safety_event_t *e = &m->safety_in[i];
    frl_fb_ref_t detail;
    if ((unsigned)e->kind > FRL_SAFETY_KIND_MAX) {
      char err[160];
      rc = encode_refused(
          frl_errf(FRL_EPROTO, err, sizeof err, "SafetyEvent.kind: %u, expected 0..%u",
                   (unsigned)e->kind, FRL_SAFETY_KIND_MAX),
          err);
      goto out;
    }
    rc = put_string(b, e->detail, "SafetyEvent.detail", &detail);
    if (rc) goto out;
    frl_fb_table_start(b);
    frl_fb_add_u64(b, SAFETY_TIME_NS, e->time_ns, 0);
    frl_fb_add_u32(b, SAFETY_COUNT, e->count, SAFETY_COUNT_DEFAULT);
    frl_fb_add_ref(b, SAFETY_DETAIL, detail);
    frl_fb_add_u8(b, SAFETY_KIND, (uint8_t)e->kind, 0);
    rc = frl_fb_table_end(b, &refs[i]);
    if (rc) goto fail;
  }
  rc = frl_fb_create_ref_vector(b, refs, m->n_safety, ref);
fail:
  if (rc) rc = builder_failed(b, "ExperienceBatch");
out:
  if (refs != stack) free(refs);
  return rc;
}

int frl_msg_encode_experience(frl_fb_builder_t *b, const frl_experience_t *m) {
  char err[160];
  int rc = check_experience(m, err, sizeof err);
  if (rc) return encode_refused(rc, err);
  size_t rows = (size_t)m->count * m->obs_dim;
  frl_fb_ref_t actor, obs, action_index, action, reward, discount, next_obs, priority, pv, eps,
      safety, body;
  begin(b);
  /* The episodes first: put_episodes needs no open vector (see there). */
  TRY(put_episodes(b, m, &eps));
  TRY(put_safety(b, m, &safety));
  TRY(put_string(b, m->actor, "ExperienceBatch.actor", &actor));
  TRY(put_vector(b, m->obs, rows, 4, "ExperienceBatch.obs", &obs));
  TRY(put_vector(b, m->action_index, m->n_action_index, 4, "ExperienceBatch.action_index",
                 &action_index));
  TRY(put_vector(b, m->action, m->n_action, 4, "ExperienceBatch.action", &action));
  TRY(put_vector(b, m->reward, m->count, 4, "ExperienceBatch.reward", &reward));
  TRY(put_vector(b, m->discount, m->count, 4, "ExperienceBatch.discount", &discount));
  TRY(put_vector(b, m->next_obs, rows, 4, "ExperienceBatch.next_obs", &next_obs));
  TRY(put_vector(b, m->priority, m->n_priority, 4, "ExperienceBatch.priority", &priority));
  TRY(put_vector(b, m->policy_version, m->n_policy_version, 8, "ExperienceBatch.policy_version",
                 &pv));
  frl_fb_table_start(b);
  frl_fb_add_u64(b, EXP_SEQ, m->seq, 0);
  frl_fb_add_ref(b, EXP_ACTOR, actor);
  frl_fb_add_u32(b, EXP_COUNT, m->count, 0);
  frl_fb_add_u32(b, EXP_OBS_DIM, m->obs_dim, 0);
  frl_fb_add_u32(b, EXP_ACT_DIM, m->act_dim, 0);
  frl_fb_add_ref(b, EXP_OBS, obs);
  frl_fb_add_ref(b, EXP_ACTION_INDEX, action_index);
  frl_fb_add_ref(b, EXP_ACTION, action);
  frl_fb_add_ref(b, EXP_REWARD, reward);
  frl_fb_add_ref(b, EXP_DISCOUNT, discount);
  frl_fb_add_ref(b, EXP_NEXT_OBS, next_obs);
  frl_fb_add_ref(b, EXP_PRIORITY, priority);
  frl_fb_add_ref(b, EXP_POLICY_VERSION, pv);
  frl_fb_add_ref(b, EXP_EPISODES, eps);
  frl_fb_add_u32(b, EXP_ENV_STEPS, m->env_steps, 0);
  frl_fb_add_ref(b, EXP_SAFETY, safety);
  frl_fb_add_bool(b, EXP_DEMONSTRATION, m->demonstration, false);
  if (frl_fb_table_end(b, &body)) return builder_failed(b, "ExperienceBatch");
  return finish_message(b, FRL_MSG_EXPERIENCE, body);
}

int frl_msg_encode_ack(frl_fb_builder_t *b, const frl_ack_t *m) {
  frl_fb_ref_t actor, reason, body;
  begin(b);
  TRY(put_string(b, m->actor, "Ack.actor", &actor));
  TRY(put_string(b, m->reason, "Ack.reason", &reason));
  frl_fb_table_start(b);
  frl_fb_add_u64(b, ACK_SEQ, m->seq, 0);
  frl_fb_add_ref(b, ACK_ACTOR, actor);
  frl_fb_add_ref(b, ACK_REASON, reason);
  frl_fb_add_u8(b, ACK_STATUS, (uint8_t)m->status, 0);
  if (frl_fb_table_end(b, &body)) return builder_failed(b, "Ack");
  return finish_message(b, FRL_MSG_ACK, body);
}

int frl_msg_encode_params(frl_fb_builder_t *b, const frl_params_t *m) {
  char err[160];
  int rc = check_params(m, err, sizeof err);
  if (rc) return encode_refused(rc, err);
  frl_fb_ref_t task, data, mean, std, body;
  begin(b);
  TRY(put_string(b, m->task, "Params.task", &task));
  TRY(put_vector(b, m->data, m->n_data, 4, "Params.data", &data));
  TRY(put_vector(b, m->obs_mean, m->n_obs_mean, 4, "Params.obs_mean", &mean));
  TRY(put_vector(b, m->obs_std, m->n_obs_std, 4, "Params.obs_std", &std));
  frl_fb_table_start(b);
  frl_fb_add_u64(b, PARAMS_VERSION, m->version, 0);
  frl_fb_add_u64(b, PARAMS_CHECKSUM, m->checksum, 0);
  frl_fb_add_ref(b, PARAMS_TASK, task);
  frl_fb_add_ref(b, PARAMS_DATA, data);
  frl_fb_add_ref(b, PARAMS_OBS_MEAN, mean);
  frl_fb_add_ref(b, PARAMS_OBS_STD, std);
  if (frl_fb_table_end(b, &body)) return builder_failed(b, "Params");
  return finish_message(b, FRL_MSG_PARAMS, body);
}

int frl_msg_encode_heartbeat(frl_fb_builder_t *b, const frl_heartbeat_t *m) {
  frl_fb_ref_t name, body;
  begin(b);
  TRY(put_string(b, m->name, "Heartbeat.name", &name));
  frl_fb_table_start(b);
  frl_fb_add_u64(b, HEARTBEAT_PARAMS_VERSION, m->params_version, 0);
  frl_fb_add_u64(b, HEARTBEAT_SHED, m->shed, 0);
  frl_fb_add_u64(b, HEARTBEAT_ENV_STEPS, m->env_steps, 0);
  frl_fb_add_u64(b, HEARTBEAT_TIME_NS, m->time_ns, 0);
  frl_fb_add_ref(b, HEARTBEAT_NAME, name);
  frl_fb_add_u32(b, HEARTBEAT_OUTBOX, m->outbox, 0);
  frl_fb_add_u8(b, HEARTBEAT_ROLE, (uint8_t)m->role, 0);
  frl_fb_add_bool(b, HEARTBEAT_SAFE_MODE, m->safe_mode, false);
  frl_fb_add_bool(b, HEARTBEAT_ESTOP, m->estop, false);
  if (frl_fb_table_end(b, &body)) return builder_failed(b, "Heartbeat");
  return finish_message(b, FRL_MSG_HEARTBEAT, body);
}

int frl_msg_encode_control(frl_fb_builder_t *b, const frl_control_t *m) {
  frl_fb_ref_t reason, body;
  begin(b);
  TRY(put_string(b, m->reason, "Control.reason", &reason));
  frl_fb_table_start(b);
  frl_fb_add_f64(b, CONTROL_VALUE, m->value, 0.0);
  frl_fb_add_ref(b, CONTROL_REASON, reason);
  frl_fb_add_u8(b, CONTROL_COMMAND, (uint8_t)m->command, 0);
  if (frl_fb_table_end(b, &body)) return builder_failed(b, "Control");
  return finish_message(b, FRL_MSG_CONTROL, body);
}

int frl_msg_encode_credit(frl_fb_builder_t *b, const frl_credit_t *m) {
  frl_fb_ref_t body;
  begin(b);
  frl_fb_table_start(b);
  frl_fb_add_u32(b, CREDIT_BATCHES, m->batches, 0);
  if (frl_fb_table_end(b, &body)) return builder_failed(b, "Credit");
  return finish_message(b, FRL_MSG_CREDIT, body);
}

/* ---- decoding ------------------------------------------------------------------------------- */

/* Typed scalar getters: out gets the schema default, then the field's value when present. */
static int get_u8(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned f, const char *name,
                  uint8_t *out) {
  *out = 0;
  return frl_fb_get_scalar(v, t, f, 1, name, out);
}

static int get_bool(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned f, const char *name,
                    bool *out) {
  uint8_t x;
  TRY(get_u8(v, t, f, name, &x));
  *out = x != 0; /* any non-zero byte is true, as in the reference readers */
  return 0;
}

static int get_u16(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned f, const char *name,
                   uint16_t *out) {
  *out = 0;
  return frl_fb_get_scalar(v, t, f, 2, name, out);
}

static int get_i32(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned f, int32_t def,
                   const char *name, int32_t *out) {
  *out = def;
  return frl_fb_get_scalar(v, t, f, 4, name, out);
}

static int get_u32(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned f, const char *name,
                   uint32_t *out) {
  *out = 0;
  return frl_fb_get_scalar(v, t, f, 4, name, out);
}

static int get_u64(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned f, const char *name,
                   uint64_t *out) {
  *out = 0;
  return frl_fb_get_scalar(v, t, f, 8, name, out);
}

static int get_f32(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned f, const char *name,
                   float *out) {
  *out = 0.0f;
  return frl_fb_get_scalar(v, t, f, 4, name, out);
}

static int get_f64(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned f, const char *name,
                   double *out) {
  *out = 0.0;
  return frl_fb_get_scalar(v, t, f, 8, name, out);
}

/* String fields are C strings in views: the terminator is verified and inner NULs refused. */
static int get_string(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned f,
                      const char *name, const char **out) {
  uint32_t len;
  return frl_fb_get_string(v, t, f, FRL_MSG_MAX_STRING, true, name, out, &len);
}

/* An enum byte, refused unless it names a value of the schema's enum (0..max). */
static int get_enum(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned f, unsigned max,
                    const char *name, unsigned *out) {
  uint8_t x;
  TRY(get_u8(v, t, f, name, &x));
  if (x > max) return frl_fb_fail(v, "%s: %u, expected 0..%u", name, x, max);
  *out = x;
  return 0;
}

static int get_floats(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned f,
                      const char *name, const float **out, uint32_t *n) {
  const void *p;
  TRY(frl_fb_get_vector(v, t, f, 4, UINT32_MAX, name, &p, n));
  *out = p;
  return 0;
}

static int decode_hello(frl_fb_verifier_t *v, const frl_fb_table_t *t, frl_hello_t *m) {
  unsigned role = 0;
  TRY(get_u64(v, t, HELLO_SCHEMA_HASH, "Hello.schema_hash", &m->schema_hash));
  TRY(get_enum(v, t, HELLO_ROLE, FRL_ROLE_OPERATOR, "Hello.role", &role));
  m->role = (frl_role_t)role;
  TRY(get_string(v, t, HELLO_NAME, "Hello.name", &m->name));
  TRY(get_i32(v, t, HELLO_ACTOR_INDEX, HELLO_ACTOR_INDEX_DEFAULT, "Hello.actor_index",
              &m->actor_index));
  TRY(get_i32(v, t, HELLO_NUM_ACTORS, 0, "Hello.num_actors", &m->num_actors));
  TRY(get_string(v, t, HELLO_TASK, "Hello.task", &m->task));
  TRY(get_u32(v, t, HELLO_OBS_DIM, "Hello.obs_dim", &m->obs_dim));
  TRY(get_u32(v, t, HELLO_ACT_DIM, "Hello.act_dim", &m->act_dim));
  if (m->obs_dim > FRL_MSG_MAX_DIM)
    return frl_fb_fail(v, "Hello.obs_dim: %u, max %u", m->obs_dim, FRL_MSG_MAX_DIM);
  if (m->act_dim > FRL_MSG_MAX_DIM)
    return frl_fb_fail(v, "Hello.act_dim: %u, max %u", m->act_dim, FRL_MSG_MAX_DIM);
  return 0;
}

static int decode_welcome(frl_fb_verifier_t *v, const frl_fb_table_t *t, frl_welcome_t *m) {
  TRY(get_bool(v, t, WELCOME_OK, "Welcome.ok", &m->ok));
  TRY(get_string(v, t, WELCOME_ERROR, "Welcome.error", &m->error));
  TRY(get_u64(v, t, WELCOME_SCHEMA_HASH, "Welcome.schema_hash", &m->schema_hash));
  TRY(get_u64(v, t, WELCOME_PARAMS_VERSION, "Welcome.params_version", &m->params_version));
  TRY(get_u32(v, t, WELCOME_HEARTBEAT_MS, "Welcome.heartbeat_ms", &m->heartbeat_ms));
  TRY(get_bool(v, t, WELCOME_ESTOP, "Welcome.estop", &m->estop));
  TRY(get_string(v, t, WELCOME_ESTOP_REASON, "Welcome.estop_reason", &m->estop_reason));
  return 0;
}

/* Verifies every field of one EpisodeStat so frl_msg_episode() may read them unchecked. */
static int verify_episode(frl_fb_verifier_t *v, const frl_fb_table_t *t, void *arg) {
  frl_episode_stat_t e;
  (void)arg;
  TRY(get_f32(v, t, EPISODE_RETURN, "EpisodeStat.episode_return", &e.episode_return));
  TRY(get_u32(v, t, EPISODE_LENGTH, "EpisodeStat.length", &e.length));
  TRY(get_bool(v, t, EPISODE_SUCCESS, "EpisodeStat.success", &e.success));
  TRY(get_bool(v, t, EPISODE_TRUNCATED, "EpisodeStat.truncated", &e.truncated));
  TRY(get_u32(v, t, EPISODE_VIOLATIONS, "EpisodeStat.violations", &e.violations));
  TRY(get_u64(v, t, EPISODE_POLICY_VERSION, "EpisodeStat.policy_version", &e.policy_version));
  uint32_t len;
  TRY(frl_fb_get_string(v, t, EPISODE_PHYSICS, FRL_MSG_MAX_PHYSICS, true, "EpisodeStat.physics",
                        &e.physics, &len));
  return 0;
}

/* Verifies every field of one SafetyEvent so frl_msg_safety() may read them unchecked. */
static int verify_safety(frl_fb_verifier_t *v, const frl_fb_table_t *t, void *arg) {
  unsigned kind;
  uint32_t count;
  uint64_t time_ns;
  const char *detail;
  (void)arg;
  TRY(get_enum(v, t, SAFETY_KIND, FRL_SAFETY_KIND_MAX, "SafetyEvent.kind", &kind));
  TRY(frl_fb_get_scalar(v, t, SAFETY_COUNT, 4, "SafetyEvent.count", &count));
  TRY(get_u64(v, t, SAFETY_TIME_NS, "SafetyEvent.time_ns", &time_ns));
  TRY(get_string(v, t, SAFETY_DETAIL, "SafetyEvent.detail", &detail));
  return 0;
}

static int decode_experience(frl_fb_verifier_t *v, const frl_fb_table_t *t,
                             frl_experience_t *m) {
  const void *p;
  uint32_t n_obs, n_next_obs, n_reward, n_discount;
  TRY(get_string(v, t, EXP_ACTOR, "ExperienceBatch.actor", &m->actor));
  TRY(get_u64(v, t, EXP_SEQ, "ExperienceBatch.seq", &m->seq));
  TRY(get_u32(v, t, EXP_COUNT, "ExperienceBatch.count", &m->count));
  TRY(get_u32(v, t, EXP_OBS_DIM, "ExperienceBatch.obs_dim", &m->obs_dim));
  TRY(get_u32(v, t, EXP_ACT_DIM, "ExperienceBatch.act_dim", &m->act_dim));
  TRY(get_floats(v, t, EXP_OBS, "ExperienceBatch.obs", &m->obs, &n_obs));
  TRY(frl_fb_get_vector(v, t, EXP_ACTION_INDEX, 4, UINT32_MAX, "ExperienceBatch.action_index",
                        &p, &m->n_action_index));
  m->action_index = p;
  TRY(get_floats(v, t, EXP_ACTION, "ExperienceBatch.action", &m->action, &m->n_action));
  TRY(get_floats(v, t, EXP_REWARD, "ExperienceBatch.reward", &m->reward, &n_reward));
  TRY(get_floats(v, t, EXP_DISCOUNT, "ExperienceBatch.discount", &m->discount, &n_discount));
  TRY(get_floats(v, t, EXP_NEXT_OBS, "ExperienceBatch.next_obs", &m->next_obs, &n_next_obs));
  TRY(get_floats(v, t, EXP_PRIORITY, "ExperienceBatch.priority", &m->priority, &m->n_priority));
  TRY(frl_fb_get_vector(v, t, EXP_POLICY_VERSION, 8, UINT32_MAX,
                        "ExperienceBatch.policy_version", &p, &m->n_policy_version));
  m->policy_version = p;
  TRY(frl_fb_get_table_vector(v, t, EXP_EPISODES, FRL_MSG_MAX_EPISODES,
                              "ExperienceBatch.episodes", verify_episode, NULL, &m->episodes_vec,
                              &m->n_episodes));
  m->episodes_in = NULL;
  TRY(get_u32(v, t, EXP_ENV_STEPS, "ExperienceBatch.env_steps", &m->env_steps));
  TRY(get_bool(v, t, EXP_DEMONSTRATION, "ExperienceBatch.demonstration", &m->demonstration));
  TRY(frl_fb_get_table_vector(v, t, EXP_SAFETY, FRL_MSG_MAX_SAFETY, "ExperienceBatch.safety",
                              verify_safety, NULL, &m->safety_vec, &m->n_safety));
  m->safety_in = NULL;

  TRY(check_experience(m, v->err, v->errlen));
  /* count and obs_dim are now bounded, so the product fits 32 bits (2^16 * 2^12). */
  uint32_t rows = m->count * m->obs_dim;
  if (n_obs != rows)
    return frl_fb_fail(v, "ExperienceBatch.obs: %u floats, expected count*obs_dim = %u", n_obs,
                       rows);
  if (n_next_obs != rows)
    return frl_fb_fail(v, "ExperienceBatch.next_obs: %u floats, expected count*obs_dim = %u",
                       n_next_obs, rows);
  if (n_reward != m->count)
    return frl_fb_fail(v, "ExperienceBatch.reward: %u floats, expected count = %u", n_reward,
                       m->count);
  if (n_discount != m->count)
    return frl_fb_fail(v, "ExperienceBatch.discount: %u floats, expected count = %u",
                       n_discount, m->count);
  return 0;
}

static int decode_ack(frl_fb_verifier_t *v, const frl_fb_table_t *t, frl_ack_t *m) {
  unsigned status = 0;
  TRY(get_string(v, t, ACK_ACTOR, "Ack.actor", &m->actor));
  TRY(get_u64(v, t, ACK_SEQ, "Ack.seq", &m->seq));
  TRY(get_enum(v, t, ACK_STATUS, FRL_ACK_REJECTED, "Ack.status", &status));
  m->status = (frl_ack_status_t)status;
  TRY(get_string(v, t, ACK_REASON, "Ack.reason", &m->reason));
  return 0;
}

static int decode_params(frl_fb_verifier_t *v, const frl_fb_table_t *t, frl_params_t *m) {
  TRY(get_u64(v, t, PARAMS_VERSION, "Params.version", &m->version));
  TRY(get_u64(v, t, PARAMS_CHECKSUM, "Params.checksum", &m->checksum));
  TRY(get_string(v, t, PARAMS_TASK, "Params.task", &m->task));
  TRY(get_floats(v, t, PARAMS_DATA, "Params.data", &m->data, &m->n_data));
  TRY(get_floats(v, t, PARAMS_OBS_MEAN, "Params.obs_mean", &m->obs_mean, &m->n_obs_mean));
  TRY(get_floats(v, t, PARAMS_OBS_STD, "Params.obs_std", &m->obs_std, &m->n_obs_std));
  return check_params(m, v->err, v->errlen);
}

static int decode_heartbeat(frl_fb_verifier_t *v, const frl_fb_table_t *t, frl_heartbeat_t *m) {
  unsigned role = 0;
  TRY(get_string(v, t, HEARTBEAT_NAME, "Heartbeat.name", &m->name));
  TRY(get_enum(v, t, HEARTBEAT_ROLE, FRL_ROLE_OPERATOR, "Heartbeat.role", &role));
  m->role = (frl_role_t)role;
  TRY(get_u64(v, t, HEARTBEAT_PARAMS_VERSION, "Heartbeat.params_version", &m->params_version));
  TRY(get_u32(v, t, HEARTBEAT_OUTBOX, "Heartbeat.outbox", &m->outbox));
  TRY(get_u64(v, t, HEARTBEAT_SHED, "Heartbeat.shed", &m->shed));
  TRY(get_u64(v, t, HEARTBEAT_ENV_STEPS, "Heartbeat.env_steps", &m->env_steps));
  TRY(get_u64(v, t, HEARTBEAT_TIME_NS, "Heartbeat.time_ns", &m->time_ns));
  TRY(get_bool(v, t, HEARTBEAT_SAFE_MODE, "Heartbeat.safe_mode", &m->safe_mode));
  TRY(get_bool(v, t, HEARTBEAT_ESTOP, "Heartbeat.estop", &m->estop));
  return 0;
}

static int decode_control(frl_fb_verifier_t *v, const frl_fb_table_t *t, frl_control_t *m) {
  unsigned command = 0;
  TRY(get_enum(v, t, CONTROL_COMMAND, FRL_CONTROL_SHUTDOWN, "Control.command", &command));
  m->command = (frl_control_cmd_t)command;
  TRY(get_string(v, t, CONTROL_REASON, "Control.reason", &m->reason));
  TRY(get_f64(v, t, CONTROL_VALUE, "Control.value", &m->value));
  return 0;
}

static int decode_credit(frl_fb_verifier_t *v, const frl_fb_table_t *t, frl_credit_t *m) {
  return get_u32(v, t, CREDIT_BATCHES, "Credit.batches", &m->batches);
}

int frl_msg_decode(const void *buf, size_t len, frl_msg_t *out, char *err, size_t errlen) {
  frl_fb_verifier_t v;
  frl_fb_table_t root, body;
  frl_msg_t m;
  uint8_t type;
  bool present;
  frl_fb_verifier_init(&v, buf, len, MAX_DEPTH, MAX_TABLES, err, errlen);
  if (len > FRL_MSG_MAX_BYTES)
    return frl_fb_fail(&v, "Message: %zu bytes, max %u", len, FRL_MSG_MAX_BYTES);
  TRY(frl_fb_verify_root(&v, FRL_FILE_IDENTIFIER, "Message", &root));
  memset(&m, 0, sizeof m);
  TRY(get_u16(&v, &root, MESSAGE_SCHEMA_VERSION, "Message.schema_version", &m.schema_version));
  /* Checked before the body: a peer on another schema may send bodies we cannot parse, and
   * the caller should learn the version mismatch rather than a parse error. */
  if (m.schema_version != FRL_SCHEMA_VERSION) {
    frl_fb_fail(&v, "Message.schema_version: %u, expected %u", m.schema_version,
                FRL_SCHEMA_VERSION);
    return FRL_ESCHEMA;
  }
  TRY(get_u8(&v, &root, MESSAGE_BODY_TYPE, "Message.body_type", &type));
  if (type > FRL_MSG_CREDIT)
    return frl_fb_fail(&v, "Message.body_type: %u, expected 1..%u", type, FRL_MSG_CREDIT);
  TRY(frl_fb_get_table(&v, &root, MESSAGE_BODY, "Message.body", &body, &present));
  if (type == FRL_MSG_NONE || !present)
    return frl_fb_fail(&v, "Message.body: missing (body_type %u, body %s)", type,
                       present ? "present" : "absent");
  m.type = (frl_msg_type_t)type;
  switch (m.type) {
  case FRL_MSG_HELLO: TRY(decode_hello(&v, &body, &m.u.hello)); break;
  case FRL_MSG_WELCOME: TRY(decode_welcome(&v, &body, &m.u.welcome)); break;
  case FRL_MSG_EXPERIENCE: TRY(decode_experience(&v, &body, &m.u.experience)); break;
  case FRL_MSG_ACK: TRY(decode_ack(&v, &body, &m.u.ack)); break;
  case FRL_MSG_PARAMS: TRY(decode_params(&v, &body, &m.u.params)); break;
  case FRL_MSG_HEARTBEAT: TRY(decode_heartbeat(&v, &body, &m.u.heartbeat)); break;
  case FRL_MSG_CONTROL: TRY(decode_control(&v, &body, &m.u.control)); break;
  case FRL_MSG_CREDIT: TRY(decode_credit(&v, &body, &m.u.credit)); break;
  case FRL_MSG_NONE: break; /* refused above */
  }
  *out = m;
  return 0;
}

void frl_msg_episode(const frl_experience_t *view, uint32_t i, frl_episode_stat_t *out) {
  /* Every field was bounds-checked by verify_episode() during frl_msg_decode(). */
  assert(i < view->n_episodes && view->episodes_vec);
  frl_fb_table_t t = frl_fb_vector_table(view->episodes_vec, i);
  uint8_t flag;
  memset(out, 0, sizeof *out);
  frl_fb_read_scalar(&t, EPISODE_RETURN, 4, &out->episode_return);
  frl_fb_read_scalar(&t, EPISODE_LENGTH, 4, &out->length);
  if (frl_fb_read_scalar(&t, EPISODE_SUCCESS, 1, &flag)) out->success = flag != 0;
  if (frl_fb_read_scalar(&t, EPISODE_TRUNCATED, 1, &flag)) out->truncated = flag != 0;
  frl_fb_read_scalar(&t, EPISODE_VIOLATIONS, 4, &out->violations);
  frl_fb_read_scalar(&t, EPISODE_POLICY_VERSION, 8, &out->policy_version);
  out->physics = frl_fb_read_string(&t, EPISODE_PHYSICS);
}

void frl_msg_safety(const frl_experience_t *view, uint32_t i, frl_safety_event_t *out) {
  /* Every field was bounds-checked by verify_safety() during frl_msg_decode(). */
  assert(i < view->n_safety && view->safety_vec);
  frl_fb_table_t t = frl_fb_vector_table(view->safety_vec, i);
  uint8_t kind = 0;
  memset(out, 0, sizeof *out);
  frl_fb_read_scalar(&t, SAFETY_KIND, 1, &kind);
  out->kind = (frl_safety_kind_t)kind;
  out->count = SAFETY_COUNT_DEFAULT;
  frl_fb_read_scalar(&t, SAFETY_COUNT, 4, &out->count);
  frl_fb_read_scalar(&t, SAFETY_TIME_NS, 8, &out->time_ns);
  out->detail = frl_fb_read_string(&t, SAFETY_DETAIL);
}
