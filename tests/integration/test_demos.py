"""Learning from demonstrations, on loopback with the real processes: a scripted pendulum expert
(energy-pumping swing-up, PD control near the top) joins as a robot through the Python client and
sends its steps as demonstrations; the learner, started with --bc-updates, clones the expert's
policy from them (SAC) before RL starts, publishes it and evaluates it. Checked: every
demonstration is stored with demo = 1 and stays while simulated actors overflow the small replay
capacity with agent experience; the cloning phase ran and its loss fell; actors then act with the
cloned parameters and RL proceeds; and the first greedy evaluation (the cloned policy's, before
any RL update) closes at least half the gap from a uniformly random policy's return, measured
here on the same pendulum equations, to the expert's. The same for a linear CartPole controller
cloned by DQN (DQfD's large-margin loss), where the cloned policy solves the task outright. Also
--eval-physics (checked against a Monte Carlo return on physics where the policy cannot matter)
and the flags' range checks."""
import math
import os
import re
import subprocess
import sys

import numpy as np

from harness import BIN, Fleet, Failure, run_tests, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "actor", "python"))
import fleetrl_client  # noqa: E402

CAPACITY = 1000         # agent slots of the replay: the actors overflow it several times
DEMO_EPISODES = 12      # 2400 expert steps
BC_UPDATES = 1500
EVAL_EPISODES = 20


# ---- the pendulum and its expert, in numpy --------------------------------------------------
# The built-in environment's equations (lib/pendulum.c, Gym's Pendulum-v1): theta from upright,
# theta'' = 3 g / (2 l) sin(theta) + 3 / (m l^2) u with g 10, m 1, l 1, dt 0.05, theta' clipped
# to +-8, |u| <= 2, reward -(theta^2 + 0.1 theta'^2 + 0.001 u^2) on the state acted in.

def angle_normalize(x):
    return ((x + math.pi) % (2 * math.pi)) - math.pi


class Pendulum:
    def __init__(self, rng):
        self.rng = rng

    def reset(self):
        self.th = self.rng.uniform(-math.pi, math.pi)
        self.thd = self.rng.uniform(-1, 1)
        self.t = 0
        return self.obs()

    def obs(self):
        return np.array([math.cos(self.th), math.sin(self.th), self.thd], dtype=np.float32)

    def step(self, u):
        u = float(np.clip(u, -2.0, 2.0))
        th = angle_normalize(self.th)
        cost = th * th + 0.1 * self.thd * self.thd + 0.001 * u * u
        self.thd = float(np.clip(self.thd + (15.0 * math.sin(self.th) + 3.0 * u) * 0.05, -8, 8))
        self.th += self.thd * 0.05
        self.t += 1
        return self.obs(), -cost, False, self.t >= 200  # never terminal; truncated at 200


def expert(obs):
    """Swing-up by energy pumping, then PD near the top. With theta'' = 15 sin(theta) + 3 u the
    energy E = theta'^2 / 2 + 15 (cos(theta) - 1) is 0 upright at rest and dE/dt = 3 u theta',
    so u = -k E sign(theta') raises E toward 0; within ~32 degrees of the top, u = -10 theta -
    2.5 theta' holds it there (theta'' = -15 theta - 7.5 theta' around the top)."""
    c, s, thd = float(obs[0]), float(obs[1]), float(obs[2])
    th = math.atan2(s, c)
    if c > 0.85:
        u = -10.0 * th - 2.5 * thd
    else:
        energy = 0.5 * thd * thd + 15.0 * (c - 1.0)
        u = -2.0 * energy * math.copysign(1.0, thd) if abs(thd) > 1e-3 else 1.0
    return float(np.clip(u, -2.0, 2.0))


class CartPole:
    """lib/cartpole.c: Barto et al. 1983 without friction, force +-10 N, dt 0.02 s, ends past
    2.4 m or 12 degrees, 500 steps; reward 1 a step."""

    def __init__(self, rng):
        self.rng = rng

    def reset(self):
        self.s = self.rng.uniform(-0.05, 0.05, 4)
        self.t = 0
        return self.s.astype(np.float32)

    def step(self, a):
        x, xd, th, thd = self.s
        force = 10.0 if int(a) == 1 else -10.0
        st, ct = math.sin(th), math.cos(th)
        common = (force + 0.05 * thd * thd * st) / 1.1
        tha = (9.8 * st - ct * common) / (0.5 * (4.0 / 3.0 - 0.1 * ct * ct / 1.1))
        xa = common - 0.05 * tha * ct / 1.1
        self.s = np.array([x + 0.02 * xd, xd + 0.02 * xa, th + 0.02 * thd, thd + 0.02 * tha])
        self.t += 1
        failed = abs(self.s[0]) > 2.4 or abs(self.s[2]) > 12 * 2 * math.pi / 360
        return self.s.astype(np.float32), 1.0, failed, self.t >= 500


