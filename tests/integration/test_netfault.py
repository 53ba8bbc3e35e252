"""Network faults between hosts: the broker, the learner and the actors each run in their own
network namespace (a host), joined through a router namespace, and the test breaks the network
between them: the actors' link pulled, the learner cut off by blackhole routes, packet loss with
added delay, and every actor connection reset at once. After each fault heals, ingest must
resume for every actor within a deadline; at the end every process must stop on SIGTERM within a
deadline and every batch an actor saw acknowledged must be in SQLite exactly once.

Needs root (network namespaces); without the permission it prints why and exits 0. Delay and loss
use netem when the kernel has it, else netfilter's random drop and a userspace relay that delays
the actors' traffic (both said in the output)."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from harness import BIN, Fleet, Failure, run_tests, wait_until
import netns

ACTORS = 3
BROKER_ACTOR_PORT, BROKER_LEARNER_PORT, RELAY_PORT = 5555, 5556, 15555


class NetFleet(Fleet):
    """A Fleet whose processes run inside the lab's host namespaces."""

    def __init__(self, name, lab):
        # Small networks keep three actors and a learner light on a shared machine. The peer
        # timeout of 2 s (the harness's) makes a partition visible quickly, and a connect
        # timeout of 4 s lets a partition outlast it within the test: a peer that was connected
        # must keep retrying then, never exit.
        super().__init__(name, env={"FLEETRL_HIDDEN1": "32", "FLEETRL_HIDDEN2": "32",
                                    "FLEETRL_CONNECT_TIMEOUT": "4"})
        self.lab = lab

    def start_in(self, host, role, command, *flags):
        logf = open(self.log(role), "ab")
        p = subprocess.Popen(self.lab.exec_argv(host, [BIN, command, *flags]), stdout=logf,
                             stderr=logf, stdin=subprocess.DEVNULL, env=self.env)
        self.procs[role] = p
        return p

    def count(self, role, pattern):
        try:
            return len(re.findall(pattern, open(self.log(role), errors="replace").read()))
        except FileNotFoundError:
            return 0

    def alive(self):
        for role, p in self.procs.items():
            if p.poll() is not None:
                raise Failure(f"{role} exited with {p.returncode}:\n" + self.tail(role))


def names():
    return [f"actor-{i}" for i in range(ACTORS)]


def ack_counts(f):
    return {n: len(f.acked(n)) for n in names()}


def env_steps(f):
    r = f.query("SELECT total(env_steps) FROM actors")
    return r[0][0] if r else 0


def wait_acks(f, base, more, timeout, what):
    """Waits until every actor has `more` acknowledged batches beyond `base` and the store's
    environment steps have grown; returns the seconds it took (for the printout) and the new
    counts."""
    t0, steps0 = time.monotonic(), env_steps(f)

    def done():
        f.alive()
        now = ack_counts(f)
        return now if all(now[n] >= base[n] + more for n in names()) else None
    now = wait_until(done, timeout, what, interval=0.1)
    wait_until(lambda: env_steps(f) > steps0, timeout, what + " (environment steps in the store)")
    return time.monotonic() - t0, now


def wait_logged(f, expected, timeout, what):
    """Waits until each (role, pattern) has been logged at least the given number of times."""
    def done():
        f.alive()
        return all(f.count(role, pat) >= n for (role, pat), n in expected.items())
    wait_until(done, timeout, what, interval=0.1)


def check_exactly_once(f):
    con = f.db()
    try:
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            raise Failure(f"integrity_check: {ok}")
        total = dups = 0
        for name in names():
            seqs = f.acked(name)
            if not seqs:
                raise Failure(f"{name} logged no acks")
            rows = dict(con.execute("SELECT b.seq, b.transitions FROM batches b JOIN actors "
                                    "USING(actor_id) WHERE name=?", (name,)).fetchall())
            items = dict(con.execute("SELECT i.batch_seq, count(*) FROM items i JOIN actors "
                                     "USING(actor_id) WHERE name=? GROUP BY i.batch_seq",
                                     (name,)).fetchall())
            missing = sorted(s for s in seqs if s not in rows)
            if missing:
                raise Failure(f"{name}: {len(missing)} acked batches not in SQLite, "
                              f"e.g. {missing[:3]}")
            # The items of a batch are inserted in its one transaction: a second copy of a
            # resent batch would double its items, a lost one would leave fewer.
            wrong = [s for s in seqs if items.get(s, 0) != rows[s]]
            if wrong:
                raise Failure(f"{name}: batch {wrong[0]} has {items.get(wrong[0], 0)} items, "
                              f"expected {rows[wrong[0]]}")
            total += len(seqs)
            dups += sum(1 for l in open(f.ack_log(name)) if l.endswith(" duplicate\n"))
        return total, dups
    finally:
        con.close()


