#!/usr/bin/env python3
"""Checks the dynamic symbol tables of the SDK's shared libraries (run by the suite).

  check_exports.py INCLUDE_DIR LIB.so ARCHIVE.a [LIB.so ARCHIVE.a ...]

For each shared library and the archive of its own objects:
- nothing of Asio, websocketpp, simdjson, RapidJSON or fmt is exported, except Asio's error
  categories (lib/asio_shared_state.hpp says why);
- every function the objects define in namespace iii (outside iii::detail) is exported, and so
  is every iii::detail function a public header declares (called by the header templates):
  a declaration that lacks III_API fails here rather than in a user's link.
"""
import re
import subprocess
import sys

FOREIGN = re.compile(r"\b(asio|websocketpp|simdjson|rapidjson|fmt)::")
# Asio's process-wide state, shared with the application on purpose: the error categories and
# the per-thread call stack (and the classes they are made of).
ALLOWED = re.compile(
    r"asio::(system_category\(\)|error::get_(misc|netdb|addrinfo)_category\(\)"
    r"|detail::system_category\b|error::detail::(misc|netdb|addrinfo)_category\b"
    r"|detail::(keyword_tss_ptr|tss_ptr|call_stack)<asio::detail::call_stack<asio::detail::thread_context, asio::detail::thread_info_base>::context>"
    r"|detail::call_stack<asio::detail::thread_context, asio::detail::thread_info_base>::top_"
    r"|detail::noncopyable$|detail::thread_context$"
    # clang (not g++) also exports the inline members that those headers define inside the
    # default-visibility region of asio_shared_state.hpp: still the same shared classes.
    r"|detail::noncopyable::~noncopyable\(\)|detail::thread_info_base::|error::get_system_category\(\)"
    r"|detail::call_stack<asio::detail::thread_context, asio::detail::thread_info_base>::contains\()"
    r"|std::error_code::(error_code|operator=)<asio::error::\w+")


def nm(args):
    out = subprocess.run(["nm", "-C", *args], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            yield parts[1], parts[2]


def name_of(symbol):
    """`iii::Value::dump[abi:cxx11]() const` -> `iii::Value::dump`."""
    return re.sub(r"\[abi:cxx11\]", "", symbol.split("(", 1)[0])


def main():
    include_dir, pairs = sys.argv[1], sys.argv[2:]
    headers = subprocess.run(["find", include_dir, "-name", "*.hpp"], check=True,
                             capture_output=True, text=True).stdout.split()
    # Functions declared at namespace scope (column 0) in the public headers.
    declared = set()
    for h in headers:
        for line in open(h):
            m = re.match(r"(?:\[\[noreturn\]\] )?(?:III_API )?[A-Za-z_][\w:<>,*& ]*?\b(\w+)\(", line)
            if m:
                declared.add(m.group(1))
    failures = []
    for lib, archive in zip(pairs[0::2], pairs[1::2]):
        exported = {sym for _, sym in nm(["-D", "--defined-only", lib])}
        exported_names = {name_of(s) for s in exported}
        foreign = sorted(s for s in exported if FOREIGN.search(s.split("(")[0]) and not ALLOWED.search(s)
                         and not s.startswith(("iii::", "typeinfo for iii::", "vtable for iii::")))
        failures += [f"{lib}: exports {s}" for s in foreign]
        needed = set()
        for kind, sym in nm(["--defined-only", archive]):
            if kind != "T" or not sym.startswith("iii::"):
                continue
            name = name_of(sym)
            if name.startswith("iii::detail::"):
                # Only free functions of iii::detail that a public header declares.
                if name.count("::") != 2 or name.rsplit("::", 1)[-1] not in declared:
                    continue
            needed.add(name)
        failures += [f"{lib}: does not export {n} (III_API missing?)" for n in sorted(needed - exported_names)]
        print(f"{lib}: {len(exported)} exported symbols, {len(needed)} SDK functions checked")
    for f in failures:
        print(f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
