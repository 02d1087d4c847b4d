#!/usr/bin/env bash
# The README's TLS walk-through, run as written: a private CA and an engine certificate made
# with openssl, iii-test-engine in TLS mode, and the quickstart against it with
# III_URL=wss://... and SSL_CERT_FILE naming the CA.
#
#   test/tls_quickstart.sh III_TEST_ENGINE QUICKSTART        (exit 77: no openssl, skipped)
set -euo pipefail
engine=$1
quickstart=$2
command -v openssl >/dev/null 2>&1 || { echo "SKIP: openssl not installed"; exit 77; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/iii-tls-quickstart-XXXXXX")
pid=""
trap '[[ -n "$pid" ]] && kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
cd "$dir"

# --- README: "Trying it locally" ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -keyout ca.key -out ca.pem -subj '/CN=my private CA' \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout engine.key -out engine.csr -subj '/CN=engine'
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > engine.ext
openssl x509 -req -in engine.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
  -extfile engine.ext -out engine.pem
# --- end ---

# Created here: the background job opens its redirection when it gets to run, which on a busy
# machine can be after the first read below.
: > engine.out
"$engine" --port 0 --tls-cert engine.pem --tls-key engine.key > engine.out &
pid=$!
url=""
for _ in $(seq 200); do  # up to 10 s for the "listening on" line
  url=$(sed -n 's/^iii-test-engine listening on //p' engine.out)
  [[ -n "$url" ]] && break
  sleep 0.05
done
[[ "$url" == wss://127.0.0.1:* ]] || { echo "engine did not report a wss:// address: $(cat engine.out)"; exit 1; }

out=$(III_URL="$url" SSL_CERT_FILE="$dir/ca.pem" timeout 60 "$quickstart" 2>&1)
echo "$out"
grep -q '^greet -> "Hello, World!"$' <<<"$out"
