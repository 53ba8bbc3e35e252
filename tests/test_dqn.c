/* test_dqn.c: DQN targets, TD errors and loss on a hand-computed network, the weighted loss
 * gradient against finite differences, target-network updates, input validation, a float64
 * numpy reference of one full update (tests/ref/dqn_ref.py), and convergence on an MDP with
 * a closed-form Q. Behaviour cloning: DQfD's large-margin loss and its gradient by hand on the
 * tiny network, against finite differences on a dueling network, and cloning a linear expert's
 * choices onto held-out states. */
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
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "dqn.h"
#include "qnet.h"
#include "rng.h"

static frl_dqn_config_t base_config(void) {
  frl_dqn_config_t c = {
      .shape = {.obs_dim = 2, .n_actions = 2, .n_hidden = 1, .hidden = {2}, .dueling = false},
      .batch = 8,
      .lr = 1e-3f,
      .adam_eps = 1e-8f,
      .huber_delta = 1.0f,
      .grad_clip = 10.0f,
      .double_q = true,
      .target_period = 1000,
      .tau = 0.0f,
      .seed = 1,
  };
  return c;
}

/* ---- hand-computed targets on a tiny fixed network ------------------------------------------ */

/* obs 2 -> ReLU layer of 2 -> 2 actions, plain head. Block: W1[2x2], b1[2], Wh[2x2], bh[2].
 *   online: W1 = I, b1 = 0, Wh = I,         bh = 0      => Q_on(s) = (relu s0, relu s1)
 *   target: W1 = I, b1 = 0, Wh = diag(2,1), bh = (0,.5) => Q_tg(s) = (2 relu s0, relu s1 + .5) */
static void set_tiny_params(frl_dqn_t *d) {
  const float online[12] = {1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0};
  const float target[12] = {1, 0, 0, 1, 0, 0, 2, 0, 0, 1, 0, 0.5f};
  memcpy(frl_qnet_params(frl_dqn_online(d)), online, sizeof online);
  memcpy(frl_qnet_params(frl_dqn_target(d)), target, sizeof target);
}

/* Three transitions:
 *  0: obs (.5,-1) a 0 r 1, discount .9, next (1,1.2). Q_on(next) = (1,1.2) -> a* = 1;
 *     Q_tg(next) = (2,1.7). Double: y = 1 + .9*1.7 = 2.53; plain max: y = 1 + .9*2 = 2.8.
 *     Q_on(obs, 0) = .5.
 *  1: obs (-.3,2) a 1 r -.5, discount .81 (gamma^2, a 2-step return), next (.4,.1).
 *     Q_on(next) = (.4,.1) -> a* = 0; Q_tg(next) = (.8,.6): y = -.5 + .81*.8 = .148 both ways.
 *     Q_on(obs, 1) = 2.
 *  2: terminal: obs (1,1) a 1 r 3, discount 0, next (5,5): y = 3. Q_on(obs, 1) = 1. */
static const float tiny_obs[6] = {0.5f, -1.0f, -0.3f, 2.0f, 1.0f, 1.0f};
static const float tiny_next[6] = {1.0f, 1.2f, 0.4f, 0.1f, 5.0f, 5.0f};
static const int32_t tiny_action[3] = {0, 1, 1};
static const float tiny_reward[3] = {1.0f, -0.5f, 3.0f};
static const float tiny_discount[3] = {0.9f, 0.81f, 0.0f};
static const float tiny_weight[3] = {1.0f, 0.5f, 2.0f};

static frl_dqn_batch_t tiny_batch(void) {
  frl_dqn_batch_t b = {.B = 3, .obs = tiny_obs, .action = tiny_action, .reward = tiny_reward,
                       .discount = tiny_discount, .next_obs = tiny_next, .weight = tiny_weight};
  return b;
}

static void test_targets_by_hand(void **state) {
  frl_dqn_config_t c = base_config();
  frl_dqn_batch_t b = tiny_batch();
  float y[3];

  c.double_q = true;
  frl_dqn_t *d = frl_dqn_new(&c);
  assert_non_null(d);
  set_tiny_params(d);
  frl_dqn_targets(d, &b, y);
  expect_close("double y", 0, y[0], 2.53, 1e-6, 1e-6);
  expect_close("double y", 1, y[1], 0.148, 1e-6, 1e-6);
  expect_close("double y", 2, y[2], 3.0, 0, 0); /* terminal: exactly r */
  frl_dqn_destroy(&d);
  assert_null(d);

  c.double_q = false;
  d = frl_dqn_new(&c);
  assert_non_null(d);
  set_tiny_params(d);
  frl_dqn_targets(d, &b, y);
  expect_close("max y", 0, y[0], 2.8, 1e-6, 1e-6); /* differs from double DQN's 2.53 */
  expect_close("max y", 1, y[1], 0.148, 1e-6, 1e-6);
  expect_close("max y", 2, y[2], 3.0, 0, 0);
  frl_dqn_destroy(&d);
}

