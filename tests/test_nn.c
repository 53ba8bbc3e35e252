/* test_nn.c: every backward pass in nn.c and qnet.c against central finite differences, the
 * losses, clipping and Adam against closed forms, and the qnet against a double-precision
 * reference forward written here from the layout documented in qnet.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "numeric_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "nn.h"
#include "qnet.h"
#include "rng.h"

/* Values bounded away from zero (for kinks at 0): magnitude in [0.1, 1], random sign. */
static void fill_away_from_zero(float *x, size_t n, frl_rng_t *rng) {
  for (size_t k = 0; k < n; k++) {
    float m = (float)(0.1 + 0.9 * frl_rng_uniform(rng));
    x[k] = frl_rng_uniform(rng) < 0.5 ? -m : m;
  }
}

static double dot_d(const float *a, const float *b, size_t n) {
  double s = 0.0;
  for (size_t k = 0; k < n; k++) s += (double)a[k] * b[k];
  return s;
}

/* ---- linear ---------------------------------------------------------------------------- */

/* Scalar probe L = sum(G * linear(x)) computed with the kernel under test. */
static double linear_probe(const float *G, const float *x, const float *w, const float *b, int B,
                           int I, int O, float *scratch) {
  frl_linear_forward(scratch, x, w, b, B, I, O);
  return dot_d(G, scratch, (size_t)B * O);
}

static void check_linear_forward(int B, int I, int O, uint64_t seed) {
  frl_rng_t rng;
  frl_rng_seed(&rng, seed);
  float *x = malloc(sizeof(float) * B * I), *w = malloc(sizeof(float) * O * I);
  float *b = malloc(sizeof(float) * O), *y = malloc(sizeof(float) * B * O);
  fill_uniform(x, (size_t)B * I, -1, 1, &rng);
  fill_uniform(w, (size_t)O * I, -1, 1, &rng);
  fill_uniform(b, (size_t)O, -1, 1, &rng);
  for (int pass = 0; pass < 2; pass++) {
    const float *bias = pass == 0 ? b : NULL;
    for (int k = 0; k < B * O; k++) y[k] = NAN; /* output is overwritten, never read */
    frl_linear_forward(y, x, w, bias, B, I, O);
    for (int r = 0; r < B; r++)
      for (int o = 0; o < O; o++) {
        double want = bias ? bias[o] : 0.0;
        for (int i = 0; i < I; i++) want += (double)x[r * I + i] * w[o * I + i];
        expect_close("linear y", r * O + o, y[r * O + o], want, 1e-5, 1e-5);
      }
  }
  free(x), free(w), free(b), free(y);
}

static void test_linear_forward(void **state) {
  check_linear_forward(1, 4, 3, 1);     /* batch-1 plain loop */
  check_linear_forward(1, 13, 7, 2);    /* loop with a tail after the 8-wide blocks */
  check_linear_forward(1, 100, 90, 3);  /* batch-1 through sgemv */
  check_linear_forward(6, 5, 4, 4);     /* sgemm */
  check_linear_forward(33, 70, 65, 5);  /* sgemm, awkward sizes */
}

