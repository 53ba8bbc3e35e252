/* qnet.c: the Q-network (MLP trunk + plain or dueling head) over one contiguous parameter
 * block, with a preallocated workspace so forward, backward and greedy action never allocate. */
#include "qnet.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "log.h"
#include "nn.h"

/* Bounds on a shape: generous for any robot task, small enough that size arithmetic cannot
 * overflow and a typo in a config fails with a message instead of a multi-gigabyte malloc. */
#define FRL_QNET_MAX_WIDTH 65536
#define FRL_QNET_MAX_BATCH 65536
#define FRL_QNET_MAX_FLOATS ((size_t)1 << 28) /* 1 GiB of float32 per block */

struct frl_qnet {
  frl_qnet_shape_t shape;
  int max_batch;
  int max_width;     /* widest trunk layer: size of the gradient ping-pong rows */
  size_t n_params;
  float *params;
  /* Offsets into params, in the order documented in qnet.h. */
  size_t w_off[FRL_QNET_MAX_LAYERS], b_off[FRL_QNET_MAX_LAYERS];
  size_t head_w, head_b;   /* plain head, or the advantage stream when dueling */
  size_t value_w, value_b; /* dueling only */
  /* Workspace, one allocation, carved into: */
  float *work;
  float *input;                       /* [max_batch, obs_dim] copy of the last forward input */
  float *act[FRL_QNET_MAX_LAYERS];    /* [max_batch, hidden[l]] post-ReLU activations */
  float *value, *adv;                 /* dueling streams [max_batch], [max_batch, A] */
  float *grad_a, *grad_b;             /* [max_batch, max_width] backward ping-pong */
  float *dvalue, *dadv;               /* dueling head gradients */
  float *q_row;                       /* [A] for argmax */
  float *q_scratch;                   /* [max_batch, A] for frl__qnet_scratch() users */
  int last_B;                         /* batch of the last forward, 0 before any */
};

/* Checks a shape against the bounds above; returns 0 or FRL_EDIM with a message naming the
 * field and its limit. */
static int shape_check(const frl_qnet_shape_t *s) {
  if (s->obs_dim < 1 || s->obs_dim > FRL_QNET_MAX_WIDTH) {
    frl_error("qnet: obs_dim %d out of range [1, %d]", s->obs_dim, FRL_QNET_MAX_WIDTH);
    return FRL_EDIM;
  }
  if (s->n_actions < 1 || s->n_actions > FRL_QNET_MAX_WIDTH) {
    frl_error("qnet: n_actions %d out of range [1, %d]", s->n_actions, FRL_QNET_MAX_WIDTH);
    return FRL_EDIM;
  }
  if (s->n_hidden < 1 || s->n_hidden > FRL_QNET_MAX_LAYERS) {
    frl_error("qnet: n_hidden %d out of range [1, %d]", s->n_hidden, FRL_QNET_MAX_LAYERS);
    return FRL_EDIM;
  }
  for (int l = 0; l < s->n_hidden; l++) {
    if (s->hidden[l] < 1 || s->hidden[l] > FRL_QNET_MAX_WIDTH) {
      frl_error("qnet: hidden[%d] = %d out of range [1, %d]", l, s->hidden[l],
                FRL_QNET_MAX_WIDTH);
      return FRL_EDIM;
    }
  }
  return 0;
}

size_t frl_qnet_param_count(const frl_qnet_shape_t *shape) {
  if (shape_check(shape) != 0) return 0;
  size_t n = 0, in = (size_t)shape->obs_dim;
  for (int l = 0; l < shape->n_hidden; l++) {
    size_t out = (size_t)shape->hidden[l];
    n += out * in + out;
    in = out;
  }
  size_t A = (size_t)shape->n_actions;
  if (shape->dueling) n += in + 1;
  n += A * in + A;
  return n;
}

