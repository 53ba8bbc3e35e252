/* test_hindsight.c: hindsight relabeling on the planar arm. Every relabeled transition's reward
 * and success against the environment itself, stepped from the recorded state with the target
 * moved to the relabeled goal; each copy ends by reaching the goal a state of the episode
 * achieved; n-step copies against the one-step ones; the queue drained in pieces; no allocation
 * after creation; arguments out of range refused; the goal found through wrappers; observations
 * with past ones stacked in them (--obs-history) relabeled in every frame. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "env.h"
#include "env_impl.h"
#include "hindsight.h"
#include "history.h"
#include "randomize.h"
#include "rng.h"

#include "alloc_counter.h"

enum { J = 6, OBS = 33, ACT = 6, STATE = 15, T = 80, K = 4, MAXQ = K * 200 };
#define GAMMA 0.99f
/* The planar arm's observation: q[6], qd[6], target[3], tip[3], target - tip[3], then the tip's
 * velocity, the link directions and target - tip at the goal's scale. */
enum { TARGET = 12, TIP = 15, OFFSET = 18 };

typedef struct {
  int n;
  float obs[MAXQ][OBS], next[MAXQ][OBS], action[MAXQ][ACT], reward[MAXQ], discount[MAXQ];
} sink_t;

static void collect(void *ctx, const frl_transition_t *t) {
  sink_t *s = ctx;
  assert_true(s->n < MAXQ);
  memcpy(s->obs[s->n], t->obs, sizeof s->obs[0]);
  memcpy(s->next[s->n], t->next_obs, sizeof s->next[0]);
  memcpy(s->action[s->n], t->action, sizeof s->action[0]);
  s->reward[s->n] = t->reward;
  s->discount[s->n] = t->discount;
  s->n++;
}

/* One recorded episode of T steps of smooth random torques on the planar arm. */
typedef struct {
  float obs[T][OBS], next[T][OBS], action[T][ACT], env_action[T][ACT];
  int steps;
} episode_t;

static frl_env_t *arm(uint64_t seed) {
  frl_env_t *e = NULL;
  assert_int_equal(frl_env_new(&e, "planar-arm", seed, NULL, 0), 0);
  return e;
}

static void play(episode_t *ep, uint64_t seed) {
  frl_env_t *e = arm(seed);
  frl_rng_t rng;
  frl_rng_seed(&rng, seed + 1);
  float obs[OBS], next[OBS], a[ACT] = {0};
  frl_env_reset(e, obs);
  ep->steps = 0;
  for (int t = 0; t < T; t++) {
    for (int i = 0; i < ACT; i++) a[i] = 0.8f * a[i] + 0.4f * (2.0f * (float)frl_rng_uniform(&rng) - 1.0f);
    float env_action[ACT];
    for (int i = 0; i < ACT; i++) env_action[i] = 100.0f * a[i] * 1.5f; /* some beyond bounds */
    frl_step_t st;
    frl_env_step(e, env_action, next, &st);
    memcpy(ep->obs[t], obs, sizeof obs);
    memcpy(ep->next[t], next, sizeof next);
    memcpy(ep->action[t], a, sizeof a);
    memcpy(ep->env_action[t], env_action, sizeof env_action);
    ep->steps++;
    if (st.terminal || st.truncated) break;
    memcpy(obs, next, sizeof obs);
  }
  frl_env_destroy(&e);
}

static frl_hindsight_t *make(int k, int n_step) {
  frl_env_t *e = arm(1);
  const frl_env_goal_t *g = frl_env_goal(e);
  frl_env_destroy(&e);
  assert_non_null(g);
  frl_hindsight_t *h = frl_hindsight_new(g, k, 200, OBS, ACT, n_step, GAMMA);
  assert_non_null(h);
  return h;
}

static void relabel_all(frl_hindsight_t *h, const episode_t *ep, uint64_t seed, sink_t *out) {
  for (int t = 0; t < ep->steps; t++)
    frl_hindsight_record(h, ep->obs[t], ep->action[t], ep->env_action[t], ep->next[t]);
  frl_rng_t rng;
  frl_rng_seed(&rng, seed);
  const int queued = frl_hindsight_end_episode(h, &rng);
  assert_int_equal(frl_hindsight_pending(h), queued);
  out->n = 0;
  assert_int_equal(frl_hindsight_emit(h, MAXQ, collect, out), queued);
  assert_int_equal(frl_hindsight_pending(h), 0);
}

