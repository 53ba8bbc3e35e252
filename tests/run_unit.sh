#!/bin/sh
# Runs each cmocka unit-test binary given as an argument from the repository root, and closes
# with one line counting binaries that passed and failed.
passed=0
failed=0
failures=""
for t in "$@"; do
  name=$(basename "$t")
  start=$(date +%s)
  if "$t" > "$t.log" 2>&1; then
    passed=$((passed + 1))
    echo "ok   $name ($(( $(date +%s) - start )) s)"
  else
    failed=$((failed + 1))
    failures="$failures $name"
    echo "FAIL $name; its output:"
    sed 's/^/  | /' "$t.log" | tail -n 60
  fi
done
[ -n "$failures" ] && echo "failed:$failures"
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
