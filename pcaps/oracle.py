#!/usr/bin/python3
"""Expected verdicts for a real capture, worked out without holdfast.

    oracle.py --config CONFIG.json --pcap IN.pcap --out IN.expected.jsonl

The capture is dissected by tshark (IP reassembly off, so every fragment is
seen as it was on the wire). TCP connections come from tshark's own
conversation tracking (tcp.stream), UDP flows are their two ends (not
udp.stream: once an SDP sets up an RTP conversation, tshark numbers the
two directions of one RTP flow apart), ICMP echo flows are (requester,
target, identifier). The firewall's rules
are what the oracle models, written down here from the RFCs and the
firewall's documented behaviour, not from its code:

  * Every packet arrives on the inside port when its source address lies in
    the config's inside_networks, else on the outside port.
  * ARP passes as "arp" (l2.arp on, the default), conn 0.
  * IPv6 neighbour discovery (ICMPv6 133-137) passes as "ipv6_nd" when its
    hop limit is 255 (RFC 4861 6.1.1/7.1.1: anything lower was routed, i.e.
    forged off-link: "ipv6_nd_bad_hop_limit"), conn 0.
  * The first packet of a flow is judged by the rules (first match wins,
    then the default): allowed, it opens the next connection and passes as
    "new_connection"; denied, it is dropped as "policy_deny" (a rule said
    deny) or "default_deny" (no rule matched), conn 0, and opens nothing.
    TCP: only a SYN may open; any other first segment is "tcp_mid_stream".
    ICMP: only an echo request opens; a reply without one is
    "icmp_no_request".
  * Every later packet of an open flow, both directions, is "established"
    with the flow's connection ID.
  * Connection IDs are 1 << 40 | k, k counting connections as they open.
  * An ICMP error (ICMP 3/11/12, ICMPv6 1-4) is "related", with the quoted
    flow's connection ID, when the packet it quotes belongs to an open flow
    and the error travels back to that packet's sender; otherwise
    "icmp_error_unrelated", conn 0 (RFC 792, RFC 4443 2.4, RFC 5927).
  * Other ICMP types (MLD reports, timestamps, ...) are not tracked: the
    rules decide each packet, "untracked" when allowed, conn 0.
  * A fragment after the first (IPv4 offset > 0; IPv6 fragment header with
    offset > 0) takes the verdict of its datagram's first fragment:
    "fragment" with the same connection ID when that passed (RFC 8200 4.5,
    RFC 1858), "frag_of_dropped" when it was dropped, "frag_without_first"
    when it was never seen.

FTP (modules.ftp in the config: enabled unless "enabled" is false, control
ports "ports" (default [21]), "expectation_timeout" seconds (default 60)):

  * A TCP connection opened to one of the FTP ports is a control
    connection. Its bytes are read per direction in sequence order, from
    the raw sequence numbers and payloads tshark shows: a retransmission is
    read once, a segment ahead of a gap is held until the gap closes, a line
    may span segments; lines end with LF (an optional CR before it is not
    part of the line), and a line of more than 512 bytes is skipped.
  * Announcements (RFC 959 4.1.2, 4.2; RFC 2428; RFC 1123 4.1.2.6): from
    the client "PORT h1,h2,h3,h4,p1,p2" and "EPRT <d>af<d>addr<d>port<d>"
    (af 1 IPv4, 2 IPv6); from the server the final line of a 227 reply
    (the first h1,...,p2 in its text) and of a 229 reply ("(<d><d><d>port<d>)",
    the server's own address). "nnn-" lines of a multi-line reply do not
    count. Each opens an expectation for a TCP connection from the other
    end's address to the announced address and port, any source port,
    arriving on the port where that end's packets arrive.
  * Refused (no expectation; the control segment passes as usual): an
    announced address other than the announcer's (FTP bounce, RFC 2577 3),
    a port below 1024, arguments that do not parse. A control connection
    keeps at most 2 pending expectations: a third replaces the oldest.
  * The first SYN matching a pending, unexpired expectation consumes it: it
    passes as "expected" without asking policy, opens the next connection
    ID, and its line carries "master": the control connection's ID. Later
    packets of the data connection are "established" as usual.
  * The oracle cross-checks its reading with tshark's FTP dissector: every
    PORT, EPRT, 227 and 229 tshark decodes (ftp.active.*, ftp.eprt.*,
    ftp.passive.*, ftp.epsv.*) must be one the oracle read from the same
    frame (unless tshark, which reads each segment on its own and
    leniently, cannot read the frame as the firewall must: a
    retransmission, a segment out of order or holding part of a line,
    malformed arguments, a multi-line reply, an overlong line), and a
    data connection tshark ties to a PORT, PASV or EPSV
    (ftp-data.setup-frame) must be the one the oracle admitted for it.

SIP (modules.sip: enabled unless "enabled" is false, signalling "ports"
(default [5060]), "media_ranges" CIDRs (default none), "call_timeout"
seconds (default 3600), "calls_per_session" (default 32)):

  * A UDP flow or TCP connection opened (by policy) to one of the ports is
    a signalling connection; its opener is party A, the other end party
    B. UDP: each datagram is one message; one of only CR and LF bytes is
    a keepalive (RFC 5626 4.4.1). TCP: each direction's bytes are read in
    sequence order from the raw sequence numbers and payloads, a
    retransmission read once; a segment ahead of a gap passes, the
    message in progress is given up and reading resumes at the next line
    (from the segment's first byte) that is a start line; CR and LF before
    a start line are skipped; Content-Length, required, delimits the body.
  * A message (RFC 3261 7): "METHOD SP URI SP SIP/2.0" or "SIP/2.0 SP
    3DIGIT SP reason"; header lines "Name: value", names in any case,
    compact forms i f t l c v m, continuation lines folded in; lines end
    with LF (a CR before it dropped); Call-ID, CSeq ("number SP METHOD",
    the request's method), From and To required; Content-Length digits,
    at most 8192, within a UDP datagram (without it the rest is the
    body); a Call-ID, CSeq, From, To, Content-Length or Content-Type line
    over 256 bytes unfolded is malformed, other long headers are skipped.
    A body is SDP when Content-Type is application/sdp and it is not
    empty. SDP (RFC 4566): every line "<letter>=<value>"; c= "IN IP4
    addr[/ttl[/n]]" or "IN IP6 addr"; m= "media port[/1] proto fmt...";
    a=rtcp:port (RFC 3605) and a=rtcp-mux set a section's RTCP port, else
    port + 1; a section's address its own c= else the session's, none at
    all malformed; the first 4 m= lines are read.
  * A malformed message drops its datagram, or the TCP segment that holds
    it (the reader does not move: its retransmission is dropped too), as
    "sip_malformed" with the signalling connection's ID.
  * Calls by Call-ID (RFC 3264 offer/answer): an INVITE of a new Call-ID
    starts one (in either direction); other messages of unknown Call-IDs
    are ignored. A connection follows calls_per_session calls: a new one
    replaces the oldest unconfirmed call, or is not followed if all are
    confirmed. INVITE or UPDATE with SDP makes a pending offer (without,
    clears it); a 18x or 2xx to INVITE/UPDATE with SDP answers a pending
    offer of the other direction, else revises the answer of an active
    pair, else is itself an offer; ACK or PRACK with SDP answers a pending
    offer of the other direction. A response >= 300 to INVITE/UPDATE
    clears the offer, and ends the call when it answers an INVITE of an
    unconfirmed call; a 2xx to INVITE confirms it; BYE ends it, CANCEL ends
    an unconfirmed one. A call times out call_timeout seconds after its
    last message (at that instant: a flow whose first datagram comes at or
    after it is not admitted by the call).
  * An answered pair (A's and B's descriptions) opens, for each stream
    index both have, when both are audio or video with non-zero ports and
    each address is its announcer's signalling address or in
    media_ranges (else the stream opens nothing): UDP pinholes from B's
    address to A's address and RTP and RTCP ports, arriving on B's side,
    and from A's to B's, arriving on A's side; ports below 1024 open
    nothing (each on its own). A new pair replaces the call's pinholes;
    media connections already admitted stay until the call ends.
  * A new UDP flow whose first datagram matches a pinhole of a live call
    passes as "expected" without asking policy, opens the next connection
    ID, and its line carries "master": the signalling connection's ID.
    When the call ends (BYE, CANCEL, >= 300, replacement, the end of the
    signalling connection), its pinholes close and its media connections
    are gone: their next datagram is a first datagram, judged afresh.
    When it times out, only its pinholes close: its media connections
    stay, plain UDP flows under the config's UDP idle timeouts like any
    other (expiry the oracle does not model: see below), tied to no call,
    so a later BYE of that Call-ID (unknown by then) or the end of the
    signalling connection closes nothing.
  * The oracle cross-checks its reading with tshark's SIP and SDP
    dissectors: on every frame of a signalling connection it reads
    plainly (not malformed, nothing read twice or skipped, no gap), the
    Call-IDs tshark decodes (sip.Call-ID), the SDP media ports
    (sdp.media.port) and the c= addresses (sdp.connection_info.address)
    must be the ones the oracle read from that frame, and the SDP tshark
    ties an admitted media flow to (rtp.setup-frame, rtcp.setup-frame)
    must be a message of the call that admitted it.

What the oracle does not model it refuses, with an error, rather than
guess: VLAN tags, other IP protocols, IPv4 options, and flows idle longer
than the shortest timeout in force (expiry). Real traffic recorded with
checksum offloads off has valid checksums and well-formed headers, and
well-behaved TCP stays in its windows; the synthetic cases
(gen_synthetic.py) cover everything else. For FTP it also refuses what the
contract leaves open or the firewall bounds differently: a line whose
length is within a few bytes of the 512-byte limit, more than one held
segment (or more than 512 held bytes) per direction, the same expectation
announced twice while pending, a data SYN within 10 ms of its
expectation's expiry, and a data connection consumed after its control
connection sent a FIN or RST. For SIP: a malformed opener, a malformed TCP
message not wholly in the segment that completes it, or after a
well-formed message in the same segment, or in a segment ahead of a gap;
a start line that already fails while its message is incomplete; a key
header line within a few bytes of 256; two of the same key header, an
empty one, blanks inside a Call-ID or before a colon, runs of blanks in
CSeq, m= or c=; an SDP ending in an empty line, upper-case line types, c=
with a host name, an IPv6 c= with a suffix or IPv4 with leading zeros, two
c= in one section, session-level a=rtcp or a=rtcp-mux, both in one
section, a fault in an m= section past the 4th; an empty datagram or CR
and LF before a message in a datagram; a packet within 10 ms of a call's
timeout; a new flow two calls' pinholes admit; media while the signalling
connection may have expired; more sessions or calls than the per-worker
limits; a port that is both FTP and SIP; a fragmented SIP datagram; a
signalling connection with both ends on one side, or reusing a followed
one's ends; a pinhole admitting a flow to a SIP port.
"""

