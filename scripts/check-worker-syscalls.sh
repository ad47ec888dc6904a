#!/bin/bash
# Shows that a worker thread never touches the disk itself: serves a mix of
# cached, uncached (spliced), changing, missing and ranged files from one
# worker under strace, and fails if any thread other than the main one made
# a file system call (open, openat, openat2, stat family, read, pread).
# The main thread reads its configuration and the MIME table at start-up.
#   scripts/check-worker-syscalls.sh [path/to/catzilla]
set -euo pipefail
bin=${1:-build/catzilla}
command -v strace >/dev/null || { echo "strace is not installed (apt-get install strace)"; exit 2; }
command -v curl >/dev/null || { echo "curl is not installed"; exit 2; }
dir=$(mktemp -d /tmp/cz-syscalls-XXXXXX)
trap 'pkill -KILL -P "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
head -c 5000 /dev/urandom >"$dir/small.bin"
head -c 100000 /dev/urandom >"$dir/100k.bin"
head -c 2000000 /dev/urandom >"$dir/2m.bin"
mkdir "$dir/sub"
echo v0 >"$dir/sub/index.html"
echo v0 >"$dir/change.txt"

strace -f -qq -o "$dir/trace" \
    -e trace=open,openat,openat2,stat,lstat,fstat,newfstatat,statx,read,pread64,readv,preadv \
    "$bin" --bind 127.0.0.1 --port 0 --admin same --root "$dir" --threads 1 2>"$dir/log" &
pid=$!
port=""
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/log")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "the server did not start:"; cat "$dir/log"; exit 1; }
codes=""
for round in 1 2 3; do
    for f in small.bin 100k.bin 2m.bin change.txt sub/ sub missing.txt; do
        codes+=$(curl -s -o /dev/null -w '%{http_code} ' "http://127.0.0.1:$port/$f")
    done
    codes+=$(curl -s -o /dev/null -w '%{http_code} ' -H 'Range: bytes=0-1,5-9' \
        "http://127.0.0.1:$port/2m.bin")
    echo "v$round" >"$dir/change.txt"
    sleep 1.2 # past the cache's revalidation interval
done
# Stop the server itself: strace keeps running (detached) if it is signalled.
pkill -TERM -P "$pid" || true
wait "$pid" 2>/dev/null || true
echo "statuses: $codes"
main=$(awk 'NR == 1 { print $1 }' "$dir/trace")
others=$(awk -v m="$main" '$1 != m && $2 !~ /^(\+\+\+|---)/' "$dir/trace")
if [ -n "$others" ]; then
    echo "FAIL: file system calls on worker threads:"
    echo "$others" | head -20
    exit 1
fi
echo "ok: $(wc -l <"$dir/trace") file system calls, all on the main thread (start-up);" \
    "none on the worker"
