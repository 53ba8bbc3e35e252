"""Evaluating a trained policy on a robot without a learner: `fleetrl run` trains a small task,
then `fleetrl emulate --policy runs/.../policy.bin --episodes N` runs the robot program offline
(no broker anywhere) with the file's policy and reports the same mean return, success rate and
violations as `fleetrl eval` on the deterministic grid world; the Python client's offline mode
computes, in numpy, the same action as the C client for every observation the emulator logged
(dueling DQN files, and a SAC file with an observation normalizer and action scale 0.5); files of
another task and damaged files are refused by both clients, naming both sides or the damage;
with --actor-endpoint the same program also ships its experience into a real learner's SQLite
store, every transition tagged with the file's parameter version."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from harness import BIN, Failure, Fleet, run_tests, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "actor", "python"))
import fleetrl_client  # noqa: E402

WORK = tempfile.mkdtemp(prefix="fleetrl-robot-eval-")
# No FLEETRL_* setting of the caller leaks in: in particular no broker endpoint, so the
# emulator's offline mode is what runs.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("FLEETRL_")}
ENV["FLEETRL_HTTP"] = "127.0.0.1:0"
SUMMARY = re.compile(r"(\d+) episodes: mean return (-?[0-9.]+) ± ([0-9.]+), mean length ([0-9.]+), "
                     r"success ([0-9.]+)%, violations (\d+)")
TRACE = re.compile(r" debug: act (\d+): obs ([-0-9.e+ ]+) -> (action|safe) ([-0-9.e+ ]+)$")


def train(task, name, *flags):
    """Trains `task` with `fleetrl run` until solved or its budget is spent; its policy.bin."""
    p = subprocess.run([BIN, "run", "--task", task, "--runs", WORK, "--run-name", name, "--no-progress",
                        *flags], capture_output=True, text=True, timeout=600, env=ENV)
    path = os.path.join(WORK, name, "policy.bin")
    if p.returncode not in (0, 4) or not os.path.exists(path):
        raise Failure(f"fleetrl run --task {task}: exit {p.returncode}\n{p.stderr[-2000:]}")
    return path


def summary(text, what):
    m = SUMMARY.search(text)
    if not m:
        raise Failure(f"{what} printed no evaluation summary:\n{text[-2000:]}")
    return {"episodes": int(m.group(1)), "mean": m.group(2), "std": m.group(3), "length": m.group(4),
            "success": m.group(5), "violations": int(m.group(6))}


def emulate(policy, *flags):
    """Runs the emulator offline with the policy; (summary, [(obs, action)], stderr)."""
    p = subprocess.run([BIN, "emulate", f"--policy={policy}", "--name=eval-bot", "--log-level=debug",
                        "--deadline=1", *flags], capture_output=True, text=True, timeout=300, env=ENV)
    if p.returncode != 0:
        raise Failure(f"fleetrl emulate --policy exited {p.returncode}:\n{p.stderr[-2000:]}")
    trace = []
    for line in p.stderr.splitlines():
        m = TRACE.search(line)
        if m and m.group(3) == "action":
            trace.append((np.array(m.group(2).split(), dtype=np.float32),
                          np.array(m.group(4).split(), dtype=np.float64)))
    return summary(p.stdout, "fleetrl emulate"), trace, p.stderr


def advantages(client, obs):
    """The numpy DQN head's outputs (the advantages of a dueling head) for obs."""
    layers, mean, std = client.weights
    x = np.asarray(obs, dtype=np.float32)
    if mean is not None:
        x = np.clip((x - mean) / std, -10.0, 10.0)
    for w, b in layers[:len(client.policy.layout)]:
        x = np.maximum(w @ x + b, 0.0)
    w, b = layers[-1]
    return w @ x + b


