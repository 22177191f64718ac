#!/usr/bin/env python3
"""Checks that the real captures' expected files are what the independent
oracle (pcaps/oracle.py, built on tshark's dissection) derives from them.

    oracle_test.py --pcaps DIR

Every capture under real/ listed in captures.txt is run through oracle.py
with its config; the result must equal the committed expected file. Needs
tshark (Debian: tshark); without it the test is skipped (exit 77).
"""

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pcaps", required=True)
    args = ap.parse_args()
    if shutil.which("tshark") is None:
        print("SKIP: tshark is not installed (apt-get install tshark)")
        return SKIP
    listed = []
    with open(os.path.join(args.pcaps, "captures.txt")) as fh:
        for line in fh:
            fields = line.split("#", 1)[0].split()
            if len(fields) == 2 and fields[0].startswith("real/"):
                listed.append(fields)
    failed = False
    with tempfile.TemporaryDirectory(prefix="holdfast-oracle-test.") as tmp:
        for capture, config in listed:
            out = os.path.join(tmp, "expected.jsonl")
            subprocess.run([sys.executable, os.path.join(args.pcaps, "oracle.py"),
                            "--config", os.path.join(args.pcaps, config),
                            "--pcap", os.path.join(args.pcaps, capture), "--out", out], check=True)
            committed = os.path.join(args.pcaps, capture[:-len(".pcap")] + ".expected.jsonl")
            if filecmp.cmp(committed, out, shallow=False):
                print("ok   %s: the oracle gives the committed verdicts" % capture)
            else:
                print("FAIL %s: the oracle's verdicts differ from %s" % (capture, committed))
                failed = True
    if not listed:
        print("FAIL no real captures listed in captures.txt")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
