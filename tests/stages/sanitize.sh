#!/bin/bash
# Sanitizer stage of tools/test.sh: memory and undefined-behaviour checks of the
# library and of the module in a real httpd. Runs from any directory. The last line
# is "sanitize: N passed, N failed", where each check below counts once:
#
#   unit-asan          the Check unit tests built with gcc -fsanitize=address,undefined
#   unit-valgrind      valgrind memcheck on the normal unit test binary (CK_FORK=no)
#   fuzz-replay-TARGET every seed and regression file of tests/fuzz/corpus/TARGET,
#                      through the libFuzzer target built with ASan and UBSan
#   module-asan-build  the module built by apxs with -fsanitize=address,undefined
#   integration-asan   the pytest integration tests with that module in httpd, which
#                      runs with libasan preloaded. Any ASan or UBSan report file fails
#
# Sanitizer builds go to build/sanitize/PID/, so the normal build in src/ is untouched
# and two runs at once do not share files. That directory is removed when every check
# passed and kept with its logs and reports otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tools/common.sh

install_packages "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}" check python3-pytest \
    python3-requests clang libclang-rt-14-dev valgrind || exit 1

REPOSITORY=$(pwd)
OUT=$REPOSITORY/build/sanitize/$$
rm -rf "$OUT"
mkdir -p "$OUT/unit" "$OUT/module" "$OUT/reports"

passed=0
failed=0
pass() {
    echo "PASS $1"
    passed=$((passed + 1))
}
fail() {
    echo "FAIL $1: $2"
    failed=$((failed + 1))
}

# Stops the stage at once with a result line, for a failure that makes the rest void.
abort_stage() {
    fail "$1" "$2"
    echo "sanitize: $passed passed, $failed failed"
    exit 1
}

build_module || abort_stage build "the normal build (make) failed"
make -s tests/unit/check_sk >/dev/null 2>&1 \
    || abort_stage build "building tests/unit/check_sk failed"

APR_CONFIG=$(apxs -q APR_CONFIG)
APU_CONFIG=$(apxs -q APU_CONFIG)
APR_CFLAGS="$($APR_CONFIG --cppflags --cflags --includes) $($APU_CONFIG --includes)"
APR_LIBS="$($APU_CONFIG --link-ld --libs) $($APR_CONFIG --link-ld --libs)"
DEP_CFLAGS=$(pkg-config --cflags libcjson libcurl openssl check)
DEP_LIBS=$(pkg-config --libs libcjson libcurl openssl check)
SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer"
# A sanitizer message in the output of a run.
REPORT_PATTERN='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer'

# --- Unit tests with ASan and UBSan --------------------------------------------------
echo "== unit tests with -fsanitize=address,undefined"
# shellcheck disable=SC2086
if gcc -g -O1 $SANITIZE -fno-sanitize-recover=undefined -Wall -Wextra \
        -Wno-unused-parameter -Wno-missing-field-initializers -Isrc $APR_CFLAGS $DEP_CFLAGS \
        tests/unit/*.c src/sk_*.c $APR_LIBS $DEP_LIBS -lm -o "$OUT/unit/check_sk" \
        >"$OUT/unit/build.log" 2>&1; then
    status=0
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$OUT/unit/check_sk" >"$OUT/unit/run.log" 2>&1 || status=$?
    grep -E '^[0-9]+%: Checks' "$OUT/unit/run.log" || true
    if [ "$status" -ne 0 ]; then
        fail unit-asan "exit status $status; see $OUT/unit/run.log"
        grep -E "$REPORT_PATTERN|:[EF]:" "$OUT/unit/run.log" | head -n 20
    elif grep -qE "$REPORT_PATTERN" "$OUT/unit/run.log"; then
        fail unit-asan "sanitizer report in $OUT/unit/run.log"
        grep -E "$REPORT_PATTERN" "$OUT/unit/run.log" | head -n 20
    else
        pass unit-asan
    fi
else
    fail unit-asan "the build failed; see $OUT/unit/build.log"
    tail -n 20 "$OUT/unit/build.log"
fi

# --- Valgrind on the normal unit test binary -----------------------------------------
echo "== valgrind memcheck on tests/unit/check_sk"
status=0
CK_FORK=no valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    tests/unit/check_sk >"$OUT/unit/valgrind.log" 2>&1 || status=$?
grep -E '^[0-9]+%: Checks' "$OUT/unit/valgrind.log" || true
if [ "$status" -eq 0 ]; then
    pass unit-valgrind
else
    fail unit-valgrind "exit status $status (99: memcheck errors); see $OUT/unit/valgrind.log"
    grep -E '^==[0-9]+== ' "$OUT/unit/valgrind.log" | head -n 30
fi

# --- Fuzz corpus replay --------------------------------------------------------------
echo "== fuzz corpus replay"
tests/fuzz/run.sh --replay >"$OUT/fuzz-replay.log" 2>&1
grep -E '^(building|replay) ' "$OUT/fuzz-replay.log"
while read -r target result; do
    if [ "$result" = ok ]; then
        pass "fuzz-replay-$target"
    else
        fail "fuzz-replay-$target" "see tests/fuzz/build/replay/$target.log"
    fi
done < <(sed -nE 's/^replay (fuzz_[a-z]+): .*no failure$/\1 ok/p; s/^replay (fuzz_[a-z]+): FAILED.*/\1 failed/p' \
         "$OUT/fuzz-replay.log")
