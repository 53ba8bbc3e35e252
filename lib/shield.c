/* shield.c: the limits-file parser and the safety shield (rate and bound clipping, a
 * discrete-time control-barrier rule per joint, and the safe action). The file is untrusted: it
 * is bounded in size, line length and values, and every error names its line and key. */
#include "shield.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define MAX_TOKENS (FRL_SHIELD_MAX_DIM + 8)
#define MAX_INDEX 65535 /* observation and action indices in the file; checked again at use */

struct frl_shield {
  frl_limits_t lim;
  int obs_dim, act_dim, n_actions;
  double low[FRL_SHIELD_MAX_DIM], high[FRL_SHIELD_MAX_DIM]; /* bounds in effect */
  double delta[FRL_SHIELD_MAX_DIM];
  float last[FRL_SHIELD_MAX_DIM];
  bool have_last;
};

void frl_limits_init(frl_limits_t *lim) {
  memset(lim, 0, sizeof *lim);
  for (int i = 0; i < FRL_SHIELD_MAX_DIM; i++) {
    lim->action_min[i] = -INFINITY;
    lim->action_max[i] = INFINITY;
    lim->max_delta[i] = INFINITY;
  }
  lim->barrier_gain = 10.0;
  lim->control_period = 0.01;
  lim->safe = FRL_SAFE_HOLD;
  lim->safe_posture = -1;
}

/* ---- parsing ----------------------------------------------------------------------------- */

typedef struct {
  const char *source;
  int line;
  char *err;
  size_t errlen;
} parse_t;

static int fail(parse_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parse_t *p, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (p->err && p->errlen) {
    if (p->line > 0) snprintf(p->err, p->errlen, "%s:%d: %s", p->source, p->line, msg);
    else snprintf(p->err, p->errlen, "%s: %s", p->source, msg);
  }
  return FRL_EUSAGE;
}

/* A number from the file: finite, within FRL_SHIELD_MAX_VALUE, the whole token. */
static int number(parse_t *p, const char *key, const char *tok, double *out) {
  char *end = NULL;
  errno = 0;
  double d = strtod(tok, &end);
  if (end == tok || *end != '\0' || errno == ERANGE || !isfinite(d))
    return fail(p, "key '%s': '%.40s' is not a number", key, tok);
  if (fabs(d) > FRL_SHIELD_MAX_VALUE)
    return fail(p, "key '%s': %g is beyond the limit of %g in magnitude", key, d,
                FRL_SHIELD_MAX_VALUE);
  *out = d;
  return 0;
}

static int integer(parse_t *p, const char *key, const char *tok, int lo, int hi, int *out) {
  double d;
  int rc = number(p, key, tok, &d);
  if (rc) return rc;
  if (d != floor(d) || d < lo || d > hi)
    return fail(p, "key '%s': %.40s must be an integer in [%d, %d]", key, tok, lo, hi);
  *out = (int)d;
  return 0;
}

static bool valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= FRL_SHIELD_MAX_NAME) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.') return false;
  return true;
}

static int name_arg(parse_t *p, const char *key, const char *tok, char *out) {
  if (!valid_name(tok))
    return fail(p, "key '%s': name '%.40s' must be 1-%d characters of letters, digits, _ - .",
                key, tok, FRL_SHIELD_MAX_NAME - 1);
  snprintf(out, FRL_SHIELD_MAX_NAME, "%s", tok);
  return 0;
}

/* key v1 [v2 ...]: one value, or one per action dimension. */
static int vector(parse_t *p, const char *key, char **tok, int n, double *out, int *count) {
  if (n < 1) return fail(p, "key '%s': needs at least one value", key);
  if (n > FRL_SHIELD_MAX_DIM)
    return fail(p, "key '%s': %d values, the limit is %d", key, n, FRL_SHIELD_MAX_DIM);
  for (int i = 0; i < n; i++) {
    int rc = number(p, key, tok[i], &out[i]);
    if (rc) return rc;
  }
  *count = n;
  return 0;
}

