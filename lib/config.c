/* config.c: the flag table (one row per setting: name, groups, type, default, range, help),
 * task presets, and parsing of environment twins and command-line flags. */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "hardware.h"
#include "http.h"
#include "log.h"
#include "randomize.h"

enum { T_STR, T_INT, T_U32, T_U64, T_DBL, T_BOOL };

typedef struct {
  const char *name;
  int groups;
  int type;
  size_t off;
  size_t size;
  const char *def;
  double min, max;
  const char *help;
} flag_t;

#define C FRL_CFG_COMMON
#define A FRL_CFG_ACTOR
#define L FRL_CFG_LEARNER
#define B FRL_CFG_BROKER
#define R FRL_CFG_RUN
#define ROBOT FRL_CFG_ROBOT
#define F(field) offsetof(frl_config_t, field), sizeof(((frl_config_t *)0)->field)
#define BIG 1e18

static const flag_t g_flags[] = {
  {"task", C | A | L | R, T_STR, F(task), "cartpole-dqn", 0, 0, "task preset (see list below)"},
  {"env", A | L | R, T_STR, F(env), "cartpole", 0, 0, "environment (set by the task preset)"},
  {"log-level", C | A | L | B | R, T_STR, F(log_level), "info", 0, 0, "debug|info|warn|error"},
  {"actor-endpoint", A | B | R | C, T_STR, F(actor_endpoint), "tcp://127.0.0.1:5555", 0, 0,
   "broker endpoint for actors and operators (broker: address to bind)"},
  {"learner-endpoint", L | B | R, T_STR, F(learner_endpoint), "tcp://127.0.0.1:5556", 0, 0,
   "broker endpoint for the learner (broker: address to bind)"},
  {"name", A, T_STR, F(name), "", 0, 0, "actor name, unique in the fleet (default <hostname>-<pid>)"},
  {"seed", A | L | R, T_U64, F(seed), "1", 0, BIG, "random seed"},
  {"heartbeat", A | L | B | R, T_DBL, F(heartbeat_s), "0.5", 0.01, 60, "heartbeat period, s"},
  {"peer-timeout", A | L | B | R, T_DBL, F(peer_timeout_s), "3", 0.05, 3600,
   "a peer silent this long is considered gone, s"},
  {"connect-timeout", A | L | C | R, T_DBL, F(connect_timeout_s), "20", 0.1, 86400,
   "give up when the broker does not answer for this long, s"},

  {"actor-index", A, T_INT, F(actor_index), "-1", -1, 65535,
   "this actor's index i in the exploration schedule (-1: derived from the name)"},
  {"num-actors", A, T_INT, F(num_actors), "1", 1, 65536, "fleet size N (exploration schedule)"},
  {"batch-transitions", A | L | R, T_INT, F(batch_transitions), "32", 1, 65536,
   "transitions per experience batch"},
  {"outbox", A | R, T_INT, F(outbox_batches), "64", 1, 100000, "unacknowledged batches kept"},
  {"inflight", A | R, T_INT, F(inflight), "4", 1, 100000,
   "simulated actors pause while this many batches are unacknowledged (keeps policy lag low)"},
  {"resend", A | R, T_DBL, F(resend_s), "2", 0.01, 3600, "resend an unacked batch after, s"},
  {"eps-base", A | R, T_DBL, F(eps_base), "0.4", 0, 1, "Ape-X epsilon base"},
  {"eps-alpha", A | R, T_DBL, F(eps_alpha), "7", 0, 100, "Ape-X epsilon exponent"},
  {"ack-log", A, T_STR, F(ack_log), "", 0, 0, "append 'seq status' for every ack to this file"},
  {"backpressure", A | R, T_BOOL, F(backpressure), "true", 0, 0,
   "simulated actors pause while the outbox is full (physical robots shed instead)"},
  {"randomize", A | R, T_STR, F(randomize), "off", 0, 0,
   "domain randomization per episode: off | uniform | gaussian (centred, range = +-2 sigma, "
   "clipped) | arcsine (Beta(1/2, 1/2): the ranges' ends more often than their middle)"},
  {"randomize-scale", A | R, T_DBL, F(randomize_scale), "1", 0, 10,
   "stretch every --dr-* range about its nominal value by this factor"},
  {"curriculum-steps", A | R, T_U64, F(curriculum_steps), "0", 0, BIG,
   "ranges widen linearly from --curriculum-start to full over this many of an actor's env "
   "steps (0: full ranges at once)"},
  {"curriculum-start", A | R, T_DBL, F(curriculum_start), "0.1", 0, 1,
   "fraction of each range used at the first step of the curriculum"},
  {"dr-mass", A | R, T_STR, F(dr_mass), "0.8:1.2", 0, 0, "mass multiplier range LO:HI, or off"},
  {"dr-damping", A | R, T_STR, F(dr_damping), "0.8:1.2", 0, 0,
   "joint damping multiplier range, or off"},
  {"dr-motor-strength", A | R, T_STR, F(dr_motor_strength), "0.8:1.2", 0, 0,
   "motor strength (torque per action) multiplier range, or off"},
  {"dr-friction", A | R, T_STR, F(dr_friction), "0.5:1.5", 0, 0,
   "sliding friction coefficient range, or off"},
  {"dr-gravity", A | R, T_STR, F(dr_gravity), "9.5:10.1", 0, 0,
   "gravity magnitude range (m/s^2), or off"},
  {"dr-link-length", A | R, T_STR, F(dr_link_length), "0.98:1.02", 0, 0,
   "link length multiplier range, or off"},
  {"dr-sensor-noise", A | R, T_STR, F(dr_sensor_noise), "0:0.05", 0, 0,
   "observation noise sigma range, or off"},
  {"dr-action-delay", A | R, T_STR, F(dr_action_delay), "0:2", 0, 0,
   "action delay range in whole steps, or off"},
  {"hardware-model", A | R, T_BOOL, F(hardware_model), "false", 0, 0,
   "wrap the environment in the hardware model (motor dead-band and saturation, energy "
   "penalty, sensor noise and delay)"},
  {"hw-deadband", A | R, T_DBL, F(hw_deadband), "0.02", 0, 0.99,
   "motor dead-band (Coulomb friction), fraction of the action half-range"},
  {"hw-saturation", A | R, T_DBL, F(hw_saturation), "0.9", 0.01, 1,
   "motor torque saturation, fraction of the action half-range"},
  {"hw-energy-penalty", A | R, T_DBL, F(hw_energy_penalty), "1e-5", 0, 1000,
   "reward charged per unit of sum |delivered action| each step"},
  {"hw-sensor-noise", A | R, T_DBL, F(hw_sensor_noise), "0.01", 0, 10,
   "sensor noise sigma, in observation units"},
  {"hw-sensor-delay", A | R, T_INT, F(hw_sensor_delay), "1", 0, 50,
   "sensor delay, steps"},

  {"algo", A | L | R, T_STR, F(algo), "dqn", 0, 0, "dqn | sac | td3 (set by the task preset)"},
  {"prioritized", L | R, T_BOOL, F(prioritized), "true", 0, 0,
   "prioritized replay (false: uniform)"},
  {"normalize-obs", L | R, T_BOOL, F(normalize_obs), "false", 0, 0,
   "normalize observations with running statistics shipped to actors"},
  {"tau", L | R, T_DBL, F(tau), "0.005", 0, 1, "SAC/TD3 target-network Polyak factor"},
  {"lr-alpha", L | R, T_DBL, F(lr_alpha), "3e-4", 1e-7, 1, "SAC temperature learning rate"},
  {"init-alpha", L | R, T_DBL, F(init_alpha), "1", 1e-6, 100, "SAC initial temperature"},
  {"policy-noise", L | R, T_DBL, F(policy_noise), "0.2", 0, 10, "TD3 target smoothing noise"},
  {"noise-clip", L | R, T_DBL, F(noise_clip), "0.5", 0, 10, "TD3 smoothing noise clip"},
  {"policy-delay", L | R, T_INT, F(policy_delay), "2", 1, 100, "TD3 critic steps per actor step"},
  {"explore-noise", A | R, T_DBL, F(explore_noise), "0.1", 0, 10,
   "TD3 actors' exploration noise std (actions normalized to [-1, 1])"},
  {"hindsight", A | R, T_INT, F(hindsight), "0", 0, 16,
   "hindsight relabeling: copies of each finished episode relabeled with goals it achieved, "
   "for goal-reaching environments (planar-arm); 0: off"},
  {"action-history", A | L | R, T_INT, F(action_history), "0", 0, 16,
   "the last K commanded actions join the observation (continuous actions), so that a policy "
   "can see what is still in flight under an actuation delay; 0: off"},
  {"obs-history", A | L | R, T_INT, F(obs_history), "0", 0, 8,
   "the previous M observations join the observation (continuous actions), so that a policy can "
   "see how the system answered its recent commands; 0: off"},
  {"action-scale", A | L | R, T_DBL, F(action_scale), "1", 0.001, 1,
   "fraction of the environment's action range a continuous policy may command"},
  {"solve-metric", L | R, T_STR, F(solve_metric), "return", 0, 0,
   "what --solve-return compares: return (mean) | success (rate in [0, 1])"},
  {"n-step", A | L | R, T_INT, F(n_step), "3", 1, 100, "n of n-step returns"},
  {"gamma", A | L | R, T_DBL, F(gamma), "0.99", 0, 1, "discount"},
  {"hidden1", A | L | R, T_INT, F(hidden1), "128", 1, 8192, "first hidden layer width"},
  {"hidden2", A | L | R, T_INT, F(hidden2), "128", 0, 8192, "second hidden layer width (0: none)"},
  {"dueling", A | L | R, T_BOOL, F(dueling), "true", 0, 0, "dueling Q head"},
  {"double-q", L | R, T_BOOL, F(double_q), "true", 0, 0, "double DQN targets"},
  {"lr", L | R, T_DBL, F(lr), "5e-4", 1e-7, 1, "Adam learning rate"},
  {"adam-eps", L | R, T_DBL, F(adam_eps), "1e-8", 1e-12, 1, "Adam epsilon"},
  {"grad-clip", L | R, T_DBL, F(grad_clip), "10", 0, 1e6, "global gradient-norm clip (0: off)"},
  {"huber-delta", L | R, T_DBL, F(huber_delta), "1", 1e-6, 1e6, "Huber loss delta"},
  {"batch", L | R, T_INT, F(batch), "64", 1, 65536, "learner minibatch"},
  {"target-period", L | R, T_INT, F(target_period), "500", 1, 100000000,
   "copy online to target network every K updates"},
  {"capacity", L | R, T_U32, F(capacity), "100000", 16, 100000000, "replay capacity (items)"},
  {"demo-capacity", L | R, T_U32, F(demo_capacity), "20000", 0, 100000000,
   "replay slots kept for demonstrations, never evicted by agent experience (0: demonstrations "
   "are ordinary experience)"},
  {"demo-bonus", L | R, T_DBL, F(demo_bonus), "1", 0, 1000,
   "priority bonus eps_d added to demonstrations' |TD error| (DQfD)"},
  {"bc-updates", L | R, T_U64, F(bc_updates), "0", 0, 100000000,
   "behaviour-cloning updates on the demonstrations before RL: once the replay holds a batch "
   "of them, pretrain the policy this many updates, publish and evaluate it; RL updates wait "
   "for it (0: none)"},
  {"bc-loss", L | R, T_STR, F(bc_loss), "mse", 0, 0,
   "SAC's behaviour-cloning loss: mse ((tanh(mean) - a_demo)^2, the mean only) | nll "
   "(-log pi(a_demo|s), mean and std); DQN uses DQfD's large margin, TD3 the MSE"},
  {"alpha", L | R, T_DBL, F(alpha), "0.6", 0, 1, "priority exponent"},
  {"beta", L | R, T_DBL, F(beta0), "0.4", 0, 1, "initial importance-sampling exponent"},
  {"priority-eps", L | R, T_DBL, F(priority_eps), "1e-3", 1e-9, 1, "priority epsilon"},
  {"beta-anneal", L | R, T_U64, F(beta_anneal_steps), "100000", 1, BIG,
   "env steps over which beta anneals to 1"},
  {"spi", L | R, T_DBL, F(spi), "16", 0.01, 10000, "samples per insert (rate limiter)"},
  {"min-replay", L | R, T_U32, F(min_replay), "1000", 1, 100000000, "items before training"},
  {"params-period", L | R, T_INT, F(params_period), "100", 1, 1000000,
   "publish parameters every K updates"},
  {"flush-period", L | R, T_DBL, F(flush_s), "10", 0.1, 3600,
   "write priorities and sample counts back to SQLite every this many seconds"},
  {"dedup-window", L | R, T_DBL, F(dedup_window_s), "604800", 60, 3.2e9,
   "keep the exactly-once record of each batch this many seconds (7 days); older records are "
   "deleted, so a batch an actor resends after holding it unacknowledged longer than this "
   "would be stored twice"},
  {"checkpoint-period", L | R, T_DBL, F(checkpoint_s), "60", 0, 86400,
   "checkpoint the learner's whole state into replay.db every this many seconds and at a "
   "clean stop; a restarted learner resumes from it (0: never write)"},
  {"credit", L | R, T_INT, F(credit_window), "8", 1, 10000, "batches in flight to the learner"},
  {"max-env-steps", L | R, T_U64, F(max_env_steps), "100000", 1, BIG,
   "stop after this many environment steps"},
  {"eval-period", L | R, T_U64, F(eval_period), "2000", 100, BIG,
   "greedy evaluation every this many env steps"},
  {"eval-episodes", L | R, T_INT, F(eval_episodes), "20", 1, 100000, "episodes per evaluation"},
  {"eval-physics", L | R, T_STR, F(eval_physics), "", 0, 0,
   "run the learner's evaluations on these physics, NAME=VALUE,... as fleetrl eval --physics "
   "(e.g. mass=1.3,gravity=9.6; empty: nominal)"},
  {"solve-return", L | R, T_DBL, F(solve_return), "475", -BIG, BIG,
   "evaluation score that counts as solved (mean return, or success rate: --solve-metric)"},
  {"solve-evals", L | R, T_INT, F(solve_evals), "1", 1, 100,
   "evaluations in a row that must reach --solve-return before the run counts as solved"},
  {"run-dir", L, T_STR, F(run_dir), "runs/learner", 0, 0, "learner run folder"},

  {"queue", B | R, T_INT, F(queue_batches), "256", 0, 1000000,
   "experience batches the broker queues while the learner has no credit"},
  {"endpoints-file", B, T_STR, F(endpoints_file), "", 0, 0,
   "write the bound endpoints to this file (useful with port *)"},
  {"http", L | B, T_STR, F(http), "auto", 0, 0,
   "HTTP endpoint ADDR:PORT for /metrics (learner: and the status page /); auto: learner "
   FRL_HTTP_LEARNER_DEFAULT ", broker " FRL_HTTP_BROKER_DEFAULT " (a free port if taken); "
   "port 0 picks a free one; off: none"},
  {"http-addr-file", B, T_STR, F(http_addr_file), "", 0, 0,
   "write the bound HTTP address to this file (the learner writes <run-dir>/http.addr)"},

  {"curve-secret", C | A | L | B, T_STR, F(curve_secret), "", 0, 0,
   "this process's CURVE secret key file (NAME.key from `fleetrl keygen`); turns CURVE on"},
  {"broker-key", C | A | L, T_STR, F(broker_key), "", 0, 0,
   "the broker's CURVE public key file (NAME.pub); needed with --curve-secret"},
  {"allow", B, T_STR, F(allow), "", 0, 0,
   "CURVE allowlist: one 'NAME Z85PUBKEY' line per peer; reread on SIGHUP"},
  {"actor-max-batch-bytes", B | R, T_U64, F(actor_max_batch_bytes), "16777216", 1024, 67108864,
   "largest experience message one actor may send, bytes (larger: Rejected)"},
  {"actor-rate-bytes", B | R, T_DBL, F(actor_rate_bytes), "67108864", 0, 1e12,
   "experience bytes/s one actor may send (token bucket; over it: Busy; 0: no limit)"},
  {"actor-rate-batches", B | R, T_DBL, F(actor_rate_batches), "500", 0, 1e7,
   "experience batches/s one actor may send (token bucket; over it: Busy; 0: no limit)"},
  {"actor-burst", B | R, T_DBL, F(actor_burst_s), "1", 0.01, 3600,
   "per-actor token-bucket depth, in seconds of the rates"},

  {"limits", ROBOT, T_STR, F(limits), "", 0, 0,
   "robot limits file: bounds, rate, joint barrier, safe action (format in lib/shield.h)"},
  {"max-broker-silence", ROBOT, T_DBL, F(max_broker_silence_s), "1.5", 0, 3600,
   "robot: safe action once the broker has been silent this long, s (0: never)"},
  {"max-params-age", ROBOT, T_DBL, F(max_params_age_s), "0", 0, 1e6,
   "robot: safe action while the newest parameters are older than this, s (0: never)"},
  {"demonstration", ROBOT, T_BOOL, F(demonstration), "false", 0, 0,
   "robot: recorded steps are demonstrations (teleoperation, a scripted controller)"},
  {"explore", ROBOT, T_BOOL, F(explore), "true", 0, 0,
   "robot: act with the algorithm's exploration (false: greedy or mean actions)"},
  {"rate-hz", ROBOT, T_DBL, F(rate_hz), "100", 0.1, 10000, "emulator: control loop rate, Hz"},
  {"deadline", ROBOT, T_DBL, F(deadline_s), "0", 0, 60,
   "emulator: an iteration ending later than this after its start misses its deadline, s "
   "(0: one period)"},
  {"sensor-noise", ROBOT, T_DBL, F(sensor_noise), "0.01", 0, 1000,
   "emulator: Gaussian observation noise, std"},
  {"actuation-latency", ROBOT, T_DBL, F(actuation_latency_s), "0.002", 0, 10,
   "emulator: delay from act() to the actuators, s"},
  {"actuation-jitter", ROBOT, T_DBL, F(actuation_jitter_s), "0.001", 0, 10,
   "emulator: extra actuation delay, uniform in [0, this], s"},
  {"duration", ROBOT, T_DBL, F(duration_s), "0", 0, 1e9,
   "emulator: stop after this many seconds (0: at SIGINT/SIGTERM)"},
  {"report-period", ROBOT, T_DBL, F(report_s), "10", 0.1, 3600,
   "emulator: loop timing report every this many seconds"},
  {"policy", ROBOT, T_STR, F(policy_path), "", 0, 0,
   "robot: act with this policy file (a run's policy.bin or fleetrl export) instead of the "
   "learner's parameters: greedy/mean actions with its normalizer and action scale, through the "
   "shield; emulate runs offline unless --actor-endpoint is given (then it also ships experience)"},
  {"episodes", ROBOT, T_U64, F(episodes), "0", 0, 1e9,
   "emulator: stop after this many episodes and print their mean return, success rate, "
   "violations and shield interventions (0: run until --duration or a signal)"},

  {"actors", R, T_INT, F(actors), "4", 1, 1024, "actor processes to start"},
  {"curve", R, T_BOOL, F(curve), "false", 0, 0,
   "encrypt and authenticate the run's connections with CURVE: a key pair for every process "
   "(and one named ops for operator verbs) in <run>/keys, the broker admitting exactly those"},
  {"runs", R, T_STR, F(runs_root), "runs", 0, 0, "folder for run folders"},
  {"run-name", R, T_STR, F(run_name), "", 0, 0, "run folder name (default <task>-<time>)"},
  {"progress", R | L, T_BOOL, F(progress), "true", 0, 0,
   "progress: a live status line on a terminal, plain periodic lines otherwise (logs)"},
  {"progress-period", R | L, T_DBL, F(progress_period_s), "10", 1, 86400,
   "period of the plain progress lines when stdout is not a terminal, s"},
};

