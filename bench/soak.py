"""soak.py (run by bench_soak.sh): a load soak. A broker, a learner and 64 CartPole actors (small networks) run on
loopback for --minutes (default 10) with the product's default heartbeat and peer timeout. Every
--sample seconds it records the resident memory (VmRSS) of the broker and the learner, the
broker's registry (live actors, from its 10-second report) and queue depth, the learner's
progress and the store's file sizes. At the end it prints the memory curve as a table, a verdict
on boundedness from the slope over the second half of the run, and the registry's correctness:
every actor registered, none expired and re-registered while running (flapping), none that lost
the broker. Prints figures; never fails on timing (exit 1 only when the soak could not run).

Usage: bench/soak.py [--minutes M] [--actors N] [--sample S] [--capacity C] [--keep]"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import BIN, Fleet, Failure, wait_until  # noqa: E402

REPORT = re.compile(r"(\d+) actors live, learner (\w+), forwarded ([\d.]+) batches/s, queue (\d+)")


def rss_kib(pid, field="VmRSS"):
    """A memory figure of a live process from /proc/PID/status, in KiB: VmRSS (resident), or
    RssAnon (its heap and other anonymous part); None once the process is gone."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def last_report(f):
    """The broker's latest periodic report: (live actors, learner state, forwarded/s, queue)."""
    try:
        text = open(f.log("broker"), errors="replace").read()
    except FileNotFoundError:
        return None
    found = REPORT.findall(text)
    if not found:
        return None
    live, learner, rate, queue = found[-1]
    return int(live), learner, float(rate), int(queue)