static int parse_joint(parse_t *p, char **tok, int n, frl_limits_t *lim) {
  if (n < 1) return fail(p, "key 'joint': needs a name, then key=value settings");
  if (lim->n_joints == FRL_SHIELD_MAX_JOINTS)
    return fail(p, "key 'joint': more than %d joints", FRL_SHIELD_MAX_JOINTS);
  frl_joint_limit_t j = {.position = -1, .velocity = -1, .action = -1, .vmax = INFINITY,
                         .command = FRL_JOINT_VELOCITY, .scale = 1.0, .brake = 0.0};
  int rc = name_arg(p, "joint", tok[0], j.name);
  if (rc) return rc;
  for (int i = 0; i < lim->n_joints; i++)
    if (strcmp(lim->joints[i].name, j.name) == 0)
      return fail(p, "joint %s: defined twice", j.name);
  bool have_min = false, have_max = false, have_brake = false;
  unsigned seen = 0;
  static const char *keys[] = {"position", "velocity", "action", "min", "max", "vmax",
                               "command", "scale", "brake"};
  for (int t = 1; t < n; t++) {
    char *eq = strchr(tok[t], '=');
    if (!eq || eq == tok[t] || eq[1] == '\0')
      return fail(p, "joint %s: '%.40s' is not key=value", j.name, tok[t]);
    *eq = '\0';
    const char *k = tok[t], *v = eq + 1;
    int which = -1;
    for (int q = 0; q < (int)FRL_ARRAY_LEN(keys); q++)
      if (strcmp(k, keys[q]) == 0) which = q;
    if (which < 0)
      return fail(p, "joint %s: unknown key '%.40s' (known: position velocity action min max "
                  "vmax command scale brake)", j.name, k);
    if (seen & (1u << which)) return fail(p, "joint %s: key '%s' given twice", j.name, k);
    seen |= 1u << which;
    char full[64];
    snprintf(full, sizeof full, "%s.%s", j.name, k);
    switch (which) {
    case 0: rc = integer(p, full, v, 0, MAX_INDEX, &j.position); break;
    case 1: rc = integer(p, full, v, 0, MAX_INDEX, &j.velocity); break;
    case 2: rc = integer(p, full, v, 0, FRL_SHIELD_MAX_DIM - 1, &j.action); break;
    case 3: rc = number(p, full, v, &j.min); have_min = true; break;
    case 4: rc = number(p, full, v, &j.max); have_max = true; break;
    case 5:
      rc = number(p, full, v, &j.vmax);
      if (!rc && !(j.vmax > 0)) rc = fail(p, "key '%s': %g must be > 0", full, j.vmax);
      break;
    case 6:
      if (strcmp(v, "velocity") == 0) j.command = FRL_JOINT_VELOCITY;
      else if (strcmp(v, "effort") == 0) j.command = FRL_JOINT_EFFORT;
      else rc = fail(p, "key '%s': '%.40s' is not velocity|effort", full, v);
      break;
    case 7:
      rc = number(p, full, v, &j.scale);
      if (!rc && !(j.scale > 0)) rc = fail(p, "key '%s': %g must be > 0", full, j.scale);
      break;
    case 8:
      rc = number(p, full, v, &j.brake);
      if (!rc && !(j.brake > 0)) rc = fail(p, "key '%s': %g must be > 0", full, j.brake);
      have_brake = true;
      break;
    }
    if (rc) return rc;
  }
  if (j.position < 0) return fail(p, "joint %s: key 'position' (observation index) is required", j.name);
  if (j.action < 0) return fail(p, "joint %s: key 'action' (action dimension) is required", j.name);
  if (!have_min || !have_max) return fail(p, "joint %s: keys 'min' and 'max' are required", j.name);
  if (!(j.min < j.max))
    return fail(p, "joint %s: key 'min' %g must be below 'max' %g", j.name, j.min, j.max);
  if (j.command == FRL_JOINT_EFFORT) {
    if (j.velocity < 0)
      return fail(p, "joint %s: command=effort needs key 'velocity' (the barrier reads the "
                  "joint's speed)", j.name);
    if (!have_brake) return fail(p, "joint %s: command=effort needs key 'brake'", j.name);
  } else if (have_brake) {
    return fail(p, "joint %s: key 'brake' applies to command=effort only", j.name);
  }
  for (int i = 0; i < lim->n_joints; i++)
    if (lim->joints[i].action == j.action)
      return fail(p, "joint %s: action %d already drives joint %s", j.name, j.action,
                  lim->joints[i].name);
  lim->joints[lim->n_joints++] = j;
  return 0;
}