/* The recorded step whose obs has these joint positions and velocities. */
static int find_step(const episode_t *ep, const float *obs) {
  for (int t = 0; t < ep->steps; t++)
    if (memcmp(ep->obs[t], obs, 2 * J * sizeof(float)) == 0) return t;
  return -1;
}

static void test_rewards_match_the_environment(void **state) {
  int longest = 0; /* the longest copy: goals come from the whole episode, not its start */
  for (uint64_t seed = 1; seed <= 6; seed++) {
    episode_t ep;
    play(&ep, 100 + seed);
    frl_hindsight_t *h = make(K, 1);
    sink_t out;
    relabel_all(h, &ep, seed, &out);
    frl_env_t *ref = arm(7);
    int copies = 0, prev_t = -1;
    for (int i = 0; i < out.n; i++) {
      const int t = find_step(&ep, out.obs[i]);
      assert_true(t >= 0);
      /* Copies run forward from step 0, one step at a time. */
      assert_int_equal(t, prev_t + 1);
      prev_t = t;
      longest = FRL_MAX(longest, t + 1);
      assert_memory_equal(out.action[i], ep.action[t], sizeof out.action[i]);
      assert_memory_equal(out.next[i], ep.next[t], 2 * J * sizeof(float));
      const float *goal = out.obs[i] + TARGET;
      assert_memory_equal(out.next[i] + TARGET, goal, 3 * sizeof(float));
      for (int c = 0; c < 3; c++) {
        assert_float_equal(out.obs[i][OFFSET + c], goal[c] - out.obs[i][TIP + c], 1e-7);
        assert_float_equal(out.next[i][OFFSET + c], goal[c] - out.next[i][TIP + c], 1e-7);
      }
      /* The environment, set to the recorded state with the goal as its target and stepped
       * with the recorded torques, pays the same reward and declares the same success. */
      double s[STATE];
      for (int c = 0; c < 2 * J; c++) s[c] = ep.obs[t][c];
      for (int c = 0; c < 3; c++) s[2 * J + c] = goal[c];
      float o[OBS], no[OBS];
      frl_env_reset(ref, o);
      assert_int_equal(frl__env_set_state(ref, s, STATE, o), 0);
      /* The relabeled observation is the environment's own at that state and goal. */
      for (int c = 0; c < OBS; c++) assert_float_equal(out.obs[i][c], o[c], 1e-5);
      frl_step_t st;
      frl_env_step(ref, ep.env_action[t], no, &st);
      assert_float_equal(out.reward[i], st.reward, 1e-4 * (1 + fabsf(st.reward)));
      const bool success = out.discount[i] == 0.0f;
      assert_int_equal(success, st.success);
      if (!success) {
        assert_float_equal(out.discount[i], GAMMA, 1e-7);
      } else {
        /* A copy ends at its first success; the next one starts from step 0. */
        copies++;
        prev_t = -1;
      }
    }
    /* Every copy reached its goal: the goal is a state the episode achieved. */
    assert_int_equal(copies, K);
    assert_int_equal(prev_t, -1);
    frl_env_destroy(&ref);
    frl_hindsight_destroy(&h);
  }
  assert_true(longest > 3 * T / 4);
}

/* The 3-step copies are the 1-step ones summed: same goals (same generator seed), rewards
 * r_t + g r_t+1 + g^2 r_t+2 cut at a copy's end, discount g^3, g^k or 0 at the goal. */
static void test_nstep_copies(void **state) {
  episode_t ep;
  play(&ep, 555);
  frl_hindsight_t *h1 = make(K, 1), *h3 = make(K, 3);
  sink_t *one = malloc(sizeof *one), *three = malloc(sizeof *three);
  relabel_all(h1, &ep, 9, one);
  relabel_all(h3, &ep, 9, three);
  assert_int_equal(one->n, three->n);
  for (int i = 0; i < one->n; i++) {
    assert_memory_equal(one->obs[i], three->obs[i], sizeof one->obs[i]);
    double R = 0, g = 1;
    int k = 0;
    for (; k < 3; k++) {
      R += g * one->reward[i + k];
      g *= GAMMA;
      if (one->discount[i + k] == 0.0f) {
        g = 0;
        k++;
        break;
      }
      if (i + k + 1 < one->n && find_step(&ep, one->obs[i + k + 1]) == 0) {
        k++;
        break; /* the copy was cut off here (never, for equality goals) */
      }
    }
    assert_float_equal(three->reward[i], R, 1e-5 * (1 + fabs(R)));
    assert_float_equal(three->discount[i], g, 1e-6);
    assert_memory_equal(three->next[i], one->next[i + k - 1], sizeof one->next[i]);
  }
  free(one);
  free(three);
  frl_hindsight_destroy(&h1);
  frl_hindsight_destroy(&h3);
}

