#!/usr/bin/env bash
# Checks the README's subprojects/iii-sdk.wrap: takes the first ```ini block of README.md, points
# its url at this repository (a local clone, so no network) and its revision at the current
# branch, runs `meson subprojects download` in a scratch project, and checks that the clone
# provides the dependency names the wrap promises. Configuring and building that way is what
# test/consumer does (with the tree linked in instead of cloned).
#
#   wrap.sh SOURCE_ROOT
set -euo pipefail

root=$(cd "$1" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/iii-wrap.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "wrap check: $*" >&2; exit 1; }

wrap=$(awk '/^```ini$/ {on=1; next} on && /^```$/ {exit} on {print}' "$root/README.md")
[[ -n "$wrap" ]] || fail "no \`\`\`ini block in README.md"
grep -q '^\[wrap-git\]$' <<<"$wrap" || fail "the README's wrap is not [wrap-git]"
revision=$(git -C "$root" rev-parse --abbrev-ref HEAD)
[[ "$revision" != HEAD ]] || revision=head

mkdir -p "$work/subprojects"
cp "$root/test/consumer/meson.build" "$work/"
sed -e "s|^url = .*|url = $root|" -e "s|^revision = .*|revision = $revision|" <<<"$wrap" \
    >"$work/subprojects/iii-sdk.wrap"
(cd "$work" && meson subprojects download iii-sdk) >"$work/download.log" 2>&1 ||
    { cat "$work/download.log" >&2; fail "meson subprojects download failed"; }
[[ -f "$work/subprojects/iii-sdk/meson.build" ]] || fail "the clone has no meson.build"

names=$(sed -n 's/^dependency_names *= *//p' <<<"$wrap" | tr ',' ' ')
[[ -n "$names" ]] || fail "the wrap provides no dependency_names"
for name in $names; do
    grep -rqs "override_dependency('$name'" "$work/subprojects/iii-sdk" --include=meson.build ||
        fail "the subproject does not provide dependency '$name'"
done
echo "wrap check: OK (cloned $revision, provides $names)"
