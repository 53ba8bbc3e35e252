"""Users read the replay store with sqlite3 while the actors ingest at full rate: the README's
example queries run in a loop through the sqlite3 command-line tool, and consistency checks run
in read transactions of their own. Every reader must see a consistent snapshot (the actors'
counters agree with the batches table, every batch still in the replay has exactly its items,
the views agree with the tables). While those readers run back to back, so that some reader
holds a snapshot at almost every moment, the WAL must still be reused again and again and its
file must stay under the bound that follows from the store's checkpoint settings
(learner/store.c). Ingest must go on while a read transaction stays open, and once that reader
ends the WAL must be reused and its file must come back under the steady bound."""
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import threading
import time
import urllib.request

from harness import Fleet, Failure, run_tests, wait_until

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ACTORS = 3
CAPACITY = 20000  # a small replay keeps the database, and so the largest commit, small


def store_settings():
    """The WAL settings the learner's store uses, read from its source: the checkpoint
    threshold in pages, journal_size_limit in bytes, and the largest growth between two
    restart attempts, in checkpoint thresholds."""
    text = open(os.path.join(ROOT, "learner", "store.c")).read()
    ckpt = re.search(r"#define\s+FRL_STORE_CKPT_PAGES\s+(\d+)", text)
    limit = re.search(r"#define\s+FRL_STORE_WAL_LIMIT\s+\((\d+)LL\s*<<\s*(\d+)\)", text)
    step = re.search(r"#define\s+FRL_STORE_RESTART_STEP_MAX\s+(\d+)", text)
    if not ckpt or not limit or not step:
        raise Failure("learner/store.c no longer defines FRL_STORE_CKPT_PAGES, "
                      "FRL_STORE_WAL_LIMIT and FRL_STORE_RESTART_STEP_MAX as this test "
                      "expects; update the bound derivation")
    return (int(ckpt.group(1)), int(limit.group(1)) << int(limit.group(2)),
            int(step.group(1)))


def wal_state(path):
    """(file size, checkpoint sequence, page size) of a WAL file from its 32-byte header (big
    endian: magic, format, page size, checkpoint sequence, salts, checksums); the sequence is
    None while the file is absent or has no header yet. SQLite increments the sequence each
    time the WAL is restarted after a complete checkpoint."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(32)
    except FileNotFoundError:
        return 0, None, None
    if len(head) < 32 or struct.unpack(">I", head[:4])[0] not in (0x377F0682, 0x377F0683):
        return size, None, None
    _, _, page, seq = struct.unpack(">IIII", head[:16])
    return size, seq, page


def readme_queries():
    """The example queries of the README's replay-store section, one statement each."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    m = re.search(r"Example queries:\s*```sql\n(.*?)```", text, re.S)
    if not m:
        raise Failure("README.md has no 'Example queries:' sql block to run")
    body = "\n".join(l for l in m.group(1).splitlines() if not l.lstrip().startswith("--"))
    return [q.strip() + ";" for q in body.split(";") if q.strip()]


class CliReaders:
    """Threads that run each query through the sqlite3 tool in a loop, as users at a shell
    would, and keep every failure (a non-zero exit or anything on stderr). The tool waits for
    a lock up to .timeout: without one, a connection opening while another sqlite3 process
    closes can fail with "database is locked" (the closing one briefly takes the PENDING lock
    to learn whether it is the last), which is SQLite's behaviour, not the learner's."""

    def __init__(self, db, queries, threads=2):
        self.db, self.queries = db, queries
        self.stop_flag = threading.Event()
        self.failures, self.runs, self.summary_rows = [], 0, set()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _loop(self):
        while not self.stop_flag.is_set():
            for q in self.queries:
                p = subprocess.run(["sqlite3", "-cmd", ".timeout 5000", self.db, q],
                                   capture_output=True, text=True, timeout=60)
                with self.lock:
                    self.runs += 1
                    if p.returncode != 0 or p.stderr.strip():
                        self.failures.append(f"{q} -> exit {p.returncode}: {p.stderr.strip()}")
                    elif "FROM actor_summary" in q:
                        self.summary_rows.add(len(p.stdout.splitlines()))

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(120)


