/* plot.c: SVG written directly (no plotting library): axes with rounded ticks, a band, lines
 * and bars. Reads the store read-only, so it is safe while the run trains. */
#include "plot.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

#define W 640.0
#define H 400.0
#define ML 70.0 /* margins: left, right, top, bottom */
#define MR 20.0
#define MT 40.0
#define MB 50.0

typedef struct {
  double *x, *y, *s; /* s: std (evaluations) */
  int n, cap;
} series_t;

static void push(series_t *v, double x, double y, double s) {
  if (v->n == v->cap) {
    v->cap = v->cap ? 2 * v->cap : 64;
    v->x = frl_xrealloc(v->x, sizeof(double) * (size_t)v->cap);
    v->y = frl_xrealloc(v->y, sizeof(double) * (size_t)v->cap);
    v->s = frl_xrealloc(v->s, sizeof(double) * (size_t)v->cap);
  }
  v->x[v->n] = x;
  v->y[v->n] = y;
  v->s[v->n] = s;
  v->n++;
}

static void series_free(series_t *v) {
  free(v->x);
  free(v->y);
  free(v->s);
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about n ticks over span. */
static double tick_step(double span, int n) {
  double raw = span / n, p = pow(10, floor(log10(raw))), f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

typedef struct {
  double x0, x1, y0, y1;
} frame_t;

static double px(const frame_t *f, double x) { return ML + (x - f->x0) / (f->x1 - f->x0) * (W - ML - MR); }
static double py(const frame_t *f, double y) { return H - MB - (y - f->y0) / (f->y1 - f->y0) * (H - MT - MB); }

static void axes(FILE *o, const frame_t *f, const char *title, const char *xl, const char *yl) {
  fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
             "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
             "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
          W, H, W, H);
  fprintf(o, "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n",
          W / 2, title);
  double sx = tick_step(f->x1 - f->x0, 6), sy = tick_step(f->y1 - f->y0, 5);
  for (double t = ceil(f->x0 / sx) * sx; t <= f->x1 + 1e-9 * sx; t += sx)
    fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
            px(f, t), MT, px(f, t), H - MB, px(f, t), H - MB + 16, t);
  for (double t = ceil(f->y0 / sy) * sy; t <= f->y1 + 1e-9 * sy; t += sy)
    fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
            ML, py(f, t), W - MR, py(f, t), ML - 6, py(f, t) + 4, t);
  fprintf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
             "stroke=\"black\"/>\n", ML, MT, W - ML - MR, H - MT - MB);
  fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", (ML + W - MR) / 2,
          H - 12, xl);
  fprintf(o, "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
          (MT + H - MB) / 2, yl);
}

static int query(sqlite3 *db, const char *sql, series_t *out) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return FRL_ESQL;
  while (sqlite3_step(st) == SQLITE_ROW)
    push(out, sqlite3_column_double(st, 0), sqlite3_column_double(st, 1),
         sqlite3_column_count(st) > 2 ? sqlite3_column_double(st, 2) : 0);
  sqlite3_finalize(st);
  return 0;
}

static void extend(frame_t *f, double x, double y) {
  if (x < f->x0) f->x0 = x;
  if (x > f->x1) f->x1 = x;
  if (y < f->y0) f->y0 = y;
  if (y > f->y1) f->y1 = y;
}

static void pad(frame_t *f) {
  if (f->x1 <= f->x0) f->x1 = f->x0 + 1;
  double dy = f->y1 - f->y0;
  if (dy <= 0) dy = fabs(f->y0) > 0 ? fabs(f->y0) : 1;
  f->y0 -= 0.05 * dy;
  f->y1 += 0.05 * dy;
}

