/* gridworld.c: the 4x4 GridWorld of the tabular Q-learning example (seed 002:709-768): start in
 * cell 0, goal in cell 3, one obstacle in cell 5; observations are one-hot cells. */
#include <math.h>
#include <string.h>

#include "common.h"
#include "env_impl.h"

/* Cells are numbered row-major from the top-left:
 *    0  1  2  G3        G: goal, +10 and terminal (success)
 *    4 X5  6  7         X: obstacle, -5 and the agent stays where it was (one violation)
 *    8  9 10 11         any other step, including bumping into a wall, costs -0.1
 *   12 13 14 15
 * Actions: 0 up, 1 right, 2 down, 3 left. */
#define GW_SIZE 4
#define GW_CELLS (GW_SIZE * GW_SIZE)
#define GW_START 0
#define GW_GOAL (GW_SIZE - 1)
#define GW_OBSTACLE (GW_SIZE + 1)
#define GW_GOAL_REWARD 10.0f
#define GW_OBSTACLE_REWARD -5.0f
#define GW_STEP_REWARD -0.1f
/* The seed's grid had no time limit; a policy that never reaches the goal (e.g. a greedy
 * untrained Q-network pushing into a wall) would run forever, so episodes are truncated here.
 * 100 steps is far more than the 3-step shortest path. */
#define GW_MAX_STEPS 100

typedef struct {
  int cell;
} gridworld_t;

static void write_obs(const gridworld_t *g, float *obs) {
  memset(obs, 0, GW_CELLS * sizeof *obs);
  obs[g->cell] = 1.0f;
}

static void gw_init(void *state, frl_env_spec_t *spec) {
  spec->obs_dim = GW_CELLS;
  spec->act_dim = 1;
  spec->n_actions = 4;
  spec->max_steps = GW_MAX_STEPS;
}

static void gw_reset(void *state, frl_rng_t *rng, float *obs) {
  gridworld_t *g = state;
  g->cell = GW_START;
  write_obs(g, obs);
}

static void gw_step(void *state, frl_rng_t *rng, const float *action, float *obs, frl_step_t *out) {
  gridworld_t *g = state;
  int row = g->cell / GW_SIZE, col = g->cell % GW_SIZE;
  switch ((int)action[0]) {
  case 0: if (row > 0) row--; break;
  case 1: if (col < GW_SIZE - 1) col++; break;
  case 2: if (row < GW_SIZE - 1) row++; break;
  case 3: if (col > 0) col--; break;
  default: break; /* env.c only passes 0..3 */
  }
  int next = row * GW_SIZE + col;
  if (next == GW_OBSTACLE) {
    out->reward = GW_OBSTACLE_REWARD;
    out->violations = 1;
  } else if (next == GW_GOAL) {
    out->reward = GW_GOAL_REWARD;
    out->terminal = true;
    out->success = true;
    g->cell = next;
  } else {
    out->reward = GW_STEP_REWARD;
    g->cell = next;
  }
  write_obs(g, obs);
}

/* s = {cell}; the obstacle and the goal are not places an episode can be in. */
static int gw_set_state(void *state, const double *s, int n, float *obs) {
  if (n != 1) return FRL_EDIM;
  if (!(s[0] >= 0 && s[0] < GW_CELLS) || s[0] != floor(s[0])) return FRL_EUSAGE;
  int cell = (int)s[0];
  if (cell == GW_OBSTACLE || cell == GW_GOAL) return FRL_EUSAGE;
  gridworld_t *g = state;
  g->cell = cell;
  write_obs(g, obs);
  return 0;
}

const frl_env_impl_t frl_env_gridworld = {
    .name = "gridworld",
    .state_size = sizeof(gridworld_t),
    .init = gw_init,
    .reset = gw_reset,
    .step = gw_step,
    .set_state = gw_set_state,
};
