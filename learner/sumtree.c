/* sumtree.c: array-backed sum-tree and min-tree for proportional prioritized sampling
 * (Schaul et al. 2016, appendix B.2.1), with a fan-out of 8 instead of 2.
 *
 * Layout: level 0 holds the slot priorities, padded with zeros to a multiple of 8; entry e of
 * level l+1 is the sum of the group of 8 entries 8e..8e+7 of level l; the top level is a single
 * group of 8 whose sum is the total. Each group is one 64-byte cache line (the levels are
 * 64-byte aligned), so a root-to-leaf walk over 1e6 slots touches 7 cache lines instead of
 * the 20 of a binary tree, which matters because the lower levels never stay in cache
 * (measured: finding 256 slots among 1e6 took ~32 us with a binary tree, ~15 us with this one
 * and find_batch's prefetching).
 *
 * Rounding: every set() recomputes each ancestor as the sum of its group (group_prefix)
 * instead of adding a delta, so error never accumulates over millions of updates, a parent is
 * exactly the sum find() recomputes while walking the group, and a parent is > 0 iff one of
 * its children is. find() relies on that to never return an empty slot (see pick()).
 *
 * The min-tree has the same shape, with +inf for empty slots, so that it yields the smallest
 * non-zero priority: the importance-weight normaliser max_j w_j = (N p_min / total)^-beta. */
#include "sumtree.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define FANOUT 8
#define MAX_LEVELS 12 /* 8^11 > 2^32 slots */

struct frl_sumtree {
  uint32_t capacity; /* slots the caller asked for */
  uint32_t levels;   /* level 0 = slots; level levels-1 = the top group */
  double total;      /* sum of the top group */
  double min_all;    /* min of the top group of the min-tree (+inf when empty) */
  double *sum[MAX_LEVELS];
  double *min[MAX_LEVELS];
  double *sum_block, *min_block;
};

static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

frl_sumtree_t *frl_sumtree_new(uint32_t capacity) {
  assert(capacity > 0 && capacity <= (1u << 31));
  frl_sumtree_t *t = frl_xcalloc(1, sizeof *t);
  t->capacity = capacity;
  size_t offset[MAX_LEVELS], entries = 0;
  size_t w = round_up(capacity, FANOUT);
  uint32_t levels = 0;
  for (;;) {
    offset[levels] = entries;
    entries += w;
    levels++;
    if (w == FANOUT) break;
    w = round_up(w / FANOUT, FANOUT);
  }
  t->levels = levels;
  size_t bytes = entries * sizeof(double);
  t->sum_block = aligned_alloc(64, bytes);
  t->min_block = aligned_alloc(64, bytes);
  if (!t->sum_block || !t->min_block) { /* as frl_xmalloc: not recoverable here */
    fprintf(stderr, "fleetrl: out of memory allocating a sum-tree of %zu bytes\n", 2 * bytes);
    abort();
  }
  memset(t->sum_block, 0, bytes);
  for (size_t i = 0; i < entries; i++) t->min_block[i] = INFINITY;
  for (uint32_t l = 0; l < levels; l++) {
    t->sum[l] = t->sum_block + offset[l];
    t->min[l] = t->min_block + offset[l];
  }
  t->total = 0.0;
  t->min_all = INFINITY;
  return t;
}

void frl_sumtree_destroy(frl_sumtree_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_sumtree_t *t = *self_p;
  free(t->sum_block);
  free(t->min_block);
  free(t);
  *self_p = NULL;
}

uint32_t frl_sumtree_capacity(const frl_sumtree_t *t) { return t->capacity; }

/* Inclusive prefix sums of a group, left to right; p[7] is the group's sum, stored in the
 * parent, so find() and set() agree exactly. Written out: compilers keep p in registers only
 * when nothing is left to unroll. */
static inline void group_prefix(const double *g, double *p) {
  p[0] = g[0];
  p[1] = p[0] + g[1];
  p[2] = p[1] + g[2];
  p[3] = p[2] + g[3];
  p[4] = p[3] + g[4];
  p[5] = p[4] + g[5];
  p[6] = p[5] + g[6];
  p[7] = p[6] + g[7];
}

static double group_sum(const double *g) {
  double p[FANOUT];
  group_prefix(g, p);
  return p[FANOUT - 1];
}

