"""Physical robots as actors, on loopback with the real processes: the C robot emulator
(`fleetrl emulate`, 100 Hz) and the Python-client emulator train alongside a simulated actor and
their experience and safety events land in SQLite under their robot names; a SIGKILLed and
restarted broker never makes the emulator's control loop miss a deadline (it reports them), puts
it in safe mode within the watchdog bound and out again after recovery, and loses no acknowledged
batch; `fleetrl estop` puts it in safe mode and `fleetrl resume` lifts it. Also the Python
client's shield and n-step builder against the same hand values as the C unit tests."""
import os
import re
import signal
import struct
import subprocess
import sys

from harness import BIN, Fleet, Failure, run_tests, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "actor", "python"))
import fleetrl_client  # noqa: E402

# The learner trains SAC on the three-joint tracking arm with small networks (quick updates on
# a loaded machine); every process gets the same settings through the environment.
ENV = {"FLEETRL_ENV": "joint-tracking", "FLEETRL_HIDDEN1": "32", "FLEETRL_HIDDEN2": "32"}
LIMITS = """# the tracking arm: torques in [-1, 1], joints within +-3 rad and 4 rad/s
action_dim 3
action_min -1
action_max 1
max_delta 0.5
barrier_gain 5
control_period 0.01
joint j0 position=0 velocity=3 action=0 min=-3 max=3 vmax=4 command=effort brake=2
joint j1 position=1 velocity=4 action=1 min=-3 max=3 vmax=4 command=effort brake=2
joint j2 position=2 velocity=5 action=2 min=-3 max=3 vmax=4 command=effort brake=2
safe_action zero
"""
SILENCE = 1.5  # --max-broker-silence: the watchdog bound


def start_fleet(name):
    f = Fleet(name, task="pendulum-sac", env=ENV)
    f.limits = os.path.join(f.dir, "arm.limits")
    with open(f.limits, "w") as fh:
        fh.write(LIMITS)
    f.start_broker()
    f.start_learner("--min-replay=200", "--max-env-steps=100000000", "--eval-period=100000000")
    return f


def start_emulator(f, name, *flags):
    # --deadline 1: generous on a shared, loaded machine; a loop that waited on the network
    # (a connect timeout, a blocking send) would still miss it by seconds.
    return f.start(name, "emulate", f"--actor-endpoint={f.front}", f"--name={name}", "--rate-hz=100",
                   f"--limits={f.limits}", "--deadline=1", f"--max-broker-silence={SILENCE}",
                   f"--ack-log={f.ack_log(name)}", "--report-period=2", *flags)


def start_python_emulator(f, name, *flags):
    env = dict(f.env, FLEETRL_PYGEN=os.path.join(f.dir, "pygen"))
    logf = open(f.log(name), "ab")
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "actor", "python", "emulate.py"),
                          f"--endpoint={f.front}", f"--name={name}", "--task=pendulum-sac",
                          "--hidden", "32", "32", f"--limits={f.limits}", "--rate-hz=50", "--deadline=1",
                          "--heartbeat=0.2", f"--ack-log={f.ack_log(name)}", *flags],
                         stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, env=env)
    f.procs[name] = p
    return p


def items(f, name):
    r = f.query("SELECT count(*) FROM items JOIN actors USING(actor_id) WHERE name=?", name)
    return r[0][0] if r else 0


def log_text(f, role):
    try:
        return open(f.log(role), errors="replace").read()
    except FileNotFoundError:
        return ""


def alive(f, *roles):
    for role in roles:
        if f.procs[role].poll() is not None:
            raise Failure(f"{role} exited ({f.procs[role].returncode}):\n" + f.tail(role))


def check_acked_in_store(f, name):
    """Every batch the robot saw acknowledged is in SQLite with all its transitions."""
    con = f.db()
    acked = f.acked(name)
    rows = dict(con.execute("SELECT b.seq, b.transitions FROM batches b JOIN actors USING(actor_id) "
                            "WHERE name=?", (name,)).fetchall())
    counts = dict(con.execute("SELECT i.batch_seq, count(*) FROM items i JOIN actors USING(actor_id) "
                              "WHERE name=? GROUP BY i.batch_seq", (name,)).fetchall())
    missing = [s for s in acked if s not in rows]
    if missing:
        raise Failure(f"{name}: {len(missing)} acked batches missing from SQLite, e.g. {missing[:3]}")
    wrong = [s for s in acked if counts.get(s, 0) != rows[s]]
    if wrong:
        raise Failure(f"{name}: batch {wrong[0]} has {counts.get(wrong[0])} items, expected {rows[wrong[0]]}")
    return len(acked)