/* Task presets: settings applied over the defaults, before environment and flags. */
typedef struct {
  const char *name;
  const char *help;
  const char *settings[32];
} preset_t;

static const preset_t g_presets[] = {
  {"cartpole-dqn",
   "CartPole (500-step limit) with Ape-X DQN: double, dueling, 3-step, prioritized",
   {"env=cartpole", "solve-return=475", "max-env-steps=100000", "spi=64", "lr=1e-3", NULL}},
  {"pendulum-sac",
   "Pendulum swing-up with SAC (twin critics, automatic temperature), uniform replay",
   {"env=pendulum", "algo=sac", "n-step=1", "hidden1=256", "hidden2=256", "batch=256", "lr=3e-4",
    "spi=256", "prioritized=false", "min-replay=1000", "max-env-steps=20000",
    "solve-return=-200", "eval-period=1000", "eval-episodes=10", "actors=2", NULL}},
  {"pendulum-td3",
   "Pendulum swing-up with TD3 (clipped double Q, target smoothing, delayed actor)",
   {"env=pendulum", "algo=td3", "n-step=1", "hidden1=256", "hidden2=256", "batch=256", "lr=3e-4",
    "spi=256", "prioritized=false", "min-replay=1000", "max-env-steps=30000",
    "solve-return=-200", "eval-period=1000", "eval-episodes=10", "actors=2", NULL}},
  {"reach-sac",
   "the 6-joint planar reaching arm with SAC; solved at 90% success on reachable targets",
   /* Batch 64 with 3-step returns, hindsight relabeling (4 copies per episode, about two
    * relabeled transitions per real one, at half an update per stored transition) and a
    * replay of a million transitions. Seed 1: batch 256 at spi 128 with 1-step returns
    * levelled off at 40-48% success (80-150k env steps); batch 64 at one update per step and a
    * 100k replay at about 62% (250-290k); with relabeling, still 100k, about 60% (150-360k);
    * with the million-transition replay 84-91% over 225-260k; with the goal-scale offset in
    * the observation (lib/planar_arm.c) 81-89% over 90-135k. Readings that stop a run are
    * the high ones among many noisy ones: a policy solved at its first reading of 92% over 50
    * episodes scored 86% on 400 fresh ones; one solved by three readings in a row at 90% or
    * more over 100 episodes each (96, 92, 93%, seed 1, 166k env steps) scored 90.0% on 600
    * fresh ones. So three in a row must reach 93%, for a margin over the 90% the task asks:
    * seed 1 solved at 196k env steps (30 min, two runs sharing two cores) and scored 94.1% on
    * 1000 fresh episodes; seed 2 at 160k (25 min), 91.7%. */
   {"env=planar-arm", "algo=sac", "n-step=3", "hidden1=256", "hidden2=256", "batch=64",
    "lr=3e-4", "spi=32", "hindsight=4", "capacity=1000000", "prioritized=false",
    "normalize-obs=true", "min-replay=2000", "max-env-steps=500000", "solve-metric=success",
    "solve-return=0.93", "solve-evals=3", "eval-period=5000", "eval-episodes=100", "actors=2",
    NULL}},
  {"humanoid-walk-sac",
   "MuJoCo humanoid (Debian libmujoco-samples) walking forward, SAC with normalized observations",
   {"env=humanoid-walk", "algo=sac", "n-step=1", "hidden1=256", "hidden2=256", "batch=256",
    "lr=3e-4", "spi=64", "prioritized=false", "normalize-obs=true", "min-replay=5000",
    "max-env-steps=1000000", "solve-return=5000", "eval-period=20000", "eval-episodes=5",
    "actors=2", NULL}},
  {"humanoid-standup-sac",
   "MuJoCo humanoid standing up from lying on its back, SAC",
   {"env=humanoid-standup", "algo=sac", "n-step=1", "hidden1=256", "hidden2=256", "batch=256",
    "lr=3e-4", "spi=64", "prioritized=false", "normalize-obs=true", "min-replay=5000",
    "max-env-steps=1000000", "solve-return=100000", "eval-period=20000", "eval-episodes=5",
    "actors=2", NULL}},
  {"mj-reacher-sac",
   "MuJoCo 2-link planar reacher (model written for fleetrl), SAC; solved at 90% success",
   {"env=mj-reacher", "algo=sac", "n-step=1", "hidden1=256", "hidden2=256", "batch=256",
    "lr=3e-4", "spi=128", "prioritized=false", "normalize-obs=true", "min-replay=2000",
    "max-env-steps=200000", "solve-metric=success", "solve-return=0.9", "eval-period=5000",
    "eval-episodes=50", "actors=2", NULL}},
  {"walker-sac",
   "the seed chapter's walker on MuJoCo (forward velocity, energy and joint-limit penalties)",
   {"env=walker", "algo=sac", "n-step=1", "hidden1=256", "hidden2=256", "batch=256",
    "lr=3e-4", "spi=64", "prioritized=false", "normalize-obs=true", "min-replay=5000",
    "max-env-steps=1000000", "solve-return=1000", "eval-period=20000", "eval-episodes=5",
    "actors=2", NULL}},
  {"gridworld-dqn",
   "4x4 grid world from the seed chapter with DQN",
   {"env=gridworld", "solve-return=9.4", "max-env-steps=30000", "hidden1=64", "hidden2=64",
    "eval-period=1000", "eval-episodes=5", "min-replay=500", NULL}},
};