/* The queue drains in pieces, keeps an undrained episode's copies ahead of the next one's, and
 * nothing allocates after creation. */
static void test_queue(void **state) {
  episode_t a, b;
  play(&a, 31);
  play(&b, 32);
  frl_hindsight_t *h = make(2, 3);
  sink_t *out = malloc(sizeof *out);
  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
#ifdef COUNT_ALLOCS
  atomic_store(&g_allocs, 0);
  atomic_store(&g_counting, 1);
#endif
  for (int t = 0; t < a.steps; t++)
    frl_hindsight_record(h, a.obs[t], a.action[t], a.env_action[t], a.next[t]);
  const int na = frl_hindsight_end_episode(h, &rng);
  out->n = 0;
  assert_int_equal(frl_hindsight_emit(h, 5, collect, out), FRL_MIN(5, na));
  for (int t = 0; t < b.steps; t++)
    frl_hindsight_record(h, b.obs[t], b.action[t], b.env_action[t], b.next[t]);
  const int nb = frl_hindsight_end_episode(h, &rng);
  assert_int_equal(frl_hindsight_pending(h), na - FRL_MIN(5, na) + nb);
  while (frl_hindsight_pending(h) > 0) frl_hindsight_emit(h, 7, collect, out);
#ifdef COUNT_ALLOCS
  atomic_store(&g_counting, 0);
  assert_int_equal(atomic_load(&g_allocs), 0);
#endif
  assert_int_equal(out->n, na + nb);
  for (int i = 0; i < na; i++) assert_true(find_step(&a, out->obs[i]) >= 0);
  for (int i = na; i < na + nb; i++) assert_true(find_step(&b, out->obs[i]) >= 0);
  /* A discarded episode queues nothing; an empty one neither. */
  for (int t = 0; t < a.steps; t++)
    frl_hindsight_record(h, a.obs[t], a.action[t], a.env_action[t], a.next[t]);
  frl_hindsight_discard(h);
  assert_int_equal(frl_hindsight_end_episode(h, &rng), 0);
  free(out);
  frl_hindsight_destroy(&h);
}

enum { WIDE = 2 * OBS + 2 * ACT };
typedef struct {
  int n;
  float o[MAXQ][WIDE], no[MAXQ][WIDE];
} wide_t;

static void collect_wide(void *ctx, const frl_transition_t *t) {
  wide_t *w = ctx;
  assert_true(w->n < MAXQ);
  memcpy(w->o[w->n], t->obs, sizeof w->o[0]);
  memcpy(w->no[w->n], t->next_obs, sizeof w->no[0]);
  w->n++;
}

/* Through the history wrapper with one past observation and two commands (33 + 33 + 12 values):
 * every relabeled observation names its goal in both frames, each frame's offset measured from
 * its own tip, and the commands are left as they were. */
