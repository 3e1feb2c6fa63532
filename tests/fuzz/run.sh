#!/bin/bash
# Builds the libFuzzer targets of tests/fuzz with clang and either replays the seed
# corpora or fuzzes.
#
#   tests/fuzz/run.sh [--replay] [TARGET...]       run every file of
#       tests/fuzz/corpus/TARGET once (the default). The last line is
#       "fuzz replay: N passed, N failed", counted in targets.
#   tests/fuzz/run.sh --fuzz SECONDS [TARGET...]   fuzz each target for SECONDS.
#       New inputs go to tests/fuzz/build/work/TARGET, so the seed corpus stays
#       small. An input that crashes is saved in tests/fuzz/corpus/TARGET as
#       crash-<sha1> (or timeout-, oom-, leak-), where every later replay runs it.
#   tests/fuzz/run.sh --fuzz SECONDS --keep-going [TARGET...]   the same, but
#       libFuzzer goes on after a failure (its -fork=1 mode), and the failing inputs
#       go to tests/fuzz/build/crashes/TARGET for review instead of the corpus.
#
# tests/fuzz/known_failures/TARGET/ contains inputs of module bugs that are reported
# but not fixed yet. A replay runs each of them alone and expects it to fail, like
# pytest's xfail(strict=True): one that passes fails the replay, and the message
# says to move it to tests/fuzz/corpus/TARGET.
#
# TARGET is fuzz_jws, fuzz_seal, fuzz_discovery, fuzz_claims or fuzz_url, and no
# TARGET means all of them. Needs clang and libclang-rt-14-dev besides the build
# packages. FUZZ_BUILD_DIR sets the build directory (default tests/fuzz/build).
set -euo pipefail

FUZZ_DIR=$(cd "$(dirname "$0")" && pwd)
REPOSITORY=$(cd "$FUZZ_DIR/../.." && pwd)
BUILD=${FUZZ_BUILD_DIR:-$FUZZ_DIR/build}
CORPUS=$FUZZ_DIR/corpus
KNOWN_FAILURES=$FUZZ_DIR/known_failures
ALL_TARGETS=(fuzz_jws fuzz_seal fuzz_discovery fuzz_claims fuzz_url)

# Largest input in --fuzz mode. Replays read whole files (REPLAY_MAX_LEN).
declare -A FUZZ_MAX_LEN=(
    [fuzz_jws]=70000 [fuzz_seal]=16384 [fuzz_discovery]=16384
    [fuzz_claims]=70000 [fuzz_url]=4096
)
declare -A DICTIONARY=(
    [fuzz_jws]=jose.dict [fuzz_seal]=cookie.dict [fuzz_discovery]=jose.dict
    [fuzz_claims]=jose.dict [fuzz_url]=url.dict
)
REPLAY_MAX_LEN=4194304

# Prints the comment block at the top of this script.
usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
}

mode=replay
seconds=0
keep_going=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --replay) mode=replay ;;
        --fuzz)
            mode=fuzz
            seconds=${2:-}
            [[ "$seconds" =~ ^[0-9]+$ ]] || { echo "error: --fuzz needs SECONDS" >&2; usage; }
            shift
            ;;
        --keep-going) keep_going=1 ;;
        -h|--help) usage ;;
        fuzz_*) targets+=("$1") ;;
        *) echo "error: unknown argument $1" >&2; usage ;;
    esac
    shift
