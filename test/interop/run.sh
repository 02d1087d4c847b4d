#!/usr/bin/env bash
# Interop tests against the official Node SDK (iii-sdk, pinned in package-lock.json).
#
#   III_TEST_ENGINE=/path/to/iii-test-engine III_CPP_PEER=/path/to/cpp_peer \
#     test/interop/run.sh [node --test args...]
#
# Meson runs this with both set (suite 'interop'): the test engine, and the C++ worker that the
# cross-language tests (cross_*.test.mjs) drive. Exit codes: 0 pass, 77 skipped (no Node),
# anything else a failure.
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
for var in III_TEST_ENGINE III_CPP_PEER; do
  if [[ -z "${!var:-}" ]]; then
    echo "${var} is not set (see the top of this script)" >&2
    exit 2
  fi
  if [[ ! -x "${!var}" ]]; then
    echo "${var}=${!var} is not an executable" >&2
    exit 2
  fi
done
export III_TEST_ENGINE III_CPP_PEER

# Exactly the locked dependency tree; served from npm's cache when it is warm.
# Skipped when this lockfile is already installed: `npm ci` first deletes node_modules, which
# would pull it from under another build directory's interop run on the same checkout.
stamp=node_modules/.iii-installed-lock.json
if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
  npm ci --no-audit --no-fund --prefer-offline
  cp package-lock.json "$stamp"
fi

# wss:// tests (cross_tls.test.mjs): a throw-away CA and server certificate made now, never
# committed. Node reads NODE_EXTRA_CA_CERTS once at start-up, so it is set for every test
# process; the C++ peer gets SSL_CERT_FILE from the test that needs it.
if command -v openssl >/dev/null 2>&1; then
  III_INTEROP_TLS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/iii-interop-pki-XXXXXX")
  trap 'rm -rf "$III_INTEROP_TLS_DIR"' EXIT
  (
    cd "$III_INTEROP_TLS_DIR"
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj '/CN=iii interop CA' \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl req "${ec[@]}" -keyout server.key -out server.csr -subj '/CN=iii interop engine'
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -out server.pem -extfile server.ext
  ) >/dev/null 2>&1
  export III_INTEROP_TLS_DIR NODE_EXTRA_CA_CERTS="$III_INTEROP_TLS_DIR/ca.pem"
fi

# Test files run in parallel processes; each test starts its own engine on a free port.
shopt -s nullglob
files=(*.test.mjs)
node --test "$@" "${files[@]}"  # not exec: the EXIT trap removes the PKI
