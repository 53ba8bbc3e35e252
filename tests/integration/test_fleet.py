"""The whole path on loopback: broker, learner and two actors as separate processes; one actor
is SIGKILLed mid-run; training continues and every acknowledged batch is in SQLite once."""
import os
import signal
import time

from harness import Fleet, Failure, run_tests, wait_until


def test_kill_actor_exactly_once():
    f = Fleet("kill")
    f.start_broker()
    # A budget well beyond the test so the learner keeps going until we stop it.
    f.start_learner("--max-env-steps=100000000", "--min-replay=200", "--eval-period=100000000")
    f.start_actor(0, 2)
    f.start_actor(1, 2)

    def batches(name):
        r = f.query("SELECT count(*) FROM batches JOIN actors USING(actor_id) WHERE name=?", name)
        return r[0][0] if r else 0

    wait_until(lambda: batches("actor-0") >= 20 and batches("actor-1") >= 20, 60,
               "both actors' batches in SQLite")

    def sampled():
        r = f.query("SELECT coalesce(sum(times_sampled), 0) FROM items")
        return r[0][0] if r else 0

    wait_until(lambda: sampled() > 0, 60, "training to sample items")
    f.procs["actor-1"].send_signal(signal.SIGKILL)
    f.procs["actor-1"].wait(10)
    killed_at = batches("actor-1")
    before_a0, before_sampled = batches("actor-0"), sampled()
    # Training continues with the surviving actor.
    wait_until(lambda: batches("actor-0") >= before_a0 + 30, 60, "actor-0 to keep delivering")
    wait_until(lambda: sampled() > before_sampled + 1000, 60, "training to continue")
    if f.procs["learner"].poll() is not None or f.procs["broker"].poll() is not None:
        raise Failure("learner or broker died after the actor was killed")
    # Stop the survivor first so its last acks are on disk, then the learner.
    f.stop("actor-0")
    rc = f.stop("learner")
    if rc not in (5,):
        raise Failure(f"learner exit code {rc} after SIGTERM, expected 5 (stopped); log:\n"
                      + f.tail("learner"))
    f.stop("broker")
    con = f.db()
    for name in ("actor-0", "actor-1"):
        seqs = f.acked(name)
        if not seqs:
            raise Failure(f"{name} logged no acks")
        rows = dict(con.execute(
            "SELECT b.seq, b.transitions FROM batches b JOIN actors USING(actor_id) WHERE name=?",
            (name,)).fetchall())
        missing = [s for s in seqs if s not in rows]
        if missing:
            raise Failure(f"{name}: {len(missing)} acked batches not in SQLite, e.g. {missing[:3]}")
        items = dict(con.execute(
            "SELECT i.batch_seq, count(*) FROM items i JOIN actors USING(actor_id) WHERE name=? "
            "GROUP BY i.batch_seq", (name,)).fetchall())
        wrong = [s for s in seqs if items.get(s, 0) != rows[s]]
        if wrong:
            s = wrong[0]
            raise Failure(f"{name}: batch {s} has {items.get(s, 0)} items, expected {rows[s]}")
    dup = con.execute("SELECT actor_id, batch_seq, count(DISTINCT item_id) c FROM items "
                      "GROUP BY actor_id, batch_seq HAVING c > (SELECT transitions FROM batches b "
                      "WHERE b.actor_id = items.actor_id AND b.seq = items.batch_seq)").fetchall()
    if dup:
        raise Failure(f"batches with more items than transitions: {dup[:3]}")
    ok = con.execute("PRAGMA integrity_check").fetchone()[0]
    if ok != "ok":
        raise Failure(f"integrity_check: {ok}")
    print(f"  actor-1 killed after {killed_at} batches; acked: actor-0 {len(f.acked('actor-0'))},"
          f" actor-1 {len(f.acked('actor-1'))}; all in SQLite exactly once")


