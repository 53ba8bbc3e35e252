/* bench_dqn.c: DQN updates per second for the CartPole-sized 120-84 MLP next to OpenBLAS's own
 * sgemm throughput on exactly the GEMMs one update performs (its roofline), and the batch-1
 * greedy-action latency the actors pay per environment step. Prints figures; never fails on
 * timing. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dqn.h"
#include "nn.h"
#include "qnet.h"
#include "rng.h"

/* cblas.h pulls in <complex.h>; its I macro is not wanted here. */
#undef I

enum { OBS = 4, ACTIONS = 2, BATCH = 128 };
static const int HIDDEN[2] = {120, 84};

/* ---- the GEMMs of one update, alone --------------------------------------------------------- */

typedef struct {
  int M, N, K;
  bool ta, tb;
} gemm_t;

/* The sgemm calls one frl_dqn_update makes for the shape above (batch B, double DQN so the
 * online forward has 2B rows), in order; returns how many. The dueling value stream's input
 * gradient is a loop, not a GEMM, and is not listed. */
static int update_gemms(gemm_t *g, bool dueling, bool double_q) {
  int n = 0, fwd_rows[2] = {double_q ? 2 * BATCH : BATCH, BATCH};
  for (int net = 0; net < 2; net++) { /* online, target forward */
    int I = OBS, R = fwd_rows[net];
    for (int l = 0; l < 2; l++) {
      g[n++] = (gemm_t){R, HIDDEN[l], I, false, true};
      I = HIDDEN[l];
    }
    if (dueling) g[n++] = (gemm_t){R, 1, I, false, true};
    g[n++] = (gemm_t){R, ACTIONS, I, false, true};
  }
  int H = HIDDEN[1];
  g[n++] = (gemm_t){ACTIONS, H, BATCH, true, false}; /* head dW */
  g[n++] = (gemm_t){BATCH, H, ACTIONS, false, false}; /* head din */
  if (dueling) g[n++] = (gemm_t){1, H, BATCH, true, false}; /* value dW */
  g[n++] = (gemm_t){HIDDEN[1], HIDDEN[0], BATCH, true, false}; /* layer 1 dW */
  g[n++] = (gemm_t){BATCH, HIDDEN[0], HIDDEN[1], false, false}; /* layer 1 din */
  g[n++] = (gemm_t){HIDDEN[0], OBS, BATCH, true, false}; /* layer 0 dW (no din) */
  return n;
}

static double gemm_flops(const gemm_t *g, int n) {
  double f = 0;
  for (int k = 0; k < n; k++) f += 2.0 * g[k].M * g[k].N * g[k].K;
  return f;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The machine this runs on is often shared (builds, other benchmarks), so figures are taken
 * over TRIALS short trials and reported as best and median. A GEMM-alone trial and an update
 * trial alternate, so the roofline and the update see the same load, and "% roof" is the
 * median over trials of that pair's ratio. */
enum { TRIALS = 9 };

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

static void run_gemms(const gemm_t *g, int n, float *A, float *B, float *C) {
  for (int k = 0; k < n; k++)
    cblas_sgemm(CblasRowMajor, g[k].ta ? CblasTrans : CblasNoTrans,
                g[k].tb ? CblasTrans : CblasNoTrans, g[k].M, g[k].N, g[k].K, 1.0f, A,
                g[k].ta ? g[k].M : g[k].K, B, g[k].tb ? g[k].K : g[k].N, 0.0f, C, g[k].N);
}

/* GFLOP/s of one large square sgemm: the machine's BLAS peak, for scale. */
static double peak_sgemm(float *A, float *B, float *C, int n) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
  double best = 1e30;
  for (int trial = 0; trial < 5; trial++) {
    int reps = 0;
    double t0 = frl_now(), t;
    do {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C,
                  n);
      reps++;
      t = frl_now() - t0;
    } while (t < 0.1);
    best = FRL_MIN(best, t / reps);
  }
  return 2.0 * n * n * (double)n / best * 1e-9;
}

/* ---- updates per second --------------------------------------------------------------------- */

typedef struct {
  double upd_best, upd_median;   /* seconds per update */
  double gemm_best, gemm_median; /* seconds per update's worth of GEMMs */
  double roof_median;            /* median of gemm_i / upd_i */
} update_figures_t;