static void test_update_td_and_loss_by_hand(void **state) {
  frl_dqn_config_t c = base_config();
  frl_dqn_t *d = frl_dqn_new(&c);
  set_tiny_params(d);
  frl_dqn_batch_t b = tiny_batch();
  float td[3];
  frl_dqn_stats_t st;
  assert_int_equal(frl_dqn_update(d, &b, td, &st), 0);
  /* |y - Q(s,a)| before the step: |2.53 - .5|, |.148 - 2|, |3 - 1|. */
  expect_close("td_abs", 0, td[0], 2.03, 1e-6, 1e-6);
  expect_close("td_abs", 1, td[1], 1.852, 1e-6, 1e-6);
  expect_close("td_abs", 2, td[2], 2.0, 1e-6, 1e-6);
  /* All three beyond delta = 1: huber = |x| - .5 -> 1.53, 1.352, 1.5; weights 1, .5, 2:
   * L = (1.53 + .676 + 3) / 3. */
  expect_close("loss", 0, st.loss, (1.53 + 0.676 + 3.0) / 3.0, 1e-6, 1e-6);
  expect_close("mean_q", 0, st.mean_q, (0.5 + 2.0 + 1.0) / 3.0, 1e-6, 1e-6);
  expect_close("mean_abs_td", 0, st.mean_abs_td, (2.03 + 1.852 + 2.0) / 3.0, 1e-6, 1e-6);
  assert_int_equal(frl_dqn_updates(d), 1);
  frl_dqn_destroy(&d);
}

static void test_actor_td_abs_by_hand(void **state) {
  frl_dqn_config_t c = base_config();
  frl_dqn_t *d = frl_dqn_new(&c);
  set_tiny_params(d);
  frl_dqn_batch_t b = tiny_batch();
  float td[3];
  /* One network (the online one): y = r + discount max_a Q_on(s', a):
   *   1 + .9*1.2 = 2.08 -> |2.08 - .5| = 1.58;  -.5 + .81*.4 = -.176 -> |-.176 - 2| = 2.176;
   *   terminal 3 -> |3 - 1| = 2. */
  assert_int_equal(frl_dqn_td_abs(frl_dqn_online(d), &b, td), 0);
  expect_close("actor td", 0, td[0], 1.58, 1e-6, 1e-6);
  expect_close("actor td", 1, td[1], 2.176, 1e-6, 1e-6);
  expect_close("actor td", 2, td[2], 2.0, 1e-6, 1e-6);

  /* Bad data: action out of range, batch larger than the network's workspace. */
  int32_t bad_action[3] = {0, 2, 1};
  b.action = bad_action;
  td[0] = -7.0f;
  assert_int_equal(frl_dqn_td_abs(frl_dqn_online(d), &b, td), FRL_EDIM);
  assert_true(td[0] == -7.0f);
  b = tiny_batch();
  frl_qnet_t *small = frl_qnet_new(&c.shape, 2, &(frl_rng_t){{1, 2, 3, 4}});
  assert_int_equal(frl_dqn_td_abs(small, &b, td), FRL_EDIM);
  frl_qnet_destroy(&small);
  frl_dqn_destroy(&d);
}

/* ---- gradient of the weighted loss, recovered from the real update -------------------------- */

/* Double-precision Q(obs) for one row, from the parameter block in qnet.h's order. */
static void qnet_ref_forward(double *q, const frl_qnet_shape_t *s, const double *p,
                             const float *obs) {
  double a[2][64];
  int I = s->obs_dim, cur = 0;
  for (int i = 0; i < I; i++) a[0][i] = obs[i];
  for (int l = 0; l < s->n_hidden; l++) {
    int O = s->hidden[l];
    for (int o = 0; o < O; o++) {
      double z = p[(size_t)O * I + o];
      for (int i = 0; i < I; i++) z += p[o * I + i] * a[cur][i];
      a[1 - cur][o] = z > 0 ? z : 0;
    }
    p += (size_t)O * I + O;
    cur = 1 - cur;
    I = O;
  }
  const int A = s->n_actions;
  double v = 0, adv[16], mean = 0;
  if (s->dueling) {
    v = p[I];
    for (int i = 0; i < I; i++) v += p[i] * a[cur][i];
    p += I + 1;
  }
  for (int k = 0; k < A; k++) {
    adv[k] = p[(size_t)A * I + k];
    for (int i = 0; i < I; i++) adv[k] += p[k * I + i] * a[cur][i];
    mean += adv[k] / A;
  }
  for (int k = 0; k < A; k++) q[k] = s->dueling ? v + adv[k] - mean : adv[k];
}

static double weighted_huber_ref(const frl_qnet_shape_t *s, const double *p,
                                 const frl_dqn_batch_t *b, const float *y, double delta) {
  double L = 0, q[16];
  for (int r = 0; r < b->B; r++) {
    qnet_ref_forward(q, s, p, b->obs + (size_t)r * s->obs_dim);
    double x = q[b->action[r]] - y[r], ax = fabs(x);
    double h = ax <= delta ? 0.5 * x * x : delta * (ax - 0.5 * delta);
    L += (b->weight ? b->weight[r] : 1.0) * h;
  }
  return L / b->B;
}

