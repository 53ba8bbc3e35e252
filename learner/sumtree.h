/* sumtree.h: a sum-tree and min-tree over a fixed number of slots, for proportional
 * prioritized sampling (Schaul et al. 2016, appendix B.2.1). O(log n) update and sample. */
#ifndef FRL_SUMTREE_H
#define FRL_SUMTREE_H

#include <stddef.h>
#include <stdint.h>

typedef struct frl_sumtree frl_sumtree_t;

/* capacity slots, all with priority 0. */
frl_sumtree_t *frl_sumtree_new(uint32_t capacity);
void frl_sumtree_destroy(frl_sumtree_t **self_p);
uint32_t frl_sumtree_capacity(const frl_sumtree_t *t);
/* Sets slot's priority (>= 0, finite; 0 removes it from sampling). */
void frl_sumtree_set(frl_sumtree_t *t, uint32_t slot, double priority);
double frl_sumtree_get(const frl_sumtree_t *t, uint32_t slot);
double frl_sumtree_total(const frl_sumtree_t *t);
/* Smallest non-zero priority; 0 when the tree is empty. */
double frl_sumtree_min(const frl_sumtree_t *t);
/* The slot whose prefix-sum interval contains mass in [0, total). Only slots with priority
 * > 0 are ever returned. Undefined when total == 0. */
uint32_t frl_sumtree_find(const frl_sumtree_t *t, double mass);
/* frl_sumtree_find for n masses at once (slot[j] for mass[j]); mass is used as scratch and
 * left holding residuals. Faster than n single finds on large trees (overlapped cache misses).
 * Same preconditions. */
void frl_sumtree_find_batch(const frl_sumtree_t *t, double *mass, uint32_t *slot, uint32_t n);

#endif
