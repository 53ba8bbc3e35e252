"""fleetrl_client: a robot driven from Python joins a fleetrl fleet as an actor.

The same calls as the C library (actor/client.h): Client(...) connects, act(obs) returns a
shielded action, record(obs, action, reward, terminal, truncated, info) hands a step over,
status() reports, close() stops. act() and record() never wait on the network: a background
thread owns the ZeroMQ socket and does Hello, n-step transitions and batching, shipping with an
outbox of unacknowledged batches (resent after a timeout or a reconnect), parameter updates
(a new weight set is built aside and swapped in by one reference assignment), heartbeats, and
e-stop/resume. The experience lands in the learner's SQLite store under the robot's name, like
any actor's.

Acting: with `algo` set ("dqn", "sac" or "td3", and the learner's hidden sizes) act() computes
the action in numpy from the latest Params broadcast (the parameter layouts of lib/qnet.h and
lib/mlp.h; SAC samples its squashed Gaussian or takes the mean, TD3 adds Gaussian noise, DQN is
epsilon-greedy), scaled to the task's action bounds. With algo=None the robot's own controller
decides: pass its command as act(obs, action=command) and the client only applies the shield and
the watchdog. Either way the shield (the limits-file format of lib/shield.h: bounds, rate,
joint barrier, safe action) and the watchdog (e-stop, broker silence, parameter age, non-finite
observations) stand between the decision and the robot.

Wire format: the messages of schema/fleetrl.fbs through code that `flatc --python` generates;
it is generated once into a cache folder ($FLEETRL_PYGEN, else ~/.cache/fleetrl/pygen-<hash>)
from the schema at `schema` ($FLEETRL_SCHEMA, else ../../schema/fleetrl.fbs next to this file,
else /usr/local/share/fleetrl/fleetrl.fbs). Needs python3-zmq, python3-numpy,
python3-flatbuffers and flatc (flatbuffers-compiler) the first time. With curve_secret and
broker_key (the files of `fleetrl keygen`) the connection is CURVE-encrypted and authenticated,
as the C processes' --curve-secret/--broker-key.
"""
import importlib
import math
import os
import queue
import re
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import zmq
import zmq.utils.z85

SCHEMA_VERSION = 1
FILE_ID = b"FRL1"
HELLO_AGAIN = "unknown peer"
MAX_MESSAGE = 64 << 20

# Safety event kinds (SafetyKind in schema/fleetrl.fbs).
CLIP, BARRIER, SAFE_MODE_ENTER, SAFE_MODE_EXIT, ESTOP, RESUME = range(6)
# Watchdog causes (lib/watchdog.h).
WD_ESTOP, WD_BROKER, WD_PARAMS, WD_OBS = 1, 2, 4, 8
_CAUSE_WORDS = ((WD_ESTOP, "e-stop"), (WD_BROKER, "broker silent"), (WD_PARAMS, "parameters stale"),
                (WD_OBS, "observation not finite"))


def describe_causes(causes):
    words = [w for bit, w in _CAUSE_WORDS if causes & bit]
    return ", ".join(words) if words else "healthy"


CURVE_SECRET_HEADER = "# fleetrl CURVE secret key: keep it private"


def load_curve_keys(secret_path, broker_key_path):
    """(secret, public, server) Z85 keys from this robot's NAME.key and the broker's NAME.pub,
    the files `fleetrl keygen` writes (lib/curve.h). Raises ValueError naming the file."""
    def read(path):
        with open(path, "rb") as f:
            data = f.read(4097)
        if len(data) > 4096:
            raise ValueError(f"{path}: larger than a key file")
        return data.decode("ascii", "replace")

    def z85(text, path, what):
        key = text.strip("\r\n")
        if len(key) != 40:
            raise ValueError(f"{path}: {what} is {len(key)} characters, expected 40 Z85 characters")
        try:
            zmq.utils.z85.decode(key.encode())
        except Exception:
            raise ValueError(f"{path}: {what} is not Z85 text") from None
        return key.encode()

    lines = read(secret_path).split("\n", 1)
    if lines[0].rstrip("\r") != CURVE_SECRET_HEADER or len(lines) < 2:
        raise ValueError(f"{secret_path} is not a secret key file: its first line must be '{CURVE_SECRET_HEADER}'")
    secret = z85(lines[1], secret_path, "the secret key (line 2)")
    server = read(broker_key_path)
    if server.startswith(CURVE_SECRET_HEADER):
        raise ValueError(f"{broker_key_path} is a secret key file; this needs the broker's public key (NAME.pub)")
    return secret, zmq.curve_public(secret), z85(server, broker_key_path, "the public key")


class LimitsError(ValueError):
    """A limits file that cannot be used; the message names the file, line and key."""


# ---- the wire ---------------------------------------------------------------------------------

def _default_schema():
    here = os.path.dirname(os.path.abspath(__file__))
    for p in (os.environ.get("FLEETRL_SCHEMA"), os.path.join(here, "..", "..", "schema", "fleetrl.fbs"),
              "/usr/local/share/fleetrl/fleetrl.fbs"):
        if p and os.path.exists(p):
            return p
    raise FileNotFoundError("schema/fleetrl.fbs not found: pass schema= or set FLEETRL_SCHEMA")


def schema_hash(path):
    """FNV-1a 64 of the schema text without // comments and whitespace (as frl_schema_hash_text)."""
    text = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("//", 1)[0]
            text.append("".join(ch for ch in line if ch not in " \t\r\n"))
    return fnv1a64("".join(text).encode())


def fnv1a64(data, seed=0xcbf29ce484222325):
    """FNV-1a 64 over bytes (the parameter checksum of Params). Sequential by nature; the
    interpreter still hands the control thread the GIL every switch interval while it runs."""
    h = seed
    for b in bytes(data):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


