"""bench_readers.py: live readers against ingest at full rate. A broker, a learner (low
samples-per-insert ratio, so the rate limiter does not hold ingest back) and CartPole actors run
on loopback through four phases of --seconds each:

  1. no readers (the reference),
  2. readers: the README's example queries in a loop through the sqlite3 tool (two sessions)
     and a full scan of items and batches with aggregation (a third),
  3. one read transaction left open (an idle BEGIN in a sqlite3 session), which pins the WAL;
     the phase ends early once the WAL reaches --pin-mib,
  4. after that reader closed.

For each phase it prints the ingest rate and its stalls, from the store's own record (the gaps
between consecutive batches' received_at, which the learner stamps as each batch's transaction
starts), the WAL file size over time (min, max, at the end) and how many times the WAL was
restarted after a complete checkpoint (the checkpoint sequence in the WAL header, sampled every
20 ms); and the readers' query times. Prints figures; never fails on timing.

Usage: bench/bench_readers.py [--actors N] [--seconds S] [--pin-mib M] [--flush-period F] [--keep]
(a long --flush-period takes the learner's periodic priority write-back out of the stall figures)"""
import argparse
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import BIN, Fleet, Failure, wait_until  # noqa: E402

FULL_SCAN = ("SELECT a.name, count(*), avg(i.reward), avg(i.priority), max(i.times_sampled), "
             "sum(length(i.obs) + length(i.next_obs)) FROM items i JOIN actors a USING(actor_id) "
             "GROUP BY a.name; SELECT actor_id, count(*), sum(transitions), sum(env_steps), "
             "max(received_at) - min(received_at) FROM batches GROUP BY actor_id;")


def readme_queries():
    text = open(os.path.join(HERE, "..", "README.md"), encoding="utf-8").read()
    m = re.search(r"Example queries:\s*```sql\n(.*?)```", text, re.S)
    if not m:
        raise Failure("README.md has no 'Example queries:' sql block")
    body = "\n".join(l for l in m.group(1).splitlines() if not l.lstrip().startswith("--"))
    return [q.strip() + ";" for q in body.split(";") if q.strip()]


