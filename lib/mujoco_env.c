/* mujoco_env.c: MuJoCo environments driven by task files (parser, model loading and name
 * resolution, reset, stepping, reward terms, termination), and the built-in tasks registered in
 * env.c, each a task file in the model folder (see mujoco_env.h for the format). */
#include "mujoco_env.h"

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "env_impl.h"
#include "log.h"

#define MJ_DEFAULT_DIR "/usr/local/share/fleetrl/models"
#define MJ_FILE_MAX (1 << 20)   /* bytes in a task file */
#define MJ_TOKENS_MAX 32        /* words on one line */
#define MJ_NAME_MAX 64          /* characters in a body, site or sensor name, with the NUL */
#define MJ_OBS_MAX 64           /* obs lines */
#define MJ_TERMS_MAX 16         /* reward lines */
#define MJ_RULES_MAX 8          /* terminate lines */
#define MJ_RESETS_MAX 32        /* init_qpos, noise and init_disk lines */
#define MJ_FRAME_SKIP_MAX 10000
#define MJ_MAX_STEPS_MAX 100000000
#define MJ_INDEX_MAX 100000     /* bound on START and COUNT before the model is known */
#define MJ_ERRBUF 1024          /* MuJoCo's load error text */

/* A body (its frame origin) or a site, named in the task file and resolved against the model. */
typedef struct {
  int type; /* mjOBJ_BODY or mjOBJ_SITE */
  int id;
  char name[MJ_NAME_MAX];
} obj_t;

enum { OBS_QPOS, OBS_QVEL, OBS_SENSOR, OBS_POS, OBS_HEIGHT, OBS_COM_VEL, OBS_DELTA };

typedef struct {
  int kind, line;
  const char *field;
  int start, count; /* qpos/qvel range; for a sensor its sensordata address and dimension */
  obj_t a, b;
} obs_item_t;

enum {
  TERM_VELOCITY,
  TERM_COM_VELOCITY,
  TERM_HEIGHT,
  TERM_CTRL_COST,
  TERM_TORQUE_COST,
  TERM_ALIVE,
  TERM_DISTANCE,
  TERM_LIMIT_VIOLATIONS,
};

typedef struct {
  int kind, line, axis;
  const char *field;
  double weight, level;
  obj_t a, b;
  double before[3]; /* position at the start of the current step (velocity terms) */
} term_t;

enum { RULE_HEIGHT, RULE_TILT };

typedef struct {
  int kind, line;
  const char *field;
  obj_t a;
  double lo, hi; /* height: healthy range; tilt: hi is the largest healthy angle */
} rule_t;

enum { RESET_SET, RESET_UNIFORM, RESET_NORMAL, RESET_DISK };

typedef struct {
  int kind, line;
  const char *field;
  bool qvel; /* noise on qvel instead of qpos */
  int start, count;
  double a, b; /* noise: a = scale; disk: radii a <= b */
  double values[MJ_TOKENS_MAX];
} reset_op_t;

struct frl_mjenv {
  mjModel *m;
  mjData *d;
  char task_path[PATH_MAX];
  char model_path[PATH_MAX];
  int model_line;
  int frame_skip;
  double control_dt; /* 0 when frame_skip was given */
  int max_steps;
  double limit_margin;
  int obs_dim;
  bool need_subtree_vel;
  obs_item_t obs[MJ_OBS_MAX];
  int n_obs;
  term_t terms[MJ_TERMS_MAX];
  int n_terms;
  rule_t rules[MJ_RULES_MAX];
  int n_rules;
  reset_op_t resets[MJ_RESETS_MAX];
  int n_resets;
  bool has_success, success_terminal;
  int success_line;
  obj_t success_a, success_b;
  double success_bound;
  /* Lines of keys that may appear once, 0 while unseen. */
  int seen_frame_skip, seen_control_dt, seen_max_steps, seen_margin;
  /* Nominal copies of every model field the physical parameters change (taken at open), so
   * that each setting starts from the compiled model and nominal is restored exactly. */
  struct {
    mjtNum *body_mass, *body_inertia, *body_pos, *body_ipos, *jnt_pos, *dof_damping,
        *actuator_gear, *geom_friction, *geom_pos, *geom_size, *geom_rbound, *site_pos,
        *site_size, *pair_friction;
    mjtNum gravity[3];
    double nominal[FRL_PHYS_COUNT]; /* NAN for a parameter the model lacks */
    bool changed;                   /* the model differs from the nominal copies */
  } phys;
};

/* ---- MuJoCo's process-wide message hooks ------------------------------------------------------ */

/* MuJoCo's default handlers print to stdout, append to MUJOCO_LOG.TXT in the current directory
 * and, on a fatal error, wait for Enter before exiting. Route them to the log instead, unless
 * the host program installed its own. */
static pthread_once_t g_hooks_once = PTHREAD_ONCE_INIT;

/* Copies msg into buf as one line: MuJoCo's messages span several. */
static void one_line(char *buf, size_t len, const char *msg) {
  size_t j = 0;
  for (size_t i = 0; msg[i] && j + 1 < len; i++) {
    char c = msg[i] == '\n' || msg[i] == '\r' || msg[i] == '\t' ? ' ' : msg[i];
    if (c == ' ' && (j == 0 || buf[j - 1] == ' ')) continue;
    buf[j++] = c;
  }
  while (j > 0 && buf[j - 1] == ' ') j--;
  buf[j] = '\0';
}

static void on_mujoco_warning(const char *msg) {
  char line[1024];
  one_line(line, sizeof line, msg);
  frl_warn("mujoco: %s", line);
}

/* MuJoCo's fatal errors (an internal stack overflow, a corrupted model) leave its data in an
 * undefined state and the handler must not return; exit as MuJoCo itself would, minus the wait. */
static void on_mujoco_error(const char *msg) {
  char line[1024];
  one_line(line, sizeof line, msg);
  frl_error("mujoco: fatal: %s", line);
  exit(EXIT_FAILURE);
}

static void install_hooks(void) {
  if (!mju_user_warning) mju_user_warning = on_mujoco_warning;
  if (!mju_user_error) mju_user_error = on_mujoco_error;
}

/* ---- error messages ---------------------------------------------------------------------------- */

/* Where a message points: the task file and its line (0: the file as a whole). */
typedef struct {
  const char *path;
  int line;
  char *err;
  size_t errlen;
} where_t;

