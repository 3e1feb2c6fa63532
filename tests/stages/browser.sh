#!/bin/bash
# Logs in through mod_auth_scalekit with a real browser: Debian's Chromium, driven by
# playwright-core from the npm registry (tests/browser/login.spec.mjs). The dev identity
# provider and httpd run on 127.0.0.1 through tests/browser/serve.py, which stops them
# when the browser run ends.
#
# Each step of login.spec.mjs is one check, and a failed setup step counts as one
# failure. When Debian's chromium package cannot be installed, the stage prints why and
# counts nothing. The last line is "browser: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
. tools/common.sh

CHROMIUM=/usr/bin/chromium
PYTHON=/usr/bin/python3
# playwright-core 1.65 supports Node.js 18 and later.
NODE_MIN_MAJOR=18

log=$(mktemp)
trap 'rm -f "$log"' EXIT

finish() {
    echo "browser: $1 passed, $2 failed"
    exit 0
}

setup_failed() {
    echo "error: $1" >&2
    finish 0 1
}

echo "== installing Chromium"
if ! install_packages chromium || [ ! -x "$CHROMIUM" ]; then
    echo "skipped: Debian's chromium package could not be installed, so no browser test ran"
    finish 0 0
fi
"$CHROMIUM" --version

# A Node.js from another source (such as NodeSource's nodejs) brings its own npm and
# conflicts with Debian's npm package, so Debian's packages come in only when the
# commands are missing.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    install_packages nodejs npm || setup_failed "cannot install Debian's nodejs and npm"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt "$NODE_MIN_MAJOR" ]; then
    setup_failed "Node.js $(node --version) is older than $NODE_MIN_MAJOR, which playwright-core needs"
fi
echo "Node.js $(node --version), npm $(npm --version)"

echo "== building the module"
install_packages "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}" python3-requests ||
    setup_failed "cannot install the build and runtime packages"
build_module || setup_failed "the module does not build"

# The version is pinned in tests/browser/package.json. No lockfile is written, so the
# repository records no registry addresses.
echo "== installing playwright-core into tests/browser/node_modules"
(cd tests/browser && npm install --no-package-lock --no-audit --no-fund --loglevel=error) ||
    setup_failed "npm install of playwright-core failed"

echo "== logging in with Chromium"
"$PYTHON" tests/browser/serve.py node tests/browser/login.spec.mjs 2>&1 | tee "$log"
line=$(grep -E '^login\.spec: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
if [ -z "$line" ]; then
    setup_failed "login.spec.mjs printed no result line (see the output above)"
fi
passed=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")
failed=$(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$line")
finish "$passed" "$failed"
