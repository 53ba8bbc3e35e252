/* eval.c: loads a policy file, checks it against the environment, and acts with frl_policy
 * exactly as an actor would, minus exploration; optionally on chosen physics (--physics), for
 * measuring how a policy generalizes beyond the physics it was trained on. */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "env.h"
#include "history.h"
#include "policy.h"
#include "policy_file.h"
#include "randomize.h"

static int usage(void) {
  fprintf(stderr,
          "usage: fleetrl eval POLICY_FILE [--episodes N (1..100000, default 20)] [--env NAME | "
          "--task TASK] [--seed S] [--physics NAME=VALUE,...]\n"
          "  --task TASK    evaluate on the environment of this task preset\n"
          "  --physics ...  every episode with these parameters (the rest nominal): mass, damping,\n"
          "                 motor_strength, link_length (multipliers), friction, gravity (m/s^2),\n"
          "                 sensor_noise (sigma), action_delay (steps); e.g. mass=1.3,damping=1.4\n"
          "On a robot (or its emulator) instead, offline through its shield and watchdog:\n"
          "  fleetrl emulate --policy POLICY_FILE --episodes N (see README, Physical robots)\n");
  return 2;
}

/* Wraps env so that every episode runs on `physics` ("name=value,..."); a physical parameter the
 * environment lacks is an error naming the ones it has. Returns 0, or 2 (bad value: usage) or 1
 * with a message printed. */
static int apply_physics(frl_env_t **env, const char *env_name, const char *physics) {
  double value[FRL_RANDOMIZE_COUNT], nominal[FRL_PHYS_COUNT];
  char err[320];
  if (frl_randomize_parse_values(physics, value, err, sizeof err) != 0) {
    fprintf(stderr, "fleetrl eval: --physics: %s\n", err);
    return 2;
  }
  frl_env_physics_nominal(*env, nominal);
  for (int p = 0; p < FRL_PHYS_COUNT; p++) {
    if (isnan(value[p]) || !isnan(nominal[p])) continue;
    char have[160] = "";
    size_t used = 0;
    for (int q = 0; q < FRL_PHYS_COUNT && used < sizeof have; q++)
      if (!isnan(nominal[q]))
        used += (size_t)snprintf(have + used, sizeof have - used, "%s%s", used ? ", " : "",
                                 frl_phys_name(q));
    fprintf(stderr,
            "fleetrl eval: --physics: %s has no parameter '%s' (it has: %s%ssensor_noise, "
            "action_delay)\n",
            env_name, frl_phys_name(p), have, used ? ", " : "");
    return 2;
  }
  frl_randomize_opts_t o;
  frl_randomize_fixed(&o, value);
  if (frl_randomize_wrap(env, &o, 1, err, sizeof err) != 0) {
    fprintf(stderr, "fleetrl eval: --physics: %s\n", err);
    return 1;
  }
  return 0;
}

