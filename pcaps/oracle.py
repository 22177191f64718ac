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

What the oracle does not model it refuses, with an error, rather than
guess: VLAN tags, other IP protocols, IPv4 options, and flows idle longer
than the shortest timeout in force (expiry). Real traffic recorded with
checksum offloads off has valid checksums and well-formed headers, and
well-behaved TCP stays in its windows; the synthetic cases
(gen_synthetic.py) cover everything else.
"""

import argparse
import ipaddress
import json
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


def fmt(index, reason, conn, passes):
    return '{"index":%d,"verdict":"%s","reason":"%s","conn":%d}' % (
        index, "pass" if passes else "drop", reason, conn)


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


class Oracle:
    def __init__(self, policy):
        self.policy = policy
        self.next_conn = 1
        self.flows = {}      # flow key -> {"conn", "last", "proto"}
        self.tuples = {}     # (proto, src, sport, dst, dport) as the opener sent -> flow key
        self.fragments = {}  # (src, dst, id, proto) -> (reason, conn)

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
        reason, conn = self.fragments[key]
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
            return self.flow_packet(index, ts, ("tcp", stream), (6, src, sport, dst, dport), syn_only,
                                    side, 6, src, dst, sport, dport, "tcp_mid_stream")
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


PASSING = {"new_connection", "established", "related", "untracked", "arp", "non_ip", "ipv6_nd",
           "fragment"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.config) as fh:
        policy = Policy(json.load(fh))
    oracle = Oracle(policy)
    lines = []
    try:
        for f in run_tshark(args.pcap):
            reason, conn = oracle.decide(f)
            lines.append(fmt(first(f, "frame.number", int), reason, conn, reason in PASSING))
    except NotModeled as e:
        sys.exit("oracle.py: %s: %s" % (args.pcap, e))
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