static int fail_at(const where_t *w, int line, const char *field, int rc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Writes "path:line: field: message" into w->err and returns rc. */
static int fail_at(const where_t *w, int line, const char *field, int rc, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (line > 0)
    snprintf(w->err, w->errlen, "%s:%d: %s: %s", w->path, line, field, msg);
  else
    snprintf(w->err, w->errlen, "%s: %s: %s", w->path, field, msg);
  return rc;
}

/* ---- tokens and values ------------------------------------------------------------------------- */

static int parse_double(const where_t *w, const char *field, const char *tok, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(tok, &end);
  if (end == tok || *end != '\0' || !isfinite(v) || errno == ERANGE)
    return fail_at(w, w->line, field, FRL_EUSAGE, "'%s' is not a finite number", tok);
  *out = v;
  return 0;
}

static int parse_int(const where_t *w, const char *field, const char *tok, long lo, long hi,
                     int *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(tok, &end, 10);
  if (end == tok || *end != '\0' || errno == ERANGE || v < lo || v > hi)
    return fail_at(w, w->line, field, FRL_EUSAGE, "'%s' is not an integer in [%ld, %ld]", tok, lo,
                   hi);
  *out = (int)v;
  return 0;
}

/* Object syntax: body:NAME, site:NAME or a bare body NAME. Resolved later against the model. */
static int parse_obj(const where_t *w, const char *field, const char *tok, obj_t *o) {
  const char *name = tok;
  o->type = mjOBJ_BODY;
  o->id = -1;
  if (strncmp(tok, "body:", 5) == 0) {
    name = tok + 5;
  } else if (strncmp(tok, "site:", 5) == 0) {
    name = tok + 5;
    o->type = mjOBJ_SITE;
  }
  size_t len = strlen(name);
  if (len == 0) return fail_at(w, w->line, field, FRL_EUSAGE, "empty name in '%s'", tok);
  if (len >= MJ_NAME_MAX)
    return fail_at(w, w->line, field, FRL_EUSAGE, "name '%.40s...' longer than %d characters",
                   name, MJ_NAME_MAX - 1);
  memcpy(o->name, name, len + 1);
  return 0;
}

static int parse_axis(const where_t *w, const char *field, const char *tok, int *axis) {
  if (strcmp(tok, "x") == 0) *axis = 0;
  else if (strcmp(tok, "y") == 0) *axis = 1;
  else if (strcmp(tok, "z") == 0) *axis = 2;
  else return fail_at(w, w->line, field, FRL_EUSAGE, "axis '%s' is not x, y or z", tok);
  return 0;
}

/* Checks that a line of n words has exactly nargs values after its skip leading words (the key,
 * a subkey, a weight). */
static int want_args(const where_t *w, const char *field, int n, int skip, int nargs,
                     const char *usage) {
  if (n - skip == nargs) return 0;
  return fail_at(w, w->line, field, FRL_EUSAGE, "expects %d value%s (%s), got %d", nargs,
                 nargs == 1 ? "" : "s", usage, n - skip);
}

/* Splits line in place at blanks, after cutting a # comment. Returns the word count or -1 when
 * there are more than max. */
static int tokenize(char *line, char **tok, int max) {
  char *hash = strchr(line, '#');
  if (hash) *hash = '\0';
  int n = 0;
  char *save = NULL;
  for (char *t = strtok_r(line, " \t\r\n\v\f", &save); t; t = strtok_r(NULL, " \t\r\n\v\f", &save)) {
    if (n == max) return -1;
    tok[n++] = t;
  }
  return n;
}

/* ---- one line of the task file ----------------------------------------------------------------- */

static int parse_obs(frl_mjenv_t *e, const where_t *w, char **tok, int n) {
  if (n < 2)
    return fail_at(w, w->line, "obs", FRL_EUSAGE,
                   "expects a kind: qpos, qvel, sensor, pos, height, com_vel or delta");
  if (e->n_obs == MJ_OBS_MAX)
    return fail_at(w, w->line, "obs", FRL_EUSAGE, "more than %d obs lines", MJ_OBS_MAX);
  obs_item_t *it = &e->obs[e->n_obs];
  memset(it, 0, sizeof *it);
  it->line = w->line;
  const char *k = tok[1];
  int rc;
  if (strcmp(k, "qpos") == 0 || strcmp(k, "qvel") == 0) {
    it->kind = strcmp(k, "qpos") == 0 ? OBS_QPOS : OBS_QVEL;
    it->field = it->kind == OBS_QPOS ? "obs qpos" : "obs qvel";
    if ((rc = want_args(w, it->field, n, 2, 2, "START COUNT")) ||
        (rc = parse_int(w, it->field, tok[2], 0, MJ_INDEX_MAX, &it->start)) ||
        (rc = parse_int(w, it->field, tok[3], 1, MJ_INDEX_MAX, &it->count)))
      return rc;
  } else if (strcmp(k, "sensor") == 0) {
    it->kind = OBS_SENSOR;
    it->field = "obs sensor";
    if ((rc = want_args(w, it->field, n, 2, 1, "NAME")) ||
        (rc = parse_obj(w, it->field, tok[2], &it->a)))
      return rc;
  } else if (strcmp(k, "pos") == 0 || strcmp(k, "height") == 0 || strcmp(k, "com_vel") == 0) {
    it->kind = k[0] == 'p' ? OBS_POS : (k[0] == 'h' ? OBS_HEIGHT : OBS_COM_VEL);
    it->field = it->kind == OBS_POS ? "obs pos" : (it->kind == OBS_HEIGHT ? "obs height" : "obs com_vel");
    if ((rc = want_args(w, it->field, n, 2, 1, it->kind == OBS_COM_VEL ? "BODY" : "OBJ")) ||
        (rc = parse_obj(w, it->field, tok[2], &it->a)))
      return rc;
  } else if (strcmp(k, "delta") == 0) {
    it->kind = OBS_DELTA;
    it->field = "obs delta";
    if ((rc = want_args(w, it->field, n, 2, 2, "OBJ_A OBJ_B")) ||
        (rc = parse_obj(w, it->field, tok[2], &it->a)) ||
        (rc = parse_obj(w, it->field, tok[3], &it->b)))
      return rc;
  } else {
    return fail_at(w, w->line, "obs", FRL_EUSAGE,
                   "unknown kind '%s' (known: qpos, qvel, sensor, pos, height, com_vel, delta)", k);
  }
  e->n_obs++;
  return 0;
}

static int parse_reward(frl_mjenv_t *e, const where_t *w, char **tok, int n) {
  if (n < 3) return fail_at(w, w->line, "reward", FRL_EUSAGE, "expects WEIGHT TERM [ARGS...]");
  if (e->n_terms == MJ_TERMS_MAX)
    return fail_at(w, w->line, "reward", FRL_EUSAGE, "more than %d reward lines", MJ_TERMS_MAX);
  term_t *t = &e->terms[e->n_terms];
  memset(t, 0, sizeof *t);
  t->line = w->line;
  int rc;
  if ((rc = parse_double(w, "reward", tok[1], &t->weight))) return rc;
  const char *k = tok[2];
  if (strcmp(k, "velocity") == 0 || strcmp(k, "com_velocity") == 0) {
    t->kind = k[0] == 'v' ? TERM_VELOCITY : TERM_COM_VELOCITY;
    t->field = t->kind == TERM_VELOCITY ? "reward velocity" : "reward com_velocity";
    if ((rc = want_args(w, t->field, n, 3, 2, "OBJ AXIS")) ||
        (rc = parse_obj(w, t->field, tok[3], &t->a)) ||
        (rc = parse_axis(w, t->field, tok[4], &t->axis)))
      return rc;
  } else if (strcmp(k, "height") == 0) {
    t->kind = TERM_HEIGHT;
    t->field = "reward height";
    if ((rc = want_args(w, t->field, n, 3, 2, "OBJ LEVEL")) ||
        (rc = parse_obj(w, t->field, tok[3], &t->a)) ||
        (rc = parse_double(w, t->field, tok[4], &t->level)))
      return rc;
  } else if (strcmp(k, "distance") == 0) {
    t->kind = TERM_DISTANCE;
    t->field = "reward distance";
    if ((rc = want_args(w, t->field, n, 3, 2, "OBJ_A OBJ_B")) ||
        (rc = parse_obj(w, t->field, tok[3], &t->a)) ||
        (rc = parse_obj(w, t->field, tok[4], &t->b)))
      return rc;
  } else if (strcmp(k, "ctrl_cost") == 0 || strcmp(k, "torque_cost") == 0 ||
             strcmp(k, "alive") == 0 || strcmp(k, "limit_violations") == 0) {
    static const struct {
      const char *name, *field;
      int kind;
    } plain[] = {
        {"ctrl_cost", "reward ctrl_cost", TERM_CTRL_COST},
        {"torque_cost", "reward torque_cost", TERM_TORQUE_COST},
        {"alive", "reward alive", TERM_ALIVE},
        {"limit_violations", "reward limit_violations", TERM_LIMIT_VIOLATIONS},
    };
    for (size_t i = 0; i < FRL_ARRAY_LEN(plain); i++)
      if (strcmp(k, plain[i].name) == 0) {
        t->kind = plain[i].kind;
        t->field = plain[i].field;
      }
    if ((rc = want_args(w, t->field, n, 3, 0, "none"))) return rc;
  } else {
    return fail_at(w, w->line, "reward", FRL_EUSAGE,
                   "unknown term '%s' (known: velocity, com_velocity, height, ctrl_cost, "
                   "torque_cost, alive, distance, limit_violations)",
                   k);
  }
  e->n_terms++;
  return 0;
}

static int parse_terminate(frl_mjenv_t *e, const where_t *w, char **tok, int n) {
  if (n < 2) return fail_at(w, w->line, "terminate", FRL_EUSAGE, "expects height or tilt");
  if (e->n_rules == MJ_RULES_MAX)
    return fail_at(w, w->line, "terminate", FRL_EUSAGE, "more than %d terminate lines",
                   MJ_RULES_MAX);
  rule_t *r = &e->rules[e->n_rules];
  memset(r, 0, sizeof *r);
  r->line = w->line;
  int rc;
  if (strcmp(tok[1], "height") == 0) {
    r->kind = RULE_HEIGHT;
    r->field = "terminate height";
    if ((rc = want_args(w, r->field, n, 2, 3, "OBJ LO HI")) ||
        (rc = parse_obj(w, r->field, tok[2], &r->a)) ||
        (rc = parse_double(w, r->field, tok[3], &r->lo)) ||
        (rc = parse_double(w, r->field, tok[4], &r->hi)))
      return rc;
    if (!(r->lo < r->hi))
      return fail_at(w, w->line, r->field, FRL_EUSAGE, "LO %g is not below HI %g", r->lo, r->hi);
  } else if (strcmp(tok[1], "tilt") == 0) {
    r->kind = RULE_TILT;
    r->field = "terminate tilt";
    if ((rc = want_args(w, r->field, n, 2, 2, "BODY MAX_RADIANS")) ||
        (rc = parse_obj(w, r->field, tok[2], &r->a)) ||
        (rc = parse_double(w, r->field, tok[3], &r->hi)))
      return rc;
    if (!(r->hi > 0.0 && r->hi < M_PI))
      return fail_at(w, w->line, r->field, FRL_EUSAGE, "MAX_RADIANS %g is not in (0, pi)", r->hi);
  } else {
    return fail_at(w, w->line, "terminate", FRL_EUSAGE, "unknown rule '%s' (known: height, tilt)",
                   tok[1]);
  }
  e->n_rules++;
  return 0;
}

static int parse_reset(frl_mjenv_t *e, const where_t *w, char **tok, int n) {
  const char *key = tok[0];
  if (e->n_resets == MJ_RESETS_MAX)
    return fail_at(w, w->line, key, FRL_EUSAGE, "more than %d reset lines", MJ_RESETS_MAX);
  reset_op_t *op = &e->resets[e->n_resets];
  memset(op, 0, sizeof *op);
  op->line = w->line;
  int rc;
  if (strcmp(key, "init_qpos") == 0) {
    op->kind = RESET_SET;
    op->field = "init_qpos";
    if (n < 3) return fail_at(w, w->line, op->field, FRL_EUSAGE, "expects START V...");
    if ((rc = parse_int(w, op->field, tok[1], 0, MJ_INDEX_MAX, &op->start))) return rc;
    op->count = n - 2;
    for (int i = 0; i < op->count; i++)
      if ((rc = parse_double(w, op->field, tok[2 + i], &op->values[i]))) return rc;
  } else if (strcmp(key, "noise") == 0) {
    op->field = "noise";
    if ((rc = want_args(w, op->field, n, 1, 5, "qpos|qvel START COUNT uniform|normal SCALE")))
      return rc;
    if (strcmp(tok[1], "qpos") != 0 && strcmp(tok[1], "qvel") != 0)
      return fail_at(w, w->line, op->field, FRL_EUSAGE, "'%s' is not qpos or qvel", tok[1]);
    op->qvel = strcmp(tok[1], "qvel") == 0;
    if ((rc = parse_int(w, op->field, tok[2], 0, MJ_INDEX_MAX, &op->start)) ||
        (rc = parse_int(w, op->field, tok[3], 1, MJ_INDEX_MAX, &op->count)))
      return rc;
    if (strcmp(tok[4], "uniform") == 0) op->kind = RESET_UNIFORM;
    else if (strcmp(tok[4], "normal") == 0) op->kind = RESET_NORMAL;
    else
      return fail_at(w, w->line, op->field, FRL_EUSAGE, "distribution '%s' is not uniform or normal",
                     tok[4]);
    if ((rc = parse_double(w, op->field, tok[5], &op->a))) return rc;
    if (op->a < 0.0) return fail_at(w, w->line, op->field, FRL_EUSAGE, "SCALE %g is negative", op->a);
  } else {
    op->kind = RESET_DISK;
    op->field = "init_disk";
    if ((rc = want_args(w, op->field, n, 1, 3, "START RMIN RMAX")) ||
        (rc = parse_int(w, op->field, tok[1], 0, MJ_INDEX_MAX, &op->start)) ||
        (rc = parse_double(w, op->field, tok[2], &op->a)) ||
        (rc = parse_double(w, op->field, tok[3], &op->b)))
      return rc;
    op->count = 2;
    if (!(op->a >= 0.0 && op->a <= op->b))
      return fail_at(w, w->line, op->field, FRL_EUSAGE, "radii %g, %g are not 0 <= RMIN <= RMAX",
                     op->a, op->b);
  }
  e->n_resets++;
  return 0;
}

/* Keys that may appear once: remembers the line, or fails naming the first one. */
static int once(const where_t *w, const char *key, int *seen) {
  if (*seen) return fail_at(w, w->line, key, FRL_EUSAGE, "given twice (first on line %d)", *seen);
  *seen = w->line;
  return 0;
}

static int parse_line(frl_mjenv_t *e, const where_t *w, char **tok, int n) {
  const char *key = tok[0];
  int rc;
  if (strcmp(key, "model") == 0) {
    if ((rc = want_args(w, key, n, 1, 1, "PATH")) || (rc = once(w, key, &e->model_line))) return rc;
    const char *p = tok[1];
    if (p[0] == '/') {
      if ((size_t)snprintf(e->model_path, sizeof e->model_path, "%s", p) >= sizeof e->model_path)
        return fail_at(w, w->line, key, FRL_EUSAGE, "path longer than %d bytes", PATH_MAX - 1);
    } else {
      /* Relative to the task file's folder, so a task and its model travel together. */
      const char *slash = strrchr(w->path, '/');
      int dirlen = slash ? (int)(slash - w->path) : 1;
      const char *dir = slash ? w->path : ".";
      if ((size_t)snprintf(e->model_path, sizeof e->model_path, "%.*s/%s", dirlen, dir, p) >=
          sizeof e->model_path)
        return fail_at(w, w->line, key, FRL_EUSAGE, "path longer than %d bytes", PATH_MAX - 1);
    }
    return 0;
  }
  if (strcmp(key, "frame_skip") == 0) {
    if ((rc = want_args(w, key, n, 1, 1, "N")) || (rc = once(w, key, &e->seen_frame_skip)) ||
        (rc = parse_int(w, key, tok[1], 1, MJ_FRAME_SKIP_MAX, &e->frame_skip)))
      return rc;
    if (e->seen_control_dt)
      return fail_at(w, w->line, key, FRL_EUSAGE, "control_dt was given on line %d; use one",
                     e->seen_control_dt);
    return 0;
  }
  if (strcmp(key, "control_dt") == 0) {
    if ((rc = want_args(w, key, n, 1, 1, "SECONDS")) || (rc = once(w, key, &e->seen_control_dt)) ||
        (rc = parse_double(w, key, tok[1], &e->control_dt)))
      return rc;
    if (!(e->control_dt > 0.0 && e->control_dt <= 10.0))
      return fail_at(w, w->line, key, FRL_EUSAGE, "%g s is not in (0, 10]", e->control_dt);
    if (e->seen_frame_skip)
      return fail_at(w, w->line, key, FRL_EUSAGE, "frame_skip was given on line %d; use one",
                     e->seen_frame_skip);
    return 0;
  }
  if (strcmp(key, "max_steps") == 0) {
    if ((rc = want_args(w, key, n, 1, 1, "N")) || (rc = once(w, key, &e->seen_max_steps))) return rc;
    return parse_int(w, key, tok[1], 0, MJ_MAX_STEPS_MAX, &e->max_steps);
  }
  if (strcmp(key, "limit_margin") == 0) {
    if ((rc = want_args(w, key, n, 1, 1, "RADIANS")) || (rc = once(w, key, &e->seen_margin)) ||
        (rc = parse_double(w, key, tok[1], &e->limit_margin)))
      return rc;
    if (e->limit_margin < 0.0)
      return fail_at(w, w->line, key, FRL_EUSAGE, "%g is negative", e->limit_margin);
    return 0;
  }
  if (strcmp(key, "obs") == 0) return parse_obs(e, w, tok, n);
  if (strcmp(key, "reward") == 0) return parse_reward(e, w, tok, n);
  if (strcmp(key, "terminate") == 0) return parse_terminate(e, w, tok, n);
  if (strcmp(key, "init_qpos") == 0 || strcmp(key, "noise") == 0 || strcmp(key, "init_disk") == 0)
    return parse_reset(e, w, tok, n);
  if (strcmp(key, "success") == 0) {
    const char *f = "success distance";
    if (n < 2 || strcmp(tok[1], "distance") != 0)
      return fail_at(w, w->line, "success", FRL_EUSAGE, "expects distance OBJ_A OBJ_B BOUND [terminal]");
    if (n != 5 && n != 6)
      return fail_at(w, w->line, f, FRL_EUSAGE,
                     "expects OBJ_A OBJ_B BOUND [terminal], got %d values", n - 2);
    if ((rc = once(w, "success", &e->success_line)) ||
        (rc = parse_obj(w, f, tok[2], &e->success_a)) ||
        (rc = parse_obj(w, f, tok[3], &e->success_b)) ||
        (rc = parse_double(w, f, tok[4], &e->success_bound)))
      return rc;
    if (!(e->success_bound > 0.0))
      return fail_at(w, w->line, f, FRL_EUSAGE, "BOUND %g is not positive", e->success_bound);
    if (n == 6 && strcmp(tok[5], "terminal") != 0)
      return fail_at(w, w->line, f, FRL_EUSAGE, "'%s' is not 'terminal'", tok[5]);
    e->has_success = true;
    e->success_terminal = n == 6;
    return 0;
  }
  return fail_at(w, w->line, key, FRL_EUSAGE,
                 "unknown key (known: model, frame_skip, control_dt, max_steps, obs, reward, "
                 "terminate, success, limit_margin, init_qpos, noise, init_disk)");
}

/* Reads and parses the whole task file into e (names unresolved). */
static int parse_file(frl_mjenv_t *e, const where_t *w0) {
  where_t w = *w0;
  char *line = NULL;
  size_t cap = 0;
  int rc = 0;
  FILE *f = fopen(w.path, "r");
  if (!f) {
    int errnum = errno;
    snprintf(w.err, w.errlen, "task file '%s': %s", w.path, strerror(errnum));
    return errnum == ENOENT ? FRL_ENOTFOUND : -errnum;
  }
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = fail_at(&w, 0, "file", FRL_EUSAGE, "not a regular file");
    goto fail;
  }
  if (st.st_size > MJ_FILE_MAX) {
    rc = fail_at(&w, 0, "file", FRL_EUSAGE, "%lld bytes exceeds the limit %d",
                 (long long)st.st_size, MJ_FILE_MAX);
    goto fail;
  }
  ssize_t len;
  long total = 0;
  while ((len = getline(&line, &cap, f)) >= 0) {
    w.line++;
    total += len;
    if (total > MJ_FILE_MAX) { /* the file grew while being read */
      rc = fail_at(&w, 0, "file", FRL_EUSAGE, "more than %d bytes", MJ_FILE_MAX);
      goto fail;
    }
    if ((ssize_t)strlen(line) != len) {
      rc = fail_at(&w, w.line, "line", FRL_EUSAGE, "contains a NUL byte");
      goto fail;
    }
    char *tok[MJ_TOKENS_MAX];
    int n = tokenize(line, tok, MJ_TOKENS_MAX);
    if (n < 0) {
      rc = fail_at(&w, w.line, "line", FRL_EUSAGE, "more than %d words", MJ_TOKENS_MAX);
      goto fail;
    }
    if (n == 0) continue;
    if ((rc = parse_line(e, &w, tok, n))) goto fail;
  }
  if (ferror(f)) {
    rc = fail_at(&w, 0, "file", -EIO, "read error");
    goto fail;
  }
  if (!e->model_line) {
    rc = fail_at(&w, 0, "model", FRL_EUSAGE, "no 'model PATH' line");
    goto fail;
  }
  if (e->n_obs == 0) {
    rc = fail_at(&w, 0, "obs", FRL_EUSAGE, "no 'obs' line");
    goto fail;
  }
  free(line);
  fclose(f);
  return 0;
fail:
  free(line);
  fclose(f);
  return rc;
}