static update_figures_t measure_updates(bool dueling, const gemm_t *g, int ng, float *A,
                                        float *B, float *C) {
  frl_dqn_config_t c = {
      .shape = {.obs_dim = OBS, .n_actions = ACTIONS, .n_hidden = 2,
                .hidden = {HIDDEN[0], HIDDEN[1]}, .dueling = dueling},
      .batch = BATCH, .lr = 1e-4f, .adam_eps = 1e-8f, .huber_delta = 1.0f, .grad_clip = 10.0f,
      .double_q = true, .target_period = 1000, .tau = 0.0f, .seed = 1};
  frl_dqn_t *d = frl_dqn_new(&c);
  if (!d) {
    fprintf(stderr, "bench_dqn: frl_dqn_new failed\n");
    exit(1);
  }
  /* A handful of distinct batches, like fresh samples from replay. */
  enum { NB = 8 };
  static float obs[NB][BATCH * OBS], next[NB][BATCH * OBS], rew[NB][BATCH], disc[NB][BATCH],
      wt[NB][BATCH], td[BATCH];
  static int32_t act[NB][BATCH];
  frl_rng_t rng;
  frl_rng_seed(&rng, 42);
  frl_dqn_batch_t batches[NB];
  for (int b = 0; b < NB; b++) {
    for (int k = 0; k < BATCH * OBS; k++) {
      obs[b][k] = (float)frl_rng_normal(&rng);
      next[b][k] = (float)frl_rng_normal(&rng);
    }
    for (int r = 0; r < BATCH; r++) {
      rew[b][r] = 1.0f;
      disc[b][r] = r % 20 == 0 ? 0.0f : 0.970299f;
      wt[b][r] = (float)(0.2 + 0.8 * frl_rng_uniform(&rng));
      act[b][r] = (int32_t)frl_rng_below(&rng, ACTIONS);
    }
    batches[b] = (frl_dqn_batch_t){.B = BATCH, .obs = obs[b], .action = act[b],
                                   .reward = rew[b], .discount = disc[b], .next_obs = next[b],
                                   .weight = wt[b]};
  }
  frl_dqn_stats_t st;
  for (int u = 0; u < 300; u++) {
    frl_dqn_update(d, &batches[u % NB], td, &st);
    run_gemms(g, ng, A, B, C);
  }
  double tu[TRIALS], tg[TRIALS], ratio[TRIALS];
  long n = 0;
  for (int trial = 0; trial < TRIALS; trial++) {
    long reps = 0;
    double t0 = frl_now(), dt;
    do {
      for (int r = 0; r < 20; r++, reps++) run_gemms(g, ng, A, B, C);
      dt = frl_now() - t0;
    } while (dt < 0.1);
    tg[trial] = dt / (double)reps;
    reps = 0;
    t0 = frl_now();
    do {
      for (int r = 0; r < 20; r++, reps++, n++)
        if (frl_dqn_update(d, &batches[n % NB], td, &st) != 0) {
          fprintf(stderr, "bench_dqn: update failed\n");
          exit(1);
        }
      dt = frl_now() - t0;
    } while (dt < 0.1);
    tu[trial] = dt / (double)reps;
    ratio[trial] = tg[trial] / tu[trial];
  }
  frl_dqn_destroy(&d);
  update_figures_t f;
  f.roof_median = median(ratio, TRIALS);
  f.upd_median = median(tu, TRIALS);
  f.upd_best = tu[0];
  f.gemm_median = median(tg, TRIALS);
  f.gemm_best = tg[0];
  return f;
}

static void bench_updates(const char *threads_label) {
  static float A[512 * 512], B[512 * 512], C[512 * 512];
  for (int k = 0; k < 512 * 512; k++) A[k] = B[k] = 0.001f * (float)(k % 97);
  printf("\n-- DQN update, obs %d, MLP %d-%d, %d actions, batch %d, double DQN; OpenBLAS %s --\n",
         OBS, HIDDEN[0], HIDDEN[1], ACTIONS, BATCH, threads_label);
  printf("   large sgemm 512^3 peak: %.1f GFLOP/s\n", peak_sgemm(A, B, C, 512));
  printf("   %-8s %20s %10s %13s %20s %20s %7s\n", "head", "updates/s best/med",
         "us/update", "MFLOP/update", "GEMM-only upd/s b/m", "sgemm GFLOP/s b/m", "% roof");
  for (int dueling = 0; dueling < 2; dueling++) {
    gemm_t g[32];
    int ng = update_gemms(g, dueling, true);
    double flops = gemm_flops(g, ng);
    update_figures_t f = measure_updates(dueling, g, ng, A, B, C);
    printf("   %-8s %9.0f /%9.0f %10.1f %13.2f %9.0f /%9.0f %9.1f /%9.1f %6.0f%%\n",
           dueling ? "dueling" : "plain", 1.0 / f.upd_best, 1.0 / f.upd_median,
           f.upd_median * 1e6, flops * 1e-6, 1.0 / f.gemm_best, 1.0 / f.gemm_median,
           flops / f.gemm_best * 1e-9, flops / f.gemm_median * 1e-9, 100.0 * f.roof_median);
  }
  printf("   GEMM-only: the sgemm calls one update makes (same shapes and transposes), timed\n"
         "   alone in trials alternating with the update's: the roofline for this net on this\n"
         "   BLAS. %% roof = median over trials of GEMM-only time / update time; the rest of an\n"
         "   update is ReLU, loss, clipping, Adam, bias broadcast and input/target copies.\n");
}

