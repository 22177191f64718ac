#!/usr/bin/env python3
"""Replays one capture through holdfast-replay and compares its verdicts
with the capture's expected file, for several worker counts.

    replay_test.py --replay BIN --pcaps DIR --capture REL --config REL [--workers 1,2,3]

REL paths are relative to DIR (pcaps/). --workers is the list of worker
counts (default 1,2,3; a capture's workers=... column in captures.txt
restricts it, see tests/integration/meson.build). The expected file is the
capture's name with .pcap replaced by .expected.jsonl. Verdicts must match line by
line for every worker count (connection IDs follow capture order whatever
the number of pipelines). On a mismatch the first differing frames are
printed with their frame numbers (Wireshark's numbering) and the test
fails.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

SHOW = 10  # differing frames printed per worker count


def load(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def describe(v):
    if v is None:
        return "(no verdict)"
    text = "%s %s conn=%s" % (v["verdict"], v["reason"], conn_text(v["conn"]))
    if "master" in v:
        text += " master=%s" % conn_text(v["master"])
    return text


def conn_text(conn):
    if conn == 0:
        return "0"
    return "%d<<40|%d" % (conn >> 40, conn & ((1 << 40) - 1))


def compare(expected, actual):
    """Returns the list of (frame number, expected, actual) that differ."""
    diffs = []
    for i in range(max(len(expected), len(actual))):
        e = expected[i] if i < len(expected) else None
        a = actual[i] if i < len(actual) else None
        if e != a:
            diffs.append((i + 1, e, a))
    return diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replay", required=True)
    ap.add_argument("--pcaps", required=True)
    ap.add_argument("--capture", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--workers", default="1,2,3",
                    help="comma-separated worker counts (default 1,2,3)")
    args = ap.parse_args()
    try:
        counts = [int(w) for w in args.workers.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        ap.error("--workers %r: expected positive counts separated by commas" % args.workers)

    capture = os.path.join(args.pcaps, args.capture)
    config = os.path.join(args.pcaps, args.config)
    expected_path = capture[:-len(".pcap")] + ".expected.jsonl"
    expected = load(expected_path)
    failed = False
    shown = None  # the differences last printed
    with tempfile.TemporaryDirectory(prefix="holdfast-replay-test.") as tmp:
        for workers in counts:
            out = os.path.join(tmp, "verdicts-%d.jsonl" % workers)
            cmd = [args.replay, "--config", config, "--pcap", capture, "--verdicts", out,
                   "--workers", str(workers), "--quiet"]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                print("FAIL %s, %d workers: holdfast-replay exited %d\n%s%s" % (
                    args.capture, workers, run.returncode, run.stdout, run.stderr))
                failed = True
                continue
            actual = load(out)
            diffs = compare(expected, actual)
            if not diffs:
                print("ok   %s, %d worker%s: %d frames as expected" % (
                    args.capture, workers, "" if workers == 1 else "s", len(expected)))
                continue
            failed = True
            print("FAIL %s, %d worker%s: %d of %d frames differ from %s" % (
                args.capture, workers, "" if workers == 1 else "s", len(diffs),
                max(len(expected), len(actual)), os.path.relpath(expected_path, args.pcaps)))
            if diffs == shown:
                print("  (the same frames as above)")
                continue
            shown = diffs
            for frame, e, a in diffs[:SHOW]:
                label = "frame %d:" % frame
                print("  %s expected %s" % (label, describe(e)))
                print("  %s actual   %s" % (" " * len(label), describe(a)))
            if len(diffs) > SHOW:
                print("  ... and %d more" % (len(diffs) - SHOW))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