static int parse_posture(parse_t *p, char **tok, int n, frl_limits_t *lim, int *posture_dim) {
  if (n < 2) return fail(p, "key 'posture': needs a name and at least one value");
  if (lim->n_postures == FRL_SHIELD_MAX_POSTURES)
    return fail(p, "key 'posture': more than %d postures", FRL_SHIELD_MAX_POSTURES);
  frl_posture_t *po = &lim->postures[lim->n_postures];
  memset(po, 0, sizeof *po);
  int rc = name_arg(p, "posture", tok[0], po->name);
  if (rc) return rc;
  for (int i = 0; i < lim->n_postures; i++)
    if (strcmp(lim->postures[i].name, po->name) == 0)
      return fail(p, "posture %s: defined twice", po->name);
  double v[FRL_SHIELD_MAX_DIM];
  int count = 0;
  char key[64];
  snprintf(key, sizeof key, "posture %s", po->name);
  rc = vector(p, key, tok + 1, n - 1, v, &count);
  if (rc) return rc;
  if (*posture_dim && count != *posture_dim)
    return fail(p, "posture %s: %d values, an earlier posture has %d", po->name, count,
                *posture_dim);
  *posture_dim = count;
  for (int i = 0; i < count; i++) po->action[i] = (float)v[i];
  lim->n_postures++;
  return 0;
}

/* Splits a line into tokens in place; returns the count or -1 when there are too many. */
static int tokenize(char *s, char **tok) {
  int n = 0;
  while (*s) {
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) break;
    if (n == MAX_TOKENS) return -1;
    tok[n++] = s;
    while (*s && *s != ' ' && *s != '\t') s++;
    if (*s) *s++ = '\0';
  }
  return n;
}

