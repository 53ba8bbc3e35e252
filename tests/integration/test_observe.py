"""Observability end to end: a real fleet on loopback scraped by Debian's real Prometheus (its
parser validates our exposition format; its query API must show training progress, losses,
returns, replay size, priorities, policy lag, per-actor rates and a robot's safety events),
/metrics values checked against the learner's SQLite store, the status page rendered by
headless Chromium (the curve has points, the actors table lists the actors with their rates and
lag, the replay and safety tables have their figures, screenshots show the curve drawn and
changing), hostile HTTP input against the running learner, the --http flags, and
`fleetrl run` giving its learner and broker separate endpoints."""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib

from harness import BIN, Failure, Fleet, free_port, run_tests, stop_process, wait_until


def need(tool, package):
    """The path of an installed tool, or a failure naming the Debian package to install."""
    path = shutil.which(tool) or (f"/usr/bin/{tool}" if os.path.exists(f"/usr/bin/{tool}") else None)
    if not path:
        raise Failure(f"{tool} is not installed: install the Debian package '{package}' "
                      f"(make deps installs it)")
    return path


def http_get(addr, path, timeout=5):
    """(status, headers, body bytes) of GET http://addr/path; HTTP errors are returned too."""
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def raw_request(addr, data, timeout=5):
    """Sends raw bytes, returns everything the server sends until it closes."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may refuse before reading everything
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def parse_metrics(text):
    """{(name, frozenset(labels)): value} from the exposition text (our own output is simple:
    no timestamps, label values without commas in these tests)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m:
            raise Failure(f"unparseable metrics line: {line!r}")
        labels = frozenset(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


class ObservedFleet:
    """A fleet with HTTP on free ports: a broker, a learner that keeps training (it never
    reaches its solve threshold) with frequent evaluations, and two actors; a robot emulator
    joins when a test needs safety events (safety_events)."""

    def __init__(self, name):
        self.f = Fleet(name, env={"FLEETRL_HTTP": "127.0.0.1:0"})
        self.f.start_broker()
        self.f.start_learner("--max-env-steps=100000000", "--solve-return=1000000",
                             "--eval-period=1000", "--eval-episodes=3", "--min-replay=200")
        self.f.start_actor(0, 2)
        self.f.start_actor(1, 2)
        self.actors = ["actor-0", "actor-1"]  # every actor and robot started, by name
        self.events = None
        addr_file = os.path.join(self.f.run_dir, "http.addr")

        def learner_addr():
            if self.f.procs["learner"].poll() is not None:
                raise Failure("learner exited: " + self.f.tail("learner"))
            try:
                line = open(addr_file).read()
            except FileNotFoundError:
                return None
            return line.strip() if line.endswith("\n") else None
        self.learner = wait_until(learner_addr, 20, "the learner's http.addr")
        kv = dict(l.strip().split("=", 1) for l in open(os.path.join(self.f.dir, "endpoints"))
                  if "=" in l)
        self.broker = kv.get("http_address")
        if not self.broker:
            raise Failure("the broker's endpoints file has no http_address line")

    def broker_peers(self):
        """(live actors, live learners) the broker reports on /metrics."""
        b = parse_metrics(self.metrics(self.broker))
        return (b.get(("fleetrl_broker_peers", frozenset({("role", "actor")}))),
                b.get(("fleetrl_broker_peers", frozenset({("role", "learner")}))))

    def wait_for_peers(self, timeout=60):
        """Polls until the broker counts every actor started and the learner: a peer it has
        not heard from yet, or (on a loaded machine) for a peer timeout, is not counted."""
        want = (len(self.actors), 1)
        try:
            wait_until(lambda: self.broker_peers() == want, timeout,
                       f"the broker to report {want[0]} live actors and the learner")
        except Failure as e:
            raise Failure(f"{e}; it reports {self.broker_peers()}")

    def safety_events(self):
        """Makes safety events once: a robot emulator (the C client library, CartPole at 100 Hz)
        joins, `fleetrl estop` puts it in safe mode and `fleetrl resume` lifts it; returns the
        learner's event counts once e-stop, resume and both safe-mode changes have arrived."""
        if self.events:
            return self.events
        f = self.f
        f.start("robot-0", "emulate", f"--actor-endpoint={f.front}", "--name=robot-0",
                "--rate-hz=100", "--deadline=1", "--report-period=5")
        self.actors.append("robot-0")

        def stored():
            if f.procs["robot-0"].poll() is not None:
                raise Failure("robot-0 exited: " + f.tail("robot-0"))
            return any(a["name"] == "robot-0" and a["transitions"] > 0
                       for a in self.status()["actors"])
        wait_until(stored, 60, "robot-0's experience at the learner")
        rc = subprocess.run([BIN, "estop", "observability test", f"--actor-endpoint={f.front}"],
                            env=f.env, capture_output=True, timeout=60).returncode
        if rc != 0:
            raise Failure(f"fleetrl estop exited {rc}")
        wait_until(lambda: "(e-stop)" in open(f.log("robot-0"), errors="replace").read(), 30,
                   "robot-0 applying the safe action after the e-stop")
        rc = subprocess.run([BIN, "resume", f"--actor-endpoint={f.front}"], env=f.env,
                            capture_output=True, timeout=60).returncode
        if rc != 0:
            raise Failure(f"fleetrl resume exited {rc}")
        kinds = ("estop", "resume", "safe_mode_enter", "safe_mode_exit")

        def arrived():
            ev = self.status()["safety"]["events"]
            return ev if all(ev.get(k, 0) >= 1 for k in kinds) else None
        self.events = wait_until(arrived, 60, f"{', '.join(kinds)} events at the learner")
        return self.events

    def status(self):
        code, _, body = http_get(self.learner, "/api/status")
        if code != 200:
            raise Failure(f"/api/status answered {code}")
        return json.loads(body)

    def metrics(self, addr):
        code, headers, body = http_get(addr, "/metrics")
        if code != 200:
            raise Failure(f"/metrics on {addr} answered {code}")
        if not headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"):
            raise Failure(f"/metrics Content-Type is {headers.get('Content-Type')!r}")
        return body.decode()


_fleet = None


def fleet():
    global _fleet
    if _fleet is None:
        _fleet = ObservedFleet("observe")
    return _fleet


def test_metrics_match_the_store():
    """Counters read between two reads of SQLite lie between them: the learner counts a batch
    right after its transaction commits, on the same thread that answers /metrics."""
    o = fleet()
    wait_until(lambda: o.status()["params_version"] > 0, 60, "the first parameters")
    o.wait_for_peers()
    sql = ("SELECT coalesce(sum(b.env_steps), 0), coalesce(sum(b.transitions), 0), "
           "coalesce(sum(CASE WHEN a.name = 'actor-0' THEN b.transitions END), 0) "
           "FROM batches b JOIN actors a USING(actor_id)")
    before = o.f.query(sql)[0]
    m = parse_metrics(o.metrics(o.learner))
    after = o.f.query(sql)[0]
    checks = [("fleetrl_learner_env_steps_total", frozenset(), 0),
              ("fleetrl_learner_inserted_transitions_total", frozenset(), 1),
              ("fleetrl_learner_actor_inserted_transitions_total",
               frozenset({("actor", "actor-0")}), 2)]
    for name, labels, col in checks:
        v = m.get((name, labels))
        if v is None or not before[col] <= v <= after[col]:
            raise Failure(f"{name}{dict(labels)} = {v}, SQLite had {before[col]} before and "
                          f"{after[col]} after")
    for key in ("fleetrl_replay_items", "fleetrl_learner_updates_total",
                "fleetrl_learner_params_version", "fleetrl_learner_sampled_transitions_total"):
        if m.get((key, frozenset()), 0) <= 0:
            raise Failure(f"{key} is not positive: {m.get((key, frozenset()))}")
    # SAC's diagnostics are there, and NaN for this DQN learner.
    for key in ("fleetrl_learner_actor_loss", "fleetrl_learner_sac_alpha",
                "fleetrl_learner_sac_entropy"):
        v = m.get((key, frozenset()))
        if v is None or v == v:
            raise Failure(f"{key} is {v}, expected NaN for a DQN learner")
    # The broker counted every actor and the learner above (wait_for_peers).
    print(f"  env steps {m[('fleetrl_learner_env_steps_total', frozenset())]:.0f} within "
          f"SQLite's [{before[0]}, {after[0]}]")


def test_promtool_accepts_the_text():
    """Debian's promtool lints both processes' output (format and naming conventions)."""
    promtool = need("promtool", "prometheus")
    o = fleet()
    for who, addr in (("learner", o.learner), ("broker", o.broker)):
        text = o.metrics(addr)
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        if p.returncode != 0:
            raise Failure(f"promtool check metrics on the {who}'s /metrics: {p.stdout}{p.stderr}")


# What the learner's series read back from Prometheus must show, beyond the counters that grow:
# (name, what) of the single series; per-actor ones are checked for every actor.
LEARNER_SERIES = [("fleetrl_learner_loss", "loss"), ("fleetrl_learner_recent_return", "return"),
                  ("fleetrl_learner_eval_return", "evaluation return"),
                  ("fleetrl_replay_items", "replay size"),
                  ("fleetrl_replay_capacity_items", "replay capacity"),
                  ("fleetrl_learner_inserted_transitions_total", "inserted transitions"),
                  ("fleetrl_replay_priority_max", "max priority"),
                  ("fleetrl_replay_priority_min", "min priority"),
                  ("fleetrl_replay_priority_mass", "priority mass"),
                  ("fleetrl_learner_policy_lag_versions", "policy lag")]
ACTOR_SERIES = ["fleetrl_learner_actor_env_steps_per_second",
                "fleetrl_learner_actor_policy_lag_versions"]
SAFETY_KINDS = ("estop", "resume", "safe_mode_enter", "safe_mode_exit")


def check_learner_series(v, actors, where):
    """Relations that hold within one scrape of the learner: v maps (name, frozenset(labels))
    to a value. Returns None while a series is missing or still NaN (no evaluation yet)."""
    one = {}
    for name, _ in LEARNER_SERIES:
        x = v.get((name, frozenset()))
        if x is None or x != x:
            return None
        one[name] = x
    per_actor = {}
    for name in ACTOR_SERIES:
        for a in actors:
            x = v.get((name, frozenset({("actor", a)})))
            if x is None or x != x:
                return None
            per_actor[(name, a)] = x
    events = {k: v.get(("fleetrl_learner_safety_events_total", frozenset({("kind", k)})))
              for k in SAFETY_KINDS}
    if None in events.values():
        return None
    items, pmin, pmax, mass = (one[f"fleetrl_replay_{k}"] for k in
                               ("items", "priority_min", "priority_max", "priority_mass"))
    if not 0 < items <= min(one["fleetrl_replay_capacity_items"],
                            one["fleetrl_learner_inserted_transitions_total"]):
        raise Failure(f"{where}: replay size {items} outside (0, min(capacity, inserted)]: {one}")
    # Every priority held lies between the smallest held and the largest ever set.
    if not (0 < pmin <= pmax and items * pmin * (1 - 1e-6) <= mass <= items * pmax * (1 + 1e-6)):
        raise Failure(f"{where}: priorities inconsistent: min {pmin}, max {pmax}, mass {mass} "
                      f"over {items} items")
    if one["fleetrl_learner_loss"] < 0 or one["fleetrl_learner_policy_lag_versions"] < 0:
        raise Failure(f"{where}: negative loss or policy lag: {one}")
    if one["fleetrl_learner_recent_return"] <= 0 or one["fleetrl_learner_eval_return"] <= 0:
        raise Failure(f"{where}: a CartPole return not positive (every step earns 1): {one}")
    if any(x < 0 for x in per_actor.values()):
        raise Failure(f"{where}: a negative per-actor rate or lag: {per_actor}")
    if any(x < 1 for x in events.values()):
        raise Failure(f"{where}: safety events {events}")
    return one, per_actor, events


def test_prometheus_scrapes_the_fleet():
    prometheus = need("prometheus", "prometheus")
    o = fleet()
    # A robot joins and is e-stopped and resumed, so that there are safety events to scrape.
    o.safety_events()
    tmp = tempfile.mkdtemp(prefix="fleetrl-prometheus-")
    port = free_port()
    with open(os.path.join(tmp, "prometheus.yml"), "w") as cfg:
        cfg.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: fleetrl-learner
    static_configs:
      - targets: ['{o.learner}']
  - job_name: fleetrl-broker
    static_configs:
      - targets: ['{o.broker}']
""")
    log = open(os.path.join(tmp, "prometheus.log"), "wb")
    p = subprocess.Popen([prometheus, f"--config.file={tmp}/prometheus.yml",
                          f"--storage.tsdb.path={tmp}/data",
                          f"--web.listen-address=127.0.0.1:{port}"],
                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    api = f"127.0.0.1:{port}"
    try:
        def ready():
            if p.poll() is not None:
                raise Failure("prometheus exited: " + open(log.name, errors="replace").read()[-2000:])
            try:
                return http_get(api, "/-/ready", timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(ready, 60, "prometheus to be ready")

        def query(q):
            code, _, body = http_get(api, "/api/v1/query?query=" + urllib.parse.quote(q))
            if code != 200:
                raise Failure(f"query {q!r} answered {code}: {body[:300]!r}")
            return json.loads(body)["data"]["result"]

        def increasing(name):
            seen = []

            def step():
                r = query(name)
                if r:
                    ts, v = r[0]["value"]
                    if not seen or ts > seen[-1][0]:
                        seen.append((ts, float(v)))
                return len(seen) >= 2 and seen[-1][1] > seen[0][1]
            wait_until(step, 60, f"{name} to increase in prometheus", interval=0.5)
            return seen
        for name in ("fleetrl_learner_env_steps_total", "fleetrl_learner_updates_total",
                     "fleetrl_broker_forwarded_batches_total"):
            seen = increasing(name)
            print(f"  {name}: {seen[0][1]:.0f} -> {seen[-1][1]:.0f}")

        # Both targets are up and scraped without a parse error.
        code, _, body = http_get(api, "/api/v1/targets")
        targets = json.loads(body)["data"]["activeTargets"]
        if len(targets) != 2 or any(t["health"] != "up" or t["lastError"] for t in targets):
            raise Failure(f"targets not healthy: {[(t['scrapeUrl'], t['health'], t['lastError']) for t in targets]}")
        # Labels survive the round trip: one series per actor (the robot too), on both
        # processes.
        for metric in ("fleetrl_learner_actor_inserted_transitions_total",
                       "fleetrl_broker_actor_forwarded_batches_total"):
            wait_until(lambda: sorted(r["metric"].get("actor") for r in query(metric))
                       == sorted(o.actors), 30, f"{metric} series for {sorted(o.actors)}",
                       interval=0.5)
        peers = 'fleetrl_broker_peers{role="actor"}'
        wait_until(lambda: [float(r["value"][1]) for r in query(peers)] == [len(o.actors)], 30,
                   f"{peers} = {len(o.actors)}", interval=0.5)

        # Losses, returns, replay size, priorities, policy lag, per-actor rates and lag and the
        # safety events, all from one query, so that they come from one scrape of the learner.
        names = [n for n, _ in LEARNER_SERIES] + ACTOR_SERIES
        names.append("fleetrl_learner_safety_events_total")
        selector = '{job="fleetrl-learner",__name__=~"' + "|".join(names) + '"}'
        last = {}

        def read_back():
            v = {}
            for r in query(selector):
                labels = frozenset((k, x) for k, x in r["metric"].items()
                                   if k not in ("__name__", "job", "instance"))
                v[(r["metric"]["__name__"], labels)] = float(r["value"][1])
            last["v"] = v
            return check_learner_series(v, o.actors, "prometheus")
        try:
            one, per_actor, events = wait_until(read_back, 60, "every learner series in prometheus",
                                                interval=0.5)
        except Failure as e:
            raise Failure(f"{e}; it has {sorted((n, dict(l)) for n, l in last.get('v', {}))}")
        # The events Prometheus holds are at most those in SQLite, read afterwards.
        stored = dict(o.f.query("SELECT kind, sum(count) FROM safety_events GROUP BY kind") or [])
        for k, n in events.items():
            if n > stored.get(k, 0):
                raise Failure(f"prometheus has {n:.0f} {k} events, SQLite {stored.get(k, 0)}")
        rates = {a: per_actor[("fleetrl_learner_actor_env_steps_per_second", a)] for a in o.actors}
        print("  " + ", ".join(f"{what} {one[name]:.6g}" for name, what in LEARNER_SERIES) +
              f"; steps/s per actor { {a: round(r) for a, r in rates.items()} }"
              f"; safety events { {k: int(n) for k, n in events.items()} }")
    finally:
        stop_process(p, "prometheus", strict=False)
        shutil.rmtree(tmp, ignore_errors=True)


def test_hostile_http_leaves_training_running():
    o = fleet()
    garbage = [b"\x00\xff" * 100, b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 20000,
               b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /metrics HTTP/9.9\r\n\r\n",
               b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"]
    want = [400, 431, 405, 505, 404]
    for data, status in zip(garbage, want):
        out = raw_request(o.learner, data)
        if not out.startswith(f"HTTP/1.1 {status} ".encode()):
            raise Failure(f"{data[:40]!r}... answered {out[:60]!r}, expected {status}")
    steps = o.status()["env_steps"]
    wait_until(lambda: o.status()["env_steps"] > steps, 30, "training to go on")
    code, headers, body = http_get(o.learner, "/")
    if code != 200 or not headers.get("Content-Type", "").startswith("text/html"):
        raise Failure(f"/ answered {code} {headers.get('Content-Type')}")
    # Nothing on the page comes from elsewhere.
    if re.search(rb'(src|href)\s*=\s*["\']?(https?:)?//', body) or b"@import" in body:
        raise Failure("the status page references an external resource")


# ---- the status page in a real browser -------------------------------------------------------

CURVE = (17, 53, 897, 373)  # the SVG's box inside its 1 px border: left, top, right, bottom


def chromium(url, *extra):
    exe = need("chromium", "chromium")
    profile = tempfile.mkdtemp(prefix="fleetrl-chromium-")
    try:
        p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
                            f"--user-data-dir={profile}", "--window-size=1000,900",
                            "--hide-scrollbars", "--force-device-scale-factor=1",
                            "--virtual-time-budget=5000", *extra, url],
                           capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if p.returncode != 0:
        raise Failure(f"chromium exited {p.returncode}: {p.stderr.decode(errors='replace')[-1500:]}")
    return p.stdout.decode(errors="replace")


def png_rows(path, last_row):
    """Decodes an 8-bit RGB or RGBA PNG (as Chromium writes them) up to last_row: a list of
    rows, each a bytes object of width*channels. Filters per the PNG specification."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Failure(f"{path} is not a PNG")
    pos, idat, width = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise Failure(f"unexpected PNG format: depth {depth}, color type {ctype}")
            ch = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * ch
    rows, prev = [], bytearray(stride)
    for y in range(min(last_row + 1, height)):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(ch, stride):
                line[i] = (line[i] + line[i - ch]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                left = line[i - ch] if i >= ch else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - ch] if i >= ch else 0
                b = prev[i]
                c = prev[i - ch] if i >= ch else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return rows, ch


def curve_pixels(path):
    """The curve box's pixels as (r, g, b) tuples, row by row."""
    left, top, right, bottom = CURVE
    rows, ch = png_rows(path, bottom)
    return [tuple(rows[y][x * ch:x * ch + 3]) for y in range(top, bottom) for x in range(left, right)]


def near(px, rgb, tol=40):
    return all(abs(a - b) <= tol for a, b in zip(px, rgb))


def cells(html):
    """The text of each td or th in a piece of the DOM dump."""
    return [re.sub(r"<[^>]*>", "", c).strip()
            for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", html)]


def number(text, what):
    """A figure as the page formats it ("12,345", "0.41"); a failure for "-" or anything else."""
    try:
        return float(text.replace(",", ""))
    except ValueError:
        raise Failure(f"{what} shows {text!r}, not a number") from None


def table_rows(dom, table):
    m = re.search(rf'<table id="{table}">(.*?)</table>', dom, re.S)
    if not m:
        raise Failure(f"the page has no {table} table")
    body = re.search(r"<tbody>(.*?)</tbody>", m.group(1), re.S)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1) if body else "", re.S)
    if not rows:
        raise Failure(f"the {table} table is empty")
    return m.group(1), [cells(r) for r in rows]


