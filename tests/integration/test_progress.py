"""Progress as a person sees it: `fleetrl run` writes plain periodic lines when its output goes
to a pipe or a log file (one line each, no control characters), and a live status line
rewritten in place with a carriage return when its output is a terminal (a pseudo-terminal
here). Both runs are short: they are interrupted once a few lines have appeared."""
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time

from harness import BIN, Failure, run_tests, stop_process, wait_until

# One progress line, as learner/learner.c prints it.
LINE = re.compile(r"env +(\d+) steps +(\d+)/s \| updates +(\d+) +(\d+)/s \| replay +(\d+) \| "
                  r"return +(-?\d+\.\d) \| eval (-|-?\d+\.\d(?: \(\d+%\))?) \| lag (\d+\.\d)")


def start_run(stdout, *flags):
    """A `fleetrl run` of one actor that trains on until interrupted; its log lines (stderr)
    go to a file, so stdout holds only what the learner prints there."""
    runs = tempfile.mkdtemp(prefix="fleetrl-progress-")
    env = dict(os.environ, FLEETRL_HEARTBEAT="0.2")
    env.pop("FLEETRL_HTTP", None)
    env.pop("FLEETRL_PROGRESS", None)
    err = open(os.path.join(runs, "run.stderr"), "wb")
    p = subprocess.Popen([BIN, "run", "--actors=1", f"--runs={runs}", "--run-name=p",
                          "--solve-return=1000000",
                          "--max-env-steps=100000000", "--min-replay=200", *flags],
                         stdout=stdout, stderr=err, stdin=subprocess.DEVNULL, env=env)
    return p, runs


class Reader:
    """Collects what a file descriptor delivers, without ever blocking past a deadline."""

    def __init__(self, fd):
        self.fd = fd
        self.data = b""

    def poll(self, timeout=0.2):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if r:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # a pseudo-terminal whose other side closed
                chunk = b""
            self.data += chunk
            return bool(chunk)
        return False

    def drain(self, proc, timeout):
        """Reads until proc has exited and nothing more arrives, within timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.poll()
            if proc.poll() is not None and not got:
                return
        raise Failure(f"fleetrl run did not finish within {timeout} s")


def interrupt(p, runs):
    stop_process(p, "fleetrl run", signal.SIGINT, 60)
    if p.returncode != 130:
        raise Failure(f"fleetrl run exited {p.returncode} after SIGINT, expected 130:\n" +
                      open(os.path.join(runs, "run.stderr"), errors="replace").read()[-2000:])


def check_sane(lines, where):
    """Counters never go back, the replay never holds more than the environment steps stored,
    and training did progress between the first and the last line."""
    vals = [(int(m.group(1)), int(m.group(3)), int(m.group(5))) for m in lines]
    for (e0, u0, r0), (e1, u1, r1) in zip(vals, vals[1:]):
        if e1 < e0 or u1 < u0:
            raise Failure(f"{where}: counters went back between lines: {vals}")
    for e, _, r in vals:
        if r > e:
            raise Failure(f"{where}: replay {r} holds more than the {e} env steps stored")
    if vals[-1][0] <= vals[0][0]:
        raise Failure(f"{where}: env steps did not grow over the lines: {vals}")
    return vals


def test_plain_periodic_lines_in_a_pipe():
    r, w = os.pipe()
    p, runs = start_run(w, "--progress", "--progress-period=1")
    os.close(w)
    out = Reader(r)
    try:
        def periodic():
            if p.poll() is not None:
                raise Failure(f"fleetrl run exited {p.returncode}")
            out.poll()
            return growing([l for l in out.data.decode(errors="replace").split("\n")[:-1]
                            if l.startswith("env ")])
        wait_until(periodic, 120, "three plain progress lines with growing env steps",
                   interval=0.01)
        interrupt(p, runs)
        out.drain(p, 30)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(r)
    text = out.data.decode(errors="replace")
    if "\r" in text or "\033" in text:
        raise Failure(f"control characters in the output to a pipe: {text[:300]!r}")
    lines = text.split("\n")
    if lines[-1] != "":
        raise Failure(f"the output to a pipe ends within a line: {lines[-1]!r}")
    progress = [l for l in lines if l.startswith("env ")]
    bad = [l for l in progress if not LINE.fullmatch(l)]
    if bad:
        raise Failure(f"malformed progress lines: {bad[:3]}")
    other = [l for l in lines[:-1] if not l.startswith(("env ", "status page: "))]
    if other:
        raise Failure(f"unexpected lines on stdout: {other[:3]}")
    vals = check_sane([LINE.fullmatch(l) for l in progress], "pipe")
    # The last line is the learner's final one, written as it stops.
    if lines[-2] != progress[-1]:
        raise Failure(f"the output does not end with a progress line: {lines[-3:]}")
    print(f"  {len(progress)} plain lines, env steps {vals[0][0]} -> {vals[-1][0]}")
    shutil.rmtree(runs, ignore_errors=True)


def growing(lines):
    """Whether there are three progress lines or more, the first and last well formed, with
    more env steps in the last than in the first."""
    if len(lines) < 3:
        return False
    first, last = LINE.fullmatch(lines[0]), LINE.fullmatch(lines[-1])
    return bool(first and last and int(last.group(1)) > int(first.group(1)))


def test_live_status_line_on_a_terminal():
    master, slave = pty.openpty()
    p, runs = start_run(slave, "--progress")
    os.close(slave)
    out = Reader(master)
    # A status update: a carriage return, the line, then erase-to-end-of-line.
    update = re.compile(rb"\r(env [^\r\n\033]*)\033\[K")
    try:
        def updates():
            if p.poll() is not None:
                raise Failure(f"fleetrl run exited {p.returncode}")
            out.poll()
            return growing([m.decode() for m in update.findall(out.data)])
        wait_until(updates, 120, "three status-line updates with growing env steps",
                   interval=0.01)
        interrupt(p, runs)
        out.drain(p, 30)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    data = out.data
    seen = [m for m in update.finditer(data)]
    bad = [m.group(1) for m in seen if not LINE.fullmatch(m.group(1).decode())]
    if bad:
        raise Failure(f"malformed status lines: {bad[:3]}")
    check_sane([LINE.fullmatch(m.group(1).decode()) for m in seen], "terminal")
    # The updates rewrite one line: nothing between two of them starts a new line; only the
    # last (the learner's final one) ends with a newline (the terminal shows it as \r\n).
    for a, b in zip(seen, seen[1:]):
        if data[a.end():b.start()]:
            raise Failure(f"output between two status updates: {data[a.end():b.start()][:200]!r}")
    first = seen[0].start()
    head = data[:first].decode(errors="replace")
    if not head.startswith("status page: http://") or head.count("\n") != 1:
        raise Failure(f"before the status line: {head[:300]!r}")
    tail = data[seen[-1].end():]
    if tail not in (b"\n", b"\r\n"):
        raise Failure(f"the final status line is not ended by one newline: {tail[:200]!r}")
    print(f"  {len(seen)} status-line updates in place")
    shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_plain_periodic_lines_in_a_pipe, test_live_status_line_on_a_terminal])
