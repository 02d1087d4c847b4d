#!/usr/bin/env python3
"""Prints meson's test counts over one or more testlog.json files as one line:
"N passed, N failed, N skipped". A run whose log is missing (its build failed) counts as one
failure, so the line never reports less than what went wrong. An argument "OK:name" or
"FAIL:name" counts one check run outside meson (tools/test.sh --ci: the fuzz targets)."""
import json
import os
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    if path.startswith("OK:"):
        passed += 1
        continue
    if path.startswith("FAIL:"):
        failed += 1
        continue
    if not os.path.exists(path):
        failed += 1
        continue
    with open(path) as log:
        for line in log:
            result = json.loads(line).get("result", "")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
