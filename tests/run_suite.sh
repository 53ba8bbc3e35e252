#!/bin/sh
# Runs each test given as an argument from the repository root (a cmocka binary, or a Python
# integration test run with python3), shows the output of the ones that fail, and closes with
# one line counting them. Usage: run_suite.sh LABEL TEST...
label=$1
shift
passed=0
failed=0
failures=""
for t in "$@"; do
  name=$(basename "$t" .py)
  log="${TMPDIR:-/tmp}/fleetrl-$label-$name.log"
  start=$(date +%s)
  case "$t" in
    *.py) python3 "$t" > "$log" 2>&1 ;;
    *) "$t" > "$log" 2>&1 ;;
  esac
  if [ $? -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok   $name ($(( $(date +%s) - start )) s)"
  else
    failed=$((failed + 1))
    failures="$failures $name"
    echo "FAIL $name; the end of its output:"
    sed 's/^/  | /' "$log" | tail -n 80
  fi
done
[ -n "$failures" ] && echo "failed:$failures"
echo "$label: $passed passed, $failed failed"
[ -n "$FLEETRL_TEST_COUNTS" ] && echo "$passed $failed" >> "$FLEETRL_TEST_COUNTS"
[ "$failed" -eq 0 ]
