#!/usr/bin/python3
"""Builds pcaps/demo.pcap: real traffic with an FTP session, a SIP call and a handful of attacks mixed in.

    make_demo.py --traffic real/demo-traffic.pcap \
                 --traffic-expected real/demo-traffic.expected.jsonl \
                 --ftp real/ftp-active.pcap --ftp-expected real/ftp-active.expected.jsonl \
                 --sip real/sip-udp.pcap --sip-expected real/sip-udp.expected.jsonl \
                 --out-dir pcaps/

The real part is pcaps/real/demo-traffic.pcap (recorded by record.sh: curl
fetches over IPv4 and IPv6, an iperf3 UDP test, ping and ping -6) with its
oracle-made expected verdicts, and in it two sessions recorded on their own:

  the FTP session of pcaps/real/ftp-active.pcap (curl downloading a file
  from vsftpd in active mode: PORT, then the server's data connection into
  the inside, which demo.config.json would deny but the FTP module admits
  as expected), placed where ./run demo's crash frame (half the frames of
  the demo) falls after its PORT and before its data SYN, so the recovered
  run must keep the expectation: the place nearest the middle of the
  traffic that does it, before the SIP call;

  the SIP call of pcaps/real/sip-udp.pcap (a SIPp caller on the inside,
  10.0.0.10 port 5061, calls a SIPp callee on the outside, 198.51.100.20
  port 5060, over UDP: INVITE with SDP, 100, 180, 200 with SDP, ACK, RTP
  both ways between ports 6000 and 7000, BYE, 200), placed after 7/8 of
  the traffic: its media passes as expected, with the signalling
  connection as master, through the pinholes the SIP module opened from
  the SDP offer and answer (pinholes are checked before the rules, and
  would let the callee's stream in even if it came first, which the rules
  alone deny).

Each session keeps its oracle-made verdicts (made under ftp.config.json and
sip.config.json; the script checks that none of them depends on a rule
demo.config.json does not share) and its own spacing; the traffic after
a session moves on by the session's length, and connection IDs are
renumbered in the order the merged capture opens them. Into it go frames
an attacker on the outside (203.0.113.66) sends, each with the verdict the
firewall owes it under pcaps/demo.config.json (inside may open anything,
outside nothing):

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

Dropped frames open no connection, so the attacks change no connection
ID; only the frame numbers shift. Output: demo.pcap and
demo.expected.jsonl. Deterministic: the same inputs give the same bytes.
"""

import argparse
import ipaddress
import json
import os
import sys

sys.dont_write_bytecode = True  # keep pcaps/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pcapfile import read_pcap, write_pcap  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP, UDPerror, IPerror  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

ATTACKER = "203.0.113.66"
OUTSIDE_MAC = "02:00:00:00:00:14"  # frames from outside arrive from the outside host's link
INSIDE_MAC = "02:00:00:00:00:0a"
# demo.config.json's inside_networks and its SIP module's port (sip.config.json's too).
INSIDE_NETWORKS = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00:0:0:1::/64")]
SIP_PORT = 5060


def line(index, reason, conn, passes, master=None):
    return '{"index":%d,"verdict":"%s","reason":"%s","conn":%d%s}' % (
        index, "pass" if passes else "drop", reason, conn,
        ',"master":%d' % master if master is not None else "")


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


def conn_k(conn):
    return conn & ((1 << 40) - 1)


def check_ftp_session(frames, expected):
    """The FTP session's verdicts were worked out under ftp.config.json; in
    the demo it is judged under demo.config.json. They agree on it when
    nothing in it depends on a rule the two configs do not share: every
    frame is ARP, neighbour discovery, an expected data SYN, a packet of an
    open connection, or the SYN of the control connection (inside to port
    21, which both configs allow). Returns the positions (from 0) of the
    first announcement (PORT, EPRT, 227 or 229) and of the first expected
    SYN after it."""
    expected_at, announced_at = [], []
    for i, ((_ts, data), e) in enumerate(zip(frames, expected)):
        reason = e["reason"]
        p = Ether(data)
        if TCP in p and bytes(p[TCP].payload)[:4] in (b"PORT", b"EPRT", b"227 ", b"229 "):
            announced_at.append(i)
        if reason in ("arp", "ipv6_nd", "established"):
            continue
        if reason == "expected":
            expected_at.append(i)
            continue
        if reason == "new_connection" and TCP in p and p[TCP].dport == 21 and p[TCP].flags == "S" \
                and (IP in p and p[IP].src.startswith("10.0.0.")):
            continue
        sys.exit("make_demo.py: FTP session frame %d (%s) may be judged otherwise under "
                 "demo.config.json" % (i + 1, reason))
    if not expected_at or not announced_at or announced_at[0] > expected_at[0]:
        sys.exit("make_demo.py: the FTP session has no announced, expected data connection")
    return announced_at[0], expected_at[0]


