/* main.c: the fleetrl command line: one binary, one subcommand per role. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor.h"
#include "broker.h"
#include "client.h"
#include "common.h"
#include "config.h"
#include "control.h"
#include "curve.h"
#include "eval.h"
#include "export.h"
#include "plot.h"
#include "learner.h"
#include "log.h"
#include "msg.h"
#include "run.h"
#include "stats.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: fleetrl <command> [flags]\n\n"
          "commands:\n"
          "  run       broker, learner and actors on this host: the main job\n"
          "  broker    the broker (actor and learner endpoints)\n"
          "  learner   the learner (replay store, training, parameter broadcasts)\n"
          "  actor     one simulated actor\n"
          "  emulate   a robot emulator: the robot client library in a fixed-rate control loop\n"
          "  stats RUN print a run's replay, episode and evaluation statistics (from SQLite)\n"
          "  eval POLICY      run a saved policy.bin on its environment, without a learner\n"
          "  plot RUN         write learning-curve.svg and priority-histogram.svg for a run\n"
          "  export RUN       write a policy file from the run's newest learner checkpoint\n"
          "  estop [REASON]   stop every actor (safe action) through the broker\n"
          "  resume           lift an e-stop\n"
          "  set-spi X        change the learner's samples-per-insert ratio at runtime\n"
          "  keygen NAME [--out DIR]  write a CURVE key pair: NAME.key (secret), NAME.pub\n"
          "  version   print version and schema hash\n\n"
          "`fleetrl <command> --help` lists a command's flags. Tasks: %s\n",
          frl_config_presets());
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
      !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
    printf("fleetrl 0.1.0 (schema version %d, hash 0x%016llx)\n", FRL_SCHEMA_VERSION,
           (unsigned long long)frl_schema_hash());
    return 0;
  }
  if (!strcmp(cmd, "stats")) {
    if (argc != 3 || argv[2][0] == '-') {
      fprintf(stderr, "usage: fleetrl stats RUN_FOLDER|replay.db\n");
      return 2;
    }
    return frl_stats_main(argv[2], stdout);
  }
  if (!strcmp(cmd, "plot")) return frl_plot_main(argc - 2, argv + 2);
  if (!strcmp(cmd, "export")) return frl_export_main(argc - 2, argv + 2);
  if (!strcmp(cmd, "emulate")) return frl_emulate_main(argc - 2, argv + 2);
  if (!strcmp(cmd, "keygen")) return frl_keygen_main(argc - 2, argv + 2, stdout, stderr);
  if (!strcmp(cmd, "eval")) {
    openblas_set_num_threads(1);
    return frl_eval_main(argc - 2, argv + 2);
  }
  if (!strcmp(cmd, "estop") || !strcmp(cmd, "resume") || !strcmp(cmd, "set-spi")) {
    /* An optional first positional argument: the e-stop reason, or the new ratio. */
    int first = 2;
    const char *arg = NULL;
    if (argc > 2 && argv[2][0] != '-') {
      arg = argv[2];
      first = 3;
    }
    frl_config_t cfg;
    int rc = frl_config_parse(&cfg, FRL_CFG_COMMON, argc - first, argv + first, stdout, stderr);
    if (rc == 1) return 0;
    if (rc != 0) return 2;
    frl_log_init(cmd, frl_log_level_parse(cfg.log_level));
    if (frl_curve_setup(&cfg, false, stderr) != 0) return 2;
    if (!strcmp(cmd, "estop"))
      return frl_control_main(&cfg, FRL_CONTROL_ESTOP, arg ? arg : "operator e-stop", 0);
    if (!strcmp(cmd, "resume")) return frl_control_main(&cfg, FRL_CONTROL_RESUME, arg, 0);
    char *end = NULL;
    double spi = arg ? strtod(arg, &end) : 0;
    if (!arg || *end || !(spi >= 0.01 && spi <= 10000)) {
      fprintf(stderr, "fleetrl set-spi: the ratio must be a number in [0.01, 10000]\n");
      return 2;
    }
    return frl_control_main(&cfg, FRL_CONTROL_SET_SPI, "operator", spi);
  }
  int groups;
  if (!strcmp(cmd, "run")) groups = FRL_CFG_RUN;
  else if (!strcmp(cmd, "broker")) groups = FRL_CFG_BROKER;
  else if (!strcmp(cmd, "learner")) groups = FRL_CFG_LEARNER;
  else if (!strcmp(cmd, "actor")) groups = FRL_CFG_ACTOR;
  else {
    fprintf(stderr, "fleetrl: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
  }
  frl_config_t cfg;
  int rc = frl_config_parse(&cfg, groups, argc - 2, argv + 2, stdout, stderr);
  if (rc == 1) return 0;
  if (rc != 0) return 2;
  const char *component = cmd;
  if (!strcmp(cmd, "actor")) component = cfg.name;
  frl_log_init(component, frl_log_level_parse(cfg.log_level));
  /* CURVE or plaintext for every socket this process creates (`run` takes no key flags). */
  if (frl_curve_setup(&cfg, !strcmp(cmd, "broker"), stderr) != 0) return 2;
  /* Our matrices are small: OpenBLAS's own threads cost more than they give on a few cores,
   * and the fleet's processes already use every core. */
  openblas_set_num_threads(1);
  if (!strcmp(cmd, "run")) return frl_run_main(&cfg, "/proc/self/exe");
  if (!strcmp(cmd, "broker")) return frl_broker_main(&cfg);
  if (!strcmp(cmd, "learner")) return frl_learner_main(&cfg);
  return frl_actor_main(&cfg);
}