static void check_linear_backward(int B, int I, int O, uint64_t seed) {
  frl_rng_t rng;
  frl_rng_seed(&rng, seed);
  size_t nx = (size_t)B * I, nw = (size_t)O * I, ny = (size_t)B * O;
  float *x = malloc(sizeof(float) * nx), *w = malloc(sizeof(float) * nw);
  float *b = malloc(sizeof(float) * O), *G = malloc(sizeof(float) * ny);
  float *y = malloc(sizeof(float) * ny), *din = malloc(sizeof(float) * nx);
  float *dw = malloc(sizeof(float) * nw), *db = malloc(sizeof(float) * O);
  fill_uniform(x, nx, -1, 1, &rng);
  fill_uniform(w, nw, -1, 1, &rng);
  fill_uniform(b, (size_t)O, -1, 1, &rng);
  fill_uniform(G, ny, -1, 1, &rng);
  /* dw and db start non-zero to check they accumulate; din starts as garbage to check it is
   * overwritten. */
  for (size_t k = 0; k < nw; k++) dw[k] = 0.25f;
  for (int o = 0; o < O; o++) db[o] = -0.5f;
  for (size_t k = 0; k < nx; k++) din[k] = NAN; /* BLAS beta = 0 must not read it */
  frl_linear_backward(din, dw, db, G, x, w, B, I, O);

  const float h = 1e-2f; /* L is linear in each argument: central differences are exact up to
                            float rounding of the forward, so a large step is the accurate one */
  for (size_t k = 0; k < nx; k++) {
    float s = x[k];
    x[k] = s + h;
    double lp = linear_probe(G, x, w, b, B, I, O, y);
    x[k] = s - h;
    double lm = linear_probe(G, x, w, b, B, I, O, y);
    x[k] = s;
    expect_close("linear din", (int)k, din[k], (lp - lm) / (2.0 * h), 2e-4, 1e-3);
  }
  for (size_t k = 0; k < nw; k++) {
    float s = w[k];
    w[k] = s + h;
    double lp = linear_probe(G, x, w, b, B, I, O, y);
    w[k] = s - h;
    double lm = linear_probe(G, x, w, b, B, I, O, y);
    w[k] = s;
    expect_close("linear dw", (int)k, dw[k] - 0.25, (lp - lm) / (2.0 * h), 2e-4, 1e-3);
  }
  for (int o = 0; o < O; o++) {
    float s = b[o];
    b[o] = s + h;
    double lp = linear_probe(G, x, w, b, B, I, O, y);
    b[o] = s - h;
    double lm = linear_probe(G, x, w, b, B, I, O, y);
    b[o] = s;
    expect_close("linear db", o, db[o] + 0.5, (lp - lm) / (2.0 * h), 2e-4, 1e-3);
  }
  /* din = NULL skips the input gradient and still accumulates the parameter gradients. */
  float dw0 = dw[0];
  frl_linear_backward(NULL, dw, db, G, x, w, B, I, O);
  expect_close("linear dw twice", 0, dw[0] - dw0, dw0 - 0.25, 1e-5, 1e-5);
  free(x), free(w), free(b), free(G), free(y), free(din), free(dw), free(db);
}

static void test_linear_backward(void **state) {
  check_linear_backward(1, 3, 2, 11);
  check_linear_backward(5, 4, 3, 12);
  check_linear_backward(7, 9, 6, 13);
}

static void test_linear_init(void **state) {
  /* PyTorch's default: U(-1/sqrt(I), 1/sqrt(I)) for weights and bias. A uniform on [-c, c]
   * has mean 0 and variance c^2/3; with 64*100 draws the sample mean's standard error is
   * c/sqrt(3*6400) ~ 0.0072 c, so a 5-sigma band of 0.04 c never fails by chance for this
   * fixed seed and would catch a wrong bound (e.g. sqrt(2/I) or 1/I). */
  enum { I = 64, O = 100 };
  static float w[O * I], b[O];
  frl_rng_t rng;
  frl_rng_seed(&rng, 7);
  frl_linear_init(w, b, I, O, &rng);
  double c = 1.0 / sqrt((double)I), sum = 0, sq = 0, maxabs = 0;
  for (int k = 0; k < O * I; k++) {
    sum += w[k];
    sq += (double)w[k] * w[k];
    maxabs = fmax(maxabs, fabs(w[k]));
  }
  for (int o = 0; o < O; o++) assert_true(fabs(b[o]) <= c);
  assert_true(maxabs <= c);
  assert_true(maxabs > 0.95 * c);
  assert_true(fabs(sum / (O * I)) < 0.04 * c);
  expect_close("init var", 0, sq / (O * I), c * c / 3.0, 0.0, 0.05);
}

/* ---- activations ----------------------------------------------------------------------- */

typedef void (*act_fwd_t)(float *, const float *, int);
typedef void (*act_bwd_t)(float *, const float *, const float *, int);