def check_tables(dom, actors):
    """The actors table shows each actor's rate and policy lag, the replay table its figures,
    and the safety table the episodes and the robot's events, as rendered from /api/status."""
    table, _ = table_rows(dom, "actors")
    head = cells(re.search(r"<thead>(.*?)</thead>", table, re.S).group(1))
    rate_col, lag_col = head.index("steps/s"), head.index("policy lag")
    rates = {}
    for name in actors:
        m = re.search(rf'<tr data-actor="{name}">(.*?)</tr>', table, re.S)
        if not m:
            raise Failure(f"the actors table does not list {name}")
        row = cells(m.group(1))
        if len(row) != len(head) or row[0] != name:
            raise Failure(f"the actors table row of {name} is {row}, under {head}")
        rates[name] = number(row[rate_col], f"{name}'s steps/s")
        lag = number(row[lag_col], f"{name}'s policy lag")
        if rates[name] < 0 or lag < 0:
            raise Failure(f"{name}: steps/s {rates[name]}, policy lag {lag}")
    if not any(rates.values()):
        raise Failure(f"no actor shows a rate above 0: {rates}")
    _, replay = table_rows(dom, "replay")
    replay = dict(r[:2] for r in replay if len(r) >= 2)
    m = re.fullmatch(r"([\d,]+) of ([\d,]+) \(([\d.]+)%\)", replay.get("items", ""))
    if not m or number(m.group(1), "replay items") <= 0:
        raise Failure(f"the replay table's items: {replay.get('items')!r}")
    for key in ("inserted transitions", "sampled transitions", "max priority"):
        if number(replay.get(key, "-"), f"the replay table's {key}") <= 0:
            raise Failure(f"the replay table's {key} is {replay.get(key)!r}")
    _, safety = table_rows(dom, "safety")
    safety = dict(r[:2] for r in safety if len(r) >= 2)
    if number(safety.get("episodes", "-"), "the safety table's episodes") <= 0:
        raise Failure(f"the safety table counts no episodes: {safety}")
    for kind in SAFETY_KINDS:
        if number(safety.get(f"events: {kind}", "-"), f"the safety table's {kind} events") < 1:
            raise Failure(f"the safety table shows no {kind} event: {safety}")
    print(f"  actors table steps/s {rates}; replay {replay['items']}; safety events "
          f"{ {k: safety[f'events: {k}'] for k in SAFETY_KINDS} }")


