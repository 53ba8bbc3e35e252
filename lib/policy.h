/* policy.h: the learned-policy file (policy.bin): what a Q-network needs to act without a
 * learner. Layout (little-endian): magic "FRLPOLCY", u32 version, u32 header bytes, then the
 * header fields below, then n_params float32, then u64 FNV-1a checksum of the floats. */
#ifndef FRL_POLICY_H
#define FRL_POLICY_H

#include <stdint.h>

#include "qnet.h"

#define FRL_POLICY_MAGIC "FRLPOLCY"
#define FRL_POLICY_VERSION 1

typedef struct {
  char task[64];
  char env[32];
  frl_qnet_shape_t shape;
  uint64_t params_version;
  uint64_t updates;
} frl_policy_info_t;

/* Writes atomically (temporary file + rename). Returns 0 or -errno. */
int frl_policy_save(const char *path, const frl_policy_info_t *info, const float *params,
                    size_t n_params);
/* Reads and verifies magic, version, sizes and checksum. On success *params is a new array the
 * caller frees. Returns 0, -errno, or FRL_ECORRUPT (message in err). */
int frl_policy_load(const char *path, frl_policy_info_t *info, float **params, size_t *n_params,
                    char *err, size_t errlen);

#endif
