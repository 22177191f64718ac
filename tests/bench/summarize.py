#!/usr/bin/env python3
"""Turns holdfast-bench JSON output into the Markdown table of docs/benchmarks.md.

Usage: summarize.py RESULTS.json [MORE.json ...]

Takes the median aggregate of every benchmark (run holdfast-bench with
--benchmark_repetitions=N --benchmark_out_format=json). Given several files
(separate runs of the same binary), each figure is the median over the runs
of their medians, and the TSC cycles column shows the range across runs.
"""
import collections
import json
import statistics
import sys

TARGET_NS = 67.2  # 64-byte frames at 10 GbE: (64 + 20) bytes * 8 / 10 Gb/s


def medians(path):
    with open(path) as f:
        data = json.load(f)
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median":
            yield b


def main(paths):
    runs = collections.OrderedDict()
    for path in paths:
        for b in medians(path):
            runs.setdefault(b["run_name"], []).append(b)

    print("| benchmark | ns/pkt | TSC cycles/pkt | Mpps | vs 67 ns | preempted chunks |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, bs in runs.items():

        def med(key):
            return statistics.median(b[key] for b in bs)

        ns = med("ns_per_pkt")
        cycles = f"{med('cycles_per_pkt'):.0f}"
        if len(bs) > 1:
            lo = min(b["cycles_per_pkt"] for b in bs)
            hi = max(b["cycles_per_pkt"] for b in bs)
            cycles += f" ({lo:.0f}-{hi:.0f})"
        # The target is for established traffic; a SYN is a new connection.
        ratio = f"{ns / TARGET_NS:.2f}x" if name.startswith("established") else "-"
        label = name.replace("/iterations:", "/it:")
        print(
            f"| {label} | {ns:.1f} | {cycles} | {med('Mpps'):.2f} | {ratio} "
            f"| {100 * med('chunks_dropped'):.1f}% |"
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
