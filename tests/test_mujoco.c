/* test_mujoco.c: the MuJoCo task environments against MuJoCo driven directly: dimensions counted
 * from the models, steps equal to mj_step on a separately loaded model, rewards, termination and
 * success recomputed here from mjData (closed-form kinematics for the reacher), the task-file
 * parser's error messages, and seeding. Runs from the repository root. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mujoco/mujoco.h>

#include "common.h"
#include "env.h"
#include "env_impl.h"
#include "mujoco_env.h"
#include "rng.h"

#define HUMANOID_XML "/usr/share/mujoco/model/humanoid/humanoid.xml"
#define WALKER_XML "lib/mujoco/walker.xml"
#define REACHER_XML "lib/mujoco/reacher2.xml"

static mjModel *load(const char *path) {
  char err[1000] = "";
  mjModel *m = mj_loadXML(path, NULL, err, sizeof err);
  if (!m) fail_msg("cannot load %s: %s", path, err);
  mj_freeLastXML();
  return m;
}

static int body(const mjModel *m, const char *name) {
  int id = mj_name2id(m, mjOBJ_BODY, name);
  assert_true(id >= 0);
  return id;
}

static int sensor_dim(const mjModel *m, const char *name) {
  int id = mj_name2id(m, mjOBJ_SENSOR, name);
  assert_true(id >= 0);
  return m->sensor_dim[id];
}

static const double *sensor(const mjModel *m, const mjData *d, const char *name) {
  int id = mj_name2id(m, mjOBJ_SENSOR, name);
  assert_true(id >= 0);
  return d->sensordata + m->sensor_adr[id];
}

/* ---- the tasks, restated independently of the task files' parser ---------------------------- */

/* Centre of mass of all bodies but the world (the torso's subtree in the humanoid), from the
 * bodies' masses and inertial frames. */
static void mass_centre(const mjModel *m, const mjData *d, double c[3]) {
  double total = 0;
  c[0] = c[1] = c[2] = 0;
  for (int b = 1; b < m->nbody; b++) {
    total += m->body_mass[b];
    for (int k = 0; k < 3; k++) c[k] += m->body_mass[b] * d->xipos[3 * b + k];
  }
  for (int k = 0; k < 3; k++) c[k] /= total;
}

/* Mass-weighted linear velocity of the bodies' centres of mass. */
static void mass_centre_velocity(const mjModel *m, const mjData *d, double v[3]) {
  double total = 0, vel[6];
  v[0] = v[1] = v[2] = 0;
  for (int b = 1; b < m->nbody; b++) {
    mj_objectVelocity(m, d, mjOBJ_BODY, b, vel, 0); /* [angular; linear] at the body's COM */
    total += m->body_mass[b];
    for (int k = 0; k < 3; k++) v[k] += m->body_mass[b] * vel[3 + k];
  }
  for (int k = 0; k < 3; k++) v[k] /= total;
}

static double ctrl_sq(const mjModel *m, const double *u) {
  double s = 0;
  for (int i = 0; i < m->nu; i++) s += u[i] * u[i];
  return s;
}

/* Limited hinge/slide joints more than margin past their range. */
static int violations(const mjModel *m, const mjData *d, double margin) {
  int n = 0;
  for (int j = 0; j < m->njnt; j++) {
    if (!m->jnt_limited[j] || m->jnt_type[j] == mjJNT_FREE || m->jnt_type[j] == mjJNT_BALL)
      continue;
    double q = d->qpos[m->jnt_qposadr[j]];
    n += q < m->jnt_range[2 * j] - margin || q > m->jnt_range[2 * j + 1] + margin;
  }
  return n;
}

typedef struct {
  float reward;
  bool terminal, success;
  int violations;
} expect_t;

/* Humanoid walk/standup: obs = qpos[2:], qvel, centre-of-mass velocity (56 values). */
static int humanoid_obs(const mjModel *m, const mjData *d, float *obs) {
  int k = 0;
  for (int i = 2; i < m->nq; i++) obs[k++] = (float)d->qpos[i];
  for (int i = 0; i < m->nv; i++) obs[k++] = (float)d->qvel[i];
  double v[3];
  mass_centre_velocity(m, d, v);
  for (int i = 0; i < 3; i++) obs[k++] = (float)v[i];
  return k;
}

/* humanoid-walk: 1.25 v_com,x + 5 - 0.1 |u|^2; healthy while 1 <= torso z <= 2. */
static expect_t humanoid_walk_expect(const mjModel *m, const mjData *before, const mjData *after,
                                     const double *u, double dt) {
  double c0[3], c1[3];
  mass_centre(m, before, c0);
  mass_centre(m, after, c1);
  double z = after->xpos[3 * body(m, "torso") + 2];
  expect_t x = {.reward = (float)(1.25 * (c1[0] - c0[0]) / dt + 5.0 - 0.1 * ctrl_sq(m, u)),
                .terminal = z < 1.0 || z > 2.0,
                .violations = violations(m, after, 0.05)};
  return x;
}

/* humanoid-standup: 10 z + dz/dt - 0.1 |u|^2, never terminal. */
static expect_t humanoid_standup_expect(const mjModel *m, const mjData *before,
                                        const mjData *after, const double *u, double dt) {
  int t = body(m, "torso");
  double z0 = before->xpos[3 * t + 2], z1 = after->xpos[3 * t + 2];
  expect_t x = {.reward = (float)(10.0 * z1 + (z1 - z0) / dt - 0.1 * ctrl_sq(m, u)),
                .violations = violations(m, after, 0.05)};
  return x;
}

/* Reacher fingertip by planar forward kinematics: links 0.10 and 0.11 m at height 0.01. */
static void fingertip(const double *qpos, double p[3]) {
  p[0] = 0.1 * cos(qpos[0]) + 0.11 * cos(qpos[0] + qpos[1]);
  p[1] = 0.1 * sin(qpos[0]) + 0.11 * sin(qpos[0] + qpos[1]);
  p[2] = 0.01;
}

/* mj-reacher: obs = angles, angular velocities, target x y, fingertip position (sensor), target
 * minus fingertip. */
