# shellcheck shell=bash
# Helpers for bench/run.sh: servers, wrk, parsing, RSS. Sourced, not run.
# Globals used: BENCH_DIR ROOT WORK DOCROOT RAW CATZILLA_BIN CATZILLA_EXTRA_ARGS CEILING_BIN
# CEILING_BODY

# ---------------------------------------------------------------- misc
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# "0-2,5" -> "0 1 2 5"
cpu_list_expand() {
    local part a b out=""
    local IFS=,
    for part in $1; do
        if [ "${part#*-}" != "${part}" ]; then
            a=${part%-*}; b=${part#*-}
            while [ "$a" -le "$b" ]; do out="${out} $a"; a=$((a + 1)); done
        else
            out="${out} ${part}"
        fi
    done
    printf '%s\n' "${out# }"
}
cpu_count() {
    local arr
    read -r -a arr <<<"$(cpu_list_expand "$1")"
    printf '%s\n' "${#arr[@]}"
}

# nginx worker_cpu_affinity masks for N workers spread over a CPU list: "0010" or "01 10".
nginx_affinity() { # nginx_affinity CPUS N
    local cpu_arr n i masks="" cpu bits j
    read -r -a cpu_arr <<<"$(cpu_list_expand "$1")"
    n=$2
    for ((i = 0; i < n; i++)); do
        cpu=${cpu_arr[$((i % ${#cpu_arr[@]}))]}
        bits=""
        for ((j = 0; j <= cpu; j++)); do
            if [ "$j" -eq "${cpu}" ]; then bits="1${bits}"; else bits="0${bits}"; fi
        done
        masks="${masks} ${bits}"
    done
    printf '%s\n' "${masks# }"
}

# Descendants of PID (children, grandchildren, ...), one per line.
descendants() {
    local p kids
    # the fields after the last ')' are: state ppid ... (comm, in parentheses, may hold spaces)
    kids=$(cat /proc/[0-9]*/stat 2>/dev/null |
        awk -v pp="$1" '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); if (f[2] == pp) print $1 }' || true)
    for p in ${kids}; do
        printf '%s\n' "$p"
        descendants "$p"
    done
}

# Sum of VmRSS (KiB) over PID and all its descendants (nginx: master + workers).
tree_rss_kib() {
    local total=0 p v
    for p in "$1" $(descendants "$1"); do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    printf '%s\n' "${total}"
}

# CPU time (clock ticks, user + system, all threads) of PID and its descendants.
tree_cpu_ticks() {
    local total=0 p v
    for p in "$1" $(descendants "$1"); do
        # fields after the last ')': state ppid ... utime is the 12th, stime the 13th
        v=$(awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' \
            "/proc/$p/stat" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    printf '%s\n' "${total}"
}

# cpu_lists_overlap A B: true when the CPU lists A and B share a CPU.
cpu_lists_overlap() {
    local c
    for c in $(cpu_list_expand "$1"); do
        case " $(cpu_list_expand "$2") " in *" $c "*) return 0 ;; esac
    done
    return 1
}

# cpu_ticks CPUS -> "usersys irq steal total" clock ticks summed over those CPUs (/proc/stat:
# cpuN user nice system idle iowait irq softirq steal guest guest_nice).
# usersys (user + nice + system) minus the server's own ticks is CPU time that other processes
# took on the server's CPUs; irq (irq + softirq) is mostly loopback packet work; steal is the
# hypervisor's. Busy is usersys + irq: idle and iowait are not (a thread blocked in
# io_uring_enter is accounted as iowait), nor is steal. total is every field from user to steal
# (guest time is already inside user), so busy / total and steal / total are shares of the CPUs.
cpu_ticks() {
    awk -v list=" $(cpu_list_expand "$1") " '
        $1 ~ /^cpu[0-9]+$/ && index(list, " " substr($1, 4) " ") {
            us += $2 + $3 + $4; irq += $7 + $8; st += $9
            for (i = 2; i <= 9; i++) tot += $i
        }
        END { print us + 0, irq + 0, st + 0, tot + 0 }' /proc/stat
}

# quiet_check CPUS: percent of one core used on CPUS over 1 s while nothing of ours runs.
quiet_check() {
    local a b d e
    read -r a b _ <<<"$(cpu_ticks "$1")"
    sleep 1
    read -r d e _ <<<"$(cpu_ticks "$1")"
    printf '%s\n' $(( (d - a + e - b) * 100 / CLK_TCK ))
}

# Every thread of PID and its descendants must be allowed only on CPUS. Prints offenders.
affinity_violations() { # affinity_violations PID CPUS
    local allowed p t list c ok bad=""
    allowed=" $(cpu_list_expand "$2") "
    for p in "$1" $(descendants "$1"); do
        for t in /proc/"$p"/task/*; do
            list=$(awk '/^Cpus_allowed_list:/ { print $2 }' "$t/status" 2>/dev/null || true)
            [ -n "${list}" ] || continue
            ok=1
            for c in $(cpu_list_expand "${list}"); do
                case "${allowed}" in *" $c "*) ;; *) ok=0 ;; esac
            done
            [ "${ok}" -eq 1 ] || bad="${bad} ${t##*/}:${list}"
        done
    done
    printf '%s\n' "${bad# }"
}

# kill_tree PID: SIGTERM, wait up to 10 s, then SIGKILL whatever of the tree is left.
kill_tree() {
    local pid=$1 kids i
    kill -0 "${pid}" 2>/dev/null || return 0
    kids=$(descendants "${pid}")
    kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "${pid}" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "${pid}" 2>/dev/null; then
        log "pid ${pid} ignored SIGTERM for 10 s: SIGKILL"
        kill -KILL "${pid}" 2>/dev/null || true
    fi
    for i in ${kids}; do kill -KILL "$i" 2>/dev/null || true; done
    wait "${pid}" 2>/dev/null || true
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true; }

# ---------------------------------------------------------------- peers as system services
# Debian's nginx and h2o packages may start their own service: stop it so only our
# benchmark instances run (they would steal CPU and could hold ports).
stop_system_services() {
    local svc
    for svc in nginx h2o; do
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            if systemctl is-active --quiet "${svc}" 2>/dev/null; then
                log "stopping the ${svc} system service (systemctl stop ${svc})"
                systemctl stop "${svc}" || true
            fi
        elif [ -x "/etc/init.d/${svc}" ] && "/etc/init.d/${svc}" status >/dev/null 2>&1; then
            log "stopping the ${svc} system service (/etc/init.d/${svc} stop)"
            "/etc/init.d/${svc}" stop >/dev/null 2>&1 || true
        fi
    done
}

# ---------------------------------------------------------------- docroot
make_docroot() { # make_docroot DIR
    mkdir -p "$1"
    printf 'Hello, World!' >"$1/plaintext.txt"                       # 13 B (h2o's /plaintext)
    printf 'Hello, Catzilla!!!\n' >"$1/19b.txt"                       # 19 B
    head -c 16384 /dev/zero | tr '\0' 'a' >"$1/16k.txt"              # 16 KiB
    head -c 1048576 /dev/urandom >"$1/1m.bin"                         # 1 MiB
    printf '<!doctype html><title>bench</title>\n' >"$1/index.html"
    [ "$(wc -c <"$1/19b.txt")" -eq 19 ] || die "19b.txt is not 19 bytes"
    # nginx workers and h2o drop to nobody when started as root: everything world-readable
    chmod 0755 "$1"
    chmod 0644 "$1"/*
}

# ---------------------------------------------------------------- servers
# start_server NAME PORT CPUS THREADS [BIN] -> sets SERVER_PID; returns 1 if it never answers.
SERVER_PID=""
start_server() {
    local name=$1 port=$2 cpus=$3 threads=$4 bin=${5:-${CATZILLA_BIN}} rundir i
    rundir="${WORK}/run-${name}-${port}"
    rm -rf "${rundir}"
    mkdir -p "${rundir}"
    port_in_use "${port}" && die "port ${port} is already in use (something else answers there)"
    case "${name}" in
    catzilla*)
        # pinning stays on (catzilla pins its workers within the affinity mask taskset gives)
        # shellcheck disable=SC2086
        taskset -c "${cpus}" "${bin}" --threads "${threads}" --bind 127.0.0.1 --port "${port}" --admin same \
            --root "${DOCROOT}" --log-level warn --max-keepalive-requests 0 \
            ${CATZILLA_PIN_ARGS:-} ${CATZILLA_EXTRA_ARGS:-} >"${rundir}/out.log" 2>&1 &
        ;;
    nginx)
        sed -e "s|@WORKERS@|${threads}|g" \
            -e "s|@AFFINITY@|$(nginx_affinity "${cpus}" "${threads}")|g" \
            -e "s|@NOFILE@|${NOFILE}|g" -e "s|@CONNS@|$((NOFILE - 100))|g" \
            -e "s|@RUNDIR@|${rundir}|g" -e "s|@PORT@|${port}|g" -e "s|@DOCROOT@|${DOCROOT}|g" \
            -e "s|@REUSEPORT@|$([ "${threads}" -gt 1 ] && echo reuseport)|g" \
            -e "s|@CPUS@|${cpus}|g" -e "s|@ACCESS_LOG@|${NGINX_ACCESS_LOG:-off}|g" \
            "${BENCH_DIR}/conf/nginx.conf.in" >"${rundir}/nginx.conf"
        taskset -c "${cpus}" nginx -p "${rundir}/" -e "${rundir}/nginx-error.log" \
            -c "${rundir}/nginx.conf" >"${rundir}/out.log" 2>&1 &
        ;;
    h2o)
        sed -e "s|@THREADS@|${threads}|g" -e "s|@CONNS@|$((NOFILE - 100))|g" \
            -e "s|@RUNDIR@|${rundir}|g" -e "s|@PORT@|${port}|g" -e "s|@DOCROOT@|${DOCROOT}|g" \
            -e "s|@CPUS@|${cpus}|g" \
            -e "s|@ACCESS_LOG@|${H2O_ACCESS_LOG:+access-log: ${H2O_ACCESS_LOG}}|g" \
            "${BENCH_DIR}/conf/h2o.conf.in" >"${rundir}/h2o.conf"
        taskset -c "${cpus}" h2o -c "${rundir}/h2o.conf" >"${rundir}/out.log" 2>&1 &
        ;;
    ceiling)
        # bench/ceiling.c: one thread answering every request with CEILING_BODY's bytes
        [ "${threads}" -eq 1 ] || die "the ceiling responder has one thread"
        taskset -c "${cpus}" "${CEILING_BIN}" "${port}" "${CEILING_BODY:-${DOCROOT}/19b.txt}" \
            >"${rundir}/out.log" 2>&1 &
        ;;
    *) die "unknown server ${name}" ;;
    esac
    SERVER_PID=$!
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "${SERVER_PID}" 2>/dev/null; then
            log "${name} exited at start; its output:"
            cat "${rundir}/out.log" "${rundir}"/*error.log >&2 2>/dev/null || true
            SERVER_PID=""
            return 1
        fi
        [ "$(http_status "http://127.0.0.1:${port}/19b.txt")" = 200 ] && break
        sleep 0.1
    done
    if [ "$(http_status "http://127.0.0.1:${port}/19b.txt")" != 200 ]; then
        log "${name} does not answer on port ${port}; its output:"
        cat "${rundir}/out.log" >&2 || true
        stop_server
        return 1
    fi
    local bad
    bad=$(affinity_violations "${SERVER_PID}" "${cpus}")
    if [ -n "${bad}" ]; then
        log "warning: ${name} has threads outside CPUs ${cpus} (tid:allowed ${bad})"
        printf '%s\n' "${name} threads outside CPUs ${cpus}: ${bad}" >>"${RAW}/warnings.txt"
    fi
    return 0
}

stop_server() {
    [ -n "${SERVER_PID}" ] || return 0
    kill_tree "${SERVER_PID}"
    SERVER_PID=""
}

# ---------------------------------------------------------------- wrk
# run_wrk OUTFILE CONNS SECONDS URL [LUA_SCRIPT [SCRIPT_ARGS...]]
run_wrk() {
    local out=$1 conns=$2 secs=$3 url=$4 threads
    shift 4
    threads=${WRK_THREADS_NOW:-1}
    [ "${threads}" -le "${conns}" ] || threads=${conns}
    local args=(-t"${threads}" -c"${conns}" -d"${secs}s" --timeout 5s --latency)
    if [ $# -gt 0 ]; then
        args+=(-s "$1" "${url}")
        shift
        [ $# -gt 0 ] && args+=(-- "$@")
    else
        args+=("${url}")
    fi
    taskset -c "${WRK_CPUS_NOW:-0}" wrk "${args[@]}" >"${out}" 2>&1 || true
}

# parse_wrk FILE -> "requests rps bytes_per_sec p50_us p99_us non2xx socket_errors" (nan when absent)
parse_wrk() {
    awk '
    function us(v) {
        if (v ~ /us$/) return v + 0
        if (v ~ /ms$/) return v * 1000
        if (v ~ /s$/)  return v * 1000000
        if (v ~ /m$/)  return v * 60000000
        if (v ~ /h$/)  return v * 3600000000
        return v + 0
    }
    function bytes(v,   n) {
        n = v + 0
        if (v ~ /KB$/) return n * 1024
        if (v ~ /MB$/) return n * 1048576
        if (v ~ /GB$/) return n * 1073741824
        if (v ~ /TB$/) return n * 1099511627776
        return n
    }
    /^ *[0-9]+ requests in /    { req = $1 }
    /^Requests\/sec:/           { rps = $2 }
    /^Transfer\/sec:/           { tps = bytes($2) }
    /^[ \t]+50%[ \t]/           { p50 = us($2) }
    /^[ \t]+99%[ \t]/           { p99 = us($2) }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/            { gsub(",", ""); se = $4 + $6 + $8 + $10 }
    END {
        printf "%s %s %s %s %s %d %d\n", (req == "" ? "nan" : req), (rps == "" ? "nan" : rps),
            (tps == "" ? "nan" : sprintf("%.0f", tps)),
            (p50 == "" ? "nan" : p50), (p99 == "" ? "nan" : p99), non2xx, se
    }' "$1"
}