def test_status_page_in_chromium():
    need("chromium", "chromium")
    o = fleet()
    o.safety_events()  # a robot and its e-stop, so that the safety section has events to show
    wait_until(lambda: o.status()["evals"] >= 1 and len(o.status()["curve"]["episodes"]) >= 5,
               90, "an evaluation and a few episodes")
    url = f"http://{o.learner}/"
    dom = chromium(url, "--dump-dom")
    m = re.search(r'<svg id="curve"[^>]*data-episodes="(\d+)" data-evals="(\d+)"', dom)
    if not m or int(m.group(1)) < 5 or int(m.group(2)) < 1:
        raise Failure(f"the curve was not drawn: {m.group(0) if m else dom[:500]}")
    raw = re.search(r'<polyline id="ep-raw" points="([^"]*)"', dom)
    if not raw or len(raw.group(1).split()) < 5:
        raise Failure("the episode-return polyline has fewer than 5 points")
    if len(re.findall(r'<circle class="ev"', dom)) < 1:
        raise Failure("no evaluation point on the curve")
    if "broker connected" not in dom:
        raise Failure("the page does not show the broker connection")
    check_tables(dom, o.actors)

    tmp = tempfile.mkdtemp(prefix="fleetrl-shots-")
    shots = []
    for i in range(2):
        if i:
            steps = o.status()["env_steps"]
            wait_until(lambda: o.status()["env_steps"] >= steps + 2000, 90,
                       "2000 more environment steps")
        path = os.path.join(tmp, f"status-{i}.png")
        chromium(url, f"--screenshot={path}")
        shots.append(curve_pixels(path))
    blue = [sum(near(px, (0x1f, 0x77, 0xb4)) for px in s) for s in shots]
    red = [sum(near(px, (0xd6, 0x27, 0x28)) for px in s) for s in shots]
    changed = sum(a != b for a, b in zip(shots[0], shots[1]))
    print(f"  curve box: moving-mean pixels {blue}, evaluation pixels {red}, "
          f"{changed} pixels changed between the shots")
    if min(blue) < 50 or min(red) < 10:
        raise Failure(f"the curve box is (nearly) blank: mean-line pixels {blue}, eval pixels {red}")
    if changed < 500:
        raise Failure(f"the curve did not change while training ran ({changed} pixels differ)")
    shutil.rmtree(tmp, ignore_errors=True)