frl_qnet_t *frl_qnet_new(const frl_qnet_shape_t *shape, int max_batch, frl_rng_t *rng) {
  if (shape_check(shape) != 0) return NULL;
  if (max_batch < 1 || max_batch > FRL_QNET_MAX_BATCH) {
    frl_error("qnet: max_batch %d out of range [1, %d]", max_batch, FRL_QNET_MAX_BATCH);
    return NULL;
  }
  const int L = shape->n_hidden, A = shape->n_actions;
  const size_t MB = (size_t)max_batch;
  int max_width = 0;
  for (int l = 0; l < L; l++) max_width = FRL_MAX(max_width, shape->hidden[l]);

  size_t n_params = frl_qnet_param_count(shape);
  size_t n_work = MB * (size_t)shape->obs_dim;
  for (int l = 0; l < L; l++) n_work += MB * (size_t)shape->hidden[l];
  if (shape->dueling) n_work += 2 * (MB + MB * (size_t)A); /* value, adv, dvalue, dadv */
  n_work += 2 * MB * (size_t)max_width + (size_t)A + MB * (size_t)A;
  if (n_params > FRL_QNET_MAX_FLOATS || n_work > FRL_QNET_MAX_FLOATS) {
    frl_error("qnet: %zu parameters and %zu workspace floats exceed the limit of %zu", n_params,
              n_work, FRL_QNET_MAX_FLOATS);
    return NULL;
  }

  frl_qnet_t *q = frl_xcalloc(1, sizeof *q);
  q->shape = *shape;
  for (int l = L; l < FRL_QNET_MAX_LAYERS; l++) q->shape.hidden[l] = 0;
  q->max_batch = max_batch;
  q->max_width = max_width;
  q->n_params = n_params;
  q->params = frl_xmalloc(n_params * sizeof *q->params);

  size_t off = 0, in = (size_t)shape->obs_dim;
  for (int l = 0; l < L; l++) {
    size_t out = (size_t)shape->hidden[l];
    q->w_off[l] = off;
    off += out * in;
    q->b_off[l] = off;
    off += out;
    frl_linear_init(q->params + q->w_off[l], q->params + q->b_off[l], (int)in, (int)out, rng);
    in = out;
  }
  if (shape->dueling) {
    q->value_w = off;
    off += in;
    q->value_b = off;
    off += 1;
    frl_linear_init(q->params + q->value_w, q->params + q->value_b, (int)in, 1, rng);
  }
  q->head_w = off;
  off += (size_t)A * in;
  q->head_b = off;
  off += (size_t)A;
  frl_linear_init(q->params + q->head_w, q->params + q->head_b, (int)in, A, rng);
  assert(off == n_params);

  /* Zeroed so valgrind never sees an uninitialized read, e.g. a backward before a forward. */
  q->work = frl_xcalloc(n_work, sizeof *q->work);
  float *p = q->work;
  q->input = p;
  p += MB * (size_t)shape->obs_dim;
  for (int l = 0; l < L; l++) {
    q->act[l] = p;
    p += MB * (size_t)shape->hidden[l];
  }
  if (shape->dueling) {
    q->value = p;
    p += MB;
    q->adv = p;
    p += MB * (size_t)A;
    q->dvalue = p;
    p += MB;
    q->dadv = p;
    p += MB * (size_t)A;
  }
  q->grad_a = p;
  p += MB * (size_t)max_width;
  q->grad_b = p;
  p += MB * (size_t)max_width;
  q->q_row = p;
  p += A;
  q->q_scratch = p;
  p += MB * (size_t)A;
  assert((size_t)(p - q->work) == n_work);
  return q;
}

void frl_qnet_destroy(frl_qnet_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_qnet_t *q = *self_p;
  free(q->work);
  free(q->params);
  free(q);
  *self_p = NULL;
}

const frl_qnet_shape_t *frl_qnet_shape(const frl_qnet_t *q) { return &q->shape; }
float *frl_qnet_params(frl_qnet_t *q) { return q->params; }
size_t frl_qnet_n_params(const frl_qnet_t *q) { return q->n_params; }
int frl_qnet_max_batch(const frl_qnet_t *q) { return q->max_batch; }
float *frl__qnet_scratch(frl_qnet_t *q) { return q->q_scratch; }

