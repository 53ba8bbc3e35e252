/* msg.h: encode, verify and decode every fleetrl wire message (schema/fleetrl.fbs).
 *
 * Decoding is zero-copy: string and vector fields of a decoded message point into the buffer,
 * which must outlive the view and must be 8-byte aligned (frl_msg_decode refuses otherwise).
 * Every buffer is verified completely before any field is read: offsets, bounds, alignment,
 * union types, string termination, vector lengths against declared counts and the limits
 * below. A failure names the field and the bound in err. */
#ifndef FRL_MSG_H
#define FRL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fb.h"

#define FRL_SCHEMA_VERSION 1
#define FRL_FILE_IDENTIFIER "FRL1"

/* Limits applied by the verifier to untrusted input. */
#define FRL_MSG_MAX_BYTES (64u << 20) /* whole message */
#define FRL_MSG_MAX_STRING 256u       /* bytes in any string field */
#define FRL_MSG_MAX_COUNT 65536u      /* transitions in one batch */
#define FRL_MSG_MAX_DIM 4096u         /* obs_dim, act_dim */
#define FRL_MSG_MAX_EPISODES 4096u    /* episodes in one batch */
#define FRL_MSG_MAX_PARAMS (16u << 20) /* floats in Params.data */
#define FRL_MSG_MAX_SAFETY 1024u      /* safety events in one batch */
#define FRL_MSG_MAX_PHYSICS 2048u     /* bytes of EpisodeStat.physics (a JSON object) */

/* Union tags; the numbers are the FlatBuffers union type values of Body. */
typedef enum {
  FRL_MSG_NONE = 0,
  FRL_MSG_HELLO = 1,
  FRL_MSG_WELCOME = 2,
  FRL_MSG_EXPERIENCE = 3,
  FRL_MSG_ACK = 4,
  FRL_MSG_PARAMS = 5,
  FRL_MSG_HEARTBEAT = 6,
  FRL_MSG_CONTROL = 7,
  FRL_MSG_CREDIT = 8,
} frl_msg_type_t;

typedef enum { FRL_ROLE_ACTOR = 0, FRL_ROLE_LEARNER = 1, FRL_ROLE_OPERATOR = 2 } frl_role_t;
typedef enum {
  FRL_ACK_OK = 0,
  FRL_ACK_DUPLICATE = 1,
  FRL_ACK_BUSY = 2,
  FRL_ACK_REJECTED = 3
} frl_ack_status_t;
typedef enum {
  FRL_CONTROL_ESTOP = 0,
  FRL_CONTROL_RESUME = 1,
  FRL_CONTROL_SET_SPI = 2,
  FRL_CONTROL_SHUTDOWN = 3
} frl_control_cmd_t;

/* Strings: ptr/len pairs, NOT NUL-terminated in views (the buffer's terminator is verified, so
 * ptr[len] == '\0' does hold for decoded views). NULL/0 when absent. On encode a NULL char*
 * omits the field. */
typedef struct {
  uint64_t schema_hash;
  frl_role_t role;
  const char *name;
  int32_t actor_index;
  int32_t num_actors;
  const char *task;
  uint32_t obs_dim, act_dim;
} frl_hello_t;

typedef struct {
  bool ok;
  const char *error;
  uint64_t schema_hash;
  uint64_t params_version;
  uint32_t heartbeat_ms;
  bool estop;               /* an e-stop is in force: do not act until a Resume */
  const char *estop_reason;
} frl_welcome_t;

typedef struct {
  float episode_return;
  uint32_t length;
  bool success, truncated;
  uint32_t violations;
  uint64_t policy_version;
  const char *physics; /* JSON object of sampled physics parameters; NULL when absent */
} frl_episode_stat_t;

typedef enum {
  FRL_SAFETY_CLIP = 0,
  FRL_SAFETY_BARRIER = 1,
  FRL_SAFETY_SAFE_MODE_ENTER = 2,
  FRL_SAFETY_SAFE_MODE_EXIT = 3,
  FRL_SAFETY_ESTOP = 4,
  FRL_SAFETY_RESUME = 5,
} frl_safety_kind_t;
#define FRL_SAFETY_KIND_MAX FRL_SAFETY_RESUME

/* One kind of safety event, aggregated over `count` occurrences since the previous batch. */
typedef struct {
  frl_safety_kind_t kind;
  uint32_t count;
  uint64_t time_ns; /* sender's wall clock at the first occurrence */
  const char *detail;
} frl_safety_event_t;

/* For decode, n_* are the vector lengths found; for encode they are the lengths to write.
 * Verified invariants on decode: obs and next_obs have count*obs_dim floats; exactly one of
 * action_index (count ints) and action (count*act_dim floats) is non-empty; reward, discount
 * have count; priority has count or 0; policy_version has count or 0; count <= MAX_COUNT;
 * count 0 only in a batch that carries episodes or safety events and no transition vectors;
 * obs_dim, act_dim in 1..MAX_DIM. Values (NaN, ranges) are NOT checked here: that is task
 * knowledge and belongs to the receiver. */
