"""The deployment cannot drift from the code: Debian's docker-compose validates
docker-compose.yml, then each service's command and environment from it runs natively on
loopback (service host names mapped to 127.0.0.1, the learner's /data volume to a temp folder),
each service's healthcheck passes against its native process, and the fleet trains. The ports
that must agree (endpoints, published ports, healthcheck URLs, FLEETRL_HTTP) are compared, and
.dockerignore keeps keys, runs and build products out of the build context. The Kubernetes
manifests in deploy/k8s/ are checked against the same binary: every role they start exists and
every FLEETRL_* variable they set is a flag's twin for that role; every pod's user can read the
secrets it mounts, and the learner's StatefulSet is governed by a headless Service."""
import os
import re
import shutil
import subprocess
import tempfile

import yaml

from harness import BIN, Failure, free_port, run_tests, stop_process, wait_until

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def compose_config():
    if not shutil.which("docker-compose"):
        return None
    p = subprocess.run(["docker-compose", "-f", os.path.join(ROOT, "docker-compose.yml"),
                        "config"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise Failure(f"docker-compose config rejected the file:\n{p.stderr}")
    return yaml.safe_load(p.stdout)


def env_twins(role):
    """The FLEETRL_* variables `fleetrl ROLE --help` lists for the role."""
    p = subprocess.run([BIN, role, "--help"], capture_output=True, text=True, timeout=30)
    names = set(re.findall(r"FLEETRL_[A-Z0-9_]+", p.stdout + p.stderr))
    if not names:
        raise Failure(f"`fleetrl {role} --help` lists no FLEETRL_ variables:\n{p.stdout}{p.stderr}")
    return names


def check_env_names(where, role, names):
    unknown = sorted(set(names) - env_twins(role))
    if unknown:
        raise Failure(f"{where} sets {', '.join(unknown)}, which `fleetrl {role}` does not read")


def native_env(env, data_dir, keys_dir):
    """The service's environment with compose-only names made local: service hosts are
    loopback, the learner's volume and the secrets are temp folders, HTTP ports are free ones."""
    out = {}
    for k, v in env.items():
        v = str(v).replace("tcp://broker:", "tcp://127.0.0.1:").replace("tcp://*:", "tcp://127.0.0.1:")
        v = v.replace("/data/", data_dir + "/").replace("/run/secrets/", keys_dir + "/")
        if k == "FLEETRL_HTTP":
            v = "127.0.0.1:0"
        out[k] = v
    return out


def make_keys(raw, keys_dir):
    """The keys the compose file's secrets name, made as the README says: `fleetrl keygen` for
    each, their allowlist lines collected in allow.txt."""
    names = sorted({os.path.splitext(n)[0] for n in raw.get("secrets", {}) if n.endswith(".key")})
    lines = []
    for n in names:
        p = subprocess.run([BIN, "keygen", n, "--out", keys_dir], capture_output=True, text=True,
                           timeout=30)
        if p.returncode != 0:
            raise Failure(f"fleetrl keygen {n}: {p.stderr}")
        lines.append(p.stdout.strip())
    with open(os.path.join(keys_dir, "allow.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    for n, spec in raw.get("secrets", {}).items():
        if not os.path.exists(os.path.join(keys_dir, os.path.basename(spec["file"]))):
            raise Failure(f"secret {n} ({spec['file']}) is not among the files the README makes")


def endpoint(value):
    """(host, port) of a tcp:// endpoint."""
    m = re.fullmatch(r"tcp://(.+):(\d+)", value)
    if not m:
        raise Failure(f"{value!r} is not a tcp://HOST:PORT endpoint")
    return m.group(1), int(m.group(2))


def published(svc):
    """(host IP, host port, container port) of each port a service publishes, from the short
    ("[IP:]HOST:CONTAINER[/tcp]") or the long ({published, target}) syntax."""
    out = []
    for p in svc.get("ports", []):
        if isinstance(p, dict):
            out.append((p.get("host_ip", ""), int(p["published"]), int(p["target"])))
            continue
        parts = str(p).split("/")[0].split(":")
        out.append((parts[0] if len(parts) == 3 else "",
                    int(parts[-2]) if len(parts) > 1 else None, int(parts[-1])))
    return out


def healthcheck_argv(name, svc):
    test = svc.get("healthcheck", {}).get("test")
    if not test:
        raise Failure(f"compose service {name} has no healthcheck")
    if isinstance(test, str):
        return ["sh", "-c", test]
    if test[0] == "CMD":
        return list(test[1:])
    if test[0] == "CMD-SHELL":
        return ["sh", "-c", test[1]]
    raise Failure(f"compose service {name}: healthcheck test {test!r} is neither CMD nor CMD-SHELL")


def healthcheck_urls(name, svc):
    """The host:port of every URL in a service's healthcheck command."""
    urls = re.findall(r"https?://([^/\s\"']+)", " ".join(healthcheck_argv(name, svc)))
    if not urls:
        raise Failure(f"compose service {name}: the healthcheck names no URL")
    return urls


def check_wiring(services):
    """Ports and addresses that must agree across services: where the broker binds, where the
    learner and actors connect and what the broker publishes; the port each HTTP service serves
    on, its healthcheck URL and its published port; the actors' healthcheck port."""
    env = {n: {k: str(v) for k, v in s.get("environment", {}).items()} for n, s in services.items()}
    for name, svc in services.items():
        healthcheck_argv(name, svc)
    _, actor_port = endpoint(env["broker"]["FLEETRL_ACTOR_ENDPOINT"])
    _, learner_port = endpoint(env["broker"]["FLEETRL_LEARNER_ENDPOINT"])
    for name, var, port in (("actor", "FLEETRL_ACTOR_ENDPOINT", actor_port),
                            ("learner", "FLEETRL_LEARNER_ENDPOINT", learner_port)):
        if endpoint(env[name][var]) != ("broker", port):
            raise Failure(f"compose service {name} connects to {env[name][var]}, the broker binds "
                          f"port {port}")
    if actor_port not in [c for _, _, c in published(services["broker"])]:
        raise Failure(f"the broker does not publish its actor port {actor_port} for robots "
                      f"(publishes {published(services['broker'])})")
    serves = {"broker": {actor_port, learner_port}, "learner": set()}
    for name in ("broker", "learner"):
        host, port = env[name]["FLEETRL_HTTP"].rsplit(":", 1)
        if host not in ("0.0.0.0", "127.0.0.1"):
            raise Failure(f"compose service {name}: FLEETRL_HTTP {host} is not reachable on the "
                          f"container's loopback, where its healthcheck asks")
        for url in healthcheck_urls(name, services[name]):
            if url not in (f"127.0.0.1:{port}", f"localhost:{port}"):
                raise Failure(f"compose service {name}'s healthcheck asks {url}, it serves HTTP on "
                              f"port {port} (FLEETRL_HTTP)")
        serves[name].add(int(port))
    # Prometheus: --web.listen-address, else its default.
    listen = next((a.split("=", 1)[1] for a in services["prometheus"].get("command", [])
                   if a.startswith("--web.listen-address=")), "0.0.0.0:9090")
    prom_port = int(listen.rsplit(":", 1)[1])
    for url in healthcheck_urls("prometheus", services["prometheus"]):
        if url not in (f"127.0.0.1:{prom_port}", f"localhost:{prom_port}"):
            raise Failure(f"prometheus's healthcheck asks {url}, it listens on port {prom_port}")
    serves["prometheus"] = {prom_port}
    for name, ports in serves.items():
        for _, _, c in published(services[name]):
            if c not in ports:
                raise Failure(f"compose service {name} publishes container port {c}, which it "
                              f"does not serve (it serves {sorted(ports)})")
    # Actors: an established connection to the broker's actor port in /proc/net/tcp (hex).
    m = re.search(r":([0-9A-F]{4}) 01 ", " ".join(healthcheck_argv("actor", services["actor"])))
    if not m or int(m.group(1), 16) != actor_port:
        raise Failure(f"the actor healthcheck does not look for a connection to the broker's port "
                      f"{actor_port} ({actor_port:04X} in /proc/net/tcp)")


def check_healthy(name, svc, native, proc, timeout=60):
    """Runs the service's healthcheck command on this host until it succeeds, with its
    addresses replaced by the native process's (native: {compose host:port: native one})."""
    argv = healthcheck_argv(name, svc)
    for a, b in native.items():
        argv = [arg.replace(a, b) for arg in argv]
    last = []

    def ok():
        if proc.poll() is not None:
            raise Failure(f"{name} exited ({proc.returncode}) before its healthcheck passed")
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        last[:] = [p.returncode, p.stdout + p.stderr]
        return p.returncode == 0
    try:
        wait_until(ok, timeout, f"the {name} healthcheck {argv}", interval=0.2)
    except Failure as e:
        code, out = last or (None, "")
        raise Failure(f"{e}; last exit {code}: {out[-500:]}")


def test_compose_file_runs_natively():
    cfg = compose_config()
    if cfg is None:
        print("  skipped: docker-compose is not installed (make deps installs it)")
        return
    services = cfg["services"]
    for name in ("broker", "learner", "actor"):
        if name not in services:
            raise Failure(f"compose file lacks the {name} service")
    if services["actor"].get("deploy", {}).get("replicas", 0) < 1:
        raise Failure("actor service has no deploy.replicas")
    check_wiring(services)
    # Settings shared through the x-common-env anchor may be for other roles; each service's
    # own must be read by its role.
    raw = yaml.safe_load(open(os.path.join(ROOT, "docker-compose.yml")))
    common = set(raw.get("x-common-env", {}))
    for name in ("broker", "learner", "actor"):
        env_names = [k for k in services[name].get("environment", {})
                     if k.startswith("FLEETRL_") and k not in common]
        check_env_names(f"compose service {name}", services[name]["command"][0], env_names)
    # Prometheus scrapes the ports the services serve on.
    prom = yaml.safe_load(open(os.path.join(ROOT, "deploy", "prometheus.yml")))
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    for name in ("broker", "learner"):
        port = str(services[name]["environment"]["FLEETRL_HTTP"]).rsplit(":", 1)[1]
        if f"{name}:{port}" not in targets:
            raise Failure(f"deploy/prometheus.yml does not scrape {name}:{port}")
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "config",
                            os.path.join(ROOT, "deploy", "prometheus.yml")],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise Failure(f"promtool rejects deploy/prometheus.yml:\n{p.stdout}{p.stderr}")
    data = tempfile.mkdtemp(prefix="fleetrl-compose-")
    keys = tempfile.mkdtemp(prefix="fleetrl-compose-keys-")
    make_keys(raw, keys)
    procs = []
    logs = {}
    try:
        # Each service's healthcheck passes against its native process, as each starts: the
        # learner before any actor (so it waits, untrained), then the actors.
        http_addr = {"broker": os.path.join(data, "broker.http"),
                     "learner": os.path.join(data, "run", "http.addr")}
        for name, count in (("broker", 1), ("learner", 1), ("actor", 2)):
            svc = services[name]
            env = dict(os.environ)
            env.update(native_env(svc.get("environment", {}), data, keys))
            if name == "broker":
                env["FLEETRL_HTTP_ADDR_FILE"] = http_addr["broker"]
            for i in range(count):
                role = f"{name}-{i}"
                logs[role] = os.path.join(data, f"{role}.log")
                extra = ["--max-env-steps=3000", "--eval-period=1000"] if name == "learner" else []
                procs.append((role, subprocess.Popen(
                    [BIN, *svc["command"], *extra], env=env, stdout=subprocess.DEVNULL,
                    stderr=open(logs[role], "w"), stdin=subprocess.DEVNULL)))
            proc = procs[-1][1]
            native = {}
            if name in http_addr:
                def addr(path=http_addr[name], proc=proc, role=role):
                    if proc.poll() is not None:
                        raise Failure(f"{role} exited:\n" + open(logs[role]).read()[-2000:])
                    try:
                        line = open(path).read()
                    except FileNotFoundError:
                        return None
                    return line.strip() if line.endswith("\n") else None
                port = str(svc["environment"]["FLEETRL_HTTP"]).rsplit(":", 1)[1]
                got = wait_until(addr, 30, f"{name}'s HTTP address")
                native = {f"127.0.0.1:{port}": got, f"localhost:{port}": got}
            check_healthy(name, svc, native, proc)
        learner = dict(procs)["learner-0"]
        # The learner ends the run at its budget and tells everyone to stop.
        wait_until(lambda: learner.poll() is not None, 180, "the compose learner to finish")
        if learner.returncode not in (0, 4):
            raise Failure(f"learner exit {learner.returncode}:\n" + open(logs["learner-0"]).read()[-2000:])
        summary = os.path.join(data, "run", "summary.json")
        if not os.path.exists(summary):
            raise Failure("the learner wrote no summary.json under the compose volume path")
        for role, p in procs:
            if role.startswith("actor"):
                wait_until(lambda p=p: p.poll() is not None, 30, f"{role} to stop after shutdown")
        broker = dict(procs)["broker-0"]
        if broker.poll() is not None:
            raise Failure("the broker exited when the learner's run ended; it should keep serving")
        broker.terminate()
        wait_until(lambda: broker.poll() is not None, 30, "the broker to stop on SIGTERM")
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()


def test_compose_prometheus_runs_natively():
    """The compose Prometheus service's command and configuration run on Debian's prometheus
    (same version as the image), and its healthcheck passes against it."""
    cfg = compose_config()
    if cfg is None:
        print("  skipped: docker-compose is not installed (make deps installs it)")
        return
    prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.path.exists(prometheus):
        raise Failure("prometheus is not installed: install the Debian package 'prometheus' "
                      "(make deps installs it)")
    svc = cfg["services"]["prometheus"]
    tmp = tempfile.mkdtemp(prefix="fleetrl-compose-prometheus-")
    # Volumes: bind mounts are used in place, named volumes become temp folders.
    mounts = {}
    for v in svc.get("volumes", []):
        src, dst = (v["source"], v["target"]) if isinstance(v, dict) else v.split(":")[:2]
        if not os.path.isabs(src):
            src = os.path.join(tmp, src)
            os.makedirs(src, exist_ok=True)
        mounts[dst] = src
    args = []
    for a in svc.get("command", []):
        for dst, src in mounts.items():
            a = a.replace("=" + dst, "=" + src)
        if not a.startswith("--web.listen-address="):
            args.append(a)
    port = free_port()
    log = open(os.path.join(tmp, "prometheus.log"), "wb")
    p = subprocess.Popen([prometheus, *args, f"--web.listen-address=127.0.0.1:{port}"],
                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        listen = next((a.split("=", 1)[1] for a in svc.get("command", [])
                       if a.startswith("--web.listen-address=")), "0.0.0.0:9090")
        cport = listen.rsplit(":", 1)[1]
        try:
            check_healthy("prometheus", svc, {f"127.0.0.1:{cport}": f"127.0.0.1:{port}",
                                              f"localhost:{cport}": f"127.0.0.1:{port}"}, p)
        except Failure as e:
            raise Failure(f"{e}\n" + open(log.name, errors="replace").read()[-2000:])
    finally:
        stop_process(p, "prometheus", strict=False)
        shutil.rmtree(tmp, ignore_errors=True)


def dockerignore_rules():
    """(negated, regex) per .dockerignore pattern, with Docker's semantics: patterns are
    relative to the context root, '*' and '?' stop at '/', '**' spans directories, and a
    pattern that matches a directory excludes everything under it; the last match wins."""
    rules = []
    for line in open(os.path.join(ROOT, ".dockerignore")):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = os.path.normpath(line.lstrip("!").strip("/"))
        rx, i = "", 0
        while i < len(pat):
            if pat.startswith("**/", i):
                rx, i = rx + "(?:.*/)?", i + 3
            elif pat.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif pat[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif pat[i] == "?":
                rx, i = rx + "[^/]", i + 1
            else:
                rx, i = rx + re.escape(pat[i]), i + 1
        rules.append((neg, re.compile(rx + "(?:/.*)?")))
    return rules


def ignored(rules, path):
    out = False
    for neg, rx in rules:
        if rx.fullmatch(path):
            out = not neg
    return out


def test_dockerignore_keeps_secrets_out():
    """Keys, run folders, build products and version control never enter the build context;
    every source file the image builds and tests from does."""
    if not os.path.exists(os.path.join(ROOT, ".dockerignore")):
        raise Failure("there is no .dockerignore: `docker build .` would send keys/ and runs/")
    rules = dockerignore_rules()
    for path in ("keys/broker.key", "keys/allow.txt", "deploy/lab/robot.key", "runs/r/replay.db",
                 "runs/r/replay.db-wal", "build/fleetrl", "build/lib/nn.o", "build-san/fleetrl",
                 "build-fuzz/msg/fuzz", ".git/config", "tests/integration/__pycache__/x.pyc"):
        if not ignored(rules, path):
            raise Failure(f".dockerignore lets {path} into the build context")
    p = subprocess.run(["git", "-C", ROOT, "ls-files"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        print("  not a git checkout: the sources' side is not checked")
        return
    dropped = [f for f in p.stdout.splitlines() if ignored(rules, f)]
    if dropped:
        raise Failure(f".dockerignore drops sources the image builds from: {dropped[:5]}")


def test_k8s_manifests():
    path = os.path.join(ROOT, "deploy", "k8s", "fleetrl.yaml")
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    config = by_kind.get("ConfigMap", {}).get("fleetrl", {}).get("data", {})
    workloads = {**by_kind.get("Deployment", {}), **by_kind.get("StatefulSet", {})}
    for name in ("broker", "learner", "actor"):
        if name not in workloads:
            raise Failure(f"deploy/k8s/fleetrl.yaml has no {name} workload")
    if workloads["learner"]["kind"] != "StatefulSet" or workloads["learner"]["spec"]["replicas"] != 1:
        raise Failure("the learner must be a StatefulSet of exactly 1 (one SQLite store)")
    if not workloads["learner"]["spec"].get("volumeClaimTemplates"):
        raise Failure("the learner has no persistent volume for its store")
    # The shared ConfigMap may hold settings only some roles read, but each must be read by one.
    unknown = sorted(set(config) - env_twins("broker") - env_twins("learner") - env_twins("actor"))
    if unknown:
        raise Failure(f"the fleetrl ConfigMap sets {', '.join(unknown)}, which no role reads")
    services = by_kind.get("Service", {})
    for svc in services.values():
        sel = svc["spec"]["selector"]
        if not any(w["spec"]["selector"]["matchLabels"] == sel for w in workloads.values()):
            raise Failure(f"Service {svc['metadata']['name']} selects no workload")
    for name, w in workloads.items():
        pod = w["spec"]["template"]["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            raise Failure(f"{name} does not run as a non-root user")
        (c,) = pod["containers"]
        role = c["args"][0]
        names = [e["name"] for e in c.get("env", [])]
        check_env_names(f"k8s workload {name}", role, [n for n in names if n.startswith("FLEETRL_")])
        mounts = {m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"] for v in pod.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        if mounts - volumes - claims:
            raise Failure(f"{name} mounts undeclared volumes {mounts - volumes - claims}")
        check_secrets_readable(name, pod, c)
    # A StatefulSet's serviceName must name a headless Service (its pods' DNS names).
    for name, w in by_kind.get("StatefulSet", {}).items():
        svc = services.get(w["spec"].get("serviceName"))
        if svc is None:
            raise Failure(f"StatefulSet {name}'s serviceName {w['spec'].get('serviceName')!r} "
                          f"names no Service in the file")
        if svc["spec"].get("clusterIP") != "None":
            raise Failure(f"StatefulSet {name}'s governing Service {svc['metadata']['name']} "
                          f"is not headless (clusterIP: None)")
        if svc["spec"]["selector"] != w["spec"]["selector"]["matchLabels"]:
            raise Failure(f"Service {svc['metadata']['name']} does not select StatefulSet {name}")


def check_secrets_readable(name, pod, container):
    """The container's user can read every secret it mounts. Secret files belong to root; the
    kubelet hands them to the pod's fsGroup with group read added when there is one, so
    otherwise the file mode must let others read."""
    pod_ctx = pod.get("securityContext", {})
    ctx = {**pod_ctx, **container.get("securityContext", {})}
    uid = ctx.get("runAsUser")
    if uid is None:
        raise Failure(f"{name} sets no runAsUser; the image's user must be stated to check "
                      f"what it can read")
    secrets = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    for m in container.get("volumeMounts", []):
        sec = secrets.get(m["name"])
        if sec is None:
            continue
        modes = [sec.get("defaultMode", 0o644)] + [i["mode"] for i in sec.get("items", [])
                                                   if "mode" in i]
        if uid == 0 or pod_ctx.get("fsGroup") is not None:
            continue
        unreadable = [oct(mode) for mode in modes if not mode & 0o004]
        if unreadable:
            raise Failure(f"{name} runs as uid {uid} without an fsGroup, and secret volume "
                          f"{m['name']} has mode {', '.join(unreadable)}: the files belong to "
                          f"root, so uid {uid} cannot read them (set fsGroup, or a mode "
                          f"readable by others)")


if __name__ == "__main__":
    run_tests([test_k8s_manifests, test_dockerignore_keeps_secrets_out,
               test_compose_file_runs_natively, test_compose_prometheus_runs_natively])
