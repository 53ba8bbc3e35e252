#!/bin/sh
# bench_sim2real.sh: does domain randomization buy robustness? Trains reach-sac (the 6-joint
# planar arm) twice with the same seed and budget, once on nominal physics and once with
# uniform domain randomization over the seed's ranges (mass and motor strength x[0.8, 1.2], link
# length x[0.98, 1.02], sensor noise sigma [0, 0.05], action delay 0-2 steps) and the history of
# the last 3 observations and 4 commands in the observation, then evaluates both
# saved policies with `fleetrl eval --physics` on nominal physics (the reference, inside both
# training distributions) and on physics OUTSIDE the randomization ranges, printing the success
# rates side by side. Both trainings run the whole budget (a solve level above 100% success),
# since a randomized policy needs longer than the nominal one to reach the same nominal success.
# A long run: 350,000 env steps each unless ENV_STEPS is given (about 40 minutes each on two
# cores).
# Usage: bench/bench_sim2real.sh [ENV_STEPS] [EVAL_EPISODES]   (defaults: 350000, 500).
# FLEETRL_BIN names the binary (default build/fleetrl); BENCH_KEEP=1 keeps the run folders;
# BENCH_SEED sets the training seed (1); BENCH_RANDOMIZE the randomized training's flags
# (default "--randomize uniform --obs-history 3 --action-history 4", the best measured recipe;
# "--randomize uniform" alone for plain randomization).
# Prints figures with their 95% intervals; never fails on timing or on results.
set -u

steps=${1:-350000}
episodes=${2:-500}
seed=${BENCH_SEED:-1}
task=reach-sac
bin=${FLEETRL_BIN:-build/fleetrl}
me=bench_sim2real
default_randomize="--randomize uniform --obs-history 3 --action-history 4"

