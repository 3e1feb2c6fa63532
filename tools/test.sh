#!/bin/bash
# Runs every test of mod_auth_scalekit: the Check unit tests on the library and the
# pytest integration tests against a real httpd and the dev identity provider, all on
# 127.0.0.1. Installs the Debian packages it needs first (run as root on Debian 12).
# The last line is "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/common.sh

install_packages "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}" \
    check python3-pytest python3-requests memcached redis-server wrk openssl php8.2-fpm

build_module

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

echo "== unit tests (Check)"
unit_status=0
make -s check >/dev/null 2>&1 || unit_status=$?
cat tests/unit/check_sk.log
unit_line=$(grep -E '^[0-9]+%: Checks: ' tests/unit/check_sk.log | tail -n 1 || true)
unit_total=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$unit_line")
unit_failures=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$unit_line")
unit_errors=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$unit_line")
if [ -z "$unit_line" ]; then
    echo "error: the unit test binary printed no summary" >&2
    unit_total=0 unit_failures=1 unit_errors=0
fi
unit_failed=$((unit_failures + unit_errors))
unit_passed=$((unit_total - unit_failed))
if [ "$unit_status" -ne 0 ] && [ "$unit_failed" -eq 0 ]; then
    unit_failed=1
fi

echo "== integration tests (pytest, real httpd)"
integration_status=0
/usr/bin/python3 -m pytest -p no:cacheprovider -q -rfEsx \
    --junitxml="$results/integration.xml" tests/integration || integration_status=$?

read -r int_total int_failures int_errors int_skipped < <(/usr/bin/python3 - "$results/integration.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(0, 1, 0, 0)
    sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
totals = [sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")]
print(*totals)
PY
)
int_failed=$((int_failures + int_errors))
int_passed=$((int_total - int_failed - int_skipped))
if [ "$integration_status" -ne 0 ] && [ "$int_failed" -eq 0 ]; then
    int_failed=1
fi

passed=$((unit_passed + int_passed))
failed=$((unit_failed + int_failed))
summary="unit: $unit_passed passed, $unit_failed failed; integration: $int_passed passed, $int_failed failed, $int_skipped skipped"

# Further stages (fuzz corpus replay, sanitizer build, Debian package, browser): each
# script installs what it needs and ends with a line "NAME: N passed, N failed".
for stage in tests/stages/*.sh; do
    [ -e "$stage" ] || continue
    name=$(basename "$stage" .sh)
    echo "== $name"
    stage_status=0
    bash "$stage" 2>&1 | tee "$results/$name.log" || stage_status=$?
    stage_line=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed" "$results/$name.log" | tail -n 1 || true)
    stage_passed=$(sed -nE 's/.*: ([0-9]+) passed.*/\1/p' <<<"$stage_line")
    stage_failed=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$stage_line")
    stage_passed=${stage_passed:-0}
    stage_failed=${stage_failed:-0}
    if [ -z "$stage_line" ] || { [ "$stage_status" -ne 0 ] && [ "$stage_failed" -eq 0 ]; }; then
        echo "error: stage $name exited with $stage_status without a result line" >&2
        stage_failed=$((stage_failed + 1))
    fi
    passed=$((passed + stage_passed))
    failed=$((failed + stage_failed))
    summary="$summary; $name: $stage_passed passed, $stage_failed failed"
done

echo "$summary"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
