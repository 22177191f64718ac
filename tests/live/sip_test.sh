#!/bin/bash
# Live SIP test: a SIPp caller inside (10.9.0.1, SIP port 5061, RTP port
# 6000), a SIPp callee outside (10.9.0.2, SIP port 5060, RTP port 7000),
# holdfast between them on net_af_packet (tests/live/netns.sh) under
# `holdfastctl supervise`, checkpointing into holdfast-ckptd. The policy lets
# the inside send to port 5060 (UDP, and TCP with TRANSPORT=tcp) and nothing
# else (default deny), so RTP, in either direction, passes only through the
# pinholes the SIP module opened from the call's SDP offer and answer.
#
# One audio call over TRANSPORT (sip-uac.xml, sip-uas.xml): INVITE with an
# SDP offer, 100, 180, 200 with the answer, ACK; both ends wait 3 s, then
# stream PCMU RTP at each other for 13 s; the caller hangs up (BYE, 200).
# Both SIPp must run their scenario through (exit 0).
#
# SIP=1: the dataplane is killed with SIGKILL twice and the supervisor
# restarts it with --recover each time. First when the checkpoint store
# shows the call confirmed (holdfastctl conns) and before the first RTP
# packet: the restarted dataplane never saw the SDP, so the media can only
# start through pinholes restored from the store. Then once RTP has flowed
# both ways: the restored media connections must carry it on. After each
# restart RTP must arrive at both ends (captured on their veths); the stall
# (the longest gap in each direction around the second kill) is printed.
# The BYE crosses the twice-recovered dataplane and must close the pinholes
# and the media connections: datagrams sent afterwards between the media's
# exact addresses and ports must not arrive, and the final statistics must
# show them dropped by the default deny.
#
# SIP=0: the SIP module is disabled in the configuration and nothing is
# killed. The call's signalling completes, but no RTP may arrive at either
# end (the default deny drops it, final statistics), which shows the test
# can fail.
#
# WORKERS (netns.sh) sets the number of workers; with more than one, a frame
# the kernel hands to a worker that does not own its address pair takes the
# handoff path to the one that does.
#
# MEDIA=gateway: the callee's media is on a second address of its host,
# 10.9.0.3, which is not its signalling address and is allowed by
# modules.sip.media_ranges. With two workers the pair (10.9.0.1, 10.9.0.3)
# belongs to worker 0 and the signalling's (10.9.0.1, 10.9.0.2) to worker 1
# (dataplane/steering.h), so the pinholes, and their closing at the BYE,
# go to the media's worker by pinhole mail (the last dataplane must have
# sent some, and lost none).
#
# usage: [TRANSPORT=udp|tcp] [SIP=1|0] [MEDIA=own|gateway] sip_test.sh HOLDFAST HOLDFASTCTL CKPTD
set -euo pipefail

HOLDFAST=$(realpath "$1")
HOLDFASTCTL=$(realpath "$2")
CKPTD=$(realpath "$3")
HERE=$(realpath "$(dirname "$0")")
TRANSPORT=${TRANSPORT:-udp}
SIP=${SIP:-1}
MEDIA=${MEDIA:-own}
case "$MEDIA" in
  own) CALLEE_MEDIA=10.9.0.2 RANGES="" ;;
  gateway) CALLEE_MEDIA=10.9.0.3 RANGES=', "media_ranges": ["10.9.0.3/32"]' ;;
  *) echo "unknown MEDIA $MEDIA"; exit 1 ;;
esac
case "$TRANSPORT" in
  udp) SIPP_TRANSPORT=u1 LISTEN=uln ;;
  tcp) SIPP_TRANSPORT=t1 LISTEN=tln ;;
  *) echo "unknown TRANSPORT $TRANSPORT"; exit 1 ;;
esac
source "$HERE/netns.sh"
command -v sipp >/dev/null || fail "SIPp is not installed (Debian package sip-tester)"
command -v tcpdump >/dev/null || fail "tcpdump is not installed"
netns_setup
if [ "$MEDIA" = gateway ]; then ip -n "$NS_OUT" addr add 10.9.0.3/24 dev hfo$ID; fi
if [ "$SIP" = 1 ]; then enabled=true; else enabled=false; fi
# ICMPv6 is allowed only so that the kernel's multicast listener reports
# (not neighbour discovery, so judged by the rules) do not count as
# default_deny: with the module disabled, every packet the default denies
# must be media.
rules='{"name": "sip-udp", "side": "inside", "protocol": "udp", "dst_ports": 5060, "action": "allow"},'
if [ "$TRANSPORT" = tcp ]; then
  rules+=' {"name": "sip-tcp", "side": "inside", "protocol": "tcp", "dst_ports": 5060, "action": "allow"},'