def test_robots_train_alongside_actors():
    f = start_fleet("robots")
    f.start_actor(0, 1)
    start_emulator(f, "robo-c")
    # A Python robot acting with the numpy policy, and one whose scripted controller decides
    # (algo none) and records demonstrations.
    start_python_emulator(f, "robo-py", "--algo=sac")
    start_python_emulator(f, "robo-demo", "--algo=none", "--demonstration")
    robots = ("robo-c", "robo-py", "robo-demo")
    wait_until(lambda: alive(f, *robots, "learner") or
               min(items(f, n) for n in ("actor-0",) + robots) >= 300, 120,
               "experience from the simulated actor and the robots in SQLite")
    # Training runs on all of it and parameters reach the robots that act with them.
    wait_until(lambda: "first parameters" in log_text(f, "robo-c") and
               "first parameters" in log_text(f, "robo-py"), 120, "parameters at both robots")

    def learned(name):
        r = f.query("SELECT count(*) FROM items JOIN actors USING(actor_id) WHERE name=? AND "
                    "policy_version > 0", name)
        return r and r[0][0] > 0
    wait_until(lambda: learned("robo-c") and learned("robo-py"), 60,
               "robot experience acted with learned parameters (C and numpy policies)")
    # The shield's interventions (max_delta clips warm-up actions) are safety events in SQLite.
    wait_until(lambda: (f.query("SELECT count(*) FROM safety_events JOIN actors USING(actor_id) "
                                "WHERE name='robo-c' AND kind='clip'") or [[0]])[0][0] > 0, 60,
               "clip events from robo-c")
    for name in robots + ("actor-0",):
        if f.stop(name) not in (0,):
            raise Failure(f"{name} did not stop cleanly:\n" + f.tail(name))
    f.stop("learner")
    con = f.db()
    for name in robots:
        # Actions on the wire are normalized to [-1, 1] and the shield kept them in its bounds.
        n, demo = con.execute("SELECT count(*), sum(demo) FROM items JOIN actors USING(actor_id) WHERE name=?",
                              (name,)).fetchone()
        if demo != (n if name == "robo-demo" else 0):
            raise Failure(f"{name}: {demo} of {n} items marked as demonstrations")
        for (blob,) in con.execute("SELECT action_vec FROM items JOIN actors USING(actor_id) WHERE name=? "
                                   "LIMIT 500", (name,)):
            vals = struct.unpack(f"<{len(blob) // 4}f", blob)
            if len(vals) != 3 or any(not (-1.0 <= v <= 1.0) for v in vals):
                raise Failure(f"{name}: stored action {vals} is not 3 values in [-1, 1]")
        acked = check_acked_in_store(f, name)
        clips = con.execute("SELECT coalesce(sum(count), 0) FROM safety_events JOIN actors USING(actor_id) "
                            "WHERE name=? AND kind='clip'", (name,)).fetchone()[0]
        print(f"  {name}: {n} items, {acked} acked batches all in SQLite, {clips} clipped dimensions")
    m = re.findall(r"missed deadlines (\d+) in total", log_text(f, "robo-c"))
    print(f"  robo-c loop (machine under test load): missed deadlines {m[-1] if m else '?'}")


