"""bench_readers.py: live readers against ingest at full rate. A broker, a learner (low
samples-per-insert ratio, so the rate limiter does not hold ingest back) and CartPole actors run
on loopback through four phases of --seconds each:

  1. no readers (the reference),
  2. readers: the README's example queries in a loop through the sqlite3 tool (two sessions)
     and a full scan of items and batches with aggregation (a third),
  3. one read transaction left open (an idle BEGIN in a sqlite3 session), which pins the WAL;
     the phase ends early once the WAL reaches --pin-mib,
  4. after that reader closed.

With --soak S a last phase of S seconds (no readers) samples the file every 5 s: its size, the
pages in use and free, and the rows of batches, items and episodes, to show whether the file
levels off once the replay is full (run it with a short --dedup-window, e.g. 60, so that the
dedup window's pruning reaches steady state within the run).

For each phase it prints the ingest rate and its stalls, from the store's own record (the gaps
between consecutive batches' received_at, which the learner stamps as each batch's transaction
starts), the WAL file size over time (min, max, at the end) and how many times the WAL was
restarted after a complete checkpoint (the checkpoint sequence in the WAL header, sampled every
20 ms); the store's own account of its WAL restarts (done, given up because a reader stayed,
the longest) and of the priority write-back slices, from the learner's debug log; and the
readers' query times. The longest stalls are attributed to what the store logged during them.
Prints figures; never fails on timing. Stalls also come from outside the store: with spi 1 the
rate limiter holds ingest while training catches up, so a loaded machine shows gaps too.

Usage: bench/bench_readers.py [--actors N] [--seconds S] [--pin-mib M] [--flush-period F]
       [--only idle,dashboard,busy,pinned,after] [--dedup-window W] [--soak S] [--keep]
(a long --flush-period takes the learner's periodic priority write-back out of the stall figures)"""
import argparse
import calendar
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


LOG_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) learner \w+: store \S+: (.*)$")


