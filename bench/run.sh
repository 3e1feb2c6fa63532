#!/bin/bash
# Benchmarks mod_auth_scalekit against mod_auth_openidc and writes bench/RESULTS.md.
#
# Builds the module from a copy of the tracked sources, so that a build running in
# the checkout at the same time is not disturbed. Then bench/bench.py measures wrk
# throughput under the event and prefork MPMs, logins per second, peak RSS and a
# callgrind profile. Every server listens on 127.0.0.1 only. The EXIT trap stops
# every process that bench.py started and that is still running.
#
# Needs root: it installs missing Debian packages and httpd switches to www-data.
# Settings (defaults in brackets): BENCH_PHASES [event,rss,prefork,profile],
# BENCH_SECONDS [8], BENCH_ROUNDS [3], BENCH_LOGIN_THREADS [4],
# BENCH_LOGIN_SECONDS [8], BENCH_RSS_CHECKPOINTS [100000,400000,700000,1000000],
# BENCH_PROFILE_REQUESTS [2000], BENCH_PROFILE_LOGINS [20],
# BENCH_KEEP_WORKDIR [0: delete the work directory].
set -euo pipefail

cd "$(dirname "$0")/.."
REPOSITORY=$PWD
# Debian's interpreter: the dev provider needs python3-cryptography and the
# benchmark needs python3-requests, which the pyenv python3 on PATH lacks.
PYTHON=/usr/bin/python3

. tools/common.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "error: run bench/run.sh as root (it installs packages and starts httpd" \
         "children as www-data)" >&2
    exit 1
fi

openidc_installed_before=0
if dpkg-query -W -f='${Status}' libapache2-mod-auth-openidc 2>/dev/null \
        | grep -q 'install ok installed'; then
    openidc_installed_before=1
fi
install_packages "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}" python3-requests \
    libapache2-mod-auth-openidc php8.2-fpm wrk valgrind
# The package's maintainer script enables the module in the system Apache config.
# The benchmark loads it only in its own configs, so a fresh install is undone here.
if [ "$openidc_installed_before" -eq 0 ] && [ -e /etc/apache2/mods-enabled/auth_openidc.load ]; then
    a2dismod -q auth_openidc
fi

WORKDIR=$(mktemp -d /tmp/mod_auth_scalekit_bench.XXXXXX)
# The httpd children run as www-data and must traverse the work directory.
chmod 755 "$WORKDIR"
BENCH_PID=

# Stops bench.py, then every process it listed in $WORKDIR/pids that still runs and
# still has the expected command name (so a reused pid is left alone).
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    if [ -f "$WORKDIR/pids" ]; then
        local pid name comm
        while read -r pid name; do
            comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
            case "$name:$comm" in
                apache2:apache2 | php-fpm8.2:php-fpm8.2 | python3:python3 \
                    | valgrind:valgrind | valgrind:callgrind-amd64*)
                    echo "stopping leftover $name (pid $pid)" >&2
                    kill -TERM "$pid" 2>/dev/null || true
                    ;;
            esac
        done < "$WORKDIR/pids"
        sleep 2
    fi
    if [ "${BENCH_KEEP_WORKDIR:-0}" = 1 ]; then
        echo "work directory kept: $WORKDIR" >&2
    else
        rm -rf "$WORKDIR"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "Building mod_auth_scalekit in $WORKDIR/build"
mkdir "$WORKDIR/build"
git -C "$REPOSITORY" ls-files -z | (cd "$REPOSITORY" && tar --null --ignore-failed-read -T - -cf -) \
    | tar -xf - -C "$WORKDIR/build"
(cd "$WORKDIR/build" && autoreconf -fi >/dev/null 2>&1 && ./configure -q && make -s)
MODULE="$WORKDIR/build/src/.libs/mod_auth_scalekit.so"

"$PYTHON" bench/bench.py \
    --module "$MODULE" \
    --workdir "$WORKDIR" \
    --phases "${BENCH_PHASES:-event,rss,prefork,profile}" \
    --seconds "${BENCH_SECONDS:-8}" \
    --rounds "${BENCH_ROUNDS:-3}" \
    --login-threads "${BENCH_LOGIN_THREADS:-4}" \
    --login-seconds "${BENCH_LOGIN_SECONDS:-8}" \
    --rss-checkpoints "${BENCH_RSS_CHECKPOINTS:-100000,400000,700000,1000000}" \
    --profile-requests "${BENCH_PROFILE_REQUESTS:-2000}" \
    --profile-logins "${BENCH_PROFILE_LOGINS:-20}" &
BENCH_PID=$!
wait "$BENCH_PID"
BENCH_PID=

"$PYTHON" bench/report.py
