#!/bin/bash
# Builds the Debian package libapache2-mod-auth-scalekit from a copy of the tree,
# checks it with lintian, installs it into this machine's Apache, logs in through the
# dev identity provider, then purges the package.
#
# For the login, Apache runs with Debian's own configuration (apache2ctl, /etc/apache2)
# and listens on 127.0.0.1 only. The stage disables the default site, replaces
# ports.conf and adds a site of its own. When it ends, it restores ports.conf,
# mods-enabled, sites-enabled and conf-enabled in /etc/apache2, and /var/lib/apache2.
# It does not start Apache while Debian's apache2 is already running.
#
# Every step is one check. A step that cannot run because an earlier one failed counts
# as failed. The last line is "package: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
. tools/common.sh

PACKAGE=libapache2-mod-auth-scalekit
SOURCE=mod-auth-scalekit
UPSTREAM_VERSION=0.1.0
SITE_NAME=auth-scalekit-package-test
MODULE_SO=/usr/lib/apache2/modules/mod_auth_scalekit.so
MODS_AVAILABLE=/etc/apache2/mods-available
APACHE_PID_FILE=/var/run/apache2/apache2.pid
PYTHON=/usr/bin/python3
CLIENT_ID=skc_package_test

passed=0
failed=0
# Name of the required step that failed. The steps after it do not run.
blocked=""

# Counts the check named $1 as failed because it could not run, for the reason $2.
not_run() {
    echo "not run: $1 ($2)"
    failed=$((failed + 1))
}

# step KIND NAME COMMAND...: runs COMMAND as the check NAME. KIND is required or
# optional. A failed required step blocks the steps after it, and each blocked step
# counts as failed.
step() {
    local kind=$1 name=$2
    shift 2
    if [ -n "$blocked" ]; then
        not_run "$name" "the step \"$blocked\" failed"
        return 1
    fi
    if "$@"; then
        echo "ok: $name"
        passed=$((passed + 1))
        return 0
    fi
    echo "FAILED: $name"
    failed=$((failed + 1))
    [ "$kind" = required ] && blocked=$name
    return 1
}

work=$(mktemp -d /tmp/mod-auth-scalekit-package.XXXXXX)
chmod 755 "$work"
state_dir="$work/saved-state"
mkdir -p "$state_dir"

# State that cleanup() undoes, set as the steps run.
saved_apache_state=0
own_policy=0
installed_by_stage=0
apache_started=0
idp_pid=""

# Saves the Apache settings that the stage changes, so restore_apache_state() can put
# them back exactly, including the a2enmod/a2dismod bookkeeping in /var/lib/apache2.
save_apache_state() {
    cp -p /etc/apache2/ports.conf "$state_dir/ports.conf" &&
        tar -C / -cf "$state_dir/enabled.tar" etc/apache2/mods-enabled \
            etc/apache2/sites-enabled etc/apache2/conf-enabled var/lib/apache2 &&
        saved_apache_state=1
}

restore_apache_state() {
    [ "$saved_apache_state" -eq 1 ] || return 0
    rm -f "/etc/apache2/sites-available/$SITE_NAME.conf"
    rm -rf /etc/apache2/mods-enabled /etc/apache2/sites-enabled \
        /etc/apache2/conf-enabled /var/lib/apache2
    tar -C / -xpf "$state_dir/enabled.tar"
    cp -p "$state_dir/ports.conf" /etc/apache2/ports.conf
    saved_apache_state=0
    echo "restored ports.conf, mods-enabled, sites-enabled, conf-enabled and" \
        "/var/lib/apache2"
}

# Keeps package scripts from starting or restarting services while dpkg and apt-get
# run, as install_packages does: Debian's apache2 would otherwise start on port 80.
block_service_starts() {
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
}

allow_service_starts() {
    if [ "$own_policy" -eq 1 ]; then
        rm -f /usr/sbin/policy-rc.d
        own_policy=0
    fi
}