if ! grep -qE '^fuzz replay: ' "$OUT/fuzz-replay.log"; then
    fail fuzz-replay "tests/fuzz/run.sh ended without a result; see $OUT/fuzz-replay.log"
    tail -n 20 "$OUT/fuzz-replay.log"
fi

# --- The module with ASan and UBSan in httpd -----------------------------------------
echo "== module built with -fsanitize=address,undefined"
cp src/*.c src/*.h "$OUT/module/"
module_so=$OUT/module/.libs/mod_auth_scalekit.so
# shellcheck disable=SC2046
if (cd "$OUT/module" && apxs -c -o mod_auth_scalekit.la \
        -Wc,-g -Wc,-O1 -Wc,-fsanitize=address,undefined -Wc,-fno-omit-frame-pointer \
        -Wl,-fsanitize=address,undefined \
        $(pkg-config --cflags libcjson libcurl openssl) ./*.c \
        $(pkg-config --libs libcjson libcurl openssl) -lasan -lubsan) \
        >"$OUT/module/build.log" 2>&1 && ldd "$module_so" | grep libasan >/dev/null; then
    pass module-asan-build
else
    fail module-asan-build "see $OUT/module/build.log"
    tail -n 20 "$OUT/module/build.log"
    module_so=
fi

if [ -n "$module_so" ]; then
    echo "== integration tests with the ASan module"
    libasan=$(gcc -print-file-name=libasan.so)
    reports=$OUT/reports
    # The children run as www-data and write their reports here too.
    chmod 1777 "$reports"
    wrapper=$OUT/apache2-asan
    cat >"$wrapper" <<EOF
#!/bin/sh
# Runs apache2 with the ASan runtime preloaded for the ASan build of the module.
# PHP loads its extensions (opcache first) with RTLD_DEEPBIND, which the ASan
# runtime rejects, so PHP reads no conf.d directory and runs with built-in
# extensions only.
export PHP_INI_SCAN_DIR="$OUT/php-conf.d"
export LD_PRELOAD="$libasan"
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=0:halt_on_error=1"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1"
exec /usr/sbin/apache2 "\$@"
EOF
    chmod 755 "$wrapper"
    mkdir -p "$OUT/php-conf.d"

    status=0
    SK_APACHE_WRAPPER=$wrapper MOD_AUTH_SCALEKIT_SO=$module_so \
        PYTHONPATH=$REPOSITORY/tests/integration${PYTHONPATH:+:$PYTHONPATH} \
        /usr/bin/python3 -m pytest -p no:cacheprovider -p sanitizer_plugin -q -rfE \
        tests/integration >"$OUT/integration.log" 2>&1 || status=$?
    tail -n 1 "$OUT/integration.log"
    report_files=$(find "$reports" -type f | sort)
    if [ -n "$report_files" ]; then
        fail integration-asan "sanitizer reports:"
        for file in $report_files; do
            echo "--- $file"
            head -n 30 "$file"
        done
    elif [ "$status" -ne 0 ]; then
        fail integration-asan "pytest exited with $status; see $OUT/integration.log"
        grep -E '^(FAILED|ERROR) ' "$OUT/integration.log" | head -n 20
    else
        pass integration-asan
    fi
fi

[ "$failed" -eq 0 ] && rm -rf "$OUT"
echo "sanitize: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
