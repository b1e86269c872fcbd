#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, FUZZ=ON, in build/fuzz) and runs each for SECONDS
# (default 60) on a copy of its seed corpus, after replaying the saved regression inputs.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     TARGET: config template mime token (default all)
#
# The committed corpus is never written to: new inputs go to a temporary copy, which is
# removed afterwards. Crashes, leaks, timeouts and out-of-memory inputs are saved under
# build/fuzz/artifacts/<target>/ and logs under build/fuzz/logs/. Exits non-zero when any
# target failed. Environment: CC (default clang), FUZZ_JOBS (build parallelism); the
# targets' own scratch files go to /dev/shm when it is writable, else to TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config template mime token)
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS] [config|template|mime|token ...]" >&2
    exit 64
    ;;
esac

build=build/fuzz
cmake -S . -B "$build" -DCMAKE_C_COMPILER="${CC:-clang}" -DFUZZ=ON -DBUILD_TESTING=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
build_targets=()
for t in "${targets[@]}"; do build_targets+=("fuzz_$t"); done
cmake --build "$build" -j "${FUZZ_JOBS:-$(nproc)}" --target "${build_targets[@]}"

work=$(mktemp -d "${TMPDIR:-/tmp}/rw-fuzz.XXXXXX")
# The config and template targets write files on every input: keep them in memory.
fuzz_tmp=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && fuzz_tmp=/dev/shm
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/logs"

failed=()
for t in "${targets[@]}"; do
    bin="$build/tests/fuzz/fuzz_$t"
    if [ ! -x "$bin" ]; then
        echo "$bin was not built: is tests/fuzz added to the top-level CMakeLists.txt when FUZZ=ON?" >&2
        exit 1
    fi
    artifacts="$root/$build/artifacts/$t"
    mkdir -p "$artifacts"
    log="$build/logs/$t.log"
    opts=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts/" -print_final_stats=1)
    [ -f "tests/fuzz/$t.dict" ] && opts+=(-dict="tests/fuzz/$t.dict")

    # Inputs that once failed must keep passing.
    regressions="tests/fuzz/regressions/$t"
    if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
        echo "== $t: replaying $(find "$regressions" -type f | wc -l) regression input(s)"
        if ! TMPDIR=$fuzz_tmp "$bin" "${opts[@]}" "$regressions"/* >"$build/logs/$t.regressions.log" 2>&1; then
            echo "!! $t: a regression input fails again (see $build/logs/$t.regressions.log)"
            failed+=("$t")
            continue
        fi
    fi

    echo "== $t: fuzzing for ${seconds}s"
    corpus="$work/$t"
    mkdir -p "$corpus"
    cp -R "tests/fuzz/corpus/$t/." "$corpus/"
    before=$(find "$artifacts" -type f | wc -l)
    rc=0
    TMPDIR=$fuzz_tmp "$bin" "${opts[@]}" -max_total_time="$seconds" "$corpus" >"$log" 2>&1 || rc=$?
    after=$(find "$artifacts" -type f | wc -l)
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$log" | tr '\n' ' ' || true
    echo
    if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
        echo "!! $t: failed (exit $rc); inputs in $artifacts, log in $log"
        grep -E 'invariant broken|ERROR: |SUMMARY: ' "$log" | head -n 5 || true
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing failed: ${failed[*]}"
    exit 1
fi
echo "fuzzing passed: ${targets[*]}"
