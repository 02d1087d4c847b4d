#!/usr/bin/env bash
# Downstream consumer check: builds test/consumer against this tree as a Meson subproject and
# runs it. Usage: run.sh [repo root] (default: two levels above this script). The tree is not
# copied: a temp project gets subprojects/iii-sdk -> <repo root> as a symlink. Configured like
# CI (--wrap-mode=nodownload); iii-sdk is forced to come from the subproject even if an
# installed iii-sdk.pc exists. Extra meson setup options: $CONSUMER_MESON_ARGS.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "${1:-$here/../..}" && pwd)
[[ -f "$root/meson.build" && -f "$root/lib/meson.build" ]] || {
    echo "run.sh: $root is not the iii-sdk tree" >&2
    exit 2
}

# $CONSUMER_WORK (the suite passes one in its build directory): a fixed path, so that ccache
# finds this build's objects again on the next run (it hashes the working directory).
if [[ -n "${CONSUMER_WORK:-}" ]]; then
    work=$CONSUMER_WORK
    rm -rf "$work"
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/iii-consumer.XXXXXX")
fi
cleanup() {
    local rc=$?
    if [[ $rc -eq 0 && -z "${CONSUMER_KEEP:-}" ]]; then
        rm -rf "$work"
    else
        echo "run.sh: left $work for inspection" >&2
    fi
}
trap cleanup EXIT

cp "$here/meson.build" "$here/main.cpp" "$work/"
mkdir "$work/subprojects"
ln -s "$root" "$work/subprojects/iii-sdk"

# The subproject is compiled as a unity build without debug info: this check is about how a
# downstream project finds and links the SDK, and a plain build of it would cost CI minutes.
# shellcheck disable=SC2086
meson setup "$work/build" "$work" --wrap-mode=nodownload --force-fallback-for=iii-sdk \
    --unity=subprojects -Ddebug=false ${CONSUMER_MESON_ARGS:-}
# Niced: the suite runs this beside the integration tests, whose deadlines matter more than
# this build's time.
nice -n 10 meson compile -C "$work/build"
"$work/build/consumer"

# Installing the consumer installs only our libraries, headers, .pc and CMake files: no
# iii-test-engine (that takes -Diii-sdk:test_engine=enabled), nothing of our tests or samples.
meson install -C "$work/build" --destdir "$work/stage" --quiet >/dev/null
installed=$(cd "$work/stage" && find . -type f -o -type l | sort)
unexpected=$(grep -vE '/lib(/[^/]+)?/(libiii-sdk(-testing)?\.so[.0-9]*|libiii-sdk(-testing)?\.a|pkgconfig/iii-sdk(-testing)?\.pc|cmake/iii-sdk/iii-sdkConfig(Version)?\.cmake)$|/include/iii/' <<<"$installed" || true)
if [[ -n "$unexpected" ]]; then
    echo "run.sh: the subproject installed more than the SDK:" >&2
    echo "$unexpected" >&2
    exit 1
fi
grep -q '/libiii-sdk\.so' <<<"$installed" || { echo "run.sh: libiii-sdk was not installed" >&2; exit 1; }
echo "run.sh: consumer OK ($(wc -l <<<"$installed") files installed, all of them the SDK's)"
