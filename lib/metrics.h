/* metrics.h: a registry of metric families (counters, gauges, histograms, with labels) that
 * renders the Prometheus text exposition format, version 0.0.4. Processes fill it when scraped
 * from the figures they already keep, so the hot paths pay nothing for being observed. */
#ifndef FRL_METRICS_H
#define FRL_METRICS_H

#include <stddef.h>

/* The Content-Type of the rendered text. */
#define FRL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define FRL_METRICS_MAX_LABELS 4
#define FRL_METRICS_MAX_BUCKETS 32

typedef enum {
  FRL_METRIC_COUNTER,
  FRL_METRIC_GAUGE,
  FRL_METRIC_HISTOGRAM,
} frl_metric_type_t;

typedef struct frl_metrics frl_metrics_t;

/* A NULL-terminated list of label names or values, e.g. FRL_LABELS("actor-3"). */
#define FRL_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

frl_metrics_t *frl_metrics_new(void);
void frl_metrics_destroy(frl_metrics_t **self_p);

/* Registers a family. name must match [a-zA-Z_:][a-zA-Z0-9_:]* and be new; help is free text
 * (escaped on output); labels is NULL or a NULL-terminated list of at most
 * FRL_METRICS_MAX_LABELS names matching [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (and not
 * "le" for histograms). Histograms take n_buckets (1..FRL_METRICS_MAX_BUCKETS) finite, strictly
 * increasing upper bounds; the +Inf bucket is implied. A family without labels has its one
 * series from the start, at 0. Returns 0 with *id, or FRL_EUSAGE (nothing registered). */
int frl_metrics_family(frl_metrics_t *m, const char *name, frl_metric_type_t type,
                       const char *help, const char *const *labels, const double *buckets,
                       size_t n_buckets, int *id);
int frl_metrics_counter(frl_metrics_t *m, const char *name, const char *help,
                        const char *const *labels, int *id);
int frl_metrics_gauge(frl_metrics_t *m, const char *name, const char *help,
                      const char *const *labels, int *id);

/* Collect-style shorthand: registers an unlabelled counter or gauge and sets it to v. Returns
 * 0 or FRL_EUSAGE as frl_metrics_family and frl_metrics_set do. */
int frl_metrics_put(frl_metrics_t *m, const char *name, frl_metric_type_t type, const char *help,
                    double v);

/* Sets the series of family id with these label values (NULL-terminated, as many as the family
 * has names; NULL for none), creating it. Label values are any bytes: invalid UTF-8 is shown as
 * U+FFFD. Counters take finite values >= 0 (a process reports its own running total); gauges
 * any double, NaN and infinities included. Returns 0 or FRL_EUSAGE (nothing changed). */
int frl_metrics_set(frl_metrics_t *m, int id, const char *const *values, double v);
/* Adds delta (>= 0 for counters) to the series, creating it at 0 first. */
int frl_metrics_add(frl_metrics_t *m, int id, const char *const *values, double delta);
/* Counts one observation x in a histogram series (x may be any double; NaN counts only in
 * +Inf and makes the sum NaN, as Prometheus clients do). */
int frl_metrics_observe(frl_metrics_t *m, int id, const char *const *values, double x);
/* Removes every series of a labelled family (for example the actors that were seen), or resets
 * the one series of an unlabelled family to 0. Returns 0 or FRL_EUSAGE for an unknown id. */
int frl_metrics_clear(frl_metrics_t *m, int id);

/* Renders every family in registration order and its series in creation order. Returns 0 with
 * *text (heap, NUL-terminated, the caller frees it) and *len. */
int frl_metrics_render(const frl_metrics_t *m, char **text, size_t *len);

/* Formats a sample value as the exposition format writes it: integers without exponent up to
 * 2^53, otherwise the shortest decimal that reads back to the same double; NaN, +Inf, -Inf.
 * out must hold 32 bytes. */
void frl_metrics_format_value(double v, char *out, size_t n);

#endif
