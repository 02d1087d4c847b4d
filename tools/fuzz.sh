#!/usr/bin/env bash
# Fuzzes every parser that the network (or the environment) reaches, under libFuzzer with
# AddressSanitizer and UBSan, one target after the other:
#
#   decoder  frames: the protocol decoder, re-encoding, iii::Value::parse   (test/fuzz/decoder_fuzz.cpp)
#   typed    the typed decode of described structs, both readers            (test/fuzz/typed_fuzz.cpp)
#   channel  channel refs in payloads, create responses, channel URLs       (test/fuzz/channel_fuzz.cpp)
#   url      the engine-URL parser and log redaction                        (test/fuzz/url_fuzz.cpp)
#   config   OTEL_* environment values and W3C traceparent                  (test/fuzz/config_fuzz.cpp)
#
#   tools/fuzz.sh [SECONDS] [TARGET...]     each target for SECONDS (default 120), all by default
#   tools/fuzz.sh --runs N [TARGET...]      each target for N executions instead (at most
#                                           $FUZZ_MAX_SECONDS each, when set)
#
# Prints "fuzz <target>: <runs> runs in <s> s, no finding" per target; a finding stops with the
# crashing input in build-fuzz/<target>/ and a non-zero exit. Built with clang directly, not
# through Meson, and without Asio's coroutine code: nothing here needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cxx=""
for candidate in clang++-19 clang++; do
    if command -v "$candidate" >/dev/null; then cxx=$candidate; break; fi
done
[[ -n $cxx ]] || { echo "fuzz.sh: clang++ is needed (apt-get install clang)" >&2; exit 2; }

limit=(-max_total_time=120)
if [[ "${1:-}" == "--runs" ]]; then
    limit=(-runs="$2"); shift 2
    # Optional cap for long runs on a shared machine: whichever comes first.
    [[ -z "${FUZZ_MAX_SECONDS:-}" ]] || limit+=(-max_total_time="$FUZZ_MAX_SECONDS")
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    limit=(-max_total_time="$1"); shift
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(decoder typed channel url config)

declare -A sources=(
    [decoder]="lib/protocol.cpp lib/json.cpp lib/error.cpp lib/types.cpp"
    [typed]="lib/typed.cpp lib/json.cpp lib/error.cpp"
    [channel]="lib/channel_ref.cpp lib/url.cpp lib/redact.cpp lib/json.cpp lib/error.cpp"
    [url]="lib/url.cpp lib/redact.cpp lib/error.cpp"
    [config]="lib/otel_config.cpp"
)

root=$PWD
out="${FUZZ_OUT:-build-fuzz}"  # a separate directory lets a CI run go beside a long run
for target in "${targets[@]}"; do
    [[ -n "${sources[$target]:-}" ]] || { echo "fuzz.sh: unknown target '$target'" >&2; exit 2; }
    mkdir -p "$out/$target/corpus"
    # pointer-overflow is left out: RapidJSON 1.1.0 computes `nullptr + n` in internal/stack.h
    # on a writer's first push (benign, fixed upstream after 1.1.0), which would stop every run.
    # shellcheck disable=SC2086
    "$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize=pointer-overflow \
        -fno-sanitize-recover=undefined -Iinclude -Ilib -DASIO_STANDALONE -DASIO_HAS_CO_AWAIT -DASIO_HAS_STD_COROUTINE \
        -DSIMDJSON_THREADS_ENABLED=1 "test/fuzz/${target}_fuzz.cpp" ${sources[$target]} \
        -lsimdjson -lfmt -o "$out/$target/fuzz"
    log="$out/$target/fuzz.log"
    # The committed seeds stay read-only; what the fuzzer learns goes to build-fuzz/<target>/corpus.
    status=0
    start=$SECONDS
    (cd "$out/$target" && ./fuzz "${limit[@]}" -max_len=4096 -print_final_stats=1 \
        corpus "$root/test/fuzz/corpus/$target") >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$((SECONDS - start))
    if [[ $status -ne 0 ]]; then
        tail -40 "$log" >&2
        echo "fuzz $target: FINDING after ${runs:-?} runs (log: $log)" >&2
        exit 1
    fi
    echo "fuzz $target: ${runs:-?} runs in ${secs} s, no finding"
done