import argparse
import ipaddress
import json
import re
import subprocess
import sys

CONN_EPOCH = 1

FIELDS = [
    "frame.number",
    "frame.time_epoch",
    "frame.protocols",
    "eth.type",
    "ip.src",
    "ip.dst",
    "ip.proto",
    "ip.hdr_len",
    "ip.flags.mf",
    "ip.frag_offset",
    "ip.id",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.nxt",
    "ipv6.hlim",
    "ipv6.fraghdr.nxt",
    "ipv6.fraghdr.offset",
    "ipv6.fraghdr.more",
    "ipv6.fraghdr.ident",
    "tcp.stream",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.flags.fin",
    "tcp.flags.reset",
    "tcp.seq_raw",
    "tcp.len",
    "tcp.payload",
    "ftp.active.cip",
    "ftp.active.port",
    "ftp.eprt.ip",
    "ftp.eprt.ipv6",
    "ftp.eprt.port",
    "ftp.passive.ip",
    "ftp.passive.port",
    "ftp.epsv.port",
    "ftp-data.setup-frame",
    "ftp-data.setup-method",
    "udp.srcport",
    "udp.dstport",
    "udp.payload",
    "sip.Call-ID",
    "sdp.media.port",
    "sdp.connection_info.address",
    "rtp.setup-frame",
    "rtcp.setup-frame",
    "icmp.type",
    "icmp.ident",
    "icmpv6.type",
    "icmpv6.echo.identifier",
]

# Default idle timeouts in seconds (docs: timeouts in the config); the
# oracle refuses a capture in which a flow is idle longer than the shortest.
DEFAULT_TIMEOUTS = {
    ("tcp", "syn_sent"): 120, ("tcp", "syn_recv"): 60, ("tcp", "established"): 432000,
    ("tcp", "fin_wait"): 120, ("tcp", "close_wait"): 60, ("tcp", "last_ack"): 30,
    ("tcp", "time_wait"): 120, ("tcp", "close"): 10, ("tcp", "unacknowledged"): 300,
    ("udp", "unreplied"): 30, ("udp", "assured"): 120, ("icmp",): 30,
    ("fragment",): 30,
}

ICMP4_ERRORS = {3, 11, 12}
ICMP6_ERRORS = {1, 2, 3, 4}
ICMP6_ND = {133, 134, 135, 136, 137}
PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}


class NotModeled(Exception):
    pass


def conn_id(k):
    return (CONN_EPOCH << 40) | k


def fmt(index, reason, conn, passes, master=None):
    line = '{"index":%d,"verdict":"%s","reason":"%s","conn":%d' % (
        index, "pass" if passes else "drop", reason, conn)
    return line + (',"master":%d}' % master if master is not None else "}")


class Policy:
    """The config's rules, first match wins (docs/config.md)."""

    def __init__(self, config):
        self.inside = [ipaddress.ip_network(c) for c in config.get("inside_networks", [])]
        self.default = config.get("default", "deny")
        self.rules = []
        for r in config.get("rules", []):
            proto = r.get("protocol", "any")
            if isinstance(proto, str):
                proto = None if proto == "any" else PROTO_NUMBERS[proto]
            self.rules.append({
                "side": r.get("side", "any"),
                "proto": proto,
                "src": self._cidrs(r.get("src", [])),
                "dst": self._cidrs(r.get("dst", [])),
                "sports": self._ports(r.get("src_ports", [])),
                "dports": self._ports(r.get("dst_ports", [])),
                "action": r["action"],
            })
        l2 = config.get("l2", {})
        self.arp = l2.get("arp", True)
        self.non_ip = l2.get("non_ip", False)
        self.ipv6_nd = l2.get("ipv6_nd", True)
        self.timeouts = self._timeouts(config.get("timeouts", {}))
        self.shortest_timeout = min(self.timeouts.values())
        ftp = config.get("modules", {}).get("ftp", {})
        self.ftp_enabled = ftp.get("enabled", True)
        self.ftp_ports = set(ftp.get("ports", [21]))
        self.ftp_timeout = ftp.get("expectation_timeout", 60)
        sip = config.get("modules", {}).get("sip", {})
        self.sip_enabled = sip.get("enabled", True)
        self.sip_ports = set(sip.get("ports", [5060]))
        self.sip_media_ranges = [ipaddress.ip_network(c, strict=False)
                                 for c in sip.get("media_ranges", [])]
        self.sip_call_timeout = sip.get("call_timeout", 3600)
        self.sip_calls_per_session = sip.get("calls_per_session", 32)
        self.sip_sessions_per_worker = sip.get("sessions_per_worker", 1024)
        self.sip_calls_per_worker = sip.get("calls_per_worker", 4096)

    @staticmethod
    def _cidrs(v):
        v = [v] if isinstance(v, str) else v
        if v == ["any"]:
            return []
        return [ipaddress.ip_network(c, strict=False) for c in v]

    @staticmethod
    def _ports(v):
        v = v if isinstance(v, list) else [v]
        out = []
        for p in v:
            if isinstance(p, int):
                out.append((p, p))
            else:
                lo, _, hi = p.partition("-")
                out.append((int(lo), int(hi or lo)))
        return out

    @staticmethod
    def _timeouts(t):
        values = dict(DEFAULT_TIMEOUTS)
        for key, v in t.items():
            if isinstance(v, dict):
                for state, s in v.items():
                    values[(key, state)] = s
            else:
                values[(key,)] = v
        return values

    def side(self, src):
        a = ipaddress.ip_address(src)
        return "inside" if any(a in n for n in self.inside if n.version == a.version) else "outside"

    @staticmethod
    def _addr_match(cidrs, a):
        return not cidrs or any(a in n for n in cidrs if n.version == a.version)

    @staticmethod
    def _port_match(ranges, p):
        return not ranges or any(lo <= p <= hi for lo, hi in ranges)

    def decide(self, side, proto, src, dst, sport=0, dport=0):
        """Returns the reason for the first packet of a flow."""
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        for r in self.rules:
            if r["side"] != "any" and r["side"] != side:
                continue
            if r["proto"] is not None and r["proto"] != proto:
                continue
            # A rule lists addresses per family; one whose addresses are all
            # of the other family does not apply.
            if not self._addr_match(r["src"], s) or not self._addr_match(r["dst"], d):
                continue
            if not self._port_match(r["sports"], sport) or not self._port_match(r["dports"], dport):
                continue
            return "new_connection" if r["action"] == "allow" else "policy_deny"
        return "new_connection" if self.default == "allow" else "default_deny"


def run_tshark(pcap, decode_as=()):
    cmd = ["tshark", "-r", pcap, "-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
           "-o", "tcp.analyze_sequence_numbers:FALSE", "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=|", "-E", "separator=\t"]
    for d in decode_as:
        cmd += ["-d", d]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    frames = []
    for line in out.splitlines():
        values = line.split("\t")
        frames.append({f: (v.split("|") if v else []) for f, v in zip(FIELDS, values)})
    return frames


def first(frame, field, conv=str):
    v = frame[field]
    return conv(v[0]) if v else None


def integer(s):
    return int(s, 0)


# ------------------------------------------------------------------ FTP

FTP_MAX_LINE = 512      # longer control lines are skipped
FTP_MAX_PENDING = 2     # pending expectations per control connection
FTP_LINE_DOUBT = 3      # line lengths this close to the limit are refused
FTP_EXPIRY_DOUBT = 0.01  # seconds: a data SYN this close to expiry is refused


def seq_diff(a, b):
    """a - b in TCP sequence space (RFC 1982), as a signed number."""
    d = (a - b) & 0xffffffff
    return d - (1 << 32) if d >= 1 << 31 else d


