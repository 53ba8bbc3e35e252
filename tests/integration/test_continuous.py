"""Continuous control through the whole stack: `fleetrl run` with SAC and with TD3 on the
Pendulum swing-up, with actors acting in the environment's torque range, their transitions
stored with continuous actions in SQLite, and the learner's deterministic evaluation reaching
the published baseline's level within the step budget."""
import json
import math
import os
import sqlite3
import struct
import subprocess
import tempfile

from harness import BIN, Failure, run_tests


def run(task, timeout, *flags):
    root = tempfile.mkdtemp(prefix="fleetrl-cont-")
    p = subprocess.run([BIN, "run", "--task", task, "--runs", root, "--run-name", "r",
                        "--no-progress", *flags], capture_output=True, text=True,
                       timeout=timeout)
    return p, os.path.join(root, "r")


def check_pendulum(task, budget):
    p, folder = run(task, 1500)
    s = json.load(open(os.path.join(folder, "summary.json")))
    if p.returncode != 0 or not s["solved"] or s["eval_return"] < -200 or s["env_steps"] > budget:
        raise Failure(f"{task}: exit {p.returncode}, summary {s}\n{p.stderr[-2000:]}")
    con = sqlite3.connect(f"file:{folder}/replay.db?mode=ro", uri=True)
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("action_type") != "continuous" or meta.get("act_dim") != "1":
        raise Failure(f"meta: {meta}")
    rows = con.execute("SELECT action, action_vec FROM items LIMIT 200").fetchall()
    for action, vec in rows:
        if action is not None or vec is None or len(vec) != 4:
            raise Failure(f"continuous item stored as action={action!r} action_vec={vec!r}")
        a = struct.unpack("<f", vec)[0]
        if not -1.0 <= a <= 1.0:
            raise Failure(f"stored action {a} outside the normalized range [-1, 1]")
    print(f"  {task}: eval {s['eval_return']:.1f} after {s['env_steps']} env steps, "
          f"{s['updates']} updates, {s['wall_seconds']:.0f} s")


def test_pendulum_sac():
    check_pendulum("pendulum-sac", 20000)


def test_pendulum_td3():
    check_pendulum("pendulum-td3", 30000)


def test_algorithm_and_action_space_must_fit():
    p = subprocess.run([BIN, "learner", "--task", "cartpole-dqn", "--algo", "sac",
                        "--run-dir", tempfile.mkdtemp()], capture_output=True, text=True,
                       timeout=30)
    if p.returncode == 0 or "discrete actions; --algo sac needs continuous" not in p.stderr:
        raise Failure(f"exit {p.returncode}: {p.stderr!r}")


def test_humanoid_runs_through_the_stack_with_two_actors():
    p, folder = run("humanoid-walk-sac", 900, "--actors", "2", "--max-env-steps", "6000",
                    "--min-replay", "2000", "--eval-period", "3000", "--eval-episodes", "2")
    if p.returncode != 4:
        raise Failure(f"exit {p.returncode} (expected 4: budget spent)\n{p.stderr[-2000:]}")
    s = json.load(open(os.path.join(folder, "summary.json")))
    if s["env_steps"] < 6000 or s["updates"] < 10 or s["evaluations"] < 1:
        raise Failure(f"summary: {s}")
    con = sqlite3.connect(f"file:{folder}/replay.db?mode=ro", uri=True)
    per_actor = con.execute("SELECT name, items_in_replay FROM actor_summary").fetchall()
    if len(per_actor) != 2 or min(n for _, n in per_actor) < 500:
        raise Failure(f"items per actor: {per_actor}")
    sizes = {len(r[0]) for r in con.execute("SELECT action_vec FROM items LIMIT 100")}
    obs = {len(r[0]) for r in con.execute("SELECT obs FROM items LIMIT 100")}
    if sizes != {21 * 4} or obs != {56 * 4}:
        raise Failure(f"humanoid items have action bytes {sizes}, obs bytes {obs}")
    print(f"  humanoid: {s['env_steps']} env steps from 2 actors, {s['updates']} updates, "
          f"{s['wall_seconds']:.0f} s")


def test_hindsight_through_the_stack():
    """The planar arm with --hindsight 2: every finished episode adds two relabeled copies that
    each end by reaching their goal, so the store holds at least two successful terminal items
    per episode, each with its tip within 5 cm of the (relabeled) target in next_obs; the
    copies add items but neither episodes nor env steps. An environment without a goal is
    refused with the flag's name."""
    p, folder = run("reach-sac", 600, "--hindsight", "2", "--capacity", "50000",
                    "--max-env-steps", "3000",
                    "--min-replay", "1000", "--eval-period", "3000", "--eval-episodes", "2")
    if p.returncode not in (0, 4):
        raise Failure(f"exit {p.returncode}\n{p.stderr[-2000:]}")
    con = sqlite3.connect(f"file:{folder}/replay.db?mode=ro", uri=True)
    episodes, steps = con.execute("SELECT count(*), coalesce(sum(length), 0) FROM episodes").fetchone()
    env_steps = con.execute("SELECT coalesce(sum(env_steps), 0) FROM actors").fetchone()[0]
    items = con.execute("SELECT count(*) FROM items").fetchone()[0]
    if episodes < 10 or items <= env_steps or steps > env_steps:
        raise Failure(f"{episodes} episodes of {steps} steps, {env_steps} env steps, {items} items")
    terminal = con.execute("SELECT next_obs FROM items WHERE discount = 0").fetchall()
    if len(terminal) < 2 * episodes:
        raise Failure(f"{len(terminal)} terminal items for {episodes} episodes with 2 copies each")
    for (next_obs,) in terminal:
        o = struct.unpack("<33f", next_obs)
        d = sum(x * x for x in o[18:21]) ** 0.5  # target - tip
        if d >= 0.05:
            raise Failure(f"a terminal item ends {d:.3f} m from its target (success is 0.05)")
        near = [math.tanh(x / 0.05) for x in o[18:21]]  # and again at the goal's scale
        if max(abs(a - b) for a, b in zip(near, o[30:33])) > 1e-5:
            raise Failure(f"a terminal item's goal-scale offset {o[30:33]} is not tanh of its "
                          f"offset / 0.05 {near}")
    q = subprocess.run([BIN, "actor", "--task", "cartpole-dqn", "--hindsight", "2",
                        "--connect-timeout", "1"], capture_output=True, text=True, timeout=30)
    if q.returncode == 0 or "--hindsight 2: environment 'cartpole'" not in q.stderr:
        raise Failure(f"cartpole with --hindsight: exit {q.returncode}: {q.stderr!r}")
    print(f"  reach-sac --hindsight 2: {episodes} episodes, {env_steps} env steps, {items} items, "
          f"{len(terminal)} successful terminal items")


if __name__ == "__main__":
    run_tests([test_algorithm_and_action_space_must_fit,
               test_humanoid_runs_through_the_stack_with_two_actors,
               test_hindsight_through_the_stack, test_pendulum_sac,
               test_pendulum_td3])
