#!/usr/bin/env bash
# Catzilla benchmark suite: catzilla vs nginx vs h2o (Debian's packages), same docroot, same
# client, one server worker pinned to one CPU and wrk pinned to another, servers alternated
# within each round, medians over rounds. See bench/README.md for the method.
#
#   bench/run.sh [--rounds N] [--duration S] [--quick] [--servers "catzilla nginx h2o ceiling"]
#                [--only LIST] [--no-deps] [--no-build]
#   make bench BENCH_ARGS="--quick"
#
#   --rounds N      rounds (default 3); each round runs every server once per scenario
#   --duration S    seconds per wrk run (default 10); each run has a 1 s warm-up before it
#   --quick         1 round of 3 s runs
#   --servers LIST  subset of "catzilla nginx h2o ceiling"; ceiling is bench/ceiling.c, the least
#                   work an io_uring server can do (a fixed answer), run for the one-worker rows
#   --only LIST     comma-separated subset of scenarios:
#                   plaintext,pipelined,file19,file16k,file1m,conns1k,conns10k,latency,scaling,
#                   idle,memory
#   --no-deps       do not run scripts/deps.sh bench
#   --no-build      do not run make (use the binaries as they are)
#
# CPU placement (defaults fit a 2-CPU machine; see bench/README.md for bigger ones):
#   SERVER_CPUS=1          CPUs for the one-worker server runs (taskset -c)
#   CLIENT_CPUS=0          CPUs for wrk and the idle-connection client
#   WRK_THREADS=           wrk threads (default: number of CLIENT_CPUS)
#   SCALE_THREADS=2        server workers in the scaling run
#   SCALE_SERVER_CPUS=0,1  CPUs for the scaling run's server
#   SCALE_CLIENT_CPUS=0,1  CPUs for the scaling run's wrk (shared with the server by default)
#   LATENCY_RATE=30000     offered req/s of the fixed-rate latency run (below every server's
#                          saturation), LATENCY_CONNS=64
# Other environment: IDLE_CONNS=10000, PORT_BASE=18480, CATZILLA_BIN, CATZILLA_LIBC_BIN,
#   CATZILLA_EXTRA_ARGS (extra catzilla flags), RESULTS_DIR (default bench/results).
#
# Output: bench/results/latest.md, bench/results/*.csv, bench/results/*.png, and raw wrk
# output under bench/results/raw/<timestamp>/ (not committed).
set -eu

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "${BENCH_DIR}")
# shellcheck source=bench/lib.sh
. "${BENCH_DIR}/lib.sh"

ROUNDS=3
DURATION=10
WARMUP=${WARMUP:-1}
# a run is "disturbed" when steal, or CPU that other processes took on the server's CPUs,
# exceeds this many % (the report leaves such runs out of its medians when it can)
DISTURBED_PCT=10
RERUNS=${RERUNS:-2}   # a disturbed run is run again up to this many times
# The fixed-rate latency run's tail is far more sensitive: a few 10-20 ms bursts of steal
# ruin every server's p99.9 (measured: runs with 2-4 % steal had p99.9 of 9-33 ms whichever
# server ran, runs under 0.5 % about 2-3 ms), so its steal limit is lower.
LATENCY_DISTURBED_PCT=${LATENCY_DISTURBED_PCT:-1}
SERVERS="catzilla nginx h2o ceiling"
ONLY="plaintext,pipelined,file19,file16k,file1m,conns1k,conns10k,latency,scaling,idle,memory"
DEPS=1
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --rounds=*) ROUNDS=${1#*=}; shift ;;
    --duration) DURATION=$2; shift 2 ;;
    --duration=*) DURATION=${1#*=}; shift ;;
    --quick) ROUNDS=1; DURATION=3; shift ;;
    --servers) SERVERS=$2; shift 2 ;;
    --servers=*) SERVERS=${1#*=}; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --only=*) ONLY=${1#*=}; shift ;;
    --no-deps) DEPS=0; shift ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
case "${ROUNDS}${DURATION}" in *[!0-9]*) die "--rounds and --duration take whole numbers" ;; esac
if [ "${ROUNDS}" -lt 1 ] || [ "${DURATION}" -lt 1 ]; then die "--rounds and --duration must be >= 1"; fi