static void test_weighted_loss_gradient(void **state) {
  /* With lr = 1 and adam_eps = 1, Adam's first step is exactly g / (|g| + 1) per parameter
   * (mhat = g, vhat = g^2), so the gradient the update used is recovered from the parameter
   * change r as g = r / (1 - |r|), and compared with central differences of the weighted
   * Huber loss in double precision (targets held fixed, as the update does). */
  frl_dqn_config_t c = base_config();
  c.shape = (frl_qnet_shape_t){.obs_dim = 3, .n_actions = 3, .n_hidden = 2, .hidden = {5, 4},
                               .dueling = true};
  c.batch = 6;
  c.lr = 1.0f;
  c.adam_eps = 1.0f;
  c.grad_clip = 0.0f;
  c.huber_delta = 0.5f;
  c.seed = 99;
  frl_dqn_t *d = frl_dqn_new(&c);
  assert_non_null(d);
  enum { B = 6 };
  float obs[B * 3], next[B * 3], reward[B], discount[B], weight[B], y[B], td[B];
  int32_t action[B] = {0, 1, 2, 2, 1, 0};
  frl_rng_t rng;
  frl_rng_seed(&rng, 5);
  fill_uniform(obs, B * 3, -1, 1, &rng);
  fill_uniform(next, B * 3, -1, 1, &rng);
  fill_uniform(reward, B, -1.5, 1.5, &rng); /* errors on both sides of delta */
  fill_uniform(weight, B, 0.2, 1.0, &rng);
  for (int r = 0; r < B; r++) discount[r] = r == 3 ? 0.0f : 0.97f;
  frl_dqn_batch_t b = {.B = B, .obs = obs, .action = action, .reward = reward,
                       .discount = discount, .next_obs = next, .weight = weight};
  frl_dqn_targets(d, &b, y);

  size_t N = frl_qnet_n_params(frl_dqn_online(d));
  double *p0 = malloc(N * sizeof *p0);
  const float *p = frl_qnet_params(frl_dqn_online(d));
  for (size_t k = 0; k < N; k++) p0[k] = p[k];
  int inside = 0;
  for (int r = 0; r < B; r++) {
    double q[16];
    qnet_ref_forward(q, &c.shape, p0, obs + 3 * r);
    inside += fabs(q[action[r]] - y[r]) <= c.huber_delta;
  }
  assert_true(inside > 0 && inside < B); /* both Huber regimes are exercised */

  frl_dqn_stats_t st;
  assert_int_equal(frl_dqn_update(d, &b, td, &st), 0);
  expect_close("loss", 0, st.loss, weighted_huber_ref(&c.shape, p0, &b, y, c.huber_delta), 1e-6,
               1e-5);

  const double h = 1e-6;
  double norm2 = 0;
  for (size_t k = 0; k < N; k++) {
    double s0 = p0[k];
    p0[k] = s0 + h;
    double lp = weighted_huber_ref(&c.shape, p0, &b, y, c.huber_delta);
    p0[k] = s0 - h;
    double lm = weighted_huber_ref(&c.shape, p0, &b, y, c.huber_delta);
    p0[k] = s0;
    double fd = (lp - lm) / (2 * h);
    double r = s0 - p[k];
    double g = r / (1.0 - fabs(r));
    expect_close("weighted loss grad", (int)k, g, fd, 2e-6, 1e-3);
    norm2 += fd * fd;
  }
  expect_close("grad_norm", 0, st.grad_norm, sqrt(norm2), 1e-6, 1e-4);
  free(p0);
  frl_dqn_destroy(&d);
}

/* ---- target network updates ---------------------------------------------------------------- */

static void random_batch(frl_dqn_batch_t *b, float *obs, float *next, int32_t *action,
                         float *reward, float *discount, int B, int D, int A, frl_rng_t *rng) {
  fill_uniform(obs, (size_t)B * D, -1, 1, rng);
  fill_uniform(next, (size_t)B * D, -1, 1, rng);
  fill_uniform(reward, (size_t)B, -1, 1, rng);
  for (int r = 0; r < B; r++) {
    action[r] = (int32_t)frl_rng_below(rng, (uint32_t)A);
    discount[r] = 0.99f;
  }
  *b = (frl_dqn_batch_t){.B = B, .obs = obs, .action = action, .reward = reward,
                         .discount = discount, .next_obs = next, .weight = NULL};
}

static void test_target_hard_copy_period(void **state) {
  frl_dqn_config_t c = base_config();
  c.shape.hidden[0] = 8;
  c.target_period = 3;
  c.lr = 1e-2f;
  frl_dqn_t *d = frl_dqn_new(&c);
  size_t bytes = frl_qnet_n_params(frl_dqn_online(d)) * sizeof(float);
  const float *on = frl_qnet_params(frl_dqn_online(d));
  const float *tg = frl_qnet_params(frl_dqn_target(d));
  assert_memory_equal(on, tg, bytes); /* starts as a copy */
  float *before = malloc(bytes);
  memcpy(before, tg, bytes);

  float obs[16], next[16], reward[8], discount[8];
  int32_t action[8];
  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
  frl_dqn_batch_t b;
  for (int u = 1; u <= 7; u++) {
    random_batch(&b, obs, next, action, reward, discount, 8, 2, 2, &rng);
    assert_int_equal(frl_dqn_update(d, &b, NULL, NULL), 0);
    assert_int_equal(frl_dqn_updates(d), u);
    if (u % 3 == 0) {
      assert_memory_equal(on, tg, bytes);
      memcpy(before, tg, bytes);
    } else {
      assert_memory_equal(tg, before, bytes); /* untouched between copies */
      assert_memory_not_equal(on, tg, bytes);
    }
  }
  free(before);
  frl_dqn_destroy(&d);
}

