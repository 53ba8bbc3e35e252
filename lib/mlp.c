/* mlp.c: the multi-layer perceptron of the continuous-control learners (SAC and TD3 actors and
 * critics): one contiguous parameter block, a preallocated workspace, and a backward pass that
 * can split a batch between losses, so no forward, backward or action ever allocates. */
#include "mlp.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FRL_MLP_X86 1
#endif

#include "common.h"
#include "log.h"
#include "nn.h"

/* cblas.h pulls in <complex.h>, whose macro I would replace the input-dimension name. */
#undef I

/* Bounds on a shape (config input): generous for any robot task, small enough that the size
 * arithmetic below cannot overflow and a typo fails with a message, not a huge malloc. */
#define FRL_MLP_MAX_WIDTH 65536
#define FRL_MLP_MAX_BATCH 65536
#define FRL_MLP_MAX_FLOATS ((size_t)1 << 28) /* 1 GiB of float32 per block */

struct frl_mlp {
  frl_mlp_shape_t shape;
  int max_batch;
  int max_width; /* widest layer output: size of the gradient ping-pong rows */
  size_t n_params;
  float *params;
  size_t w_off[FRL_MLP_MAX_LAYERS], b_off[FRL_MLP_MAX_LAYERS];
  /* Workspace, one allocation, carved into: */
  float *work;
  float *input;                   /* [max_batch, sizes[0]] the last forward's input */
  float *act[FRL_MLP_MAX_LAYERS]; /* [max_batch, sizes[l + 1]] post-activation outputs */
  float *grad_a, *grad_b;         /* [max_batch, max_width] backward ping-pong */
  int last_B;                     /* batch of the last forward, 0 before any */
};

static int act_valid(frl_activation_t a) {
  return a == FRL_ACT_NONE || a == FRL_ACT_RELU || a == FRL_ACT_TANH;
}

/* Checks a shape against the bounds above; 0 or FRL_EDIM after logging the field and bound. */
static int shape_check(const frl_mlp_shape_t *s) {
  if (s->n_layers < 1 || s->n_layers > FRL_MLP_MAX_LAYERS) {
    frl_error("mlp: n_layers %d out of range [1, %d]", s->n_layers, FRL_MLP_MAX_LAYERS);
    return FRL_EDIM;
  }
  for (int l = 0; l <= s->n_layers; l++) {
    if (s->sizes[l] < 1 || s->sizes[l] > FRL_MLP_MAX_WIDTH) {
      frl_error("mlp: sizes[%d] = %d out of range [1, %d]", l, s->sizes[l], FRL_MLP_MAX_WIDTH);
      return FRL_EDIM;
    }
  }
  if (!act_valid(s->hidden_act) || !act_valid(s->out_act)) {
    frl_error("mlp: activation (hidden %d, out %d) not one of none 0, relu 1, tanh 2",
              (int)s->hidden_act, (int)s->out_act);
    return FRL_EDIM;
  }
  return 0;
}

size_t frl_mlp_param_count(const frl_mlp_shape_t *shape) {
  if (shape_check(shape) != 0) return 0;
  size_t n = 0;
  for (int l = 0; l < shape->n_layers; l++)
    n += (size_t)shape->sizes[l + 1] * (size_t)shape->sizes[l] + (size_t)shape->sizes[l + 1];
  return n;
}

