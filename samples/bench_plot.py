#!/usr/bin/python3
"""Draws benchmark results into one PNG: latency distributions (CDF) and throughput.

  /usr/bin/python3 samples/bench_plot.py RESULT.json [RESULT.json ...] [-o bench.png] [--title T]

Reads the --json output of bench_roundtrip, bench_channels and bench_typed, of
samples/node/bench_roundtrip.mjs, and of samples/bench_compare.py (every round), one result per
file. Latency: one panel per phase (sequential, pipelined), the CDF of round-trip latency in µs
on a log axis, one curve per SDK and file. Throughput: bars per phase (calls/s), per path
(channels MB/s) or per step (typed messages/s). Each file's legend names what its provenance
says (SDK, version, revision); the footer gives the compiler, build type, CPU count and the
load average during the run, so a noisy result is visible as such.

Needs matplotlib (Debian: python3-matplotlib, which is why this runs with /usr/bin/python3).
"""

import argparse
import json
import os
import sys

PHASES = ["sequential", "pipelined"]


def fail(message):
    print(f"bench_plot: {message}", file=sys.stderr)
    sys.exit(1)


def describe(prov, fallback):
    if not prov:
        return fallback
    return f"{prov.get('sdk', '?')} {prov.get('sdk_version', '?')} ({prov.get('git_revision', '?')})"


def footer_of(prov):
    if not prov:
        return None
    load = lambda key: f"{prov[key][0]:.2f}" if prov.get(key) else "?"
    return (f"{describe(prov, '?')}: {prov.get('compiler', '?')}, {prov.get('build_type', '?')}, "
            f"{prov.get('cpu_count', '?')} CPUs, load {load('load_before')} → {load('load_after')}")


class Collected:
    def __init__(self):
        self.cdfs = {phase: [] for phase in PHASES}  # phase -> [(label, q[], us[])]
        self.bars = {}  # unit -> [(group, label, value)]
        self.footers = []

    def bar(self, unit, group, label, value):
        self.bars.setdefault(unit, []).append((group, label, value))

    def roundtrip(self, data, label, path_key="sdk"):
        """A bench_roundtrip-shaped result (C++ or Node): phases under data[path_key]."""
        for phase in PHASES:
            p = data.get(path_key, {}).get(phase)
            if not p:
                continue
            cdf = p.get("latency_cdf_us")
            if cdf:
                self.cdfs[phase].append((label, cdf["q"], cdf["us"]))
            else:  # older results: the three percentiles only
                lat = p["latency_us"]
                self.cdfs[phase].append((label, [0.5, 0.99, 0.999], [lat["p50"], lat["p99"], lat["p999"]]))
            self.bar("calls/s", phase, label, p["calls_per_s"])

    def add(self, data, name):
        prov = data.get("provenance")
        label = describe(prov, name)
        if "rounds" in data and "medians" in data:  # bench_compare.py
            for i, r in enumerate(data["rounds"]):
                suffix = f" round {i + 1}" if len(data["rounds"]) > 1 else ""
                for side in ("cxx", "node"):
                    side_prov = r[side].get("provenance")
                    self.roundtrip(r[side], describe(side_prov, f"{name} {side}") + suffix)
                if "floor" in r["cxx"]:  # bench_roundtrip's SDK-less three-process path
                    self.roundtrip(r["cxx"], f"floor: websocketpp relay ({name}){suffix}", "floor")
            for side in ("cxx", "node"):
                f = footer_of(data["rounds"][0][side].get("provenance"))
                if f:
                    self.footers.append(f)
            return
        if "baseline" in data:  # bench_roundtrip (C++): SDK, the floor, raw websocketpp
            self.roundtrip(data, label)
            if "floor" in data:
                self.roundtrip(data, f"floor: websocketpp relay ({name})", "floor")
            self.roundtrip(data, f"raw websocketpp ({name})", "baseline")
        elif "sdk" in data and isinstance(data["sdk"], dict) and any(p in data["sdk"] for p in PHASES):
            self.roundtrip(data, label)  # the Node bench
        elif "sdk_to_raw" in data:  # bench_channels
            self.bar("MB/s", "channel", label, data["sdk"]["mb_per_s"])
            self.bar("MB/s", "channel", f"raw websocketpp ({name})", data["raw"]["mb_per_s"])
        elif "steps_ns_per_msg" in data:  # bench_typed
            for step, v in data["steps_ns_per_msg"].items():
                for kind in ("typed", "dynamic", "dynamic_mapped"):
                    ns = v.get(f"{kind}_ns")
                    if ns:
                        self.bar("messages/s", step, f"{kind} ({label})", 1e9 / ns)
        else:
            fail(f"{name}: not a result of a known bench")
        f = footer_of(prov)
        if f:
            self.footers.append(f)


def draw(c, out, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cdf_phases = [p for p in PHASES if c.cdfs[p]]
    panels = len(cdf_phases) + len(c.bars)
    if panels == 0:
        fail("nothing to draw")
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 4.0), squeeze=False)
    axes = list(axes[0])
    for ax, phase in zip(axes, cdf_phases):
        for label, q, us in c.cdfs[phase]:
            ax.step(us, [100 * x for x in q], where="post", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("round-trip latency (µs, log)")
        ax.set_ylabel("calls at or below (%)")
        ax.set_ylim(0, 100.5)
        ax.set_title(f"latency CDF, {phase}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax, (unit, bars) in zip(axes[len(cdf_phases):], c.bars.items()):
        groups = list(dict.fromkeys(g for g, _, _ in bars))
        labels = list(dict.fromkeys(label for _, label, _ in bars))
        width = 0.8 / max(len(labels), 1)
        for i, label in enumerate(labels):
            xs, ys = [], []
            for gi, g in enumerate(groups):
                for bg, bl, v in bars:
                    if bg == g and bl == label:
                        xs.append(gi + i * width - 0.4 + width / 2)
                        ys.append(v)
            rects = ax.bar(xs, ys, width, label=label)
            ax.bar_label(rects, fmt="%.0f", fontsize=6)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylabel(unit)
        ax.set_title(f"throughput ({unit})")
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_ylim(0, max(v for _, _, v in bars) * 1.3)  # room for the legend above the bars
        ax.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title)
    footer = "\n".join(dict.fromkeys(c.footers))
    if footer:
        fig.text(0.01, 0.01, footer, fontsize=7, va="bottom", ha="left")
    bottom = 0.16 + 0.035 * max(footer.count("\n"), 0) if footer else 0.12
    fig.tight_layout(rect=(0, bottom - 0.06, 1, 0.95 if title else 1))
    fig.savefig(out, dpi=72)
    print(f"bench_plot: wrote {out}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+", help="bench JSON files (one --json output each)")
    p.add_argument("-o", "--output", default="bench.png", help="PNG to write (default bench.png)")
    p.add_argument("--title", help="figure title")
    args = p.parse_args()
    c = Collected()
    for path in args.results:
        try:
            with open(path) as f:
                text = f.read().strip().splitlines()
            data = json.loads(text[-1]) if text else fail(f"{path}: empty")
        except (OSError, json.JSONDecodeError) as e:
            fail(f"{path}: {e}")
        c.add(data, os.path.splitext(os.path.basename(path))[0])
    draw(c, args.output, args.title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