SERVER_CPUS=${SERVER_CPUS:-1}
CLIENT_CPUS=${CLIENT_CPUS:-0}
WRK_THREADS=${WRK_THREADS:-$(cpu_count "${CLIENT_CPUS}")}
SCALE_THREADS=${SCALE_THREADS:-2}
SCALE_SERVER_CPUS=${SCALE_SERVER_CPUS:-0,1}
SCALE_CLIENT_CPUS=${SCALE_CLIENT_CPUS:-${SCALE_SERVER_CPUS}}
IDLE_CONNS=${IDLE_CONNS:-10000}
LATENCY_RATE=${LATENCY_RATE:-30000}
LATENCY_CONNS=${LATENCY_CONNS:-64}
PORT_BASE=${PORT_BASE:-18480}
CATZILLA_BIN=${CATZILLA_BIN:-${ROOT}/build/catzilla}
CATZILLA_LIBC_BIN=${CATZILLA_LIBC_BIN:-${ROOT}/build/libc/catzilla}
RESULTS=${RESULTS_DIR:-${BENCH_DIR}/results}
STAMP=$(date +%Y%m%d-%H%M%S)
RAW="${RESULTS}/raw/${STAMP}"

only() { case ",${ONLY}," in *",$1,"*) return 0 ;; esac; return 1; }
has_server() { case " ${SERVERS} " in *" $1 "*) return 0 ;; esac; return 1; }
port_of() {
    case "$1" in
    catzilla) echo $((PORT_BASE + 1)) ;; nginx) echo $((PORT_BASE + 2)) ;;
    h2o) echo $((PORT_BASE + 3)) ;; catzilla-libc) echo $((PORT_BASE + 4)) ;;
    ceiling) echo $((PORT_BASE + 5)) ;;
    esac
}

# ---------------------------------------------------------------- setup
WORK=$(mktemp -d /tmp/catzilla-bench.XXXXXX)
chmod 0755 "${WORK}"
DOCROOT="${WORK}/docroot"
CLIENT_PID=""
cleanup() {
    stop_server
    if [ -n "${CLIENT_PID}" ]; then kill -TERM "${CLIENT_PID}" 2>/dev/null || true; fi
    rm -rf "${WORK}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${DEPS}" -eq 1 ]; then
    "${ROOT}/scripts/deps.sh" bench || die "scripts/deps.sh bench failed"
fi
command -v python3 >/dev/null 2>&1 || {
    [ "$(id -u)" -eq 0 ] || die "python3 is needed for the report"
    log "installing python3 (for the report)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null
}
for t in wrk taskset curl cc; do command -v "$t" >/dev/null 2>&1 || die "$t is missing"; done
has_server nginx && { command -v nginx >/dev/null 2>&1 || die "nginx is missing (scripts/deps.sh bench)"; }
has_server h2o && { command -v h2o >/dev/null 2>&1 || die "h2o is missing (scripts/deps.sh bench)"; }
stop_system_services

HAVE_LIBC=0
if has_server catzilla; then
    if [ "${BUILD}" -eq 1 ]; then
        make -C "${ROOT}" --no-print-directory build/catzilla >&2 || log "warning: make build/catzilla failed"
        if only memory; then
            make -C "${ROOT}" --no-print-directory ALLOCATOR=libc build/libc/catzilla >&2 ||
                log "warning: make ALLOCATOR=libc build/libc/catzilla failed"
        fi
    fi
    if [ ! -x "${CATZILLA_BIN}" ]; then
        log "warning: ${CATZILLA_BIN} does not exist: benchmarking the peers only"
        SERVERS=$(printf '%s\n' "${SERVERS}" | sed 's/catzilla//')
    fi
    [ -x "${CATZILLA_LIBC_BIN}" ] && HAVE_LIBC=1
