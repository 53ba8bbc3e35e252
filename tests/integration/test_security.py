"""CURVE and per-actor limits with the real processes on loopback: keys from `fleetrl keygen`, a
broker with an allowlist, an allowed learner and actor that train; an actor whose key is not on
the list and a plaintext actor are refused (the broker log names them, they never get a
Welcome) while the allowed ones keep working; a SIGHUP admits a newly listed key; a Python
CURVE peer flooding experience is throttled (Busy, naming the limit) and an oversized batch is
rejected, while the normal actor keeps delivering; a robot key can neither pose as the learner
nor take another actor's name; bad key files and flags are refused."""
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import urllib.request

import zmq

import wire
from harness import BIN, Fleet, Failure, run_tests, stop_process, wait_until

RATE_BATCHES = 20  # --actor-rate-batches for the flood test
BURST_S = 1.0
MAX_BATCH_BYTES = 65536
# The broker's two wordings for a plaintext peer: it saw the mechanism mismatch, or the peer saw
# it first and hung up mid-handshake. Group 1 or 2 is the address.
PLAINTEXT = re.compile(r"refused a (?:plaintext \(non-CURVE\) peer at (.+?) on the actor endpoint: "
                       r"this broker admits only CURVE|peer at (.+?) on the actor endpoint: it "
                       r"left during the CURVE handshake \(a plaintext client)")


def keygen(directory, name, check=True):
    p = subprocess.run([BIN, "keygen", name, "--out", directory], capture_output=True, text=True,
                       timeout=20)
    if check and p.returncode != 0:
        raise Failure(f"keygen {name} exited {p.returncode}: {p.stderr}")
    return p


def pub(directory, name):
    return open(os.path.join(directory, f"{name}.pub")).read().strip()


def key_flags(directory, name):
    return [f"--curve-secret={directory}/{name}.key", f"--broker-key={directory}/broker.pub"]


def log_text(f, role):
    try:
        return open(f.log(role), errors="replace").read()
    except FileNotFoundError:
        return ""


def batches_of(f, name):
    r = f.query("SELECT count(*) FROM batches JOIN actors USING(actor_id) WHERE name=?", name)
    return r[0][0] if r else 0


def test_keygen_and_bad_key_files():
    f = Fleet("keys")
    d = os.path.join(f.dir, "keys")
    p = keygen(d, "robot-1")
    key, pub_path = os.path.join(d, "robot-1.key"), os.path.join(d, "robot-1.pub")
    if stat.S_IMODE(os.stat(key).st_mode) != 0o600:
        raise Failure(f"secret key mode {oct(os.stat(key).st_mode)}, expected 0600")
    text = open(pub_path).read()
    if len(text) != 41 or not text.endswith("\n"):
        raise Failure(f"public key file is {text!r}, expected 40 Z85 characters and a newline")
    if p.stdout != f"robot-1 {text.strip()}\n":
        raise Failure(f"keygen did not print the allowlist line: {p.stdout!r}")
    before = open(key).read()
    again = keygen(d, "robot-1", check=False)
    if again.returncode == 0 or "refusing to overwrite" not in again.stderr:
        raise Failure(f"keygen overwrote or was unclear: {again.returncode} {again.stderr!r}")
    if open(key).read() != before:
        raise Failure("the secret key changed after a refused keygen")
    bad = keygen(d, "../escape", check=False)
    if bad.returncode != 2 or "key name" not in bad.stderr:
        raise Failure(f"a bad key name was not refused clearly: {bad.returncode} {bad.stderr!r}")
    keygen(d, "broker")

    def refused(cmd, *flags, want):
        r = subprocess.run([BIN, cmd, *flags], capture_output=True, text=True, timeout=20,
                           env=f.env)
        if r.returncode != 2 or want not in r.stderr:
            raise Failure(f"{cmd} {flags}: exit {r.returncode}, stderr {r.stderr!r}; "
                          f"expected exit 2 naming {want!r}")
    refused("broker", f"--curve-secret={d}/broker.key", want="needs --allow")
    refused("actor", f"--curve-secret={pub_path}", f"--broker-key={d}/broker.pub",
            want="looks like a public key file")
    refused("actor", f"--curve-secret={key}", f"--broker-key={d}/broker.key",
            want="is a secret key file")
    refused("learner", f"--curve-secret={key}", want="needs --broker-key")
    refused("actor", f"--broker-key={d}/broker.pub", want="--broker-key needs --curve-secret")
    with open(os.path.join(d, "junk.pub"), "w") as j:
        j.write("not a key\n")
    refused("estop", f"--curve-secret={key}", f"--broker-key={d}/junk.pub",
            want="junk.pub: not a public key file")
    allow = os.path.join(f.dir, "allow.txt")
    with open(allow, "w") as a:
        a.write(f"# fleet\nrobot-1 {pub(d, 'robot-1')}\nrobot-2 {pub(d, 'robot-1')[:39]}\n")
    r = subprocess.run([BIN, "broker", f"--curve-secret={d}/broker.key", f"--allow={allow}",
                        "--actor-endpoint=tcp://127.0.0.1:*",
                        "--learner-endpoint=tcp://127.0.0.1:*"],
                       capture_output=True, text=True, timeout=20, env=f.env)
    if r.returncode == 0 or f"{allow}:3: public key of 'robot-2'" not in r.stderr:
        raise Failure(f"a malformed allowlist was not refused clearly: {r.returncode} "
                      f"{r.stderr[-400:]!r}")


