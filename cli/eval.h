/* eval.h: `fleetrl eval POLICY`: runs a saved policy file on its environment (or another with
 * the same spaces) without a learner, deterministically, and reports return and success. */
#ifndef FRL_EVAL_H
#define FRL_EVAL_H

/* argv after the subcommand. Returns a process exit code (0, 1 error, 2 usage). */
int frl_eval_main(int argc, char **argv);

#endif