class OverlappingReaders:
    """Two connections whose read transactions overlap, each held HOLD seconds (as a user's
    query or dashboard would), started half a hold apart: at almost every moment one of them
    holds a snapshot in the WAL, the case that once kept it from ever being reused."""
    HOLD = 0.03

    def __init__(self, db):
        self.db, self.stop_flag = db, threading.Event()
        self.snapshots, self.failures = 0, []
        self.threads = [threading.Thread(target=self._loop, args=(i * self.HOLD / 2,),
                                         daemon=True) for i in range(2)]
        for t in self.threads:
            t.start()

    def _loop(self, offset):
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10,
                              isolation_level=None)
        self.stop_flag.wait(offset)
        while not self.stop_flag.is_set():
            try:
                con.execute("BEGIN")
                con.execute("SELECT count(*) FROM batches").fetchone()  # takes the snapshot
                self.stop_flag.wait(self.HOLD)  # the user's query runs on
                con.execute("COMMIT")
                self.snapshots += 1
            except sqlite3.Error as e:
                self.failures.append(str(e))
                if con.in_transaction:
                    con.execute("ROLLBACK")
        con.close()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)


def check_snapshot(con):
    """Consistency of one read transaction; returns the number of batches it saw."""
    con.execute("BEGIN")
    try:
        a = con.execute("SELECT total(batches), total(transitions), total(env_steps) "
                        "FROM actors").fetchone()
        b = con.execute("SELECT count(*), total(transitions), total(env_steps) "
                        "FROM batches").fetchone()
        if tuple(a) != (float(b[0]), b[1], b[2]):
            raise Failure(f"actors' counters (batches, transitions, env steps) {tuple(a)} "
                          f"disagree with the batches table {tuple(b)} in one snapshot")
        items, oldest = con.execute("SELECT count(*), min(item_id) FROM items").fetchone()
        if items > CAPACITY:
            raise Failure(f"{items} items in the replay, capacity {CAPACITY}")
        view = con.execute("SELECT items FROM priority_summary").fetchone()[0]
        per_actor = con.execute("SELECT total(items_in_replay) FROM actor_summary").fetchone()[0]
        if view != items or per_actor != items:
            raise Failure(f"priority_summary counts {view} items and actor_summary {per_actor}, "
                          f"the items table {items}")
        # A batch is stored whole in one transaction: each batch not yet reached by the FIFO
        # eviction has exactly its transitions as items, under its own ids.
        broken = con.execute(
            "SELECT b.actor_id, b.seq, b.transitions FROM batches b WHERE b.first_item_id >= ?1 "
            "AND b.transitions != (SELECT count(*) FROM items i WHERE i.item_id >= b.first_item_id"
            " AND i.item_id < b.first_item_id + b.transitions AND i.actor_id = b.actor_id "
            " AND i.batch_seq = b.seq) LIMIT 3", (oldest if oldest is not None else 0,)).fetchall()
        if broken:
            raise Failure(f"batches whose items are incomplete in a snapshot: {broken}")
        return b[0]
    finally:
        con.execute("COMMIT")


def acks(f):
    return sum(len(f.acked(f"actor-{i}")) for i in range(ACTORS))


