/* test_shield.c: the limits-file parser (every field, errors naming line and key, random bytes)
 * and the shield against hand-computed values (bounds, rate, barrier, brake, safe actions), plus
 * properties: random actions never leave the bounds, and the barrier never lets a simulated
 * velocity-commanded joint cross its limit whatever the policy asks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "rng.h"
#include "shield.h"

static const char *k_example =
    "# a three-joint arm\n"
    "action_dim 3\n"
    "action_min -2 -2 -1   # per dimension\n"
    "action_max 2\n"
    "max_delta 0.5 0.5 0.25\r\n"
    "barrier_gain 20\n"
    "control_period 0.01\n"
    "joint shoulder position=0 velocity=3 action=0 min=-1.5 max=1.5 vmax=1\n"
    "joint elbow position=1 velocity=4 action=1 min=-2.5 max=2.5 command=effort brake=4\n"
    "\n"
    "   joint wrist position=2 action=2 min=-1 max=1 scale=0.5\n"
    "posture home 0 0.25 -0.5\n"
    "safe_action posture home\n";

static frl_limits_t parse_ok(const char *text) {
  frl_limits_t lim;
  char err[512] = "";
  int rc = frl_limits_parse(text, strlen(text), "t.limits", &lim, err, sizeof err);
  if (rc != 0) fail_msg("parse failed: %s", err);
  return lim;
}

static void expect_error(const char *text, const char *want) {
  frl_limits_t lim;
  frl_limits_init(&lim);
  lim.action_dim = 77; /* untouched on error */
  char err[512] = "";
  assert_int_equal(frl_limits_parse(text, strlen(text), "t.limits", &lim, err, sizeof err),
                   FRL_EUSAGE);
  if (!strstr(err, want)) fail_msg("error '%s' does not contain '%s' (input: %s)", err, want, text);
  assert_int_equal(lim.action_dim, 77);
}

static void test_parse_example(void **unused) {
  frl_limits_t lim = parse_ok(k_example);
  assert_int_equal(lim.action_dim, 3);
  assert_int_equal(lim.n_action_min, 3);
  assert_int_equal(lim.n_action_max, 1);
  assert_int_equal(lim.n_max_delta, 3);
  assert_true(lim.action_min[2] == -1.0 && lim.action_max[0] == 2.0);
  assert_true(lim.max_delta[2] == 0.25);
  assert_true(lim.barrier_gain == 20.0 && lim.control_period == 0.01);
  assert_int_equal(lim.n_joints, 3);
  const frl_joint_limit_t *sh = &lim.joints[0], *el = &lim.joints[1], *wr = &lim.joints[2];
  assert_string_equal(sh->name, "shoulder");
  assert_int_equal(sh->position, 0);
  assert_int_equal(sh->velocity, 3);
  assert_true(sh->min == -1.5 && sh->max == 1.5 && sh->vmax == 1.0 && sh->scale == 1.0);
  assert_int_equal(sh->command, FRL_JOINT_VELOCITY);
  assert_int_equal(el->command, FRL_JOINT_EFFORT);
  assert_true(el->brake == 4.0 && isinf(el->vmax));
  assert_int_equal(wr->velocity, -1);
  assert_true(wr->scale == 0.5);
  assert_int_equal(lim.n_postures, 1);
  assert_int_equal(lim.safe, FRL_SAFE_POSTURE);
  assert_int_equal(lim.safe_posture, 0);
  assert_true(lim.postures[0].action[1] == 0.25f);

  /* An empty file is the defaults. */
  frl_limits_t d = parse_ok("# nothing\n\n");
  assert_int_equal(d.n_joints, 0);
  assert_int_equal(d.safe, FRL_SAFE_HOLD);
  assert_true(d.barrier_gain == 10.0);
}

