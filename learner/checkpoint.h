/* checkpoint.h: the learner's whole state as one versioned, checksummed blob, so that a
 * learner killed at any moment resumes where its last checkpoint left it instead of starting
 * its networks afresh. The blob holds every network's parameters, the optimizers' moments and
 * step counts, target networks, the SAC temperature, the TD3 delay counter and noise streams
 * (all from frl_agent_state), the observation normalizer, and the learner's own counters,
 * evaluation state, rate limiter and RNG. The store keeps blobs in its checkpoints table.
 *
 * Layout (all integers little-endian; floats IEEE-754 little-endian):
 *   header   magic "FRLCKPT\0", u32 format version, u32 header bytes, u64 total bytes,
 *            u32 algorithm, u32 obs_dim, act_dim, n_actions, hidden1, hidden2, dueling,
 *            u32 normalizer dim (0: none), u32 section count, u32 reserved (0), f64 created
 *            (Unix seconds), char task[64] (NUL-terminated)
 *   sections one per state part: char name[32] (NUL-terminated), u32 type (1 f32, 2 f64,
 *            3 u64), u32 reserved (0), u64 element count, then the elements, zero-padded to
 *            a multiple of 8 bytes
 *   trailer  u64 checksum of every byte before it (see checkpoint.c)
 * A blob is untrusted input (it is a file's bytes): every length, the checksum, the identity
 * and every value are verified before anything is restored. */
#ifndef FRL_CHECKPOINT_H
#define FRL_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "normalizer.h"
#include "ratelimit.h"
#include "rng.h"

/* Format 2 added learner.solve_streak, solve_level and solve_by_success; a format-1 checkpoint
 * restores with a streak of 0. */
#define FRL_CHECKPOINT_FORMAT 2
#define FRL_CHECKPOINT_FORMAT_OLDEST 1
#define FRL_CHECKPOINT_TASK_MAX 64

/* The store's running totals when a checkpoint is taken: what the store records after it is
 * the difference from its totals at resume (frl_store_totals). */
typedef struct {
  uint64_t batches, transitions, env_steps;
  uint64_t last_episode_id; /* episodes are numbered from 1 and never deleted */
} frl_checkpoint_store_t;

/* The learner's own state besides the agent and normalizer. */
typedef struct {
  /* progress counters */
  uint64_t env_steps, transitions, updates, params_version, episodes;
  uint64_t duplicates, rejected, skipped_updates;
  /* evaluation schedule and results */
  uint64_t next_eval_at, last_eval_steps, evals;
  uint64_t reports_success; /* 0 or 1 */
  /* latest evaluations in a row at the solve level, and the level and metric they were
   * counted against (format 2): a learner resumed with another level starts a new streak */
  uint64_t solve_streak, solve_by_success;
  double solve_level;
  double last_eval, best_eval, last_success, best_score;
  /* training figures */
  double beta;              /* in [0, 1] */
  double lag_ewma, last_loss, last_mean_q;
  /* samples-per-insert limiter: its state, and the --spi it was configured with (a ratio set
   * at runtime survives a restart unless the flag was changed) */
  frl_ratelimit_t ratelimit;
  double spi_flag;
  frl_rng_t rng;            /* sampling and evaluation stream */
  frl_checkpoint_store_t store;
} frl_checkpoint_learner_t;

/* Serializes the state of agent, norm (NULL when observations are not normalized) and learner
 * for task into a new heap blob (*out, *out_len; the caller frees it with free()). created is
 * the Unix time recorded in the header. Returns 0; FRL_EUSAGE (logged) when task is longer
 * than FRL_CHECKPOINT_TASK_MAX - 1 bytes; FRL_ECORRUPT (logged, naming the section) when a
 * value is one frl_checkpoint_restore would refuse (not finite, a negative second moment, ...),
 * so that whatever is written can be restored. Nothing is modified. */
int frl_checkpoint_encode(const char *task, frl_agent_t *agent, frl_normalizer_t *norm,
                          const frl_checkpoint_learner_t *learner, double created, uint8_t **out,
                          size_t *out_len);

/* Verifies blob[len] completely and only then restores it into agent, norm and *learner.
 * Returns 0; FRL_ECORRUPT when the bytes are not a sound checkpoint (truncated, bad magic or
 * checksum, a section whose name, type, length or values are wrong; err names the section or
 * field and the bound); FRL_EDIM when it is sound but was written for another task, algorithm,
 * network shape or normalizer (err says which and what each side has). On error agent, norm
 * and *learner are untouched. err may be NULL. */
int frl_checkpoint_restore(const uint8_t *blob, size_t len, const char *task, frl_agent_t *agent,
                           frl_normalizer_t *norm, frl_checkpoint_learner_t *learner, char *err,
                           size_t errlen);

/* The checksum the format uses, over n bytes (exposed for tests). */
uint64_t frl_checkpoint_checksum(const uint8_t *data, size_t n);

#endif