done
[ "${#targets[@]}" -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for target in "${targets[@]}"; do
    [ -f "$FUZZ_DIR/$target.c" ] || { echo "error: no target $target" >&2; exit 2; }
done

CC=${FUZZ_CC:-clang}
if ! command -v "$CC" >/dev/null; then
    echo "error: $CC not found; install clang and libclang-rt-14-dev" >&2
    exit 2
fi

APR_CONFIG=$(apxs -q APR_CONFIG)
APU_CONFIG=$(apxs -q APU_CONFIG)
SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS="-g -O1 -fno-omit-frame-pointer $SANITIZE -Wall -Wextra -Wno-unused-parameter
    -Wno-missing-field-initializers"
INCLUDES="-I$REPOSITORY/src -I$FUZZ_DIR -I$(apxs -q INCLUDEDIR)
    $($APR_CONFIG --cppflags --includes) $($APU_CONFIG --includes)
    $(pkg-config --cflags libcjson openssl libcurl)"
LIBS="$($APU_CONFIG --link-ld --libs) $($APR_CONFIG --link-ld --libs)
    $(pkg-config --libs libcjson openssl) -lm"
LIBRARY_SOURCES=(sk_claims.c sk_crypto.c sk_jose.c sk_oidc.c sk_url.c)

# Prints the sources a target is linked from, beyond the library.
extra_sources() {
    if [ "$1" = fuzz_seal ]; then
        echo "$REPOSITORY/src/session.c $FUZZ_DIR/glue_stubs.c"
    fi
}

# Builds one target unless its binary is newer than every source and header.
build_target() {
    local target=$1 binary=$BUILD/$1 objects=() source object
    if [ -x "$binary" ] && [ -z "$(find "$REPOSITORY/src" "$FUZZ_DIR" -maxdepth 1 \
            \( -name '*.c' -o -name '*.h' -o -name run.sh \) -newer "$binary" -print -quit)" ]; then
        return 0
    fi
    echo "building $target"
    mkdir -p "$BUILD/obj/$target"
    for source in "${LIBRARY_SOURCES[@]/#/$REPOSITORY/src/}" $(extra_sources "$target") \
                  "$FUZZ_DIR/$target.c"; do
        object=$BUILD/obj/$target/$(basename "${source%.c}").o
        # shellcheck disable=SC2086
        "$CC" $CFLAGS -fsanitize=fuzzer-no-link $INCLUDES -c "$source" -o "$object"
        objects+=("$object")
    done
    # shellcheck disable=SC2086
    "$CC" $CFLAGS -fsanitize=fuzzer "${objects[@]}" $LIBS -o "$binary.tmp"
    mv "$binary.tmp" "$binary"
}

mkdir -p "$BUILD"
# Two runs of this script may share the build directory: build one at a time.
exec 9>"$BUILD/.lock"
flock 9
for target in "${targets[@]}"; do
    build_target "$target"
done
flock -u 9

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Runs each known failure of a target alone. Returns 1 when one of them passes.
replay_known_failures() {
    local target=$1 input status=0
    [ -d "$KNOWN_FAILURES/$target" ] || return 0
    for input in "$KNOWN_FAILURES/$target"/*; do
        [ -f "$input" ] || continue
        if "$BUILD/$target" -max_len=$REPLAY_MAX_LEN \
                -artifact_prefix="$BUILD/replay/$target-known-" "$input" \
                >"$BUILD/replay/$target-known.log" 2>&1; then
            echo "replay $target: FAILED: known failure $(basename "$input") passes" \
                 "now; move it to $CORPUS/$target/"
            status=1
        else
            echo "replay $target: known failure $(basename "$input") still fails (expected)"
        fi
    done
    return "$status"
}

passed=0
failed=0
if [ "$mode" = replay ]; then
    mkdir -p "$BUILD/replay"
    for target in "${targets[@]}"; do
        mkdir -p "$CORPUS/$target"
        files=$(find "$CORPUS/$target" -type f | wc -l)
        log=$BUILD/replay/$target.log
        # -runs=0 runs every corpus file once and mutates nothing.
        if ! "$BUILD/$target" -runs=0 -max_len=$REPLAY_MAX_LEN \
                -artifact_prefix="$BUILD/replay/$target-" "$CORPUS/$target" >"$log" 2>&1; then
            echo "replay $target: FAILED on one of $files files; the end of $log:"
            tail -n 40 "$log"
            failed=$((failed + 1))
            continue
        fi
        if ! replay_known_failures "$target"; then
            failed=$((failed + 1))
            continue
        fi
        echo "replay $target: $files files, no failure"
        passed=$((passed + 1))
    done
    echo "fuzz replay: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
fi

# Prints the number of inputs that libFuzzer saved as failing in the seed corpus.
count_artifacts() {
    find "$CORPUS/$1" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \
        -o -name 'leak-*' \) | wc -l
}

mkdir -p "$BUILD/logs"
for target in "${targets[@]}"; do
    work=$BUILD/work/$target
    log=$BUILD/logs/$target-$(date +%Y%m%d-%H%M%S).log
    mkdir -p "$work" "$CORPUS/$target"
    before=$(count_artifacts "$target")
    echo "fuzzing $target for $seconds s, log $log"
    status=0
    options=(-max_total_time="$seconds" -max_len="${FUZZ_MAX_LEN[$target]}" -timeout=10
             -rss_limit_mb=2048 -print_final_stats=1
             -dict="$FUZZ_DIR/dict/${DICTIONARY[$target]}")
    if [ "$keep_going" -eq 1 ]; then
        mkdir -p "$BUILD/crashes/$target"
        options+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1
                  -artifact_prefix="$BUILD/crashes/$target/")
    else
        options+=(-artifact_prefix="$CORPUS/$target/")
    fi
    "$BUILD/$target" "${options[@]}" "$work" "$CORPUS/$target" >"$log" 2>&1 || status=$?
    after=$(count_artifacts "$target")
    grep -E '^stat::number_of_executed_units|^stat::new_units_added|cov: ' "$log" \
        | tail -n 3 | sed "s/^/  $target: /"
    if [ "$keep_going" -eq 1 ]; then
        crashes=$(find "$BUILD/crashes/$target" -type f | wc -l)
        echo "  $target: $crashes failing inputs in $BUILD/crashes/$target"
        [ "$crashes" -eq 0 ] || status=1
    fi
    if [ "$status" -ne 0 ] || [ "$after" -gt "$before" ]; then
        if [ "$keep_going" -eq 1 ]; then
            echo "  $target: FAILED (exit $status); failing inputs in $BUILD/crashes/$target"
        else
            echo "  $target: FAILED (exit $status); new regression files in $CORPUS/$target"
        fi
        failed=$((failed + 1))
    else
        passed=$((passed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