frl_mlp_t *frl_mlp_new(const frl_mlp_shape_t *shape, int max_batch, frl_rng_t *rng) {
  if (shape_check(shape) != 0) return NULL;
  if (max_batch < 1 || max_batch > FRL_MLP_MAX_BATCH) {
    frl_error("mlp: max_batch %d out of range [1, %d]", max_batch, FRL_MLP_MAX_BATCH);
    return NULL;
  }
  const int L = shape->n_layers;
  const size_t MB = (size_t)max_batch;
  int max_width = 0;
  for (int l = 1; l <= L; l++) max_width = FRL_MAX(max_width, shape->sizes[l]);
  size_t n_params = frl_mlp_param_count(shape);
  size_t n_work = MB * (size_t)shape->sizes[0] + 2 * MB * (size_t)max_width;
  for (int l = 1; l <= L; l++) n_work += MB * (size_t)shape->sizes[l];
  if (n_params > FRL_MLP_MAX_FLOATS || n_work > FRL_MLP_MAX_FLOATS) {
    frl_error("mlp: %zu parameters and %zu workspace floats exceed the limit of %zu", n_params,
              n_work, FRL_MLP_MAX_FLOATS);
    return NULL;
  }

  frl_mlp_t *m = frl_xcalloc(1, sizeof *m);
  m->shape = *shape;
  for (int l = L + 1; l <= FRL_MLP_MAX_LAYERS; l++) m->shape.sizes[l] = 0;
  m->max_batch = max_batch;
  m->max_width = max_width;
  m->n_params = n_params;
  /* Cache-line aligned: with 64-byte rows (widths that are multiples of 16) every vector load
   * of the batch-1 path then stays within one line; a block at malloc's 16-byte alignment
   * splits half of them across two lines, which made the 256 x 256 layer ~1.5x slower. */
  size_t bytes = (n_params * sizeof(float) + 63) & ~(size_t)63;
  m->params = aligned_alloc(64, bytes);
  if (!m->params) {
    frl_error("mlp: out of memory for %zu parameters", n_params);
    free(m);
    return NULL;
  }
  size_t off = 0;
  for (int l = 0; l < L; l++) {
    const int I = shape->sizes[l], O = shape->sizes[l + 1];
    m->w_off[l] = off;
    off += (size_t)O * (size_t)I;
    m->b_off[l] = off;
    off += (size_t)O;
    frl_linear_init(m->params + m->w_off[l], m->params + m->b_off[l], I, O, rng);
  }
  assert(off == n_params);

  /* Zeroed so valgrind never sees an uninitialized read, e.g. a backward before a forward. */
  m->work = frl_xcalloc(n_work, sizeof *m->work);
  float *p = m->work;
  m->input = p;
  p += MB * (size_t)shape->sizes[0];
  for (int l = 0; l < L; l++) {
    m->act[l] = p;
    p += MB * (size_t)shape->sizes[l + 1];
  }
  m->grad_a = p;
  p += MB * (size_t)max_width;
  m->grad_b = p;
  p += MB * (size_t)max_width;
  assert((size_t)(p - m->work) == n_work);
  return m;
}

void frl_mlp_destroy(frl_mlp_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_mlp_t *m = *self_p;
  free(m->work);
  free(m->params);
  free(m);
  *self_p = NULL;
}

const frl_mlp_shape_t *frl_mlp_shape(const frl_mlp_t *m) { return &m->shape; }
float *frl_mlp_params(frl_mlp_t *m) { return m->params; }
size_t frl_mlp_n_params(const frl_mlp_t *m) { return m->n_params; }
int frl_mlp_max_batch(const frl_mlp_t *m) { return m->max_batch; }
float *frl__mlp_input(frl_mlp_t *m) { return m->input; }
float *frl__mlp_output(frl_mlp_t *m) { return m->act[m->shape.n_layers - 1]; }

/* x[B, O] = f(x + b) in one pass: the layer's bias and activation together. The GEMM before
 * it runs with beta = 0 (no bias broadcast into the output first), so this pass replaces
 * both a broadcast pass and a separate activation pass. ReLU keeps v unless v < 0, so NaN
 * passes through, as nn.c does. */
FRL_VEC_CLONES static void bias_act(float *restrict x, const float *restrict b, int B, int O,
                                    frl_activation_t a) {
  for (int r = 0; r < B; r++) {
    float *restrict row = x + (size_t)r * O;
    if (a == FRL_ACT_RELU) {
      for (int o = 0; o < O; o++) {
        const float v = row[o] + b[o];
        row[o] = v < 0.0f ? 0.0f : v;
      }
    } else if (a == FRL_ACT_TANH) {
      for (int o = 0; o < O; o++) row[o] = tanhf(row[o] + b[o]);
    } else {
      for (int o = 0; o < O; o++) row[o] += b[o];
    }
  }
}