def parse_announcement(line, from_client, announcer):
    """One complete control line (bytes, without its line end). Returns
    None for an ordinary line, else (kind, outcome, address, port) with
    outcome "open", "bounce", "low_port" or "malformed" (address and port
    None when malformed)."""
    text = line.decode("latin-1")
    if from_client:
        cmd, _, arg = text.partition(" ")
        cmd = cmd.upper()
        if cmd == "PORT":
            parsed = parse_port_args(arg)
        elif cmd == "EPRT":
            parsed = parse_eprt_args(arg)
        else:
            return None
        kind = cmd
    else:
        # Only a reply's final line, "nnn text", counts; "nnn-" lines are the
        # start or the middle of a multi-line reply (RFC 959 4.2).
        if text.startswith("227 "):
            parsed, kind = parse_227(text[4:]), "227"
        elif text.startswith("229 "):
            parsed, kind = parse_229(text[4:], announcer), "229"
        else:
            return None
    if parsed is None:
        return (kind, "malformed", None, None)
    address, port = parsed
    if address != announcer:
        return (kind, "bounce", address, port)
    if port < 1024:
        return (kind, "low_port", address, port)
    return (kind, "open", address, port)


def _bytes_to_endpoint(numbers):
    if any(int(n) > 255 for n in numbers):
        return None
    h = [int(n) for n in numbers]
    return ipaddress.ip_address("%d.%d.%d.%d" % tuple(h[:4])), h[4] * 256 + h[5]


def parse_port_args(arg):
    """PORT h1,h2,h3,h4,p1,p2 (RFC 959 4.1.2): six decimal bytes."""
    m = re.fullmatch(r"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})", arg)
    return _bytes_to_endpoint(m.groups()) if m else None


def parse_eprt_args(arg):
    """EPRT <d>af<d>address<d>port<d> (RFC 2428 2): any delimiter from 33
    to 126, af 1 (IPv4 dotted quad) or 2 (IPv6 text)."""
    if not arg or not 33 <= ord(arg[0]) <= 126:
        return None
    parts = arg.split(arg[0])
    if len(parts) != 5 or parts[0] or parts[4]:
        return None
    af, address, port = parts[1:4]
    try:
        if af == "1":
            a = ipaddress.IPv4Address(address)
        elif af == "2":
            a = ipaddress.IPv6Address(address)
        else:
            return None
    except ValueError:
        return None
    if not re.fullmatch(r"\d{1,5}", port) or not 0 < int(port) < 65536:
        return None
    return a, int(port)


def parse_227(text):
    """227 text: the first h1,h2,h3,h4,p1,p2 in it (RFC 1123 4.1.2.6: the
    reply's form varies, so scan for the numbers)."""
    m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", text)
    return _bytes_to_endpoint(m.groups()) if m else None


def parse_229(text, server):
    """229 text (<d><d><d>port<d>) (RFC 2428 3): the port, on the server's
    own address."""
    m = re.search(r"\(([\x21-\x7e])\1\1(\d{1,5})\1\)", text)
    if not m or not 0 < int(m.group(2)) < 65536:
        return None
    return server, int(m.group(2))


class FtpDirection:
    """One direction of a control connection: the byte stream in sequence
    order, cut into lines."""

    def __init__(self):
        self.next = None  # raw sequence number of the next byte to read
        self.held = []    # [(seq, bytes)] ahead of a gap
        self.line = bytearray()
        self.skipped = False  # the last segment completed an overlong line

    def feed(self, seq, data, index):
        """Returns the lines this segment completes, and whether the segment
        was plain: read in order, whole lines, nothing held or read twice."""
        if self.next is None:
            raise NotModeled("frame %d: FTP control data before the handshake" % index)
        d = seq_diff(seq, self.next)
        plain = d == 0 and not self.line and not self.held and data.endswith(b"\n")
        if d > 0:
            if self.held or len(data) > FTP_MAX_LINE:
                raise NotModeled("frame %d: more held out of order than the firewall holds" % index)
            self.held.append((seq, data))
            return [], False
        self.skipped = False
        lines = self._take(seq, data)
        while self.held and seq_diff(self.held[0][0], self.next) <= 0:
            hseq, hdata = self.held.pop(0)
            lines += self._take(hseq, hdata)
        return lines, plain and not self.skipped

    def _take(self, seq, data):
        skip = -seq_diff(seq, self.next)
        if skip >= len(data):
            return []  # a retransmission: read once
        data = data[skip:]
        self.next = (self.next + len(data)) & 0xffffffff
        lines = []
        for b in data:
            if b == 0x0A:
                line = bytes(self.line)
                self.line = bytearray()
                if line.endswith(b"\r"):
                    line = line[:-1]
                if abs(len(line) - FTP_MAX_LINE) <= FTP_LINE_DOUBT:
                    raise NotModeled("control line of %d bytes, at the limit" % len(line))
                if len(line) <= FTP_MAX_LINE:
                    lines.append(line)
                else:
                    self.skipped = True
            elif len(self.line) <= FTP_MAX_LINE + FTP_LINE_DOUBT:
                self.line.append(b)
            else:
                self.line = self.line[:FTP_MAX_LINE + FTP_LINE_DOUBT + 1]
        return lines


class FtpControl:
    """A followed control connection."""

    def __init__(self, conn, client, server, client_side):
        self.conn = conn
        self.addr = [client, server]  # by direction: 0 from the client, 1 from the server
        self.side = [client_side, "outside" if client_side == "inside" else "inside"]
        self.dirs = [FtpDirection(), FtpDirection()]
        self.pending = []  # expectation keys, oldest first
        self.ended = False  # a FIN or RST seen


class FtpTracker:
    """Control connections, their announcements and the expectations they
    open (the contract in the module docstring)."""

    def __init__(self, policy):
        self.policy = policy
        self.controls = {}      # flow key -> FtpControl
        self.expectations = {}  # (opener, address, port) -> record
        self.log = []           # (frame, kind, outcome, address, port) of every announcement
        self.frame_reads = {}   # frame -> [(kind, address, port)] read in that frame
        self.data_setup = {}    # data flow key -> frame of the announcement it consumed
        self.odd_frames = set()  # frames whose FTP tshark may read otherwise (not cross-checked)

    def is_control_port(self, dport):
        return self.policy.ftp_enabled and dport in self.policy.ftp_ports

    def opened(self, key, conn, client, server, side, seq):
        c = FtpControl(conn, ipaddress.ip_address(client), ipaddress.ip_address(server), side)
        c.dirs[0].next = (seq + 1) & 0xffffffff
        self.controls[key] = c

    def segment(self, key, f, index, ts, src):
        """A passing segment of a flow; read when it is a control connection's."""
        c = self.controls.get(key)
        if c is None:
            return
        d = 0 if ipaddress.ip_address(src) == c.addr[0] else 1
        seq = integer(f["tcp.seq_raw"][0])
        payload = bytes.fromhex(f["tcp.payload"][0]) if f["tcp.payload"] else b""
        if f["tcp.flags.syn"][0] in ("1", "True"):
            if payload:
                raise NotModeled("frame %d: SYN with data on an FTP control connection" % index)
            if d == 1:
                c.dirs[1].next = (seq + 1) & 0xffffffff
            return
        if payload:
            lines, plain = c.dirs[d].feed(seq, payload, index)
            for line in lines:
                plain = self.line(c, d, line, index, ts) and plain
            if not plain:
                self.odd_frames.add(index)
        if f["tcp.flags.fin"][0] in ("1", "True") or f["tcp.flags.reset"][0] in ("1", "True"):
            c.ended = True

    def line(self, c, d, line, index, ts):
        """Reads one control line. Returns False when tshark's reading of
        the line may differ and need not be checked: malformed arguments,
        a line of a multi-line reply."""
        a = parse_announcement(line, d == 0, c.addr[d])
        if a is None:
            return d == 0 or re.match(rb"\d{3} ", line) is not None
        kind, outcome, address, port = a
        self.log.append((index, kind, outcome, address, port))
        if address is not None:
            self.frame_reads.setdefault(index, []).append((kind, address, port))
        if outcome != "open":
            return outcome != "malformed"
        opener = 1 - d
        key = (c.addr[opener], address, port)
        if key in self.expectations:
            raise NotModeled("frame %d: %s announces an expectation already pending" % (index, kind))
        self.expectations[key] = {"control": c, "expires": ts + self.policy.ftp_timeout,
                                  "side": c.side[opener], "frame": index}
        c.pending.append(key)
        if len(c.pending) > FTP_MAX_PENDING:
            del self.expectations[c.pending.pop(0)]
        return True

    def match(self, src, dst, dport, side, ts, index):
        """The expectation a SYN consumes, or None."""
        key = (ipaddress.ip_address(src), ipaddress.ip_address(dst), dport)
        e = self.expectations.get(key)
        if e is None:
            return None
        if abs(ts - e["expires"]) <= FTP_EXPIRY_DOUBT:
            raise NotModeled("frame %d: data SYN at its expectation's expiry" % index)
        if ts > e["expires"] or e["side"] != side:
            return None
        if e["control"].ended:
            raise NotModeled("frame %d: data SYN after its control connection closed" % index)
        del self.expectations[key]
        e["control"].pending.remove(key)
        return e

    def cross_check(self, f, index):
        """tshark's FTP reading of this frame against the oracle's, for the
        control connections the oracle follows."""
        if not f["tcp.stream"] or ("tcp", integer(f["tcp.stream"][0])) not in self.controls:
            return
        if index in self.odd_frames:
            return
        mine = self.frame_reads.get(index, [])
        theirs = []
        for ip_field, port_field, kinds in (("ftp.active.cip", "ftp.active.port", ("PORT",)),
                                            ("ftp.eprt.ip", "ftp.eprt.port", ("EPRT",)),
                                            ("ftp.eprt.ipv6", "ftp.eprt.port", ("EPRT",)),
                                            ("ftp.passive.ip", "ftp.passive.port", ("227",))):
            if f[ip_field] and f[port_field]:
                theirs.append((kinds, ipaddress.ip_address(f[ip_field][0]), integer(f[port_field][0])))
        if f["ftp.epsv.port"]:
            theirs.append((("229",), None, integer(f["ftp.epsv.port"][0])))
        for kinds, address, port in theirs:
            if not any(k in kinds and p == port and (address is None or a == address)
                       for k, a, p in mine):
                raise NotModeled("frame %d: tshark reads %s %s port %d, the oracle does not"
                                 % (index, kinds[0], address, port))


