#!/usr/bin/env bash
# Builds the SDK and runs the quickstart: a worker and a caller round trip through the embedded
# test engine, or through a real engine when III_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
[[ -d build ]] || meson setup build --wrap-mode=nodownload >/dev/null
ninja -C build samples/quickstart >/dev/null
exec build/samples/quickstart