def test_broker_loss_and_estop_keep_the_loop():
    f = start_fleet("robot-loss")
    start_emulator(f, "robo-k")
    wait_until(lambda: alive(f, "robo-k") or items(f, "robo-k") >= 100, 90, "robo-k experience in SQLite")
    front, back = f.front, f.back

    def count(pattern):
        return len(re.findall(pattern, log_text(f, "robo-k")))

    policy_lines = count("POLICY ACTION applied")
    f.procs["broker"].send_signal(signal.SIGKILL)
    f.procs["broker"].wait(10)
    # Safe mode within the watchdog bound (plus slack for a loaded machine), for the right cause.
    wait_until(lambda: re.search(r"SAFE ACTION applied at wall [0-9.]+ \(broker silent", log_text(f, "robo-k")),
               SILENCE + 15, "robo-k in safe mode after the broker died")
    before = items(f, "robo-k")
    f.start("broker2", "broker", f"--actor-endpoint={front}", f"--learner-endpoint={back}")
    wait_until(lambda: alive(f, "robo-k") or count("POLICY ACTION applied") > policy_lines, 60,
               "robo-k out of safe mode after the broker came back")
    policy_lines = count("POLICY ACTION applied")
    wait_until(lambda: items(f, "robo-k") >= before + 100, 90, "robo-k ingest through the new broker")
    # E-stop through the broker, then resume.
    rc = subprocess.run([BIN, "estop", "integration test", f"--actor-endpoint={front}"], env=f.env,
                        capture_output=True, timeout=60).returncode
    if rc != 0:
        raise Failure(f"fleetrl estop exited {rc}")
    wait_until(lambda: re.search(r"SAFE ACTION applied at wall [0-9.]+ \(e-stop\)", log_text(f, "robo-k")), 30,
               "robo-k applying the safe action after the e-stop")
    rc = subprocess.run([BIN, "resume", f"--actor-endpoint={front}"], env=f.env, capture_output=True,
                        timeout=60).returncode
    if rc != 0:
        raise Failure(f"fleetrl resume exited {rc}")
    wait_until(lambda: count("POLICY ACTION applied") > policy_lines, 30,
               "robo-k acting with the policy after resume")
    wait_until(lambda: {k for (k,) in f.query("SELECT DISTINCT kind FROM safety_events JOIN actors "
                                               "USING(actor_id) WHERE name='robo-k'") or []}
               >= {"safe_mode_enter", "safe_mode_exit", "estop", "resume"}, 30,
               "safe-mode, e-stop and resume events in SQLite")
    if f.stop("robo-k") != 0:
        raise Failure("robo-k did not stop cleanly:\n" + f.tail("robo-k"))
    text = log_text(f, "robo-k")
    m = re.findall(r"missed deadlines (\d+) in total", text)
    if not m:
        raise Failure("robo-k reported no loop summary:\n" + f.tail("robo-k"))
    if int(m[-1]) != 0:
        raise Failure(f"robo-k missed {m[-1]} control deadlines across a broker SIGKILL:\n" + f.tail("robo-k"))
    worst = max(float(x) for x in re.findall(r"act max ([0-9.]+) ms", text))
    f.stop("learner")
    f.stop("broker2")
    acked = check_acked_in_store(f, "robo-k")
    print(f"  no missed deadline across a broker SIGKILL and an e-stop; slowest act() {worst:.3f} ms; "
          f"{acked} acked batches all in SQLite")