# ------------------------------------------------------------------ SIP

SIP_MAX_KEY_LINE = 256   # a longer Call-ID, CSeq, From, To, Content-Length or Content-Type line is malformed
SIP_LINE_DOUBT = 3       # key header lines this close to the limit are refused
SIP_MAX_BODY = 8192      # the largest Content-Length
SIP_MAX_MEDIA = 4        # m= lines read per SDP
SIP_EXPIRY_DOUBT = 0.01  # seconds: a packet this close to a call's timeout is refused
SIP_COMPACT = {"i": "call-id", "f": "from", "t": "to", "l": "content-length", "c": "content-type",
               "v": "via", "m": "contact"}
SIP_KEY_HEADERS = ("call-id", "cseq", "from", "to", "content-length", "content-type")
SIP_TOKEN = rb"[A-Za-z0-9.!%*_+`'~-]+"  # RFC 3261 25.1
SIP_REQUEST_LINE = re.compile(rb"(" + SIP_TOKEN + rb") (\S+) SIP/2\.0")
SIP_STATUS_LINE = re.compile(rb"SIP/2\.0 (\d{3}) (.*)", re.S)
SIP_HEADER_LINE = re.compile(rb"(" + SIP_TOKEN + rb")([ \t]*):(.*)", re.S)
SIP_MEDIA_TYPES = ("audio", "video")


class SipMalformed(Exception):
    """A message the contract calls malformed: dropped as sip_malformed."""


def is_sip_start_line(line):
    return SIP_REQUEST_LINE.fullmatch(line) is not None or SIP_STATUS_LINE.fullmatch(line) is not None


class Sdp:
    """What the firewall reads of one SDP body (RFC 4566)."""

    def __init__(self):
        self.streams = []    # (media, address, port, rtcp port) of the first SIP_MAX_MEDIA m= lines
        self.ports = []      # every m= port, in order (cross-checked with tshark)
        self.addresses = []  # every c= address, in order (cross-checked with tshark)


def _strict_or_doubt(pattern, lenient, value, what):
    """pattern.fullmatch(value), or None when value breaks the rule; a value
    that only breaks it by spacing (runs of blanks, blanks at the end) is
    refused: the contract writes single spaces but does not say whether
    more are malformed."""
    m = pattern.fullmatch(value)
    if m is None and lenient.fullmatch(value) is not None:
        raise NotModeled("%s with unusual spacing: %r" % (what, value))
    return m


SDP_LINE = re.compile(rb"([A-Za-z])=(.*)", re.S)
SDP_C4 = re.compile(rb"IN IP4 (\d{1,3}(?:\.\d{1,3}){3})(/\d+(?:/\d+)?)?")
SDP_C6 = re.compile(rb"IN IP6 ([0-9A-Fa-f:.]+)")
SDP_C_LENIENT = re.compile(rb"[ \t]*IN[ \t]+IP[46][ \t]+\S+[ \t]*")
SDP_M = re.compile(rb"(\S+) (\d+)(?:/(\d+))? (\S+)((?: \S+)+)")
SDP_M_LENIENT = re.compile(rb"[ \t]*\S+[ \t]+\d+(?:/\d+)?[ \t]+\S+(?:[ \t]+\S+)+[ \t]*")
SDP_RTCP = re.compile(rb"rtcp:(\d+)(?: .*)?", re.S)


def parse_sdp_address(value):
    """The address of a c= value, or None when the line is malformed."""
    m = SDP_C4.fullmatch(value)
    if m:
        text = m.group(1).decode()
        if any(len(p) > 1 and p.startswith("0") for p in text.split(".")):
            raise NotModeled("c= address with leading zeros: %s" % text)
        try:
            return ipaddress.IPv4Address(text)
        except ValueError:
            return None
    m = SDP_C6.fullmatch(value)
    if m:
        try:
            return ipaddress.IPv6Address(m.group(1).decode())
        except ValueError:
            return None
    if SDP_C_LENIENT.fullmatch(value):
        raise NotModeled("c= with unusual spacing or an address form the contract leaves open: %r"
                         % value)
    return None


def parse_sdp(body):
    """The SDP of a body; raises SipMalformed when a line breaks the
    contract's rules (section 3)."""
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the last line's end
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    if lines and lines[-1] == b"":
        raise NotModeled("an SDP body ending in an empty line")
    sdp = Sdp()
    session = {"addr": None, "errors": []}
    sections = []

    def fault(what):
        (sections[-1] if sections else session)["errors"].append(what)

    for line in lines:
        m = SDP_LINE.fullmatch(line)
        if m is None:
            fault("SDP line %r is not <letter>=<value>" % line)
            continue
        letter, value = m.group(1), m.group(2)
        if letter.isupper():
            raise NotModeled("SDP line with an upper-case type: %r" % line)
        if letter == b"c":
            a = parse_sdp_address(value)
            if a is None:
                fault("bad c= line %r" % line)
                continue
            sdp.addresses.append(a)
            where = sections[-1] if sections else session
            if where["addr"] is not None:
                raise NotModeled("two c= lines in one SDP section")
            where["addr"] = a
        elif letter == b"m":
            s = {"media": None, "port": 0, "addr": None, "rtcp": None, "mux": False, "errors": []}
            sections.append(s)
            m = _strict_or_doubt(SDP_M, SDP_M_LENIENT, value, "m=")
            if m is None:
                fault("bad m= line %r" % line)
                continue
            port, count = m.group(2), m.group(3)
            if len(port) > 5 or (count is not None and len(count) > 1 and int(count) == 1):
                raise NotModeled("m= port or count with leading zeros: %r" % line)
            if int(port) > 65535:
                fault("m= port %s" % port.decode())
                continue
            if count is not None and int(count) != 1:
                fault("m= port count %s" % count.decode())
                continue
            s["media"], s["port"] = m.group(1).decode("latin-1"), int(port)
            sdp.ports.append(int(port))
        elif letter == b"a" and value.startswith(b"rtcp:"):
            if not sections:
                raise NotModeled("a=rtcp at session level")
            m = SDP_RTCP.fullmatch(value)
            if m is None or len(m.group(1)) > 5 or int(m.group(1)) > 65535:
                fault("bad a=rtcp line %r" % line)
                continue
            sections[-1]["rtcp"] = int(m.group(1))
        elif letter == b"a" and value.startswith(b"rtcp-mux"):
            if value != b"rtcp-mux" or not sections:
                raise NotModeled("a=rtcp-mux at session level or with more: %r" % line)
            sections[-1]["mux"] = True
    for s in sections:
        if s["addr"] is None and session["addr"] is None and not s["errors"]:
            s["errors"].append("a media section without an address")
    read = sections[:SIP_MAX_MEDIA]
    errors = session["errors"] + [e for s in read for e in s["errors"]]
    if errors:
        raise SipMalformed(errors[0])
    if any(s["errors"] for s in sections[SIP_MAX_MEDIA:]):
        raise NotModeled("a fault in an m= section past the %dth, which the firewall does not read"
                         % SIP_MAX_MEDIA)
    for s in read:
        if s["rtcp"] is not None and s["mux"]:
            raise NotModeled("a=rtcp and a=rtcp-mux in one media section")
        rtcp = s["rtcp"] if s["rtcp"] is not None else s["port"] if s["mux"] else s["port"] + 1
        if rtcp > 65535:
            raise NotModeled("RTCP port %d" % rtcp)
        sdp.streams.append((s["media"], s["addr"] or session["addr"], s["port"], rtcp))
    return sdp


class SipMessage:
    def __init__(self, method, status, call_id, cseq_method, content_length, is_sdp):
        self.method = method            # a request's method, else None
        self.status = status            # a response's status code, else None
        self.call_id = call_id
        self.cseq_method = cseq_method
        self.content_length = content_length  # None when absent
        self.is_sdp = is_sdp            # Content-Type application/sdp
        self.sdp = None                 # Sdp, when the body is SDP

    def __repr__(self):
        what = self.method or "%d %s" % (self.status, self.cseq_method)
        return "<%s %s%s>" % (what, self.call_id, " SDP" if self.sdp else "")


