/* emulator.c: `fleetrl emulate`, a robot emulator and the template for a real robot's program.
 * It uses the client library exactly as a robot does: a fixed-rate control loop on absolute
 * deadlines (clock_nanosleep), act() -> actuators -> sensors -> record(), over a built-in
 * environment standing in for the hardware, with sensor noise and an actuation delay with
 * jitter. It counts missed deadlines and reports the loop's timing, so that the claim "the
 * network never stalls the control loop" is measured, not assumed. To drive a real robot,
 * replace the three marked hardware calls (read sensors, apply command, reset).
 * With --policy FILE it evaluates a trained policy the way a robot would: offline (unless
 * --actor-endpoint is given), at the loop's fixed rate, for --episodes episodes, then prints
 * the mean return, success rate, violations and the shield's interventions. */
#include "client.h"

#include <cblas.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "config.h"
#include "curve.h"
#include "env.h"
#include "hardware.h"
#include "log.h"
#include "policy_file.h"
#include "randomize.h"
#include "rng.h"
#include "shield.h"

#define CMD_QUEUE 256        /* commands in flight to the emulated actuators */
#define MAX_SAMPLES 1000000  /* timing samples kept per report period */

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { g_stop = sig; }

typedef struct {
  uint64_t apply_ns;
  float action[FRL_ENV_MAX_DIM];
} command_t;

typedef struct {
  float *wake_ms, *work_ms, *sort;
  size_t n, cap;
  double act_max_ms, record_max_ms;
  uint64_t iterations, missed;
} timing_t;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static double wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The robot's sensors: the true state plus Gaussian noise. */
static void sense(float *meas, const float *truth, int n, double sigma, frl_rng_t *rng) {
  for (int i = 0; i < n; i++) meas[i] = truth[i] + (float)(sigma * frl_rng_normal(rng));
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* p-quantile (0..1) of n values, sorted into scratch. */
static double quantile(float *scratch, const float *v, size_t n, double p) {
  if (n == 0) return 0;
  memcpy(scratch, v, n * sizeof(float));
  qsort(scratch, n, sizeof(float), cmp_float);
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return scratch[i < n ? i : n - 1];
}

/* Whether a setting was given on the command line or by its environment twin, rather than
 * left to the task preset or the built-in default. */
static bool given(int argc, char **argv, const char *flag, const char *env) {
  size_t n = strlen(flag);
  for (int i = 0; i < argc; i++)
    if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, flag, n) == 0 &&
        (argv[i][2 + n] == '\0' || argv[i][2 + n] == '='))
      return true;
  const char *v = getenv(env);
  return v && *v;
}

/* Parses the settings; with --policy and no --task, the task (and, without --env either, the
 * environment) default to the policy file's, so `emulate --policy FILE` just runs it. A file
 * that cannot be read is left for the client to report. Returns frl_config_parse's code. */
static int parse_settings(frl_config_t *cfg, int argc, char **argv) {
  int rc = frl_config_parse(cfg, FRL_CFG_ACTOR | FRL_CFG_ROBOT, argc, argv, stdout, stderr);
  if (rc != 0 || !cfg->policy_path[0] || given(argc, argv, "task", "FLEETRL_TASK")) return rc;
  frl_policy_info_t info;
  float *params = NULL, *mean = NULL, *std = NULL;
  size_t n;
  char err[512];
  if (frl_policy_load(cfg->policy_path, &info, &params, &n, &mean, &std, err, sizeof err) != 0)
    return 0;
  free(params);
  free(mean);
  free(std);
  char task[96], env[64];
  snprintf(task, sizeof task, "--task=%s", info.task);
  snprintf(env, sizeof env, "--env=%s", info.env);
  char **args = frl_xcalloc((size_t)argc + 2, sizeof *args);
  int k = 0;
  args[k++] = task;
  if (!given(argc, argv, "env", "FLEETRL_ENV")) args[k++] = env;
  for (int i = 0; i < argc; i++) args[k++] = argv[i];
  rc = frl_config_parse(cfg, FRL_CFG_ACTOR | FRL_CFG_ROBOT, k, args, stdout, stderr);
  free(args);
  return rc;
}

/* At --log-level debug, every action with the observation it answered (float32 exactly, %.9g),
 * so that a policy's actions can be checked against another implementation step by step. */
