/* bench_sac.c: SAC updates per second for obs 17, act 6, 256-256 networks, batch 256, next to
 * OpenBLAS's own sgemm throughput on exactly the GEMMs one update performs (its roofline) and to
 * the same update in PyTorch on this machine (bench/sac_torch.py); then the batch-1 policy
 * latency the actors pay per environment step, against PyTorch's. Prints figures and the goals;
 * never fails on timing. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "mlp.h"
#include "rng.h"
#include "sac.h"
#include "td3.h"

/* cblas.h pulls in <complex.h>; its I macro is not wanted here. */
#undef I

enum { OBS = 17, ACT = 6, HID = 256, BATCH = 256 };
#define PYTHON "/usr/bin/python3"
#define TORCH_SCRIPT "bench/sac_torch.py"
#define GOAL_ROOF 0.85
#define GOAL_VS_TORCH 1.4
#define GOAL_P99_US 12.0

/* ---- the BLAS calls of one update, alone ----------------------------------------------------- */

/* One sgemm (C[M, N] = op(A)[M, K] op(B)[K, N] + beta C), or one sgemv when gemv is set
 * (y = op(A) x + beta y, A row-major M x N, op transposing when ta). */
typedef struct {
  bool gemv;
  int M, N, K;
  bool ta, tb;
  float beta;
} blas_op_t;

/* Forward of one layer for R rows: out = in w^T (the bias is added with the activation); a
 * single-output layer is an sgemv (lib/mlp.c). */
static int fwd(blas_op_t *g, int R, int I, int O) {
  g[0] = O == 1 ? (blas_op_t){true, R, I, 0, false, false, 0.0f}
                : (blas_op_t){false, R, O, I, false, true, 0.0f};
  return 1;
}

/* Backward of one layer: dW += dout[grad_rows]^T in (accumulating), then din = dout w for
 * din_rows rows (din_cols columns when not all) unless din_rows is 0. For a single-output
 * layer dW is an sgemv and din an outer-product loop, not BLAS. */
static int bwd(blas_op_t *g, int grad_rows, int din_rows, int din_cols, int I, int O) {
  int n = 0;
  if (O == 1) {
    g[n++] = (blas_op_t){true, grad_rows, I, 0, true, false, 1.0f};
    return n;
  }
  g[n++] = (blas_op_t){false, O, I, grad_rows, true, false, 1.0f};
  if (din_rows > 0)
    g[n++] = (blas_op_t){false, din_rows, din_cols > 0 ? din_cols : I, O, false, false, 0.0f};
  return n;
}

/* The BLAS calls one frl_sac_update makes (lib/sac.c, lib/mlp.c), in order; returns how many.
 * R = 2B: the actor runs obs and next_obs as one batch, each critic (obs, action) and
 * (obs, a ~ pi); critics backpropagate parameter gradients from the first B rows and dQ/da
 * (action columns only) from the other B. */
static int update_ops(blas_op_t *g) {
  const int B = BATCH, R = 2 * BATCH, C = OBS + ACT;
  int n = 0;
  n += fwd(g + n, R, OBS, HID), n += fwd(g + n, R, HID, HID), n += fwd(g + n, R, HID, 2 * ACT);
  for (int i = 0; i < 2; i++) /* target critics */
    n += fwd(g + n, B, C, HID), n += fwd(g + n, B, HID, HID), n += fwd(g + n, B, HID, 1);
  for (int i = 0; i < 2; i++) /* critics */
    n += fwd(g + n, R, C, HID), n += fwd(g + n, R, HID, HID), n += fwd(g + n, R, HID, 1);
  for (int i = 0; i < 2; i++) {
    n += bwd(g + n, B, R, 0, HID, 1);
    n += bwd(g + n, B, R, 0, HID, HID);
    n += bwd(g + n, B, B, ACT, C, HID);
  }
  n += bwd(g + n, B, B, 0, HID, 2 * ACT);
  n += bwd(g + n, B, B, 0, HID, HID);
  n += bwd(g + n, B, 0, 0, OBS, HID);
  return n;
}

