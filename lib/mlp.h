/* mlp.h: a multi-layer perceptron with all parameters in ONE contiguous float block (llm.c
 * style): for each layer l, w_l [O_l x I_l] then b_l [O_l]. Hidden layers use one activation,
 * the output layer another (often none). Workspace for activations is sized for max_batch. */
#ifndef FRL_MLP_H
#define FRL_MLP_H

#include <stddef.h>

#include "rng.h"

#define FRL_MLP_MAX_LAYERS 6

typedef enum { FRL_ACT_NONE = 0, FRL_ACT_RELU = 1, FRL_ACT_TANH = 2 } frl_activation_t;

typedef struct {
  int n_layers;                       /* linear layers, 1..FRL_MLP_MAX_LAYERS */
  int sizes[FRL_MLP_MAX_LAYERS + 1];  /* sizes[0] inputs ... sizes[n_layers] outputs */
  frl_activation_t hidden_act;        /* after every layer but the last */
  frl_activation_t out_act;           /* after the last layer */
} frl_mlp_shape_t;

typedef struct frl_mlp frl_mlp_t;

size_t frl_mlp_param_count(const frl_mlp_shape_t *shape);
/* New MLP owning its parameter block, initialized like PyTorch's nn.Linear from rng. Returns
 * NULL (after logging the field and bound) for an invalid shape or max_batch. */
frl_mlp_t *frl_mlp_new(const frl_mlp_shape_t *shape, int max_batch, frl_rng_t *rng);
void frl_mlp_destroy(frl_mlp_t **self_p);
const frl_mlp_shape_t *frl_mlp_shape(const frl_mlp_t *m);
float *frl_mlp_params(frl_mlp_t *m);
size_t frl_mlp_n_params(const frl_mlp_t *m);
int frl_mlp_max_batch(const frl_mlp_t *m);
/* out[B, sizes[n]] = f(in[B, sizes[0]]); B <= max_batch. Keeps activations for backward. */
void frl_mlp_forward(frl_mlp_t *m, float *out, const float *in, int B);
/* Backprop dout[B, sizes[n]] through the LAST forward (same B); ACCUMULATES parameter
 * gradients into grads (same layout as the params); writes din[B, sizes[0]] when not NULL. */
void frl_mlp_backward(frl_mlp_t *m, float *grads, float *din, const float *dout, int B);

/* Internal (for the actor-critic learners in sac.c and td3.c, which run several losses through
 * one forward). An MLP is not thread-safe: every call below shares its workspace. */

/* The [max_batch, sizes[0]] buffer frl_mlp_forward copies its input into: a caller may build
 * the input there and pass it as `in`, which then skips the copy. */
float *frl__mlp_input(frl_mlp_t *m);
/* The [max_batch, sizes[n]] buffer holding the last forward's output (valid until the next
 * forward); passing it as `out` to frl_mlp_forward skips the copy. */
float *frl__mlp_output(frl_mlp_t *m);
/* Backward through the first `rows` rows of the last forward (rows <= its B) for dout[rows,
 * sizes[n]], where different row ranges may belong to different losses:
 *  - parameter gradients ACCUMULATE into grads from rows [0, grad_rows) only (grads NULL or
 *    grad_rows 0: none);
 *  - when din is not NULL it receives the input gradient of rows [din_row0, rows) restricted to
 *    input columns [din_col0, din_col0 + din_cols), as a dense [rows - din_row0, din_cols]
 *    matrix (e.g. dQ/da for the action columns of a critic's (obs, action) input).
 * Hidden-layer gradients are computed only for the rows something needs. */
void frl__mlp_backward_rows(frl_mlp_t *m, float *grads, int grad_rows, float *din, int din_row0,
                            int din_col0, int din_cols, const float *dout, int rows);

/* Polyak averaging (Lillicrap et al. 2016): target <- target + tau (source - target) over the
 * whole parameter block (tau = 1 copies exactly). The two MLPs must have the same shape. */
void frl__mlp_polyak(frl_mlp_t *target, const frl_mlp_t *source, float tau);



#endif
