#!/usr/bin/env python3
"""Checks pcaps/captures.txt and the expected files, without the firewall.

    manifest_test.py --pcaps DIR --verdict-header dataplane/verdict.h

Every .pcap under DIR is listed in captures.txt exactly once, each line
"CAPTURE.pcap CONFIG" with an optional third column "workers=N[,N...]"
(distinct worker counts from 1 to 64, the replay and crash tests' worker
counts for that capture); every listed capture, its config and its
expected file exist; the expected file has one
line per frame, numbered 1..N in order; every reason is one the firewall
defines (dataplane/verdict.h), with the pass/drop that the header gives it;
connection IDs are 0 exactly for the reasons that name no connection
(layer 2, untracked, malformed) and otherwise carry epoch 1; connections
are numbered 1, 2, ... in the order their new_connection and expected
lines come, and no line names a connection before it was opened. An
expected line (an FTP data connection or a SIP media flow) carries
"master", a connection opened before it (its control or signalling
connection); no other line does. A sip_malformed line names the signalling
connection the message was dropped from.
"""

import argparse
import json
import os
import re
import sys

# Reasons whose packets never belong to a connection.
NO_CONNECTION = {"untracked", "arp", "non_ip", "ipv6_nd", "arp_denied", "non_ip_denied",
                 "ipv6_nd_denied", "ipv6_nd_bad_hop_limit", "policy_deny", "default_deny",
                 "tcp_mid_stream", "icmp_error_unrelated", "frag_without_first"}
# Reasons whose packets always belong to one.
CONNECTION = {"new_connection", "expected", "established", "related", "fragment", "tcp_invalid_state",
              "tcp_out_of_window", "tcp_rst_out_of_window", "tcp_bad_synack", "sip_malformed"}


MAX_WORKERS = 64  # kMaxWorkers, dataplane/steering.h


def workers_problem(column):
    """What is wrong with a captures.txt third column (None if nothing):
    "workers=" and distinct worker counts from 1 to MAX_WORKERS, separated
    by commas."""
    if not column.startswith("workers="):
        return "third column %r: expected workers=N[,N...]" % column
    counts = column[len("workers="):].split(",")
    if not all(re.fullmatch(r"[1-9][0-9]*", c) for c in counts):
        return "%s: expected workers=N[,N...] with positive counts" % column
    counts = [int(c) for c in counts]
    if max(counts) > MAX_WORKERS:
        return "%s: at most %d workers" % (column, MAX_WORKERS)
    if len(set(counts)) != len(counts):
        return "%s: a worker count listed twice" % column
    return None


def reasons_from_header(path):
    text = open(path).read()
    body = text[text.index("#define HOLDFAST_REASONS(X)"):text.index("enum class Reason")]
    return {name: passes == "true" for name, passes in re.findall(r"X\((\w+), (true|false)\)", body)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pcaps", required=True)
    ap.add_argument("--verdict-header", required=True)
    args = ap.parse_args()
    sys.dont_write_bytecode = True
    sys.path.insert(0, args.pcaps)
    from pcapfile import read_pcap

    reasons = reasons_from_header(args.verdict_header)
    problems = []
    listed = []
    with open(os.path.join(args.pcaps, "captures.txt")) as fh:
        for n, line in enumerate(fh, start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            if len(fields) not in (2, 3) or not fields[0].endswith(".pcap"):
                problems.append("captures.txt:%d: expected \"CAPTURE.pcap CONFIG [workers=N[,N...]]\""
                                % n)
                continue
            if len(fields) == 3 and workers_problem(fields[2]):
                problems.append("captures.txt:%d: %s" % (n, workers_problem(fields[2])))
                continue
            listed.append((fields[0], fields[1]))

    names = [c for c, _ in listed]
    on_disk = sorted(os.path.relpath(os.path.join(root, f), args.pcaps)
                     for root, _, files in os.walk(args.pcaps) for f in files if f.endswith(".pcap"))
    for c in sorted(set(names)):
        if names.count(c) > 1:
            problems.append("%s is listed %d times" % (c, names.count(c)))
    for c in on_disk:
        if c not in names:
            problems.append("%s is not listed in captures.txt, so no test replays it" % c)

    checked = 0
    for capture, config in listed:
        cpath = os.path.join(args.pcaps, capture)
        epath = cpath[:-len(".pcap")] + ".expected.jsonl"
        if not os.path.exists(cpath):
            problems.append("%s: listed but missing" % capture)
            continue
        if not os.path.exists(os.path.join(args.pcaps, config)):
            problems.append("%s: config %s is missing" % (capture, config))
        if not os.path.exists(epath):
            problems.append("%s: no expected file %s" % (capture, os.path.relpath(epath, args.pcaps)))
            continue
        frames = len(read_pcap(cpath))
        with open(epath) as fh:
            lines = [line for line in fh if line.strip()]
        if len(lines) != frames:
            problems.append("%s: %d frames but %d expected verdicts" % (capture, frames, len(lines)))
        opened = 0  # connections opened so far: they are numbered 1, 2, ... in order
        for i, line in enumerate(lines, start=1):
            where = "%s frame %d" % (os.path.relpath(epath, args.pcaps), i)
            v = json.loads(line)
            keys = {"index", "verdict", "reason", "conn"}
            if v.get("reason") == "expected":
                keys.add("master")
            if set(v) != keys:
                problems.append("%s: keys %s" % (where, sorted(v)))
                continue
            if v["index"] != i:
                problems.append("%s: index %s" % (where, v["index"]))
            if v["reason"] not in reasons:
                problems.append("%s: unknown reason %s" % (where, v["reason"]))
                continue
            if (v["verdict"] == "pass") != reasons[v["reason"]]:
                problems.append("%s: %s is a %s reason, not %s" % (
                    where, v["reason"], "pass" if reasons[v["reason"]] else "drop", v["verdict"]))
            if v["reason"] in NO_CONNECTION and v["conn"] != 0:
                problems.append("%s: %s belongs to no connection, conn must be 0" % (where, v["reason"]))
            if v["reason"] in CONNECTION and v["conn"] >> 40 != 1:
                problems.append("%s: %s needs a connection ID (epoch 1)" % (where, v["reason"]))
            k = v["conn"] & ((1 << 40) - 1)
            if v["reason"] in ("new_connection", "expected"):
                opened += 1
                if k != opened:
                    problems.append("%s: connection %d opened, expected %d" % (where, k, opened))
            if "master" in v:
                m = v["master"] & ((1 << 40) - 1)
                if v["master"] >> 40 != 1 or not 1 <= m < opened:
                    problems.append("%s: master %d, not a connection opened before" % (where, m))
            elif v["conn"] != 0 and not 1 <= k <= opened:
                problems.append("%s: names connection %d, not opened before" % (where, k))
        checked += 1

    for p in problems:
        print("FAIL " + p)
    print("%d captures listed, %d on disk, %d expected files checked, %d problems" % (
        len(listed), len(on_disk), checked, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
