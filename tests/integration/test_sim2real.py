"""Sim-to-real through the real stack: actors with domain randomization send each episode's
sampled physics with its statistics, the learner stores it in episodes.physics, and the JSON read
back from SQLite names exactly the environment's parameters with values inside the configured
ranges (one actor with the seed's uniform ranges, one with a Gaussian and its own mass range, one
without randomization); `fleetrl run` hands the flags to its actors; `fleetrl eval --physics`
evaluates the learner's saved policy on chosen physics; bad flags are refused at start."""
import json
import os
import sqlite3
import struct
import subprocess
import tempfile

from harness import BIN, Failure, Fleet, run_tests, wait_until

# The seed's ranges (the flags' defaults) for the cart-pole's parameters, and the wrapper's own.
CARTPOLE_KEYS = {"mass", "motor_strength", "gravity", "link_length", "sensor_noise",
                 "action_delay"}
SEED_RANGES = {"mass": (0.8, 1.2), "motor_strength": (0.8, 1.2), "gravity": (9.5, 10.1),
               "link_length": (0.98, 1.02), "sensor_noise": (0.0, 0.05), "action_delay": (0, 2)}


def episodes_by_actor(fleet):
    rows = fleet.query("SELECT a.name, e.physics FROM episodes e JOIN actors a USING (actor_id)")
    out = {}
    for name, physics in rows or []:
        out.setdefault(name, []).append(physics)
    return out


def check_record(text, ranges, where):
    """Parses one episodes.physics value and checks its keys and ranges."""
    try:
        p = json.loads(text)
    except (TypeError, ValueError) as e:
        raise Failure(f"{where}: episodes.physics {text!r} is not JSON: {e}")
    if not isinstance(p, dict) or set(p) != CARTPOLE_KEYS:
        raise Failure(f"{where}: keys {sorted(p) if isinstance(p, dict) else p!r}, "
                      f"want {sorted(CARTPOLE_KEYS)}")
    for k, (lo, hi) in ranges.items():
        v = p[k]
        if not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise Failure(f"{where}: {k} = {v!r} outside [{lo}, {hi}] in {text}")
    if p["action_delay"] != int(p["action_delay"]):
        raise Failure(f"{where}: action_delay {p['action_delay']} is not whole steps")
    return p


def test_randomized_physics_stored_per_episode():
    f = Fleet("sim2real")
    f.start_broker()
    # No evaluations: a lucky early CartPole policy would solve and end the run mid-test.
    f.start_learner("--max-env-steps", "1000000", "--min-replay", "500",
                    "--eval-period", "100000000")
    f.start_actor(0, 3, "--randomize", "uniform")
    f.start_actor(1, 3, "--randomize", "gaussian", "--dr-mass", "1.5:1.6", "--dr-gravity", "off")
    f.start_actor(2, 3)  # no randomization: nominal physics, no record

    def enough():
        for role, p in f.procs.items():
            if p.poll() is not None:
                raise Failure(f"{role} exited {p.returncode}: " + f.tail(role))
        got = episodes_by_actor(f)
        return got if all(len(got.get(f"actor-{i}", [])) >= 25 for i in range(3)) else None

    got = wait_until(enough, 120, "25 stored episodes from each actor", interval=0.3)

    uniform = [check_record(t, SEED_RANGES, "actor-0") for t in got["actor-0"]]
    for k in ("mass", "motor_strength", "gravity", "link_length", "sensor_noise"):
        if len({p[k] for p in uniform}) < len(uniform) // 2:
            raise Failure(f"actor-0: {k} hardly varies across episodes: "
                          f"{sorted({p[k] for p in uniform})}")
    if {p["action_delay"] for p in uniform} != {0, 1, 2}:
        raise Failure(f"actor-0: action delays {sorted({p['action_delay'] for p in uniform})}")

    own = dict(SEED_RANGES, mass=(1.5, 1.6), gravity=(9.8, 9.8))
    gaussian = [check_record(t, own, "actor-1") for t in got["actor-1"]]
    if len({p["mass"] for p in gaussian}) < 2:
        raise Failure("actor-1: the mass never varied")

    if any(t is not None for t in got["actor-2"]):
        raise Failure(f"actor-2 (no randomization) stored physics: {got['actor-2'][:3]}")
    print(f"  {sum(len(v) for v in got.values())} episodes; actor-0 masses "
          f"{min(p['mass'] for p in uniform):.3f}..{max(p['mass'] for p in uniform):.3f}, "
          f"actor-1 {min(p['mass'] for p in gaussian):.3f}..{max(p['mass'] for p in gaussian):.3f}")

    # The learner saves its policy when stopped; evaluate it on physics outside the ranges.
    for role in ("actor-0", "actor-1", "actor-2", "learner"):
        f.stop(role)
    policy = os.path.join(f.run_dir, "policy.bin")
    wait_until(lambda: os.path.exists(policy), 20, "policy.bin")
    check_eval(policy)


