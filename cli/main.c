/* main.c: the fleetrl command line: one binary, one subcommand per role. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor.h"
#include "broker.h"
#include "common.h"
#include "config.h"
#include "learner.h"
#include "log.h"
#include "msg.h"
#include "run.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: fleetrl <command> [flags]\n\n"
          "commands:\n"
          "  run       broker, learner and actors on this host: the main job\n"
          "  broker    the broker (actor and learner endpoints)\n"
          "  learner   the learner (replay store, training, parameter broadcasts)\n"
          "  actor     one simulated actor\n"
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
  /* Our matrices are small: OpenBLAS's own threads cost more than they give on a few cores,
   * and the fleet's processes already use every core. */
  openblas_set_num_threads(1);
  if (!strcmp(cmd, "run")) return frl_run_main(&cfg, "/proc/self/exe");
  if (!strcmp(cmd, "broker")) return frl_broker_main(&cfg);
  if (!strcmp(cmd, "learner")) return frl_learner_main(&cfg);
  return frl_actor_main(&cfg);
}
