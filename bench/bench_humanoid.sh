#!/bin/sh
# bench_humanoid.sh: the MuJoCo humanoid through the whole stack (broker, learner, 2 actors) for
# a fixed number of environment steps; prints the step rates and the learning curve of that
# run, both read back from its replay.db and summary.json, next to the physics-only step rate
# of one process (bench_mujoco) measured in the same invocation.
# Usage: bench/bench_humanoid.sh [ENV_STEPS] [TASK]   (defaults 20000, humanoid-walk-sac)
# FLEETRL_BIN names the binary (default build/fleetrl); BENCH_KEEP=1 keeps the run folder.
# Prints figures; never fails on timing.
set -u

steps=${1:-20000}
task=${2:-humanoid-walk-sac}
actors=2
bin=${FLEETRL_BIN:-build/fleetrl}
me=bench_humanoid

# shellcheck source=bench/args.sh
. "$(dirname "$0")/args.sh"
# Five evaluations need an --eval-period of at least 100 (its lower bound) each.
need_whole ENV_STEPS "$steps" 500 100000000
if [ ! -x "$bin" ]; then
  echo "$me: $bin is missing or not executable; build it with 'make' (or set FLEETRL_BIN)" >&2
  exit 1
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
  echo "$me: the sqlite3 command-line tool is missing; install the Debian package sqlite3" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench_humanoid.XXXXXX") || {
  echo "$me: cannot create a temporary folder under ${TMPDIR:-/tmp}" >&2
  exit 1
}
cleanup() {
  if [ -n "${BENCH_KEEP:-}" ]; then
    echo "run folder kept: $tmp/bench"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Evaluations a handful of times during the run, and training from the first fifth on (or the
# usual 2000 items, whichever is fewer) so that short runs still train.
eval_period=$((steps / 5))
min_replay=$((steps / 5))
[ "$min_replay" -gt 2000 ] && min_replay=2000
run=$tmp/bench
db=$run/replay.db

echo "$task through the whole stack: broker, learner, $actors actors, $steps env steps"
echo "  (evaluation every $eval_period env steps, 3 episodes; training from $min_replay items)"
t0=$(date +%s)
"$bin" run --task "$task" --actors "$actors" --max-env-steps "$steps" --runs "$tmp" \
  --run-name bench --no-progress --eval-period "$eval_period" --eval-episodes 3 \
  --min-replay "$min_replay" >"$tmp/run.log" 2>&1
rc=$?
t1=$(date +%s)
# 4 is the normal outcome here (budget spent); 0 means the task was solved within it.
if [ "$rc" -ne 0 ] && [ "$rc" -ne 4 ]; then
  echo "$me: fleetrl run exited with code $rc" >&2
  tail -n 20 "$tmp/run.log" >&2
  if [ -f "$run/logs/learner.log" ]; then
    echo "--- last lines of $run/logs/learner.log" >&2
    tail -n 30 "$run/logs/learner.log" >&2
  fi
  exit 1
fi
if [ ! -f "$db" ] || [ ! -f "$run/summary.json" ]; then
  echo "$me: the run left no replay.db or summary.json in $run" >&2
  exit 1
fi
echo "  fleetrl run exited with code $rc after $((t1 - t0)) s of wall time"

q() {
  sqlite3 -readonly -noheader -list "$db" "$@"
}
# readfile() and json_extract() are the sqlite3 shell's own, so no JSON tool is needed.
summary_path=$(printf '%s' "$run/summary.json" | sed "s/'/''/g")
summary="(SELECT readfile('$summary_path') AS j)"

echo
echo "environment steps per second (env_steps / (last_seen - first_seen) for each actor)"
q "SELECT printf('  %-10s %10s %10s %12s', 'actor', 'env steps', 'seconds', 'env steps/s');
   SELECT printf('  %-10s %10d %10.1f %12s', name, env_steps, last_seen - first_seen,
                 CASE WHEN last_seen > first_seen
                      THEN printf('%.1f', env_steps / (last_seen - first_seen)) ELSE 'n/a' END)
   FROM actors ORDER BY name;
   SELECT printf('  %-10s %10d %10.1f %12s', 'total', json_extract(j, '\$.env_steps'),
                 json_extract(j, '\$.wall_seconds'),
                 CASE WHEN json_extract(j, '\$.wall_seconds') > 0
                      THEN printf('%.1f', json_extract(j, '\$.env_steps') * 1.0
                                          / json_extract(j, '\$.wall_seconds'))
                      ELSE 'n/a' END)
   FROM $summary;"

echo
echo "learner updates"
q "SELECT printf('  %d updates in %.1f s: %s updates/s, %.3f updates per env step',
                 json_extract(j, '\$.updates'), json_extract(j, '\$.wall_seconds'),
                 CASE WHEN json_extract(j, '\$.wall_seconds') > 0
                      THEN printf('%.1f', json_extract(j, '\$.updates') * 1.0
                                          / json_extract(j, '\$.wall_seconds'))
                      ELSE 'n/a' END,
                 json_extract(j, '\$.updates') * 1.0 / MAX(1, json_extract(j, '\$.env_steps')))
   FROM $summary;"
# The two phases of the run: random actions until min-replay items are stored (actors limited
# by physics and ingest), then training (actors held back by the rate limiter, so the learner's
# update rate sets the pace). The batches table keeps every accepted batch, also after eviction.
q "WITH b AS (SELECT received_at,
                     SUM(env_steps) OVER (ORDER BY received_at, actor_id, seq
                                          ROWS UNBOUNDED PRECEDING) AS cum
              FROM batches),
        w AS (SELECT received_at AS at, cum FROM b WHERE cum >= $min_replay
              ORDER BY received_at LIMIT 1),
        r AS (SELECT MIN(first_seen) AS t0, MAX(last_seen) AS t1 FROM actors)
   SELECT printf('  warm-up (random actions, %d env steps): %.1f s, %s env steps/s',
                 w.cum, w.at - r.t0,
                 CASE WHEN w.at > r.t0 THEN printf('%.1f', w.cum / (w.at - r.t0))
                      ELSE 'n/a' END)
          || char(10) ||
          printf('  training (%d env steps, %d updates): %.1f s, %s env steps/s, %s updates/s',
                 json_extract(s.j, '\$.env_steps') - w.cum, json_extract(s.j, '\$.updates'),
                 r.t1 - w.at,
                 CASE WHEN r.t1 > w.at
                      THEN printf('%.1f', (json_extract(s.j, '\$.env_steps') - w.cum)
                                          / (r.t1 - w.at)) ELSE 'n/a' END,
                 CASE WHEN r.t1 > w.at
                      THEN printf('%.1f', json_extract(s.j, '\$.updates') / (r.t1 - w.at))
                      ELSE 'n/a' END)
   FROM w, r, $summary s;"