def eval_run(*args):
    return subprocess.run([BIN, "eval", *args], capture_output=True, text=True, timeout=120)


def check_eval(policy):
    p = eval_run(policy, "--task", "cartpole-dqn", "--episodes", "3", "--seed", "5",
                 "--physics", "mass=1.3,gravity=12.5,action_delay=3")
    if p.returncode != 0:
        raise Failure(f"eval --physics: exit {p.returncode}: {p.stderr}")
    line = next((l for l in p.stdout.splitlines() if l.startswith("physics ")), None)
    if line is None:
        raise Failure(f"eval printed no physics line: {p.stdout}")
    got = json.loads(line[len("physics "):])
    want = {"mass": 1.3, "motor_strength": 1, "gravity": 12.5, "link_length": 1,
            "sensor_noise": 0, "action_delay": 3}
    if got != want:
        raise Failure(f"eval physics {got}, want {want}")
    again = eval_run(policy, "--task", "cartpole-dqn", "--episodes", "3", "--seed", "5",
                     "--physics", "mass=1.3,gravity=12.5,action_delay=3")
    if again.stdout != p.stdout:
        raise Failure(f"eval is not deterministic:\n{p.stdout}\n{again.stdout}")
    # Parameters the cart-pole lacks, and values out of bounds, are refused with the reason.
    bad = [("friction=0.5", "has no parameter 'friction'"),
           ("mass=0", "mass: 0 is outside the allowed range"),
           ("mass=1.3,mass=1.4", "given twice"),
           ("weight=2", "unknown parameter 'weight'")]
    for spec, needle in bad:
        r = eval_run(policy, "--physics", spec, "--episodes", "1")
        if r.returncode != 2 or needle not in r.stderr:
            raise Failure(f"eval --physics {spec}: exit {r.returncode}, stderr {r.stderr!r}")


def test_run_hands_flags_to_actors():
    root = tempfile.mkdtemp(prefix="fleetrl-s2r-run-")
    p = subprocess.run([BIN, "run", "--task", "cartpole-dqn", "--actors", "1", "--runs", root,
                        "--run-name", "r", "--no-progress", "--max-env-steps", "1500",
                        "--randomize", "uniform", "--dr-gravity", "9.0:9.1",
                        "--hardware-model", "--hw-sensor-delay", "2"],
                       capture_output=True, text=True, timeout=300)
    if p.returncode not in (0, 4):
        raise Failure(f"run: exit {p.returncode}\n{p.stderr[-2000:]}")
    con = sqlite3.connect(f"file:{root}/r/replay.db?mode=ro", uri=True)
    rows = [r[0] for r in con.execute("SELECT physics FROM episodes")]
    if len(rows) < 5:
        raise Failure(f"only {len(rows)} episodes stored")
    for t in rows:
        check_record(t, dict(SEED_RANGES, gravity=(9.0, 9.1)), "run")
    log = open(os.path.join(root, "r", "logs", "actor-0.log")).read()
    if "domain randomization uniform" not in log or "hardware model on" not in log:
        raise Failure(f"actor log does not report the wrappers:\n{log[-1500:]}")