static int reacher_obs(const mjModel *m, const mjData *d, float *obs) {
  double tip[3], target[3] = {d->qpos[2], d->qpos[3], 0.01};
  fingertip(d->qpos, tip);
  int k = 0;
  for (int i = 0; i < 2; i++) obs[k++] = (float)d->qpos[i];
  for (int i = 0; i < 2; i++) obs[k++] = (float)d->qvel[i];
  for (int i = 2; i < 4; i++) obs[k++] = (float)d->qpos[i];
  for (int i = 0; i < 3; i++) obs[k++] = (float)tip[i];
  for (int i = 0; i < 3; i++) obs[k++] = (float)(target[i] - tip[i]);
  return k;
}

static double reacher_distance(const mjData *d) {
  double tip[3];
  fingertip(d->qpos, tip);
  return hypot(tip[0] - d->qpos[2], tip[1] - d->qpos[3]);
}

/* mj-reacher: -distance - 0.1 |u|^2; success within 2 cm. */
static expect_t reacher_expect(const mjModel *m, const mjData *before, const mjData *after,
                               const double *u, double dt) {
  double dist = reacher_distance(after);
  expect_t x = {.reward = (float)(-dist - 0.1 * ctrl_sq(m, u)),
                .success = dist < 0.02,
                .violations = violations(m, after, 0.0)};
  return x;
}

/* walker: obs = qpos[1:], qvel, the two touch sensors. */
static int walker_obs(const mjModel *m, const mjData *d, float *obs) {
  int k = 0;
  for (int i = 1; i < m->nq; i++) obs[k++] = (float)d->qpos[i];
  for (int i = 0; i < m->nv; i++) obs[k++] = (float)d->qvel[i];
  obs[k++] = (float)sensor(m, d, "touch_r")[0];
  obs[k++] = (float)sensor(m, d, "touch_l")[0];
  return k;
}

/* walker (seed E5): 0.1 v_x - 0.01 sum |gear u| - violations; ends past a tilt of pi/3. The
 * torso's pitch is qpos[2] (hinge about y), so its tilt from upright is |pitch| wrapped. */
static expect_t walker_expect(const mjModel *m, const mjData *before, const mjData *after,
                              const double *u, double dt) {
  int t = body(m, "torso");
  double vx = (after->xpos[3 * t] - before->xpos[3 * t]) / dt;
  double tau = 0;
  for (int i = 0; i < m->nu; i++) tau += fabs(m->actuator_gear[6 * i] * u[i]);
  int viol = violations(m, after, 0.02);
  double pitch = remainder(after->qpos[2], 2 * M_PI);
  expect_t x = {.reward = (float)(0.1 * vx - 0.01 * tau - viol),
                .terminal = fabs(pitch) > M_PI / 3,
                .violations = viol};
  return x;
}

typedef struct {
  const char *name, *xml;
  int frame_skip, max_steps;
  int (*obs)(const mjModel *m, const mjData *d, float *obs);
  expect_t (*expect)(const mjModel *m, const mjData *before, const mjData *after,
                     const double *u, double dt);
} task_ref_t;

static const task_ref_t g_tasks[] = {
    {"humanoid-walk", HUMANOID_XML, 5, 1000, humanoid_obs, humanoid_walk_expect},
    {"humanoid-standup", HUMANOID_XML, 5, 1000, humanoid_obs, humanoid_standup_expect},
    {"mj-reacher", REACHER_XML, 2, 50, reacher_obs, reacher_expect},
    {"walker", WALKER_XML, 4, 1000, walker_obs, walker_expect},
};

/* The standup task's start: lying on the back, torso 0.12 m up, turned -90 degrees about y. */
static void lying_pose(double *qpos) {
  const double q[7] = {0, 0, 0.12, M_SQRT1_2, 0, -M_SQRT1_2, 0};
  memcpy(qpos, q, sizeof q);
}

/* A state near the model's initial one: every hinge and slide joint moved by up to scale (the
 * free joint kept), every velocity up to scale. */
static void near_state(const mjModel *m, frl_rng_t *rng, double scale, double *s) {
  memcpy(s, m->qpos0, sizeof(double) * m->nq);
  for (int j = 0; j < m->njnt; j++)
    if (m->jnt_type[j] == mjJNT_HINGE || m->jnt_type[j] == mjJNT_SLIDE)
      s[m->jnt_qposadr[j]] += scale * (2 * frl_rng_uniform(rng) - 1);
  for (int i = 0; i < m->nv; i++) s[m->nq + i] = scale * (2 * frl_rng_uniform(rng) - 1);
}

static void assert_obs_near(const float *got, const float *want, int n, double rel) {
  for (int i = 0; i < n; i++)
    if (!(fabs((double)got[i] - want[i]) <= rel * (1.0 + fabs(want[i]))))
      fail_msg("obs[%d] = %.9g, expected %.9g", i, got[i], want[i]);
}

/* ---- dimensions --------------------------------------------------------------------------------- */