def cartpole_expert(obs):
    """A linear state-feedback controller: push toward the side the pole falls to, damped by
    the cart's position and speed (500 steps from every start)."""
    return 1 if 0.1 * obs[0] + 0.5 * obs[1] + 10.0 * obs[2] + 2.0 * obs[3] > 0 else 0


def mean_return(make_env, policy, episodes, seed):
    rng = np.random.default_rng(seed)
    env, total = make_env(rng), 0.0
    for _ in range(episodes):
        obs, done = env.reset(), False
        while not done:
            out = env.step(policy(obs, rng))
            obs, total = out[0], total + out[1]
            done = any(out[2:])
    return total / episodes


# ---- the fleet --------------------------------------------------------------------------------

def log_text(f, role):
    try:
        return open(f.log(role), errors="replace").read()
    except FileNotFoundError:
        return ""


def alive(f, *roles):
    for role in roles:
        if f.procs[role].poll() is not None:
            raise Failure(f"{role} exited ({f.procs[role].returncode}):\n" + f.tail(role))


def scalar(f, sql, *args):
    r = f.query(sql, *args)
    return r[0][0] if r and r[0][0] is not None else 0


def demonstrate(f, task, make_env, expert_policy, episodes):
    """Records demonstrations the way a lab would before pretraining: a learner that does not
    train (--min-replay out of reach, no checkpoints) stores what the expert sends as it drives
    its simulated robot through the Python client, every step a demonstration, and is stopped
    once every batch is acknowledged. Returns (transitions recorded, the expert's mean
    return)."""
    f.start_learner("--min-replay=100000000", "--checkpoint-period=0")
    env = make_env(np.random.default_rng(11))
    discrete = isinstance(env, CartPole)
    shape = dict(obs_dim=4, act_dim=1, n_actions=2) if discrete else \
        dict(obs_dim=3, act_dim=1, act_low=[-2.0], act_high=[2.0])
    c = fleetrl_client.Client(f.front, "expert", task, demonstration=True, algo=None, batch=64,
                              heartbeat=0.2, max_broker_silence=10.0,
                              gen_dir=os.path.join(f.dir, "pygen"), log=lambda level, text: None,
                              seed=7, **shape)
    try:
        wait_until(lambda: c.status()["connected"], 30, "the expert's client connected")
        steps, total = 0, 0.0
        for _ in range(episodes):
            obs, done = env.reset(), False
            c.reset(obs)
            while not done:
                action, safe = c.act(obs, action=[expert_policy(obs)])
                if safe:
                    raise Failure("the expert's client went into safe mode: " + c.status()["reason"])
                obs, reward, terminal, truncated = env.step(action[0])
                done = terminal or truncated
                if c.record(obs, action, reward, terminal, truncated and not terminal) != 0:
                    raise Failure("the client dropped or shed a demonstration step")
                steps, total = steps + 1, total + reward
        wait_until(lambda: c.steps.qsize() == 0 and c.status()["outbox"] == 0 and
                   scalar(f, "SELECT count(*) FROM items WHERE demo = 1") == steps,
                   30, "every demonstration acknowledged and stored")
    finally:
        c.close()
    if f.stop("learner") != 5:
        raise Failure("the recording learner did not stop cleanly:\n" + f.tail("learner"))
    return steps, total / episodes


def cloning_figures(f, updates, demos):
    """The learner's cloning log lines, which must report the configured updates on all the
    demonstrations: (loss first, loss last, error first, error last)."""
    text = log_text(f, "learner")
    started = re.search(r"behaviour cloning: (\d+) updates \(batch (\d+)\) on the (\d+) demonstrations", text)
    done = re.search(r"behaviour cloning done: (\d+) updates in [\d.]+ s; loss (-?[\d.]+) -> (-?[\d.]+), "
                     r"(?:action error|greedy disagreement) ([\d.]+) -> ([\d.]+)", text)
    if not started or not done or int(started.group(1)) != updates or int(done.group(1)) != updates \
            or int(started.group(3)) != demos:
        raise Failure("no cloning start/end lines for the configured updates:\n" + f.tail("learner"))
    return tuple(float(done.group(k)) for k in (2, 3, 4, 5))


