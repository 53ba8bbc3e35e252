#!/usr/bin/env python3
"""A robot emulator on the Python client: the template for a robot whose program is Python.

A three-joint, torque-driven, damped arm (the dynamics of the built-in "joint-tracking"
environment: q'' = 10 a - 0.1 q', dt 0.01 s, observed as q(3), q'(3), target(3)) runs in a
fixed-rate loop on absolute deadlines; the client acts with the numpy policy from the
learner's parameters (--algo) and records every step. Replace `Arm` with the robot's drivers.

  python3 actor/python/emulate.py --endpoint tcp://broker:5555 --name arm-7 --task pendulum-sac \
      --algo sac --hidden 256 256 --limits arm.limits

With --policy FILE (a policy.bin trained on the arm's task, e.g. env joint-tracking) it evaluates
that policy offline (no --endpoint) for --episodes episodes and prints the mean return.
"""
import argparse
import math
import os
import signal
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fleetrl_client import Client  # noqa: E402


class Arm:
    """Stands in for the hardware: three damped joints driven by torque 10 a, a target pose."""
    DT, LIMIT, VLIMIT = 0.01, math.pi, 5.0

    def __init__(self, rng, noise):
        self.rng, self.noise = rng, noise
        self.reset()

    def reset(self):
        self.q = self.rng.normal(0, 0.1, 3)
        self.qd = self.rng.normal(0, 0.1, 3)
        self.target = self.rng.uniform(-2.5, 2.5, 3)
        self.t = 0
        return self.read()

    def read(self):
        true = np.concatenate([self.q, self.qd, self.target])
        return (true + self.rng.normal(0, self.noise, 9) * np.r_[np.ones(6), np.zeros(3)]).astype(np.float32)

    def apply(self, a):
        a = np.clip(a, -1, 1)
        err0 = np.linalg.norm(self.target - self.q)
        qdd = 10.0 * a - 0.1 * self.qd
        self.qd = self.qd + self.DT * qdd
        self.q = self.q + self.DT * self.qd
        self.t += 1
        err = np.linalg.norm(self.target - self.q)
        violations = int(np.sum(np.abs(self.q) > self.LIMIT) + np.sum(np.abs(self.qd) > self.VLIMIT))
        reward = -err - 0.01 * np.linalg.norm(a) + (0.1 if err < err0 else 0.0) - 10.0 * violations
        return self.read(), float(reward), violations > 0, self.t >= 200, err < 0.05, violations


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoint", help="the broker; without it only --policy runs (offline)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--policy", help="act with this policy file (deterministic, never replaced)")
    ap.add_argument("--episodes", type=int, default=0, help="stop after this many episodes (0: never)")
    ap.add_argument("--task", default="pendulum-sac")
    ap.add_argument("--algo", default="sac", help="dqn|sac|td3, or 'none' to act with a scripted controller")
    ap.add_argument("--hidden", type=int, nargs=2, default=(256, 256))
    ap.add_argument("--limits")
    ap.add_argument("--rate-hz", type=float, default=50.0)
    ap.add_argument("--deadline", type=float, default=0.0, help="s; 0: one period")
    ap.add_argument("--duration", type=float, default=0.0)
    ap.add_argument("--sensor-noise", type=float, default=0.01)
    ap.add_argument("--heartbeat", type=float, default=0.5)
    ap.add_argument("--max-broker-silence", type=float, default=1.5)
    ap.add_argument("--demonstration", action="store_true")
    ap.add_argument("--ack-log")
    ap.add_argument("--curve-secret", help="this robot's secret key file (fleetrl keygen)")
    ap.add_argument("--broker-key", help="the broker's public key file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--action-history", type=int, default=0,
                    help="the learner's --action-history (a policy file brings its own)")
    ap.add_argument("--obs-history", type=int, default=0,
                    help="the learner's --obs-history (a policy file brings its own)")
    args = ap.parse_args()
    if not args.endpoint and not args.policy:
        ap.error("--endpoint is required unless --policy runs the robot offline")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    algo = None if args.algo == "none" or args.policy else args.algo
    client = Client(args.endpoint, args.name, args.task, obs_dim=9, act_dim=3, act_low=[-1] * 3,
                    act_high=[1] * 3, limits=args.limits, algo=algo, hidden=tuple(args.hidden),
                    demonstration=args.demonstration, heartbeat=args.heartbeat,
                    max_broker_silence=args.max_broker_silence, ack_log=args.ack_log, seed=args.seed,
                    curve_secret=args.curve_secret, broker_key=args.broker_key, policy=args.policy,
                    action_history=args.action_history, obs_history=args.obs_history)
    rng = np.random.default_rng(args.seed)
    arm = Arm(rng, args.sensor_noise)
    period = 1.0 / args.rate_hz
    deadline = args.deadline or period
    obs = arm.reset()
    client.reset(obs)
    start = nxt = time.monotonic()
    missed = iterations = episodes = 0
    last_safe = False
    while not stop and not (args.duration and time.monotonic() - start >= args.duration):
        release = nxt
        if algo is None and not args.policy:
            # A scripted PD controller toward the target: the caller decides, the shield guards.
            command = np.clip(2.0 * (obs[6:9] - obs[0:3]) - 0.5 * obs[3:6], -1, 1)
            action, safe = client.act(obs, action=command)
        else:
            action, safe = client.act(obs)
        if safe != last_safe:
            what = "SAFE ACTION" if safe else "POLICY ACTION"
            print(f"{what} applied at wall {time.time():.6f} ({client.status()['reason']})",
                  file=sys.stderr, flush=True)
            last_safe = safe
        obs, reward, terminal, truncated, success, violations = arm.apply(action)
        client.record(obs, action, reward, terminal, truncated,
                      {"success": success, "violations": violations})
        iterations += 1
        if terminal or truncated:
            episodes += 1
            if args.episodes and episodes >= args.episodes:
                break
            obs = arm.reset()
            client.reset(obs)
        if time.monotonic() - release > deadline:
            missed += 1
        nxt += period
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif -delay > deadline:
            # Behind by more than the deadline: those releases are dropped and counted; a
            # smaller lag is caught up, each late iteration still held to its deadline.
            skipped = int(-delay / period)
            missed += skipped
            nxt += skipped * period
    st = client.status()
    print(f"emulator stopping: {iterations} iterations, {episodes} episodes, missed deadlines "
          f"{missed} in total; params v{st['params_version']}, steps {st['steps']}, acked batches "
          f"{st['acked_batches']}, outbox {st['outbox']}, safe mode {st['safe_mode']}",
          file=sys.stderr, flush=True)
    print(f"robot {args.name}, {st['episodes']} episodes: mean return {st['mean_return']:.2f} ± "
          f"{st['std_return']:.2f}, mean length {st['mean_length']:.1f}, success "
          f"{100.0 * st['successes'] / max(st['episodes'], 1):.1f}%, violations {st['violations']}; shield: "
          f"clipped {st['clipped']}, barrier {st['barrier']}, safe actions {st['safe_actions']}", flush=True)
    client.close()


if __name__ == "__main__":
    main()