/* One row of a ReLU backward, g = d * (y > 0), where d is g itself (in place) or, when wr is
 * not NULL, c * wr (a row of an outer product, see relu_backward_db); db += g when db is not
 * NULL. Each case is its own loop, so each vectorizes with no test inside. */
static inline __attribute__((always_inline)) void relu_row(float *restrict g, float c,
                                                           const float *restrict wr,
                                                           const float *restrict y,
                                                           float *restrict db, int O) {
  if (wr && db) {
    for (int o = 0; o < O; o++) {
      const float d = c * wr[o], v = y[o] > 0.0f ? d : 0.0f;
      g[o] = v;
      db[o] += v;
    }
  } else if (wr) {
    for (int o = 0; o < O; o++) {
      const float d = c * wr[o];
      g[o] = y[o] > 0.0f ? d : 0.0f;
    }
  } else if (db) {
    for (int o = 0; o < O; o++) {
      const float v = y[o] > 0.0f ? g[o] : 0.0f;
      g[o] = v;
      db[o] += v;
    }
  } else {
    for (int o = 0; o < O; o++) g[o] = y[o] > 0.0f ? g[o] : 0.0f;
  }
}

/* g[rows, O] = d * relu'(.) given relu's output, where d is g's own contents (dout, in place)
 * or, when col is not NULL, the outer product col[rows] wr[O] (the input gradient of a
 * single-output layer above, never materialized); and db[O] += the column sums of g's first
 * grad_rows rows, the bias gradient of the layer below, taken in the same pass. */
FRL_VEC_CLONES static void relu_backward_db(float *g, const float *col, const float *wr,
                                            const float *out, float *db, int rows,
                                            int grad_rows, int O) {
  for (int r = 0; r < rows; r++) {
    const size_t at = (size_t)r * O;
    relu_row(g + at, col ? col[r] : 0.0f, col ? wr : NULL, out + at, r < grad_rows ? db : NULL,
             O);
  }
}

#if FRL_MLP_X86
/* y[O] = w[O, I] x[I] for one input row with AVX2 + FMA, chosen at run time (the build targets
 * x86-64-v2). Eight rows at a time, one accumulator each: eight independent FMA chains hide the
 * FMA latency and x is loaded once per eight rows. This is the actors' per-step cost: on the
 * 256 x 256 layer it takes 4.5 us where OpenBLAS's sgemv takes 6.2 us (dev machine, weights in
 * L2), which is what keeps a 17-256-256-12 policy step near 5 us. */
__attribute__((target("avx2,fma"))) static void gemv_avx2(float *restrict y,
                                                          const float *restrict x,
                                                          const float *restrict w, int I, int O) {
  const int I8 = I & ~7;
  int o = 0;
  for (; o + 8 <= O; o += 8) {
    /* Named accumulators: GCC keeps an array of __m256 in memory, not in registers. */
    const float *r0 = w + (size_t)o * I, *r1 = r0 + I, *r2 = r1 + I, *r3 = r2 + I;
    const float *r4 = r3 + I, *r5 = r4 + I, *r6 = r5 + I, *r7 = r6 + I;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int i = 0; i < I8; i += 8) {
      __m256 xv = _mm256_loadu_ps(x + i);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + i), xv, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + i), xv, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + i), xv, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + i), xv, a3);
      a4 = _mm256_fmadd_ps(_mm256_loadu_ps(r4 + i), xv, a4);
      a5 = _mm256_fmadd_ps(_mm256_loadu_ps(r5 + i), xv, a5);
      a6 = _mm256_fmadd_ps(_mm256_loadu_ps(r6 + i), xv, a6);
      a7 = _mm256_fmadd_ps(_mm256_loadu_ps(r7 + i), xv, a7);
    }
    /* Transpose-and-add the eight accumulators into eight sums. */
    __m256 h01 = _mm256_hadd_ps(a0, a1), h23 = _mm256_hadd_ps(a2, a3);
    __m256 h45 = _mm256_hadd_ps(a4, a5), h67 = _mm256_hadd_ps(a6, a7);
    __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
    __m256 sum = _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20),
                               _mm256_permute2f128_ps(h0123, h4567, 0x31));
    _mm256_storeu_ps(y + o, sum);
    for (int i = I8; i < I; i++)
      for (int j = 0; j < 8; j++) y[o + j] += r0[(size_t)j * I + i] * x[i];
  }
  for (; o < O; o++) {
    const float *row = w + (size_t)o * I;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < I8; i += 8)
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(x + i), acc);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_hadd_ps(h, h);
    h = _mm_hadd_ps(h, h);
    float s = _mm_cvtss_f32(h);
    for (int i = I8; i < I; i++) s += row[i] * x[i];
    y[o] = s;
  }
}
#endif