/* ---- the model --------------------------------------------------------------------------------- */

static int load_model(frl_mjenv_t *e, const where_t *w) {
  if (access(e->model_path, F_OK) != 0) {
    int errnum = errno;
    bool sample = strncmp(e->model_path, "/usr/share/mujoco/", 18) == 0;
    return fail_at(w, e->model_line, "model", errnum == ENOENT ? FRL_ENOTFOUND : -errnum,
                   "cannot load MuJoCo model '%s': %s%s", e->model_path, strerror(errnum),
                   sample ? " (install the Debian package libmujoco-samples)"
                          : " (set FLEETRL_MODEL_DIR to the folder of the fleetrl model files)");
  }
  char *buf = frl_xmalloc(MJ_ERRBUF);
  buf[0] = '\0';
  e->m = mj_loadXML(e->model_path, NULL, buf, MJ_ERRBUF);
  /* The parser keeps a copy of the last model for mj_saveLastXML; nothing here needs it. */
  mj_freeLastXML();
  if (!e->m) {
    char msg[MJ_ERRBUF];
    one_line(msg, sizeof msg, buf[0] ? buf : "unknown error");
    free(buf);
    return fail_at(w, e->model_line, "model", FRL_EUSAGE, "MuJoCo cannot load '%s': %s",
                   e->model_path, msg);
  }
  free(buf);
  e->d = mj_makeData(e->m);
  return 0;
}