int frl_limits_parse(const char *text, size_t len, const char *source, frl_limits_t *out,
                     char *err, size_t errlen) {
  parse_t p = {.source = source ? source : "limits", .err = err, .errlen = errlen};
  if (len > FRL_SHIELD_MAX_FILE)
    return fail(&p, "%zu bytes, the limit is %u", len, FRL_SHIELD_MAX_FILE);
  frl_limits_t *lim = frl_xmalloc(sizeof *lim);
  frl_limits_init(lim);
  char *line = frl_xmalloc(FRL_SHIELD_MAX_LINE + 1);
  char *tok[MAX_TOKENS];
  int rc = 0, posture_dim = 0;
  int first_line[16] = {0}; /* line of the first occurrence of each single-valued key */
  char safe_name[FRL_SHIELD_MAX_NAME] = "";
  static const char *single[] = {"action_dim", "action_min", "action_max", "max_delta",
                                 "barrier_gain", "control_period", "safe_action"};
  size_t pos = 0;
  while (pos < len && rc == 0) {
    p.line++;
    size_t end = pos;
    while (end < len && text[end] != '\n') end++;
    size_t n = end - pos;
    if (n > FRL_SHIELD_MAX_LINE) {
      rc = fail(&p, "line is %zu characters, the limit is %d", n, FRL_SHIELD_MAX_LINE);
      break;
    }
    if (memchr(text + pos, '\0', n)) {
      rc = fail(&p, "line contains a NUL byte");
      break;
    }
    memcpy(line, text + pos, n);
    line[n] = '\0';
    pos = end + 1;
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    for (char *c = line; *c; c++) {
      if (*c == '\r') *c = ' ';
      else if ((unsigned char)*c < ' ' && *c != '\t') {
        rc = fail(&p, "line contains control character 0x%02x", (unsigned char)*c);
        break;
      }
    }
    if (rc) break;
    int nt = tokenize(line, tok);
    if (nt < 0) {
      rc = fail(&p, "more than %d values on one line", MAX_TOKENS);
      break;
    }
    if (nt == 0) continue;
    const char *key = tok[0];
    for (int k = 0; k < (int)FRL_ARRAY_LEN(single); k++) {
      if (strcmp(key, single[k]) != 0) continue;
      if (first_line[k]) rc = fail(&p, "key '%s' given twice (first on line %d)", key, first_line[k]);
      first_line[k] = p.line;
    }
    if (rc) break;
    double d = 0;
    if (strcmp(key, "action_dim") == 0) {
      if (nt != 2) rc = fail(&p, "key 'action_dim': needs exactly one value");
      else rc = integer(&p, key, tok[1], 1, FRL_SHIELD_MAX_DIM, &lim->action_dim);
    } else if (strcmp(key, "action_min") == 0) {
      rc = vector(&p, key, tok + 1, nt - 1, lim->action_min, &lim->n_action_min);
    } else if (strcmp(key, "action_max") == 0) {
      rc = vector(&p, key, tok + 1, nt - 1, lim->action_max, &lim->n_action_max);
    } else if (strcmp(key, "max_delta") == 0) {
      rc = vector(&p, key, tok + 1, nt - 1, lim->max_delta, &lim->n_max_delta);
      for (int i = 0; rc == 0 && i < lim->n_max_delta; i++)
        if (!(lim->max_delta[i] > 0))
          rc = fail(&p, "key 'max_delta': value %d is %g, must be > 0", i + 1, lim->max_delta[i]);
    } else if (strcmp(key, "barrier_gain") == 0 || strcmp(key, "control_period") == 0) {
      if (nt != 2) rc = fail(&p, "key '%s': needs exactly one value", key);
      else rc = number(&p, key, tok[1], &d);
      if (rc == 0 && !(d > 0)) rc = fail(&p, "key '%s': %g must be > 0", key, d);
      if (rc == 0 && key[0] == 'c' && d > 10) rc = fail(&p, "key '%s': %g s is above 10 s", key, d);
      if (rc == 0) *(key[0] == 'b' ? &lim->barrier_gain : &lim->control_period) = d;
    } else if (strcmp(key, "joint") == 0) {
      rc = parse_joint(&p, tok + 1, nt - 1, lim);
    } else if (strcmp(key, "posture") == 0) {
      rc = parse_posture(&p, tok + 1, nt - 1, lim, &posture_dim);
    } else if (strcmp(key, "safe_action") == 0) {
      if (nt == 2 && strcmp(tok[1], "hold") == 0) lim->safe = FRL_SAFE_HOLD;
      else if (nt == 2 && strcmp(tok[1], "zero") == 0) lim->safe = FRL_SAFE_ZERO;
      else if (nt == 3 && strcmp(tok[1], "posture") == 0) {
        lim->safe = FRL_SAFE_POSTURE;
        rc = name_arg(&p, "safe_action", tok[2], safe_name);
      } else {
        rc = fail(&p, "key 'safe_action': expected hold | zero | posture NAME");
      }
    } else {
      rc = fail(&p, "unknown key '%.40s' (known: action_dim action_min action_max max_delta "
                "barrier_gain control_period joint posture safe_action)", key);
    }
  }
  if (rc) goto done;
  /* Whole-file checks; p.line 0 makes the message name the file only. */
  p.line = 0;
  int dims[3] = {lim->n_action_min, lim->n_action_max, lim->n_max_delta};
  static const char *dim_keys[3] = {"action_min", "action_max", "max_delta"};
  for (int k = 0; k < 3; k++) {
    if (dims[k] > 1 && lim->action_dim && dims[k] != lim->action_dim) {
      rc = fail(&p, "key '%s' (line %d): %d values, action_dim is %d", dim_keys[k],
                first_line[1 + k], dims[k], lim->action_dim);
      goto done;
    }
  }
  if (lim->n_action_min > 1 && lim->n_action_max > 1 && lim->n_action_min != lim->n_action_max) {
    rc = fail(&p, "keys 'action_min' and 'action_max': %d and %d values", lim->n_action_min,
              lim->n_action_max);
    goto done;
  }
  if (lim->n_action_min && lim->n_action_max) {
    int nd = FRL_MAX(lim->n_action_min, lim->n_action_max);
    for (int i = 0; i < nd; i++) {
      double lo = lim->action_min[lim->n_action_min == 1 ? 0 : i];
      double hi = lim->action_max[lim->n_action_max == 1 ? 0 : i];
      if (!(lo <= hi)) {
        rc = fail(&p, "keys 'action_min'/'action_max' (line %d): dimension %d has min %g above "
                  "max %g", first_line[1], i, lo, hi);
        goto done;
      }
    }
  }
  if (lim->action_dim && posture_dim && posture_dim != lim->action_dim) {
    rc = fail(&p, "key 'posture': %d values, action_dim is %d", posture_dim, lim->action_dim);
    goto done;
  }
  for (int i = 0; i < lim->n_joints; i++) {
    if (lim->action_dim && lim->joints[i].action >= lim->action_dim) {
      rc = fail(&p, "joint %s: action %d is not below action_dim %d", lim->joints[i].name,
                lim->joints[i].action, lim->action_dim);
      goto done;
    }
  }
  if (lim->safe == FRL_SAFE_POSTURE) {
    for (int i = 0; i < lim->n_postures; i++)
      if (strcmp(lim->postures[i].name, safe_name) == 0) lim->safe_posture = i;
    if (lim->safe_posture < 0) {
      rc = fail(&p, "key 'safe_action' (line %d): no posture named '%s'", first_line[6],
                safe_name);
      goto done;
    }
  }
  if (lim->n_joints > 0 && lim->barrier_gain * lim->control_period > 1.0) {
    rc = fail(&p, "keys 'barrier_gain' %g and 'control_period' %g: their product must be <= 1, "
              "or one step could cross a limit", lim->barrier_gain, lim->control_period);
    goto done;
  }
  *out = *lim;
done:
  free(line);
  free(lim);
  return rc;
}

