#!/bin/sh
# bench_estop.sh [TRIALS] [ROBOTS]: e-stop latency on loopback. A broker and ROBOTS (16) robot
# emulators (`fleetrl emulate`, 100 Hz control loops through the client library); each trial
# runs `fleetrl estop` and measures the time from starting that command to the moment the last
# robot handed its safe action to its actuators (each emulator logs that moment on the wall
# clock), then `fleetrl resume`. Prints p50/p99 over the trials (goal: p99 <= 50 ms), split at
# the moment the broker fanned the e-stop out (from its log, millisecond resolution) into the
# operator command's part and the fleet's part, and as references measured in the same run: the
# start-up time of a fleetrl process that does nothing (`fleetrl version`) and the control
# period (a robot notices the e-stop at its next loop iteration). Never fails on timing.
TRIALS=${1:-20}
ROBOTS=${2:-16}
BIN=${FLEETRL_BIN:-build/fleetrl}
exec /usr/bin/python3 - "$BIN" "$TRIALS" "$ROBOTS" <<'EOF'
import os, re, shutil, signal, subprocess, sys, tempfile, time

bin_, trials, robots = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rate = 100.0
tmp = tempfile.mkdtemp(prefix="fleetrl-bench-estop-")
env = dict(os.environ, FLEETRL_TASK="pendulum-sac", FLEETRL_HIDDEN1="32", FLEETRL_HIDDEN2="32",
           FLEETRL_HEARTBEAT="0.2", FLEETRL_LOG_LEVEL="info")
procs = []


def start(name, *args):
    log = open(os.path.join(tmp, name + ".log"), "ab")
    p = subprocess.Popen([bin_, *args], stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
    procs.append(p)
    return p


def wait_until(pred, timeout, what):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise SystemExit(f"bench_estop: timed out waiting for {what}")
        time.sleep(0.005)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def fanned_out(trial, t0):
    """Wall-clock time of the broker's log line for this trial's e-stop (ms resolution; the
    log prints UTC time of day)."""
    text = open(os.path.join(tmp, "broker.log"), errors="replace").read()
    m = re.search(r"^(\d\d):(\d\d):(\d\d\.\d+) broker info: control 0 from \S+: bench trial %d$" % trial,
                  text, re.M)
    if not m:
        return None
    day = t0 - t0 % 86400
    t = day + int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return t - 86400 if t > t0 + 43200 else t + 86400 if t < t0 - 43200 else t


def applied(name, kind):
    """Wall-clock times at which robot `name` applied the safe (or policy) action."""
    try:
        text = open(os.path.join(tmp, name + ".log"), errors="replace").read()
    except FileNotFoundError:
        return []
    return [float(x) for x in re.findall(kind + r" ACTION applied at wall ([0-9.]+)", text)]


try:
    epfile = os.path.join(tmp, "endpoints")
    start("broker", "broker", "--actor-endpoint=tcp://127.0.0.1:*", "--learner-endpoint=tcp://127.0.0.1:*",
          f"--endpoints-file={epfile}")
    front = wait_until(lambda: os.path.exists(epfile) and dict(
        l.strip().split("=", 1) for l in open(epfile) if "=" in l).get("actor_endpoint"), 20, "the broker")
    names = [f"robot-{i:02d}" for i in range(robots)]
    for n in names:
        start(n, "emulate", f"--actor-endpoint={front}", f"--name={n}", f"--rate-hz={rate}",
              "--report-period=60", "--max-broker-silence=0")
    wait_until(lambda: all("connected to the broker" in open(os.path.join(tmp, n + ".log"), errors="replace").read()
                           for n in names), 60, "every robot connected")
    all_lat, per_robot, command, operator, fleet = [], [], [], [], []
    for t in range(trials):
        before = {n: len(applied(n, "SAFE")) for n in names}
        t0 = time.time()
        c0 = time.monotonic()
        rc = subprocess.run([bin_, "estop", f"bench trial {t}", f"--actor-endpoint={front}"], env=env,
                            capture_output=True).returncode
        command.append(time.monotonic() - c0)
        if rc != 0:
            raise SystemExit(f"bench_estop: fleetrl estop exited {rc}")
        wait_until(lambda: all(len(applied(n, "SAFE")) > before[n] for n in names), 30, "every robot safe")
        lat = [applied(n, "SAFE")[before[n]] - t0 for n in names]
        per_robot += lat
        all_lat.append(max(lat))
        fan = fanned_out(t, t0)
        if fan is not None:
            operator.append(fan - t0)
            fleet.append(t0 + max(lat) - fan)
        before_p = {n: len(applied(n, "POLICY")) for n in names}
        subprocess.run([bin_, "resume", f"--actor-endpoint={front}"], env=env, capture_output=True)
        wait_until(lambda: all(len(applied(n, "POLICY")) > before_p[n] for n in names), 30, "every robot resumed")
        time.sleep(0.05)  # let the fleet settle before the next trial
    startup = []
    for _ in range(5):
        c0 = time.monotonic()
        subprocess.run([bin_, "version"], env=env, capture_output=True)
        startup.append(time.monotonic() - c0)
    ms = lambda x: 1000 * x
    print(f"e-stop latency, {robots} robot emulators at {rate:.0f} Hz on loopback, {trials} trials "
          f"(from starting `fleetrl estop` to the safe action applied):")
    print(f"  every robot safe:  p50 {ms(pct(all_lat, 50)):7.2f} ms   p99 {ms(pct(all_lat, 99)):7.2f} ms   "
          f"max {ms(max(all_lat)):7.2f} ms   (goal p99 <= 50 ms)")
    print(f"  per robot:         p50 {ms(pct(per_robot, 50)):7.2f} ms   p99 {ms(pct(per_robot, 99)):7.2f} ms")
    if operator:
        print(f"  split at the broker's fan-out: command start -> broker p50 {ms(pct(operator, 50)):7.2f} ms "
              f"p99 {ms(pct(operator, 99)):7.2f} ms; broker -> every robot safe p50 {ms(pct(fleet, 50)):7.2f} ms "
              f"p99 {ms(pct(fleet, 99)):7.2f} ms (+-1 ms: the log's resolution)")
    print(f"  reference: `fleetrl version` (a process start) p50 {ms(pct(startup, 50)):.2f} ms; `fleetrl estop` "
          f"until confirmed p50 {ms(pct(command, 50)):.2f} ms; control period {1000 / rate:.1f} ms; load "
          f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
finally:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(tmp, ignore_errors=True)
EOF
