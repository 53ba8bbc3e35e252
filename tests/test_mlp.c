/* test_mlp.c: the MLP against a double-precision reference forward written here from the layout
 * documented in mlp.h, its backward pass against central finite differences of that reference
 * for every parameter and every input, the row-split backward the learners use, Polyak
 * averaging, initialization bounds and shape validation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "numeric_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mlp.h"
#include "mlp_reference.h"
#include "rng.h"

/* Probe L = sum_r sum_o G[r, o] out[r, o] over B rows, in double. */
static double ref_probe(const frl_mlp_shape_t *s, const double *p, const double *x, const float *G,
                        int B) {
  const int I = s->sizes[0], O = s->sizes[s->n_layers];
  double L = 0, out[64];
  for (int r = 0; r < B; r++) {
    ref_forward(out, s, p, x + (size_t)r * I);
    for (int o = 0; o < O; o++) L += G[r * O + o] * out[o];
  }
  return L;
}

static void test_param_count_and_layout(void **state) {
  frl_mlp_shape_t s = {.n_layers = 3, .sizes = {17, 256, 256, 12}, .hidden_act = FRL_ACT_RELU};
  size_t want = (17 * 256 + 256) + (256 * 256 + 256) + (256 * 12 + 12);
  assert_int_equal(frl_mlp_param_count(&s), want);
  frl_rng_t rng;
  frl_rng_seed(&rng, 1);
  frl_mlp_t *m = frl_mlp_new(&s, 4, &rng);
  assert_non_null(m);
  assert_int_equal(frl_mlp_n_params(m), want);
  assert_int_equal(frl_mlp_max_batch(m), 4);
  assert_int_equal(frl_mlp_shape(m)->sizes[3], 12);
  /* PyTorch's nn.Linear init: every weight and bias of layer l within 1/sqrt(I_l), and the
   * bound reached (a wrong fan-in would show up in either direction). */
  const float *p = frl_mlp_params(m);
  for (int l = 0; l < 3; l++) {
    const int I = s.sizes[l], O = s.sizes[l + 1];
    double c = 1.0 / sqrt((double)I), maxabs = 0;
    for (int k = 0; k < O * I + O; k++) {
      assert_true(fabs(p[k]) <= c);
      maxabs = fmax(maxabs, fabs(p[k]));
    }
    assert_true(maxabs > 0.9 * c);
    p += O * I + O;
  }
  frl_mlp_destroy(&m);
  assert_null(m);
  frl_mlp_destroy(NULL);
}

static void test_invalid_shapes(void **state) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 2);
  const frl_mlp_shape_t ok = {.n_layers = 2, .sizes = {3, 4, 2}};
  frl_mlp_shape_t s = ok;
  s.n_layers = 0;
  assert_int_equal(frl_mlp_param_count(&s), 0);
  assert_null(frl_mlp_new(&s, 4, &rng));
  s.n_layers = FRL_MLP_MAX_LAYERS + 1;
  assert_null(frl_mlp_new(&s, 4, &rng));
  s = ok;
  s.sizes[1] = 0;
  assert_null(frl_mlp_new(&s, 4, &rng));
  s = ok;
  s.sizes[2] = -3;
  assert_null(frl_mlp_new(&s, 4, &rng));
  s = ok;
  s.hidden_act = (frl_activation_t)7;
  assert_null(frl_mlp_new(&s, 4, &rng));
  s = ok;
  s.sizes[0] = s.sizes[1] = 60000; /* 3.6e9 weights: refused with a message, not a huge malloc */
  assert_null(frl_mlp_new(&s, 4, &rng));
  assert_null(frl_mlp_new(&ok, 0, &rng));
  assert_null(frl_mlp_new(&ok, 1 << 20, &rng));
}

/* Forward against the reference and backward against double central differences of the
 * reference, for every parameter and every input; grads start at 1 to check accumulation and
 * din at NaN to check it is overwritten. */