/* ---- batch-1 greedy action ---------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Reference: the same batch-1 forward with every layer through cblas_sgemv (no small-layer
 * loop), to show what the library's dispatch buys. Reads the documented parameter layout. */
static int argmax_all_sgemv(const frl_qnet_shape_t *s, const float *p, const float *obs,
                            float *h0, float *h1) {
  const float *in = obs;
  int I = s->obs_dim;
  float *out = h0;
  for (int l = 0; l < s->n_hidden; l++) {
    int O = s->hidden[l];
    memcpy(out, p + (size_t)O * I, (size_t)O * sizeof(float));
    cblas_sgemv(CblasRowMajor, CblasNoTrans, O, I, 1.0f, p, I, in, 1, 1.0f, out, 1);
    frl_relu_forward(out, out, O);
    p += (size_t)O * I + O;
    in = out;
    out = out == h0 ? h1 : h0;
    I = O;
  }
  int A = s->n_actions;
  memcpy(out, p + (size_t)A * I, (size_t)A * sizeof(float));
  cblas_sgemv(CblasRowMajor, CblasNoTrans, A, I, 1.0f, p, I, in, 1, 1.0f, out, 1);
  int best = 0;
  for (int a = 1; a < A; a++)
    if (out[a] > out[best]) best = a;
  return best;
}

static void latency(const frl_qnet_shape_t *s, const char *label) {
  enum { N = 50000 };
  static uint64_t ns[N], ns_ref[N];
  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
  frl_qnet_t *q = frl_qnet_new(s, 1, &rng);
  float obs[64], h0[512], h1[512];
  for (int k = 0; k < s->obs_dim; k++) obs[k] = (float)frl_rng_normal(&rng);
  volatile int sink = 0;
  for (int k = 0; k < 2000; k++) sink += frl_qnet_argmax(q, obs);
  for (int k = 0; k < N; k++) {
    obs[k % s->obs_dim] += 1e-3f; /* a new observation each step */
    uint64_t t0 = frl_now_ns();
    sink += frl_qnet_argmax(q, obs);
    ns[k] = frl_now_ns() - t0;
  }
  const float *p = frl_qnet_params(q);
  for (int k = 0; k < 2000; k++) sink += argmax_all_sgemv(s, p, obs, h0, h1);
  for (int k = 0; k < N; k++) {
    obs[k % s->obs_dim] += 1e-3f;
    uint64_t t0 = frl_now_ns();
    sink += argmax_all_sgemv(s, p, obs, h0, h1);
    ns_ref[k] = frl_now_ns() - t0;
  }
  (void)sink;
  uint64_t t0 = frl_now_ns(), t1 = frl_now_ns(); /* clock overhead, included in each sample */
  qsort(ns, N, sizeof ns[0], cmp_u64);
  qsort(ns_ref, N, sizeof ns_ref[0], cmp_u64);
  printf("   %-22s p50 %7.2f us  p99 %7.2f us   | all-sgemv reference p50 %7.2f us  p99 %7.2f us"
         "   (clock read ~%llu ns)\n",
         label, ns[N / 2] * 1e-3, ns[N * 99 / 100] * 1e-3, ns_ref[N / 2] * 1e-3,
         ns_ref[N * 99 / 100] * 1e-3, (unsigned long long)(t1 - t0));
  frl_qnet_destroy(&q);
}

static void bench_argmax(const char *threads_label) {
  printf("\n-- batch-1 frl_qnet_argmax latency (actor step), OpenBLAS %s --\n", threads_label);
  frl_qnet_shape_t small = {.obs_dim = 4, .n_actions = 2, .n_hidden = 2, .hidden = {64, 64}};
  frl_qnet_shape_t large = {.obs_dim = 17, .n_actions = 12, .n_hidden = 2, .hidden = {256, 256}};
  latency(&small, "4-64-64-2 (plain)");
  latency(&large, "17-256-256-12 (plain)");
}

int main(void) {
  int default_threads = openblas_get_num_threads();
  printf("bench_dqn: OpenBLAS %s, core %s, %d threads by default\n", openblas_get_config(),
         openblas_get_corename(), default_threads);
#if defined(__x86_64__)
  /* OpenBLAS picks its kernels from the CPU model it recognizes; a newer CPU than the library
   * knows gets older kernels (OPENBLAS_CORETYPE overrides the choice). */
  __builtin_cpu_init();
  printf("   CPU: avx2 %s, avx512f %s\n", __builtin_cpu_supports("avx2") ? "yes" : "no",
         __builtin_cpu_supports("avx512f") ? "yes" : "no");
#endif
  char label[64];
  snprintf(label, sizeof label, "%d threads (default)", default_threads);
  bench_updates(label);
  bench_argmax(label);
  if (default_threads != 1) {
    openblas_set_num_threads(1);
    bench_updates("1 thread");
    bench_argmax("1 thread");
  }
  return 0;
}
