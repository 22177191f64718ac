#!/usr/bin/python3
"""Synthetic edge-case captures for holdfast, each with its expected verdicts.

    gen_synthetic.py [--out-dir DIR] [--case NAME ...] [--list]

Every case is a short story told in packets: each packet is written together
with the verdict the firewall owes it under pcaps/synthetic.config.json
(pass or drop, the reason, and which connection it belongs to, counted as
holdfast counts them: 1 << 40 | k, k = 1, 2, ... in the order connections
are created; 0 for packets of no connection). The verdicts come from the
RFCs and the firewall's documented behaviour (dataplane/verdict.h,
dataplane/parser.h, modules/*/*.h), never from running the firewall.

Output per case: DIR/<case>.pcap and DIR/<case>.expected.jsonl (default
DIR: pcaps/synthetic next to this script). Deterministic: fixed timestamps,
fixed sequence numbers and identifiers, explicit MAC addresses, no
randomness, and captures written by pcapfile.py, so the same scapy gives
the same bytes every run (tests/integration checks that).

Addresses (inside_networks 10.0.0.0/24, fd00:0:0:1::/64):
  inside client    10.0.0.10         fd00:0:0:1::10
  inside server    10.0.0.80         fd00:0:0:1::80   (published: port 80)
  outside server   198.51.100.20     2001:db8:100::20
  outside attacker 203.0.113.66      2001:db8:bad::66
  routers          198.51.100.1      2001:db8:100::1  (send ICMP errors)
  media gateway    198.51.100.40/41                   (SIP media_ranges)
"""

import argparse
import os
import struct
import sys

sys.dont_write_bytecode = True  # keep pcaps/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pcapfile import write_pcap  # noqa: E402
from scapy.config import conf  # noqa: E402
from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP, ICMPerror, IPerror, TCPerror, UDPerror  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6MLReport, ICMPv6MLReport2,
    ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_Redirect, ICMPv6ND_RS, ICMPv6NIQueryNOOP,
    ICMPv6PacketTooBig, ICMPv6ParamProblem, ICMPv6TimeExceeded, IPerror6, IPv6,
    IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting,
    IPv6ExtHdrSegmentRouting, PadN, RouterAlert)
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402
from scapy.layers.sctp import SCTP  # noqa: E402
from scapy.packet import Raw  # noqa: E402

conf.verb = 0

CONN_EPOCH = 1
T0_US = 1_700_000_000_000_000  # 2023-11-14 22:13:20 UTC: every case starts here

MAC_IN = "02:00:00:00:00:0a"   # the inside port's neighbour
MAC_OUT = "02:00:00:00:00:14"  # the outside port's neighbour (the router)

CLIENT4, CLIENT6 = "10.0.0.10", "fd00:0:0:1::10"
WEB4, WEB6 = "10.0.0.80", "fd00:0:0:1::80"
SERVER4, SERVER6 = "198.51.100.20", "2001:db8:100::20"
ATTACKER4, ATTACKER6 = "203.0.113.66", "2001:db8:bad::66"
ROUTER4, ROUTER6 = "198.51.100.1", "2001:db8:100::1"
LINK_IN6, LINK_OUT6 = "fe80::ff:fe00:a", "fe80::ff:fe00:14"

PASSING = {"new_connection", "expected", "established", "related", "untracked", "arp", "non_ip",
           "ipv6_nd", "fragment"}


def is_inside(addr):
    return addr.startswith("10.0.0.") or addr.startswith("fd00:0:0:1:")


def eth(src_addr, **kw):
    """Ethernet header of a frame sent by src_addr: from the inside
    neighbour when the source is inside, else from the outside one."""
    src, dst = (MAC_IN, MAC_OUT) if is_inside(src_addr) else (MAC_OUT, MAC_IN)
    kw.setdefault("dst", dst)
    return Ether(src=src, **kw)


def ip(src, dst, **kw):
    """IPv4 or IPv6 header, by the address family."""
    if ":" in src:
        return IPv6(src=src, dst=dst, **kw)
    return IP(src=src, dst=dst, **kw)


def frame(src, dst, l4, ip_kw=None, **eth_kw):
    return eth(src, **eth_kw) / ip(src, dst, **(ip_kw or {})) / l4


class Capture:
    """One case: frames with timestamps and their expected verdicts."""

    def __init__(self, name, doc):
        self.name = name
        self.doc = doc
        self.t = T0_US
        self.records = []
        self.lines = []
        self.next_k = 1

    def add(self, pkt, reason, conn=0, step_us=1000, master=None):
        """Appends a frame 1 ms (step_us) after the previous one. A frame
        expected as new_connection or expected (an FTP data connection's
        SYN admitted by its control connection `master`, or a SIP media
        flow's first datagram admitted by its signalling connection's call)
        opens the next connection: the call returns its ID. conn: the
        connection an other verdict names."""
        data = bytes(pkt)
        if self.records:
            self.t += step_us
        if (reason == "expected") != (master is not None):
            raise ValueError("%s: an expected verdict, and only one, names its master" % self.name)
        if reason in ("new_connection", "expected"):
            if conn:
                raise ValueError("%s: %s takes no conn" % (self.name, reason))
            conn = (CONN_EPOCH << 40) | self.next_k
            self.next_k += 1
        self.records.append((self.t, data))
        self.lines.append('{"index":%d,"verdict":"%s","reason":"%s","conn":%d%s}' % (
            len(self.records), "pass" if reason in PASSING else "drop", reason, conn,
            ',"master":%d' % master if master is not None else ""))
        return conn

    def wait(self, seconds):
        self.t += int(seconds * 1_000_000)

    def write(self, out_dir):
        write_pcap(os.path.join(out_dir, self.name + ".pcap"), self.records)
        with open(os.path.join(out_dir, self.name + ".expected.jsonl"), "w") as fh:
            fh.write("\n".join(self.lines) + "\n")


class Tcp:
    """Both ends of one TCP connection, with their sequence numbers.

    seg() builds the next segment from one end: seq is that end's next
    sequence number, ack the other end's, and the end advances by the
    payload (+1 for SYN and FIN) unless seq is given explicitly (forged or
    replayed segments)."""

    def __init__(self, client, cport, server, sport, cisn, sisn, cwin=64240, swin=65160,
                 copts=None, sopts=None, l2=None):
        self.addr = {True: client, False: server}
        self.port = {True: cport, False: sport}
        self.nxt = {True: cisn, False: sisn}
        self.win = {True: cwin, False: swin}
        self.opts = {True: copts or [], False: sopts or []}
        self.l2 = l2  # callable(src) -> layer-2 header, for VLAN tags

    def seg(self, from_client, flags, data=b"", seq=None, ack=None, win=None, opts=None):
        me, peer = from_client, not from_client
        s = self.nxt[me] if seq is None else seq
        a = (self.nxt[peer] if "A" in flags else 0) if ack is None else ack
        if opts is None:
            opts = self.opts[me] if "S" in flags else []
        tcp = TCP(sport=self.port[me], dport=self.port[peer], flags=flags, seq=s & 0xffffffff,
                  ack=a & 0xffffffff, window=self.win[me] if win is None else win, options=opts)
        if seq is None:
            self.nxt[me] = (self.nxt[me] + len(data) + ("S" in flags) + ("F" in flags)) & 0xffffffff
        l2 = self.l2(self.addr[me]) if self.l2 else eth(self.addr[me])
        return l2 / ip(self.addr[me], self.addr[peer]) / tcp / (Raw(data) if data else b"")

    def handshake(self, cap, conn=None):
        """SYN, SYN/ACK, ACK; returns the connection ID the SYN opened."""
        k = cap.add(self.seg(True, "S"), "new_connection")
        cap.add(self.seg(False, "SA"), "established", k)
        cap.add(self.seg(True, "A"), "established", k)
        return k

    def close(self, cap, k, first_client=True):
        """FIN, ACK, FIN, ACK, the first FIN from the client or the server."""
        a = first_client
        cap.add(self.seg(a, "FA"), "established", k)
        cap.add(self.seg(not a, "A"), "established", k)
        cap.add(self.seg(not a, "FA"), "established", k)
        cap.add(self.seg(a, "A"), "established", k)


CASES = []
DEFAULT_CONFIG = "synthetic.config.json"


def case(fn=None, config=DEFAULT_CONFIG):
    """Registers a case; config names the file in pcaps/ it is judged under."""
    def register(f):
        f.config = config
        CASES.append(f)
        return f
    return register(fn) if fn is not None else register


def payload(n, seed=0):
    return bytes((seed + i) & 0xff for i in range(n))


# --------------------------------------------------------------------- TCP


@case
def tcp_basic(cap):
    """A clean HTTP-like exchange over IPv4 and IPv6: handshake with MSS,
    SACK-permitted, timestamps and window scaling, ECN setup (SYN with
    ECE+CWR, SYN/ACK with ECE, RFC 3168), data both ways, orderly close.
    The IPv4 client's initial sequence number sits just below 2^32 so the
    sequence space wraps mid-transfer (RFC 1982 serial arithmetic). Every
    frame passes."""
    copts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1000, 0)), ("NOP", None),
             ("WScale", 7)]
    sopts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (5000, 1000)), ("NOP", None),
             ("WScale", 7)]
    for client, server, cisn in ((CLIENT4, SERVER4, 0xFFFFFE00), (CLIENT6, SERVER6, 0x10000000)):
        t = Tcp(client, 40001, server, 80, cisn, 0x7A000000, cwin=502, swin=509,
                copts=copts, sopts=sopts)
        k = cap.add(t.seg(True, "SEC", win=64240), "new_connection")
        cap.add(t.seg(False, "SAE", win=65160), "established", k)
        cap.add(t.seg(True, "A"), "established", k)
        cap.add(t.seg(True, "PA", b"GET / HTTP/1.1\r\nHost: example\r\n\r\n" + payload(600)),
                "established", k)
        cap.add(t.seg(False, "A"), "established", k)
        for i in range(3):
            cap.add(t.seg(False, "A", payload(1448, i)), "established", k)
        cap.add(t.seg(True, "A"), "established", k)
        cap.add(t.seg(False, "PA", payload(300, 9)), "established", k)
        cap.add(t.seg(True, "A"), "established", k)
        t.close(cap, k, first_client=False)