def compare_actions(client, trace, tol):
    """Every logged C action against the Python client's for the same observation: continuous
    actions within tol; a discrete index must be equal unless the two are tied in Q within tol
    (float sums in another order may break an exact tie either way). Returns the largest
    difference (continuous) or the number of near-ties (discrete)."""
    worst, ties = 0.0, 0
    for obs, want in trace:
        got, safe = client.act(obs)
        if safe:
            raise Failure(f"the Python client answered {obs} with the safe action")
        if client.discrete:
            if int(got[0]) != int(want[0]):
                adv = advantages(client, obs)
                if abs(adv[int(got[0])] - adv[int(want[0])]) > tol * max(1.0, abs(adv).max()):
                    raise Failure(f"obs {obs}: C chose action {int(want[0])}, numpy {int(got[0])} "
                                  f"(Q advantages {adv})")
                ties += 1
        else:
            diff = float(np.max(np.abs(got - want)))
            if diff > tol:
                raise Failure(f"obs {obs}: C action {want}, numpy {got} (difference {diff:g} > {tol:g})")
            worst = max(worst, diff)
    return ties if client.discrete else worst


def test_emulator_offline_matches_eval_on_gridworld():
    policy = train("gridworld-dqn", "grid", "--actors=2")
    ev = subprocess.run([BIN, "eval", policy, "--episodes", "5"], capture_output=True, text=True,
                        timeout=120, env=ENV)
    if ev.returncode != 0:
        raise Failure(f"fleetrl eval exited {ev.returncode}: {ev.stderr}")
    want = summary(ev.stdout, "fleetrl eval")
    # No --task: the emulator takes the file's. No sensor noise and no actuation delay, so the
    # emulated grid world runs the same deterministic episodes as eval's.
    got, trace, log = emulate(policy, "--episodes=5", "--sensor-noise=0", "--actuation-latency=0",
                              "--actuation-jitter=0", "--rate-hz=200")
    if "OFFLINE with the policy file" not in log or "connected to the broker" in log:
        raise Failure("the emulator did not run offline:\n" + log[-2000:])
    if got["episodes"] != 5:
        raise Failure(f"emulate reported {got['episodes']} episodes, asked for 5")
    for k in ("mean", "std", "length", "success", "violations"):
        if got[k] != want[k]:
            raise Failure(f"emulate's {k} {got[k]} differs from eval's {want[k]} on the deterministic "
                          f"grid world\neval: {ev.stdout}\nemulate: {SUMMARY.search(log) or got}")
    steps = round(float(got["length"]) * 5)
    if len(trace) != steps:
        raise Failure(f"{len(trace)} logged actions for {steps} steps")
    client = fleetrl_client.Client(None, "py-grid", "gridworld-dqn", obs_dim=16, act_dim=1, n_actions=4,
                                   policy=policy)
    ties = compare_actions(client, trace, 1e-5)
    st = client.status()
    if not st["offline"] or st["params_version"] != fleetrl_client.PolicyFile(policy).params_version:
        raise Failure(f"Python client status {st}")
    client.close()
    print(f"  gridworld: eval and offline emulate both {want['mean']} ± {want['std']} over 5 episodes, "
          f"success {want['success']}%; numpy = C on all {len(trace)} actions ({ties} near-ties)")


def test_numpy_dqn_matches_c_on_cartpole():
    """Many distinct observations for a dueling DQN: CartPole with sensor noise."""
    policy = train("cartpole-dqn", "cart", "--actors=2", "--max-env-steps=3000", "--hidden1=32",
                   "--hidden2=32")
    got, trace, _ = emulate(policy, "--episodes=10", "--rate-hz=1000", "--sensor-noise=0.05")
    if got["episodes"] != 10 or len(trace) != round(float(got["length"]) * 10) or len(trace) < 50:
        raise Failure(f"emulate: {got['episodes']} episodes, {len(trace)} logged actions")
    client = fleetrl_client.Client(None, "py-cart", "cartpole-dqn", obs_dim=4, act_dim=1, n_actions=2,
                                   policy=policy)
    ties = compare_actions(client, trace, 1e-5)
    picked = {int(a[0]) for _, a in trace}
    print(f"  cartpole-dqn (dueling): numpy = C on all {len(trace)} actions ({ties} near-ties), "
          f"actions used {sorted(picked)}; emulate mean return {got['mean']}")