typedef struct {
  const char *actor;
  uint64_t seq;
  uint32_t count, obs_dim, act_dim;
  const float *obs;
  const int32_t *action_index;
  uint32_t n_action_index;
  const float *action;
  uint32_t n_action;
  const float *reward;
  const float *discount;
  const float *next_obs;
  const float *priority;
  uint32_t n_priority;
  const uint64_t *policy_version;
  uint32_t n_policy_version;
  /* Episodes: on decode, use frl_msg_episode(&view, i, &out); on encode, set episodes_in. */
  uint32_t n_episodes;
  const frl_episode_stat_t *episodes_in; /* encode only */
  const void *episodes_vec;              /* decode only: internal */
  uint32_t env_steps;
  bool demonstration;
  /* Safety events: on decode, use frl_msg_safety(&view, i, &out); on encode, set safety_in. */
  uint32_t n_safety;
  const frl_safety_event_t *safety_in; /* encode only */
  const void *safety_vec;              /* decode only: internal */
} frl_experience_t;

typedef struct {
  const char *actor;
  uint64_t seq;
  frl_ack_status_t status;
  const char *reason;
} frl_ack_t;

typedef struct {
  uint64_t version;
  uint64_t checksum;
  const char *task;
  const float *data;
  uint32_t n_data;
  const float *obs_mean;
  uint32_t n_obs_mean;
  const float *obs_std;
  uint32_t n_obs_std;
} frl_params_t;

typedef struct {
  const char *name;
  frl_role_t role;
  uint64_t params_version;
  uint32_t outbox;
  uint64_t shed;
  uint64_t env_steps;
  uint64_t time_ns;
  bool safe_mode;
  bool estop; /* an e-stop is latched at the sender */
} frl_heartbeat_t;

typedef struct {
  frl_control_cmd_t command;
  const char *reason;
  double value;
} frl_control_t;

typedef struct {
  uint32_t batches;
} frl_credit_t;

typedef struct {
  frl_msg_type_t type;
  uint16_t schema_version;
  union {
    frl_hello_t hello;
    frl_welcome_t welcome;
    frl_experience_t experience;
    frl_ack_t ack;
    frl_params_t params;
    frl_heartbeat_t heartbeat;
    frl_control_t control;
    frl_credit_t credit;
  } u;
} frl_msg_t;

/* The schema hash of schema/fleetrl.fbs as compiled in (see frl_schema_hash_text). */
uint64_t frl_schema_hash(void);
/* Hash of a schema text: FNV-1a 64 over the text with // comments and all whitespace removed. */
uint64_t frl_schema_hash_text(const char *text, size_t len);

/* Verifies buf (len bytes, 8-byte aligned) completely, then fills *out with a view into it.
 * Returns 0, or FRL_EPROTO with a one-line reason in err (naming field and bound), e.g.
 * "ExperienceBatch.obs: 12 floats, expected count*obs_dim = 16". *out is untouched on error.
 * A schema_version other than FRL_SCHEMA_VERSION gives FRL_ESCHEMA. */
int frl_msg_decode(const void *buf, size_t len, frl_msg_t *out, char *err, size_t errlen);

/* Reads episode i (< n_episodes) of a decoded ExperienceBatch view. */
void frl_msg_episode(const frl_experience_t *view, uint32_t i, frl_episode_stat_t *out);
/* Reads safety event i (< n_safety) of a decoded ExperienceBatch view. */
void frl_msg_safety(const frl_experience_t *view, uint32_t i, frl_safety_event_t *out);

/* Encoders: each resets builder b, builds one complete Message (with file identifier and
 * schema version) and leaves it in b; read it with frl_fb_builder_data(). Return 0 or
 * -ENOMEM / FRL_EPROTO (inconsistent lengths in the input struct). */
int frl_msg_encode_hello(frl_fb_builder_t *b, const frl_hello_t *m);
int frl_msg_encode_welcome(frl_fb_builder_t *b, const frl_welcome_t *m);
int frl_msg_encode_experience(frl_fb_builder_t *b, const frl_experience_t *m);
int frl_msg_encode_ack(frl_fb_builder_t *b, const frl_ack_t *m);
int frl_msg_encode_params(frl_fb_builder_t *b, const frl_params_t *m);
int frl_msg_encode_heartbeat(frl_fb_builder_t *b, const frl_heartbeat_t *m);
int frl_msg_encode_control(frl_fb_builder_t *b, const frl_control_t *m);
int frl_msg_encode_credit(frl_fb_builder_t *b, const frl_credit_t *m);

/* Name of a message type for logs ("ExperienceBatch"), "unknown" otherwise. */
const char *frl_msg_type_name(frl_msg_type_t t);
/* Name of a safety kind as stored in SQLite ("clip", "safe_mode_enter"), "unknown" otherwise. */
const char *frl_safety_kind_name(frl_safety_kind_t k);

#endif
