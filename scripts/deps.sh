#!/bin/sh
# Installs, from Debian's packages, exactly what a make target needs; quiet and
# quick when everything is already present.  Usage: scripts/deps.sh run|test|bench|fuzz|browser|all
set -eu

base="build-essential pkg-config liburing-dev libjemalloc-dev node-llhttp"
case "${1:-all}" in
    run)   want="$base" ;;
    # strace and curl: a test proves the workers make no file system calls.
    # prometheus: promtool checks /_catzilla/metrics.  man-db (with groff)
    # renders and lints the generated man page (test_install).
    test)  want="$base libcriterion-dev strace curl prometheus man-db" ;;
    bench) want="$base wrk nginx-light h2o gnuplot-nox python3" ;;
    fuzz)  want="$base clang libclang-rt-14-dev" ;;
    # scripts/browser-test.sh: the dashboard in headless Chromium.
    browser) want="chromium curl python3" ;;
    all)   want="$base libcriterion-dev strace curl prometheus man-db wrk nginx-light h2o gnuplot-nox python3" ;;
    *)     echo "usage: $0 run|test|bench|fuzz|browser|all" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "catzilla: missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
    exit 1
fi
echo "catzilla: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# nginx and h2o are benchmark peers only: never let their packages start a service.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends $missing >/dev/null
