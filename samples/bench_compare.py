#!/usr/bin/env python3
"""C++ SDK against the official Node SDK: the same round-trip bench through one engine.

    samples/bench_compare.py [BUILD_DIR] [--calls N] [--inflight N] [--payload-bytes N]
                             [--warmup N] [--rounds N] [--json]

Builds nothing: BUILD_DIR (default `build`) must hold samples/bench_roundtrip and
lib/testing/iii-test-engine. Starts ONE `iii-test-engine --port 0`, then per round runs
`bench_roundtrip --url URL --rounds 1 --json` (C++, which also measures the floor: the same
three-process path with a websocketpp relay in place of the engine and no SDK) and
`samples/node/bench_roundtrip.mjs --url URL --json` (iii-sdk 0.11.2, installed with `npm ci`
when samples/node/node_modules is missing), one after the other against that engine, and prints
one table of the medians over the rounds: per phase, for C++, Node and the floor, calls/s,
p50/p99 latency and CPU µs per call of the caller, the echo worker and the engine (the floor:
client, echo server, relay), then C++/Node, C++/floor and Node/floor as medians of the per-round
ratios (Node's against the floor measured in the same round). Both benches get --engine-pid, so
the engine's CPU per phase comes from /proc/<pid>/task/*/schedstat, read at the same phase
boundaries as the workers'.

Python 3 standard library only.
"""

import argparse
import datetime
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
NODE_DIR = os.path.join(HERE, "node")
PHASES = ["sequential", "pipelined"]
CPU_ROLES = ["caller", "echo", "engine"]
BENCH_TIMEOUT_S = 900


def fail(message):
    print(f"bench_compare: {message}", file=sys.stderr)
    sys.exit(1)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("build_dir", nargs="?", default="build", help="meson build directory (default: build)")
    p.add_argument("--calls", type=int, default=20000, help="measured calls per phase (default 20000)")
    p.add_argument("--inflight", type=int, default=64, help="calls in flight, pipelined phase (default 64)")
    p.add_argument("--payload-bytes", type=int, default=100, help="JSON payload size (default 100)")
    p.add_argument("--warmup", type=int, help="warm-up calls per phase (default: the benches' own)")
    p.add_argument("--rounds", type=int, default=1, help="C++ then Node, this many times; medians (default 1)")
    p.add_argument("--json", action="store_true", help="print every round and the medians as JSON")
    p.add_argument("--inline-handlers", action="store_true",
                   help="C++ echo worker runs its handler on its io thread (InitOptions::handlers_on_io_thread)")
    args = p.parse_args()
    if args.calls < 1 or args.inflight < 1 or args.payload_bytes < 0 or args.rounds < 1:
        p.error("--calls, --inflight and --rounds need numbers >= 1, --payload-bytes >= 0")
    return args


def resolve_build_dir(path):
    """BUILD_DIR as given (relative to the current directory), else relative to the repository."""
    for candidate in (path, os.path.join(REPO, path)):
        if os.path.isdir(candidate):
            return os.path.abspath(candidate)
    fail(f"no build directory '{path}' (here or in {REPO}); build it first, e.g. "
         f"meson setup build && ninja -C build samples/bench_roundtrip lib/testing/iii-test-engine")


def executable(path, what):
    if not os.access(path, os.X_OK):
        fail(f"no {what} at {path}; build it first (ninja -C <build dir> samples/bench_roundtrip "
             f"lib/testing/iii-test-engine)")
    return path


def ensure_node_deps():
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not installed; the Node half of the comparison needs Node.js and npm")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "iii-sdk")):
        print("bench_compare: installing the Node bench's dependencies (npm ci)", file=sys.stderr)
        # stdout to stderr: ours is the table.
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=NODE_DIR,
                       check=True, stdout=sys.stderr)