static void test_target_polyak(void **state) {
  frl_dqn_config_t c = base_config();
  c.shape.hidden[0] = 8;
  c.tau = 0.25f;
  c.target_period = 0; /* ignored when tau > 0 */
  c.lr = 1e-2f;
  frl_dqn_t *d = frl_dqn_new(&c);
  assert_non_null(d);
  size_t N = frl_qnet_n_params(frl_dqn_online(d));
  const float *on = frl_qnet_params(frl_dqn_online(d));
  const float *tg = frl_qnet_params(frl_dqn_target(d));
  float *old = malloc(N * sizeof *old);
  float obs[16], next[16], reward[8], discount[8];
  int32_t action[8];
  frl_rng_t rng;
  frl_rng_seed(&rng, 4);
  frl_dqn_batch_t b;
  for (int u = 0; u < 3; u++) {
    memcpy(old, tg, N * sizeof *old);
    random_batch(&b, obs, next, action, reward, discount, 8, 2, 2, &rng);
    assert_int_equal(frl_dqn_update(d, &b, NULL, NULL), 0);
    for (size_t k = 0; k < N; k++)
      expect_close("polyak", (int)k, tg[k], 0.75 * old[k] + 0.25 * on[k], 1e-7, 1e-6);
  }
  free(old);
  frl_dqn_destroy(&d);
}

/* ---- validation ------------------------------------------------------------------------------ */

static void test_rejects_bad_batches(void **state) {
  frl_dqn_config_t c = base_config();
  c.batch = 3;
  frl_dqn_t *d = frl_dqn_new(&c);
  size_t bytes = frl_qnet_n_params(frl_dqn_online(d)) * sizeof(float);
  float *before = malloc(bytes);
  memcpy(before, frl_qnet_params(frl_dqn_online(d)), bytes);
  float td[4] = {-1, -1, -1, -1};
  frl_dqn_stats_t st = {.loss = -1};

  frl_dqn_batch_t b = tiny_batch();
  int32_t act[3] = {0, -1, 1};
  b.action = act;
  assert_int_equal(frl_dqn_update(d, &b, td, &st), FRL_EDIM);
  act[1] = 2; /* == n_actions */
  assert_int_equal(frl_dqn_update(d, &b, td, &st), FRL_EDIM);
  act[1] = INT32_MAX;
  assert_int_equal(frl_dqn_update(d, &b, td, &st), FRL_EDIM);
  b = tiny_batch();
  b.B = 0;
  assert_int_equal(frl_dqn_update(d, &b, td, &st), FRL_EDIM);
  b.B = 4; /* > cfg.batch */
  assert_int_equal(frl_dqn_update(d, &b, td, &st), FRL_EDIM);

  /* Non-finite data is refused without touching the learner. */
  b = tiny_batch();
  float reward[3] = {1.0f, NAN, 0.0f};
  b.reward = reward;
  assert_int_equal(frl_dqn_update(d, &b, td, &st), -ERANGE);
  b = tiny_batch();
  float obs[6];
  memcpy(obs, tiny_obs, sizeof obs);
  obs[2] = INFINITY;
  b.obs = obs;
  assert_int_equal(frl_dqn_update(d, &b, td, &st), -ERANGE);
  obs[2] = NAN; /* ReLU must not zero a NaN away into a finite, silently wrong Q */
  assert_int_equal(frl_dqn_update(d, &b, td, &st), -ERANGE);
  b = tiny_batch();
  float next[6];
  memcpy(next, tiny_next, sizeof next);
  next[0] = NAN; /* a non-terminal row: the bootstrap is NaN */
  b.next_obs = next;
  assert_int_equal(frl_dqn_update(d, &b, td, &st), -ERANGE);

  assert_memory_equal(before, frl_qnet_params(frl_dqn_online(d)), bytes);
  assert_int_equal(frl_dqn_updates(d), 0);
  assert_true(td[0] == -1 && st.loss == -1);

  /* And the learner still works afterwards. */
  b = tiny_batch();
  assert_int_equal(frl_dqn_update(d, &b, td, &st), 0);
  assert_int_equal(frl_dqn_updates(d), 1);
  free(before);
  frl_dqn_destroy(&d);
}

static void test_rejects_bad_config(void **state) {
  frl_dqn_config_t c;
  c = base_config(), c.batch = 0;
  assert_null(frl_dqn_new(&c));
  c = base_config(), c.batch = 1 << 20;
  assert_null(frl_dqn_new(&c));
  c = base_config(), c.lr = 0;
  assert_null(frl_dqn_new(&c));
  c = base_config(), c.lr = NAN;
  assert_null(frl_dqn_new(&c));
  c = base_config(), c.adam_eps = -1;
  assert_null(frl_dqn_new(&c));
  c = base_config(), c.huber_delta = 0;
  assert_null(frl_dqn_new(&c));
  c = base_config(), c.grad_clip = NAN;
  assert_null(frl_dqn_new(&c));
  c = base_config(), c.tau = 1.5f;
  assert_null(frl_dqn_new(&c));
  c = base_config(), c.target_period = 0;
  assert_null(frl_dqn_new(&c));
  c = base_config(), c.shape.n_hidden = 0;
  assert_null(frl_dqn_new(&c));
  c = base_config(), c.shape.n_actions = 0;
  assert_null(frl_dqn_new(&c));
  frl_dqn_destroy(NULL);
}

/* ---- numpy reference --------------------------------------------------------------------------- */

/* The first interpreter (FLEETRL_PYTHON, python3 on PATH, /usr/bin/python3) that has numpy,
 * or NULL. */