static double op_flops(const blas_op_t *g, int n) {
  double f = 0;
  for (int k = 0; k < n; k++) f += 2.0 * g[k].M * g[k].N * (g[k].gemv ? 1 : g[k].K);
  return f;
}

static void run_ops(const blas_op_t *g, int n, const float *A, const float *B, float *C) {
  for (int k = 0; k < n; k++) {
    if (g[k].gemv)
      cblas_sgemv(CblasRowMajor, g[k].ta ? CblasTrans : CblasNoTrans, g[k].M, g[k].N, 1.0f, A,
                  g[k].N, B, 1, g[k].beta, C, 1);
    else
      cblas_sgemm(CblasRowMajor, g[k].ta ? CblasTrans : CblasNoTrans,
                  g[k].tb ? CblasTrans : CblasNoTrans, g[k].M, g[k].N, g[k].K, 1.0f, A,
                  g[k].ta ? g[k].M : g[k].K, B, g[k].tb ? g[k].K : g[k].N, g[k].beta, C, g[k].N);
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

/* GFLOP/s of one large square sgemm: the machine's BLAS peak, for scale. */
static double peak_sgemm(const float *A, const float *B, float *C, int n) {
  double best = 1e30;
  for (int trial = 0; trial < 3; trial++) {
    int reps = 0;
    double t0 = frl_now(), t;
    do {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
      reps++;
      t = frl_now() - t0;
    } while (t < 0.1);
    best = FRL_MIN(best, t / reps);
  }
  return 2.0 * n * n * (double)n / best * 1e-9;
}

/* ---- updates per second ---------------------------------------------------------------------- */

/* The machine is often shared, so figures come from TRIALS short trials, reported as best and
 * median; a GEMM-only trial and an update trial alternate so both see the same load, and
 * "% roof" is the median over trials of that pair's ratio. */
enum { TRIALS = 8, NB = 8 };
#define TRIAL_S 0.3

/* Runs `trials` alternating trials on s, appending each trial's seconds per update (tu),
 * seconds per update's worth of BLAS calls alone (tg) at index *n. */
static void measure_trials(frl_sac_t *s, const frl_batch_t *batches, const blas_op_t *g, int ng,
                           int trials, double *tu, double *tg, int *n) {
  static float A[512 * 512], Bm[512 * 512], C[512 * 512];
  static long next_batch;
  for (int k = 0; k < 512 * 512; k++) A[k] = Bm[k] = 0.001f * (float)(k % 97);
  float td[BATCH];
  frl_sac_stats_t st;
  for (int u = 0; u < 10; u++) { /* warm-up */
    frl_sac_update(s, &batches[next_batch++ % NB], td, &st);
    run_ops(g, ng, A, Bm, C);
  }
  for (int trial = 0; trial < trials; trial++, (*n)++) {
    long reps = 0;
    double t0 = frl_now(), dt;
    do {
      run_ops(g, ng, A, Bm, C);
      reps++;
      dt = frl_now() - t0;
    } while (dt < TRIAL_S);
    tg[*n] = dt / (double)reps;
    reps = 0;
    t0 = frl_now();
    do {
      if (frl_sac_update(s, &batches[next_batch++ % NB], td, &st) != 0) {
        fprintf(stderr, "bench_sac: update failed\n");
        exit(1);
      }
      reps++;
      dt = frl_now() - t0;
    } while (dt < TRIAL_S);
    tu[*n] = dt / (double)reps;
  }
}

/* NB distinct batches of random transitions, like fresh samples from replay. */
static void make_batches(frl_batch_t *batches) {
  static float obs[NB][BATCH * OBS], next[NB][BATCH * OBS], act[NB][BATCH * ACT], rew[NB][BATCH],
      disc[NB][BATCH], wt[NB][BATCH];
  frl_rng_t rng;
  frl_rng_seed(&rng, 42);
  for (int b = 0; b < NB; b++) {
    for (int k = 0; k < BATCH * OBS; k++) {
      obs[b][k] = (float)frl_rng_normal(&rng);
      next[b][k] = (float)frl_rng_normal(&rng);
    }
    for (int k = 0; k < BATCH * ACT; k++) act[b][k] = (float)(2.0 * frl_rng_uniform(&rng) - 1.0);
    for (int r = 0; r < BATCH; r++) {
      rew[b][r] = (float)frl_rng_normal(&rng);
      disc[b][r] = r % 50 == 0 ? 0.0f : 0.99f;
      wt[b][r] = (float)(0.2 + 0.8 * frl_rng_uniform(&rng));
    }
    batches[b] = (frl_batch_t){.B = BATCH,
                               .obs = obs[b],
                               .action = act[b],
                               .reward = rew[b],
                               .discount = disc[b],
                               .next_obs = next[b],
                               .weight = wt[b]};
  }
}

/* ---- PyTorch, the same update ---------------------------------------------------------------- */

typedef struct {
  bool ok;
  double updates_per_s, infer_p50_us, infer_p99_us;
  char setup[512];
} torch_figures_t;

static torch_figures_t run_torch(int threads) {
  torch_figures_t t = {0};
  printf("   (running the same update in PyTorch: %s, %d thread)\n", TORCH_SCRIPT, threads);
  fflush(stdout);
  if (system(PYTHON " -c 'import torch' >/dev/null 2>&1") != 0) {
    printf("   PyTorch not installed (make bench-deps): no PyTorch comparison\n");
    return t;
  }
  if (access(TORCH_SCRIPT, R_OK) != 0) {
    printf("   %s not found (run from the repository root): no PyTorch comparison\n", TORCH_SCRIPT);
    return t;
  }
  char cmd[384];
  /* OpenBLAS (which this PyTorch also calls) and OpenMP limited like torch's own pool. */
  snprintf(cmd, sizeof cmd,
           "OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d " PYTHON " " TORCH_SCRIPT
           " --threads %d --obs %d --act %d --hidden %d --batch %d --seconds 8 --infer 20000 2>&1",
           threads, threads, threads, OBS, ACT, HID, BATCH);
  FILE *p = popen(cmd, "r");
  if (!p) {
    printf("   could not start %s\n", TORCH_SCRIPT);
    return t;
  }
  char line[512];
  int got = 0;
  while (fgets(line, sizeof line, p)) {
    double v;
    if (sscanf(line, "updates/s %lf", &v) == 1)
      t.updates_per_s = v, got |= 1;
    else if (sscanf(line, "infer_p50_us %lf", &v) == 1)
      t.infer_p50_us = v, got |= 2;
    else if (sscanf(line, "infer_p99_us %lf", &v) == 1)
      t.infer_p99_us = v, got |= 4;
    else if (strncmp(line, "setup ", 6) == 0) {
      line[strcspn(line, "\n")] = 0;
      snprintf(t.setup, sizeof t.setup, "%s", line + 6);
    } else if (strncmp(line, "updates/s_best", 14) != 0) {
      printf("   [sac_torch.py] %s", line); /* anything unexpected, e.g. a traceback */
    }
  }
  int status = pclose(p);
  t.ok = got == 7 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!t.ok) printf("   sac_torch.py failed (exit status %d)\n", status);
  return t;
}

/* ---- batch-1 policy latency ------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  double p50_us, p99_us;
} latency_t;

enum { LAT_N = 50000 };

static latency_t latency_sac(void) {
  static uint64_t ns[LAT_N];
  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
  frl_mlp_shape_t shape = frl_sac_actor_shape(OBS, ACT, HID, HID);
  frl_mlp_t *actor = frl_mlp_new(&shape, 1, &rng);
  float obs[OBS], action[ACT];
  for (int k = 0; k < OBS; k++) obs[k] = (float)frl_rng_normal(&rng);
  for (int k = 0; k < 2000; k++) frl_sac_act(actor, obs, false, &rng, action);
  for (int k = 0; k < LAT_N; k++) {
    obs[k % OBS] += 1e-3f; /* a new observation each step */
    uint64_t t0 = frl_now_ns();
    frl_sac_act(actor, obs, false, &rng, action);
    ns[k] = frl_now_ns() - t0;
  }
  frl_mlp_destroy(&actor);
  qsort(ns, LAT_N, sizeof ns[0], cmp_u64);
  return (latency_t){ns[LAT_N / 2] * 1e-3, ns[LAT_N * 99 / 100] * 1e-3};
}