def from_inside(p):
    ip = p[IP] if IP in p else p[IPv6] if IPv6 in p else None
    return ip is not None and any(ipaddress.ip_address(ip.src) in net for net in INSIDE_NETWORKS)


def check_sip_call(frames, expected):
    """The SIP call's verdicts were worked out under sip.config.json; in the
    demo it is judged under demo.config.json. They agree on it when nothing
    in it depends on a rule the two configs do not share: every frame is
    ARP, neighbour discovery, a packet of an open connection, the opener of
    a signalling connection (inside to port 5060 over UDP or TCP, which
    sip.config.json's sip-udp and sip-tcp rules and demo.config.json's
    inside-out rule both allow, and a port the SIP module of both reads),
    or the first packet of a media flow the SIP module expects, with such a
    signalling connection as its master (a pinhole is checked before
    policy, so it admits the flow, from either side, under either config).
    The call must have media, both ways, after its INVITE. Returns the
    positions (from 0) of the INVITE, of the first media packet and of the
    BYE (None without one)."""
    signalling, media, media_from = set(), set(), set()
    invite = bye = first_media = None
    for i, ((_ts, data), e) in enumerate(zip(frames, expected)):
        reason = e["reason"]
        p = Ether(data)
        l4 = p[UDP] if UDP in p and not isinstance(p[UDP], UDPerror) else p[TCP] if TCP in p else None
        if l4 is not None and SIP_PORT in (l4.sport, l4.dport):
            payload = bytes(l4.payload)
            if invite is None and payload.startswith(b"INVITE "):
                invite = i
            if bye is None and payload.startswith(b"BYE "):
                bye = i
        if reason in ("arp", "ipv6_nd"):
            continue
        if reason == "established":
            if e["conn"] in media:
                media_from.add(from_inside(p))
            continue
        if reason == "new_connection" and l4 is not None and l4.dport == SIP_PORT and from_inside(p):
            signalling.add(e["conn"])
            continue
        if reason == "expected" and e.get("master") in signalling and UDP in p:
            media.add(e["conn"])
            media_from.add(from_inside(p))
            if first_media is None:
                first_media = i
            continue
        sys.exit("make_demo.py: SIP call frame %d (%s) may be judged otherwise under "
                 "demo.config.json" % (i + 1, reason))
    if invite is None or first_media is None or invite > first_media or media_from != {True, False}:
        sys.exit("make_demo.py: the SIP call has no INVITE with media both ways after it")
    return invite, first_media, bye


