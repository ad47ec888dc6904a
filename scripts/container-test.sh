#!/usr/bin/env bash
# Builds the Catzilla image and runs it for real, with rootful podman + runc (no Docker engine
# is needed). Checks: the default page, health on the admin listener only, the image's
# HEALTHCHECK (present, and following --port/--admin), a short wrk load with no errors, graceful
# stop on SIGTERM with exit code 0, a clear failure under podman's default seccomp profile, the
# image size, deploy/kubernetes.yaml under `podman kube play`, and deploy/compose.yaml under
# podman-compose. Prints PASS/FAIL/SKIP per check; exits non-zero if any check fails.
#
#   scripts/container-test.sh            # everything (make container-test)
#   scripts/container-test.sh --prepare  # only install podman and create the base images
#
# Environment: CATZILLA_CT_PORT (default 18480), CATZILLA_CT_IMAGE (default catzilla:test),
#              CATZILLA_CT_STORAGE_DRIVER (e.g. vfs, if overlay does not work on the host).
#
# Workarounds baked in for hosts without systemd (containers, CI VMs):
#   --runtime runc              crun fails on such hosts; runc works.
#   --cgroup-manager=cgroupfs   no systemd to ask for cgroups.
#   --events-backend=file       no journald.
#   base images from debootstrap, imported locally (no registry is reachable): --pull=never.
#   --network=host              no CNI/netavark bridge needed; the test talks to 127.0.0.1.
#   --format docker             keeps HEALTHCHECK in the image (the OCI format drops it).
#   --no-healthcheck            podman runs HEALTHCHECK from systemd timers (absent here).
#   explicit --ulimit values    rootful podman's default nofile/nproc exceed the host's hard
#                               limits, and without CAP_SYS_RESOURCE runc fails with "error
#                               setting rlimit type 7"; memlock=-1 is lowered to the host's
#                               hard limit when the host cannot grant more (with a note).
set -eu

cd "$(dirname "$0")/.."

PORT="${CATZILLA_CT_PORT:-18480}"
PORT2=$((PORT + 9))
APORT=$((PORT + 2))
IMAGE="${CATZILLA_CT_IMAGE:-catzilla:test}"
CACHE_DIR=/var/cache/catzilla-debootstrap
SLIM=docker.io/library/debian:bookworm-slim
FULL=docker.io/library/debian:bookworm
SECCOMP=deploy/seccomp-io_uring.json
RUN_NAME="catzilla-ct-$$"
BAD_NAME="catzilla-ct-$$-noseccomp"

PODMAN=(podman --cgroup-manager=cgroupfs --events-backend=file --runtime runc)
if [ -n "${CATZILLA_CT_STORAGE_DRIVER:-}" ]; then
    PODMAN+=(--storage-driver "${CATZILLA_CT_STORAGE_DRIVER}")
fi

