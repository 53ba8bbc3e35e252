/* policy.c: saving and verified loading of policy files. */
#include "policy.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

typedef struct {
  char task[64];
  char env[32];
  int32_t obs_dim, n_actions, n_hidden, hidden[FRL_QNET_MAX_LAYERS], dueling;
  uint64_t params_version, updates, n_params;
} header_t;

int frl_policy_save(const char *path, const frl_policy_info_t *info, const float *params,
                    size_t n_params) {
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return -errno;
  header_t h;
  memset(&h, 0, sizeof h);
  snprintf(h.task, sizeof h.task, "%s", info->task);
  snprintf(h.env, sizeof h.env, "%s", info->env);
  h.obs_dim = info->shape.obs_dim;
  h.n_actions = info->shape.n_actions;
  h.n_hidden = info->shape.n_hidden;
  for (int i = 0; i < FRL_QNET_MAX_LAYERS; i++) h.hidden[i] = info->shape.hidden[i];
  h.dueling = info->shape.dueling;
  h.params_version = info->params_version;
  h.updates = info->updates;
  h.n_params = n_params;
  uint32_t version = FRL_POLICY_VERSION, hlen = sizeof h;
  uint64_t sum = frl_fnv1a64(params, n_params * sizeof(float), FRL_FNV_SEED);
  int ok = fwrite(FRL_POLICY_MAGIC, 8, 1, f) == 1 && fwrite(&version, 4, 1, f) == 1 &&
           fwrite(&hlen, 4, 1, f) == 1 && fwrite(&h, sizeof h, 1, f) == 1 &&
           fwrite(params, sizeof(float), n_params, f) == n_params &&
           fwrite(&sum, 8, 1, f) == 1;
  int rc = 0;
  if (!ok) rc = -errno ? -errno : -EIO;
  if (fclose(f) != 0 && rc == 0) rc = -errno;
  if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
  if (rc != 0) remove(tmp);
  return rc;
}

int frl_policy_load(const char *path, frl_policy_info_t *info, float **params, size_t *n_params,
                    char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -errno;
  }
  char magic[8];
  uint32_t version = 0, hlen = 0;
  header_t h;
  float *p = NULL;
  int rc = FRL_ECORRUPT;
  if (fread(magic, 8, 1, f) != 1 || memcmp(magic, FRL_POLICY_MAGIC, 8) != 0) {
    snprintf(err, errlen, "%s: not a fleetrl policy file (bad magic)", path);
    goto fail;
  }
  if (fread(&version, 4, 1, f) != 1 || version != FRL_POLICY_VERSION ||
      fread(&hlen, 4, 1, f) != 1 || hlen != sizeof h || fread(&h, sizeof h, 1, f) != 1) {
    snprintf(err, errlen, "%s: unsupported policy file version %u (this build reads %u)", path,
             version, (unsigned)FRL_POLICY_VERSION);
    goto fail;
  }
  h.task[sizeof h.task - 1] = '\0';
  h.env[sizeof h.env - 1] = '\0';
  frl_qnet_shape_t shape = {.obs_dim = h.obs_dim, .n_actions = h.n_actions,
                            .n_hidden = h.n_hidden, .dueling = h.dueling != 0};
  bool sane = h.obs_dim > 0 && h.obs_dim <= 4096 && h.n_actions > 0 && h.n_actions <= 4096 &&
              h.n_hidden >= 1 && h.n_hidden <= FRL_QNET_MAX_LAYERS;
  for (int i = 0; sane && i < h.n_hidden; i++) {
    sane = h.hidden[i] > 0 && h.hidden[i] <= 65536;
    shape.hidden[i] = h.hidden[i];
  }
  if (!sane || h.n_params != frl_qnet_param_count(&shape)) {
    snprintf(err, errlen, "%s: network shape in the header is invalid or does not match %llu "
             "parameters", path, (unsigned long long)h.n_params);
    goto fail;
  }
  p = frl_xmalloc(sizeof(float) * h.n_params);
  uint64_t sum = 0;
  if (fread(p, sizeof(float), h.n_params, f) != h.n_params || fread(&sum, 8, 1, f) != 1) {
    snprintf(err, errlen, "%s: truncated", path);
    goto fail;
  }
  if (sum != frl_fnv1a64(p, sizeof(float) * h.n_params, FRL_FNV_SEED)) {
    snprintf(err, errlen, "%s: checksum mismatch (file damaged)", path);
    goto fail;
  }
  memset(info, 0, sizeof *info);
  snprintf(info->task, sizeof info->task, "%s", h.task);
  snprintf(info->env, sizeof info->env, "%s", h.env);
  info->shape = shape;
  info->params_version = h.params_version;
  info->updates = h.updates;
  *params = p;
  *n_params = h.n_params;
  fclose(f);
  return 0;
fail:
  free(p);
  fclose(f);
  return rc;
}
