#!/usr/bin/env python3
"""Checks that the committed synthetic captures and the demo capture are
exactly what their generators produce.

    generator_test.py --pcaps DIR

Runs pcaps/gen_synthetic.py into a temporary directory and
pcaps/make_demo.py from the committed real/demo-traffic.*,
real/ftp-active.* and real/sip-udp.*, and requires
every file to be byte-identical to the committed one (and the synthetic
directory to hold no file the generator does not write). The committed
files were generated in another run, at another time: equal bytes show
the generators deterministic and that nobody edited a capture or an
expected file by hand. Needs scapy (Debian: python3-scapy); without it the test is
skipped (exit 77).
"""

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile

SKIP = 77


def differences(dir_a, dir_b):
    a, b = sorted(os.listdir(dir_a)), sorted(os.listdir(dir_b))
    out = ["only in %s: %s" % (dir_a, f) for f in a if f not in b]
    out += ["only in %s: %s" % (dir_b, f) for f in b if f not in a]
    for f in a:
        if f in b and not filecmp.cmp(os.path.join(dir_a, f), os.path.join(dir_b, f), shallow=False):
            out.append("%s differs" % f)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pcaps", required=True)
    args = ap.parse_args()
    python = sys.executable
    probe = subprocess.run([python, "-c", "import scapy"], capture_output=True)
    if probe.returncode != 0:
        print("SKIP: %s cannot import scapy (apt-get install python3-scapy)" % python)
        return SKIP
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    problems = []
    with tempfile.TemporaryDirectory(prefix="holdfast-gen-test.") as tmp:
        synthetic = os.path.join(tmp, "synthetic")
        subprocess.run([python, os.path.join(args.pcaps, "gen_synthetic.py"), "--out-dir", synthetic],
                       check=True, env=env)
        problems += ["committed pcaps/synthetic vs generated: " + d
                     for d in differences(os.path.join(args.pcaps, "synthetic"), synthetic)]
        demo = os.path.join(tmp, "demo")
        os.mkdir(demo)
        subprocess.run([python, os.path.join(args.pcaps, "make_demo.py"),
                        "--traffic", os.path.join(args.pcaps, "real", "demo-traffic.pcap"),
                        "--traffic-expected", os.path.join(args.pcaps, "real", "demo-traffic.expected.jsonl"),
                        "--ftp", os.path.join(args.pcaps, "real", "ftp-active.pcap"),
                        "--ftp-expected", os.path.join(args.pcaps, "real", "ftp-active.expected.jsonl"),
                        "--sip", os.path.join(args.pcaps, "real", "sip-udp.pcap"),
                        "--sip-expected", os.path.join(args.pcaps, "real", "sip-udp.expected.jsonl"),
                        "--out-dir", demo], check=True, env=env)
        for f in ("demo.pcap", "demo.expected.jsonl"):
            if not filecmp.cmp(os.path.join(args.pcaps, f), os.path.join(demo, f), shallow=False):
                problems.append("committed pcaps/%s differs from what make_demo.py writes" % f)
        count = len(os.listdir(synthetic)) // 2
    for p in problems:
        print("FAIL " + p)
    if not problems:
        print("ok   %d synthetic cases and the demo regenerate byte for byte" % count)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