int frl_limits_load(const char *path, frl_limits_t *out, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
    return -e;
  }
  char *buf = frl_xmalloc(FRL_SHIELD_MAX_FILE + 1);
  size_t n = fread(buf, 1, FRL_SHIELD_MAX_FILE + 1, f);
  int rc;
  if (ferror(f)) {
    rc = -EIO;
    snprintf(err, errlen, "%s: read error", path);
  } else if (n > FRL_SHIELD_MAX_FILE) {
    rc = FRL_EUSAGE;
    snprintf(err, errlen, "%s: larger than the limit of %u bytes", path, FRL_SHIELD_MAX_FILE);
  } else {
    rc = frl_limits_parse(buf, n, path, out, err, errlen);
  }
  free(buf);
  fclose(f);
  return rc;
}

/* ---- the shield -------------------------------------------------------------------------- */

int frl_shield_new(frl_shield_t **out, const frl_limits_t *lim, int obs_dim, int act_dim,
                   int n_actions, const float *low, const float *high, char *err,
                   size_t errlen) {
  if (obs_dim < 1 || act_dim < 1 || act_dim > FRL_SHIELD_MAX_DIM || (n_actions > 0 && act_dim != 1) ||
      (n_actions <= 0 && (!low || !high))) {
    snprintf(err, errlen, "shield: obs_dim %d, act_dim %d (1..%d), n_actions %d do not describe a task",
             obs_dim, act_dim, FRL_SHIELD_MAX_DIM, n_actions);
    return FRL_EUSAGE;
  }
  frl_shield_t *s = frl_xcalloc(1, sizeof *s);
  if (lim) s->lim = *lim;
  else frl_limits_init(&s->lim);
  const frl_limits_t *L = &s->lim;
  s->obs_dim = obs_dim;
  s->act_dim = act_dim;
  s->n_actions = n_actions;
  if (L->action_dim && L->action_dim != act_dim) {
    snprintf(err, errlen, "limits: action_dim %d, the task has %d action dimensions", L->action_dim,
             act_dim);
    goto fail;
  }
  int counts[3] = {L->n_action_min, L->n_action_max, L->n_max_delta};
  static const char *keys[3] = {"action_min", "action_max", "max_delta"};
  for (int k = 0; k < 3; k++) {
    if (n_actions > 0 && counts[k]) {
      snprintf(err, errlen, "limits: key '%s' does not apply to a task with discrete actions", keys[k]);
      goto fail;
    }
    if (counts[k] > 1 && counts[k] != act_dim) {
      snprintf(err, errlen, "limits: key '%s' has %d values, the task has %d action dimensions",
               keys[k], counts[k], act_dim);
      goto fail;
    }
  }
  if (n_actions > 0 && L->n_joints) {
    snprintf(err, errlen, "limits: joints do not apply to a task with discrete actions");
    goto fail;
  }
  for (int i = 0; i < act_dim; i++) {
    if (n_actions > 0) {
      s->low[i] = 0;
      s->high[i] = n_actions - 1;
      s->delta[i] = INFINITY;
      continue;
    }
    double lo = L->n_action_min ? L->action_min[L->n_action_min == 1 ? 0 : i] : -INFINITY;
    double hi = L->n_action_max ? L->action_max[L->n_action_max == 1 ? 0 : i] : INFINITY;
    s->low[i] = FRL_MAX(lo, (double)low[i]);
    s->high[i] = FRL_MIN(hi, (double)high[i]);
    if (!(s->low[i] <= s->high[i])) {
      snprintf(err, errlen, "limits: action dimension %d: [%g, %g] does not overlap the task's "
               "bounds [%g, %g]", i, lo, hi, (double)low[i], (double)high[i]);
      goto fail;
    }
    s->delta[i] = L->n_max_delta ? L->max_delta[L->n_max_delta == 1 ? 0 : i] : INFINITY;
  }
  for (int j = 0; j < L->n_joints; j++) {
    const frl_joint_limit_t *jt = &L->joints[j];
    if (jt->position >= obs_dim || jt->velocity >= obs_dim || jt->action >= act_dim) {
      snprintf(err, errlen, "limits: joint %s: position %d / velocity %d must be below obs_dim "
               "%d and action %d below act_dim %d", jt->name, jt->position, jt->velocity,
               obs_dim, jt->action, act_dim);
      goto fail;
    }
    if (jt->command == FRL_JOINT_VELOCITY && !(s->low[jt->action] <= 0 && s->high[jt->action] >= 0)) {
      snprintf(err, errlen, "limits: joint %s: the bounds of action %d [%g, %g] must contain 0 "
               "(standing still) for the barrier to hold", jt->name, jt->action,
               s->low[jt->action], s->high[jt->action]);
      goto fail;
    }
  }
  if (L->safe == FRL_SAFE_POSTURE) {
    const frl_posture_t *po = &L->postures[L->safe_posture];
    for (int i = 0; i < act_dim; i++) {
      double v = po->action[i];
      if (n_actions > 0 ? (v != floor(v) || v < 0 || v >= n_actions)
                        : !(v >= s->low[i] && v <= s->high[i])) {
        snprintf(err, errlen, "limits: safe posture %s: value %d (%g) is outside the action "
                 "bounds [%g, %g]", po->name, i, v, s->low[i], s->high[i]);
        goto fail;
      }
    }
  }
  *out = s;
  return 0;
fail:
  free(s);
  return FRL_EUSAGE;
}

