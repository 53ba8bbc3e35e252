/* normalizer.h: running observation statistics (Welford/Chan parallel update in double) kept by
 * the learner over every ingested observation and shipped with each Params, so that actors and
 * learner normalize identically: x' = clip((x - mean) / max(std, min_std), -clip, +clip). */
#ifndef FRL_NORMALIZER_H
#define FRL_NORMALIZER_H

#include <stdint.h>

#include "nn.h"

#define FRL_NORM_MIN_STD 1e-2f
#define FRL_NORM_CLIP 10.0f

typedef struct frl_normalizer frl_normalizer_t;

frl_normalizer_t *frl_normalizer_new(int dim);
void frl_normalizer_destroy(frl_normalizer_t **self_p);
/* Adds B rows of x[B, dim]. */
void frl_normalizer_update(frl_normalizer_t *n, const float *x, int B);
uint64_t frl_normalizer_count(const frl_normalizer_t *n);
/* Current mean and std (std floored at FRL_NORM_MIN_STD); both [dim]. */
void frl_normalizer_export(const frl_normalizer_t *n, float *mean, float *std);
/* Restores counts and moments (e.g. from a checkpoint). */
void frl_normalizer_set(frl_normalizer_t *n, uint64_t count, const double *mean, const double *m2);
/* The dimension given to frl_normalizer_new. */
int frl_normalizer_dim(const frl_normalizer_t *n);
/* Appends the statistics to st (see nn.h) as prefix.count, prefix.mean and prefix.m2 (the sums
 * of squared deviations, >= 0), in double as they are kept; the parts point into n. */
void frl_normalizer_state(frl_normalizer_t *n, const char *prefix, frl_state_t *st);

/* Normalizes B rows of x into out (may alias) with the given mean/std. */
void frl_normalize(float *out, const float *x, const float *mean, const float *std, int B,
                   int dim);

#endif
