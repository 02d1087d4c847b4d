#!/usr/bin/env python3
"""Prints the build targets (paths relative to the build directory) that the tests of the given
suites need, one per line, from meson's introspection data.

    suite_targets.py <build dir> <suite>...
"""
import json
import os
import subprocess
import sys


def introspect(build_dir, what):
    return json.loads(subprocess.check_output(["meson", "introspect", build_dir, what]))


def main(argv):
    build_dir, suites = argv[0], set(argv[1:])
    targets = {t["id"]: t for t in introspect(build_dir, "--targets")}
    needed = set()
    for test in introspect(build_dir, "--tests"):
        # Suites are listed as "<project>:<suite>".
        if not any(s.split(":")[-1] in suites for s in test["suite"]):
            continue
        for dep in test["depends"]:
            for filename in targets[dep]["filename"]:
                needed.add(os.path.relpath(filename, build_dir))
    if not needed:
        print(f"suite_targets.py: no test in suites {sorted(suites)}", file=sys.stderr)
        return 2
    print("\n".join(sorted(needed)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