static void check_activation(const char *name, act_fwd_t fwd, act_bwd_t bwd, uint64_t seed) {
  enum { N = 43 }; /* four-wide blocks and a scalar tail */
  float x[N], y[N], G[N], din[N], tmp[N];
  frl_rng_t rng;
  frl_rng_seed(&rng, seed);
  fill_away_from_zero(x, N, &rng); /* ReLU's kink at 0 is never within a step */
  fill_uniform(G, N, -1, 1, &rng);
  fwd(y, x, N);
  bwd(din, G, y, N);
  const float h = 1e-3f;
  for (int k = 0; k < N; k++) {
    float s = x[k];
    x[k] = s + h;
    fwd(tmp, x, N);
    double lp = dot_d(G, tmp, N);
    x[k] = s - h;
    fwd(tmp, x, N);
    double lm = dot_d(G, tmp, N);
    x[k] = s;
    expect_close(name, k, din[k], (lp - lm) / (2.0 * h), 2e-4, 2e-3);
  }
  /* In-place use (din aliasing dout) gives the same result. */
  float alias[N];
  memcpy(alias, G, sizeof alias);
  bwd(alias, alias, y, N);
  assert_memory_equal(alias, din, sizeof alias);
}

static void test_relu(void **state) {
  float x[6] = {-2.0f, -0.0f, 0.5f, 3.0f, NAN, -1.0f}, y[6];
  frl_relu_forward(y, x, 6);
  assert_true(y[0] == 0.0f && y[1] == 0.0f && y[2] == 0.5f && y[3] == 3.0f && y[5] == 0.0f);
  assert_true(isnan(y[4])); /* NaN propagates, as in PyTorch, so poisoned inputs stay visible */
  frl_relu_forward(y, x + 1, 5); /* the vector block then the tail both see the NaN */
  assert_true(isnan(y[3]));
  check_activation("relu din", frl_relu_forward, frl_relu_backward, 21);
}

static void test_tanh(void **state) {
  float x[3] = {-1.0f, 0.0f, 2.0f}, y[3];
  frl_tanh_forward(y, x, 3);
  for (int k = 0; k < 3; k++) expect_close("tanh", k, y[k], tanh((double)x[k]), 1e-6, 1e-6);
  check_activation("tanh din", frl_tanh_forward, frl_tanh_backward, 22);
}

/* ---- dueling ------------------------------------------------------------------------------ */

static void test_dueling(void **state) {
  enum { B = 3, A = 4 };
  float v[B], adv[B * A], q[B * A], G[B * A], dv[B], dadv[B * A], tmp[B * A];
  frl_rng_t rng;
  frl_rng_seed(&rng, 31);
  fill_uniform(v, B, -2, 2, &rng);
  fill_uniform(adv, B * A, -2, 2, &rng);
  fill_uniform(G, B * A, -1, 1, &rng);
  frl_dueling_forward(q, v, adv, B, A);
  for (int r = 0; r < B; r++) {
    double mean = 0;
    for (int a = 0; a < A; a++) mean += adv[r * A + a];
    mean /= A;
    for (int a = 0; a < A; a++)
      expect_close("dueling q", r * A + a, q[r * A + a], v[r] + adv[r * A + a] - mean, 1e-6,
                   1e-6);
  }
  for (int k = 0; k < B; k++) dv[k] = 1e30f;
  frl_dueling_backward(dv, dadv, G, B, A);
  const float h = 1e-2f; /* linear map: exact up to rounding */
  for (int r = 0; r < B; r++) {
    float s = v[r];
    v[r] = s + h;
    frl_dueling_forward(tmp, v, adv, B, A);
    double lp = dot_d(G, tmp, B * A);
    v[r] = s - h;
    frl_dueling_forward(tmp, v, adv, B, A);
    double lm = dot_d(G, tmp, B * A);
    v[r] = s;
    expect_close("dueling dv", r, dv[r], (lp - lm) / (2.0 * h), 1e-4, 1e-3);
  }
  for (int k = 0; k < B * A; k++) {
    float s = adv[k];
    adv[k] = s + h;
    frl_dueling_forward(tmp, v, adv, B, A);
    double lp = dot_d(G, tmp, B * A);
    adv[k] = s - h;
    frl_dueling_forward(tmp, v, adv, B, A);
    double lm = dot_d(G, tmp, B * A);
    adv[k] = s;
    expect_close("dueling dadv", k, dadv[k], (lp - lm) / (2.0 * h), 1e-4, 1e-3);
  }
}

