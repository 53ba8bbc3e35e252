"""A lost broker or learner degrades the fleet but loses nothing acknowledged: SIGKILL the
learner or the broker mid-run, start a new one on the same endpoints and store, and check that
the actors reconnect, ingest resumes, and every batch an actor saw acknowledged is in SQLite
exactly once in a store that passes integrity_check."""
import re
import signal

from harness import Fleet, Failure, run_tests, wait_until


def batches(f):
    r = f.query("SELECT count(*) FROM batches")
    return r[0][0] if r else 0


def check_exactly_once(f, names):
    con = f.db()
    ok = con.execute("PRAGMA integrity_check").fetchone()[0]
    if ok != "ok":
        raise Failure(f"integrity_check: {ok}")
    for name in names:
        seqs = f.acked(name)
        rows = dict(con.execute("SELECT b.seq, b.transitions FROM batches b JOIN actors "
                                "USING(actor_id) WHERE name=?", (name,)).fetchall())
        items = dict(con.execute("SELECT i.batch_seq, count(*) FROM items i JOIN actors "
                                 "USING(actor_id) WHERE name=? GROUP BY i.batch_seq",
                                 (name,)).fetchall())
        missing = [s for s in seqs if s not in rows]
        if missing:
            raise Failure(f"{name}: {len(missing)} acked batches missing, e.g. {missing[:3]}")
        wrong = [s for s in rows if items.get(s, 0) != rows[s]]
        if wrong:
            raise Failure(f"{name}: batch {wrong[0]} has {items.get(wrong[0], 0)} items, "
                          f"expected {rows[wrong[0]]}")
    return sum(len(f.acked(n)) for n in names)


def start_fleet(name):
    f = Fleet(name)
    f.start_broker()
    f.start_learner("--max-env-steps=100000000", "--eval-period=100000000", "--min-replay=300")
    f.start_actor(0, 2)
    f.start_actor(1, 2)
    wait_until(lambda: batches(f) >= 40, 60, "experience in SQLite")
    return f


def test_learner_killed_and_restarted():
    f = start_fleet("learner-restart")
    f.procs["learner"].send_signal(signal.SIGKILL)
    f.procs["learner"].wait(10)
    before = batches(f)
    # A gap in which actors keep acting: it lasts until the broker has declared the learner
    # gone, so experience has been queued (and refused as busy) with no learner to take it.
    wait_until(lambda: "learner gone" in open(f.log("broker")).read(), 20,
               "the broker to declare the learner gone")
    # The new learner reopens the same store, rebuilds its replay index and resumes ingest.
    f.start_learner("--max-env-steps=100000000", "--eval-period=100000000", "--min-replay=300")
    wait_until(lambda: batches(f) >= before + 60, 60, "ingest to resume in the new learner")
    # The second start logs how many stored items it re-indexed.
    starts = re.findall(r"replay \S+ \((\d+) items\)", open(f.log("learner")).read())
    if len(starts) != 2 or int(starts[1]) < before:
        raise Failure(f"the restarted learner re-indexed {starts} items, expected >= {before}")
    f.stop("actor-0")
    f.stop("actor-1")
    f.stop("learner")
    n = check_exactly_once(f, ("actor-0", "actor-1"))
    dups = f.query("SELECT count(*) FROM batches")[0][0]
    print(f"  {n} acked batches, {dups} stored, each once, across a learner SIGKILL")


def test_broker_killed_and_restarted():
    f = start_fleet("broker-restart")
    front, back = f.front, f.back
    f.procs["broker"].send_signal(signal.SIGKILL)
    f.procs["broker"].wait(10)
    before = batches(f)
    # A gap in which actors keep acting with nobody to acknowledge: it lasts until each actor
    # has found the broker silent, so both hold unacknowledged batches to resend.
    wait_until(lambda: all("broker silent" in open(f.log(a)).read()
                           for a in ("actor-0", "actor-1")), 20,
               "both actors to find the broker silent")
    # A new broker on the same endpoints: peers learn at their next message that it does not
    # know them, say Hello again, and actors resend everything unacknowledged.
    f.start("broker2", "broker", f"--actor-endpoint={front}", f"--learner-endpoint={back}")
    wait_until(lambda: batches(f) >= before + 60, 60, "ingest through the new broker")
    for role in ("learner", "actor-0", "actor-1"):
        if f.procs[role].poll() is not None:
            raise Failure(f"{role} exited after the broker restart:\n" + f.tail(role))
    f.stop("actor-0")
    f.stop("actor-1")
    f.stop("learner")
    f.stop("broker2")
    n = check_exactly_once(f, ("actor-0", "actor-1"))
    print(f"  {n} acked batches each stored once across a broker SIGKILL")


if __name__ == "__main__":
    run_tests([test_learner_killed_and_restarted, test_broker_killed_and_restarted])