@case
def tcp_out_of_window(cap):
    """Segments outside the windows (Rooij's checks I-IV), both directions,
    on an established connection without window scaling: data beyond the
    receiver's window (II) from the client and from the server, data older
    than the receiver can still accept (I), an ACK for data never sent
    (III), and an ACK from long ago (IV). Each is dropped as
    tcp_out_of_window and changes nothing: the in-window segments between
    and after them still pass."""
    t = Tcp(CLIENT4, 40002, SERVER4, 80, 0x01000000, 0x02000000)
    k = t.handshake(cap)
    cap.add(t.seg(True, "PA", payload(100)), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    c, s = t.nxt[True], t.nxt[False]
    # II: 200000 bytes past the right edge the server offered (65160).
    cap.add(t.seg(True, "PA", payload(100), seq=c + 200000, ack=s), "tcp_out_of_window", k)
    cap.add(t.seg(False, "PA", payload(100), seq=s + 200000, ack=c), "tcp_out_of_window", k)
    # I: data that ended 300000 bytes ago, far below what the receiver
    # could still take (its window is 65160).
    cap.add(t.seg(True, "PA", payload(100), seq=c - 300000, ack=s), "tcp_out_of_window", k)
    # III: acknowledges 5000 bytes the server never sent.
    cap.add(t.seg(True, "A", seq=c, ack=s + 5000), "tcp_out_of_window", k)
    cap.add(t.seg(False, "A", seq=s, ack=c + 5000), "tcp_out_of_window", k)
    # IV: acknowledges data 200000 bytes back (more than max(window, 66000)).
    cap.add(t.seg(True, "A", seq=c, ack=s - 200000), "tcp_out_of_window", k)
    # The connection goes on untouched.
    cap.add(t.seg(False, "PA", payload(200)), "established", k)
    cap.add(t.seg(True, "PA", payload(50)), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    t.close(cap, k)


@case
def tcp_rst_injection(cap):
    """RST injection (RFC 5961 3). A RST far outside the window and a RST
    below what the client has already acknowledged are dropped as
    tcp_rst_out_of_window and the connection carries on. A RST inside the
    window but not at the next expected sequence passes (the endpoint,
    not the firewall, answers it with a challenge ACK). Then a RST at
    exactly the next sequence number passes and closes the connection:
    the client's next SYN on the same ports opens a new connection with a
    new ID (port reuse from CLOSE)."""
    t = Tcp(CLIENT4, 40003, SERVER4, 443, 0x11000000, 0x22000000)
    k = t.handshake(cap)
    cap.add(t.seg(True, "PA", payload(200)), "established", k)
    cap.add(t.seg(False, "PA", payload(1000)), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    c, s = t.nxt[True], t.nxt[False]
    cap.add(t.seg(False, "R", seq=s + 0x10000000), "tcp_rst_out_of_window", k)
    cap.add(t.seg(False, "RA", seq=s - 800, ack=c), "tcp_rst_out_of_window", k)
    cap.add(t.seg(True, "R", seq=c + 0x40000000), "tcp_rst_out_of_window", k)
    cap.add(t.seg(True, "PA", payload(100)), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    # Inside the window, not exact: the endpoint decides (challenge ACK).
    cap.add(t.seg(False, "R", seq=t.nxt[False] + 1000), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    # Exact: accepted, the connection is closed.
    cap.add(t.seg(False, "R", seq=t.nxt[False]), "established", k)
    t2 = Tcp(CLIENT4, 40003, SERVER4, 443, 0x33000000, 0x44000000)
    k2 = t2.handshake(cap)
    t2.close(cap, k2)


@case
def tcp_syn_injection(cap):
    """A SYN into an established connection. From the client's side with a
    sequence number far from the window (a blind SYN injection) it is
    tcp_out_of_window; from the server's side, where no SYN can come once
    the connection is established, tcp_invalid_state. Neither changes the
    connection, which goes on and closes normally."""
    t = Tcp(CLIENT4, 40004, SERVER4, 80, 0x05000000, 0x06000000)
    k = t.handshake(cap)
    cap.add(t.seg(True, "PA", payload(100)), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    cap.add(t.seg(True, "S", seq=0x7f000000), "tcp_out_of_window", k)
    cap.add(t.seg(False, "S", seq=0x7e000000), "tcp_invalid_state", k)
    cap.add(t.seg(False, "PA", payload(100)), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    t.close(cap, k)


@case
def tcp_bad_synack(cap):
    """SYN/ACKs that do not acknowledge the SYN (RFC 9293 3.10.7.3): one
    acknowledging a different sequence number is tcp_bad_synack; a SYN/ACK
    from the opener's own side while the SYN is outstanding is
    tcp_invalid_state. The right SYN/ACK then completes the handshake, and
    a retransmission of it passes."""
    t = Tcp(CLIENT6, 40005, SERVER6, 80, 0x0A000000, 0x0B000000)
    k = cap.add(t.seg(True, "S"), "new_connection")
    cap.add(t.seg(False, "SA", seq=0x0B000000, ack=0x0A000000 + 1000), "tcp_bad_synack", k)
    cap.add(t.seg(True, "SA", seq=0x0A000000, ack=0x0B000001), "tcp_invalid_state", k)
    cap.add(t.seg(False, "SA"), "established", k)
    cap.add(t.seg(False, "SA", seq=0x0B000000), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    cap.add(t.seg(True, "PA", payload(10)), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    t.close(cap, k)


@case
def tcp_mid_stream(cap):
    """Segments of connections the firewall never saw open (loose pickup is
    off): an ACK, data, a FIN, a SYN/ACK and a RST, from the inside and the
    outside, all dropped as tcp_mid_stream before policy is asked. They
    create nothing: a later SYN on one of those tuples opens connection 1."""
    t = Tcp(CLIENT4, 40006, SERVER4, 80, 0x10000000, 0x20000000)
    cap.add(t.seg(True, "A", seq=0x10000100, ack=0x20000100), "tcp_mid_stream")
    cap.add(t.seg(False, "PA", payload(100), seq=0x20000100, ack=0x10000100), "tcp_mid_stream")
    cap.add(t.seg(True, "FA", seq=0x10000100, ack=0x20000164), "tcp_mid_stream")
    cap.add(t.seg(False, "SA", seq=0x20000000, ack=0x10000001), "tcp_mid_stream")
    cap.add(t.seg(False, "R", seq=0x20000200), "tcp_mid_stream")
    u = Tcp(ATTACKER4, 50000, WEB4, 80, 0x30000000, 0x40000000)
    cap.add(u.seg(True, "A", seq=0x30000100, ack=0x40000100), "tcp_mid_stream")
    k = t.handshake(cap)
    t.close(cap, k)


@case
def tcp_retransmission(cap):
    """Retransmissions are in the window and pass without changing state:
    the SYN sent again before the SYN/ACK, the SYN/ACK sent again, a data
    segment sent twice, duplicate ACKs, a partly overlapping resend, and
    the FIN sent again after the close."""
    t = Tcp(CLIENT4, 40007, SERVER4, 8080, 0x0C000000, 0x0D000000)
    k = cap.add(t.seg(True, "S"), "new_connection")
    cap.add(t.seg(True, "S", seq=0x0C000000), "established", k)
    cap.add(t.seg(False, "SA"), "established", k)
    cap.add(t.seg(False, "SA", seq=0x0D000000), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    c0 = t.nxt[True]
    cap.add(t.seg(True, "PA", payload(500)), "established", k)
    cap.add(t.seg(True, "PA", payload(500), seq=c0, ack=t.nxt[False]), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    s0 = t.nxt[False]
    cap.add(t.seg(False, "A", payload(1000)), "established", k)
    cap.add(t.seg(False, "A", payload(1000)), "established", k)
    cap.add(t.seg(True, "A", ack=s0), "established", k)  # the first segment was lost
    cap.add(t.seg(True, "A", ack=s0), "established", k)  # duplicate ACK
    cap.add(t.seg(False, "A", payload(1500), seq=s0, ack=t.nxt[True]), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    cap.add(t.seg(True, "FA"), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    cap.add(t.seg(False, "FA"), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    cap.add(t.seg(False, "FA", seq=t.nxt[False] - 1), "established", k)
    cap.add(t.seg(True, "A"), "established", k)


@case
def tcp_syn_new_isn(cap):
    """A client that restarts before its SYN is answered sends a new SYN
    from the same port with a larger initial sequence number (RFC 9293
    3.4.1; modules/tcp/tcp.h: "a SYN (or SYN/ACK) sent again with a new
    initial sequence number"). The firewall follows the new SYN: the
    SYN/ACK acknowledging it, and the rest of the connection, pass."""
    t = Tcp(CLIENT4, 40065, SERVER4, 80, 0x16000000, 0x17000000)
    k = cap.add(t.seg(True, "S"), "new_connection")
    t.nxt[True] = 0x16100000
    cap.add(t.seg(True, "S"), "established", k)
    cap.add(t.seg(False, "SA"), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    cap.add(t.seg(True, "PA", payload(100)), "established", k)
    cap.add(t.seg(False, "PA", payload(100)), "established", k)
    t.close(cap, k)


@case
def tcp_simultaneous_open(cap):
    """Simultaneous open (RFC 9293 3.5, figure 8): both ends send a SYN,
    each answers the other's with a SYN/ACK, then data flows both ways.
    One connection, opened by the inside end's SYN (the outside end's SYN
    arrives on that tuple, so policy is not asked again); every frame
    passes."""
    t = Tcp(CLIENT4, 5060, SERVER4, 5060, 0x0E000000, 0x0F000000)
    k = cap.add(t.seg(True, "S"), "new_connection")
    cap.add(t.seg(False, "S"), "established", k)
    cap.add(t.seg(True, "SA", seq=0x0E000000), "established", k)
    cap.add(t.seg(False, "SA", seq=0x0F000000), "established", k)
    cap.add(t.seg(True, "PA", payload(100)), "established", k)
    cap.add(t.seg(False, "PA", payload(100)), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    t.close(cap, k)


@case
def tcp_window_scaling(cap):
    """Window scaling (RFC 7323). Both ends offer a shift of 7: the
    server's window field 512 means 65536 bytes, so a client segment
    60000 bytes ahead (as if the ones before were lost) is in the window,
    one 70000 bytes ahead is not. Second connection: only the client
    offers scaling, so neither end scales (RFC 7323 1.3): the same window
    field is 512 bytes and the segment 60000 bytes ahead is
    tcp_out_of_window. The SYNs' own windows are never scaled."""
    ws = [("MSS", 1460), ("NOP", None), ("WScale", 7)]
    t = Tcp(CLIENT4, 40008, SERVER4, 80, 0x01000000, 0x02000000, cwin=502, swin=512,
            copts=ws, sopts=ws)
    k = cap.add(t.seg(True, "S", win=1024), "new_connection")
    cap.add(t.seg(False, "SA", win=1024), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    c = t.nxt[True]
    cap.add(t.seg(True, "PA", payload(100), seq=c + 60000, ack=t.nxt[False]), "established", k)
    cap.add(t.seg(True, "PA", payload(100), seq=c + 70000, ack=t.nxt[False]), "tcp_out_of_window", k)
    cap.add(t.seg(True, "PA", payload(1000)), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    t.close(cap, k)

    t = Tcp(CLIENT4, 40009, SERVER4, 80, 0x03000000, 0x04000000, cwin=502, swin=512,
            copts=ws, sopts=[("MSS", 1460)])
    k = cap.add(t.seg(True, "S", win=1024), "new_connection")
    cap.add(t.seg(False, "SA", win=1024), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    c = t.nxt[True]
    cap.add(t.seg(True, "PA", payload(100), seq=c + 60000, ack=t.nxt[False]), "tcp_out_of_window", k)
    cap.add(t.seg(True, "PA", payload(400)), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    t.close(cap, k)


@case
def tcp_sack(cap):
    """Selective acknowledgements (RFC 2018). The server sends three
    segments, the first is lost: the client's ACK carries a SACK block for
    the other two and passes. A SACK block whose right edge lies beyond
    anything the server sent acknowledges data that does not exist and is
    tcp_out_of_window. The server resends the lost segment and the
    transfer completes."""
    opts = [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b"")]
    t = Tcp(CLIENT6, 40010, SERVER6, 80, 0x21000000, 0x31000000, copts=opts, sopts=opts)
    k = t.handshake(cap)
    cap.add(t.seg(True, "PA", payload(80)), "established", k)
    s0 = t.nxt[False]
    for i in range(3):
        cap.add(t.seg(False, "A", payload(1000, i)), "established", k)
    s3 = t.nxt[False]
    sack_ok = [("NOP", None), ("NOP", None), ("SAck", (s0 + 1000, s3))]
    cap.add(t.seg(True, "A", ack=s0, opts=sack_ok), "established", k)
    sack_bad = [("NOP", None), ("NOP", None), ("SAck", (s0 + 1000, s3 + 5000))]
    cap.add(t.seg(True, "A", ack=s0, opts=sack_bad), "tcp_out_of_window", k)
    cap.add(t.seg(False, "A", payload(1000), seq=s0, ack=t.nxt[True]), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    t.close(cap, k)


@case
def tcp_port_reuse(cap):
    """TCP port reuse (RFC 9293 3.4.1 / RFC 6191). A connection closes
    (client's FIN first, so the client ends in TIME_WAIT); the client then
    opens again from the same port to the same server with a larger
    initial sequence number: the SYN starts a new connection with a new ID
    while the old one is still in TIME_WAIT. After that one closes, the
    third SYN comes 6 s later, when TIME_WAIT (5 s in the config) has
    expired: again a new connection."""
    t = Tcp(CLIENT4, 40011, SERVER4, 80, 0x50000000, 0x60000000)
    k1 = t.handshake(cap)
    cap.add(t.seg(True, "PA", payload(60)), "established", k1)
    cap.add(t.seg(False, "PA", payload(60)), "established", k1)
    t.close(cap, k1)
    t2 = Tcp(CLIENT4, 40011, SERVER4, 80, 0x58000000, 0x68000000)
    k2 = t2.handshake(cap)
    cap.add(t2.seg(True, "PA", payload(60)), "established", k2)
    t2.close(cap, k2)
    cap.wait(6)
    t3 = Tcp(CLIENT4, 40011, SERVER4, 80, 0x59000000, 0x69000000)
    k3 = t3.handshake(cap)
    t3.close(cap, k3)


@case
def tcp_half_close(cap):
    """Half close (RFC 9293 3.6): the client sends its FIN, the server
    keeps sending data for a while (CLOSE_WAIT on its side) and the client
    keeps acknowledging, then the server's FIN and the last ACK. The
    server's FIN sent again in TIME_WAIT and its ACK pass too."""
    t = Tcp(CLIENT4, 40012, SERVER4, 21, 0x70000000, 0x71000000)
    k = t.handshake(cap)
    cap.add(t.seg(True, "PA", payload(20)), "established", k)
    cap.add(t.seg(True, "FA"), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    for i in range(2):
        cap.add(t.seg(False, "PA", payload(700, i)), "established", k)
        cap.add(t.seg(True, "A"), "established", k)
    fin_seq = t.nxt[False]
    cap.add(t.seg(False, "FA"), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    cap.add(t.seg(False, "FA", seq=fin_seq), "established", k)
    cap.add(t.seg(True, "A"), "established", k)


@case
def tcp_syn_timeout(cap):
    """A SYN that is answered too late: the SYN/ACK arrives 11 s after the
    SYN, past the SYN_SENT timeout (10 s in the config). The connection
    has expired, so the SYN/ACK has no state and is tcp_mid_stream. The
    client's SYN sent again then opens a new connection."""
    t = Tcp(CLIENT4, 40013, SERVER4, 80, 0x72000000, 0x73000000)
    k1 = cap.add(t.seg(True, "S"), "new_connection")
    assert k1
    cap.wait(11)
    cap.add(t.seg(False, "SA"), "tcp_mid_stream")
    k2 = cap.add(t.seg(True, "S", seq=0x72000000), "new_connection")
    cap.add(t.seg(False, "SA", seq=0x73000000), "established", k2)
    cap.add(t.seg(True, "A"), "established", k2)


@case
def tcp_syn_with_data(cap):
    """A SYN may carry data (RFC 9293 3.4; TCP Fast Open, RFC 7413). A
    server that does not take the data answers, as RFC 9293 3.10.7.2
    prescribes, <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> with RCV.NXT =
    SEG.SEQ + 1: the SYN/ACK acknowledges the SYN only (BSD and Linux
    without a valid Fast Open cookie do this), and the client sends the
    data again after the handshake. A Fast Open server that takes the
    data acknowledges it in the SYN/ACK. Both handshakes are legitimate
    and every frame passes."""
    data = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"
    tfo = [("MSS", 1460), ("NOP", None), ("NOP", None), (34, b"\x01\x02\x03\x04\x05\x06\x07\x08")]
    t = Tcp(CLIENT4, 40060, SERVER4, 80, 0x0A000000, 0x0B000000, copts=tfo, sopts=[("MSS", 1460)])
    k1 = cap.add(t.seg(True, "S", data), "new_connection")
    cap.add(t.seg(False, "SA", ack=0x0A000001), "established", k1)
    cap.add(t.seg(True, "A", seq=0x0A000001, ack=t.nxt[False]), "established", k1)
    cap.add(t.seg(True, "PA", data, seq=0x0A000001, ack=t.nxt[False]), "established", k1)
    cap.add(t.seg(False, "PA", payload(200)), "established", k1)
    cap.add(t.seg(True, "A"), "established", k1)
    t.close(cap, k1)
    u = Tcp(CLIENT4, 40061, SERVER4, 80, 0x0C000000, 0x0D000000, copts=tfo,
            sopts=[("MSS", 1460)])
    k2 = cap.add(u.seg(True, "S", data), "new_connection")
    cap.add(u.seg(False, "SA"), "established", k2)
    cap.add(u.seg(True, "A"), "established", k2)
    cap.add(u.seg(False, "PA", payload(200)), "established", k2)
    cap.add(u.seg(True, "A"), "established", k2)
    u.close(cap, k2)


@case
def tcp_refused(cap):
    """Connection refused (RFC 9293 3.10.7.1, 3.10.7.3). While the SYN is
    outstanding, a RST without ACK and a RST/ACK acknowledging something
    else than the SYN are tcp_rst_out_of_window (they refuse nothing). The
    RST/ACK acknowledging the SYN passes and closes the connection; the
    client's next SYN from the same port opens a new one, which the
    client then aborts itself with a RST at its own sequence number
    (passes)."""
    t = Tcp(CLIENT4, 40062, SERVER4, 81, 0x0E000000, 0)
    k1 = cap.add(t.seg(True, "S"), "new_connection")
    cap.add(t.seg(False, "R", seq=0, ack=0), "tcp_rst_out_of_window", k1)
    cap.add(t.seg(False, "RA", seq=0, ack=0x0E000000 + 50), "tcp_rst_out_of_window", k1)
    cap.add(t.seg(False, "RA", seq=0, ack=0x0E000001), "established", k1)
    u = Tcp(CLIENT4, 40062, SERVER4, 81, 0x0F000000, 0)
    k2 = cap.add(u.seg(True, "S"), "new_connection")
    cap.add(u.seg(True, "R"), "established", k2)


@case
def tcp_keepalive_zero_window(cap):
    """Keepalives and zero-window probes (RFC 9293 3.8.4, 3.8.6.1). The
    server's receive buffer fills and it advertises a zero window; the
    client probes with one byte and the server answers, still at zero;
    then the window opens and data flows. Later the idle client sends a
    keepalive (sequence number one below the next, no data) and one with
    a garbage byte, each acknowledged. Everything passes."""
    t = Tcp(CLIENT4, 40063, SERVER4, 9100, 0x10000000, 0x11000000)
    k = t.handshake(cap)
    cap.add(t.seg(True, "PA", payload(1400)), "established", k)
    cap.add(t.seg(False, "A", win=0), "established", k)
    cap.add(t.seg(True, "A", payload(1, 7), seq=t.nxt[True], ack=t.nxt[False]), "established", k)
    cap.add(t.seg(False, "A", win=0), "established", k)
    cap.add(t.seg(False, "A", win=8192), "established", k)
    cap.add(t.seg(True, "PA", payload(1000)), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    cap.wait(3)
    cap.add(t.seg(True, "A", seq=t.nxt[True] - 1, ack=t.nxt[False]), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    cap.add(t.seg(True, "A", b"\x00", seq=t.nxt[True] - 1, ack=t.nxt[False]), "established", k)
    cap.add(t.seg(False, "A"), "established", k)
    t.close(cap, k)


@case
def tcp_simultaneous_close(cap):
    """Simultaneous close (RFC 9293 3.6, figure 13): both ends send their
    FIN before seeing the other's, then both acknowledge. Every frame
    passes; a new SYN on the tuple afterwards opens a new connection."""
    t = Tcp(CLIENT6, 40064, SERVER6, 80, 0x12000000, 0x13000000)
    k1 = t.handshake(cap)
    cap.add(t.seg(True, "PA", payload(30)), "established", k1)
    cap.add(t.seg(False, "PA", payload(30)), "established", k1)
    c_fin = t.seg(True, "FA")
    s_fin = t.seg(False, "FA", ack=t.nxt[True] - 1)
    cap.add(c_fin, "established", k1)
    cap.add(s_fin, "established", k1)
    cap.add(t.seg(True, "A"), "established", k1)
    cap.add(t.seg(False, "A"), "established", k1)
    u = Tcp(CLIENT6, 40064, SERVER6, 80, 0x14000000, 0x15000000)
    k2 = u.handshake(cap)
    u.close(cap, k2)


@case
def tcp_policy(cap):
    """Policy on the first packet: telnet from the inside hits the deny
    rule no-telnet (policy_deny), and so does its retransmitted SYN; the
    published web server 10.0.0.80:80 and [fd00:0:0:1::80]:80 accept
    connections from the outside; any other inbound SYN matches no rule
    (default_deny). Denied SYNs open nothing."""
    t = Tcp(CLIENT4, 40014, SERVER4, 23, 0x74000000, 0x75000000)
    cap.add(t.seg(True, "S"), "policy_deny")
    cap.add(t.seg(True, "S", seq=0x74000000), "policy_deny")
    w = Tcp(ATTACKER4, 50001, WEB4, 80, 0x76000000, 0x77000000)
    k = w.handshake(cap)
    cap.add(w.seg(True, "PA", payload(40)), "established", k)
    cap.add(w.seg(False, "PA", payload(400)), "established", k)
    w.close(cap, k, first_client=False)
    x = Tcp(ATTACKER4, 50002, CLIENT4, 22, 0x78000000, 0x79000000)
    cap.add(x.seg(True, "S"), "default_deny")
    y = Tcp(ATTACKER4, 50003, WEB4, 443, 0x78000000, 0x79000000)
    cap.add(y.seg(True, "S"), "default_deny")
    w6 = Tcp(ATTACKER6, 50004, WEB6, 80, 0x7A000000, 0x7B000000)
    k6 = w6.handshake(cap)
    w6.close(cap, k6)


@case(config="synthetic-policy.config.json")
def policy_matrix(cap):
    """First-packet policy on and beside every edge of the rules in
    synthetic-policy.config.json (first match wins, then the default):
    TCP port range 1000-1999 denied to 198.51.100.0/25 and allowed beside
    it; UDP ports 53, 123 and 5000-5010 allowed, their neighbours denied;
    IPv6 destinations inside and just outside a /60, a /47 and a /97;
    inbound SSH from the four addresses of a /30 (IPv4) and a /126 (IPv6)
    and not from their neighbours, nor to another port or host; inbound
    UDP from source port 53 to ports 32768-60999 only; GRE by protocol
    number from either side; ICMP, matched by no rule, default_deny.
    Every probe is a first packet on a tuple of its own: allowed ones
    open a connection, denied ones are policy_deny (a deny rule matched)
    or default_deny (none did)."""
    allow, pdeny, ddeny = "new_connection", "policy_deny", "default_deny"
    sport = [41000]

    def probe(src, dst, proto, dport, expect, src_port=None):
        sp = src_port if src_port is not None else sport[0]
        sport[0] += 1
        if proto == "tcp":
            l4 = TCP(sport=sp, dport=dport, flags="S", seq=0x01000000, window=64240)
        elif proto == "udp":
            l4 = UDP(sport=sp, dport=dport) / Raw(b"probe")
        elif proto == "gre":
            l4 = GRE(proto=0x0800) / IP(src="192.168.1.1", dst="192.168.2.1") / UDP(sport=1, dport=2)
        else:
            l4 = echo(src, dst, sp, 1)[2]
        cap.add(frame(src, dst, l4), expect)

    for dst, dport, expect in (("198.51.100.5", 999, allow), ("198.51.100.5", 1000, pdeny),
                               ("198.51.100.5", 1500, pdeny), ("198.51.100.5", 1999, pdeny),
                               ("198.51.100.5", 2000, allow), ("198.51.100.0", 1000, pdeny),
                               ("198.51.100.127", 1999, pdeny), ("198.51.100.128", 1000, allow),
                               ("198.51.99.255", 1500, allow)):
        probe(CLIENT4, dst, "tcp", dport, expect)
    for dport, expect in ((52, pdeny), (53, allow), (54, pdeny), (122, pdeny), (123, allow),
                          (124, pdeny), (4999, pdeny), (5000, allow), (5005, allow), (5010, allow),
                          (5011, pdeny)):
        probe(CLIENT4, SERVER4, "udp", dport, expect)
    for dst, expect in (("2001:db8:100:10::1", allow), ("2001:db8:100:1f:ffff:ffff:ffff:ffff", allow),
                        ("2001:db8:100:f:ffff:ffff:ffff:ffff", pdeny), ("2001:db8:100:20::", pdeny),
                        ("2001:db8:200::", allow), ("2001:db8:201:abcd::1", allow),
                        ("2001:db8:1ff:ffff:ffff:ffff:ffff:ffff", pdeny), ("2001:db8:202::", pdeny),
                        ("2001:db8:300::8000:0", allow), ("2001:db8:300::ffff:ffff", allow),
                        ("2001:db8:300::7fff:ffff", pdeny), ("2001:db8:300::1:0:0", pdeny)):
        probe(CLIENT6, dst, "udp", 9999, expect)
    probe(CLIENT6, "2001:db8:100:10::1", "udp", 53, allow)
    probe(CLIENT6, "2001:db8:999::1", "udp", 53, allow)
    for src, dst, dport, expect in (("203.0.113.63", "10.0.0.22", 22, ddeny),
                                    ("203.0.113.64", "10.0.0.22", 22, allow),
                                    ("203.0.113.67", "10.0.0.22", 22, allow),
                                    ("203.0.113.68", "10.0.0.22", 22, ddeny),
                                    ("203.0.113.65", "10.0.0.22", 23, ddeny),
                                    ("203.0.113.65", "10.0.0.23", 22, ddeny),
                                    ("2001:db8:bad::63", "fd00:0:0:1::22", 22, ddeny),
                                    ("2001:db8:bad::64", "fd00:0:0:1::22", 22, allow),
                                    ("2001:db8:bad::67", "fd00:0:0:1::22", 22, allow),
                                    ("2001:db8:bad::68", "fd00:0:0:1::22", 22, ddeny),
                                    ("2001:db8:bad::65", "fd00:0:0:1::23", 22, ddeny)):
        probe(src, dst, "tcp", dport, expect)
    for src_port, dport, expect in ((53, 32767, ddeny), (53, 32768, allow), (53, 60999, allow),
                                    (53, 61000, ddeny), (54, 40000, ddeny), (52, 40001, ddeny)):
        probe(SERVER4, CLIENT4, "udp", dport, expect, src_port=src_port)
    probe(SERVER4, "10.0.1.10", "udp", 40002, ddeny, src_port=53)
    probe(SERVER4, CLIENT4, "gre", 0, allow)
    probe(CLIENT4, "198.51.100.30", "gre", 0, allow)
    probe(CLIENT4, SERVER4, "icmp", 0, ddeny)
    probe(ATTACKER4, CLIENT4, "icmp", 0, ddeny)


# -------------------------------------------------------------------- ICMP


def echo(src, dst, ident, seq, reply=False, data=b"holdfast-ping-01"):
    if ":" in src:
        l4 = (ICMPv6EchoReply if reply else ICMPv6EchoRequest)(id=ident, seq=seq, data=data)
    else:
        l4 = ICMP(type=0 if reply else 8, id=ident, seq=seq) / Raw(data)
    return frame(src, dst, l4)


@case
def icmp_echo(cap):
    """Echo (RFC 792, RFC 4443 4): a request from the inside opens a flow
    keyed by the identifier, its replies and the next request pass. A
    reply with an identifier nobody asked for, a reply sent by the
    requester itself, and a request from the outside (no rule allows it)
    are dropped. IPv4 and IPv6."""
    for client, server, attacker in ((CLIENT4, SERVER4, ATTACKER4), (CLIENT6, SERVER6, ATTACKER6)):
        k = cap.add(echo(client, server, 0x1001, 1), "new_connection")
        cap.add(echo(server, client, 0x1001, 1, reply=True), "established", k)
        cap.add(echo(client, server, 0x1001, 2), "established", k)
        cap.add(echo(server, client, 0x1001, 2, reply=True), "established", k)
        cap.add(echo(server, client, 0x2002, 1, reply=True), "icmp_no_request")
        cap.add(echo(client, server, 0x1001, 2, reply=True), "icmp_no_request")
        cap.add(echo(attacker, client, 0x3003, 1), "default_deny")


@case
def icmp_echo_both_ways(cap):
    """Two hosts pinging each other with the same identifier are two flows
    (dataplane/parser.cc: echo flows are keyed with the identifier on the
    requester's side only, so "A pings B" and "B pings A with the same
    identifier" are two flows). The published web server 10.0.0.80 pings
    an outside host, and that host pings the web server (allowed by the
    ping-web rule), both with identifier 0 (RFC 792 allows any value;
    several stacks and tools use 0) and then both with identifier 7: each
    request opens its own connection and each reply passes on it."""
    for ident in (0, 7):
        k1 = cap.add(echo(WEB4, SERVER4, ident, 1), "new_connection")
        cap.add(echo(SERVER4, WEB4, ident, 1, reply=True), "established", k1)
        k2 = cap.add(echo(SERVER4, WEB4, ident, 1), "new_connection")
        cap.add(echo(WEB4, SERVER4, ident, 1, reply=True), "established", k2)
        cap.add(echo(WEB4, SERVER4, ident, 2), "established", k1)
        cap.add(echo(SERVER4, WEB4, ident, 2, reply=True), "established", k1)


@case
def icmp_errors_v4(cap):
    """ICMP errors (RFC 792, RFC 5927). Related, with the connection they
    quote: port unreachable and time exceeded about a tracked UDP flow,
    fragmentation needed about a TCP segment inside the window, host
    unreachable about an echo request. Unrelated (icmp_error_unrelated):
    an error quoting a flow that does not exist, an error sent to the
    wrong end (its destination is not the quoted packet's source), and
    fragmentation needed quoting a TCP sequence number far outside the
    window (a blind attack on the connection, RFC 5927 4.1)."""
    k1 = cap.add(frame(CLIENT4, SERVER4, UDP(sport=5000, dport=53) / Raw(b"query")), "new_connection")
    quoted = IPerror(src=CLIENT4, dst=SERVER4, id=7, ttl=63) / UDPerror(sport=5000, dport=53, len=13)
    cap.add(frame(SERVER4, CLIENT4, ICMP(type=3, code=3) / quoted), "related", k1)
    cap.add(frame(ROUTER4, CLIENT4, ICMP(type=11, code=0) / quoted), "related", k1)
    nobody = IPerror(src=CLIENT4, dst=SERVER4, id=8) / UDPerror(sport=5001, dport=53, len=13)
    cap.add(frame(SERVER4, CLIENT4, ICMP(type=3, code=3) / nobody), "icmp_error_unrelated")
    cap.add(frame(CLIENT4, SERVER4, ICMP(type=3, code=3) / quoted), "icmp_error_unrelated")

    t = Tcp(CLIENT4, 40020, SERVER4, 80, 0x01000000, 0x02000000)
    k2 = t.handshake(cap)
    seq = t.nxt[True]
    cap.add(t.seg(True, "PA", payload(1400)), "established", k2)
    seg = IPerror(src=CLIENT4, dst=SERVER4, id=9, flags="DF") / TCPerror(sport=40020, dport=80, seq=seq)
    cap.add(frame(ROUTER4, CLIENT4, ICMP(type=3, code=4, nexthopmtu=1280) / seg), "related", k2)
    blind = IPerror(src=CLIENT4, dst=SERVER4, id=9, flags="DF") / \
        TCPerror(sport=40020, dport=80, seq=seq + 0x40000000)
    cap.add(frame(ATTACKER4, CLIENT4, ICMP(type=3, code=4, nexthopmtu=68) / blind), "icmp_error_unrelated")
    cap.add(t.seg(False, "A"), "established", k2)

    k3 = cap.add(echo(CLIENT4, "198.51.100.99", 0x4004, 1), "new_connection")
    ping = IPerror(src=CLIENT4, dst="198.51.100.99", id=10) / ICMPerror(type=8, id=0x4004, seq=1)
    cap.add(frame(ROUTER4, CLIENT4, ICMP(type=3, code=1) / ping), "related", k3)

    # A SYN to a host that does not answer: the router's host unreachable
    # quotes the SYN itself (SYN_SENT).
    u = Tcp(CLIENT4, 40022, "198.51.100.98", 443, 0x05000000, 0)
    k4 = cap.add(u.seg(True, "S"), "new_connection")
    syn = IPerror(src=CLIENT4, dst="198.51.100.98", id=11) / \
        TCPerror(sport=40022, dport=443, seq=0x05000000, flags="S")
    cap.add(frame(ROUTER4, CLIENT4, ICMP(type=3, code=1) / syn), "related", k4)

    # Errors about the reply direction travel to the outside: the inside
    # client's port unreachable for a late answer after it closed its
    # socket, and an inside router's time exceeded for the server's packet.
    back = IPerror(src=SERVER4, dst=CLIENT4, id=12, ttl=1) / UDPerror(sport=53, dport=5000, len=14)
    cap.add(frame(SERVER4, CLIENT4, UDP(sport=53, dport=5000) / Raw(b"answer")), "established", k1)
    cap.add(frame(CLIENT4, SERVER4, ICMP(type=3, code=3) / back), "related", k1)
    cap.add(frame("10.0.0.1", SERVER4, ICMP(type=11, code=0) / back), "related", k1)


@case
def icmp_errors_v6(cap):
    """ICMPv6 errors (RFC 4443 3). Related: packet too big about a TCP
    segment inside the window, time exceeded and parameter problem about
    tracked flows. Unrelated: destination unreachable quoting no flow,
    packet too big quoting a sequence number far outside the window, and
    an error travelling to the wrong end."""
    t = Tcp(CLIENT6, 40021, SERVER6, 443, 0x03000000, 0x04000000)
    k1 = t.handshake(cap)
    seq = t.nxt[True]
    cap.add(t.seg(True, "PA", payload(1400)), "established", k1)
    seg = IPerror6(src=CLIENT6, dst=SERVER6) / TCPerror(sport=40021, dport=443, seq=seq, flags="PA")
    cap.add(frame(ROUTER6, CLIENT6, ICMPv6PacketTooBig(mtu=1280) / seg), "related", k1)
    blind = IPerror6(src=CLIENT6, dst=SERVER6) / \
        TCPerror(sport=40021, dport=443, seq=seq + 0x40000000, flags="PA")
    cap.add(frame(ATTACKER6, CLIENT6, ICMPv6PacketTooBig(mtu=1280) / blind), "icmp_error_unrelated")
    cap.add(t.seg(False, "A"), "established", k1)

    k2 = cap.add(frame(CLIENT6, SERVER6, UDP(sport=5002, dport=123) / Raw(b"ntp?")), "new_connection")
    quoted = IPerror6(src=CLIENT6, dst=SERVER6, hlim=1) / UDPerror(sport=5002, dport=123, len=12)
    cap.add(frame(ROUTER6, CLIENT6, ICMPv6TimeExceeded(code=0) / quoted), "related", k2)
    cap.add(frame(SERVER6, CLIENT6, ICMPv6ParamProblem(code=0, ptr=6) / quoted), "related", k2)
    nobody = IPerror6(src=CLIENT6, dst=SERVER6) / UDPerror(sport=5003, dport=123, len=12)
    cap.add(frame(SERVER6, CLIENT6, ICMPv6DestUnreach(code=4) / nobody), "icmp_error_unrelated")
    cap.add(frame(CLIENT6, SERVER6, ICMPv6DestUnreach(code=4) / quoted), "icmp_error_unrelated")

    k3 = cap.add(echo(CLIENT6, "2001:db8:100::99", 0x4005, 1), "new_connection")
    ping = IPerror6(src=CLIENT6, dst="2001:db8:100::99") / ICMPv6EchoRequest(id=0x4005, seq=1)
    cap.add(frame(ROUTER6, CLIENT6, ICMPv6DestUnreach(code=3) / ping), "related", k3)


@case
def icmp_untracked(cap):
    """ICMP that is neither echo nor error, and neighbour discovery.
    Timestamp requests (ICMP 13) are not tracked: from the inside the
    inside-out rule allows them (untracked), from the outside nothing
    does (default_deny). MLD reports (RFC 3810, RFC 2710) to link-local
    groups are allowed by the mld rule (untracked). Neighbour discovery
    (RFC 4861: router solicitation and advertisement, neighbour
    solicitation and advertisement, redirect) passes as ipv6_nd with hop
    limit 255 and is ipv6_nd_bad_hop_limit with anything less (routed,
    so forged off-link). An ICMPv6 node information query from the
    outside matches no rule."""
    cap.add(frame(CLIENT4, SERVER4, ICMP(type=13, id=1, seq=1, ts_ori=36000000, ts_rx=0, ts_tx=0)), "untracked")
    cap.add(frame(ATTACKER4, CLIENT4, ICMP(type=13, id=2, seq=1, ts_ori=36000000, ts_rx=0, ts_tx=0)), "default_deny")
    mld2 = IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]) / ICMPv6MLReport2()
    cap.add(eth(LINK_IN6, dst="33:33:00:00:00:16") / IPv6(src=LINK_IN6, dst="ff02::16", hlim=1) / mld2,
            "untracked")
    mld1 = IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]) / ICMPv6MLReport(mladdr="ff02::1:ff00:10")
    cap.add(eth(LINK_OUT6, dst="33:33:ff:00:00:10") /
            IPv6(src=LINK_OUT6, dst="ff02::1:ff00:10", hlim=1) / mld1, "untracked")
    cap.add(eth(LINK_IN6, dst="33:33:00:00:00:02") / IPv6(src=LINK_IN6, dst="ff02::2", hlim=255) /
            ICMPv6ND_RS(), "ipv6_nd")
    cap.add(eth(LINK_OUT6, dst="33:33:00:00:00:01") / IPv6(src=LINK_OUT6, dst="ff02::1", hlim=255) /
            ICMPv6ND_RA(), "ipv6_nd")
    cap.add(frame(LINK_IN6, "ff02::1:ff00:14", ICMPv6ND_NS(tgt=SERVER6), ip_kw={"hlim": 255}),
            "ipv6_nd")
    cap.add(frame(SERVER6, CLIENT6, ICMPv6ND_NA(tgt=SERVER6, R=0, S=1, O=1), ip_kw={"hlim": 255}),
            "ipv6_nd")
    cap.add(frame(LINK_OUT6, CLIENT6, ICMPv6ND_Redirect(tgt=LINK_OUT6, dst=SERVER6),
                  ip_kw={"hlim": 255}), "ipv6_nd")
    cap.add(frame(ATTACKER6, CLIENT6, ICMPv6ND_NS(tgt=CLIENT6), ip_kw={"hlim": 64}),
            "ipv6_nd_bad_hop_limit")
    cap.add(frame(ATTACKER6, CLIENT6, ICMPv6ND_RA(), ip_kw={"hlim": 254}), "ipv6_nd_bad_hop_limit")
    cap.add(frame(ATTACKER6, CLIENT6, ICMPv6NIQueryNOOP(nonce=b"holdfast")), "default_deny")


@case
def icmp_expiry(cap):
    """An echo reply that comes too late: 6 s after the request, past the
    ICMP timeout (5 s in the config), the flow has expired and the reply
    is icmp_no_request. A reply in time on a new request passes."""
    k1 = cap.add(echo(CLIENT4, SERVER4, 0x5005, 1), "new_connection")
    assert k1
    cap.wait(6)
    cap.add(echo(SERVER4, CLIENT4, 0x5005, 1, reply=True), "icmp_no_request")
    k2 = cap.add(echo(CLIENT4, SERVER4, 0x5005, 2), "new_connection")
    cap.add(echo(SERVER4, CLIENT4, 0x5005, 2, reply=True), "established", k2)


# ------------------------------------------------------------ UDP, other


@case
def udp_states(cap):
    """UDP flows without a handshake: unreplied until the first reply,
    assured after it. With the config's timeouts (unreplied 5 s, assured
    10 s): an assured flow idle 6 s lives on; an unreplied flow idle 6 s
    has expired, so its late reply is a first packet from the outside and
    is dropped (default_deny), and the client's next datagram opens a new
    connection; the assured flow idle 17 s has expired too and its next
    datagram opens a new connection."""
    a = lambda src, dst, sp, dp, data: frame(src, dst, UDP(sport=sp, dport=dp) / Raw(data))  # noqa: E731
    k1 = cap.add(a(CLIENT4, SERVER4, 7000, 53, b"query-a"), "new_connection")
    cap.add(a(SERVER4, CLIENT4, 53, 7000, b"answer-a"), "established", k1)
    cap.wait(6)
    cap.add(a(CLIENT4, SERVER4, 7000, 53, b"query-a2"), "established", k1)
    cap.add(a(SERVER4, CLIENT4, 53, 7000, b"answer-a2"), "established", k1)
    k2 = cap.add(a(CLIENT4, SERVER4, 7001, 53, b"query-b"), "new_connection")
    cap.add(a(CLIENT4, SERVER4, 7001, 53, b"query-b-again"), "established", k2)
    cap.wait(6)
    cap.add(a(SERVER4, CLIENT4, 53, 7001, b"answer-b-late"), "default_deny")
    k3 = cap.add(a(CLIENT4, SERVER4, 7001, 53, b"query-b2"), "new_connection")
    cap.add(a(SERVER4, CLIENT4, 53, 7001, b"answer-b2"), "established", k3)
    cap.wait(11)
    cap.add(a(CLIENT4, SERVER4, 7000, 53, b"query-a3"), "new_connection")
    k5 = cap.add(a(CLIENT6, SERVER6, 7002, 53, b"query-c"), "new_connection")
    cap.add(a(SERVER6, CLIENT6, 53, 7002, b"answer-c"), "established", k5)
    cap.add(a(ATTACKER4, CLIENT4, 53, 7003, b"unsolicited"), "default_deny")


@case
def other_protocols(cap):
    """IP protocols without a module of their own are tracked per address
    pair and protocol (modules/other): GRE from the inside opens a flow
    and the outside's GRE back passes; ESP over IPv6 likewise; SCTP from
    the outside matches no rule."""
    k1 = cap.add(frame(CLIENT4, SERVER4, GRE(proto=0x0800) / IP(src="192.168.1.1", dst="192.168.2.1") /
                       UDP(sport=1, dport=2)), "new_connection")
    cap.add(frame(SERVER4, CLIENT4, GRE(proto=0x0800) / IP(src="192.168.2.1", dst="192.168.1.1") /
                  UDP(sport=2, dport=1)), "established", k1)
    esp_out = ip(CLIENT6, SERVER6, nh=50) / Raw(struct.pack("!II", 0x1000, 1) + payload(48))
    k2 = cap.add(eth(CLIENT6) / esp_out, "new_connection")
    esp_back = ip(SERVER6, CLIENT6, nh=50) / Raw(struct.pack("!II", 0x2000, 1) + payload(48))
    cap.add(eth(SERVER6) / esp_back, "established", k2)
    cap.add(frame(ATTACKER4, CLIENT4, SCTP(sport=3868, dport=3868)), "default_deny")


# --------------------------------------------------------------- IPv6 ext


@case
def ipv6_extension_headers(cap):
    """IPv6 extension header chains (RFC 8200 4, RFC 5095, RFC 7045). A
    UDP flow whose first datagram carries hop-by-hop options (the reply
    without them is the same flow), a TCP SYN with destination options, a
    segment routing header (type 4) with no segments left: all open
    connections. A type 0 routing header is ipv6_routing_type0 (RFC
    5095); hop-by-hop anywhere but first, two fragment headers, and a
    header running past the payload are ipv6_bad_extension; nine
    extension headers are ipv6_too_many_extensions."""
    hbh = IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\x00\x00\x00\x00")])
    k1 = cap.add(eth(CLIENT6) / IPv6(src=CLIENT6, dst=SERVER6) / hbh / UDP(sport=7100, dport=53) /
                 Raw(b"with hop-by-hop"), "new_connection")
    cap.add(frame(SERVER6, CLIENT6, UDP(sport=53, dport=7100) / Raw(b"plain")), "established", k1)
    t = Tcp(CLIENT6, 40030, SERVER6, 80, 0x01000000, 0x02000000)
    syn = t.seg(True, "S")
    syn[IPv6].remove_payload()
    k2 = cap.add(syn / IPv6ExtHdrDestOpt() / TCP(sport=40030, dport=80, flags="S", seq=0x01000000,
                                                window=64240), "new_connection")
    cap.add(t.seg(False, "SA"), "established", k2)
    srh = IPv6ExtHdrSegmentRouting(addresses=[SERVER6], segleft=0, lastentry=0)
    cap.add(eth(CLIENT6) / IPv6(src=CLIENT6, dst=SERVER6) / srh / UDP(sport=7101, dport=53) /
            Raw(b"segment routing"), "new_connection")
    rh0 = IPv6ExtHdrRouting(type=0, addresses=[CLIENT6], segleft=1)
    cap.add(eth(ATTACKER6) / IPv6(src=ATTACKER6, dst=WEB6) / rh0 / TCP(sport=50010, dport=80, flags="S"),
            "ipv6_routing_type0")
    cap.add(eth(CLIENT6) / IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrDestOpt() /
            IPv6ExtHdrHopByHop() / UDP(sport=7102, dport=53), "ipv6_bad_extension")
    cap.add(eth(CLIENT6) / IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrFragment(nh=44, id=1) /
            IPv6ExtHdrFragment(nh=17, id=1) / UDP(sport=7103, dport=53), "ipv6_bad_extension")
    # A destination options header claiming 64 bytes where 8 remain.
    cut = bytes(IPv6ExtHdrDestOpt(nh=59))
    cut = cut[:1] + bytes([7]) + cut[2:]
    cap.add(eth(CLIENT6) / IPv6(src=CLIENT6, dst=SERVER6, nh=60) / Raw(cut), "ipv6_bad_extension")
    chain = IPv6ExtHdrHopByHop()
    for _ in range(8):
        chain = chain / IPv6ExtHdrDestOpt()
    cap.add(eth(CLIENT6) / IPv6(src=CLIENT6, dst=SERVER6) / chain / UDP(sport=7104, dport=53),
            "ipv6_too_many_extensions")


@case
def ipv6_routing_checksum(cap):
    """Upper-layer checksums under a routing header (RFC 8200 8.1: "If the
    IPv6 packet contains a Routing header, the Destination Address used in
    the pseudo-header is that of the final destination"). From the inside,
    through the segment routing header of an SRv6 path (RFC 8754) whose
    next segment is the router 2001:db8:100::1 and whose final segment is
    the server, go a UDP datagram, an echo request and a TCP SYN, each with
    the checksum the sender computed over the final destination: all are
    correct packets and open connections. The same datagram with its
    checksum computed over the router's address (the wrong pseudo-header)
    is bad_l4_checksum."""
    def srh():
        return IPv6ExtHdrSegmentRouting(addresses=[SERVER6, ROUTER6], segleft=1, lastentry=1)

    def via_router(l4):
        return eth(CLIENT6) / IPv6(src=CLIENT6, dst=ROUTER6) / srh() / l4

    cap.add(via_router(UDP(sport=7120, dport=53) / Raw(b"srv6 datagram")), "new_connection")
    cap.add(via_router(ICMPv6EchoRequest(id=0x7120, seq=1, data=b"srv6 ping")), "new_connection")
    cap.add(via_router(TCP(sport=40070, dport=80, flags="S", seq=0x18000000, window=64240)),
            "new_connection")
    wrong = bytes(IPv6(src=CLIENT6, dst=ROUTER6) / UDP(sport=7121, dport=53) / Raw(b"srv6 datagram"))
    cap.add(via_router(UDP(sport=7121, dport=53, chksum=struct.unpack("!H", wrong[46:48])[0]) /
                       Raw(b"srv6 datagram")), "bad_l4_checksum")


# -------------------------------------------------------------- fragments


def fragments4(src, dst, l4, ident, sizes, proto=None):
    """Splits the IPv4 datagram src -> dst carrying l4 into fragments of
    the given payload sizes (multiples of 8 but the last)."""
    whole = bytes(IP(src=src, dst=dst, id=ident) / l4)
    ihl = (whole[0] & 0x0F) * 4
    data = whole[ihl:]
    proto = whole[9] if proto is None else proto
    out, off = [], 0
    for i, n in enumerate(sizes):
        chunk = data[off:off + n]
        more = i + 1 < len(sizes)
        out.append(eth(src) / IP(src=src, dst=dst, id=ident, proto=proto, flags="MF" if more else 0,
                                 frag=off // 8) / Raw(chunk))
        off += n
    if off != len(data):
        raise ValueError("fragment sizes %r do not add up to %d" % (sizes, len(data)))
    return out


def fragments6(src, dst, l4, ident, sizes, nh=None):
    whole = bytes(IPv6(src=src, dst=dst) / l4)
    data = whole[40:]
    nh = whole[6] if nh is None else nh
    out, off = [], 0
    for i, n in enumerate(sizes):
        chunk = data[off:off + n]
        more = i + 1 < len(sizes)
        out.append(eth(src) / IPv6(src=src, dst=dst, nh=44) /
                   IPv6ExtHdrFragment(nh=nh, offset=off // 8, m=int(more), id=ident) / Raw(chunk))
        off += n
    if off != len(data):
        raise ValueError("fragment sizes %r do not add up to %d" % (sizes, len(data)))
    return out


@case
def fragments_ipv4(cap):
    """IPv4 fragments (RFC 791, RFC 1858). A UDP datagram from the inside
    in three fragments: the first opens the connection, the later two
    pass as fragment with its ID; the reply in two fragments likewise. An
    echo request in two fragments. A later fragment arriving before its
    first is frag_without_first; the first and the rest then pass. A
    datagram from the outside that policy denies: the first fragment is
    default_deny, the later one frag_of_dropped. A first fragment too
    short for the TCP header (tiny fragment attack) is
    frag_first_too_small; a later fragment at offset 8 of a TCP datagram
    would overwrite the header (frag_overlaps_header); one that would
    reassemble past 65535 bytes is frag_bad_offset. A later fragment 6 s
    after its first, past the fragment timeout (5 s), is
    frag_without_first."""
    d = UDP(sport=7200, dport=9000) / Raw(payload(3000))
    f = fragments4(CLIENT4, SERVER4, d, 0x0101, [1480, 1480, 48])
    k1 = cap.add(f[0], "new_connection")
    cap.add(f[1], "fragment", k1)
    cap.add(f[2], "fragment", k1)
    r = fragments4(SERVER4, CLIENT4, UDP(sport=9000, dport=7200) / Raw(payload(2000, 1)), 0x0202,
                   [1480, 528])
    cap.add(r[0], "established", k1)
    cap.add(r[1], "fragment", k1)
    e = fragments4(CLIENT4, SERVER4, ICMP(type=8, id=0x6006, seq=1) / Raw(payload(1600)), 0x0303,
                   [1480, 128])
    k2 = cap.add(e[0], "new_connection")
    cap.add(e[1], "fragment", k2)
    cap.add(fragments4(SERVER4, CLIENT4, ICMP(type=0, id=0x6006, seq=1) / Raw(payload(1600)), 0x0304,
                       [1480, 128])[0], "established", k2)
    o = fragments4(CLIENT4, SERVER4, UDP(sport=7201, dport=9000) / Raw(payload(2500)), 0x0404,
                   [1480, 1028])
    cap.add(o[1], "frag_without_first")
    k3 = cap.add(o[0], "new_connection")
    cap.add(o[1], "fragment", k3)
    x = fragments4(ATTACKER4, CLIENT4, UDP(sport=53, dport=7300) / Raw(payload(2000)), 0x0505,
                   [1480, 528])
    cap.add(x[0], "default_deny")
    cap.add(x[1], "frag_of_dropped")
    tiny = eth(ATTACKER4) / IP(src=ATTACKER4, dst=WEB4, id=0x0606, proto=6, flags="MF", frag=0) / \
        Raw(bytes(TCP(sport=50020, dport=80, flags="S"))[:8])
    cap.add(tiny, "frag_first_too_small")
    overlap = eth(ATTACKER4) / IP(src=ATTACKER4, dst=WEB4, id=0x0707, proto=6, frag=1) / \
        Raw(bytes(TCP(sport=50020, dport=22, flags="S"))[8:])
    cap.add(overlap, "frag_overlaps_header")
    death = eth(ATTACKER4) / IP(src=ATTACKER4, dst=CLIENT4, id=0x0808, proto=1, frag=8189) / \
        Raw(payload(100))
    cap.add(death, "frag_bad_offset")
    late = fragments4(CLIENT4, SERVER4, UDP(sport=7202, dport=9000) / Raw(payload(1600)), 0x0909,
                      [1480, 128])
    k4 = cap.add(late[0], "new_connection")
    assert k4
    cap.wait(6)
    cap.add(late[1], "frag_without_first")


@case
def fragmented_tcp(cap):
    """TCP segments fragmented by IPv4 (sent without DF over a path with a
    smaller MTU, RFC 791 2.3): the server sends a 2000-byte segment in two
    fragments and the client acknowledges all 2000 bytes; the same over
    IPv6 with a fragment header (RFC 8200 4.5). The first fragments are
    established, the later ones fragment, and the acknowledgements of the
    reassembled segments are established too: they acknowledge data the
    server did send."""
    for client, server in ((CLIENT4, SERVER4), (CLIENT6, SERVER6)):
        t = Tcp(client, 40080, server, 80, 0x19000000, 0x1A000000)
        k = t.handshake(cap)
        cap.add(t.seg(True, "PA", payload(50)), "established", k)
        seg = t.seg(False, "PA", payload(2000, 3))
        tcp = seg[TCP]
        if ":" in client:
            f = fragments6(server, client, tcp, 0x1B1B1B1B, [1448, 572])
        else:
            f = fragments4(server, client, tcp, 0x1B1B, [1480, 540])
        cap.add(f[0], "established", k)
        cap.add(f[1], "fragment", k)
        cap.add(t.seg(True, "A"), "established", k)
        cap.add(t.seg(False, "PA", payload(100)), "established", k)
        cap.add(t.seg(True, "A"), "established", k)
        t.close(cap, k)


@case
def fragmented_icmp_error(cap):
    """ICMP errors that are themselves fragmented. A conforming router keeps
    an error within 576 bytes (IPv4, RFC 1812 4.3.2.3) or the 1280-byte
    minimum MTU (IPv6, RFC 4443 2.4(c)), so a fragmented error is forged or
    broken: the first fragment is icmp_error_fragmented and the later
    fragment takes its first's verdict (frag_of_dropped), whatever the
    number of workers: verdicts may not depend on how frames are spread
    over pipelines. Four routers send one each."""
    cap.add(frame(CLIENT4, SERVER4, UDP(sport=5004, dport=53) / Raw(payload(1000))),
            "new_connection")
    quoted = IPerror(src=CLIENT4, dst=SERVER4, id=20, ttl=1, len=1028) / \
        UDPerror(sport=5004, dport=53, len=1008, chksum=0) / Raw(payload(520))
    for n, router in enumerate(("198.51.100.1", "198.51.100.2", "192.0.2.1", "192.0.2.77")):
        error = ICMP(type=11, code=0) / quoted
        f = fragments4(router, CLIENT4, error, 0x0A00 + n, [296, 260])
        cap.add(f[0], "icmp_error_fragmented")
        cap.add(f[1], "frag_of_dropped")


@case
def fragments_ipv6(cap):
    """IPv6 fragments (RFC 8200 4.5, RFC 7112, RFC 6946). A UDP datagram
    in three fragments from the inside (first opens the connection, the
    rest are fragment with its ID) and an echo request in two. An
    orphan later fragment is frag_without_first; fragments of a denied
    datagram from the outside: default_deny, then frag_of_dropped. A
    first fragment that does not hold the whole header chain (RFC 7112:
    the UDP header cut after 4 bytes; a destination options header cut)
    is frag_first_too_small; a later fragment at offset 8 of a TCP
    datagram is frag_overlaps_header. An atomic fragment (offset 0, no
    more fragments) is a whole packet (RFC 6946) and opens a connection."""
    d = UDP(sport=7400, dport=9000) / Raw(payload(3000))
    f = fragments6(CLIENT6, SERVER6, d, 0x01010101, [1448, 1448, 112])
    k1 = cap.add(f[0], "new_connection")
    cap.add(f[1], "fragment", k1)
    cap.add(f[2], "fragment", k1)
    e = fragments6(CLIENT6, SERVER6, ICMPv6EchoRequest(id=0x7007, seq=1, data=payload(1600)),
                   0x02020202, [1448, 160])
    k2 = cap.add(e[0], "new_connection")
    cap.add(e[1], "fragment", k2)
    orphan = fragments6(CLIENT6, SERVER6, UDP(sport=7401, dport=9000) / Raw(payload(2000)),
                        0x03030303, [1448, 560])
    cap.add(orphan[1], "frag_without_first")
    x = fragments6(ATTACKER6, CLIENT6, UDP(sport=53, dport=7500) / Raw(payload(2000)), 0x04040404,
                   [1448, 560])
    cap.add(x[0], "default_deny")
    cap.add(x[1], "frag_of_dropped")
    udp_cut = eth(ATTACKER6) / IPv6(src=ATTACKER6, dst=WEB6, nh=44) / \
        IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=0x05050505) / \
        Raw(bytes(UDP(sport=53, dport=80, len=1000))[:4])
    cap.add(udp_cut, "frag_first_too_small")
    do_cut = bytes(IPv6ExtHdrDestOpt(nh=17, options=[PadN(optdata=bytes(12))]))[:8]
    chain_cut = eth(ATTACKER6) / IPv6(src=ATTACKER6, dst=WEB6, nh=44) / \
        IPv6ExtHdrFragment(nh=60, offset=0, m=1, id=0x06060606) / Raw(do_cut)
    cap.add(chain_cut, "frag_first_too_small")
    overlap = eth(ATTACKER6) / IPv6(src=ATTACKER6, dst=WEB6, nh=44) / \
        IPv6ExtHdrFragment(nh=6, offset=1, m=0, id=0x07070707) / Raw(payload(40))
    cap.add(overlap, "frag_overlaps_header")
    atomic = eth(CLIENT6) / IPv6(src=CLIENT6, dst=SERVER6, nh=44) / \
        IPv6ExtHdrFragment(nh=17, offset=0, m=0, id=0x08080808) / UDP(sport=7402, dport=53) / \
        Raw(b"atomic")
    k3 = cap.add(atomic, "new_connection")
    cap.add(frame(SERVER6, CLIENT6, UDP(sport=53, dport=7402) / Raw(b"reply")), "established", k3)


# ------------------------------------------------------ L2, VLAN, malformed


def raw_frame(src_addr, ethertype, body):
    return eth(src_addr, type=ethertype) / Raw(body)


@case
def layer2(cap):
    """Layer 2 (l2 settings: arp on, non_ip off, ipv6_nd on): an ARP
    request and reply pass as arp; LLDP and an unknown ethertype are
    non_ip_denied. Frames cut short: 10 bytes (eth_truncated), a VLAN tag
    cut after 2 bytes (vlan_truncated); three stacked tags are
    vlan_too_many_tags."""
    cap.add(Ether(src=MAC_IN, dst="ff:ff:ff:ff:ff:ff") /
            ARP(op=1, hwsrc=MAC_IN, psrc=CLIENT4, pdst="10.0.0.1"), "arp")
    cap.add(Ether(src=MAC_OUT, dst=MAC_IN) /
            ARP(op=2, hwsrc=MAC_OUT, psrc="10.0.0.1", hwdst=MAC_IN, pdst=CLIENT4), "arp")
    cap.add(Ether(src=MAC_OUT, dst="01:80:c2:00:00:0e", type=0x88CC) /
            Raw(bytes.fromhex("0207046c6c647000040703020000000000140602007800000000")), "non_ip_denied")
    cap.add(raw_frame(CLIENT4, 0x88B5, payload(46)), "non_ip_denied")
    cap.add(Raw(bytes.fromhex("02000000001402000000000a0800")[:10]), "eth_truncated")
    cap.add(Raw(bytes.fromhex("02000000001402000000000a81000064")), "vlan_truncated")
    cap.add(Ether(src=MAC_IN, dst=MAC_OUT, type=0x88A8) / Dot1Q(vlan=1, type=0x8100) /
            Dot1Q(vlan=2, type=0x8100) / Dot1Q(vlan=3) / IP(src=CLIENT4, dst=SERVER4) /
            UDP(sport=1, dport=2), "vlan_too_many_tags")


@case(config="synthetic-l2.config.json")
def layer2_switches(cap):
    """The l2 switches the other way round (synthetic-l2.config.json: arp
    off, non_ip on, ipv6_nd off): ARP is arp_denied, LLDP passes as
    non_ip, neighbour solicitation and advertisement are ipv6_nd_denied.
    IP traffic is unaffected: an inside UDP flow opens and is answered."""
    cap.add(Ether(src=MAC_IN, dst="ff:ff:ff:ff:ff:ff") /
            ARP(op=1, hwsrc=MAC_IN, psrc=CLIENT4, pdst="10.0.0.1"), "arp_denied")
    cap.add(Ether(src=MAC_OUT, dst="01:80:c2:00:00:0e", type=0x88CC) /
            Raw(bytes.fromhex("0207046c6c647000040703020000000000140602007800000000")), "non_ip")
    cap.add(frame(LINK_IN6, "ff02::1:ff00:14", ICMPv6ND_NS(tgt=SERVER6), ip_kw={"hlim": 255}),
            "ipv6_nd_denied")
    cap.add(frame(SERVER6, CLIENT6, ICMPv6ND_NA(tgt=SERVER6, R=0, S=1, O=1), ip_kw={"hlim": 255}),
            "ipv6_nd_denied")
    k = cap.add(frame(CLIENT4, SERVER4, UDP(sport=7605, dport=53) / Raw(b"q")), "new_connection")
    cap.add(frame(SERVER4, CLIENT4, UDP(sport=53, dport=7605) / Raw(b"a")), "established", k)


@case
def vlan(cap):
    """Tagged traffic: a TCP connection over 802.1Q VLAN 100, a UDP
    exchange over IPv6 double-tagged (802.1ad outer 0x88a8, 802.1Q inner,
    QinQ), a UDP exchange under the old 0x9100 QinQ ethertype, and ARP on
    a VLAN. All pass like untagged traffic."""
    def tag100(src):
        return eth(src, type=0x8100) / Dot1Q(vlan=100)
    t = Tcp(CLIENT4, 40040, SERVER4, 80, 0x01000000, 0x02000000, l2=tag100)
    k1 = t.handshake(cap)
    cap.add(t.seg(True, "PA", payload(100)), "established", k1)
    cap.add(t.seg(False, "PA", payload(100)), "established", k1)
    t.close(cap, k1)

    def qinq(src, outer=0x88A8):
        return eth(src, type=outer) / Dot1Q(vlan=10, type=0x8100) / Dot1Q(vlan=20)
    k2 = cap.add(qinq(CLIENT6) / IPv6(src=CLIENT6, dst=SERVER6) / UDP(sport=7600, dport=53) /
                 Raw(b"q"), "new_connection")
    cap.add(qinq(SERVER6) / IPv6(src=SERVER6, dst=CLIENT6) / UDP(sport=53, dport=7600) / Raw(b"a"),
            "established", k2)
    k3 = cap.add(qinq(CLIENT4, 0x9100) / IP(src=CLIENT4, dst=SERVER4) / UDP(sport=7601, dport=53) /
                 Raw(b"q"), "new_connection")
    cap.add(qinq(SERVER4, 0x9100) / IP(src=SERVER4, dst=CLIENT4) / UDP(sport=53, dport=7601) /
            Raw(b"a"), "established", k3)
    cap.add(Ether(src=MAC_IN, dst="ff:ff:ff:ff:ff:ff", type=0x8100) / Dot1Q(vlan=100) /
            ARP(op=1, hwsrc=MAC_IN, psrc=CLIENT4, pdst="10.0.0.1"), "arp")


def ipv4_bytes(pkt):
    """IPv4 header and payload of a scapy IP packet, checksums filled in."""
    return bytearray(bytes(pkt))


def refresh_ipv4_checksum(b, ihl=None):
    ihl = (b[0] & 0x0F) * 4 if ihl is None else ihl
    b[10:12] = b"\x00\x00"
    s = 0
    for i in range(0, ihl, 2):
        s += (b[i] << 8) | b[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    b[10:12] = struct.pack("!H", ~s & 0xFFFF)
    return b


@case
def malformed_ipv4(cap):
    """Malformed IPv4 (RFC 791, RFC 1122 3.2.1, RFC 7126): fewer than 20
    bytes (ipv4_truncated); version 5 and a header length under 20
    (ipv4_bad_header); a header length beyond the frame (ipv4_truncated);
    a total length below the header or beyond the frame
    (ipv4_bad_length); a wrong header checksum (ipv4_bad_checksum); an
    option whose length runs off the header (ipv4_bad_options); loose and
    strict source routes (ipv4_source_route, RFC 7126 4.3/4.4). A
    well-formed record-route option and Ethernet padding after the
    datagram (a 60-byte minimum frame) are fine: those open connections."""
    udp = UDP(sport=7700, dport=53) / Raw(b"x")
    good = ipv4_bytes(IP(src=CLIENT4, dst=SERVER4) / udp)
    cap.add(raw_frame(CLIENT4, 0x0800, bytes(good[:16])), "ipv4_truncated")
    b = bytearray(good)
    b[0] = 0x55
    cap.add(raw_frame(CLIENT4, 0x0800, bytes(refresh_ipv4_checksum(b, 20))), "ipv4_bad_header")
    b = bytearray(good)
    b[0] = 0x44
    cap.add(raw_frame(CLIENT4, 0x0800, bytes(b)), "ipv4_bad_header")
    b = bytearray(good)
    b[0] = 0x4F  # 60-byte header, 29 bytes present
    cap.add(raw_frame(CLIENT4, 0x0800, bytes(b)), "ipv4_truncated")
    b = bytearray(good)
    b[2:4] = struct.pack("!H", 16)
    cap.add(raw_frame(CLIENT4, 0x0800, bytes(refresh_ipv4_checksum(b))), "ipv4_bad_length")
    b = bytearray(good)
    b[2:4] = struct.pack("!H", 500)
    cap.add(raw_frame(CLIENT4, 0x0800, bytes(refresh_ipv4_checksum(b))), "ipv4_bad_length")
    b = bytearray(good)
    b[10] ^= 0xFF
    cap.add(raw_frame(CLIENT4, 0x0800, bytes(b)), "ipv4_bad_checksum")
    bad_opt = IP(src=CLIENT4, dst=SERVER4, options=[Raw(b"\x07\x09\x04\x00")]) / udp
    cap.add(eth(CLIENT4) / bad_opt, "ipv4_bad_options")
    lsrr = IP(src=ATTACKER4, dst=CLIENT4, options=[Raw(b"\x83\x07\x04" + bytes(4) + b"\x00")]) / udp
    cap.add(eth(ATTACKER4) / lsrr, "ipv4_source_route")
    ssrr = IP(src=CLIENT4, dst=SERVER4, options=[Raw(b"\x89\x07\x04" + bytes(4) + b"\x00")]) / udp
    cap.add(eth(CLIENT4) / ssrr, "ipv4_source_route")
    rr = IP(src=CLIENT4, dst=SERVER4, options=[Raw(b"\x07\x07\x04" + bytes(4) + b"\x00")]) / \
        UDP(sport=7701, dport=53) / Raw(b"record route")
    cap.add(eth(CLIENT4) / rr, "new_connection")
    padded = eth(CLIENT4) / IP(src=CLIENT4, dst=SERVER4) / UDP(sport=7702, dport=53) / Raw(b"p")
    cap.add(bytes(padded) + bytes(60 - len(bytes(padded))), "new_connection")


@case
def malformed_ipv6(cap):
    """Malformed IPv6 (RFC 8200, RFC 4942): fewer than 40 bytes
    (ipv6_truncated), version 4 under the IPv6 ethertype
    (ipv6_bad_header), a payload length beyond the frame
    (ipv6_bad_length), IPv4-mapped source and destination addresses
    (ipv6_mapped_address, RFC 4942 2.2)."""
    good = bytes(IPv6(src=CLIENT6, dst=SERVER6) / UDP(sport=7800, dport=53) / Raw(b"x"))
    cap.add(raw_frame(CLIENT6, 0x86DD, good[:36]), "ipv6_truncated")
    b = bytearray(good)
    b[0] = 0x40 | (b[0] & 0x0F)
    cap.add(raw_frame(CLIENT6, 0x86DD, bytes(b)), "ipv6_bad_header")
    b = bytearray(good)
    b[4:6] = struct.pack("!H", 400)
    cap.add(raw_frame(CLIENT6, 0x86DD, bytes(b)), "ipv6_bad_length")
    cap.add(frame("::ffff:10.0.0.10", SERVER6, UDP(sport=7801, dport=53)), "ipv6_mapped_address")
    cap.add(frame(ATTACKER6, "::ffff:10.0.0.10", UDP(sport=53, dport=7802)), "ipv6_mapped_address")


def udp_with_checksum_ffff(src, dst, sport, dport):
    """A UDP datagram whose checksum computes to zero, so that it is sent as
    0xffff. With a two-byte payload of zero the checksum field is c = ~S (S
    the one's complement sum of the rest); a payload of c adds ~S to that
    sum, which makes it 0xffff and the computed checksum zero."""
    zero = frame(src, dst, UDP(sport=sport, dport=dport) / Raw(b"\x00\x00"))
    c = bytes(zero[UDP])[6:8]
    pkt = frame(src, dst, UDP(sport=sport, dport=dport) / Raw(c))
    if bytes(pkt[UDP])[6:8] != b"\xff\xff":
        raise ValueError("the UDP checksum did not come out as zero")
    return pkt


def tcp_bytes(src, dst, tcp):
    """The IP datagram of a TCP segment with a correct checksum, as bytes."""
    return bytes(ip(src, dst) / tcp)


@case
def malformed_l4(cap):
    """Malformed transport headers (RFC 9293 3.1, RFC 768, RFC 792, RFC
    4443, RFC 8200 8.1). TCP: a segment shorter than 20 bytes and one
    whose data offset points past the segment (tcp_truncated), a data
    offset under 5 (tcp_bad_header), SYN+FIN and no flags at all
    (tcp_bad_flags), an MSS option of length 3 and an option running off
    the header (tcp_bad_options), a wrong checksum (bad_l4_checksum).
    UDP: fewer than 8 bytes (udp_truncated), a length under 8 or beyond
    the datagram (udp_bad_length), a wrong checksum (bad_l4_checksum),
    a zero checksum over IPv6 (bad_l4_checksum) but over IPv4 (allowed by
    RFC 768: opens a connection). ICMP shorter than 8 bytes
    (icmp_truncated), ICMP and ICMPv6 with wrong checksums
    (bad_l4_checksum), ICMP carried in IPv6 and ICMPv6 carried in IPv4
    (unsupported_protocol). ICMP errors whose quoted packet is an ICMP
    error, is cut inside its transport header, is not IPv4, or is a later
    fragment (icmp_bad_inner)."""
    syn = TCP(sport=40050, dport=80, flags="S", seq=1000, window=1024)
    whole = tcp_bytes(CLIENT4, SERVER4, syn)
    cap.add(raw_frame(CLIENT4, 0x0800, bytes(IP(src=CLIENT4, dst=SERVER4, proto=6) / Raw(whole[20:32]))),
            "tcp_truncated")
    b = bytearray(whole)
    b[32] = 0x80  # data offset 8 words, 5 present
    cap.add(raw_frame(CLIENT4, 0x0800, bytes(b)), "tcp_truncated")
    b = bytearray(whole)
    b[32] = 0x40
    cap.add(raw_frame(CLIENT4, 0x0800, bytes(b)), "tcp_bad_header")
    cap.add(frame(ATTACKER4, WEB4, TCP(sport=50030, dport=80, flags="SF")), "tcp_bad_flags")
    cap.add(frame(ATTACKER4, WEB4, TCP(sport=50031, dport=80, flags="")), "tcp_bad_flags")
    # Options written as bytes after a 24-byte header: scapy's checksum
    # then covers them as it covers any segment.
    cap.add(frame(CLIENT4, SERVER4, TCP(sport=40051, dport=80, flags="S", dataofs=6) /
                  Raw(b"\x02\x03\x05\x00")), "tcp_bad_options")
    cap.add(frame(CLIENT4, SERVER4, TCP(sport=40052, dport=80, flags="S", dataofs=6) /
                  Raw(b"\x01\x01\x08\x0a")), "tcp_bad_options")
    cap.add(frame(CLIENT4, SERVER4, TCP(sport=40053, dport=80, flags="S", chksum=0x1234)),
            "bad_l4_checksum")
    cap.add(frame(CLIENT6, SERVER6, TCP(sport=40054, dport=80, flags="S", chksum=0x1234)),
            "bad_l4_checksum")

    cap.add(raw_frame(CLIENT4, 0x0800, bytes(IP(src=CLIENT4, dst=SERVER4, proto=17) / Raw(b"\x1e\x00\x00\x35"))),
            "udp_truncated")
    cap.add(frame(CLIENT4, SERVER4, UDP(sport=7900, dport=53, len=6) / Raw(b"abc")), "udp_bad_length")
    cap.add(frame(CLIENT4, SERVER4, UDP(sport=7901, dport=53, len=200) / Raw(b"abc")), "udp_bad_length")
    cap.add(frame(CLIENT4, SERVER4, UDP(sport=7902, dport=53, chksum=0x1234) / Raw(b"abc")),
            "bad_l4_checksum")
    cap.add(frame(CLIENT6, SERVER6, UDP(sport=7903, dport=53, chksum=0) / Raw(b"abc")),
            "bad_l4_checksum")
    k = cap.add(frame(CLIENT4, SERVER4, UDP(sport=7904, dport=53, chksum=0) / Raw(b"abc")),
                "new_connection")
    assert k
    # A computed checksum of zero goes on the wire as 0xffff (RFC 768).
    cap.add(udp_with_checksum_ffff(CLIENT6, SERVER6, 7905, 53), "new_connection")

    cap.add(raw_frame(CLIENT4, 0x0800, bytes(IP(src=CLIENT4, dst=SERVER4, proto=1) / Raw(b"\x08\x00\xf7\xff"))),
            "icmp_truncated")
    cap.add(frame(CLIENT4, SERVER4, ICMP(type=8, id=1, seq=1, chksum=0x1234)), "bad_l4_checksum")
    cap.add(frame(CLIENT6, SERVER6, ICMPv6EchoRequest(id=1, seq=1, cksum=0x1234)), "bad_l4_checksum")
    cap.add(eth(CLIENT6) / IPv6(src=CLIENT6, dst=SERVER6, nh=1) / ICMP(type=8, id=1, seq=1),
            "unsupported_protocol")
    cap.add(eth(CLIENT4) / IP(src=CLIENT4, dst=SERVER4, proto=58) / ICMPv6EchoRequest(id=1, seq=1, cksum=0),
            "unsupported_protocol")

    inner_err = IPerror(src=CLIENT4, dst=SERVER4) / ICMPerror(type=3, code=3)
    cap.add(frame(SERVER4, CLIENT4, ICMP(type=3, code=3) / inner_err), "icmp_bad_inner")
    cut = bytes(IPerror(src=CLIENT4, dst=SERVER4, proto=17, ihl=5, len=28))[:20] + b"\x1e\x00\x00\x35"
    cap.add(frame(SERVER4, CLIENT4, ICMP(type=3, code=3) / Raw(cut)), "icmp_bad_inner")
    v6_inner = bytes(IPv6(src=CLIENT6, dst=SERVER6) / UDP(sport=1, dport=2))
    cap.add(frame(SERVER4, CLIENT4, ICMP(type=3, code=3) / Raw(v6_inner)), "icmp_bad_inner")
    later = IPerror(src=CLIENT4, dst=SERVER4, proto=17, frag=10) / Raw(payload(8))
    cap.add(frame(SERVER4, CLIENT4, ICMP(type=3, code=3) / later), "icmp_bad_inner")


# -------------------------------------------------------------------- FTP
#
# Judged under synthetic-ftp.config.json: the inside may open TCP to 21,
# 2121 (both FTP control ports of the module) and 2100 (not one); nothing
# else is allowed, so a data connection passes only when the FTP module
# admits it ("expected", with "master": its control connection's ID).
# Expectations last 5 s. The contract (modules/ftp/ftp.h): announcements
# PORT and EPRT from the client, the final line of 227 and 229 replies from
# the server; refused when the announced address is not the announcer's
# (FTP bounce, RFC 2577 3), the port is below 1024, or the arguments do not
# parse; at most 2 pending per control connection, the oldest replaced; the
# first matching SYN consumes an expectation; lines are read in sequence
# order, across segments, lines over 512 bytes skipped.

FTP_CONFIG = "synthetic-ftp.config.json"


def hp(addr, port):
    """h1,h2,h3,h4,p1,p2 of an IPv4 address and a port (RFC 959 4.1.2)."""
    return "%s,%d,%d" % (addr.replace(".", ","), port >> 8, port & 0xff)


class FtpControl:
    """An FTP control connection: a handshake, then each command and reply
    one PSH/ACK segment acknowledging everything the other end sent. Every
    frame of it is established (the control connection is ordinary TCP)."""

    def __init__(self, cap, client, cport, server, sport=21, cisn=0x46000000, sisn=0x47000000,
                 banner=True):
        self.cap = cap
        self.t = Tcp(client, cport, server, sport, cisn, sisn)
        self.k = self.t.handshake(cap)
        if banner:
            self.reply("220 Holdfast synthetic FTP server")

    def send(self, from_client, data, **kw):
        self.cap.add(self.t.seg(from_client, "PA", data, **kw), "established", self.k)

    def cmd(self, text):
        self.send(True, text.encode() + b"\r\n")

    def reply(self, text):
        self.send(False, text.encode() + b"\r\n")

    def ack(self, from_client):
        self.cap.add(self.t.seg(from_client, "A"), "established", self.k)

    def close(self):
        self.cmd("QUIT")
        self.reply("221 Goodbye.")
        self.t.close(self.cap, self.k)


def data_conn(cap, opener, oport, target, tport, reason, master=None, isn=0x48000000, data=b""):
    """A data connection's SYN with the verdict `reason`; when it passes
    (expected), the rest of the connection: SYN/ACK, ACK, `data` from the
    opener (active mode: the server sends the file), FIN both ways, all
    established. Returns the connection ID (0 when the SYN is dropped)."""
    t = Tcp(opener, oport, target, tport, isn, isn + 0x01000000)
    k = cap.add(t.seg(True, "S"), reason, master=master)
    if reason != "expected":
        return 0
    cap.add(t.seg(False, "SA"), "established", k)
    cap.add(t.seg(True, "A"), "established", k)
    if data:
        cap.add(t.seg(True, "PA", data), "established", k)
        cap.add(t.seg(False, "A"), "established", k)
    t.close(cap, k)
    return k


@case(config=FTP_CONFIG)
def ftp_bounce(cap):
    """FTP bounce (RFC 2577 3): announcements naming an address other than
    the announcer's are refused, so the data SYN they ask for is judged by
    policy: PORT naming the inside web server 10.0.0.80 (the server would
    connect into the inside network) and the attacker 203.0.113.66, EPRT
    naming 10.0.0.80, EPRT |2| naming an IPv6 address on an IPv4 session,
    a 227 reply naming the attacker (the client would connect there), and
    over IPv6 an EPRT naming fd00:0:0:1::80: every such SYN is
    default_deny. The control segments themselves pass, and a PORT naming
    the client itself afterwards works (expected)."""
    c = FtpControl(cap, CLIENT4, 40200, SERVER4)
    c.cmd("PORT " + hp(WEB4, 50000))
    c.reply("200 PORT command successful.")
    data_conn(cap, SERVER4, 20, WEB4, 50000, "default_deny")
    c.cmd("PORT " + hp(ATTACKER4, 50001))
    c.reply("200 PORT command successful.")
    data_conn(cap, SERVER4, 20, ATTACKER4, 50001, "default_deny")
    c.cmd("EPRT |1|%s|50002|" % WEB4)
    c.reply("200 EPRT command successful.")
    data_conn(cap, SERVER4, 20, WEB4, 50002, "default_deny")
    c.cmd("EPRT |2|%s|50003|" % CLIENT6)
    c.reply("200 EPRT command successful.")
    data_conn(cap, SERVER6, 20, CLIENT6, 50003, "default_deny")
    c.cmd("PASV")
    c.reply("227 Entering Passive Mode (%s)." % hp(ATTACKER4, 50004))
    data_conn(cap, CLIENT4, 41000, ATTACKER4, 50004, "default_deny")
    c.cmd("PORT " + hp(CLIENT4, 50005))
    c.reply("200 PORT command successful.")
    data_conn(cap, SERVER4, 20, CLIENT4, 50005, "expected", c.k, data=payload(300))
    c.close()
    c6 = FtpControl(cap, CLIENT6, 40201, SERVER6)
    c6.cmd("EPRT |2|%s|50006|" % WEB6)
    c6.reply("200 EPRT command successful.")
    data_conn(cap, SERVER6, 20, WEB6, 50006, "default_deny")
    c6.cmd("EPRT |2|%s|50007|" % CLIENT6)
    c6.reply("200 EPRT command successful.")
    data_conn(cap, SERVER6, 20, CLIENT6, 50007, "expected", c6.k, data=payload(300))
    c6.close()


@case(config=FTP_CONFIG)
def ftp_low_port(cap):
    """Announced ports below 1024 are refused (RFC 2577 3: a bounce to a
    privileged service): PORT to port 25, EPRT to 1023 and a 229 reply for
    1023; each would-be data SYN is default_deny. Port 1024 itself is
    allowed: PORT 10,0,0,10,4,0 opens an expectation and its SYN passes as
    expected."""
    c = FtpControl(cap, CLIENT4, 40210, SERVER4)
    c.cmd("PORT " + hp(CLIENT4, 25))
    c.reply("200 PORT command successful.")
    data_conn(cap, SERVER4, 20, CLIENT4, 25, "default_deny")
    c.cmd("EPRT |1|%s|1023|" % CLIENT4)
    c.reply("200 EPRT command successful.")
    data_conn(cap, SERVER4, 20, CLIENT4, 1023, "default_deny")
    c.cmd("EPSV")
    c.reply("229 Entering Extended Passive Mode (|||1023|)")
    data_conn(cap, CLIENT4, 41010, SERVER4, 1023, "default_deny")
    c.cmd("PORT " + hp(CLIENT4, 1024))
    c.reply("200 PORT command successful.")
    data_conn(cap, SERVER4, 20, CLIENT4, 1024, "expected", c.k, data=payload(100))
    c.close()


@case(config=FTP_CONFIG)
def ftp_split_commands(cap):
    """Lines assembled across segments: a PORT command in three segments
    ("PO", "RT 10,0,0,1", "0,195,120" CRLF); a data SYN sent after the
    second is default_deny (nothing announced yet), the same SYN sent again
    after the third passes as expected. A 227 reply split in the middle of
    its last number ("...195,1" then "30)."): read per segment it would
    name port 49921 (default_deny), read as a line it names 50050
    (expected). An EPRT whose CR and LF arrive in different segments."""
    c = FtpControl(cap, CLIENT4, 40220, SERVER4)
    c.send(True, b"PO")
    c.send(True, b"RT 10,0,0,1")
    syn = Tcp(SERVER4, 20, CLIENT4, 50040, 0x48100000, 0x49100000)
    cap.add(syn.seg(True, "S", seq=0x48100000), "default_deny")
    c.send(True, b"0,195,120\r\n")
    c.reply("200 PORT command successful.")
    assert 195 * 256 + 120 == 50040
    data_conn(cap, SERVER4, 20, CLIENT4, 50040, "expected", c.k, isn=0x48100000, data=payload(200))
    c.cmd("PASV")
    c.send(False, b"227 Entering Passive Mode (198,51,100,20,195,1")
    c.ack(True)
    data_conn(cap, CLIENT4, 41020, SERVER4, 195 * 256 + 1, "default_deny")
    c.send(False, b"30).\r\n")
    data_conn(cap, CLIENT4, 41021, SERVER4, 195 * 256 + 130, "expected", c.k)
    c.send(True, b"EPRT |1|10.0.0.10|50060|\r")
    c.send(True, b"\n")
    c.reply("200 EPRT command successful.")
    data_conn(cap, SERVER4, 20, CLIENT4, 50060, "expected", c.k)
    c.close()


@case(config=FTP_CONFIG)
def ftp_out_of_order(cap):
    """Control bytes read in sequence order. A PORT segment's second half
    arrives before its first: held, nothing announced yet (a data SYN then
    is default_deny); when the first half arrives the line completes and
    the SYN sent again passes as expected. The PORT segment retransmitted
    after its expectation was consumed is read once: a SYN from another
    source port to the same port is default_deny. A retransmission that
    repeats an already read "NOOP" and carries a new PORT (segments
    repacketised) opens that PORT's expectation once: the first SYN
    passes, a second from another port is default_deny."""
    c = FtpControl(cap, CLIENT4, 40230, SERVER4)
    line = ("PORT " + hp(CLIENT4, 50070) + "\r\n").encode()
    start = c.t.nxt[True]
    ack = c.t.nxt[False]
    c.send(True, line[10:], seq=start + 10, ack=ack)
    syn = Tcp(SERVER4, 20, CLIENT4, 50070, 0x48200000, 0x49200000)
    cap.add(syn.seg(True, "S", seq=0x48200000), "default_deny")
    c.send(True, line[:10], seq=start, ack=ack)
    c.t.nxt[True] = start + len(line)
    c.reply("200 PORT command successful.")
    data_conn(cap, SERVER4, 20, CLIENT4, 50070, "expected", c.k, isn=0x48200000, data=payload(200))
    c.send(True, line, seq=start, ack=c.t.nxt[False])
    data_conn(cap, SERVER4, 2020, CLIENT4, 50070, "default_deny")
    noop_at = c.t.nxt[True]
    c.cmd("NOOP")
    c.reply("200 NOOP ok.")
    both = b"NOOP\r\n" + ("PORT " + hp(CLIENT4, 50071) + "\r\n").encode()
    c.send(True, both, seq=noop_at, ack=c.t.nxt[False])
    c.t.nxt[True] = noop_at + len(both)
    c.reply("200 PORT command successful.")
    data_conn(cap, SERVER4, 20, CLIENT4, 50071, "expected", c.k)
    c.send(True, both, seq=noop_at, ack=c.t.nxt[False])
    data_conn(cap, SERVER4, 2021, CLIENT4, 50071, "default_deny")
    c.close()


@case(config=FTP_CONFIG)
def ftp_multiline(cap):
    """Multi-line replies (RFC 959 4.2): only the final "nnn " line counts.
    A 230- login banner whose lines mention 227 and an address; a 227-
    reply whose first line names port 50080 and whose padded middle line
    (" 227 ...") names 50081, ending with "227 ..." naming 50082. SYNs to
    50080, 50081 and the banner's 50090 are default_deny; to 50082
    expected. Then a 227 reply whose lines arrive in separate segments."""
    c = FtpControl(cap, CLIENT4, 40240, SERVER4)
    c.cmd("USER anonymous")
    c.reply("331 Please specify the password.")
    c.cmd("PASS guest")
    c.send(False, ("230-Welcome to the Holdfast synthetic server.\r\n"
                   "230-Passive mode: 227 Entering Passive Mode (%s)\r\n"
                   "230 Login successful.\r\n" % hp(SERVER4, 50090)).encode())
    data_conn(cap, CLIENT4, 41040, SERVER4, 50090, "default_deny")
    c.cmd("PASV")
    c.send(False, ("227-Entering Passive Mode (%s)\r\n"
                   " 227 Entering Passive Mode (%s)\r\n"
                   "227 Entering Passive Mode (%s)\r\n" % (hp(SERVER4, 50080), hp(SERVER4, 50081),
                                                          hp(SERVER4, 50082))).encode())
    data_conn(cap, CLIENT4, 41041, SERVER4, 50080, "default_deny")
    data_conn(cap, CLIENT4, 41042, SERVER4, 50081, "default_deny")
    data_conn(cap, CLIENT4, 41043, SERVER4, 50082, "expected", c.k)
    c.cmd("PASV")
    c.send(False, ("227-Entering Passive Mode (%s)\r\n" % hp(SERVER4, 50083)).encode())
    c.ack(True)
    data_conn(cap, CLIENT4, 41044, SERVER4, 50083, "default_deny")
    c.send(False, ("227 Entering Passive Mode (%s)\r\n" % hp(SERVER4, 50084)).encode())
    data_conn(cap, CLIENT4, 41045, SERVER4, 50084, "expected", c.k)
    c.close()


@case(config=FTP_CONFIG)
def ftp_malformed(cap):
    """Announcements whose arguments do not parse are refused; each
    would-be data SYN (to the port a lenient reader might take) is
    default_deny: PORT with 5 numbers, PORT with a port byte of 300 and
    with an address byte of 266, EPRT with address family 3, a 229 reply
    without its delimiters, and a 227 reply 600 bytes long (over the
    512-byte line limit: skipped, not parsed). The line after the overlong
    one, in the same segment, is read again: its 227 passes as expected,
    and so does a well-formed PORT at the end."""
    c = FtpControl(cap, CLIENT4, 40250, SERVER4)
    c.cmd("PORT 10,0,0,10,195")
    c.reply("501 Illegal PORT command.")
    data_conn(cap, SERVER4, 20, CLIENT4, 195 * 256, "default_deny")
    c.cmd("PORT 10,0,0,10,300,10")
    c.reply("501 Illegal PORT command.")
    data_conn(cap, SERVER4, 20, CLIENT4, (300 * 256 + 10) & 0xffff, "default_deny")
    c.cmd("PORT 10,0,0,266,195,200")
    c.reply("501 Illegal PORT command.")
    data_conn(cap, SERVER4, 20, CLIENT4, 195 * 256 + 200, "default_deny")
    c.cmd("EPRT |3|10.0.0.10|50130|")
    c.reply("522 Network protocol not supported, use (1,2)")
    data_conn(cap, SERVER4, 20, CLIENT4, 50130, "default_deny")
    c.cmd("EPSV")
    c.reply("229 Entering Extended Passive Mode (50140)")
    data_conn(cap, CLIENT4, 41050, SERVER4, 50140, "default_deny")
    c.cmd("PASV")
    long_line = "227 Entering Passive Mode " + "." * 560 + " (%s)" % hp(SERVER4, 50150)
    assert len(long_line) > 512 + 64
    c.send(False, (long_line + "\r\n" +
                   "227 Entering Passive Mode (%s)\r\n" % hp(SERVER4, 50151)).encode())
    data_conn(cap, CLIENT4, 41051, SERVER4, 50150, "default_deny")
    data_conn(cap, CLIENT4, 41052, SERVER4, 50151, "expected", c.k)
    c.cmd("PORT " + hp(CLIENT4, 50160))
    c.reply("200 PORT command successful.")
    data_conn(cap, SERVER4, 20, CLIENT4, 50160, "expected", c.k)
    c.close()


@case(config=FTP_CONFIG)
def ftp_flood(cap):
    """One control connection sends 50 PORT commands for ports 51000-51049
    (each answered). A control connection keeps at most 2 pending
    expectations, each new one replacing the oldest, so only 51048 and
    51049 are open: SYNs to 51000 and 51047 are default_deny, to 51048
    and 51049 expected."""
    c = FtpControl(cap, CLIENT4, 40260, SERVER4)
    for port in range(51000, 51050):
        c.cmd("PORT " + hp(CLIENT4, port))
        c.reply("200 PORT command successful.")
    data_conn(cap, SERVER4, 20, CLIENT4, 51000, "default_deny")
    data_conn(cap, SERVER4, 20, CLIENT4, 51047, "default_deny")
    data_conn(cap, SERVER4, 20, CLIENT4, 51048, "expected", c.k)
    data_conn(cap, SERVER4, 20, CLIENT4, 51049, "expected", c.k)
    c.close()


@case(config=FTP_CONFIG)
def ftp_expiry(cap):
    """Expectations expire after expectation_timeout (5 s here): a 227
    reply, 6 s of silence, then its data SYN: default_deny. A 229 reply
    whose SYN comes 4 s later: expected. A PORT whose SYN comes 6 s later:
    default_deny."""
    c = FtpControl(cap, CLIENT4, 40270, SERVER4)
    c.cmd("PASV")
    c.reply("227 Entering Passive Mode (%s)." % hp(SERVER4, 50200))
    cap.wait(6)
    data_conn(cap, CLIENT4, 41070, SERVER4, 50200, "default_deny")
    c.cmd("EPSV")
    c.reply("229 Entering Extended Passive Mode (|||50201|)")
    cap.wait(4)
    data_conn(cap, CLIENT4, 41071, SERVER4, 50201, "expected", c.k)
    c.cmd("PORT " + hp(CLIENT4, 50202))
    c.reply("200 PORT command successful.")
    cap.wait(6)
    data_conn(cap, SERVER4, 20, CLIENT4, 50202, "default_deny")
    c.close()


@case(config=FTP_CONFIG)
def ftp_wrong_side(cap):
    """An expectation admits the connection the announcement asked for,
    opened by the other end of the control connection, and nothing the
    other way round. After a PORT (the server is to connect from outside
    to the client's port 50210), a SYN from the client to the server's port
    50210 arrives on the inside port, the wrong side for that expectation:
    judged by policy, default_deny; after a 229 reply (the client is to
    connect to the server's 50211), a SYN from the server to the client's
    50211, on the outside port: default_deny. The right SYNs then pass as
    expected. (A frame with the expected opener's own address on the wrong
    port cannot be replayed: holdfast-replay puts each frame on the port
    its source address belongs to.)"""
    c = FtpControl(cap, CLIENT4, 40280, SERVER4)
    c.cmd("PORT " + hp(CLIENT4, 50210))
    c.reply("200 PORT command successful.")
    data_conn(cap, CLIENT4, 41080, SERVER4, 50210, "default_deny")
    c.cmd("EPSV")
    c.reply("229 Entering Extended Passive Mode (|||50211|)")
    data_conn(cap, SERVER4, 41081, CLIENT4, 50211, "default_deny")
    data_conn(cap, SERVER4, 20, CLIENT4, 50210, "expected", c.k)
    data_conn(cap, CLIENT4, 41082, SERVER4, 50211, "expected", c.k)
    c.close()


@case(config=FTP_CONFIG)
def ftp_consumed(cap):
    """An expectation is consumed by the first SYN that matches it, and
    only by a SYN: an ACK to the announced port first is tcp_mid_stream and
    a UDP datagram to it default_deny, neither consumes it; the SYN then
    passes as expected; a second SYN from another source port to the same
    port is judged by policy: default_deny."""
    c = FtpControl(cap, CLIENT4, 40290, SERVER4)
    c.cmd("EPSV")
    c.reply("229 Entering Extended Passive Mode (|||50220|)")
    stray = Tcp(CLIENT4, 41090, SERVER4, 50220, 0x48300000, 0x49300000)
    cap.add(stray.seg(True, "A", seq=0x48300001, ack=0x49300001), "tcp_mid_stream")
    cap.add(frame(CLIENT4, SERVER4, UDP(sport=41090, dport=50220) / Raw(b"not a data connection")),
            "default_deny")
    data_conn(cap, CLIENT4, 41091, SERVER4, 50220, "expected", c.k, data=payload(100))
    data_conn(cap, CLIENT4, 41092, SERVER4, 50220, "default_deny")
    c.close()


@case(config=FTP_CONFIG)
def ftp_ports(cap):
    """modules.ftp.ports decides which control connections are followed:
    one to port 2121 (listed) admits its EPSV data connection, over IPv6
    (expected); one to port 2100 (allowed by policy, not listed) is
    ordinary TCP, so the SYN its 227 reply announces is default_deny."""
    c = FtpControl(cap, CLIENT6, 40300, SERVER6, sport=2121)
    c.cmd("EPSV")
    c.reply("229 Entering Extended Passive Mode (|||50230|)")
    data_conn(cap, CLIENT6, 41100, SERVER6, 50230, "expected", c.k, data=payload(200))
    c.close()
    d = FtpControl(cap, CLIENT4, 40301, SERVER4, sport=2100)
    d.cmd("PASV")
    d.reply("227 Entering Passive Mode (%s)." % hp(SERVER4, 50231))
    data_conn(cap, CLIENT4, 41101, SERVER4, 50231, "default_deny")
    d.close()


# -------------------------------------------------------------------- SIP
#
# Judged under synthetic-sip.config.json: the inside may open UDP and TCP to
# port 5060 (the SIP module's signalling port), nothing else, in either
# direction; so an RTP or RTCP flow passes only when a call's pinhole admits
# it ("expected", with "master": the signalling connection's ID). Media may
# also use 198.51.100.32/28; a connection follows at most 3 calls; a call
# ends 5 s after its last SIP message. The contract (modules/sip, written
# down in the oracle's docstring): a call starts with an INVITE of a new
# Call-ID; an offer (INVITE, UPDATE) and its answer (18x/2xx, or ACK/PRACK
# after a late offer) make the call's active descriptions; for each pair of
# audio/video streams with both ports non-zero, pinholes open to each side's
# RTP and RTCP ports (from the other side's stream address), unless an
# address is neither its announcer's signalling address nor in media_ranges
# (the stream opens nothing) or a port is below 1024 (that port opens
# nothing). A call ends at BYE, CANCEL before a 2xx, a final response >= 300
# to its first INVITE or replacement: its pinholes close and its media
# connections close at once, so their next packet is a new flow for policy.
# A call times out call_timeout after its last SIP message: its pinholes
# close (a new flow meets policy) but its media connections live on as
# plain UDP flows under their own idle timeouts, and a later BYE of that
# call finds no call and closes nothing. A malformed message is dropped as
# sip_malformed.

SIP_CONFIG = "synthetic-sip.config.json"
GATEWAY4, GATEWAY4B = "198.51.100.40", "198.51.100.41"  # inside media_ranges 198.51.100.32/28
INSIDE_OTHER4 = WEB4                                    # another inside host, not a SIP party


def uri_host(addr):
    return "[%s]" % addr if ":" in addr else addr


def sdp(addr, *streams, session_c=True):
    """An SDP body (RFC 4566) from addr: origin and (unless session_c is
    False) session-level c= on addr; each stream (media, port[, extra
    lines]) an m= line, port as a number or text ("40410/2"), then its
    extra lines (a=..., a media-level c=...)."""
    fam = "IP6" if ":" in addr else "IP4"
    lines = ["v=0", "o=holdfast 1 1 IN %s %s" % (fam, addr), "s=-"]
    if session_c:
        lines.append("c=IN %s %s" % (fam, addr))
    lines.append("t=0 0")
    for media, port, *extra in streams:
        lines.append("m=%s %s RTP/AVP %s" % (media, port, "0" if media == "audio" else "96"))
        lines += ["a=rtpmap:0 PCMU/8000"] if media == "audio" else ["a=rtpmap:96 H264/90000"]
        lines += extra[0] if extra else []
    return ("\r\n".join(lines) + "\r\n").encode()


def sip_text(start, headers, body=b""):
    """A SIP message (RFC 3261 7): start line, headers, empty line, body."""
    return (start + "\r\n" + "".join("%s: %s\r\n" % h for h in headers) + "\r\n").encode() + body


class SipCall:
    """One call's identities (Call-ID, tags, the caller's CSeq) between the
    caller (the inside client: party A, which opens the signalling
    connection) and the callee (party B). Builds its requests and responses
    as bytes; headers can be dropped (omit), replaced or added."""

    def __init__(self, call_id, caller=CLIENT4, callee=SERVER4, transport="UDP", caller_port=5060):
        self.id, self.caller, self.callee = call_id, caller, callee
        self.transport, self.caller_port = transport, caller_port
        self.cseq = 0

    def headers(self, cseq, method, from_caller, body, ctype="application/sdp"):
        a = "<sip:alice@%s>;tag=%s-a" % (uri_host(self.caller), self.id)
        b = "<sip:bob@%s>" % uri_host(self.callee)
        if not (from_caller and cseq == 1 and method in ("INVITE", "CANCEL", "OPTIONS")):
            b += ";tag=%s-b" % self.id  # the callee's tag: not in the caller's first request
        via_host = self.caller if from_caller else self.callee
        port = self.caller_port if from_caller else 5060
        h = [("Via", "SIP/2.0/%s %s:%d;branch=z9hG4bK-%s-%d" % (self.transport, uri_host(via_host),
                                                              port, self.id, cseq)),
             ("Max-Forwards", "70"),
             ("From", a if from_caller else b),
             ("To", b if from_caller else a),
             ("Call-ID", self.id),
             ("CSeq", "%d %s" % (cseq, method))]
        if body:
            h.append(("Content-Type", ctype))
        h.append(("Content-Length", str(len(body))))
        return h

    @staticmethod
    def edit(h, omit=(), replace=None, add=()):
        replace = replace or {}
        out = [(n, replace.get(n, v)) for n, v in h if n not in omit]
        return out + list(add)

    def request(self, method, body=b"", from_caller=True, cseq=None, start=None, **edit):
        """A request; the caller's CSeq counts up unless cseq is given (ACK
        and CANCEL take their INVITE's)."""
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        target = self.callee if from_caller else self.caller
        start = start or "%s sip:%s@%s SIP/2.0" % (method, "bob" if from_caller else "alice",
                                                  uri_host(target))
        return sip_text(start, self.edit(self.headers(cseq, method, from_caller, body), **edit), body)

    def response(self, code, method, body=b"", cseq=None, from_caller=False, start=None, **edit):
        """A response to the request with CSeq (cseq, method): from the
        callee unless from_caller."""
        reasons = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK",
                   486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
                   603: "Decline"}
        start = start or "SIP/2.0 %d %s" % (code, reasons[code])
        h = self.headers(self.cseq if cseq is None else cseq, method, not from_caller, body)
        return sip_text(start, self.edit(h, **edit), body)


class SipUdp:
    """A UDP signalling flow between the inside client and a server, both
    on port 5060 unless told. The first datagram (from the client) opens
    it: new_connection; every later one is established unless told."""

    def __init__(self, cap, client=CLIENT4, server=SERVER4, cport=5060, sport=5060):
        self.cap, self.client, self.server, self.cport, self.sport = cap, client, server, cport, sport
        self.k = None

    def send(self, from_client, data, reason="established"):
        src, dst, sp, dp = ((self.client, self.server, self.cport, self.sport) if from_client else
                            (self.server, self.client, self.sport, self.cport))
        pkt = frame(src, dst, UDP(sport=sp, dport=dp) / Raw(data))
        if self.k is None:
            assert from_client and reason == "established"
            self.k = self.cap.add(pkt, "new_connection")
        else:
            self.cap.add(pkt, reason, self.k)

    def call(self, call, offer, answer, code=200):
        """INVITE with the offer from the client, 100, the answer in a
        final `code` response, ACK: every frame established."""
        self.send(True, call.request("INVITE", offer))
        self.send(False, call.response(100, "INVITE"))
        self.send(False, call.response(code, "INVITE", answer))
        self.send(True, call.request("ACK", cseq=call.cseq))

    def bye(self, call, from_client=True):
        self.send(from_client, call.request("BYE", from_caller=from_client))
        self.send(not from_client, call.response(200, "BYE", from_caller=not from_client))


class SipTcp:
    """A TCP signalling connection from the inside client to a server's
    port 5060; every segment established unless told."""

    def __init__(self, cap, client=CLIENT4, cport=40500, server=SERVER4, cisn=0x50000000,
                 sisn=0x51000000):
        self.cap = cap
        self.t = Tcp(client, cport, server, 5060, cisn, sisn)
        self.k = self.t.handshake(cap)

    def send(self, from_client, data, reason="established", **kw):
        self.cap.add(self.t.seg(from_client, "PA", data, **kw), reason, self.k)

    def ack(self, from_client):
        self.cap.add(self.t.seg(from_client, "A"), "established", self.k)


def rtp_packet(seq, ssrc, rtcp=False):
    """An RTP packet (RFC 3550 5.1: version 2, PCMU, 20 bytes of audio), or
    an RTCP receiver report without report blocks (RFC 3550 6.4.2)."""
    if rtcp:
        return struct.pack("!BBHI", 0x80, 201, 1, ssrc)
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes(range(20))


def media(cap, src, sport, dst, dport, reason, conn=0, master=None, seq=1, rtcp=False):
    """One RTP (or RTCP) datagram with the verdict `reason`; returns the
    connection it opened (expected) or conn."""
    ssrc = 0x10000000 | sport << 8 | (1 if is_inside(src) else 2)
    pkt = frame(src, dst, UDP(sport=sport, dport=dport) / Raw(rtp_packet(seq, ssrc, rtcp)))
    k = cap.add(pkt, reason, conn, master=master)
    return k if reason == "expected" else conn


@case(config=SIP_CONFIG)
def sip_bye_closes(cap):
    """A call's pinholes admit its media both ways until BYE. INVITE
    offering audio at 10.0.0.10:40000, 200 OK answering 198.51.100.20:50000,
    ACK: the client's RTP to 50000 opens a media connection (expected, the
    signalling flow its master) and the server's replies are established
    in it; the server's RTCP from 50001 to the client's 40001 (RTP port + 1)
    opens another (expected: the pinhole towards the client). Then BYE: the
    call ends, its media connections close at once, so the next RTP and
    RTCP on the same ports are new flows judged by policy (default_deny
    both ways); the 200 OK to the BYE, after them, passes."""
    u = SipUdp(cap)
    c = SipCall("bye-1")
    u.call(c, sdp(CLIENT4, ("audio", 40000)), sdp(SERVER4, ("audio", 50000)))
    k = media(cap, CLIENT4, 40000, SERVER4, 50000, "expected", master=u.k)
    media(cap, SERVER4, 50000, CLIENT4, 40000, "established", k)
    media(cap, CLIENT4, 40000, SERVER4, 50000, "established", k, seq=2)
    r = media(cap, SERVER4, 50001, CLIENT4, 40001, "expected", master=u.k, rtcp=True)
    media(cap, CLIENT4, 40001, SERVER4, 50001, "established", r, rtcp=True)
    media(cap, SERVER4, 50000, CLIENT4, 40000, "established", k, seq=2)
    u.send(True, c.request("BYE"))
    media(cap, SERVER4, 50000, CLIENT4, 40000, "default_deny", seq=3)
    media(cap, CLIENT4, 40000, SERVER4, 50000, "default_deny", seq=3)
    media(cap, SERVER4, 50001, CLIENT4, 40001, "default_deny", rtcp=True)
    u.send(False, c.response(200, "BYE", cseq=c.cseq))


@case(config=SIP_CONFIG)
def sip_reinvite_moves(cap):
    """A re-INVITE moves the client's audio from port 40010 to 40020 (the
    server stays on 50010). Before it, the server's RTP to 40010 opens a
    media connection (expected). After the re-INVITE's 200 OK and ACK, the
    pinholes are the new answer's: a new flow to 40010 (the server from
    port 50030) is default_deny, and so is RTCP to 40011; the server's RTP
    to 40020 opens a new media connection (expected). The media connection
    opened before the re-INVITE stays up (the call lives): its packets are
    established. The server's BYE ends the call: both media connections'
    next packets are default_deny."""
    u = SipUdp(cap)
    c = SipCall("move-1")
    u.call(c, sdp(CLIENT4, ("audio", 40010)), sdp(SERVER4, ("audio", 50010)))
    old = media(cap, SERVER4, 50010, CLIENT4, 40010, "expected", master=u.k)
    media(cap, CLIENT4, 40010, SERVER4, 50010, "established", old)
    u.send(True, c.request("INVITE", sdp(CLIENT4, ("audio", 40020))))
    u.send(False, c.response(200, "INVITE", sdp(SERVER4, ("audio", 50010))))
    u.send(True, c.request("ACK", cseq=c.cseq))
    media(cap, SERVER4, 50030, CLIENT4, 40010, "default_deny")
    media(cap, SERVER4, 50011, CLIENT4, 40011, "default_deny", rtcp=True)
    new = media(cap, SERVER4, 50010, CLIENT4, 40020, "expected", master=u.k)
    media(cap, CLIENT4, 40020, SERVER4, 50010, "established", new)
    media(cap, CLIENT4, 40010, SERVER4, 50010, "established", old, seq=2)
    u.bye(c, from_client=False)
    media(cap, CLIENT4, 40020, SERVER4, 50010, "default_deny", seq=2)
    media(cap, CLIENT4, 40010, SERVER4, 50010, "default_deny", seq=3)


@case(config=SIP_CONFIG)
def sip_cancel(cap):
    """CANCEL ends a call not yet confirmed. A call offered at 40030 and
    only ringing (180 without SDP) has no pinholes: the server's RTP to
    40030 is default_deny before and after CANCEL. A call with early media
    (183 with an SDP answer: pinholes open, the server's RTP to 40040
    opens a media connection, expected) is cancelled: its media connection
    closes, the next RTP both ways is default_deny. The 200 OK to CANCEL,
    487 to the INVITE and the ACK all pass. A CANCEL that crosses the 200
    OK (the call is confirmed) ends nothing: the server's RTP to 40050 is
    then expected."""
    u = SipUdp(cap)
    c1 = SipCall("cancel-1")
    u.send(True, c1.request("INVITE", sdp(CLIENT4, ("audio", 40030))))
    u.send(False, c1.response(100, "INVITE"))
    u.send(False, c1.response(180, "INVITE"))
    media(cap, SERVER4, 50030, CLIENT4, 40030, "default_deny")
    u.send(True, c1.request("CANCEL", cseq=c1.cseq))
    u.send(False, c1.response(200, "CANCEL"))
    u.send(False, c1.response(487, "INVITE"))
    u.send(True, c1.request("ACK", cseq=c1.cseq))
    media(cap, SERVER4, 50030, CLIENT4, 40030, "default_deny", seq=2)

    c2 = SipCall("cancel-2")
    u.send(True, c2.request("INVITE", sdp(CLIENT4, ("audio", 40040))))
    u.send(False, c2.response(183, "INVITE", sdp(SERVER4, ("audio", 50040))))
    k = media(cap, SERVER4, 50040, CLIENT4, 40040, "expected", master=u.k)
    media(cap, CLIENT4, 40040, SERVER4, 50040, "established", k)
    u.send(True, c2.request("CANCEL", cseq=c2.cseq))
    media(cap, SERVER4, 50040, CLIENT4, 40040, "default_deny", seq=2)
    media(cap, CLIENT4, 40040, SERVER4, 50040, "default_deny", seq=2)
    u.send(False, c2.response(200, "CANCEL"))
    u.send(False, c2.response(487, "INVITE"))
    u.send(True, c2.request("ACK", cseq=c2.cseq))

    c3 = SipCall("cancel-3")
    u.send(True, c3.request("INVITE", sdp(CLIENT4, ("audio", 40050))))
    u.send(False, c3.response(200, "INVITE", sdp(SERVER4, ("audio", 50050))))
    u.send(True, c3.request("CANCEL", cseq=c3.cseq))
    u.send(False, c3.response(200, "CANCEL"))
    u.send(True, c3.request("ACK", cseq=c3.cseq))
    k3 = media(cap, SERVER4, 50050, CLIENT4, 40050, "expected", master=u.k)
    media(cap, CLIENT4, 40050, SERVER4, 50050, "established", k3)
    u.bye(c3)


@case(config=SIP_CONFIG)
def sip_rejected(cap):
    """A final response >= 300 to a call's INVITE ends it. 486 Busy Here
    to an offer at 40050: no pinholes, the server's RTP to 40050 is
    default_deny. Early media (183 with SDP: the server's RTP to 40060
    expected) then 603 Decline: the media connection closes, the next RTP
    both ways is default_deny. A 488 to a re-INVITE of a confirmed call
    (moving the client to 40072) only clears that offer: the call and its
    pinholes stay, so RTP to 40072 is default_deny while the server's RTCP
    to the old 40071 opens a media connection (expected), and the old RTP
    flow is still established."""
    u = SipUdp(cap)
    c1 = SipCall("reject-1")
    u.send(True, c1.request("INVITE", sdp(CLIENT4, ("audio", 40050))))
    u.send(False, c1.response(100, "INVITE"))
    u.send(False, c1.response(486, "INVITE"))
    u.send(True, c1.request("ACK", cseq=c1.cseq))
    media(cap, SERVER4, 50050, CLIENT4, 40050, "default_deny")

    c2 = SipCall("reject-2")
    u.send(True, c2.request("INVITE", sdp(CLIENT4, ("audio", 40060))))
    u.send(False, c2.response(183, "INVITE", sdp(SERVER4, ("audio", 50060))))
    k = media(cap, SERVER4, 50060, CLIENT4, 40060, "expected", master=u.k)
    media(cap, CLIENT4, 40060, SERVER4, 50060, "established", k)
    u.send(False, c2.response(603, "INVITE"))
    u.send(True, c2.request("ACK", cseq=c2.cseq))
    media(cap, SERVER4, 50060, CLIENT4, 40060, "default_deny", seq=2)
    media(cap, CLIENT4, 40060, SERVER4, 50060, "default_deny", seq=2)

    c3 = SipCall("reject-3")
    u.call(c3, sdp(CLIENT4, ("audio", 40070)), sdp(SERVER4, ("audio", 50070)))
    k3 = media(cap, SERVER4, 50070, CLIENT4, 40070, "expected", master=u.k)
    u.send(True, c3.request("INVITE", sdp(CLIENT4, ("audio", 40072))))
    u.send(False, c3.response(488, "INVITE"))
    u.send(True, c3.request("ACK", cseq=c3.cseq))
    media(cap, SERVER4, 50070, CLIENT4, 40072, "default_deny")
    media(cap, SERVER4, 50071, CLIENT4, 40071, "expected", master=u.k, rtcp=True)
    media(cap, CLIENT4, 40070, SERVER4, 50070, "established", k3)
    u.bye(c3)


@case(config=SIP_CONFIG)
def sip_low_port(cap):
    """SDP ports below 1024 open nothing, port by port. The client offers
    audio at 1000, audio at 40082 with a=rtcp:1023, and audio at 1024; the
    server answers 50080, 50082, 50084. The server's RTP to 1000 and its
    RTCP to 1023 are default_deny; its RTP to 40082, and RTP and RTCP to
    1024 and 1025, are expected. The pinholes towards the server's
    (unprivileged) ports stay open even for the stream whose client port
    is refused: the client's RTP from 1000 to 50080 is expected. In a
    second call the server answers with audio at port 500: the client's
    RTP to 500 is default_deny, the server's RTP from 500 to the client's
    40090 expected."""
    u = SipUdp(cap)
    c = SipCall("low-1")
    u.call(c, sdp(CLIENT4, ("audio", 1000), ("audio", 40082, ["a=rtcp:1023"]), ("audio", 1024)),
           sdp(SERVER4, ("audio", 50080), ("audio", 50082), ("audio", 50084)))
    media(cap, SERVER4, 50080, CLIENT4, 1000, "default_deny")
    media(cap, SERVER4, 50083, CLIENT4, 1023, "default_deny", rtcp=True)
    media(cap, SERVER4, 50082, CLIENT4, 40082, "expected", master=u.k)
    media(cap, SERVER4, 50084, CLIENT4, 1024, "expected", master=u.k)
    media(cap, SERVER4, 50085, CLIENT4, 1025, "expected", master=u.k, rtcp=True)
    media(cap, CLIENT4, 1000, SERVER4, 50080, "expected", master=u.k)
    u.bye(c)
    c2 = SipCall("low-2")
    u.call(c2, sdp(CLIENT4, ("audio", 40090)), sdp(SERVER4, ("audio", 500)))
    media(cap, CLIENT4, 40090, SERVER4, 500, "default_deny")
    media(cap, SERVER4, 500, CLIENT4, 40090, "expected", master=u.k)
    u.bye(c2)


@case(config=SIP_CONFIG)
def sip_media_range(cap):
    """A stream's address must be its announcer's signalling address or
    inside media_ranges (198.51.100.32/28). The server answering with its
    media at the gateway 198.51.100.40 (in the range): the gateway's RTP
    to the client is expected, and RTP from the server's own address to
    the same port default_deny (pinholes are exact on both addresses). An
    answer naming 203.0.113.66 (outside the range) opens nothing: RTP both
    ways default_deny. An offer naming another inside host, 10.0.0.80,
    opens nothing either. Media-level c= overrides the session's: audio
    at 198.51.100.41, video at the session address 198.51.100.20, both
    expected. Over IPv6 (c=IN IP6), the server's RTP is expected with the
    IPv6 signalling flow as its master."""
    u = SipUdp(cap)
    g = SipCall("range-gateway")
    u.call(g, sdp(CLIENT4, ("audio", 40100)), sdp(GATEWAY4, ("audio", 50100)))
    k = media(cap, GATEWAY4, 50100, CLIENT4, 40100, "expected", master=u.k)
    media(cap, CLIENT4, 40100, GATEWAY4, 50100, "established", k)
    media(cap, SERVER4, 50100, CLIENT4, 40100, "default_deny")
    u.bye(g)
    x = SipCall("range-outside")
    u.call(x, sdp(CLIENT4, ("audio", 40110)), sdp(ATTACKER4, ("audio", 50110)))
    media(cap, ATTACKER4, 50110, CLIENT4, 40110, "default_deny")
    media(cap, CLIENT4, 40110, ATTACKER4, 50110, "default_deny")
    u.bye(x)
    y = SipCall("range-other-host")
    u.call(y, sdp(INSIDE_OTHER4, ("audio", 40120)), sdp(SERVER4, ("audio", 50120)))
    media(cap, SERVER4, 50120, INSIDE_OTHER4, 40120, "default_deny")
    media(cap, INSIDE_OTHER4, 40120, SERVER4, 50120, "default_deny")
    media(cap, SERVER4, 50120, CLIENT4, 40120, "default_deny")
    u.bye(y)
    m = SipCall("range-media-level")
    u.call(m, sdp(CLIENT4, ("audio", 40130), ("video", 40132)),
           sdp(SERVER4, ("audio", 50130, ["c=IN IP4 " + GATEWAY4B]), ("video", 50132)))
    k = media(cap, GATEWAY4B, 50130, CLIENT4, 40130, "expected", master=u.k)
    media(cap, SERVER4, 50132, CLIENT4, 40132, "expected", master=u.k)
    media(cap, SERVER4, 50130, CLIENT4, 40130, "default_deny")
    media(cap, CLIENT4, 40130, GATEWAY4B, 50130, "established", k)
    u.bye(m)
    u6 = SipUdp(cap, client=CLIENT6, server=SERVER6)
    v = SipCall("range-ipv6", caller=CLIENT6, callee=SERVER6)
    u6.send(True, v.request("OPTIONS"))
    u6.send(False, v.response(200, "OPTIONS"))
    u6.call(v, sdp(CLIENT6, ("audio", 40140)), sdp(SERVER6, ("audio", 50140)))
    k6 = media(cap, SERVER6, 50140, CLIENT6, 40140, "expected", master=u6.k)
    media(cap, CLIENT6, 40140, SERVER6, 50140, "established", k6)
    u6.bye(v)


@case(config=SIP_CONFIG)
def sip_invite_flood(cap):
    """A connection follows at most calls_per_session (3) calls; a new one
    replaces the oldest call not yet confirmed, and when all are confirmed
    it is not followed. Call A is answered (confirmed); call B gets an
    early answer (183 with SDP, after call C1 began): its RTP is expected.
    Then INVITEs C2 to C6, never answered: C2 replaces B (the oldest
    unconfirmed: B began before C1), which ends B's media connection (its
    next RTP default_deny); C3 to C6 replace C1 to C4. A late 200 OK to C1
    is ignored (its RTP default_deny); 200 OKs to C6 and C5 confirm them
    (C6's RTP expected). INVITE D, with A, C5 and C6 confirmed, is not
    followed: its answer opens nothing (default_deny). A's pinholes
    survived the flood (the client's RTP to A's answer expected); after
    A's BYE, call E is followed again (its RTP expected) and A's media is
    default_deny."""
    u = SipUdp(cap)
    a = SipCall("flood-A")
    u.call(a, sdp(CLIENT4, ("audio", 40300)), sdp(SERVER4, ("audio", 50300)))
    b = SipCall("flood-B")
    u.send(True, b.request("INVITE", sdp(CLIENT4, ("audio", 40302))))
    calls = [SipCall("flood-C%d" % i) for i in range(1, 7)]
    u.send(True, calls[0].request("INVITE", sdp(CLIENT4, ("audio", 40310))))
    u.send(False, b.response(183, "INVITE", sdp(SERVER4, ("audio", 50302))))
    kb = media(cap, SERVER4, 50302, CLIENT4, 40302, "expected", master=u.k)
    u.send(True, calls[1].request("INVITE", sdp(CLIENT4, ("audio", 40312))))
    media(cap, SERVER4, 50302, CLIENT4, 40302, "default_deny", seq=2)
    assert kb
    for i, c in enumerate(calls[2:], start=2):
        u.send(True, c.request("INVITE", sdp(CLIENT4, ("audio", 40310 + 2 * i))))
    u.send(False, calls[0].response(200, "INVITE", sdp(SERVER4, ("audio", 50310))))
    media(cap, SERVER4, 50310, CLIENT4, 40310, "default_deny")
    c6, c5 = calls[5], calls[4]
    u.send(False, c6.response(200, "INVITE", sdp(SERVER4, ("audio", 50320))))
    u.send(True, c6.request("ACK", cseq=c6.cseq))
    k6 = media(cap, SERVER4, 50320, CLIENT4, 40320, "expected", master=u.k)
    media(cap, CLIENT4, 40320, SERVER4, 50320, "established", k6)
    u.send(False, c5.response(200, "INVITE", sdp(SERVER4, ("audio", 50318))))
    u.send(True, c5.request("ACK", cseq=c5.cseq))
    d = SipCall("flood-D")
    u.call(d, sdp(CLIENT4, ("audio", 40330)), sdp(SERVER4, ("audio", 50330)))
    media(cap, SERVER4, 50330, CLIENT4, 40330, "default_deny")
    ka = media(cap, CLIENT4, 40300, SERVER4, 50300, "expected", master=u.k)
    media(cap, SERVER4, 50300, CLIENT4, 40300, "established", ka)
    u.bye(a)
    e = SipCall("flood-E")
    u.call(e, sdp(CLIENT4, ("audio", 40340)), sdp(SERVER4, ("audio", 50340)))
    media(cap, SERVER4, 50340, CLIENT4, 40340, "expected", master=u.k)
    media(cap, CLIENT4, 40300, SERVER4, 50300, "default_deny", seq=2)


@case(config=SIP_CONFIG)
def sip_malformed(cap):
    """Malformed messages are dropped as sip_malformed (with the signalling
    connection's ID) and change nothing. Over UDP: an INVITE whose start
    line says SIP/2.1 (a 200 OK with SDP to its Call-ID is then ignored:
    RTP to its offer default_deny); INVITEs without Call-ID, with
    Content-Length "1x2", with a Content-Length past the datagram's end,
    with Content-Length 9000, with CSeq naming BYE, with a Call-ID line of
    300 bytes; then for a well-formed INVITE, 200 OKs with "c=IN IP4
    198.51.100.300", with "m=audio 50420/2", with a line that is not
    <letter>=<value>, with a media section without any address: each
    dropped, and RTP to the offer stays default_deny. A CRLF keepalive
    passes; a 200 OK carrying a 300-byte Subject header (not one the
    module reads: skipped) is the answer, and RTP then passes as expected.
    Over TCP: an INVITE with "m=audio 40430/2" is dropped, and so is its
    retransmission (the reader does not move past it)."""
    u = SipUdp(cap)
    o = SipCall("malformed-options")
    u.send(True, o.request("OPTIONS"))
    u.send(False, o.response(200, "OPTIONS"))
    bad = "sip_malformed"
    s = SipCall("malformed-start")
    u.send(True, s.request("INVITE", sdp(CLIENT4, ("audio", 40400)),
                           start="INVITE sip:bob@198.51.100.20 SIP/2.1"), bad)
    u.send(False, s.response(200, "INVITE", sdp(SERVER4, ("audio", 50400))))
    media(cap, SERVER4, 50400, CLIENT4, 40400, "default_deny")
    offer = sdp(CLIENT4, ("audio", 40410))
    u.send(True, SipCall("malformed-no-call-id").request("INVITE", offer, omit=("Call-ID",)), bad)
    u.send(True, SipCall("malformed-length").request(
        "INVITE", offer, replace={"Content-Length": "1x2"}), bad)
    u.send(True, SipCall("malformed-length-past").request(
        "INVITE", offer, replace={"Content-Length": str(len(offer) + 10)}), bad)
    u.send(True, SipCall("malformed-length-9000").request(
        "INVITE", offer, replace={"Content-Length": "9000"}), bad)
    u.send(True, SipCall("malformed-cseq").request("INVITE", offer, replace={"CSeq": "1 BYE"}), bad)
    u.send(True, SipCall("malformed-long").request(
        "INVITE", offer, replace={"Call-ID": "malformed-long-" + "x" * 276}), bad)
    media(cap, SERVER4, 50410, CLIENT4, 40410, "default_deny")

    g = SipCall("malformed-good")
    u.send(True, g.request("INVITE", sdp(CLIENT4, ("audio", 40420))))
    u.send(False, g.response(100, "INVITE"))
    answer = sdp(SERVER4, ("audio", 50420))
    for broken in (answer.replace(b"c=IN IP4 198.51.100.20", b"c=IN IP4 198.51.100.300"),
                   answer.replace(b"m=audio 50420 ", b"m=audio 50420/2 "),
                   answer.replace(b"s=-\r\n", b"s=-\r\nthis is not sdp\r\n"),
                   sdp(SERVER4, ("audio", 50420), session_c=False)):
        assert broken != answer
        u.send(False, g.response(200, "INVITE", broken), bad)
        media(cap, SERVER4, 50420, CLIENT4, 40420, "default_deny")
    u.send(True, b"\r\n\r\n")
    u.send(False, g.response(200, "INVITE", answer, add=[("Subject", "s" * 300)]))
    u.send(True, g.request("ACK", cseq=g.cseq))
    k = media(cap, SERVER4, 50420, CLIENT4, 40420, "expected", master=u.k)
    media(cap, CLIENT4, 40420, SERVER4, 50420, "established", k)

    t = SipTcp(cap, cport=40600)
    c = SipCall("malformed-tcp", transport="TCP", caller_port=40600)
    invite = c.request("INVITE", sdp(CLIENT4, ("audio", "40430/2")))
    at = t.t.nxt[True]
    t.send(True, invite, bad)
    t.send(True, invite, bad, seq=at)
    media(cap, SERVER4, 50430, CLIENT4, 40430, "default_deny")


@case(config=SIP_CONFIG)
def sip_tcp_split(cap):
    """SIP over TCP, read as a byte stream. The INVITE (offer at 40200)
    arrives in three segments, cut inside its start line and inside its
    SDP's m= line; the server's 100 Trying and 180 Ringing share one
    segment; its 200 OK (answer at 50200) arrives in two segments, cut
    inside the m= line: the client's RTP sent between them is default_deny
    (the answer is not read yet), sent after them expected. A CRLF CRLF
    keepalive passes. A re-INVITE in compact form (i:, f:, t:, v:, c:, l:)
    with a folded From header moves the client to 40210: after its 200 OK,
    the server's RTP to 40210 is expected."""
    t = SipTcp(cap)
    c = SipCall("tcp-split", transport="TCP", caller_port=40500)
    invite = c.request("INVITE", sdp(CLIENT4, ("audio", 40200)))
    cut1, cut2 = 10, invite.index(b"m=audio 402") + len(b"m=audio 402")
    for part in (invite[:cut1], invite[cut1:cut2], invite[cut2:]):
        t.send(True, part)
    t.ack(False)
    t.send(False, c.response(100, "INVITE") + c.response(180, "INVITE"))
    ok = c.response(200, "INVITE", sdp(SERVER4, ("audio", 50200)))
    cut = ok.index(b"m=audio 502") + len(b"m=audio 502")
    t.send(False, ok[:cut])
    media(cap, CLIENT4, 40200, SERVER4, 50200, "default_deny")
    t.send(False, ok[cut:])
    k = media(cap, CLIENT4, 40200, SERVER4, 50200, "expected", master=t.k, seq=2)
    media(cap, SERVER4, 50200, CLIENT4, 40200, "established", k)
    t.send(True, c.request("ACK", cseq=c.cseq))
    t.send(True, b"\r\n\r\n")
    t.ack(False)
    body = sdp(CLIENT4, ("audio", 40210))
    c.cseq += 1
    compact = ("INVITE sip:bob@198.51.100.20 SIP/2.0\r\n"
               "v: SIP/2.0/TCP 10.0.0.10:40500;branch=z9hG4bK-tcp-split-%d\r\n"
               "f: <sip:alice@10.0.0.10>\r\n"
               "   ;tag=tcp-split-a\r\n"
               "t: <sip:bob@198.51.100.20>;tag=tcp-split-b\r\n"
               "i: tcp-split\r\n"
               "CSeq: %d INVITE\r\n"
               "Max-Forwards: 70\r\n"
               "c: application/sdp\r\n"
               "l: %d\r\n"
               "\r\n" % (c.cseq, c.cseq, len(body))).encode() + body
    t.send(True, compact)
    t.send(False, c.response(200, "INVITE", sdp(SERVER4, ("audio", 50200))))
    t.send(True, c.request("ACK", cseq=c.cseq))
    k2 = media(cap, SERVER4, 50200, CLIENT4, 40210, "expected", master=t.k)
    media(cap, CLIENT4, 40210, SERVER4, 50200, "established", k2)
    media(cap, CLIENT4, 40200, SERVER4, 50200, "established", k, seq=3)


@case(config=SIP_CONFIG)
def sip_tcp_gap(cap):
    """SIP over TCP with a segment lost. The client's INVITE of call G1
    (offer at 40700) goes out in three segments; the second is delayed, so
    the third, which ends G1's body and carries the whole INVITE of call
    G2 (offer at 40710), arrives ahead of a gap. It passes; G1's message in
    progress is given up and reading resumes at the next start line, G2's.
    The delayed segment then arrives and passes, its bytes not read (they
    lie behind the reader). The server answers both: G2's answer opens
    pinholes (the server's RTP to 40710 expected), G1's Call-ID is unknown
    (its RTP to 40700 default_deny)."""
    t = SipTcp(cap, cport=40520, cisn=0x52000000, sisn=0x53000000)
    g1 = SipCall("tcp-gap-1", transport="TCP", caller_port=40520)
    g2 = SipCall("tcp-gap-2", transport="TCP", caller_port=40520)
    first = g1.request("INVITE", sdp(CLIENT4, ("audio", 40700)))
    second = g2.request("INVITE", sdp(CLIENT4, ("audio", 40710)))
    cut1, cut2 = 120, len(first) - 30
    at = t.t.nxt[True]
    ack = t.t.nxt[False]
    t.send(True, first[:cut1], seq=at, ack=ack)
    t.send(True, first[cut2:] + second, seq=at + cut2, ack=ack)
    t.send(True, first[cut1:cut2], seq=at + cut1, ack=ack)
    t.t.nxt[True] = at + len(first) + len(second)
    t.ack(False)
    t.send(False, g2.response(200, "INVITE", sdp(SERVER4, ("audio", 50710))))
    t.send(False, g1.response(200, "INVITE", sdp(SERVER4, ("audio", 50700))))
    t.send(True, g2.request("ACK", cseq=g2.cseq) + g1.request("ACK", cseq=g1.cseq))
    k = media(cap, SERVER4, 50710, CLIENT4, 40710, "expected", master=t.k)
    media(cap, CLIENT4, 40710, SERVER4, 50710, "established", k)
    media(cap, SERVER4, 50700, CLIENT4, 40700, "default_deny")


@case(config=SIP_CONFIG)
def sip_call_timeout(cap):
    """A call times out call_timeout (5 s) after its last SIP message: its
    pinholes close, its media connections live on (a long call without
    re-INVITEs is not cut; the media is a UDP flow under its own idle
    timeouts, 30 s unreplied by default, never reached here). Calls T1
    and T2 are set up; their RTP is expected, and established 2 s later.
    At 4 s an INFO of T2 (and its 200 OK) renews T2. At 6 s T1 has timed
    out: its RTP is still established, but a new flow through its
    pinhole (its RTCP) is default_deny; T2's RTP is established and its
    RTCP expected. A BYE of T1 (and its 200 OK) then finds no call and
    closes nothing: T1's RTP stays established. At 10 s T2 has timed out
    too: its RTP and RTCP stay established, a new flow to its RTP port
    (another source port) is default_deny, and T2's BYE closes nothing."""
    u = SipUdp(cap)
    t1, t2 = SipCall("timeout-1"), SipCall("timeout-2")
    u.call(t1, sdp(CLIENT4, ("audio", 40600)), sdp(SERVER4, ("audio", 50600)))
    u.call(t2, sdp(CLIENT4, ("audio", 40610)), sdp(SERVER4, ("audio", 50610)))
    k1 = media(cap, SERVER4, 50600, CLIENT4, 40600, "expected", master=u.k)
    k2 = media(cap, SERVER4, 50610, CLIENT4, 40610, "expected", master=u.k)
    cap.wait(2)
    media(cap, SERVER4, 50600, CLIENT4, 40600, "established", k1, seq=2)
    media(cap, SERVER4, 50610, CLIENT4, 40610, "established", k2, seq=2)
    cap.wait(2)
    u.send(True, t2.request("INFO"))
    u.send(False, t2.response(200, "INFO"))
    cap.wait(2)
    media(cap, SERVER4, 50600, CLIENT4, 40600, "established", k1, seq=3)
    media(cap, SERVER4, 50601, CLIENT4, 40601, "default_deny", rtcp=True)
    media(cap, SERVER4, 50610, CLIENT4, 40610, "established", k2, seq=3)
    r2 = media(cap, SERVER4, 50611, CLIENT4, 40611, "expected", master=u.k, rtcp=True)
    u.bye(t1)
    media(cap, SERVER4, 50600, CLIENT4, 40600, "established", k1, seq=4)
    media(cap, CLIENT4, 40600, SERVER4, 50600, "established", k1)
    cap.wait(4)
    media(cap, SERVER4, 50610, CLIENT4, 40610, "established", k2, seq=4)
    media(cap, SERVER4, 50611, CLIENT4, 40611, "established", r2, rtcp=True)
    media(cap, SERVER4, 50612, CLIENT4, 40610, "default_deny")
    u.bye(t2, from_client=False)
    media(cap, SERVER4, 50610, CLIENT4, 40610, "established", k2, seq=5)
    media(cap, SERVER4, 50600, CLIENT4, 40600, "established", k1, seq=5)

def build(names=None):
    caps = []
    for fn in CASES:
        if names and fn.__name__ not in names:
            continue
        cap = Capture(fn.__name__, fn.__doc__)
        fn(cap)
        caps.append(cap)
    return caps


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=os.path.join(here, "synthetic"))
    ap.add_argument("--case", action="append", help="only this case (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cases and what they check")
    args = ap.parse_args()
    known = {fn.__name__ for fn in CASES}
    for name in args.case or []:
        if name not in known:
            sys.exit("gen_synthetic.py: no case %s (see --list)" % name)
    if args.list:
        for fn in CASES:
            print("%s (%s)" % (fn.__name__, fn.config))
            print("    " + " ".join(fn.__doc__.split()))
        return
    os.makedirs(args.out_dir, exist_ok=True)
    for cap in build(args.case):
        cap.write(args.out_dir)


if __name__ == "__main__":
    main()
