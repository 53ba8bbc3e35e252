"""Starts real fleetrl processes on loopback for integration tests and waits by polling with
deadlines. Every process is killed when the test exits, whatever happens."""
import atexit
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("FLEETRL_BIN", os.path.abspath("build/fleetrl"))


class Failure(Exception):
    pass


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls predicate until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Fleet:
    """A broker, a learner and actors started as separate processes in a temp folder."""

    def __init__(self, name, task="cartpole-dqn", env=None):
        self.dir = tempfile.mkdtemp(prefix=f"fleetrl-{name}-")
        self.task = task
        self.env = dict(os.environ)
        # Plain settings every process gets; tests override per process with flags.
        self.env.update({"FLEETRL_TASK": task, "FLEETRL_LOG_LEVEL": "info",
                         "FLEETRL_HEARTBEAT": "0.2", "FLEETRL_PEER_TIMEOUT": "2",
                         "FLEETRL_CONNECT_TIMEOUT": "20", "FLEETRL_FLUSH_PERIOD": "1",
                         # Free ports, so that tests never contend for the default ones.
                         "FLEETRL_HTTP": "127.0.0.1:0"})
        if env:
            self.env.update(env)
        self.procs = {}
        self.front = self.back = None
        atexit.register(self.kill_all)

    def log(self, role):
        return os.path.join(self.dir, f"{role}.log")

    def start(self, role, command, *flags, stdout=None):
        logf = open(self.log(role), "ab")
        p = subprocess.Popen([BIN, command, *flags], stdout=stdout or logf, stderr=logf,
                             stdin=subprocess.DEVNULL, env=self.env)
        self.procs[role] = p
        return p

    def start_broker(self, *flags):
        epfile = os.path.join(self.dir, "endpoints")
        self.start("broker", "broker", "--actor-endpoint=tcp://127.0.0.1:*",
                   "--learner-endpoint=tcp://127.0.0.1:*", f"--endpoints-file={epfile}", *flags)

        def read():
            if self.procs["broker"].poll() is not None:
                raise Failure("broker exited: " + self.tail("broker"))
            try:
                kv = dict(l.strip().split("=", 1) for l in open(epfile) if "=" in l)
                return kv.get("actor_endpoint"), kv.get("learner_endpoint")
            except FileNotFoundError:
                return None
        self.front, self.back = wait_until(read, 10, "broker endpoints")

    def start_learner(self, *flags):
        self.run_dir = os.path.join(self.dir, "run")
        return self.start("learner", "learner", f"--learner-endpoint={self.back}",
                          f"--run-dir={self.run_dir}", "--no-progress", *flags)

    def start_actor(self, index, num, *flags, name=None):
        name = name or f"actor-{index}"
        return self.start(name, "actor", f"--actor-endpoint={self.front}",
                          f"--actor-index={index}", f"--num-actors={num}", f"--name={name}",
                          f"--ack-log={self.ack_log(name)}", *flags)

    def ack_log(self, name):
        return os.path.join(self.dir, f"{name}.acks")

    def acked(self, name):
        """Sequences the actor saw acknowledged (ok or duplicate), from its ack log. A torn last
        line (the actor killed mid-write) is ignored."""
        seqs = set()
        try:
            for line in open(self.ack_log(name)):
                parts = line.split()
                if len(parts) == 2 and line.endswith("\n"):
                    seqs.add(int(parts[0]))
        except FileNotFoundError:
            pass
        return seqs

    def db(self):
        """A read-only connection to the learner's replay store, as a user would open it."""
        path = os.path.join(self.run_dir, "replay.db")
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        return con

    def query(self, sql, *args):
        try:
            con = self.db()
            try:
                return con.execute(sql, args).fetchall()
            finally:
                con.close()
        except sqlite3.OperationalError:
            return None

    def tail(self, role, n=30):
        try:
            lines = open(self.log(role), errors="replace").read().splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def stop(self, role, sig=signal.SIGTERM, timeout=20):
        p = self.procs.get(role)
        return stop_process(p, role, sig, timeout) if p else None

    def kill_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass


def free_port():
    """A loopback TCP port nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stop_process(p, what, sig=signal.SIGTERM, timeout=20, strict=True):
    """Signals p and waits for it to exit; its exit code. Past the timeout it is killed, and
    (strict) the test fails naming `what`."""
    if p.poll() is not None:
        return p.returncode
    p.send_signal(sig)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        if strict:
            raise Failure(f"{what} did not stop within {timeout} s after signal {sig}")
        return None


def run_tests(tests):
    """Runs test functions, prints one result line each and a closing count; exits 1 on any
    failure."""
    passed = failed = 0
    for t in tests:
        start = time.monotonic()
        try:
            t()
            passed += 1
            print(f"ok   {t.__name__} ({time.monotonic() - start:.1f} s)", flush=True)
        except Exception as e:  # report and continue with the next test
            failed += 1
            print(f"FAIL {t.__name__}: {type(e).__name__}: {e}", flush=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
