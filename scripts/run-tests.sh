#!/bin/sh
# Runs Criterion test binaries one after another and fails if any fails.
# Usage: scripts/run-tests.sh BUILD_DIR TEST_BINARY...
set -u
build=$1; shift
export CATZILLA_BIN="${CATZILLA_BIN:-$build/catzilla}"
status=0
for t in "$@"; do
    echo "== $t"
    "$t" -j1 ${CRITERION_ARGS:-} || { echo "FAILED: $t"; status=1; }
done
exit $status