static void test_stacked_frames(void **state) {
  enum { OD = WIDE };
  frl_env_t *e = arm(41);
  const frl_env_goal_t *g = frl_env_goal(e);
  char err[256];
  assert_int_equal(frl_history_wrap(&e, 2, 1, err, sizeof err), 0);
  assert_int_equal(frl_env_spec(e)->obs_dim, OD);
  frl_hindsight_t *h = frl_hindsight_new(g, K, 200, OD, ACT, 1, GAMMA);
  assert_non_null(h);
  assert_int_equal(frl_hindsight_set_frames(h, 0, OBS), FRL_EUSAGE);
  assert_int_equal(frl_hindsight_set_frames(h, 3, OBS), FRL_EUSAGE); /* 99 > 78 values */
  assert_int_equal(frl_hindsight_set_frames(h, 2, OBS), 0);
  frl_rng_t rng;
  frl_rng_seed(&rng, 42);
  static float obs[T][OD], next[T][OD];
  float a[ACT] = {0}, env_action[ACT];
  frl_env_reset(e, obs[0]);
  int steps = 0;
  for (int t = 0; t < T; t++) {
    for (int i = 0; i < ACT; i++) {
      a[i] = 0.8f * a[i] + 0.4f * (2.0f * (float)frl_rng_uniform(&rng) - 1.0f);
      env_action[i] = 100.0f * a[i];
    }
    frl_step_t st;
    frl_env_step(e, env_action, next[t], &st);
    frl_hindsight_record(h, obs[t], a, env_action, next[t]);
    steps++;
    if (st.terminal || st.truncated) break;
    if (t + 1 < T) memcpy(obs[t + 1], next[t], sizeof next[t]);
  }
  const int queued = frl_hindsight_end_episode(h, &rng);
  assert_true(queued >= K);
  int checked = 0, relabeled = 0;
  wide_t *w = calloc(1, sizeof *w);
  frl_hindsight_emit(h, MAXQ, collect_wide, w);
  assert_int_equal(w->n, queued);
  for (int i = 0; i < w->n; i++) {
    for (int which = 0; which < 2; which++) {
      const float *x = which ? w->no[i] : w->o[i];
      const float *goal = w->o[i] + TARGET;
      for (int f = 0; f < 2; f++)
        for (int c = 0; c < 3; c++) {
          assert_float_equal(x[f * OBS + TARGET + c], goal[c], 0);
          assert_float_equal(x[f * OBS + OFFSET + c], goal[c] - x[f * OBS + TIP + c], 1e-6);
        }
      /* The commands are the recorded ones: the step's row in the episode has them. */
      const float *rec = NULL;
      for (int t = 0; t < steps && !rec; t++) {
        const float *cand = which ? next[t] : obs[t];
        if (memcmp(cand, x, 2 * J * sizeof(float)) == 0) rec = cand;
      }
      assert_non_null(rec);
      assert_memory_equal(x + 2 * OBS, rec + 2 * OBS, 2 * ACT * sizeof(float));
      assert_memory_equal(x + OBS, rec + OBS, 2 * J * sizeof(float)); /* the past frame's state */
      relabeled += memcmp(x + OBS + TARGET, rec + OBS + TARGET, 3 * sizeof(float)) != 0;
      checked++;
    }
  }
  assert_true(checked >= 2 * K);
  assert_int_equal(relabeled, checked); /* no achieved goal is the episode's own target */
  free(w);
  frl_hindsight_destroy(&h);
  frl_env_destroy(&e);
}

static void test_arguments_and_lookup(void **state) {
  frl_env_t *e = arm(1);
  const frl_env_goal_t *g = frl_env_goal(e);
  assert_non_null(g);
  assert_int_equal(g->goal_dim, 3);
  assert_null(frl_hindsight_new(NULL, 4, 200, OBS, ACT, 1, GAMMA));
  assert_null(frl_hindsight_new(g, 0, 200, OBS, ACT, 1, GAMMA));
  assert_null(frl_hindsight_new(g, FRL_HINDSIGHT_MAX_K + 1, 200, OBS, ACT, 1, GAMMA));
  assert_null(frl_hindsight_new(g, 4, 0, OBS, ACT, 1, GAMMA));
  assert_null(frl_hindsight_new(g, 4, 200, 0, ACT, 1, GAMMA));
  assert_null(frl_hindsight_new(g, 4, 200, OBS, 0, 1, GAMMA));
  assert_null(frl_hindsight_new(g, 4, 200, OBS, ACT, 0, GAMMA));
  assert_null(frl_hindsight_new(g, 4, 200, OBS, ACT, 1, 1.5f));
  /* Through domain randomization the task's goal is still found. */
  frl_randomize_opts_t dr;
  frl_randomize_defaults(&dr);
  char err[256];
  assert_int_equal(frl_randomize_wrap(&e, &dr, 5, err, sizeof err), 0);
  assert_ptr_equal(frl_env_goal(e), g);
  frl_env_destroy(&e);
  frl_env_t *c = NULL;
  assert_int_equal(frl_env_new(&c, "cartpole", 1, NULL, 0), 0);
  assert_null(frl_env_goal(c));
  frl_env_destroy(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rewards_match_the_environment),
      cmocka_unit_test(test_nstep_copies),
      cmocka_unit_test(test_queue),
      cmocka_unit_test(test_stacked_frames),
      cmocka_unit_test(test_arguments_and_lookup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
