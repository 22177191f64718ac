#!/usr/bin/env python3
"""Turns holdfast-bench JSON output into the Markdown tables of docs/benchmarks.md.

Run holdfast-bench with --benchmark_repetitions=N --benchmark_out_format=json
(--benchmark_report_aggregates_only=true is fine); every table uses the
median aggregate of each benchmark in each file. Given several files
(separate runs), a figure is the median over the files of their medians,
and ranges are across files.

  summarize.py RUN.json [MORE.json ...]
      the packet-path table: ns, TSC cycles (range), Mpps, vs 67 ns,
      preempted chunks
  summarize.py --compare A.json [...] --vs B.json [...]
      A against B, the files paired in the order given (run i of A with run
      i of B, taken alternately in one session, tests/bench/ab.sh): TSC
      cycles per packet of each, and B/A per pair (median, range)
  summarize.py --ckpt RUN.json [...]
      checkpointing on against off within each file (same binary, same
      table and frames, random interleaving): on/off per file (median,
      range), and the checkpoint writes per packet
  summarize.py --recovery RUN.json [...]
      recovery time per phase, per connection count and worker counts

Cycles are cycles_per_pkt (chunks a preemption made more than twice the
median left out) except for new_connections/churn, whose cost comes in
waves (the cleaner meets runs of expired entries) that the preemption
filter would drop: cycles_per_pkt_all there.
"""
import collections
import json
import re
import statistics
import sys

TARGET_NS = 67.2  # 64-byte frames at 10 GbE: (64 + 20) bytes * 8 / 10 Gb/s


def medians(path):
    with open(path) as f:
        data = json.load(f)
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median":
            yield b


def short(name):
    # "cleaner:64" (a fixed budget per burst, before the paced cleaner) and
    # "cleaner" (paced) are the same benchmark of two versions.
    name = re.sub(r"/iterations:\d+", "", name)
    name = re.sub(r"/manual_time", "", name)
    return re.sub(r"/cleaner:64$", "/cleaner", name)


def metric(name):
    return "cycles_per_pkt_all" if "churn" in name else "cycles_per_pkt"


def load(paths):
    """name -> [median aggregate of each file]; files -> {name: aggregate}."""
    runs = collections.OrderedDict()
    per_file = []
    for path in paths:
        here = {}
        for b in medians(path):
            name = short(b["run_name"])
            runs.setdefault(name, []).append(b)
            here[name] = b
        per_file.append(here)
    return runs, per_file


def med_range(values, fmt):
    m = statistics.median(values)
    if len(values) == 1:
        return fmt % m
    return (fmt + " (" + fmt + "-" + fmt + ")") % (m, min(values), max(values))


def packet_table(paths):
    runs, _ = load(paths)
    print("| benchmark | ns/pkt | TSC cycles/pkt | Mpps | vs 67 ns | preempted chunks |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, bs in runs.items():
        if "cycles_per_pkt" not in bs[0]:
            continue
        key = metric(name)
        tsc_ghz = bs[0]["cycles_per_pkt"] / bs[0]["ns_per_pkt"] if bs[0]["ns_per_pkt"] else 2.0
        ns = statistics.median(b[key] for b in bs) / tsc_ghz
        cycles = med_range([b[key] for b in bs], "%.0f")
        # The target is for established traffic; a SYN is a new connection.
        ratio = f"{ns / TARGET_NS:.2f}x" if name.startswith("established") else "-"
        drop = statistics.median(b["chunks_dropped"] for b in bs)
        print(f"| {name} | {ns:.1f} | {cycles} | {1e3 / ns:.2f} | {ratio} | {100 * drop:.1f}% |")


def compare(a_paths, b_paths):
    if len(a_paths) != len(b_paths):
        sys.exit("--compare and --vs need as many files each (runs taken in pairs)")
    _, a_files = load(a_paths)
    _, b_files = load(b_paths)
    names = [n for n in a_files[0] if all(n in f for f in a_files + b_files)]
    print("| benchmark | A: TSC cycles/pkt | B: TSC cycles/pkt | B/A (per pair) | B: Mpps |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        key = metric(name)
        a = [f[name][key] for f in a_files]
        b = [f[name][key] for f in b_files]
        ratios = [y / x for x, y in zip(a, b)]
        tsc_ghz = b_files[0][name]["cycles_per_pkt"] / b_files[0][name]["ns_per_pkt"]
        mpps = 1e3 * tsc_ghz / statistics.median(b)
        print(f"| {name} | {med_range(a, '%.0f')} | {med_range(b, '%.0f')} "
              f"| {med_range(ratios, '%.2f')} | {mpps:.2f} |")


# Checkpointing on -> the same benchmark off.
CKPT_PAIRS = [
    (r"^(established/conns:\d+/csum:on)/ckpt(/lap:1s)?$", r"\1"),
    (r"^(established_data/conns:\d+)/ckpt:on(/lap:1s)?$", r"\1/ckpt:off"),
    (r"^(new_connections/fill)/ckpt(:cold)?$", r"\1"),
    (r"^(new_connections/churn)/ckpt$", r"\1"),
]


def ckpt(paths):
    runs, files = load(paths)
    print("| benchmark (checkpointing on) | off: TSC cycles/pkt | on: TSC cycles/pkt "
          "| on/off | base writes/pkt | TCP writes/pkt |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in runs:
        off = None
        for pattern, repl in CKPT_PAIRS:
            if re.match(pattern, name):
                off = re.sub(pattern, repl, name)
        if off is None or off not in runs:
            continue
        key = metric(name)
        pairs = [(f[off][key], f[name][key]) for f in files if name in f and off in f]
        ratios = [on / o for o, on in pairs]
        base_w = statistics.median(f[name].get("base_writes_per_pkt", float("nan"))
                                   for f in files if name in f)
        tcp_w = statistics.median(f[name].get("tcp_writes_per_pkt", float("nan"))
                                  for f in files if name in f)
        print(f"| {name} | {med_range([p[0] for p in pairs], '%.0f')} "
              f"| {med_range([p[1] for p in pairs], '%.0f')} | {med_range(ratios, '%.3f')} "
              f"| {base_w:.4f} | {tcp_w:.4f} |")


def recovery(paths):
    runs, _ = load(paths)
    phases = ["connections", "layer7", "check", "fragments", "write"]
    print("| benchmark | total ms | " + " | ".join(p + " ms" for p in phases) + " | ns/conn |")
    print("|---|---:|" + "---:|" * len(phases) + "---:|")
    for name, bs in runs.items():
        if not name.startswith("recovery/"):
            continue
        cols = [med_range([b["total_ms"] for b in bs], "%.1f")]
        cols += ["%.1f" % statistics.median(b[p + "_ms"] for b in bs) for p in phases]
        cols.append("%.0f" % statistics.median(b["ns_per_conn"] for b in bs))
        print(f"| {name} | " + " | ".join(cols) + " |")


def main(argv):
    if not argv:
        sys.exit(__doc__)
    if argv[0] == "--compare":
        if "--vs" not in argv:
            sys.exit(__doc__)
        i = argv.index("--vs")
        compare(argv[1:i], argv[i + 1:])
    elif argv[0] == "--ckpt":
        ckpt(argv[1:])
    elif argv[0] == "--recovery":
        recovery(argv[1:])
    else:
        packet_table(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
