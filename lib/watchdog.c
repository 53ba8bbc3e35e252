/* watchdog.c: the robot's safe-mode decision from e-stop, broker silence, parameter age and
 * observation health, against a clock the caller passes in. */
#include "watchdog.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct frl_watchdog {
  frl_watchdog_limits_t lim;
  double heard, params;  /* latest times; params < 0 until any arrived */
  bool estop, bad_obs;
  uint32_t causes;       /* as of the last update */
};

frl_watchdog_t *frl_watchdog_new(const frl_watchdog_limits_t *limits, double now) {
  if (!(limits->max_broker_silence_s >= 0) || !isfinite(limits->max_broker_silence_s) ||
      !(limits->max_params_age_s >= 0) || !isfinite(limits->max_params_age_s))
    return NULL;
  frl_watchdog_t *w = frl_xcalloc(1, sizeof *w);
  w->lim = *limits;
  w->heard = now;
  w->params = -1;
  return w;
}

void frl_watchdog_destroy(frl_watchdog_t **self_p) {
  if (!self_p || !*self_p) return;
  free(*self_p);
  *self_p = NULL;
}

void frl_watchdog_heard(frl_watchdog_t *w, double t) {
  if (t > w->heard) w->heard = t;
}

void frl_watchdog_params(frl_watchdog_t *w, double t) {
  if (t > w->params) w->params = t;
}

void frl_watchdog_estop(frl_watchdog_t *w, bool on) { w->estop = on; }

bool frl_watchdog_observation(frl_watchdog_t *w, const float *obs, int n) {
  bool ok = true;
  for (int i = 0; i < n && ok; i++) ok = isfinite(obs[i]);
  w->bad_obs = !ok;
  return ok;
}

static uint32_t causes_at(const frl_watchdog_t *w, double now) {
  uint32_t c = 0;
  if (w->estop) c |= FRL_WD_ESTOP;
  if (w->bad_obs) c |= FRL_WD_OBS;
  if (w->lim.max_broker_silence_s > 0 && now - w->heard > w->lim.max_broker_silence_s)
    c |= FRL_WD_BROKER;
  /* Before the first parameters a robot acts with its warm-up policy through the shield; the
   * learner cannot publish before it has experience, so "no parameters yet" is not stale. */
  if (w->lim.max_params_age_s > 0 && w->params >= 0 && now - w->params > w->lim.max_params_age_s)
    c |= FRL_WD_PARAMS;
  return c;
}

bool frl_watchdog_update(frl_watchdog_t *w, double now, frl_watchdog_change_t *change) {
  uint32_t before = w->causes, after = causes_at(w, now);
  w->causes = after;
  if ((before != 0) == (after != 0)) return false;
  if (change) *change = (frl_watchdog_change_t){.entered = after != 0, .before = before, .after = after};
  return true;
}

bool frl_watchdog_safe(const frl_watchdog_t *w) { return w->causes != 0; }

uint32_t frl_watchdog_causes(const frl_watchdog_t *w) { return w->causes; }

const char *frl_watchdog_describe(uint32_t causes, char *buf, size_t n) {
  static const struct {
    uint32_t bit;
    const char *word;
  } words[] = {{FRL_WD_ESTOP, "e-stop"},
               {FRL_WD_BROKER, "broker silent"},
               {FRL_WD_PARAMS, "parameters stale"},
               {FRL_WD_OBS, "observation not finite"}};
  if (n == 0) return buf;
  buf[0] = '\0';
  size_t used = 0;
  for (size_t i = 0; i < FRL_ARRAY_LEN(words); i++) {
    if (!(causes & words[i].bit)) continue;
    int k = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", words[i].word);
    if (k < 0 || (size_t)k >= n - used) break;
    used += (size_t)k;
  }
  if (causes == 0) snprintf(buf, n, "healthy");
  return buf;
}