static void test_parse_errors_name_line_and_key(void **unused) {
  expect_error("action_dim 3\nbogus 1\n", "t.limits:2: unknown key 'bogus'");
  expect_error("action_dim x\n", "t.limits:1: key 'action_dim': 'x' is not a number");
  expect_error("action_dim 0\n", "t.limits:1: key 'action_dim': 0 must be an integer in [1, 256]");
  expect_error("action_dim 2.5\n", "must be an integer");
  expect_error("action_min nan\n", "key 'action_min': 'nan' is not a number");
  expect_error("action_max inf\n", "key 'action_max': 'inf' is not a number");
  expect_error("action_max 1e300\n", "beyond the limit");
  expect_error("max_delta 0.1 0\n", "t.limits:1: key 'max_delta': value 2 is 0, must be > 0");
  expect_error("action_min 1\naction_min 2\n", "t.limits:2: key 'action_min' given twice (first on line 1)");
  expect_error("barrier_gain -1\n", "key 'barrier_gain': -1 must be > 0");
  expect_error("control_period 60\n", "above 10 s");
  expect_error("\n\njoint a position=0 action=0 min=1 max=0\n", "t.limits:3: joint a: key 'min' 1 must be below 'max' 0");
  expect_error("joint a position=0 action=0 min=-1 max=1 color=red\n", "joint a: unknown key 'color'");
  expect_error("joint a position=0 action=0 min=-1 max=1 min=2\n", "joint a: key 'min' given twice");
  expect_error("joint a action=0 min=-1 max=1\n", "joint a: key 'position' (observation index) is required");
  expect_error("joint a position=0 min=-1 max=1\n", "key 'action' (action dimension) is required");
  expect_error("joint a position=0 action=0 max=1\n", "keys 'min' and 'max' are required");
  expect_error("joint a position=-1 action=0 min=-1 max=1\n", "key 'a.position': -1 must be an integer");
  expect_error("joint a position=0 action=0 min=-1 max=zz\n", "key 'a.max': 'zz' is not a number");
  expect_error("joint a position=0 action=0 min=-1 max=1 vmax=0\n", "key 'a.vmax': 0 must be > 0");
  expect_error("joint a position=0 action=0 min=-1 max=1 command=torque\n", "'torque' is not velocity|effort");
  expect_error("joint a position=0 action=0 min=-1 max=1 command=effort brake=1\n", "command=effort needs key 'velocity'");
  expect_error("joint a position=0 velocity=1 action=0 min=-1 max=1 command=effort\n", "command=effort needs key 'brake'");
  expect_error("joint a position=0 action=0 min=-1 max=1 brake=2\n", "'brake' applies to command=effort only");
  expect_error("joint a position=0 action=0 min=-1 max=1 junk\n", "joint a: 'junk' is not key=value");
  expect_error("joint a position=0 action=0 min=-1 max=1\njoint a position=1 action=1 min=-1 max=1\n", "t.limits:2: joint a: defined twice");
  expect_error("joint a position=0 action=0 min=-1 max=1\njoint b position=1 action=0 min=-1 max=1\n", "action 0 already drives joint a");
  expect_error("joint a/b position=0 action=0 min=-1 max=1\n", "name 'a/b' must be");
  expect_error("posture home\n", "key 'posture': needs a name and at least one value");
  expect_error("posture a 1 2\nposture b 1\n", "posture b: 1 values, an earlier posture has 2");
  expect_error("safe_action stop\n", "key 'safe_action': expected hold | zero | posture NAME");
  expect_error("safe_action posture park\n", "t.limits: key 'safe_action' (line 1): no posture named 'park'");
  expect_error("action_dim 2\naction_min -1 -1 -1\n", "key 'action_min' (line 2): 3 values, action_dim is 2");
  expect_error("action_min -1 -1\naction_max 1 1 1\n", "2 and 3 values");
  expect_error("action_min 1\naction_max 0\n", "dimension 0 has min 1 above max 0");
  expect_error("action_dim 2\njoint a position=0 action=3 min=-1 max=1\n", "joint a: action 3 is not below action_dim 2");
  expect_error("barrier_gain 200\njoint a position=0 action=0 min=-1 max=1\n", "their product must be <= 1");
  char tab[] = "action_dim 1\x01\n";
  expect_error(tab, "t.limits:1: line contains control character 0x01");
  char nul[] = "action_dim 1\nab\0c\n";
  frl_limits_t lim;
  char err[256];
  assert_int_equal(frl_limits_parse(nul, sizeof nul - 1, "t.limits", &lim, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "t.limits:2: line contains a NUL byte"));
  /* Over-long lines and files are refused with their bound. */
  size_t n = FRL_SHIELD_MAX_LINE + 10;
  char *big = malloc(n + 1);
  memset(big, ' ', n);
  big[n] = '\0';
  expect_error(big, "t.limits:1: line is 4106 characters, the limit is 4096");
  free(big);
  assert_int_equal(frl_limits_parse("", (size_t)FRL_SHIELD_MAX_FILE + 1, "t.limits", &lim, err, sizeof err),
                   FRL_EUSAGE);
  assert_non_null(strstr(err, "the limit is 1048576"));
}