static void test_dimensions(void **unused) {
  char list[512];
  snprintf(list, sizeof list, ",%s,", frl_env_names());
  for (size_t k = 0; k < FRL_ARRAY_LEN(g_tasks); k++) {
    const task_ref_t *t = &g_tasks[k];
    char name[64];
    snprintf(name, sizeof name, ",%s,", t->name);
    assert_non_null(strstr(list, name));

    frl_env_t *e = NULL;
    char err[512];
    if (frl_env_new(&e, t->name, 3, err, sizeof err) != 0) fail_msg("%s: %s", t->name, err);
    const frl_env_spec_t *sp = frl_env_spec(e);
    mjModel *m = load(t->xml);

    /* Dimensions counted from the model, per the task's definition. */
    int obs_dim;
    if (strncmp(t->name, "humanoid", 8) == 0) obs_dim = (m->nq - 2) + m->nv + 3;
    else if (strcmp(t->name, "mj-reacher") == 0)
      obs_dim = 2 + 2 + (m->nq - 2) + sensor_dim(m, "fingertip_pos") + 3;
    else obs_dim = (m->nq - 1) + m->nv + sensor_dim(m, "touch_r") + sensor_dim(m, "touch_l");
    assert_string_equal(sp->name, t->name);
    assert_int_equal(sp->obs_dim, obs_dim);
    assert_int_equal(sp->act_dim, m->nu);
    assert_int_equal(sp->n_actions, 0);
    assert_int_equal(sp->max_steps, t->max_steps);
    for (int i = 0; i < m->nu; i++) {
      assert_true(m->actuator_ctrllimited[i]);
      assert_true(sp->act_low[i] == (float)m->actuator_ctrlrange[2 * i]);
      assert_true(sp->act_high[i] == (float)m->actuator_ctrlrange[2 * i + 1]);
    }

    /* reset and step write exactly obs_dim finite values. */
    float obs[FRL_ENV_MAX_DIM + 1], act[FRL_ENV_MAX_DIM] = {0};
    obs[obs_dim] = -12345.0f;
    frl_step_t st;
    frl_env_reset(e, obs);
    frl_env_step(e, act, obs, &st);
    assert_true(obs[obs_dim] == -12345.0f);
    for (int i = 0; i < obs_dim; i++) assert_true(isfinite(obs[i]));
    mj_deleteModel(m);
    frl_env_destroy(&e);
  }
  assert_true(strlen(frl_env_names()) < 256);
}

/* ---- steps against MuJoCo ------------------------------------------------------------------------ */

/* Runs the registered env and a separately loaded model side by side from the same state: 3
 * zero-action steps, then random actions, comparing obs, reward, terminal, success and
 * violations after every step, for up to max_steps steps or until the episode ends. Returns
 * whether it ended. */
static bool run_against_mujoco(const task_ref_t *t, uint64_t seed, bool lying, int max_steps) {
  frl_env_t *e = NULL;
  char err[512];
  if (frl_env_new(&e, t->name, seed, err, sizeof err) != 0) fail_msg("%s: %s", t->name, err);
  const frl_env_spec_t *sp = frl_env_spec(e);
  mjModel *m = load(t->xml);
  mjData *d = mj_makeData(m), *before = mj_makeData(m);
  frl_rng_t rng;
  frl_rng_seed(&rng, seed);
  double s[128];
  assert_true(m->nq + m->nv <= 128);
  near_state(m, &rng, 0.05, s);
  if (lying) lying_pose(s);

  float obs[FRL_ENV_MAX_DIM], want[FRL_ENV_MAX_DIM], act[FRL_ENV_MAX_DIM];
  frl_env_reset(e, obs);
  assert_int_equal(frl__env_set_state(e, s, m->nq + m->nv - 1, obs), FRL_EDIM);
  assert_int_equal(frl__env_set_state(e, s, m->nq + m->nv, obs), 0);
  memcpy(d->qpos, s, sizeof(double) * m->nq);
  memcpy(d->qvel, s + m->nq, sizeof(double) * m->nv);
  mj_forward(m, d);
  assert_int_equal(t->obs(m, d, want), sp->obs_dim);
  assert_obs_near(obs, want, sp->obs_dim, 1e-6);

  const double dt = t->frame_skip * m->opt.timestep;
  bool ended = false;
  for (int step = 0; step < max_steps && !ended; step++) {
    double u[FRL_ENV_MAX_DIM] = {0};
    for (int i = 0; i < m->nu; i++) {
      double lo = m->actuator_ctrlrange[2 * i], hi = m->actuator_ctrlrange[2 * i + 1];
      u[i] = step < 3 ? 0.0 : lo + (hi - lo) * frl_rng_uniform(&rng);
      act[i] = (float)u[i];
      u[i] = act[i]; /* the env sees the float */
    }
    mj_copyData(before, m, d);
    memcpy(d->ctrl, u, sizeof(double) * m->nu);
    for (int k = 0; k < t->frame_skip; k++) mj_step(m, d);
    mj_forward(m, d);
    expect_t x = t->expect(m, before, d, u, dt);

    frl_step_t st;
    frl_env_step(e, act, obs, &st);
    t->obs(m, d, want);
    assert_obs_near(obs, want, sp->obs_dim, 1e-6);
    if (!(fabsf(st.reward - x.reward) <= 1e-5f * (1.0f + fabsf(x.reward))))
      fail_msg("%s step %d: reward %.9g, expected %.9g", t->name, step, st.reward, x.reward);
    assert_int_equal(st.terminal, x.terminal);
    assert_int_equal(st.success, x.success);
    assert_int_equal(st.violations, x.violations);
    assert_int_equal(st.truncated, !st.terminal && step + 1 == sp->max_steps);
    ended = st.terminal;
    if (st.truncated) break;
  }
  mj_deleteData(before);
  mj_deleteData(d);
  mj_deleteModel(m);
  frl_env_destroy(&e);
  return ended;
}

static void test_steps_match_mujoco(void **unused) {
  for (size_t k = 0; k < FRL_ARRAY_LEN(g_tasks); k++) {
    const task_ref_t *t = &g_tasks[k];
    /* Random actions topple the walker and the walking humanoid well within 200 steps, so
     * their termination rules are met on the way; the others never end early. */
    bool falls = strcmp(t->name, "walker") == 0 || strcmp(t->name, "humanoid-walk") == 0;
    assert_int_equal(run_against_mujoco(t, 11 + k, false, 200), falls);
    /* Lying on the floor: contacts from the first step (the walking task ends at once). */
    if (strncmp(t->name, "humanoid", 8) == 0)
      assert_int_equal(run_against_mujoco(t, 21 + k, true, 40), falls);
  }
}

/* Through the module's own API the state can be read directly: after each step qpos, qvel,
 * sensors and body positions are bit-for-bit those of mj_step repeated, then mj_forward. */