def test_numpy_sac_matches_c_and_refusals():
    # A SAC policy with an observation normalizer and half the action range (tiny networks,
    # a short budget: the actions only have to be those of real trained weights).
    policy = train("pendulum-sac", "pend", "--actors=1", "--hidden1=32", "--hidden2=32",
                   "--max-env-steps=1000", "--min-replay=200", "--eval-period=100000",
                   "--normalize-obs=true", "--action-scale=0.5")
    pf = fleetrl_client.PolicyFile(policy)
    if pf.mean is None or pf.action_scale != 0.5 or pf.algo != "sac":
        raise Failure(f"the run wrote {pf.algo}, normalizer {pf.mean is not None}, scale {pf.action_scale}")
    got, trace, _ = emulate(policy, "--episodes=2", "--rate-hz=1000")
    if got["episodes"] != 2 or len(trace) != 400:
        raise Failure(f"emulate: {got['episodes']} episodes, {len(trace)} logged actions (want 2, 400)")
    if max(abs(a[0]) for _, a in trace) > 1.0:
        raise Failure("an action beyond the file's action scale (half of pendulum's [-2, 2])")
    client = fleetrl_client.Client(None, "py-pend", "pendulum-sac", obs_dim=3, act_dim=1, act_low=[-2.0],
                                   act_high=[2.0], policy=policy)
    worst = compare_actions(client, trace, 1e-5)
    client.close()

    # Another task: both clients refuse, naming both sides.
    p = subprocess.run([BIN, "emulate", f"--policy={policy}", "--task=cartpole-dqn", "--episodes=1"],
                       capture_output=True, text=True, timeout=60, env=ENV)
    want = "is a sac policy for task pendulum-sac (env pendulum: obs 3, 1 action dims); this robot's " \
           "task is cartpole-dqn (env cartpole: obs 4, 2 actions)"
    if p.returncode != 2 or want not in p.stderr:
        raise Failure(f"emulate with another task: exit {p.returncode}, {p.stderr!r}")
    try:
        fleetrl_client.Client(None, "py-x", "cartpole-dqn", obs_dim=4, act_dim=1, n_actions=2, policy=policy)
        raise Failure("the Python client accepted a pendulum-sac file for cartpole-dqn")
    except ValueError as e:
        if "for task pendulum-sac" not in str(e) or "this robot's task is cartpole-dqn" not in str(e):
            raise Failure(f"unclear refusal: {e}")
    # A damaged copy: one parameter byte flipped.
    bad = os.path.join(WORK, "damaged.bin")
    shutil.copy(policy, bad)
    with open(bad, "r+b") as f:
        f.seek(16 + 160 + 9)
        b = f.read(1)
        f.seek(16 + 160 + 9)
        f.write(bytes([b[0] ^ 0x10]))
    try:
        fleetrl_client.PolicyFile(bad)
        raise Failure("the Python client accepted a damaged policy file")
    except fleetrl_client.PolicyFileError as e:
        if "checksum mismatch" not in str(e):
            raise Failure(f"unclear refusal: {e}")
    p = subprocess.run([BIN, "emulate", f"--policy={bad}", "--episodes=1"], capture_output=True, text=True,
                       timeout=60, env=ENV)
    if p.returncode == 0 or "checksum mismatch" not in p.stderr:
        raise Failure(f"emulate with a damaged file: exit {p.returncode}, {p.stderr!r}")
    print(f"  pendulum-sac (normalized, scale 0.5): numpy = C within {worst:.1e} on {len(trace)} actions; "
          f"other task and damaged file refused by both clients")


