#!/bin/bash
# Runs the demo: Apache on 127.0.0.1:8080 with /intranet/ behind Scalekit SSO.
#
# Without settings it logs in through the bundled dev identity provider on
# 127.0.0.1:9000. With AUTH_SCALEKIT_ISSUER, AUTH_SCALEKIT_ID and AUTH_SCALEKIT_SECRET
# set it uses that Scalekit environment instead; register
# http://127.0.0.1:8080/scalekit/callback as a redirect URI there first.
# Optional: AUTH_SCALEKIT_ORGANIZATION_ID or AUTH_SCALEKIT_CONNECTION_ID choose the SSO
# connection, DEMO_PORT and DEMO_IDP_PORT change the ports, DEMO_DIR the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
. tools/common.sh

port=${DEMO_PORT:-8080}
idp_port=${DEMO_IDP_PORT:-9000}
demo_dir=${DEMO_DIR:-/tmp/mod_auth_scalekit-demo}

install_packages "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}"
echo "Building the module..."
build_module

rm -rf "$demo_dir"
mkdir -p "$demo_dir/htdocs"
cp -r conf/example/intranet "$demo_dir/htdocs/intranet"
cat > "$demo_dir/htdocs/index.html" <<HTML
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>mod_auth_scalekit demo</title></head>
<body><h1>mod_auth_scalekit demo</h1>
<p>This page is public. <a href="/intranet/">/intranet/</a> (PHP) and
<a href="/intranet/claims.cgi">/intranet/claims.cgi</a> (CGI) need a Scalekit login.</p>
</body></html>
HTML
chmod -R a+rX "$demo_dir"
umask 077
head -c 48 /dev/urandom | base64 > "$demo_dir/session_secret"

routing=""
if [ -n "${AUTH_SCALEKIT_ISSUER:-}" ]; then
    : "${AUTH_SCALEKIT_ID:?set AUTH_SCALEKIT_ID to the client ID of the Scalekit environment}"
    : "${AUTH_SCALEKIT_SECRET:?set AUTH_SCALEKIT_SECRET to its client secret}"
    issuer=${AUTH_SCALEKIT_ISSUER%/}
    client_id=$AUTH_SCALEKIT_ID
    printf '%s\n' "$AUTH_SCALEKIT_SECRET" > "$demo_dir/client_secret"
    ssl_verify=On
    [ -n "${AUTH_SCALEKIT_ORGANIZATION_ID:-}" ] &&
        routing="    ScalekitOrganizationID $AUTH_SCALEKIT_ORGANIZATION_ID"
    [ -n "${AUTH_SCALEKIT_CONNECTION_ID:-}" ] &&
        routing="    ScalekitConnectionID $AUTH_SCALEKIT_CONNECTION_ID"
    idp_pid=""
else
    issuer="http://127.0.0.1:$idp_port"
    client_id=skc_demo
    head -c 32 /dev/urandom | base64 | tr -d '/+=' > "$demo_dir/client_secret"
    ssl_verify=Off
    /usr/bin/python3 tools/devidp/scalekit_dev_idp.py --port "$idp_port" \
        --client-id "$client_id" --client-secret "$(cat "$demo_dir/client_secret")" \
        --redirect-uri "http://127.0.0.1:$port/scalekit/callback" \
        > "$demo_dir/devidp.log" 2>&1 &
    idp_pid=$!
    for _ in $(seq 50); do
        grep -q listening "$demo_dir/devidp.log" && break
        kill -0 "$idp_pid" 2>/dev/null || { cat "$demo_dir/devidp.log" >&2; exit 1; }
        sleep 0.1
    done
fi
# httpd reads the secrets as root before it drops privileges.
chmod 600 "$demo_dir/client_secret" "$demo_dir/session_secret"

sed -e "s|@DEMO_DIR@|$demo_dir|g" -e "s|@PORT@|$port|g" \
    -e "s|@MODULE@|$top/src/.libs/mod_auth_scalekit.so|g" \
    -e "s|@ISSUER@|$issuer|g" -e "s|@CLIENT_ID@|$client_id|g" \
    -e "s|@SSL_VERIFY@|$ssl_verify|g" -e "s|@ROUTING@|$routing|g" \
    conf/demo/httpd.conf.in > "$demo_dir/httpd.conf"

stop() {
    trap - EXIT
    # httpd signals its process group while it stops; that must not cut this short.
    trap '' INT TERM
    if [ -f "$demo_dir/httpd.pid" ]; then
        /usr/sbin/apache2 -f "$demo_dir/httpd.conf" -k stop >/dev/null 2>&1 || true
    fi
    [ -n "$idp_pid" ] && kill "$idp_pid" 2>/dev/null
    echo "Demo stopped. Logs are in $demo_dir."
}
trap stop EXIT
trap 'exit 130' INT TERM

/usr/sbin/apache2 -t -f "$demo_dir/httpd.conf"
# In the background, so that Ctrl-C reaches this script, which then stops httpd.
/usr/sbin/apache2 -f "$demo_dir/httpd.conf" -DFOREGROUND &
httpd_pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    if ! kill -0 "$httpd_pid" 2>/dev/null; then
        echo "error: Apache did not start; see $demo_dir/error.log" >&2
        exit 1
    fi
    sleep 0.1
done
cat <<TEXT

mod_auth_scalekit demo is running.
  Open:      http://127.0.0.1:$port/intranet/
  Provider:  $issuer
  Logs:      $demo_dir/error.log
Press Ctrl-C to stop.

TEXT
wait "$httpd_pid"
