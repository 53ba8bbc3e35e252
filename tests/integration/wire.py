"""fleetrl messages from Python, through code that `flatc --python` generates from
schema/fleetrl.fbs (the real FlatBuffers runtime, independent of the C codec)."""
import importlib
import os
import subprocess
import sys
import tempfile

import flatbuffers

SCHEMA = os.path.join(os.path.dirname(__file__), "..", "..", "schema", "fleetrl.fbs")
_gen = tempfile.mkdtemp(prefix="fleetrl-pygen-")
subprocess.run(["flatc", "--python", "-o", _gen, SCHEMA], check=True)
sys.path.insert(0, _gen)
fb = {name: importlib.import_module(f"fleetrl.{name}") for name in (
    "Message", "Body", "Hello", "Welcome", "ExperienceBatch", "Ack", "Heartbeat", "Role",
    "AckStatus", "Params", "Control")}
BODY = fb["Body"].Body


def schema_hash(path=SCHEMA):
    """FNV-1a 64 of the schema text without // comments and whitespace (as the C side)."""
    out = []
    for line in open(path, encoding="utf-8"):
        line = line.split("//", 1)[0]
        out.append("".join(ch for ch in line if ch not in " \t\r\n"))
    h = 0xcbf29ce484222325
    for b in "".join(out).encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def _finish(b, body_type, body):
    M = fb["Message"]
    M.MessageStart(b)
    M.MessageAddSchemaVersion(b, 1)
    M.MessageAddBodyType(b, body_type)
    M.MessageAddBody(b, body)
    b.Finish(M.MessageEnd(b), file_identifier=b"FRL1")
    return bytes(b.Output())


def hello(name, task="cartpole-dqn", obs_dim=4, act_dim=1, role=0, hash_=None):
    b = flatbuffers.Builder(256)
    n, t = b.CreateString(name), b.CreateString(task)
    H = fb["Hello"]
    H.HelloStart(b)
    H.HelloAddSchemaHash(b, schema_hash() if hash_ is None else hash_)
    H.HelloAddRole(b, role)
    H.HelloAddName(b, n)
    H.HelloAddTask(b, t)
    H.HelloAddObsDim(b, obs_dim)
    H.HelloAddActDim(b, act_dim)
    return _finish(b, BODY.Hello, H.HelloEnd(b))


def heartbeat(name):
    b = flatbuffers.Builder(128)
    n = b.CreateString(name)
    H = fb["Heartbeat"]
    H.HeartbeatStart(b)
    H.HeartbeatAddName(b, n)
    return _finish(b, BODY.Heartbeat, H.HeartbeatEnd(b))


def _floats(b, start_fn, values):
    start_fn(b, len(values))
    for v in reversed(values):
        b.PrependFloat32(v)
    return b.EndVector()


def experience(actor, seq, obs, actions, rewards, discounts, next_obs, obs_dim=4):
    """A discrete-action batch; obs/next_obs are flat lists of count*obs_dim floats."""
    E = fb["ExperienceBatch"]
    b = flatbuffers.Builder(1024)
    a = b.CreateString(actor)
    vo = _floats(b, E.ExperienceBatchStartObsVector, obs)
    E.ExperienceBatchStartActionIndexVector(b, len(actions))
    for v in reversed(actions):
        b.PrependInt32(v)
    va = b.EndVector()
    vr = _floats(b, E.ExperienceBatchStartRewardVector, rewards)
    vd = _floats(b, E.ExperienceBatchStartDiscountVector, discounts)
    vn = _floats(b, E.ExperienceBatchStartNextObsVector, next_obs)
    E.ExperienceBatchStart(b)
    E.ExperienceBatchAddActor(b, a)
    E.ExperienceBatchAddSeq(b, seq)
    E.ExperienceBatchAddCount(b, len(actions))
    E.ExperienceBatchAddObsDim(b, obs_dim)
    E.ExperienceBatchAddActDim(b, 1)
    E.ExperienceBatchAddObs(b, vo)
    E.ExperienceBatchAddActionIndex(b, va)
    E.ExperienceBatchAddReward(b, vr)
    E.ExperienceBatchAddDiscount(b, vd)
    E.ExperienceBatchAddNextObs(b, vn)
    E.ExperienceBatchAddEnvSteps(b, len(actions))
    return _finish(b, BODY.ExperienceBatch, E.ExperienceBatchEnd(b))


def decode(buf):
    """Returns (body type name, table object) of a received message."""
    m = fb["Message"].Message.GetRootAs(buf, 0)
    t = m.BodyType()
    names = {v: k for k, v in vars(BODY).items() if not k.startswith("_")}
    name = names.get(t, "NONE")
    tab = m.Body()
    if name in fb:
        obj = getattr(fb[name], name)()
        obj.Init(tab.Bytes, tab.Pos)
        return name, obj
    return name, None