const char *frl_config_presets(void) {
  return "cartpole-dqn, gridworld-dqn, pendulum-sac, pendulum-td3, reach-sac, mj-reacher-sac, "
         "humanoid-walk-sac, humanoid-standup-sac, walker-sac";
}

static const flag_t *find_flag(const char *name, size_t len) {
  for (size_t i = 0; i < FRL_ARRAY_LEN(g_flags); i++)
    if (strlen(g_flags[i].name) == len && strncmp(g_flags[i].name, name, len) == 0)
      return &g_flags[i];
  return NULL;
}

static void env_name(const flag_t *f, char *out, size_t n) {
  size_t j = (size_t)snprintf(out, n, "FLEETRL_");
  for (const char *p = f->name; *p && j + 1 < n; p++)
    out[j++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
  out[j] = '\0';
}

static int parse_bool(const char *v, bool *out) {
  if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")) {
    *out = true;
    return 0;
  }
  if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off")) {
    *out = false;
    return 0;
  }
  return -1;
}

/* Sets one flag from text; `source` names where the value came from, for the message. */
static int set_flag(frl_config_t *cfg, const flag_t *f, const char *v, const char *source,
                    FILE *err) {
  char *p = (char *)cfg + f->off;
  if (f->type == T_STR) {
    if (strlen(v) >= f->size) {
      fprintf(err, "fleetrl: %s: value is %zu characters, the limit is %zu\n", source,
              strlen(v), f->size - 1);
      return FRL_EUSAGE;
    }
    memcpy(p, v, strlen(v) + 1);
    return 0;
  }
  if (f->type == T_BOOL) {
    bool b;
    if (parse_bool(v, &b) != 0) {
      fprintf(err, "fleetrl: %s: '%s' is not a boolean (true|false|1|0)\n", source, v);
      return FRL_EUSAGE;
    }
    memcpy(p, &b, sizeof b);
    return 0;
  }
  char *end = NULL;
  errno = 0;
  double d = strtod(v, &end);
  if (end == v || *end != '\0' || errno == ERANGE || !isfinite(d)) {
    fprintf(err, "fleetrl: %s: '%s' is not a number\n", source, v);
    return FRL_EUSAGE;
  }
  if (f->type != T_DBL && d != floor(d)) {
    fprintf(err, "fleetrl: %s: '%s' must be an integer\n", source, v);
    return FRL_EUSAGE;
  }
  if (d < f->min || d > f->max) {
    fprintf(err, "fleetrl: %s: %s is outside the allowed range [%g, %g]\n", source, v, f->min,
            f->max);
    return FRL_EUSAGE;
  }
  /* Fields are reached by offset; memcpy keeps the typed stores well-defined. */
  switch (f->type) {
  case T_INT: {
    int x = (int)d;
    memcpy(p, &x, sizeof x);
    break;
  }
  case T_U32: {
    uint32_t x = (uint32_t)d;
    memcpy(p, &x, sizeof x);
    break;
  }
  case T_U64: {
    uint64_t x = (uint64_t)strtoull(v, NULL, 10);
    memcpy(p, &x, sizeof x);
    break;
  }
  default:
    memcpy(p, &d, sizeof d);
    break;
  }
  return 0;
}

