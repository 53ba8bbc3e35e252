"""Test hosts made of Linux network namespaces, for fault-injection tests that need a real network
between the broker, the learner and the actors: each host is a namespace joined to one router
namespace by a veth pair on its own /30, so a fault on one host's link (partition, loss, delay)
leaves the others alone. Nothing is added to the namespace the test runs in; every namespace,
link, route and filter rule lives in namespaces this module created, and close() deletes them.

Run as a script (inside the router namespace) it is a TCP relay whose delay and resets are
controlled on stdin: the stand-in for netem's delay when the kernel lacks the netem qdisc."""
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque

PREFIX = "frlt"


def _run(argv, check=True):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def unavailable_reason():
    """None when this process may build namespaces, else why not (one line for a skip)."""
    if not shutil.which("ip"):
        return "the ip tool (Debian package iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN); running as uid " \
               f"{os.geteuid()}"
    name = f"{PREFIX}{os.getpid()}probe"
    p = _run(["ip", "netns", "add", name], check=False)
    if p.returncode != 0:
        why = p.stderr.strip() or f"exit {p.returncode}"
        return f"cannot create a network namespace: {why}"
    try:
        p = _run(["ip", "-n", name, "link", "add", "p0", "type", "veth", "peer", "name", "p1"],
                 check=False)
        if p.returncode != 0:
            why = p.stderr.strip() or f"exit {p.returncode}"
            return f"cannot create a veth pair in a network namespace: {why}"
    finally:
        _run(["ip", "netns", "del", name], check=False)
    return None


def remove_stale():
    """Deletes namespaces left by an earlier run of these tests whose process is gone (a test
    killed before its cleanup ran). Only names this module makes are considered."""
    p = _run(["ip", "netns", "list"], check=False)
    for line in p.stdout.splitlines():
        m = re.match(rf"^({PREFIX}(\d+)[a-z]+)\b", line)
        if m and not os.path.exists(f"/proc/{m.group(2)}"):
            _run(["ip", "netns", "del", m.group(1)], check=False)


class Lab:
    """A router namespace and host namespaces hanging off it. Host i gets 10.<net>.<i>.2/30,
    the router's side of its link 10.<net>.<i>.1; hosts route everything through the router."""

    def __init__(self, net_octet=None):
        self.tag = f"{PREFIX}{os.getpid()}"
        self.net = net_octet if net_octet is not None else 200 + os.getpid() % 50
        self.router = self.tag + "r"
        self.hosts = {}  # name -> (namespace, index, address, router-side link name)
        self.notes = []
        self._netns = [self.router]
        _run(["ip", "netns", "add", self.router])
        self.sh(self.router, "ip link set lo up && echo 1 > /proc/sys/net/ipv4/ip_forward")

    def sh(self, ns, script, check=True):
        return _run(["ip", "netns", "exec", ns, "sh", "-c", script], check=check)

    def add_host(self, name):
        """A new host namespace; returns its address."""
        idx = len(self.hosts) + 1
        ns = f"{self.tag}{name}"
        link = f"r{name}"[:15]
        _run(["ip", "netns", "add", ns])
        self._netns.append(ns)
        _run(["ip", "-n", self.router, "link", "add", link, "type", "veth", "peer", "name", "eth0",
              "netns", ns])
        _run(["ip", "-n", self.router, "addr", "add", f"10.{self.net}.{idx}.1/30", "dev", link])
        _run(["ip", "-n", self.router, "link", "set", link, "up"])
        _run(["ip", "-n", ns, "addr", "add", f"10.{self.net}.{idx}.2/30", "dev", "eth0"])
        _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(["ip", "-n", ns, "route", "add", "default", "via", f"10.{self.net}.{idx}.1"])
        self.hosts[name] = (ns, idx, f"10.{self.net}.{idx}.2", link)
        return self.hosts[name][2]

    def ns(self, name):
        return self.router if name == "router" else self.hosts[name][0]

    def address(self, name):
        return self.hosts[name][2]

    def gateway(self, name):
        """The router's address on the host's link."""
        return f"10.{self.net}.{self.hosts[name][1]}.1"

    def exec_argv(self, name, argv):
        return ["ip", "netns", "exec", self.ns(name), *argv]

    # ---- faults --------------------------------------------------------------------------

    def link(self, name, up):
        """Takes the router's end of the host's link down (a cable pulled: both directions
        cut, no packet and no error reaches either side) or up again."""
        _run(["ip", "-n", self.router, "link", "set", self.hosts[name][3], "up" if up else "down"])

    def blackhole(self, a, b, on):
        """Silently drops everything between hosts a and b with blackhole routes: the router
        discards what is forwarded to a, and a discards what it sends to b, so both directions
        are cut while both links stay up and every other path keeps working."""
        verb = "add" if on else "del"
        _run(["ip", "-n", self.router, "route", verb, "blackhole", f"{self.address(a)}/32"])
        _run(["ip", "-n", self.ns(a), "route", verb, "blackhole", f"{self.address(b)}/32"])

    def netem(self, name, delay_ms, loss_pct):
        """Delay and loss with the netem qdisc on both ends of the host's link; False (and
        nothing changed) when the kernel has no netem."""
        spec = ["netem", "delay", f"{delay_ms}ms", "loss", f"{loss_pct}%"]
        p = _run(["ip", "netns", "exec", self.ns(name), "tc", "qdisc", "add", "dev", "eth0",
                  "root", *spec], check=False)
        if p.returncode != 0:
            self.notes.append(f"netem is unavailable (tc: {p.stderr.strip()})")
            return False
        _run(["ip", "netns", "exec", self.router, "tc", "qdisc", "add", "dev", self.hosts[name][3],
              "root", *spec])
        return True

    def clear_netem(self, name):
        _run(["ip", "netns", "exec", self.ns(name), "tc", "qdisc", "del", "dev", "eth0", "root"],
             check=False)
        _run(["ip", "netns", "exec", self.router, "tc", "qdisc", "del", "dev",
              self.hosts[name][3], "root"], check=False)

    def drop(self, name, loss_pct):
        """Random packet loss in both directions of every connection of the host, with the
        netfilter statistic match in the host's own namespace. False when iptables is missing
        or refused."""
        if not shutil.which("iptables"):
            self.notes.append("iptables is not installed (Debian package iptables)")
            return False
        p = loss_pct / 100.0
        for chain in ("INPUT", "OUTPUT"):
            r = _run(["ip", "netns", "exec", self.ns(name), "iptables", "-A", chain, "-m",
                      "statistic", "--mode", "random", "--probability", f"{p:.4f}", "-j", "DROP"],
                     check=False)
            if r.returncode != 0:
                self.notes.append(f"iptables statistic match refused: {r.stderr.strip()}")
                self.clear_drop(name)
                return False
        return True

    def drop_counts(self, name):
        """Packets dropped so far by drop()'s rules in the host's namespace."""
        r = _run(["ip", "netns", "exec", self.ns(name), "iptables", "-L", "-v", "-n", "-x"],
                 check=False)
        return sum(int(l.split()[0]) for l in r.stdout.splitlines()
                   if "statistic" in l and l.split()[0].isdigit())

    def clear_drop(self, name):
        _run(["ip", "netns", "exec", self.ns(name), "iptables", "-F"], check=False)

    def close(self):
        """Deletes every namespace this lab made (their links, routes and rules go with
        them). Safe to call twice."""
        for ns in reversed(self._netns):
            _run(["ip", "netns", "del", ns], check=False)
        self._netns = []


