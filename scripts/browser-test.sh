#!/bin/sh
# The live dashboard in a real browser: starts build/catzilla (2 workers) with its admin
# surface on a loopback port, puts a light load on it, opens /_catzilla/ in headless
# Chromium twice, and checks that the charts hold data that changes (DOM values) and that
# a screenshot is not blank.  Installs Debian's chromium if it is missing (as root).
# Prints PASS/FAIL per check and the time taken; exits 1 if any check fails.
#
#   scripts/browser-test.sh            (CATZILLA_BIN overrides the binary)
set -eu
cd "$(dirname "$0")/.."

BIN=${CATZILLA_BIN:-build/catzilla}
WORK=$(mktemp -d /tmp/cz-browser.XXXXXX)
START=$(date +%s)
FAILED=0
SERVER_PID= LOAD_PID= HOLD_PID=

cleanup() {
    [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
    [ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

result() { # result PASS|FAIL name detail
    printf '%-4s  %-40s %s\n' "$1" "$2" "${3:-}"
    [ "$1" = PASS ] || FAILED=$((FAILED + 1))
}

if ! command -v chromium >/dev/null 2>&1; then
    t0=$(date +%s)
    scripts/deps.sh browser
    echo "browser-test: chromium installed in $(( $(date +%s) - t0 )) s"
fi
[ -x "$BIN" ] || make -s "$BIN"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
ADMIN=$(free_port)
"$BIN" --threads 2 --bind 127.0.0.1 --port "$PORT" --admin "127.0.0.1:$ADMIN" \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
    grep -q "listening on" "$WORK/server.log" && break
    sleep 0.1
done
grep -q "listening on" "$WORK/server.log" || { cat "$WORK/server.log"; exit 1; }

# A light, uneven load: bursts of requests with pauses, so the rate moves.
(
    while :; do
        for burst in 2 12 5 20 1 8; do
            # One curl, several requests on one connection, then a pause.
            urls=
            for _ in $(seq "$burst"); do urls="$urls http://127.0.0.1:$PORT/plaintext"; done
            curl -s $urls "http://127.0.0.1:$PORT/index.html" >/dev/null || true
            sleep 0.05
        done
    done
) &
LOAD_PID=$!

# And a changing number of open connections: one more every 100 ms, up to 30, then none.
python3 -c '
import socket, sys, time
while True:
    held = []
    for _ in range(30):
        held.append(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
        time.sleep(0.1)
    for s in held:
        s.close()
' "$PORT" &
HOLD_PID=$!

URL="http://127.0.0.1:$ADMIN/_catzilla/"
# --virtual-time-budget runs the page's timers (one poll a second) for that much virtual
# time, faster than real time; the fetches themselves are real, against the loaded server,
# so the page's req/s are requests per virtual second: what matters here is that they move.
browse() { # browse --dump-dom|--screenshot=FILE OUTPUT
    chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --user-data-dir="$WORK/profile" --window-size=1280,1000 \
        --virtual-time-budget=12000 "$1" "$URL" >"$2" 2>>"$WORK/chromium.err" || true
}
browse --dump-dom "$WORK/dom1.html"
sleep 1
browse --dump-dom "$WORK/dom2.html"
browse --screenshot="$WORK/shot.png" "$WORK/screenshot.out"

python3 - "$WORK/dom1.html" "$WORK/dom2.html" "$WORK/shot.png" <<'EOF' || FAILED=$((FAILED + 1))
import re, struct, sys, zlib

def attrs(path):
    html = open(path, encoding="utf-8", errors="replace").read()
    out = {}
    for tag in re.finditer(r'<(?:span|b|canvas)\b[^>]*\bid="([^"]+)"[^>]*>', html):
        out[tag.group(1)] = dict(re.findall(r'data-([a-z]+)="([^"]*)"', tag.group(0)))
    return out

failed = 0
def check(ok, name, detail):
    global failed
    print("%-4s  %-40s %s" % ("PASS" if ok else "FAIL", name, detail))
    failed += not ok

a, b = attrs(sys.argv[1]), attrs(sys.argv[2])
samples = int(a.get("samples", {}).get("value", "0"))
check(samples >= 3, "the page polled the metrics", "%d samples" % samples)
for chart in ("chart-rps", "chart-conn", "chart-mem"):
    d = a.get(chart, {})
    pts, ch = int(d.get("points", "0")), int(d.get("changes", "0"))
    check(pts >= 3 and ch >= 1, "%s holds changing data" % chart,
          "%d points, %d changes, %s series" % (pts, ch, d.get("series", "?")))
mem = int(float(a.get("memory", {}).get("value", "0")))
check(mem > 0, "memory total shown", "%d bytes" % mem)
r1, r2 = a.get("rps", {}).get("value"), b.get("rps", {}).get("value")
u1 = float(a.get("uptime", {}).get("value", "0")); u2 = float(b.get("uptime", {}).get("value", "0"))
check(u2 > u1, "values change between two visits", "uptime %.1f -> %.1f, rps %s -> %s" % (u1, u2, r1, r2))

def png_pixels(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), "unexpected PNG format"
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, prev, colors = zlib.decompress(idat), w * bpp, bytearray(w * bpp), {}
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, ul = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + left) & 255
            elif f == 2: line[i] = (line[i] + up) & 255
            elif f == 3: line[i] = (line[i] + (left + up) // 2) & 255
            elif f == 4:
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else ul)) & 255
        for x in range(0, stride, bpp * 4):
            c = bytes(line[x:x + 3]); colors[c] = colors.get(c, 0) + 1
        prev = line
    return colors

try:
    colors = png_pixels(sys.argv[3])
    top = max(colors.values()) / sum(colors.values())
    check(len(colors) > 20 and top < 0.95, "screenshot is not blank",
          "%d colours, the commonest covers %.0f%%" % (len(colors), top * 100))
except Exception as e:
    check(False, "screenshot is not blank", "cannot read it: %s" % e)
sys.exit(1 if failed else 0)
EOF

echo "browser-test: $(( $(date +%s) - START )) s"
if [ "$FAILED" -ne 0 ]; then
    echo "--- chromium stderr"; tail -20 "$WORK/chromium.err"
    exit 1
fi
