/* metrics.c: the metric registry and its Prometheus text rendering (exposition format 0.0.4:
 * "# HELP", "# TYPE", one sample per line, label values escaped for backslash, double quote
 * and line feed, histograms as cumulative _bucket{le=...} plus _sum and _count). Series are
 * found by their label values through a small open-addressing hash per family. */
#include "metrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

typedef struct {
  char **values;     /* n_labels copies, as given */
  uint64_t hash;
  double value;      /* counters and gauges; the sum of a histogram */
  uint64_t count;    /* histogram observations */
  uint64_t *buckets; /* histogram: observations per bucket (not cumulative) */
} series_t;

typedef struct {
  char *name, *help;
  frl_metric_type_t type;
  char *labels[FRL_METRICS_MAX_LABELS];
  int n_labels;
  double bounds[FRL_METRICS_MAX_BUCKETS];
  size_t n_bounds;
  series_t *series;
  size_t n_series, cap_series;
  int32_t *index; /* series positions by hash; -1 empty; index_cap is a power of two */
  size_t index_cap;
} family_t;

struct frl_metrics {
  family_t *fams;
  int n_fams, cap_fams;
};

/* ---- a growable text buffer ---------------------------------------------------------- */

typedef struct {
  char *p;
  size_t len, cap;
} buf_t;

static void buf_put(buf_t *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    b->p = frl_xrealloc(b->p, cap);
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_str(buf_t *b, const char *s) { buf_put(b, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if the bytes there are not one
 * (overlong forms, surrogates and code points above U+10FFFF are invalid, RFC 3629). */
static size_t utf8_len(const unsigned char *s) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return (s[1] & 0xc0) == 0x80 ? 2 : 0;
  unsigned char lo = 0x80, hi = 0xbf;
  size_t n;
  if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if ((s[i] & 0xc0) != 0x80) return 0;
  return n;
}

/* Writes s escaped: backslash and line feed always, the double quote in label values; bytes
 * that are not UTF-8 become U+FFFD, since one invalid byte would fail the whole scrape. */
static void buf_escaped(buf_t *b, const char *s, bool quote) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    size_t n = utf8_len(p);
    if (n == 0) {
      buf_put(b, "\xef\xbf\xbd", 3);
      p++;
    } else if (*p == '\\') {
      buf_put(b, "\\\\", 2);
      p++;
    } else if (*p == '\n') {
      buf_put(b, "\\n", 2);
      p++;
    } else if (*p == '"' && quote) {
      buf_put(b, "\\\"", 2);
      p++;
    } else {
      buf_put(b, (const char *)p, n);
      p += n;
    }
  }
}

/* ---- registry ------------------------------------------------------------------------ */

frl_metrics_t *frl_metrics_new(void) { return frl_xcalloc(1, sizeof(frl_metrics_t)); }

static void free_series(family_t *f, series_t *s) {
  for (int i = 0; i < f->n_labels; i++) free(s->values[i]);
  free(s->values);
  free(s->buckets);
}

void frl_metrics_destroy(frl_metrics_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_metrics_t *m = *self_p;
  for (int i = 0; i < m->n_fams; i++) {
    family_t *f = &m->fams[i];
    for (size_t j = 0; j < f->n_series; j++) free_series(f, &f->series[j]);
    free(f->series);
    free(f->index);
    for (int j = 0; j < f->n_labels; j++) free(f->labels[j]);
    free(f->name);
    free(f->help);
  }
  free(m->fams);
  free(m);
  *self_p = NULL;
}

