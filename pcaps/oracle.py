#!/usr/bin/python3
"""Expected verdicts for a real capture, worked out without holdfast.

    oracle.py --config CONFIG.json --pcap IN.pcap --out IN.expected.jsonl

The capture is dissected by tshark (IP reassembly off, so every fragment is
seen as it was on the wire). Flows come from tshark's own conversation
tracking: tcp.stream and udp.stream index TCP connections and UDP flows,
ICMP echo flows are (requester, target, identifier). The firewall's rules
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
connection sent a FIN or RST.
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
    "udp.stream",
    "udp.srcport",
    "udp.dstport",
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
        self.shortest_timeout = self._shortest_timeout(config.get("timeouts", {}))
        ftp = config.get("modules", {}).get("ftp", {})
        self.ftp_enabled = ftp.get("enabled", True)
        self.ftp_ports = set(ftp.get("ports", [21]))
        self.ftp_timeout = ftp.get("expectation_timeout", 60)

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
    def _shortest_timeout(t):
        values = dict(DEFAULT_TIMEOUTS)
        for key, v in t.items():
            if isinstance(v, dict):
                for state, s in v.items():
                    values[(key, state)] = s
            else:
                values[(key,)] = v
        return min(values.values())

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


def run_tshark(pcap):
    cmd = ["tshark", "-r", pcap, "-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
           "-o", "tcp.analyze_sequence_numbers:FALSE", "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=|", "-E", "separator=\t"]
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


class Oracle:
    def __init__(self, policy):
        self.policy = policy
        self.next_conn = 1
        self.flows = {}      # flow key -> {"conn", "last", "proto"}
        self.tuples = {}     # (proto, src, sport, dst, dport) as the opener sent -> flow key
        self.fragments = {}  # (src, dst, id, proto) -> (reason, conn)
        self.ftp = FtpTracker(policy)

    def open_flow(self, key, tup, ts):
        conn = conn_id(self.next_conn)
        self.next_conn += 1
        self.flows[key] = {"conn": conn, "last": ts}
        self.tuples[tup] = key
        return conn

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
        return ("new_connection", conn)

    def cross_check(self, f, index):
        """After a frame: tshark's reading of its FTP must be the oracle's;
        a data connection tshark ties to a PORT, PASV or EPSV must be the
        one the oracle admitted for that announcement."""
        self.ftp.cross_check(f, index)
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
            stream = integer(f["udp.stream"][0])
            sport, dport = integer(f["udp.srcport"][0]), integer(f["udp.dstport"][0])
            return self.flow_packet(index, ts, ("udp", stream), (17, src, sport, dst, dport), True,
                                    side, 17, src, dst, sport, dport, None)
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
    for f in run_tshark(pcap):
        v = oracle.decide(f)
        oracle.cross_check(f, first(f, "frame.number", int))
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