def store_events(log_path, day):
    """The store's debug records as (wall time, kind, milliseconds): kind is 'restart',
    'restart given up', 'write-back' or 'prune'. The log stamps are UTC times of day."""
    events = []
    for line in open(log_path, encoding="utf-8", errors="replace"):
        m = LOG_LINE.match(line)
        if not m:
            continue
        t = day + int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
        text = m.group(4)
        r = re.match(r"WAL restart (done|given up) after ([\d.]+) ms", text)
        if r:
            events.append((t, "restart" if r.group(1) == "done" else "restart given up",
                           float(r.group(2))))
            continue
        r = re.match(r"wrote back \d+ items in ([\d.]+) ms", text)
        if r:
            events.append((t, "write-back", float(r.group(1))))
            continue
        r = re.match(r"deleted \d+ batch records past the dedup window in ([\d.]+) ms", text)
        if r:
            events.append((t, "prune", float(r.group(1))))
    return events


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
    ap.add_argument("--only", default="idle,dashboard,busy,pinned,after",
                    help="phases to run, of idle,dashboard,busy,pinned,after")
    ap.add_argument("--dedup-window", type=float, default=None,
                    help="the learner's --dedup-window, s (default: its own)")
    ap.add_argument("--soak", type=float, default=0.0,
                    help="length of a last phase without readers that samples the file size, s")
    ap.add_argument("--keep", action="store_true", help="keep the run folder")
    a = ap.parse_args()
    only = set(a.only.split(","))
    if not only <= {"idle", "dashboard", "busy", "pinned", "after"}:
        ap.error(f"--only: unknown phase in {a.only!r}")
    if not 0 <= a.soak <= 86400:
        ap.error(f"--soak must be within [0, 86400], got {a.soak}")
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
    env = {"FLEETRL_HIDDEN1": "32", "FLEETRL_HIDDEN2": "32",
           "FLEETRL_FLUSH_PERIOD": str(a.flush_period)}
    if a.dedup_window is not None:
        env["FLEETRL_DEDUP_WINDOW"] = str(a.dedup_window)
    f = Fleet("bench-readers", env=env)
    phases = []  # (name, wall start, wall end)
    readers = sampler = None
    pinned_growth = None
    errors = []
    soak_rows = []
    try:
        # No per-actor rate limit at the broker: an actor it throttles waits --resend (2 s)
        # before trying again, which would show up here as ingest stalls of 2 s.
        f.start_broker("--actor-rate-batches=0", "--actor-rate-bytes=0")
        # Debug records of the store (restarts, write-back slices) attribute the stalls.
        f.env["FLEETRL_LOG_LEVEL"] = "debug"
        f.start_learner("--max-env-steps=100000000", "--eval-period=100000000", "--spi=1")
        f.env["FLEETRL_LOG_LEVEL"] = "info"
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

        if "idle" in only:
            phase("no readers")
        all_times = {}
        for key, label, jobs, pause in (
                ("dashboard", "dashboard: README every 1 s", [("README queries, 1/s", queries)],
                 1.0),
                ("busy", "back-to-back README + scan", [("README queries", queries),
                                                        ("README queries", queries),
                                                        ("full scan + aggregation",
                                                         [FULL_SCAN])], 0.0)):
            if key not in only:
                continue
            readers = Readers(db, jobs, pause)
            phase(label)
            readers.stop()
            for k, v in readers.times.items():
                all_times.setdefault(k, []).extend(v)
            errors.extend(readers.errors)
            readers = None
            settle(f"after the {label.split(':')[0]} readers stopped")
        if "pinned" in only:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None,
                                  timeout=10)
            con.execute("BEGIN")
            con.execute("SELECT count(*) FROM batches").fetchone()
            w0, b0 = wal_state(wal)[0], (f.query("SELECT count(*) FROM batches") or [[0]])[0][0]
            phase("one read transaction open",
                  until=lambda: wal_state(wal)[0] >= a.pin_mib * 2**20)
            w1, b1 = wal_state(wal)[0], (f.query("SELECT count(*) FROM batches") or [[0]])[0][0]
            con.execute("COMMIT")
            con.close()
            if b1 > b0:
                pinned_growth = (w1 - w0, b1 - b0)
            settle("after the open read transaction ended")
        if "after" in only:
            phase("after the reader closed")
        if a.soak > 0:
            t0 = time.time()
            end = time.monotonic() + a.soak
            while True:
                for role, p in f.procs.items():
                    if p.poll() is not None:
                        raise Failure(f"{role} exited with {p.returncode}:\n" + f.tail(role))
                row = f.query("SELECT (SELECT page_count FROM pragma_page_count()), "
                              "(SELECT freelist_count FROM pragma_freelist_count()), "
                              "(SELECT count(*) FROM batches), (SELECT count(*) FROM items), "
                              "(SELECT count(*) FROM episodes)")
                # Pages per table (dbstat walks the b-trees: a read of the whole file).
                pages = dict(f.query("SELECT name, count(*) FROM dbstat "
                                     "WHERE name IN ('items', 'batches', 'episodes') "
                                     "GROUP BY name") or [])
                if row:
                    soak_rows.append((time.time() - t0, os.path.getsize(db), wal_state(wal)[0])
                                     + tuple(row[0]) + tuple(pages.get(n, 0) for n in
                                                            ("items", "batches", "episodes")))
                if time.monotonic() >= end:
                    break
                time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            phases.append(("soak", t0, time.time()))
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

    day = calendar.timegm(time.gmtime(phases[0][1])[:3] + (0, 0, 0))
    events = store_events(f.log("learner"), day)
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
            # A restart runs in the commit hook and the WAL restarts at the next commit, so a
            # stall that a restart caused ends with one; the store's log says what it did.
            ckpt = any(start + g - 0.03 <= r <= start + g + 0.05 for r in restarts)
            during = [(k, ms) for t, k, ms in events if start <= t <= start + g + 0.05]
            worst.append((name, start - t0, g, ckpt, during))
    print(f"\n{'store, per phase':28s} {'restarts':>8s} {'given up':>8s} {'longest':>8s}"
          f" {'write-back slices':>17s} {'longest':>8s} {'prune steps':>11s}")
    for name, t0, t1 in phases:
        ev = [(k, ms) for t, k, ms in events if t0 <= t < t1]
        rs = [ms for k, ms in ev if k.startswith("restart")]
        wb = [ms for k, ms in ev if k == "write-back"]
        print(f"{name:28s} {sum(1 for k, _ in ev if k == 'restart'):8d} "
              f"{sum(1 for k, _ in ev if k == 'restart given up'):8d} "
              f"{max(rs) if rs else 0:6.1f}ms {len(wb):17d} {max(wb) if wb else 0:6.1f}ms "
              f"{sum(1 for k, _ in ev if k == 'prune'):11d}")
    if a.dedup_window is not None:
        print("\n(with --dedup-window, batch records older than it are gone from the table "
              "these figures come from, so the earlier phases show fewer batches and false "
              "gaps)")
    print("\nlongest stalls (phase, seconds into it, length; whether the WAL restarted as it "
          "ended, and what the store logged during it):")
    for name, at, g, ckpt, during in worst:
        what = ", ".join(f"{k} {ms:.0f} ms" for k, ms in during[:4])
        print(f"  {name:28s} at {at:5.1f} s: {g * 1e3:7.1f} ms"
              f"{'  (ended with a WAL restart)' if ckpt else ''}"
              f"{'  [' + what + ']' if what else ''}")
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
    if soak_rows:
        print(f"\nfile over the soak (no readers; dedup window "
              f"{a.dedup_window if a.dedup_window is not None else 'the default'} s):")
        print(f"  {'':6s} {'':13s} {'pages':>17s} {'':7s} {'rows (pages)':^45s}")
        print(f"  {'t s':>6s} {'replay.db MiB':>13s} {'used':>10s} {'free':>6s} "
              f"{'WAL MiB':>7s} {'batches':>15s} {'items':>15s} {'episodes':>15s}")
        for t, size, wsize, pages, free, nb, ni, ne, pi, pb, pe in soak_rows:
            print(f"  {t:6.0f} {size / 2**20:13.1f} {pages - free:10d} {free:6d} "
                  f"{wsize / 2**20:7.1f} {nb:8d} ({pb:4d}) {ni:8d} ({pi:4d}) {ne:8d} ({pe:4d})")
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
