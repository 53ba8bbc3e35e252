/* mlp_reference.h: the float64 reference of lib/mlp.c's networks for the MLP, SAC and TD3
 * tests (one row forward from the parameter layout in mlp.h), and parameter snapshots. */
#ifndef FRL_TESTS_MLP_REFERENCE_H
#define FRL_TESTS_MLP_REFERENCE_H

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mlp.h"

static inline double ref_act(frl_activation_t a, double x) {
  return a == FRL_ACT_RELU ? (x > 0 ? x : 0) : a == FRL_ACT_TANH ? tanh(x) : x;
}

/* One row through the network in double: for each layer, w [O x I] then b [O] (mlp.h).
 * Layers up to 512 wide. */
static inline void ref_forward(double *out, const frl_mlp_shape_t *s, const double *p,
                               const double *x) {
  double buf[2][512];
  const double *in = x;
  for (int l = 0; l < s->n_layers; l++) {
    const int I = s->sizes[l], O = s->sizes[l + 1];
    const bool last = l + 1 == s->n_layers;
    double *o = last ? out : &buf[l % 2][0];
    const double *w = p, *b = p + (size_t)O * I;
    for (int j = 0; j < O; j++) {
      double z = b[j];
      for (int i = 0; i < I; i++) z += w[(size_t)j * I + i] * in[i];
      o[j] = ref_act(last ? s->out_act : s->hidden_act, z);
    }
    p += (size_t)O * I + O;
    in = o;
  }
}

/* A malloc'ed float64 copy of x[n]. */
static inline double *to_double(const float *x, size_t n) {
  double *d = malloc(n * sizeof *d);
  for (size_t k = 0; k < n; k++) d[k] = x[k];
  return d;
}

/* A malloc'ed copy of the network's parameters, and whether they are unchanged since. */
static inline float *snapshot(frl_mlp_t *m) {
  float *p = malloc(frl_mlp_n_params(m) * sizeof(float));
  memcpy(p, frl_mlp_params(m), frl_mlp_n_params(m) * sizeof(float));
  return p;
}

static inline bool same_params(frl_mlp_t *m, const float *saved) {
  return memcmp(frl_mlp_params(m), saved, frl_mlp_n_params(m) * sizeof(float)) == 0;
}

#endif