static void test_load_file(void **unused) {
  char path[] = "/tmp/fleetrl-test-shield-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, k_example, strlen(k_example)), (ssize_t)strlen(k_example));
  close(fd);
  frl_limits_t lim;
  char err[256] = "";
  assert_int_equal(frl_limits_load(path, &lim, err, sizeof err), 0);
  assert_int_equal(lim.n_joints, 3);
  unlink(path);
  assert_int_equal(frl_limits_load(path, &lim, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, "cannot open"));
}

/* Random bytes and random mutations of a valid file never crash the parser and either parse or
 * give a message with the source name. */
static void test_parse_random_input(void **unused) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 42);
  char buf[600];
  size_t base = strlen(k_example);
  for (int it = 0; it < 3000; it++) {
    size_t n;
    if (it % 2) {
      n = frl_rng_below(&rng, sizeof buf);
      for (size_t i = 0; i < n; i++) buf[i] = (char)frl_rng_below(&rng, 256);
    } else {
      n = base;
      memcpy(buf, k_example, n);
      for (int m = 0; m < 4; m++) buf[frl_rng_below(&rng, (uint32_t)n)] = (char)(32 + frl_rng_below(&rng, 95));
    }
    frl_limits_t lim;
    char err[256] = "";
    int rc = frl_limits_parse(buf, n, "r", &lim, err, sizeof err);
    if (rc != 0) {
      assert_int_equal(rc, FRL_EUSAGE);
      assert_true(strncmp(err, "r:", 2) == 0);
    }
  }
}

static const float k_low[3] = {-3, -3, -3}, k_high[3] = {3, 3, 3};

static frl_shield_t *make(const char *text, int obs_dim, int act_dim) {
  frl_limits_t lim = parse_ok(text);
  frl_shield_t *s = NULL;
  char err[256] = "";
  int rc = frl_shield_new(&s, &lim, obs_dim, act_dim, 0, k_low, k_high, err, sizeof err);
  if (rc) fail_msg("shield_new: %s", err);
  return s;
}

static void test_bounds_rate_and_nonfinite(void **unused) {
  /* Task bounds [-3, 3] intersect the file's [-2, 2] x [-2, 2] x [-1, 2]. */
  frl_shield_t *s = make("action_min -2 -2 -1\naction_max 2\nmax_delta 0.5\n", 6, 3);
  float obs[6] = {0};
  float a[3] = {5, -0.5f, -7};
  frl_shield_result_t r;
  frl_shield_apply(s, obs, a, &r);
  assert_true(a[0] == 2.0f && a[1] == -0.5f && a[2] == -1.0f);
  assert_int_equal(r.clipped, 2);
  assert_int_equal(r.first_clipped, 0);
  assert_int_equal(r.barrier, 0);
  /* Now the rate limit: at most 0.5 from (2, -0.5, -1). */
  float b[3] = {0, 1.0f, -0.75f};
  frl_shield_apply(s, obs, b, &r);
  assert_true(b[0] == 1.5f && b[1] == 0.0f && b[2] == -0.75f);
  assert_int_equal(r.clipped, 2);
  /* Non-finite values become "no change". */
  float c[3] = {NAN, INFINITY, -0.5f};
  frl_shield_apply(s, obs, c, &r);
  assert_true(c[0] == 1.5f && c[1] == 0.0f && c[2] == -0.5f);
  assert_int_equal(r.clipped, 2);
  /* After a reset the rate limit restarts; a NaN then means standing still (0). */
  frl_shield_reset(s);
  float d[3] = {NAN, -2, 2};
  frl_shield_apply(s, obs, d, &r);
  assert_true(d[0] == 0.0f && d[1] == -2.0f && d[2] == 2.0f);
  assert_int_equal(r.clipped, 1);
  frl_shield_destroy(&s);
  assert_null(s);
  frl_shield_destroy(&s);
}