def test_clone_then_rl():
    # Small networks keep the updates quick on a loaded machine; a low replay ratio lets the
    # actors overflow the replay soon after RL starts, too.
    f = Fleet("demos", task="pendulum-sac", env={"FLEETRL_HIDDEN1": "64", "FLEETRL_HIDDEN2": "64"})
    f.start_broker()
    demo_steps, expert_return = demonstrate(f, "pendulum-sac", Pendulum, expert, DEMO_EPISODES)
    # The learner that pretrains reopens the store with every demonstration in it.
    f.start_learner(f"--capacity={CAPACITY}", f"--bc-updates={BC_UPDATES}", "--batch=128", "--lr=1e-3",
                    "--min-replay=200", "--spi=32", f"--eval-episodes={EVAL_EPISODES}",
                    "--eval-period=100000000", "--max-env-steps=100000000", "--solve-return=0")

    wait_until(lambda: alive(f, "learner") or "behaviour cloning done" in log_text(f, "learner"),
               60, "the end of behaviour cloning")
    loss0, loss1, err0, err1 = cloning_figures(f, BC_UPDATES, demo_steps)
    if not (loss1 < loss0 and err1 < 0.5 * err0):
        raise Failure(f"cloning did not fit: loss {loss0} -> {loss1}, action error {err0} -> {err1}")

    # The cloned policy's evaluation comes first, before any RL update.
    evals = wait_until(lambda: f.query("SELECT updates, mean_return FROM evaluations ORDER BY at"), 30,
                       "the evaluation of the cloned policy")
    updates0, cloned = evals[0]
    rand = mean_return(Pendulum, lambda obs, rng: rng.uniform(-2.0, 2.0), 100, 3)
    print(f"  cloned policy {cloned:.1f} over {EVAL_EPISODES} episodes, before RL (updates {updates0}); "
          f"expert {expert_return:.1f}; uniformly random {rand:.1f}; "
          f"loss {loss0:.3f} -> {loss1:.3f}, action error {err0:.3f} -> {err1:.3f}")
    if updates0 != 0:
        raise Failure(f"the first evaluation came after {updates0} RL updates, not right after cloning")
    if not cloned > rand + 0.5 * (expert_return - rand):
        raise Failure(f"cloned policy {cloned:.1f} is not clearly above random {rand:.1f} "
                      f"(expert {expert_return:.1f})")

    # Actors now act with the cloned parameters and RL proceeds; their experience overflows the
    # replay many times while every demonstration stays.
    for i in range(2):
        f.start_actor(i, 2)
    wait_until(lambda: alive(f, "learner", "actor-0", "actor-1") or
               scalar(f, "SELECT coalesce(sum(transitions), 0) FROM actors WHERE name LIKE 'actor-%'") >= 4 * CAPACITY, 90,
               "agent experience beyond four times the replay capacity")
    wait_until(lambda: scalar(f, "SELECT count(*) FROM training WHERE updates > 0"), 30,
               "RL updates after cloning")
    for role in ("actor-0", "actor-1"):
        f.stop(role)
    if f.stop("learner") != 5:
        raise Failure("the learner did not stop cleanly:\n" + f.tail("learner"))
    agent_items = scalar(f, "SELECT count(*) FROM items WHERE demo = 0")
    demo_items = scalar(f, "SELECT count(*) FROM items WHERE demo = 1")
    if agent_items != CAPACITY or demo_items != demo_steps:
        raise Failure(f"after the overflow the store holds {agent_items} agent items (capacity "
                      f"{CAPACITY}) and {demo_items} demonstrations (sent {demo_steps})")
    acted = scalar(f, "SELECT count(*) FROM items WHERE demo = 0 AND policy_version >= 1")
    if acted == 0:
        raise Failure("no agent experience was acted with the cloned (or later) parameters")
    print(f"  {demo_items} demonstrations kept beside {agent_items} agent items after the overflow")


def test_clone_dqn():
    # CartPole with DQN: a linear controller's choices cloned with DQfD's large-margin loss; the
    # cloned greedy policy balances far longer than random pushes.
    f = Fleet("demos-dqn", task="cartpole-dqn")
    f.start_broker()
    updates = 800
    demo_steps, expert_return = demonstrate(f, "cartpole-dqn", CartPole, cartpole_expert, 6)
    f.start_learner(f"--bc-updates={updates}", "--min-replay=100000", "--eval-episodes=10",
                    "--eval-period=100000000", "--max-env-steps=100000000")
    # The log first: a cloned policy that solves ends the run at once (exit 0, checked below).
    wait_until(lambda: "behaviour cloning done" in log_text(f, "learner") or alive(f, "learner"),
               60, "the end of behaviour cloning")
    loss0, loss1, err0, err1 = cloning_figures(f, updates, demo_steps)
    evals = wait_until(lambda: f.query("SELECT updates, mean_return FROM evaluations ORDER BY at"), 30,
                       "the evaluation of the cloned policy")
    rand = mean_return(CartPole, lambda obs, rng: int(rng.integers(2)), 200, 3)
    print(f"  cloned greedy policy {evals[0][1]:.1f} (updates {evals[0][0]}); expert {expert_return:.1f}; "
          f"random {rand:.1f}; loss {loss0:.3f} -> {loss1:.3f}, disagreement {err0:.3f} -> {err1:.3f}")
    if scalar(f, "SELECT count(*) FROM items WHERE demo = 1") != demo_steps:
        raise Failure("not every demonstration is stored with demo = 1")
    if evals[0][0] != 0 or not (loss1 < 0.5 * loss0 and err1 < err0):
        raise Failure(f"cloning: first evaluation after {evals[0][0]} updates, loss {loss0} -> {loss1}, "
                      f"disagreement {err0} -> {err1}")
    if not evals[0][1] > rand + 0.5 * (expert_return - rand):
        raise Failure(f"cloned policy {evals[0][1]:.1f} is not clearly above random {rand:.1f}")
    # A cloned policy that already reaches --solve-return (475) ends the run as solved.
    if evals[0][1] >= 475:
        code = f.procs["learner"].wait(30)
        if code != 0 or '"solved": true' not in open(os.path.join(f.run_dir, "summary.json")).read():
            raise Failure(f"the learner exited {code} after a solving evaluation:\n" + f.tail("learner"))
    f.stop("learner")