static bool valid_name(const char *s, bool colon) {
  if (!s || !*s) return false;
  for (const char *p = s; *p; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (colon && c == ':') || (p > s && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

static uint64_t hash_values(const char *const *values, int n) {
  uint64_t h = FRL_FNV_SEED;
  for (int i = 0; i < n; i++) h = frl_fnv1a64(values[i], strlen(values[i]) + 1, h);
  return h;
}

static void index_rebuild(family_t *f, size_t cap) {
  free(f->index);
  f->index = frl_xmalloc(cap * sizeof *f->index);
  f->index_cap = cap;
  for (size_t i = 0; i < cap; i++) f->index[i] = -1;
  for (size_t j = 0; j < f->n_series; j++) {
    size_t k = (size_t)f->series[j].hash & (cap - 1);
    while (f->index[k] >= 0) k = (k + 1) & (cap - 1);
    f->index[k] = (int32_t)j;
  }
}

static series_t *new_series(family_t *f, const char *const *values, uint64_t h) {
  if (f->n_series == f->cap_series) {
    f->cap_series = f->cap_series ? 2 * f->cap_series : 8;
    f->series = frl_xrealloc(f->series, f->cap_series * sizeof *f->series);
  }
  series_t *s = &f->series[f->n_series++];
  memset(s, 0, sizeof *s);
  s->hash = h;
  if (f->n_labels) {
    s->values = frl_xcalloc((size_t)f->n_labels, sizeof *s->values);
    for (int i = 0; i < f->n_labels; i++) s->values[i] = frl_xstrdup(values[i]);
  }
  if (f->type == FRL_METRIC_HISTOGRAM) s->buckets = frl_xcalloc(f->n_bounds, sizeof *s->buckets);
  /* Keep the index at most half full. */
  if (2 * f->n_series > f->index_cap) index_rebuild(f, f->index_cap ? 2 * f->index_cap : 16);
  else {
    size_t k = (size_t)h & (f->index_cap - 1);
    while (f->index[k] >= 0) k = (k + 1) & (f->index_cap - 1);
    f->index[k] = (int32_t)(f->n_series - 1);
  }
  return s;
}

/* Finds or creates the series of family id with these values; NULL for a bad id or label
 * count. */
static series_t *series_for(frl_metrics_t *m, int id, const char *const *values) {
  if (id < 0 || id >= m->n_fams) return NULL;
  family_t *f = &m->fams[id];
  int n = 0;
  if (values)
    while (n <= f->n_labels && values[n]) n++;
  if (n != f->n_labels) return NULL;
  uint64_t h = hash_values(values, n);
  if (f->index_cap) {
    for (size_t k = (size_t)h & (f->index_cap - 1); f->index[k] >= 0;
         k = (k + 1) & (f->index_cap - 1)) {
      series_t *s = &f->series[f->index[k]];
      if (s->hash != h) continue;
      int i = 0;
      while (i < n && strcmp(s->values[i], values[i]) == 0) i++;
      if (i == n) return s;
    }
  }
  return new_series(f, values, h);
}

int frl_metrics_family(frl_metrics_t *m, const char *name, frl_metric_type_t type,
                       const char *help, const char *const *labels, const double *buckets,
                       size_t n_buckets, int *id) {
  if (!valid_name(name, true)) return FRL_EUSAGE;
  if (type != FRL_METRIC_COUNTER && type != FRL_METRIC_GAUGE && type != FRL_METRIC_HISTOGRAM)
    return FRL_EUSAGE;
  for (int i = 0; i < m->n_fams; i++)
    if (strcmp(m->fams[i].name, name) == 0) return FRL_EUSAGE;
  int n_labels = 0;
  if (labels) {
    for (; labels[n_labels]; n_labels++) {
      const char *l = labels[n_labels];
      if (n_labels == FRL_METRICS_MAX_LABELS || !valid_name(l, false) ||
          strncmp(l, "__", 2) == 0 || (type == FRL_METRIC_HISTOGRAM && strcmp(l, "le") == 0))
        return FRL_EUSAGE;
      for (int j = 0; j < n_labels; j++)
        if (strcmp(labels[j], l) == 0) return FRL_EUSAGE;
    }
  }
  if (type == FRL_METRIC_HISTOGRAM) {
    if (!buckets || n_buckets == 0 || n_buckets > FRL_METRICS_MAX_BUCKETS) return FRL_EUSAGE;
    for (size_t i = 0; i < n_buckets; i++)
      if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) return FRL_EUSAGE;
  } else if (n_buckets != 0) {
    return FRL_EUSAGE;
  }
  if (m->n_fams == m->cap_fams) {
    m->cap_fams = m->cap_fams ? 2 * m->cap_fams : 16;
    m->fams = frl_xrealloc(m->fams, (size_t)m->cap_fams * sizeof *m->fams);
  }
  family_t *f = &m->fams[m->n_fams];
  memset(f, 0, sizeof *f);
  f->name = frl_xstrdup(name);
  f->help = frl_xstrdup(help ? help : "");
  f->type = type;
  f->n_labels = n_labels;
  for (int i = 0; i < n_labels; i++) f->labels[i] = frl_xstrdup(labels[i]);
  f->n_bounds = type == FRL_METRIC_HISTOGRAM ? n_buckets : 0;
  for (size_t i = 0; i < f->n_bounds; i++) f->bounds[i] = buckets[i];
  *id = m->n_fams++;
  /* An unlabelled family always has its one series, so it shows 0 before anything happens. */
  if (n_labels == 0) series_for(m, *id, NULL);
  return 0;
}

int frl_metrics_counter(frl_metrics_t *m, const char *name, const char *help,
                        const char *const *labels, int *id) {
  return frl_metrics_family(m, name, FRL_METRIC_COUNTER, help, labels, NULL, 0, id);
}

int frl_metrics_gauge(frl_metrics_t *m, const char *name, const char *help,
                      const char *const *labels, int *id) {
  return frl_metrics_family(m, name, FRL_METRIC_GAUGE, help, labels, NULL, 0, id);
}

int frl_metrics_put(frl_metrics_t *m, const char *name, frl_metric_type_t type, const char *help,
                    double v) {
  if (type == FRL_METRIC_HISTOGRAM) return FRL_EUSAGE;
  if (type == FRL_METRIC_COUNTER && !(isfinite(v) && v >= 0)) return FRL_EUSAGE;
  int id;
  int rc = frl_metrics_family(m, name, type, help, NULL, NULL, 0, &id);
  if (rc != 0) return rc;
  return frl_metrics_set(m, id, NULL, v);
}

static bool valid_value(const frl_metrics_t *m, int id, double v) {
  if (id < 0 || id >= m->n_fams) return false;
  if (m->fams[id].type == FRL_METRIC_COUNTER) return isfinite(v) && v >= 0;
  return m->fams[id].type == FRL_METRIC_GAUGE;
}

int frl_metrics_set(frl_metrics_t *m, int id, const char *const *values, double v) {
  if (!valid_value(m, id, v)) return FRL_EUSAGE;
  series_t *s = series_for(m, id, values);
  if (!s) return FRL_EUSAGE;
  s->value = v;
  return 0;
}

int frl_metrics_add(frl_metrics_t *m, int id, const char *const *values, double delta) {
  if (!valid_value(m, id, delta)) return FRL_EUSAGE;
  series_t *s = series_for(m, id, values);
  if (!s) return FRL_EUSAGE;
  s->value += delta;
  return 0;
}

int frl_metrics_observe(frl_metrics_t *m, int id, const char *const *values, double x) {
  if (id < 0 || id >= m->n_fams || m->fams[id].type != FRL_METRIC_HISTOGRAM) return FRL_EUSAGE;
  series_t *s = series_for(m, id, values);
  if (!s) return FRL_EUSAGE;
  const family_t *f = &m->fams[id];
  for (size_t i = 0; i < f->n_bounds; i++)
    if (x <= f->bounds[i]) {
      s->buckets[i]++;
      break;
    }
  s->count++;
  s->value += x;
  return 0;
}

int frl_metrics_clear(frl_metrics_t *m, int id) {
  if (id < 0 || id >= m->n_fams) return FRL_EUSAGE;
  family_t *f = &m->fams[id];
  if (f->n_labels == 0) {
    series_t *s = &f->series[0];
    s->value = 0;
    s->count = 0;
    if (s->buckets) memset(s->buckets, 0, f->n_bounds * sizeof *s->buckets);
    return 0;
  }
  for (size_t j = 0; j < f->n_series; j++) free_series(f, &f->series[j]);
  f->n_series = 0;
  for (size_t i = 0; i < f->index_cap; i++) f->index[i] = -1;
  return 0;
}

/* ---- rendering ----------------------------------------------------------------------- */

void frl_metrics_format_value(double v, char *out, size_t n) {
  if (isnan(v)) {
    snprintf(out, n, "NaN");
  } else if (isinf(v)) {
    snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
  } else if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
    snprintf(out, n, "%.0f", v);
  } else {
    /* The shortest of 15, 16 or 17 significant digits that reads back exactly. */
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(out, n, "%.*g", prec, v);
      if (strtod(out, NULL) == v) break;
    }
  }
}

