/* watchdog.h: decides when a robot must fall back to its safe action. Safe mode holds while any
 * of these is true: an e-stop from the broker is in force (until Resume), the broker has been
 * silent longer than a bound, the latest parameters are older than a bound, or the latest
 * observation held NaN or Inf. It lifts by itself when every cause is gone. The watchdog only
 * decides: it reads no clock and no socket, so tests drive it with an injected time, and the
 * caller applies the safe action, logs and records each transition it reports. Not
 * thread-safe: one owner calls it (the robot's control thread). */
#ifndef FRL_WATCHDOG_H
#define FRL_WATCHDOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Causes of safe mode, as bits. */
enum {
  FRL_WD_ESTOP = 1u << 0,   /* e-stop in force */
  FRL_WD_BROKER = 1u << 1,  /* broker silent longer than max_broker_silence_s */
  FRL_WD_PARAMS = 1u << 2,  /* parameters older than max_params_age_s */
  FRL_WD_OBS = 1u << 3,     /* the latest observation was not finite */
};

typedef struct {
  double max_broker_silence_s; /* 0: never for silence */
  double max_params_age_s;     /* 0: never for stale parameters; counts only once any arrived */
} frl_watchdog_limits_t;

typedef struct frl_watchdog frl_watchdog_t;

/* A change of safe mode: entered or left, the causes before and after. */
typedef struct {
  bool entered;          /* true: into safe mode; false: out of it */
  uint32_t before, after;
} frl_watchdog_change_t;

/* Creates a watchdog at time now (s, any monotonic clock). The broker counts as heard at now,
 * so a robot that starts without a broker enters safe mode once the silence bound passes.
 * Returns NULL for a negative or non-finite bound. */
frl_watchdog_t *frl_watchdog_new(const frl_watchdog_limits_t *limits, double now);
void frl_watchdog_destroy(frl_watchdog_t **self_p);

/* Inputs. Times only move forward: an older time than one already given is ignored. */
void frl_watchdog_heard(frl_watchdog_t *w, double t);   /* any message from the broker */
void frl_watchdog_params(frl_watchdog_t *w, double t);  /* new parameters applied */
void frl_watchdog_estop(frl_watchdog_t *w, bool on);    /* Control EStop (on) / Resume (off) */
/* Checks n observation values; returns true when all are finite. */
bool frl_watchdog_observation(frl_watchdog_t *w, const float *obs, int n);

/* Re-evaluates the causes at time now. Returns true and fills *change when safe mode was
 * entered or left since the previous call (the causes changing while staying in safe mode is
 * not a transition). */
bool frl_watchdog_update(frl_watchdog_t *w, double now, frl_watchdog_change_t *change);

bool frl_watchdog_safe(const frl_watchdog_t *w);
uint32_t frl_watchdog_causes(const frl_watchdog_t *w);

/* Writes the causes as words ("e-stop, broker silent") into buf; "healthy" for none. Returns
 * buf. */
const char *frl_watchdog_describe(uint32_t causes, char *buf, size_t n);

#endif
