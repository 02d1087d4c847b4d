#!/usr/bin/env python3
"""Writes C++20-compatible copies of the websocketpp 0.8.2 headers that GCC 12 rejects.

websocketpp declares constructors and destructors with template-ids
(`basic<concurrency,names>(...)`, `~endpoint<connection,config>()`), which C++20 forbids
(CWG 2237). The copies drop the template arguments from those declarators only; every other
line is unchanged. Usage: fix_websocketpp.py <websocketpp include root> <output root>
"""
import pathlib
import re
import sys

HEADERS = ["logger/basic.hpp", "endpoint.hpp", "roles/server_endpoint.hpp",
           "roles/client_endpoint.hpp"]
# A declarator at the start of a line: optional '~', the class name, its template arguments,
# then '('. Return types such as `basic<...> & operator=` do not match because '(' must follow.
DECLARATOR = re.compile(r"^(\s*)(~?)(basic|endpoint|server|client)<[^()]*?>\(", re.M)


def main() -> int:
    src_root = pathlib.Path(sys.argv[1])
    out_root = pathlib.Path(sys.argv[2]) / "websocketpp"
    for rel in HEADERS:
        src = src_root / rel
        if not src.exists():
            continue
        text = src.read_text()
        fixed = DECLARATOR.sub(r"\1\2\3(", text)
        dst = out_root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists() or dst.read_text() != fixed:
            dst.write_text(fixed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
