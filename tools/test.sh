#!/usr/bin/env bash
# Builds everything with -Werror and runs the test suites. Ends with one line
# "N passed, N failed, N skipped" (over every run) and exits non-zero on any failure.
#
#   tools/test.sh [--clang] [--sanitize | --tsan] [--suite NAME]...
#   tools/test.sh --ci
#
#   (nothing)    g++ 12, every suite: unit, integration, interop (Node SDK), consumer
#   --clang      clang++-19 instead of g++ 12
#   --sanitize   AddressSanitizer and UBSan; any report fails the test
#   --tsan       ThreadSanitizer; any report fails the test. tools/tsan.supp suppresses two
#                third-party reports (websocketpp's stock _htonll, libstdc++'s exception_ptr
#                release) and nothing of ours
#   --suite S    only suite S (repeatable)
#   --ci         what .ci/run runs: everything with g++, then the integration suite with
#                clang-19 under TSan, then each fuzz target for 5 s (tools/fuzz.sh)
#
# Each configuration has its own build directory (build-test, build-test-clang, build-asan,
# build-tsan, ...), configured once and rebuilt incrementally.
set -euo pipefail
cd "$(dirname "$0")/.."

compiler=gcc
sanitizer=none
suites=()
ci=false
while [[ $# -gt 0 ]]; do
    case "$1" in
        --clang) compiler=clang ;;
        --sanitize) sanitizer=address ;;
        --tsan) sanitizer=thread ;;
        --suite) suites+=("$2"); shift ;;
        --ci) ci=true ;;
        *) echo "test.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
deps=(--with-node)
if $ci || [[ $compiler == clang ]]; then deps+=(--with-clang); fi
tools/deps.sh "${deps[@]}"

logs=()
status=0
extra_setup=()  # more `meson setup` options for the next run_config

# run_config COMPILER SANITIZER [SUITE...]: configures (once), builds and tests one configuration.
run_config() {
    local cc=$1 san=$2
    shift 2
    local dir=build-test opts=(--wrap-mode=nodownload -Dwerror=true)
    local env=()
    # Compile time is most of a CI run, and full debug info (-g) costs g++ a third of it. Line
    # tables (-g1) still give file:line in sanitizer reports and backtraces. g++ builds with -O2,
    # as users do (and -O2 is where its flow warnings live); the sanitizers with -O1 (what their
    # documentation advises, at half the compile time). clang-19 builds with -O0: its warnings
    # do not depend on the optimiser, and -O0 compiles three times faster than -O2 -g.
    local optimization=2 line_tables=-g1
    [[ $san != none ]] && optimization=1
    [[ $cc == clang && $san == none ]] && { optimization=0; line_tables=""; }
    opts+=(-Doptimization=$optimization -Ddebug=false ${line_tables:+-Dcpp_args=$line_tables})
    opts+=("${extra_setup[@]}")
    case "$san" in
        address)
            dir=build-asan
            opts+=(-Db_sanitize=address,undefined -Db_lundef=false)
            env+=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
                  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$PWD/tools/ubsan.supp) ;;
        thread)
            dir=build-tsan
            opts+=(-Db_sanitize=thread -Db_lundef=false)
            # halt_on_error: the first report ends the process with exitcode 66, so the test fails.
            env+=(TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tools/tsan.supp") ;;
    esac
    if [[ $cc == clang ]]; then
        command -v clang++-19 >/dev/null || { echo "test.sh: clang++-19 is needed (apt-get install clang-19)" >&2; exit 2; }
        dir+=-clang
        env+=(CXX=clang++-19 CC=clang-19)
    fi
    local suite_args=()
    for s in "$@"; do suite_args+=(--suite "$s"); done
    echo "== $dir: ${*:-every suite}"
    local started=$SECONDS
    # A failed build still ends with the summary line: its missing testlog counts as a failure.
    rm -f "$dir/meson-logs/testlog.json"
    logs+=("$dir/meson-logs/testlog.json")
    if [[ ! -d $dir ]]; then
        env "${env[@]}" meson setup "$dir" "${opts[@]}" || { status=1; return; }
    fi
    # Only what the chosen suites run is built (a TSan build of every target costs minutes).
    local targets=()
    # (build.ninja first: a reconfigure refreshes the introspection data the list comes from.)
    if (($#)); then
        env "${env[@]}" ninja -C "$dir" build.ninja >/dev/null || { status=1; return; }
        mapfile -t targets < <(python3 tools/suite_targets.py "$dir" "$@")
    fi
    env "${env[@]}" ninja -C "$dir" "${targets[@]}" || { status=1; return; }
    local built=$SECONDS
    env "${env[@]}" meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 "${suite_args[@]}" || status=1
    # CI has a time budget: each configuration's build and test times show where it goes.
    echo "== $dir: built in $((built - started)) s, tested in $((SECONDS - built)) s"
}

if $ci; then
    run_config gcc none
    # clang-19 builds the library, the test engine and the integration suite under
    # ThreadSanitizer: one build is both the second compiler's -Werror check and the race check
    # (a plain clang build besides it cost CI five minutes). The unit suite (single-threaded
    # state machines) and the samples are built and run by g++ only.
    extra_setup=(-Dsamples=disabled)
    run_config clang thread integration
    extra_setup=()
    # Each fuzz target for a few seconds: enough to catch a parser that crashes on its seeds.
    mkdir -p build-fuzz
    tools/fuzz.sh 5 | tee build-fuzz/ci.log || status=1
    for target in decoder typed channel url config; do
        if grep -q "^fuzz $target: .* no finding" build-fuzz/ci.log; then logs+=("OK:fuzz-$target"); else logs+=("FAIL:fuzz-$target"); fi
    done
else
    run_config "$compiler" "$sanitizer" "${suites[@]}"
fi
python3 tools/summarize.py "${logs[@]}"
exit $status
