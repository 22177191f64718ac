#!/usr/bin/env python3
"""Checks holdfast-replay's --out-inside and --out-outside captures.

    split_test.py --replay BIN --pcaps DIR --capture REL:CONFIG [--capture ...]

For each capture (REL and CONFIG relative to DIR), replays it with 1 and 3
workers and checks that --out-outside holds exactly the passed frames that
arrived on the inside port (source address in inside_networks), and
--out-inside exactly the passed frames that arrived on the outside port:
the same bytes and timestamps, in capture order, and nothing else.
"""

import argparse
import ipaddress
import json
import os
import struct
import subprocess
import sys
import tempfile

VLAN_TYPES = (0x8100, 0x88A8, 0x9100)


def source_address(frame):
    """The IP source address of an Ethernet frame (VLAN tags skipped), or
    None for a frame without one."""
    off = 12
    etype = struct.unpack("!H", frame[off:off + 2])[0]
    while etype in VLAN_TYPES:
        off += 4
        etype = struct.unpack("!H", frame[off:off + 2])[0]
    l3 = off + 2
    if etype == 0x0800:
        return ipaddress.IPv4Address(frame[l3 + 12:l3 + 16])
    if etype == 0x86DD:
        return ipaddress.IPv6Address(frame[l3 + 8:l3 + 24])
    return None


def check(args, read_pcap, rel, config_rel, workers, tmp):
    capture = os.path.join(args.pcaps, rel)
    config = os.path.join(args.pcaps, config_rel)
    with open(config) as fh:
        inside_nets = [ipaddress.ip_network(c) for c in json.load(fh).get("inside_networks", [])]
    out_in = os.path.join(tmp, "inside.pcap")
    out_out = os.path.join(tmp, "outside.pcap")
    verdicts = os.path.join(tmp, "verdicts.jsonl")
    subprocess.run([args.replay, "--config", config, "--pcap", capture, "--verdicts", verdicts,
                    "--out-inside", out_in, "--out-outside", out_out, "--workers", str(workers),
                    "--quiet"], check=True)
    frames = read_pcap(capture)
    with open(verdicts) as fh:
        passed = [json.loads(line)["verdict"] == "pass" for line in fh]
    if len(passed) != len(frames):
        return ["%d verdicts for %d frames" % (len(passed), len(frames))]
    want_out, want_in = [], []  # (frame number, timestamp, bytes)
    for n, ((ts, data), ok) in enumerate(zip(frames, passed), start=1):
        if not ok:
            continue
        src = source_address(data)
        inside = src is not None and any(src in net for net in inside_nets
                                         if net.version == src.version)
        (want_out if inside else want_in).append((n, ts, data))
    problems = []
    for name, path, want in (("--out-outside", out_out, want_out), ("--out-inside", out_in, want_in)):
        got = read_pcap(path)
        if len(got) != len(want):
            problems.append("%s has %d frames, expected %d" % (name, len(got), len(want)))
        for k, ((ts, data), (n, wts, wdata)) in enumerate(zip(got, want), start=1):
            if data != wdata or ts != wts:
                problems.append("%s frame %d is not input frame %d" % (name, k, n))
                break
    if not want_out or not want_in:
        problems.append("the capture must pass frames in both directions to test anything")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replay", required=True)
    ap.add_argument("--pcaps", required=True)
    ap.add_argument("--capture", action="append", required=True, help="REL:CONFIG")
    args = ap.parse_args()
    sys.dont_write_bytecode = True
    sys.path.insert(0, args.pcaps)
    from pcapfile import read_pcap

    failed = False
    for spec in args.capture:
        rel, config_rel = spec.split(":")
        for workers in (1, 3):
            with tempfile.TemporaryDirectory(prefix="holdfast-split-test.") as tmp:
                problems = check(args, read_pcap, rel, config_rel, workers, tmp)
            if problems:
                failed = True
                print("FAIL %s, %d worker%s:" % (rel, workers, "" if workers == 1 else "s"))
                for p in problems:
                    print("  " + p)
            else:
                print("ok   %s, %d worker%s: passed frames split by arrival port" % (
                    rel, workers, "" if workers == 1 else "s"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