/* ---- losses -------------------------------------------------------------------------------- */

static double huber_ref(double x, double delta) {
  double ax = fabs(x);
  return ax <= delta ? 0.5 * x * x : delta * (ax - 0.5 * delta);
}

static void test_huber(void **state) {
  enum { B = 8 };
  const float delta = 1.5f;
  /* Errors pred - target: four inside |x| < delta, four beyond, both signs, none near the
   * kink at +-delta so a finite-difference step never crosses it. */
  const float err[B] = {0.3f, -1.2f, 0.0f, 1.1f, 2.5f, -4.0f, 1.9f, -1.8f};
  float pred[B], target[B], w[B], dpred[B], dnull[B];
  frl_rng_t rng;
  frl_rng_seed(&rng, 41);
  fill_uniform(target, B, -3, 3, &rng);
  fill_uniform(w, B, 0.1, 1.0, &rng);
  for (int k = 0; k < B; k++) pred[k] = target[k] + err[k];

  float L = frl_huber_loss(dpred, pred, target, w, B, delta);
  double want = 0;
  for (int k = 0; k < B; k++) want += w[k] * huber_ref((double)pred[k] - target[k], delta);
  expect_close("huber L", 0, L, want / B, 1e-6, 1e-5);
  /* Closed-form gradient: w clamp(x, -delta, delta) / B, both regimes. */
  for (int k = 0; k < B; k++) {
    double x = (double)pred[k] - target[k];
    double g = fabs(x) <= delta ? x : (x > 0 ? delta : -delta);
    expect_close("huber closed dpred", k, dpred[k], w[k] * g / B, 1e-6, 1e-5);
  }
  /* Finite differences of the returned loss. Central differences are exact on the quadratic
   * and on the linear piece, so h can be large, which keeps float rounding of L negligible. */
  const float h = 1e-2f;
  float scratch[B];
  for (int k = 0; k < B; k++) {
    float s = pred[k];
    pred[k] = s + h;
    double lp = frl_huber_loss(scratch, pred, target, w, B, delta);
    pred[k] = s - h;
    double lm = frl_huber_loss(scratch, pred, target, w, B, delta);
    pred[k] = s;
    expect_close("huber fd dpred", k, dpred[k], (lp - lm) / (2.0 * h), 2e-5, 2e-3);
  }
  /* NULL weights mean all ones. */
  float Ln = frl_huber_loss(dnull, pred, target, NULL, B, delta);
  double wantn = 0;
  for (int k = 0; k < B; k++) wantn += huber_ref((double)pred[k] - target[k], delta);
  expect_close("huber L unweighted", 0, Ln, wantn / B, 1e-6, 1e-5);
  for (int k = 0; k < B; k++) expect_close("huber unweighted", k, dnull[k] * w[k], dpred[k], 1e-7, 1e-5);
  /* A NaN error stays visible in the gradient instead of being clamped to +-delta. */
  pred[0] = NAN;
  frl_huber_loss(dpred, pred, target, w, B, delta);
  assert_true(isnan(dpred[0]));
}