def test_unknown_flag_is_one_clear_line():
    import subprocess
    from harness import BIN
    p = subprocess.run([BIN, "learner", "--learning-rate", "1"], capture_output=True, text=True,
                       timeout=20)
    if p.returncode != 2 or "unknown flag '--learning-rate'" not in p.stderr:
        raise Failure(f"exit {p.returncode}, stderr {p.stderr!r}")
    p = subprocess.run([BIN, "learner", "--lr", "5"], capture_output=True, text=True, timeout=20)
    if p.returncode != 2 or "--lr: 5 is outside the allowed range" not in p.stderr:
        raise Failure(f"exit {p.returncode}, stderr {p.stderr!r}")
    env = dict(os.environ, FLEETRL_BATCH="0")
    p = subprocess.run([BIN, "learner"], capture_output=True, text=True, timeout=20, env=env)
    if p.returncode != 2 or "FLEETRL_BATCH: 0 is outside the allowed range [1, 65536]" not in p.stderr:
        raise Failure(f"exit {p.returncode}, stderr {p.stderr!r}")


def test_missing_broker_is_one_clear_line():
    f = Fleet("nobroker", env={"FLEETRL_CONNECT_TIMEOUT": "1"})
    f.front = "tcp://127.0.0.1:9"  # nothing listens on the discard port
    p = f.start_actor(0, 1)
    rc = p.wait(20)
    log = open(f.log("actor-0")).read()
    if rc != 3 or "no answer from the broker at tcp://127.0.0.1:9" not in log:
        raise Failure(f"actor exit {rc}, log:\n{log}")
    f.back = "tcp://127.0.0.1:9"
    p = f.start_learner()
    rc = p.wait(20)
    log = open(f.log("learner")).read()
    if rc != 3 or "no answer from the broker at tcp://127.0.0.1:9" not in log:
        raise Failure(f"learner exit {rc}, log:\n{log}")