# Returns whether the apache2 parent in Debian's pid file is alive.
debian_apache_running() {
    local pid
    pid=$(cat "$APACHE_PID_FILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

stop_apache() {
    [ "$apache_started" -eq 1 ] || return 0
    local pid
    pid=$(cat "$APACHE_PID_FILE" 2>/dev/null || true)
    apache2ctl stop
    for _ in $(seq 100); do
        if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
            apache_started=0
            return 0
        fi
        sleep 0.2
    done
    echo "apache2 parent $pid still runs 20 s after apache2ctl stop" >&2
    return 1
}

stop_idp() {
    [ -n "$idp_pid" ] || return 0
    kill "$idp_pid" 2>/dev/null
    wait "$idp_pid" 2>/dev/null
    idp_pid=""
}

purge_package() {
    block_service_starts
    local status=0
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$PACKAGE" \
        > "$work/purge.log" 2>&1 || status=$?
    allow_service_starts
    if [ "$status" -ne 0 ]; then
        cat "$work/purge.log"
        return "$status"
    fi
    grep -E '^(Removing|Purging|apache2_invoke)' "$work/purge.log"
    installed_by_stage=0
}

cleanup() {
    stop_apache || true
    stop_idp
    if [ "$installed_by_stage" -eq 1 ]; then
        purge_package >/dev/null || echo "error: apt-get purge $PACKAGE failed" >&2
    fi
    restore_apache_state
    allow_service_starts
    rm -rf "$work"
}
trap cleanup EXIT
# bash runs the EXIT trap on exit, so a signal ends the stage through exit.
trap 'exit 130' INT TERM

# --- Build ---------------------------------------------------------------------------

build_dir="$work/build"
tree="$build_dir/$SOURCE-$UPSTREAM_VERSION"
deb=""

# Copies the files that git tracks or would track, without the build output of the
# work tree, like a fresh clone that has the uncommitted changes. Then builds the
# binary package, whose debian/rules runs the unit tests (make check).
build_binary_from_copy() {
    mkdir -p "$tree"
    git -C "$top" ls-files -z --cached --others --exclude-standard > "$work/files" ||
        return 1
    # --ignore-failed-read skips tracked files that were deleted in the work tree.
    tar -C "$top" --null -T "$work/files" --ignore-failed-read -cf - 2>/dev/null |
        tar -C "$tree" -xf - || return 1

    if ! (cd "$tree" && dpkg-buildpackage -us -uc -b) > "$work/build.log" 2>&1; then
        tail -n 40 "$work/build.log"
        return 1
    fi
    grep -E '^# (TOTAL|PASS|FAIL):' "$work/build.log"
    deb=$(ls "$build_dir/${PACKAGE}_"*.deb 2>/dev/null | head -n 1)
    if [ -z "$deb" ]; then
        echo "no $PACKAGE .deb in $build_dir" >&2
        return 1
    fi
    echo "built $deb"
}

# Runs lintian on $1, prints every tag and fails on an error (E:) tag.
lintian_without_errors() {
    local output
    output=$(lintian --display-info "$1" 2>&1 | grep -v '^running with root privileges')
    [ -z "$output" ] || echo "$output"
    ! grep -q '^E: ' <<<"$output"
}

lintian_binary() {
    lintian_without_errors "$(ls "$build_dir/${SOURCE}_"*.changes | head -n 1)"
}

# Builds the source package from the copy and runs lintian on it. The 3.0 (quilt)
# format takes the upstream part from an .orig tarball: the tree without debian/.
build_source() {
    (cd "$tree" && debian/rules clean) > "$work/source.log" 2>&1 &&
        tar -C "$tree" --exclude=./debian \
            --transform "s,^\.,$SOURCE-$UPSTREAM_VERSION," \
            -czf "$build_dir/${SOURCE}_$UPSTREAM_VERSION.orig.tar.gz" . &&
        (cd "$build_dir" && dpkg-source -b "$SOURCE-$UPSTREAM_VERSION") \
            >> "$work/source.log" 2>&1 || {
        tail -n 20 "$work/source.log"
        return 1
    }
    lintian_without_errors "$(ls "$build_dir/${SOURCE}_"*.dsc | head -n 1)"
}

# dh-apache2 is a virtual package that apache2-dev provides. apache2-dev is listed in
# its place, because dpkg-query finds only real packages.
echo "== installing build tooling"
step required "install build tooling and Build-Depends" install_packages \
    debhelper apache2-dev dpkg-dev lintian fakeroot \
    autoconf automake libtool pkg-config check \
    libcurl4-openssl-dev libcjson-dev libssl-dev \
    apache2 iproute2 python3 python3-requests python3-cryptography

echo "== building $PACKAGE from a copy of the tree in $build_dir"
step required "dpkg-buildpackage -us -uc -b, with make check" build_binary_from_copy
step optional "lintian reports no errors on the binary package" lintian_binary
step optional "source package builds, lintian reports no errors" build_source

# --- Install -------------------------------------------------------------------------

install_deb() {
    if dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -q 'ok installed'; then
        echo "$PACKAGE is installed from an earlier run: purging it first"
        purge_package >/dev/null || return 1
    fi
    save_apache_state || return 1

    block_service_starts
    installed_by_stage=1
    local status=0
    if ! dpkg -i "$deb"; then
        DEBIAN_FRONTEND=noninteractive apt-get install -f -y -qq || status=$?
    fi
    allow_service_starts
    [ "$status" -eq 0 ] &&
        dpkg-query -W -f='${Status}' "$PACKAGE" | grep -q 'install ok installed'
}

installed_files_present() {
    local file status=0
    for file in "$MODULE_SO" "$MODS_AVAILABLE/auth_scalekit.load" \
        "$MODS_AVAILABLE/auth_scalekit.conf"; do
        if [ ! -f "$file" ]; then
            echo "missing after dpkg -i: $file" >&2
            status=1
        fi
    done
    return "$status"
}

# a2enmod must also enable the modules that auth_scalekit.load lists after
# "# Depends:".
enable_module() {
    a2enmod auth_scalekit || return 1
    local module status=0
    for module in auth_scalekit socache_shmcb authz_user authn_core; do
        if [ ! -e "/etc/apache2/mods-enabled/$module.load" ]; then
            echo "a2enmod auth_scalekit did not enable $module" >&2
            status=1
        fi
    done
    # For claims.cgi, which shows REMOTE_USER and the claims. With a threaded MPM
    # a2enmod picks cgid.
    a2enmod -q cgi || status=1
    return "$status"
}

echo "== installing $PACKAGE"
step required "dpkg -i $PACKAGE" install_deb
step optional "module and mods-available files installed" installed_files_present
step required "a2enmod auth_scalekit enables it and its dependencies" enable_module

# --- Site, configtest, start ---------------------------------------------------------

port=""
issuer=""
docroot="$work/htdocs"
secrets_dir="$work/secrets"

start_idp() {
    local line
    "$PYTHON" tools/devidp/scalekit_dev_idp.py --port 0 --host 127.0.0.1 \
        --client-id "$CLIENT_ID" --client-secret "$(cat "$secrets_dir/client_secret")" \
        --redirect-uri "http://127.0.0.1:$port/scalekit/callback" \
        > "$work/devidp.out" 2> "$work/devidp.err" &
    idp_pid=$!
    for _ in $(seq 100); do
        line=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$work/devidp.out")
        if [ -n "$line" ]; then
            issuer=${line#listening on }
            echo "dev identity provider: $issuer"
            return 0
        fi
        if ! kill -0 "$idp_pid" 2>/dev/null; then
            cat "$work/devidp.err" >&2
            idp_pid=""
            return 1
        fi
        sleep 0.1
    done
    echo "the dev identity provider printed no listening line in 10 s" >&2
    return 1
}

# Writes the secrets, the docroot and the site, replaces ports.conf with one Listen
# on 127.0.0.1 and swaps the default site for this one.
write_site() {
    port=$(cd tests/integration && "$PYTHON" -c \
        'import scalekit_harness; print(scalekit_harness.free_port())') || return 1

    mkdir -p "$secrets_dir" "$docroot/intranet" "$work/logs"
    chmod 700 "$secrets_dir"
    chmod 755 "$docroot" "$docroot/intranet" "$work/logs"
    (
        umask 077
        head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$secrets_dir/client_secret"
        head -c 48 /dev/urandom | base64 > "$secrets_dir/session_secret"
    )
    echo '<p>Public page</p>' > "$docroot/index.html"
    chmod 644 "$docroot/index.html"
    cp conf/example/intranet/claims.cgi "$docroot/intranet/claims.cgi"
    chmod 755 "$docroot/intranet/claims.cgi"

    start_idp || return 1

    cat > "/etc/apache2/sites-available/$SITE_NAME.conf" <<EOF
# Written by tests/stages/package.sh of mod_auth_scalekit, removed when it ends.
<VirtualHost 127.0.0.1:$port>
    ServerName 127.0.0.1
    DocumentRoot "$docroot"
    ErrorLog "$work/logs/error.log"
    LogLevel warn auth_scalekit:info
    CustomLog "$work/logs/access.log" "%h %u %t \"%m %U %H\" %>s"

    ScalekitIssuer $issuer
    ScalekitClientID $CLIENT_ID
    ScalekitClientSecret file:$secrets_dir/client_secret
    ScalekitSessionSecret file:$secrets_dir/session_secret
    ScalekitSSLVerify Off

    <Directory "$docroot">
        Require all granted
    </Directory>
    <Directory "$docroot/intranet">
        AuthType Scalekit
        Require valid-user
        Options +ExecCGI
        AddHandler cgi-script .cgi
    </Directory>
</VirtualHost>
EOF
    printf '%s\nListen 127.0.0.1:%s\n' \
        "# Written by tests/stages/package.sh of mod_auth_scalekit, restored when it ends." \
        "$port" > /etc/apache2/ports.conf
    if [ -e /etc/apache2/sites-enabled/000-default.conf ]; then
        a2dissite -q 000-default || return 1
    fi
    a2ensite -q "$SITE_NAME"
}

configtest() {
    apache2ctl configtest || return 1
    if ! apache2ctl -M 2>/dev/null | grep -q 'auth_scalekit_module'; then
        echo "apache2ctl -M does not list auth_scalekit_module" >&2
        return 1
    fi
}

start_apache() {
    if debian_apache_running; then
        echo "Debian's apache2 already runs (pid $(cat "$APACHE_PID_FILE")); stop it" \
            "and run this stage again" >&2
        return 1
    fi
    apache_started=1
    apache2ctl start || return 1
    for _ in $(seq 100); do
        if debian_apache_running && "$PYTHON" -c \
            'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
            "$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "apache2 does not accept connections on 127.0.0.1:$port after 20 s" >&2
    tail -n 20 /var/log/apache2/error.log >&2
    return 1
}

# Every listening socket of Debian's apache2 parent must be 127.0.0.1:$port. Other
# apache2 processes, such as the integration tests' own servers, are not counted.
listens_on_loopback_only() {
    local pid sockets
    pid=$(cat "$APACHE_PID_FILE") || return 1
    sockets=$(ss -ltnpH | grep -E "\"apache2\",pid=$pid," | awk '{print $4}' | sort -u)
    echo "apache2 (pid $pid) listens on: ${sockets:-nothing}"
    [ "$sockets" = "127.0.0.1:$port" ]
}

echo "== configuring and starting Debian's apache2"
step required "site on 127.0.0.1 written, default site and port 80 disabled" write_site
step required "apache2ctl configtest" configtest
step required "apache2ctl start" start_apache
step optional "apache2 listens on 127.0.0.1 only" listens_on_loopback_only

# --- Login through the dev provider --------------------------------------------------

login_and_logout() {
    PYTHONPATH=tests/integration "$PYTHON" - "http://127.0.0.1:$port" <<'PY'
import sys
import urllib.parse

import scalekit_harness as harness

base = sys.argv[1]
session = harness.browser()

steps = harness.follow_login(
    session, base + "/intranet/claims.cgi", "alice", harness.SecretLedger()
)
assert steps.callback.status_code == 302, (
    f"callback returned {steps.callback.status_code}: {steps.callback.text[:300]}"
)
assert steps.final.status_code == 200, f"claims.cgi returned {steps.final.status_code}"
variables = harness.page_variables(steps.final.text)
expected = {
    "REMOTE_USER": "usr_acme_alice",
    "AUTH_TYPE": "Scalekit",
    "SCALEKIT_CLAIM_oid": "org_acme",
}
for name, value in expected.items():
    assert variables.get(name) == value, (
        f"{name} is {variables.get(name)!r}, expected {value!r}; page: {variables}"
    )
print(f"logged in: REMOTE_USER={variables['REMOTE_USER']}")

again = session.get(base + "/intranet/claims.cgi", allow_redirects=False)
assert again.status_code == 200, f"second request returned {again.status_code}"

logout = session.get(base + "/scalekit/logout", allow_redirects=False)
assert logout.status_code in (302, 303), f"logout returned {logout.status_code}"
after = session.get(base + "/intranet/claims.cgi", allow_redirects=False)
assert after.status_code == 302, (
    f"after logout claims.cgi returned {after.status_code}, expected 302 to log in"
)
location = urllib.parse.urlsplit(after.headers["Location"])
assert location.path == "/oauth/authorize", f"after logout: Location {location}"
print("logged out: the next request is sent to the provider again")
PY
}

echo "== logging in through the dev identity provider"
if ! step optional "login as alice through Debian's apache2, then logout" \
    login_and_logout && [ -f "$work/logs/error.log" ]; then
    tail -n 20 "$work/logs/error.log"
fi

# --- Stop, purge ---------------------------------------------------------------------

files_removed() {
    local file status=0
    for file in "$MODULE_SO" "$MODS_AVAILABLE/auth_scalekit.load" \
        "$MODS_AVAILABLE/auth_scalekit.conf" \
        /etc/apache2/mods-enabled/auth_scalekit.load \
        /etc/apache2/mods-enabled/auth_scalekit.conf; do
        if [ -e "$file" ] || [ -L "$file" ]; then
            echo "still present after purge: $file" >&2
            status=1
        fi
    done
    return "$status"
}

# These steps undo what ran, so they run whatever failed before them.
blocked=""
echo "== stopping apache2 and purging $PACKAGE"
if [ "$apache_started" -eq 1 ]; then
    step optional "apache2ctl stop" stop_apache
    # The site uses the module's directives, so it goes before the module does.
    a2dissite -q "$SITE_NAME"
else
    not_run "apache2ctl stop" "apache2 was not started"
fi
stop_idp
if [ "$installed_by_stage" -eq 1 ]; then
    step required "apt-get purge -y $PACKAGE" purge_package
    step optional "module and mods-available files removed" files_removed
else
    not_run "apt-get purge -y $PACKAGE" "the package was not installed"
    not_run "module and mods-available files removed" "the package was not installed"
fi

cleanup
trap - EXIT
echo "package: $passed passed, $failed failed"
