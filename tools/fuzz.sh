#!/usr/bin/env bash
# Fuzzes what the network can send us: the frame decoder and iii::Value::parse, under libFuzzer
# with AddressSanitizer and UBSan.
#
#   tools/fuzz.sh [SECONDS]     (default 120)
#
# Built with clang directly, not through Meson: the project's compiler is g++ 12 (clang 14 cannot
# compile Asio's coroutines against GCC 12's libstdc++), and this target touches no coroutine code.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is needed (apt-get install clang)" >&2; exit 2; }
seconds="${1:-120}"
out=build-fuzz
mkdir -p "$out/corpus"
# pointer-overflow is left out: RapidJSON 1.1.0 computes `nullptr + n` in internal/stack.h on a
# writer's first push (benign, fixed upstream after 1.1.0), which would stop every run at once.
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize=pointer-overflow \
    -fno-sanitize-recover=undefined \
    -Iinclude -Ilib -DSIMDJSON_THREADS_ENABLED=1 \
    test/fuzz/decoder_fuzz.cpp lib/protocol.cpp lib/json.cpp lib/error.cpp lib/types.cpp \
    -lsimdjson -lfmt -o "$out/decoder_fuzz"
# The committed seeds stay read-only; what the fuzzer learns goes to build-fuzz/corpus.
exec "$out/decoder_fuzz" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    "$out/corpus" test/fuzz/corpus
