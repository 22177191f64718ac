#!/usr/bin/env python3
"""Turns holdfast-bench JSON output into the Markdown table of docs/benchmarks.md.

Usage: summarize.py RESULTS.json [MORE.json ...]

Takes the median aggregate of every benchmark (run holdfast-bench with
--benchmark_repetitions=N and --benchmark_out_format=json); with several
files, each row says which file it came from.
"""
import json
import sys

TARGET_NS = 67.2  # 64-byte frames at 10 GbE: (64 + 20) bytes * 8 / 10 Gb/s


def rows(path):
    with open(path) as f:
        data = json.load(f)
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median":
            yield b


def main(paths):
    print("| benchmark | ns/pkt | TSC cycles/pkt | Mpps | vs 67 ns | preempted chunks |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in paths:
        for b in rows(path):
            name = b["run_name"].replace("/iterations:", "/it:")
            if len(paths) > 1:
                name += f" ({path})"
            ns = b["ns_per_pkt"]
            # The target is for established traffic; a SYN is a new connection.
            ratio = f"{ns / TARGET_NS:.2f}x" if name.startswith("established") else "-"
            print(
                f"| {name} | {ns:.1f} | {b['cycles_per_pkt']:.0f} | {b['Mpps']:.2f} "
                f"| {ratio} | {100 * b['chunks_dropped']:.1f}% |"
            )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