def split_head(buf, pos=0):
    """The lines of a message's head in buf from pos (each without its CRLF
    or LF) and the offset after the empty line that ends them, or None when
    that line has not arrived yet."""
    lines = []
    while True:
        nl = buf.find(b"\n", pos)
        if nl < 0:
            return None
        line = bytes(buf[pos:nl])
        if line.endswith(b"\r"):
            line = line[:-1]
        pos = nl + 1
        if not line:
            return lines, pos
        lines.append(line)


def parse_sip_head(lines):
    """A message's start line and headers (RFC 3261 7; the contract's
    section 2). Returns a SipMessage without its SDP; raises SipMalformed."""
    start = lines[0]
    method = status = None
    m = SIP_REQUEST_LINE.fullmatch(start)
    if m:
        method = m.group(1).decode()
    else:
        m = SIP_STATUS_LINE.fullmatch(start)
        if m is None:
            raise SipMalformed("start line %r" % start)
        status = int(m.group(1))
    headers = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            if not headers:
                raise SipMalformed("a continuation line before any header")
            headers[-1].append(line)
        else:
            headers.append([line])
    values = {}
    limit = SIP_MAX_KEY_LINE
    for parts in headers:
        # The unfolded line's length: at least the lines with their leading
        # blanks dropped, at most all of them with the folding CRLFs.
        shortest = len(parts[0]) + sum(len(p.lstrip(b" \t")) for p in parts[1:])
        longest = sum(len(p) for p in parts) + 2 * (len(parts) - 1)
        doubt = longest >= limit - SIP_LINE_DOUBT and shortest <= limit + SIP_LINE_DOUBT
        m = SIP_HEADER_LINE.fullmatch(parts[0])
        if m is None:
            if longest >= limit - SIP_LINE_DOUBT:
                raise NotModeled("an overlong line that is not a header: %r" % parts[0][:40])
            raise SipMalformed("header line %r" % parts[0])
        name = m.group(1).decode().lower()
        name = SIP_COMPACT.get(name, name)
        if name not in SIP_KEY_HEADERS:
            continue
        if m.group(2):
            raise NotModeled("blanks before a header's colon: %r" % parts[0])
        if doubt:
            raise NotModeled("a %s line of %d to %d bytes, at the limit" % (name, shortest, longest))
        if shortest > limit:
            raise SipMalformed("%s line of %d bytes" % (name, shortest))
        if name in values:
            raise NotModeled("two %s headers" % name)
        value = b" ".join([m.group(3).strip(b" \t")] + [p.strip(b" \t") for p in parts[1:]])
        values[name] = value.strip(b" \t")
    for name in ("call-id", "cseq", "from", "to"):
        if name not in values:
            raise SipMalformed("no %s header" % name)
        if not values[name]:
            raise NotModeled("an empty %s header" % name)
    call_id = values["call-id"].decode("latin-1")
    if re.search(r"\s", call_id):
        raise NotModeled("blanks inside a Call-ID")
    m = re.fullmatch(rb"(\d+) (" + SIP_TOKEN + rb")", values["cseq"])
    if m is None:
        if re.fullmatch(rb"\d+[ \t]+" + SIP_TOKEN, values["cseq"]):
            raise NotModeled("CSeq with unusual spacing: %r" % values["cseq"])
        raise SipMalformed("CSeq %r" % values["cseq"])
    if int(m.group(1)) >= 1 << 31:
        raise NotModeled("CSeq number %s" % m.group(1).decode())
    cseq_method = m.group(2).decode()
    if method is not None and cseq_method != method:
        raise SipMalformed("CSeq method %s in a %s request" % (cseq_method, method))
    length = None
    if "content-length" in values:
        v = values["content-length"]
        if re.fullmatch(rb"\d+", v) is None:
            raise SipMalformed("Content-Length %r" % v)
        if len(v) > 5:
            raise NotModeled("Content-Length with %d digits" % len(v))
        length = int(v)
        if length > SIP_MAX_BODY:
            raise SipMalformed("Content-Length %d" % length)
    ctype = values.get("content-type", b"").split(b";")[0].strip(b" \t").lower()
    return SipMessage(method, status, call_id, cseq_method, length, ctype == b"application/sdp")


def read_body(msg, body):
    """Attaches the SDP of a message whose body is body."""
    if msg.is_sdp and body:
        msg.sdp = parse_sdp(bytes(body))
    return msg


def parse_sip_datagram(payload):
    """One UDP datagram: a SipMessage, or None for a keepalive (only CR and
    LF bytes, RFC 5626 4.4.1). Raises SipMalformed."""
    if not payload:
        raise NotModeled("an empty datagram on a SIP flow")
    if not payload.strip(b"\r\n"):
        return None
    if payload[:1] in (b"\r", b"\n"):
        raise NotModeled("CR or LF before a SIP message in a datagram")
    head = split_head(payload)
    if head is None:
        raise SipMalformed("no empty line ends the headers")
    lines, body_at = head
    msg = parse_sip_head(lines)
    rest = payload[body_at:]
    if msg.content_length is not None:
        if msg.content_length > len(rest):
            raise SipMalformed("Content-Length %d, %d bytes follow" % (msg.content_length, len(rest)))
        rest = rest[:msg.content_length]
    return read_body(msg, rest)


class SipStream:
    """One direction of a TCP signalling connection: its bytes in sequence
    order, cut into messages (the contract's section 1)."""

    def __init__(self):
        self.next = None         # raw sequence number of the next byte to read
        self.buf = bytearray()   # bytes read, not yet a whole message
        self.resync = False      # after a gap: lines are skipped until a start line
        self.started = None      # the frame in which the message in buf began
        self.lost = 0            # messages given up at a gap (out_of_order_lost)

    def feed(self, seq, data, index):
        """Returns (messages, fault, plain): the messages this segment
        completes, the SipMalformed it completes (None if none: then the
        segment passes) and whether tshark, reading each segment after the
        ones before it, reads it the same way (in order, nothing read twice,
        no gap, nothing skipped)."""
        if self.next is None:
            raise NotModeled("frame %d: SIP data before the handshake" % index)
        d = seq_diff(seq, self.next)
        plain = d == 0 and not self.resync
        if d > 0:
            # Ahead of a gap: it passes, the message in progress is given
            # up, reading resumes at the next start line (read from this
            # segment's first byte on).
            if self.buf.strip(b"\r\n"):
                self.lost += 1
            self.buf, self.resync, self.started, self.next = bytearray(), True, None, seq
        elif d < 0:
            if -d >= len(data):
                return [], None, False  # a retransmission: read once
            data = data[-d:]
        before = (bytes(self.buf), self.resync, self.next, self.started)
        self.next = (self.next + len(data)) & 0xffffffff
        self.buf += data
        messages = []
        while True:
            if self.resync:
                while True:
                    nl = self.buf.find(b"\n")
                    if nl < 0:
                        break
                    line = bytes(self.buf[:nl]).rstrip(b"\r")
                    if is_sip_start_line(line):
                        self.resync = False
                        break
                    del self.buf[:nl + 1]
                    plain = False
                if self.resync:
                    break
            skipped = len(self.buf) - len(self.buf.lstrip(b"\r\n"))
            if skipped:
                del self.buf[:skipped]  # CRLF before a start line
                plain = False
            if not self.buf:
                self.started = None
                break
            if self.started is None:
                self.started = index
            head = split_head(self.buf)
            if head is None:
                nl = self.buf.find(b"\n")
                if nl >= 0 and not is_sip_start_line(bytes(self.buf[:nl]).rstrip(b"\r")):
                    raise NotModeled("frame %d: a bad start line in a TCP message not yet complete"
                                     % index)
                break
            lines, body_at = head
            try:
                msg = parse_sip_head(lines)
                if msg.content_length is None:
                    raise SipMalformed("no Content-Length on TCP")
                end = body_at + msg.content_length
                if len(self.buf) < end:
                    break  # the body is still to come
                read_body(msg, self.buf[body_at:end])
            except SipMalformed as e:
                if d > 0:
                    raise NotModeled("frame %d: a malformed message in a segment ahead of a gap" % index)
                if self.started != index:
                    raise NotModeled("frame %d: a malformed TCP message begun in an earlier segment "
                                     "(the contract does not say which segment is dropped)" % index)
                if messages:
                    raise NotModeled("frame %d: a malformed TCP message after a well-formed one in "
                                     "the same segment" % index)
                self.buf, self.resync, self.next, self.started = bytearray(before[0]), before[1], \
                    before[2], before[3]
                return [], e, False
            del self.buf[:end]
            self.started = None
            messages.append(msg)
        return messages, None, plain


class SipCall:
    def __init__(self, call_id, ts, index):
        self.call_id = call_id
        self.frame = index           # the INVITE that started it
        self.last = ts               # its last SIP message
        self.pending = None          # (direction, Sdp) of the pending offer
        self.active = [None, None]   # by direction: 0 the opener's party (A), 1 the other (B)
        self.confirmed = False
        self.pinholes = set()        # (source, destination, port, side)
        self.media = []              # (flow key, conn) admitted through its pinholes