void frl_shield_destroy(frl_shield_t **self_p) {
  if (!self_p || !*self_p) return;
  free(*self_p);
  *self_p = NULL;
}

static double clampd(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* The barrier for one joint, on action value a; returns the new value. Velocity command: the
 * discrete-time barrier condition of shield.h bounds the commanded speed toward each limit by
 * k * distance (which is negative beyond a limit: the joint is driven back), and |v| <= vmax.
 * Effort command: when the observed speed toward a limit exceeds what the barrier allows, the
 * effort toward it is capped at -brake * excess. */
static double barrier(const frl_shield_t *s, const frl_joint_limit_t *j, const float *obs, double a) {
  double k = s->lim.barrier_gain, q = obs[j->position];
  if (!isfinite(q)) return a; /* the watchdog puts the robot in safe mode for this */
  double up = k * (j->max - q), down = -k * (q - j->min);
  if (j->command == FRL_JOINT_VELOCITY) {
    double v = a * j->scale;
    double hi = FRL_MIN(up, j->vmax), lo = FRL_MAX(down, -j->vmax);
    if (v > hi) v = hi;
    if (v < lo) v = lo;
    /* Beyond a limit, hi < lo can happen: the first bound (back toward the range) wins, but the
     * speed limit always holds. */
    v = clampd(v, -j->vmax, j->vmax);
    return v / j->scale;
  }
  double qd = obs[j->velocity];
  if (!isfinite(qd)) return a;
  double excess_up = qd - FRL_MIN(up, j->vmax), excess_down = FRL_MAX(down, -j->vmax) - qd;
  if (excess_up > 0) a = FRL_MIN(a, -j->brake * excess_up);
  if (excess_down > 0) a = FRL_MAX(a, j->brake * excess_down);
  return a;
}

/* Bounds then barrier on out[]; counts into r. */
static void bound_and_barrier(frl_shield_t *s, const float *obs, double *a, frl_shield_result_t *r) {
  for (int i = 0; i < s->act_dim; i++) {
    double b = clampd(a[i], s->low[i], s->high[i]);
    if (b != a[i]) {
      r->clipped++;
      if (r->first_clipped < 0) r->first_clipped = i;
      a[i] = b;
    }
  }
  for (int j = 0; j < s->lim.n_joints; j++) {
    const frl_joint_limit_t *jt = &s->lim.joints[j];
    double b = clampd(barrier(s, jt, obs, a[jt->action]), s->low[jt->action], s->high[jt->action]);
    if (b != a[jt->action]) {
      r->barrier++;
      if (r->first_barrier < 0) r->first_barrier = j;
      a[jt->action] = b;
    }
  }
}

static void finish(frl_shield_t *s, const double *a, float *action) {
  for (int i = 0; i < s->act_dim; i++) {
    action[i] = (float)a[i];
    /* Float rounding must not add speed the barrier took away (round toward zero), nor step
     * outside a bound that the double respected. */
    if (fabs((double)action[i]) > fabs(a[i])) action[i] = nextafterf(action[i], 0.0f);
    if ((double)action[i] > s->high[i]) action[i] = nextafterf(action[i], -INFINITY);
    if ((double)action[i] < s->low[i]) action[i] = nextafterf(action[i], INFINITY);
    s->last[i] = action[i];
  }
  s->have_last = true;
}

void frl_shield_apply(frl_shield_t *s, const float *obs, float *action, frl_shield_result_t *r) {
  frl_shield_result_t local;
  if (!r) r = &local;
  *r = (frl_shield_result_t){.first_clipped = -1, .first_barrier = -1};
  double a[FRL_SHIELD_MAX_DIM];
  if (s->n_actions > 0) {
    double v = action[0];
    double b = isfinite(v) ? clampd(floor(v), 0, s->n_actions - 1) : (s->have_last ? s->last[0] : 0);
    if (b != v) {
      r->clipped = 1;
      r->first_clipped = 0;
    }
    a[0] = b;
    finish(s, a, action);
    return;
  }
  for (int i = 0; i < s->act_dim; i++) {
    double v = action[i];
    if (!isfinite(v)) {
      /* A broken policy output becomes "no change" (or standing still before any action). */
      v = s->have_last ? s->last[i] : clampd(0.0, s->low[i], s->high[i]);
      r->clipped++;
      if (r->first_clipped < 0) r->first_clipped = i;
    } else if (s->have_last && isfinite(s->delta[i])) {
      double lo = (double)s->last[i] - s->delta[i], hi = (double)s->last[i] + s->delta[i];
      double b = clampd(v, lo, hi);
      if (b != v) {
        r->clipped++;
        if (r->first_clipped < 0) r->first_clipped = i;
        v = b;
      }
    }
    a[i] = v;
  }
  bound_and_barrier(s, obs, a, r);
  finish(s, a, action);
}

void frl_shield_safe_action(frl_shield_t *s, const float *obs, float *action,
                            frl_shield_result_t *r) {
  frl_shield_result_t local;
  if (!r) r = &local;
  *r = (frl_shield_result_t){.first_clipped = -1, .first_barrier = -1};
  const frl_limits_t *L = &s->lim;
  double a[FRL_SHIELD_MAX_DIM];
  for (int i = 0; i < s->act_dim; i++) {
    switch (L->safe) {
    case FRL_SAFE_HOLD: a[i] = s->have_last ? s->last[i] : clampd(0.0, s->low[i], s->high[i]); break;
    case FRL_SAFE_ZERO: a[i] = clampd(0.0, s->low[i], s->high[i]); break;
    case FRL_SAFE_POSTURE: a[i] = L->postures[L->safe_posture].action[i]; break;
    }
  }
  if (s->n_actions <= 0) {
    bound_and_barrier(s, obs, a, r);
    /* The safe action itself is not an intervention on the policy; what bounds or barrier
     * changed of it is. */
  }
  finish(s, a, action);
}

void frl_shield_reset(frl_shield_t *s) { s->have_last = false; }

const frl_limits_t *frl_shield_limits(const frl_shield_t *s) { return &s->lim; }

void frl_shield_describe(const frl_shield_t *s, char *buf, size_t n) {
  const frl_limits_t *L = &s->lim;
  const char *safe = L->safe == FRL_SAFE_HOLD ? "hold" : L->safe == FRL_SAFE_ZERO ? "zero" : "posture";
  snprintf(buf, n, "%d action dims%s%s, %d joints (barrier k %g/s, period %g s), safe action %s%s%s",
           s->act_dim, L->n_action_min || L->n_action_max ? ", bounds" : "",
           L->n_max_delta ? ", max_delta" : "", L->n_joints, L->barrier_gain, L->control_period,
           safe, L->safe == FRL_SAFE_POSTURE ? " " : "",
           L->safe == FRL_SAFE_POSTURE ? L->postures[L->safe_posture].name : "");
}
