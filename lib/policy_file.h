/* policy_file.h: the learned-policy file (policy.bin): everything an actor needs to act without
 * a learner. Layout (little-endian): magic "FRLPOLCY", u32 version, u32 header bytes, the
 * header (task, env, algorithm and network shape, versions, parameter count, whether a
 * normalizer follows), n_params float32, then (if present) obs_dim float32 means and obs_dim
 * float32 stds, then the u64 FNV-1a checksum of all the floats. */
#ifndef FRL_POLICY_FILE_H
#define FRL_POLICY_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define FRL_POLICY_MAGIC "FRLPOLCY"
#define FRL_POLICY_VERSION 1

typedef struct {
  char task[64];
  char env[32];
  frl_policy_shape_t shape;
  uint64_t params_version;
  uint64_t updates;
  float action_scale; /* fraction of the environment's action range the policy commands */
  int action_history; /* commanded actions its observations end with (history.h; 0: none) */
  int obs_history;    /* past observations before them (history.h; 0: none) */
} frl_policy_info_t;

/* Writes atomically (temporary file + rename). obs_mean/obs_std ([shape.obs_dim]) may be NULL.
 * Returns 0 or -errno. */
int frl_policy_save(const char *path, const frl_policy_info_t *info, const float *params,
                    size_t n_params, const float *obs_mean, const float *obs_std);
/* Reads and verifies magic, version, shape, sizes and checksum. On success *params (and, when
 * the file has a normalizer, *obs_mean and *obs_std, else NULL) are new arrays the caller
 * frees. Returns 0, -errno, or FRL_ECORRUPT (message in err). */
int frl_policy_load(const char *path, frl_policy_info_t *info, float **params, size_t *n_params,
                    float **obs_mean, float **obs_std, char *err, size_t errlen);

#endif
