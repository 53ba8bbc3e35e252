/* hindsight.c: hindsight relabeling of finished episodes into a queue of n-step transitions
 * (see hindsight.h). */
#include "hindsight.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

struct frl_hindsight {
  const frl_env_goal_t *goal;
  int k, max_steps, obs_dim, act_dim;
  int frames, frame_dim; /* observations stacked in one (obs-history): each is relabeled */
  frl_nstep_t *ns;
  /* the running episode: steps recorded so far */
  int steps;
  float *obs, *next, *action, *env_action;
  /* the queue: transitions [head, len) are pending */
  int cap, head, len;
  float *q_obs, *q_next, *q_action, *q_reward, *q_discount;
  /* scratch for one relabeled step */
  float *o, *no;
};

frl_hindsight_t *frl_hindsight_new(const frl_env_goal_t *goal, int k, int max_steps, int obs_dim,
                                   int act_dim, int n_step, float gamma) {
  if (!goal || goal->goal_dim < 1 || goal->goal_dim > FRL_ENV_MAX_DIM || k < 1 ||
      k > FRL_HINDSIGHT_MAX_K || max_steps < 1 || max_steps > 1000000 || obs_dim < 1 ||
      obs_dim > FRL_ENV_MAX_DIM || act_dim < 1 || act_dim > FRL_ENV_MAX_DIM)
    return NULL;
  frl_nstep_t *ns = frl_nstep_new(n_step, gamma, obs_dim, act_dim);
  if (!ns) return NULL;
  frl_hindsight_t *h = frl_xcalloc(1, sizeof *h);
  h->goal = goal;
  h->k = k;
  h->max_steps = max_steps;
  h->obs_dim = obs_dim;
  h->frames = 1;
  h->frame_dim = obs_dim;
  h->act_dim = act_dim;
  h->ns = ns;
  const size_t T = (size_t)max_steps, O = (size_t)obs_dim, A = (size_t)act_dim;
  h->obs = frl_xmalloc(T * O * sizeof(float));
  h->next = frl_xmalloc(T * O * sizeof(float));
  h->action = frl_xmalloc(T * A * sizeof(float));
  h->env_action = frl_xmalloc(T * A * sizeof(float));
  /* k copies of at most max_steps transitions each: a whole episode's worth. */
  h->cap = k * max_steps;
  const size_t C = (size_t)h->cap;
  h->q_obs = frl_xmalloc(C * O * sizeof(float));
  h->q_next = frl_xmalloc(C * O * sizeof(float));
  h->q_action = frl_xmalloc(C * A * sizeof(float));
  h->q_reward = frl_xmalloc(C * sizeof(float));
  h->q_discount = frl_xmalloc(C * sizeof(float));
  h->o = frl_xmalloc(O * sizeof(float));
  h->no = frl_xmalloc(O * sizeof(float));
  return h;
}

void frl_hindsight_destroy(frl_hindsight_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_hindsight_t *h = *self_p;
  frl_nstep_destroy(&h->ns);
  free(h->obs);
  free(h->next);
  free(h->action);
  free(h->env_action);
  free(h->q_obs);
  free(h->q_next);
  free(h->q_action);
  free(h->q_reward);
  free(h->q_discount);
  free(h->o);
  free(h->no);
  free(h);
  *self_p = NULL;
}

void frl_hindsight_record(frl_hindsight_t *h, const float *obs, const float *action,
                          const float *env_action, const float *next_obs) {
  if (h->steps >= h->max_steps) return;
  const size_t t = (size_t)h->steps++, O = (size_t)h->obs_dim, A = (size_t)h->act_dim;
  memcpy(h->obs + t * O, obs, O * sizeof(float));
  memcpy(h->next + t * O, next_obs, O * sizeof(float));
  memcpy(h->action + t * A, action, A * sizeof(float));
  memcpy(h->env_action + t * A, env_action, A * sizeof(float));
}

/* The n-step builder's output: appended to the queue (end_episode made room for a whole
 * episode's copies, so it always fits). */