def test_network_faults():
    netns.remove_stale()
    lab = netns.Lab()
    f = relay = None
    keep = False
    try:
        broker_ip = lab.add_host("b")
        lab.add_host("l")
        lab.add_host("a")
        relay = netns.Relay(lab, "router", lab.gateway("a"), RELAY_PORT, broker_ip,
                            BROKER_ACTOR_PORT)
        f = NetFleet("netfault", lab)
        f.front = relay.endpoint
        f.back = f"tcp://{broker_ip}:{BROKER_LEARNER_PORT}"
        f.start_in("b", "broker", "broker",
                   f"--actor-endpoint=tcp://{broker_ip}:{BROKER_ACTOR_PORT}",
                   f"--learner-endpoint={f.back}")
        wait_logged(f, {("broker", r"listening: "): 1}, 10, "the broker to listen")
        f.run_dir = os.path.join(f.dir, "run")
        f.start_in("l", "learner", "learner", f"--learner-endpoint={f.back}",
                   f"--run-dir={f.run_dir}", "--no-progress", "--max-env-steps=100000000",
                   "--eval-period=100000000", "--min-replay=300")
        for i, name in enumerate(names()):
            f.start_in("a", name, "actor", f"--actor-endpoint={f.front}", f"--actor-index={i}",
                       f"--num-actors={ACTORS}", f"--name={name}",
                       f"--ack-log={f.ack_log(name)}")
        print(f"  hosts: broker {broker_ip}, learner {lab.address('l')}, actors "
              f"{lab.address('a')} through a relay at {relay.endpoint}")
        _, base = wait_acks(f, ack_counts(f), 40, 60, "every actor's first acks")
        t0, c0 = time.monotonic(), base
        _, base = wait_acks(f, base, 100, 60, "steady ingest")
        rate = sum(base.values()) - sum(c0.values())
        print(f"  baseline: {rate / (time.monotonic() - t0):.0f} acked batches/s")

        # 1. Pull the actors' cable for longer than their connect timeout. Both sides must
        # notice (the broker expires the actors; the actors find the broker silent, then keep
        # retrying past the connect timeout instead of exiting), nothing is acknowledged while
        # it is out, and after it is back every actor is registered again and delivering.
        gone = {("broker", rf"actor {n} gone"): f.count("broker", rf"actor {n} gone") + 1
                for n in names()}
        noticed = {(n, r"broker silent for"): f.count(n, r"broker silent for") + 1
                   for n in names()}
        retrying = {(n, r"still no broker"): f.count(n, r"still no broker") + 1 for n in names()}
        joined = {("broker", rf"actor {n} joined"): f.count("broker", rf"actor {n} joined") + 1
                  for n in names()}
        t0 = time.monotonic()
        lab.link("a", up=False)
        wait_logged(f, {**gone, **noticed}, 30, "broker and actors to notice the partition")
        during = ack_counts(f)
        wait_logged(f, retrying, 30, "actors to outlast their connect timeout")
        frozen = ack_counts(f)
        lab.link("a", up=True)
        held = time.monotonic() - t0
        if frozen != during:
            raise Failure(f"acks arrived through a downed link: {during} -> {frozen}")
        took, base = wait_acks(f, frozen, 20, 60, "ingest to resume after the link came back")
        wait_logged(f, joined, 30, "every actor to register again")
        print(f"  link down {held:.1f} s (past the connect timeout; no ack crossed): every actor "
              f"registered again and 20 more acks each within {took:.1f} s")

        # 2. Cut the learner off the broker with blackhole routes (both directions, links up),
        # again past the connect timeout; the actors' batches wait in their outboxes.
        lost = {("learner", r"broker silent for"): f.count("learner", r"broker silent for") + 1,
                ("broker", r"learner gone"): f.count("broker", r"learner gone") + 1,
                ("learner", r"still no broker"): f.count("learner", r"still no broker") + 1}
        t0 = time.monotonic()
        lab.blackhole("l", "b", on=True)
        wait_logged(f, lost, 30, "broker and learner to notice the blackhole, past the timeout")
        lab.blackhole("l", "b", on=False)
        held = time.monotonic() - t0
        took, base = wait_acks(f, ack_counts(f), 20, 60,
                               "ingest to resume after the blackhole was lifted")
        print(f"  learner blackholed {held:.1f} s (both sides noticed, learner kept retrying): "
              f"20 more acks per actor within {took:.1f} s of lifting it")

        # 3. Loss and delay on the actors' path: netem if the kernel has it, else random drops
        # by netfilter and the delay in the relay; without either for loss, delay alone.
        if lab.netem("a", 50, 5):
            how, check_drops = "netem: 50 ms delay, 5% loss each way", False
        else:
            check_drops = lab.drop("a", 5)
            relay.delay(50)
            how = ("; ".join(lab.notes) + "; instead 50 ms each way in the relay and " +
                   ("5% random loss with iptables' statistic match in the actors' namespace"
                    if check_drops else "SKIPPED the packet loss (no way to inject it here)"))
        print(f"  degraded link: {how}")
        t0, c0 = time.monotonic(), ack_counts(f)
        took, base = wait_acks(f, c0, 30, 90, "ingest to continue on the lossy, slow link")
        degraded = (sum(base.values()) - sum(c0.values())) / took
        drops = lab.drop_counts("a") if check_drops else None
        if check_drops and drops == 0:
            raise Failure("the loss rules dropped no packet: the fault was not injected")
        lab.clear_netem("a")
        lab.clear_drop("a")
        relay.delay(0)
        t0, c0 = time.monotonic(), ack_counts(f)
        took, base = wait_acks(f, c0, 30, 60, "ingest after the link was clean again")
        print(f"  on the degraded link {degraded:.0f} acked batches/s"
              + (f" ({drops} packets dropped)" if drops is not None else "")
              + f"; clean again {(sum(base.values()) - sum(c0.values())) / took:.0f}/s")

        # 4. Every actor connection reset at once, as by a crashed middlebox.
        n = relay.reset()
        if n < ACTORS:
            raise Failure(f"the relay reset {n} connections, expected at least {ACTORS}")
        took, base = wait_acks(f, ack_counts(f), 20, 60, "ingest to resume after the resets")
        print(f"  {n} connections reset: 20 more acks per actor within {took:.1f} s")

        # Nothing hangs: each process stops on SIGTERM within the deadline, with its code.
        for role in names():
            rc = f.stop(role, timeout=20)
            if rc != 0:
                raise Failure(f"{role} exited {rc} after SIGTERM:\n" + f.tail(role))
        rc = f.stop("learner", timeout=20)
        if rc != 5:
            raise Failure(f"learner exited {rc} after SIGTERM, expected 5:\n" + f.tail("learner"))
        rc = f.stop("broker", timeout=20)
        if rc != 0:
            raise Failure(f"broker exited {rc} after SIGTERM:\n" + f.tail("broker"))
        relay.stop()
        total, dups = check_exactly_once(f)
        print(f"  {total} acked batches each in SQLite exactly once ({dups} resends answered "
              f"as duplicates); every process stopped on SIGTERM")
    except BaseException:
        keep = True
        raise
    finally:
        if f:
            f.kill_all()
        if relay and relay.proc.poll() is None:
            relay.proc.kill()
        lab.close()
        if f and not keep:
            shutil.rmtree(f.dir, ignore_errors=True)
        elif f:
            print(f"  logs kept in {f.dir}")


if __name__ == "__main__":
    # A SIGTERM to the test still runs the cleanup (namespaces, processes).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    reason = netns.unavailable_reason()
    if reason:
        print(f"SKIP test_netfault: {reason}")
        sys.exit(0)
    run_tests([test_network_faults])