static void test_state_bitwise(void **unused) {
  const char *tasks[][2] = {{"lib/mujoco/walker.task", WALKER_XML},
                            {"lib/mujoco/humanoid-standup.task", HUMANOID_XML}};
  for (size_t k = 0; k < FRL_ARRAY_LEN(tasks); k++) {
    frl_mjenv_t *e = NULL;
    frl_env_spec_t spec = {0};
    char err[512];
    if (frl_mjenv_open(&e, tasks[k][0], &spec, err, sizeof err) != 0) fail_msg("%s", err);
    const mjModel *me = frl_mjenv_model(e);
    const mjData *de = frl_mjenv_data(e);
    mjModel *m = load(tasks[k][1]);
    mjData *d = mj_makeData(m);
    assert_int_equal(me->nq, m->nq);
    frl_rng_t rng;
    frl_rng_seed(&rng, 99 + k);
    frl_mjenv_reset(e, &rng, (float[FRL_ENV_MAX_DIM]){0});
    /* Start from the env's own reset state (noise included), computed as the env did. */
    memcpy(d->qpos, de->qpos, sizeof(double) * m->nq);
    memcpy(d->qvel, de->qvel, sizeof(double) * m->nv);
    mj_forward(m, d);
    int fs = frl_mjenv_frame_skip(e);
    for (int step = 0; step < 20; step++) {
      float act[FRL_ENV_MAX_DIM], obs[FRL_ENV_MAX_DIM];
      for (int i = 0; i < m->nu; i++) {
        act[i] = (float)(2 * frl_rng_uniform(&rng) - 1);
        d->ctrl[i] = act[i];
      }
      for (int j = 0; j < fs; j++) mj_step(m, d);
      mj_forward(m, d);
      frl_step_t st = {0};
      frl_mjenv_step(e, act, obs, &st);
      assert_memory_equal(de->qpos, d->qpos, sizeof(double) * m->nq);
      assert_memory_equal(de->qvel, d->qvel, sizeof(double) * m->nv);
      assert_memory_equal(de->xpos, d->xpos, sizeof(double) * 3 * m->nbody);
      if (m->nsensordata)
        assert_memory_equal(de->sensordata, d->sensordata, sizeof(double) * m->nsensordata);
      assert_true(de->time == d->time);
      if (st.terminal) break;
    }
    mj_deleteData(d);
    mj_deleteModel(m);
    frl_mjenv_destroy(&e);
    assert_null(e);
  }
}

/* Actions outside the ctrlrange act as the nearest bound and NaN as the middle, also when the
 * module is used without the env wrapper. */
static void test_direct_clipping(void **unused) {
  frl_mjenv_t *a = NULL, *b = NULL;
  frl_env_spec_t spec = {0};
  char err[512];
  assert_int_equal(frl_mjenv_open(&a, "lib/mujoco/walker.task", &spec, err, sizeof err), 0);
  assert_int_equal(frl_mjenv_open(&b, "lib/mujoco/walker.task", &spec, err, sizeof err), 0);
  frl_rng_t r1, r2;
  frl_rng_seed(&r1, 4);
  frl_rng_seed(&r2, 4);
  float oa[32], ob[32];
  frl_mjenv_reset(a, &r1, oa);
  frl_mjenv_reset(b, &r2, ob);
  const float wild[6] = {5.0f, -7.0f, NAN, INFINITY, -INFINITY, 0.25f};
  const float tame[6] = {1.0f, -1.0f, 0.0f, 1.0f, -1.0f, 0.25f};
  frl_step_t sa = {0}, sb = {0};
  frl_mjenv_step(a, wild, oa, &sa);
  frl_mjenv_step(b, tame, ob, &sb);
  assert_memory_equal(oa, ob, sizeof(float) * spec.obs_dim);
  assert_true(sa.reward == sb.reward);
  assert_true(frl_mjenv_data(a)->ctrl[2] == 0.0);
  frl_mjenv_destroy(&a);
  frl_mjenv_destroy(&b);
  frl_mjenv_destroy(NULL);
}

/* ---- termination, success, violations, instability ---------------------------------------------- */

static frl_step_t step_from(frl_env_t *e, const double *s, int n, float *obs) {
  frl_step_t st;
  const float zero[FRL_ENV_MAX_DIM] = {0};
  frl_env_reset(e, obs);
  assert_int_equal(frl__env_set_state(e, s, n, obs), 0);
  frl_env_step(e, zero, obs, &st);
  return st;
}

static void test_termination_rules(void **unused) {
  float obs[FRL_ENV_MAX_DIM];
  char err[512];
  frl_env_t *e = NULL;

  /* walker: tilt over pi/3 (1.0472 rad) ends the episode, either way; nothing else does. */
  assert_int_equal(frl_env_new(&e, "walker", 1, err, sizeof err), 0);
  double s[18] = {0};
  s[2] = 0.9;
  assert_false(step_from(e, s, 18, obs).terminal);
  s[2] = -0.9;
  assert_false(step_from(e, s, 18, obs).terminal);
  s[2] = 1.1;
  assert_true(step_from(e, s, 18, obs).terminal);
  s[2] = -1.1;
  assert_true(step_from(e, s, 18, obs).terminal);
  s[2] = M_PI; /* upside down */
  assert_true(step_from(e, s, 18, obs).terminal);
  /* Falling over during the step: pitch 1.04 with -2 rad/s turns 0.016 rad in 8 ms. */
  s[2] = -1.04;
  s[9 + 2] = -2.0;
  assert_true(step_from(e, s, 18, obs).terminal);
  s[9 + 2] = 0.0;

  /* Violations: the right knee (qpos[4], range -3..150 degrees) bent 0.3 rad the wrong way, and
   * the left ankle (qpos[8], +-45 degrees) at 60 degrees: both count, and cost 1 each. */
  s[2] = 0.0;
  s[4] = -0.3;
  s[8] = 60.0 * M_PI / 180.0;
  frl_step_t st = step_from(e, s, 18, obs);
  assert_int_equal(st.violations, 2);
  assert_true(st.reward < -1.9f);
  s[4] = s[8] = 0.0;
  st = step_from(e, s, 18, obs);
  assert_int_equal(st.violations, 0);
  frl_env_destroy(&e);

  /* humanoid-walk: the torso must stay within [1, 2] m. */
  assert_int_equal(frl_env_new(&e, "humanoid-walk", 1, err, sizeof err), 0);
  mjModel *m = load(HUMANOID_XML);
  int n = m->nq + m->nv;
  double h[64] = {0};
  memcpy(h, m->qpos0, sizeof(double) * m->nq);
  assert_false(step_from(e, h, n, obs).terminal); /* standing at 1.5 */
  h[2] = 2.05; /* falls 3 mm in the 25 ms step */
  assert_true(step_from(e, h, n, obs).terminal);
  h[2] = 1.95;
  assert_false(step_from(e, h, n, obs).terminal);
  lying_pose(h);
  assert_true(step_from(e, h, n, obs).terminal);
  frl_env_destroy(&e);

  /* humanoid-standup never ends early, lying or standing. */
  assert_int_equal(frl_env_new(&e, "humanoid-standup", 1, err, sizeof err), 0);
  assert_false(step_from(e, h, n, obs).terminal);
  memcpy(h, m->qpos0, sizeof(double) * m->nq);
  assert_false(step_from(e, h, n, obs).terminal);
  frl_env_destroy(&e);
  mj_deleteModel(m);
}

