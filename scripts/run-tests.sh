#!/bin/sh
# Runs Criterion test binaries one after another, then prints one closing
# line with the totals.  Fails if any binary fails.
# Usage: scripts/run-tests.sh TEST_BINARY...
# CATZILLA_BIN (default build/catzilla) is the server the integration tests start.
set -u
export CATZILLA_BIN="${CATZILLA_BIN:-build/catzilla}"
status=0
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "$@"; do
    echo "== $t"
    "$t" -j1 ${CRITERION_ARGS:-} >"$log" 2>&1
    rc=$?
    cat "$log"
    line=$(grep 'Synthesis:' "$log" | tail -n 1)
    p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\) | Crashing: \([0-9]*\).*/\1 \2/p')
    passed=$((passed + ${p:-0}))
    if [ -n "$f" ]; then
        failed=$((failed + ${f% *} + ${f#* }))
    fi
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        echo "FAILED: $t (exit $rc)"
        status=1
        [ -z "$line" ] && failed=$((failed + 1))
    fi
done
echo "tests: $passed passed, $failed failed"
exit $status