def curve_dealer(ctx, endpoint, name, keys, key_name):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.ROUTING_ID, name.encode())
    secret = open(os.path.join(keys, f"{key_name}.key")).read().splitlines()[1]
    s.curve_secretkey = secret.encode()
    s.curve_publickey = pub(keys, key_name).encode()
    s.curve_serverkey = pub(keys, "broker").encode()
    s.connect(endpoint)
    return s


def recv_type(sock, want, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(100):
            name, obj = wire.decode(sock.recv())
            if name == want:
                return obj
    raise Failure(f"no {want} within {timeout} s")


def one_step(seq):
    return wire.experience("flood", seq, [0.0] * 4, [0], [1.0], [0.99], [0.0] * 4)


def flood(f, keys):
    """A CURVE peer on the allowlist that sends experience far above its rate. Returns when the
    normal actor has delivered more batches during the flood and every flood batch is acked."""
    ctx = zmq.Context()
    s = curve_dealer(ctx, f.front, "flood", keys, "flood")
    # A listed key cannot take a name another key holds (and with it that actor's acks).
    s.send(wire.hello("actor-a"))
    w = recv_type(s, "Welcome")
    if w.Ok() or b"in use by another CURVE key" not in (w.Error() or b""):
        raise Failure(f"the flood key took actor-a's name: ok={w.Ok()} error={w.Error()!r}")
    s.send(wire.hello("flood"))
    w = recv_type(s, "Welcome")
    if not w.Ok():
        raise Failure(f"the allowed flood peer was refused: {w.Error()}")

    n = 2000
    big = wire.experience("flood", 1, [0.0] * 4 * n, [0] * n, [0.0] * n, [0.99] * n,
                          [0.0] * 4 * n)
    assert len(big) > MAX_BATCH_BYTES
    s.send(big)
    ack = recv_type(s, "Ack")
    reason = (ack.Reason() or b"").decode()
    if ack.Status() != 3 or f"--actor-max-batch-bytes {MAX_BATCH_BYTES}" not in reason:
        raise Failure(f"an oversized batch got status {ack.Status()} ({reason!r}), expected "
                      "Rejected naming --actor-max-batch-bytes")

    acks = {}
    seq, last_hb, last_ack = 2, 0.0, time.monotonic()

    def pump():
        nonlocal last_hb, last_ack
        now = time.monotonic()
        if now - last_hb > 0.2:  # stay registered: the broker expires silent peers
            s.send(wire.heartbeat("flood"))
            last_hb = now
        while s.poll(0):
            name, obj = wire.decode(s.recv())
            if name == "Ack" and obj.Seq() >= 2:
                acks[obj.Seq()] = (obj.Status(), (obj.Reason() or b"").decode())
                last_ack = time.monotonic()

    t_start = time.monotonic()
    base = batches_of(f, "actor-a")
    deadline = t_start + 90
    next_check = 0.0
    # Flood at about 2000 batches/s, 100x the limit, until the normal actor has delivered five
    # more batches meanwhile.
    while True:
        for _ in range(20):
            try:
                s.send(one_step(seq), zmq.NOBLOCK)
                seq += 1
            except zmq.Again:
                break
        pump()
        s.poll(10)
        if time.monotonic() >= next_check:
            if batches_of(f, "actor-a") >= base + 5:
                break
            next_check = time.monotonic() + 0.2
        if time.monotonic() > deadline:
            raise Failure(f"actor-a delivered {batches_of(f, 'actor-a') - base} batches in 90 s "
                          "of flood: starved")
    sent = seq - 2
    wait_until(lambda: (pump(), len(acks) == sent)[1], 60, f"acks for all {sent} flood batches")
    t_end = last_ack
    ctx.destroy()

    rate_busy = [q for q, (st, r) in acks.items() if st == 2 and "--actor-rate-batches" in r]
    admitted = [q for q, (st, r) in acks.items() if not (st == 2 and "--actor-rate-batches" in r)]
    ok = [q for q, (st, _) in acks.items() if st == 0]
    if not rate_busy:
        raise Failure(f"{sent} flood batches, none refused Busy for --actor-rate-batches")
    # Token bucket: at most depth + rate * elapsed admissions over the flood.
    bound = RATE_BATCHES * BURST_S + RATE_BATCHES * (t_end - t_start) + 1
    if len(admitted) > bound:
        raise Failure(f"{len(admitted)} flood batches admitted in {t_end - t_start:.1f} s, "
                      f"above the token-bucket bound {bound:.0f}")
    if not ok:
        raise Failure("no flood batch got through: throttled must not mean banned")
    stored = f.query("SELECT count(*) FROM batches JOIN actors USING(actor_id) "
                     "WHERE name='flood' AND seq >= 2")[0][0]
    if stored != len(ok):
        raise Failure(f"{len(ok)} flood batches acked Ok but {stored} in SQLite")
    return sent, len(rate_busy), len(admitted), t_end - t_start


def test_curve_fleet_refuses_strangers_and_throttles_a_flood():
    f = Fleet("curve")
    keys = os.path.join(f.dir, "keys")
    for name in ("broker", "learner", "actor-a", "flood", "intruder"):
        keygen(keys, name)
    allow = os.path.join(f.dir, "allow.txt")
    with open(allow, "w") as a:
        a.write("# who may talk to this broker\n\n")
        for name in ("learner", "actor-a", "flood"):
            a.write(f"{name} {pub(keys, name)}\n")
    f.start_broker(f"--curve-secret={keys}/broker.key", f"--allow={allow}",
                   f"--actor-rate-batches={RATE_BATCHES}", f"--actor-burst={BURST_S}",
                   f"--actor-max-batch-bytes={MAX_BATCH_BYTES}")
    f.start_learner(*key_flags(keys, "learner"), "--max-env-steps=100000000",
                    "--min-replay=200", "--eval-period=100000000")
    # 128 transitions a batch keeps this actor well under the batch-rate limit.
    f.start_actor(0, 2, *key_flags(keys, "actor-a"), "--batch-transitions=128", name="actor-a")
    wait_until(lambda: batches_of(f, "actor-a") >= 3 and f.acked("actor-a"), 90,
               "actor-a's batches acked and in SQLite")
    broker_log = log_text(f, "broker")
    for want in ("actor actor-a joined", "CURVE key actor-a", "CURVE key learner"):
        if want not in broker_log:
            raise Failure(f"broker log lacks {want!r}:\n" + f.tail("broker"))

    # A key not on the list, and a peer without CURVE: refused at the handshake.
    intruder = f.start_actor(1, 2, *key_flags(keys, "intruder"), "--connect-timeout=3",
                             name="intruder")
    plain = f.start_actor(1, 2, "--connect-timeout=3", name="plain")
    for name, p in (("intruder", intruder), ("plain", plain)):
        rc = p.wait(30)
        if rc != 3:
            raise Failure(f"{name} exited {rc}, expected 3 (no answer):\n" + f.tail(name))
        if "connected to the broker" in log_text(f, name) or f.acked(name):
            raise Failure(f"{name} was admitted:\n" + f.tail(name))
    broker_log = log_text(f, "broker")
    if f"refused CURVE key {pub(keys, 'intruder')} from 127.0.0.1" not in broker_log:
        raise Failure("broker log does not name the intruder's key:\n" + f.tail("broker"))
    # A plaintext peer has no key and its name is never decrypted: the broker names its
    # address (when the connection is still open by the time the broker looks it up). Either
    # side may notice the mechanism mismatch first, hence two wordings.
    lines = [m for m in PLAINTEXT.finditer(broker_log)]
    if not lines:
        raise Failure("broker log does not report the plaintext peer:\n" + f.tail("broker"))
    for m in lines:
        addr = m.group(1) or m.group(2)
        if not (addr.startswith("127.0.0.1:") or addr == "an unknown address"):
            raise Failure(f"plaintext refusal names a wrong address: {m.group(0)}")
    # A listed robot key cannot pose as the learner.
    impostor = f.start("impostor", "learner", f"--learner-endpoint={f.back}",
                       f"--run-dir={f.dir}/impostor", "--no-progress", "--connect-timeout=3",
                       *key_flags(keys, "flood"))
    rc = impostor.wait(30)
    if rc != 3 or log_text(f, "broker").count("learner joined") != 1:
        raise Failure(f"a robot key connected as the learner (exit {rc}):\n" + f.tail("broker"))
    if "('flood') from 127.0.0.1 on the learner endpoint" not in log_text(f, "broker"):
        raise Failure("broker log does not name the key refused as learner:\n" + f.tail("broker"))
    before = batches_of(f, "actor-a")
    wait_until(lambda: batches_of(f, "actor-a") >= before + 3, 60,
               "actor-a to keep delivering after the refusals")
    # The refusals are counted on the broker's /metrics too.
    kv = dict(l.strip().split("=", 1) for l in open(os.path.join(f.dir, "endpoints")) if "=" in l)
    text = urllib.request.urlopen(f"http://{kv['http_address']}/metrics", timeout=10).read().decode()
    counts = dict(re.findall(r'^fleetrl_broker_curve_handshakes_total\{outcome="(\w+)"\} (\S+)$',
                             text, re.M))
    if float(counts.get("unknown_key", 0)) < 1 or float(counts.get("wrong_role", 0)) < 1 or \
            float(counts.get("admitted", 0)) < 2:
        raise Failure(f"/metrics does not count the handshakes: {counts}")

    sent, busy, admitted, secs = flood(f, keys)
    broker_log = log_text(f, "broker")
    if "throttled batch" not in broker_log or "of actor flood" not in broker_log:
        raise Failure("broker log does not report the throttled flood:\n" + f.tail("broker"))
    if "of actor actor-a (limits" in broker_log:
        raise Failure("the normal actor was throttled:\n" + f.tail("broker"))
    print(f"  flood: {sent} batches in {secs:.1f} s, {busy} refused Busy for the rate, "
          f"{admitted} admitted (limit {RATE_BATCHES}/s, burst {RATE_BATCHES * BURST_S:.0f})")

    # SIGHUP rereads the allowlist: the intruder, now listed, is admitted.
    with open(allow, "a") as a:
        a.write(f"intruder {pub(keys, 'intruder')}\n")
    f.procs["broker"].send_signal(signal.SIGHUP)
    wait_until(lambda: "allowlist reloaded" in log_text(f, "broker"), 10, "the allowlist reload")
    f.start_actor(1, 2, *key_flags(keys, "intruder"), name="intruder")
    wait_until(lambda: f.acked("intruder"), 60, "the newly listed actor's batches to be acked")

    for name in ("intruder", "actor-a"):
        f.stop(name)
    if f.stop("learner") != 5:
        raise Failure("learner did not stop cleanly:\n" + f.tail("learner"))
    rc = f.stop("broker", timeout=15)
    if rc != 0:
        raise Failure(f"broker exit code {rc} on SIGTERM:\n" + f.tail("broker"))
    items = f.query("SELECT count(*) FROM items JOIN actors USING(actor_id) WHERE name='actor-a'")
    if not items or items[0][0] == 0:
        raise Failure("no items of actor-a in SQLite")


def test_run_with_curve():
    """`fleetrl run --curve`: every process of a one-host run gets its own key pair in
    <run>/keys (secrets 0600) and the broker admits exactly those; a plaintext actor pointed at
    the run's broker is refused, an operator verb with the run's ops key gets through, and a
    resumed run keeps its keys."""
    root = tempfile.mkdtemp(prefix="fleetrl-run-curve-")
    run = os.path.join(root, "c")
    args = [BIN, "run", "--task", "cartpole-dqn", "--actors", "2", "--runs", root,
            "--run-name", "c", "--no-progress", "--curve", "--eval-period", "100000000"]
    p = subprocess.Popen(args + ["--max-env-steps", "100000000"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        blog = os.path.join(run, "logs", "broker.log")
        wait_until(lambda: os.path.exists(blog) and all(
            f"CURVE key {n}" in open(blog).read() for n in ("learner", "actor-0", "actor-1")),
            90, "the learner and both actors admitted with their own keys")
        keys = os.path.join(run, "keys")
        names = ["learner", "ops", "actor-0", "actor-1"]
        listed = [l.split()[0] for l in open(os.path.join(keys, "allow.txt")) if not l.startswith("#")]
        if listed != names:
            raise Failure(f"allowlist names {listed}, want {names}")
        for n in names + ["broker"]:
            mode = os.stat(os.path.join(keys, f"{n}.key")).st_mode & 0o777
            if mode != 0o600:
                raise Failure(f"{n}.key has mode {oct(mode)}, want 0o600")
        front = dict(l.strip().split("=", 1) for l in open(os.path.join(run, "endpoints"))
                     if "=" in l)["actor_endpoint"]
        plain = subprocess.run([BIN, "actor", f"--actor-endpoint={front}", "--name=plain",
                                "--connect-timeout=3"], capture_output=True, text=True, timeout=60)
        if plain.returncode != 3:
            raise Failure(f"a plaintext actor against a --curve run exited {plain.returncode}, "
                          f"expected 3:\n{plain.stderr[-1500:]}")
        wait_until(lambda: PLAINTEXT.search(open(blog).read()), 30,
                   "the broker to report the plaintext peer")
        ops = ["--actor-endpoint", front, "--curve-secret", os.path.join(keys, "ops.key"),
               "--broker-key", os.path.join(keys, "broker.pub")]
        for verb in ("estop", "resume"):
            r = subprocess.run([BIN, verb, *ops], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise Failure(f"{verb} with the run's ops key: exit {r.returncode}: {r.stderr}")
        if "CURVE key ops" not in open(blog).read():
            raise Failure("the broker log does not show the operator's ops key:\n" +
                          open(blog).read()[-1500:])
    finally:
        stop_process(p, "fleetrl run --curve", signal.SIGINT, 60)
    before = open(os.path.join(run, "keys", "learner.pub")).read()
    again = subprocess.run(args + ["--max-env-steps", "1"], capture_output=True, text=True,
                           timeout=120)
    if again.returncode not in (0, 4) or "CURVE on" not in again.stderr:
        raise Failure(f"resumed --curve run: exit {again.returncode}:\n{again.stderr[-1500:]}")
    if open(os.path.join(run, "keys", "learner.pub")).read() != before:
        raise Failure("a resumed run made new keys")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_keygen_and_bad_key_files,
               test_curve_fleet_refuses_strangers_and_throttles_a_flood, test_run_with_curve])
