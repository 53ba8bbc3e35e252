/* stats.h: `fleetrl stats RUN`: a run's replay and episode statistics, read from its SQLite
 * store (read-only, safe while the run trains). */
#ifndef FRL_STATS_H
#define FRL_STATS_H

#include <stdio.h>

/* path is a run folder or a replay.db file. Returns a process exit code. */
int frl_stats_main(const char *path, FILE *out);

#endif