fi
netns_config "[$rules
  {\"name\": \"icmpv6\", \"protocol\": \"icmpv6\", \"action\": \"allow\"}]" \
  "\"modules\": {\"sip\": {\"enabled\": $enabled$RANGES}}"

# The checkpoint server and the supervised dataplane.
start_supervised sip

# The media both ends play: 1 s of a 440 Hz tone in PCMU (G.711 mu-law,
# 8000 samples/s) without a header, which SIPp 3.6's rtp_stream sends as it
# is, 160 bytes a packet; the scenarios loop it until the call ends.
mkdir -p "$WORK/media"
/usr/bin/python3 - "$WORK/media/tone-pcmu.raw" <<'EOF'
import math, sys

def ulaw(x):
    sign = 0x80 if x < 0 else 0
    x = min(abs(x), 32635) + 0x84
    exp = 7
    while exp > 0 and not x & (0x4000 >> (7 - exp)):
        exp -= 1
    return ~(sign | exp << 4 | (x >> (exp + 3)) & 15) & 255

with open(sys.argv[1], "wb") as fh:
    fh.write(bytes(ulaw(round(8000 * math.sin(2 * math.pi * 440 * k / 8000))) for k in range(8000)))
EOF

# What crossed the firewall: UDP to the media port of each end, captured on
# its veth as it arrives (RTP, and after the BYE the test's datagrams).
capture() {
  local ns=$1 dev=$2 port=$3 name=$4 _
  ip netns exec "$ns" tcpdump -U -n -Q in -i "$dev" -w "$WORK/$name.pcap" \
    "udp and dst port $port" 2>"$WORK/tcpdump-$name.txt" &
  for _ in $(seq 100); do
    grep -q "listening on" "$WORK/tcpdump-$name.txt" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "tcpdump on $dev did not start: $(cat "$WORK/tcpdump-$name.txt")"
}
capture "$NS_OUT" hfo$ID 7000 to-callee
TCPDUMP_OUT=$!
capture "$NS_IN" hfi$ID 6000 to-caller
TCPDUMP_IN=$!

# Reads a capture written by capture(): packets(FILE) yields each frame's
# arrival time and UDP payload (a record still being written is left for
# the next read); run as a program, it counts the RTP packets so far (all
# but the test's own datagrams, which carry MARKER).
MARKER="holdfast sip test: after the BYE"
cat >"$WORK/captures.py" <<'EOF'
import struct, sys

def packets(path):
    data = open(path, "rb").read()
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
    at = 24
    while at + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack("<IIII", data[at:at + 16])
        frame = data[at + 16:at + 16 + caplen]
        if len(frame) < caplen:
            return
        at += 16 + caplen
        if frame[12:14] == b"\x08\x00":  # IPv4; the filter let only UDP in
            yield sec + frac * scale, frame[14 + (frame[14] & 15) * 4 + 8:]

if __name__ == "__main__":
    marker = sys.argv[2].encode()
    print(sum(1 for _, payload in packets(sys.argv[1]) if not payload.startswith(marker)))
EOF
rtp_count() { /usr/bin/python3 "$WORK/captures.py" "$WORK/$1.pcap" "$MARKER"; }

# The call: the callee first, listening on 5060, then the caller. Each
# handles one call (-m 1) and fails (exit status not 0) when its scenario
# does not run through or SIPp's global timeout of 45 s passes.
SIPP=(-t "$SIPP_TRANSPORT" -m 1 -timeout 45 -timeout_error -trace_err -trace_msg)
ip netns exec "$NS_OUT" env -C "$WORK/media" sipp -sf "$HERE/sip-uas.xml" \
  -i 10.9.0.2 -mi $CALLEE_MEDIA -p 5060 -mp 7000 "${SIPP[@]}" \
  -error_file "$WORK/sipp-uas-errors.log" -message_file "$WORK/sipp-uas-messages.log" \
  </dev/null >"$WORK/sipp-uas.screen" 2>&1 &
UAS=$!
uas_up=0
for _ in $(seq 100); do
  ip netns exec "$NS_OUT" ss -H$LISTEN "sport = :5060" | grep -q . && { uas_up=1; break; }
  sleep 0.05
done
[ "$uas_up" = 1 ] || fail "the SIPp callee does not listen on 5060 ($TRANSPORT)"
ip netns exec "$NS_IN" env -C "$WORK/media" sipp -sf "$HERE/sip-uac.xml" 10.9.0.2:5060 \
  -i 10.9.0.1 -mi 10.9.0.1 -p 5061 -mp 6000 "${SIPP[@]}" \
  -error_file "$WORK/sipp-uac-errors.log" -message_file "$WORK/sipp-uac-messages.log" \
  </dev/null >"$WORK/sipp-uac.screen" 2>&1 &
UAC=$!
echo "call over $TRANSPORT: SIPp caller 10.9.0.1 (SIP 5061, RTP 6000) -> callee 10.9.0.2" \
  "(SIP 5060, RTP $CALLEE_MEDIA:7000)"

# Both SIPp must exit 0: the scenario ran through, the BYE was answered.
wait_call() {
  local rc=0
  wait "$UAC" || rc=$?
  [ "$rc" = 0 ] || fail "the SIPp caller exited $rc: $(tail -n 5 "$WORK/sipp-uac-errors.log" 2>/dev/null)"
  wait "$UAS" || rc=$?
  [ "$rc" = 0 ] || fail "the SIPp callee exited $rc: $(tail -n 5 "$WORK/sipp-uas-errors.log" 2>/dev/null)"
}

KILLS=0
# kill_dataplane WHEN: SIGKILL to the supervisor's child, then waits until
# the restarted one forwards; sets KILLED_AT and FORWARDING_AT (seconds
# since the epoch, the clock of the captures' timestamps; FORWARDING_AT is
# when the test saw the log line, so a little after the fact).
kill_dataplane() {
  local dataplane
  dataplane=$(pgrep -P "$SUPERVISOR" | head -1)
  [ -n "$dataplane" ] || fail "cannot find the dataplane process"
  KILLED_AT=$(date +%s.%N)
  kill -KILL "$dataplane"
  KILLS=$((KILLS + 1))
  echo "killed the dataplane (pid $dataplane) with SIGKILL $1"
  wait_forwarding "$WORK/holdfast.log" $((KILLS + 1))
  FORWARDING_AT=$(date +%s.%N)
  grep -q "restart $KILLS with --recover" "$WORK/holdfast.log" ||
    fail "the supervisor did not restart the dataplane (restart $KILLS)"
  # The signalling connection came back with its session and the call.
  [ "$(grep -c "restored: " "$WORK/holdfast.log")" -ge "$KILLS" ] ||
    fail "no recovery report after kill $KILLS"
  grep "restored: " "$WORK/holdfast.log" | tail -n1 | grep -q "(sip calls 1," ||
    fail "the call was not recovered after kill $KILLS"
  echo "    $(grep "restored: " "$WORK/holdfast.log" | tail -n1 | sed 's/.*restored: */restored: /')"
}

if [ "$SIP" = 1 ]; then
  # 1. Between the answer and the first RTP packet: as soon as the store
  # holds the call confirmed (the 200 with the answer has opened the
  # pinholes and was checkpointed before it left), during the scenarios'
  # 3 s without media.
  confirmed=0
  for _ in $(seq 300); do
    "$HOLDFASTCTL" conns --ckpt "$WORK/ckptd.sock" >"$WORK/conns.txt" 2>&1 || true
    grep -q " confirmed" "$WORK/conns.txt" && { confirmed=1; break; }
    kill -0 "$UAC" 2>/dev/null || break
    sleep 0.05
  done
  [ "$confirmed" = 1 ] || fail "the call never showed confirmed in the store: $(cat "$WORK/conns.txt")"
  echo "the store before the first kill:"
  sed 's/^/    /' "$WORK/conns.txt"
  kill_dataplane "after the 200 OK with the SDP answer, before the first RTP packet"
  KILLED_1=$KILLED_AT FORWARDING_1=$FORWARDING_AT

  # 2. Mid-media, once RTP has crossed both ways for a second and a half.
  flowing=0
  for _ in $(seq 300); do
    if [ "$(rtp_count to-callee)" -ge 75 ] && [ "$(rtp_count to-caller)" -ge 75 ]; then
      flowing=1
      break
    fi
    kill -0 "$UAC" 2>/dev/null || break
    sleep 0.1
  done
  [ "$flowing" = 1 ] || fail "RTP did not flow both ways through the recovered pinholes:" \
    "$(rtp_count to-callee) packets to the callee, $(rtp_count to-caller) to the caller"
  kill_dataplane "mid-media ($(rtp_count to-callee) RTP packets to the callee, $(rtp_count to-caller) to the caller so far)"
  KILLED_2=$KILLED_AT FORWARDING_2=$FORWARDING_AT

  # 3. The BYE and its 200 cross the twice-recovered dataplane.
  wait_call
  echo "ok: both SIPp ran the call through: BYE answered with 200 after two kills"

  # 4. The BYE closed the pinholes and the media connections: datagrams on
  # the media's exact addresses and ports, both ways, meet the rules again
  # (each end's socket sends and listens; nothing may arrive).
  cat >"$WORK/after_bye.py" <<'EOF'
import os, socket, sys, time
local, port, peer, peer_port, work, marker = sys.argv[1:7]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((local, int(port)))
open(os.path.join(work, "ready-" + port), "w").close()
for _ in range(600):
    if os.path.exists(os.path.join(work, "go")):
        break
    time.sleep(0.05)
else:
    sys.exit("the test did not say go")
for i in range(5):
    s.sendto(("%s %d" % (marker, i)).encode(), (peer, int(peer_port)))
    time.sleep(0.1)
s.settimeout(0.1)
got = 0
deadline = time.time() + 2
while time.time() < deadline:
    try:
        data = s.recv(2048)
    except socket.timeout:
        continue
    got += data.startswith(marker.encode())
print(got)
EOF
  ip netns exec "$NS_OUT" /usr/bin/python3 "$WORK/after_bye.py" $CALLEE_MEDIA 7000 10.9.0.1 6000 \
    "$WORK" "$MARKER" >"$WORK/after-bye-callee.out" 2>"$WORK/after-bye-callee.log" &
  callee_end=$!
  ip netns exec "$NS_IN" /usr/bin/python3 "$WORK/after_bye.py" 10.9.0.1 6000 $CALLEE_MEDIA 7000 \
    "$WORK" "$MARKER" >"$WORK/after-bye-caller.out" 2>"$WORK/after-bye-caller.log" &
  caller_end=$!
  for _ in $(seq 200); do
    [ -e "$WORK/ready-7000" ] && [ -e "$WORK/ready-6000" ] && break
    sleep 0.05
  done
  touch "$WORK/go"
  wait "$callee_end" || fail "the after-BYE sender on the callee's side failed"
  wait "$caller_end" || fail "the after-BYE sender on the caller's side failed"
  [ "$(cat "$WORK/after-bye-callee.out")" = 0 ] ||
    fail "after the BYE $(cat "$WORK/after-bye-callee.out") datagrams from 10.9.0.1:6000 reached $CALLEE_MEDIA:7000"
  [ "$(cat "$WORK/after-bye-caller.out")" = 0 ] ||
    fail "after the BYE $(cat "$WORK/after-bye-caller.out") datagrams from $CALLEE_MEDIA:7000 reached 10.9.0.1:6000"
  echo "ok: after the BYE 5 datagrams each way between 10.9.0.1:6000 and $CALLEE_MEDIA:7000 did not arrive"
else
  wait_call
  echo "ok: with the SIP module disabled both SIPp ran the call's signalling through"
fi

# The captures are complete once tcpdump has stopped.
kill -INT "$TCPDUMP_OUT" "$TCPDUMP_IN"
wait "$TCPDUMP_OUT" "$TCPDUMP_IN" || true
/usr/bin/python3 - "$WORK" "$MARKER" "$SIP" ${KILLED_1:-0} ${FORWARDING_1:-0} ${KILLED_2:-0} \
  ${FORWARDING_2:-0} <<'EOF' || fail "RTP did not cross as it should"
import sys
work, marker, sip = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
killed_1, forwarding_1, killed_2, forwarding_2 = map(float, sys.argv[4:8])
sys.path.insert(0, work)
from captures import packets
ok = True
for name, way in (("to-callee", "caller -> callee"), ("to-caller", "callee -> caller")):
    arrived = list(packets("%s/%s.pcap" % (work, name)))
    times = [t for t, payload in arrived if not payload.startswith(marker)]
    markers = sum(1 for _, payload in arrived if payload.startswith(marker))
    if sip == "0":
        if times:
            print("FAIL: %s: %d RTP packets got through with the SIP module disabled" % (way, len(times)))
            ok = False
        else:
            print("ok: %s: no RTP got through with the SIP module disabled" % way)
        continue
    before = sum(1 for t in times if t < killed_1)
    between = sum(1 for t in times if forwarding_1 <= t < killed_2)
    after = sum(1 for t in times if t >= forwarding_2)
    # The stall: the longest time without RTP from the last packet before
    # the second kill on (not just until the first packet after it).
    last = max((t for t in times if t <= killed_2), default=killed_2)
    stops = [last] + [t for t in times if t > killed_2]
    gap, start, end = max(((b - a, a, b) for a, b in zip(stops, stops[1:])), default=(0, last, last))
    if before:
        print("FAIL: %s: %d RTP packets crossed before the first kill, which was to come "
              "before any" % (way, before))
        ok = False
    if between == 0:
        print("FAIL: %s: no RTP through the pinholes recovered after the first kill" % way)
        ok = False
    if after < 50:
        print("FAIL: %s: %d RTP packets after the second restart, under a second's worth" % (way, after))
        ok = False
    if markers:
        print("FAIL: %s: %d of the datagrams sent after the BYE got through" % (way, markers))
        ok = False
    if not before and between and after >= 50 and not markers:
        print("ok: RTP %s: %d packets, none before the first kill, %d through the recovered "
              "pinholes before the second kill, %d after the second restart; stall %.0f ms "
              "(no RTP from %+.2f s to %+.2f s around the second kill); none after the BYE"
              % (way, len(times), between, after, gap * 1000, start - killed_2, end - killed_2))
sys.exit(0 if ok else 1)
EOF
if [ "$SIP" = 1 ]; then
  # The supervisor's back-off doubles with each restart, and the stall
  # includes it.
  echo "    restarted $(grep -o "restart 2 with --recover in [0-9.]* s" "$WORK/holdfast.log" |
    grep -o "in [0-9.]* s"), then $(grep -o "first packet forwarded [0-9.]* ms after start" \
    "$WORK/holdfast.log" | tail -n1)"