# shellcheck source=bench/args.sh
. "$(dirname "$0")/args.sh"
need_whole EVAL_EPISODES "$episodes" 1 100000
# Two evaluations need an --eval-period of at least 100 (its lower bound) each.
need_whole ENV_STEPS "$steps" 200 100000000
# Short runs still train: from the first fifth of the budget (or the preset's 2000 items).
min_replay=$((steps / 5))
[ "$min_replay" -gt 2000 ] && min_replay=2000
eval_period=$((steps / 2))
[ "$eval_period" -gt 5000 ] && eval_period=5000
budget="--max-env-steps $steps --solve-return 2 --min-replay $min_replay --eval-period $eval_period"
need_whole BENCH_SEED "$seed"
if [ ! -x "$bin" ]; then
  echo "$me: $bin is missing or not executable; build it with 'make' (or set FLEETRL_BIN)" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench_sim2real.XXXXXX") || {
  echo "$me: cannot create a temporary folder under ${TMPDIR:-/tmp}" >&2
  exit 1
}
cleanup() {
  if [ -n "${BENCH_KEEP:-}" ]; then
    echo "run folders kept: $tmp/nominal $tmp/randomized"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Trains one policy; $1 names the run, the rest are extra flags. Exit 0 (solved) and 4 (budget
# spent) both leave a policy to evaluate.
train() {
  name=$1
  shift
  t0=$(date +%s)
  # $budget is a list of flags, split on purpose.
  # shellcheck disable=SC2086
  "$bin" run --task "$task" --seed "$seed" --runs "$tmp" --run-name "$name" --no-progress \
    $budget "$@" >"$tmp/$name.log" 2>&1
  rc=$?
  t1=$(date +%s)
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 4 ] || [ ! -f "$tmp/$name/policy.bin" ]; then
    echo "$me: training '$name' failed: fleetrl run exited with code $rc" >&2
    tail -n 20 "$tmp/$name.log" >&2
    [ -f "$tmp/$name/logs/learner.log" ] && tail -n 20 "$tmp/$name/logs/learner.log" >&2
    exit 1
  fi
  summary=$tmp/$name/summary.json
  env_steps=$(sed -n 's/.*"env_steps": *\([0-9]*\).*/\1/p' "$summary" | head -n 1)
  best=$(sed -n 's/.*"best_eval_return": *\([-0-9.e+]*\).*/\1/p' "$summary" | head -n 1)
  printf '  %-11s exit %d (%s), %s env steps, %d s, best training evaluation %s\n' "$name" \
    "$rc" "$([ "$rc" -eq 0 ] && echo solved || echo budget spent)" "${env_steps:-?}" \
    "$((t1 - t0))" "${best:-?}"
}

echo "$task trained twice (seed $seed, $steps env steps each), evaluated on"
echo "$episodes episodes per physics setting with fleetrl eval --physics"
echo "randomized training: ${BENCH_RANDOMIZE:-$default_randomize}"
echo
echo "training"
train nominal
# $BENCH_RANDOMIZE is a list of flags, split on purpose.
# shellcheck disable=SC2086
train randomized ${BENCH_RANDOMIZE:-$default_randomize}

# Test physics: nominal first (inside both training distributions: the reference), then each
# parameter the planar arm has pushed outside its randomization range (by half to one and a half
# of the range's width), then all five at once: a quarter of each range's width outside it
# (delay rounded up to a whole step), then further out (37-100% of the widths).
near="mass=1.3,motor_strength=0.7,link_length=0.97,sensor_noise=0.0625,action_delay=3"
combined="mass=1.35,motor_strength=0.65,link_length=0.94,sensor_noise=0.08,action_delay=3"
set -- \
  "nominal" "" \
  "mass=1.4" "mass=1.4" \
  "motor_strength=0.6" "motor_strength=0.6" \
  "link_length=1.08" "link_length=1.08" \
  "sensor_noise=0.1" "sensor_noise=0.1" \
  "action_delay=4" "action_delay=4" \
  "all five, just outside" "$near" \
  "all five, further out" "$combined"

echo
echo "training ranges: mass x[0.8, 1.2], motor_strength x[0.8, 1.2], link_length x[0.98, 1.02],"
echo "sensor_noise [0, 0.05], action_delay 0-2 (the planar arm has no damping, friction, gravity)"
echo "all five, just outside: $near"
echo "all five, further out: $combined"
echo
echo "success rate (tip within 5 cm) [95% interval], $episodes episodes each, same evaluation"
echo "seed for all"
printf '  %-22s %22s %22s\n' "evaluated on" "trained on nominal" "trained randomized"
# Extracts "X% [lo-hi]" from fleetrl eval's summary line ("success X%, ... interval lo-hi%)").
success() {
  sed -n 's/.*success \([0-9.]*\)%, violations.*interval \([0-9.]*-[0-9.]*\)%.*/\1% [\2]/p' | head -n 1
}
# The lowest success over the rows with one parameter outside its range, per training.
low_nominal=""
low_randomized=""
while [ $# -ge 2 ]; do
  label=$1
  physics=$2
  shift 2
  row=""
  for name in nominal randomized; do
    if [ -n "$physics" ]; then
      out=$("$bin" eval "$tmp/$name/policy.bin" --task "$task" --episodes "$episodes" \
        --seed 777 --physics "$physics" 2>&1)
    else
      out=$("$bin" eval "$tmp/$name/policy.bin" --task "$task" --episodes "$episodes" \
        --seed 777 2>&1)
    fi
    rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "$me: fleetrl eval ($name, $label) exited with code $rc:" >&2
      printf '%s\n' "$out" >&2
      exit 1
    fi
    rate=$(printf '%s\n' "$out" | success)
    row="$row$(printf ' %22s' "${rate:-?}")"
    case $physics in
      *,* | "") ;;
      *)
        value=${rate%%%*}
        eval "low=\$low_$name"
        if [ -n "$value" ] && { [ -z "$low" ] || awk "BEGIN {exit !($value < $low)}"; }; then
          eval "low_$name=\$value"
        fi
        ;;
    esac
  done
  printf '  %-22s%s\n' "$label" "$row"
done
echo
echo "lowest success with one parameter outside its range: ${low_randomized:-?}% trained" \
  "randomized, ${low_nominal:-?}% trained on nominal physics"
exit 0