class Wire:
    """Generated FlatBuffers code for schema/fleetrl.fbs and the messages a robot sends."""

    def __init__(self, schema=None, gen_dir=None):
        import flatbuffers  # python3-flatbuffers
        self.flatbuffers = flatbuffers
        self.schema = schema or _default_schema()
        self.hash = schema_hash(self.schema)
        gen = gen_dir or os.environ.get("FLEETRL_PYGEN") or os.path.join(
            os.path.expanduser("~"), ".cache", "fleetrl", f"pygen-{self.hash:016x}")
        if not os.path.exists(os.path.join(gen, "fleetrl", "Message.py")):
            os.makedirs(gen, exist_ok=True)
            tmp = gen + f".tmp{os.getpid()}"
            subprocess.run(["flatc", "--python", "-o", tmp, self.schema], check=True)
            try:
                os.rename(os.path.join(tmp, "fleetrl"), os.path.join(gen, "fleetrl"))
            except OSError:
                pass  # another process generated it first
            subprocess.run(["rm", "-rf", tmp], check=False)
        if gen not in sys.path:
            sys.path.insert(0, gen)
        self.m = {n: importlib.import_module(f"fleetrl.{n}") for n in (
            "Message", "Body", "Hello", "Welcome", "ExperienceBatch", "Ack", "Params", "Heartbeat",
            "Control", "EpisodeStat", "SafetyEvent")}
        self.body = self.m["Body"].Body

    def _finish(self, b, body_type, body):
        M = self.m["Message"]
        M.MessageStart(b)
        M.MessageAddSchemaVersion(b, SCHEMA_VERSION)
        M.MessageAddBodyType(b, body_type)
        M.MessageAddBody(b, body)
        b.Finish(M.MessageEnd(b), file_identifier=FILE_ID)
        return bytes(b.Output())

    def hello(self, name, task, actor_index, num_actors, obs_dim, act_dim):
        b = self.flatbuffers.Builder(256)
        n, t = b.CreateString(name), b.CreateString(task)
        H = self.m["Hello"]
        H.HelloStart(b)
        H.HelloAddSchemaHash(b, self.hash)
        H.HelloAddRole(b, 0)
        H.HelloAddName(b, n)
        H.HelloAddActorIndex(b, actor_index)
        H.HelloAddNumActors(b, num_actors)
        H.HelloAddTask(b, t)
        H.HelloAddObsDim(b, obs_dim)
        H.HelloAddActDim(b, act_dim)
        return self._finish(b, self.body.Hello, H.HelloEnd(b))

    def heartbeat(self, name, params_version, outbox, shed, env_steps, safe_mode, estop=False):
        b = self.flatbuffers.Builder(128)
        n = b.CreateString(name)
        H = self.m["Heartbeat"]
        H.HeartbeatStart(b)
        H.HeartbeatAddName(b, n)
        H.HeartbeatAddRole(b, 0)
        H.HeartbeatAddParamsVersion(b, params_version)
        H.HeartbeatAddOutbox(b, outbox)
        H.HeartbeatAddShed(b, shed)
        H.HeartbeatAddEnvSteps(b, env_steps)
        H.HeartbeatAddTimeNs(b, time.monotonic_ns())
        H.HeartbeatAddSafeMode(b, bool(safe_mode))
        H.HeartbeatAddEstop(b, bool(estop))  # latched: a restarted broker takes it up again
        return self._finish(b, self.body.Heartbeat, H.HeartbeatEnd(b))

    def experience(self, actor, seq, obs_dim, act_dim, discrete, rows, episodes, events, env_steps, demo):
        """rows: list of (obs, action, reward, discount, next_obs, version)."""
        E, S, P = self.m["ExperienceBatch"], self.m["SafetyEvent"], self.m["EpisodeStat"]
        b = self.flatbuffers.Builder(1024 + len(rows) * (8 * obs_dim + 4 * act_dim + 32))
        name = b.CreateString(actor)
        ev_refs = []
        for kind, count, t_ns, detail in events:
            d = b.CreateString(detail[:255])
            S.SafetyEventStart(b)
            S.SafetyEventAddKind(b, kind)
            S.SafetyEventAddCount(b, count)
            S.SafetyEventAddTimeNs(b, t_ns)
            S.SafetyEventAddDetail(b, d)
            ev_refs.append(S.SafetyEventEnd(b))
        ep_refs = []
        for ret, length, success, truncated, violations, version in episodes:
            P.EpisodeStatStart(b)
            P.EpisodeStatAddEpisodeReturn(b, ret)
            P.EpisodeStatAddLength(b, length)
            P.EpisodeStatAddSuccess(b, success)
            P.EpisodeStatAddTruncated(b, truncated)
            P.EpisodeStatAddViolations(b, violations)
            P.EpisodeStatAddPolicyVersion(b, version)
            ep_refs.append(P.EpisodeStatEnd(b))

        def tables(start, refs):
            start(b, len(refs))
            for r in reversed(refs):
                b.PrependUOffsetTRelative(r)
            return b.EndVector()

        v_ev = tables(E.ExperienceBatchStartSafetyVector, ev_refs) if ev_refs else None
        v_ep = tables(E.ExperienceBatchStartEpisodesVector, ep_refs) if ep_refs else None
        vecs = {}
        if rows:
            cols = list(zip(*rows))
            vecs["obs"] = b.CreateNumpyVector(np.asarray(cols[0], dtype="<f4").ravel())
            if discrete:
                vecs["index"] = b.CreateNumpyVector(np.asarray(cols[1], dtype="<i4").ravel())
            else:
                vecs["action"] = b.CreateNumpyVector(np.asarray(cols[1], dtype="<f4").ravel())
            vecs["reward"] = b.CreateNumpyVector(np.asarray(cols[2], dtype="<f4"))
            vecs["discount"] = b.CreateNumpyVector(np.asarray(cols[3], dtype="<f4"))
            vecs["next"] = b.CreateNumpyVector(np.asarray(cols[4], dtype="<f4").ravel())
            vecs["version"] = b.CreateNumpyVector(np.asarray(cols[5], dtype="<u8"))
        E.ExperienceBatchStart(b)
        E.ExperienceBatchAddActor(b, name)
        E.ExperienceBatchAddSeq(b, seq)
        E.ExperienceBatchAddCount(b, len(rows))
        E.ExperienceBatchAddObsDim(b, obs_dim)
        E.ExperienceBatchAddActDim(b, act_dim)
        if rows:
            E.ExperienceBatchAddObs(b, vecs["obs"])
            if discrete:
                E.ExperienceBatchAddActionIndex(b, vecs["index"])
            else:
                E.ExperienceBatchAddAction(b, vecs["action"])
            E.ExperienceBatchAddReward(b, vecs["reward"])
            E.ExperienceBatchAddDiscount(b, vecs["discount"])
            E.ExperienceBatchAddNextObs(b, vecs["next"])
            E.ExperienceBatchAddPolicyVersion(b, vecs["version"])
        if v_ep is not None:
            E.ExperienceBatchAddEpisodes(b, v_ep)
        E.ExperienceBatchAddEnvSteps(b, env_steps)
        E.ExperienceBatchAddDemonstration(b, bool(demo))
        if v_ev is not None:
            E.ExperienceBatchAddSafety(b, v_ev)
        return self._finish(b, self.body.ExperienceBatch, E.ExperienceBatchEnd(b))

    def decode(self, buf):
        """(body name, table) of a received message, or raises ValueError naming what is wrong.
        The Python runtime does not verify buffers, so the envelope is checked here and every
        field read afterwards is bounded by its caller; a malformed buffer can only raise."""
        if len(buf) < 8 or len(buf) > MAX_MESSAGE:
            raise ValueError(f"message of {len(buf)} bytes, expected 8..{MAX_MESSAGE}")
        if buf[4:8] != FILE_ID:
            raise ValueError(f"file identifier {bytes(buf[4:8])!r}, expected {FILE_ID!r}")
        msg = self.m["Message"].Message.GetRootAs(buf, 0)
        if msg.SchemaVersion() != SCHEMA_VERSION:
            raise ValueError(f"schema_version {msg.SchemaVersion()}, expected {SCHEMA_VERSION}")
        names = {v: k for k, v in vars(self.body).items() if not k.startswith("_")}
        name = names.get(msg.BodyType())
        if name is None or name == "NONE" or name not in self.m:
            return name or "unknown", None
        tab = msg.Body()
        obj = getattr(self.m[name], name)()
        obj.Init(tab.Bytes, tab.Pos)
        return name, obj


# ---- n-step returns ---------------------------------------------------------------------------

class NStep:
    """n-step transitions as actor/nstep.h builds them: R_t = sum_{i<k} gamma^i r_{t+i},
    discount gamma^k when bootstrapping (also at a time limit), 0 at a terminal state; every
    pending transition is emitted at an episode's end."""

    def __init__(self, n, gamma):
        self.n, self.gamma, self.window = n, gamma, []

    def clear(self):
        self.window = []

    def push(self, obs, action, reward, next_obs, terminal, truncated, meta):
        self.window.append((obs, action, reward, meta))
        out = []
        if terminal or truncated:
            while self.window:
                out.append(self._emit(next_obs, terminal))
        elif len(self.window) == self.n:
            out.append(self._emit(next_obs, False))
        return out

    def _emit(self, next_obs, terminal):
        ret, g = 0.0, 1.0
        for _, _, r, _ in self.window:
            ret += g * r
            g *= self.gamma
        obs, action, _, meta = self.window.pop(0)
        return obs, action, np.float32(ret), np.float32(0.0 if terminal else g), next_obs, meta


# ---- the shield (lib/shield.h) -----------------------------------------------------------------

_SINGLE = ("action_dim", "action_min", "action_max", "max_delta", "barrier_gain", "control_period",
           "safe_action")