/* out[B, O] = in w^T (no bias), by the fastest route for the batch. */
static void matmul(float *out, const float *in, const float *w, int B, int I, int O) {
#if FRL_MLP_X86
  if (B == 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    gemv_avx2(out, in, w, I, O);
    return;
  }
#endif
  if (O == 1 && B > 1) {
    /* A single-output layer (a critic's Q head) is a matrix-vector product: sgemv reads the
     * input once; sgemm with N = 1 takes four times as long (512 x 256: 51 vs 12 us). */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, B, I, 1.0f, in, I, w, 1, 0.0f, out, 1);
    return;
  }
  frl_linear_forward(out, in, w, NULL, B, I, O);
}

/* Parameter gradients of one layer from `rows` rows: dw[O, I] += dh^T x, and db[O] += the
 * column sums of dh unless db is NULL. */
static void layer_param_grads(float *dw, float *db, const float *dh, const float *x, const float *w,
                              int rows, int I, int O) {
  if (O == 1) {
    /* dw[I] += x^T dh: a matrix-vector product; sgemm with M = 1 takes seven times as long
     * (256 x 256: 33 vs 4.7 us). */
    cblas_sgemv(CblasRowMajor, CblasTrans, rows, I, 1.0f, x, I, dh, 1, 1.0f, dw, 1);
    if (db) {
      float sum = 0.0f;
      for (int r = 0; r < rows; r++) sum += dh[r];
      db[0] += sum;
    }
    return;
  }
  frl_linear_backward(NULL, dw, db, dh, x, w, rows, I, O);
}

/* Input gradient of one layer for `rows` rows: dx[rows, I] = dh w. */
static void layer_input_grad(float *dx, const float *dh, const float *x, const float *w, int rows,
                             int I, int O) {
  if (O == 1) {
    /* An outer product dh[rows] w[I]: a loop of stores, which sgemm with K = 1 is slower at.
     * (Under a ReLU the backward pass forms it inside the ReLU pass instead.) */
    for (int r = 0; r < rows; r++) {
      float *row = dx + (size_t)r * I;
      const float d = dh[r];
      for (int i = 0; i < I; i++) row[i] = d * w[i];
    }
    return;
  }
  frl_linear_backward(dx, NULL, NULL, dh, x, w, rows, I, O);
}

/* din = dout * f'(.) given f's output; returns din, or dout itself for the identity (no copy). */
static const float *act_backward(frl_activation_t a, float *din, const float *dout,
                                 const float *out, int N) {
  if (a == FRL_ACT_RELU) {
    frl_relu_backward(din, dout, out, N);
    return din;
  }
  if (a == FRL_ACT_TANH) {
    frl_tanh_backward(din, dout, out, N);
    return din;
  }
  return dout;
}

void frl_mlp_forward(frl_mlp_t *m, float *out, const float *in, int B) {
  assert(B >= 1 && B <= m->max_batch);
  const frl_mlp_shape_t *s = &m->shape;
  const int L = s->n_layers;
  /* Keep the input: the first layer's weight gradient needs it, and the caller may reuse its
   * buffer between forward and backward. */
  if (in != m->input) memcpy(m->input, in, (size_t)B * (size_t)s->sizes[0] * sizeof *in);
  const float *x = m->input;
  for (int l = 0; l < L; l++) {
    const int I = s->sizes[l], O = s->sizes[l + 1];
    matmul(m->act[l], x, m->params + m->w_off[l], B, I, O);
    bias_act(m->act[l], m->params + m->b_off[l], B, O, l + 1 < L ? s->hidden_act : s->out_act);
    x = m->act[l];
  }
  if (out != m->act[L - 1])
    memcpy(out, m->act[L - 1], (size_t)B * (size_t)s->sizes[L] * sizeof *out);
  m->last_B = B;
}