fi
cc -O2 -o "${WORK}/idleconns" "${BENCH_DIR}/idleconns.c" || die "cannot build bench/idleconns.c"
cc -O2 -o "${WORK}/ratelat" "${BENCH_DIR}/ratelat.c" || die "cannot build bench/ratelat.c"
CEILING_BIN="${WORK}/ceiling"
if has_server ceiling && ! cc -O2 -o "${CEILING_BIN}" "${BENCH_DIR}/ceiling.c" -luring; then
    log "warning: cannot build bench/ceiling.c (liburing-dev): no ceiling figures"
    SERVERS=$(printf '%s\n' "${SERVERS}" | sed 's/ceiling//')
fi
read -r -a SERVER_LIST <<<"${SERVERS}"
[ "${#SERVER_LIST[@]}" -ge 1 ] || die "no server to benchmark"

make_docroot "${DOCROOT}"
mkdir -p "${RAW}"

# Every server and client inherits this: 10,000 idle connections need more than 1024 fds.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "${NOFILE}" = unlimited ] && NOFILE=1048576
if [ "${NOFILE}" -lt $((IDLE_CONNS + 200)) ]; then
    log "warning: ulimit -n is ${NOFILE}: IDLE_CONNS lowered to $((NOFILE - 200))"
    IDLE_CONNS=$((NOFILE - 200))
fi

CLK_TCK=$(getconf CLK_TCK)
RUNS_CSV="${RAW}/runs.csv"
IDLE_CSV="${RAW}/idle.csv"
MEM_CSV="${RAW}/memory.csv"
LAT_CSV="${RAW}/latency.csv"
echo "round,scenario,server,threads,conns,requests,rps,bytes_per_sec,p50_us,p99_us,non2xx,socket_errors,server_cpu_pct,foreign_cpu_pct,busy_cpu_s,busy_pct,irq_pct,steal_pct,req_per_busy_s,disturbed" >"${RUNS_CSV}"
echo "round,server,conns_ok,conns_failed,closed_by_server,rss_before_kib,rss_after_kib" >"${IDLE_CSV}"
echo "round,build,rss_start_kib,rss_after_load_kib,stats_file" >"${MEM_CSV}"
echo "round,server,offered_rps,conns,achieved_rps,completed,errors,late,p50_us,p90_us,p99_us,p999_us,max_us,busy_pct,steal_pct,disturbed" >"${LAT_CSV}"

# Facts about this run, for the report.
{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel=$(uname -r)"
    echo "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "nproc=$(nproc)"
    echo "governor=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo n/a)"
    echo "nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///')"
    echo "h2o=$(h2o --version 2>/dev/null | awk 'NR == 1 { print $3 }')"
    echo "wrk=$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
    if [ -x "${CATZILLA_BIN}" ]; then
        echo "catzilla=$("${CATZILLA_BIN}" --version 2>&1 | head -n1)"
    fi
    echo "git=$(git -C "${ROOT}" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo "rounds=${ROUNDS}"
    echo "duration=${DURATION}"
    echo "server_cpus=${SERVER_CPUS}"
    echo "client_cpus=${CLIENT_CPUS}"
    echo "wrk_threads=${WRK_THREADS}"
    echo "scale_threads=${SCALE_THREADS}"
    echo "scale_server_cpus=${SCALE_SERVER_CPUS}"
    echo "scale_client_cpus=${SCALE_CLIENT_CPUS}"
    echo "idle_conns=${IDLE_CONNS}"
    echo "latency_rate=${LATENCY_RATE}"
    echo "latency_conns=${LATENCY_CONNS}"
    echo "latency_disturbed_pct=${LATENCY_DISTURBED_PCT}"
    echo "disturbed_pct=${DISTURBED_PCT}"
    echo "servers=${SERVERS}"
} >"${RAW}/env.txt"

# ---------------------------------------------------------------- scenarios
# rerun_disturbed FUNCTION ARGS...: runs a measurement (measure_once, latency_once) again, up
# to RERUNS more times, while it comes out disturbed. Every run stays in the CSV with its
# disturbed flag; the report's medians leave the disturbed ones out.
LAST_DISTURBED=0
rerun_disturbed() {
    local i
    for ((i = 0; i <= RERUNS; i++)); do
        "$@"
        [ "${LAST_DISTURBED}" -eq 1 ] || return 0
        [ "${i}" -lt "${RERUNS}" ] && log "that run was disturbed (steal or other processes): running it again"
    done
    return 0
}
measure() { rerun_disturbed measure_once "$@"; }

