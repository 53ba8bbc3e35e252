/* client.h: the library a physical robot links to join a fleet as an actor. The robot's own
 * control loop calls act() and record(); neither ever waits on the network. A background thread
 * owns the ZeroMQ socket and does everything else: Hello, n-step transitions and batching,
 * shipping with an outbox of unacknowledged batches (resent after a timeout or a reconnect),
 * parameter updates (swapped into the acting policy under a lock held only for a pointer swap),
 * heartbeats, e-stop and resume.
 *
 * Every action act() returns has passed the robot's safety shield (lib/shield.h, configured by
 * a limits file). A watchdog (lib/watchdog.h) replaces it with the shield's safe action while
 * the broker is silent too long, the parameters are too old, the observation is not finite, or
 * an e-stop is in force; every entry into and exit from safe mode, every e-stop and resume, and
 * the shield's interventions are logged and shipped to the learner as safety events.
 *
 * With a policy file (frl_client_options_t.policy_path) the robot runs that trained policy,
 * deterministically and never replaced by the learner's, offline when no endpoint is given:
 * the way to evaluate a policy on the robot itself (`fleetrl emulate --policy`).
 *
 * Use from one control thread (act, record, reset, status are not to be called concurrently
 * with each other); the library's own thread never calls back into the robot.
 *
 *   frl_client_t *c;
 *   frl_client_connect(&c, "tcp://lab-broker:5555", "ur5-left", "ur5.limits", "reach-sac", NULL,
 *                      err, sizeof err);
 *   robot_read(obs); frl_client_reset(c, obs);
 *   for (;;) {                                   // at the robot's control rate
 *     frl_client_act(c, obs, action);            // shielded, in the robot's units
 *     robot_apply(action); robot_wait_period();
 *     robot_read(obs); reward = task_reward(obs);
 *     frl_client_record(c, obs, action, reward, terminal, truncated, NULL);
 *     if (terminal || truncated) { robot_reset(obs); frl_client_reset(c, obs); }
 *   }
 *   frl_client_close(&c);
 */
#ifndef FRL_CLIENT_H
#define FRL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct frl_config;

typedef struct frl_client frl_client_t;

typedef struct {
  /* Every setting (batch size, n-step, network shape, heartbeat, the robot flags). NULL: the
   * built-in defaults, the task preset and the FLEETRL_* environment variables, as for
   * `fleetrl actor`. The connect arguments below override the matching fields. */
  const struct frl_config *cfg;
  /* Every recorded step is a demonstration (teleoperation, a scripted controller) unless a
   * record says otherwise; the learner keeps demonstrations apart from agent experience. */
  bool demonstration;
  /* A policy file (lib/policy_file.h: a run's policy.bin, or `fleetrl export`) to act with
   * instead of the learner's parameters; NULL: the setting's --policy ("" none). The file must
   * be for the robot's task: same task name, environment and dimensions. It acts
   * deterministically (greedy Q for DQN, the mean action for SAC, no noise for TD3) with its own
   * observation normalizer and action scale, exactly as `fleetrl eval` does, still through the
   * shield and the watchdog; broadcast parameters never replace it. In this mode the endpoint
   * argument alone decides the network: NULL runs the robot offline (no broker, no network
   * thread, no broker-silence safe mode, nothing shipped; record() only counts), an endpoint
   * also ships the experience, e.g. to collect data with a fixed policy. */
  const char *policy_path;
} frl_client_options_t;

/* Per-record details; NULL means all defaults. */
typedef enum {
  FRL_DEMO_INHERIT = 0, /* the client's setting (connect option) */
  FRL_DEMO_NO = 1,
  FRL_DEMO_YES = 2,
} frl_demo_t;

typedef struct {
  bool success;          /* the task's success held at this step */
  uint32_t violations;   /* limit or safety violations the robot observed at this step */
  frl_demo_t demonstration;
} frl_client_info_t;

typedef struct {
  bool connected;           /* welcomed by the broker and heard from within the silence bound */
  bool refused;             /* the broker refused this robot (reason says why) */
  uint64_t params_version;  /* version of the policy acting now (0: warm-up, none received) */
  uint64_t policy_lag;      /* newest version the broker announced minus params_version */
  uint32_t outbox;          /* batches not yet acknowledged */
  bool safe_mode;
  uint32_t safe_causes;     /* FRL_WD_* bits (lib/watchdog.h) */
  char reason[320];         /* why in safe mode / refused, or "healthy" */
  double params_age_s;      /* since the newest parameters arrived (-1: none yet) */
  double broker_silence_s;  /* since the broker was last heard from */
  uint64_t steps;           /* recorded steps */
  uint64_t dropped_steps;   /* not recorded: non-finite values or no observation to start from */
  uint64_t shed_steps;      /* not recorded: the hand-over queue to the network thread was full */
  uint64_t shed_batches;    /* batches dropped because the outbox was full */
  uint64_t acked_batches;
  uint64_t clipped, barrier; /* shield interventions (dimensions changed) */
  uint64_t safe_actions;    /* act() calls answered with the safe action */
  bool offline;             /* a policy file without a broker: nothing is shipped */
  /* Episodes the robot recorded to their end (terminal or truncated), counted by the library
   * itself, also offline, so a program can report an evaluation: an episode's return is the
   * sum of its records' finite rewards; one abandoned by reset() midway is not counted. */
  uint64_t episodes;
  double mean_return, std_return; /* over those episodes (std: population, 0 for one) */
  double mean_length;       /* steps per episode */
  uint64_t successes;       /* episodes in which success held at some step */
  uint64_t violations;      /* violations reported by the records of those episodes */
} frl_client_status_t;

