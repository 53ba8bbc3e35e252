/* bench_mujoco.c: environment steps per second of each built-in MuJoCo task under uniformly
 * random actions in one process, next to the reference measured in the same run: a bare
 * mj_step loop on the same model, also with random controls and the same reset cadence. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mujoco/mujoco.h>

#include "common.h"
#include "env.h"
#include "mujoco_env.h"
#include "rng.h"

#define SECONDS_PER_RUN 1.5

static const char *const g_names[] = {"humanoid-walk", "humanoid-standup", "mj-reacher", "walker"};

typedef struct {
  double env_steps_per_s;
  double episodes;
  double mean_episode_len;
} env_run_t;

/* Random actions until SECONDS_PER_RUN pass; resets whenever an episode ends. */
static int run_env(const char *name, env_run_t *out) {
  frl_env_t *e = NULL;
  char err[512];
  int rc = frl_env_new(&e, name, 1, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "bench_mujoco: %s\n", err);
    return rc;
  }
  const frl_env_spec_t *sp = frl_env_spec(e);
  frl_rng_t rng;
  frl_rng_seed(&rng, 2);
  float obs[FRL_ENV_MAX_DIM], act[FRL_ENV_MAX_DIM];
  frl_step_t st;
  long steps = 0, episodes = 1;
  frl_env_reset(e, obs);
  double t0 = frl_now(), t = t0;
  while (t - t0 < SECONDS_PER_RUN) {
    for (int k = 0; k < 64; k++) {
      for (int i = 0; i < sp->act_dim; i++)
        act[i] = sp->act_low[i] + (sp->act_high[i] - sp->act_low[i]) * (float)frl_rng_uniform(&rng);
      frl_env_step(e, act, obs, &st);
      steps++;
      if (st.terminal || st.truncated) {
        frl_env_reset(e, obs);
        episodes++;
      }
    }
    t = frl_now();
  }
  out->env_steps_per_s = steps / (t - t0);
  out->episodes = (double)episodes;
  out->mean_episode_len = (double)steps / (double)episodes;
  frl_env_destroy(&e);
  return 0;
}

/* The reference: mj_step with random controls on the task's own model, reset after as many
 * physics steps as the env's mean episode took, for the same time. Returns physics steps/s. */
static double run_bare(const char *name, double mean_episode_len, int *frame_skip) {
  char dir[4096], path[4200], err[512];
  if (frl_mjenv_model_dir(dir, sizeof dir) != 0) return 0;
  snprintf(path, sizeof path, "%s/%s.task", dir, name);
  frl_mjenv_t *me = NULL;
  frl_env_spec_t spec = {0};
  if (frl_mjenv_open(&me, path, &spec, err, sizeof err) != 0) {
    fprintf(stderr, "bench_mujoco: %s\n", err);
    return 0;
  }
  const mjModel *m = frl_mjenv_model(me);
  *frame_skip = frl_mjenv_frame_skip(me);
  mjData *d = mj_makeData(m);
  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
  long reset_every = (long)(mean_episode_len * *frame_skip) + 1, steps = 0;
  double t0 = frl_now(), t = t0;
  while (t - t0 < SECONDS_PER_RUN) {
    for (int k = 0; k < 256; k++) {
      for (int i = 0; i < m->nu; i++) {
        double lo = m->actuator_ctrlrange[2 * i], hi = m->actuator_ctrlrange[2 * i + 1];
        d->ctrl[i] = lo + (hi - lo) * frl_rng_uniform(&rng);
      }
      mj_step(m, d);
      if (++steps % reset_every == 0) mj_resetData(m, d);
    }
    t = frl_now();
  }
  mj_deleteData(d);
  frl_mjenv_destroy(&me);
  return steps / (t - t0);
}

int main(void) {
  printf("MuJoCo %s, random actions, one process, %.1f s per measurement\n", mj_versionString(),
         SECONDS_PER_RUN);
  printf("%-18s %6s %14s %12s %16s %21s %9s\n", "env", "skip", "env steps/s", "mean ep len",
         "physics steps/s", "bare mj_step/s (ref)", "overhead");
  for (size_t i = 0; i < FRL_ARRAY_LEN(g_names); i++) {
    env_run_t r;
    if (run_env(g_names[i], &r) != 0) return 1;
    int skip = 1;
    double bare = run_bare(g_names[i], r.mean_episode_len, &skip);
    double physics = r.env_steps_per_s * skip;
    /* What the env costs beyond its physics steps: the final forward pass, observations,
     * rewards and the wrapper. */
    double overhead = bare > 0 ? 100.0 * (bare / physics - 1.0) : 0.0;
    printf("%-18s %6d %14.0f %12.1f %16.0f %21.0f %8.1f%%\n", g_names[i], skip,
           r.env_steps_per_s, r.mean_episode_len, physics, bare, overhead);
  }
  return 0;
}
