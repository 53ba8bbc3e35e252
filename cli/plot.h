/* plot.h: `fleetrl plot RUN`: figures a person can drop into a paper, drawn from the run's
 * SQLite store as standalone SVG: the learning curve (greedy evaluations with ±1 std band and
 * the moving mean of training-episode returns, against environment steps) and the histogram of
 * replay priorities. */
#ifndef FRL_PLOT_H
#define FRL_PLOT_H

/* argv after the subcommand: RUN [--out DIR]. Returns a process exit code. */
int frl_plot_main(int argc, char **argv);

#endif
