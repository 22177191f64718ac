#!/usr/bin/python3
"""Builds pcaps/demo.pcap: real traffic with a handful of attacks mixed in.

    make_demo.py --traffic real/demo-traffic.pcap \
                 --traffic-expected real/demo-traffic.expected.jsonl --out-dir pcaps/

The real half is pcaps/real/demo-traffic.pcap (recorded by record.sh: curl
fetches over IPv4 and IPv6, an iperf3 UDP test, ping and ping -6) with its
oracle-made expected verdicts. Into it go frames an attacker on the outside
(203.0.113.66) sends, each with the verdict the firewall owes it under
pcaps/demo.config.json (inside may open anything, outside nothing):

  port scan        SYNs to 8 well-known ports                 default_deny
  ping sweep       an echo request to the inside host         default_deny
  unsolicited UDP  an SNMP query to the inside host           default_deny
  RST injection    a RST into the largest HTTP transfer, with
                   a sequence number 1 GiB off                tcp_rst_out_of_window
                   (conn: the transfer's connection)
  forged ICMP      port unreachable quoting a UDP datagram
                   the inside host never sent                 icmp_error_unrelated
  malformed        IPv4 header checksum wrong                 ipv4_bad_checksum
                   TCP with SYN+FIN+RST+PSH+URG ("xmas")      tcp_bad_flags
                   IPv4 total length beyond the frame         ipv4_bad_length
  orphan fragment  a later fragment whose first never came    frag_without_first

Dropped frames open no connection, so the real traffic keeps its connection
IDs; only the frame numbers shift. Output: demo.pcap and
demo.expected.jsonl. Deterministic: the same inputs give the same bytes.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # keep pcaps/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pcapfile import read_pcap, write_pcap  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP, UDPerror, IPerror  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

ATTACKER = "203.0.113.66"
OUTSIDE_MAC = "02:00:00:00:00:14"  # frames from outside arrive from the outside host's link
INSIDE_MAC = "02:00:00:00:00:0a"


def line(index, reason, conn, passes):
    return '{"index":%d,"verdict":"%s","reason":"%s","conn":%d}' % (
        index, "pass" if passes else "drop", reason, conn)


def eth():
    return Ether(src=OUTSIDE_MAC, dst=INSIDE_MAC)


def attacks_at_start(victim):
    scan = [eth() / IP(src=ATTACKER, dst=victim, id=0x5c00 + i, ttl=52) /
            TCP(sport=61000, dport=port, seq=0x5ca11ed0, flags="S", window=1024)
            for i, port in enumerate([21, 22, 23, 25, 80, 443, 3389, 8080])]
    ping = eth() / IP(src=ATTACKER, dst=victim, id=0x5c10, ttl=52) / ICMP(type=8, id=0x6666, seq=1)
    return [(bytes(p), "default_deny", 0) for p in scan + [ping]]


def attacks_in_middle(victim):
    snmp = eth() / IP(src=ATTACKER, dst=victim, id=0x5c20, ttl=52) / UDP(sport=40000, dport=161) / \
        (b"\x30\x26\x02\x01\x01\x04\x06public")
    forged = eth() / IP(src=ATTACKER, dst=victim, id=0x5c21, ttl=52) / ICMP(type=3, code=3) / \
        IPerror(src=victim, dst=ATTACKER, id=0x1234, ttl=64) / UDPerror(sport=5353, dport=53, len=20, chksum=0)
    return [(bytes(snmp), "default_deny", 0), (bytes(forged), "icmp_error_unrelated", 0)]


def attacks_late(victim):
    bad_csum = eth() / IP(src=ATTACKER, dst=victim, id=0x5c30, ttl=52, chksum=0xbeef) / \
        TCP(sport=61001, dport=80, seq=1, flags="S")
    xmas = eth() / IP(src=ATTACKER, dst=victim, id=0x5c31, ttl=52) / \
        TCP(sport=61002, dport=80, seq=1, flags="FSRPU")
    # Total length says 200 bytes; the frame carries 40.
    lying = eth() / IP(src=ATTACKER, dst=victim, id=0x5c32, ttl=52, len=200) / \
        TCP(sport=61003, dport=80, seq=1, flags="S")
    orphan = eth() / IP(src=ATTACKER, dst=victim, id=0x4242, ttl=52, proto=17, frag=185) / (b"\xaa" * 64)
    return [(bytes(bad_csum), "ipv4_bad_checksum", 0), (bytes(xmas), "tcp_bad_flags", 0),
            (bytes(lying), "ipv4_bad_length", 0), (bytes(orphan), "frag_without_first", 0)]


def rst_injection(frames, expected):
    """A RST, seemingly from the server, into the largest HTTP transfer,
    placed after its 10th data segment. Returns (position, frame, conn)."""
    segments = {}
    for i, (_ts, data) in enumerate(frames):
        p = Ether(data)
        if IP in p and TCP in p and p[TCP].sport == 8000 and len(p[TCP].payload) > 0:
            segments.setdefault(p[TCP].dport, []).append(i)
    if not segments:
        sys.exit("make_demo.py: no HTTP transfer in the traffic capture")
    port = max(sorted(segments), key=lambda k: len(segments[k]))
    if len(segments[port]) < 10:
        sys.exit("make_demo.py: the largest HTTP transfer has fewer than 10 segments")
    pos = segments[port][9]
    seg = Ether(frames[pos][1])
    ip, tcp = seg[IP], seg[TCP]
    rst = Ether(src=seg.src, dst=seg.dst) / IP(src=ip.src, dst=ip.dst, id=0x5c40, ttl=64) / \
        TCP(sport=tcp.sport, dport=tcp.dport, flags="R",
            seq=(tcp.seq + len(tcp.payload) + 0x40000000) & 0xffffffff, window=0)
    return pos, bytes(rst), expected[pos]["conn"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traffic", required=True)
    ap.add_argument("--traffic-expected", required=True)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()

    frames = read_pcap(args.traffic)
    with open(args.traffic_expected) as fh:
        expected = [json.loads(x) for x in fh]
    if len(expected) != len(frames):
        sys.exit("make_demo.py: %d frames but %d expected verdicts" % (len(frames), len(expected)))
    victim = "10.0.0.10"

    # Inserts: position in the traffic (after that frame) -> frames.
    inserts = {}
    n = len(frames)
    inserts.setdefault(n // 10, []).extend(attacks_at_start(victim))
    rst_pos, rst, rst_conn = rst_injection(frames, expected)
    inserts.setdefault(rst_pos, []).append((rst, "tcp_rst_out_of_window", rst_conn))
    inserts.setdefault(n // 2, []).extend(attacks_in_middle(victim))
    inserts.setdefault(n * 9 // 10, []).extend(attacks_late(victim))

    records, lines = [], []
    for i, (ts, data) in enumerate(frames):
        records.append((ts, data))
        e = expected[i]
        lines.append(line(len(records), e["reason"], e["conn"], e["verdict"] == "pass"))
        # Attack frames follow frame i at 1 microsecond steps, before frame i + 1.
        for k, (frame, reason, conn) in enumerate(inserts.get(i, [])):
            records.append((ts + k + 1, frame))
            lines.append(line(len(records), reason, conn, False))
    for k in range(1, len(records)):
        if records[k][0] < records[k - 1][0]:
            # The next real frame came within the microseconds the inserts
            # took: keep the capture's clock monotonic.
            records[k] = (records[k - 1][0], records[k][1])

    write_pcap(os.path.join(args.out_dir, "demo.pcap"), records)
    with open(os.path.join(args.out_dir, "demo.expected.jsonl"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
