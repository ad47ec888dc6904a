#!/usr/bin/env bash
# Catzilla memory suite: what the server's memory (RSS) does under load, against nginx and
# between catzilla's two allocator builds, in one run. See "Memory suite" in bench/README.md.
#
#   bench/memory.sh [--only churn,static,idle,soak,pressure] [--rounds N] [--duration S] [--soak S]
#                   [--no-deps] [--no-build] [--report]
#
#   --only LIST     comma-separated parts (default: all four)
#                     churn   bench/churn.sh: jemalloc build vs libc build under churn, medians
#                     static  200 x 256 KiB random files: catzilla vs nginx, 2 and 1 workers,
#                             RSS start/peak/end sampled every 0.2 s, req/s
#                     idle    10,000 idle keep-alive connections: catzilla vs nginx, 2 workers,
#                             bytes per connection
#                     soak    jemalloc and libc builds side by side for --soak seconds under
#                             bench/churn.lua, RSS every 2 s, CSV and PNG
#   --rounds N      rounds for churn, static and idle (default 3); servers alternate, medians
#   --duration S    seconds of load per static run and per churn run (default 20)
#   --soak S        seconds of soak load (default 600)
#   --no-deps       do not run scripts/deps.sh bench
#   --no-build      do not run make (use build/catzilla and build/libc/catzilla as they are)
#   --report        only rebuild bench/results/memory.md from the CSVs already there
#
# Environment: PORT_BASE (default 19400; the suite uses PORT_BASE+1 .. +22, and churn.sh
#   PORT_BASE+51 .. +50 + 2 x rounds), IDLE_CONNS (10000), STATIC_FILES (200), STATIC_FILE_KIB (256),
#   STATIC_CONNS (64), STATIC_CPUS (0,1: servers and wrk share them), SOAK_CONNS (64 per
#   build), SOAK_SERVER_CPUS (1), SOAK_CLIENT_CPUS (0), SOAK_TAIL (15 s sampled after the
#   soak load), CHURN_AFTER (15), CATZILLA_BIN, CATZILLA_LIBC_BIN, RESULTS_DIR.
#
# Output: bench/results/memory.md, bench/results/memory-*.csv, bench/results/memory-soak.png;
# wrk and churn.sh output of the run under bench/results/raw/memory-<timestamp>/ (git-ignored).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "${BENCH_DIR}")
# shellcheck source=bench/lib.sh disable=SC1091
. "${BENCH_DIR}/lib.sh"

ARGS="$*"
ONLY="churn,static,idle,soak,pressure"
ROUNDS=3
DURATION=20
SOAK=600
DEPS=1
BUILD=1
REPORT_ONLY=0
while [ $# -gt 0 ]; do
    case "$1" in
    --only) ONLY=$2; shift 2 ;;
    --only=*) ONLY=${1#*=}; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --rounds=*) ROUNDS=${1#*=}; shift ;;
    --duration) DURATION=$2; shift 2 ;;
    --duration=*) DURATION=${1#*=}; shift ;;
    --soak) SOAK=$2; shift 2 ;;
    --soak=*) SOAK=${1#*=}; shift ;;
    --no-deps) DEPS=0; shift ;;
    --no-build) BUILD=0; shift ;;
    --report) REPORT_ONLY=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
case "${ROUNDS}${DURATION}${SOAK}" in *[!0-9]* | "") die "--rounds, --duration and --soak take whole numbers" ;; esac
if [ "${ROUNDS}" -lt 1 ] || [ "${DURATION}" -lt 1 ] || [ "${SOAK}" -lt 1 ]; then
    die "--rounds, --duration and --soak must be >= 1"
fi
for part in ${ONLY//,/ }; do
    case "${part}" in churn | static | idle | soak | pressure) ;; *) die "unknown part '${part}' in --only" ;; esac
done
only() { case ",${ONLY}," in *",$1,"*) return 0 ;; esac; return 1; }

