#!/usr/bin/env python3
"""Cross-checks the C codec against the reference FlatBuffers Python runtime.

For each named case, the expected values are tests/conformance/<case>.json (the same files flatc
turns into binaries for the C decoder). This script:
  1. generates Python readers/builders from the schema with `flatc --python`,
  2. reads <c-dir>/<case>.bin (built by the C encoder) with them and asserts every field of the
     schema against the JSON (absent fields against the schema defaults),
  3. builds the same message with the Python builder into <out-dir>/<case>.bin for the C
     decoder to check.
Exits 0 when every field matched, 1 with one line per mismatch otherwise.
"""
import argparse
import importlib
import json
import math
import os
import struct
import subprocess
import sys

# Every field of every table in declaration order: (name, kind, default). A kind is a scalar
# type, an enum name, "string", "[scalar]" or "[Table]". Kept by hand on purpose: the test must
# notice when the schema and the codec disagree, so it cannot derive one from the other.
TABLES = {
    "Hello": [
        ("schema_hash", "ulong", 0), ("role", "Role", 0), ("name", "string", None),
        ("actor_index", "int", -1), ("num_actors", "int", 0), ("task", "string", None),
        ("obs_dim", "uint", 0), ("act_dim", "uint", 0),
    ],
    "Welcome": [
        ("ok", "bool", False), ("error", "string", None), ("schema_hash", "ulong", 0),
        ("params_version", "ulong", 0), ("heartbeat_ms", "uint", 0), ("estop", "bool", False),
        ("estop_reason", "string", None),
    ],
    "EpisodeStat": [
        ("episode_return", "float", 0.0), ("length", "uint", 0), ("success", "bool", False),
        ("truncated", "bool", False), ("violations", "uint", 0), ("policy_version", "ulong", 0),
        ("physics", "string", None),
    ],
    "SafetyEvent": [
        ("kind", "SafetyKind", 0), ("count", "uint", 1), ("time_ns", "ulong", 0),
        ("detail", "string", None),
    ],
    "ExperienceBatch": [
        ("actor", "string", None), ("seq", "ulong", 0), ("count", "uint", 0),
        ("obs_dim", "uint", 0), ("act_dim", "uint", 0), ("obs", "[float]", None),
        ("action_index", "[int]", None), ("action", "[float]", None),
        ("reward", "[float]", None), ("discount", "[float]", None),
        ("next_obs", "[float]", None), ("priority", "[float]", None),
        ("policy_version", "[ulong]", None), ("episodes", "[EpisodeStat]", None),
        ("env_steps", "uint", 0), ("demonstration", "bool", False),
        ("safety", "[SafetyEvent]", None),
    ],
    "Ack": [
        ("actor", "string", None), ("seq", "ulong", 0), ("status", "AckStatus", 0),
        ("reason", "string", None),
    ],
    "Params": [
        ("version", "ulong", 0), ("checksum", "ulong", 0), ("task", "string", None),
        ("data", "[float]", None), ("obs_mean", "[float]", None), ("obs_std", "[float]", None),
    ],
    "Heartbeat": [
        ("name", "string", None), ("role", "Role", 0), ("params_version", "ulong", 0),
        ("outbox", "uint", 0), ("shed", "ulong", 0), ("env_steps", "ulong", 0),
        ("time_ns", "ulong", 0), ("safe_mode", "bool", False),
        ("estop", "bool", False),
    ],
    "Control": [
        ("command", "ControlCommand", 0), ("reason", "string", None), ("value", "double", 0.0),
    ],
    "Credit": [("batches", "uint", 0)],
}
ENUMS = ("Role", "AckStatus", "ControlCommand", "SafetyKind")
# Builder method per scalar kind (Python runtime names).
PREPEND = {
    "bool": "Bool", "ubyte": "Uint8", "ushort": "Uint16", "int": "Int32", "uint": "Uint32",
    "ulong": "Uint64", "float": "Float32", "double": "Float64",
}
ELEM_SIZE = {"int": 4, "uint": 4, "float": 4, "ulong": 8}

errors = []


def camel(name):
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def f32(x):
    """x rounded to float32, as flatc stores a JSON number in a float field."""
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def same_float(a, b, single):
    if single:
        a, b = f32(a), f32(b)
        return struct.pack("<f", a) == struct.pack("<f", b)
    return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))


class Schema:
    def __init__(self, gen_dir):
        sys.path.insert(0, gen_dir)
        self.mod = {t: importlib.import_module("fleetrl." + t) for t in
                    list(TABLES) + list(ENUMS) + ["Message", "Body"]}

    def cls(self, name):
        return getattr(self.mod[name], name)

    def enum_value(self, enum, v):
        if isinstance(v, str):
            return getattr(self.cls(enum), v)
        return int(v)


def check_scalar(schema, where, kind, got, want):
    if kind in ENUMS:
        want = schema.enum_value(kind, want)
    if kind in ("float", "double"):
        ok = same_float(got, want, kind == "float")
    elif kind == "bool":
        ok = bool(got) == bool(want)
    else:
        ok = int(got) == int(want)
    if not ok:
        errors.append("%s: got %r, expected %r" % (where, got, want))