# measure_once ROUND SCENARIO SERVER THREADS SRV_CPUS CLI_CPUS CLI_THREADS CONNS PATH [LUA [ARGS]]
measure_once() {
    local round=$1 scen=$2 srv=$3 threads=$4 scpus=$5 ccpus=$6 cthreads=$7 conns=$8 path=$9
    shift 9
    local port out row t0 t1 c0 c1 u0 i0 x0 a0 u1 i1 x1 a1 shared
    local reqs rps bps p50 p99 n2 se cpu other busy bpct irq steal per dist
    port=$(port_of "${srv}")
    out="${RAW}/r${round}-${scen}-${srv}.txt"
    LAST_DISTURBED=0
    CEILING_BODY="${DOCROOT}${path}"
    [ "${path}" = /plaintext ] && CEILING_BODY="${DOCROOT}/plaintext.txt"
    if ! start_server "${srv}" "${port}" "${scpus}" "${threads}"; then
        echo "${round},${scen},${srv},${threads},${conns},nan,nan,nan,nan,nan,0,0,nan,nan,nan,nan,nan,nan,nan,0" >>"${RUNS_CSV}"
        return 0
    fi
    WRK_CPUS_NOW=${ccpus} WRK_THREADS_NOW=${cthreads} \
        run_wrk "${out}.warmup" "${conns}" "${WARMUP}" "http://127.0.0.1:${port}${path}" "$@"
    # CPU over the measured run: the server CPUs' counters (/proc/stat) read right around wrk,
    # and the server's own (its process tree) just outside them
    c0=$(tree_cpu_ticks "${SERVER_PID}")
    read -r u0 i0 x0 a0 <<<"$(cpu_ticks "${scpus}")"
    t0=$(date +%s%N)
    WRK_CPUS_NOW=${ccpus} WRK_THREADS_NOW=${cthreads} \
        run_wrk "${out}" "${conns}" "${DURATION}" "http://127.0.0.1:${port}${path}" "$@"
    t1=$(date +%s%N)
    read -r u1 i1 x1 a1 <<<"$(cpu_ticks "${scpus}")"
    c1=$(tree_cpu_ticks "${SERVER_PID}")
    stop_server
    row=$(parse_wrk "${out}")
    read -r reqs rps bps p50 p99 n2 se <<<"${row}"
    # a client on the server's CPUs makes their busy time and "other processes" its own too
    shared=0
    cpu_lists_overlap "${scpus}" "${ccpus}" && shared=1
    # server_cpu_pct and foreign_cpu_pct in % of one core; busy_pct, irq_pct and steal_pct in %
    # of the server CPUs' time; req_per_busy_s = requests / busy CPU-seconds (see bench/README.md)
    read -r cpu other busy bpct irq steal per dist <<<"$(awk -v c="$((c1 - c0))" -v u="$((u1 - u0))" \
        -v irq="$((i1 - i0))" -v st="$((x1 - x0))" -v tot="$((a1 - a0))" -v hz="${CLK_TCK}" \
        -v ns="$((t1 - t0))" -v req="${reqs}" -v shared="${shared}" -v lim="${DISTURBED_PCT}" '
        BEGIN {
            core = (ns > 0 ? 100 / hz / (ns / 1e9) : 0)
            share = (tot > 0 ? 100 / tot : 0)
            busy = u + irq
            o = (u - c) * core
            other = (shared ? "nan" : sprintf("%.1f", o > 0 ? o : 0))
            per = (shared || req == "nan" || busy == 0 ? "nan" : sprintf("%.0f", req * hz / busy))
            dist = (st * share > lim || (!shared && o > lim))
            printf "%.1f %s %.2f %.1f %.1f %.1f %s %d\n", c * core, other, busy / hz, busy * share,
                irq * share, st * share, per, dist
        }')"
    echo "${round},${scen},${srv},${threads},${conns},${row// /,},${cpu},${other},${busy},${bpct},${irq},${steal},${per},${dist}" \
        >>"${RUNS_CSV}"
    LAST_DISTURBED=${dist}
    log "$(printf 'r%s %-10s %-9s %12s req/s %10s B/s p50 %sus p99 %sus non2xx %s sockerr %s | %s req/busy-s, busy %s%% steal %s%% | CPU %s%% other %s%% irq %s%%%s' \
        "${round}" "${scen}" "${srv}" "${rps}" "${bps}" "${p50}" "${p99}" "${n2}" "${se}" \
        "${per}" "${bpct}" "${steal}" "${cpu}" "${other}" "${irq}" \
        "$([ "${dist}" -eq 1 ] && echo ' DISTURBED')")"
}

