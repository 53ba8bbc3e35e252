"""The deployment cannot drift from the code: Debian's docker-compose validates
docker-compose.yml, then each service's command and environment from it runs natively on
loopback (service host names mapped to 127.0.0.1, the learner's /data volume to a temp folder)
and the fleet trains."""
import os
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


def native_env(env, data_dir):
    """The service's environment with compose-only names made local."""
    out = {}
    for k, v in env.items():
        v = str(v).replace("tcp://broker:", "tcp://127.0.0.1:").replace("tcp://*:", "tcp://127.0.0.1:")
        v = v.replace("/data/", data_dir + "/")
        out[k] = v
    return out


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
    data = tempfile.mkdtemp(prefix="fleetrl-compose-")
    procs = []
    logs = {}
    try:
        for name, count in (("broker", 1), ("learner", 1), ("actor", 2)):
            svc = services[name]
            env = dict(os.environ)
            env.update(native_env(svc.get("environment", {}), data))
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


if __name__ == "__main__":
    run_tests([test_compose_file_runs_natively])
