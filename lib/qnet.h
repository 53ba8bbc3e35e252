/* qnet.h: a Q-network: an MLP trunk (Linear+ReLU layers) followed by either a plain linear
 * head (A outputs) or a dueling head (V: hidden->1 and A: hidden->A per Wang et al. 2016).
 * All parameters live in ONE contiguous float block (llm.c style) so a broadcast, a target
 * copy or a checkpoint is one memcpy. Layout of the block, in order, for each trunk layer l:
 * w_l [O_l x I_l], b_l [O_l]; then the head(s): plain: w [A x H], b [A]; dueling: wv [1 x H],
 * bv [1], wa [A x H], ba [A]. */
#ifndef FRL_QNET_H
#define FRL_QNET_H

#include <stdbool.h>
#include <stddef.h>

#include "rng.h"

#define FRL_QNET_MAX_LAYERS 4

typedef struct {
  int obs_dim;
  int n_actions;
  int n_hidden;                       /* number of trunk layers, 1..FRL_QNET_MAX_LAYERS */
  int hidden[FRL_QNET_MAX_LAYERS];    /* widths */
  bool dueling;
} frl_qnet_shape_t;

typedef struct frl_qnet frl_qnet_t;

/* Number of floats in the parameter block for a shape; 0 for an invalid shape. */
size_t frl_qnet_param_count(const frl_qnet_shape_t *shape);

/* New network with workspace for batches up to max_batch; parameters initialized from rng
 * (PyTorch's nn.Linear default, layer by layer in block order). The qnet owns its parameter
 * block; frl_qnet_params() exposes it for reading and writing. Returns NULL, after logging
 * which field is out of which bound, for an invalid shape or max_batch (config input).
 * A qnet is not thread-safe: forward, backward and argmax share its workspace. */
frl_qnet_t *frl_qnet_new(const frl_qnet_shape_t *shape, int max_batch, frl_rng_t *rng);
/* Frees q and its blocks; accepts NULL and sets *self_p to NULL. */
void frl_qnet_destroy(frl_qnet_t **self_p);
/* Accessors: the shape (owned by q), the parameter block (owned by q, n_params floats, valid
 * until destroy), and the batch limit given to frl_qnet_new. */
const frl_qnet_shape_t *frl_qnet_shape(const frl_qnet_t *q);
float *frl_qnet_params(frl_qnet_t *q);
size_t frl_qnet_n_params(const frl_qnet_t *q);
int frl_qnet_max_batch(const frl_qnet_t *q);

/* q_out[B, A] = Q(obs[B, obs_dim]); B <= max_batch. Keeps activations for backward. */
void frl_qnet_forward(frl_qnet_t *q, float *q_out, const float *obs, int B);
/* Backprop dq[B,A] through the LAST forward call; accumulates into grads (same layout and
 * length as the param block). B may be smaller than that forward's batch: the first B rows
 * are backpropagated (the learner runs obs and next_obs as one forward and differentiates
 * only the obs half). No gradient with respect to the input is computed. */
void frl_qnet_backward(frl_qnet_t *q, float *grads, const float *dq, int B);

/* Greedy action for one observation (argmax, lowest index on ties; always a valid index,
 * even if Q has NaNs). Runs a batch-1 forward, which replaces the one backward would use.
 * Allocation-free; small layers use a plain loop rather than BLAS (call overhead). */
int frl_qnet_argmax(frl_qnet_t *q, const float *obs);

/* Internal (for dqn.c): a [max_batch, n_actions] output buffer owned by q, so batch
 * evaluations with one network need no allocation. Any frl_ call on q may overwrite it. */
float *frl__qnet_scratch(frl_qnet_t *q);

#endif