/* Starts a client: reads and checks the limits file (NULL or "": only the task's action
 * bounds), builds the policy for the task (or loads the policy file, see
 * frl_client_options_t.policy_path), starts the network thread, which connects to the
 * broker at endpoint and keeps reconnecting for as long as the client lives (a robot never gives
 * up on its broker; it waits in safe mode). endpoint, name, limits_path and task override the
 * settings when not NULL. Returns 0 and *out, or a negative code with a one-line reason in err:
 * FRL_EUSAGE for bad settings or limits (the message names the flag, or the file, line and
 * key), FRL_EDIM for a policy file of another task (the message names both), FRL_ENOTFOUND for an
 * unknown task or environment, FRL_ECORRUPT or -errno for a policy file that cannot be read or
 * does not verify, -errno for a socket that cannot be made. Nothing is left running on error. */
int frl_client_connect(frl_client_t **out, const char *endpoint, const char *name,
                       const char *limits_path, const char *task,
                       const frl_client_options_t *opts, char *err, size_t errlen);

/* Stops the network thread (after one last attempt to ship what is sealed; unacknowledged
 * batches are lost with the process, as for any actor), frees everything, sets *self_p to
 * NULL. Accepts NULL. */
void frl_client_close(frl_client_t **self_p);

/* Starts an episode at observation obs (obs_dim floats). */
void frl_client_reset(frl_client_t *c, const float *obs);

/* Computes the action for obs: the latest policy (with the algorithm's exploration unless
 * --explore false; uniform warm-up actions for continuous tasks before the first parameters;
 * with a policy file, its deterministic action and its action scale), scaled to the task's
 * action bounds, then the shield. In safe mode the shield's safe action
 * instead. action receives act_dim floats in the robot's units (a discrete task: the action
 * index in action[0]). Never blocks on the network; allocation-free. Returns 0 for a policy
 * action, 1 for the safe action. */
int frl_client_act(frl_client_t *c, const float *obs, float *action);

/* Records one step: the robot applied `action` (robot units, what act returned or the
 * demonstrator's command) in the observation given to the previous act() or reset(), received
 * `reward` and now observes obs. terminal: a true end state; truncated: cut by a time limit (both
 * end the episode; call reset or act with the next episode's first observation). info may be
 * NULL. Hands the step to the network thread and returns at once: 0 when queued, 1 when dropped
 * (a non-finite value, or no observation to start from; counted), FRL_EFULL when the hand-over
 * queue was full (shed; counted). The action is stored normalized to [-1, 1] as every actor's
 * is. A partial batch ships after two heartbeat periods, so a slow robot's steps and its
 * safety events reach the learner promptly.
 *
 * History (--action-history K and --obs-history M, or a policy file trained with them): the client
 * appends the previous M observations and the last K commands to every observation the policy
 * sees and the learner stores, newest first (lib/history.h). A command joins the history when
 * act() returns it (also the safe action), whatever delay the actuators add, as in simulation; a
 * step recorded without an act() before it (a demonstrator's) brings its `action` instead. Each
 * record() makes the observation its step was taken from the newest past one. reset() starts the
 * history again: commands neutral, the episode's first observation standing for the past. */
int frl_client_record(frl_client_t *c, const float *obs, const float *action, float reward,
                      bool terminal, bool truncated, const frl_client_info_t *info);

/* Switches the default of later records between agent experience and demonstration. */
void frl_client_set_demonstration(frl_client_t *c, bool on);

/* Fills *st. Also re-evaluates the watchdog, so a robot that is not calling act() (a
 * demonstrator) still sees and logs safe-mode changes. */
void frl_client_status(frl_client_t *c, frl_client_status_t *st);

/* The task's dimensions: observation floats the robot passes to act, record and reset (a policy
 * trained with a history sees them followed by the robot's past observations and last commands,
 * which the client keeps itself; see frl_client_record), action floats (1 for discrete), and
 * the number of discrete actions (0 for continuous). */
int frl_client_obs_dim(const frl_client_t *c);
int frl_client_act_dim(const frl_client_t *c);
int frl_client_n_actions(const frl_client_t *c);

/* `fleetrl emulate` (cli/emulator.c): a robot emulator that uses this library exactly as a
 * robot does, over a built-in environment. Returns a process exit code. */
int frl_emulate_main(int argc, char **argv);

#endif