static int resolve_obj(const frl_mjenv_t *e, const where_t *w, int line, const char *field,
                       obj_t *o, bool body_only) {
  if (body_only && o->type != mjOBJ_BODY)
    return fail_at(w, line, field, FRL_EUSAGE, "'%s' must be a body", o->name);
  o->id = mj_name2id(e->m, o->type, o->name);
  if (o->id < 0)
    return fail_at(w, line, field, FRL_EUSAGE, "no %s named '%s' in model '%s'",
                   o->type == mjOBJ_SITE ? "site" : "body", o->name, e->model_path);
  return 0;
}

static int check_range(const where_t *w, int line, const char *field, int start, int count,
                       int size, const char *what) {
  if (start + count > size)
    return fail_at(w, line, field, FRL_EUSAGE, "range %d..%d exceeds %s = %d", start,
                   start + count - 1, what, size);
  return 0;
}

/* Checks every name, index range and dimension of the parsed task against the loaded model. */
static int resolve(frl_mjenv_t *e, frl_env_spec_t *spec, const where_t *w) {
  const mjModel *m = e->m;
  int rc;
  if (e->control_dt > 0.0) {
    double ratio = e->control_dt / m->opt.timestep;
    double k = round(ratio);
    if (k < 1.0 || k > MJ_FRAME_SKIP_MAX || fabs(ratio - k) > 1e-6 * k)
      return fail_at(w, e->seen_control_dt, "control_dt", FRL_EUSAGE,
                     "%g s is not a multiple of the model's timestep %g s (at most %d steps)",
                     e->control_dt, m->opt.timestep, MJ_FRAME_SKIP_MAX);
    e->frame_skip = (int)k;
  } else if (!e->seen_frame_skip) {
    e->frame_skip = 1;
  }
  if (!e->seen_max_steps) e->max_steps = 1000;

  int dim = 0;
  for (int i = 0; i < e->n_obs; i++) {
    obs_item_t *it = &e->obs[i];
    switch (it->kind) {
    case OBS_QPOS:
    case OBS_QVEL:
      if ((rc = check_range(w, it->line, it->field, it->start, it->count,
                            it->kind == OBS_QPOS ? m->nq : m->nv,
                            it->kind == OBS_QPOS ? "nq" : "nv")))
        return rc;
      break;
    case OBS_SENSOR: {
      int id = mj_name2id(m, mjOBJ_SENSOR, it->a.name);
      if (it->a.type != mjOBJ_BODY || id < 0)
        return fail_at(w, it->line, it->field, FRL_EUSAGE, "no sensor named '%s' in model '%s'",
                       it->a.name, e->model_path);
      it->start = m->sensor_adr[id];
      it->count = m->sensor_dim[id];
      break;
    }
    case OBS_POS:
    case OBS_HEIGHT:
    case OBS_COM_VEL:
      if ((rc = resolve_obj(e, w, it->line, it->field, &it->a, it->kind == OBS_COM_VEL))) return rc;
      it->count = it->kind == OBS_HEIGHT ? 1 : 3;
      if (it->kind == OBS_COM_VEL) e->need_subtree_vel = true;
      break;
    default: /* OBS_DELTA */
      if ((rc = resolve_obj(e, w, it->line, it->field, &it->a, false)) ||
          (rc = resolve_obj(e, w, it->line, it->field, &it->b, false)))
        return rc;
      it->count = 3;
      break;
    }
    dim += it->count;
    if (dim > FRL_ENV_MAX_DIM)
      return fail_at(w, it->line, it->field, FRL_EDIM, "observation reaches %d values, over the limit %d",
                     dim, FRL_ENV_MAX_DIM);
  }
  e->obs_dim = dim;

  for (int i = 0; i < e->n_terms; i++) {
    term_t *t = &e->terms[i];
    if (t->kind == TERM_VELOCITY || t->kind == TERM_HEIGHT || t->kind == TERM_DISTANCE ||
        t->kind == TERM_COM_VELOCITY)
      if ((rc = resolve_obj(e, w, t->line, t->field, &t->a, t->kind == TERM_COM_VELOCITY)))
        return rc;
    if (t->kind == TERM_DISTANCE && (rc = resolve_obj(e, w, t->line, t->field, &t->b, false)))
      return rc;
  }
  for (int i = 0; i < e->n_rules; i++) {
    rule_t *r = &e->rules[i];
    if ((rc = resolve_obj(e, w, r->line, r->field, &r->a, r->kind == RULE_TILT))) return rc;
  }
  if (e->has_success &&
      ((rc = resolve_obj(e, w, e->success_line, "success distance", &e->success_a, false)) ||
       (rc = resolve_obj(e, w, e->success_line, "success distance", &e->success_b, false))))
    return rc;
  for (int i = 0; i < e->n_resets; i++) {
    const reset_op_t *op = &e->resets[i];
    int size = op->qvel ? m->nv : m->nq;
    if ((rc = check_range(w, op->line, op->field, op->start, op->count, size,
                          op->qvel ? "nv" : "nq")))
      return rc;
  }

  if (m->nu < 1)
    return fail_at(w, e->model_line, "model", FRL_EUSAGE, "'%s' has no actuators", e->model_path);
  if (m->nu > FRL_ENV_MAX_DIM)
    return fail_at(w, e->model_line, "model", FRL_EDIM, "'%s' has %d actuators, over the limit %d",
                   e->model_path, m->nu, FRL_ENV_MAX_DIM);
  for (int i = 0; i < m->nu; i++) {
    double lo = m->actuator_ctrlrange[2 * i], hi = m->actuator_ctrlrange[2 * i + 1];
    const char *name = mj_id2name(m, mjOBJ_ACTUATOR, i);
    if (!m->actuator_ctrllimited[i] || !(lo < hi) || !isfinite(lo) || !isfinite(hi) ||
        fabs(lo) > FLT_MAX || fabs(hi) > FLT_MAX)
      return fail_at(w, e->model_line, "model", FRL_EUSAGE,
                     "actuator %d ('%s') in '%s' has no finite ctrlrange; the action bounds come "
                     "from it (set ctrllimited=\"true\" ctrlrange=\"lo hi\")",
                     i, name ? name : "", e->model_path);
  }

  spec->obs_dim = e->obs_dim;
  spec->act_dim = m->nu;
  spec->n_actions = 0;
  spec->max_steps = e->max_steps;
  for (int i = 0; i < m->nu; i++) {
    spec->act_low[i] = (float)m->actuator_ctrlrange[2 * i];
    spec->act_high[i] = (float)m->actuator_ctrlrange[2 * i + 1];
  }
  return 0;
}