static void test_barrier_velocity_hand_values(void **unused) {
  /* k = 20/s: toward max 1.5 from q = 1.4 the speed is at most 20 * 0.1 = 2, capped by vmax 1;
   * from q = 1.45, 20 * 0.05 = 1... from q = 1.49, 0.2. scale 0.5 on the wrist: v = 0.5 a. */
  frl_shield_t *s = make("barrier_gain 20\ncontrol_period 0.01\n"
                         "joint sh position=0 action=0 min=-1.5 max=1.5 vmax=1\n"
                         "joint wr position=2 action=2 min=-1 max=1 scale=0.5\n", 6, 3);
  frl_shield_result_t r;
  float obs[6] = {1.49f, 0, 0.9f, 0, 0, 0};
  float a[3] = {3, 3, 3};
  frl_shield_apply(s, obs, a, &r);
  /* sh: 20 * (1.5 - 1.49) = 0.2 (float obs: 1.49f) */
  assert_float_equal(a[0], 20.0 * (1.5 - (double)1.49f), 1e-5);
  assert_true(a[0] <= 20.0 * (1.5 - (double)1.49f));
  /* wr: v <= 20 * 0.1 = 2 -> a = v / 0.5 = 4, but the task bound is 3 */
  assert_float_equal(a[2], 3.0f, 0);
  assert_float_equal(a[1], 3.0f, 0); /* no joint on dimension 1 */
  assert_int_equal(r.barrier, 1);
  assert_int_equal(r.first_barrier, 0);
  /* Moving away from a limit is not limited by it; vmax still holds. */
  float b[3] = {-3, 0, -3};
  frl_shield_apply(s, obs, b, &r);
  assert_float_equal(b[0], -1.0f, 0);     /* vmax */
  assert_float_equal(b[2], -3.0f, 0);     /* 20 * (0.9 + 1) = 38 -> a = 76, bound 3 */
  assert_int_equal(r.barrier, 1);
  /* Beyond the limit the joint is driven back: q = 1.55, v <= 20 * (-0.05) = -1 (= -vmax). */
  float obs2[6] = {1.55f, 0, 0, 0, 0, 0};
  float c[3] = {0.5f, 0, 0};
  frl_shield_apply(s, obs2, c, &r);
  assert_float_equal(c[0], 20.0 * (1.5 - (double)1.55f), 1e-5);
  frl_shield_destroy(&s);
}

static void test_barrier_effort_brake(void **unused) {
  /* q = 2.4, qd = 3 toward max 2.5 with k 10: allowed 1, excess 2, brake 4: effort <= -8, and
   * the task bound is -3. With qd = 1.2: excess 0.2 -> effort <= -0.8. */
  frl_shield_t *s = make("barrier_gain 10\n"
                         "joint el position=0 velocity=1 action=0 min=-2.5 max=2.5 command=effort brake=4\n",
                         2, 1);
  frl_shield_result_t r;
  float obs[2] = {2.4f, 3.0f};
  float a[1] = {2};
  frl_shield_apply(s, obs, a, &r);
  assert_float_equal(a[0], -3.0f, 0);
  assert_int_equal(r.barrier, 1);
  float obs2[2] = {2.4f, 1.2f};
  float b[1] = {2};
  frl_shield_apply(s, obs2, b, &r);
  assert_float_equal(b[0], -4.0 * (1.2 - 10.0 * (2.5 - (double)2.4f)), 1e-5);
  /* Slow enough: untouched. */
  float obs3[2] = {2.4f, 0.5f};
  float c[1] = {2};
  frl_shield_apply(s, obs3, c, &r);
  assert_float_equal(c[0], 2.0f, 0);
  assert_int_equal(r.barrier, 0);
  /* Toward the lower limit, symmetric: q = -2.4, qd = -3 -> effort >= +3 (bound). */
  float obs4[2] = {-2.4f, -3.0f};
  float d[1] = {-2};
  frl_shield_apply(s, obs4, d, &r);
  assert_float_equal(d[0], 3.0f, 0);
  frl_shield_destroy(&s);
}