static void test_mse(void **state) {
  enum { B = 3, D = 4 };
  float pred[B * D], target[B * D], w[B], dpred[B * D], scratch[B * D];
  frl_rng_t rng;
  frl_rng_seed(&rng, 51);
  fill_uniform(pred, B * D, -2, 2, &rng);
  fill_uniform(target, B * D, -2, 2, &rng);
  fill_uniform(w, B, 0.1, 1, &rng);
  float L = frl_mse_loss(dpred, pred, target, w, B, D);
  double want = 0;
  for (int r = 0; r < B; r++)
    for (int d = 0; d < D; d++) {
      double x = (double)pred[r * D + d] - target[r * D + d];
      want += w[r] * x * x;
      expect_close("mse closed dpred", r * D + d, dpred[r * D + d], 2.0 * w[r] * x / (B * D),
                   1e-6, 1e-5);
    }
  expect_close("mse L", 0, L, want / (B * D), 1e-6, 1e-5);
  const float h = 1e-2f; /* quadratic: central differences are exact */
  for (int k = 0; k < B * D; k++) {
    float s = pred[k];
    pred[k] = s + h;
    double lp = frl_mse_loss(scratch, pred, target, w, B, D);
    pred[k] = s - h;
    double lm = frl_mse_loss(scratch, pred, target, w, B, D);
    pred[k] = s;
    expect_close("mse fd dpred", k, dpred[k], (lp - lm) / (2.0 * h), 2e-5, 2e-3);
  }
  float Ln = frl_mse_loss(dpred, pred, target, NULL, B, D);
  double wantn = 0;
  for (int k = 0; k < B * D; k++) wantn += ((double)pred[k] - target[k]) * (pred[k] - target[k]);
  expect_close("mse L unweighted", 0, Ln, wantn / (B * D), 1e-6, 1e-5);
}

/* ---- clipping and Adam --------------------------------------------------------------------- */

static void test_clip_grad_norm(void **state) {
  /* (3, 4, 0, 12) has norm 13; clipping to 6.5 halves every entry. */
  float g[4] = {3, 4, 0, 12};
  float n = frl_clip_grad_norm(g, 4, 6.5f);
  expect_close("clip norm", 0, n, 13.0, 1e-6, 1e-6);
  const float want[4] = {1.5f, 2.0f, 0.0f, 6.0f};
  for (int k = 0; k < 4; k++) expect_close("clip g", k, g[k], want[k], 1e-6, 1e-6);
  /* Below the bound: unchanged, norm still reported. */
  float n2 = frl_clip_grad_norm(g, 4, 100.0f);
  expect_close("clip norm below", 0, n2, 6.5, 1e-6, 1e-6);
  for (int k = 0; k < 4; k++) expect_close("clip unchanged", k, g[k], want[k], 0, 0);
  /* max_norm <= 0 disables clipping. */
  float n3 = frl_clip_grad_norm(g, 4, 0.0f);
  expect_close("clip disabled", 0, n3, 6.5, 1e-6, 1e-6);
  assert_true(g[3] == 6.0f);
  /* Seven entries: a four-wide block and a tail that holds the largest one. */
  float g7[7] = {1, 2, 2, 0, 0, 0, 4};
  expect_close("clip norm 7", 0, frl_clip_grad_norm(g7, 7, 2.5f), 5.0, 1e-6, 1e-6);
  expect_close("clip g7 tail", 6, g7[6], 2.0, 1e-6, 1e-6);
  expect_close("clip g7 block", 1, g7[1], 1.0, 1e-6, 1e-6);
  /* Many tiny entries: 10^6 entries of 1e-3 have norm exactly 1. */
  size_t N = 1000000;
  float *big = malloc(N * sizeof *big);
  for (size_t k = 0; k < N; k++) big[k] = 1e-3f;
  expect_close("clip long", 0, frl_clip_grad_norm(big, N, 0.5f), 1.0, 1e-5, 1e-5);
  expect_close("clip long g", 0, big[N - 1], 0.5e-3, 1e-9, 1e-5);
  free(big);
}