def wal_state(path):
    """(size, checkpoint sequence or None) from the WAL file's header (big-endian fields)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(16)
    except FileNotFoundError:
        return 0, None
    if len(head) < 16:
        return size, None
    return size, struct.unpack(">IIII", head)[3]


class Sampler(threading.Thread):
    def __init__(self, wal):
        super().__init__(daemon=True)
        self.wal, self.points, self.done = wal, [], threading.Event()

    def run(self):
        while not self.done.wait(0.02):
            size, seq = wal_state(self.wal)
            self.points.append((time.time(), size, seq))


class Readers:
    """Loops of sqlite3 tool invocations; keeps each run's time and any error."""

    def __init__(self, db, jobs, pause=0.0):
        self.db, self.pause, self.stop_flag = db, pause, threading.Event()
        self.times, self.errors, self.lock = {}, [], threading.Lock()
        self.threads = [threading.Thread(target=self._loop, args=(kind, qs), daemon=True)
                        for kind, qs in jobs]
        for t in self.threads:
            t.start()

    def _loop(self, kind, queries):
        while not self.stop_flag.is_set():
            for q in queries:
                t0 = time.monotonic()
                p = subprocess.run(["sqlite3", "-cmd", ".timeout 5000", self.db, q],
                                   capture_output=True, text=True, timeout=300)
                dt = time.monotonic() - t0
                with self.lock:
                    self.times.setdefault(kind, []).append(dt)
                    if p.returncode != 0 or p.stderr.strip():
                        self.errors.append(f"{q[:60]}: {p.stderr.strip()}")
            self.stop_flag.wait(self.pause)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(300)


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--actors", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    ap.add_argument("--pin-mib", type=float, default=320.0,
                    help="end the open-reader phase early when the WAL reaches this size")
    ap.add_argument("--flush-period", type=float, default=10.0,
                    help="the learner's --flush-period (priority write-back), s")
    ap.add_argument("--keep", action="store_true", help="keep the run folder")
    a = ap.parse_args()
    if not 1 <= a.actors <= 64:
        ap.error(f"--actors must be within [1, 64], got {a.actors}")
    if not 2 <= a.seconds <= 3600:
        ap.error(f"--seconds must be within [2, 3600], got {a.seconds}")
    if not 16 <= a.pin_mib <= 65536:
        ap.error(f"--pin-mib must be within [16, 65536], got {a.pin_mib}")
    if not os.access(BIN, os.X_OK):
        print(f"bench_readers: {BIN} is missing; build it with 'make' (or set FLEETRL_BIN)",
              file=sys.stderr)
        return 1
    if not shutil.which("sqlite3"):
        print("bench_readers: the sqlite3 tool is missing (Debian package sqlite3)",
              file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    queries = readme_queries()
    f = Fleet("bench-readers", env={"FLEETRL_HIDDEN1": "32", "FLEETRL_HIDDEN2": "32",
                                    "FLEETRL_FLUSH_PERIOD": str(a.flush_period)})
    phases = []  # (name, wall start, wall end)
    readers = sampler = None
    pinned_growth = None
    errors = []
    try:
        f.start_broker()
        f.start_learner("--max-env-steps=100000000", "--eval-period=100000000", "--spi=1")
        for i in range(a.actors):
            f.start_actor(i, a.actors)
        db = os.path.join(f.run_dir, "replay.db")
        wal = db + "-wal"
        print(f"readers vs ingest: broker, learner (spi 1, priorities written back every "
              f"{a.flush_period:g} s), {a.actors} CartPole actors; phases of {a.seconds:g} s")
        # Warm up until the replay is full, so every phase sees the same steady store.
        wait_until(lambda: (f.query("SELECT count(*) FROM items") or [[0]])[0][0] >= 100000,
                   300, "the replay to fill (100000 items)", interval=0.5)
        sampler = Sampler(wal)
        sampler.start()

        def phase(name, until=None):
            t0 = time.time()
            end = time.monotonic() + a.seconds
            while time.monotonic() < end and not (until and until()):
                for role, p in f.procs.items():
                    if p.poll() is not None:
                        raise Failure(f"{role} exited with {p.returncode}:\n" + f.tail(role))
                time.sleep(0.1)
            phases.append((name, t0, time.time()))

        settles = []

        def settle(what):
            """Waits for the WAL to be restarted after a complete checkpoint and to come back
            under journal_size_limit; records how long that took."""
            t0, seq0 = time.monotonic(), wal_state(wal)[1]
            wait_until(lambda: wal_state(wal)[1] != seq0 and wal_state(wal)[0] <= 64 << 20, 120,
                       f"the WAL to restart {what}", interval=0.02)
            settles.append((what, time.monotonic() - t0))

        phase("no readers")
        all_times = {}
        for label, jobs, pause in (
                ("dashboard: README every 1 s", [("README queries, 1/s", queries)], 1.0),
                ("back-to-back README + scan", [("README queries", queries),
                                                ("README queries", queries),
                                                ("full scan + aggregation", [FULL_SCAN])], 0.0)):
            readers = Readers(db, jobs, pause)
            phase(label)
            readers.stop()
            for k, v in readers.times.items():
                all_times.setdefault(k, []).extend(v)
            errors.extend(readers.errors)
            readers = None
            settle(f"after the {label.split(':')[0]} readers stopped")
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None, timeout=10)
        con.execute("BEGIN")
        con.execute("SELECT count(*) FROM batches").fetchone()
        w0, b0 = wal_state(wal)[0], (f.query("SELECT count(*) FROM batches") or [[0]])[0][0]
        phase("one read transaction open", until=lambda: wal_state(wal)[0] >= a.pin_mib * 2**20)
        w1, b1 = wal_state(wal)[0], (f.query("SELECT count(*) FROM batches") or [[0]])[0][0]
        con.execute("COMMIT")
        con.close()
        if b1 > b0:
            pinned_growth = (w1 - w0, b1 - b0)
        settle("after the open read transaction ended")
        phase("after the reader closed")
        sampler.done.set()
        sampler.join()
        warned = len(re.findall(r"the WAL holds \d+ pages", open(f.log("learner")).read()))
        f.stop("actor-0")
        for i in range(1, a.actors):
            f.stop(f"actor-{i}")
        f.stop("learner")
        f.stop("broker")
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        stamps = [r[0] for r in con.execute("SELECT received_at FROM batches ORDER BY received_at")]
        transitions = con.execute("SELECT avg(transitions) FROM batches").fetchone()[0]
        con.close()
    finally:
        if readers:
            readers.stop()
        if sampler:
            sampler.done.set()
        f.kill_all()

    print(f"\n{'phase':28s} {'batches/s':>9s} {'max gap':>8s} {'p99 gap':>8s} {'p50 gap':>8s}"
          f" {'>=100ms':>7s}   {'WAL MiB min/max/end':>20s} {'restarts':>8s}")
    restarts = [q[0] for p, q in zip(sampler.points, sampler.points[1:])
                if q[2] is not None and p[2] != q[2]]
    worst = []
    for name, t0, t1 in phases:
        ts = [t for t in stamps if t0 <= t < t1]
        gaps = [(b - a_, a_) for a_, b in zip(ts, ts[1:])]
        pts = [p for p in sampler.points if t0 <= p[0] < t1]
        sizes = [p[1] / 2**20 for p in pts] or [0.0]
        seqs = {p[2] for p in pts if p[2] is not None}
        lengths = [g for g, _ in gaps]
        print(f"{name:28s} {len(ts) / (t1 - t0):9.0f} "
              f"{max(lengths) * 1e3 if lengths else 0:6.1f}ms {pct(lengths, 0.99) * 1e3:6.1f}ms "
              f"{pct(lengths, 0.5) * 1e3:6.2f}ms {sum(1 for g in lengths if g >= 0.1):7d}   "
              f"{min(sizes):6.1f}/{max(sizes):6.1f}/{sizes[-1]:6.1f} {max(0, len(seqs) - 1):8d}")
        for g, start in sorted(gaps, reverse=True)[:3]:
            # A checkpoint runs in the commit hook and the WAL restarts at the next commit, so a
            # stall that a checkpoint caused ends with a restart.
            ckpt = any(start + g - 0.03 <= r <= start + g + 0.05 for r in restarts)
            worst.append((name, start - t0, g, ckpt))
    print("\nlongest stalls (phase, seconds into it, length, whether the WAL restarted as it "
          "ended):")
    for name, at, g, ckpt in worst:
        print(f"  {name:28s} at {at:5.1f} s: {g * 1e3:7.1f} ms"
              f"{'  (ended with a checkpoint restart)' if ckpt else ''}")
    print("\nreader query times (wall, including starting sqlite3):")
    for kind, ts in sorted(all_times.items()):
        print(f"  {kind:24s} {len(ts):5d} runs, median {pct(ts, 0.5) * 1e3:7.1f} ms, "
              f"max {max(ts) * 1e3:7.1f} ms")
    print(f"  reader errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print("\nWAL recovery once readers were gone (restart after a complete checkpoint, file back "
          "under journal_size_limit):")
    for what, dt in settles:
        print(f"  {what}: {dt:.2f} s")
    if pinned_growth:
        grew, batches = pinned_growth
        print(f"\nWAL written per batch commit (while pinned, so nothing was overwritten): "
              f"{grew / batches / 1024:.1f} KiB = {grew / batches / 4120:.1f} pages per batch of "
              f"{transitions:.0f} transitions (includes any priority write-back in that window)")
    print(f"store's warning about a pinned WAL logged {warned} time(s) (it warns from 256 MiB)")
    if a.keep:
        print(f"run folder kept: {f.dir}")
    else:
        shutil.rmtree(f.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"bench_readers: {e}", file=sys.stderr)
        sys.exit(1)