def slope(points):
    """Least-squares slope of (t, y) points, in y units per t unit."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / var if var else 0.0


def file_mib(path):
    try:
        return os.path.getsize(path) / 2 ** 20
    except FileNotFoundError:
        return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--actors", type=int, default=64)
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--capacity", type=int, default=50000, help="replay capacity (items)")
    ap.add_argument("--keep", action="store_true", help="keep the run folder")
    a = ap.parse_args()
    if not 0.2 <= a.minutes <= 24 * 60:
        ap.error(f"--minutes must be within [0.2, 1440], got {a.minutes}")
    if not 1 <= a.actors <= 1024:
        ap.error(f"--actors must be within [1, 1024], got {a.actors}")
    if not 0.5 <= a.sample <= 600:
        ap.error(f"--sample must be within [0.5, 600] s, got {a.sample}")
    if not 1000 <= a.capacity <= 10_000_000:
        ap.error(f"--capacity must be within [1000, 10000000], got {a.capacity}")
    if not os.access(BIN, os.X_OK):
        print(f"bench_soak: {BIN} is missing; build it with 'make' (or set FLEETRL_BIN)",
              file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    # The product's own heartbeat (0.5 s) and peer timeout (3 s), not the tests' faster ones:
    # flapping under load is what this soak looks for.
    f = Fleet("soak", env={"FLEETRL_HEARTBEAT": "0.5", "FLEETRL_PEER_TIMEOUT": "3",
                           "FLEETRL_FLUSH_PERIOD": "10", "FLEETRL_HIDDEN1": "32",
                           "FLEETRL_HIDDEN2": "32"})
    names = [f"soak-{i}" for i in range(a.actors)]
    try:
        f.start_broker()
        f.start_learner("--max-env-steps=100000000", "--eval-period=100000000",
                        f"--capacity={a.capacity}")
        for i, n in enumerate(names):
            f.start_actor(i, a.actors, name=n)
        db = os.path.join(f.run_dir, "replay.db")
        print(f"soak: broker, learner, {a.actors} CartPole actors (hidden 32-32) on loopback for "
              f"{a.minutes:g} min; sampling every {a.sample:g} s; replay capacity {a.capacity}")
        wait_until(lambda: (f.query("SELECT count(*) FROM actors") or [[0]])[0][0] >= a.actors,
                   120, f"all {a.actors} actors in the store")
        t0 = time.monotonic()
        end = t0 + a.minutes * 60
        # (t, broker KiB, learner KiB, live, queue, replay, env steps, db, wal, broker anon,
        #  learner anon)
        samples = []
        next_at = t0
        while True:
            now = time.monotonic()
            if now >= next_at:
                for role in ("broker", "learner"):
                    if f.procs[role].poll() is not None:
                        raise Failure(f"{role} exited with {f.procs[role].returncode}:\n"
                                      + f.tail(role))
                rep = last_report(f)
                prog = f.query("SELECT replay_size, env_steps FROM training ORDER BY at DESC "
                               "LIMIT 1")
                replay, steps = prog[0] if prog else (0, 0)
                samples.append((now - t0, rss_kib(f.procs["broker"].pid),
                                rss_kib(f.procs["learner"].pid), rep[0] if rep else None,
                                rep[3] if rep else None, replay, steps, file_mib(db),
                                file_mib(db + "-wal"),
                                rss_kib(f.procs["broker"].pid, "RssAnon"),
                                rss_kib(f.procs["learner"].pid, "RssAnon")))
                next_at += a.sample
            if now >= end:
                break
            # Waits on the sampling clock; the soak has nothing to poll for in between.
            time.sleep(max(0.0, min(next_at, end) - time.monotonic()))
        final_report = last_report(f)
        actor_rows = f.query("SELECT count(*), min(last_seen), max(last_seen) FROM actors")
        totals = f.query("SELECT count(*), total(transitions) FROM batches")
        stopped_at = time.monotonic()
        # SIGTERM to every actor at once, then the learner, then the broker; each group has a
        # deadline, and a process still running after it is named.
        for group in (names, ["learner"], ["broker"]):
            for n in group:
                f.procs[n].send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            for n in group:
                try:
                    f.procs[n].wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise Failure(f"{n} did not stop within 30 s of SIGTERM")
        stop_s = time.monotonic() - stopped_at
    finally:
        f.kill_all()

    # ---- the memory curve ------------------------------------------------------------------
    print("\nresident memory in MiB (of which anonymous: heap, stacks, anonymous maps)")
    print("    t  broker RSS (anon)  learner RSS (anon)  live  queue   replay   env steps"
          "   db MiB  wal MiB")
    step = max(1, len(samples) // 24)
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    for t, b, l, live, q, rep, steps, dbm, walm, ba, la in shown:
        print(f"{t:5.0f}s {(b or 0) / 1024:10.1f} ({(ba or 0) / 1024:5.1f}) "
              f"{(l or 0) / 1024:11.1f} ({(la or 0) / 1024:5.1f}) "
              f"{live if live is not None else '-':>5} {q if q is not None else '-':>6} "
              f"{rep:8d} {steps:11d} {dbm:8.1f} {walm:8.1f}")
    half = [s for s in samples if s[0] >= samples[-1][0] / 2]
    print("\nboundedness (least-squares slope of memory over the second half, "
          f"{half[0][0]:.0f}-{half[-1][0]:.0f} s):")
    db_hour = slope([(s[0] / 60, s[7]) for s in half]) * 60
    for idx, role in ((1, "broker"), (9, "broker anonymous"), (2, "learner"),
                      (10, "learner anonymous")):
        pts = [(s[0] / 60, s[idx] / 1024) for s in half if s[idx]]
        k = slope(pts)
        last = pts[-1][1] if pts else 0
        hour = k * 60
        # Bounded: less than 2% (or 1 MiB) of growth per hour projected from the second half.
        # The learner's SQLite page cache holds the database's pages up to the store's
        # cache_size, so learner growth no faster than the database file's is that cache.
        if hour <= max(1.0, 0.02 * last):
            verdict = "bounded"
        elif role.startswith("learner") and hour <= 1.5 * db_hour + 1.0:
            verdict = (f"growing with the database ({db_hour:+.1f} MiB/h): SQLite's page cache, "
                       "capped by the store's cache_size")
        else:
            verdict = "GROWING"
        print(f"  {role:17s} {last:7.1f} MiB now, {k * 1024:+8.1f} KiB/min "
              f"({hour:+.1f} MiB/h projected): {verdict}")
    if a.minutes < 10:
        print(f"  (a {a.minutes:g}-minute run: start-up growth still weighs on the second half; "
              "the verdict is for runs of 10 minutes or more)")
    replay_full = next((s[0] for s in samples if s[5] >= a.capacity), None)
    print(f"  replay reached capacity at {replay_full:.0f} s" if replay_full is not None
          else f"  replay never reached capacity ({samples[-1][5]} of {a.capacity}): the "
               "learner's memory is still filling; run longer for a verdict")
    print(f"  database {samples[-1][7]:.1f} MiB, growing {db_hour:+.1f} MiB/h over the second "
          "half: the batches and episodes tables keep a row per batch and per episode")
    walmax = max(s[8] for s in samples)
    print(f"  WAL at most {walmax:.1f} MiB")

    # ---- registry and heartbeats -----------------------------------------------------------
    blog = open(f.log("broker"), errors="replace").read()
    joined = {n: len(re.findall(rf"actor {re.escape(n)} joined", blog)) for n in names}
    gone = {n: len(re.findall(rf"actor {re.escape(n)} gone", blog)) for n in names}
    replaced = len(re.findall(r"said Hello from a new connection", blog))
    silent = {n: len(re.findall(r"broker silent for",
                                open(f.log(n), errors="replace").read())) for n in names}
    lives = [s[3] for s in samples if s[3] is not None]
    print("\nregistry and heartbeats:")
    print(f"  broker registry (live actors in its 10 s reports): min {min(lives) if lives else '-'}"
          f", max {max(lives) if lives else '-'}, last {final_report[0] if final_report else '-'}"
          f" (expected {a.actors})")
    print(f"  actors registered: {sum(1 for n in names if joined[n] >= 1)}/{a.actors}; joined "
          f"more than once: {sum(1 for n in names if joined[n] > 1)}; expired while running "
          f"(flapping): {sum(1 for n in names if gone[n] > 0)} ({sum(gone.values())} times); "
          f"Hello from a new connection: {replaced}")
    print(f"  actors that found the broker silent: {sum(1 for n in names if silent[n] > 0)} "
          f"({sum(silent.values())} times)")
    if actor_rows:
        n_rows, first_last, last_last = actor_rows[0]
        print(f"  store: {n_rows} actors, {totals[0][0]} batches, {int(totals[0][1])} transitions; "
              f"every actor's last batch within {last_last - first_last:.1f} s of the newest")
    ok = (final_report and final_report[0] == a.actors and all(joined[n] == 1 for n in names)
          and not any(gone.values()) and not any(silent.values()))
    print(f"  registry verdict: {'correct' if ok else 'NOT CORRECT (see above)'}; all processes "
          f"stopped on SIGTERM in {stop_s:.1f} s")
    if a.keep:
        print(f"run folder kept: {f.dir}")
    else:
        shutil.rmtree(f.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"bench_soak: {e}", file=sys.stderr)
        sys.exit(1)