/* Writes name{l1="v1",...[,le="b"]} (no braces when there is nothing inside). */
static void put_labels(buf_t *b, const family_t *f, const series_t *s, const char *le) {
  if (f->n_labels == 0 && !le) return;
  buf_put(b, "{", 1);
  for (int i = 0; i < f->n_labels; i++) {
    if (i) buf_put(b, ",", 1);
    buf_str(b, f->labels[i]);
    buf_put(b, "=\"", 2);
    buf_escaped(b, s->values[i], true);
    buf_put(b, "\"", 1);
  }
  if (le) {
    if (f->n_labels) buf_put(b, ",", 1);
    buf_put(b, "le=\"", 4);
    buf_str(b, le);
    buf_put(b, "\"", 1);
  }
  buf_put(b, "}", 1);
}

static void put_sample(buf_t *b, const family_t *f, const series_t *s, const char *suffix,
                       const char *le, double v) {
  char num[32];
  buf_str(b, f->name);
  buf_str(b, suffix);
  put_labels(b, f, s, le);
  frl_metrics_format_value(v, num, sizeof num);
  buf_put(b, " ", 1);
  buf_str(b, num);
  buf_put(b, "\n", 1);
}

int frl_metrics_render(const frl_metrics_t *m, char **text, size_t *len) {
  static const char *type_names[] = {"counter", "gauge", "histogram"};
  buf_t b = {0};
  buf_put(&b, "", 0);
  for (int i = 0; i < m->n_fams; i++) {
    const family_t *f = &m->fams[i];
    if (f->help[0]) {
      buf_str(&b, "# HELP ");
      buf_str(&b, f->name);
      buf_put(&b, " ", 1);
      buf_escaped(&b, f->help, false);
      buf_put(&b, "\n", 1);
    }
    buf_str(&b, "# TYPE ");
    buf_str(&b, f->name);
    buf_put(&b, " ", 1);
    buf_str(&b, type_names[f->type]);
    buf_put(&b, "\n", 1);
    for (size_t j = 0; j < f->n_series; j++) {
      const series_t *s = &f->series[j];
      if (f->type != FRL_METRIC_HISTOGRAM) {
        put_sample(&b, f, s, "", NULL, s->value);
        continue;
      }
      uint64_t cumulative = 0;
      char le[32];
      for (size_t k = 0; k < f->n_bounds; k++) {
        cumulative += s->buckets[k];
        frl_metrics_format_value(f->bounds[k], le, sizeof le);
        put_sample(&b, f, s, "_bucket", le, (double)cumulative);
      }
      put_sample(&b, f, s, "_bucket", "+Inf", (double)s->count);
      put_sample(&b, f, s, "_sum", NULL, s->value);
      put_sample(&b, f, s, "_count", NULL, (double)s->count);
    }
  }
  *text = b.p;
  *len = b.len;
  return 0;
}