static void test_adam_two_steps(void **state) {
  /* Kingma & Ba 2015, Algorithm 1, written out for two steps:
   *   m1 = (1-b1) g1,               v1 = (1-b2) g1^2
   *   theta1 = theta0 - lr (m1/(1-b1)) / (sqrt(v1/(1-b2)) + eps) = theta0 - lr g1/(|g1| + eps)
   *   m2 = b1 m1 + (1-b1) g2,       v2 = b2 v1 + (1-b2) g2^2
   *   theta2 = theta1 - lr (m2/(1-b1^2)) / (sqrt(v2/(1-b2^2)) + eps) */
  enum { N = 6 }; /* a four-wide block and a scalar tail */
  const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-3;
  const float g1[N] = {1.0f, -2.0f, 0.5f, 0.0f, -0.25f, 4.0f};
  const float g2[N] = {0.5f, 1.0f, -1.0f, 3.0f, 0.125f, -4.0f};
  float p[N] = {0.1f, -0.2f, 0.3f, 1.0f, -0.7f, 0.0f};
  double want[N];
  for (int k = 0; k < N; k++) {
    double t1 = p[k] - lr * g1[k] / (fabs((double)g1[k]) + eps);
    double m1 = (1 - b1) * g1[k], v1 = (1 - b2) * g1[k] * g1[k];
    double m2 = b1 * m1 + (1 - b1) * g2[k], v2 = b2 * v1 + (1 - b2) * g2[k] * g2[k];
    want[k] = t1 - lr * (m2 / (1 - b1 * b1)) / (sqrt(v2 / (1 - b2 * b2)) + eps);
  }
  frl_adam_t *a = frl_adam_new(N, (float)lr, (float)b1, (float)b2, (float)eps);
  assert_non_null(a);
  frl_adam_step(a, p, g1);
  expect_close("adam step1", 0, p[0], 0.1 - 0.1 * 1.0 / 1.001, 1e-6, 1e-6);
  expect_close("adam step1 zero grad", 3, p[3], 1.0, 0, 0);
  frl_adam_step(a, p, g2);
  assert_int_equal(a->t, 2);
  for (int k = 0; k < N; k++) expect_close("adam step2", k, p[k], want[k], 2e-6, 1e-5);
  frl_adam_destroy(&a);
  assert_null(a);
  frl_adam_destroy(&a); /* NULL is accepted */
}

/* ---- qnet ------------------------------------------------------------------------------------ */

/* Double-precision Q(obs) for one row, read from the parameter block in the order qnet.h
 * documents; an independent reference for both the layout and the forward pass. */
static void qnet_ref_forward(double *q, const frl_qnet_shape_t *s, const double *p,
                             const float *obs) {
  double a[2][512];
  int I = s->obs_dim;
  for (int i = 0; i < I; i++) a[0][i] = obs[i];
  int cur = 0;
  for (int l = 0; l < s->n_hidden; l++) {
    int O = s->hidden[l];
    const double *w = p, *b = p + (size_t)O * I;
    for (int o = 0; o < O; o++) {
      double z = b[o];
      for (int i = 0; i < I; i++) z += w[o * I + i] * a[cur][i];
      a[1 - cur][o] = z > 0 ? z : 0;
    }
    p += (size_t)O * I + O;
    cur = 1 - cur;
    I = O;
  }
  const int A = s->n_actions;
  if (s->dueling) {
    double v = p[I];
    for (int i = 0; i < I; i++) v += p[i] * a[cur][i];
    p += I + 1;
    double adv[64], mean = 0;
    for (int k = 0; k < A; k++) {
      adv[k] = p[(size_t)A * I + k];
      for (int i = 0; i < I; i++) adv[k] += p[k * I + i] * a[cur][i];
      mean += adv[k];
    }
    mean /= A;
    for (int k = 0; k < A; k++) q[k] = v + adv[k] - mean;
  } else {
    for (int k = 0; k < A; k++) {
      q[k] = p[(size_t)A * I + k];
      for (int i = 0; i < I; i++) q[k] += p[k * I + i] * a[cur][i];
    }
  }
}

static double qnet_ref_probe(const frl_qnet_shape_t *s, const double *p, const float *obs,
                             const float *G, int B) {
  double L = 0, q[64];
  for (int r = 0; r < B; r++) {
    qnet_ref_forward(q, s, p, obs + (size_t)r * s->obs_dim);
    for (int k = 0; k < s->n_actions; k++) L += G[r * s->n_actions + k] * q[k];
  }
  return L;
}

