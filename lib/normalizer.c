/* normalizer.c: running mean/variance by Chan et al.'s parallel combination of batch moments,
 * which stays accurate for long runs where naive sum-of-squares would cancel. */
#include "normalizer.h"

#include <math.h>
#include <stdlib.h>

#include "common.h"

struct frl_normalizer {
  int dim;
  uint64_t count;
  double *mean, *m2, *bmean, *bm2;
};

frl_normalizer_t *frl_normalizer_new(int dim) {
  frl_normalizer_t *n = frl_xcalloc(1, sizeof *n);
  n->dim = dim;
  n->mean = frl_xcalloc((size_t)dim, sizeof(double));
  n->m2 = frl_xcalloc((size_t)dim, sizeof(double));
  n->bmean = frl_xcalloc((size_t)dim, sizeof(double));
  n->bm2 = frl_xcalloc((size_t)dim, sizeof(double));
  return n;
}

void frl_normalizer_destroy(frl_normalizer_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_normalizer_t *n = *self_p;
  free(n->mean);
  free(n->m2);
  free(n->bmean);
  free(n->bm2);
  free(n);
  *self_p = NULL;
}

void frl_normalizer_update(frl_normalizer_t *n, const float *x, int B) {
  if (B <= 0) return;
  int D = n->dim;
  for (int d = 0; d < D; d++) n->bmean[d] = n->bm2[d] = 0;
  for (int b = 0; b < B; b++)
    for (int d = 0; d < D; d++) n->bmean[d] += x[(size_t)b * D + d];
  for (int d = 0; d < D; d++) n->bmean[d] /= B;
  for (int b = 0; b < B; b++)
    for (int d = 0; d < D; d++) {
      double dev = x[(size_t)b * D + d] - n->bmean[d];
      n->bm2[d] += dev * dev;
    }
  double na = (double)n->count, nb = (double)B, nt = na + nb;
  for (int d = 0; d < D; d++) {
    double delta = n->bmean[d] - n->mean[d];
    n->mean[d] += delta * nb / nt;
    n->m2[d] += n->bm2[d] + delta * delta * na * nb / nt;
  }
  n->count += (uint64_t)B;
}

uint64_t frl_normalizer_count(const frl_normalizer_t *n) { return n->count; }
int frl_normalizer_dim(const frl_normalizer_t *n) { return n->dim; }

void frl_normalizer_state(frl_normalizer_t *n, const char *prefix, frl_state_t *st) {
  frl_state_add(st, prefix, "count", FRL_STATE_U64, 0, &n->count, 1);
  frl_state_add(st, prefix, "mean", FRL_STATE_F64, 0, n->mean, (size_t)n->dim);
  frl_state_add(st, prefix, "m2", FRL_STATE_F64, FRL_STATE_NONNEG, n->m2, (size_t)n->dim);
}

void frl_normalizer_export(const frl_normalizer_t *n, float *mean, float *std) {
  for (int d = 0; d < n->dim; d++) {
    mean[d] = (float)n->mean[d];
    double var = n->count > 1 ? n->m2[d] / (double)(n->count - 1) : 1.0;
    float s = (float)sqrt(var > 0 ? var : 0);
    std[d] = s > FRL_NORM_MIN_STD ? s : FRL_NORM_MIN_STD;
  }
}

void frl_normalizer_set(frl_normalizer_t *n, uint64_t count, const double *mean, const double *m2) {
  n->count = count;
  for (int d = 0; d < n->dim; d++) {
    n->mean[d] = mean[d];
    n->m2[d] = m2[d];
  }
}

void frl_normalize(float *out, const float *x, const float *mean, const float *std, int B,
                   int dim) {
  for (int b = 0; b < B; b++)
    for (int d = 0; d < dim; d++) {
      size_t i = (size_t)b * dim + d;
      float v = (x[i] - mean[d]) / std[d];
      out[i] = v > FRL_NORM_CLIP ? FRL_NORM_CLIP : (v < -FRL_NORM_CLIP ? -FRL_NORM_CLIP : v);
    }
}