_JOINT_KEYS = ("position", "velocity", "action", "min", "max", "vmax", "command", "scale", "brake")


class Shield:
    """The limits-file format and rules of lib/shield.h: non-finite values, rate, bounds, then a
    discrete-time barrier per joint; the safe action (hold, zero, posture)."""

    def __init__(self, act_dim, low, high, obs_dim, text=None, source="limits"):
        self.act_dim, self.obs_dim = act_dim, obs_dim
        self.gain, self.period = 10.0, 0.01
        self.joints, self.postures = [], {}
        self.safe, self.safe_posture = "hold", None
        vals = {}
        if text is not None:
            vals = self._parse(text, source)
        self.low = np.asarray(low, dtype=np.float64).copy()
        self.high = np.asarray(high, dtype=np.float64).copy()
        self.delta = np.full(act_dim, np.inf)
        if vals.get("action_dim") not in (None, act_dim):
            raise LimitsError(f"{source}: action_dim {vals['action_dim']}, the task has {act_dim} action dimensions")
        for key, arr, op in (("action_min", self.low, np.maximum), ("action_max", self.high, np.minimum)):
            if key in vals:
                v = self._broadcast(vals[key], key, source)
                arr[:] = op(arr, v)
        if "max_delta" in vals:
            self.delta[:] = self._broadcast(vals["max_delta"], "max_delta", source)
        if np.any(self.low > self.high):
            raise LimitsError(f"{source}: action bounds do not overlap the task's")
        for j in self.joints:
            if j["position"] >= obs_dim or j["velocity"] >= obs_dim or j["action"] >= act_dim:
                raise LimitsError(f"{source}: joint {j['name']}: an index is beyond obs_dim {obs_dim} / act_dim {act_dim}")
            if j["command"] == "velocity" and not (self.low[j["action"]] <= 0 <= self.high[j["action"]]):
                raise LimitsError(f"{source}: joint {j['name']}: the bounds of action {j['action']} must contain 0")
        if self.safe == "posture":
            p = self.postures[self.safe_posture]
            if len(p) != act_dim or np.any(p < self.low) or np.any(p > self.high):
                raise LimitsError(f"{source}: safe posture {self.safe_posture} is outside the action bounds")
        self.last = None

    def _broadcast(self, v, key, source):
        if len(v) == 1:
            return np.full(self.act_dim, v[0])
        if len(v) != self.act_dim:
            raise LimitsError(f"{source}: key '{key}' has {len(v)} values, the task has {self.act_dim} action dimensions")
        return np.asarray(v, dtype=np.float64)

    @staticmethod
    def _num(tok, key, where):
        try:
            v = float(tok)
        except ValueError:
            raise LimitsError(f"{where}: key '{key}': '{tok[:40]}' is not a number") from None
        if not math.isfinite(v):
            raise LimitsError(f"{where}: key '{key}': '{tok[:40]}' is not a number")
        if abs(v) > 1e9:
            raise LimitsError(f"{where}: key '{key}': {v:g} is beyond the limit of 1e+09 in magnitude")
        return v

    def _parse(self, text, source):
        if len(text) > (1 << 20):
            raise LimitsError(f"{source}: {len(text)} bytes, the limit is 1048576")
        vals, seen = {}, {}
        safe_name = None
        for lineno, raw in enumerate(text.split("\n"), 1):
            where = f"{source}:{lineno}"
            if len(raw) > 4096:
                raise LimitsError(f"{where}: line is {len(raw)} characters, the limit is 4096")
            line = raw.split("#", 1)[0].replace("\r", " ")
            if any(ord(ch) < 32 and ch != "\t" for ch in line):
                raise LimitsError(f"{where}: line contains a control character")
            tok = line.split()
            if not tok:
                continue
            key, args = tok[0], tok[1:]
            if key in _SINGLE:
                if key in seen:
                    raise LimitsError(f"{where}: key '{key}' given twice (first on line {seen[key]})")
                seen[key] = lineno
            if key == "action_dim":
                if len(args) != 1:
                    raise LimitsError(f"{where}: key 'action_dim': needs exactly one value")
                v = self._num(args[0], key, where)
                if v != int(v) or not 1 <= v <= 256:
                    raise LimitsError(f"{where}: key 'action_dim': {args[0]} must be an integer in [1, 256]")
                vals[key] = int(v)
            elif key in ("action_min", "action_max", "max_delta"):
                if not args:
                    raise LimitsError(f"{where}: key '{key}': needs at least one value")
                v = [self._num(a, key, where) for a in args]
                if key == "max_delta" and any(x <= 0 for x in v):
                    raise LimitsError(f"{where}: key 'max_delta': values must be > 0")
                vals[key] = v
            elif key in ("barrier_gain", "control_period"):
                if len(args) != 1:
                    raise LimitsError(f"{where}: key '{key}': needs exactly one value")
                v = self._num(args[0], key, where)
                if v <= 0:
                    raise LimitsError(f"{where}: key '{key}': {v:g} must be > 0")
                if key == "barrier_gain":
                    self.gain = v
                else:
                    self.period = v
            elif key == "joint":
                self.joints.append(self._joint(args, where))
            elif key == "posture":
                if len(args) < 2:
                    raise LimitsError(f"{where}: key 'posture': needs a name and at least one value")
                if args[0] in self.postures:
                    raise LimitsError(f"{where}: posture {args[0]}: defined twice")
                self.postures[args[0]] = np.asarray([self._num(a, f"posture {args[0]}", where) for a in args[1:]])
            elif key == "safe_action":
                if args in (["hold"], ["zero"]):
                    self.safe = args[0]
                elif len(args) == 2 and args[0] == "posture":
                    self.safe, safe_name = "posture", args[1]
                else:
                    raise LimitsError(f"{where}: key 'safe_action': expected hold | zero | posture NAME")
            else:
                raise LimitsError(f"{where}: unknown key '{key[:40]}'")
        if self.safe == "posture":
            if safe_name not in self.postures:
                raise LimitsError(f"{source}: key 'safe_action' (line {seen['safe_action']}): no posture named '{safe_name}'")
            self.safe_posture = safe_name
        if self.joints and self.gain * self.period > 1.0:
            raise LimitsError(f"{source}: keys 'barrier_gain' {self.gain:g} and 'control_period' "
                              f"{self.period:g}: their product must be <= 1")
        return vals

    def _joint(self, args, where):
        if not args:
            raise LimitsError(f"{where}: key 'joint': needs a name, then key=value settings")
        name = args[0]
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,31}", name):
            raise LimitsError(f"{where}: key 'joint': name '{name[:40]}' is not valid")
        if any(j["name"] == name for j in self.joints):
            raise LimitsError(f"{where}: joint {name}: defined twice")
        j = {"name": name, "position": -1, "velocity": -1, "action": -1, "vmax": math.inf,
             "command": "velocity", "scale": 1.0, "brake": None}
        given = set()
        for kv in args[1:]:
            if "=" not in kv or kv.startswith("=") or kv.endswith("="):
                raise LimitsError(f"{where}: joint {name}: '{kv[:40]}' is not key=value")
            k, v = kv.split("=", 1)
            if k not in _JOINT_KEYS:
                raise LimitsError(f"{where}: joint {name}: unknown key '{k[:40]}'")
            if k in given:
                raise LimitsError(f"{where}: joint {name}: key '{k}' given twice")
            given.add(k)
            full = f"{name}.{k}"
            if k == "command":
                if v not in ("velocity", "effort"):
                    raise LimitsError(f"{where}: key '{full}': '{v[:40]}' is not velocity|effort")
                j[k] = v
            elif k in ("position", "velocity", "action"):
                x = self._num(v, full, where)
                if x != int(x) or x < 0 or x > 65535:
                    raise LimitsError(f"{where}: key '{full}': {v} must be an integer in [0, 65535]")
                j[k] = int(x)
            else:
                x = self._num(v, full, where)
                if k in ("vmax", "scale", "brake") and x <= 0:
                    raise LimitsError(f"{where}: key '{full}': {x:g} must be > 0")
                j[k] = x
        for k in ("position", "action", "min", "max"):
            if k not in given:
                raise LimitsError(f"{where}: joint {name}: key '{k}' is required")
        if not j["min"] < j["max"]:
            raise LimitsError(f"{where}: joint {name}: key 'min' {j['min']:g} must be below 'max' {j['max']:g}")
        if j["command"] == "effort" and (j["velocity"] < 0 or j["brake"] is None):
            raise LimitsError(f"{where}: joint {name}: command=effort needs keys 'velocity' and 'brake'")
        if any(o["action"] == j["action"] for o in self.joints):
            raise LimitsError(f"{where}: joint {name}: action {j['action']} already drives another joint")
        return j

    def _barrier(self, j, obs, a):
        q = float(obs[j["position"]])
        if not math.isfinite(q):
            return a
        up, down = self.gain * (j["max"] - q), -self.gain * (q - j["min"])
        if j["command"] == "velocity":
            v = a * j["scale"]
            v = min(v, min(up, j["vmax"]))
            v = max(v, max(down, -j["vmax"]))
            v = min(max(v, -j["vmax"]), j["vmax"])
            return v / j["scale"]
        qd = float(obs[j["velocity"]])
        if not math.isfinite(qd):
            return a
        ex_up, ex_down = qd - min(up, j["vmax"]), max(down, -j["vmax"]) - qd
        if ex_up > 0:
            a = min(a, -j["brake"] * ex_up)
        if ex_down > 0:
            a = max(a, j["brake"] * ex_down)
        return a

    def _bound_barrier(self, obs, a):
        clipped = barrier = 0
        b = np.clip(a, self.low, self.high)
        clipped += int(np.count_nonzero(b != a))
        for j in self.joints:
            k = j["action"]
            v = float(np.clip(self._barrier(j, obs, float(b[k])), self.low[k], self.high[k]))
            if v != b[k]:
                barrier += 1
                b[k] = v
        return b, clipped, barrier

    def apply(self, obs, action):
        """Returns (safe action, clipped dimensions, barrier changes)."""
        a = np.asarray(action, dtype=np.float64).copy()
        clipped = 0
        bad = ~np.isfinite(a)
        if bad.any():
            a[bad] = self.last[bad] if self.last is not None else np.clip(0.0, self.low, self.high)[bad]
            clipped += int(bad.sum())
        if self.last is not None:
            r = np.clip(a, self.last - self.delta, self.last + self.delta)
            clipped += int(np.count_nonzero((r != a) & ~bad))
            a = r
        a, c2, barrier = self._bound_barrier(obs, a)
        self.last = a.copy()
        return a, clipped + c2, barrier

    def safe_action(self, obs):
        if self.safe == "posture":
            a = self.postures[self.safe_posture].astype(np.float64)
        elif self.safe == "hold" and self.last is not None:
            a = self.last.copy()
        else:
            a = np.clip(np.zeros(self.act_dim), self.low, self.high)
        a, _, _ = self._bound_barrier(obs, a)
        self.last = a.copy()
        return a


