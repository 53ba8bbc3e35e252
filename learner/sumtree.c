/* sumtree.c: array-backed sum-tree and min-tree for proportional prioritized sampling
 * (Schaul et al. 2016, appendix B.2.1).
 *
 * Layout: the capacity is rounded up to a power of two P; node 1 is the root, node i has
 * children 2i and 2i+1, and leaves P..2P-1 hold the slot priorities (slots >= capacity stay 0).
 * Sums are doubles. Every set() recomputes each ancestor as the sum of its two children
 * instead of adding a delta, so rounding error never accumulates over millions of updates: a
 * node is always exactly fl(left + right), and a node is > 0 iff one of its children is > 0.
 * find() relies on that to never land on an empty slot (see there). The min-tree stores +inf
 * for empty slots so that it yields the smallest non-zero priority, which is what the
 * importance-weight normaliser max_j w_j = (N * p_min / total)^-beta needs. */
#include "sumtree.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

#include "common.h"

struct frl_sumtree {
  uint32_t capacity; /* slots the caller asked for */
  uint32_t leaves;   /* P: capacity rounded up to a power of two */
  double *sum;       /* [2P], sum[1] is the total */
  double *min;       /* [2P], +inf for empty subtrees */
};

frl_sumtree_t *frl_sumtree_new(uint32_t capacity) {
  assert(capacity > 0 && capacity <= (1u << 31));
  frl_sumtree_t *t = frl_xcalloc(1, sizeof *t);
  uint32_t leaves = 1;
  while (leaves < capacity) leaves <<= 1;
  t->capacity = capacity;
  t->leaves = leaves;
  t->sum = frl_xcalloc(2 * (size_t)leaves, sizeof *t->sum);
  t->min = frl_xmalloc(2 * (size_t)leaves * sizeof *t->min);
  for (size_t i = 0; i < 2 * (size_t)leaves; i++) t->min[i] = INFINITY;
  return t;
}

void frl_sumtree_destroy(frl_sumtree_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_sumtree_t *t = *self_p;
  free(t->sum);
  free(t->min);
  free(t);
  *self_p = NULL;
}

uint32_t frl_sumtree_capacity(const frl_sumtree_t *t) { return t->capacity; }

void frl_sumtree_set(frl_sumtree_t *t, uint32_t slot, double priority) {
  assert(slot < t->capacity);
  assert(isfinite(priority) && priority >= 0.0);
  size_t i = (size_t)t->leaves + slot;
  t->sum[i] = priority;
  t->min[i] = priority > 0.0 ? priority : INFINITY;
  for (i >>= 1; i >= 1; i >>= 1) {
    t->sum[i] = t->sum[2 * i] + t->sum[2 * i + 1];
    t->min[i] = fmin(t->min[2 * i], t->min[2 * i + 1]);
  }
}

double frl_sumtree_get(const frl_sumtree_t *t, uint32_t slot) {
  assert(slot < t->capacity);
  return t->sum[(size_t)t->leaves + slot];
}

double frl_sumtree_total(const frl_sumtree_t *t) { return t->sum[1]; }

double frl_sumtree_min(const frl_sumtree_t *t) {
  double m = t->min[1];
  return isinf(m) ? 0.0 : m;
}

/* Descends from the root: go left when mass falls inside the left subtree's sum, else
 * subtract it and go right. Rounding can make mass >= the node's sum (e.g. a caller's
 * mass = total - ulp after subtraction of left sums that were rounded down) and so steer
 * towards a right subtree whose sum is 0. The guard takes the left child whenever the right
 * one is empty; because every internal node > 0 has a child > 0, the walk then always ends
 * on a leaf with priority > 0. */
uint32_t frl_sumtree_find(const frl_sumtree_t *t, double mass) {
  assert(t->sum[1] > 0.0);
  const double *sum = t->sum;
  size_t i = 1;
  while (i < t->leaves) {
    size_t l = 2 * i;
    double left = sum[l];
    if (mass < left || sum[l + 1] <= 0.0) {
      i = l;
    } else {
      mass -= left;
      i = l + 1;
    }
  }
  return (uint32_t)(i - t->leaves);
}

/* Same walk as frl_sumtree_find, but level by level over all n masses: at each level the n
 * loads are independent of each other, so the CPU overlaps their cache misses instead of
 * waiting for one root-to-leaf chain at a time (the lower levels of a 1e6-slot tree do not
 * fit in cache). mass is overwritten with the residual masses. */
void frl_sumtree_find_batch(const frl_sumtree_t *t, double *mass, uint32_t *slot, uint32_t n) {
  assert(t->sum[1] > 0.0);
  const double *sum = t->sum;
  for (uint32_t j = 0; j < n; j++) slot[j] = 1;
  for (uint32_t width = 1; width < t->leaves; width <<= 1) {
    for (uint32_t j = 0; j < n; j++) {
      size_t l = 2 * (size_t)slot[j];
      double left = sum[l];
      if (mass[j] < left || sum[l + 1] <= 0.0) {
        slot[j] = (uint32_t)l;
      } else {
        mass[j] -= left;
        slot[j] = (uint32_t)(l + 1);
      }
    }
  }
  for (uint32_t j = 0; j < n; j++) slot[j] -= t->leaves;
}