class SipSession:
    """A followed signalling connection."""

    def __init__(self, conn, transport, opener, peer, opener_side):
        self.conn = conn
        self.transport = transport
        self.ends = [opener, peer]   # (address, port) by direction: 0 the opener's
        self.addr = [opener[0], peer[0]]
        self.side = [opener_side, "outside" if opener_side == "inside" else "inside"]
        self.calls = {}              # Call-ID -> SipCall, oldest first
        self.streams = [SipStream(), SipStream()]
        self.last = None             # its last packet
        self.replied = False         # a packet from the peer seen
        self.ended = False           # TCP: a FIN or RST seen


class SipTracker:
    """Signalling connections, their calls and the pinholes they open (the
    contract in the module docstring)."""

    def __init__(self, policy, close_flow):
        self.policy = policy
        self.close_flow = close_flow  # callable(flow key, conn): a media connection closes
        self.sessions = {}            # flow key -> SipSession
        self.pinholes = {}            # (source, destination, port, side) -> [(session, call)]
        self.media = {}               # media flow key -> (session, call)
        self.log = []                 # (frame, event, Call-ID, detail)
        self.frame_reads = {}         # frame -> [SipMessage] read in that frame
        self.sdp_frames = {}          # frame -> {(signalling conn, Call-ID)} of its messages with SDP
        self.odd_frames = set()       # frames tshark may read otherwise (not cross-checked)
        self.counters = {}

    def count(self, what):
        self.counters[what] = self.counters.get(what, 0) + 1

    def is_signalling_port(self, dport):
        return self.policy.sip_enabled and dport in self.policy.sip_ports

    # -- signalling connections

    def opened(self, key, conn, transport, src, sport, dst, dport, side, ts, index):
        if dport in self.policy.ftp_ports and self.policy.ftp_enabled:
            raise NotModeled("frame %d: port %d is both an FTP and a SIP port" % (index, dport))
        a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        if self.policy.side(dst) == side:
            raise NotModeled("frame %d: both ends of a SIP connection on the %s" % (index, side))
        for other in self.sessions.values():
            if other.ends == [(a, sport), (b, dport)] and other.transport == transport:
                raise NotModeled("frame %d: a SIP connection reuses a followed one's ports" % index)
        s = SipSession(conn, transport, (a, sport), (b, dport), side)
        s.last = ts
        self.sessions[key] = s
        if len(self.sessions) > self.policy.sip_sessions_per_worker:
            raise NotModeled("frame %d: more signalling connections than sessions_per_worker" % index)
        return s

    def direction(self, s, src, sport):
        return 0 if (ipaddress.ip_address(src), sport) == s.ends[0] else 1

    def datagram(self, key, f, index, ts, src, sport, opener=False):
        """A UDP datagram of a flow; read when it is a signalling flow's.
        Returns the SipMalformed that drops it, else None."""
        s = self.sessions.get(key)
        if s is None:
            return None
        s.last = ts
        d = self.direction(s, src, sport)
        s.replied = s.replied or d == 1
        if f["ip.flags.mf"][:1] in (["1"], ["True"]) or f["ipv6.fraghdr.more"][:1] in (["1"], ["True"]):
            raise NotModeled("frame %d: a fragmented SIP datagram (the contract does not say how "
                             "one is read)" % index)
        payload = bytes.fromhex(f["udp.payload"][0]) if f["udp.payload"] else b""
        try:
            msg = parse_sip_datagram(payload)
        except SipMalformed as e:
            if opener:
                raise NotModeled("frame %d: a malformed opener (%s): the contract does not say "
                                 "whether it opens the connection" % (index, e))
            self.odd_frames.add(index)
            self.log.append((index, "malformed", None, str(e)))
            return e
        if msg is None:
            self.odd_frames.add(index)
            return None
        self.frame_reads[index] = [msg]
        self.message(s, d, msg, index, ts)
        return None

    def segment(self, key, f, index, ts, src, sport):
        """A passing TCP segment of a flow; read when it is a signalling
        connection's. Returns the SipMalformed that drops it, else None."""
        s = self.sessions.get(key)
        if s is None:
            return None
        s.last = ts
        d = self.direction(s, src, sport)
        s.replied = s.replied or d == 1
        seq = integer(f["tcp.seq_raw"][0])
        payload = bytes.fromhex(f["tcp.payload"][0]) if f["tcp.payload"] else b""
        if f["tcp.flags.syn"][0] in ("1", "True"):
            if payload:
                raise NotModeled("frame %d: SYN with data on a SIP connection" % index)
            if d == 1:
                s.streams[1].next = (seq + 1) & 0xffffffff
            return None
        if payload:
            messages, fault, plain = s.streams[d].feed(seq, payload, index)
            if fault is not None:
                self.odd_frames.add(index)
                self.log.append((index, "malformed", None, str(fault)))
                return fault
            if not plain:
                self.odd_frames.add(index)
            self.frame_reads.setdefault(index, []).extend(messages)
            for msg in messages:
                self.message(s, d, msg, index, ts)
        if f["tcp.flags.fin"][0] in ("1", "True") or f["tcp.flags.reset"][0] in ("1", "True"):
            s.ended = True
        return None

    # -- calls (sections 5 and 6)

    def message(self, s, d, msg, index, ts):
        if msg.sdp is not None:
            self.sdp_frames.setdefault(index, set()).add((s.conn, msg.call_id))
        call = s.calls.get(msg.call_id)
        if call is None:
            if msg.method != "INVITE":
                return  # an unknown Call-ID: ignored
            if len(s.calls) >= self.policy.sip_calls_per_session:
                victim = next((c for c in s.calls.values() if not c.confirmed), None)
                if victim is None:
                    self.count("calls_refused")
                    self.log.append((index, "refused", msg.call_id, None))
                    return
                self.count("calls_replaced")
                self.end_call(s, victim, index, "replaced")
            call = SipCall(msg.call_id, ts, index)
            s.calls[msg.call_id] = call
            self.log.append((index, "call", msg.call_id, None))
            if sum(len(x.calls) for x in self.sessions.values()) > self.policy.sip_calls_per_worker:
                raise NotModeled("frame %d: more calls than calls_per_worker" % index)
        call.last = ts
        sdp = msg.sdp
        if msg.method in ("INVITE", "UPDATE"):
            call.pending = (d, sdp) if sdp is not None else None
        elif msg.method in ("ACK", "PRACK"):
            if sdp is not None and call.pending is not None and call.pending[0] != d:
                self.answer(s, call, d, sdp, index)
        elif msg.method == "BYE":
            self.end_call(s, call, index, "bye")
        elif msg.method == "CANCEL":
            if not call.confirmed:
                self.end_call(s, call, index, "cancel")
        elif msg.status is not None and msg.cseq_method in ("INVITE", "UPDATE"):
            st = msg.status
            if sdp is not None and (180 <= st <= 189 or 200 <= st <= 299):
                if call.pending is not None and call.pending[0] != d:
                    self.answer(s, call, d, sdp, index)
                elif call.active[0] is not None and call.active[1] is not None:
                    call.active[d] = sdp
                    self.set_pinholes(s, call, index)
                else:
                    call.pending = (d, sdp)
            if st >= 300:
                call.pending = None
                if msg.cseq_method == "INVITE" and not call.confirmed:
                    self.end_call(s, call, index, "rejected %d" % st)
                    return
            if 200 <= st <= 299 and msg.cseq_method == "INVITE":
                call.confirmed = True

    def answer(self, s, call, d, sdp, index):
        od, offer = call.pending
        call.active[od], call.active[d] = offer, sdp
        call.pending = None
        self.set_pinholes(s, call, index)

    # -- pinholes (section 7)

    def allowed_address(self, addr, own):
        return addr == own or any(addr in n for n in self.policy.sip_media_ranges
                                  if n.version == addr.version)

    def wanted_pinholes(self, s, call, index):
        A, B = call.active
        out = set()
        for i in range(min(len(A.streams), len(B.streams))):
            ma, aa, pa, ra = A.streams[i]
            mb, ab, pb, rb = B.streams[i]
            if ma not in SIP_MEDIA_TYPES or mb not in SIP_MEDIA_TYPES or pa == 0 or pb == 0:
                continue
            if not self.allowed_address(aa, s.addr[0]) or not self.allowed_address(ab, s.addr[1]):
                self.count("refused_address")
                self.log.append((index, "refused_address", call.call_id, i))
                continue
            for src, dst, ports, side in ((ab, aa, (pa, ra), s.side[1]), (aa, ab, (pb, rb), s.side[0])):
                for port in sorted(set(ports)):
                    if port < 1024:
                        self.count("refused_low_port")
                        self.log.append((index, "refused_low_port", call.call_id, port))
                        continue
                    out.add((src, dst, port, side))
        return out

    def set_pinholes(self, s, call, index):
        new = self.wanted_pinholes(s, call, index)
        for p in call.pinholes - new:
            self.pinholes[p].remove((s, call))
            if not self.pinholes[p]:
                del self.pinholes[p]
        for p in new - call.pinholes:
            self.pinholes.setdefault(p, []).append((s, call))
        call.pinholes = new
        self.log.append((index, "pinholes", call.call_id, sorted(
            (str(a), str(b), port, side) for a, b, port, side in new)))

    def end_call(self, s, call, index, why, close_media=True):
        """Section 8: the pinholes close, the media connections close;
        unless close_media is False (the call timed out): then they are
        left be, ordinary UDP flows under their own idle timeouts, tied to
        no call (a later BYE or the signalling connection's end finds
        nothing to close)."""
        for p in call.pinholes:
            self.pinholes[p].remove((s, call))
            if not self.pinholes[p]:
                del self.pinholes[p]
        call.pinholes = set()
        for key, conn in call.media:
            if self.media.get(key, (None, None))[1] is call:
                del self.media[key]
                if close_media:
                    self.close_flow(key, conn)
        del s.calls[call.call_id]
        self.log.append((index, "end", call.call_id, why))

    def expire(self, ts, index):
        """Ends the calls whose call_timeout has come (at or after their
        last SIP message + call_timeout): their pinholes close, their media
        connections stay."""
        for s in self.sessions.values():
            for call in list(s.calls.values()):
                deadline = call.last + self.policy.sip_call_timeout
                if abs(ts - deadline) <= SIP_EXPIRY_DOUBT:
                    raise NotModeled("frame %d: at a call's timeout" % index)
                if ts >= deadline:
                    self.end_call(s, call, index, "timeout", close_media=False)

    def lifetime(self, s):
        """How long the signalling connection may stay idle and live (a
        bound on the safe side: the oracle does not model its expiry)."""
        t = self.policy.timeouts
        if s.transport == "udp":
            return t[("udp", "assured" if s.replied else "unreplied")]
        tcp = [v for (proto, *state), v in t.items() if proto == "tcp"]
        if s.ended:
            return min(tcp)
        return min(t[("tcp", "established")], t[("tcp", "unacknowledged")])

    def check_alive(self, s, ts, index):
        if ts - s.last >= self.lifetime(s) - 1:
            raise NotModeled("frame %d: a media packet while its signalling connection may have "
                             "expired" % index)

    def match(self, src, dst, dport, side, ts, index):
        """The (session, call) whose pinhole admits a new UDP flow, or None."""
        hits = self.pinholes.get((ipaddress.ip_address(src), ipaddress.ip_address(dst), dport, side))
        if not hits:
            return None
        if len(hits) > 1:
            raise NotModeled("frame %d: a flow two calls' pinholes admit" % index)
        s, call = hits[0]
        self.check_alive(s, ts, index)
        return s, call

    def admitted(self, key, conn, s, call):
        call.media.append((key, conn))
        self.media[key] = (s, call)

    def media_packet(self, key, ts, index):
        if key in self.media:
            self.check_alive(self.media[key][0], ts, index)

    # -- tshark

    def session_of(self, f):
        if f["udp.srcport"] and udp_key(f) in self.sessions:
            return self.sessions[udp_key(f)]
        if f["tcp.stream"] and ("tcp", integer(f["tcp.stream"][0])) in self.sessions:
            return self.sessions[("tcp", integer(f["tcp.stream"][0]))]
        return None

    def cross_check(self, f, index, verdict):
        """tshark's SIP and SDP reading of this frame against the oracle's,
        for the signalling connections the oracle follows; and the SDP
        tshark ties a media flow the oracle admitted to (rtp.setup-frame:
        the offer's or the answer's frame) must be a message of the call
        whose pinhole admitted it."""
        if verdict[0] == "expected" and f["udp.srcport"] and udp_key(f) in self.media:
            s, call = self.media[udp_key(f)]
            for field in ("rtp.setup-frame", "rtcp.setup-frame"):
                if not f[field]:
                    continue
                setup = integer(f[field][0])
                if (s.conn, call.call_id) not in self.sdp_frames.get(setup, set()):
                    raise NotModeled("frame %d: tshark ties this media flow to the SDP of frame %d, "
                                     "not one of call %s, whose pinhole the oracle admitted it "
                                     "through" % (index, setup, call.call_id))
        if self.session_of(f) is None or index in self.odd_frames:
            return
        mine = self.frame_reads.get(index, [])
        theirs = f["sip.Call-ID"]
        if sorted(m.call_id for m in mine) != sorted(theirs):
            raise NotModeled("frame %d: tshark reads Call-IDs %s, the oracle %s"
                             % (index, theirs, [m.call_id for m in mine]))
        my_ports = [p for m in mine if m.sdp for p in m.sdp.ports]
        their_ports = [integer(p) for p in f["sdp.media.port"]]
        if my_ports != their_ports:
            raise NotModeled("frame %d: tshark reads SDP media ports %s, the oracle %s"
                             % (index, their_ports, my_ports))
        my_addrs = [a for m in mine if m.sdp for a in m.sdp.addresses]
        their_addrs = []
        for a in f["sdp.connection_info.address"]:
            try:
                their_addrs.append(ipaddress.ip_address(a))
            except ValueError:
                their_addrs.append(a)
        if my_addrs != their_addrs:
            raise NotModeled("frame %d: tshark reads SDP addresses %s, the oracle %s"
                             % (index, [str(a) for a in their_addrs], [str(a) for a in my_addrs]))


