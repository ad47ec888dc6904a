#!/bin/bash
# Memory under churn: the jemalloc build against the libc build (same code,
# `make ALLOCATOR=libc`), one after the other with the same load: 2 workers,
# 256 connections for DURATION s of bench/churn.lua (60 % POST /echo with
# bodies of 64 B .. 600 KB, the rest 16 KiB / 128 KiB files and /plaintext).
# RSS is sampled every 0.2 s: at start, peak under load, and AFTER s later.
# Peaks depend on how many large bodies happen to be in flight, so the two
# builds alternate over ROUNDS rounds (first one, then the other) and the
# report gives medians.
#   bench/churn.sh [DURATION=15] [AFTER=15]   (ROUNDS=3; extra server flags: CATZILLA_EXTRA_ARGS)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
AFTER=${2:-15}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18560}
doc=$(mktemp -d /tmp/cz-churn-XXXXXX)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$doc"' EXIT
head -c 16384 /dev/urandom >"$doc/16k.bin"
head -c 131072 /dev/urandom >"$doc/128k.bin"
make -s all >/dev/null
make -s ALLOCATOR=libc build/libc/catzilla >/dev/null

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

run() { # run NAME BIN
    local name=$1 bin=$2 start peak=0 after r wrkpid
    # A fresh port each run: sockets of the last server may still linger.
    PORT=$((PORT + 1))
    # shellcheck disable=SC2086
    "$bin" --bind 127.0.0.1 --port "$PORT" --admin same --threads 2 --root "$doc" --max-body-size 1m \
        --log-level warn ${CATZILLA_EXTRA_ARGS:-} &
    pid=$!
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/plaintext" && break; sleep 0.1; done
    start=$(rss "$pid")
    wrk -t2 -c256 -d"${DURATION}s" -s bench/churn.lua "http://127.0.0.1:$PORT" >"$doc/wrk-$name.txt" 2>&1 &
    wrkpid=$!
    while kill -0 "$wrkpid" 2>/dev/null; do
        r=$(rss "$pid")
        [ "$r" -gt "$peak" ] && peak=$r
        sleep 0.2
    done
    sleep "$AFTER"
    after=$(rss "$pid")
    local reqs errs
    reqs=$(awk '/requests in/ { print $1 }' "$doc/wrk-$name.txt")
    errs=$(awk '/Non-2xx|Socket errors/ { print }' "$doc/wrk-$name.txt" | tr '\n' ' ')
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    printf '%-9s start %6d KiB  peak %6d KiB  %ss after %6d KiB  (%s requests%s)\n' \
        "$name" "$start" "$peak" "$AFTER" "$after" "$reqs" "${errs:+; $errs}"
    echo "$name,$start,$peak,$after,$reqs" >>"$doc/churn.csv"
}

for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        run jemalloc build/catzilla
        run libc build/libc/catzilla
    else
        run libc build/libc/catzilla
        run jemalloc build/catzilla
    fi
done
python3 - "$doc/churn.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
med = {}
for build in ("jemalloc", "libc"):
    r = [x for x in rows if x[0] == build]
    med[build] = [statistics.median(int(x[i]) for x in r) for i in (1, 2, 3, 4)]
    print("%-9s median of %d: start %d KiB, peak %d KiB, after %d KiB, %d requests" %
          ((build, len(r)) + tuple(med[build])))
j, l = med["jemalloc"], med["libc"]
print("jemalloc / libc: start %.2fx (%+d KiB), peak %.2fx, after %.2fx" %
      (j[0] / l[0], j[0] - l[0], j[1] / l[1], j[2] / l[2]))
PY
