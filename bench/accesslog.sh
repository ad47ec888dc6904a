#!/usr/bin/env bash
# What the access log costs: /plaintext with 64 keep-alive connections, one server worker
# pinned to CPU 1, wrk on CPU 0, each server with its access log off and on, alternating
# within each round; medians of requests per second and requests per busy second of CPU 1
# (iowait counted as idle, steal recorded; a run with more than 10 % steal or foreign CPU is
# marked disturbed and left out of the medians when others remain).
#
#   bench/accesslog.sh [ROUNDS] [SECONDS]        (defaults 3 and 5; root, Debian 12)
#
# Variants: catzilla off / combined / json (to a file, --access-log), nginx off / combined
# (buffer=64k flush=1s, its recommended buffered mode, nearest to catzilla's per-worker
# buffers) and h2o off / on.  The log files live in a directory under /tmp; each "on" run
# checks that the log got one line per request (lines / requests is reported).
# Output: bench/results/accesslog.md (and raw wrk output under bench/results/raw/).
set -eu
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "${BENCH_DIR}")
# shellcheck source=bench/lib.sh
. "${BENCH_DIR}/lib.sh"

ROUNDS=${1:-3}
SECS=${2:-5}
SERVER_CPUS=1
CLIENT_CPUS=0
PORT=${PORT_BASE:-18480}
CATZILLA_BIN=${CATZILLA_BIN:-${ROOT}/build/catzilla}
RESULTS=${RESULTS_DIR:-${BENCH_DIR}/results}
RAW="${RESULTS}/raw/accesslog-$(date +%Y%m%d-%H%M%S)"
WORK=$(mktemp -d /tmp/catzilla-alog.XXXXXX)
chmod 0755 "${WORK}"
DOCROOT="${WORK}/docroot"
SERVER_PID=""
cleanup() { stop_server; rm -rf "${WORK}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

"${ROOT}/scripts/deps.sh" bench || die "scripts/deps.sh bench failed"
make -C "${ROOT}" --no-print-directory build/catzilla >&2
stop_system_services
make_docroot "${DOCROOT}"
mkdir -p "${RAW}"
chmod 0777 "${WORK}" # nginx's workers may run as www-data
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "${NOFILE}" = unlimited ] && NOFILE=1048576
CSV="${RAW}/runs.csv"
echo "round,variant,requests,rps,busy_pct,steal_pct,foreign_pct,req_per_busy_s,log_lines,disturbed" >"${CSV}"

VARIANTS="catzilla-off catzilla-combined catzilla-json nginx-off nginx-combined h2o-off h2o-on"

# start_variant VARIANT LOGFILE: the server of VARIANT on PORT with its log set
start_variant() {
    local v=$1 logf=$2
    CATZILLA_EXTRA_ARGS="--access-log off" NGINX_ACCESS_LOG=off H2O_ACCESS_LOG=
    case "${v}" in
    catzilla-combined) CATZILLA_EXTRA_ARGS="--access-log ${logf}" ;;
    catzilla-json) CATZILLA_EXTRA_ARGS="--access-log ${logf} --access-log-format json" ;;
    nginx-combined) NGINX_ACCESS_LOG="${logf} combined buffer=64k flush=1s" ;;
    h2o-on) H2O_ACCESS_LOG=${logf} ;;
    esac
    export CATZILLA_EXTRA_ARGS NGINX_ACCESS_LOG H2O_ACCESS_LOG
    start_server "${v%%-*}" "${PORT}" "${SERVER_CPUS}" 1
}