latency_run() { rerun_disturbed latency_once "$@"; }

# latency_once ROUND SERVER: bench/ratelat.c offers LATENCY_RATE req/s of GET /plaintext over
# LATENCY_CONNS connections for DURATION s (after 1 s not counted); latency from when each
# request was due, and the server CPU's busy share at that rate
latency_once() {
    local round=$1 srv=$2 port out u0 i0 x0 a0 u1 i1 x1 a1 busy steal dist
    LAST_DISTURBED=0
    port=$(port_of "${srv}")
    out="${RAW}/r${round}-latency-${srv}.txt"
    CEILING_BODY="${DOCROOT}/plaintext.txt"
    if ! start_server "${srv}" "${port}" "${SERVER_CPUS}" 1; then
        echo "${round},${srv},${LATENCY_RATE},${LATENCY_CONNS},nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,0" >>"${LAT_CSV}"
        return 0
    fi
    read -r u0 i0 x0 a0 <<<"$(cpu_ticks "${SERVER_CPUS}")"
    taskset -c "${CLIENT_CPUS}" "${WORK}/ratelat" 127.0.0.1 "${port}" /plaintext "${LATENCY_RATE}" \
        "${LATENCY_CONNS}" "${DURATION}" 1 >"${out}" 2>&1 || true
    read -r u1 i1 x1 a1 <<<"$(cpu_ticks "${SERVER_CPUS}")"
    stop_server
    read -r busy steal dist <<<"$(awk -v u="$((u1 - u0 + i1 - i0))" -v st="$((x1 - x0))" \
        -v tot="$((a1 - a0))" -v lim="${LATENCY_DISTURBED_PCT}" 'BEGIN {
            s = (tot > 0 ? 100 / tot : 0)
            printf "%.1f %.1f %d\n", u * s, st * s, (st * s > lim) }')"
    local k v row=""
    for k in achieved_rps completed errors late p50_us p90_us p99_us p999_us max_us; do
        v=$(awk -F= -v k="$k" '$1 == k { print $2 }' "${out}")
        row="${row},${v:-nan}"
    done
    echo "${round},${srv},${LATENCY_RATE},${LATENCY_CONNS}${row},${busy},${steal},${dist}" >>"${LAT_CSV}"
    LAST_DISTURBED=${dist}
    log "$(printf 'r%s latency    %-9s %s req/s offered: %s | busy %s%% steal %s%%' "${round}" "${srv}" \
        "${LATENCY_RATE}" "$(tr '\n' ' ' <"${out}")" "${busy}" "${steal}")"
}

