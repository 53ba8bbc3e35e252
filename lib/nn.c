/* nn.c: float32 neural-network kernels (linear, activations, dueling, losses, clipping, Adam)
 * on OpenBLAS; the building blocks of every network the learner and the actors run. */
#include "nn.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* OpenBLAS's cblas.h pulls in <complex.h>, whose macro I (the imaginary unit) would replace
 * the input-dimension name used throughout; nothing here needs complex numbers. */
#undef I

/* Below this many multiply-adds a one-row product is cheaper as a plain loop than as a BLAS
 * call, whose fixed cost (argument checks, kernel dispatch) dominates a tiny matrix such as a
 * Q head of 64 x 2 (0.03 us as a loop, 0.04 us as sgemv on the dev machine). Above it
 * OpenBLAS's sgemv kernels (AVX2/AVX-512, chosen at run time) win clearly: 64 x 64 takes
 * 0.33 us against 0.75 us for the loop compiled for the baseline x86-64-v2. */
#define FRL_NN_SMALL_GEMV 256

/* Four-float vectors through GCC/Clang vector extensions: SSE on x86-64, NEON on arm64, plain
 * scalar code elsewhere, vectorized whatever the compiler's cost model (GCC 12's -O2 default,
 * "very cheap", leaves a loop of unknown length scalar). The hottest passes (Adam here, the
 * ReLU and bias passes in mlp.c) are plain loops under FRL_VEC_CLONES instead, 8 wide on AVX2.
 * memcpy is how an unaligned vector load or store is spelled without breaking aliasing rules;
 * it compiles to one move. */
typedef float frl_v4 __attribute__((vector_size(16)));
typedef int32_t frl_v4i __attribute__((vector_size(16)));

static inline frl_v4 load4(const float *p) {
  frl_v4 v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline void store4(float *p, frl_v4 v) { memcpy(p, &v, sizeof v); }

/* y[O] = b[O] + w[O,I] x[I] for one row, as independent dot products. Eight partial sums per
 * row break the serial dependence of a single accumulator, so several multiply-adds are in
 * flight at once without the compiler having to reassociate float sums. */
static void gemv_small(float *restrict y, const float *restrict x, const float *restrict w,
                       const float *restrict b, int I, int O) {
  for (int o = 0; o < O; o++) {
    const float *row = w + (size_t)o * I;
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= I; i += 8)
      for (int k = 0; k < 8; k++) acc[k] += row[i + k] * x[i + k];
    float s = b ? b[o] : 0.0f;
    for (; i < I; i++) s += row[i] * x[i];
    y[o] = s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  }
}

void frl_linear_forward(float *out, const float *in, const float *w, const float *b, int B, int I,
                        int O) {
  if (B <= 0 || O <= 0) return;
  if (B == 1) {
    if ((long)I * O < FRL_NN_SMALL_GEMV) {
      gemv_small(out, in, w, b, I, O);
      return;
    }
    if (b) memcpy(out, b, (size_t)O * sizeof *out);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, O, I, 1.0f, w, I, in, 1, b ? 1.0f : 0.0f, out, 1);
    return;
  }
  /* Broadcast the bias into the output, then let sgemm accumulate onto it (beta = 1): one
   * pass over out instead of a GEMM followed by a separate bias pass. The rows are filled by
   * doubling (1, 2, 4, ... rows per memcpy): log2(B) calls instead of B short ones. */
  if (b) {
    const size_t row = (size_t)O, total = (size_t)B * row;
    memcpy(out, b, row * sizeof *out);
    for (size_t done = row; done < total;) {
      size_t n = FRL_MIN(done, total - done);
      memcpy(out + done, out, n * sizeof *out);
      done += n;
    }
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, O, I, 1.0f, in, I, w, I,
              b ? 1.0f : 0.0f, out, O);
}

void frl_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, int B, int I, int O) {
  if (B <= 0 || O <= 0 || I <= 0) return;
  /* dW[O,I] += dout[B,O]^T in[B,I] */
  if (dw)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, B, 1.0f, dout, O, in, I, 1.0f, dw,
                I);
  if (db) {
    for (int r = 0; r < B; r++) {
      const float *d = dout + (size_t)r * O;
      int o = 0;
      for (; o + 4 <= O; o += 4) store4(db + o, load4(db + o) + load4(d + o));
      for (; o < O; o++) db[o] += d[o];
    }
  }
  /* din[B,I] = dout[B,O] w[O,I] */
  if (din)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, I, O, 1.0f, dout, O, w, I, 0.0f,
                din, I);
}