static const char *find_python(void) {
  static char chosen[256];
  const char *env = getenv("FLEETRL_PYTHON");
  const char *cands[] = {env, "python3", "/usr/bin/python3"};
  for (size_t k = 0; k < FRL_ARRAY_LEN(cands); k++) {
    if (!cands[k] || !*cands[k] || strlen(cands[k]) >= sizeof chosen) continue;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy' >/dev/null 2>&1", cands[k]);
    if (system(cmd) == 0) {
      snprintf(chosen, sizeof chosen, "%s", cands[k]);
      return chosen;
    }
  }
  return NULL;
}

static void write_all(FILE *f, const void *p, size_t n) { assert_int_equal(fwrite(p, 1, n, f), n); }

static void check_against_numpy(bool double_q, uint64_t seed) {
  const char *py = find_python();
  if (!py) {
    print_message("SKIP numpy reference: no python3 with numpy (install python3-numpy or set "
                  "FLEETRL_PYTHON)\n");
    skip();
  }
  assert_int_equal(access("tests/ref/dqn_ref.py", R_OK), 0); /* run from the repo root */

  frl_dqn_config_t c = base_config();
  c.shape = (frl_qnet_shape_t){.obs_dim = 4, .n_actions = 3, .n_hidden = 2, .hidden = {7, 6},
                               .dueling = true};
  c.batch = 10;
  c.double_q = double_q;
  c.lr = 0.01f;
  c.adam_eps = 0.01f;
  c.huber_delta = 1.0f;
  c.grad_clip = 0.05f; /* below the norm for this batch: clipping is exercised */
  c.seed = seed;
  frl_dqn_t *d = frl_dqn_new(&c);
  assert_non_null(d);
  enum { B = 10, D = 4, A = 3 };
  const size_t N = frl_qnet_n_params(frl_dqn_online(d));
  float *online = frl_qnet_params(frl_dqn_online(d)), *target = frl_qnet_params(frl_dqn_target(d));
  frl_rng_t rng;
  frl_rng_seed(&rng, seed + 1);
  /* A target net that differs from the online one, so double and plain targets differ. */
  for (size_t k = 0; k < N; k++) target[k] = online[k] + (float)(0.3 * frl_rng_normal(&rng));

  float obs[B * D], next[B * D], reward[B], discount[B], weight[B];
  int32_t action[B];
  fill_uniform(obs, B * D, -2, 2, &rng);
  fill_uniform(next, B * D, -2, 2, &rng);
  fill_uniform(reward, B, -3, 3, &rng);
  fill_uniform(weight, B, 0.1, 1, &rng);
  for (int r = 0; r < B; r++) {
    action[r] = (int32_t)frl_rng_below(&rng, A);
    discount[r] = r % 4 == 0 ? 0.0f : 0.970299f; /* gamma^3, or terminal */
  }

  char dir[] = "/tmp/frl_test_dqn_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char in_path[64], out_path[64];
  snprintf(in_path, sizeof in_path, "%s/in.bin", dir);
  snprintf(out_path, sizeof out_path, "%s/out.bin", dir);
  FILE *f = fopen(in_path, "wb");
  assert_non_null(f);
  int32_t hdr[12] = {D, A, 2, 7, 6, 0, 0, 1, double_q, B, (int32_t)N, 0};
  float hyper[4] = {c.huber_delta, c.lr, c.adam_eps, c.grad_clip};
  write_all(f, hdr, sizeof hdr);
  write_all(f, hyper, sizeof hyper);
  write_all(f, online, N * sizeof(float));
  write_all(f, target, N * sizeof(float));
  write_all(f, obs, sizeof obs);
  write_all(f, next, sizeof next);
  write_all(f, reward, sizeof reward);
  write_all(f, discount, sizeof discount);
  write_all(f, weight, sizeof weight);
  write_all(f, action, sizeof action);
  assert_int_equal(fclose(f), 0);

  char cmd[1024], line[256] = "";
  snprintf(cmd, sizeof cmd, "'%s' tests/ref/dqn_ref.py '%s' '%s' 2>&1", py, in_path, out_path);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char all[4096] = "";
  while (fgets(line, sizeof line, p)) strncat(all, line, sizeof all - strlen(all) - 1);
  int status = pclose(p);
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) fail_msg("dqn_ref.py failed:\n%s", all);

  size_t n_out = B + B * A + B + 2 + 2 * N;
  double *ref = malloc(n_out * sizeof *ref);
  f = fopen(out_path, "rb");
  assert_non_null(f);
  assert_int_equal(fread(ref, sizeof *ref, n_out, f), n_out);
  assert_int_equal(fgetc(f), EOF);
  fclose(f);
  unlink(in_path);
  unlink(out_path);
  rmdir(dir);
  const double *ry = ref, *rq = ry + B, *rtd = rq + B * A, *rloss = rtd + B, *rgrad = rloss + 2;
  const double *rnew = rgrad + N;

  /* Targets and Q(obs) before the step. */
  float y[B], q[B * A];
  frl_dqn_targets(d, &(frl_dqn_batch_t){.B = B, .obs = obs, .action = action, .reward = reward,
                                        .discount = discount, .next_obs = next, .weight = weight},
                  y);
  for (int r = 0; r < B; r++) expect_close("numpy y", r, y[r], ry[r], 1e-5, 1e-5);
  frl_qnet_forward(frl_dqn_online(d), q, obs, B);
  for (int k = 0; k < B * A; k++) expect_close("numpy q", k, q[k], rq[k], 1e-5, 1e-5);

  /* The gradient through the qnet, assembled the way the update does (Huber on Q(s,a)). */
  float *grads = calloc(N, sizeof *grads), dq[B * A] = {0};
  for (int r = 0; r < B; r++) {
    double x = (double)q[r * A + action[r]] - ry[r];
    double g = fabs(x) <= c.huber_delta ? x : (x > 0 ? c.huber_delta : -c.huber_delta);
    dq[r * A + action[r]] = (float)(weight[r] * g / B);
  }
  frl_qnet_backward(frl_dqn_online(d), grads, dq, B);
  for (size_t k = 0; k < N; k++) expect_close("numpy grads", (int)k, grads[k], rgrad[k], 1e-6, 1e-4);

  /* The whole update: td_abs, loss, pre-clip norm, and the parameters after clip + Adam. */
  float td[B];
  frl_dqn_stats_t st;
  assert_int_equal(frl_dqn_update(d, &(frl_dqn_batch_t){.B = B, .obs = obs, .action = action,
                                                        .reward = reward, .discount = discount,
                                                        .next_obs = next, .weight = weight},
                                  td, &st),
                   0);
  for (int r = 0; r < B; r++) expect_close("numpy td_abs", r, td[r], rtd[r], 1e-5, 1e-5);
  expect_close("numpy loss", 0, st.loss, rloss[0], 1e-6, 1e-5);
  expect_close("numpy grad_norm", 0, st.grad_norm, rloss[1], 1e-6, 1e-4);
  assert_true(st.grad_norm > c.grad_clip);
  for (size_t k = 0; k < N; k++) expect_close("numpy new params", (int)k, online[k], rnew[k], 2e-6, 1e-5);
  free(grads);
  free(ref);
  frl_dqn_destroy(&d);
}