static void test_safe_actions(void **unused) {
  float obs[6] = {0};
  frl_shield_result_t r;
  /* hold: the last applied action; zero moved into the bounds before any. */
  frl_shield_t *s = make("action_min 0.5 -1 -1\n", 6, 3);
  float a[3];
  frl_shield_safe_action(s, obs, a, &r);
  assert_true(a[0] == 0.5f && a[1] == 0.0f && a[2] == 0.0f);
  float p[3] = {1, 2, -1};
  frl_shield_apply(s, obs, p, NULL);
  frl_shield_safe_action(s, obs, a, &r);
  assert_true(a[0] == 1.0f && a[1] == 2.0f && a[2] == -1.0f);
  frl_shield_destroy(&s);
  /* zero */
  s = make("safe_action zero\n", 6, 3);
  frl_shield_apply(s, obs, p, NULL);
  frl_shield_safe_action(s, obs, a, &r);
  assert_true(a[0] == 0.0f && a[1] == 0.0f && a[2] == 0.0f);
  frl_shield_destroy(&s);
  /* posture, and the barrier still applies to it: at q = 0.95 of max 1 with k 10, at most 0.5 */
  s = make("posture park 1 -1 2\nsafe_action posture park\nbarrier_gain 10\n"
           "joint j position=0 action=2 min=-1 max=1\n", 6, 3);
  float near[6] = {0.95f, 0, 0, 0, 0, 0};
  frl_shield_safe_action(s, near, a, &r);
  assert_true(a[0] == 1.0f && a[1] == -1.0f);
  assert_float_equal(a[2], 10.0 * (1.0 - (double)0.95f), 1e-5);
  assert_int_equal(r.barrier, 1);
  frl_shield_destroy(&s);
}

static void test_new_checks_fit_with_task(void **unused) {
  frl_shield_t *s = NULL;
  char err[256];
  frl_limits_t lim = parse_ok("action_dim 2\n");
  assert_int_equal(frl_shield_new(&s, &lim, 4, 3, 0, k_low, k_high, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "action_dim 2, the task has 3"));
  lim = parse_ok("joint j position=9 action=0 min=-1 max=1\n");
  assert_int_equal(frl_shield_new(&s, &lim, 4, 3, 0, k_low, k_high, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "joint j: position 9"));
  lim = parse_ok("action_min 0.1\njoint j position=0 action=0 min=-1 max=1\n");
  assert_int_equal(frl_shield_new(&s, &lim, 4, 3, 0, k_low, k_high, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "must contain 0"));
  lim = parse_ok("action_min 5\n");
  assert_int_equal(frl_shield_new(&s, &lim, 4, 3, 0, k_low, k_high, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "does not overlap"));
  lim = parse_ok("posture p 9 0 0\nsafe_action posture p\n");
  assert_int_equal(frl_shield_new(&s, &lim, 4, 3, 0, k_low, k_high, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "safe posture p"));
  lim = parse_ok("max_delta 1\n");
  assert_int_equal(frl_shield_new(&s, &lim, 4, 1, 2, NULL, NULL, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "discrete"));
  assert_null(s);
}

static void test_discrete(void **unused) {
  frl_shield_t *s = NULL;
  char err[256];
  frl_limits_t lim = parse_ok("posture left 0\nsafe_action posture left\n");
  assert_int_equal(frl_shield_new(&s, &lim, 4, 1, 2, NULL, NULL, err, sizeof err), 0);
  float obs[4] = {0}, a[1] = {1};
  frl_shield_result_t r;
  frl_shield_apply(s, obs, a, &r);
  assert_true(a[0] == 1.0f && r.clipped == 0);
  a[0] = 7;
  frl_shield_apply(s, obs, a, &r);
  assert_true(a[0] == 1.0f && r.clipped == 1);
  frl_shield_safe_action(s, obs, a, &r);
  assert_true(a[0] == 0.0f);
  frl_shield_destroy(&s);
}

/* Random states and actions: the result is always finite and inside the bounds, and it changes
 * only dimensions it counts. */