run_variant() { # run_variant ROUND VARIANT
    local round=$1 v=$2 logf="${WORK}/${2}.log" out="${RAW}/r${1}-${2}.txt"
    rm -f "${logf}"
    start_variant "${v}" "${logf}" || die "${v} does not start"
    WRK_CPUS_NOW=${CLIENT_CPUS} WRK_THREADS_NOW=1 run_wrk "${out}.warmup" 64 1 "http://127.0.0.1:${PORT}/plaintext"
    local lines0=0
    [ -f "${logf}" ] && lines0=$(wc -l <"${logf}")
    local u0 i0 s0 t0 u1 i1 s1 t1 c0 c1
    read -r u0 i0 s0 t0 <<<"$(cpu_ticks "${SERVER_CPUS}")"
    c0=$(tree_cpu_ticks "${SERVER_PID}")
    WRK_CPUS_NOW=${CLIENT_CPUS} WRK_THREADS_NOW=1 run_wrk "${out}" 64 "${SECS}" "http://127.0.0.1:${PORT}/plaintext"
    read -r u1 i1 s1 t1 <<<"$(cpu_ticks "${SERVER_CPUS}")"
    c1=$(tree_cpu_ticks "${SERVER_PID}")
    sleep 1.2 # the last buffers reach the file (catzilla: 100 ms tick; nginx: flush=1s)
    local lines=0
    [ -f "${logf}" ] && lines=$(( $(wc -l <"${logf}") - lines0 ))
    stop_server
    local reqs rps rest
    read -r reqs rps rest <<<"$(parse_wrk "${out}")"
    awk -v r="${round}" -v v="${v}" -v req="${reqs}" -v rps="${rps}" -v u="$((u1 - u0))" \
        -v irq="$((i1 - i0))" -v st="$((s1 - s0))" -v tot="$((t1 - t0))" -v c="$((c1 - c0))" \
        -v hz="$(getconf CLK_TCK)" -v lines="${lines}" -v secs="${SECS}" 'BEGIN {
        busy = u + irq
        # foreign: busy time on the server CPU that was not the server (the tree_cpu ticks)
        foreign = busy > c ? (busy - c) / tot * 100 : 0
        per = busy > 0 ? req * hz / busy : 0
        dist = (st / tot * 100 > 10 || foreign > 10) ? 1 : 0
        printf "%s,%s,%s,%s,%.1f,%.1f,%.1f,%.0f,%s,%d\n", r, v, req, rps, busy / tot * 100,
            st / tot * 100, foreign, per, lines, dist
    }' >>"${CSV}"
    log "$(tail -n1 "${CSV}")"
}

log "access log cost: ${ROUNDS} rounds x ${SECS} s, variants: ${VARIANTS}"
for round in $(seq 1 "${ROUNDS}"); do
    for v in ${VARIANTS}; do
        run_variant "${round}" "${v}"
    done
done

python3 - "${CSV}" "${RESULTS}/accesslog.md" "$(${CATZILLA_BIN} --version | head -n1)" \
    "$(nginx -v 2>&1 | sed 's/.*nginx\///')" "$(h2o --version 2>/dev/null | awk 'NR == 1 { print $3 }')" \
    "${ROUNDS}" "${SECS}" <<'EOF'
import csv, statistics, sys, time
rows = list(csv.DictReader(open(sys.argv[1])))
out, cz, ngx, h2o, rounds, secs = sys.argv[2:8]
def med(v, key):
    runs = [r for r in rows if r["variant"] == v]
    quiet = [r for r in runs if r["disturbed"] == "0"] or runs
    return statistics.median(float(r[key]) for r in quiet), len(quiet), len(runs)
lines = ["# Access log cost", "",
         f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, `bench/accesslog.sh {rounds} {secs}`: "
         f"/plaintext, 64 keep-alive connections, one server worker on CPU 1, wrk (1 thread) on CPU 0; "
         f"medians over the undisturbed runs. {cz}; nginx {ngx}; h2o {h2o}.", "",
         "| variant | req/s | req per busy s of CPU 1 | vs log off (per busy s) | log lines / request | runs used |",
         "|---|---|---|---|---|---|"]
for v in ["catzilla-off", "catzilla-combined", "catzilla-json", "nginx-off", "nginx-combined",
          "h2o-off", "h2o-on"]:
    rps, n, total = med(v, "rps")
    per, _, _ = med(v, "req_per_busy_s")
    base, _, _ = med(v.split("-")[0] + "-off", "req_per_busy_s")
    logged = [float(r["log_lines"]) / float(r["requests"]) for r in rows
              if r["variant"] == v and float(r["requests"]) > 0]
    ratio = "—" if v.endswith("-off") else f"{per / base:.2f}×"
    lr = "—" if v.endswith("-off") else f"{statistics.median(logged):.3f}"
    lines.append(f"| {v} | {rps:,.0f} | {per:,.0f} | {ratio} | {lr} | {n}/{total} |")
lines += ["", "Steal and foreign CPU per run are in the raw `runs.csv`; a run with more than 10 % "
          "of either is left out when undisturbed runs remain. nginx logs with "
          "`buffer=64k flush=1s`; h2o with its default logger.", ""]
open(out, "w").write("\n".join(lines))
print("\n".join(lines))
EOF
cp "${CSV}" "${RESULTS}/accesslog.csv"