class Oracle:
    def __init__(self, policy):
        self.policy = policy
        self.next_conn = 1
        self.flows = {}      # flow key -> {"conn", "last", "proto"}
        self.tuples = {}     # (proto, src, sport, dst, dport) as the opener sent -> flow key
        self.fragments = {}  # (src, dst, id, proto) -> (reason, conn)
        self.ftp = FtpTracker(policy)
        self.sip = SipTracker(policy, self.close_flow)

    def open_flow(self, key, tup, ts):
        conn = conn_id(self.next_conn)
        self.next_conn += 1
        self.flows[key] = {"conn": conn, "last": ts}
        self.tuples[tup] = key
        return conn

    def close_flow(self, key, conn):
        """A connection closed at once (a SIP call's media connection when
        the call ends): the flow's next packet is a first packet again."""
        flow = self.flows.get(key)
        if flow is None or flow["conn"] != conn:
            return
        del self.flows[key]
        for tup in [t for t, k in self.tuples.items() if k == key]:
            del self.tuples[tup]

    def touch(self, key, ts, index):
        flow = self.flows[key]
        if ts - flow["last"] > self.policy.shortest_timeout:
            raise NotModeled("frame %d: flow idle %.1f s, longer than the shortest timeout (%s s); "
                             "the oracle does not model expiry" % (index, ts - flow["last"],
                                                                   self.policy.shortest_timeout))
        flow["last"] = ts
        return flow["conn"]

    def flow_packet(self, index, ts, key, tup, may_open, side, proto, src, dst, sport, dport,
                    cannot_open_reason):
        """A packet of a tracked flow: established, or the first one."""
        if key in self.flows:
            return ("established", self.touch(key, ts, index))
        if not may_open:
            return (cannot_open_reason, 0)
        reason = self.policy.decide(side, proto, src, dst, sport, dport)
        if reason != "new_connection":
            return (reason, 0)
        return ("new_connection", self.open_flow(key, tup, ts))

    def tcp_packet(self, f, index, ts, key, tup, syn_only, side):
        """A TCP segment: established, an expected data connection's SYN, or
        the first segment of a flow, judged by policy. Passing segments of
        FTP control connections are read by the FTP tracker."""
        _, src, sport, dst, dport = tup
        if key in self.flows:
            conn = self.touch(key, ts, index)
            self.ftp.segment(key, f, index, ts, src)
            if self.sip.segment(key, f, index, ts, src, sport) is not None:
                return ("sip_malformed", conn)
            return ("established", conn)
        if not syn_only:
            return ("tcp_mid_stream", 0)
        e = self.ftp.match(src, dst, dport, side, ts, index) if self.policy.ftp_enabled else None
        if e is not None:
            self.ftp.data_setup[key] = e["frame"]
            return ("expected", self.open_flow(key, tup, ts), e["control"].conn)
        reason = self.policy.decide(side, 6, src, dst, sport, dport)
        if reason != "new_connection":
            return (reason, 0)
        conn = self.open_flow(key, tup, ts)
        if self.ftp.is_control_port(dport):
            self.ftp.opened(key, conn, src, dst, side, integer(f["tcp.seq_raw"][0]))
        if self.sip.is_signalling_port(dport):
            s = self.sip.opened(key, conn, "tcp", src, sport, dst, dport, side, ts, index)
            s.streams[0].next = (integer(f["tcp.seq_raw"][0]) + 1) & 0xffffffff
        return ("new_connection", conn)

    def udp_packet(self, f, index, ts, key, tup, side):
        """A UDP datagram: established (read by the SIP tracker when its
        flow is a signalling flow), a new flow a SIP pinhole admits, or a
        first datagram judged by policy."""
        _, src, sport, dst, dport = tup
        if key in self.flows:
            conn = self.touch(key, ts, index)
            self.sip.media_packet(key, ts, index)
            if self.sip.datagram(key, f, index, ts, src, sport) is not None:
                return ("sip_malformed", conn)
            return ("established", conn)
        hit = self.sip.match(src, dst, dport, side, ts, index) if self.policy.sip_enabled else None
        if hit is not None:
            s, call = hit
            if self.sip.is_signalling_port(dport):
                raise NotModeled("frame %d: a pinhole admits a flow to a SIP port" % index)
            conn = self.open_flow(key, tup, ts)
            self.sip.admitted(key, conn, s, call)
            return ("expected", conn, s.conn)
        reason = self.policy.decide(side, 17, src, dst, sport, dport)
        if reason != "new_connection":
            return (reason, 0)
        conn = self.open_flow(key, tup, ts)
        if self.sip.is_signalling_port(dport):
            self.sip.opened(key, conn, "udp", src, sport, dst, dport, side, ts, index)
            self.sip.datagram(key, f, index, ts, src, sport, opener=True)
        return ("new_connection", conn)

    def cross_check(self, f, index, verdict):
        """After a frame: tshark's reading of its FTP, SIP and SDP must be
        the oracle's; a data connection tshark ties to a PORT, PASV or EPSV
        must be the one the oracle admitted for that announcement; a media
        flow tshark ties to an SDP must be one the oracle read."""
        self.ftp.cross_check(f, index)
        self.sip.cross_check(f, index, verdict)
        if not f["ftp-data.setup-frame"] or not f["ftp-data.setup-method"] or not f["tcp.stream"]:
            return
        key = ("tcp", integer(f["tcp.stream"][0]))
        mine = self.ftp.data_setup.get(key)
        theirs = integer(f["ftp-data.setup-frame"][0])
        if mine is not None and mine != theirs:
            raise NotModeled("frame %d: tshark ties its data connection to frame %d, the oracle to %d"
                             % (index, theirs, mine))

    def related(self, error_dst, inner):
        """inner: (proto, src, sport, dst, dport) of the quoted packet."""
        proto, src, sport, dst, dport = inner
        if error_dst != src:
            return ("icmp_error_unrelated", 0)
        key = self.tuples.get(inner) or self.tuples.get((proto, dst, dport, src, sport))
        if key is None:
            return ("icmp_error_unrelated", 0)
        return ("related", self.flows[key]["conn"])

    def decide(self, f):
        index = first(f, "frame.number", int)
        ts = first(f, "frame.time_epoch", float)
        self.sip.expire(ts, index)
        protos = first(f, "frame.protocols").split(":")
        if "vlan" in protos or "ieee8021ad" in protos:
            raise NotModeled("frame %d: VLAN tags" % index)
        if "arp" in protos:
            return ("arp", 0) if self.policy.arp else ("arp_denied", 0)
        if "ip" in protos:
            return self.decide_ipv4(f, index, ts)
        if "ipv6" in protos:
            return self.decide_ipv6(f, index, ts)
        return ("non_ip", 0) if self.policy.non_ip else ("non_ip_denied", 0)

    def later_fragment(self, key):
        if key not in self.fragments:
            return ("frag_without_first", 0)
        reason, conn = self.fragments[key][:2]
        passes = reason in PASSING
        return ("fragment" if passes else "frag_of_dropped", conn)

    def decide_ipv4(self, f, index, ts):
        src, dst = f["ip.src"][0], f["ip.dst"][0]
        proto = integer(f["ip.proto"][0])
        if integer(f["ip.hdr_len"][0]) != 20:
            raise NotModeled("frame %d: IPv4 options" % index)
        more = f["ip.flags.mf"][0] in ("1", "True")
        offset = integer(f["ip.frag_offset"][0])
        frag_key = (src, dst, integer(f["ip.id"][0]), proto)
        if offset != 0:
            return self.later_fragment(frag_key)
        v = self.decide_l4(f, index, ts, src, dst, proto, "icmp", ICMP4_ERRORS)
        if more:
            self.fragments[frag_key] = v
        return v

    def decide_ipv6(self, f, index, ts):
        src, dst = f["ipv6.src"][0], f["ipv6.dst"][0]
        nxt = integer(f["ipv6.nxt"][0])
        if f["ipv6.fraghdr.offset"]:
            offset = integer(f["ipv6.fraghdr.offset"][0])
            more = f["ipv6.fraghdr.more"][0] in ("1", "True")
            proto = integer(f["ipv6.fraghdr.nxt"][0])
            frag_key = (src, dst, integer(f["ipv6.fraghdr.ident"][0]), None)
            if offset != 0:
                return self.later_fragment(frag_key)
            v = self.decide_l4(f, index, ts, src, dst, proto, "icmpv6", ICMP6_ERRORS)
            if more:
                self.fragments[frag_key] = v
            return v
        if nxt not in (6, 17, 58):
            raise NotModeled("frame %d: IPv6 next header %d" % (index, nxt))
        if nxt == 58 and integer(f["icmpv6.type"][0]) in ICMP6_ND:
            if not self.policy.ipv6_nd:
                return ("ipv6_nd_denied", 0)
            hlim = integer(f["ipv6.hlim"][0])
            return ("ipv6_nd", 0) if hlim == 255 else ("ipv6_nd_bad_hop_limit", 0)
        return self.decide_l4(f, index, ts, src, dst, nxt, "icmpv6", ICMP6_ERRORS)

    def decide_l4(self, f, index, ts, src, dst, proto, icmp_name, errors):
        side = self.policy.side(src)
        if proto == 6:
            stream = integer(f["tcp.stream"][0])
            sport, dport = integer(f["tcp.srcport"][0]), integer(f["tcp.dstport"][0])
            syn_only = f["tcp.flags.syn"][0] in ("1", "True") and f["tcp.flags.ack"][0] in ("0", "False")
            return self.tcp_packet(f, index, ts, ("tcp", stream), (6, src, sport, dst, dport),
                                   syn_only, side)
        if proto == 17:
            sport, dport = integer(f["udp.srcport"][0]), integer(f["udp.dstport"][0])
            return self.udp_packet(f, index, ts, udp_key(f), (17, src, sport, dst, dport), side)
        if proto in (1, 58):
            type_field = "icmp.type" if proto == 1 else "icmpv6.type"
            id_field = "icmp.ident" if proto == 1 else "icmpv6.echo.identifier"
            icmp_type = integer(f[type_field][0])
            request, reply = (8, 0) if proto == 1 else (128, 129)
            if icmp_type == request:
                ident = integer(f[id_field][0])
                return self.flow_packet(index, ts, (icmp_name, src, dst, ident),
                                        (proto, src, ident, dst, 0), True, side, proto, src, dst,
                                        ident, 0, None)
            if icmp_type == reply:
                ident = integer(f[id_field][0])
                return self.flow_packet(index, ts, (icmp_name, dst, src, ident), None, False, side,
                                        proto, src, dst, 0, ident, "icmp_no_request")
            if icmp_type in errors:
                return self.related(src_of_error_dst(f, proto), inner_tuple(f, proto, index))
            reason = self.policy.decide(side, proto, src, dst)
            return ("untracked" if reason == "new_connection" else reason, 0)
        raise NotModeled("frame %d: IP protocol %d" % (index, proto))


