#!/bin/bash
# Memory pressure: catzilla in a cgroup v1 memory cgroup limited to LIMIT
# (default 48 MiB) with 2 workers, under the churn load (bench/churn.lua, 256
# connections) plus a random-file load (200 files of 256 KiB, 64 connections)
# at the same time, for DURATION s.  Reports whether the server survived, the
# kernel's OOM kills and limit hits, the share of failed requests, and what
# the memory guard did (from /_catzilla/stats).
#   bench/pressure.sh [DURATION=30] [LIMIT_MIB=48]   (BIN=build/catzilla; extra flags: CATZILLA_EXTRA_ARGS)
# Needs root and the cgroup v1 memory controller at /sys/fs/cgroup/memory.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-30}
LIMIT_MIB=${2:-48}
BIN=${BIN:-build/catzilla}
PORT=${PORT:-18900}
CG=/sys/fs/cgroup/memory/catzilla-pressure-$$
[ -d /sys/fs/cgroup/memory ] || { echo "pressure.sh: no cgroup v1 memory controller" >&2; exit 2; }
doc=$(mktemp -d /tmp/cz-pressure-XXXXXX)
cleanup() {
    kill "${pid:-}" 2>/dev/null || true
    wait "${pid:-}" 2>/dev/null || true
    rmdir "$CG" 2>/dev/null || true
    rm -rf "$doc"
}
trap cleanup EXIT
mkdir -p "$doc/site"
head -c 16384 /dev/urandom >"$doc/16k.bin"
head -c 131072 /dev/urandom >"$doc/128k.bin"
for i in $(seq 0 199); do head -c 262144 /dev/urandom >"$doc/site/$(printf 'f%03d.bin' "$i")"; done
make -s all >/dev/null

mkdir "$CG"
echo $((LIMIT_MIB * 1024 * 1024)) >"$CG/memory.limit_in_bytes"
# shellcheck disable=SC2016,SC2086
sh -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' sh "$CG" \
    "$BIN" --bind 127.0.0.1 --port "$PORT" --admin same --threads 2 --root "$doc" --max-body-size 1m \
    --log-level warn ${CATZILLA_EXTRA_ARGS:-} 2>"$doc/server.log" &
pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/plaintext" && break; sleep 0.1; done
wrk -t2 -c256 -d"${DURATION}s" -s bench/churn.lua "http://127.0.0.1:$PORT" >"$doc/churn.txt" 2>&1 &
w1=$!
wrk -t1 -c64 -d"${DURATION}s" -s bench/randomfile.lua "http://127.0.0.1:$PORT" >"$doc/files.txt" 2>&1 &
w2=$!
peak=0
while kill -0 "$w1" 2>/dev/null || kill -0 "$w2" 2>/dev/null; do
    r=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.2
done
wait "$w1" "$w2" || true

alive=no
kill -0 "$pid" 2>/dev/null && alive=yes
stats=$(curl -s --max-time 3 "http://127.0.0.1:$PORT/_catzilla/stats" || true)
reqs() { awk '/requests in/ { print $1 }' "$1"; }
bad() { # non-2xx/3xx + socket errors (connect, read, write, timeout)
    awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/[^0-9 ]/, " "); split($0, a, " "); for (i in a) n += a[i] } END { print n + 0 }' "$1"
}
total=$(( $(reqs "$doc/churn.txt") + $(reqs "$doc/files.txt") ))
failed=$(( $(bad "$doc/churn.txt") + $(bad "$doc/files.txt") ))
ooms=$(awk '/oom_kill / { print $2 }' "$CG/memory.oom_control" 2>/dev/null || echo "?")
echo "limit ${LIMIT_MIB} MiB, ${DURATION} s, $(basename "$BIN") ${CATZILLA_EXTRA_ARGS:-}"
echo "server alive: $alive   OOM kills: $ooms   limit hits (failcnt): $(cat "$CG/memory.failcnt")"
kmem=$(cat "$CG/memory.kmem.max_usage_in_bytes" 2>/dev/null || echo 0)
echo "cgroup max usage: $(( $(cat "$CG/memory.max_usage_in_bytes") / 1024 )) KiB (kernel memory $((kmem / 1024)) KiB)   server peak RSS: $peak KiB"
if [ "$alive" = yes ]; then
    awk -v t="$total" -v f="$failed" 'BEGIN { printf "requests: %d   failed: %d (%.3f %%)\n", t, f, t ? 100 * f / t : 0 }'
else
    echo "requests answered before the kill: $total   errors after it (refused connects etc.): $failed"
fi
if [ -n "$stats" ]; then
    python3 -c 'import json, sys; g = json.load(sys.stdin)["totals"]["memory_guard"]; print("guard:", ", ".join(f"{k} {v}" for k, v in g.items()))' <<<"$stats"
fi
grep -E "pressure|error" "$doc/server.log" | tail -5 || true