static void test_numpy_reference_double(void **state) { check_against_numpy(true, 2024); }
static void test_numpy_reference_plain(void **state) { check_against_numpy(false, 2025); }

/* ---- learning sanity ---------------------------------------------------------------------------- */

static void test_learns_self_loop_values(void **state) {
  /* One state that loops to itself; action 0 pays 1, action 1 pays 0, gamma = 0.9.
   * Bellman: Q*(0) = 1 + .9 max Q* = 1/(1 - .9) = 10, and Q*(1) = 0 + .9 * 10 = 9. */
  frl_dqn_config_t c = base_config();
  c.shape = (frl_qnet_shape_t){.obs_dim = 1, .n_actions = 2, .n_hidden = 1, .hidden = {16}};
  c.batch = 2;
  c.lr = 1e-2f;
  c.huber_delta = 100.0f; /* squared loss in the range that matters: a plain regression */
  c.grad_clip = 0.0f;
  c.target_period = 20;
  c.seed = 8;
  frl_dqn_t *d = frl_dqn_new(&c);
  const float obs[2] = {1.0f, 1.0f};
  const int32_t action[2] = {0, 1};
  const float reward[2] = {1.0f, 0.0f}, discount[2] = {0.9f, 0.9f};
  frl_dqn_batch_t b = {.B = 2, .obs = obs, .action = action, .reward = reward,
                       .discount = discount, .next_obs = obs};
  for (int u = 0; u < 3000; u++) assert_int_equal(frl_dqn_update(d, &b, NULL, NULL), 0);
  float q[2];
  frl_qnet_forward(frl_dqn_online(d), q, obs, 1);
  print_message("self-loop Q after 3000 updates: %.4f %.4f (closed form 10, 9)\n", q[0], q[1]);
  expect_close("Q*(0)", 0, q[0], 10.0, 0.05, 0);
  expect_close("Q*(1)", 1, q[1], 9.0, 0.05, 0);
  assert_int_equal(frl_qnet_argmax(frl_dqn_online(d), obs), 0);
  frl_dqn_destroy(&d);
}

/* ---- behaviour cloning ------------------------------------------------------------------------ */

/* The tiny network and batch above, demonstrated actions (0, 1, 1), weights (1, .5, 2), margin .8:
 *  row 0: Q = (.5, 0), a_E 0: max(.5 + 0, 0 + .8) - .5 = .3, the maximizer action 1;
 *  row 1: Q = (0, 2), a_E 1: max(0 + .8, 2 + 0) - 2 = 0 (a_E leads by more than the margin);
 *  row 2: Q = (1, 1), a_E 1: max(1 + .8, 1 + 0) - 1 = .8, the maximizer action 0.
 * J = (1 * .3 + .5 * 0 + 2 * .8) / 3; the greedy action (lowest index on ties) is wrong in row 2.
 * dJ/dQ: row 0 (-1/3, 1/3), row 2 (2/3, -2/3). Through Q = Wh relu(W1 s) + bh with W1 = Wh = I:
 * dbh = (1/3, -1/3); dWh = dq^T h with h0 = (.5, 0), h2 = (1, 1); the hidden units of row 0's
 * second input are off, so dz0 = (-1/3, 0), dz2 = (2/3, -2/3), dW1 = dz^T s, db1 = sum dz. */
