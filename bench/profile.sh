#!/usr/bin/env bash
# Where a request's cycles go: catzilla (one worker) on SERVER_CPU under wrk on CLIENT_CPU,
# sampled with perf's cpu-clock on the server's CPU only (this VM has no hardware counters).
# Writes bench/results/profile-<path>.md: user against kernel time, the top symbols by self
# time, and the steal and idle share of the server CPU during the sample.
#
#   bench/profile.sh [--path /plaintext] [--seconds 10] [--conns 64] [--pipeline 0]
#
# Needs perf (linux-perf) and wrk; run as root.  Nothing else should run on the machine.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "${BENCH_DIR}")
# shellcheck source=bench/lib.sh disable=SC1091
. "${BENCH_DIR}/lib.sh"

URL_PATH=/plaintext
SECONDS_SAMPLED=10
CONNS=64
PIPELINE=0
while [ $# -gt 0 ]; do
    case "$1" in
    --path) URL_PATH=$2; shift 2 ;;
    --seconds) SECONDS_SAMPLED=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --pipeline) PIPELINE=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
PORT=${PORT:-19480}
BIN=${CATZILLA_BIN:-${ROOT}/build/catzilla}
command -v perf >/dev/null || die "perf is missing (apt-get install linux-perf)"
command -v wrk >/dev/null || die "wrk is missing (scripts/deps.sh bench)"
[ -x "${BIN}" ] || die "${BIN} is not built (make)"

WORK=$(mktemp -d /tmp/cz-profile-XXXXXX)
trap 'kill "${SPID:-}" "${WPID:-}" 2>/dev/null || true; rm -rf "${WORK}"' EXIT

taskset -c "${SERVER_CPU}" "${BIN}" --threads 1 --bind 127.0.0.1 --port "${PORT}" --admin off \
    --log-level warn &
SPID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:${PORT}${URL_PATH}" && break; sleep 0.1; done

SCRIPT=() # pipelined: bench/pipeline.lua sends PIPELINE requests per write
SUFFIX=""
if [ "${PIPELINE}" -gt 0 ]; then
    SCRIPT=(-s "${BENCH_DIR}/pipeline.lua")
    SUFFIX="-pipelined${PIPELINE}"
fi
taskset -c "${CLIENT_CPU}" wrk -t1 -c"${CONNS}" -d$((SECONDS_SAMPLED + 4))s "${SCRIPT[@]}" \
    "http://127.0.0.1:${PORT}${URL_PATH}" -- "${PIPELINE}" >"${WORK}/wrk.txt" 2>&1 &
WPID=$!
sleep 2 # past the ramp-up
cpu_line() { awk -v c="cpu${SERVER_CPU}" '$1 == c { print $2, $3, $4, $5, $6, $7, $8, $9 }' /proc/stat; }
before=$(cpu_line)
perf record -q -e cpu-clock -C "${SERVER_CPU}" -g -o "${WORK}/perf.data" -- sleep "${SECONDS_SAMPLED}" \
    2>/dev/null
after=$(cpu_line)
wait "${WPID}" || true
WPID=""
kill "${SPID}"
wait "${SPID}" 2>/dev/null || true
SPID=""

rps=$(awk '/Requests\/sec/ { print $2 }' "${WORK}/wrk.txt")
# user nice system idle iowait irq softirq steal
read -r -a b <<<"${before}"
read -r -a a <<<"${after}"
tot=0
for i in 0 1 2 3 4 5 6 7; do tot=$((tot + a[i] - b[i])); done
pct() { awk -v x="$1" -v t="${tot}" 'BEGIN { printf "%.1f", t ? 100 * x / t : 0 }'; }
user=$(pct $((a[0] - b[0] + a[1] - b[1])))
sys=$(pct $((a[2] - b[2])))
idle=$(pct $((a[3] - b[3] + a[4] - b[4])))
irq=$(pct $((a[5] - b[5] + a[6] - b[6])))
steal=$(pct $((a[7] - b[7])))

# Self time per symbol; [k] marks kernel symbols.
perf report -i "${WORK}/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null |
    awk '/^ +[0-9.]+%/ { print }' >"${WORK}/syms.txt"
kernel=$(awk '/\[k\]/ { gsub("%", "", $1); s += $1 } END { printf "%.1f", s }' "${WORK}/syms.txt")
user_syms=$(awk '!/\[k\]/ { gsub("%", "", $1); s += $1 } END { printf "%.1f", s }' "${WORK}/syms.txt")
# Self time per object (the binary, libc, the kernel).
perf report -i "${WORK}/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null |
    awk '/^ +[0-9.]+%/ { print }' >"${WORK}/dsos.txt"

name=$(printf '%s' "${URL_PATH}" | tr -c 'A-Za-z0-9\n' '-' | sed 's/^-*//; s/-*$//')
out="${BENCH_DIR}/results/profile-${name:-root}${SUFFIX}.md"
{
    echo "# Where the cycles of GET ${URL_PATH} go"
    echo
    echo "Written by \`bench/profile.sh --path ${URL_PATH} --seconds ${SECONDS_SAMPLED} --conns ${CONNS} --pipeline ${PIPELINE}\` on $(date -u +%Y-%m-%dT%H:%MZ) at \`$(git -C "${ROOT}" rev-parse --short HEAD)\`: catzilla with one worker on CPU ${SERVER_CPU}, wrk (1 thread, ${CONNS} connections) on CPU ${CLIENT_CPU}, \`perf record -e cpu-clock -C ${SERVER_CPU} -g\` for ${SECONDS_SAMPLED} s."
    echo
    echo "wrk: ${rps} requests/s. CPU ${SERVER_CPU} during the sample (/proc/stat): user ${user} %, system ${sys} %, irq+softirq ${irq} %, idle+iowait ${idle} %, steal ${steal} %."
    echo
    echo "Samples on CPU ${SERVER_CPU} by where they ran: kernel ${kernel} %, user space ${user_syms} % (idle time samples as the kernel's idle loop)."
    echo
    echo "## By object"
    echo
    echo '```'
    head -12 "${WORK}/dsos.txt"
    echo '```'
    echo
    echo "## Top symbols by self time (\`[k]\` kernel, \`[.]\` user space)"
    echo
    echo '```'
    head -40 "${WORK}/syms.txt"
    echo '```'
    echo
    echo "## User space only (share of all samples)"
    echo
    echo '```'
    grep -v '\[k\]' "${WORK}/syms.txt" | head -25
    echo '```'
} >"${out}"
log "wrote ${out}"
