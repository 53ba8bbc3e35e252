/* nstep.h: builds n-step transitions (s_t, a_t, R_t, discount, s_{t+k}) from single steps,
 * R_t = sum_{i<k} gamma^i r_{t+i}, k = min(n, steps left in the episode). discount = gamma^k
 * when bootstrapping (including at a time-limit truncation) and 0 at a terminal state.
 * (The seed code bootstrapped with gamma instead of gamma^n and never flushed at episode end;
 * both are handled correctly here.) */
#ifndef FRL_NSTEP_H
#define FRL_NSTEP_H

#include <stdbool.h>

typedef struct {
  const float *obs;
  const float *action;
  float reward;
  float discount;
  const float *next_obs;
} frl_transition_t;

/* Receives each finished transition; pointers are valid only during the call. */
typedef void (*frl_nstep_emit_fn)(void *ctx, const frl_transition_t *t);

typedef struct frl_nstep frl_nstep_t;

#define FRL_NSTEP_MAX_N 1024

/* Creates a builder for n-step returns (1 <= n <= FRL_NSTEP_MAX_N, 0 <= gamma <= 1, dims > 0).
 * All memory is allocated here; pushes never allocate. Returns NULL only for arguments outside
 * those ranges. */
frl_nstep_t *frl_nstep_new(int n, float gamma, int obs_dim, int act_dim);
void frl_nstep_destroy(frl_nstep_t **self_p);
/* Adds step (obs, action, reward, next_obs); obs and action are copied. Emits the transition
 * that became complete, if any; at terminal or truncated it emits every pending transition,
 * oldest first, and clears the window, so an episode of T steps emits exactly T transitions.
 * Emitted next_obs is always this call's next_obs. terminal wins over truncated. */
void frl_nstep_push(frl_nstep_t *ns, const float *obs, const float *action, float reward,
                    const float *next_obs, bool terminal, bool truncated, frl_nstep_emit_fn emit,
                    void *ctx);
/* Drops pending steps without emitting (e.g. the actor restarts an episode). */
void frl_nstep_clear(frl_nstep_t *ns);

#endif