# ---- the policy in numpy ----------------------------------------------------------------------

class NumpyPolicy:
    """The actor network of lib/policy.c over a Params data block: DQN's Q-network (lib/qnet.h:
    trunk layers w[O x I], b[O], then a plain head or dueling wv, bv, wa, ba; argmax of the
    advantages equals argmax of Q), or the SAC/TD3 actor MLP (lib/mlp.h; SAC outputs [mean,
    log_std], TD3 tanh(mean))."""

    def __init__(self, algo, obs_dim, act_dim, n_actions, hidden, dueling):
        self.algo, self.obs_dim, self.act_dim, self.n_actions = algo, obs_dim, act_dim, n_actions
        self.hidden = [h for h in hidden if h > 0]
        self.dueling = dueling
        sizes = [obs_dim] + self.hidden
        self.layout = [(sizes[i + 1], sizes[i]) for i in range(len(self.hidden))]
        last = sizes[-1]
        if algo == "dqn":
            self.head = ([(1, last)] if dueling else []) + [(n_actions, last)]
        else:
            self.head = [((2 if algo == "sac" else 1) * act_dim, last)]
        self.n_params = sum(o * i + o for o, i in self.layout + self.head)

    def load(self, data, mean=None, std=None):
        """Returns an immutable weight set (a tuple of arrays) for act(); data is float32."""
        if data.size != self.n_params:
            raise ValueError(f"Params.data: {data.size} floats, this {self.algo} network has {self.n_params}")
        out, off = [], 0
        for o, i in self.layout + self.head:
            w = data[off:off + o * i].reshape(o, i).astype(np.float32)
            off += o * i
            b = data[off:off + o].astype(np.float32)
            off += o
            out.append((w, b))
        return (tuple(out), mean, std)

    def act(self, weights, obs, exploration, rng):
        layers, mean, std = weights
        x = np.asarray(obs, dtype=np.float32)
        if mean is not None:
            x = np.clip((x - mean) / std, -10.0, 10.0)
        nl = len(self.layout)
        for w, b in layers[:nl]:
            x = np.maximum(w @ x + b, 0.0)
        if self.algo == "dqn":
            if exploration > 0 and rng.random() < exploration:
                return np.array([float(rng.integers(self.n_actions))])
            w, b = layers[-1]
            return np.array([float(np.argmax(w @ x + b))])
        w, b = layers[nl]
        out = w @ x + b
        A = self.act_dim
        if self.algo == "sac":
            u = out[:A].astype(np.float64)
            if exploration > 0:
                u = u + np.exp(np.clip(out[A:], -20.0, 2.0)) * rng.standard_normal(A)
            return np.tanh(u)
        a = np.tanh(out.astype(np.float64))
        if exploration > 0:
            a = a + exploration * rng.standard_normal(A)
        return np.clip(a, -1.0, 1.0)


# ---- policy files (lib/policy_file.h) --------------------------------------------------------

POLICY_MAGIC = b"FRLPOLCY"
POLICY_VERSION = 1
HISTORY_MAX = 16  # lib/history.h FRL_HISTORY_MAX (commands)
OBS_HISTORY_MAX = 8  # lib/history.h FRL_OBS_HISTORY_MAX (past observations)
# The header of lib/policy_file.c: task[64], env[32], algo, obs_dim, act_dim, n_actions, hidden1,
# hidden2, dueling, has_normalizer (int32), action_scale (float32), history (u32: bits 0-15 the
# commands, bits 16-31 the past observations; 0 in files from before the history existed),
# params_version, updates, n_params (u64); little-endian, no padding.
_POLICY_HEADER = struct.Struct("<64s32s8ifI3Q")
ALGOS = ("dqn", "sac", "td3")


