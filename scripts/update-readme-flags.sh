#!/bin/sh
# Regenerates the flag table in README.md (between the flags markers) from
# the option table, via `catzilla --help-markdown`.
set -eu
cd "$(dirname "$0")/.."
make -s build/catzilla
table=$(mktemp)
build/catzilla --help-markdown > "$table"
awk -v table="$table" '
    /<!-- flags:begin -->/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
    /<!-- flags:end -->/ { skip = 0 }
    !skip { print }
' README.md > README.md.new
mv README.md.new README.md
rm -f "$table"
