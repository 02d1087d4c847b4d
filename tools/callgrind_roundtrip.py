#!/usr/bin/env python3
"""Instructions and mallocs per round trip, per process, from callgrind (deterministic).

    tools/callgrind_roundtrip.py [BUILD_DIR] [--calls A,B] [--keep DIR]

Runs BUILD_DIR/samples/bench_roundtrip twice under `valgrind --tool=callgrind
--trace-children=yes` (every process: the bench, the echo worker, the spawned iii-test-engine,
the floor's relay and echo server), with --calls A and --calls B (default 300,900), --warmup 50,
--inflight 1 and --rounds 1, and prints per process the difference between the two runs divided
by the extra calls (2 phases x (B - A)): instructions per call and calls of malloc per call,
both read from the callgrind files themselves (totals, so nothing depends on how
callgrind_annotate groups functions). Setup and warm-up cancel out in the difference. Sequential
calls only (--inflight 1): with calls in flight, how many frames one read returns depends on
timing. The bench process also runs the floor's client and the one-hop raw baseline, so its
figure is theirs plus the caller's.

Needs valgrind. Python 3 standard library only. Takes minutes: callgrind
runs code about 50 times slower.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("build_dir", nargs="?", default="build")
    p.add_argument("--calls", default="300,900", help="the two --calls values (default 300,900)")
    p.add_argument("--keep", help="write the callgrind files under this directory and keep them")
    args = p.parse_args()
    try:
        a, b = (int(x) for x in args.calls.split(","))
    except ValueError:
        p.error("--calls needs two numbers, e.g. 300,900")
    if not 0 < a < b:
        p.error("--calls A,B needs 0 < A < B")
    return args, a, b


def role(path):
    with open(path, errors="replace") as f:
        head = f.read(4096)
    m = re.search(r"^cmd:\s*(.*)$", head, re.M)
    cmd = m.group(1) if m else ""
    for marker, name in (("iii-test-engine", "engine"), ("--role echo", "echo worker"),
                         ("--role floor-relay", "floor relay"), ("--role floor-echo", "floor echo")):
        if marker in cmd:
            return name
    return "bench (caller + floor client + raw)"


def mallocs(path):
    """Calls of malloc, from the calls= lines under each cfn=malloc. The bench executables
    interpose malloc (samples/alloc_counter.cpp) and forward to glibc's, which callgrind may
    name malloc too: calls made from a function named malloc are not counted twice."""
    names, fn, cfn, total = {}, None, None, 0
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"^(fn|cfn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                kind, ident, name = m.groups()
                if name:
                    names[ident] = name
                if kind == "fn":
                    fn, cfn = names.get(ident), None
                else:
                    cfn = names.get(ident)
                continue
            m = re.match(r"^calls=(\d+)", line)
            if m and cfn == "malloc":
                if fn != "malloc":
                    total += int(m.group(1))
                cfn = None
    return total


def costs(path):
    with open(path, errors="replace") as f:
        m = re.search(r"^summary:\s*(\d+)", f.read(), re.M)
    return {"instructions": int(m.group(1)) if m else 0, "mallocs": mallocs(path)}


def run(bench, calls, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for old in glob.glob(os.path.join(out_dir, "cg.*.out")):
        os.remove(old)
    cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes",
           f"--callgrind-out-file={out_dir}/cg.%p.out", bench, "--calls", str(calls),
           "--warmup", "50", "--inflight", "1", "--rounds", "1", "--json"]
    print("callgrind_roundtrip: " + " ".join(cmd), file=sys.stderr)
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"callgrind_roundtrip: bench_roundtrip failed under valgrind:\n{done.stderr[-3000:]}")
    result = {}
    for path in glob.glob(os.path.join(out_dir, "cg.*.out")):
        result[role(path)] = costs(path)
    return result


def main():
    args, a, b = parse_args()
    bench = os.path.join(args.build_dir, "samples", "bench_roundtrip")
    if not os.access(bench, os.X_OK):
        sys.exit(f"callgrind_roundtrip: no {bench}; build it first (ninja -C {args.build_dir} "
                 f"samples/bench_roundtrip lib/testing/iii-test-engine)")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or tmp
        ra = run(bench, a, os.path.join(root, f"calls-{a}"))
        rb = run(bench, b, os.path.join(root, f"calls-{b}"))
    extra = 2 * (b - a)
    print(f"per call (callgrind, sequential, ({b} - {a}) x 2 phases = {extra} calls):")
    print(f"{'process':<38} {'instructions':>12} {'mallocs':>8}")
    for name in sorted(rb):
        if name not in ra:
            continue
        d = {k: (rb[name][k] - ra[name][k]) / extra for k in ("instructions", "mallocs")}
        print(f"{name:<38} {d['instructions']:>12.0f} {d['mallocs']:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