void frl_linear_init(float *w, float *b, int I, int O, frl_rng_t *rng) {
  /* PyTorch's kaiming_uniform_(a = sqrt(5)) gives bound sqrt(6 / ((1 + 5) I)) = 1/sqrt(I) for
   * the weights, and its bias rule uses the same 1/sqrt(fan_in). */
  double bound = 1.0 / sqrt((double)(I > 0 ? I : 1));
  for (size_t k = 0; k < (size_t)O * (size_t)I; k++)
    w[k] = (float)((2.0 * frl_rng_uniform(rng) - 1.0) * bound);
  if (b)
    for (int o = 0; o < O; o++) b[o] = (float)((2.0 * frl_rng_uniform(rng) - 1.0) * bound);
}

void frl_relu_forward(float *out, const float *in, int N) {
  /* NaN passes through (as in PyTorch), so a poisoned input still shows up in the loss
   * instead of being zeroed away. Branch-free: with random signs a branch mispredicts half
   * the time, which made this pass cost as much as a GEMM. */
  int k = 0;
  for (; k + 4 <= N; k += 4) {
    frl_v4 x = load4(in + k);
    frl_v4i neg = x < 0.0f;
    store4(out + k, (frl_v4)((frl_v4i)x & ~neg));
  }
  for (; k < N; k++) out[k] = in[k] < 0.0f ? 0.0f : in[k];
}

void frl_relu_backward(float *din, const float *dout, const float *out, int N) {
  int k = 0;
  for (; k + 4 <= N; k += 4) {
    frl_v4i pos = load4(out + k) > 0.0f;
    store4(din + k, (frl_v4)((frl_v4i)load4(dout + k) & pos));
  }
  for (; k < N; k++) din[k] = out[k] > 0.0f ? dout[k] : 0.0f;
}

void frl_tanh_forward(float *out, const float *in, int N) {
  for (int k = 0; k < N; k++) out[k] = tanhf(in[k]);
}

void frl_tanh_backward(float *din, const float *dout, const float *out, int N) {
  for (int k = 0; k < N; k++) din[k] = dout[k] * (1.0f - out[k] * out[k]);
}

void frl_dueling_forward(float *q, const float *v, const float *adv, int B, int A) {
  /* Wang et al. 2016, eq. 9: subtracting the mean advantage makes V and A identifiable. */
  for (int r = 0; r < B; r++) {
    const float *a = adv + (size_t)r * A;
    float mean = 0.0f;
    for (int k = 0; k < A; k++) mean += a[k];
    mean /= (float)A;
    float *qr = q + (size_t)r * A;
    for (int k = 0; k < A; k++) qr[k] = v[r] + a[k] - mean;
  }
}

void frl_dueling_backward(float *dv, float *dadv, const float *dq, int B, int A) {
  /* dq_k/dv = 1 and dq_k/dadv_j = [k == j] - 1/A. */
  for (int r = 0; r < B; r++) {
    const float *d = dq + (size_t)r * A;
    float sum = 0.0f;
    for (int k = 0; k < A; k++) sum += d[k];
    dv[r] = sum;
    float mean = sum / (float)A;
    float *da = dadv + (size_t)r * A;
    for (int k = 0; k < A; k++) da[k] = d[k] - mean;
  }
}

float frl_huber_loss(float *dpred, const float *pred, const float *target, const float *w, int B,
                     float delta) {
  /* Huber (1964): 0.5 x^2 for |x| <= delta, delta (|x| - 0.5 delta) beyond; its derivative is
   * x clamped to [-delta, delta]. This is PyTorch's SmoothL1/Huber with beta = delta, the DQN
   * error clipping of Mnih et al. 2015. Comparisons are written so a NaN error stays NaN in
   * the gradient (fminf/fmaxf would silently turn it into +-delta). */
  if (B <= 0) return 0.0f;
  double total = 0.0;
  float inv_b = 1.0f / (float)B;
  for (int r = 0; r < B; r++) {
    float x = pred[r] - target[r];
    float wr = w ? w[r] : 1.0f;
    float ax = fabsf(x);
    float l, g;
    if (ax > delta) {
      l = delta * (ax - 0.5f * delta);
      g = x > 0.0f ? delta : -delta;
    } else {
      l = 0.5f * x * x;
      g = x;
    }
    total += (double)wr * (double)l;
    dpred[r] = wr * g * inv_b;
  }
  return (float)(total / B);
}

float frl_mse_loss(float *dpred, const float *pred, const float *target, const float *w, int B,
                   int D) {
  if (B <= 0 || D <= 0) return 0.0f;
  double total = 0.0;
  float scale = 2.0f / ((float)B * (float)D);
  for (int r = 0; r < B; r++) {
    float wr = w ? w[r] : 1.0f;
    double row = 0.0;
    for (int d = 0; d < D; d++) {
      size_t k = (size_t)r * D + d;
      float x = pred[k] - target[k];
      row += (double)x * x;
      dpred[k] = scale * wr * x;
    }
    total += wr * row;
  }
  return (float)(total / ((double)B * D));
}