static void enqueue(void *ctx, const frl_transition_t *t) {
  frl_hindsight_t *h = ctx;
  if (h->len >= h->cap) return;
  const size_t i = (size_t)h->len++, O = (size_t)h->obs_dim, A = (size_t)h->act_dim;
  memcpy(h->q_obs + i * O, t->obs, O * sizeof(float));
  memcpy(h->q_next + i * O, t->next_obs, O * sizeof(float));
  memcpy(h->q_action + i * A, t->action, A * sizeof(float));
  h->q_reward[i] = t->reward;
  h->q_discount[i] = t->discount;
}

/* Moves the pending transitions to the front of the queue. */
static void compact(frl_hindsight_t *h) {
  if (h->head == 0) return;
  const int n = h->len - h->head;
  const size_t O = (size_t)h->obs_dim, A = (size_t)h->act_dim, hd = (size_t)h->head;
  memmove(h->q_obs, h->q_obs + hd * O, (size_t)n * O * sizeof(float));
  memmove(h->q_next, h->q_next + hd * O, (size_t)n * O * sizeof(float));
  memmove(h->q_action, h->q_action + hd * A, (size_t)n * A * sizeof(float));
  memmove(h->q_reward, h->q_reward + hd, (size_t)n * sizeof(float));
  memmove(h->q_discount, h->q_discount + hd, (size_t)n * sizeof(float));
  h->head = 0;
  h->len = n;
}

int frl_hindsight_end_episode(frl_hindsight_t *h, frl_rng_t *rng) {
  const int T = h->steps;
  h->steps = 0;
  compact(h);
  const int before = h->len;
  const size_t O = (size_t)h->obs_dim, A = (size_t)h->act_dim;
  float goal[FRL_ENV_MAX_DIM];
  /* Whatever is still queued keeps its place; copies are dropped only if they could not all
   * fit (the actor drains the queue before it steps again, so in practice never). */
  for (int c = 0; c < h->k && T > 0 && h->len + T <= h->cap; c++) {
    int tg = (int)(frl_rng_uniform(rng) * T);
    if (tg >= T) tg = T - 1;
    h->goal->achieved(h->next + (size_t)tg * O, goal);
    for (int t = 0; t <= tg; t++) {
      memcpy(h->o, h->obs + (size_t)t * O, O * sizeof(float));
      memcpy(h->no, h->next + (size_t)t * O, O * sizeof(float));
      for (int f = 0; f < h->frames; f++) {
        h->goal->relabel(h->o + (size_t)f * (size_t)h->frame_dim, goal);
        h->goal->relabel(h->no + (size_t)f * (size_t)h->frame_dim, goal);
      }
      bool success = false;
      const float r = h->goal->reward(h->no, h->env_action + (size_t)t * A, &success);
      /* The copy ends where it first reaches its goal, at t_g at the latest (where the goal
       * was achieved); were it not reached there (a goal test stricter than equality), the
       * copy is cut off there like a time limit, bootstrapping from the last state. */
      frl_nstep_push(h->ns, h->o, h->action + (size_t)t * A, r, h->no, success, t == tg, enqueue,
                     h);
      if (success) break;
    }
  }
  return h->len - before;
}

void frl_hindsight_discard(frl_hindsight_t *h) { h->steps = 0; }

int frl_hindsight_pending(const frl_hindsight_t *h) { return h->len - h->head; }

int frl_hindsight_emit(frl_hindsight_t *h, int max, frl_nstep_emit_fn emit, void *ctx) {
  int n = 0;
  const size_t O = (size_t)h->obs_dim, A = (size_t)h->act_dim;
  while (n < max && h->head < h->len) {
    const size_t i = (size_t)h->head++;
    frl_transition_t t = {.obs = h->q_obs + i * O,
                          .action = h->q_action + i * A,
                          .reward = h->q_reward[i],
                          .discount = h->q_discount[i],
                          .next_obs = h->q_next + i * O};
    emit(ctx, &t);
    n++;
  }
  if (h->head == h->len) h->head = h->len = 0;
  return n;
}

int frl_hindsight_set_frames(frl_hindsight_t *h, int frames, int frame_dim) {
  if (frames < 1 || frame_dim < 1 || (long)frames * frame_dim > h->obs_dim) return FRL_EUSAGE;
  h->frames = frames;
  h->frame_dim = frame_dim;
  return 0;
}