void frl__mlp_backward_rows(frl_mlp_t *m, float *grads, int grad_rows, float *din, int din_row0,
                            int din_col0, int din_cols, const float *dout, int rows) {
  const frl_mlp_shape_t *s = &m->shape;
  const int L = s->n_layers;
  assert(rows >= 1 && rows <= m->last_B);
  if (!grads) grad_rows = 0;
  assert(grad_rows >= 0 && grad_rows <= rows);
  assert(!din || (din_row0 >= 0 && din_row0 < rows && din_col0 >= 0 && din_cols >= 1 &&
                  din_col0 + din_cols <= s->sizes[0]));
  /* Rows whose hidden gradients matter: all of them when an input gradient is wanted (the
   * input-gradient rows may be anywhere), else only those feeding parameter gradients. */
  const int need = din ? rows : grad_rows;
  if (need == 0) return;
  float *spare = m->grad_a, *other = m->grad_b;
  const float *dh = act_backward(s->out_act, spare, dout, m->act[L - 1], need * s->sizes[L]);
  if (dh == spare) {
    spare = other;
    other = m->grad_a;
  }
  bool db_done = false; /* the bias gradient of layer l was taken with its ReLU backward */
  for (int l = L - 1; l >= 0; l--) {
    const int I = s->sizes[l], O = s->sizes[l + 1];
    const float *w = m->params + m->w_off[l];
    const float *x = l > 0 ? m->act[l - 1] : m->input;
    if (grad_rows > 0)
      layer_param_grads(grads + m->w_off[l], db_done ? NULL : grads + m->b_off[l], dh, x, w,
                        grad_rows, I, O);
    if (l > 0) {
      /* dx[need, I] = dh w, then through the hidden activation, in place. */
      float *db_below = grad_rows > 0 ? grads + m->b_off[l - 1] : NULL;
      if (s->hidden_act == FRL_ACT_RELU && O == 1) {
        /* dx is the outer product dh w: formed inside the ReLU pass, one pass instead of two. */
        relu_backward_db(spare, dh, w, m->act[l - 1], db_below, need, grad_rows, I);
        db_done = true;
      } else if (s->hidden_act == FRL_ACT_RELU) {
        layer_input_grad(spare, dh, x, w, need, I, O);
        relu_backward_db(spare, NULL, NULL, m->act[l - 1], db_below, need, grad_rows, I);
        db_done = true;
      } else {
        layer_input_grad(spare, dh, x, w, need, I, O);
        act_backward(s->hidden_act, spare, spare, m->act[l - 1], need * I);
        db_done = false;
      }
      dh = spare;
      float *t = spare;
      spare = other;
      other = t;
    } else if (din) {
      /* The requested block of dx = dh w: rows from din_row0, columns din_col0.. of w. */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows - din_row0, din_cols, O, 1.0f,
                  dh + (size_t)din_row0 * O, O, w + din_col0, I, 0.0f, din, din_cols);
    }
  }
}

void frl_mlp_backward(frl_mlp_t *m, float *grads, float *din, const float *dout, int B) {
  assert(B == m->last_B);
  frl__mlp_backward_rows(m, grads, B, din, 0, 0, m->shape.sizes[0], dout, B);
}

/* t += tau (p - t): some 10^5 floats per critic after every learner step. */
FRL_VEC_CLONES static void polyak(float *restrict t, const float *restrict p, size_t n,
                                  float tau) {
  for (size_t k = 0; k < n; k++) t[k] += tau * (p[k] - t[k]);
}

void frl__mlp_polyak(frl_mlp_t *target, const frl_mlp_t *source, float tau) {
  assert(target->n_params == source->n_params);
  float *restrict t = target->params;
  const float *restrict p = source->params;
  const size_t n = target->n_params;
  if (tau == 1.0f) { /* a hard copy, exactly (t + (p - t) need not round to p) */
    memcpy(t, p, n * sizeof *t);
    return;
  }
  polyak(t, p, n, tau);
}