fi

# Final statistics of the (last) dataplane.
kill -TERM "$SUPERVISOR"
wait "$SUPERVISOR" || fail "the dataplane did not stop cleanly (status $?)"
/usr/bin/python3 - "$WORK/stats.json" "$SIP" "$TRANSPORT" "$MEDIA" <<'EOF' || fail "final statistics are not as expected"
import json, sys
stats = json.load(open(sys.argv[1]))
s = stats["pipeline"]
reasons = s["reasons"]
rules = {r["name"]: r["hits"] for r in s["rules"]}
sip = s["sip"]
signalling = "sip-" + sys.argv[3]
# Every drop is the default deny's: media without a pinhole, or after the
# BYE; nothing else (a SIP message the module refused would show here).
assert s["dropped"] == reasons.get("default_deny", 0), (s["dropped"], reasons)
if sys.argv[2] == "0":
    # The call's media, both ways, for 13 s: dropped; the signalling
    # allowed and not read.
    assert reasons.get("default_deny", 0) >= 100, reasons
    assert reasons.get("expected", 0) == 0, reasons
    assert rules.get(signalling, 0) >= 1, rules
    assert sip["messages"] == 0, sip
    print("ok: statistics: %d dropped, all as default_deny (the media); nothing let in as "
          "expected; rule hits %s" % (reasons["default_deny"], rules))