def test_action_history_in_the_store():
    """--action-history 2 --obs-history 1 through the real stack, with an action delay of 2 steps
    inside: every stored observation holds the previous item's observation, then ends with the
    actor's last two commands, newest first, which are the actions of the items before it (as
    commanded, not as delayed); each episode opens with its first observation as the past one and
    neutral commands; the learner builds its networks for the longer observation and writes a
    policy file that `fleetrl eval` runs."""
    root = tempfile.mkdtemp(prefix="fleetrl-s2r-hist-")
    p = subprocess.run([BIN, "run", "--task", "pendulum-sac", "--actors", "1", "--runs", root,
                        "--run-name", "h", "--no-progress", "--max-env-steps", "1200",
                        "--min-replay", "200", "--hidden1", "32", "--hidden2", "32",
                        "--eval-period", "100000", "--action-history", "2", "--obs-history", "1",
                        "--randomize", "uniform", "--dr-action-delay", "2:2"],
                       capture_output=True, text=True, timeout=300)
    if p.returncode not in (0, 4):
        raise Failure(f"run: exit {p.returncode}\n{p.stderr[-2000:]}")
    con = sqlite3.connect(f"file:{root}/h/replay.db?mode=ro", uri=True)
    rows = con.execute("SELECT obs, action_vec FROM items ORDER BY item_id").fetchall()
    if len(rows) < 1000:
        raise Failure(f"only {len(rows)} items stored")
    obs = [struct.unpack("<8f", o) for o, _ in rows]  # pendulum's 3, the previous 3, 2 commands
    act = [struct.unpack("<f", a)[0] for _, a in rows]
    starts = follows = 0
    for i in range(1, len(rows)):
        h0, h1 = obs[i][6], obs[i][7]
        if h0 == 0.0 and h1 == 0.0 and obs[i][3:6] == obs[i][0:3]:
            starts += 1  # an episode's first step: nothing commanded, nothing before it
        elif abs(h0 - act[i - 1]) < 1e-6 and h1 == obs[i - 1][6] and obs[i][3:6] == obs[i - 1][0:3]:
            follows += 1
        else:
            raise Failure(f"item {i}: history {obs[i][3:]} is neither an episode's start nor the "
                          f"previous item's observation {obs[i - 1][0:3]}, command {act[i - 1]} then "
                          f"{obs[i - 1][6]}")
    if starts < 4 or follows < 900:
        raise Failure(f"{starts} episode starts, {follows} steps following their predecessor")
    ev = subprocess.run([BIN, "eval", f"{root}/h/policy.bin", "--episodes", "2", "--physics",
                         "action_delay=3"], capture_output=True, text=True, timeout=120)
    if ev.returncode != 0 or "2 episodes" not in ev.stdout:
        raise Failure(f"eval of the history policy: exit {ev.returncode}: {ev.stderr}{ev.stdout}")
    # Discrete actions have no history to append: refused at start.
    bad = subprocess.run([BIN, "actor", "--actor-endpoint", "tcp://127.0.0.1:1", "--task",
                          "cartpole-dqn", "--action-history", "2"], capture_output=True, text=True,
                         timeout=30)
    if bad.returncode == 0 or "discrete actions" not in bad.stderr:
        raise Failure(f"actor with a history on a discrete task: exit {bad.returncode}, {bad.stderr!r}")


def test_bad_flags_refused():
    cases = [(["--randomize", "sometimes"], {}, "--randomize: 'sometimes' is not one of"),
             (["--dr-mass", "1.2:0.8"], {}, "--dr-mass"),
             (["--dr-action-delay", "0:2.5"], {}, "whole steps"),
             (["--hw-deadband", "0.95"], {}, "dead-band"),
             (["--hw-sensor-delay", "99"], {}, "outside the allowed range"),
             ([], {"FLEETRL_DR_GRAVITY": "abc"}, "--dr-gravity: 'abc' is not LO:HI")]
    for flags, env, needle in cases:
        p = subprocess.run([BIN, "actor", "--actor-endpoint", "tcp://127.0.0.1:1", *flags],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, **env))
        if p.returncode != 2 or needle not in p.stderr:
            raise Failure(f"actor {flags} {env}: exit {p.returncode}, stderr {p.stderr!r}")


if __name__ == "__main__":
    run_tests([test_bad_flags_refused, test_randomized_physics_stored_per_episode,
               test_run_hands_flags_to_actors, test_action_history_in_the_store])
