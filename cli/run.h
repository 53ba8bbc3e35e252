/* run.h: `fleetrl run`: broker, learner and actors as separate processes on this host, in a
 * fresh run folder, with the learner's live progress line on the terminal. */
#ifndef FRL_RUN_H
#define FRL_RUN_H

#include "config.h"

/* Returns the process exit code: the learner's (0 when the task was solved). */
int frl_run_main(frl_config_t *cfg, const char *self_exe);

#endif
