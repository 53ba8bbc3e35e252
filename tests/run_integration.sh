#!/bin/sh
# Runs the integration tests (tests/integration/test_*.py): real broker, learner and actor
# processes on loopback with real ZeroMQ and SQLite. FLEETRL_BIN names the binary.
: "${FLEETRL_BIN:?set FLEETRL_BIN to the fleetrl binary}"
export FLEETRL_BIN
passed=0
failed=0
failures=""
for t in tests/integration/test_*.py; do
  name=$(basename "$t" .py)
  start=$(date +%s)
  log="${TMPDIR:-/tmp}/fleetrl-$name.log"
  if python3 "$t" > "$log" 2>&1; then
    passed=$((passed + 1))
    echo "ok   $name ($(( $(date +%s) - start )) s)"
  else
    failed=$((failed + 1))
    failures="$failures $name"
    echo "FAIL $name; its output:"
    sed 's/^/  | /' "$log" | tail -n 80
  fi
done
[ -n "$failures" ] && echo "failed:$failures"
echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