PORT_BASE=${PORT_BASE:-19400}
IDLE_CONNS=${IDLE_CONNS:-10000}
STATIC_FILES=${STATIC_FILES:-200}
STATIC_FILE_KIB=${STATIC_FILE_KIB:-256}
STATIC_CONNS=${STATIC_CONNS:-64}
STATIC_CPUS=${STATIC_CPUS:-0,1}
SOAK_CONNS=${SOAK_CONNS:-64}
SOAK_SERVER_CPUS=${SOAK_SERVER_CPUS:-1}
SOAK_CLIENT_CPUS=${SOAK_CLIENT_CPUS:-0}
SOAK_TAIL=${SOAK_TAIL:-15}
CHURN_AFTER=${CHURN_AFTER:-15}
CATZILLA_BIN=${CATZILLA_BIN:-${ROOT}/build/catzilla}
CATZILLA_LIBC_BIN=${CATZILLA_LIBC_BIN:-${ROOT}/build/libc/catzilla}
RESULTS=${RESULTS_DIR:-${BENCH_DIR}/results}
# nginx's worker_connections in the static runs: a usual setting (nginx preallocates its
# connection and event arrays for all of them at start, which shows in its RSS)
STATIC_NGINX_CONNS=1024

report() { python3 "${BENCH_DIR}/memory-report.py" "${RESULTS}"; }
if [ "${REPORT_ONLY}" -eq 1 ]; then
    report
    exit 0
fi

# ---------------------------------------------------------------- setup
STAMP=$(date +%Y%m%d-%H%M%S)
RAW="${RESULTS}/raw/memory-${STAMP}"
WORK=$(mktemp -d /tmp/catzilla-memory.XXXXXX)
chmod 0755 "${WORK}"
DOCROOT="${WORK}/docroot"
CLIENT_PID=""   # idleconns
CHURN_PID=""    # bench/churn.sh
EXTRA_PIDS=()   # soak servers and wrks, background wrk of a static run
cleanup() {
    local p
    stop_server
    if [ -n "${CLIENT_PID}" ]; then kill -TERM "${CLIENT_PID}" 2>/dev/null || true; fi
    if [ -n "${CHURN_PID}" ]; then kill_tree "${CHURN_PID}"; fi
    for p in "${EXTRA_PIDS[@]}"; do kill_tree "${p}"; done
    rm -rf "${WORK}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${DEPS}" -eq 1 ]; then
    "${ROOT}/scripts/deps.sh" bench || die "scripts/deps.sh bench failed"
fi
for t in wrk nginx taskset curl cc python3; do
    command -v "$t" >/dev/null 2>&1 || die "$t is missing (scripts/deps.sh bench installs it)"
done
if only soak && ! command -v gnuplot >/dev/null 2>&1; then
    log "warning: gnuplot is missing (apt-get install -y gnuplot-nox): no memory-soak.png"
fi
stop_system_services

if [ "${BUILD}" -eq 1 ]; then
    log "building: make -s all; make -s ALLOCATOR=libc build/libc/catzilla"
    make -C "${ROOT}" -s all >&2 || die "make -s all failed"
    make -C "${ROOT}" -s ALLOCATOR=libc build/libc/catzilla >&2 ||
        die "make -s ALLOCATOR=libc build/libc/catzilla failed"
fi
[ -x "${CATZILLA_BIN}" ] || die "${CATZILLA_BIN} does not exist (make)"
if only soak || only churn; then
    [ -x "${CATZILLA_LIBC_BIN}" ] || die "${CATZILLA_LIBC_BIN} does not exist (make ALLOCATOR=libc build/libc/catzilla)"
fi

mkdir -p "${RAW}" "${RESULTS}"
# 10,000 idle connections need more than 1024 descriptors: servers and clients inherit this
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "${NOFILE}" = unlimited ] && NOFILE=1048576
if only idle && [ "${NOFILE}" -lt $((IDLE_CONNS + 1200)) ]; then
    log "warning: ulimit -n is ${NOFILE}: IDLE_CONNS lowered to $((NOFILE - 1200))"
    IDLE_CONNS=$((NOFILE - 1200))
fi
CLK_TCK=$(getconf CLK_TCK)
GIT=$(git -C "${ROOT}" rev-parse --short HEAD 2>/dev/null || echo none)
if [ -n "$(git -C "${ROOT}" status --porcelain --untracked-files=no -- src include Makefile 2>/dev/null || true)" ]; then
    GIT="${GIT}+dirty"
fi

# The docroot: STATIC_FILES random files f000.bin .. (the static site), the two files
# bench/churn.lua asks for, and 19b.txt (lib.sh's start_server polls it).
mkdir -p "${DOCROOT}"
for ((i = 0; i < STATIC_FILES; i++)); do
    head -c $((STATIC_FILE_KIB * 1024)) /dev/urandom >"$(printf '%s/f%03d.bin' "${DOCROOT}" "$i")"