int frl_mjenv_model_dir(char *buf, size_t len) {
  const char *env = getenv("FLEETRL_MODEL_DIR");
  const char *dir = MJ_DEFAULT_DIR;
  struct stat st;
  if (env && env[0]) dir = env;
  else if (stat("lib/mujoco", &st) == 0 && S_ISDIR(st.st_mode)) dir = "lib/mujoco";
  if (!buf || (size_t)snprintf(buf, len, "%s", dir) >= len) return FRL_EUSAGE;
  return 0;
}

/* ---- physical parameters ----------------------------------------------------------------------- */

static mjtNum *copy_of(const mjtNum *src, int n) {
  mjtNum *dst = frl_xmalloc(sizeof(mjtNum) * (size_t)(n > 0 ? n : 1));
  if (n > 0) memcpy(dst, src, sizeof(mjtNum) * (size_t)n);
  return dst;
}

static void restore(mjtNum *dst, const mjtNum *src, int n) {
  if (n > 0) memcpy(dst, src, sizeof(mjtNum) * (size_t)n);
}

/* Capsules and cylinders are the shapes with a length: size[1] is the half-length along the
 * local z axis (how MuJoCo compiles `fromto`). */
static bool has_length(int type) { return type == mjGEOM_CAPSULE || type == mjGEOM_CYLINDER; }

/* Records the nominal model and which parameters it has:
 *  - mass: always (every body's mass and inertia);
 *  - damping: when some degree of freedom is damped;
 *  - motor_strength: the actuators' gear (every model here has actuators);
 *  - friction: when some geom can touch another (a contype bit meeting a conaffinity bit) or
 *    the model lists explicit contact pairs; the nominal value is the largest sliding friction
 *    of such geoms, which is what their contacts use under MuJoCo's default max-mixing;
 *  - gravity: when opt.gravity is non-zero, its magnitude;
 *  - link_length: when some body hangs from another body (a kinematic chain to scale). */