else:
    # The last dataplane was started by the kill during the media: it saw
    # neither the signalling connection nor the media open. The BYE it read
    # ended a recovered call and closed the media connection recovery had
    # linked to it; the datagrams after it (5 each way) met the default deny.
    recovery = stats["recovery"]
    assert rules.get(signalling, 0) == 0, rules
    assert recovery["sip_calls"] >= 1 and recovery["sip_media_linked"] >= 1, recovery
    assert sip["calls_restored"] >= 1 and sip["calls_ended"] >= 1, sip
    assert sip["media_closed"] >= 1 and sip["open_calls_total"] == 0, sip
    media = reasons.get("expected", 0) + reasons.get("established", 0)
    assert media >= 100, reasons
    assert reasons.get("default_deny", 0) >= 10, reasons
    handoff = ""
    if len(stats["workers"]) > 1:
        handoff = "; handed off between workers: %d" % sum(w["handoff_out"] for w in stats["workers"])
    if sys.argv[4] == "gateway":
        # The BYE's closing of the pinholes and the media went to the
        # media's worker by mail.
        assert sip["mail_sent"] >= 1 and sip["mail_lost"] == 0, sip
        handoff += "; pinhole mail: %d messages" % sip["mail_sent"]
    print("ok: statistics of the last dataplane: %d call(s) and %d media connection(s) recovered, "
          "the BYE ended %d call(s) and closed %d media connection(s); %d packets let in as "
          "established, %d as expected; %d dropped by the default deny%s" %
          (recovery["sip_calls"], recovery["sip_media_linked"], sip["calls_ended"],
           sip["media_closed"], reasons.get("established", 0), reasons.get("expected", 0),
           reasons["default_deny"], handoff))
EOF