def test_numpy_sac_with_history_matches_c():
    """A policy trained with --action-history 2 --obs-history 2 sees the robot's observation, its
    previous two observations and its last two commands: the C client (in the emulator) and the
    Python client each keep that history themselves, from the observations they step from and the
    commands they are told were applied, and act the same at every step."""
    policy = train("pendulum-sac", "pend-hist", "--actors=1", "--hidden1=32", "--hidden2=32",
                   "--max-env-steps=1000", "--min-replay=200", "--eval-period=100000",
                   "--normalize-obs=true", "--action-history=2", "--obs-history=2")
    pf = fleetrl_client.PolicyFile(policy)
    if pf.action_history != 2 or pf.obs_history != 2 or pf.obs_dim != 11:
        raise Failure(f"the run wrote history {pf.action_history} commands, {pf.obs_history} observations, "
                      f"obs {pf.obs_dim} (want 2, 2, 3 * 3 + 2)")
    ev = subprocess.run([BIN, "eval", policy, "--episodes", "2", "--physics", "action_delay=2"],
                        capture_output=True, text=True, timeout=120, env=ENV)
    if ev.returncode != 0:
        raise Failure(f"fleetrl eval of a policy with history: exit {ev.returncode}: {ev.stderr}")
    got, trace, _ = emulate(policy, "--episodes=2", "--rate-hz=1000")
    if got["episodes"] != 2 or len(trace) != 400:
        raise Failure(f"emulate: {got['episodes']} episodes, {len(trace)} logged actions (want 2, 400)")
    client = fleetrl_client.Client(None, "py-hist", "pendulum-sac", obs_dim=3, act_dim=1, act_low=[-2.0],
                                   act_high=[2.0], policy=policy)
    worst = 0.0
    for t, (obs, want) in enumerate(trace):
        if t % 200 == 0:  # pendulum episodes are 200 steps; each starts the history again
            client.reset(obs)
        a, safe = client.act(obs)
        if safe:
            raise Failure(f"the Python client answered {obs} with the safe action")
        worst = max(worst, float(np.max(np.abs(a - want))))
        nxt = trace[t + 1][0] if t + 1 < len(trace) else obs
        client.record(nxt, want, 0.0, False, (t + 1) % 200 == 0)
    if worst > 1e-5:
        raise Failure(f"numpy and C differ by {worst:g} with a history")
    client.close()
    # The history built here from the trace, by the layout of lib/history.h, gives C's actions;
    # without the past observations, or without the commands, the actions differ: the comparison
    # above would not notice a part of the history both clients ignored.
    bare = fleetrl_client.NumpyPolicy("sac", 11, 1, 0, pf.hidden, False)
    weights = bare.load(pf.params, pf.mean, pf.std)
    rng = np.random.default_rng(0)

    def action(x):
        return float(bare.act(weights, np.asarray(x, dtype=np.float32), 0.0, rng)[0]) * 2 * pf.action_scale

    own = stale = blind = 0.0
    no_past = no_cmds = 0
    for t in range(1, 200):
        o, w = trace[t][0], float(trace[t][1][0])
        past = [trace[max(t - j, 0)][0] for j in (1, 2)]
        cmds = [float(trace[t - j][1][0]) / 2.0 if t - j >= 0 else 0.0 for j in (1, 2)]
        own = max(own, abs(action(np.concatenate([o] + past + [cmds])) - w))
        no_past += abs(action(np.concatenate([o, o, o, cmds])) - w) > 1e-4
        no_cmds += abs(action(np.concatenate([o] + past + [[0.0, 0.0]])) - w) > 1e-4
    if own > 1e-4:
        raise Failure(f"the layout of lib/history.h rebuilt from the trace differs from C by {own:g}")
    if no_past < 100 or no_cmds < 100:
        raise Failure(f"only {no_past} (past observations) and {no_cmds} (commands) of 199 actions depend "
                      "on the history; the check is blind")
    print(f"  pendulum-sac with 2 past observations and 2 commands: numpy = C within {worst:.1e} on "
          f"{len(trace)} actions, and the layout rebuilt from the trace within {own:.1e}; {no_past} and "
          f"{no_cmds} of 199 would differ without the past observations or the commands")


