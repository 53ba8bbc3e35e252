/* nn.h: neural-network kernels on OpenBLAS, float32, row-major.
 * Dimensions: B batch, I inputs, O outputs, N elements, A actions. Outputs come first.
 * Weights are stored O x I (PyTorch layout), so y = x W^T + b. Backward functions ACCUMULATE
 * into parameter gradients (dw, db) and OVERWRITE input gradients (din). */
#ifndef FRL_NN_H
#define FRL_NN_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/* OpenBLAS's cblas.h includes <complex.h>, whose macro I would break every prototype below;
 * the kernels name the input dimension I, and fleetrl has no use for complex numbers. */
#undef I

/* out[B,O] = in[B,I] w[O,I]^T + b[O] */
void frl_linear_forward(float *out, const float *in, const float *w, const float *b, int B, int I,
                        int O);
/* dw[O,I] += dout^T in; db[O] += sum_b dout; din[B,I] = dout w (skipped when din is NULL). */
void frl_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, int B, int I, int O);
/* PyTorch's nn.Linear default: w and b uniform in [-1/sqrt(I), 1/sqrt(I)]. */
void frl_linear_init(float *w, float *b, int I, int O, frl_rng_t *rng);

/* out = max(in, 0), NaN passing through as in PyTorch. out may alias in. */
void frl_relu_forward(float *out, const float *in, int N);
/* din = dout * (out > 0); out is the forward output. din may alias dout. */
void frl_relu_backward(float *din, const float *dout, const float *out, int N);
void frl_tanh_forward(float *out, const float *in, int N);
/* din = dout * (1 - out^2). din may alias dout. */
void frl_tanh_backward(float *din, const float *dout, const float *out, int N);

/* Dueling aggregation (Wang et al. 2016, eq. 9): q[B,A] = v[B] + adv[B,A] - mean_a adv[B,:]. */
void frl_dueling_forward(float *q, const float *v, const float *adv, int B, int A);
/* dv[B] = sum_a dq; dadv[B,A] = dq - mean_a dq. Overwrites dv and dadv. */
void frl_dueling_backward(float *dv, float *dadv, const float *dq, int B, int A);

/* Weighted Huber loss: L = (1/B) sum_b w_b huber(pred_b - target_b; delta). Writes
 * dpred[B] = dL/dpred. w may be NULL (all ones). Returns L. */
float frl_huber_loss(float *dpred, const float *pred, const float *target, const float *w, int B,
                     float delta);
/* Weighted MSE over pred/target [B, D]: L = (1/(B*D)) sum_b w_b sum_d (pred - target)^2.
 * Writes dpred[B, D]; w may be NULL (all ones). Returns L. */
float frl_mse_loss(float *dpred, const float *pred, const float *target, const float *w, int B,
                   int D);

/* Scales g[N] so its L2 norm is at most max_norm; returns the norm before clipping.
 * max_norm <= 0 only measures. A non-finite norm leaves g unscaled (the caller decides). */
float frl_clip_grad_norm(float *g, size_t N, float max_norm);

/* Adam (Kingma & Ba 2015) with bias correction. State m, v are owned by the struct. */
typedef struct {
  size_t n;
  float lr, beta1, beta2, eps;
  uint64_t t;
  float *m, *v;
} frl_adam_t;

/* Zeroed moments, t = 0. Never returns NULL (allocation failure aborts). */
frl_adam_t *frl_adam_new(size_t n, float lr, float beta1, float beta2, float eps);
void frl_adam_destroy(frl_adam_t **self_p);
/* t += 1; m, v updated from grads; params[n] -= lr * mhat / (sqrt(vhat) + eps) with
 * mhat = m / (1 - beta1^t), vhat = v / (1 - beta2^t). params, grads, m, v must not overlap. */
void frl_adam_step(frl_adam_t *a, float *params, const float *grads);

/* ---- learning state, for checkpoints ----------------------------------------------------------
 * A learner lists every block of its mutable learning state (parameters, optimizer moments and
 * step counts, temperatures, counters, RNG states) as named parts pointing INTO its own memory;
 * a checkpoint writes them out and restores by copying into the same pointers. Names are short
 * dotted paths ("critic1", "adam.critic1.m") and unique within one list. */
typedef enum { FRL_STATE_F32 = 1, FRL_STATE_F64 = 2, FRL_STATE_U64 = 3 } frl_state_type_t;
/* Constraints a restored part must meet (on top of float parts being finite). */
enum {
  FRL_STATE_NONNEG = 1,  /* every element >= 0 (Adam's second moments, sums of squares) */
  FRL_STATE_NONZERO = 2, /* not all zero (xoshiro's state: all zeros is a fixed point) */
};
#define FRL_STATE_NAME_MAX 32 /* bytes including the terminating NUL */
#define FRL_STATE_MAX_PARTS 96

typedef struct {
  char name[FRL_STATE_NAME_MAX];
  frl_state_type_t type;
  int flags;
  void *data;   /* count elements of the type, owned by whoever listed the part */
  size_t count;
} frl_state_part_t;

typedef struct {
  frl_state_part_t part[FRL_STATE_MAX_PARTS];
  int n;
} frl_state_t;

/* Appends a part named prefix + name (prefix may be NULL). Exceeding FRL_STATE_MAX_PARTS or
 * FRL_STATE_NAME_MAX is a programmer error (assert): the lists are fixed by the code. */
void frl_state_add(frl_state_t *st, const char *prefix, const char *name, frl_state_type_t type,
                   int flags, void *data, size_t count);
/* Bytes of one element of a part type (4 or 8). */
size_t frl_state_elem_size(frl_state_type_t type);
/* Appends Adam's state as prefix.m, prefix.v (>= 0) and prefix.t. The hyperparameters are
 * configuration, not state, and are not listed. */
void frl_adam_state(frl_adam_t *a, const char *prefix, frl_state_t *st);

#endif