static const preset_t *find_preset(const char *name) {
  for (size_t i = 0; i < FRL_ARRAY_LEN(g_presets); i++)
    if (strcmp(g_presets[i].name, name) == 0) return &g_presets[i];
  return NULL;
}

static int apply_preset(frl_config_t *cfg, const char *task, FILE *err) {
  const preset_t *p = find_preset(task);
  if (!p) {
    fprintf(err, "fleetrl: --task: unknown task '%s'; known tasks: %s\n", task,
            frl_config_presets());
    return FRL_EUSAGE;
  }
  for (int i = 0; p->settings[i]; i++) {
    const char *s = p->settings[i];
    const char *eq = strchr(s, '=');
    const flag_t *f = find_flag(s, (size_t)(eq - s));
    int rc = set_flag(cfg, f, eq + 1, s, err);
    if (rc) return rc;
  }
  return 0;
}

void frl_config_usage(int groups, FILE *out) {
  fprintf(out, "Flags (each also read from its environment twin FLEETRL_<NAME>):\n");
  for (size_t i = 0; i < FRL_ARRAY_LEN(g_flags); i++) {
    const flag_t *f = &g_flags[i];
    if (!(f->groups & groups)) continue;
    char ev[64];
    env_name(f, ev, sizeof ev);
    fprintf(out, "  --%-18s %s (default %s; %s)\n", f->name, f->help,
            f->def[0] ? f->def : "none", ev);
  }
  fprintf(out, "Tasks:\n");
  for (size_t i = 0; i < FRL_ARRAY_LEN(g_presets); i++)
    fprintf(out, "  %-18s %s\n", g_presets[i].name, g_presets[i].help);
}