static void test_reacher_success_and_time_limit(void **unused) {
  float obs[16];
  char err[512];
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "mj-reacher", 1, err, sizeof err), 0);
  /* Target on the fingertip (at rest) -> success; 3 cm away -> not; the episode goes on. */
  double s[8] = {0.4, 0.7, 0, 0, 0, 0, 0, 0}, tip[3];
  fingertip(s, tip);
  s[2] = tip[0];
  s[3] = tip[1];
  frl_step_t st = step_from(e, s, 8, obs);
  assert_true(st.success);
  assert_false(st.terminal);
  assert_float_equal(st.reward, 0.0, 1e-4);
  s[2] = tip[0] + 0.03;
  st = step_from(e, s, 8, obs);
  assert_false(st.success);
  assert_float_equal(st.reward, -0.03, 1e-4);

  /* 50 steps, then truncation (not a terminal state). */
  const float zero[2] = {0, 0};
  frl_env_reset(e, obs);
  for (int t = 1; t <= 50; t++) {
    frl_env_step(e, zero, obs, &st);
    assert_false(st.terminal);
    assert_int_equal(st.truncated, t == 50);
  }
  frl_env_destroy(&e);
}

static void test_unstable_simulation(void **unused) {
  /* A velocity past MuJoCo's 1e10 bound: the step is terminal with reward 0 and a finite
   * observation of the model's initial state (walker: all coordinates 0, feet in the air). */
  float obs[32];
  char err[512];
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "walker", 1, err, sizeof err), 0);
  double s[18] = {0};
  s[9] = 1e11;
  frl_step_t st = step_from(e, s, 18, obs);
  assert_true(st.terminal);
  assert_false(st.truncated);
  assert_true(st.reward == 0.0f);
  for (int i = 0; i < 19; i++) assert_true(obs[i] == 0.0f);
  /* A fresh episode runs normally. */
  frl_env_reset(e, obs);
  frl_env_step(e, (const float[6]){0}, obs, &st);
  assert_false(st.terminal);
  frl_env_destroy(&e);

  frl_mjenv_t *me = NULL;
  frl_env_spec_t spec = {0};
  assert_int_equal(frl_mjenv_open(&me, "lib/mujoco/walker.task", &spec, err, sizeof err), 0);
  frl_rng_t rng;
  frl_rng_seed(&rng, 1);
  frl_mjenv_reset(me, &rng, obs);
  s[9] = NAN;
  assert_int_equal(frl_mjenv_set_state(me, s, 18, obs), FRL_EUSAGE);
  s[9] = INFINITY;
  assert_int_equal(frl_mjenv_set_state(me, s, 18, obs), FRL_EUSAGE);
  assert_int_equal(frl_mjenv_set_state(me, s, 17, obs), FRL_EDIM);
  frl_mjenv_destroy(&me);
}

/* ---- seeding --------------------------------------------------------------------------------------- */

/* Runs n steps of random actions from policy_seed; writes obs and rewards into trace. */
static void rollout(frl_env_t *e, uint64_t policy_seed, int n, float *trace) {
  const frl_env_spec_t *sp = frl_env_spec(e);
  frl_rng_t pol;
  frl_rng_seed(&pol, policy_seed);
  float act[FRL_ENV_MAX_DIM];
  frl_step_t st = {0};
  frl_env_reset(e, trace);
  trace += sp->obs_dim;
  for (int t = 0; t < n; t++) {
    if (st.terminal || st.truncated) frl_env_reset(e, trace - sp->obs_dim);
    for (int i = 0; i < sp->act_dim; i++)
      act[i] = sp->act_low[i] + (sp->act_high[i] - sp->act_low[i]) * (float)frl_rng_uniform(&pol);
    frl_env_step(e, act, trace, &st);
    trace[sp->obs_dim] = st.reward;
    trace += sp->obs_dim + 1;
  }
}

static void test_seeds(void **unused) {
  const char *names[] = {"mj-reacher", "walker", "humanoid-walk"};
  static float a[80 * 64], b[80 * 64];
  for (size_t k = 0; k < FRL_ARRAY_LEN(names); k++) {
    frl_env_t *e1 = NULL, *e2 = NULL, *e3 = NULL;
    assert_int_equal(frl_env_new(&e1, names[k], 77, NULL, 0), 0);
    assert_int_equal(frl_env_new(&e2, names[k], 77, NULL, 0), 0);
    assert_int_equal(frl_env_new(&e3, names[k], 78, NULL, 0), 0);
    int dim = frl_env_spec(e1)->obs_dim, n = 70;
    size_t bytes = sizeof(float) * (size_t)(dim + n * (dim + 1));
    assert_true(bytes <= sizeof a);
    rollout(e1, 5, n, a);
    rollout(e2, 5, n, b);
    assert_memory_equal(a, b, bytes);
    rollout(e3, 5, n, b);
    assert_memory_not_equal(a, b, sizeof(float) * dim); /* another start state */
    frl_env_destroy(&e1);
    frl_env_destroy(&e2);
    frl_env_destroy(&e3);
  }
}