done
head -c 16384 /dev/urandom >"${DOCROOT}/16k.bin"
head -c 131072 /dev/urandom >"${DOCROOT}/128k.bin"
printf 'Hello, Catzilla!!!\n' >"${DOCROOT}/19b.txt"
chmod 0755 "${DOCROOT}"
chmod 0644 "${DOCROOT}"/*
cat "${DOCROOT}"/* >/dev/null   # into the page cache before anything is measured

# wrk script for the static site: uniformly random files among the STATIC_FILES
cat >"${WORK}/static.lua" <<LUA
-- random files among f000.bin .. f$(printf '%03d' $((STATIC_FILES - 1))).bin; a seed per thread
local n = ${STATIC_FILES}
local next_id = 1
function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
end
function init(args)
   math.randomseed(os.time() * 100 + (id or 0))
end
function request()
   return wrk.format("GET", string.format("/f%03d.bin", math.random(n) - 1))
end
LUA

# ---------------------------------------------------------------- helpers
# rss_sum PID...: RSS_NOW = sum of VmRSS (KiB) of those processes, PSS_NOW = sum of their
# proportional set size (KiB: a page shared by N processes counts 1/N in each; nginx's master
# and workers share most of what fork left them). No fork: it runs every 0.2 s.
RSS_NOW=0
PSS_NOW=0
rss_sum() {
    local p k v _u
    RSS_NOW=0
    PSS_NOW=0
    for p in "$@"; do
        [ -r "/proc/${p}/status" ] || continue
        while read -r k v _u; do
            if [ "$k" = VmRSS: ]; then RSS_NOW=$((RSS_NOW + v)); break; fi
        done 2>/dev/null <"/proc/${p}/status" || true
        while read -r k v _u; do
            if [ "$k" = Pss: ]; then PSS_NOW=$((PSS_NOW + v)); break; fi
        done 2>/dev/null <"/proc/${p}/smaps_rollup" || true
    done
}
# distinct_kib PID...: resident memory of those processes with every physical page counted
# once (/proc/PID/pagemap; needs root for the page frame numbers). Unlike summed VmRSS it does
# not count nginx's shared pages once per process; unlike PSS it does not depend on what other
# processes on the machine map the same libraries. "nan" when the frame numbers are hidden.
distinct_kib() { python3 "${WORK}/distinct.py" "$@" 2>/dev/null || echo nan; }
cat >"${WORK}/distinct.py" <<'PY'
import struct, sys
seen, entries = set(), 0
for pid in sys.argv[1:]:
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()
        pm = open(f"/proc/{pid}/pagemap", "rb")
    except OSError:
        continue
    with pm:
        for line in maps:
            if line.endswith("[vsyscall]"):
                continue
            a, b = (int(x, 16) for x in line.split()[0].split("-"))
            pm.seek(a // 4096 * 8)
            for (e,) in struct.iter_unpack("<Q", pm.read((b - a) // 4096 * 8)):
                if e >> 63:
                    entries += 1
                    seen.add(e & ((1 << 55) - 1))
print("nan" if entries and seen == {0} else len(seen) * 4)
PY

# kernel slab (KiB, whole machine): socket and io_uring structures live there, not in RSS
slab_kib() { awk '/^Slab:/ { print $2 }' /proc/meminfo; }

# server_pids PID WORKERS: PID and its children, once nginx has forked WORKERS of them
SERVER_PIDS=()
server_pids() {
    local pid=$1 want=$2 i kids=()
    for ((i = 0; i < 50; i++)); do
        read -r -a kids <<<"$(descendants "${pid}" | tr '\n' ' ')"
        [ "${#kids[@]}" -ge "${want}" ] && break
        sleep 0.1
    done
    SERVER_PIDS=("${pid}" "${kids[@]}")
}

# runinfo PART SETTINGS: one row per part in memory-runinfo.csv (replaced by every run)
runinfo() {
    local f="${RESULTS}/memory-runinfo.csv" tmp
    tmp="${WORK}/runinfo.tmp"
    [ -f "$f" ] || echo "part,date,git,settings" >"$f"
    awk -F, -v p="$1" '$1 != p' "$f" >"${tmp}"
    printf '%s,%s,%s,%s\n' "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${GIT}" "${2//,/;}" >>"${tmp}"
    cat "${tmp}" >"$f"
}

# Warnings go to memory-warnings.csv, one set per part (replaced when the part runs again).
warn_reset() { # warn_reset PART
    local f="${RESULTS}/memory-warnings.csv"
    [ -f "$f" ] || echo "part,date,warning" >"$f"
    awk -F, -v p="$1" '$1 != p' "$f" >"${WORK}/warnings.tmp"
    cat "${WORK}/warnings.tmp" >"$f"
}
warn() { # warn PART TEXT
    local t=$2
    log "warning: ${t}"
    printf '%s,%s,%s\n' "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${t//,/;}" >>"${RESULTS}/memory-warnings.csv"
}
busy_note() { # busy_note PART WHAT: warn when the CPUs were busy with other work just before
    local busy
    busy=$(quiet_check "0-$(($(nproc) - 1))")
    if [ "${busy}" -gt 10 ]; then
        warn "$1" "$(printf 'before %s the machine was %s%% busy (of one core) with other processes (top: %s)' \
            "$2" "${busy}" "$(ps -eo pcpu=,comm= --sort=-pcpu | head -n 3 | awk '{ printf "%s %s%% ", $2, $1 }')")"
    fi
}

# ---------------------------------------------------------------- 1. churn
part_churn() {
    local out="${RAW}/churn.txt" csv="${RESULTS}/memory-churn.csv" rc=0
    log "churn: bench/churn.sh ${DURATION} ${CHURN_AFTER} with ROUNDS=${ROUNDS} (2 x ${ROUNDS} runs of $((DURATION + CHURN_AFTER)) s)"
    warn_reset churn
    busy_note churn churn
    ROUNDS=${ROUNDS} PORT=$((PORT_BASE + 50)) \
        "${BENCH_DIR}/churn.sh" "${DURATION}" "${CHURN_AFTER}" >"${out}" 2>&1 &
    CHURN_PID=$!
    wait "${CHURN_PID}" || rc=$?
    CHURN_PID=""
    sed 's/^/    /' "${out}" >&2
    [ "${rc}" -eq 0 ] || { warn churn "bench/churn.sh failed (exit ${rc}); see ${out}"; return 0; }
    # "jemalloc  start   5468 KiB  peak  41512 KiB  15s after   6012 KiB  (12345 requests; ...)"
    echo "run,build,start_kib,peak_kib,after_kib,after_s,requests,errors" >"${csv}"
    awk '$2 == "start" && $5 == "peak" && $9 == "after" {
            req = $12; sub(/^\(/, "", req); sub(/\)$/, "", req)
            err = ""
            if (index($0, "; ")) { err = substr($0, index($0, "; ") + 2); sub(/\)$/, "", err) }
            gsub(/,/, ";", err); gsub(/ +/, " ", err); sub(/ $/, "", err)
            a = $8; sub(/s$/, "", a)
            printf "%d,%s,%s,%s,%s,%s,%s,%s\n", ++n, $1, $3, $6, $10, a, req, err
        }' "${out}" >>"${csv}"
    runinfo churn "rounds=${ROUNDS} duration_s=${DURATION} after_s=${CHURN_AFTER} workers=2 conns=256"
}

# ---------------------------------------------------------------- 2. static site
STATIC_CSV="${RESULTS}/memory-static.csv"
STATIC_SAMPLES="${RESULTS}/memory-static-samples.csv"
static_port() { # static_port SERVER WORKERS
    case "$1-$2" in
    catzilla-2) echo $((PORT_BASE + 1)) ;; catzilla-1) echo $((PORT_BASE + 2)) ;;
    nginx-2) echo $((PORT_BASE + 3)) ;; nginx-1) echo $((PORT_BASE + 4)) ;;
    esac
}
static_run() { # static_run ROUND SERVER WORKERS
    local round=$1 srv=$2 workers=$3 port out wpid t0 tnow start peak=0 endr c0 c1 pss0 pss1 ppeak=0
    local reqs rps bps p50 p99 n2 se cpu_s per nsamples=0 reg dist0 dist1
    # nginx: worker_connections STATIC_NGINX_CONNS (lib.sh derives it from NOFILE)
    local NOFILE=$((STATIC_NGINX_CONNS + 100))
    port=$(static_port "${srv}" "${workers}")
    out="${RAW}/r${round}-static-${srv}-${workers}w.txt"
    if ! start_server "${srv}" "${port}" "${STATIC_CPUS}" "${workers}"; then
        echo "${round},${srv},${workers},${STATIC_CONNS},${DURATION},nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,0,0,nan,nan,0,nan" >>"${STATIC_CSV}"
        return 0
    fi
    if [ "${srv}" = nginx ]; then server_pids "${SERVER_PID}" "${workers}"; else SERVER_PIDS=("${SERVER_PID}"); fi
    sleep 0.5
    rss_sum "${SERVER_PIDS[@]}"
    start=${RSS_NOW}
    pss0=${PSS_NOW}
    dist0=$(distinct_kib "${SERVER_PIDS[@]}")
    c0=$(tree_cpu_ticks "${SERVER_PID}")
    WRK_CPUS_NOW=${STATIC_CPUS} WRK_THREADS_NOW=2 \
        run_wrk "${out}" "${STATIC_CONNS}" "${DURATION}" "http://127.0.0.1:${port}" "${WORK}/static.lua" &
    wpid=$!
    EXTRA_PIDS+=("${wpid}")
    t0=${EPOCHREALTIME/./}
    while kill -0 "${wpid}" 2>/dev/null; do
        rss_sum "${SERVER_PIDS[@]}"
        tnow=${EPOCHREALTIME/./}
        echo "${round},${srv},${workers},$(((tnow - t0) / 1000)),${RSS_NOW},${PSS_NOW}" >>"${STATIC_SAMPLES}"
        [ "${RSS_NOW}" -gt "${peak}" ] && peak=${RSS_NOW}
        [ "${PSS_NOW}" -gt "${ppeak}" ] && ppeak=${PSS_NOW}
        nsamples=$((nsamples + 1))
        sleep 0.2
    done
    wait "${wpid}" || true
    unset 'EXTRA_PIDS[-1]'
    c1=$(tree_cpu_ticks "${SERVER_PID}")
    sleep 1
    rss_sum "${SERVER_PIDS[@]}"
    endr=${RSS_NOW}
    pss1=${PSS_NOW}
    dist1=$(distinct_kib "${SERVER_PIDS[@]}")
    [ "${endr}" -gt "${peak}" ] && peak=${endr}
    [ "${pss1}" -gt "${ppeak}" ] && ppeak=${pss1}
    # catzilla: memory registered with io_uring (the ring of provided receive buffers, file
    # cache buffers), from /_catzilla/stats, KiB over all workers
    reg=nan
    if [ "${srv}" = catzilla ]; then
        reg=$(curl -s --max-time 5 "http://127.0.0.1:${port}/_catzilla/stats" | python3 -c '
import json, sys
print(sum(w.get("registered_bytes", 0) for w in json.load(sys.stdin)["workers"]) // 1024)' 2>/dev/null || echo nan)
    fi
    stop_server
    read -r reqs rps bps p50 p99 n2 se <<<"$(parse_wrk "${out}")"
    cpu_s=$(awk -v t="$((c1 - c0))" -v hz="${CLK_TCK}" 'BEGIN { printf "%.2f", t / hz }')
    per=$(awk -v r="${reqs}" -v t="$((c1 - c0))" -v hz="${CLK_TCK}" \
        'BEGIN { if (r == "nan" || t == 0) print "nan"; else printf "%.0f", r * hz / t }')
    echo "${round},${srv},${workers},${STATIC_CONNS},${DURATION},${start},${peak},${endr},${pss0},${ppeak},${pss1},${dist0},${dist1},${reqs},${rps},${bps},${p50},${p99},${n2},${se},${cpu_s},${per},${nsamples},${reg}" \
        >>"${STATIC_CSV}"
    log "$(printf 'r%s static %-8s %sw  RSS start %6s peak %6s end %6s KiB | %9s req/s, %s req per server CPU-s | non2xx %s sockerr %s' \
        "${round}" "${srv}" "${workers}" "${start}" "${peak}" "${endr}" "${rps}" "${per}" "${n2}" "${se}")"
}
part_static() {
    local round k n order configs=("catzilla 2" "nginx 2" "catzilla 1" "nginx 1")
    echo "round,server,workers,conns,duration_s,rss_start_kib,rss_peak_kib,rss_end_kib,pss_start_kib,pss_peak_kib,pss_end_kib,distinct_start_kib,distinct_end_kib,requests,rps,bytes_per_sec,p50_us,p99_us,non2xx,socket_errors,server_cpu_s,req_per_server_cpu_s,samples,registered_kib" >"${STATIC_CSV}"
    echo "round,server,workers,ms,rss_kib,pss_kib" >"${STATIC_SAMPLES}"
    warn_reset static
    n=${#configs[@]}
    for ((round = 1; round <= ROUNDS; round++)); do
        order=()
        for ((k = 0; k < n; k++)); do order+=("${configs[$(((k + round - 1) % n))]}"); done
        log "static round ${round}/${ROUNDS}: ${order[*]/%/w}"
        busy_note static "static round ${round}"
        for k in "${order[@]}"; do
            # shellcheck disable=SC2086
            static_run "${round}" ${k}
        done
    done
    runinfo static "rounds=${ROUNDS} duration_s=${DURATION} files=${STATIC_FILES} file_kib=${STATIC_FILE_KIB} conns=${STATIC_CONNS} wrk_threads=2 cpus=${STATIC_CPUS} nginx_worker_connections=${STATIC_NGINX_CONNS}"
}

# ---------------------------------------------------------------- 3. idle connections
IDLE_CSV="${RESULTS}/memory-idle.csv"
# idle_run ROUND SERVER [probe]: RSS before and with IDLE_CONNS idle keep-alive connections
# (2 workers). "probe": nginx with worker_connections 1024, no connections: how much of nginx's
# "before" is its preallocation for worker_connections.
idle_run() {
    local round=$1 srv=$2 probe=${3:-} port out fresh before held slab0 slab1 pss0 pss1 dist0 dist1 i line
    local ok=0 failed=0 closed=0 wconns label=${2}
    local NOFILE=$((IDLE_CONNS + 1124))   # nginx: worker_connections IDLE_CONNS + 1024 each
    if [ -n "${probe}" ]; then NOFILE=1124; label=nginx-wc1024; fi
    wconns=$((NOFILE - 100))
    case "${label}" in
    catzilla) port=$((PORT_BASE + 11)) ;; nginx) port=$((PORT_BASE + 12)) ;; *) port=$((PORT_BASE + 13)) ;;
    esac
    out="${RAW}/r${round}-idle-${label}.txt"
    if ! start_server "${srv}" "${port}" 0,1 2; then
        echo "${round},${label},2,${wconns},0,${IDLE_CONNS},0,nan,nan,nan,nan,nan,nan,nan,nan,nan" >>"${IDLE_CSV}"
        return 0
    fi
    if [ "${srv}" = nginx ]; then server_pids "${SERVER_PID}" 2; else SERVER_PIDS=("${SERVER_PID}"); fi
    curl -s -o /dev/null "http://127.0.0.1:${port}/plaintext" || true
    sleep 0.5
    rss_sum "${SERVER_PIDS[@]}"
    fresh=${RSS_NOW}
    # a 1 s load first, so buffers every server touches under any load (catzilla's ring of
    # receive buffers, allocator caches) are in "before", not counted per connection
    WRK_CPUS_NOW=0,1 WRK_THREADS_NOW=2 run_wrk "${out}.warmup" 64 1 "http://127.0.0.1:${port}/plaintext"
    sleep 1
    rss_sum "${SERVER_PIDS[@]}"
    before=${RSS_NOW}
    pss0=${PSS_NOW}
    dist0=$(distinct_kib "${SERVER_PIDS[@]}")
    slab0=$(slab_kib)
    if [ -z "${probe}" ]; then
        taskset -c 0 "${WORK}/idleconns" 127.0.0.1 "${port}" "${IDLE_CONNS}" /plaintext 120 \
            </dev/null >"${out}" 2>&1 &
        CLIENT_PID=$!
        for ((i = 0; i < 900; i++)); do
            grep -q '^ready' "${out}" && break
            kill -0 "${CLIENT_PID}" 2>/dev/null || break
            sleep 0.1
        done
        # Settled idle connections: catzilla frees a silent connection's parse state after
        # 1 s and its request arena returns the pages 1 s later; 3 s is well inside its 10 s
        # keep-alive timeout and its 10 s idle release.
        sleep 3
    fi
    rss_sum "${SERVER_PIDS[@]}"
    held=${RSS_NOW}
    pss1=${PSS_NOW}
    slab1=$(slab_kib)
    dist1=$(distinct_kib "${SERVER_PIDS[@]}")
    if [ -n "${probe}" ]; then
        ok=0; failed=0
    else
        kill -TERM "${CLIENT_PID}" 2>/dev/null || true
        wait "${CLIENT_PID}" 2>/dev/null || true
        CLIENT_PID=""
        line=$(grep '^ready' "${out}" || true)
        if [ -n "${line}" ]; then read -r _ ok failed <<<"${line}"; else failed=${IDLE_CONNS}; fi
        closed=$(awk '/^closed_by_server/ { print $2 }' "${out}")
    fi
    stop_server
    [ "${srv}" = catzilla ] && wconns=nan   # catzilla: --max-connections (16384) per worker
    echo "${round},${label},2,${wconns},${ok},${failed},${closed:-0},${fresh},${before},${held},${pss0},${pss1},${dist0},${dist1},${slab0},${slab1}" >>"${IDLE_CSV}"
    log "$(printf 'r%s idle %-12s %5s ok, %s failed, %s closed early; RSS fresh %s, before %s, held %s KiB; slab %+d KiB' \
        "${round}" "${label}" "${ok}" "${failed}" "${closed:-0}" "${fresh}" "${before}" "${held}" $((slab1 - slab0)))"
}
part_idle() {
    local round
    cc -O2 -o "${WORK}/idleconns" "${BENCH_DIR}/idleconns.c" || die "cannot build bench/idleconns.c"
    warn_reset idle
    echo "round,server,workers,worker_connections,conns_ok,conns_failed,closed_by_server,rss_fresh_kib,rss_before_kib,rss_held_kib,pss_before_kib,pss_held_kib,distinct_before_kib,distinct_held_kib,slab_before_kib,slab_held_kib" >"${IDLE_CSV}"
    for ((round = 1; round <= ROUNDS; round++)); do
        log "idle round ${round}/${ROUNDS}"
        busy_note idle "idle round ${round}"
        if [ $((round % 2)) -eq 1 ]; then
            idle_run "${round}" catzilla; idle_run "${round}" nginx
        else
            idle_run "${round}" nginx; idle_run "${round}" catzilla
        fi
        idle_run "${round}" nginx probe
    done
    runinfo idle "rounds=${ROUNDS} conns=${IDLE_CONNS} workers=2 cpus=0;1 client_cpus=0 nginx_worker_connections=$((IDLE_CONNS + 1024))"
}

# ---------------------------------------------------------------- 4. soak
part_soak() {
    local csv="${RESULTS}/memory-soak.csv" wcsv="${RESULTS}/memory-soak-wrk.csv" png="${RESULTS}/memory-soak.png"
    local je lc pje=$((PORT_BASE + 21)) plc=$((PORT_BASE + 22)) w1 w2 t0 el end_at b reqs rps bps n2 se
    log "soak: jemalloc and libc builds side by side for ${SOAK} s (+${SOAK_TAIL} s idle), 1 worker each on CPU ${SOAK_SERVER_CPUS}, wrk on CPU ${SOAK_CLIENT_CPUS}"
    warn_reset soak
    busy_note soak soak
    start_server catzilla "${pje}" "${SOAK_SERVER_CPUS}" 1 "${CATZILLA_BIN}" || die "soak: the jemalloc build does not start"
    je=${SERVER_PID}
    EXTRA_PIDS+=("${je}")
    SERVER_PID=""
    start_server catzilla-libc "${plc}" "${SOAK_SERVER_CPUS}" 1 "${CATZILLA_LIBC_BIN}" || die "soak: the libc build does not start"
    lc=${SERVER_PID}
    EXTRA_PIDS+=("${lc}")
    SERVER_PID=""
    echo "seconds,jemalloc_kib,libc_kib" >"${csv}"
    taskset -c "${SOAK_CLIENT_CPUS}" wrk -t1 -c"${SOAK_CONNS}" -d"${SOAK}s" --timeout 5s \
        -s "${BENCH_DIR}/churn.lua" "http://127.0.0.1:${pje}" >"${RAW}/soak-wrk-jemalloc.txt" 2>&1 &
    w1=$!
    taskset -c "${SOAK_CLIENT_CPUS}" wrk -t1 -c"${SOAK_CONNS}" -d"${SOAK}s" --timeout 5s \
        -s "${BENCH_DIR}/churn.lua" "http://127.0.0.1:${plc}" >"${RAW}/soak-wrk-libc.txt" 2>&1 &
    w2=$!
    EXTRA_PIDS+=("${w1}" "${w2}")
    t0=${EPOCHREALTIME/./}
    end_at=""
    while :; do
        el=$(((${EPOCHREALTIME/./} - t0) / 1000000))
        rss_sum "${je}"; b=${RSS_NOW}
        rss_sum "${lc}"
        echo "${el},${b},${RSS_NOW}" >>"${csv}"
        if [ -z "${end_at}" ] && ! kill -0 "${w1}" 2>/dev/null && ! kill -0 "${w2}" 2>/dev/null; then
            end_at=$((el + SOAK_TAIL))
        fi
        if [ -n "${end_at}" ] && [ "${el}" -ge "${end_at}" ]; then break; fi
        if ! kill -0 "${je}" 2>/dev/null || ! kill -0 "${lc}" 2>/dev/null; then
            warn soak "a soak server exited before the end"; break
        fi
        sleep 2
    done
    wait "${w1}" "${w2}" 2>/dev/null || true
    kill_tree "${je}"
    kill_tree "${lc}"
    EXTRA_PIDS=()
    echo "build,conns,requests,rps,bytes_per_sec,non2xx,socket_errors" >"${wcsv}"
    for b in jemalloc libc; do
        read -r reqs rps bps _ _ n2 se <<<"$(parse_wrk "${RAW}/soak-wrk-${b}.txt")"
        echo "${b},${SOAK_CONNS},${reqs},${rps},${bps},${n2},${se}" >>"${wcsv}"
        log "soak ${b}: ${reqs} requests, ${rps} req/s, non2xx ${n2}, socket errors ${se}"
    done
    runinfo soak "load_s=${SOAK} tail_s=${SOAK_TAIL} conns=${SOAK_CONNS} server_cpus=${SOAK_SERVER_CPUS} client_cpus=${SOAK_CLIENT_CPUS} workers=1 interval_s=2"
    if command -v gnuplot >/dev/null 2>&1; then
        cat >"${RAW}/soak.gp" <<GP
set terminal pngcairo size 960,480 enhanced font "sans,11"
set output '${png}'
set datafile separator ','
set title "catzilla RSS under bench/churn.lua: jemalloc vs libc build (1 worker each, ${SOAK_CONNS} connections each)"
set xlabel 'time (s)'
set ylabel 'RSS (MiB)'
set yrange [0:*]
set grid
set key top left
set arrow from ${SOAK}, graph 0 to ${SOAK}, graph 1 nohead dashtype 2 lc rgb '#868e96'
set label 'load ends' at ${SOAK}, graph 0.95 right offset -0.5,0 textcolor rgb '#868e96'
plot '${csv}' skip 1 using 1:(\$2/1024) with lines lw 2 lc rgb '#d9480f' title 'jemalloc build', \
     '' skip 1 using 1:(\$3/1024) with lines lw 2 lc rgb '#1864ab' title 'libc build'
GP
        gnuplot "${RAW}/soak.gp" || log "warning: gnuplot failed; no ${png}"
    fi
}

# ---------------------------------------------------------------- 5. pressure
# The memory guard in a 48 MiB cgroup (bench/pressure.sh): with it, and with
# it out of the way (--memory-limit 1000g), same load.
part_pressure() {
    local out="${RESULTS}/memory-pressure.txt" rc=0
    log "pressure: bench/pressure.sh ${DURATION} 48, guard on and off"
    warn_reset pressure
    : >"${out}"
    for mode in on off; do
        local extra=""
        [ "${mode}" = off ] && extra="--memory-limit 1000g"
        echo "## guard ${mode}" >>"${out}"
        CATZILLA_EXTRA_ARGS="${extra}" PORT=$((PORT_BASE + 80)) \
            "${BENCH_DIR}/pressure.sh" "${DURATION}" 48 2>&1 | grep -v ' Killed ' >>"${out}" || rc=$?
        echo >>"${out}"
    done
    sed 's/^/    /' "${out}" >&2
    [ "${rc}" -eq 0 ] || warn pressure "bench/pressure.sh failed (exit ${rc}); see ${out}"
    runinfo pressure "duration_s=${DURATION} limit_mib=48 workers=2 conns=256+64"
}

# ---------------------------------------------------------------- run
{
    printf 'kernel=%s cpu=%s nproc=%s nginx=%s wrk=%s catzilla=%s governor=%s\n' "$(uname -r)" \
        "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)" \
        "$(nginx -v 2>&1 | sed 's/.*nginx\///')" "$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')" \
        "$("${CATZILLA_BIN}" --version 2>&1 | head -n1)" \
        "$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo n/a)"
} >"${WORK}/env.txt"
runinfo env "$(cat "${WORK}/env.txt")"
runinfo command "bench/memory.sh${ARGS:+ ${ARGS}}"
log "parts: ${ONLY}; ${ROUNDS} round(s), ${DURATION} s runs, soak ${SOAK} s; raw output: ${RAW}"
only churn && part_churn
only static && part_static
only idle && part_idle
only soak && part_soak
only pressure && part_pressure
report || die "the report failed (CSVs are in ${RESULTS})"
log "done: ${RESULTS}/memory.md"