static void physics_capture(frl_mjenv_t *e) {
  const mjModel *m = e->m;
  e->phys.body_mass = copy_of(m->body_mass, m->nbody);
  e->phys.body_inertia = copy_of(m->body_inertia, 3 * m->nbody);
  e->phys.body_pos = copy_of(m->body_pos, 3 * m->nbody);
  e->phys.body_ipos = copy_of(m->body_ipos, 3 * m->nbody);
  e->phys.jnt_pos = copy_of(m->jnt_pos, 3 * m->njnt);
  e->phys.dof_damping = copy_of(m->dof_damping, m->nv);
  e->phys.actuator_gear = copy_of(m->actuator_gear, 6 * m->nu);
  e->phys.geom_friction = copy_of(m->geom_friction, 3 * m->ngeom);
  e->phys.geom_pos = copy_of(m->geom_pos, 3 * m->ngeom);
  e->phys.geom_size = copy_of(m->geom_size, 3 * m->ngeom);
  e->phys.geom_rbound = copy_of(m->geom_rbound, m->ngeom);
  e->phys.site_pos = copy_of(m->site_pos, 3 * m->nsite);
  e->phys.site_size = copy_of(m->site_size, 3 * m->nsite);
  e->phys.pair_friction = copy_of(m->pair_friction, 5 * m->npair);
  memcpy(e->phys.gravity, m->opt.gravity, sizeof e->phys.gravity);

  double *nominal = e->phys.nominal;
  for (int p = 0; p < FRL_PHYS_COUNT; p++) nominal[p] = NAN;
  nominal[FRL_PHYS_MASS] = 1.0;
  if (m->nu > 0) nominal[FRL_PHYS_MOTOR] = 1.0;
  for (int i = 0; i < m->nv; i++)
    if (m->dof_damping[i] > 0) nominal[FRL_PHYS_DAMPING] = 1.0;
  bool contype = false, conaffinity = false;
  double friction = 0.0;
  for (int g = 0; g < m->ngeom; g++) {
    contype |= m->geom_contype[g] != 0;
    conaffinity |= m->geom_conaffinity[g] != 0;
    if ((m->geom_contype[g] || m->geom_conaffinity[g]) && m->geom_friction[3 * g] > friction)
      friction = m->geom_friction[3 * g];
  }
  for (int i = 0; i < m->npair; i++)
    if (m->pair_friction[5 * i] > friction) friction = m->pair_friction[5 * i];
  if ((contype && conaffinity) || m->npair > 0) nominal[FRL_PHYS_FRICTION] = friction;
  double g2 = 0.0;
  for (int k = 0; k < 3; k++) g2 += m->opt.gravity[k] * m->opt.gravity[k];
  if (g2 > 0) nominal[FRL_PHYS_GRAVITY] = sqrt(g2);
  for (int b = 1; b < m->nbody; b++)
    if (m->body_parentid[b] != 0) nominal[FRL_PHYS_LINK] = 1.0;
}

/* Sets the model's real parameters from value (NAN: nominal), starting from the nominal copies:
 *  - mass s: body_mass x s; body_inertia x s L^2 (with link scale L: the inertia of a shape
 *    scaled uniformly by L at mass m grows as m L^2);
 *  - damping s: dof_damping x s;
 *  - motor_strength s: actuator_gear x s (force per unit control);
 *  - friction f: the sliding friction of every geom (and explicit pair) set to f;
 *  - gravity g: opt.gravity rescaled to magnitude g;
 *  - link_length L: every length along the robot x L: the offsets of bodies from their parent
 *    body (not of bodies on the world, so the robot's placement is kept), joint anchors, centres
 *    of mass, geom and site positions, and the half-lengths of capsules and cylinders (radii
 *    kept; bounding radii recomputed); the world's own geoms (the floor) are not robot.
 * Then mj_setConst recomputes what the compiler derived from them (subtree masses, the
 * reference inertias the solver and actuators use, tendon lengths). It evaluates the model at
 * qpos0 in d, so this runs between episodes: the next reset overwrites d. */
static void physics_apply(frl_mjenv_t *e, const double *value) {
  mjModel *m = e->m;
  const double mass = frl__phys_or(value, FRL_PHYS_MASS, 1.0);
  const double damping = frl__phys_or(value, FRL_PHYS_DAMPING, 1.0);
  const double motor = frl__phys_or(value, FRL_PHYS_MOTOR, 1.0);
  const double link = frl__phys_or(value, FRL_PHYS_LINK, 1.0);
  const bool nominal = value == NULL || (isnan(value[FRL_PHYS_MASS]) &&
                                         isnan(value[FRL_PHYS_DAMPING]) &&
                                         isnan(value[FRL_PHYS_MOTOR]) &&
                                         isnan(value[FRL_PHYS_FRICTION]) &&
                                         isnan(value[FRL_PHYS_GRAVITY]) && isnan(value[FRL_PHYS_LINK]));
  if (nominal && !e->phys.changed) return;

  restore(m->body_mass, e->phys.body_mass, m->nbody);
  restore(m->body_inertia, e->phys.body_inertia, 3 * m->nbody);
  restore(m->body_pos, e->phys.body_pos, 3 * m->nbody);
  restore(m->body_ipos, e->phys.body_ipos, 3 * m->nbody);
  restore(m->jnt_pos, e->phys.jnt_pos, 3 * m->njnt);
  restore(m->dof_damping, e->phys.dof_damping, m->nv);
  restore(m->actuator_gear, e->phys.actuator_gear, 6 * m->nu);
  restore(m->geom_friction, e->phys.geom_friction, 3 * m->ngeom);
  restore(m->geom_pos, e->phys.geom_pos, 3 * m->ngeom);
  restore(m->geom_size, e->phys.geom_size, 3 * m->ngeom);
  restore(m->geom_rbound, e->phys.geom_rbound, m->ngeom);
  restore(m->site_pos, e->phys.site_pos, 3 * m->nsite);
  restore(m->site_size, e->phys.site_size, 3 * m->nsite);
  restore(m->pair_friction, e->phys.pair_friction, 5 * m->npair);
  memcpy(m->opt.gravity, e->phys.gravity, sizeof e->phys.gravity);

  if (!nominal) {
    for (int b = 1; b < m->nbody; b++) {
      m->body_mass[b] *= mass;
      for (int k = 0; k < 3; k++) {
        m->body_inertia[3 * b + k] *= mass * link * link;
        m->body_ipos[3 * b + k] *= link;
        if (m->body_parentid[b] != 0) m->body_pos[3 * b + k] *= link;
      }
    }
    for (int j = 0; j < m->njnt; j++)
      for (int k = 0; k < 3; k++) m->jnt_pos[3 * j + k] *= link;
    for (int i = 0; i < m->nv; i++) m->dof_damping[i] *= damping;
    for (int i = 0; i < 6 * m->nu; i++) m->actuator_gear[i] *= motor;
    if (!isnan(value[FRL_PHYS_FRICTION])) {
      for (int g = 0; g < m->ngeom; g++) m->geom_friction[3 * g] = value[FRL_PHYS_FRICTION];
      for (int i = 0; i < m->npair; i++)
        m->pair_friction[5 * i] = m->pair_friction[5 * i + 1] = value[FRL_PHYS_FRICTION];
    }
    if (!isnan(value[FRL_PHYS_GRAVITY]) && !isnan(e->phys.nominal[FRL_PHYS_GRAVITY]))
      for (int k = 0; k < 3; k++)
        m->opt.gravity[k] *= value[FRL_PHYS_GRAVITY] / e->phys.nominal[FRL_PHYS_GRAVITY];
    for (int g = 0; g < m->ngeom; g++) {
      if (m->geom_bodyid[g] == 0) continue;
      mjtNum *size = m->geom_size + 3 * g;
      for (int k = 0; k < 3; k++) m->geom_pos[3 * g + k] *= link;
      if (has_length(m->geom_type[g])) {
        size[1] *= link;
        m->geom_rbound[g] = m->geom_type[g] == mjGEOM_CAPSULE
                                ? size[0] + size[1]
                                : sqrt(size[0] * size[0] + size[1] * size[1]);
      }
    }
    for (int i = 0; i < m->nsite; i++) {
      if (m->site_bodyid[i] == 0) continue;
      for (int k = 0; k < 3; k++) m->site_pos[3 * i + k] *= link;
      if (has_length(m->site_type[i])) m->site_size[3 * i + 1] *= link;
    }
  }
  mj_setConst(m, e->d);
  e->phys.changed = !nominal;
}

