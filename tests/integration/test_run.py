"""The main job, as a user runs it: `fleetrl run` starts broker, learner and actors, learns the
task, stops when solved and leaves a run folder whose SQLite store answers the README's
queries."""
import json
import os
import re
import sqlite3
import subprocess
import tempfile

from harness import BIN, Failure, run_tests

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def run(task, timeout, *flags):
    root = tempfile.mkdtemp(prefix="fleetrl-run-")
    p = subprocess.run([BIN, "run", "--task", task, "--runs", root, "--run-name", "r",
                        "--no-progress", *flags], capture_output=True, text=True,
                       timeout=timeout)
    folder = os.path.join(root, "r")
    return p, folder


def readme_queries():
    """Every SQL statement in the README's sql code blocks."""
    text = open(README).read()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    stmts = []
    for b in blocks:
        body = "\n".join(l for l in b.splitlines() if not l.strip().startswith("--"))
        stmts += [s.strip() for s in body.split(";") if s.strip()]
    return stmts


def check_folder(folder, task):
    for f in ("replay.db", "summary.json", "policy.bin", "logs/learner.log", "logs/broker.log",
              "logs/actor-0.log"):
        if not os.path.exists(os.path.join(folder, f)):
            raise Failure(f"run folder lacks {f}")
    s = json.load(open(os.path.join(folder, "summary.json")))
    for k in ("task", "solved", "eval_return", "env_steps", "updates", "wall_seconds"):
        if k not in s:
            raise Failure(f"summary.json lacks {k}")
    if s["task"] != task:
        raise Failure(f"summary task {s['task']}")
    con = sqlite3.connect(f"file:{folder}/replay.db?mode=ro", uri=True)
    stmts = readme_queries()
    if len(stmts) < 6:
        raise Failure(f"found only {len(stmts)} queries in the README")
    for q in stmts:
        try:
            rows = con.execute(q).fetchall()
        except sqlite3.Error as e:
            raise Failure(f"README query failed: {q!r}: {e}")
        # Robots' safety events and randomized physics exist only in runs that have them.
        if not rows and not any(t in q for t in ("safety_events", "physics")):
            raise Failure(f"README query returned nothing after a run: {q!r}")
    items = con.execute("SELECT count(*) FROM items").fetchone()[0]
    per_actor = con.execute("SELECT count(*) FROM actor_summary WHERE items_in_replay > 0").fetchone()[0]
    return s, items, per_actor


def test_cartpole_dqn_solves_within_budget():
    p, folder = run("cartpole-dqn", 900)
    if p.returncode != 0:
        raise Failure(f"exit {p.returncode}; stderr:\n{p.stderr[-3000:]}")
    s, items, actors = check_folder(folder, "cartpole-dqn")
    if not s["solved"] or s["eval_return"] < 475 or s["env_steps"] > 100000:
        raise Failure(f"not solved within budget: {s}")
    if actors != 4:
        raise Failure(f"{actors} actors have items in the replay, expected 4")
    # The saved policy runs without a learner, through the same policy code actors use.
    e = subprocess.run([BIN, "eval", os.path.join(folder, "policy.bin"), "--episodes", "20"],
                       capture_output=True, text=True, timeout=120)
    if e.returncode != 0 or "env cartpole, 20 episodes: mean return" not in e.stdout:
        raise Failure(f"fleetrl eval: exit {e.returncode}\n{e.stdout}{e.stderr}")
    mean = float(e.stdout.split("mean return ")[1].split()[0])
    # The success rate's 95% Wilson interval, against its closed form.
    m = re.search(r"success ([0-9.]+)%, violations \d+ \(success 95% interval ([0-9.]+)-([0-9.]+)%\)",
                  e.stdout)
    if not m:
        raise Failure(f"fleetrl eval printed no success interval:\n{e.stdout}")
    k, n, z = round(float(m.group(1)) / 100 * 20), 20, 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / (1 + z * z / n)
    want = (100 * max(0.0, centre - half), 100 * min(1.0, centre + half))
    if abs(float(m.group(2)) - want[0]) > 0.051 or abs(float(m.group(3)) - want[1]) > 0.051:
        raise Failure(f"success interval {m.group(2)}-{m.group(3)}%, expected {want} for {k}/20")
    if mean < 200:
        raise Failure(f"the saved policy returns {mean} on fresh episodes, far below its "
                      f"evaluation {s['eval_return']}")
    e = subprocess.run([BIN, "eval", os.path.join(folder, "policy.bin"), "--env", "pendulum"],
                       capture_output=True, text=True, timeout=60)
    if e.returncode != 1 or "the policy needs obs 4" not in e.stderr:
        raise Failure(f"eval on a mismatched env: exit {e.returncode}: {e.stderr!r}")
    # The learner checkpoints at its clean stop, after the network that policy.bin holds: an
    # export of that checkpoint is the same file, byte for byte.
    e = subprocess.run([BIN, "export", folder], capture_output=True, text=True, timeout=60)
    exported = os.path.join(folder, "policy-export.bin")
    if e.returncode != 0 or not os.path.exists(exported):
        raise Failure(f"fleetrl export: exit {e.returncode}\n{e.stdout}{e.stderr}")
    if open(exported, "rb").read() != open(os.path.join(folder, "policy.bin"), "rb").read():
        raise Failure("the policy exported from the final checkpoint differs from policy.bin")
    e = subprocess.run([BIN, "export", folder, "--rank", "9"], capture_output=True, text=True,
                       timeout=60)
    if e.returncode != 1 or "no checkpoint of rank 9" not in e.stderr:
        raise Failure(f"export of a missing checkpoint: exit {e.returncode}: {e.stderr!r}")
    e = subprocess.run([BIN, "export", os.path.join(folder, "summary.json")],
                       capture_output=True, text=True, timeout=60)
    if e.returncode != 1 or "summary.json" not in e.stderr:
        raise Failure(f"export of a file that is not a store: exit {e.returncode}: {e.stderr!r}")
    print(f"  solved: eval {s['eval_return']:.1f} after {s['env_steps']} env steps, "
          f"{s['updates']} updates, {s['wall_seconds']:.1f} s; {items} items")