static void check_mlp(frl_mlp_shape_t s, int B, uint64_t seed) {
  frl_rng_t rng;
  frl_rng_seed(&rng, seed);
  frl_mlp_t *m = frl_mlp_new(&s, B + 2, &rng);
  assert_non_null(m);
  const size_t N = frl_mlp_n_params(m);
  const int I = s.sizes[0], O = s.sizes[s.n_layers];
  float *p = frl_mlp_params(m);
  /* Scale the weights up a little so tanh layers are exercised off their linear part. */
  for (size_t k = 0; k < N; k++) p[k] *= 1.5f;
  float *x = malloc(sizeof(float) * B * I), *out = malloc(sizeof(float) * B * O);
  float *G = malloc(sizeof(float) * B * O), *din = malloc(sizeof(float) * B * I);
  float *grads = malloc(sizeof(float) * N);
  double *pd = malloc(sizeof(double) * N), *xd = malloc(sizeof(double) * B * I);
  fill_uniform(x, (size_t)B * I, -1.5, 1.5, &rng);
  fill_uniform(G, (size_t)B * O, -1, 1, &rng);
  for (size_t k = 0; k < N; k++) pd[k] = p[k];
  for (int k = 0; k < B * I; k++) xd[k] = x[k];

  frl_mlp_forward(m, out, x, B);
  double ref[64];
  for (int r = 0; r < B; r++) {
    ref_forward(ref, &s, pd, xd + (size_t)r * I);
    for (int o = 0; o < O; o++)
      expect_close("mlp forward", r * O + o, out[r * O + o], ref[o], 1e-5, 1e-5);
  }
  for (size_t k = 0; k < N; k++) grads[k] = 1.0f;
  for (int k = 0; k < B * I; k++) din[k] = NAN;
  frl_mlp_backward(m, grads, din, G, B);

  /* h = 1e-6 in double: truncation error far below float resolution, and for these random
   * weights no pre-activation crosses ReLU's kink within a step. */
  const double h = 1e-6;
  for (size_t k = 0; k < N; k++) {
    double s0 = pd[k];
    pd[k] = s0 + h;
    double lp = ref_probe(&s, pd, xd, G, B);
    pd[k] = s0 - h;
    double lm = ref_probe(&s, pd, xd, G, B);
    pd[k] = s0;
    expect_close("mlp dparam", (int)k, grads[k] - 1.0, (lp - lm) / (2 * h), 2e-5, 1e-4);
  }
  for (int k = 0; k < B * I; k++) {
    double s0 = xd[k];
    xd[k] = s0 + h;
    double lp = ref_probe(&s, pd, xd, G, B);
    xd[k] = s0 - h;
    double lm = ref_probe(&s, pd, xd, G, B);
    xd[k] = s0;
    expect_close("mlp dinput", k, din[k], (lp - lm) / (2 * h), 2e-5, 1e-4);
  }
  /* Batch 1 (the actors' path: gemv or the small loop) agrees with the batch forward. */
  float one[64];
  frl_mlp_forward(m, one, x + (size_t)(B - 1) * I, 1);
  for (int o = 0; o < O; o++)
    expect_close("mlp batch-1", o, one[o], out[(size_t)(B - 1) * O + o], 1e-5, 1e-5);
  free(x), free(out), free(G), free(din), free(grads), free(pd), free(xd);
  frl_mlp_destroy(&m);
}

static void test_forward_backward(void **state) {
  const frl_activation_t acts[3] = {FRL_ACT_NONE, FRL_ACT_RELU, FRL_ACT_TANH};
  uint64_t seed = 10;
  for (int h = 0; h < 3; h++)
    for (int o = 0; o < 3; o++) {
      frl_mlp_shape_t s = {
          .n_layers = 3, .sizes = {4, 7, 6, 3}, .hidden_act = acts[h], .out_act = acts[o]};
      check_mlp(s, 5, seed++);
    }
  frl_mlp_shape_t one = {.n_layers = 1, .sizes = {5, 2}, .out_act = FRL_ACT_TANH};
  check_mlp(one, 3, seed++);
  frl_mlp_shape_t deep = {.n_layers = 4, .sizes = {3, 9, 8, 7, 2}, .hidden_act = FRL_ACT_RELU};
  check_mlp(deep, 4, seed++);
  /* Single-output layers (a critic's head; a width-1 hidden layer) take their own route. */
  frl_mlp_shape_t critic = {.n_layers = 3, .sizes = {5, 6, 4, 1}, .hidden_act = FRL_ACT_RELU};
  check_mlp(critic, 6, seed++);
  frl_mlp_shape_t narrow = {
      .n_layers = 3, .sizes = {3, 1, 5, 2}, .hidden_act = FRL_ACT_TANH, .out_act = FRL_ACT_TANH};
  check_mlp(narrow, 4, seed++);
  /* Wide enough for the batch-1 sgemv path (>= 256 multiply-adds per layer). */
  frl_mlp_shape_t wide = {.n_layers = 3, .sizes = {17, 40, 40, 12}, .hidden_act = FRL_ACT_RELU};
  check_mlp(wide, 2, seed++);
}