def test_curve_robots():
    """With CURVE on the broker, the C emulator and the Python client connect with the key files
    of `fleetrl keygen` (the broker admits them by its allowlist)."""
    f = Fleet("robot-curve", task="pendulum-sac", env=ENV)
    keys = os.path.join(f.dir, "keys")
    allow = []
    for name in ("broker", "robo-ck", "robo-pk"):
        out = subprocess.run([BIN, "keygen", name, "--out", keys], capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise Failure(f"fleetrl keygen {name}: {out.stderr}")
        with open(os.path.join(keys, name + ".pub")) as fh:
            allow.append(f"{name} {fh.read().strip()}")
    with open(os.path.join(f.dir, "allow"), "w") as fh:
        fh.write("\n".join(allow[1:]) + "\n")
    key = lambda n, ext: os.path.join(keys, f"{n}.{ext}")
    f.start_broker(f"--curve-secret={key('broker', 'key')}", f"--allow={os.path.join(f.dir, 'allow')}")
    f.start("robo-ck", "emulate", f"--actor-endpoint={f.front}", "--name=robo-ck", "--rate-hz=50",
            f"--curve-secret={key('robo-ck', 'key')}", f"--broker-key={key('broker', 'pub')}")
    c = fleetrl_client.Client(f.front, "robo-pk", "pendulum-sac", 9, 3, [-1] * 3, [1] * 3,
                              curve_secret=key("robo-pk", "key"), broker_key=key("broker", "pub"),
                              heartbeat=0.2, gen_dir=os.path.join(f.dir, "pygen"))
    try:
        wait_until(lambda: c.status()["connected"], 30, "the Python client connected over CURVE")
        wait_until(lambda: alive(f, "robo-ck") or "connected to the broker" in log_text(f, "robo-ck"), 30,
                   "the C emulator connected over CURVE")
        # A public key where the secret one belongs is refused with the file named.
        try:
            fleetrl_client.load_curve_keys(key("robo-pk", "pub"), key("broker", "pub"))
            raise Failure("a public key file was accepted as a secret key")
        except ValueError as e:
            assert "robo-pk.pub is not a secret key file" in str(e), e
    finally:
        c.close()
    f.stop("robo-ck")
    f.stop("broker")


def test_python_shield_and_nstep_hand_values():
    """The Python client applies lib/shield.h's rules and actor/nstep.h's returns: the hand
    values of tests/test_shield.c and tests/test_client.c."""
    S = fleetrl_client.Shield
    s = S(3, [-3] * 3, [3] * 3, 6, "action_min -2 -2 -1\naction_max 2\nmax_delta 0.5\n")
    a, clipped, _ = s.apply([0] * 6, [5, -0.5, -7])
    assert list(a) == [2, -0.5, -1] and clipped == 2, (a, clipped)
    a, clipped, _ = s.apply([0] * 6, [0, 1.0, -0.75])
    assert list(a) == [1.5, 0.0, -0.75] and clipped == 2, (a, clipped)
    s = S(3, [-3] * 3, [3] * 3, 6, "barrier_gain 20\ncontrol_period 0.01\n"
          "joint sh position=0 action=0 min=-1.5 max=1.5 vmax=1\n"
          "joint wr position=2 action=2 min=-1 max=1 scale=0.5\n")
    a, _, barrier = s.apply([1.49, 0, 0.9, 0, 0, 0], [3, 3, 3])
    assert abs(a[0] - 20 * (1.5 - 1.49)) < 1e-9 and a[1] == 3 and a[2] == 3 and barrier == 1, a
    s = S(1, [-3], [3], 2, "barrier_gain 10\n"
          "joint el position=0 velocity=1 action=0 min=-2.5 max=2.5 command=effort brake=4\n")
    a, _, _ = s.apply([2.4, 1.2], [2])
    assert abs(a[0] - (-4 * (1.2 - 10 * (2.5 - 2.4)))) < 1e-9, a
    s = S(3, [-3] * 3, [3] * 3, 6, "posture park 1 -1 2\nsafe_action posture park\nbarrier_gain 10\n"
          "joint j position=0 action=2 min=-1 max=1\n")
    a = s.safe_action([0.95, 0, 0, 0, 0, 0])
    assert a[0] == 1 and a[1] == -1 and abs(a[2] - 0.5) < 1e-9, a
    for text, want in (("joint a position=0 action=0 min=1 max=0\n", "t:1: joint a: key 'min' 1 must be below 'max' 0"),
                       ("action_dim 3\nbogus 1\n", "t:2: unknown key 'bogus'"),
                       ("action_max x\n", "t:1: key 'action_max': 'x' is not a number")):
        try:
            S(3, [-1] * 3, [1] * 3, 6, text, "t")
            raise Failure(f"limits {text!r} were accepted")
        except fleetrl_client.LimitsError as e:
            assert want in str(e), (str(e), want)
    # n = 3, gamma = 0.5, rewards 1..5, terminal at the fifth step.
    ns = fleetrl_client.NStep(3, 0.5)
    out = []
    for t in range(5):
        out += ns.push(t, 0, float(t + 1), t + 1, t == 4, False, t)
    got = [(o[0], float(o[2]), float(o[3]), o[4]) for o in out]
    want = [(0, 2.75, 0.125, 3), (1, 4.5, 0.125, 4), (2, 6.25, 0.0, 5), (3, 6.5, 0.0, 5), (4, 5.0, 0.0, 5)]
    assert got == want, got
    # A time limit bootstraps: discount gamma^k, not 0.
    ns = fleetrl_client.NStep(3, 0.5)
    out = ns.push(0, 0, 1.0, 1, False, False, 0) + ns.push(1, 0, 1.0, 2, False, True, 1)
    assert [(float(o[2]), float(o[3])) for o in out] == [(1.5, 0.25), (1.0, 0.5)], out
    assert fleetrl_client.fnv1a64(b"a") == 0xaf63dc4c8601ec8c


if __name__ == "__main__":
    run_tests([test_python_shield_and_nstep_hand_values, test_robots_train_alongside_actors,
               test_broker_loss_and_estop_keep_the_loop, test_curve_robots])