def test_gridworld_dqn_solves():
    # Solved only after three evaluations in a row at the level (--solve-evals).
    p, folder = run("gridworld-dqn", 300, "--actors", "2", "--solve-evals", "3")
    if p.returncode != 0:
        raise Failure(f"exit {p.returncode}; stderr:\n{p.stderr[-3000:]}")
    s, _, _ = check_folder(folder, "gridworld-dqn")
    if not s["solved"] or abs(s["eval_return"] - 9.8) > 1e-3:
        raise Failure(f"grid world not solved optimally (9.8): {s}")
    con = sqlite3.connect(f"file:{folder}/replay.db?mode=ro", uri=True)
    evals = [r for (r,) in con.execute("SELECT mean_return FROM evaluations ORDER BY rowid")]
    if len(evals) < 3 or min(evals[-3:]) < 9.4 or any(r >= 9.4 for r in evals[-4:-3]):
        raise Failure(f"solved with evaluations {evals}: expected it to stop at the third in a "
                      "row at 9.4 or above")
    log = open(os.path.join(folder, "logs", "learner.log")).read()
    for want in ("(1 of 3 in a row at the solve level)", "(2 of 3 in a row at the solve level)"):
        if want not in log:
            raise Failure(f"the learner's log lacks {want!r}")
    # Resumed with another level, the streak reached at 9.4 does not count: three new
    # evaluations at 9.5 are needed.
    p = subprocess.run([BIN, "run", "--task", "gridworld-dqn", "--runs", os.path.dirname(folder),
                        "--run-name", "r", "--no-progress", "--actors", "2", "--solve-evals", "3",
                        "--solve-return", "9.5"], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise Failure(f"resumed run: exit {p.returncode}; stderr:\n{p.stderr[-3000:]}")
    log = open(os.path.join(folder, "logs", "learner.log")).read()
    if "solve level changed since the checkpoint: its 3 evaluation(s) in a row" not in log:
        raise Failure("the resumed learner did not say that its streak no longer counts:\n"
                      + log[-2000:])
    more = [r for (r,) in con.execute("SELECT mean_return FROM evaluations ORDER BY rowid")]
    if len(more) < len(evals) + 3 or min(more[-3:]) < 9.5:
        raise Failure(f"resumed at 9.5: evaluations {more[len(evals):]}, expected three new "
                      "ones at 9.5 or above")


def test_unsolvable_budget_exits_4_with_summary():
    # A return above the 500-step limit cannot be reached, so the budget always runs out.
    p, folder = run("cartpole-dqn", 300, "--max-env-steps", "1500", "--actors", "1",
                    "--solve-return", "501")
    if p.returncode != 4:
        raise Failure(f"exit {p.returncode}, expected 4 (budget spent); stderr:\n{p.stderr[-2000:]}")
    s = json.load(open(os.path.join(folder, "summary.json")))
    if s["solved"] or s["env_steps"] < 1500:
        raise Failure(f"summary after budget: {s}")


if __name__ == "__main__":
    run_tests([test_gridworld_dqn_solves, test_unsolvable_budget_exits_4_with_summary,
               test_cartpole_dqn_solves_within_budget])