int frl_mjenv_open(frl_mjenv_t **out, const char *task_path, frl_env_spec_t *spec, char *err,
                   size_t errlen) {
  char scratch[8];
  if (!err || errlen == 0) {
    err = scratch;
    errlen = sizeof scratch;
  }
  if (!task_path || !out || !spec) {
    snprintf(err, errlen, "frl_mjenv_open: no task path, output or spec");
    return FRL_EUSAGE;
  }
  pthread_once(&g_hooks_once, install_hooks);
  frl_mjenv_t *e = frl_xcalloc(1, sizeof *e);
  where_t w = {.path = task_path, .line = 0, .err = err, .errlen = errlen};
  frl_env_spec_t tmp = *spec;
  int rc;
  if (strlen(task_path) >= sizeof e->task_path) {
    rc = fail_at(&w, 0, "path", FRL_EUSAGE, "longer than %d bytes", PATH_MAX - 1);
    goto fail;
  }
  memcpy(e->task_path, task_path, strlen(task_path) + 1);
  if ((rc = parse_file(e, &w))) goto fail;
  if ((rc = load_model(e, &w))) goto fail;
  if ((rc = resolve(e, &tmp, &w))) goto fail;
  physics_capture(e);
  *spec = tmp;
  *out = e;
  return 0;
fail:
  frl_mjenv_destroy(&e);
  return rc;
}

void frl_mjenv_destroy(frl_mjenv_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_mjenv_t *e = *self_p;
  mjtNum *copies[] = {e->phys.body_mass,     e->phys.body_inertia, e->phys.body_pos,
                      e->phys.body_ipos,     e->phys.jnt_pos,      e->phys.dof_damping,
                      e->phys.actuator_gear, e->phys.geom_friction, e->phys.geom_pos,
                      e->phys.geom_size,     e->phys.geom_rbound,  e->phys.site_pos,
                      e->phys.site_size,     e->phys.pair_friction};
  for (size_t i = 0; i < FRL_ARRAY_LEN(copies); i++) free(copies[i]);
  if (e->d) mj_deleteData(e->d);
  if (e->m) mj_deleteModel(e->m);
  free(e);
  *self_p = NULL;
}

const mjModel *frl_mjenv_model(const frl_mjenv_t *e) { return e->m; }
const mjData *frl_mjenv_data(const frl_mjenv_t *e) { return e->d; }
int frl_mjenv_frame_skip(const frl_mjenv_t *e) { return e->frame_skip; }

/* ---- simulation -------------------------------------------------------------------------------- */

static const mjtNum *obj_pos(const mjData *d, const obj_t *o) {
  return o->type == mjOBJ_SITE ? d->site_xpos + 3 * o->id : d->xpos + 3 * o->id;
}

static double obj_distance(const mjData *d, const obj_t *a, const obj_t *b) {
  const mjtNum *p = obj_pos(d, a), *q = obj_pos(d, b);
  double dx = p[0] - q[0], dy = p[1] - q[1], dz = p[2] - q[2];
  return sqrt(dx * dx + dy * dy + dz * dz);
}

/* Angle between the body's z axis and the world's: the third column of its rotation matrix
 * (row-major xmat) is that axis in world coordinates, so cos(tilt) = xmat[8]. */
static double body_tilt(const mjData *d, int body) {
  double c = d->xmat[9 * body + 8];
  return acos(c > 1.0 ? 1.0 : (c < -1.0 ? -1.0 : c));
}

/* Float conversion that stays defined for values beyond float's range. */
static float to_float(double x) {
  if (x > FLT_MAX) return FLT_MAX;
  if (x < -FLT_MAX) return -FLT_MAX;
  return (float)x;
}

static void write_obs(const frl_mjenv_t *e, float *obs) {
  const mjData *d = e->d;
  int k = 0;
  for (int i = 0; i < e->n_obs; i++) {
    const obs_item_t *it = &e->obs[i];
    const mjtNum *src;
    switch (it->kind) {
    case OBS_QPOS: src = d->qpos + it->start; break;
    case OBS_QVEL: src = d->qvel + it->start; break;
    case OBS_SENSOR: src = d->sensordata + it->start; break;
    case OBS_POS: src = obj_pos(d, &it->a); break;
    case OBS_HEIGHT: src = obj_pos(d, &it->a) + 2; break;
    case OBS_COM_VEL: src = d->subtree_linvel + 3 * it->a.id; break;
    default: { /* OBS_DELTA: b - a */
      const mjtNum *p = obj_pos(d, &it->a), *q = obj_pos(d, &it->b);
      for (int j = 0; j < 3; j++) obs[k++] = to_float(q[j] - p[j]);
      continue;
    }
    }
    for (int j = 0; j < it->count; j++) obs[k++] = to_float(src[j]);
  }
  assert(k == e->obs_dim);
}

/* Recomputes every derived quantity for the current qpos/qvel, plus the subtree velocities when
 * an observation needs them (mj_forward leaves them out). */
static void forward(frl_mjenv_t *e) {
  mj_forward(e->m, e->d);
  if (e->need_subtree_vel) mj_subtreeVel(e->m, e->d);
}

void frl_mjenv_reset(frl_mjenv_t *e, frl_rng_t *rng, float *obs) {
  const mjModel *m = e->m;
  mjData *d = e->d;
  mj_resetData(m, d);
  for (int i = 0; i < e->n_resets; i++) {
    const reset_op_t *op = &e->resets[i];
    mjtNum *x = (op->qvel ? d->qvel : d->qpos) + op->start;
    switch (op->kind) {
    case RESET_SET:
      for (int j = 0; j < op->count; j++) x[j] = op->values[j];
      break;
    case RESET_UNIFORM:
      for (int j = 0; j < op->count; j++) x[j] += op->a * (2.0 * frl_rng_uniform(rng) - 1.0);
      break;
    case RESET_NORMAL:
      for (int j = 0; j < op->count; j++) x[j] += op->a * frl_rng_normal(rng);
      break;
    default: { /* RESET_DISK: uniform over the annulus' area, so r^2 is uniform in [a^2, b^2] */
      double r2 = op->a * op->a + frl_rng_uniform(rng) * (op->b * op->b - op->a * op->a);
      double phi = 2.0 * M_PI * frl_rng_uniform(rng);
      x[0] = sqrt(r2) * cos(phi);
      x[1] = sqrt(r2) * sin(phi);
      break;
    }
    }
  }
  /* Noise on a free or ball joint's quaternion leaves it off the unit sphere. */
  mj_normalizeQuat(m, d->qpos);
  forward(e);
  write_obs(e, obs);
}

int frl_mjenv_set_state(frl_mjenv_t *e, const double *s, int n, float *obs) {
  const mjModel *m = e->m;
  mjData *d = e->d;
  if (n != m->nq + m->nv) return FRL_EDIM;
  for (int i = 0; i < n; i++)
    if (!isfinite(s[i])) return FRL_EUSAGE;
  memcpy(d->qpos, s, sizeof(mjtNum) * (size_t)m->nq);
  memcpy(d->qvel, s + m->nq, sizeof(mjtNum) * (size_t)m->nv);
  if (m->na > 0) memset(d->act, 0, sizeof(mjtNum) * (size_t)m->na);
  if (m->nu > 0) memset(d->ctrl, 0, sizeof(mjtNum) * (size_t)m->nu);
  memset(d->qacc_warmstart, 0, sizeof(mjtNum) * (size_t)m->nv);
  forward(e);
  write_obs(e, obs);
  return 0;
}

/* True when any qpos or qvel is NaN or beyond mjMAXVAL, MuJoCo's own divergence test. */
static bool state_bad(const mjModel *m, const mjData *d) {
  for (int i = 0; i < m->nq; i++)
    if (mju_isBad(d->qpos[i])) return true;
  for (int i = 0; i < m->nv; i++)
    if (mju_isBad(d->qvel[i])) return true;
  return false;
}

static int divergence_warnings(const mjData *d) {
  return d->warning[mjWARN_BADQPOS].number + d->warning[mjWARN_BADQVEL].number +
         d->warning[mjWARN_BADQACC].number;
}

/* Joints with limits (hinge and slide) whose position is past the range by more than the
 * margin. MuJoCo's limits are soft, so a joint pushed into its stop does go slightly past. */