def test_flags():
    # Range and consistency checks refuse at start with exit code 2, naming the flag.
    cases = [("--bc-updates=-1", "--bc-updates"), ("--bc-updates=1e9", "--bc-updates"),
             ("--bc-loss=huber", "--bc-loss"),
             ("--bc-updates=10 --demo-capacity=10 --batch=64", "--demo-capacity"),
             ("--eval-physics=mass=50", "mass"), ("--eval-physics=weight=1", "weight")]
    for flags, word in cases:
        p = subprocess.run([BIN, "learner", "--task=pendulum-sac", *flags.split()], capture_output=True,
                           text=True, timeout=20)
        if p.returncode != 2 or word not in p.stderr:
            raise Failure(f"{flags}: exit {p.returncode}, stderr {p.stderr.strip()!r}")
    p = subprocess.run([BIN, "learner", "--help"], capture_output=True, text=True, timeout=20)
    if "FLEETRL_BC_UPDATES" not in p.stdout or "FLEETRL_EVAL_PHYSICS" not in p.stdout:
        raise Failure("learner --help does not list --bc-updates and --eval-physics")


def test_eval_physics():
    # The learner's evaluations run on the given physics. Without gravity and motor the pendulum
    # only coasts at its initial speed, whatever the policy does (its torque costs at most
    # 0.001 * 2^2 a step), so the evaluation's mean return must match this Monte Carlo estimate
    # of the coasting return over the environment's initial states; on nominal physics an
    # early policy scores far lower (about -1200). A parameter the environment lacks is refused.
    rng = np.random.default_rng(5)
    th = rng.uniform(-math.pi, math.pi, 200000)
    thd = rng.uniform(-1, 1, 200000)
    ret = np.zeros_like(th)
    for _ in range(200):
        a = (th + math.pi) % (2 * math.pi) - math.pi
        ret -= a * a + 0.1 * thd * thd
        th = th + thd * 0.05
    coast, spread = float(ret.mean()), float(ret.std())

    f = Fleet("evalphys", task="pendulum-sac", env={"FLEETRL_HIDDEN1": "16", "FLEETRL_HIDDEN2": "16"})
    f.start_broker()
    p = f.start_learner("--eval-physics=damping=1.2")
    if p.wait(20) != 1 or "has no parameter 'damping'" not in log_text(f, "learner"):
        raise Failure("--eval-physics with a parameter pendulum lacks was not refused:\n" + f.tail("learner"))
    episodes = 300
    f.start_learner("--eval-physics=gravity=0,motor_strength=0", "--min-replay=64", "--batch=32",
                    "--eval-period=100", f"--eval-episodes={episodes}", "--max-env-steps=100000000")
    f.start_actor(0, 1)
    wait_until(lambda: alive(f, "learner", "actor-0") or
               scalar(f, "SELECT count(*) FROM evaluations"), 60, "an evaluation")
    if "evaluations run on physics gravity=0,motor_strength=0" not in log_text(f, "learner"):
        raise Failure("the learner did not report its evaluation physics:\n" + f.tail("learner"))
    got = scalar(f, "SELECT mean_return FROM evaluations ORDER BY at LIMIT 1")
    bound = 4 * spread / math.sqrt(episodes) + 0.8
    print(f"  evaluation on gravity 0, motor 0: {got:.1f}; coasting return {coast:.1f} +- {bound:.1f}")
    if abs(got - coast) > bound:
        raise Failure(f"evaluation return {got:.1f} is not the coasting return {coast:.1f} +- {bound:.1f}")
    f.stop("actor-0")
    f.stop("learner")


if __name__ == "__main__":
    run_tests([test_flags, test_eval_physics, test_clone_then_rl, test_clone_dqn])
