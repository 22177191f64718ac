#!/usr/bin/env python3
"""Checks the independent oracle (pcaps/oracle.py): its FTP and SIP rules
on their own, and the expected files it derives from the captures.

    oracle_test.py --pcaps DIR

1. Rules (no tshark needed): the FTP contract as the oracle models it,
   line by line: PORT, EPRT, 227 and 229 parsing, the bounce, low-port and
   malformed refusals, multi-line replies, lines across segments, segments
   out of order and retransmitted, overlong lines, the 2-pending limit,
   expiry, consumption, the side check, and the config's modules.ftp.
   The SIP contract likewise: start lines, required and compact headers,
   folding, Content-Length, the 256-byte key header limit, SDP c=, m=
   and a=rtcp lines, the TCP byte stream (messages across segments, two
   in one segment, retransmissions, a malformed message that does not
   move the reader, the resync after a gap), offer and answer (early
   media, late offer, re-INVITE, 488, CANCEL, BYE, >= 300), replacement
   and refusal of calls, media_ranges, low ports, the call timeout (the
   pinholes close, the media connections stay), and the config's
   modules.sip.
2. Every capture under real/ listed in captures.txt is run through
   oracle.py with its config; the result must equal the committed expected
   file.
3. Every synthetic FTP and SIP case (synthetic/ftp_*, synthetic/sip_*) is
   run through oracle.py too: its verdicts, worked out by the oracle's
   model from tshark's dissection, must equal the ones gen_synthetic.py
   wrote by hand. Two derivations that share no code agree.

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


def sip_rule_checks(oracle):
    """Returns the failed checks of the SIP rules (descriptions)."""
    failed = []

    def check(what, got, want):
        if got != want:
            failed.append("%s: got %r, want %r" % (what, got, want))

    def fails(what, fn, exc):
        try:
            fn()
        except exc:
            return
        except Exception as e:  # noqa: BLE001 - report any other outcome
            failed.append("%s: raised %r, want %s" % (what, e, exc.__name__))
            return
        failed.append("%s: no %s" % (what, exc.__name__))

    A = ipaddress.ip_address

    def sdp(addr, *streams, session_c=True):
        fam = "IP6" if ":" in addr else "IP4"
        lines = ["v=0", "o=- 1 1 IN %s %s" % (fam, addr), "s=-"]
        if session_c:
            lines.append("c=IN %s %s" % (fam, addr))
        lines.append("t=0 0")
        for m in streams:
            lines += m if isinstance(m, list) else ["m=audio %s RTP/AVP 0" % m]
        return ("\r\n".join(lines) + "\r\n").encode()

    def msg(start, call_id="c1", cseq=None, body=b"", headers=None, omit=(), length=True):
        method = start.split(" ")[0]
        h = [("Via", "SIP/2.0/UDP 10.0.0.10:5060;branch=z9hG4bK1"),
             ("From", "<sip:a@10.0.0.10>;tag=1"), ("To", "<sip:b@198.51.100.20>"),
             ("Call-ID", call_id), ("CSeq", cseq or "1 " + method)]
        if body:
            h.append(("Content-Type", "application/sdp"))
        if length:
            h.append(("Content-Length", str(len(body))))
        h = [x for x in h if x[0] not in omit] + list(headers or [])
        return (start + "\r\n" + "".join("%s: %s\r\n" % x for x in h) + "\r\n").encode() + body

    parse = oracle.parse_sip_datagram
    invite = "INVITE sip:b@198.51.100.20 SIP/2.0"

    # Messages (section 2).
    m = parse(msg(invite, body=sdp("10.0.0.10", 40000)))
    check("INVITE with SDP", (m.method, m.call_id, m.cseq_method, m.sdp.streams),
          ("INVITE", "c1", "INVITE", [("audio", A("10.0.0.10"), 40000, 40001)]))
    m = parse(msg("SIP/2.0 183 Session Progress", cseq="1 INVITE"))
    check("183 without SDP", (m.status, m.cseq_method, m.sdp), (183, "INVITE", None))
    check("a reason phrase may be empty", parse(msg("SIP/2.0 200 ", cseq="1 INVITE")).status, 200)
    check("keepalive", parse(b"\r\n\r\n"), None)
    compact = (b"INVITE sip:b@198.51.100.20 SIP/2.0\r\nv: SIP/2.0/UDP x\r\nF: <sip:a@x>\r\n"
               b"  ;tag=1\r\nt: <sip:b@y>\r\nI: folded-id\r\nCSEQ: 2 INVITE\r\nc: Application/SDP; x=1\r\n"
               b"l: %d\r\n\r\n")
    body = sdp("10.0.0.10", 40010)
    m = parse(compact % len(body) + body)
    check("compact, folded, case-insensitive", (m.call_id, m.sdp.streams[0][2]), ("folded-id", 40010))
    m = parse(msg(invite, body=body, length=False))
    check("UDP without Content-Length: the rest is the body", m.sdp.streams[0][2], 40010)
    m = parse(msg(invite, body=body, headers=[("Subject", "s" * 300)]))
    check("a long Subject is skipped", m.call_id, "c1")
    for what, data in (
            ("SIP/2.1", msg("INVITE sip:b@x SIP/2.1")),
            ("two-digit status", msg("SIP/2.0 20 OK", cseq="1 INVITE")),
            ("no version", msg("INVITE sip:b@x")),
            ("double space", msg("INVITE  sip:b@x SIP/2.0")),
            ("no Call-ID", msg(invite, omit=("Call-ID",))),
            ("no CSeq", msg(invite, omit=("CSeq",))),
            ("no From", msg(invite, omit=("From",))),
            ("no To", msg(invite, omit=("To",))),
            ("CSeq method", msg(invite, cseq="1 BYE")),
            ("CSeq number", msg(invite, cseq="x INVITE")),
            ("Content-Length 1x2", msg(invite, headers=[("Content-Length", "1x2")], length=False)),
            ("Content-Length 9000", msg(invite, headers=[("Content-Length", "9000")], length=False)),
            ("Content-Length past the datagram", msg(invite, body=body)[:-1]),
            ("a 300-byte Call-ID line", msg(invite, call_id="x" * 291)),
            ("a line that is no header", msg(invite, headers=[("Subject", "x")]).replace(b"Subject: x", b"Subject x")),
            ("no empty line", msg(invite)[:-2]),
            ("folding before any header", msg(invite).replace(b"\r\nVia", b"\r\n Via", 1))):
        fails(what, lambda d=data: parse(d), oracle.SipMalformed)
    fails("a 256-byte Call-ID line (at the limit)", lambda: parse(msg(invite, call_id="x" * 247)),
          oracle.NotModeled)
    check("a 250-byte Call-ID line", len(parse(msg(invite, call_id="x" * 241)).call_id), 241)
    fails("CSeq with two spaces", lambda: parse(msg(invite, cseq="1  INVITE")), oracle.NotModeled)
    m = parse(msg("SIP/2.0 200 OK", cseq="1 BYE", body=b"garbage", omit=("Content-Type",),
                  headers=[("Content-Type", "text/plain")]))
    check("a body that is not SDP (Content-Type) is not read", m.sdp, None)

    # SDP (section 3).
    ps = oracle.parse_sdp
    check("c= with a TTL", ps(sdp("10.0.0.10", 40000).replace(b"c=IN IP4 10.0.0.10",
                                                              b"c=IN IP4 224.2.1.1/127")).streams[0][1],
          A("224.2.1.1"))
    check("IPv6", ps(sdp("fd00:0:0:1::10", 40000)).streams[0][1], A("fd00:0:0:1::10"))
    check("port/1", ps(sdp("10.0.0.10", "40000/1")).streams[0][2], 40000)
    check("a=rtcp", ps(sdp("10.0.0.10", ["m=audio 40000 RTP/AVP 0", "a=rtcp:40100 IN IP4 10.0.0.10"])
                       ).streams[0][3], 40100)
    check("a=rtcp-mux", ps(sdp("10.0.0.10", ["m=audio 40000 RTP/AVP 0", "a=rtcp-mux"])).streams[0][3],
          40000)
    s = ps(sdp("10.0.0.10", ["m=audio 40000 RTP/AVP 0", "c=IN IP4 198.51.100.40"],
               ["m=video 40002 RTP/AVP 96"]))
    check("media-level c= first", [x[1] for x in s.streams], [A("198.51.100.40"), A("10.0.0.10")])
    s = ps(sdp("10.0.0.10", *[40000 + 2 * i for i in range(6)]))
    check("4 m= lines read", ([x[2] for x in s.streams], len(s.ports)), ([40000, 40002, 40004, 40006], 6))
    s = ps(sdp("10.0.0.10", ["m=audio 0 RTP/AVP 0"], ["m=application 40000 UDP/BFCP *"]))
    check("port 0 and other media read as they are", [(x[0], x[2]) for x in s.streams],
          [("audio", 0), ("application", 40000)])
    for what, broken in (
            ("c= address 300", sdp("10.0.0.10", 40000).replace(b"10.0.0.10\r\nt", b"10.0.0.300\r\nt")),
            ("c= IN IP5", sdp("10.0.0.10", 40000).replace(b"c=IN IP4", b"c=IN IP5")),
            ("c= IP6 with an IPv4 address", sdp("10.0.0.10", 40000).replace(b"c=IN IP4", b"c=IN IP6")),
            ("port/2", sdp("10.0.0.10", "40000/2")),
            ("port 70000", sdp("10.0.0.10", 70000)),
            ("m= without a format", sdp("10.0.0.10", ["m=audio 40000 RTP/AVP"])),
            ("not <letter>=<value>", sdp("10.0.0.10", 40000) + b"garbage\r\n"),
            ("an empty line inside", sdp("10.0.0.10", 40000).replace(b"t=0 0\r\n", b"t=0 0\r\n\r\n")),
            ("a=rtcp:x", sdp("10.0.0.10", ["m=audio 40000 RTP/AVP 0", "a=rtcp:x"])),
            ("no address", sdp("10.0.0.10", 40000, session_c=False))):
        fails("SDP " + what, lambda b=broken: ps(b), oracle.SipMalformed)
    fails("a fault past the 4th m=", lambda: ps(sdp("10.0.0.10", 1, 2, 3, 4, "5/2")), oracle.NotModeled)

    # TCP: the byte stream (section 1, 4).
    def stream():
        st = oracle.SipStream()
        st.next = 1000
        return st

    one = msg(invite, body=body)
    two = msg("SIP/2.0 200 OK", call_id="c2", cseq="1 OPTIONS")
    st = stream()
    check("split, part 1", st.feed(1000, one[:30], 1)[:2], ([], None))
    got = st.feed(1030, one[30:] + two, 2)
    check("split, part 2, and a second message", ([m.call_id for m in got[0]], got[1]), (["c1", "c2"], None))
    check("retransmission read once", st.feed(1000, one, 3)[:2], ([], None))
    check("CRLF before a start line", [m.call_id for m in st.feed(st.next, b"\r\n\r\n" + two, 4)[0]], ["c2"])
    check("no Content-Length on TCP", type(stream().feed(1000, msg(invite, length=False), 1)[1]).__name__,
          "SipMalformed")
    st = stream()
    bad = msg(invite, cseq="1 BYE")
    r1, r2 = st.feed(1000, bad, 1), st.feed(1000, bad, 2)
    check("malformed: dropped, the reader stays", (type(r1[1]).__name__, type(r2[1]).__name__, st.next),
          ("SipMalformed", "SipMalformed", 1000))
    st = stream()
    st.feed(1000, one[:40], 1)
    got = st.feed(1000 + len(one) + 7, b"ACK stray\r\n" + two, 2)
    check("gap: the message given up, reading resumes at a start line",
          ([m.call_id for m in got[0]], st.lost), (["c2"], 1))
    check("gap: the bytes behind it are not read", st.feed(1040, one[40:], 3)[0], [])

    # Calls, offer/answer, pinholes (sections 5-8).
    closed = []

    def tracker(**sip):
        policy = oracle.Policy({"inside_networks": ["10.0.0.0/24"], "modules": {"sip": sip}})
        t = oracle.SipTracker(policy, lambda key, conn: closed.append(key))
        s = t.opened(("udp", 0), 1, "udp", "10.0.0.10", 5060, "198.51.100.20", 5060, "inside", 0.0, 1)
        return t, s

    frame_no = [0]

    def say(t, s, d, data, ts=1.0):
        frame_no[0] += 1
        m = parse(data)
        t.message(s, d, m, frame_no[0], ts)

    def holes(t):
        return sorted((str(a), str(b), port, side) for a, b, port, side in t.pinholes)

    off, ans = sdp("10.0.0.10", 40000), sdp("198.51.100.20", 50000)
    full = [("10.0.0.10", "198.51.100.20", 50000, "inside"), ("10.0.0.10", "198.51.100.20", 50001, "inside"),
            ("198.51.100.20", "10.0.0.10", 40000, "outside"), ("198.51.100.20", "10.0.0.10", 40001, "outside")]
    t, s = tracker()
    say(t, s, 0, msg(invite, body=off))
    check("an offer opens nothing", holes(t), [])
    say(t, s, 1, msg("SIP/2.0 200 OK", cseq="1 INVITE", body=ans))
    check("offer and answer", holes(t), full)
    check("a match", t.match("198.51.100.20", "10.0.0.10", 40000, "outside", 2.0, 9)[1].call_id, "c1")
    check("the wrong side", t.match("198.51.100.20", "10.0.0.10", 40000, "inside", 2.0, 9), None)
    check("another source address", t.match("198.51.100.21", "10.0.0.10", 40000, "outside", 2.0, 9), None)
    t.admitted(("udp", 5), 7, s, s.calls["c1"])
    say(t, s, 0, msg("INVITE sip:b@x SIP/2.0", cseq="2 INVITE", body=sdp("10.0.0.10", 40010)))
    say(t, s, 1, msg("SIP/2.0 200 OK", cseq="2 INVITE", body=ans))
    check("a re-INVITE replaces the pinholes", holes(t), full[:2] + [
        ("198.51.100.20", "10.0.0.10", 40010, "outside"), ("198.51.100.20", "10.0.0.10", 40011, "outside")])
    check("... and keeps the media connections", closed, [])
    say(t, s, 0, msg("INVITE sip:b@x SIP/2.0", cseq="3 INVITE", body=sdp("10.0.0.10", 40020)))
    say(t, s, 1, msg("SIP/2.0 488 Not Acceptable Here", cseq="3 INVITE"))
    check("488 to a re-INVITE: the call stays", len(holes(t)), 4)
    say(t, s, 0, msg("CANCEL sip:b@x SIP/2.0", cseq="3 CANCEL"))
    check("CANCEL of a confirmed call: nothing", len(holes(t)), 4)
    say(t, s, 1, msg("BYE sip:a@x SIP/2.0", cseq="1 BYE"))
    check("BYE: pinholes and media closed", (holes(t), closed, s.calls), ([], [("udp", 5)], {}))

    t, s = tracker()
    say(t, s, 0, msg(invite))
    say(t, s, 1, msg("SIP/2.0 200 OK", cseq="1 INVITE", body=ans))
    check("a late offer in the 200", holes(t), [])
    say(t, s, 0, msg("ACK sip:b@x SIP/2.0", cseq="1 ACK", body=off))
    check("... answered in the ACK", holes(t), full)

    t, s = tracker()
    say(t, s, 0, msg(invite, body=off))
    say(t, s, 1, msg("SIP/2.0 183 Session Progress", cseq="1 INVITE", body=ans))
    check("early media (183)", holes(t), full)
    say(t, s, 1, msg("SIP/2.0 200 OK", cseq="1 INVITE", body=sdp("198.51.100.20", 50100)))
    check("a revised answer in the 200", holes(t)[0][2], 50100)
    t, s = tracker()
    say(t, s, 0, msg(invite, body=off))
    say(t, s, 1, msg("SIP/2.0 183 Session Progress", cseq="1 INVITE", body=ans))
    say(t, s, 1, msg("SIP/2.0 486 Busy Here", cseq="1 INVITE"))
    check(">= 300 to the first INVITE ends the call", (holes(t), s.calls), ([], {}))
    t, s = tracker()
    say(t, s, 0, msg(invite, body=off))
    say(t, s, 1, msg("SIP/2.0 183 Session Progress", cseq="1 INVITE", body=ans))
    say(t, s, 0, msg("CANCEL sip:b@x SIP/2.0", cseq="1 CANCEL"))
    check("CANCEL before 2xx ends the call", (holes(t), s.calls), ([], {}))
    t, s = tracker()
    say(t, s, 1, msg("SIP/2.0 200 OK", cseq="1 INVITE", body=ans))
    check("unknown Call-ID ignored", s.calls, {})

    t, s = tracker(calls_per_session=2)
    say(t, s, 0, msg(invite, call_id="a", body=off))
    say(t, s, 1, msg("SIP/2.0 200 OK", call_id="a", cseq="1 INVITE", body=ans))
    say(t, s, 0, msg(invite, call_id="b"))
    say(t, s, 0, msg(invite, call_id="c"))
    check("the oldest unconfirmed call replaced", (list(s.calls), t.counters), (["a", "c"],
                                                                              {"calls_replaced": 1}))
    say(t, s, 1, msg("SIP/2.0 200 OK", call_id="c", cseq="1 INVITE"))
    say(t, s, 0, msg(invite, call_id="d"))
    check("all confirmed: refused", (list(s.calls), t.counters.get("calls_refused")), (["a", "c"], 1))

    t, s = tracker(media_ranges=["198.51.100.32/28"])
    say(t, s, 0, msg(invite, body=off))
    say(t, s, 1, msg("SIP/2.0 200 OK", cseq="1 INVITE", body=sdp("198.51.100.40", 50000)))
    check("an address in media_ranges", holes(t)[0][:2], ("10.0.0.10", "198.51.100.40"))
    t, s = tracker(media_ranges=["198.51.100.32/28"])
    say(t, s, 0, msg(invite, body=off))
    say(t, s, 1, msg("SIP/2.0 200 OK", cseq="1 INVITE", body=sdp("198.51.100.50", 50000)))
    check("another address: the stream opens nothing", (holes(t), t.counters), ([], {"refused_address": 1}))
    t, s = tracker()
    say(t, s, 0, msg(invite, body=sdp("10.0.0.10", 1000, ["m=audio 40000 RTP/AVP 0", "a=rtcp:1023"],
                                      ["m=video 40002 RTP/AVP 96"])))
    say(t, s, 1, msg("SIP/2.0 200 OK", cseq="1 INVITE", body=sdp("198.51.100.20", 50000, 50002,
                                                                  ["m=audio 50004 RTP/AVP 0"])))
    check("low ports: each refused on its own; audio against video opens", sorted(
        (h[2], h[3]) for h in holes(t)), sorted([(50000, "inside"), (50001, "inside"), (40000, "outside"),
                                                 (50002, "inside"), (50003, "inside"),
                                                 (40002, "outside"), (40003, "outside"),
                                                 (50004, "inside"), (50005, "inside")]))
    check("refused_low_port count", t.counters, {"refused_low_port": 3})

    t, s = tracker(call_timeout=5)
    say(t, s, 0, msg(invite, body=off), ts=10.0)
    say(t, s, 1, msg("SIP/2.0 200 OK", cseq="1 INVITE", body=ans), ts=10.0)
    t.admitted(("udp", 6), 8, s, s.calls["c1"])
    t.expire(14.9, 20)
    check("before the timeout", len(s.calls), 1)
    del closed[:]
    t.expire(15.1, 21)
    check("after the timeout: pinholes closed, media kept", (s.calls, holes(t), closed, t.media),
          ({}, [], [], {}))
    say(t, s, 0, msg("BYE sip:b@x SIP/2.0", cseq="2 BYE"), ts=15.2)
    check("a BYE after the timeout closes nothing", (s.calls, closed), ({}, []))
    t, s = tracker(call_timeout=5)
    say(t, s, 0, msg(invite, body=off), ts=10.0)
    fails("at the timeout", lambda: t.expire(15.005, 22), oracle.NotModeled)

    # The config.
    p = oracle.Policy({})
    check("sip defaults", (p.sip_enabled, p.sip_ports, p.sip_media_ranges, p.sip_call_timeout,
                           p.sip_calls_per_session), (True, {5060}, [], 3600, 32))
    p = oracle.Policy({"modules": {"sip": {"enabled": False, "ports": [5060, 5080],
                                           "media_ranges": ["192.0.2.0/24"], "call_timeout": 60,
                                           "calls_per_session": 4}}})
    check("sip settings", (p.sip_enabled, p.sip_ports, [str(n) for n in p.sip_media_ranges],
                           p.sip_call_timeout, p.sip_calls_per_session),
          (False, {5060, 5080}, ["192.0.2.0/24"], 60, 4))
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pcaps", required=True)
    args = ap.parse_args()
    sys.dont_write_bytecode = True
    sys.path.insert(0, args.pcaps)
    import oracle

    failed = False
    for name, checks in (("FTP", rule_checks), ("SIP", sip_rule_checks)):
        rules = checks(oracle)
        for f in rules:
            print("FAIL %s rule %s" % (name, f))
        if rules:
            failed = True
        else:
            print("ok   the oracle's %s rules" % name)
    if shutil.which("tshark") is None:
        print("SKIP: tshark is not installed (apt-get install tshark)")
        return 1 if failed else SKIP
    real, module_synthetic = [], []
    with open(os.path.join(args.pcaps, "captures.txt")) as fh:
        for line in fh:
            # CAPTURE CONFIG [workers=N[,N...]]: the worker counts do not
            # matter to the oracle.
            fields = line.split("#", 1)[0].split()[:2]
            if len(fields) == 2 and fields[0].startswith("real/"):
                real.append(fields)
            if len(fields) == 2 and fields[0].startswith(("synthetic/ftp_", "synthetic/sip_")):
                module_synthetic.append(fields)
    with tempfile.TemporaryDirectory(prefix="holdfast-oracle-test.") as tmp:
        for capture, config in real + module_synthetic:
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
    for prefix in ("synthetic/ftp_", "synthetic/sip_"):
        if not any(c.startswith(prefix) for c, _ in module_synthetic):
            print("FAIL no synthetic %s cases listed in captures.txt" % prefix[10:13].upper())
            return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
