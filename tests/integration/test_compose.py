"""The deployment cannot drift from the code: Debian's docker-compose validates
docker-compose.yml, then each service's command and environment from it runs natively on
loopback (service host names mapped to 127.0.0.1, the learner's /data volume to a temp folder)
and the fleet trains. The Kubernetes manifests in deploy/k8s/ are checked against the same
binary: every role they start exists and every FLEETRL_* variable they set is a flag's twin
for that role; every pod's user can read the secrets it mounts, and the learner's StatefulSet
is governed by a headless Service."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

from harness import BIN, Failure, run_tests, wait_until

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
        for name, count in (("broker", 1), ("learner", 1), ("actor", 2)):
            svc = services[name]
            env = dict(os.environ)
            env.update(native_env(svc.get("environment", {}), data, keys))
            for i in range(count):
                role = f"{name}-{i}"
                logs[role] = os.path.join(data, f"{role}.log")
                extra = ["--max-env-steps=3000", "--eval-period=1000"] if name == "learner" else []
                procs.append((role, subprocess.Popen(
                    [BIN, *svc["command"], *extra], env=env, stdout=subprocess.DEVNULL,
                    stderr=open(logs[role], "w"), stdin=subprocess.DEVNULL)))
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
            raise Failure(f"StatefulSet {name}'s governing Service {svc['metadata']['name']} is not "
                          f"headless (clusterIP: None)")
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
    run_tests([test_k8s_manifests, test_compose_file_runs_natively])