/* The split backward against plain backward passes over the row ranges it combines. */
static void test_backward_rows(void **state) {
  enum { R = 8, K = 5, I = 6, O = 2, COL0 = 4, COLS = 2 }; /* rows [0, K) train, din from K */
  frl_mlp_shape_t s = {
      .n_layers = 3, .sizes = {I, 7, 5, O}, .hidden_act = FRL_ACT_RELU, .out_act = FRL_ACT_TANH};
  frl_rng_t rng;
  frl_rng_seed(&rng, 31);
  frl_mlp_t *m = frl_mlp_new(&s, R, &rng);
  const size_t N = frl_mlp_n_params(m);
  float x[R * I], out[R * O], G[R * O], din_full[R * I], din[(R - K) * COLS];
  fill_uniform(x, R * I, -1, 1, &rng);
  fill_uniform(G, R * O, -1, 1, &rng);
  float *g_split = calloc(N, sizeof(float)), *g_first = calloc(N, sizeof(float));

  frl_mlp_forward(m, out, x, R);
  frl__mlp_backward_rows(m, g_split, K, din, K, COL0, COLS, G, R);
  /* Reference 1: the first K rows alone give the parameter gradients. */
  frl_mlp_forward(m, out, x, K);
  frl_mlp_backward(m, g_first, NULL, G, K);
  for (size_t k = 0; k < N; k++)
    expect_close("split grads", (int)k, g_split[k], g_first[k], 1e-6, 1e-5);
  /* Reference 2: the full input gradient; the split one is its [K.., COL0..] block. */
  float *g_dummy = calloc(N, sizeof(float));
  frl_mlp_forward(m, out, x, R);
  frl_mlp_backward(m, g_dummy, din_full, G, R);
  for (int r = K; r < R; r++)
    for (int c = 0; c < COLS; c++)
      expect_close("split din", r * COLS + c, din[(r - K) * COLS + c], din_full[r * I + COL0 + c],
                   1e-6, 1e-5);
  /* Only some leading rows of a larger forward, no input gradient (the SAC actor's case). */
  memset(g_split, 0, N * sizeof(float));
  frl_mlp_forward(m, out, x, R);
  frl__mlp_backward_rows(m, g_split, K, NULL, 0, 0, 0, G, K);
  for (size_t k = 0; k < N; k++)
    expect_close("leading rows", (int)k, g_split[k], g_first[k], 1e-6, 1e-5);
  /* No parameter gradient: grads untouched. */
  memset(g_split, 0, N * sizeof(float));
  frl__mlp_backward_rows(m, g_split, 0, din, K, COL0, COLS, G, R);
  for (size_t k = 0; k < N; k++) assert_true(g_split[k] == 0.0f);
  free(g_split), free(g_first), free(g_dummy);
  frl_mlp_destroy(&m);
}

static void test_input_output_buffers(void **state) {
  frl_mlp_shape_t s = {.n_layers = 2, .sizes = {3, 4, 2}, .hidden_act = FRL_ACT_RELU};
  frl_rng_t rng;
  frl_rng_seed(&rng, 41);
  frl_mlp_t *m = frl_mlp_new(&s, 2, &rng);
  float x[6] = {0.1f, -0.2f, 0.3f, 1.0f, 0.5f, -1.0f}, out[4];
  frl_mlp_forward(m, out, x, 2);
  /* Built in place in the input buffer and read from the output buffer: same result. */
  memcpy(frl__mlp_input(m), x, sizeof x);
  float *o = frl__mlp_output(m);
  frl_mlp_forward(m, o, frl__mlp_input(m), 2);
  for (int k = 0; k < 4; k++) assert_true(o[k] == out[k]);
  frl_mlp_destroy(&m);
}

static void test_polyak(void **state) {
  frl_mlp_shape_t s = {.n_layers = 2, .sizes = {5, 7, 3}, .hidden_act = FRL_ACT_RELU};
  frl_rng_t rng;
  frl_rng_seed(&rng, 51);
  frl_mlp_t *a = frl_mlp_new(&s, 1, &rng), *b = frl_mlp_new(&s, 1, &rng);
  const size_t N = frl_mlp_n_params(a); /* 63: vector blocks and a tail */
  float *before = malloc(N * sizeof(float));
  memcpy(before, frl_mlp_params(a), N * sizeof(float));
  const float tau = 0.005f;
  frl__mlp_polyak(a, b, tau);
  const float *pa = frl_mlp_params(a), *pb = frl_mlp_params(b);
  for (size_t k = 0; k < N; k++) {
    /* The float expression of the definition, evaluated once: exact agreement. */
    float want = before[k] + tau * (pb[k] - before[k]);
    assert_true(pa[k] == want);
  }
  frl__mlp_polyak(a, b, 1.0f);
  assert_memory_equal(pa, pb, N * sizeof(float));
  memcpy(before, pa, N * sizeof(float));
  frl__mlp_polyak(a, b, 0.0f);
  assert_memory_equal(pa, before, N * sizeof(float));
  free(before);
  frl_mlp_destroy(&a);
  frl_mlp_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_param_count_and_layout), cmocka_unit_test(test_invalid_shapes),
      cmocka_unit_test(test_forward_backward),       cmocka_unit_test(test_backward_rows),
      cmocka_unit_test(test_input_output_buffers),   cmocka_unit_test(test_polyak),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
