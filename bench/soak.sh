#!/usr/bin/env bash
# Soak: mixed wrk load against one catzilla for a long time (default 10 min),
# sampling RSS, open fds and connections every 10 s, then reporting growth.
# Not part of CI.  Loopback only; everything stops by itself.
#   bench/soak.sh [--duration SECONDS] [--interval SECONDS] [--threads N] [--bin PATH]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=600
INTERVAL=10
THREADS=1
BIN=build/catzilla
PORT=18390
SERVER_CPUS=1
CLIENT_CPUS=0
while [ $# -gt 0 ]; do
    case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --interval) INTERVAL=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --quick) DURATION=60; shift ;;
    *) echo "usage: $0 [--duration S] [--interval S] [--threads N] [--bin PATH] [--quick]" >&2; exit 2 ;;
    esac
done
scripts/deps.sh bench
[ -x "$BIN" ] || make -s "$BIN"

WORK=$(mktemp -d /tmp/cz-soak-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${SERVER:-}" ] && kill -TERM "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/root/sub"
head -c 19 /dev/urandom > "$WORK/root/f19.bin"
head -c 16384 /dev/urandom > "$WORK/root/f16k.bin"
head -c 1048576 /dev/urandom > "$WORK/root/f1m.bin"
head -c 8388608 /dev/urandom > "$WORK/root/f8m.bin"   # beyond the cache: spliced
echo '<h1>soak</h1>' > "$WORK/root/sub/index.html"

ulimit -n 20000
taskset -c "$SERVER_CPUS" "$BIN" --port "$PORT" --bind 127.0.0.1 --admin same --threads "$THREADS" \
    --root "$WORK/root" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 50); do
    grep -q "listening on" "$WORK/server.log" && break
    sleep 0.1
done
grep -q "listening on" "$WORK/server.log" || { cat "$WORK/server.log"; exit 1; }
URL=http://127.0.0.1:$PORT

cat > "$WORK/files.lua" <<'LUA'
local paths = {"/f19.bin", "/f16k.bin", "/f1m.bin", "/f8m.bin", "/sub/", "/sub", "/missing"}
local i = 0
request = function()
   i = i + 1
   local p = paths[(i % #paths) + 1]
   if i % 5 == 0 then
      return wrk.format("GET", p, {["Range"] = "bytes=0-99,200-299"})
   end
   return wrk.format("GET", p)
end
LUA

# The bad client: malformed requests, resets mid-response, half-closes, slow
# heads that time out; bounded by the soak duration.
cat > "$WORK/bad.py" <<'PY'
import socket, sys, time, random, struct
port, end = int(sys.argv[1]), time.time() + float(sys.argv[2])
bad = [b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00",
       b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", b"POST /echo HTTP/1.1\r\nHost: x\r\n"
       b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
       b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n",
       b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
       b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"]
n = 0
while time.time() < end:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        kind = n % 4
        if kind == 0:
            s.sendall(random.choice(bad)); s.recv(4096)
        elif kind == 1:   # reset in the middle of a big file
            s.sendall(b"GET /f8m.bin HTTP/1.1\r\nHost: x\r\n\r\n"); s.recv(1000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif kind == 2:   # half-close after a complete request
            s.sendall(b"GET /f16k.bin HTTP/1.1\r\nHost: x\r\n\r\n"); s.shutdown(socket.SHUT_WR)
            while s.recv(65536): pass
        else:             # pipelined burst never read, then vanish
            s.sendall(b"GET /f1m.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 8)
        s.close()
    except OSError:
        pass
    n += 1
    time.sleep(0.01)
print(n)
PY

D=$DURATION
taskset -c "$CLIENT_CPUS" wrk -t1 -c32 -d"${D}s" "$URL/plaintext" >"$WORK/w1" 2>&1 &
PIDS+=($!)
taskset -c "$CLIENT_CPUS" wrk -t1 -c16 -d"${D}s" -s bench/pipeline.lua "$URL/json" -- 16 >"$WORK/w2" 2>&1 &
PIDS+=($!)
taskset -c "$CLIENT_CPUS" wrk -t1 -c16 -d"${D}s" -s "$WORK/files.lua" "$URL/" >"$WORK/w3" 2>&1 &
PIDS+=($!)
taskset -c "$CLIENT_CPUS" python3 "$WORK/bad.py" "$PORT" "$D" >"$WORK/bad" 2>&1 &
PIDS+=($!)

mkdir -p bench/results
CSV=bench/results/soak.csv
echo "elapsed_s,rss_kib,fds,connections" > "$CSV"
start=$(date +%s)
while :; do
    now=$(date +%s)
    el=$((now - start))
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status")
    fds=$(ls "/proc/$SERVER/fd" | wc -l)
    conns=$(curl -s --max-time 2 "$URL/_catzilla/stats" | sed -n 's/.*"totals":{"workers":[0-9]*,"connections":\([0-9]*\).*/\1/p')
    echo "$el,$rss,$fds,${conns:-?}" | tee -a "$CSV"
    [ "$el" -ge "$D" ] && break
    sleep "$INTERVAL"
done
wait "${PIDS[@]}" 2>/dev/null || true
PIDS=()
sleep 3   # let lingering connections close
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status")
fds=$(ls "/proc/$SERVER/fd" | wc -l)
conns=$(curl -s --max-time 2 "$URL/_catzilla/stats" | sed -n 's/.*"totals":{"workers":[0-9]*,"connections":\([0-9]*\).*/\1/p')
echo "idle,$rss,$fds,${conns:-?}" | tee -a "$CSV"

reqs() { awk '/requests in/ {print $1}' "$1"; }
errs() { awk '/Socket errors|Non-2xx/ {printf "%s ", $0}' "$1"; }
echo
echo "wrk keep-alive /plaintext: $(reqs "$WORK/w1") requests $(errs "$WORK/w1")"
echo "wrk pipelined /json:       $(reqs "$WORK/w2") requests $(errs "$WORK/w2")"
echo "wrk files + ranges:        $(reqs "$WORK/w3") requests $(errs "$WORK/w3")"
echo "bad-client connections:    $(cat "$WORK/bad")"
awk -F, 'NR > 1 && $1 != "idle" { n++; r[n] = $2; f[n] = $3 }
         $1 == "idle" { ir = $2; ifd = $3; ic = $4 }
         END {
           # growth: the mean of the last three samples against samples 2-4 (after warm-up)
           a = (r[2] + r[3] + r[4]) / 3; b = (r[n] + r[n-1] + r[n-2]) / 3
           printf "RSS: %.1f MiB after warm-up -> %.1f MiB at the end (%+.1f%%); idle after load: %.1f MiB\n", a/1024, b/1024, (b - a) * 100 / a, ir/1024
           printf "fds: %d after warm-up -> %d at the end; idle after load: %d; connections idle: %s\n", f[2], f[n], ifd, ic
         }' "$CSV"
if grep -q "Z error \[" "$WORK/server.log"; then
    echo "server log has error lines:"; grep "Z error \[" "$WORK/server.log" | head
fi