static void check_qnet_gradient(bool dueling, uint64_t seed) {
  frl_qnet_shape_t s = {.obs_dim = 3, .n_actions = 3, .n_hidden = 2, .hidden = {6, 5},
                        .dueling = dueling};
  enum { B = 4, FWD_B = 7 };
  frl_rng_t rng;
  frl_rng_seed(&rng, seed);
  frl_qnet_t *q = frl_qnet_new(&s, FWD_B, &rng);
  assert_non_null(q);
  size_t N = frl_qnet_n_params(q);
  /* Layout count from the header: trunk w,b per layer, then the head(s). */
  size_t want_n = (3 * 6 + 6) + (6 * 5 + 5) + (dueling ? 5 + 1 : 0) + 3 * 5 + 3;
  assert_int_equal(N, want_n);
  assert_int_equal(frl_qnet_param_count(&s), want_n);

  float *params = frl_qnet_params(q);
  float obs[FWD_B * 3], qout[FWD_B * 3], G[B * 3];
  fill_uniform(obs, FWD_B * 3, -1, 1, &rng);
  fill_uniform(G, B * 3, -1, 1, &rng);
  double *pd = malloc(N * sizeof *pd);
  for (size_t k = 0; k < N; k++) pd[k] = params[k];

  /* Forward of FWD_B rows against the reference; backward of the first B rows only. */
  frl_qnet_forward(q, qout, obs, FWD_B);
  for (int r = 0; r < FWD_B; r++) {
    double ref[3];
    qnet_ref_forward(ref, &s, pd, obs + r * 3);
    for (int k = 0; k < 3; k++) expect_close("qnet forward", r * 3 + k, qout[r * 3 + k], ref[k], 1e-5, 1e-5);
  }
  float *grads = malloc(N * sizeof *grads);
  for (size_t k = 0; k < N; k++) grads[k] = 1.0f; /* accumulates onto this */
  frl_qnet_backward(q, grads, G, B);

  /* Double-precision central differences of sum(G * Q) on every parameter: h = 1e-6 keeps
   * the truncation error far below float resolution and, for these random weights, never
   * moves a pre-activation across ReLU's kink. */
  const double h = 1e-6;
  for (size_t k = 0; k < N; k++) {
    double s0 = pd[k];
    pd[k] = s0 + h;
    double lp = qnet_ref_probe(&s, pd, obs, G, B);
    pd[k] = s0 - h;
    double lm = qnet_ref_probe(&s, pd, obs, G, B);
    pd[k] = s0;
    expect_close(dueling ? "dueling qnet grad" : "plain qnet grad", (int)k, grads[k] - 1.0,
                 (lp - lm) / (2 * h), 1e-5, 1e-4);
  }
  free(grads);
  free(pd);
  frl_qnet_destroy(&q);
  assert_null(q);
}

static void test_qnet_gradient_plain(void **state) { check_qnet_gradient(false, 61); }
static void test_qnet_gradient_dueling(void **state) { check_qnet_gradient(true, 62); }

static void check_argmax(const frl_qnet_shape_t *s, uint64_t seed) {
  frl_rng_t rng;
  frl_rng_seed(&rng, seed);
  frl_qnet_t *q = frl_qnet_new(s, 8, &rng);
  assert_non_null(q);
  size_t N = frl_qnet_n_params(q);
  double *pd = malloc(N * sizeof *pd);
  for (size_t k = 0; k < N; k++) pd[k] = frl_qnet_params(q)[k];
  float obs[64];
  double ref[64];
  for (int t = 0; t < 20; t++) {
    fill_uniform(obs, (size_t)s->obs_dim, -2, 2, &rng);
    qnet_ref_forward(ref, s, pd, obs);
    int want = 0;
    for (int a = 1; a < s->n_actions; a++)
      if (ref[a] > ref[want]) want = a;
    int got = frl_qnet_argmax(q, obs);
    /* Skip near-ties that float rounding may legitimately order either way. */
    if (fabs(ref[got] - ref[want]) > 1e-5) assert_int_equal(got, want);
  }
  free(pd);
  frl_qnet_destroy(&q);
}