static int limit_violations(const frl_mjenv_t *e) {
  const mjModel *m = e->m;
  const mjData *d = e->d;
  int count = 0;
  for (int j = 0; j < m->njnt; j++) {
    if (!m->jnt_limited[j] || (m->jnt_type[j] != mjJNT_HINGE && m->jnt_type[j] != mjJNT_SLIDE))
      continue;
    double q = d->qpos[m->jnt_qposadr[j]];
    if (q < m->jnt_range[2 * j] - e->limit_margin || q > m->jnt_range[2 * j + 1] + e->limit_margin)
      count++;
  }
  return count;
}

void frl_mjenv_step(frl_mjenv_t *e, const float *action, float *obs, frl_step_t *out) {
  const mjModel *m = e->m;
  mjData *d = e->d;
  for (int i = 0; i < m->nu; i++) {
    double lo = m->actuator_ctrlrange[2 * i], hi = m->actuator_ctrlrange[2 * i + 1];
    double u = action[i];
    d->ctrl[i] = isnan(u) ? 0.5 * (lo + hi) : (u < lo ? lo : (u > hi ? hi : u));
  }
  for (int i = 0; i < e->n_terms; i++) {
    term_t *t = &e->terms[i];
    if (t->kind == TERM_VELOCITY) memcpy(t->before, obj_pos(d, &t->a), sizeof t->before);
    if (t->kind == TERM_COM_VELOCITY)
      memcpy(t->before, d->subtree_com + 3 * t->a.id, sizeof t->before);
  }
  int warnings = divergence_warnings(d);
  double start = d->time;

  for (int k = 0; k < e->frame_skip; k++) mj_step(m, d);
  /* mj_step leaves positions, contacts and sensors computed for the state before its last
   * integration; one more forward pass makes every quantity describe the new state. */
  forward(e);

  if (divergence_warnings(d) != warnings || state_bad(m, d)) {
    frl_warn("mujoco task '%s': simulation unstable in the step from t=%.4f s (NaN or a value "
             "beyond 1e10 in qpos, qvel or qacc); the episode ends",
             e->task_path, start);
    mj_resetData(m, d);
    forward(e);
    write_obs(e, obs);
    out->reward = 0.0f;
    out->terminal = true;
    return;
  }

  const double dt = e->frame_skip * m->opt.timestep;
  int violations = limit_violations(e);
  double reward = 0.0;
  for (int i = 0; i < e->n_terms; i++) {
    const term_t *t = &e->terms[i];
    double v = 0.0;
    switch (t->kind) {
    case TERM_VELOCITY:
      v = (obj_pos(d, &t->a)[t->axis] - t->before[t->axis]) / dt;
      break;
    case TERM_COM_VELOCITY:
      v = (d->subtree_com[3 * t->a.id + t->axis] - t->before[t->axis]) / dt;
      break;
    case TERM_HEIGHT:
      v = obj_pos(d, &t->a)[2] - t->level;
      break;
    case TERM_CTRL_COST:
      for (int j = 0; j < m->nu; j++) v += d->ctrl[j] * d->ctrl[j];
      break;
    case TERM_TORQUE_COST:
      for (int j = 0; j < m->nv; j++) v += fabs(d->qfrc_actuator[j]);
      break;
    case TERM_ALIVE:
      v = 1.0;
      break;
    case TERM_DISTANCE:
      v = obj_distance(d, &t->a, &t->b);
      break;
    default: /* TERM_LIMIT_VIOLATIONS */
      v = violations;
      break;
    }
    reward += t->weight * v;
  }

  bool terminal = false;
  for (int i = 0; i < e->n_rules; i++) {
    const rule_t *r = &e->rules[i];
    if (r->kind == RULE_HEIGHT) {
      double z = obj_pos(d, &r->a)[2];
      if (z < r->lo || z > r->hi) terminal = true;
    } else if (body_tilt(d, r->a.id) > r->hi) {
      terminal = true;
    }
  }
  if (e->has_success && obj_distance(d, &e->success_a, &e->success_b) < e->success_bound) {
    out->success = true;
    if (e->success_terminal) terminal = true;
  }
  out->reward = to_float(reward);
  out->terminal = terminal;
  out->violations = (uint32_t)violations;
  write_obs(e, obs);
}

/* ---- the built-in environments ----------------------------------------------------------------- */

typedef struct {
  frl_mjenv_t *env;
} mj_state_t;

/* Opens <model dir>/<name>.task. */
static int open_builtin(void *state, frl_env_spec_t *spec, char *err, size_t errlen,
                        const char *name) {
  mj_state_t *s = state;
  char dir[PATH_MAX], path[PATH_MAX + 64];
  if (frl_mjenv_model_dir(dir, sizeof dir) != 0) {
    snprintf(err, errlen, "mujoco env '%s': FLEETRL_MODEL_DIR is longer than %d bytes", name,
             PATH_MAX - 1);
    return FRL_EUSAGE;
  }
  snprintf(path, sizeof path, "%s/%s.task", dir, name);
  if (access(path, F_OK) != 0) {
    snprintf(err, errlen,
             "mujoco env '%s': task file '%s' not found (set FLEETRL_MODEL_DIR to the folder "
             "holding the fleetrl task and model files)",
             name, path);
    return FRL_ENOTFOUND;
  }
  char why[1024];
  int rc = frl_mjenv_open(&s->env, path, spec, why, sizeof why);
  if (rc != 0) snprintf(err, errlen, "mujoco env '%s': %s", name, why);
  return rc;
}

static void mj_reset(void *state, frl_rng_t *rng, float *obs) {
  frl_mjenv_reset(((mj_state_t *)state)->env, rng, obs);
}

static void mj_step_env(void *state, frl_rng_t *rng, const float *action, float *obs,
                        frl_step_t *out) {
  frl_mjenv_step(((mj_state_t *)state)->env, action, obs, out);
}

static int mj_set_state(void *state, const double *s, int n, float *obs) {
  return frl_mjenv_set_state(((mj_state_t *)state)->env, s, n, obs);
}

static void mj_close(void *state) { frl_mjenv_destroy(&((mj_state_t *)state)->env); }

static void mj_physics_nominal(const void *state, double *nominal) {
  memcpy(nominal, ((const mj_state_t *)state)->env->phys.nominal, sizeof(double) * FRL_PHYS_COUNT);
}

static void mj_set_physics(void *state, const double *value) {
  physics_apply(((mj_state_t *)state)->env, value);
}

const struct mjModel_ *frl__env_mj_model(const frl_env_t *e) {
  while (e && frl__env_impl(e)->close != mj_close) e = frl__env_inner(e);
  return e ? ((const mj_state_t *)frl__env_state(e))->env->m : NULL;
}

#define MJ_BUILTIN(sym, fn, envname)                                                         \
  static int fn(void *state, frl_env_spec_t *spec, char *err, size_t errlen) {              \
    return open_builtin(state, spec, err, errlen, envname);                                  \
  }                                                                                          \
  const frl_env_impl_t sym = {                                                               \
      .name = envname,                                                                       \
      .state_size = sizeof(mj_state_t),                                                      \
      .init = NULL,                                                                          \
      .reset = mj_reset,                                                                     \
      .step = mj_step_env,                                                                   \
      .set_state = mj_set_state,                                                             \
      .open = fn,                                                                            \
      .close = mj_close,                                                                     \
      .physics_nominal = mj_physics_nominal,                                                 \
      .set_physics = mj_set_physics,                                                         \
  };

MJ_BUILTIN(frl_env_humanoid_standup, open_humanoid_standup, "humanoid-standup")
MJ_BUILTIN(frl_env_humanoid_walk, open_humanoid_walk, "humanoid-walk")
MJ_BUILTIN(frl_env_mj_reacher, open_mj_reacher, "mj-reacher")
MJ_BUILTIN(frl_env_walker, open_walker, "walker")