int frl_eval_main(int argc, char **argv) {
  const char *path = NULL, *env_name = NULL, *task = NULL, *physics = NULL;
  frl_config_t preset;
  long episodes = 20;
  unsigned long long seed = 12345;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end = NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage();
      return 0;
    } else if (!strcmp(a, "--episodes") && v) {
      episodes = strtol(v, &end, 10);
      if (*end || episodes < 1 || episodes > 100000) {
        fprintf(stderr, "fleetrl eval: --episodes: '%s' is outside [1, 100000]\n", v);
        return 2;
      }
      i++;
    } else if (!strcmp(a, "--env") && v) {
      env_name = v;
      i++;
    } else if (!strcmp(a, "--task") && v) {
      task = v;
      i++;
    } else if ((!strcmp(a, "--physics") || !strcmp(a, "--eval-physics")) && v) {
      physics = v;
      i++;
    } else if (!strcmp(a, "--seed") && v) {
      seed = strtoull(v, &end, 10);
      if (*end) {
        fprintf(stderr, "fleetrl eval: --seed: '%s' is not a number\n", v);
        return 2;
      }
      i++;
    } else if (a[0] != '-' && !path) {
      path = a;
    } else {
      fprintf(stderr, "fleetrl eval: unknown or incomplete argument '%s'\n", a);
      return usage();
    }
  }
  if (!path) return usage();
  if (task && !env_name) {
    char *targv[] = {"--task", (char *)task};
    if (frl_config_parse(&preset, FRL_CFG_COMMON, 2, targv, stdout, stderr) != 0) return 2;
    env_name = preset.env;
  }

  frl_policy_info_t info;
  float *params = NULL, *mean = NULL, *std = NULL;
  size_t n = 0;
  char err[512];
  int rc = frl_policy_load(path, &info, &params, &n, &mean, &std, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "fleetrl eval: %s\n", err);
    return 1;
  }
  int code = 1;
  frl_env_t *env = NULL;
  frl_policy_t *policy = NULL;
  if (!env_name) env_name = info.env;
  if (frl_env_new(&env, env_name, seed, err, sizeof err) != 0) {
    fprintf(stderr, "fleetrl eval: %s\n", err);
    goto done;
  }
  if (physics && (code = apply_physics(&env, env_name, physics)) != 0) goto done;
  code = 1;
  /* A policy trained with a history (--action-history, --obs-history) sees its own last commands
   * and observations, as it did in training. */
  if (frl_history_wrap(&env, info.action_history, info.obs_history, err, sizeof err) != 0) {
    fprintf(stderr, "fleetrl eval: %s: %s\n", path, err);
    goto done;
  }
  const frl_env_spec_t *spec = frl_env_spec(env);
  const frl_policy_shape_t *shape = &info.shape;
  bool discrete = shape->algo == FRL_ALGO_DQN;
  if (spec->obs_dim != shape->obs_dim ||
      (discrete ? spec->n_actions != shape->n_actions
                : (spec->n_actions != 0 || spec->act_dim != shape->act_dim))) {
    fprintf(stderr, "fleetrl eval: %s has obs %d and %s %d; the policy needs obs %d and %s %d\n",
            env_name, spec->obs_dim, spec->n_actions ? "actions" : "action dims",
            spec->n_actions ? spec->n_actions : spec->act_dim, shape->obs_dim,
            discrete ? "actions" : "action dims", discrete ? shape->n_actions : shape->act_dim);
    goto done;
  }
  frl_rng_t rng;
  frl_rng_seed(&rng, seed);
  policy = frl_policy_new(shape, 1, &rng);
  if (!policy) goto done;
  memcpy(frl_policy_params(policy), params, n * sizeof(float));
  if (mean) frl_policy_set_normalizer(policy, mean, std, (size_t)shape->obs_dim);
  double sum = 0, sum2 = 0, steps = 0;
  long successes = 0, violations = 0;
  float obs[FRL_ENV_MAX_DIM], action[FRL_ENV_MAX_DIM], env_action[FRL_ENV_MAX_DIM];
  for (long e = 0; e < episodes; e++) {
    frl_env_reset(env, obs);
    double ret = 0;
    bool success = false;
    for (;;) {
      frl_policy_act(policy, obs, 0.0, &rng, action);
      if (discrete) env_action[0] = action[0];
      else
        frl_policy_scale(env_action, action, spec->act_low, spec->act_high, info.action_scale,
                         spec->act_dim);
      frl_step_t st;
      frl_env_step(env, env_action, obs, &st);
      ret += st.reward;
      steps++;
      success |= st.success;
      violations += st.violations;
      if (st.terminal || st.truncated) break;
    }
    successes += success;
    sum += ret;
    sum2 += ret * ret;
  }
  double m = sum / (double)episodes, var = sum2 / (double)episodes - m * m;
  printf("policy %s: task %s, %s, params v%llu after %llu updates\n", path, info.task,
         frl_algo_name(shape->algo), (unsigned long long)info.params_version,
         (unsigned long long)info.updates);
  if (physics) printf("physics %s\n", frl_randomize_json(env));
  /* Wilson's 95% interval for the success rate: a rate read off a few hundred episodes moves
   * by several points from one evaluation seed to the next. */
  const double ne = (double)episodes, p = (double)successes / ne, z = 1.959964;
  const double centre = (p + z * z / (2 * ne)) / (1 + z * z / ne);
  const double half = z * sqrt(p * (1 - p) / ne + z * z / (4 * ne * ne)) / (1 + z * z / ne);
  printf("env %s, %ld episodes: mean return %.2f ± %.2f, mean length %.1f, success %.1f%%, "
         "violations %ld (success 95%% interval %.1f-%.1f%%)\n",
         env_name, episodes, m, sqrt(var > 0 ? var : 0), steps / ne, 100.0 * p, violations,
         100.0 * fmax(0.0, centre - half), 100.0 * fmin(1.0, centre + half));
  code = 0;
done:
  frl_policy_destroy(&policy);
  frl_env_destroy(&env);
  free(params);
  free(mean);
  free(std);
  return code;
}