def udp_key(f):
    """A UDP flow: its two ends, whichever sent first. (Not tshark's
    udp.stream: once an SDP has set up an RTP conversation, tshark gives
    the two directions of one RTP flow different stream numbers.)"""
    ip_src = f["ip.src"] or f["ipv6.src"]
    ip_dst = f["ip.dst"] or f["ipv6.dst"]
    a = (ipaddress.ip_address(ip_src[0]), integer(f["udp.srcport"][0]))
    b = (ipaddress.ip_address(ip_dst[0]), integer(f["udp.dstport"][0]))
    return ("udp",) + tuple(sorted((a, b), key=lambda e: (e[0].version, e[0], e[1])))


def src_of_error_dst(f, proto):
    return f["ip.dst"][0] if proto == 1 else f["ipv6.dst"][0]


def inner_tuple(f, proto, index):
    """The 5-tuple of the packet an ICMP error quotes, as its sender sent it."""
    if proto == 1:
        src, dst, inner_proto = f["ip.src"][1], f["ip.dst"][1], integer(f["ip.proto"][1])
    else:
        src, dst, inner_proto = f["ipv6.src"][1], f["ipv6.dst"][1], integer(f["ipv6.nxt"][1])
    if inner_proto == 6:
        return (6, src, integer(f["tcp.srcport"][-1]), dst, integer(f["tcp.dstport"][-1]))
    if inner_proto == 17:
        return (17, src, integer(f["udp.srcport"][-1]), dst, integer(f["udp.dstport"][-1]))
    raise NotModeled("frame %d: ICMP error quoting protocol %d" % (index, inner_proto))


PASSING = {"new_connection", "expected", "established", "related", "untracked", "arp", "non_ip",
           "ipv6_nd", "fragment"}


def verdict_lines(policy, pcap):
    """The expected verdict lines of a capture (raises NotModeled)."""
    oracle = Oracle(policy)
    lines = []
    decode_as = []
    if policy.sip_enabled:
        decode_as = ["%s.port==%d,sip" % (t, p) for p in sorted(policy.sip_ports - {5060})
                     for t in ("udp", "tcp")]
    for f in run_tshark(pcap, decode_as):
        v = oracle.decide(f)
        oracle.cross_check(f, first(f, "frame.number", int), v)
        reason, conn = v[0], v[1]
        master = v[2] if len(v) > 2 else None
        lines.append(fmt(first(f, "frame.number", int), reason, conn, reason in PASSING, master))
    return lines, oracle


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.config) as fh:
        policy = Policy(json.load(fh))
    try:
        lines, _ = verdict_lines(policy, args.pcap)
    except NotModeled as e:
        sys.exit("oracle.py: %s: %s" % (args.pcap, e))
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