void frl_qnet_forward(frl_qnet_t *q, float *q_out, const float *obs, int B) {
  assert(B >= 1 && B <= q->max_batch);
  const frl_qnet_shape_t *s = &q->shape;
  const int A = s->n_actions;
  /* Keep our own copy of the input: the first layer's weight gradient needs it, and the
   * caller is free to reuse its buffer between forward and backward. */
  memcpy(q->input, obs, (size_t)B * (size_t)s->obs_dim * sizeof *obs);
  const float *in = q->input;
  int I = s->obs_dim;
  for (int l = 0; l < s->n_hidden; l++) {
    int O = s->hidden[l];
    frl_linear_forward(q->act[l], in, q->params + q->w_off[l], q->params + q->b_off[l], B, I, O);
    frl_relu_forward(q->act[l], q->act[l], B * O);
    in = q->act[l];
    I = O;
  }
  if (s->dueling) {
    frl_linear_forward(q->value, in, q->params + q->value_w, q->params + q->value_b, B, I, 1);
    frl_linear_forward(q->adv, in, q->params + q->head_w, q->params + q->head_b, B, I, A);
    frl_dueling_forward(q_out, q->value, q->adv, B, A);
  } else {
    frl_linear_forward(q_out, in, q->params + q->head_w, q->params + q->head_b, B, I, A);
  }
  q->last_B = B;
}

void frl_qnet_backward(frl_qnet_t *q, float *grads, const float *dq, int B) {
  assert(B >= 1 && B <= q->last_B);
  const frl_qnet_shape_t *s = &q->shape;
  const int A = s->n_actions, L = s->n_hidden;
  int H = s->hidden[L - 1];
  const float *h = q->act[L - 1];
  float *dh = q->grad_a, *dnext = q->grad_b;
  if (s->dueling) {
    frl_dueling_backward(q->dvalue, q->dadv, dq, B, A);
    frl_linear_backward(dh, grads + q->head_w, grads + q->head_b, q->dadv, h,
                        q->params + q->head_w, B, H, A);
    frl_linear_backward(NULL, grads + q->value_w, grads + q->value_b, q->dvalue, h,
                        q->params + q->value_w, B, H, 1);
    /* The value stream has one output, so its input gradient is the outer product
     * dvalue[B] wv[H]; add it to the advantage stream's instead of a second GEMM. */
    const float *wv = q->params + q->value_w;
    for (int r = 0; r < B; r++) {
      float d = q->dvalue[r];
      float *row = dh + (size_t)r * H;
      for (int i = 0; i < H; i++) row[i] += d * wv[i];
    }
  } else {
    frl_linear_backward(dh, grads + q->head_w, grads + q->head_b, dq, h, q->params + q->head_w,
                        B, H, A);
  }
  for (int l = L - 1; l >= 0; l--) {
    int O = s->hidden[l];
    int I = l > 0 ? s->hidden[l - 1] : s->obs_dim;
    const float *in = l > 0 ? q->act[l - 1] : q->input;
    frl_relu_backward(dh, dh, q->act[l], B * O);
    /* No gradient with respect to the observation is needed: skip the last din GEMM. */
    frl_linear_backward(l > 0 ? dnext : NULL, grads + q->w_off[l], grads + q->b_off[l], dh, in,
                        q->params + q->w_off[l], B, I, O);
    float *t = dh;
    dh = dnext;
    dnext = t;
  }
}

int frl_qnet_argmax(frl_qnet_t *q, const float *obs) {
  frl_qnet_forward(q, q->q_row, obs, 1);
  const float *v = q->q_row;
  int best = 0;
  /* Strict '>' keeps the lowest index on ties; any comparison with a NaN is false, so even a
   * broken network yields a valid action index. */
  for (int a = 1; a < q->shape.n_actions; a++)
    if (v[a] > v[best]) best = a;
  return best;
}