static void test_qnet_argmax(void **state) {
  frl_qnet_shape_t small = {.obs_dim = 4, .n_actions = 2, .n_hidden = 2, .hidden = {64, 64}};
  frl_qnet_shape_t large = {.obs_dim = 17, .n_actions = 12, .n_hidden = 2, .hidden = {256, 256},
                            .dueling = true};
  check_argmax(&small, 71);
  check_argmax(&large, 72);

  /* Ties go to the lowest index: zero head weights and equal biases make all Q equal. */
  frl_qnet_shape_t s = {.obs_dim = 2, .n_actions = 4, .n_hidden = 1, .hidden = {3}};
  frl_rng_t rng;
  frl_rng_seed(&rng, 73);
  frl_qnet_t *q = frl_qnet_new(&s, 1, &rng);
  float *p = frl_qnet_params(q);
  size_t head = (2 * 3 + 3);
  for (size_t k = head; k < frl_qnet_n_params(q); k++) p[k] = 0.0f;
  const float obs[2] = {0.3f, -0.7f};
  assert_int_equal(frl_qnet_argmax(q, obs), 0);
  p[head + 4 * 3 + 2] = 1.0f; /* bias of action 2 */
  p[head + 4 * 3 + 3] = 1.0f; /* tie with action 3 */
  assert_int_equal(frl_qnet_argmax(q, obs), 2);
  /* NaN Q values still give a valid action. */
  p[head + 4 * 3 + 0] = NAN;
  int a = frl_qnet_argmax(q, obs);
  assert_true(a >= 0 && a < 4);
  frl_qnet_destroy(&q);
}

static void test_qnet_invalid_shape(void **state) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 81);
  frl_qnet_shape_t ok = {.obs_dim = 2, .n_actions = 2, .n_hidden = 1, .hidden = {4}};
  frl_qnet_shape_t s = ok;
  s.n_hidden = 0;
  assert_null(frl_qnet_new(&s, 4, &rng));
  assert_int_equal(frl_qnet_param_count(&s), 0);
  s = ok;
  s.n_hidden = FRL_QNET_MAX_LAYERS + 1;
  assert_null(frl_qnet_new(&s, 4, &rng));
  s = ok;
  s.hidden[0] = 0;
  assert_null(frl_qnet_new(&s, 4, &rng));
  s = ok;
  s.obs_dim = -1;
  assert_null(frl_qnet_new(&s, 4, &rng));
  s = ok;
  s.n_actions = 0;
  assert_null(frl_qnet_new(&s, 4, &rng));
  assert_null(frl_qnet_new(&ok, 0, &rng));
  s = ok;
  s.hidden[0] = 60000;
  s.obs_dim = 60000; /* 3.6e9 weights: refused with a message, not a huge malloc */
  assert_null(frl_qnet_new(&s, 4, &rng));
  frl_qnet_t *q = frl_qnet_new(&ok, 4, &rng);
  assert_non_null(q);
  assert_int_equal(frl_qnet_max_batch(q), 4);
  assert_int_equal(frl_qnet_shape(q)->hidden[0], 4);
  frl_qnet_destroy(&q);
  frl_qnet_destroy(&q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_linear_forward),      cmocka_unit_test(test_linear_backward),
      cmocka_unit_test(test_linear_init),         cmocka_unit_test(test_relu),
      cmocka_unit_test(test_tanh),                cmocka_unit_test(test_dueling),
      cmocka_unit_test(test_huber),               cmocka_unit_test(test_mse),
      cmocka_unit_test(test_clip_grad_norm),      cmocka_unit_test(test_adam_two_steps),
      cmocka_unit_test(test_qnet_gradient_plain), cmocka_unit_test(test_qnet_gradient_dueling),
      cmocka_unit_test(test_qnet_argmax),         cmocka_unit_test(test_qnet_invalid_shape),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