float frl_clip_grad_norm(float *g, size_t N, float max_norm) {
  /* Pascanu et al. 2013: rescale the whole gradient, keeping its direction. The norm is
   * summed in double so a long vector of small entries does not lose its tail. A non-finite
   * norm is returned unscaled: the caller decides whether to skip the step. */
  double ss = 0.0;
  size_t k = 0;
  /* Four float lanes per block of 1024, each block's sum then added in double: vector speed,
   * and no float accumulator ever sums more than 256 terms. */
  while (k + 4 <= N) {
    size_t end = FRL_MIN(N & ~(size_t)3, k + 1024);
    frl_v4 acc = {0, 0, 0, 0};
    for (; k < end; k += 4) {
      frl_v4 x = load4(g + k);
      acc += x * x;
    }
    ss += ((double)acc[0] + acc[1]) + ((double)acc[2] + acc[3]);
  }
  for (; k < N; k++) ss += (double)g[k] * g[k];
  double norm = sqrt(ss);
  if (max_norm > 0.0f && isfinite(norm) && norm > max_norm) {
    float s = (float)(max_norm / norm);
    for (k = 0; k < N; k++) g[k] *= s;
  }
  return (float)norm;
}

frl_adam_t *frl_adam_new(size_t n, float lr, float beta1, float beta2, float eps) {
  frl_adam_t *a = frl_xcalloc(1, sizeof *a);
  a->n = n;
  a->lr = lr;
  a->beta1 = beta1;
  a->beta2 = beta2;
  a->eps = eps;
  a->t = 0;
  a->m = frl_xcalloc(n, sizeof *a->m);
  a->v = frl_xcalloc(n, sizeof *a->v);
  return a;
}

void frl_adam_destroy(frl_adam_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_adam_t *a = *self_p;
  free(a->m);
  free(a->v);
  free(a);
  *self_p = NULL;
}

/* The elementwise part of frl_adam_step: m and v take their moving averages of g and g^2, and
 * p moves by step m / (sqrt(v) + eps_t). */
FRL_VEC_CLONES static void adam_update(float *restrict p, float *restrict m, float *restrict v,
                                       const float *restrict g, size_t n, float b1, float b2,
                                       float step, float eps_t) {
  const float c1 = 1.0f - b1, c2 = 1.0f - b2;
  for (size_t k = 0; k < n; k++) {
    const float mk = b1 * m[k] + c1 * g[k];
    const float vk = b2 * v[k] + c2 * g[k] * g[k];
    m[k] = mk;
    v[k] = vk;
    p[k] -= step * mk / (sqrtf(vk) + eps_t);
  }
}

void frl_adam_step(frl_adam_t *a, float *params, const float *grads) {
  /* Kingma & Ba 2015, Algorithm 1, with the bias corrections folded into the step size and
   * epsilon as in its section 2: theta -= lr * mhat / (sqrt(vhat) + eps) with
   * mhat = m / (1 - b1^t), vhat = v / (1 - b2^t). Written as lr_t * m / (sqrt(v) + eps_t),
   * lr_t = lr / (1 - b1^t), eps_t = eps sqrt(1 - b2^t), and sqrt(vhat) = sqrt(v) / sqrt(1 - b2^t),
   * which is the same update exactly and needs no divisions per element beyond one. */
  a->t++;
  double bc1 = 1.0 - pow((double)a->beta1, (double)a->t);
  double bc2 = 1.0 - pow((double)a->beta2, (double)a->t);
  float step = (float)(a->lr * sqrt(bc2) / bc1);
  float eps_t = (float)(a->eps * sqrt(bc2));
  const float b1 = a->beta1, b2 = a->beta2;
  adam_update(params, a->m, a->v, grads, a->n, b1, b2, step, eps_t);
}

void frl_state_add(frl_state_t *st, const char *prefix, const char *name, frl_state_type_t type,
                   int flags, void *data, size_t count) {
  assert(st->n < FRL_STATE_MAX_PARTS);
  frl_state_part_t *p = &st->part[st->n++];
  int len = snprintf(p->name, sizeof p->name, "%s%s%s", prefix ? prefix : "", prefix ? "." : "",
                     name);
  assert(len > 0 && (size_t)len < sizeof p->name);
  (void)len;
  p->type = type;
  p->flags = flags;
  p->data = data;
  p->count = count;
}

size_t frl_state_elem_size(frl_state_type_t type) { return type == FRL_STATE_F32 ? 4 : 8; }

void frl_adam_state(frl_adam_t *a, const char *prefix, frl_state_t *st) {
  /* The step count matters as much as the moments: it sets the bias corrections
   * 1 - beta^t, so a restored optimizer with t = 0 would take a first-step-sized update. */
  frl_state_add(st, prefix, "m", FRL_STATE_F32, 0, a->m, a->n);
  frl_state_add(st, prefix, "v", FRL_STATE_F32, FRL_STATE_NONNEG, a->v, a->n);
  frl_state_add(st, prefix, "t", FRL_STATE_U64, 0, &a->t, 1);
}