int frl_config_parse(frl_config_t *cfg, int groups, int argc, char **argv, FILE *out, FILE *err) {
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < FRL_ARRAY_LEN(g_flags); i++) {
    int rc = set_flag(cfg, &g_flags[i], g_flags[i].def, g_flags[i].name, err);
    if (rc) return rc;
  }
  /* The task preset goes first so that environment and flags override it. */
  const char *task = getenv("FLEETRL_TASK");
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--task") == 0 && i + 1 < argc) task = argv[i + 1];
    else if (strncmp(argv[i], "--task=", 7) == 0) task = argv[i] + 7;
  }
  if (task && (groups & (FRL_CFG_ACTOR | FRL_CFG_LEARNER | FRL_CFG_RUN | FRL_CFG_COMMON))) {
    int rc = apply_preset(cfg, task, err);
    if (rc) return rc;
    snprintf(cfg->task, sizeof cfg->task, "%s", task);
  } else {
    int rc = apply_preset(cfg, cfg->task, err);
    if (rc) return rc;
  }
  for (size_t i = 0; i < FRL_ARRAY_LEN(g_flags); i++) {
    const flag_t *f = &g_flags[i];
    if (!(f->groups & groups)) continue;
    char ev[64];
    env_name(f, ev, sizeof ev);
    const char *v = getenv(ev);
    if (v && *v) {
      int rc = set_flag(cfg, f, v, ev, err);
      if (rc) return rc;
    }
  }
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      frl_config_usage(groups, out);
      return 1;
    }
    if (strncmp(a, "--", 2) != 0) {
      fprintf(err, "fleetrl: unexpected argument '%s' (flags look like --name value)\n", a);
      return FRL_EUSAGE;
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const flag_t *f = find_flag(name, len);
    bool negated = false;
    if (!f && len > 3 && strncmp(name, "no-", 3) == 0) {
      f = find_flag(name + 3, len - 3);
      negated = f && f->type == T_BOOL && !eq;
      if (!negated) f = NULL;
    }
    if (!f || !(f->groups & groups)) {
      fprintf(err, "fleetrl: unknown flag '--%.*s' for this command (see --help)\n", (int)len,
              name);
      return FRL_EUSAGE;
    }
    char source[80];
    snprintf(source, sizeof source, "--%s", f->name);
    const char *v;
    if (negated) v = "false";
    else if (eq) v = eq + 1;
    else if (f->type == T_BOOL) v = "true";
    else if (i + 1 < argc) v = argv[++i];
    else {
      fprintf(err, "fleetrl: --%s needs a value\n", f->name);
      return FRL_EUSAGE;
    }
    int rc = set_flag(cfg, f, v, source, err);
    if (rc) return rc;
  }
  if (strcmp(cfg->algo, "dqn") && strcmp(cfg->algo, "sac") && strcmp(cfg->algo, "td3")) {
    fprintf(err, "fleetrl: --algo: '%s' is not one of dqn|sac|td3\n", cfg->algo);
    return FRL_EUSAGE;
  }
  if (strcmp(cfg->bc_loss, "nll") && strcmp(cfg->bc_loss, "mse")) {
    fprintf(err, "fleetrl: --bc-loss: '%s' is not one of nll|mse\n", cfg->bc_loss);
    return FRL_EUSAGE;
  }
  if (cfg->bc_updates > 0 && cfg->demo_capacity < (uint32_t)cfg->batch) {
    fprintf(err, "fleetrl: --bc-updates: cloning needs a batch of demonstrations kept apart, "
                 "but --demo-capacity %u is below --batch %d\n", cfg->demo_capacity, cfg->batch);
    return FRL_EUSAGE;
  }
  if (cfg->eval_physics[0]) {
    char why[320];
    double value[FRL_RANDOMIZE_COUNT];
    if (frl_randomize_parse_values(cfg->eval_physics, value, why, sizeof why) != 0) {
      fprintf(err, "fleetrl: --eval-physics: %s\n", why);
      return FRL_EUSAGE;
    }
  }
  if (strcmp(cfg->solve_metric, "return") && strcmp(cfg->solve_metric, "success")) {
    fprintf(err, "fleetrl: --solve-metric: '%s' is not one of return|success\n",
            cfg->solve_metric);
    return FRL_EUSAGE;
  }
  {
    char why[256];
    frl_randomize_opts_t dr;
    frl_hardware_opts_t hw;
    if (frl_randomize_from_config(&dr, cfg, why, sizeof why) != 0 ||
        frl_hardware_from_config(&hw, cfg, why, sizeof why) != 0) {
      fprintf(err, "fleetrl: %s\n", why);
      return FRL_EUSAGE;
    }
  }
  if (frl_log_level_parse(cfg->log_level) < 0) {
    fprintf(err, "fleetrl: --log-level: '%s' is not one of debug|info|warn|error\n",
            cfg->log_level);
    return FRL_EUSAGE;
  }
  if (strcmp(cfg->http, "auto") != 0 && strcmp(cfg->http, "off") != 0) {
    struct sockaddr_storage ss;
    char why[160];
    if (frl_http_parse_addr(cfg->http, &ss, why, sizeof why) != 0) {
      fprintf(err, "fleetrl: --http: %s (or auto, or off)\n", why);
      return FRL_EUSAGE;
    }
  }
  if (cfg->name[0] == '\0') {
    char host[40] = "actor";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(cfg->name, sizeof cfg->name, "%s-%ld", host, (long)getpid());
  }
  if (cfg->actor_index < 0)
    cfg->actor_index = (int)(frl_fnv1a64(cfg->name, strlen(cfg->name), FRL_FNV_SEED) %
                             (uint64_t)cfg->num_actors);
  if (cfg->actor_index >= cfg->num_actors && (groups & FRL_CFG_ACTOR)) {
    fprintf(err, "fleetrl: --actor-index: %d must be below --num-actors %d\n", cfg->actor_index,
            cfg->num_actors);
    return FRL_EUSAGE;
  }
  return 0;
}

void frl_config_export(const frl_config_t *cfg) {
  for (size_t i = 0; i < FRL_ARRAY_LEN(g_flags); i++) {
    const flag_t *f = &g_flags[i];
    const char *p = (const char *)cfg + f->off;
    char ev[64], v[300];
    env_name(f, ev, sizeof ev);
    bool b;
    int iv;
    uint32_t u32;
    uint64_t u64;
    double d;
    switch (f->type) {
    case T_STR: snprintf(v, sizeof v, "%s", p); break;
    case T_BOOL: memcpy(&b, p, sizeof b); snprintf(v, sizeof v, "%s", b ? "true" : "false"); break;
    case T_INT: memcpy(&iv, p, sizeof iv); snprintf(v, sizeof v, "%d", iv); break;
    case T_U32: memcpy(&u32, p, sizeof u32); snprintf(v, sizeof v, "%u", u32); break;
    case T_U64: memcpy(&u64, p, sizeof u64); snprintf(v, sizeof v, "%llu", (unsigned long long)u64); break;
    default: memcpy(&d, p, sizeof d); snprintf(v, sizeof v, "%.17g", d); break;
    }
    setenv(ev, v, 1);
  }
}