# idle_rss ROUND SERVER: RSS before/after IDLE_CONNS idle keep-alive connections
idle_rss() {
    local round=$1 srv=$2 port before after out i line ok=0 failed=0 closed=0
    port=$(port_of "${srv}")
    out="${RAW}/r${round}-idle-${srv}.txt"
    if ! start_server "${srv}" "${port}" "${SERVER_CPUS}" 1; then
        echo "${round},${srv},0,${IDLE_CONNS},0,nan,nan" >>"${IDLE_CSV}"
        return 0
    fi
    curl -s -o /dev/null "http://127.0.0.1:${port}/plaintext" || true
    sleep 0.5
    before=$(tree_rss_kib "${SERVER_PID}")
    taskset -c "${CLIENT_CPUS}" "${WORK}/idleconns" 127.0.0.1 "${port}" "${IDLE_CONNS}" /plaintext 120 \
        </dev/null >"${out}" 2>&1 &
    CLIENT_PID=$!
    for ((i = 0; i < 900; i++)); do
        grep -q '^ready' "${out}" && break
        kill -0 "${CLIENT_PID}" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1   # let the server settle; well inside every server's keep-alive timeout
    after=$(tree_rss_kib "${SERVER_PID}")
    kill -TERM "${CLIENT_PID}" 2>/dev/null || true
    wait "${CLIENT_PID}" 2>/dev/null || true
    CLIENT_PID=""
    stop_server
    line=$(grep '^ready' "${out}" || true)
    if [ -n "${line}" ]; then read -r _ ok failed <<<"${line}"; else failed=${IDLE_CONNS}; fi
    closed=$(awk '/^closed_by_server/ { print $2 }' "${out}")
    echo "${round},${srv},${ok},${failed},${closed:-0},${before},${after}" >>"${IDLE_CSV}"
    log "$(printf 'r%s idle       %-9s %s ok, %s failed, %s closed early; RSS %s KiB -> %s KiB' \
        "${round}" "${srv}" "${ok}" "${failed}" "${closed:-0}" "${before}" "${after}")"
}

# memory_run ROUND BUILD BIN: RSS and /_catzilla/stats after a mixed load (one worker)
memory_run() {
    local round=$1 build=$2 bin=$3 name port rss0 rss1 stats seg
    name=catzilla
    [ "${build}" = libc ] && name=catzilla-libc
    port=$(port_of "${name}")
    stats="${RAW}/r${round}-stats-${build}.json"
    start_server "${name}" "${port}" "${SERVER_CPUS}" 1 "${bin}" || return 0
    rss0=$(tree_rss_kib "${SERVER_PID}")
    seg=$((DURATION / 3))
    [ "${seg}" -ge 2 ] || seg=2
    export WRK_CPUS_NOW=${CLIENT_CPUS} WRK_THREADS_NOW=${WRK_THREADS}
    run_wrk "${RAW}/r${round}-mixed-${build}-1.txt" 64 "${seg}" "http://127.0.0.1:${port}/plaintext"
    run_wrk "${RAW}/r${round}-mixed-${build}-2.txt" 64 "${seg}" "http://127.0.0.1:${port}/16k.txt"
    run_wrk "${RAW}/r${round}-mixed-${build}-3.txt" 16 "${seg}" "http://127.0.0.1:${port}/1m.bin"
    run_wrk "${RAW}/r${round}-mixed-${build}-4.txt" 64 "${seg}" "http://127.0.0.1:${port}/json"
    run_wrk "${RAW}/r${round}-mixed-${build}-5.txt" 64 "${seg}" "http://127.0.0.1:${port}/plaintext" \
        "${BENCH_DIR}/pipeline.lua" 16
    unset WRK_CPUS_NOW WRK_THREADS_NOW
    # and 1,000 keep-alive connections that come and go
    taskset -c "${CLIENT_CPUS}" "${WORK}/idleconns" 127.0.0.1 "${port}" 1000 /19b.txt 0 \
        </dev/null >"${RAW}/r${round}-mixed-${build}-idle.txt" 2>&1 || true
    sleep 0.5
    rss1=$(tree_rss_kib "${SERVER_PID}")
    curl -s --max-time 5 -o "${stats}" "http://127.0.0.1:${port}/_catzilla/stats" || true
    stop_server
    echo "${round},${build},${rss0},${rss1},$(basename "${stats}")" >>"${MEM_CSV}"
    log "$(printf 'r%s memory     %-9s RSS %s KiB -> %s KiB after the mixed load' \
        "${round}" "${build}" "${rss0}" "${rss1}")"
}

