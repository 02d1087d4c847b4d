#!/usr/bin/env bash
# Install-then-consume check, run by the suite: installs this build into a staging prefix and
# builds two downstream programs from it, one with pkg-config and one with CMake's
# find_package(iii-sdk), both running a round trip through iii::testing::Engine.
# Also checks what the install contains: the public headers of include/ (the list in
# include/iii/meson.build), .pc files that need no simdjson/RapidJSON/fmt, the SONAME.
#
#   run.sh BUILD_DIR SOURCE_ROOT VERSION SOVERSION
#
# The staging area is BUILD_DIR/install-check (a fixed path, so ccache hits on re-runs).
set -euo pipefail

build=$(cd "$1" && pwd)
root=$(cd "$2" && pwd)
version=$3
soversion=$4
work="$build/install-check"
stage="$work/root"
fail() { echo "install check: $*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
meson install -C "$build" --no-rebuild --quiet --destdir "$stage" >"$work/install.log"

option() {
    meson introspect "$build" --buildoptions | /usr/bin/python3 -c \
        'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]==sys.argv[1]))' "$1"
}
prefix=$(option prefix)
libdir_rel=$(option libdir)
# A sanitizer build's libraries need the consumers built with the same runtime.
sanitize=$(option b_sanitize)
san_flags=()
[[ "$sanitize" == none ]] || san_flags=("-fsanitize=$sanitize")
# The consumer leaves install.hold suspended on the worker's pool at exit (by design: it never
# answers); leak checking is the in-tree tests' business.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
staged_prefix="$stage$prefix"
libdir="$staged_prefix/$libdir_rel"
[[ -d $libdir ]] || fail "no $libdir after install"

# ---- what was installed -----------------------------------------------------------------
expected=$(cd "$root/include" && find iii -name '*.hpp' | sort)
installed=$(cd "$staged_prefix/include" && find iii -name '*.hpp' ! -name version.hpp | sort)
if [[ "$expected" != "$installed" ]]; then
    diff <(echo "$expected") <(echo "$installed") >&2 || true
    fail "installed headers differ from include/ (update include/iii/meson.build)"
fi
[[ -f "$staged_prefix/include/iii/version.hpp" ]] || fail "iii/version.hpp not installed"
grep -q "#define III_VERSION_STRING \"$version\"" "$staged_prefix/include/iii/version.hpp" ||
    fail "version.hpp does not say $version"
soname=$(readelf -d "$libdir/libiii-sdk.so.$version" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[[ "$soname" == "libiii-sdk.so.$soversion" ]] || fail "SONAME is '$soname', expected libiii-sdk.so.$soversion"
[[ -f "$libdir/cmake/iii-sdk/iii-sdkConfig.cmake" && -f "$libdir/cmake/iii-sdk/iii-sdkConfigVersion.cmake" ]] ||
    fail "CMake package files missing"
[[ ! -e "$staged_prefix/bin/iii-test-engine" ]] || echo "install check: note: iii-test-engine installed (test_engine option)"

# ---- pkg-config: only our .pc files are visible, so any Requires on simdjson, RapidJSON or
# fmt would fail here; the sysroot maps the staged prefix.
export PKG_CONFIG_LIBDIR="$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
cflags=$(pkg-config --cflags iii-sdk iii-sdk-testing) || fail "pkg-config --cflags failed"
libs=$(pkg-config --libs iii-sdk iii-sdk-testing) || fail "pkg-config --libs failed"
echo "pkg-config --cflags: $cflags"
echo "pkg-config --libs:   $libs"
case "$cflags $libs" in
*SIMDJSON* | *simdjson* | *fmt* | *rapidjson* | *RapidJSON*) fail "pkg-config leaks a private dependency" ;;
esac
[[ "$(pkg-config --modversion iii-sdk)" == "$version" ]] || fail "iii-sdk.pc version"
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR

compiler=${III_CXX:-c++}  # the libraries' compiler (test/meson.build)
cxx=("$compiler")
command -v ccache >/dev/null && cxx=(ccache "$compiler")
# shellcheck disable=SC2086
"${cxx[@]}" -std=c++20 -O1 "${san_flags[@]}" -DIII_CONSUMER_KIND='"pkg-config"' $cflags \
    "$root/test/install/consumer.cpp" -o "$work/pkgconfig_consumer" $libs
LD_LIBRARY_PATH="$libdir" "$work/pkgconfig_consumer"

# ---- CMake -----------------------------------------------------------------------------------
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$root/test/install/cmake" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$staged_prefix" \
    -DIII_EXPECTED_VERSION="$version" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" \
    -DCMAKE_CXX_COMPILER="$compiler" \
    -DCMAKE_CXX_FLAGS="${san_flags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san_flags[*]}" >"$work/cmake.log" ||
    { cat "$work/cmake.log" >&2; fail "cmake configure failed"; }
grep "iii-sdk $version from" "$work/cmake.log"
cmake --build "$work/cmake" >"$work/cmake-build.log" || { cat "$work/cmake-build.log" >&2; fail "cmake build failed"; }
LD_LIBRARY_PATH="$libdir" "$work/cmake/cmake_consumer"
echo "install check: OK"