# ---- flags and fleetrl run ------------------------------------------------------------------

def test_http_flag_is_checked():
    cases = [(["--http", "nonsense"], "--http: 'nonsense' has no port"),
             (["--http", "127.0.0.1:70000"], "outside the allowed range [0, 65535]"),
             (["--http=localhost:80"], "not a numeric IPv4 address")]
    for args, want in cases:
        p = subprocess.run([BIN, "learner", *args], capture_output=True, text=True, timeout=20)
        if p.returncode != 2 or want not in p.stderr:
            raise Failure(f"learner {args}: exit {p.returncode}, stderr {p.stderr!r}")
    env = dict(os.environ, FLEETRL_HTTP="1.2.3.4")
    p = subprocess.run([BIN, "broker"], capture_output=True, text=True, timeout=20, env=env)
    if p.returncode != 2 or "--http:" not in p.stderr:
        raise Failure(f"FLEETRL_HTTP=1.2.3.4 broker: exit {p.returncode}, {p.stderr!r}")
    # off: no server, no address.
    f = Fleet("http-off", env={"FLEETRL_HTTP": "off"})
    f.start_broker()
    kv = dict(l.strip().split("=", 1) for l in open(os.path.join(f.dir, "endpoints")) if "=" in l)
    if "http_address" in kv:
        raise Failure(f"--http off still wrote http_address={kv['http_address']}")
    f.stop("broker")


