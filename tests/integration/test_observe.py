"""Observability end to end: a real fleet on loopback scraped by Debian's real Prometheus (its
parser validates our exposition format; its query API must show training progress), /metrics
values checked against the learner's SQLite store, the status page rendered by headless
Chromium (the curve has points, the actors table lists the actors, screenshots show the curve
drawn and changing), hostile HTTP input against the running learner, the --http flags, and
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
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

from harness import BIN, Failure, Fleet, run_tests, wait_until


def need(tool, package):
    """The path of an installed tool, or a failure naming the Debian package to install."""
    path = shutil.which(tool) or (f"/usr/bin/{tool}" if os.path.exists(f"/usr/bin/{tool}") else None)
    if not path:
        raise Failure(f"{tool} is not installed: install the Debian package '{package}' "
                      f"(make deps installs it)")
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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
    reaches its solve threshold) with frequent evaluations, and two actors."""

    def __init__(self, name):
        self.f = Fleet(name, env={"FLEETRL_HTTP": "127.0.0.1:0"})
        self.f.start_broker()
        self.f.start_learner("--max-env-steps=100000000", "--solve-return=1000000",
                             "--eval-period=1000", "--eval-episodes=3", "--min-replay=200")
        self.f.start_actor(0, 2)
        self.f.start_actor(1, 2)
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
    b = parse_metrics(o.metrics(o.broker))
    if b.get(("fleetrl_broker_peers", frozenset({("role", "actor")}))) != 2:
        raise Failure(f"broker reports {b.get(('fleetrl_broker_peers', frozenset({('role', 'actor')})))} live actors, expected 2")
    if b.get(("fleetrl_broker_peers", frozenset({("role", "learner")}))) != 1:
        raise Failure("broker does not report its learner")
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


def test_prometheus_scrapes_the_fleet():
    prometheus = need("prometheus", "prometheus")
    o = fleet()
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
        # Labels survive the round trip: one series per actor, on both processes.
        for metric in ("fleetrl_learner_actor_inserted_transitions_total",
                       "fleetrl_broker_actor_forwarded_batches_total"):
            actors = sorted(r["metric"].get("actor") for r in query(metric))
            if actors != ["actor-0", "actor-1"]:
                raise Failure(f"{metric} has series for {actors}")
        r = query('fleetrl_broker_peers{role="actor"}')
        if not r or float(r[0]["value"][1]) != 2:
            raise Failure(f"fleetrl_broker_peers{{role=\"actor\"}} is {r}")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
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


def test_status_page_in_chromium():
    need("chromium", "chromium")
    o = fleet()
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
    for name in ("actor-0", "actor-1"):
        if not re.search(rf'<tr data-actor="{name}"><td>{name}</td>', dom):
            raise Failure(f"the actors table does not list {name}")
    if "broker connected" not in dom:
        raise Failure("the page does not show the broker connection")

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
        p.send_signal(signal.SIGINT)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            raise Failure("fleetrl run did not stop within 60 s of SIGINT")
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