class History:
    """The robot's last k commands and previous m observations, appended to its observation for a
    policy trained with --action-history k and --obs-history m (lib/history.h): the observation,
    then the past observations newest first (the episode's first observation until a step), then
    the commands newest first, each value (a - mid) / half of its action bounds clipped to
    [-1, 1] (neutral, zero clipped into the bounds, before the first command)."""

    def __init__(self, k, m, low, high):
        self.k, self.m = k, m
        self.mid, self.half = 0.5 * (low + high), 0.5 * (high - low)
        zero = np.clip(0.0, low, high)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.neutral = np.where(self.half > 0, (zero - self.mid) / self.half, 0.0).astype(np.float32)
        self.reset()

    def reset(self):
        self.slots = [self.neutral.copy() for _ in range(self.k)]
        self.past = None  # no step yet: the current observation stands for the past

    def push(self, action):
        if self.k == 0:
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(self.half > 0, (np.asarray(action, dtype=np.float64) - self.mid) / self.half, 0.0)
        u = np.where(np.isnan(u), self.neutral, np.clip(u, -1.0, 1.0)).astype(np.float32)
        self.slots = [u] + self.slots[:-1]

    def observe(self, obs):
        """The observation a step was taken from becomes the newest past one; None (or a
        non-finite one) starts the past again from the next observation."""
        if self.m == 0:
            return
        if obs is None or not np.all(np.isfinite(obs)):
            self.past = None
        elif self.past is None:
            self.past = [np.array(obs, dtype=np.float32) for _ in range(self.m)]
        else:
            self.past = [np.array(obs, dtype=np.float32)] + self.past[:-1]

    def augment(self, obs):
        if not self.k and not self.m:
            return obs.copy()
        past = self.past if self.past is not None else [obs] * self.m
        return np.concatenate([obs] + past + self.slots).astype(np.float32)


def history_fits(k, m, obs_dim, act_dim, n_actions):
    """lib/policy_file.c history_fits: continuous actions, k and m within their limits, and an
    observation of (m + 1) frames of at least one value each, then k commands."""
    if k == 0 and m == 0:
        return True
    if n_actions != 0 or k > HISTORY_MAX or m > OBS_HISTORY_MAX:
        return False
    frames = obs_dim - k * act_dim
    return frames >= m + 1 and frames % (m + 1) == 0


class PolicyFileError(ValueError):
    """A policy file that cannot be used; the message names the file and what is wrong."""