static int learning_curve(sqlite3 *db, const char *path) {
  series_t ev = {0}, ep = {0};
  /* Episodes record when they ended, not at which env step: each is placed at the env steps of
   * the learner's last progress row before it (rows come every 5 s, hence the steps in the
   * orange line). */
  int rc = query(db, "SELECT env_steps, mean_return, std_return FROM evaluations ORDER BY at", &ev);
  if (rc == 0)
    rc = query(db, "SELECT (SELECT t.env_steps FROM training t WHERE t.at <= e.ended_at ORDER BY "
                   "t.at DESC LIMIT 1), avg(e.episode_return) OVER (ORDER BY e.ended_at ROWS "
                   "BETWEEN 99 PRECEDING AND CURRENT ROW) FROM episodes e ORDER BY e.ended_at",
               &ep);
  FILE *o = rc == 0 ? fopen(path, "w") : NULL;
  if (!o) {
    series_free(&ev);
    series_free(&ep);
    return rc ? rc : -errno;
  }
  frame_t f = {INFINITY, -INFINITY, INFINITY, -INFINITY};
  for (int i = 0; i < ev.n; i++) {
    extend(&f, ev.x[i], ev.y[i] - ev.s[i]);
    extend(&f, ev.x[i], ev.y[i] + ev.s[i]);
  }
  for (int i = 0; i < ep.n; i++)
    if (ep.x[i] > 0) extend(&f, ep.x[i], ep.y[i]);
  if (!isfinite(f.x0)) f = (frame_t){0, 1, 0, 1};
  if (f.x0 > 0) f.x0 = 0;
  pad(&f);
  axes(o, &f, "Learning curve", "environment steps", "return");
  if (ev.n > 0) {
    fprintf(o, "<polygon class=\"eval-band\" fill=\"#1f77b4\" fill-opacity=\"0.2\" points=\"");
    for (int i = 0; i < ev.n; i++) fprintf(o, "%.1f,%.1f ", px(&f, ev.x[i]), py(&f, ev.y[i] + ev.s[i]));
    for (int i = ev.n - 1; i >= 0; i--) fprintf(o, "%.1f,%.1f ", px(&f, ev.x[i]), py(&f, ev.y[i] - ev.s[i]));
    fprintf(o, "\"/>\n<polyline class=\"eval\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"");
    for (int i = 0; i < ev.n; i++) fprintf(o, "%.1f,%.1f ", px(&f, ev.x[i]), py(&f, ev.y[i]));
    fprintf(o, "\"/>\n");
  }
  int shown = 0;
  for (int i = 0; i < ep.n; i++) shown += ep.x[i] > 0;
  if (shown > 1) {
    fprintf(o, "<polyline class=\"train\" fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"1.5\" points=\"");
    for (int i = 0; i < ep.n; i++)
      if (ep.x[i] > 0) fprintf(o, "%.1f,%.1f ", px(&f, ep.x[i]), py(&f, ep.y[i]));
    fprintf(o, "\"/>\n");
  }
  fprintf(o, "<g font-size=\"11\"><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
             "stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"%.0f\" y=\"%.0f\">greedy evaluation "
             "(mean ± std)</text><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
             "stroke=\"#ff7f0e\" stroke-width=\"1.5\"/><text x=\"%.0f\" y=\"%.0f\">training "
             "episodes (mean of last 100)</text></g>\n",
          ML + 10, MT + 14, ML + 30, MT + 14, ML + 36, MT + 18, ML + 10, MT + 30, ML + 30, MT + 30,
          ML + 36, MT + 34);
  fprintf(o, "</svg>\n");
  int err = ferror(o);
  fclose(o);
  series_free(&ev);
  series_free(&ep);
  return err ? -EIO : 0;
}

static int priority_histogram(sqlite3 *db, const char *path, int bins) {
  series_t p = {0};
  int rc = query(db, "SELECT priority, 0 FROM items WHERE priority IS NOT NULL", &p);
  FILE *o = rc == 0 ? fopen(path, "w") : NULL;
  if (!o) {
    series_free(&p);
    return rc ? rc : -errno;
  }
  double lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < p.n; i++) {
    if (p.x[i] < lo) lo = p.x[i];
    if (p.x[i] > hi) hi = p.x[i];
  }
  if (p.n == 0) lo = 0, hi = 1;
  if (hi <= lo) hi = lo + 1;
  int *count = frl_xcalloc((size_t)bins, sizeof(int));
  int top = 1;
  for (int i = 0; i < p.n; i++) {
    int b = (int)((p.x[i] - lo) / (hi - lo) * bins);
    if (b >= bins) b = bins - 1;
    if (++count[b] > top) top = count[b];
  }
  frame_t f = {lo, hi, 0, top * 1.05};
  char title[96];
  snprintf(title, sizeof title, "Replay priorities (%d items)", p.n);
  axes(o, &f, title, "priority (|δ| + ε)^α", "items");
  for (int b = 0; b < bins; b++) {
    double x0 = lo + (hi - lo) * b / bins, x1 = lo + (hi - lo) * (b + 1) / bins;
    fprintf(o, "<rect class=\"bin\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
               "fill=\"#2ca02c\" data-count=\"%d\"/>\n",
            px(&f, x0), py(&f, count[b]), px(&f, x1) - px(&f, x0) - 0.5,
            py(&f, 0) - py(&f, count[b]), count[b]);
  }
  fprintf(o, "</svg>\n");
  int err = ferror(o);
  fclose(o);
  free(count);
  series_free(&p);
  return err ? -EIO : 0;
}

int frl_plot_main(int argc, char **argv) {
  const char *run = NULL, *out = NULL;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (argv[i][0] != '-' && !run) run = argv[i];
    else {
      fprintf(stderr, "usage: fleetrl plot RUN_FOLDER [--out DIR]  (writes learning-curve.svg and "
                      "priority-histogram.svg)\n");
      return 2;
    }
  }
  if (!run) {
    fprintf(stderr, "usage: fleetrl plot RUN_FOLDER [--out DIR]\n");
    return 2;
  }
  char db_path[1100], uri[1200], dir[1100], a[1200], b[1200];
  snprintf(db_path, sizeof db_path, "%s/replay.db", run);
  snprintf(dir, sizeof dir, "%s", out ? out : run);
  struct stat sb;
  if (stat(db_path, &sb) != 0) {
    fprintf(stderr, "fleetrl plot: %s: %s\n", db_path, strerror(errno));
    return 1;
  }
  if (frl_mkdir_p(dir) != 0) {
    fprintf(stderr, "fleetrl plot: --out: cannot create %s\n", dir);
    return 1;
  }
  snprintf(uri, sizeof uri, "file:%s?mode=ro", db_path);
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
    fprintf(stderr, "fleetrl plot: cannot open %s\n", db_path);
    sqlite3_close(db);
    return 1;
  }
  sqlite3_busy_timeout(db, 5000);
  snprintf(a, sizeof a, "%s/learning-curve.svg", dir);
  snprintf(b, sizeof b, "%s/priority-histogram.svg", dir);
  int rc = learning_curve(db, a);
  if (rc == 0) rc = priority_histogram(db, b, 40);
  if (rc != 0) fprintf(stderr, "fleetrl plot: %s (%s)\n", frl_strerror(rc), sqlite3_errmsg(db));
  else printf("wrote %s\nwrote %s\n", a, b);
  sqlite3_close(db);
  return rc == 0 ? 0 : 1;
}
