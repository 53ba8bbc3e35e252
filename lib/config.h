/* config.h: every setting of every subcommand, from (lowest to highest precedence) built-in
 * defaults, the task preset (--task), FLEETRL_* environment variables, and command-line flags.
 * Each flag --some-name has the environment twin FLEETRL_SOME_NAME. Values are range-checked at
 * start; an unknown flag or an out-of-range value is refused with the allowed range. */
#ifndef FRL_CONFIG_H
#define FRL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct frl_config {
  /* common */
  char task[64];            /* preset name, e.g. cartpole-dqn */
  char env[32];             /* environment name */
  char log_level[8];
  char actor_endpoint[160]; /* where actors/operators reach the broker */
  char learner_endpoint[160]; /* where the learner reaches the broker */
  char name[64];            /* this peer's name (actors) */
  uint64_t seed;
  double heartbeat_s;       /* heartbeat period */
  double peer_timeout_s;    /* a peer silent this long is gone */
  double connect_timeout_s; /* give up when the broker never answers */

  /* actor */
  int actor_index;
  int num_actors;
  int batch_transitions;    /* transitions per ExperienceBatch */
  int outbox_batches;
  int inflight;             /* a simulated actor pauses while this many batches are unacked */
  double resend_s;
  double eps_base, eps_alpha; /* Ape-X: eps_i = eps_base^(1 + eps_alpha * i/(N-1)) */
  char ack_log[256];        /* optional: append "seq status" per ack (tests, audits) */
  bool backpressure;        /* simulated actors wait when the outbox is full */

  /* sim-to-real (actors): domain randomization (randomize.h) and the hardware model
   * (hardware.h); the --dr-* ranges are "LO:HI", "off", or empty for the seed's range */
  char randomize[16];       /* off | uniform | gaussian | arcsine */
  double randomize_scale;   /* stretch of every range about its nominal centre */
  uint64_t curriculum_steps; /* ranges widen over this many env steps (0: full at once) */
  double curriculum_start;  /* range fraction at the first step */
  char dr_mass[32], dr_damping[32], dr_motor_strength[32], dr_friction[32], dr_gravity[32],
      dr_link_length[32], dr_sensor_noise[32], dr_action_delay[32];
  bool hardware_model;      /* wrap the environment in the hardware model */
  double hw_deadband, hw_saturation, hw_energy_penalty, hw_sensor_noise;
  int hw_sensor_delay;

  /* learning */
  char algo[8];             /* dqn | sac | td3 */
  bool prioritized;         /* prioritized replay (else uniform) */
  bool normalize_obs;       /* running observation normalization, shipped with Params */
  double tau;               /* SAC/TD3 Polyak averaging */
  double lr_alpha, init_alpha; /* SAC temperature */
  double policy_noise, noise_clip; /* TD3 target smoothing */
  int policy_delay;         /* TD3 */
  double explore_noise;     /* TD3 actors' Gaussian exploration std (normalized units) */
  double action_scale;      /* fraction of the environment's action range policies command */
  int action_history;       /* commanded actions appended to observations (history.h) */
  int obs_history;          /* past observations appended to observations (history.h) */
  int hindsight;            /* relabeled copies per episode (goal-reaching environments) */
  char solve_metric[16];    /* return | success */
  int n_step;
  double gamma;
  int hidden1, hidden2;
  bool dueling, double_q;
  double lr, adam_eps, grad_clip, huber_delta;
  int batch;
  int target_period;
  uint32_t capacity;
  uint32_t demo_capacity;   /* replay slots kept for demonstrations */
  double demo_bonus;        /* priority bonus of demonstrations */
  uint64_t bc_updates;      /* behaviour-cloning updates on demonstrations before RL starts */
  char bc_loss[8];          /* SAC's behaviour-cloning loss: nll | mse */
  double alpha, beta0, priority_eps;
  uint64_t beta_anneal_steps; /* env steps over which beta goes to 1 */
  double spi;               /* samples per insert */
  uint32_t min_replay;
  int params_period;        /* publish params every K updates */
  double flush_s;           /* write priorities and sample counts back to SQLite every */
  double checkpoint_s;      /* learner checkpoint every this many seconds (0: never) */
  double dedup_window_s;    /* batches records (exactly-once dedup) older than this are pruned */
  int credit_window;        /* batches the learner lets the broker have in flight */
  uint64_t max_env_steps;   /* budget; the run stops here */
  uint64_t eval_period;     /* greedy evaluation every this many env steps */
  int eval_episodes;
  char eval_physics[160];   /* evaluations on these physics, NAME=VALUE,... ("": nominal) */
  double solve_return;      /* mean greedy return that counts as solved */
  int solve_evals;          /* evaluations in a row at solve_return that count as solved */
  char run_dir[320];        /* learner's run folder (replay.db, summary.json, policy) */

  /* broker */
  int queue_batches;        /* experience queued while the learner has no credit */
  char endpoints_file[256]; /* broker writes the bound endpoints here when set */

  /* observability (learner and broker): /metrics, and the learner's status page */
  char http[64];            /* ADDR:PORT, auto (the role's default) or off */
  char http_addr_file[256]; /* broker: write the bound HTTP address here when set */

  /* security (CURVE) and per-actor limits at the broker */
  char curve_secret[256];   /* this process's CURVE secret key file; "" = plaintext */
  char broker_key[256];     /* clients: the broker's CURVE public key file */
  char allow[256];          /* broker: allowlist file, "NAME Z85PUBKEY" per line */
  uint64_t actor_max_batch_bytes; /* largest experience message an actor may send */
  double actor_rate_bytes;  /* per-actor token bucket, bytes/s (0: off) */
  double actor_rate_batches; /* per-actor token bucket, batches/s (0: off) */
  double actor_burst_s;     /* bucket depth in seconds of those rates */

  /* robot: physical robots through the client library, and `fleetrl emulate` */
  char limits[256];         /* the robot's limits file (lib/shield.h); "" = task bounds only */
  double max_broker_silence_s; /* safe mode after the broker is silent this long (0: never) */
  double max_params_age_s;  /* safe mode when the newest parameters are older (0: never) */
  bool demonstration;       /* recorded steps are demonstrations */
  bool explore;             /* act with the algorithm's exploration (false: greedy / mean) */
  double rate_hz;           /* emulator control rate */
  double deadline_s;        /* emulator: an iteration finishing later than this misses (0: period) */
  double sensor_noise;      /* emulator: Gaussian observation noise std */
  double actuation_latency_s; /* emulator: delay from act() to the actuators */
  double actuation_jitter_s;  /* emulator: extra uniform delay in [0, this] */
  double duration_s;        /* emulator: stop after this long (0: until a signal) */
  double report_s;          /* emulator: loop timing report period */
  char policy_path[256];    /* robot: act with this policy file, never the learner's ("": learner) */
  uint64_t episodes;        /* emulator: stop after this many episodes (0: no limit) */

  /* run */
  int actors;
  bool curve;               /* fleetrl run: CURVE keys of its own for every process */
  char runs_root[200];
  char run_name[96];
  bool progress;            /* live progress line (terminal) or plain periodic lines (logs) */
  double progress_period_s; /* period of the plain lines when stdout is not a terminal */
} frl_config_t;

/* Which flags a subcommand accepts. */
enum {
  FRL_CFG_COMMON = 1,
  FRL_CFG_ACTOR = 2,
  FRL_CFG_LEARNER = 4,
  FRL_CFG_BROKER = 8,
  FRL_CFG_RUN = 16,
  FRL_CFG_ROBOT = 32, /* fleetrl emulate and the client library */
};

/* Fills cfg from defaults, preset, environment and argv[0..argc) for a subcommand using the
 * flag groups in `groups`. Returns 0, 1 if --help was asked (help printed to out), or
 * FRL_EUSAGE with a one-line message printed to err. */
int frl_config_parse(frl_config_t *cfg, int groups, int argc, char **argv, FILE *out, FILE *err);
/* Prints the flags of `groups` with defaults and environment twins. */
void frl_config_usage(int groups, FILE *out);
/* Comma-separated preset names. */
const char *frl_config_presets(void);
/* Exports every setting of cfg as its FLEETRL_* environment variable, so that child processes
 * started with no flags inherit exactly this configuration. */
void frl_config_export(const frl_config_t *cfg);

#endif