def attack_inserts(frames, expected, victim):
    """The attacks: position in the traffic (after that frame, from 0) ->
    [(frame, reason, conn)]."""
    inserts = {}
    n = len(frames)
    inserts.setdefault(n // 10, []).extend(attacks_at_start(victim))
    rst_pos, rst, rst_conn = rst_injection(frames, expected)
    inserts.setdefault(rst_pos, []).append((rst, "tcp_rst_out_of_window", rst_conn))
    inserts.setdefault(n // 2, []).extend(attacks_in_middle(victim))
    inserts.setdefault(n * 9 // 10, []).extend(attacks_late(victim))
    return inserts


def build(frames, expected, inserts, sessions):
    """The demo's records and verdict lines: the traffic with the attacks
    of inserts (attack_inserts()) and the sessions, {position: (source,
    frames, expected)}, each after traffic frame position (from 0).
    Returns (records, lines, {source: the frame number its first frame
    has})."""
    # Connection IDs are renumbered in the order the merged capture opens
    # them; each source keeps its own numbering until then.
    renumber = {}  # (source, k) -> k in the demo

    def conn_of(source, conn):
        if conn == 0:
            return 0
        return (1 << 40) | renumber[(source, conn_k(conn))]

    records, lines = [], []
    first = {}
    shift = 0  # microseconds the sessions moved the rest of the traffic

    def put(ts, data, source, e):
        records.append((ts, data))
        if e["reason"] in ("new_connection", "expected"):
            renumber[(source, conn_k(e["conn"]))] = len(renumber) + 1
        master = conn_of(source, e["master"]) if "master" in e else None
        lines.append(line(len(records), e["reason"], conn_of(source, e["conn"]),
                          e["verdict"] == "pass", master))

    for i, (ts, data) in enumerate(frames):
        put(ts + shift, data, "traffic", expected[i])
        # Attack frames follow frame i at 1 microsecond steps, before frame i + 1.
        for k, (frame, reason, conn) in enumerate(inserts.get(i, [])):
            put(ts + shift + k + 1, frame, "traffic",
                {"reason": reason, "conn": conn, "verdict": "drop"})
        if i in sessions:
            # The session starts 1 ms after this frame, keeping its own
            # spacing; the traffic after it moves on by its length.
            source, s_frames, s_expected = sessions[i]
            start = ts + shift + 1000
            t0 = s_frames[0][0]
            first[source] = len(records) + 1
            for (sts, sdata), se in zip(s_frames, s_expected):
                put(start + sts - t0, sdata, source, se)
            shift += s_frames[-1][0] - t0 + 2000
    for k in range(1, len(records)):
        if records[k][0] < records[k - 1][0]:
            # The next real frame came within the microseconds the inserts
            # took: keep the capture's clock monotonic.
            records[k] = (records[k - 1][0], records[k][1])
    return records, lines, first


def read_session(what, pcap, expected_path):
    s_frames = read_pcap(pcap)
    with open(expected_path) as fh:
        s_expected = [json.loads(x) for x in fh]
    if len(s_expected) != len(s_frames):
        sys.exit("make_demo.py: %d %s frames but %d expected verdicts" %
                 (len(s_frames), what, len(s_expected)))
    return s_frames, s_expected


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traffic", required=True)
    ap.add_argument("--traffic-expected", required=True)
    ap.add_argument("--ftp", required=True)
    ap.add_argument("--ftp-expected", required=True)
    ap.add_argument("--sip", required=True)
    ap.add_argument("--sip-expected", required=True)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()

    frames = read_pcap(args.traffic)
    with open(args.traffic_expected) as fh:
        expected = [json.loads(x) for x in fh]
    if len(expected) != len(frames):
        sys.exit("make_demo.py: %d frames but %d expected verdicts" % (len(frames), len(expected)))
    ftp_frames, ftp_expected = read_session("FTP", args.ftp, args.ftp_expected)
    sip_frames, sip_expected = read_session("SIP", args.sip, args.sip_expected)
    announced, syn = check_ftp_session(ftp_frames, ftp_expected)
    check_sip_call(sip_frames, sip_expected)
    victim = "10.0.0.10"
    inserts = attack_inserts(frames, expected, victim)

    # The SIP call goes after 7/8 of the traffic. ./run demo crashes the
    # replay at frame (frames / 2): the FTP session goes where that frame
    # falls after its announcement and before its data SYN, so the
    # recovered run has an expectation to keep. The place nearest the
    # middle of the traffic that does it, from a quarter of the traffic
    # on and before the SIP call.
    n = len(frames)
    sip_at = n * 7 // 8
    sip = ("sip", sip_frames, sip_expected)
    for ftp_at in sorted(range(n // 4, sip_at), key=lambda p: (abs(p - n // 2), p)):
        sessions = {ftp_at: ("ftp", ftp_frames, ftp_expected), sip_at: sip}
        records, lines, first = build(frames, expected, inserts, sessions)
        crash = len(records) // 2
        if first["ftp"] + announced < crash < first["ftp"] + syn:
            break
    else:
        sys.exit("make_demo.py: found no place for the FTP session")

    write_pcap(os.path.join(args.out_dir, "demo.pcap"), records)
    with open(os.path.join(args.out_dir, "demo.expected.jsonl"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