static void trace_act(uint64_t step, const float *obs, int od, const float *action, int ad, int safe) {
  char line[900];
  size_t used = (size_t)snprintf(line, sizeof line, "act %llu: obs", (unsigned long long)step);
  for (int i = 0; i < od && used < sizeof line; i++)
    used += (size_t)snprintf(line + used, sizeof line - used, " %.9g", (double)obs[i]);
  if (used < sizeof line)
    used += (size_t)snprintf(line + used, sizeof line - used, " -> %s", safe ? "safe" : "action");
  for (int i = 0; i < ad && used < sizeof line; i++)
    used += (size_t)snprintf(line + used, sizeof line - used, " %.9g", (double)action[i]);
  frl_debug("%s%s", line, used >= sizeof line ? " ...(truncated)" : "");
}

static void report(frl_client_t *c, timing_t *t, double seconds, double deadline_ms, bool final) {
  frl_client_status_t st;
  frl_client_status(c, &st);
  double wake50 = quantile(t->sort, t->wake_ms, t->n, 0.5), wake99 = quantile(t->sort, t->wake_ms, t->n, 0.99);
  double wakemax = quantile(t->sort, t->wake_ms, t->n, 1.0);
  double work50 = quantile(t->sort, t->work_ms, t->n, 0.5), work99 = quantile(t->sort, t->work_ms, t->n, 0.99);
  double workmax = quantile(t->sort, t->work_ms, t->n, 1.0);
  frl_info("%s%.1f Hz over %.1f s: %llu iterations, missed deadlines %llu (deadline %.1f ms); wake "
           "latency p50 %.3f p99 %.3f max %.3f ms; work p50 %.3f p99 %.3f max %.3f ms; act max "
           "%.3f ms, record max %.3f ms | %s, params v%llu (lag %llu), outbox %u, safe mode %s (%s), "
           "steps %llu, shed %llu steps %llu batches, clipped %llu, barrier %llu",
           final ? "emulator stopping: " : "loop: ", seconds > 0 ? (double)t->n / seconds : 0.0,
           seconds, (unsigned long long)t->iterations, (unsigned long long)t->missed, deadline_ms,
           wake50, wake99, wakemax, work50, work99, workmax, t->act_max_ms, t->record_max_ms,
           st.offline ? "offline" : st.connected ? "connected" : "DISCONNECTED",
           (unsigned long long)st.params_version,
           (unsigned long long)st.policy_lag, st.outbox, st.safe_mode ? "ON" : "off", st.reason,
           (unsigned long long)st.steps, (unsigned long long)st.shed_steps,
           (unsigned long long)st.shed_batches, (unsigned long long)st.clipped,
           (unsigned long long)st.barrier);
  t->n = 0;
}