class PolicyFile:
    """A verified policy file: task, env, algo, obs_dim, act_dim, n_actions, hidden (h1, h2),
    dueling, action_scale, params_version, updates, params (float32), mean and std (float32,
    or None without a normalizer)."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(16 + _POLICY_HEADER.size)
            if len(head) < 8 or head[:8] != POLICY_MAGIC:
                raise PolicyFileError(f"{path}: not a fleetrl policy file (bad magic)")
            version, hlen = struct.unpack("<II", head[8:16]) if len(head) >= 16 else (0, 0)
            if version != POLICY_VERSION or hlen != _POLICY_HEADER.size or len(head) < 16 + hlen:
                raise PolicyFileError(f"{path}: unsupported policy file version {version} "
                                      f"(this client reads {POLICY_VERSION})")
            (task, env, algo, obs_dim, act_dim, n_actions, h1, h2, dueling, has_norm, scale, history,
             self.params_version, self.updates, n_params) = _POLICY_HEADER.unpack(head[16:])
            self.task = task.split(b"\0", 1)[0].decode("utf-8", "replace")
            self.env = env.split(b"\0", 1)[0].decode("utf-8", "replace")
            # The bounds of frl_policy_load, so that both clients accept the same files.
            sane = (0 <= algo <= 2 and 0 < obs_dim <= 4096 and 0 < act_dim <= 4096 and
                    0 <= n_actions <= 4096 and 0 < h1 <= 65536 and 0 <= h2 <= 65536 and
                    0 < scale <= 1 and (algo == 0 or h2 > 0) and
                    history_fits(history & 0xFFFF, history >> 16, obs_dim, act_dim, n_actions))
            count = None
            if sane:
                self.algo = ALGOS[algo]
                count = NumpyPolicy(self.algo, obs_dim, act_dim, n_actions, (h1, h2), dueling != 0).n_params
            if not sane or n_params != count:
                raise PolicyFileError(f"{path}: the network shape in the header is invalid or does not "
                                      f"match its {n_params} parameters")
            nd = obs_dim if has_norm else 0
            body = f.read(4 * (n_params + 2 * nd) + 8)
        if len(body) != 4 * (n_params + 2 * nd) + 8:
            raise PolicyFileError(f"{path}: truncated")
        floats = body[:-8]
        if fnv1a64(floats) != struct.unpack("<Q", body[-8:])[0]:
            raise PolicyFileError(f"{path}: checksum mismatch (file damaged)")
        values = np.frombuffer(floats, dtype="<f4").astype(np.float32)
        self.params = values[:n_params]
        self.mean = values[n_params:n_params + nd] if nd else None
        self.std = values[n_params + nd:] if nd else None
        if nd and (not np.all(np.isfinite(self.mean)) or not np.all(np.isfinite(self.std))
                   or not np.all(self.std > 0)):
            raise PolicyFileError(f"{path}: the observation normalizer has a non-finite mean or a std "
                                  "that is not > 0")
        self.obs_dim, self.act_dim, self.n_actions = obs_dim, act_dim, n_actions
        self.hidden, self.dueling, self.action_scale = (h1, h2), dueling != 0, float(scale)
        self.action_history, self.obs_history = history & 0xFFFF, history >> 16

    def describe(self):
        if self.algo == "dqn":
            return f"obs {self.obs_dim}, {self.n_actions} actions"
        return f"obs {self.obs_dim}, {self.act_dim} action dims"


# ---- the client -------------------------------------------------------------------------------

class Client:
    """A robot as a fleet actor. act/record/reset/status are for one control thread.

    policy: a policy file (a run's policy.bin, or `fleetrl export`) to act with instead of the
    learner's parameters, as the C client's policy_path: it must be for this task (task name and
    dimensions; a mismatch raises ValueError naming both), it acts deterministically (greedy Q,
    SAC's mean action, TD3 without noise) with its own normalizer and action scale, through the
    shield and the watchdog, and broadcasts never replace it. With endpoint=None the client then
    runs offline: no socket, no thread, no broker-silence safe mode; record() only counts
    episodes, which status() reports (episodes, mean_return, std_return, ...)."""

    def __init__(self, endpoint, name, task, obs_dim, act_dim, act_low=None, act_high=None,
                 n_actions=0, limits=None, demonstration=False, algo=None, hidden=(256, 256),
                 dueling=True, explore=True, explore_noise=0.1, epsilon=0.0, action_scale=1.0,
                 n_step=3, gamma=0.99, batch=32, outbox=64, resend=2.0, heartbeat=0.5,
                 peer_timeout=3.0, max_broker_silence=1.5, max_params_age=0.0, actor_index=-1,
                 num_actors=1, ack_log=None, schema=None, gen_dir=None, log=None, seed=None,
                 curve_secret=None, broker_key=None, policy=None, action_history=0, obs_history=0):
        if not re.fullmatch(r"[!-~]{1,64}", name or ""):
            raise ValueError(f"name '{name}': must be 1-64 printable characters without spaces")
        if algo not in (None, "dqn", "sac", "td3"):
            raise ValueError(f"algo '{algo}': not one of dqn|sac|td3 (or None: the caller's actions)")
        if endpoint is None and policy is None:
            raise ValueError("endpoint: None runs offline, which needs a policy file (policy=)")
        pf = PolicyFile(policy) if policy else None
        if pf is not None:
            action_history, obs_history = pf.action_history, pf.obs_history  # the file's, as trained
        if not 0 <= action_history <= HISTORY_MAX or (action_history and n_actions > 0):
            raise ValueError(f"action_history {action_history}: outside [0, {HISTORY_MAX}], or discrete actions "
                             "(the history of commands is for continuous ones)")
        if not 0 <= obs_history <= OBS_HISTORY_MAX or (obs_history and n_actions > 0):
            raise ValueError(f"obs_history {obs_history}: outside [0, {OBS_HISTORY_MAX}], or discrete actions "
                             "(the history of observations is for continuous ones)")
        # The policy sees obs_dim values from the robot, then its past observations and commands.
        seen_dim = (obs_history + 1) * obs_dim + action_history * act_dim
        if pf is not None:
            discrete = n_actions > 0
            fits = (pf.task == task and pf.obs_dim == seen_dim and
                    (0 < pf.n_actions == n_actions if pf.algo == "dqn" else not discrete and pf.act_dim == act_dim))
            if not fits:
                mine = f"obs {obs_dim}, " + (f"{n_actions} actions" if discrete else f"{act_dim} action dims")
                raise ValueError(f"policy: {policy} is a {pf.algo} policy for task {pf.task} (env {pf.env}: "
                                 f"{pf.describe()}); this robot's task is {task} ({mine})")
            if algo is not None and algo != pf.algo:
                raise ValueError(f"algo '{algo}': the policy file {policy} holds a {pf.algo} policy")
            algo, hidden, dueling = pf.algo, pf.hidden, pf.dueling
        self.fixed, self.offline = pf is not None, pf is not None and endpoint is None
        self.policy_path = policy
        self.name, self.task, self.endpoint = name, task, endpoint
        self.discrete = n_actions > 0
        self.obs_dim, self.act_dim, self.n_actions = seen_dim, (1 if self.discrete else act_dim), n_actions
        self.robot_obs_dim = obs_dim
        if self.discrete:
            self.low, self.high = np.zeros(1), np.array([n_actions - 1.0])
        else:
            if act_low is None or act_high is None:
                raise ValueError("act_low and act_high (the task's action bounds) are required for continuous actions")
            self.low = np.asarray(act_low, dtype=np.float64)
            self.high = np.asarray(act_high, dtype=np.float64)
        self.history = History(action_history, obs_history, self.low, self.high)
        self.log = log or (lambda level, text: print(f"{time.strftime('%H:%M:%S')} {name} {level}: {text}",
                                                     file=sys.stderr, flush=True))
        text = None
        if limits:
            with open(limits, encoding="utf-8", errors="strict") as f:
                text = f.read((1 << 20) + 1)
        if self.discrete:
            self.shield = None
        else:
            self.shield = Shield(self.act_dim, self.low, self.high, obs_dim, text, limits or "limits")
        self.wire = None if self.offline else Wire(schema, gen_dir)
        self.algo = algo
        self.policy = (NumpyPolicy(algo, seen_dim, self.act_dim, n_actions, hidden, dueling)
                       if algo else None)
        self.weights = None        # replaced whole by the network thread (a reference swap)
        self.weights_version = 0
        self.explore = explore
        self.exploration = (epsilon if algo == "dqn" else 1.0 if algo == "sac" else explore_noise) if explore else 0.0
        self.action_scale = action_scale  # the learner's, for the wire's normalized actions
        self.act_scale = action_scale     # what act() maps [-1, 1] with
        if pf is not None:
            self.weights = self.policy.load(pf.params, pf.mean, pf.std)
            self.weights_version = pf.params_version
            self.exploration = 0.0  # greedy Q, the mean action, no noise: what evaluation measures
            self.act_scale = pf.action_scale
            # Offline there is no broker to fall silent; the file never ages (it is the policy).
            max_params_age = 0.0
            if self.offline:
                max_broker_silence = 0.0
        self.demo_default = demonstration
        self.rng = np.random.default_rng(seed)
        self.cfg = dict(n_step=n_step, gamma=gamma, batch=batch, outbox=outbox, resend=resend,
                        heartbeat=heartbeat, peer_timeout=peer_timeout, actor_index=actor_index,
                        num_actors=num_actors, max_broker_silence=max_broker_silence,
                        max_params_age=max_params_age)
        # control thread
        self.cur = None
        self.mid_episode = False
        self.gap = False
        self.acted_version = 0
        self.safe = False
        self.causes = 0
        self.bad_obs = False
        self.counts = dict(steps=0, dropped_steps=0, clipped=0, barrier=0, safe_actions=0)
        self.last_action = None
        self.acted = False  # act() ran since the last record(): its command is in the history
        # the robot's own episode tally (also offline): the episode in progress, then totals
        self.tally = [0.0, 0, 0, False]  # return, length, violations, success
        self.episodes = self.ep_steps = self.ep_successes = self.ep_violations = 0
        self.ret_mean = self.ret_m2 = 0.0  # Welford's running mean and squared deviations
        # shared with the network thread (single assignments under the GIL)
        self.steps = queue.Queue(maxsize=4096)
        self.shed_steps = 0
        self.events = []
        self.ev_lock = threading.Lock()
        self.heard = time.monotonic()
        self.params_at = None
        self.latest_version = 0
        self.estop = False
        self.welcomed = False
        self.refused = None
        self.outbox_depth = 0
        self.shed_batches = 0
        self.acked = 0
        self.stop_flag = False
        self.params_ignored = False
        if bool(curve_secret) != bool(broker_key):
            raise ValueError("curve_secret and broker_key go together (CURVE needs both key files)")
        self.ack_log = None
        if self.offline:
            self.log("info", f"robot {name}: task {task} (obs {obs_dim}, act {self.act_dim}), OFFLINE with the "
                             f"policy file {policy} ({pf.algo} {pf.hidden[0]}-{pf.hidden[1]}, params "
                             f"v{pf.params_version} after {pf.updates} updates, action scale {pf.action_scale:g})")
            return
        keys = load_curve_keys(curve_secret, broker_key) if curve_secret else None
        self.ack_log = open(ack_log, "a") if ack_log else None
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        self.sock.setsockopt(zmq.RECONNECT_IVL, 100)
        self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE + 1024)
        self.sock.setsockopt(zmq.ROUTING_ID, name.encode())
        if keys:
            self.sock.curve_secretkey, self.sock.curve_publickey, self.sock.curve_serverkey = keys
        self.sock.connect(endpoint)
        self.thread = threading.Thread(target=self._net_main, name="fleetrl-net", daemon=True)
        self.thread.start()
        self.log("info", f"robot {name}: task {task} (obs {obs_dim}, act {self.act_dim}), broker {endpoint}, "
                         f"policy {('file ' + policy) if policy else algo or 'from the caller'}")

    # -- control thread --------------------------------------------------------------------------

    def _event(self, kind, count, detail):
        if self.offline:
            return  # nothing is shipped; the log and status() tell
        with self.ev_lock:
            for e in self.events:
                if kind in (CLIP, BARRIER) and e[0] == kind:
                    e[1] += count
                    return
            self.events.append([kind, count, time.time_ns(), detail])

    def _watchdog(self, now):
        c = WD_ESTOP if self.estop else 0
        if self.bad_obs:
            c |= WD_OBS
        if self.cfg["max_broker_silence"] > 0 and now - self.heard > self.cfg["max_broker_silence"]:
            c |= WD_BROKER
        if self.cfg["max_params_age"] > 0 and self.params_at is not None and now - self.params_at > self.cfg["max_params_age"]:
            c |= WD_PARAMS
        before, self.causes = self.causes, c
        if (before != 0) != (c != 0):
            self.safe = c != 0
            if self.safe:
                self.log("WARN", f"SAFE MODE: {describe_causes(c)}; applying the safe action")
                self._event(SAFE_MODE_ENTER, 1, describe_causes(c))
            else:
                self.log("info", f"safe mode lifted (was: {describe_causes(before)})")
                self._event(SAFE_MODE_EXIT, 1, "was: " + describe_causes(before))

    def reset(self, obs):
        """Starts an episode at obs (an episode abandoned midway is not counted)."""
        if self.mid_episode:
            self.gap = True
        self.mid_episode = False
        self.tally = [0.0, 0, 0, False]
        self.history.reset()
        self.acted = False
        obs = np.asarray(obs, dtype=np.float32)
        self.cur = self.history.augment(obs) if np.all(np.isfinite(obs)) else None

    def _scale(self, a):
        mid, half = 0.5 * (self.low + self.high), 0.5 * (self.high - self.low) * self.act_scale
        return mid + half * a

    def _normalize(self, a):
        mid, half = 0.5 * (self.low + self.high), 0.5 * (self.high - self.low) * self.action_scale
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(half > 0, (a - mid) / half, 0.0)
        return np.clip(v, -1.0, 1.0)

    def act(self, obs, action=None):
        """Returns (action in robot units, safe) for obs: the policy's (or the caller's `action`)
        through the shield, or the safe action (safe=True) in safe mode."""
        now = time.monotonic()
        obs = np.asarray(obs, dtype=np.float32)
        self.bad_obs = not bool(np.all(np.isfinite(obs)))
        self._watchdog(now)
        if self.bad_obs:
            self.cur, self.gap = None, True
        else:
            self.cur = self.history.augment(obs)
        if self.safe:
            self.counts["safe_actions"] += 1
            if self.discrete:
                a = self.last_action if self.last_action is not None else np.zeros(1)
            else:
                a = self.shield.safe_action(obs)
            self.last_action = a
            self._sent(a)
            return a.copy(), True
        if action is None:
            if self.policy is None:
                raise ValueError("act(obs) needs action= when the client has no policy (algo=None)")
            weights, version = self.weights, self.weights_version
            if weights is None:
                if self.discrete:
                    a = np.array([float(self.rng.integers(self.n_actions))])
                else:
                    a = self._scale(self.rng.uniform(-1.0, 1.0, self.act_dim))
            else:
                a = self.policy.act(weights, self.cur, self.exploration, self.rng)
                if not self.discrete:
                    a = self._scale(a)
            self.acted_version = version
        else:
            a = np.asarray(action, dtype=np.float64).reshape(self.act_dim)
            self.acted_version = self.weights_version
        if self.discrete:
            v = a[0]
            if not (math.isfinite(v) and 0 <= v < self.n_actions):
                self.counts["clipped"] += 1
                self._event(CLIP, 1, f"action index {v} out of range")
                v = 0.0 if not math.isfinite(v) else min(max(math.floor(v), 0), self.n_actions - 1)
            a = np.array([float(math.floor(v))])
        else:
            a, clipped, barrier = self.shield.apply(obs, a)
            if clipped:
                self.counts["clipped"] += clipped
                self._event(CLIP, clipped, "action clipped")
            if barrier:
                self.counts["barrier"] += barrier
                self._event(BARRIER, barrier, "joint barrier")
        self.last_action = a
        self._sent(a)
        return a.copy(), False

    def _sent(self, a):
        """The command joins the history as it leaves (as in simulation, where the history sits
        outside any actuation delay: what is in flight is what the policy must see)."""
        if not self.discrete:
            self.history.push(a)
        self.acted = True

    def set_demonstration(self, on):
        self.demo_default = bool(on)

    def record(self, obs, action, reward, terminal, truncated, info=None):
        """Hands over one step (the robot applied `action` in the previous observation and now
        observes obs). Returns 0 queued, 1 dropped (non-finite values or no observation to
        start from), -1 shed (queue to the network thread full). info: dict with optional
        success, violations, demonstration."""
        info = info or {}
        done = bool(terminal or truncated)
        self._tally(reward, done, info)
        obs = np.asarray(obs, dtype=np.float32)
        action = np.asarray(action, dtype=np.float64).reshape(self.act_dim)
        if not self.acted and not self.discrete:
            self.history.push(action)  # a step nobody asked act() for (a demonstrator's)
        self.acted = False
        # The observation this step was taken from becomes the newest past one (as in
        # simulation); without a usable one the past starts again from the next.
        self.history.observe(None if self.cur is None else self.cur[:self.robot_obs_dim])
        obs_ok = bool(np.all(np.isfinite(obs)))
        obs = self.history.augment(obs)
        ok = (self.cur is not None and obs_ok and math.isfinite(reward) and bool(np.all(np.isfinite(action))))
        if ok and self.discrete:
            ok = 0 <= action[0] < self.n_actions
        if not ok:
            self.counts["dropped_steps"] += 1
            self.gap = True
            self.cur = obs.copy() if obs_ok and not done else None
            return 1
        if self.offline:
            # Nothing to ship: the step counts, and the tally is the whole record.
            self.gap, self.mid_episode = False, not done
            self.counts["steps"] += 1
            self.cur = None if done else obs.copy()
            return 0
        demo = bool(info.get("demonstration", self.demo_default))
        wire_action = np.floor(action) if self.discrete else self._normalize(action)
        step = (self.gap, self.cur, wire_action.astype(np.float32), float(reward), obs.copy(), bool(terminal),
                bool(truncated), bool(info.get("success", False)), int(info.get("violations", 0)),
                self.acted_version, demo)
        rc = 0
        try:
            self.steps.put_nowait(step)
            self.gap = False
            self.mid_episode = not done
            self.counts["steps"] += 1
        except queue.Full:
            self.shed_steps += 1
            self.gap = True
            rc = -1
        self.cur = None if done else obs.copy()
        return rc

    def _tally(self, reward, done, info):
        t = self.tally
        if math.isfinite(reward):
            t[0] += reward
        t[1] += 1
        t[2] += int(info.get("violations", 0))
        t[3] = t[3] or bool(info.get("success", False))
        if done:
            self.episodes += 1
            delta = t[0] - self.ret_mean
            self.ret_mean += delta / self.episodes
            self.ret_m2 += delta * (t[0] - self.ret_mean)
            self.ep_steps += t[1]
            self.ep_violations += t[2]
            self.ep_successes += int(t[3])
            self.tally = [0.0, 0, 0, False]

    def status(self):
        now = time.monotonic()
        self._watchdog(now)
        silence = 0.0 if self.offline else now - self.heard
        st = dict(self.counts)
        st.update(connected=self.welcomed and (self.cfg["max_broker_silence"] <= 0 or silence <= self.cfg["max_broker_silence"]),
                  refused=self.refused is not None, params_version=self.weights_version,
                  policy_lag=max(0, self.latest_version - self.weights_version), outbox=self.outbox_depth,
                  safe_mode=self.safe, safe_causes=self.causes,
                  reason=("refused by the broker: " + self.refused) if self.refused else describe_causes(self.causes),
                  params_age_s=(now - self.params_at) if self.params_at is not None else -1.0,
                  broker_silence_s=silence, shed_steps=self.shed_steps, shed_batches=self.shed_batches,
                  acked_batches=self.acked, offline=self.offline)
        n = self.episodes
        st.update(episodes=n, successes=self.ep_successes, violations=self.ep_violations,
                  mean_return=self.ret_mean if n else 0.0,
                  std_return=math.sqrt(self.ret_m2 / n) if n else 0.0,
                  mean_length=self.ep_steps / n if n else 0.0)
        return st

    def close(self):
        if self.offline:
            return
        self.stop_flag = True
        self.thread.join(10)
        self.sock.close(0)
        self.ctx.term()
        if self.ack_log:
            self.ack_log.close()

    # -- network thread --------------------------------------------------------------------------

    def _net_main(self):
        cfg = self.cfg
        ns = NStep(cfg["n_step"], cfg["gamma"])
        outbox = {}  # seq -> [bytes, last sent or None]
        seq = int(time.time() * 1e6)
        rows, episodes, batch_demo, started, batch_steps = [], [], False, None, 0
        ep = [0.0, 0, False, 0, False]  # return, length, success, violations, broken
        last_hello = last_heartbeat = 0.0
        last_heard_local = time.monotonic()
        env_steps = 0

        def seal():
            nonlocal rows, episodes, started, batch_steps, seq
            with self.ev_lock:
                events, self.events = self.events, []
            if not rows and not episodes and not events:
                return
            data = self.wire.experience(self.name, seq + 1, self.obs_dim, self.act_dim, self.discrete,
                                        rows, episodes, events, batch_steps, batch_demo)
            if len(outbox) < cfg["outbox"]:
                seq += 1
                outbox[seq] = [data, None]
            else:
                self.shed_batches += 1
            self.outbox_depth = len(outbox)
            rows, episodes, started, batch_steps = [], [], None, 0

        def emit(t):
            nonlocal batch_demo, started
            obs, action, ret, disc, nxt, (version, demo) = t
            if rows and (demo != batch_demo or len(rows) >= cfg["batch"]):
                seal()
            if not rows:
                batch_demo = demo
                started = started or time.monotonic()
            rows.append((obs, action, ret, disc, nxt, version))

        def drain(now):
            """Turns the steps the control thread handed over into n-step transitions."""
            nonlocal env_steps, batch_steps, started
            while True:
                try:
                    (gap, obs, action, reward, nxt, terminal, truncated, success, violations, version,
                     demo) = self.steps.get_nowait()
                except queue.Empty:
                    return
                if gap:
                    ns.clear()
                    ep[4] = True
                for t in ns.push(obs, action, reward, nxt, terminal, truncated, (version, demo)):
                    emit(t)
                env_steps += 1
                batch_steps += 1
                ep[0] += reward
                ep[1] += 1
                ep[2] = ep[2] or success
                ep[3] += violations
                if terminal or truncated:
                    if not ep[4]:
                        episodes.append((ep[0], ep[1], ep[2], truncated and not terminal, ep[3], version))
                        started = started or now
                    ep[:] = [0.0, 0, False, 0, False]

        def handle(buf, now):
            nonlocal last_heard_local, last_hello
            try:
                kind, m = self.wire.decode(buf)
                last_heard_local = now
                self.heard = now
                if kind == "Welcome":
                    if m.Ok():
                        if not self.welcomed:
                            self.log("info", f"connected to the broker (params v{m.ParamsVersion()} available)")
                        self.welcomed, self.refused = True, None
                        self.latest_version = max(self.latest_version, m.ParamsVersion())
                        for v in outbox.values():
                            v[1] = None
                        if m.Estop() and not self.estop:  # told before acting at all
                            reason = (m.EstopReason() or b"").decode("utf-8", "replace")[:256]
                            self.estop = True
                            self.log("WARN", f"E-STOP: {reason}")
                            self._event(ESTOP, 1, reason)
                    else:
                        err = (m.Error() or b"").decode("utf-8", "replace")[:256]
                        self.welcomed = False
                        if err.startswith(HELLO_AGAIN):
                            if now - last_hello > 0.2:
                                self.sock.send(self._hello(), zmq.DONTWAIT)
                                last_hello = now
                        else:
                            if self.refused != err:
                                self.log("ERROR", f"the broker refused this robot: {err}")
                            self.refused = err
                elif kind == "Ack":
                    s, status = m.Seq(), m.Status()
                    if status in (0, 1):
                        if outbox.pop(s, None) is not None:
                            self.acked += 1
                            if self.ack_log:
                                self.ack_log.write(f"{s} {'ok' if status == 0 else 'duplicate'}\n")
                                self.ack_log.flush()
                    elif status == 2:
                        if s in outbox:
                            outbox[s][1] = now
                    else:
                        self.log("ERROR", f"batch {s} rejected: {(m.Reason() or b'').decode('utf-8', 'replace')[:256]}")
                        outbox.pop(s, None)
                    self.outbox_depth = len(outbox)
                elif kind == "Params":
                    self._apply_params(m)
                elif kind == "Control":
                    reason = (m.Reason() or b"").decode("utf-8", "replace")[:256]
                    if m.Command() == 0 and not self.estop:
                        self.estop = True
                        self.log("WARN", f"E-STOP: {reason}")
                        self._event(ESTOP, 1, reason)
                    elif m.Command() == 1 and self.estop:
                        self.estop = False
                        self.log("info", f"e-stop lifted: {reason}")
                        self._event(RESUME, 1, reason)
                elif kind == "Heartbeat":
                    self.latest_version = max(self.latest_version, m.ParamsVersion())
            except Exception as e:  # a malformed message is refused and counted, never fatal
                self.log("WARN", f"refused a message from the broker: {type(e).__name__}: {e}")

        while not self.stop_flag:
            try:
                if self.sock.poll(2):
                    for _ in range(1024):
                        try:
                            buf = self.sock.recv(zmq.DONTWAIT, copy=True)
                        except zmq.Again:
                            break
                        handle(buf, time.monotonic())
            except zmq.ZMQError as e:
                self.log("ERROR", f"receive failed: {e}")
            now = time.monotonic()
            drain(now)
            with self.ev_lock:
                pending = bool(self.events)
            if pending and started is None:
                started = now
            if started is not None and now - started >= 2 * cfg["heartbeat"]:
                seal()
            # the broker
            if self.welcomed and now - last_heard_local > cfg["peer_timeout"]:
                self.log("WARN", f"broker silent for {now - last_heard_local:.1f} s; reconnecting")
                self.welcomed = False
            try:
                if not self.welcomed:
                    retry = 5.0 if self.refused else cfg["heartbeat"]
                    if now - last_hello > retry:
                        self.sock.send(self._hello(), zmq.DONTWAIT)
                        last_hello = now
                    continue
                if now - last_heartbeat > cfg["heartbeat"]:
                    self.sock.send(self.wire.heartbeat(self.name, self.weights_version, len(outbox),
                                                       self.shed_batches, env_steps, self.safe,
                                                       self.estop), zmq.DONTWAIT)
                    last_heartbeat = now
                for s in sorted(outbox):
                    data, sent = outbox[s]
                    if sent is None or now - sent >= cfg["resend"]:
                        self.sock.send(data, zmq.DONTWAIT)
                        outbox[s][1] = now
            except zmq.Again:
                pass  # no connection or a full pipe: the outbox keeps everything
        # What is recorded gets one more chance to leave (unacknowledged batches end with us).
        drain(time.monotonic())
        seal()
        for s in sorted(outbox):
            if outbox[s][1] is None:
                try:
                    self.sock.send(outbox[s][0], zmq.DONTWAIT)
                except zmq.Again:
                    break

    def _hello(self):
        return self.wire.hello(self.name, self.task, self.cfg["actor_index"], self.cfg["num_actors"],
                               self.obs_dim, self.act_dim)

    def _apply_params(self, m):
        version = m.Version()
        self.latest_version = max(self.latest_version, version)
        if self.fixed:
            # The policy file is what this robot was told to run: announced, never applied.
            if not self.params_ignored:
                self.log("info", f"Params v{version} not applied: acting with the policy file {self.policy_path}")
            self.params_ignored = True
            return
        if self.policy is None or version <= self.weights_version:
            return
        n = m.DataLength()
        if n != self.policy.n_params:
            self.log("ERROR", f"Params v{version}: {n} floats, this robot's {self.algo} network has "
                              f"{self.policy.n_params}; ignored")
            return
        data = m.DataAsNumpy()
        raw = np.asarray(data, dtype="<f4").tobytes()
        if fnv1a64(raw) != m.Checksum():
            self.log("ERROR", f"Params v{version}: checksum mismatch; ignored")
            return
        mean = std = None
        if m.ObsMeanLength() > 0:
            mean = np.asarray(m.ObsMeanAsNumpy(), dtype=np.float32)
            std = np.asarray(m.ObsStdAsNumpy(), dtype=np.float32) if m.ObsStdLength() == mean.size else None
            if (std is None or mean.size != self.obs_dim or not np.all(np.isfinite(mean))
                    or not np.all(np.isfinite(std)) or not np.all(std > 0)):
                self.log("ERROR", f"Params v{version}: observation normalizer invalid; ignored")
                return
        weights = self.policy.load(np.asarray(data, dtype=np.float32), mean, std)
        first = self.weights is None
        # The swap: act() reads self.weights once per call, so it sees the old or the new set.
        self.weights, self.weights_version = weights, version
        self.params_at = time.monotonic()
        if first:
            self.log("info", f"first parameters: v{version}")
