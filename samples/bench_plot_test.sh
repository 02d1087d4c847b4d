#!/usr/bin/env bash
# Suite check of the bench JSON and samples/bench_plot.py: runs bench_typed --json briefly,
# checks that it carries the provenance fields, and plots it together with the committed
# results in docs/bench/ into a PNG. Exits 77 (skipped) without Debian's python3-matplotlib.
#
#   bench_plot_test.sh BENCH_TYPED SOURCE_ROOT OUT_DIR
set -euo pipefail
bench_typed=$1 root=$2 out=$3
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || { echo "no matplotlib for /usr/bin/python3: skipped"; exit 77; }
mkdir -p "$out"
"$bench_typed" 2000 --json >"$out/bench_typed.json"
/usr/bin/python3 - "$out/bench_typed.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["provenance"]
for key in ("sdk_version", "git_revision", "compiler", "build_type", "cpu_count", "load_before", "load_after"):
    assert p.get(key) not in (None, ""), f"provenance lacks {key}: {p}"
assert len(p["load_before"]) == 3 and len(p["load_after"]) == 3, p
print("provenance:", p["sdk"], p["sdk_version"], p["git_revision"], p["compiler"], p["build_type"])
PY
/usr/bin/python3 "$root/samples/bench_plot.py" "$out/bench_typed.json" "$root"/docs/bench/*.json -o "$out/plot.png"
[[ "$(head -c 8 "$out/plot.png" | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]] || { echo "not a PNG" >&2; exit 1; }
echo "bench_plot_test: OK"
