/* policy.h: what an actor acts with: the policy network of the configured algorithm, the
 * observation normalizer shipped with the parameters, and the exploration rule of the
 * algorithm — DQN: epsilon-greedy over Q; SAC: a sample of the squashed Gaussian (its mean for
 * evaluation); TD3: the deterministic action plus Gaussian noise. The learner evaluates with
 * the same code, so what is measured is what actors run. Continuous actions are in the
 * normalized range [-1, 1]; frl_policy_scale maps them to an environment's bounds. */
#ifndef FRL_POLICY_H
#define FRL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"

typedef enum { FRL_ALGO_DQN = 0, FRL_ALGO_SAC = 1, FRL_ALGO_TD3 = 2 } frl_algo_t;

/* Parses "dqn" | "sac" | "td3"; returns 0 or FRL_EUSAGE. */
int frl_algo_parse(const char *s, frl_algo_t *out);
const char *frl_algo_name(frl_algo_t a);

/* Everything that fixes the policy network's layout (and so the Params a learner publishes). */
typedef struct {
  frl_algo_t algo;
  int obs_dim;
  int act_dim;      /* 1 for DQN */
  int n_actions;    /* DQN: number of actions; 0 for continuous algorithms */
  int hidden1, hidden2; /* hidden2 0: one hidden layer (DQN only) */
  bool dueling;     /* DQN head */
} frl_policy_shape_t;

typedef struct frl_policy frl_policy_t;

struct frl_config;
struct frl_env_spec;
/* The policy layout for a configuration (--algo, --hidden1/2, --dueling) and an environment;
 * actors and learner both derive it here so that published Params always fit. Returns 0, or
 * FRL_EUSAGE with the reason in err (algorithm and action space do not fit, bad sizes). */
int frl_policy_shape_from_config(const struct frl_config *cfg, const struct frl_env_spec *spec,
                                 frl_policy_shape_t *out, char *err, size_t errlen);

/* Number of parameters of the policy network of a shape (0 for an impossible shape). */
size_t frl_policy_param_count(const frl_policy_shape_t *shape);

/* Returns NULL (after logging the reason) for a shape the algorithm cannot build. max_batch
 * bounds frl_policy_priorities. */
frl_policy_t *frl_policy_new(const frl_policy_shape_t *shape, int max_batch, frl_rng_t *rng);
void frl_policy_destroy(frl_policy_t **self_p);
const frl_policy_shape_t *frl_policy_shape(const frl_policy_t *p);
size_t frl_policy_n_params(const frl_policy_t *p);
float *frl_policy_params(frl_policy_t *p);

/* Sets the observation normalizer (NULL mean: none). Returns FRL_EDIM on a length mismatch. */
int frl_policy_set_normalizer(frl_policy_t *p, const float *mean, const float *std, size_t n);
bool frl_policy_has_normalizer(const frl_policy_t *p);

/* Acts for one raw observation. exploration: DQN epsilon; SAC > 0 samples, 0 takes the mean;
 * TD3 noise std (normalized units). DQN writes the action index to action[0]. */
void frl_policy_act(frl_policy_t *p, const float *obs, double exploration, frl_rng_t *rng,
                    float *action);

/* Ape-X initial priorities |delta| for B DQN transitions with the local network (raw
 * observations). Returns 0, or FRL_EUSAGE for algorithms without a critic on the actor (the
 * learner then gives new items its running max priority). */
int frl_policy_priorities(frl_policy_t *p, int B, const float *obs, const int32_t *action,
                          const float *reward, const float *discount, const float *next_obs,
                          float *td_abs);

/* a_env = mid + scale * a * (high - low) / 2 per dimension, mid = (low + high) / 2: scale 1
 * maps [-1, 1] onto the environment's bounds; a smaller scale (--action-scale) limits what
 * the policy may command to that fraction of the range around its middle. */
void frl_policy_scale(float *out, const float *a, const float *low, const float *high,
                      float scale, int n);

#endif
