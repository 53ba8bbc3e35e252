/* policy_file.c: saving and verified loading of policy files. */
#include "policy_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "history.h"

typedef struct {
  char task[64];
  char env[32];
  int32_t algo, obs_dim, act_dim, n_actions, hidden1, hidden2, dueling, has_normalizer;
  float action_scale;
  /* The history (history.h): bits 0-15 the commands (action_history), bits 16-31 the past
   * observations (obs_history). Reserved (0) before the history existed: files stay readable. */
  uint32_t history;
  uint64_t params_version, updates, n_params;
} header_t;

/* The history a header claims fits its observation: continuous actions, k and m within their
 * limits, and an observation of (m + 1) frames of at least one value each, then k commands. */
static bool history_fits(const header_t *h) {
  const uint32_t k = h->history & 0xffff, m = h->history >> 16;
  if (h->history == 0) return true;
  if (h->n_actions != 0 || k > FRL_HISTORY_MAX || m > FRL_OBS_HISTORY_MAX) return false;
  const int64_t frames = (int64_t)h->obs_dim - (int64_t)k * h->act_dim;
  return frames >= (int64_t)m + 1 && frames % ((int64_t)m + 1) == 0;
}

int frl_policy_save(const char *path, const frl_policy_info_t *info, const float *params,
                    size_t n_params, const float *obs_mean, const float *obs_std) {
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return -errno;
  header_t h;
  memset(&h, 0, sizeof h);
  snprintf(h.task, sizeof h.task, "%s", info->task);
  snprintf(h.env, sizeof h.env, "%s", info->env);
  const frl_policy_shape_t *s = &info->shape;
  h.algo = (int32_t)s->algo;
  h.obs_dim = s->obs_dim;
  h.act_dim = s->act_dim;
  h.n_actions = s->n_actions;
  h.hidden1 = s->hidden1;
  h.hidden2 = s->hidden2;
  h.dueling = s->dueling;
  h.has_normalizer = obs_mean && obs_std;
  h.action_scale = info->action_scale > 0 ? info->action_scale : 1.0f;
  h.history = (uint32_t)info->action_history | (uint32_t)info->obs_history << 16;
  h.params_version = info->params_version;
  h.updates = info->updates;
  h.n_params = n_params;
  uint32_t version = FRL_POLICY_VERSION, hlen = sizeof h;
  size_t nd = (size_t)s->obs_dim;
  uint64_t sum = frl_fnv1a64(params, n_params * sizeof(float), FRL_FNV_SEED);
  if (h.has_normalizer) {
    sum = frl_fnv1a64(obs_mean, nd * sizeof(float), sum);
    sum = frl_fnv1a64(obs_std, nd * sizeof(float), sum);
  }
  int ok = fwrite(FRL_POLICY_MAGIC, 8, 1, f) == 1 && fwrite(&version, 4, 1, f) == 1 &&
           fwrite(&hlen, 4, 1, f) == 1 && fwrite(&h, sizeof h, 1, f) == 1 &&
           fwrite(params, sizeof(float), n_params, f) == n_params;
  if (ok && h.has_normalizer)
    ok = fwrite(obs_mean, sizeof(float), nd, f) == nd && fwrite(obs_std, sizeof(float), nd, f) == nd;
  ok = ok && fwrite(&sum, 8, 1, f) == 1;
  int rc = 0;
  if (!ok) rc = errno ? -errno : -EIO;
  if (fclose(f) != 0 && rc == 0) rc = -errno;
  if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
  if (rc != 0) remove(tmp);
  return rc;
}

int frl_policy_load(const char *path, frl_policy_info_t *info, float **params, size_t *n_params,
                    float **obs_mean, float **obs_std, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    snprintf(err, errlen, "%s: %s", path, strerror(e));
    return -e;
  }
  char magic[8];
  uint32_t version = 0, hlen = 0;
  header_t h;
  float *p = NULL, *mean = NULL, *std = NULL;
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
  frl_policy_shape_t shape = {.algo = (frl_algo_t)h.algo, .obs_dim = h.obs_dim,
                              .act_dim = h.act_dim, .n_actions = h.n_actions,
                              .hidden1 = h.hidden1, .hidden2 = h.hidden2,
                              .dueling = h.dueling != 0};
  bool sane = h.algo >= 0 && h.algo <= 2 && h.obs_dim > 0 && h.obs_dim <= 4096 &&
              h.act_dim > 0 && h.act_dim <= 4096 && h.n_actions >= 0 && h.n_actions <= 4096 &&
              h.hidden1 > 0 && h.hidden1 <= 65536 && h.hidden2 >= 0 && h.hidden2 <= 65536 &&
              h.action_scale > 0 && h.action_scale <= 1 && history_fits(&h);
  if (!sane || h.n_params != frl_policy_param_count(&shape)) {
    snprintf(err, errlen, "%s: the network shape in the header is invalid or does not match "
             "its %llu parameters", path, (unsigned long long)h.n_params);
    goto fail;
  }
  p = frl_xmalloc(sizeof(float) * h.n_params);
  size_t nd = (size_t)h.obs_dim;
  uint64_t sum = 0;
  bool read_ok = fread(p, sizeof(float), h.n_params, f) == h.n_params;
  if (read_ok && h.has_normalizer) {
    mean = frl_xmalloc(sizeof(float) * nd);
    std = frl_xmalloc(sizeof(float) * nd);
    read_ok = fread(mean, sizeof(float), nd, f) == nd && fread(std, sizeof(float), nd, f) == nd;
  }
  if (!read_ok || fread(&sum, 8, 1, f) != 1) {
    snprintf(err, errlen, "%s: truncated", path);
    goto fail;
  }
  uint64_t want = frl_fnv1a64(p, sizeof(float) * h.n_params, FRL_FNV_SEED);
  if (mean) {
    want = frl_fnv1a64(mean, nd * sizeof(float), want);
    want = frl_fnv1a64(std, nd * sizeof(float), want);
  }
  if (sum != want) {
    snprintf(err, errlen, "%s: checksum mismatch (file damaged)", path);
    goto fail;
  }
  memset(info, 0, sizeof *info);
  snprintf(info->task, sizeof info->task, "%s", h.task);
  snprintf(info->env, sizeof info->env, "%s", h.env);
  info->shape = shape;
  info->params_version = h.params_version;
  info->updates = h.updates;
  info->action_scale = h.action_scale;
  info->action_history = (int)(h.history & 0xffff);
  info->obs_history = (int)(h.history >> 16);
  *params = p;
  *n_params = h.n_params;
  *obs_mean = mean;
  *obs_std = std;
  fclose(f);
  return 0;
fail:
  free(p);
  free(mean);
  free(std);
  fclose(f);
  return rc;
}
