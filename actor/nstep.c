/* nstep.c: the actor's n-step return window, a fixed ring of the last n steps of the current
 * episode (Sutton & Barto 2018, sec. 7.1; Horgan et al. 2018 compute these on the actors). */
#include "nstep.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct frl_nstep {
  int n, obs_dim, act_dim;
  int head;        /* ring index of the oldest pending step */
  int count;       /* pending steps, 0..n-1 between pushes */
  float *obs;      /* [n, obs_dim] */
  float *action;   /* [n, act_dim] */
  float *reward;   /* [n] */
  double *gpow;    /* [n + 1], gamma^k */
};

frl_nstep_t *frl_nstep_new(int n, float gamma, int obs_dim, int act_dim) {
  if (n < 1 || n > FRL_NSTEP_MAX_N || !(gamma >= 0.0f && gamma <= 1.0f) || obs_dim < 1 ||
      act_dim < 1)
    return NULL;
  frl_nstep_t *ns = frl_xcalloc(1, sizeof *ns);
  ns->n = n;
  ns->obs_dim = obs_dim;
  ns->act_dim = act_dim;
  ns->obs = frl_xcalloc((size_t)n * (size_t)obs_dim, sizeof(float));
  ns->action = frl_xcalloc((size_t)n * (size_t)act_dim, sizeof(float));
  ns->reward = frl_xcalloc((size_t)n, sizeof(float));
  ns->gpow = frl_xcalloc((size_t)n + 1, sizeof(double));
  for (int k = 0; k <= n; k++) ns->gpow[k] = pow((double)gamma, k);
  return ns;
}

void frl_nstep_destroy(frl_nstep_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_nstep_t *ns = *self_p;
  free(ns->gpow);
  free(ns->reward);
  free(ns->action);
  free(ns->obs);
  free(ns);
  *self_p = NULL;
}

/* Emits the transition starting at the j-th pending step (0 = oldest), covering the k = count - j
 * pending steps up to the newest: R = sum_{i<k} gamma^i r_{j+i}, accumulated in double so long
 * windows do not lose the small late terms, and discount gamma^k, or 0 when the newest step
 * ended the episode in a terminal state (nothing to bootstrap from). */
static void emit_from(const frl_nstep_t *ns, int j, const float *next_obs, bool terminal,
                      frl_nstep_emit_fn emit, void *ctx) {
  int k = ns->count - j;
  double ret = 0.0;
  for (int i = 0; i < k; i++) ret += ns->gpow[i] * ns->reward[(ns->head + j + i) % ns->n];
  int slot = (ns->head + j) % ns->n;
  frl_transition_t t = {
      .obs = ns->obs + (size_t)slot * (size_t)ns->obs_dim,
      .action = ns->action + (size_t)slot * (size_t)ns->act_dim,
      .reward = (float)ret,
      .discount = terminal ? 0.0f : (float)ns->gpow[k],
      .next_obs = next_obs,
  };
  emit(ctx, &t);
}

/* The seed's version (000:3522-3553) bootstrapped every n-step return with gamma rather than
 * gamma^n and dropped the last n-1 steps of each episode; here the discount carries gamma^k for
 * the actual k, and an episode end flushes the whole window. */
void frl_nstep_push(frl_nstep_t *ns, const float *obs, const float *action, float reward,
                    const float *next_obs, bool terminal, bool truncated, frl_nstep_emit_fn emit,
                    void *ctx) {
  assert(ns->count < ns->n);
  int slot = (ns->head + ns->count) % ns->n;
  memcpy(ns->obs + (size_t)slot * (size_t)ns->obs_dim, obs, (size_t)ns->obs_dim * sizeof(float));
  memcpy(ns->action + (size_t)slot * (size_t)ns->act_dim, action,
         (size_t)ns->act_dim * sizeof(float));
  ns->reward[slot] = reward;
  ns->count++;

  if (terminal || truncated) {
    for (int j = 0; j < ns->count; j++) emit_from(ns, j, next_obs, terminal, emit, ctx);
    frl_nstep_clear(ns);
  } else if (ns->count == ns->n) {
    emit_from(ns, 0, next_obs, false, emit, ctx);
    ns->head = (ns->head + 1) % ns->n;
    ns->count--;
  }
}

void frl_nstep_clear(frl_nstep_t *ns) {
  ns->head = 0;
  ns->count = 0;
}