# ---------------------------------------------------------------- rounds
log "servers: ${SERVERS}; ${ROUNDS} round(s) of ${DURATION} s runs; server on CPU ${SERVER_CPUS}, wrk on CPU ${CLIENT_CPUS}"
log "raw output: ${RAW}"
n=${#SERVER_LIST[@]}
for ((round = 1; round <= ROUNDS; round++)); do
    # alternate: each round starts with a different server, and every scenario runs each
    # server back to back, so slow drifts (thermal, noisy neighbours) hit all of them alike
    order=()
    for ((k = 0; k < n; k++)); do order+=("${SERVER_LIST[$(((k + round - 1) % n))]}"); done
    log "round ${round}/${ROUNDS}: order ${order[*]}"
    busy=$(quiet_check "${SERVER_CPUS},${CLIENT_CPUS}")
    if [ "${busy}" -gt 10 ]; then
        log "warning: before round ${round} the benchmark CPUs were ${busy}% busy with other work"
        printf 'before round %s the benchmark CPUs were %s%% busy with other processes (top: %s)\n' \
            "${round}" "${busy}" "$(ps -eo pcpu=,comm= --sort=-pcpu | head -n 3 | awk '{ printf "%s %s%%; ", $2, $1 }')" \
            >>"${RAW}/warnings.txt"
    fi
    for srv in "${order[@]}"; do
        only plaintext && measure "${round}" plaintext "${srv}" 1 "${SERVER_CPUS}" "${CLIENT_CPUS}" "${WRK_THREADS}" 64 /plaintext
    done
    for srv in "${order[@]}"; do
        only pipelined && measure "${round}" pipelined "${srv}" 1 "${SERVER_CPUS}" "${CLIENT_CPUS}" "${WRK_THREADS}" 64 /plaintext \
            "${BENCH_DIR}/pipeline.lua" 16
    done
    for srv in "${order[@]}"; do
        only file19 && measure "${round}" file19 "${srv}" 1 "${SERVER_CPUS}" "${CLIENT_CPUS}" "${WRK_THREADS}" 64 /19b.txt
    done
    for srv in "${order[@]}"; do
        only file16k && measure "${round}" file16k "${srv}" 1 "${SERVER_CPUS}" "${CLIENT_CPUS}" "${WRK_THREADS}" 64 /16k.txt
    done
    for srv in "${order[@]}"; do
        only file1m && measure "${round}" file1m "${srv}" 1 "${SERVER_CPUS}" "${CLIENT_CPUS}" "${WRK_THREADS}" 16 /1m.bin
    done
    for srv in "${order[@]}"; do
        only conns1k && measure "${round}" conns1k "${srv}" 1 "${SERVER_CPUS}" "${CLIENT_CPUS}" "${WRK_THREADS}" 1000 /plaintext
    done
    for srv in "${order[@]}"; do
        only conns10k && measure "${round}" conns10k "${srv}" 1 "${SERVER_CPUS}" "${CLIENT_CPUS}" "${WRK_THREADS}" 10000 /plaintext
    done
    for srv in "${order[@]}"; do
        only latency && latency_run "${round}" "${srv}"
    done
    for srv in "${order[@]}"; do
        [ "${srv}" = ceiling ] && continue   # one thread, and not a server to keep connections
        only scaling && measure "${round}" scaling "${srv}" "${SCALE_THREADS}" "${SCALE_SERVER_CPUS}" \
            "${SCALE_CLIENT_CPUS}" "$(cpu_count "${SCALE_CLIENT_CPUS}")" 64 /plaintext
    done
    for srv in "${order[@]}"; do
        [ "${srv}" = ceiling ] && continue
        only idle && idle_rss "${round}" "${srv}"
    done
    if only memory && has_server catzilla; then
        if [ $((round % 2)) -eq 1 ] || [ "${HAVE_LIBC}" -eq 0 ]; then
            memory_run "${round}" jemalloc "${CATZILLA_BIN}"
            [ "${HAVE_LIBC}" -eq 1 ] && memory_run "${round}" libc "${CATZILLA_LIBC_BIN}"
        else
            memory_run "${round}" libc "${CATZILLA_LIBC_BIN}"
            memory_run "${round}" jemalloc "${CATZILLA_BIN}"
        fi
    fi
done

# ---------------------------------------------------------------- report
python3 "${BENCH_DIR}/report.py" "${RAW}" "${RESULTS}" || die "report failed (raw data kept in ${RAW})"
log "done: ${RESULTS}/latest.md"