def test_run_gives_learner_and_broker_their_own_ports():
    runs = tempfile.mkdtemp(prefix="fleetrl-observe-run-")
    env = dict(os.environ, FLEETRL_HEARTBEAT="0.2")
    env.pop("FLEETRL_HTTP", None)
    p = subprocess.Popen([BIN, "run", "--actors", "1", f"--runs={runs}", "--run-name=obs",
                          "--no-progress", "--solve-return=1000000",
                          "--max-env-steps=100000000"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    run_dir = os.path.join(runs, "obs")
    try:
        def addresses():
            if p.poll() is not None:
                raise Failure(f"fleetrl run exited with {p.returncode}")
            try:
                learner = open(os.path.join(run_dir, "http.addr")).read().strip()
                kv = dict(l.strip().split("=", 1)
                          for l in open(os.path.join(run_dir, "endpoints")) if "=" in l)
            except FileNotFoundError:
                return None
            return (learner, kv["http_address"]) if learner and "http_address" in kv else None
        learner, broker = wait_until(addresses, 30, "both HTTP addresses of the run")
        if learner == broker:
            raise Failure(f"learner and broker share {learner}")
        for addr, want in ((learner, "fleetrl_learner_env_steps_total"),
                           (broker, "fleetrl_broker_peers")):
            code, _, body = http_get(addr, "/metrics")
            if code != 200 or want.encode() not in body:
                raise Failure(f"{addr}/metrics: {code}, no {want}")
        print(f"  learner on {learner}, broker on {broker}")
    finally:
        stop_process(p, "fleetrl run", signal.SIGINT, 60)
    shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    try:
        run_tests([test_metrics_match_the_store, test_promtool_accepts_the_text,
                   test_prometheus_scrapes_the_fleet, test_hostile_http_leaves_training_running,
                   test_status_page_in_chromium, test_http_flag_is_checked,
                   test_run_gives_learner_and_broker_their_own_ports])
    finally:
        if _fleet is not None:
            _fleet.f.kill_all()