static void test_bc_by_hand(void **state) {
  frl_dqn_config_t c = base_config();
  c.grad_clip = 0.0f;
  frl_dqn_t *d = frl_dqn_new(&c);
  set_tiny_params(d);
  frl_dqn_batch_t b = tiny_batch();
  float loss = NAN, disagree = NAN;
  assert_int_equal(frl__dqn_bc_compute(d, &b, FRL_DQN_BC_MARGIN, &loss, &disagree), 0);
  expect_close("bc loss", 0, loss, (0.3 + 0.5 * 0.0 + 2.0 * 0.8) / 3.0, 1e-6, 1e-6);
  expect_close("disagreement", 0, disagree, 1.0 / 3.0, 1e-7, 0);
  const double want[12] = {0.5, 1.0, -2.0 / 3, -2.0 / 3, 1.0 / 3, -2.0 / 3,
                           0.5, 2.0 / 3, -0.5, -2.0 / 3, 1.0 / 3, -1.0 / 3};
  const float *g = frl__dqn_grad(d);
  for (int k = 0; k < 12; k++) expect_close("bc grad", k, g[k], want[k], 1e-6, 1e-6);
  /* The update: Adam on the online net, the target set to it, no update counted. */
  assert_int_equal(frl_dqn_bc_update(d, &b, FRL_DQN_BC_MARGIN, NULL, NULL), 0);
  assert_memory_equal(frl_qnet_params(frl_dqn_target(d)), frl_qnet_params(frl_dqn_online(d)),
                      12 * sizeof(float));
  assert_int_equal(frl_dqn_updates(d), 0);
  frl_dqn_destroy(&d);
}

static double bc_ref(const frl_qnet_shape_t *s, const double *p, const frl_dqn_batch_t *b,
                     double margin) {
  double J = 0, q[16];
  for (int r = 0; r < b->B; r++) {
    qnet_ref_forward(q, s, p, b->obs + (size_t)r * s->obs_dim);
    double best = -INFINITY;
    for (int a = 0; a < s->n_actions; a++)
      best = fmax(best, q[a] + (a == b->action[r] ? 0.0 : margin));
    J += (b->weight ? b->weight[r] : 1.0) * (best - q[b->action[r]]);
  }
  return J / b->B;
}

/* Every gradient of the large-margin loss of a dueling two-layer network against central
 * differences of the float64 reference, with DQfD's margin (every row active) and with margin 0
 * (rows whose greedy action is the demo's contribute nothing). */
static void test_bc_gradient(void **state) {
  const float margins[2] = {FRL_DQN_BC_MARGIN, 0.0f};
  for (int m = 0; m < 2; m++) {
    frl_dqn_config_t c = base_config();
    c.shape = (frl_qnet_shape_t){.obs_dim = 3, .n_actions = 3, .n_hidden = 2, .hidden = {5, 4},
                                 .dueling = true};
    c.batch = 8;
    c.grad_clip = 0.0f;
    c.seed = 161;
    frl_dqn_t *d = frl_dqn_new(&c);
    enum { B = 8 };
    float obs[B * 3], weight[B];
    int32_t action[B] = {0, 1, 2, 2, 1, 0, 2, 1};
    frl_rng_t rng;
    frl_rng_seed(&rng, 162);
    fill_uniform(obs, B * 3, -2, 2, &rng);
    fill_uniform(weight, B, 0.2, 1.0, &rng);
    /* Larger weights than the default init, so Q differs clearly between actions. */
    float *pf = frl_qnet_params(frl_dqn_online(d));
    const size_t N = frl_qnet_n_params(frl_dqn_online(d));
    for (size_t k = 0; k < N; k++) pf[k] *= 3.0f;
    frl_dqn_batch_t b = {.B = B, .obs = obs, .action = action, .weight = weight};
    double *p = malloc(N * sizeof *p);
    for (size_t k = 0; k < N; k++) p[k] = pf[k];
    float loss, disagree;
    assert_int_equal(frl__dqn_bc_compute(d, &b, margins[m], &loss, &disagree), 0);
    expect_close("bc loss", m, loss, bc_ref(&c.shape, p, &b, margins[m]), 1e-6, 1e-5);
    int agree = 0;
    for (int r = 0; r < B; r++) {
      double q[16];
      qnet_ref_forward(q, &c.shape, p, obs + 3 * r);
      int best = 0;
      for (int a = 1; a < 3; a++)
        if (q[a] > q[best]) best = a;
      agree += best == action[r];
    }
    expect_close("disagreement", m, disagree, (double)(B - agree) / B, 1e-7, 0);
    if (m == 1) assert_true(agree > 0 && agree < B); /* both kinds of row */
    const float *g = frl__dqn_grad(d);
    const double h = 1e-6;
    for (size_t k = 0; k < N; k++) {
      double s0 = p[k];
      p[k] = s0 + h;
      double lp = bc_ref(&c.shape, p, &b, margins[m]);
      p[k] = s0 - h;
      double lm = bc_ref(&c.shape, p, &b, margins[m]);
      p[k] = s0;
      expect_close("bc grad", (int)k, g[k], (lp - lm) / (2 * h), 2e-6, 1e-3);
    }
    free(p);
    frl_dqn_destroy(&d);
  }
}

/* Cloning a linear expert a_E = argmax_a (W s)_a over 3 actions from 512 demonstrations: the loss
 * falls and the greedy action agrees with the expert on 95% of 500 held-out states. Refusals
 * change nothing: an action out of range, a bad margin, a non-finite observation or weight. */