/* Reacher resets: arm angles within +-0.1 of straight, the target uniform over the annulus
 * 0.05 <= r <= 0.20, so r^2 is uniform on [0.0025, 0.04] with mean 0.02125 and standard
 * deviation 0.0375 / sqrt(12) = 0.01083. */
static void test_reacher_reset_distribution(void **unused) {
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "mj-reacher", 8, NULL, 0), 0);
  float obs[16];
  const int N = 3000;
  double sum = 0, lo = 1, hi = 0;
  int quadrant[4] = {0};
  for (int i = 0; i < N; i++) {
    frl_env_reset(e, obs);
    assert_true(fabsf(obs[0]) <= 0.1f && fabsf(obs[1]) <= 0.1f);
    double r2 = (double)obs[4] * obs[4] + (double)obs[5] * obs[5];
    assert_true(r2 >= 0.0025 * (1 - 1e-5) && r2 <= 0.04 * (1 + 1e-5));
    sum += r2;
    lo = fmin(lo, r2);
    hi = fmax(hi, r2);
    quadrant[(obs[4] >= 0) + 2 * (obs[5] >= 0)]++;
  }
  assert_float_equal(sum / N, 0.02125, 5 * 0.01083 / sqrt(N));
  assert_true(lo < 0.003 && hi > 0.039);
  for (int q = 0; q < 4; q++) assert_true(quadrant[q] > N / 4 - 5 * 24 && quadrant[q] < N / 4 + 5 * 24);
  frl_env_destroy(&e);
}

/* ---- task files and their errors ------------------------------------------------------------------ */

typedef struct {
  char dir[64];
  char walker[PATH_MAX]; /* absolute path of lib/mujoco/walker.xml */
} files_t;