/* Pairwise, and with comparisons rather than fmin(), which is a library call without
 * -ffast-math; no NaN ever reaches the tree. */
static double group_min(const double *g) {
  double a = g[0] < g[1] ? g[0] : g[1], b = g[2] < g[3] ? g[2] : g[3];
  double c = g[4] < g[5] ? g[4] : g[5], d = g[6] < g[7] ? g[6] : g[7];
  a = a < b ? a : b;
  c = c < d ? c : d;
  return a < c ? a : c;
}

void frl_sumtree_set(frl_sumtree_t *t, uint32_t slot, double priority) {
  assert(slot < t->capacity);
  assert(isfinite(priority) && priority >= 0.0);
  t->sum[0][slot] = priority;
  t->min[0][slot] = priority > 0.0 ? priority : INFINITY;
  size_t e = slot;
  for (uint32_t l = 1; l < t->levels; l++) {
    e /= FANOUT;
    t->sum[l][e] = group_sum(t->sum[l - 1] + e * FANOUT);
    t->min[l][e] = group_min(t->min[l - 1] + e * FANOUT);
  }
  t->total = group_sum(t->sum[t->levels - 1]);
  t->min_all = group_min(t->min[t->levels - 1]);
}

double frl_sumtree_get(const frl_sumtree_t *t, uint32_t slot) {
  assert(slot < t->capacity);
  return t->sum[0][slot];
}

double frl_sumtree_total(const frl_sumtree_t *t) { return t->total; }

double frl_sumtree_min(const frl_sumtree_t *t) { return isinf(t->min_all) ? 0.0 : t->min_all; }

/* Picks the child of group g whose prefix-sum interval holds *mass and leaves the mass
 * relative to that child. The count of prefix sums <= mass is the child, computed without
 * branches (which child a draw lands in is a coin flip no predictor learns). A chosen child
 * always has a sum > 0, because its prefix sum strictly grew. Only when rounding pushed the
 * mass to or past the group's sum (c == FANOUT) does the slow path take the last non-empty
 * child; the group's sum is > 0 since we only ever descend into children > 0, so one exists. */
static inline uint32_t pick(const double *g, double *mass) {
  const double m = *mass;
  double p[FANOUT];
  group_prefix(g, p);
  uint32_t c = (uint32_t)(p[0] <= m) + (uint32_t)(p[1] <= m) + (uint32_t)(p[2] <= m) +
               (uint32_t)(p[3] <= m) + (uint32_t)(p[4] <= m) + (uint32_t)(p[5] <= m) +
               (uint32_t)(p[6] <= m) + (uint32_t)(p[7] <= m);
  if (c == FANOUT) {
    c = FANOUT - 1;
    while (c > 0 && !(g[c] > 0.0)) c--;
  }
  *mass = c > 0 ? m - p[c - 1] : m;
  return c;
}

uint32_t frl_sumtree_find(const frl_sumtree_t *t, double mass) {
  assert(t->total > 0.0);
  size_t e = 0;
  for (uint32_t l = t->levels; l-- > 0;) e = e * FANOUT + pick(t->sum[l] + e * FANOUT, &mass);
  return (uint32_t)e;
}

/* Same walk as frl_sumtree_find, but level by level over all n masses: at each level the n
 * group loads are independent of each other, and each group of the next level is prefetched
 * as soon as it is known, so the cache misses of all n walks overlap instead of forming one
 * root-to-leaf chain after another (about 1.6x faster at 1e6 slots). mass is overwritten with
 * residuals. */
void frl_sumtree_find_batch(const frl_sumtree_t *t, double *mass, uint32_t *slot, uint32_t n) {
  assert(t->total > 0.0);
  for (uint32_t j = 0; j < n; j++) slot[j] = 0;
  for (uint32_t l = t->levels; l-- > 0;) {
    const double *level = t->sum[l];
    const double *below = l > 0 ? t->sum[l - 1] : NULL;
    for (uint32_t j = 0; j < n; j++) {
      size_t e = slot[j];
      e = e * FANOUT + pick(level + e * FANOUT, &mass[j]);
      slot[j] = (uint32_t)e;
      if (below) __builtin_prefetch(below + e * FANOUT);
    }
  }
}