class Relay:
    """A TCP relay started in one of the lab's namespaces: listens on (addr, port) and joins
    every connection to (target, tport). Its delay and connection resets are set at runtime."""

    def __init__(self, lab, where, addr, port, target, tport):
        argv = lab.exec_argv(where, [sys.executable, os.path.abspath(__file__), "relay", addr,
                                     str(port), target, str(tport)])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        line = self._reply(10)
        if not line.startswith("ready"):
            raise RuntimeError(f"relay did not start: {line!r}")
        self.endpoint = f"tcp://{addr}:{port}"

    def _reply(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            raise RuntimeError(f"relay did not answer within {timeout} s")
        return self.proc.stdout.readline().strip()

    def command(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self._reply(10)

    def delay(self, ms):
        return self.command(f"delay {ms}")

    def reset(self):
        """Resets every live connection (RST to both ends); returns how many."""
        return int(self.command("reset").split()[1])

    def stats(self):
        return self.command("stats")

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise RuntimeError(f"relay did not stop within {timeout} s")
        return self.proc.returncode


# ---- the relay process ---------------------------------------------------------------------

class _Pipe:
    """One direction of a relayed connection: a reader thread stamps each chunk with its due
    time (now + delay) and a writer thread sends chunks in order when due, so delay adds
    latency without limiting throughput."""

    def __init__(self, relay, src, dst):
        self.relay, self.src, self.dst = relay, src, dst
        self.chunks = deque()
        self.cv = threading.Condition()
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self):
        while True:
            try:
                data = self.src.recv(65536)
            except OSError:
                data = b""
            with self.cv:
                self.chunks.append((time.monotonic() + self.relay.delay_s, data))
                self.cv.notify()
            if not data:
                return

    def _write(self):
        while True:
            with self.cv:
                while not self.chunks:
                    self.cv.wait()
                due, data = self.chunks[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self.cv.wait(wait)
                    continue
                self.chunks.popleft()
            if not data:
                try:
                    self.dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                self.dst.sendall(data)
                self.relay.bytes += len(data)
            except OSError:
                return


def _relay_main(addr, port, target, tport):
    class State:
        delay_s = 0.0
        bytes = 0
    state = State()
    conns = []
    lock = threading.Lock()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(64)

    def accept():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            try:
                u = socket.create_connection((target, tport), timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with lock:
                conns.append((c, u))
            _Pipe(state, c, u)
            _Pipe(state, u, c)

    threading.Thread(target=accept, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "delay":
            state.delay_s = float(words[1]) / 1000.0
            print(f"delay {words[1]}", flush=True)
        elif words[0] == "reset":
            with lock:
                victims, conns[:] = list(conns), []
            for pair in victims:
                for s in pair:
                    try:
                        # Linger 0 makes the close an abort (RST), as from a crashed
                        # middlebox; shutdown first wakes this pair's threads blocked on it.
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    try:
                        s.close()
                    except OSError:
                        pass
            print(f"reset {len(victims)}", flush=True)
        elif words[0] == "stats":
            with lock:
                n = len(conns)
            print(f"stats connections {n} bytes {state.bytes}", flush=True)
        elif words[0] == "quit":
            break
    srv.close()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "relay":
        _relay_main(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else:
        print("usage: netns.py relay ADDR PORT TARGET TPORT", file=sys.stderr)
        sys.exit(2)