static int files_setup(void **state) {
  files_t *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/frl_mujoco_XXXXXX");
  if (!mkdtemp(f->dir) || !realpath(WALKER_XML, f->walker)) {
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int files_teardown(void **state) {
  files_t *f = *state;
  const char *names[] = {"t.task", "m.xml", "humanoid-walk.task", "walker.task"};
  char path[PATH_MAX];
  for (size_t i = 0; i < FRL_ARRAY_LEN(names); i++) {
    snprintf(path, sizeof path, "%s/%s", f->dir, names[i]);
    unlink(path);
  }
  rmdir(f->dir);
  free(f);
  return 0;
}

static void write_file(const char *dir, const char *name, const char *text, size_t len,
                       char *path, size_t pathlen) {
  snprintf(path, pathlen, "%s/%s", dir, name);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(text, 1, len, fp), len);
  fclose(fp);
}

/* Copies text into out with every @WALKER@ replaced by path. */
static void substitute(char *out, size_t len, const char *text, const char *path) {
  const char *mark = "@WALKER@";
  size_t used = 0;
  while (*text) {
    const char *piece = text;
    size_t n = 1;
    if (strncmp(text, mark, strlen(mark)) == 0) {
      piece = path;
      n = strlen(path);
      text += strlen(mark);
    } else {
      text++;
    }
    assert_true(used + n < len);
    memcpy(out + used, piece, n);
    used += n;
  }
  out[used] = '\0';
}

/* Writes text (with the walker model's path for @WALKER@) as t.task and opens it. On error checks
 * that nothing was written to out or spec and that the message is one line. */
static int open_text(const files_t *f, const char *text, char *err, size_t errlen,
                     frl_env_spec_t *spec_out) {
  char body_text[8192], path[PATH_MAX];
  substitute(body_text, sizeof body_text, text, f->walker);
  write_file(f->dir, "t.task", body_text, strlen(body_text), path, sizeof path);
  frl_mjenv_t *e = (frl_mjenv_t *)0x1;
  frl_env_spec_t spec;
  memset(&spec, 0x5a, sizeof spec);
  frl_env_spec_t untouched = spec;
  err[0] = '\0';
  int rc = frl_mjenv_open(&e, path, &spec, err, errlen);
  if (rc == 0) {
    if (spec_out) *spec_out = spec;
    frl_mjenv_destroy(&e);
  } else {
    assert_ptr_equal(e, (frl_mjenv_t *)0x1);
    assert_memory_equal(&spec, &untouched, sizeof spec);
    assert_null(strchr(err, '\n'));
    assert_non_null(strstr(err, path));
  }
  return rc;
}

static void expect_error(const files_t *f, const char *text, int rc, const char *needle) {
  char err[1024];
  int got = open_text(f, text, err, sizeof err, NULL);
  if (got != rc || !strstr(err, needle))
    fail_msg("task:\n%s\ngave %d '%s'; expected %d with '%s'", text, got, err, rc, needle);
}

static void test_task_errors(void **state) {
  const files_t *f = *state;
  /* Each message names the file, then line and field. */
  expect_error(f, "model @WALKER@\nobs qpos 0 2\nfrobnicate 3\n", FRL_EUSAGE,
               "t.task:3: frobnicate: unknown key");
  expect_error(f, "model @WALKER@\nframe_skip 4x\nobs qpos 0 2\n", FRL_EUSAGE,
               "t.task:2: frame_skip: '4x' is not an integer");
  expect_error(f, "model @WALKER@\nframe_skip 0\nobs qpos 0 2\n", FRL_EUSAGE,
               "t.task:2: frame_skip: '0' is not an integer in [1, 10000]");
  expect_error(f, "model @WALKER@\nobs qpos 0 2\nreward 1.o alive\n", FRL_EUSAGE,
               "t.task:3: reward: '1.o' is not a finite number");
  expect_error(f, "model @WALKER@\nobs qpos 0 2\nreward nan alive\n", FRL_EUSAGE,
               "t.task:3: reward: 'nan' is not a finite number");
  expect_error(f, "model @WALKER@\nobs qpos 0 2\nterminate height torso 0.5 x2\n", FRL_EUSAGE,
               "t.task:3: terminate height: 'x2' is not a finite number");
  /* Unknown names are found after the model loads and still point at their line. */
  expect_error(f, "model @WALKER@\nobs qpos 0 2\n\n# comment\nterminate height torsoo 0.5 2\n",
               FRL_EUSAGE, "t.task:5: terminate height: no body named 'torsoo' in model");
  expect_error(f, "model @WALKER@\nobs qpos 0 2\nreward -1 distance site:tip body:torso\n", FRL_EUSAGE,
               "t.task:3: reward distance: no site named 'tip'");
  expect_error(f, "model @WALKER@\nobs qpos 0 2\nreward 1 velocity torso w\n", FRL_EUSAGE,
               "t.task:3: reward velocity: axis 'w' is not x, y or z");
  expect_error(f, "model @WALKER@\nobs sensor nosuch\n", FRL_EUSAGE,
               "t.task:2: obs sensor: no sensor named 'nosuch'");
  expect_error(f, "model @WALKER@\nobs com_vel site:sole_r\n", FRL_EUSAGE,
               "t.task:2: obs com_vel: 'sole_r' must be a body");
  expect_error(f, "model @WALKER@\nobs qpos 5 10\n", FRL_EUSAGE, "t.task:2: obs qpos: range 5..14 exceeds nq = 9");
  expect_error(f, "model @WALKER@\nobs qvel 0 9\nnoise qvel 8 2 uniform 0.1\n", FRL_EUSAGE,
               "t.task:3: noise: range 8..9 exceeds nv = 9");
  expect_error(f, "model @WALKER@\nobs qpos 1\n", FRL_EUSAGE, "t.task:2: obs qpos: expects 2 values");
  expect_error(f, "model @WALKER@\nobs joint 1\n", FRL_EUSAGE, "t.task:2: obs: unknown kind 'joint'");
  expect_error(f, "model @WALKER@\nobs qpos 0 1\nreward 1 speed\n", FRL_EUSAGE,
               "t.task:3: reward: unknown term 'speed'");
  expect_error(f, "model @WALKER@\nframe_skip 2\nframe_skip 3\nobs qpos 0 1\n", FRL_EUSAGE,
               "t.task:3: frame_skip: given twice (first on line 2)");
  expect_error(f, "model @WALKER@\nframe_skip 2\ncontrol_dt 0.004\nobs qpos 0 1\n", FRL_EUSAGE,
               "t.task:3: control_dt: frame_skip was given on line 2");
  expect_error(f, "model @WALKER@\ncontrol_dt 0.003\nobs qpos 0 1\n", FRL_EUSAGE,
               "t.task:2: control_dt: 0.003 s is not a multiple of the model's timestep 0.002");
  expect_error(f, "model @WALKER@\nobs qpos 0 1\nterminate tilt torso 4\n", FRL_EUSAGE,
               "t.task:3: terminate tilt: MAX_RADIANS 4 is not in (0, pi)");
  expect_error(f, "model @WALKER@\nobs qpos 0 1\nterminate height torso 2 1\n", FRL_EUSAGE,
               "t.task:3: terminate height: LO 2 is not below HI 1");
  expect_error(f, "model @WALKER@\nobs qpos 0 1\nsuccess distance torso foot_r 0.1 maybe\n", FRL_EUSAGE,
               "t.task:3: success distance: 'maybe' is not 'terminal'");
  expect_error(f, "model @WALKER@\nobs qpos 0 1\ninit_disk 0 0.3 0.1\n", FRL_EUSAGE,
               "t.task:3: init_disk: radii 0.3, 0.1 are not 0 <= RMIN <= RMAX");
  expect_error(f, "model @WALKER@\nobs qpos 0 1\nnoise qacc 0 1 uniform 1\n", FRL_EUSAGE,
               "t.task:3: noise: 'qacc' is not qpos or qvel");
  expect_error(f, "model @WALKER@\nobs qpos 0 1\nnoise qpos 0 1 cauchy 1\n", FRL_EUSAGE,
               "t.task:3: noise: distribution 'cauchy' is not uniform or normal");
  expect_error(f, "obs qpos 0 2\n", FRL_EUSAGE, "t.task: model: no 'model PATH' line");
  expect_error(f, "model @WALKER@\nmax_steps 10\n", FRL_EUSAGE, "t.task: obs: no 'obs' line");
  expect_error(f, "model a.xml\nobs qpos 0 1\nmodel b.xml\n", FRL_EUSAGE,
               "t.task:3: model: given twice (first on line 1)");
  expect_error(f, "model @WALKER@\nobs qpos 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 "
                  "24 25 26 27 28 29 30\n",
               FRL_EUSAGE, "t.task:2: line: more than 32 words");
  {
    char text[4096] = "model @WALKER@\n";
    for (int i = 0; i < 29; i++) strcat(text, "obs qvel 0 9\n"); /* 261 values */
    expect_error(f, text, FRL_EDIM, "t.task:30: obs qvel: observation reaches 261 values, over the limit 256");
  }

  /* A NUL byte inside a line. */
  char path[PATH_MAX], err[1024];
  static const char nul[] = "obs qpos 0 1\nmax_steps 1\0 0\n";
  write_file(f->dir, "t.task", nul, sizeof nul - 1, path, sizeof path);
  frl_mjenv_t *e = NULL;
  frl_env_spec_t spec;
  assert_int_equal(frl_mjenv_open(&e, path, &spec, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "t.task:2: line: contains a NUL byte"));

  /* A missing task file. */
  snprintf(path, sizeof path, "%s/nothere.task", f->dir);
  assert_int_equal(frl_mjenv_open(&e, path, &spec, err, sizeof err), FRL_ENOTFOUND);
  assert_non_null(strstr(err, "nothere.task"));
  assert_non_null(strstr(err, "No such file"));
  assert_null(e);
}

static void test_model_errors(void **state) {
  const files_t *f = *state;
  char err[1024], path[PATH_MAX];
  /* Missing model files name the path; one under the Debian sample folder names the package. */
  expect_error(f, "obs qpos 0 1\nmodel /nonexistent/dir/m.xml\n", FRL_ENOTFOUND,
               "t.task:2: model: cannot load MuJoCo model '/nonexistent/dir/m.xml': No such file");
  expect_error(f, "model /usr/share/mujoco/model/humanoid/nothere.xml\nobs qpos 0 1\n",
               FRL_ENOTFOUND, "install the Debian package libmujoco-samples");
  /* A model MuJoCo rejects: its message, flattened to one line. */
  static const char broken[] = "<mujoco>\n  <worldbody>\n    <body>\n</mujoco>\n";
  write_file(f->dir, "m.xml", broken, sizeof broken - 1, path, sizeof path);
  expect_error(f, "model m.xml\nobs qpos 0 1\n", FRL_EUSAGE, "t.task:1: model: MuJoCo cannot load");
  /* A motor without a ctrlrange gives no action bounds. */
  static const char free_motor[] =
      "<mujoco><worldbody><body><joint name='j' type='hinge'/><geom size='.1'/></body>"
      "</worldbody><actuator><motor joint='j' name='loose'/></actuator></mujoco>";
  write_file(f->dir, "m.xml", free_motor, sizeof free_motor - 1, path, sizeof path);
  expect_error(f, "model m.xml\nobs qpos 0 1\n", FRL_EUSAGE,
               "t.task:1: model: actuator 0 ('loose') in");
  static const char no_motor[] =
      "<mujoco><worldbody><body><joint type='hinge'/><geom size='.1'/></body></worldbody></mujoco>";
  write_file(f->dir, "m.xml", no_motor, sizeof no_motor - 1, path, sizeof path);
  expect_error(f, "model m.xml\nobs qpos 0 1\n", FRL_EUSAGE, "has no actuators");

  /* A good one, relative to the task's folder, with control_dt instead of frame_skip. */
  static const char one_motor[] =
      "<mujoco><option timestep='0.01'/><worldbody><body><joint name='j' type='hinge'/>"
      "<geom size='.1'/></body></worldbody><actuator><motor joint='j' ctrllimited='true' "
      "ctrlrange='-2 3'/></actuator></mujoco>";
  write_file(f->dir, "m.xml", one_motor, sizeof one_motor - 1, path, sizeof path);
  frl_env_spec_t spec;
  assert_int_equal(open_text(f, "model m.xml   # trailing comment\ncontrol_dt 0.03\n"
                                "obs qpos 0 1\nobs qvel 0 1\nmax_steps 7\n",
                             err, sizeof err, &spec),
                   0);
  assert_int_equal(spec.obs_dim, 2);
  assert_int_equal(spec.act_dim, 1);
  assert_int_equal(spec.max_steps, 7);
  assert_true(spec.act_low[0] == -2.0f && spec.act_high[0] == 3.0f);
  snprintf(path, sizeof path, "%s/t.task", f->dir);
  frl_mjenv_t *e = NULL;
  assert_int_equal(frl_mjenv_open(&e, path, &spec, err, sizeof err), 0);
  assert_int_equal(frl_mjenv_frame_skip(e), 3);
  frl_mjenv_destroy(&e);
}

/* The registered environments find their task files through FLEETRL_MODEL_DIR. */
static void test_model_dir(void **state) {
  const files_t *f = *state;
  char dir[PATH_MAX], err[1024], path[PATH_MAX];
  assert_int_equal(unsetenv("FLEETRL_MODEL_DIR"), 0);
  assert_int_equal(frl_mjenv_model_dir(dir, sizeof dir), 0);
  assert_string_equal(dir, "lib/mujoco");
  assert_int_equal(frl_mjenv_model_dir(dir, 4), FRL_EUSAGE);

  assert_int_equal(setenv("FLEETRL_MODEL_DIR", f->dir, 1), 0);
  assert_int_equal(frl_mjenv_model_dir(dir, sizeof dir), 0);
  assert_string_equal(dir, f->dir);
  frl_env_t *e = (frl_env_t *)0x1;
  assert_int_equal(frl_env_new(&e, "walker", 1, err, sizeof err), FRL_ENOTFOUND);
  assert_ptr_equal(e, (frl_env_t *)0x1);
  assert_non_null(strstr(err, "mujoco env 'walker': task file '"));
  assert_non_null(strstr(err, "/walker.task' not found"));
  assert_non_null(strstr(err, "FLEETRL_MODEL_DIR"));

  /* A task whose MuJoCo sample model is not installed. */
  static const char task[] = "model /usr/share/mujoco/model/humanoid/gone.xml\nobs qpos 0 1\n";
  write_file(f->dir, "humanoid-walk.task", task, sizeof task - 1, path, sizeof path);
  assert_int_equal(frl_env_new(&e, "humanoid-walk", 1, err, sizeof err), FRL_ENOTFOUND);
  assert_non_null(strstr(err, "mujoco env 'humanoid-walk': "));
  assert_non_null(strstr(err, "humanoid-walk.task:1: model: cannot load MuJoCo model "
                              "'/usr/share/mujoco/model/humanoid/gone.xml'"));
  assert_non_null(strstr(err, "libmujoco-samples"));
  assert_null(strchr(err, '\n'));

  /* A malformed built-in task file: one line naming file, line and field. */
  static const char bad[] = "model walker.xml\nobs qpos 0 1\nreward x alive\n";
  write_file(f->dir, "walker.task", bad, sizeof bad - 1, path, sizeof path);
  assert_int_equal(frl_env_new(&e, "walker", 1, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "walker.task:3: reward: 'x' is not a finite number"));
  assert_int_equal(unsetenv("FLEETRL_MODEL_DIR"), 0);

  assert_int_equal(frl_env_new(&e, "walker", 1, err, sizeof err), 0);
  frl_env_destroy(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dimensions),
      cmocka_unit_test(test_steps_match_mujoco),
      cmocka_unit_test(test_state_bitwise),
      cmocka_unit_test(test_direct_clipping),
      cmocka_unit_test(test_termination_rules),
      cmocka_unit_test(test_reacher_success_and_time_limit),
      cmocka_unit_test(test_unstable_simulation),
      cmocka_unit_test(test_seeds),
      cmocka_unit_test(test_reacher_reset_distribution),
      cmocka_unit_test_setup_teardown(test_task_errors, files_setup, files_teardown),
      cmocka_unit_test_setup_teardown(test_model_errors, files_setup, files_teardown),
      cmocka_unit_test_setup_teardown(test_model_dir, files_setup, files_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
