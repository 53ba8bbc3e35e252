#!/bin/sh
# bench_fuzz.sh [SECONDS] [TARGET...]: runs each libFuzzer target (tests/fuzz/fuzz_<target>.c;
# all of them by default: `make fuzz-list`) for SECONDS (default 600), one after the other,
# each from its seed corpus and its regression inputs (tests/fuzz/regressions/<target>/) in a
# fresh working corpus (build-fuzz/<target>/corpus), and prints per target: executions, exec/s,
# coverage (libFuzzer's cov: edges and ft: features, at the start and the end), corpus growth,
# peak memory and findings. A target stops at its first finding (crash, sanitizer report, leak,
# timeout of 10 s, more than 2 GB); the input is kept as build-fuzz/<target>/crash-* (or
# leak-*, timeout-*, oom-*), its log in build-fuzz/<target>/last-run.log. Once the bug is fixed
# the input goes to tests/fuzz/regressions/<target>/, where `make test` replays it.
# Builds the targets first (`make fuzz-build`: clang with libFuzzer, ASan and UBSan). Exits 1
# when a target had a finding, else 0; never fails on speed.
set -u
me=bench_fuzz
cd "$(dirname "$0")/.." || exit 2
. bench/args.sh
seconds=${1:-600}
need_whole SECONDS "$seconds" 1 86400
[ $# -gt 0 ] && shift

make --no-print-directory fuzz-build >&2 || { echo "$me: make fuzz-build failed" >&2; exit 2; }
list=$(make --no-print-directory -s fuzz-list) || exit 2
targets=${*:-$(echo "$list" | cut -d' ' -f1)}

# "cov: 554 ft: 1265 corp: 8/15788b" from a libFuzzer status line, as "554 1265 8 15788b".
status_of() {
  sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\)\/\([0-9]*[KMG]*b\).*/\1 \2 \3 \4/p' \
    "$1"
}
stat_of() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

summary=""
found_any=0
for t in $targets; do
  seeds=$(echo "$list" | awk -v t="$t" '$1 == t {print $2}')
  if [ -z "$seeds" ]; then
    echo "$me: no fuzz target '$t' (targets: $(echo "$list" | cut -d' ' -f1 | tr '\n' ' '))" >&2
    exit 2
  fi
  dir=build-fuzz/$t
  rm -rf "$dir/corpus" && mkdir -p "$dir/corpus"
  cp "$seeds"/* "$dir/corpus/"
  n_reg=0
  if [ -d "tests/fuzz/regressions/$t" ]; then
    for f in "tests/fuzz/regressions/$t"/*; do
      case $(basename "$f") in README*) continue ;; esac
      [ -f "$f" ] && cp "$f" "$dir/corpus/" && n_reg=$((n_reg + 1))
    done
  fi
  n_in=$(ls "$dir/corpus" | wc -l)
  in_bytes=$(cat "$dir"/corpus/* | wc -c)
  echo "== fuzz_$t: ${seconds} s from $n_in inputs, $in_bytes bytes ($((n_in - n_reg)) seeds in" \
       "$seeds, $n_reg regression inputs)"
  touch "$dir/.started"
  log=$dir/last-run.log
  # -timeout: an input that runs 10 s is a hang (libFuzzer's default waits 20 minutes).
  ( cd "$dir" && ./fuzz -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
      -rss_limit_mb=2048 -artifact_prefix=./ corpus ) > "$log" 2>&1
  rc=$?
  findings=$(find "$dir" -maxdepth 1 -newer "$dir/.started" \
               \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) \
               -printf '%f ' 2>/dev/null)
  runs=$(stat_of number_of_executed_units "$log")
  rate=$(stat_of average_exec_per_sec "$log")
  added=$(stat_of new_units_added "$log")
  rss=$(stat_of peak_rss_mb "$log")
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
  first=$(grep -m 1 'INITED' "$log" > "$dir/.first" && status_of "$dir/.first")
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 > "$dir/.last" && status_of "$dir/.last")
  set -- $first
  cov0=${1:-?} ft0=${2:-?} corp0=${3:-?} bytes0=${4:-?}
  set -- $last
  cov1=${1:-?} ft1=${2:-?} corp1=${3:-?} bytes1=${4:-?}
  corpus_files=$(ls "$dir/corpus" | wc -l)
  echo "   executions:  ${runs:-?} in ${took:-?} s ($rate exec/s), peak RSS ${rss:-?} MB"
  echo "   coverage:    cov $cov0 -> $cov1 edges, ft $ft0 -> $ft1 features"
  echo "   corpus:      $corp0 -> $corp1 inputs kept ($bytes0 -> $bytes1), $added new units," \
       "$corpus_files files in $dir/corpus"
  if [ -n "$findings" ]; then
    found_any=1
    echo "   findings:    $findings(in $dir/; libFuzzer exit $rc)"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz_[a-z]+:)' "$log" | head -n 5 | sed 's/^/     | /'
  elif [ "$rc" -ne 0 ]; then
    found_any=1
    findings="exit $rc"
    echo "   findings:    none saved, but libFuzzer exited $rc; see $log"
  else
    echo "   findings:    none"
  fi
  summary="$summary$(printf '%-8s %12s %8s %14s %16s %10s  %s' "$t" "${runs:-?}" "${rate:-?}" \
    "$cov0->$cov1" "$corp0->$corp1" "${took:-?}" "${findings:-none}")
"
done

echo
printf '%-8s %12s %8s %14s %16s %10s  %s\n' target executions exec/s "cov (edges)" "corpus inputs" \
  seconds findings
printf '%s' "$summary"
exit "$found_any"