def test_readers_during_ingest():
    if not shutil.which("sqlite3"):
        raise Failure("the sqlite3 command-line tool is missing (Debian package sqlite3)")
    ckpt_pages, wal_limit, step_max = store_settings()
    queries = readme_queries()
    # A low samples-per-insert ratio lets ingest run as fast as the actors produce.
    f = Fleet("readers", env={"FLEETRL_HIDDEN1": "32", "FLEETRL_HIDDEN2": "32"})
    f.start_broker()
    f.start_learner("--max-env-steps=100000000", "--eval-period=100000000", "--min-replay=300",
                    "--spi=1", f"--capacity={CAPACITY}")
    for i in range(ACTORS):
        f.start_actor(i, ACTORS)
    db = os.path.join(f.run_dir, "replay.db")
    wal = db + "-wal"
    # Every actor has a row (and so an actor_summary line) from its first stored batch on.
    wait_until(lambda: all(len(f.acked(f"actor-{i}")) >= 50 for i in range(ACTORS)), 60,
               "every actor's batches in the store")

    def alive():
        for role, p in f.procs.items():
            if p.poll() is not None:
                raise Failure(f"{role} exited with {p.returncode}:\n" + f.tail(role))

    # 1. The README's queries in a loop beside consistency snapshots and overlapping read
    # transactions, while ingest runs. Some reader holds a snapshot at almost every moment,
    # which once kept the WAL from ever being reused (the old store: reused 0 times, 459 MiB).
    # Now the store waits for the readers present each time the WAL holds ckpt_pages; these
    # readers are far shorter than its 100 ms, so attempts succeed, and one given up is
    # retried once the WAL has grown by ckpt_pages, then 2, then up to step_max times that
    # (every step_max thresholds from the start if an attempt got through only after a longer
    # wait). So after k attempts given up in a row (a loaded machine can keep a reader from
    # running) the next comes at most step_max * (k + 1) thresholds in; the learner's /metrics
    # count the attempts given up in all, which bounds k. The WAL holds at most that (two
    # steps, the bound of old, with none or one given up), plus what was committed while the
    # last passive copy ran (a quarter threshold) and the largest commit; its file, truncated
    # to journal_size_limit whenever the WAL is reused, stays under that or the limit.
    page0 = wal_state(wal)[2] or 4096
    largest_commit = 2 * (os.path.getsize(db) // page0) if os.path.exists(db) else 0
    addr = open(os.path.join(f.run_dir, "http.addr")).read().strip()

    def given_up():
        text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
        m = re.search(r'^fleetrl_store_wal_restarts_total\{outcome="given_up"\} (\S+)$', text, re.M)
        if not m:
            raise Failure("the learner's /metrics has no fleetrl_store_wal_restarts_total")
        return int(float(m.group(1)))

    def reading_bound(busy):
        return max(wal_limit, 32 + (page0 + 24) * (step_max * (max(busy, 1) + 1) * ckpt_pages
                                                   + ckpt_pages // 4
                                                   + max(largest_commit, 1024)))
    cli = CliReaders(db, queries)
    overlap = OverlappingReaders(db)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10, isolation_level=None)
    seen, snapshots = 0, 0
    start_acks = acks(f)
    reading = {"max": 0, "seqs": set(), "busy": 0}

    def enough():
        nonlocal seen, snapshots
        alive()
        size, seq, _ = wal_state(wal)
        reading["max"] = max(reading["max"], size)
        if seq is not None:
            reading["seqs"].add(seq)
        if size > reading_bound(0):
            busy = given_up()  # read after the size: it counts every attempt before it
            reading["busy"] = max(reading["busy"], busy)
            if size > reading_bound(busy):
                raise Failure(f"the WAL file is {size} bytes while readers run back to back, "
                              f"bound {reading_bound(busy)} after {busy} restart attempts given "
                              f"up ({ckpt_pages} checkpoint pages, journal_size_limit "
                              f"{wal_limit})")
        n = check_snapshot(con)
        if n < seen:
            raise Failure(f"a later snapshot holds fewer batches ({n}) than an earlier one "
                          f"({seen})")
        seen, snapshots = n, snapshots + 1
        with cli.lock:
            if cli.failures:
                raise Failure("a README query failed while ingest ran: " + cli.failures[0])
            runs = cli.runs
        if overlap.failures:
            raise Failure("a read transaction failed while ingest ran: " + overlap.failures[0])
        return (runs >= 6 * len(queries) and snapshots >= 50
                and acks(f) >= start_acks + 3000)
    wait_until(enough, 90, "README queries and snapshots beside ingest", interval=0.05)
    if cli.summary_rows != {ACTORS}:
        raise Failure(f"actor_summary returned {cli.summary_rows} rows, expected {ACTORS} actors")
    overlap.stop()
    print(f"  {cli.runs} README queries ({len(queries)} kinds) through sqlite3, {snapshots} "
          f"consistent snapshots and {overlap.snapshots} overlapping read transactions of "
          f"{overlap.HOLD * 1e3:.0f} ms while {acks(f) - start_acks} batches were acknowledged")
    # The batches acknowledged meanwhile wrote several checkpoint thresholds of WAL (about
    # 8 pages each), so it must have been reused several times under the readers.
    restarts = len(reading["seqs"]) - 1
    busy = given_up()
    print(f"  meanwhile the WAL was reused {restarts} times ({busy} attempts given up) and its "
          f"file stayed <= {reading['max'] / 2**20:.1f} MiB (bound "
          f"{reading_bound(reading['busy']) / 2**20:.1f} MiB)")
    if restarts < 2:
        raise Failure(f"the WAL was reused {restarts} times while readers ran back to back "
                      f"(its file reached {reading['max']} bytes)")

    # 2. A read transaction left open, as an idle BEGIN in a sqlite3 session: ingest goes on,
    # the reader keeps its snapshot, and the WAL cannot be reset behind it, so it grows.
    page = wal_state(wal)[2] or 4096
    frame = page + 24
    db_pages = os.path.getsize(db) // page
    # The steady WAL: the store reuses it once it holds ckpt_pages frames, so the file reaches
    # about ckpt_pages frames plus what is committed meanwhile, which cannot write more pages
    # than the database holds (with room for it to grow meanwhile). When the WAL is reused,
    # journal_size_limit truncates anything larger to wal_limit.
    bound = max(wal_limit, 32 + frame * (ckpt_pages - 1 + 2 * db_pages))
    reader = {}

    def begin():
        con.execute("BEGIN")
        reader["batches"] = con.execute("SELECT count(*), total(transitions) "
                                        "FROM batches").fetchone()
        reader["seq"] = wal_state(wal)[1]
        reader["acks"], reader["t"] = acks(f), time.monotonic()
    begin()

    def grown():
        alive()
        size, seq, _ = wal_state(wal)
        if seq != reader["seq"]:
            # The WAL was restarted under the reader: it had begun just after a complete
            # checkpoint and reads the database file alone, pinning nothing. Begin again.
            con.execute("COMMIT")
            begin()
            return False
        return acks(f) >= reader["acks"] + 1000 and (size > bound + (8 << 20)
                                                    or time.monotonic() - reader["t"] > 45)
    wait_until(grown, 60, "ingest while a read transaction stays open", interval=0.1)
    pinned = reader["batches"]
    again = con.execute("SELECT count(*), total(transitions) FROM batches").fetchone()
    if again != pinned:
        raise Failure(f"the open read transaction saw {pinned} batches, then {again}")
    now = f.query("SELECT count(*) FROM batches")[0][0]
    if now <= pinned[0]:
        raise Failure(f"a new reader sees {now} batches, no more than the open snapshot's "
                      f"{pinned[0]}, although ingest went on")
    held_size, held_seq, _ = wal_state(wal)
    exercised = held_size > bound
    print(f"  a read transaction open {time.monotonic() - reader['t']:.1f} s kept its {pinned[0]} "
          f"batches while {acks(f) - reader['acks']} more were acknowledged ({now} stored); "
          f"the WAL grew to {held_size / 2**20:.1f} MiB")
    con.execute("COMMIT")
    con.close()
    cli.stop()
    if cli.failures:
        raise Failure("a README query failed while ingest ran: " + cli.failures[0])

    # 3. The reader is gone: the next checkpoint completes, the WAL restarts and its file comes
    # back under the bound, and stays there across further checkpoint cycles.
    t1 = time.monotonic()
    wait_until(lambda: alive() or (wal_state(wal)[1] not in (None, held_seq)
                                   and wal_state(wal)[0] <= bound), 30,
               f"the WAL to restart and shrink under {bound / 2**20:.1f} MiB")
    restarted = time.monotonic() - t1
    seqs, worst = set(), 0

    def cycles():
        nonlocal worst
        alive()
        size, seq, _ = wal_state(wal)
        if size > bound:
            raise Failure(f"the WAL file is {size} bytes after the reader ended, bound {bound}")
        worst = max(worst, size)
        seqs.add(seq)
        return len(seqs - {held_seq, None}) >= 3
    wait_until(cycles, 30, "further checkpoint cycles", interval=0.02)
    how = (f"truncated from {held_size / 2**20:.1f} MiB" if exercised else
           "the pinned WAL stayed under the bound, so no truncation was needed")
    print(f"  reader closed: WAL restarted within {restarted:.1f} s and stayed <= "
          f"{worst / 2**20:.1f} MiB over {len(seqs)} checkpoint cycles ({how}; bound "
          f"{bound / 2**20:.1f} MiB = max(journal_size_limit, {ckpt_pages} checkpoint pages + "
          f"largest commit))")

    for i in range(ACTORS):
        if f.stop(f"actor-{i}") != 0:
            raise Failure(f"actor-{i} did not stop cleanly:\n" + f.tail(f"actor-{i}"))
    if f.stop("learner") != 5:
        raise Failure("learner did not stop with 5 on SIGTERM:\n" + f.tail("learner"))
    f.stop("broker")
    ok = f.query("PRAGMA integrity_check")
    if not ok or ok[0][0] != "ok":
        raise Failure(f"integrity_check: {ok}")
    shutil.rmtree(f.dir, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_readers_during_ingest])
