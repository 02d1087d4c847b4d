#!/usr/bin/env bash
# Builds the API documentation (HTML) with Doxygen: the public headers, docs/index.md, and the
# guides at the top of describe.hpp, typed.hpp and channel.hpp as pages (tools/header_guide.py).
#
#   tools/docs.sh [OUT_DIR]     (default: build-docs; the HTML is OUT_DIR/html/index.html)
#
# Fails, printing them, on any Doxygen warning: an undocumented public member, a broken
# reference or command, except what docs/undocumented.txt tolerates ("<header>: <warning>",
# no line numbers; empty now, and it may only shrink). Exits 77 (meson: skipped) when doxygen
# is not installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="${1:-$root/build-docs}"
command -v doxygen >/dev/null || { echo "docs.sh: doxygen is needed (apt-get install doxygen)" >&2; exit 77; }
mkdir -p "$out/pages"
out=$(cd "$out" && pwd)

guide() { python3 "$root/tools/header_guide.py" "$root/include/iii/$1" "$2" "$3" "$out/pages/$2.md"; }
guide describe.hpp described-types "Described types"
guide typed.hpp typed-functions "Typed functions"
guide channel.hpp channels "Channels"

# The version is written once, in meson.build.
version=$(sed -n "s/^ *version: '\([^']*\)'.*/\1/p" "$root/meson.build" | head -1)
export III_DOCS_OUT="$out" III_DOCS_VERSION="$version" III_DOCS_EXTRA_INPUT="$out/pages" III_DOCS_STRIP="$out/pages"
rm -f "$out/warnings.log"
(cd "$root" && doxygen docs/Doxyfile)
touch "$out/warnings.log"
# "<path>:<line>: warning: <text>" -> "<header>: <text>", to compare with the baseline.
sed -E "s|^$root/include/||; s|^$out/pages/||; s|^([^:]+):[0-9]+: warning: |\1: |" "$out/warnings.log" |
    sort -u >"$out/warnings.txt"
{ grep -v '^#' "$root/docs/undocumented.txt" || true; } | sed '/^$/d' | sort -u >"$out/baseline.txt"
comm -23 "$out/warnings.txt" "$out/baseline.txt" >"$out/new-warnings.txt"
if [[ -s "$out/new-warnings.txt" ]]; then
    cat "$out/new-warnings.txt" >&2
    echo "docs.sh: $(wc -l <"$out/new-warnings.txt") Doxygen warnings (see above; full log: $out/warnings.log)" >&2
    exit 1
fi
gone=$(comm -13 "$out/warnings.txt" "$out/baseline.txt" | wc -l)
((gone == 0)) || echo "docs.sh: $gone entries of docs/undocumented.txt are documented now: remove them"
echo "docs.sh: $(wc -l <"$out/baseline.txt") known undocumented members left (docs/undocumented.txt)"
echo "docs.sh: $out/html/index.html"