class Engine:
    """One iii-test-engine on a free port; its output is drained so that it never blocks."""

    def __init__(self, path):
        self.proc = subprocess.Popen([path, "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.tail = []
        self.url = self._read_url(timeout_s=10)
        threading.Thread(target=self._drain, daemon=True).start()

    def _read_url(self, timeout_s):
        marker = b"listening on "
        deadline = time.monotonic() + timeout_s
        buffer = b""
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buffer += chunk
            for line in buffer.split(b"\n")[:-1]:
                if marker in line:
                    return line.split(marker, 1)[1].strip().decode()
        self.stop()
        fail(f"iii-test-engine did not report its address; it printed: {buffer.decode(errors='replace')!r}")

    def _drain(self):
        for line in self.proc.stdout:
            self.tail = (self.tail + [line.decode(errors="replace").rstrip()])[-20:]

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_bench(name, command, cwd=None):
    """Runs one bench with --json; returns its parsed output. Its stderr passes through."""
    try:
        done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              timeout=BENCH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        fail(f"{name} did not finish within {BENCH_TIMEOUT_S} s: {' '.join(command)}")
    if done.returncode != 0:
        fail(f"{name} failed (exit {done.returncode}): {' '.join(command)}")
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith("{")]
    if not lines:
        fail(f"{name} printed no JSON: {done.stdout.decode()!r}")
    return json.loads(lines[-1])


def metrics(phase):
    """The compared numbers of one phase of a bench's `sdk` object."""
    m = {
        "calls_per_s": phase["calls_per_s"],
        "p50_us": phase["latency_us"]["p50"],
        "p99_us": phase["latency_us"]["p99"],
    }
    for role in CPU_ROLES:
        if role in phase["cpu_us_per_call"]:
            m[f"cpu_{role}_us"] = phase["cpu_us_per_call"][role]
    return m


# The floor's processes in the roles of the SDK path's: client = caller, relay = engine.
FLOOR_ROLES = {"caller": "client", "echo": "echo", "engine": "relay"}


def floor_metrics(phase):
    """A floor phase (bench_roundtrip's `floor` object) under the SDK path's metric names."""
    m = {
        "calls_per_s": phase["calls_per_s"],
        "p50_us": phase["latency_us"]["p50"],
        "p99_us": phase["latency_us"]["p99"],
    }
    for role, floor_role in FLOOR_ROLES.items():
        if floor_role in phase["cpu_us_per_call"]:
            m[f"cpu_{role}_us"] = phase["cpu_us_per_call"][floor_role]
    return m


def per_round_metrics(r, path, phase):
    if path == "floor":
        return floor_metrics(r["cxx"]["floor"][phase]) if "floor" in r["cxx"] else None
    return metrics(r[path]["sdk"][phase])


def medians(rounds, path):
    out = {}
    for phase in PHASES:
        per_round = [per_round_metrics(r, path, phase) for r in rounds]
        if any(m is None for m in per_round):
            return None
        keys = [k for k in per_round[0] if all(k in m for m in per_round)]
        out[phase] = {k: statistics.median(m[k] for m in per_round) for k in keys}
    return out


def median_ratios(rounds, a, b):
    """Per phase and metric, the median over rounds of a's figure over b's in the same round."""
    out = {}
    for phase in PHASES:
        ratios = {}
        for r in rounds:
            ma, mb = per_round_metrics(r, a, phase), per_round_metrics(r, b, phase)
            if ma is None or mb is None:
                return None
            for k, v in ma.items():
                if k in mb and mb[k]:
                    ratios.setdefault(k, []).append(v / mb[k])
        out[phase] = {k: statistics.median(v) for k, v in ratios.items()}
    return out


def load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def git_revision():
    try:
        return subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty", "--abbrev=12"],
                              check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(rounds, load_before, load_after, started):
    """The fields of bench::Provenance (samples/bench_support.hpp) for the whole comparison,
    with the two benches' own records under "cxx" and "node"."""
    cxx = rounds[0]["cxx"].get("provenance", {})
    node = rounds[0]["node"].get("provenance", {})
    u = os.uname()
    return {
        "sdk": "bench_compare (iii-cpp against iii-sdk for Node)",
        "sdk_version": f"iii-cpp {cxx.get('sdk_version', '?')}, iii-sdk (Node) {node.get('sdk_version', '?')}",
        "git_revision": git_revision(),
        "compiler": f"{cxx.get('compiler', '?')}; {node.get('compiler', '?')}",
        "build_type": cxx.get("build_type", "?"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "os": f"{u.sysname} {u.release} {u.machine}",
        "load_before": load_before,
        "load_after": load_after,
        "started_utc": started,
        "finished_utc": utc_now(),
        "cxx": cxx,
        "node": node,
    }


def print_table(args, url, rounds, med, ratios, cxx_label, node_label, load_before, load_after, prov):
    first_cxx = rounds[0]["cxx"]["config"]
    warmup = first_cxx["warmup"]
    payload = first_cxx["payload_bytes"]
    print(f"bench_compare: `echo` round trips through one iii-test-engine ({url}), {args.calls} calls "
          f"per phase after {warmup} warm-up, payload {payload} B of JSON, "
          f"{args.rounds} round{'s' if args.rounds > 1 else ''} (C++ then Node"
          f"{', medians' if args.rounds > 1 else ''}), {os.cpu_count()} hardware threads")
    if load_before and load_after:
        print(f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"C++: {cxx_label}; Node: {node_label}")
    print(f"{prov['sdk_version']}; revision {prov['git_revision']}; {prov['compiler']}; "
          f"build {prov['build_type']}")
    print()
    columns = ["calls/s", "p50 µs", "p99 µs", "CPU µs/call caller", "echo", "engine"]
    keys = ["calls_per_s", "p50_us", "p99_us", "cpu_caller_us", "cpu_echo_us", "cpu_engine_us"]
    print("| phase | SDK | " + " | ".join(columns) + " |")
    print("|---|---|" + "---:|" * len(columns))

    def cell(value, key):
        if value is None:
            return "–"
        if key == "calls_per_s":
            return f"{value:.0f}"
        return f"{value:.1f}"

    def ratio_cells(values):
        return " | ".join(f"{values[k]:.2f}×" if values and k in values else "–" for k in keys)

    for phase in PHASES:
        label = phase if phase == "sequential" else f"pipelined ({args.inflight})"
        for path, name in (("cxx", "C++"), ("node", "Node"), ("floor", "floor")):
            if med[path] is not None:
                print(f"| {label} | {name} | " + " | ".join(cell(med[path][phase].get(k), k) for k in keys) + " |")
        for pair, name in ((("cxx", "node"), "C++/Node"), (("cxx", "floor"), "C++/floor"),
                           (("node", "floor"), "Node/floor")):
            if ratios[pair] is not None:
                print(f"| {label} | {name} | " + ratio_cells(ratios[pair][phase]) + " |")
    if len(rounds) > 1:
        print()
        print("calls/s per round (the spread shows the noise):")
        for phase in PHASES:
            for sdk, name in (("cxx", "C++"), ("node", "Node")):
                values = " ".join(f"{r[sdk]['sdk'][phase]['calls_per_s']:.0f}" for r in rounds)
                print(f"  {phase:<10} {name:<4} {values}")
    print()
    print("Ratios are medians of the per-round ratios. C++/Node above 1 for calls/s and below 1 for "
          "latency and CPU favour C++. floor: bench_roundtrip's same three-process path without the "
          "SDK (websocketpp client -> websocketpp relay process -> websocketpp echo server process, "
          "the same frame sizes); its CPU columns are its client, relay (under engine) and echo "
          "server. CPU: each worker process's own user+system time (getrusage / process.cpuUsage), "
          "the engine's and the floor processes' threads from /proc/<pid>/task/*/schedstat, over "
          "the measured calls only.")


def main():
    args = parse_args()
    build = resolve_build_dir(args.build_dir)
    cxx_bench = executable(os.path.join(build, "samples", "bench_roundtrip"), "bench_roundtrip")
    engine_bin = executable(os.path.join(build, "lib", "testing", "iii-test-engine"), "iii-test-engine")
    ensure_node_deps()
    node_bench = os.path.join(NODE_DIR, "bench_roundtrip.mjs")

    common = ["--calls", str(args.calls), "--inflight", str(args.inflight),
              "--payload-bytes", str(args.payload_bytes), "--json"]
    if args.warmup is not None:
        common += ["--warmup", str(args.warmup)]

    load_before = load_average()
    started = utc_now()
    engine = Engine(engine_bin)
    rounds = []
    try:
        target = ["--url", engine.url, "--engine-pid", str(engine.pid)]
        for r in range(args.rounds):
            print(f"bench_compare: round {r + 1}/{args.rounds}: C++", file=sys.stderr)
            cxx_extra = ["--inline-handlers"] if args.inline_handlers else []
            cxx = run_bench("bench_roundtrip", [cxx_bench] + target + common + ["--rounds", "1"] + cxx_extra)
            print(f"bench_compare: round {r + 1}/{args.rounds}: Node", file=sys.stderr)
            node = run_bench("bench_roundtrip.mjs", ["node", node_bench] + target + common, cwd=NODE_DIR)
            if not engine.alive():
                fail("iii-test-engine exited during the run: " + "\n".join(engine.tail))
            rounds.append({"cxx": cxx, "node": node})
    finally:
        engine.stop()
    load_after = load_average()

    med = {path: medians(rounds, path) for path in ("cxx", "node", "floor")}
    ratios = {pair: median_ratios(rounds, *pair) for pair in (("cxx", "node"), ("cxx", "floor"), ("node", "floor"))}
    node_label = rounds[0]["node"]["config"].get("sdk", "iii-sdk")
    cxx_label = "iii-cpp (samples/bench_roundtrip" + (", --inline-handlers)" if args.inline_handlers else ")")
    prov = provenance(rounds, load_before, load_after, started)
    if args.json:
        print(json.dumps({"engine_url": engine.url, "rounds": rounds, "medians": med,
                          "ratios": {f"{a}_to_{b}": v for (a, b), v in ratios.items()},
                          "load_average": {"before": load_before, "after": load_after},
                          "provenance": prov}))
    else:
        print_table(args, engine.url, rounds, med, ratios, cxx_label, node_label, load_before, load_after, prov)
    return 0


if __name__ == "__main__":
    sys.exit(main())