def check_table(schema, tname, obj, want, where):
    """Asserts every field of table tname in obj against the JSON object want."""
    for name, kind, default in TABLES[tname]:
        at = "%s.%s" % (where, name)
        acc = camel(name)
        if kind == "string":
            got = getattr(obj, acc)()
            exp = want.get(name, default)
            got = None if got is None else got.decode("utf-8")
            if got != exp:
                errors.append("%s: got %r, expected %r" % (at, got, exp))
        elif kind.startswith("["):
            elem = kind[1:-1]
            exp = want.get(name)
            if exp is None or len(exp) == 0:
                # The C encoder omits empty vectors: the field must be absent, not empty.
                if not getattr(obj, acc + "IsNone")():
                    errors.append("%s: present with %d elements, expected absent" %
                                  (at, getattr(obj, acc + "Length")()))
                continue
            n = getattr(obj, acc + "Length")()
            if n != len(exp):
                errors.append("%s: %d elements, expected %d" % (at, n, len(exp)))
                continue
            for j, e in enumerate(exp):
                got = getattr(obj, acc)(j)
                if elem in TABLES:
                    check_table(schema, elem, got, e, "%s[%d]" % (at, j))
                else:
                    check_scalar(schema, "%s[%d]" % (at, j), elem, got, e)
        else:
            check_scalar(schema, at, kind, getattr(obj, acc)(), want.get(name, default))


def check_message(schema, buf, want, where):
    Message = schema.cls("Message")
    if not Message.MessageBufferHasIdentifier(buf, 0):
        errors.append("%s: file identifier %r, expected b'FRL1'" % (where, bytes(buf[4:8])))
        return
    msg = Message.GetRootAs(buf, 0)
    check_scalar(schema, where + ".schema_version", "ushort", msg.SchemaVersion(),
                 want["schema_version"])
    tname = want["body_type"]
    btype = getattr(schema.cls("Body"), tname)
    if msg.BodyType() != btype:
        errors.append("%s.body_type: got %d, expected %d (%s)" %
                      (where, msg.BodyType(), btype, tname))
        return
    tab = msg.Body()
    if tab is None:
        errors.append("%s.body: missing" % where)
        return
    body = schema.cls(tname)()
    body.Init(tab.Bytes, tab.Pos)
    check_table(schema, tname, body, want["body"], "%s.%s" % (where, tname))


def build_table(schema, builder, tname, want):
    """Builds table tname from the JSON object want with the generated builder functions."""
    m = schema.mod[tname]
    refs = {}
    # Children first: nothing can be created while a table is open.
    for name, kind, _ in TABLES[tname]:
        if name not in want:
            continue
        v = want[name]
        if kind == "string":
            refs[name] = builder.CreateString(v)
        elif kind.startswith("["):
            elem = kind[1:-1]
            if elem in TABLES:
                items = [build_table(schema, builder, elem, e) for e in v]
                getattr(m, "%sStart%sVector" % (tname, camel(name)))(builder, len(items))
                for r in reversed(items):
                    builder.PrependUOffsetTRelative(r)
            else:
                getattr(m, "%sStart%sVector" % (tname, camel(name)))(builder, len(v))
                prepend = getattr(builder, "Prepend" + PREPEND[elem])
                for x in reversed(v):
                    prepend(float(x) if elem == "float" else int(x))
            refs[name] = builder.EndVector()
    getattr(m, tname + "Start")(builder)
    for name, kind, _ in TABLES[tname]:
        if name not in want:
            continue
        add = getattr(m, "%sAdd%s" % (tname, camel(name)))
        if name in refs:
            add(builder, refs[name])
        elif kind in ENUMS:
            add(builder, schema.enum_value(kind, want[name]))
        elif kind in ("float", "double"):
            add(builder, float(want[name]))
        elif kind == "bool":
            add(builder, bool(want[name]))
        else:
            add(builder, int(want[name]))
    return getattr(m, tname + "End")(builder)


def build_message(schema, want):
    import flatbuffers
    builder = flatbuffers.Builder(1024)
    tname = want["body_type"]
    body = build_table(schema, builder, tname, want["body"])
    m = schema.mod["Message"]
    m.MessageStart(builder)
    m.MessageAddSchemaVersion(builder, int(want["schema_version"]))
    m.MessageAddBodyType(builder, getattr(schema.cls("Body"), tname))
    m.MessageAddBody(builder, body)
    msg = m.MessageEnd(builder)
    builder.Finish(msg, file_identifier=b"FRL1")
    return bytes(builder.Output())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flatc", default="flatc")
    ap.add_argument("--schema", required=True)
    ap.add_argument("--json-dir", required=True, help="expected values, <case>.json")
    ap.add_argument("--c-dir", required=True, help="C-encoded buffers, <case>.bin")
    ap.add_argument("--out-dir", required=True, help="where to write Python-built <case>.bin")
    ap.add_argument("cases", nargs="+")
    args = ap.parse_args()

    gen = os.path.join(args.out_dir, "gen")
    os.makedirs(gen, exist_ok=True)
    subprocess.run([args.flatc, "--python", "-o", gen, args.schema], check=True)
    schema = Schema(gen)

    for case in args.cases:
        with open(os.path.join(args.json_dir, case + ".json")) as f:
            want = json.load(f)
        with open(os.path.join(args.c_dir, case + ".bin"), "rb") as f:
            buf = bytearray(f.read())
        check_message(schema, buf, want, case)
        out = build_message(schema, want)
        # The Python-built buffer must read back the same in Python before C sees it.
        check_message(schema, bytearray(out), want, case + "(python-built)")
        with open(os.path.join(args.out_dir, case + ".bin"), "wb") as f:
            f.write(out)

    for e in errors:
        print("check_python: " + e, file=sys.stderr)
    if errors:
        return 1
    print("check_python: %d cases, C-built buffers match, Python-built buffers written" %
          len(args.cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