static latency_t latency_td3(void) {
  static uint64_t ns[LAT_N];
  frl_rng_t rng;
  frl_rng_seed(&rng, 4);
  frl_mlp_shape_t shape = frl_td3_actor_shape(OBS, 2 * ACT, HID, HID);
  frl_mlp_t *actor = frl_mlp_new(&shape, 1, &rng);
  float obs[OBS], action[2 * ACT];
  for (int k = 0; k < OBS; k++) obs[k] = (float)frl_rng_normal(&rng);
  for (int k = 0; k < 2000; k++) frl_td3_act(actor, obs, 0.1f, &rng, action);
  for (int k = 0; k < LAT_N; k++) {
    obs[k % OBS] += 1e-3f;
    uint64_t t0 = frl_now_ns();
    frl_td3_act(actor, obs, 0.1f, &rng, action);
    ns[k] = frl_now_ns() - t0;
  }
  frl_mlp_destroy(&actor);
  qsort(ns, LAT_N, sizeof ns[0], cmp_u64);
  return (latency_t){ns[LAT_N / 2] * 1e-3, ns[LAT_N * 99 / 100] * 1e-3};
}

static const char *verdict(bool met) { return met ? "met" : "NOT met"; }

int main(int argc, char **argv) {
  bool with_torch = true, with_latency = true;
  for (int k = 1; k < argc; k++) {
    if (strcmp(argv[k], "--no-torch") == 0) {
      with_torch = false;
    } else if (strcmp(argv[k], "--update-only") == 0) {
      with_torch = with_latency = false;
    } else {
      fprintf(stderr, "usage: %s [--no-torch] [--update-only]\n", argv[0]);
      return 2;
    }
  }
  printf("bench_sac: OpenBLAS %s, core %s, %d threads by default; all figures with 1 thread\n",
         openblas_get_config(), openblas_get_corename(), openblas_get_num_threads());
#if defined(__x86_64__)
  /* OpenBLAS picks its kernels from the CPU model it recognizes (OPENBLAS_CORETYPE overrides). */
  __builtin_cpu_init();
  printf("   CPU: avx2 %s, avx512f %s\n", __builtin_cpu_supports("avx2") ? "yes" : "no",
         __builtin_cpu_supports("avx512f") ? "yes" : "no");
#endif
  /* The learner and the actors call OpenBLAS single-threaded (cli/main.c). */
  openblas_set_num_threads(1);

  blas_op_t g[64];
  const int ng = update_ops(g);
  const double flops = op_flops(g, ng);
  int n_sgemv = 0;
  for (int k = 0; k < ng; k++) n_sgemv += g[k].gemv;
  {
    static float A[512 * 512], B[512 * 512], C[512 * 512];
    for (int k = 0; k < 512 * 512; k++) A[k] = B[k] = 0.001f * (float)(k % 97);
    printf("\n-- SAC update: obs %d, act %d, actor and twin critics %d-%d, batch %d --\n", OBS, ACT,
           HID, HID, BATCH);
    printf("   large sgemm 512^3 peak: %.1f GFLOP/s\n", peak_sgemm(A, B, C, 512));
  }
  frl_sac_config_t c = {.obs_dim = OBS,
                        .act_dim = ACT,
                        .hidden1 = HID,
                        .hidden2 = HID,
                        .batch = BATCH,
                        .lr_actor = 3e-4f,
                        .lr_critic = 3e-4f,
                        .lr_alpha = 3e-4f,
                        .tau = 0.005f,
                        .init_alpha = 1.0f,
                        .auto_alpha = true,
                        .target_entropy = NAN,
                        .grad_clip = 0.0f,
                        .seed = 1};
  frl_sac_t *s = frl_sac_new(&c);
  if (!s) {
    fprintf(stderr, "bench_sac: frl_sac_new failed\n");
    return 1;
  }
  static frl_batch_t batches[NB];
  make_batches(batches);
  /* Half the trials before the PyTorch run and half after, so the comparison with it sees
   * the machine's load on both sides. */
  double tu[2 * TRIALS] = {0}, tg[2 * TRIALS] = {0}, ratio[2 * TRIALS] = {0};
  int n = 0;
  measure_trials(s, batches, g, ng, TRIALS, tu, tg, &n);
  torch_figures_t t = {0};
  if (with_torch) t = run_torch(1);
  measure_trials(s, batches, g, ng, TRIALS, tu, tg, &n);
  frl_sac_destroy(&s);
  double upd_best = tu[0], gemm_best = tg[0];
  for (int k = 0; k < n; k++) {
    ratio[k] = tg[k] / tu[k];
    upd_best = FRL_MIN(upd_best, tu[k]);
    gemm_best = FRL_MIN(gemm_best, tg[k]);
  }
  const double upd_median = median(tu, n), gemm_median = median(tg, n);
  const double roof = median(ratio, n);
  printf("   %-10s %20s %10s %13s %20s %20s %7s\n", "", "updates/s best/med", "ms/update",
         "MFLOP/update", "BLAS-only upd/s b/m", "BLAS GFLOP/s b/m", "% roof");
  printf("   %-10s %9.1f /%9.1f %10.2f %13.1f %9.1f /%9.1f %9.1f /%9.1f %6.0f%%\n", "fleetrl",
         1.0 / upd_best, 1.0 / upd_median, upd_median * 1e3, flops * 1e-6, 1.0 / gemm_best,
         1.0 / gemm_median, flops / gemm_best * 1e-9, flops / gemm_median * 1e-9, 100.0 * roof);
  if (t.ok)
    printf("   %-10s %9s  %9.1f updates/s (median of trials; %s)\n", "pytorch", "", t.updates_per_s,
           t.setup);
  printf(
      "   BLAS-only: the %d sgemm and %d sgemv calls one update makes (same shapes, transposes\n"
      "   and beta; a critic's single-output head is sgemv), timed alone on hot buffers in\n"
      "   trials alternating with the update's (%d, half before and half after PyTorch): the\n"
      "   roofline for this update on this BLAS. %% roof = median over trials of BLAS-only\n"
      "   time / update time; the rest is bias and ReLU passes, the policy head, losses, Adam,\n"
      "   Polyak averaging, copies, and the update's colder caches.\n",
      ng - n_sgemv, n_sgemv, n);

  latency_t ls = {NAN, NAN}, lt = {NAN, NAN};
  if (with_latency) {
    printf("\n-- batch-1 policy latency (actor step), 1 thread, %d calls --\n", LAT_N);
    ls = latency_sac();
    lt = latency_td3();
    printf("   frl_sac_act %d-%d-%d-%d stochastic   p50 %7.2f us  p99 %7.2f us\n", OBS, HID, HID,
           2 * ACT, ls.p50_us, ls.p99_us);
    printf("   frl_td3_act %d-%d-%d-%d noisy        p50 %7.2f us  p99 %7.2f us\n", OBS, HID, HID,
           2 * ACT, lt.p50_us, lt.p99_us);
    if (t.ok)
      printf(
          "   pytorch     %d-%d-%d-%d stochastic   p50 %7.2f us  p99 %7.2f us (called from "
          "Python, inference_mode)\n",
          OBS, HID, HID, 2 * ACT, t.infer_p50_us, t.infer_p99_us);
  }

  printf("\n-- goals (printed, never enforced) --\n");
  printf("   update >= %.0f%% of the BLAS roofline: %.0f%% (median)  %s\n", 100 * GOAL_ROOF,
         100 * roof, verdict(roof >= GOAL_ROOF));
  if (t.ok) {
    double x = (1.0 / upd_median) / t.updates_per_s;
    printf("   update >= %.1fx PyTorch: %.2fx (medians)  %s\n", GOAL_VS_TORCH, x,
           verdict(x >= GOAL_VS_TORCH));
  } else {
    printf("   update >= %.1fx PyTorch: not measured\n", GOAL_VS_TORCH);
  }
  if (with_latency)
    printf("   frl_sac_act p99 <= %.0f us: %.2f us  %s\n", GOAL_P99_US, ls.p99_us,
           verdict(ls.p99_us <= GOAL_P99_US));
  return 0;
}