static void test_property_bounds(void **unused) {
  frl_shield_t *s = make("action_min -2 -1 -0.5\naction_max 2 1 0.5\nmax_delta 0.3\n"
                         "barrier_gain 50\ncontrol_period 0.02\n"
                         "joint a position=0 action=0 min=-1 max=1 vmax=2\n"
                         "joint b position=1 velocity=4 action=1 min=-0.5 max=0.7 command=effort brake=3\n",
                         6, 3);
  frl_rng_t rng;
  frl_rng_seed(&rng, 7);
  const double lo[3] = {-2, -1, -0.5}, hi[3] = {2, 1, 0.5};
  for (int it = 0; it < 20000; it++) {
    float obs[6], a[3], in[3];
    for (int i = 0; i < 6; i++) obs[i] = (float)(4 * frl_rng_uniform(&rng) - 2);
    for (int i = 0; i < 3; i++) {
      uint32_t kind = frl_rng_below(&rng, 20);
      in[i] = kind == 0 ? NAN : kind == 1 ? INFINITY : kind == 2 ? -1e30f
                                                     : (float)(10 * frl_rng_uniform(&rng) - 5);
      a[i] = in[i];
    }
    if (frl_rng_below(&rng, 50) == 0) frl_shield_reset(s);
    frl_shield_result_t r;
    bool safe = frl_rng_below(&rng, 10) == 0;
    if (safe) frl_shield_safe_action(s, obs, a, &r);
    else frl_shield_apply(s, obs, a, &r);
    uint32_t changed = 0;
    for (int i = 0; i < 3; i++) {
      assert_true(isfinite(a[i]));
      assert_true(a[i] >= lo[i] && a[i] <= hi[i]);
      changed += memcmp(&a[i], &in[i], sizeof(float)) != 0;
    }
    if (!safe) assert_true(r.clipped + r.barrier >= (changed ? 1u : 0u));
  }
  frl_shield_destroy(&s);
}

/* A velocity-commanded joint q_{t+1} = q_t + v dt under random (adversarial) commands never
 * leaves [min, max], for several k dt up to the allowed 1, including commands that ask for the
 * limit at full speed every step. */
static void test_property_barrier_never_crosses(void **unused) {
  static const char *files[] = {
      "barrier_gain 10\ncontrol_period 0.01\njoint j position=0 action=0 min=-1 max=1.25\n",
      "barrier_gain 50\ncontrol_period 0.01\njoint j position=0 action=0 min=-1 max=1.25 scale=4\n",
      "barrier_gain 100\ncontrol_period 0.01\njoint j position=0 action=0 min=-0.5 max=0.75 vmax=40\n",
  };
  frl_rng_t rng;
  frl_rng_seed(&rng, 11);
  for (size_t f = 0; f < FRL_ARRAY_LEN(files); f++) {
    frl_limits_t lim = parse_ok(files[f]);
    static const float low[1] = {-1e6f}, high[1] = {1e6f};
    frl_shield_t *s = NULL;
    char err[256];
    assert_int_equal(frl_shield_new(&s, &lim, 1, 1, 0, low, high, err, sizeof err), 0);
    const frl_joint_limit_t *j = &lim.joints[0];
    const double dt = lim.control_period;
    double closest = INFINITY;
    for (int ep = 0; ep < 200; ep++) {
      float q = (float)(j->min + (j->max - j->min) * frl_rng_uniform(&rng));
      int mode = ep % 3; /* random, always up at full speed, always down */
      for (int t = 0; t < 500; t++) {
        float obs[1] = {q};
        float a[1] = {mode == 0 ? (float)(2e4 * frl_rng_uniform(&rng) - 1e4) : mode == 1 ? 1e6f : -1e6f};
        frl_shield_apply(s, obs, a, NULL);
        q = (float)((double)q + (double)a[0] * j->scale * dt);
        assert_true(q <= j->max && q >= j->min);
        closest = FRL_MIN(closest, FRL_MIN(j->max - q, q - j->min));
      }
    }
    /* The joint does get arbitrarily close: the barrier slows, it does not stop short. */
    assert_true(closest < 1e-3);
    frl_shield_destroy(&s);
  }
}

static void test_describe(void **unused) {
  frl_shield_t *s = make(k_example, 6, 3);
  char buf[256];
  frl_shield_describe(s, buf, sizeof buf);
  assert_non_null(strstr(buf, "3 joints"));
  assert_non_null(strstr(buf, "safe action posture home"));
  frl_shield_destroy(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_example),
      cmocka_unit_test(test_parse_errors_name_line_and_key),
      cmocka_unit_test(test_load_file),
      cmocka_unit_test(test_parse_random_input),
      cmocka_unit_test(test_bounds_rate_and_nonfinite),
      cmocka_unit_test(test_barrier_velocity_hand_values),
      cmocka_unit_test(test_barrier_effort_brake),
      cmocka_unit_test(test_safe_actions),
      cmocka_unit_test(test_new_checks_fit_with_task),
      cmocka_unit_test(test_discrete),
      cmocka_unit_test(test_property_bounds),
      cmocka_unit_test(test_property_barrier_never_crosses),
      cmocka_unit_test(test_describe),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