log() { printf 'container-test: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

FAILED=0
result() { # result PASS|FAIL|SKIP "name" "detail"
    printf '%-4s  %-34s %s\n' "$1" "$2" "${3:-}"
    if [ "$1" = FAIL ]; then FAILED=$((FAILED + 1)); fi
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cleanup() {
    for c in "${RUN_NAME}" "${BAD_NAME}" "${RUN_NAME}-hc"; do
        "${PODMAN[@]}" rm -f -t 0 "$c" >/dev/null 2>&1 || true
    done
    if [ -n "${DEPLOY_TMP:-}" ] && [ -d "${DEPLOY_TMP}" ]; then
        CONTAINERS_CONF="${DEPLOY_TMP}/containers.conf" "${PODMAN[@]}" kube down \
            "${DEPLOY_TMP}/kubernetes.yaml" >/dev/null 2>&1 || true
        [ -n "${COMPOSE+x}" ] && "${COMPOSE[@]}" down >/dev/null 2>&1 || true
        rm -rf "${DEPLOY_TMP}"
    fi
    rm -f "${TMP_BODY:-}" "${TMP_WRK:-}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- host packages
install_missing() {
    local missing="" p st
    for p in "$@"; do
        st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$st" = installed ] || missing="${missing} $p"
    done
    [ -z "${missing}" ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages:${missing} (run as root)"
    log "installing${missing}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends ${missing} >/dev/null
}

# The Debian mirror this host already uses (deb822 .sources or one-line .list), else the default.
debian_mirror() {
    local m=""
    m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }') || true
    if [ -z "$m" ]; then
        m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }') || true
    fi
    printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

# ---------------------------------------------------------------- base images
# debian:bookworm-slim and debian:bookworm, made locally with debootstrap (minbase) because no
# registry is reachable. One rootfs serves both tags: the build stage installs its toolchain.
make_base_images() {
    if "${PODMAN[@]}" image exists "${SLIM}" && "${PODMAN[@]}" image exists "${FULL}"; then
        return 0
    fi
    local tarball="${CACHE_DIR}/bookworm-minbase.tar.gz" mirror rootfs
    mkdir -p "${CACHE_DIR}"
    if [ ! -s "${tarball}" ]; then
        mirror=$(debian_mirror)
        rootfs="${CACHE_DIR}/rootfs.$$"
        log "debootstrap bookworm from ${mirror} (once; cached in ${CACHE_DIR})"
        rm -rf "${rootfs}"
        debootstrap --variant=minbase bookworm "${rootfs}" "${mirror}" >"${CACHE_DIR}/debootstrap.log" 2>&1 ||
            { tail -20 "${CACHE_DIR}/debootstrap.log" >&2; die "debootstrap failed"; }
        # Like Debian's official images: updates + security suites, no package lists, no
        # downloaded .debs, and a policy-rc.d that keeps packages from starting services.
        cat >"${rootfs}/etc/apt/sources.list" <<EOF
deb ${mirror} bookworm main
deb ${mirror} bookworm-updates main
deb ${mirror%/debian*}/debian-security bookworm-security main
EOF
        printf '#!/bin/sh\nexit 101\n' >"${rootfs}/usr/sbin/policy-rc.d"
        chmod 0755 "${rootfs}/usr/sbin/policy-rc.d"
        # slim: no docs, man pages or translations for packages installed later either
        cat >"${rootfs}/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
        find "${rootfs}/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
        rm -rf "${rootfs}/usr/share/man/"* "${rootfs}/usr/share/info/"* \
            "${rootfs}/var/lib/apt/lists/"* "${rootfs}/var/cache/apt/"*.bin \
            "${rootfs}/var/cache/apt/archives/"*.deb "${rootfs}/var/log/"*.log
        find "${rootfs}/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias \
            -exec rm -rf {} + 2>/dev/null || true
        tar -C "${rootfs}" -c . | gzip -1 >"${tarball}.tmp"
        mv "${tarball}.tmp" "${tarball}"
        rm -rf "${rootfs}"
    fi
    log "importing ${SLIM} and ${FULL}"
    gzip -dc "${tarball}" | "${PODMAN[@]}" import \
        --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "${SLIM}" >/dev/null
    "${PODMAN[@]}" tag "${SLIM}" "${FULL}"
}

# ---------------------------------------------------------------- ulimits
# Rootful podman asks for nofile/nproc = 1048576+ by default, and runc cannot raise a hard
# limit above the host's without CAP_SYS_RESOURCE (some sandboxes drop it): the container then
# fails with "error setting rlimit type 7: operation not permitted". So every run gets explicit
# limits, capped at what this host allows. memlock=-1 is what production wants; where the host
# cannot grant it, the host's hard limit is used and a note is printed.
have_cap() { # have_cap BIT
    local eff
    eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
    [ $(( (16#${eff} >> $1) & 1 )) -eq 1 ]
}
hard_limit() { # hard_limit "Max open files" -> number or unlimited
    awk -v n="$1" 'index($0, n) == 1 { sub(n, ""); print $2 }' /proc/self/limits
}
capped() { # capped WANT HARD -> min(WANT, HARD) ("-1" / "unlimited" = infinite)
    if have_cap 24 || [ "$2" = unlimited ]; then printf '%s' "$1"
    elif [ "$1" = -1 ] || [ "$1" -gt "$2" ]; then printf '%s' "$2"
    else printf '%s' "$1"; fi
}
NOFILE=$(capped 20000 "$(hard_limit 'Max open files')")
NPROC=$(capped 32768 "$(hard_limit 'Max processes')")
MEMLOCK=$(capped -1 "$(hard_limit 'Max locked memory')")
ULIMITS=(--ulimit "nofile=${NOFILE}:${NOFILE}" --ulimit "nproc=${NPROC}:${NPROC}"
    --ulimit "memlock=${MEMLOCK}:${MEMLOCK}")

prepare() {
    [ "$(id -u)" -eq 0 ] || die "needs root (rootful podman)"
    # catatonit: the pause process of `podman kube play` pods.
    install_missing podman runc debootstrap curl wrk podman-compose catatonit
    make_base_images
    if [ "${MEMLOCK}" != -1 ]; then
        log "note: this host's hard memlock limit is ${MEMLOCK} bytes and it lacks CAP_SYS_RESOURCE;"
        log "      running with --ulimit memlock=${MEMLOCK} instead of --ulimit memlock=-1"
    fi
    if ! "${PODMAN[@]}" run --rm --network=host --pull=never "${ULIMITS[@]}" "${SLIM}" true; then
        die "podman cannot run a trivial container here (try CATZILLA_CT_STORAGE_DRIVER=vfs)"
    fi
}

# ---------------------------------------------------------------- HTTP helpers
# http_get URL OUTFILE -> prints the status code; the body goes to OUTFILE.
http_get() {
    if command -v curl >/dev/null 2>&1; then
        curl -s -o "$2" -w '%{http_code}' --max-time 5 "$1" || printf '000'
        return 0
    fi
    # Fallback: bash's /dev/tcp, HTTP/1.0 so the server closes after the response.
    local rest="${1#http://}" hostport path host port status
    hostport="${rest%%/*}"; path="/${rest#*/}"; host="${hostport%%:*}"; port="${hostport##*:}"
    if ! exec 3<>"/dev/tcp/${host}/${port}"; then printf '000'; return 0; fi
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "${path}" "${hostport}" >&3
    timeout 5 cat <&3 >"$2.raw" || true
    exec 3<&-
    status=$(head -n1 "$2.raw" | awk '{print $2}')
    sed '1,/^\r$/d' "$2.raw" >"$2"
    rm -f "$2.raw"
    printf '%s' "${status:-000}"
}

wait_ready() { # wait_ready CONTAINER URL SECONDS
    local i=0 st
    while [ "$i" -lt "$(($3 * 5))" ]; do
        st=$(http_get "$2" /dev/null)
        [ "${st}" = 200 ] && return 0
        state=$("${PODMAN[@]}" inspect --format '{{.State.Status}}' "$1" 2>/dev/null || echo gone)
        [ "${state}" = running ] || return 1
        sleep 0.2
        i=$((i + 1))
    done
    return 1
}

# ---------------------------------------------------------------- main
if [ "${1:-}" = --prepare ]; then
    prepare
    log "podman works; base images ready:"
    "${PODMAN[@]}" images
    exit 0
fi

prepare
[ -f "${SECCOMP}" ] || die "${SECCOMP} is missing"
python3 -m json.tool "${SECCOMP}" >/dev/null 2>&1 || die "${SECCOMP} is not valid JSON"

log "building ${IMAGE}"
"${PODMAN[@]}" build --pull=never --network=host --runtime runc --format docker \
    -t "${IMAGE}" . || die "image build failed"

# --no-healthcheck: podman schedules HEALTHCHECK with systemd timers, which hosts without
# systemd lack (it only logs errors); the check below runs the same command itself.
RUN_OPTS=(--network=host --pull=never --runtime runc --no-healthcheck "${ULIMITS[@]}")
TMP_BODY=$(mktemp)
TMP_WRK=$(mktemp)
BASE="http://127.0.0.1:${PORT}"
ADMIN="http://127.0.0.1:${APORT}"

log "starting ${RUN_NAME} on port ${PORT}, admin ${APORT}"
"${PODMAN[@]}" run -d --name "${RUN_NAME}" "${RUN_OPTS[@]}" \
    --security-opt "seccomp=${SECCOMP}" "${IMAGE}" --port "${PORT}" \
    --admin "127.0.0.1:${APORT}" >/dev/null
if ! wait_ready "${RUN_NAME}" "${ADMIN}/_catzilla/health" 20; then
    log "server did not become ready; its log:"
    "${PODMAN[@]}" logs "${RUN_NAME}" >&2 || true
    result FAIL "server starts under ${SECCOMP}"
    exit 1
fi

# (a) default page
st=$(http_get "${BASE}/" "${TMP_BODY}")
if [ "${st}" = 200 ] && { { [ -f public/index.html ] && cmp -s public/index.html "${TMP_BODY}"; } ||
    { [ ! -f public/index.html ] && grep -qi '<html' "${TMP_BODY}"; }; }; then
    result PASS "GET / serves the default page" "status ${st}, $(wc -c <"${TMP_BODY}") bytes"
else
    result FAIL "GET / serves the default page" "status ${st}, $(wc -c <"${TMP_BODY}") bytes"
fi

# (b) health, on the admin listener only
st=$(http_get "${ADMIN}/_catzilla/health" "${TMP_BODY}")
body=$(tr -d '\r\n' <"${TMP_BODY}")
st_main=$(http_get "${BASE}/_catzilla/health" /dev/null)
if [ "${st}" = 200 ] && [ "${body}" = ok ] && [ "${st_main}" = 404 ]; then
    result PASS "health on the admin listener only" "admin ${st} '${body}', main port ${st_main}"
else
    result FAIL "health on the admin listener only" "admin ${st} '${body}', main port ${st_main}"
fi

# (b') the image's HEALTHCHECK: kept in the image (--format docker; the OCI format drops it),
# and its command passes although the container runs with another --port and --admin than the
# defaults: `--check-health auto` reads them from PID 1. podman runs HEALTHCHECKs from systemd
# timers, absent here, so the check runs the image's own command with podman exec.
hc=$("${PODMAN[@]}" image inspect --format '{{.Config.Healthcheck}}' "${IMAGE}" 2>/dev/null || true)
if printf '%s' "${hc}" | grep -q -- '--check-health auto' &&
    "${PODMAN[@]}" exec "${RUN_NAME}" /usr/local/bin/catzilla --check-health auto >/dev/null 2>&1; then
    result PASS "HEALTHCHECK follows --port/--admin" "exit 0 inside the container (${hc})"
else
    result FAIL "HEALTHCHECK follows --port/--admin" "image healthcheck: ${hc:-none}"
fi

# (b'') the HEALTHCHECK as podman runs it: `podman healthcheck run` executes the image's own
# definition (no systemd timer needed; podman only logs that it cannot schedule one), in
# containers started with --port 9000 (admin on its default 127.0.0.1:9090), with --admin same
# set through CATZILLA_* variables (health on the main port), and with --admin off (the check
# GETs / on the main port).
hc_variant() { # hc_variant LABEL MAIN_PORT ARGS...
    local label=$1 port=$2 name="${RUN_NAME}-hc" out
    shift 2
    "${PODMAN[@]}" run -d --name "${name}" --network=host --pull=never --runtime runc \
        "${ULIMITS[@]}" --security-opt "seccomp=${SECCOMP}" "$@" >/dev/null 2>"${TMP_WRK}"
    if ! wait_ready "${name}" "http://127.0.0.1:${port}/" 20; then
        result FAIL "podman healthcheck run (${label})" "server did not start"
        "${PODMAN[@]}" logs "${name}" 2>&1 | tail -3 >&2 || true
    elif out=$("${PODMAN[@]}" healthcheck run "${name}" 2>&1); then
        result PASS "podman healthcheck run (${label})" \
            "$("${PODMAN[@]}" inspect --format '{{.State.Health.Status}}' "${name}")"
    else
        result FAIL "podman healthcheck run (${label})" "${out}"
    fi
    "${PODMAN[@]}" rm -f -t 0 "${name}" >/dev/null 2>&1 || true
}
if port_busy 9000 || port_busy 9090; then
    result SKIP "podman healthcheck run (--port 9000)" "port 9000 or 9090 is in use on this host"
else
    hc_variant "--port 9000" 9000 "${IMAGE}" --port 9000
fi
HCPORT=$((PORT + 3))
hc_variant "admin same, by env" "${HCPORT}" -e CATZILLA_PORT="${HCPORT}" -e CATZILLA_ADMIN=same "${IMAGE}"
hc_variant "--admin off" "${HCPORT}" "${IMAGE}" --port "${HCPORT}" --admin off

# (c) wrk: 3 s, 16 connections, no errors
if wrk -t1 -c16 -d3s "${BASE}/plaintext" >"${TMP_WRK}" 2>&1; then
    rps=$(awk '/^Requests\/sec:/ {print $2}' "${TMP_WRK}")
    errs=$(awk '/Socket errors:/ {print $0}' "${TMP_WRK}")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "${TMP_WRK}")
    if [ -n "${rps}" ] && [ -z "${errs}" ] && [ -z "${non2xx}" ] &&
        awk -v r="${rps}" 'BEGIN { exit !(r > 0) }'; then
        result PASS "wrk -c16 -d3s /plaintext" "${rps} req/s, no errors"
    else
        result FAIL "wrk -c16 -d3s /plaintext" "rps=${rps:-?} ${errs} ${non2xx:+non-2xx=${non2xx}}"
        cat "${TMP_WRK}" >&2
    fi
else
    result FAIL "wrk -c16 -d3s /plaintext" "wrk failed"
    cat "${TMP_WRK}" >&2
fi

# (d) podman stop = SIGTERM; must exit 0 by itself well before podman's 10 s SIGKILL
t0=$(date +%s.%N)
"${PODMAN[@]}" stop -t 10 "${RUN_NAME}" >/dev/null
t1=$(date +%s.%N)
secs=$(awk -v a="${t0}" -v b="${t1}" 'BEGIN { printf "%.1f", b - a }')
code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "${RUN_NAME}")
if [ "${code}" = 0 ] && awk -v s="${secs}" 'BEGIN { exit !(s < 5) }'; then
    result PASS "SIGTERM: graceful stop" "exit ${code} after ${secs}s"
else
    result FAIL "SIGTERM: graceful stop" "exit ${code} after ${secs}s"
    "${PODMAN[@]}" logs --tail 20 "${RUN_NAME}" >&2 || true
fi

# (e) podman's default seccomp profile blocks io_uring: the server must say so and fail
"${PODMAN[@]}" run -d --name "${BAD_NAME}" "${RUN_OPTS[@]}" "${IMAGE}" --port "${PORT2}" >/dev/null
code=$(timeout 20 "${PODMAN[@]}" wait "${BAD_NAME}" 2>/dev/null || echo timeout)
logs=$("${PODMAN[@]}" logs "${BAD_NAME}" 2>&1 || true)
first=$(printf '%s\n' "${logs}" | grep -m1 -i seccomp || true)
if [ "${code}" != timeout ] && [ "${code}" != 0 ] &&
    printf '%s' "${logs}" | grep -qi seccomp &&
    printf '%s' "${logs}" | grep -q -- '--security-opt seccomp='; then
    result PASS "default seccomp: clear failure" "exit ${code}: ${first}"
else
    result FAIL "default seccomp: clear failure" "exit ${code}: ${logs:-<no output>}"
fi

# (f) image size
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "${IMAGE}" 2>/dev/null || true)
if [ -n "${size}" ]; then
    result PASS "image size" "${size} bytes ($(awk -v s="${size}" 'BEGIN { printf "%.1f MiB", s / 1048576 }'))"
else
    result FAIL "image size" "podman image inspect failed"
fi

# ---------------------------------------------------------------- kube play and compose
# Both publish port 8080 through a CNI bridge (as Kubernetes and Compose would), so 8080 and
# 9090 must be free on this host.
DEPLOY_TMP=$(mktemp -d)
# The manifests name the image catzilla:latest; podman stores it as localhost/catzilla:latest
# and resolves the short name to it.
LOCAL_IMAGE=localhost/catzilla:latest
"${PODMAN[@]}" tag "${IMAGE}" "${LOCAL_IMAGE}"
KUBE_POD=catzilla-pod-0-catzilla
kube() { # kube play|down ...: podman with this run's containers.conf (default ulimits)
    CONTAINERS_CONF="${DEPLOY_TMP}/containers.conf" "${PODMAN[@]}" kube "$@"
}

deploy_checks() { # deploy_checks NAME CONTAINER: serve, probe, admin not published
    local name=$1 ctr=$2 st i
    for i in $(seq 50); do
        st=$(http_get "http://127.0.0.1:8080/plaintext" "${TMP_BODY}")
        [ "${st}" = 200 ] && break
        sleep 0.2
    done
    if [ "${st}" = 200 ] && [ "$(cat "${TMP_BODY}")" = "Hello, World!" ]; then
        result PASS "${name}: serves on 8080" "status ${st}"
    else
        result FAIL "${name}: serves on 8080" "status ${st}"
        "${PODMAN[@]}" logs "${ctr}" 2>&1 | tail -5 >&2 || true
    fi
    if "${PODMAN[@]}" exec "${ctr}" /usr/local/bin/catzilla --check-health auto >/dev/null 2>&1; then
        result PASS "${name}: probe command" "--check-health auto exits 0"
    else
        result FAIL "${name}: probe command" "--check-health auto failed"
    fi
    # The admin listener is the container's loopback: not published, and not on 8080.
    local a m
    a=$(http_get "http://127.0.0.1:9090/_catzilla/health" /dev/null)
    m=$(http_get "http://127.0.0.1:8080/_catzilla/metrics" /dev/null)
    if [ "${a#000}" != "${a}" ] && [ "${m}" = 404 ]; then
        result PASS "${name}: admin surface not exposed" "host :9090 refused, :8080/_catzilla/metrics ${m}"
    else
        result FAIL "${name}: admin surface not exposed" "host :9090 ${a:0:3}, :8080/_catzilla/metrics ${m}"
    fi
}

if port_busy 8080 || port_busy 9090; then
    result SKIP "kube play / compose" "port 8080 or 9090 is in use on this host"
else
    # (g) deploy/kubernetes.yaml. As on Kubernetes, no --ulimit: the runtime's default
    # memlock applies. Adapted only where this host needs it: one replica (podman maps every
    # pod's containerPort to the same host port), the seccomp profile from a directory given
    # as --seccomp-profile-root (the kubelet's /var/lib/kubelet/seccomp), and nofile/nproc
    # defaults the host can grant (containers.conf).
    cp "${SECCOMP}" "${DEPLOY_TMP}/catzilla-io_uring.json"
    # podman 4.3 reads the profile from the pod's seccomp annotation only (it ignores
    # securityContext.seccompProfile), which is why the manifest carries both.
    sed -e 's/^  replicas: 2/  replicas: 1/' deploy/kubernetes.yaml >"${DEPLOY_TMP}/kubernetes.yaml"
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
        "${NOFILE}" "${NOFILE}" "${NPROC}" "${NPROC}" >"${DEPLOY_TMP}/containers.conf"
    t0=$(date +%s)
    if kube play --seccomp-profile-root "${DEPLOY_TMP}" "${DEPLOY_TMP}/kubernetes.yaml" >"${TMP_WRK}" 2>&1; then
        deploy_checks "kube play" "${KUBE_POD}"
        # What the runtime's default memlock meant for the server: a cached file (/) needs a
        # registered buffer; too little locked memory is logged once, not fatal.
        ml=$("${PODMAN[@]}" exec "${KUBE_POD}" sh -c 'ulimit -l' 2>/dev/null || echo '?')
        http_get "http://127.0.0.1:8080/" /dev/null >/dev/null
        warn=$("${PODMAN[@]}" logs "${KUBE_POD}" 2>&1 | grep -m1 -i 'locked-memory\|memlock' || true)
        log "kube play: the pod runs with the runtime's memlock limit, ${ml} KiB: ${warn:-enough, no warning}"
    else
        result FAIL "kube play" "$(tail -n 3 "${TMP_WRK}")"
    fi
    kube down "${DEPLOY_TMP}/kubernetes.yaml" >/dev/null 2>&1 || true

    # (g') The same pod under a runtime whose default memlock is 64 KiB (older containerd and
    # Docker setups; Kubernetes has no per-pod ulimit to raise it): the server must stop at
    # start with the locked-memory error, not hang or serve half-set-up.
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s", "memlock=65536:65536"]\n' \
        "${NOFILE}" "${NOFILE}" "${NPROC}" "${NPROC}" >"${DEPLOY_TMP}/containers.conf"
    if kube play --seccomp-profile-root "${DEPLOY_TMP}" "${DEPLOY_TMP}/kubernetes.yaml" >"${TMP_WRK}" 2>&1; then
        msg=""
        for i in $(seq 50); do
            msg=$("${PODMAN[@]}" logs "${KUBE_POD}" 2>&1 | grep -m1 'RLIMIT_MEMLOCK' || true)
            [ -n "${msg}" ] && break
            sleep 0.2
        done
        st=$(http_get "http://127.0.0.1:8080/plaintext" /dev/null)
        if [ -n "${msg}" ] && [ "${st}" != 200 ]; then
            result PASS "kube play, 64 KiB memlock: clear error" "${msg#*error }"
        else
            result FAIL "kube play, 64 KiB memlock: clear error" "GET ${st}, log: ${msg:-no memlock message}"
        fi
    else
        result FAIL "kube play, 64 KiB memlock" "$(tail -n 3 "${TMP_WRK}")"
    fi
    kube down "${DEPLOY_TMP}/kubernetes.yaml" >/dev/null 2>&1 || true
    log "kube play checks took $(( $(date +%s) - t0 )) s"

    # (h) deploy/compose.yaml with podman-compose. Where the host cannot grant memlock=-1 or
    # podman's default nproc (see ULIMITS above), an override file lowers them.
    printf 'services:\n  catzilla:\n    image: %s\n    ulimits:\n      memlock: %s\n      nproc: %s\n' \
        "${LOCAL_IMAGE}" "${MEMLOCK}" "${NPROC}" >"${DEPLOY_TMP}/override.yaml"
    COMPOSE=(podman-compose "--podman-args=--cgroup-manager=cgroupfs --events-backend=file --runtime runc"
        "--podman-run-args=--pull=never" -p catzilla-ct -f deploy/compose.yaml -f "${DEPLOY_TMP}/override.yaml")
    t0=$(date +%s)
    if "${COMPOSE[@]}" up -d >"${TMP_WRK}" 2>&1; then
        deploy_checks "compose" catzilla-ct_catzilla_1
        # podman-compose 1.0 ignores stop_grace_period (stop and down default to -t 10), so
        # the grace period is passed by hand, as the README tells users to.
        t1=$(date +%s.%N)
        "${COMPOSE[@]}" stop -t 15 >/dev/null 2>&1 || true
        secs=$(awk -v a="${t1}" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
        code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' catzilla-ct_catzilla_1 2>/dev/null || echo '?')
        if [ "${code}" = 0 ]; then
            result PASS "compose: graceful stop" "exit 0 after ${secs}s"
        else
            result FAIL "compose: graceful stop" "exit ${code} after ${secs}s"
        fi
    else
        result FAIL "compose up" "$(grep -m1 -i error "${TMP_WRK}")"
    fi
    "${COMPOSE[@]}" down -t 15 >/dev/null 2>&1 || true
    log "compose checks took $(( $(date +%s) - t0 )) s"
fi
rm -rf "${DEPLOY_TMP}"

log "all checks took ${SECONDS} s"
if [ "${FAILED}" -ne 0 ]; then
    printf '%d check(s) FAILED\n' "${FAILED}"
    exit 1
fi
printf 'all container checks passed\n'