def test_estop_reaches_every_actor_and_resume_lifts_it():
    import subprocess
    from harness import BIN
    f = Fleet("estop")
    f.start_broker()
    f.start_learner("--max-env-steps=100000000", "--eval-period=100000000")
    f.start_actor(0, 2)
    f.start_actor(1, 2)

    def steps():
        r = f.query("SELECT coalesce(sum(env_steps), 0) FROM actors")
        return r[0][0] if r else 0

    wait_until(lambda: steps() > 2000, 60, "experience from both actors")
    p = subprocess.run([BIN, "estop", "integration test", f"--actor-endpoint={f.front}"],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise Failure(f"estop exit {p.returncode}: {p.stderr}")
    for name in ("actor-0", "actor-1"):
        wait_until(lambda: "E-STOP: integration test" in open(f.log(name)).read(), 10,
                   f"{name} to log the e-stop")
    # In-flight batches drain, then nothing new arrives while stopped: two readings a second
    # apart agree.
    def unchanged_for_a_second():
        before = steps()
        time.sleep(1.0)
        return steps() == before

    wait_until(unchanged_for_a_second, 20, "ingest to stop under e-stop", interval=0)
    stopped_at = steps()
    p = subprocess.run([BIN, "resume", f"--actor-endpoint={f.front}"], capture_output=True,
                       text=True, timeout=30)
    if p.returncode != 0:
        raise Failure(f"resume exit {p.returncode}: {p.stderr}")
    wait_until(lambda: steps() > stopped_at + 500, 30, "experience to flow again after resume")
    # A new actor joining while stopped would have been told; here both resumed.
    for name in ("actor-0", "actor-1"):
        if "resumed" not in open(f.log(name)).read():
            raise Failure(f"{name} did not log the resume")


def test_stats_and_plots_of_a_run():
    import subprocess
    from harness import BIN
    f = Fleet("stats")
    f.start_broker()
    f.start_learner("--max-env-steps=3000", "--eval-period=1000", "--min-replay=500")
    f.start_actor(0, 1)
    f.procs["learner"].wait(120)
    p = subprocess.run([BIN, "stats", f.run_dir], capture_output=True, text=True, timeout=30)
    for needle in ("cartpole-dqn", "actor-0", "evaluations", "priority"):
        if needle not in p.stdout:
            raise Failure(f"stats output lacks {needle!r}:\n{p.stdout}")
    # Figures for a paper, checked against the store they were drawn from.
    import xml.etree.ElementTree as ET
    out = os.path.join(f.dir, "plots")
    p = subprocess.run([BIN, "plot", f.run_dir, "--out", out], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        raise Failure(f"plot exit {p.returncode}: {p.stderr}")
    ns = "{http://www.w3.org/2000/svg}"
    curve = ET.parse(os.path.join(out, "learning-curve.svg")).getroot()
    evals = f.query("SELECT count(*) FROM evaluations")[0][0]
    line = [e for e in curve.iter(ns + "polyline") if e.get("class") == "eval"]
    if evals == 0 or len(line) != 1 or len(line[0].get("points").split()) != evals:
        raise Failure(f"learning curve: {evals} evaluations, polyline {line}")
    hist = ET.parse(os.path.join(out, "priority-histogram.svg")).getroot()
    bins = [int(e.get("data-count")) for e in hist.iter(ns + "rect") if e.get("class") == "bin"]
    items = f.query("SELECT count(*) FROM items WHERE priority IS NOT NULL")[0][0]
    if len(bins) != 40 or sum(bins) != items:
        raise Failure(f"histogram: {len(bins)} bins holding {sum(bins)} of {items} items")
    p = subprocess.run([BIN, "stats", "/nonexistent"], capture_output=True, text=True, timeout=30)
    if p.returncode != 1 or "/nonexistent" not in p.stderr:
        raise Failure(f"stats on a missing run: exit {p.returncode}, {p.stderr!r}")



def test_estop_outlives_a_broker_restart():
    """An e-stop latched at the actors survives a broker SIGKILL: the new broker learns of it
    from their heartbeats, takes it up again and stops an actor that joins afterwards; an
    operator's resume lifts it for all, and a heartbeat sent before the resume does not undo
    it."""
    import signal
    import subprocess
    from harness import BIN
    f = Fleet("estop-restart")
    f.start_broker()
    f.start_learner("--max-env-steps=100000000", "--eval-period=100000000")
    f.start_actor(0, 2)

    def steps(name):
        r = f.query("SELECT coalesce(sum(env_steps), 0) FROM actors WHERE name = ?", name)
        return r[0][0] if r else 0

    wait_until(lambda: steps("actor-0") > 500, 60, "experience from actor-0")
    p = subprocess.run([BIN, "estop", "before the restart", f"--actor-endpoint={f.front}"],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise Failure(f"estop exit {p.returncode}: {p.stderr}")
    wait_until(lambda: "E-STOP: before the restart" in open(f.log("actor-0")).read(), 10,
               "actor-0 to log the e-stop")
    front, back = f.front, f.back
    f.procs["broker"].send_signal(signal.SIGKILL)
    f.procs["broker"].wait(10)
    f.start("broker2", "broker", f"--actor-endpoint={front}", f"--learner-endpoint={back}")
    wait_until(lambda: "E-STOP taken up again: actor-0" in open(f.log("broker2")).read(), 30,
               "the new broker to take up the latched e-stop")
    # The newcomer is told in its Welcome, before it could take a single step.
    f.start_actor(1, 2)
    wait_until(lambda: "E-STOP: e-stop latched at actor-0" in open(f.log("actor-1")).read(), 30,
               "the newcomer actor-1 to be stopped")
    if steps("actor-1") > 0:
        raise Failure(f"actor-1 stepped {steps('actor-1')} times under the e-stop")
    p = subprocess.run([BIN, "resume", f"--actor-endpoint={front}"], capture_output=True,
                       text=True, timeout=30)
    if p.returncode != 0:
        raise Failure(f"resume exit {p.returncode}: {p.stderr}")
    wait_until(lambda: steps("actor-1") > 200 and steps("actor-0") > 700, 60,
               "both actors to step again after the resume")
    if open(f.log("broker2")).read().count("E-STOP taken up again") != 1:
        raise Failure("the broker took the e-stop up again after the resume:\n" + f.tail("broker2"))
    for role in ("actor-0", "actor-1", "learner", "broker2"):
        f.stop(role)

if __name__ == "__main__":
    run_tests([test_unknown_flag_is_one_clear_line, test_missing_broker_is_one_clear_line,
               test_kill_actor_exactly_once, test_estop_reaches_every_actor_and_resume_lifts_it,
               test_estop_outlives_a_broker_restart,
               test_stats_and_plots_of_a_run])
