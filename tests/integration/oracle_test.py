#!/usr/bin/env python3
"""Checks the independent oracle (pcaps/oracle.py): its FTP rules on their
own, and the expected files it derives from the captures.

    oracle_test.py --pcaps DIR

1. Rules (no tshark needed): the FTP contract as the oracle models it,
   line by line: PORT, EPRT, 227 and 229 parsing, the bounce, low-port and
   malformed refusals, multi-line replies, lines across segments, segments
   out of order and retransmitted, overlong lines, the 2-pending limit,
   expiry, consumption, the side check, and the config's modules.ftp.
2. Every capture under real/ listed in captures.txt is run through
   oracle.py with its config; the result must equal the committed expected
   file.
3. Every synthetic FTP case (synthetic/ftp_*) is run through oracle.py
   too: its verdicts, worked out by the oracle's model from tshark's
   dissection, must equal the ones gen_synthetic.py wrote by hand. Two
   derivations that share no code agree.

Parts 2 and 3 need tshark (Debian: tshark); without it they are skipped,
and the test is skipped (exit 77) when part 1 passes.
"""

import argparse
import filecmp
import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def rule_checks(oracle):
    """Returns the failed checks of the FTP rules (descriptions)."""
    failed = []

    def check(what, got, want):
        if got != want:
            failed.append("%s: got %r, want %r" % (what, got, want))

    A = ipaddress.ip_address
    client, server = A("10.0.0.10"), A("198.51.100.20")
    client6, server6 = A("fd00:0:0:1::10"), A("2001:db8:100::20")

    def outcome(line, from_client, announcer):
        a = oracle.parse_announcement(line, from_client, announcer)
        return None if a is None else a[1:]

    # Announcements and refusals.
    check("PORT", outcome(b"PORT 10,0,0,10,195,80", True, client), ("open", client, 50000))
    check("port in lower case", outcome(b"port 10,0,0,10,195,80", True, client), ("open", client, 50000))
    check("PORT to 1024", outcome(b"PORT 10,0,0,10,4,0", True, client), ("open", client, 1024))
    check("PORT to 25", outcome(b"PORT 10,0,0,10,0,25", True, client), ("low_port", client, 25))
    check("PORT bounce", outcome(b"PORT 10,0,0,80,195,80", True, client),
          ("bounce", A("10.0.0.80"), 50000))
    check("PORT 5 numbers", outcome(b"PORT 10,0,0,10,195", True, client), ("malformed", None, None))
    check("PORT 300", outcome(b"PORT 10,0,0,10,300,10", True, client), ("malformed", None, None))
    check("PORT address 266", outcome(b"PORT 10,0,0,266,195,80", True, client),
          ("malformed", None, None))
    check("EPRT 1", outcome(b"EPRT |1|10.0.0.10|50000|", True, client), ("open", client, 50000))
    check("EPRT 2", outcome(b"EPRT |2|fd00:0:0:1::10|50000|", True, client6), ("open", client6, 50000))
    check("EPRT other delimiter", outcome(b"EPRT !1!10.0.0.10!50000!", True, client),
          ("open", client, 50000))
    check("EPRT 2 on IPv4", outcome(b"EPRT |2|fd00:0:0:1::10|50000|", True, client),
          ("bounce", client6, 50000))
    check("EPRT af 3", outcome(b"EPRT |3|10.0.0.10|50000|", True, client), ("malformed", None, None))
    check("EPRT 1 with IPv6", outcome(b"EPRT |1|fd00::10|50000|", True, client),
          ("malformed", None, None))
    check("EPRT low port", outcome(b"EPRT |1|10.0.0.10|1023|", True, client), ("low_port", client, 1023))
    check("227", outcome(b"227 Entering Passive Mode (198,51,100,20,195,80).", False, server),
          ("open", server, 50000))
    check("227 without parentheses", outcome(b"227 =198,51,100,20,195,80", False, server),
          ("open", server, 50000))
    check("227 bounce", outcome(b"227 Entering Passive Mode (203,0,113,66,195,80)", False, server),
          ("bounce", A("203.0.113.66"), 50000))
    check("227 without numbers", outcome(b"227 Entering Passive Mode", False, server),
          ("malformed", None, None))
    check("227- line", outcome(b"227-Entering Passive Mode (198,51,100,20,195,80)", False, server), None)
    check("padded 227 line", outcome(b" 227 Entering Passive Mode (198,51,100,20,195,80)", False,
                                     server), None)
    check("227 from the client", outcome(b"227 (198,51,100,20,195,80)", True, client), None)
    check("PORT from the server", outcome(b"PORT 198,51,100,20,195,80", False, server), None)
    check("229", outcome(b"229 Entering Extended Passive Mode (|||50000|)", False, server6),
          ("open", server6, 50000))
    check("229 low port", outcome(b"229 Entering Extended Passive Mode (|||1023|)", False, server),
          ("low_port", server, 1023))
    check("229 without delimiters", outcome(b"229 Entering Extended Passive Mode (50000)", False,
                                            server), ("malformed", None, None))
    check("229 mixed delimiters", outcome(b"229 Entering Extended Passive Mode (|!|50000|)", False,
                                          server), ("malformed", None, None))

    # Lines from a byte stream in sequence order.
    def direction():
        d = oracle.FtpDirection()
        d.next = 1000
        return d

    d = direction()
    check("split line, part 1", d.feed(1000, b"PO", 1)[0], [])
    check("split line, part 2", d.feed(1002, b"RT 1,2,3,4,5,6\r", 2)[0], [])
    check("split line, LF", d.feed(1017, b"\n", 3)[0], [b"PORT 1,2,3,4,5,6"])
    d = direction()
    check("two lines in one segment", d.feed(1000, b"NOOP\r\nPWD\r\n", 1), ([b"NOOP", b"PWD"], True))
    check("retransmission", d.feed(1000, b"NOOP\r\nPWD\r\n", 2), ([], False))
    check("repacketised", d.feed(1006, b"PWD\r\nSYST\r\n", 3)[0], [b"SYST"])
    d = direction()
    check("ahead of a gap", d.feed(1006, b"PWD\r\n", 1), ([], False))
    check("gap filled", d.feed(1000, b"NOOP\r\n", 2)[0], [b"NOOP", b"PWD"])
    d = direction()
    d.feed(1010, b"x\r\n", 1)
    try:
        d.feed(1020, b"y\r\n", 2)
        failed.append("a second held segment is not refused")
    except oracle.NotModeled:
        pass
    d = direction()
    long_line = b"227 " + b"." * 600 + b" (198,51,100,20,195,80)"
    check("overlong line skipped", d.feed(1000, long_line + b"\r\nPWD\r\n", 1), ([b"PWD"], False))
    for n in (510, 512, 514):
        try:
            direction().feed(1000, b"x" * n + b"\r\n", 1)
            failed.append("a %d-byte line is not refused" % n)
        except oracle.NotModeled:
            pass
    check("516-byte line skipped", direction().feed(1000, b"x" * 516 + b"\r\n", 1)[0], [])
    check("508-byte line read", direction().feed(1000, b"x" * 508 + b"\r\n", 1)[0], [b"x" * 508])

    # Expectations.
    def tracker(timeout=60):
        policy = oracle.Policy({"inside_networks": ["10.0.0.0/24"],
                                "modules": {"ftp": {"expectation_timeout": timeout}}})
        t = oracle.FtpTracker(policy)
        t.opened(("tcp", 0), 1, "10.0.0.10", "198.51.100.20", "inside", 999)
        return t, t.controls[("tcp", 0)]

    t, c = tracker()
    for i, port in enumerate((50001, 50002, 50003)):
        t.line(c, 0, b"PORT 10,0,0,10,%d,%d" % (port >> 8, port & 0xff), 10 + i, 1.0)
    check("2 pending: the oldest replaced",
          t.match("198.51.100.20", "10.0.0.10", 50001, "outside", 2.0, 20), None)
    e = t.match("198.51.100.20", "10.0.0.10", 50003, "outside", 2.0, 21)
    check("2 pending: the newest open", e and (e["frame"], e["control"].conn), (12, 1))
    check("consumed once", t.match("198.51.100.20", "10.0.0.10", 50003, "outside", 2.0, 22), None)
    check("wrong side", t.match("198.51.100.20", "10.0.0.10", 50002, "inside", 2.0, 23), None)
    check("other direction", t.match("10.0.0.10", "198.51.100.20", 50002, "inside", 2.0, 24), None)
    check("right side", t.match("198.51.100.20", "10.0.0.10", 50002, "outside", 2.0, 25) is not None,
          True)
    t, c = tracker(timeout=5)
    t.line(c, 1, b"229 Entering Extended Passive Mode (|||50010|)", 10, 100.0)
    t.line(c, 1, b"229 Entering Extended Passive Mode (|||50011|)", 11, 100.0)
    check("expired", t.match("10.0.0.10", "198.51.100.20", 50010, "inside", 105.5, 12), None)
    try:
        t.match("10.0.0.10", "198.51.100.20", 50011, "inside", 105.005, 13)
        failed.append("a SYN at the expiry is not refused")
    except oracle.NotModeled:
        pass
    t, c = tracker()
    t.line(c, 0, b"PORT 10,0,0,10,195,80", 10, 1.0)
    c.ended = True
    try:
        t.match("198.51.100.20", "10.0.0.10", 50000, "outside", 2.0, 11)
        failed.append("a data SYN after the control connection ended is not refused")
    except oracle.NotModeled:
        pass

    # The config.
    p = oracle.Policy({})
    check("ftp defaults", (p.ftp_enabled, p.ftp_ports, p.ftp_timeout), (True, {21}, 60))
    p = oracle.Policy({"modules": {"ftp": {"enabled": False, "ports": [21, 2121],
                                           "expectation_timeout": 5}}})
    check("ftp settings", (p.ftp_enabled, p.ftp_ports, p.ftp_timeout), (False, {21, 2121}, 5))
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pcaps", required=True)
    args = ap.parse_args()
    sys.dont_write_bytecode = True
    sys.path.insert(0, args.pcaps)
    import oracle

    failed = False
    rules = rule_checks(oracle)
    for f in rules:
        print("FAIL rule %s" % f)
    if rules:
        failed = True
    else:
        print("ok   the oracle's FTP rules")
    if shutil.which("tshark") is None:
        print("SKIP: tshark is not installed (apt-get install tshark)")
        return 1 if failed else SKIP
    real, ftp_synthetic = [], []
    with open(os.path.join(args.pcaps, "captures.txt")) as fh:
        for line in fh:
            fields = line.split("#", 1)[0].split()
            if len(fields) == 2 and fields[0].startswith("real/"):
                real.append(fields)
            if len(fields) == 2 and fields[0].startswith("synthetic/ftp_"):
                ftp_synthetic.append(fields)
    with tempfile.TemporaryDirectory(prefix="holdfast-oracle-test.") as tmp:
        for capture, config in real + ftp_synthetic:
            out = os.path.join(tmp, "expected.jsonl")
            subprocess.run([sys.executable, os.path.join(args.pcaps, "oracle.py"),
                            "--config", os.path.join(args.pcaps, config),
                            "--pcap", os.path.join(args.pcaps, capture), "--out", out], check=True)
            committed = os.path.join(args.pcaps, capture[:-len(".pcap")] + ".expected.jsonl")
            made_by = "the oracle gives" if capture.startswith("real/") else \
                "the oracle agrees with gen_synthetic.py on"
            if filecmp.cmp(committed, out, shallow=False):
                print("ok   %s: %s the committed verdicts" % (capture, made_by))
            else:
                print("FAIL %s: the oracle's verdicts differ from %s" % (capture, committed))
                failed = True
    if not real:
        print("FAIL no real captures listed in captures.txt")
        return 1
    if not ftp_synthetic:
        print("FAIL no synthetic FTP cases listed in captures.txt")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