echo
echo "learning curve: greedy evaluations"
q "SELECT printf('  %8s %10s %8s   %s', 'seconds', 'env steps', 'updates', 'return (mean ± std)');
   SELECT printf('  %8.1f %10d %8d   %.1f ± %.1f over %d episodes',
                 e.at - (SELECT MIN(first_seen) FROM actors), e.env_steps, e.updates,
                 e.mean_return, e.std_return, e.episodes)
   FROM evaluations e ORDER BY e.at;"
n_eval=$(q "SELECT COUNT(*) FROM evaluations;")
[ "${n_eval:-0}" -gt 0 ] || echo "  (no evaluation was recorded)"

echo
echo "learning curve: training episodes per 10% slice of their env steps (by ended_at)"
# Each finished episode is placed by the running total of episode lengths when it ended, so
# the slices split the env steps of finished episodes (both actors) into ten equal parts.
q "SELECT printf('  %-9s %10s %9s %12s %11s', 'slice', 'env steps', 'episodes', 'mean return',
                 'mean length');"
q "WITH e AS (SELECT episode_return, length,
                     SUM(length) OVER (ORDER BY ended_at, episode_id
                                       ROWS UNBOUNDED PRECEDING) AS cum
              FROM episodes),
        t AS (SELECT MAX(cum) AS total FROM e),
        s AS (SELECT MIN(9, (cum - 1) * 10 / total) AS slice, episode_return, length, cum
              FROM e, t WHERE total > 0)
   SELECT printf('  %-9s %10d %9d %12.1f %11.1f', (slice * 10) || '-' || (slice * 10 + 10) || '%',
                 MAX(cum), COUNT(*), AVG(episode_return), AVG(length))
   FROM s GROUP BY slice ORDER BY slice;"
n_ep=$(q "SELECT COUNT(*) FROM episodes;")
[ "${n_ep:-0}" -gt 0 ] || echo "  (no training episode finished)"

echo
env=$(q "SELECT value FROM meta WHERE key = 'env';")
mj=$(dirname "$bin")/bench/bench_mujoco
echo "for comparison: physics only, one process, random actions ($mj)"
if [ -x "$mj" ]; then
  out=$("$mj" 2>&1)
  line=$(printf '%s\n' "$out" | grep "^$env ")
  if [ -n "$line" ]; then
    printf '%s\n' "$out" | grep '^env ' | sed 's/^/  /'
    printf '  %s\n' "$line"
    total=$(q "SELECT json_extract(j, '\$.env_steps') * 1.0 / json_extract(j, '\$.wall_seconds')
               FROM $summary WHERE json_extract(j, '\$.wall_seconds') > 0;")
    printf '%s\n' "$line" | awk -v total="${total:-0}" -v n="$actors" '
      $3 + 0 > 0 && total + 0 > 0 {
        printf "  whole stack: %.1f env steps/s in total = %.1f%% of one process'"'"'s physics-only rate (%d actors)\n",
               total, 100 * total / $3, n
      }'
  else
    echo "  bench_mujoco has no line for env '$env'"
  fi
else
  echo "  not built; 'make $mj' builds it"
fi
exit 0