def test_fixed_policy_ships_experience():
    """Collecting data with a fixed policy: a broker and a learner, and the emulator with the
    file and --actor-endpoint; its episodes land in SQLite under its name, acted with the
    file's version, and it still stops after --episodes."""
    policy = os.path.join(WORK, "grid", "policy.bin")
    if not os.path.exists(policy):
        policy = train("gridworld-dqn", "grid", "--actors=2")
    version = fleetrl_client.PolicyFile(policy).params_version
    f = Fleet("robot-eval-ship", task="gridworld-dqn")
    f.start_broker()
    f.start_learner("--min-replay=100000")  # store only: no training, no broadcasts needed
    p = f.start("collector", "emulate", f"--actor-endpoint={f.front}", f"--policy={policy}", "--name=collector",
                "--episodes=200", "--rate-hz=300", "--deadline=1", "--sensor-noise=0", stdout=subprocess.PIPE)
    out, _ = p.communicate(timeout=120)
    if p.returncode != 0:
        raise Failure(f"emulate --policy --actor-endpoint exited {p.returncode}:\n" + f.tail("collector"))
    got = summary(out.decode(), "emulate with an endpoint")
    if got["episodes"] != 200:
        raise Failure(f"{got['episodes']} episodes, asked for 200")

    def stored():
        r = f.query("SELECT count(*), min(policy_version), max(policy_version) FROM items JOIN actors "
                    "USING(actor_id) WHERE name='collector'")
        return r and r[0][0] > 0 and r[0]
    n, lo, hi = wait_until(stored, 60, "the collector's transitions in SQLite")
    episodes = f.query("SELECT count(*), avg(episode_return) FROM episodes JOIN actors USING(actor_id) "
                       "WHERE name='collector'")[0]
    if (lo, hi) != (version, version):
        raise Failure(f"stored policy versions {lo}..{hi}, the file's is {version}")
    # The Python client connected with the same file: its steps are stored with that version.
    c = fleetrl_client.Client(f.front, "py-collector", "gridworld-dqn", obs_dim=16, act_dim=1, n_actions=4,
                              policy=policy, heartbeat=0.2, gen_dir=os.path.join(f.dir, "pygen"))
    try:
        wait_until(lambda: c.status()["connected"], 30, "the Python client connected")
        for _ in range(20):  # a walk along the top row of the grid, three steps to the goal
            obs = np.eye(16, dtype=np.float32)[0]
            c.reset(obs)
            for t in range(3):
                action, _ = c.act(obs)
                obs = np.eye(16, dtype=np.float32)[t + 1]
                c.record(obs, action, 10.0 if t == 2 else -0.1, t == 2, False)

        def py_stored():
            r = f.query("SELECT count(*), min(policy_version), max(policy_version) FROM items JOIN actors "
                        "USING(actor_id) WHERE name='py-collector'")
            return r and r[0][0] >= 60 and r[0]
        _, plo, phi = wait_until(py_stored, 60, "the Python collector's 60 transitions in SQLite")
        if (plo, phi) != (version, version) or c.status()["params_version"] != version:
            raise Failure(f"Python collector: stored versions {plo}..{phi}, status {c.status()}")
    finally:
        c.close()
    f.stop("learner")
    f.stop("broker")
    print(f"  with --actor-endpoint: {n} transitions and {episodes[0]} episodes (mean return "
          f"{episodes[1]}) stored under the robot's name, all acted with the file's v{version}; "
          f"the Python client's too")


def test_python_emulator_offline():
    """The Python robot program evaluates a policy offline too (the three-joint arm on the
    joint-tracking task's dimensions)."""
    policy = train("pendulum-sac", "arm", "--env=joint-tracking", "--actors=1", "--hidden1=32",
                   "--hidden2=32", "--max-env-steps=600", "--min-replay=200", "--eval-period=100000")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "actor", "python", "emulate.py"), "--name=py-arm",
                        "--task=pendulum-sac", f"--policy={policy}", "--episodes=2", "--rate-hz=2000",
                        "--deadline=1"], capture_output=True, text=True, timeout=120, env=ENV)
    if p.returncode != 0:
        raise Failure(f"emulate.py --policy exited {p.returncode}:\n{p.stderr[-2000:]}")
    got = summary(p.stdout, "emulate.py")
    if got["episodes"] != 2 or "OFFLINE with the policy file" not in p.stderr:
        raise Failure(f"emulate.py: {p.stdout}\n{p.stderr[-1000:]}")
    print(f"  emulate.py offline: {got['episodes']} episodes, mean return {got['mean']}")


if __name__ == "__main__":
    run_tests([test_emulator_offline_matches_eval_on_gridworld, test_numpy_dqn_matches_c_on_cartpole,
               test_numpy_sac_matches_c_and_refusals, test_numpy_sac_with_history_matches_c,
               test_fixed_policy_ships_experience, test_python_emulator_offline])
