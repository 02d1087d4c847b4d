#!/usr/bin/env bash
# Installs the Debian 12 packages the build, tests and samples need, when any is missing.
set -euo pipefail
packages=(g++ meson ninja-build pkg-config python3 libasio-dev libwebsocketpp-dev libsimdjson-dev
          rapidjson-dev libfmt-dev catch2 libssl-dev openssl cmake doxygen python3-matplotlib)
# --with-node: Node.js and npm (interop tests, bench comparison); --with-clang: clang-19 and
# its runtimes (the second compiler, the sanitizers and libFuzzer).
for flag in "$@"; do
    case $flag in
        --with-node) packages+=(nodejs npm) ;;
        --with-clang) packages+=(clang-19 libclang-rt-19-dev) ;;
        *) echo "deps.sh: unknown option '$flag'" >&2; exit 2 ;;
    esac
done
missing=()
for p in "${packages[@]}"; do
    if [[ "$p" == nodejs || "$p" == npm ]]; then
        command -v "${p/nodejs/node}" >/dev/null 2>&1 && continue
    fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
