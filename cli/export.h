/* export.h: `fleetrl export RUN`: a policy file from the newest learner checkpoint of a run. */
#ifndef FRL_EXPORT_H
#define FRL_EXPORT_H

/* Runs the export command on its arguments (after "export"); returns the exit code: 0
 * written, 1 no checkpoint or it does not verify, 2 bad arguments. */
int frl_export_main(int argc, char **argv);

#endif