int frl_emulate_main(int argc, char **argv) {
  frl_config_t cfg;
  int rc = parse_settings(&cfg, argc, argv);
  if (rc == 1) return 0;
  if (rc != 0) return 2;
  frl_log_init(cfg.name, frl_log_level_parse(cfg.log_level));
  openblas_set_num_threads(1);
  if (frl_curve_setup(&cfg, false, stderr) != 0) return 2;
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  const double period_s = 1.0 / cfg.rate_hz;
  const uint64_t period_ns = (uint64_t)(period_s * 1e9);
  const double deadline_s = cfg.deadline_s > 0 ? cfg.deadline_s : period_s;
  const uint64_t deadline_ns = (uint64_t)(deadline_s * 1e9);
  frl_env_t *env = NULL;
  frl_client_t *c = NULL;
  timing_t t = {0};
  command_t *cmds = NULL;
  int code = 1;
  char err[512];
  uint64_t seed = cfg.seed * 1000003ULL + frl_fnv1a64(cfg.name, strlen(cfg.name), FRL_FNV_SEED);
  if (frl_env_new(&env, cfg.env, seed, err, sizeof err) != 0) {
    frl_error("--env: %s", err);
    return 2;
  }
  /* The emulated hardware takes the same sim-to-real models a simulated actor does: domain
   * randomization around the task, the motor and sensor model around both. */
  frl_randomize_opts_t dr;
  frl_hardware_opts_t hw;
  if (frl_randomize_from_config(&dr, &cfg, err, sizeof err) != 0 ||
      frl_randomize_wrap(&env, &dr, seed ^ 0x2545f4914f6cdd1dULL, err, sizeof err) != 0 ||
      frl_hardware_from_config(&hw, &cfg, err, sizeof err) != 0 ||
      (cfg.hardware_model && frl_hardware_wrap(&env, &hw, seed ^ 0x9e3779b97f4a7c15ULL, err, sizeof err) != 0)) {
    frl_error("%s", err);
    code = 2;
    goto done;
  }
  if (cfg.limits[0]) {
    /* The barrier's guarantee needs k * period <= 1 at the rate the loop really runs. */
    frl_limits_t *lim = frl_xmalloc(sizeof *lim);
    bool too_slow = frl_limits_load(cfg.limits, lim, err, sizeof err) == 0 && lim->n_joints > 0 &&
                    lim->barrier_gain * period_s > 1.0;
    if (too_slow)
      frl_error("--rate-hz %g: the limits' barrier_gain %g/s needs at least %g Hz (k * period <= 1)",
                cfg.rate_hz, lim->barrier_gain, lim->barrier_gain);
    free(lim);
    if (too_slow) {
      code = 2;
      goto done;
    }
  }
  frl_client_options_t opts = {.cfg = &cfg, .demonstration = cfg.demonstration};
  /* A policy file runs offline unless a broker was asked for (then it also ships experience). */
  bool offline = cfg.policy_path[0] && !given(argc, argv, "actor-endpoint", "FLEETRL_ACTOR_ENDPOINT");
  rc = frl_client_connect(&c, offline ? NULL : cfg.actor_endpoint, NULL, NULL, NULL, &opts, err,
                          sizeof err);
  if (rc != 0) {
    frl_error("%s", err);
    code = rc == FRL_EUSAGE || rc == FRL_ENOTFOUND || rc == FRL_EDIM ? 2 : 1;
    goto done;
  }
  const bool trace = frl_log_level_parse(cfg.log_level) == FRL_LOG_DEBUG;
  const frl_env_spec_t *spec = frl_env_spec(env);
  const int od = spec->obs_dim, ad = frl_client_act_dim(c);
  t.cap = (size_t)FRL_MIN((double)MAX_SAMPLES, ceil(cfg.rate_hz * cfg.report_s) + 16);
  t.wake_ms = frl_xcalloc(t.cap, sizeof(float));
  t.work_ms = frl_xcalloc(t.cap, sizeof(float));
  t.sort = frl_xcalloc(t.cap, sizeof(float));
  cmds = frl_xcalloc(CMD_QUEUE, sizeof *cmds);
  int cmd_head = 0, cmd_len = 0;
  frl_rng_t rng;
  frl_rng_seed(&rng, seed ^ 0xa5a5a5a5ULL);

  float truth[FRL_ENV_MAX_DIM], meas[FRL_ENV_MAX_DIM], action[FRL_ENV_MAX_DIM];
  float applied[FRL_ENV_MAX_DIM] = {0}; /* what the actuators do now: rest until a command lands */
  if (spec->n_actions <= 0)
    for (int i = 0; i < ad; i++)
      applied[i] = spec->act_low[i] > 0 ? spec->act_low[i] : (spec->act_high[i] < 0 ? spec->act_high[i] : 0);
  const double sigma = cfg.sensor_noise;

  /* HARDWARE: home the robot and read its sensors. */
  frl_env_reset(env, truth);
  sense(meas, truth, od, sigma, &rng);
  frl_client_reset(c, meas);

  double ep_return = 0;
  uint64_t episodes = 0;
  int last_safe = 0;
  uint64_t start = mono_ns(), next = start, last_report = start;
  uint64_t stop_at = cfg.duration_s > 0 ? start + (uint64_t)(cfg.duration_s * 1e9) : UINT64_MAX;
  bool first = true;
  frl_info("emulating %s at %.1f Hz (deadline %.2f ms), sensor noise %g, actuation latency %g s + "
           "U(0, %g) s", cfg.env, cfg.rate_hz, deadline_s * 1e3, sigma, cfg.actuation_latency_s,
           cfg.actuation_jitter_s);
  code = 0;
  while (!g_stop) {
    uint64_t release = next, now = mono_ns();
    if (now >= stop_at) break;
    double wake_ms = now > release ? (double)(now - release) * 1e-6 : 0.0;
    if (!first) {
      /* The actuators ran the newest command that had reached them by now. */
      while (cmd_len > 0 && cmds[cmd_head].apply_ns <= now) {
        memcpy(applied, cmds[cmd_head].action, sizeof(float) * (size_t)ad);
        cmd_head = (cmd_head + 1) % CMD_QUEUE;
        cmd_len--;
      }
      /* HARDWARE: the world moves under the applied command for one period; read the sensors. */
      frl_step_t st;
      frl_env_step(env, applied, truth, &st);
      sense(meas, truth, od, sigma, &rng);
      ep_return += st.reward;
      frl_client_info_t info = {.success = st.success, .violations = st.violations};
      uint64_t r0 = mono_ns();
      frl_client_record(c, meas, applied, st.reward, st.terminal, st.truncated, &info);
      t.record_max_ms = FRL_MAX(t.record_max_ms, (double)(mono_ns() - r0) * 1e-6);
      if (st.terminal || st.truncated) {
        episodes++;
        frl_debug("episode %llu: return %.2f", (unsigned long long)episodes, ep_return);
        ep_return = 0;
        if (cfg.episodes > 0 && episodes >= cfg.episodes) break;
        /* HARDWARE: bring the robot back to a start state. */
        frl_env_reset(env, truth);
        sense(meas, truth, od, sigma, &rng);
        frl_client_reset(c, meas);
      }
    }
    first = false;
    uint64_t a0 = mono_ns();
    int safe = frl_client_act(c, meas, action);
    uint64_t a1 = mono_ns();
    t.act_max_ms = FRL_MAX(t.act_max_ms, (double)(a1 - a0) * 1e-6);
    if (trace) trace_act(t.iterations, meas, od, action, ad, safe);
    /* HARDWARE: send the command; here it reaches the actuators after the latency. */
    if (cmd_len == CMD_QUEUE) { /* latency beyond the queue: the oldest command lands now */
      memcpy(applied, cmds[cmd_head].action, sizeof(float) * (size_t)ad);
      cmd_head = (cmd_head + 1) % CMD_QUEUE;
      cmd_len--;
    }
    command_t *cmd = &cmds[(cmd_head + cmd_len++) % CMD_QUEUE];
    double delay = cfg.actuation_latency_s + cfg.actuation_jitter_s * frl_rng_uniform(&rng);
    cmd->apply_ns = a1 + (uint64_t)(delay * 1e9);
    memcpy(cmd->action, action, sizeof(float) * (size_t)ad);
    if (safe != last_safe) {
      /* The moment the safe action (or the policy again) was handed to the actuators, on the
       * wall clock, so that e-stop latency can be measured from outside. */
      frl_client_status_t st;
      frl_client_status(c, &st);
      if (safe) frl_warn("SAFE ACTION applied at wall %.6f (%s)", wall_s(), st.reason);
      else frl_info("POLICY ACTION applied at wall %.6f", wall_s());
      last_safe = safe;
    }
    uint64_t end = mono_ns();
    if (end - release > deadline_ns) t.missed++;
    t.iterations++;
    if (t.n < t.cap) {
      t.wake_ms[t.n] = (float)wake_ms;
      t.work_ms[t.n] = (float)((double)(end - now) * 1e-6);
      t.n++;
    }
    if (end - last_report >= (uint64_t)(cfg.report_s * 1e9)) {
      report(c, &t, (double)(end - last_report) * 1e-9, deadline_s * 1e3, false);
      last_report = end;
      frl_client_status_t st;
      frl_client_status(c, &st);
      if (st.refused) {
        frl_error("%s", st.reason);
        code = 2;
        break;
      }
    }
    next += period_ns;
    if (end > next + deadline_ns) {
      /* Behind by more than the deadline: those releases can no longer meet it, so they are
       * dropped (each counted as missed) and the loop keeps its phase. A smaller lag is caught
       * up by running the late iterations at once, each still held to its deadline. */
      uint64_t skipped = (end - next) / period_ns;
      t.missed += skipped;
      next += skipped * period_ns;
    }
    struct timespec ts = {.tv_sec = (time_t)(next / 1000000000ULL), .tv_nsec = (long)(next % 1000000000ULL)};
    while (!g_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
  }
  report(c, &t, (double)(mono_ns() - last_report) * 1e-9, deadline_s * 1e3, true);
  frl_info("emulator: %llu iterations in %.1f s, %llu episodes, missed deadlines %llu in total",
           (unsigned long long)t.iterations, (double)(mono_ns() - start) * 1e-9,
           (unsigned long long)episodes, (unsigned long long)t.missed);
  /* The evaluation, from the library's own tally, in `fleetrl eval`'s words. */
  frl_client_status_t fin;
  frl_client_status(c, &fin);
  if (cfg.policy_path[0]) printf("policy %s: task %s, params v%llu\n", cfg.policy_path, cfg.task,
                                 (unsigned long long)fin.params_version);
  printf("robot %s (env %s, sensor noise %g), %llu episodes: mean return %.2f ± %.2f, mean length "
         "%.1f, success %.1f%%, violations %llu; shield: clipped %llu, barrier %llu, safe actions "
         "%llu; missed deadlines %llu\n",
         cfg.name, cfg.env, sigma, (unsigned long long)fin.episodes, fin.mean_return,
         fin.std_return, fin.mean_length,
         fin.episodes ? 100.0 * (double)fin.successes / (double)fin.episodes : 0.0,
         (unsigned long long)fin.violations, (unsigned long long)fin.clipped,
         (unsigned long long)fin.barrier, (unsigned long long)fin.safe_actions,
         (unsigned long long)t.missed);
  fflush(stdout);
done:
  frl_client_close(&c);
  frl_env_destroy(&env);
  free(cmds);
  free(t.wake_ms);
  free(t.work_ms);
  free(t.sort);
  return code;
}
