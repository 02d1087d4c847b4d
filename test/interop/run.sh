#!/usr/bin/env bash
# Interop tests against the official Node SDK (iii-sdk, pinned in package-lock.json).
#
#   III_TEST_ENGINE=/path/to/iii-test-engine test/interop/run.sh [node --test args...]
#
# Meson runs this with III_TEST_ENGINE set (suite 'interop'). Exit codes: 0 pass, 77 skipped
# (no Node), anything else a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v node >/dev/null 2>&1; then
  echo "SKIP: node not installed"
  exit 77
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "SKIP: npm not installed"
  exit 77
fi
if [[ -z "${III_TEST_ENGINE:-}" ]]; then
  echo "III_TEST_ENGINE is not set: the path of the iii-test-engine binary" >&2
  exit 2
fi
if [[ ! -x "${III_TEST_ENGINE}" ]]; then
  echo "III_TEST_ENGINE=${III_TEST_ENGINE} is not an executable" >&2
  exit 2
fi
export III_TEST_ENGINE

# Exactly the locked dependency tree; served from npm's cache when it is warm.
npm ci --no-audit --no-fund --prefer-offline

# Test files run in parallel processes; each test starts its own engine on a free port.
shopt -s nullglob
files=(*.test.mjs)
exec node --test "$@" "${files[@]}"
