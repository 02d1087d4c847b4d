#!/usr/bin/env bash
# Builds everything with -Werror and runs every test suite (unit, integration, interop,
# downstream consumer). Ends with one line "N passed, N failed[, N skipped]" and exits non-zero
# on any failure. `--sanitize` builds and runs under AddressSanitizer and UBSan instead.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh --with-node
builddir=build-test
opts=(--wrap-mode=nodownload -Dwerror=true -Dbuildtype=debugoptimized)
if [[ "${1:-}" == "--sanitize" ]]; then
    builddir=build-asan
    opts+=(-Db_sanitize=address,undefined -Db_lundef=false)
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
fi
[[ -d $builddir ]] || meson setup "$builddir" "${opts[@]}"
ninja -C "$builddir"
status=0
meson test -C "$builddir" --print-errorlogs --num-processes 2 || status=$?
python3 tools/summarize.py "$builddir/meson-logs/testlog.json"
exit $status