static void test_bc_learns_linear_expert(void **state) {
  enum { D = 4, A = 3, N = 512, HOLD = 500, B = 64 };
  const double W[A][D] = {{1.0, -0.5, 0.3, 0.0}, {-0.6, 0.8, 0.0, 0.5}, {0.1, 0.2, -0.9, -0.4}};
  static float obs[N * D], held[HOLD * D];
  static int32_t act[N];
  frl_rng_t rng;
  frl_rng_seed(&rng, 171);
  fill_uniform(obs, N * D, -1, 1, &rng);
  fill_uniform(held, HOLD * D, -1, 1, &rng);
  int32_t held_act[HOLD];
  for (int r = 0; r < N + HOLD; r++) {
    const float *s = r < N ? obs + r * D : held + (r - N) * D;
    int best = 0;
    double v[A];
    for (int a = 0; a < A; a++) {
      v[a] = 0;
      for (int k = 0; k < D; k++) v[a] += W[a][k] * s[k];
      if (v[a] > v[best]) best = a;
    }
    if (r < N) act[r] = best;
    else held_act[r - N] = best;
  }
  frl_dqn_config_t c = base_config();
  c.shape = (frl_qnet_shape_t){.obs_dim = D, .n_actions = A, .n_hidden = 2, .hidden = {32, 32},
                               .dueling = true};
  c.batch = B;
  c.seed = 172;
  frl_dqn_t *d = frl_dqn_new(&c);
  float bo[B * D], first = NAN, last = NAN;
  int32_t ba[B];
  int agree[2];
  for (int phase = 0; phase < 2; phase++) {
    agree[phase] = 0;
    for (int r = 0; r < HOLD; r++)
      agree[phase] += frl_qnet_argmax(frl_dqn_online(d), held + r * D) == held_act[r];
    for (int u = 0; phase == 0 && u < 1500; u++) {
      for (int r = 0; r < B; r++) {
        uint32_t j = frl_rng_below(&rng, N);
        memcpy(bo + r * D, obs + j * D, D * sizeof(float));
        ba[r] = act[j];
      }
      frl_dqn_batch_t b = {.B = B, .obs = bo, .action = ba};
      float loss;
      assert_int_equal(frl_dqn_bc_update(d, &b, FRL_DQN_BC_MARGIN, &loss, NULL), 0);
      if (u == 0) first = loss;
      last = loss;
    }
  }
  print_message("bc: loss %.4f -> %.4f, held-out agreement %d -> %d of %d\n", first, last,
                agree[0], agree[1], HOLD);
  assert_true(last < 0.2 * first);
  assert_true(agree[0] < 0.6 * HOLD);
  assert_true(agree[1] >= 0.95 * HOLD);

  const size_t bytes = frl_qnet_n_params(frl_dqn_online(d)) * sizeof(float);
  float *before = malloc(bytes);
  memcpy(before, frl_qnet_params(frl_dqn_online(d)), bytes);
  float w[B];
  for (int r = 0; r < B; r++) w[r] = 1.0f;
  frl_dqn_batch_t bad = {.B = B, .obs = bo, .action = ba, .weight = w};
  ba[5] = A;
  assert_int_equal(frl_dqn_bc_update(d, &bad, FRL_DQN_BC_MARGIN, NULL, NULL), FRL_EDIM);
  ba[5] = -1;
  assert_int_equal(frl_dqn_bc_update(d, &bad, FRL_DQN_BC_MARGIN, NULL, NULL), FRL_EDIM);
  ba[5] = 0;
  assert_int_equal(frl_dqn_bc_update(d, &bad, NAN, NULL, NULL), FRL_EUSAGE);
  assert_int_equal(frl_dqn_bc_update(d, &bad, -0.5f, NULL, NULL), FRL_EUSAGE);
  bad.B = B + 1;
  assert_int_equal(frl_dqn_bc_update(d, &bad, FRL_DQN_BC_MARGIN, NULL, NULL), FRL_EDIM);
  bad.B = B;
  bo[3] = NAN;
  assert_int_equal(frl_dqn_bc_update(d, &bad, FRL_DQN_BC_MARGIN, NULL, NULL), -ERANGE);
  bo[3] = 0.0f;
  w[2] = INFINITY;
  assert_int_equal(frl_dqn_bc_update(d, &bad, FRL_DQN_BC_MARGIN, NULL, NULL), -ERANGE);
  assert_memory_equal(before, frl_qnet_params(frl_dqn_online(d)), bytes);
  free(before);
  frl_dqn_destroy(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_targets_by_hand),
      cmocka_unit_test(test_update_td_and_loss_by_hand),
      cmocka_unit_test(test_actor_td_abs_by_hand),
      cmocka_unit_test(test_weighted_loss_gradient),
      cmocka_unit_test(test_target_hard_copy_period),
      cmocka_unit_test(test_target_polyak),
      cmocka_unit_test(test_rejects_bad_batches),
      cmocka_unit_test(test_rejects_bad_config),
      cmocka_unit_test(test_numpy_reference_double),
      cmocka_unit_test(test_numpy_reference_plain),
      cmocka_unit_test(test_learns_self_loop_values),
      cmocka_unit_test(test_bc_by_hand),
      cmocka_unit_test(test_bc_gradient),
      cmocka_unit_test(test_bc_learns_linear_expert),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
