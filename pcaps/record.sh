#!/bin/bash
# Records the real-traffic captures in pcaps/real/ with real programs in two
# network namespaces, then writes each capture's expected verdicts with the
# independent oracle (pcaps/oracle.py) and rebuilds pcaps/demo.pcap
# (pcaps/make_demo.py). Run as root from anywhere:
#
#   sudo pcaps/record.sh                 # records everything into pcaps/real/
#   sudo pcaps/record.sh DIR             # records into DIR instead
#   sudo pcaps/record.sh --only ftp      # only the FTP captures (or: base, sip)
#
# Topology (one wire, as a bump-in-the-wire firewall would see it):
#
#   namespace hf-in-PID                     namespace hf-out-PID
#   eth0 02:00:00:00:00:0a  <--- veth --->  eth0 02:00:00:00:00:14
#   10.0.0.10/24                            198.51.100.20/24
#   fd00:0:0:1::10/64                       2001:db8:100::20/64
#
# Each side reaches the other's prefix through an on-link route, so there is
# no router and every frame on the wire is between the two hosts. tcpdump
# runs in the inside namespace on its eth0. Offloads are off on both ends:
# with them on, captured segments carry partial checksums (and super-sized
# GSO frames) that no real wire carries.
#
# Recorded traffic (all started from the inside host). Group "base", judged
# under lab.config.json:
#   http.pcap       curl: index page, a 60000-byte file, a 404, and the
#                   index page over IPv6 from python3 -m http.server
#   iperf3-udp.pcap iperf3 UDP test, 800 kbit/s for 1 s, 200-byte datagrams,
#                   with its TCP control connection
#   icmp.pcap       ping and ping -6 (3 each), one 2000-byte ping each way
#                   (fragmented), one UDP datagram each to a closed port
#                   (answered by ICMP / ICMPv6 port unreachable)
#   demo-traffic.pcap  the traffic of the demo: three curl fetches (one
#                   IPv6), a short iperf3 UDP test, ping and ping -6
# Group "ftp", judged under ftp.config.json: curl against vsftpd (anonymous,
# passive ports 30000-30099, active data connections from port 20):
#   ftp-passive.pcap  PASV download (curl --disable-epsv); copied to
#                   ftp-passive-disabled.pcap, judged with the module off
#   ftp-active.pcap PORT download (curl -P - --disable-eprt)
#   ftp-epsv.pcap   EPSV download (curl's default)
#   ftp-eprt.pcap   EPRT download (curl -P -)
#   ftp-ipv6.pcap   an EPSV and an EPRT download over IPv6
#   ftp-multi.pcap  one control connection (curl --next keeps it): three
#                   downloads, a directory listing and an upload
#   ftp-aborted.pcap  a 2 MB download read at 16 kB/s and given up by
#                   curl --max-time 2: the data connection ends mid-stream
# Group "sip", judged under sip.config.json: one SIPp caller (inside, SIP
# from port 5061, media port 6000) against one SIPp callee (outside, SIP on
# port 5060, media port 7000) per capture, one call each, scenarios in
# pcaps/sip/ (uac-X.xml and uas-X.xml). Audio is SIPp's own rtp_stream:
# 1.5 s of PCMU (75 packets of 20 ms) each way from the audio media socket;
# video (and audio after a re-INVITE) is SIPp's play_pcap_video
# (play_pcap_audio) of a generated RTP capture. The media files are
# written into the scratch directory, SIPp's working directory:
#   sip-udp.pcap    INVITE with SDP, 100, 180, 200 with SDP, ACK, audio both
#                   ways, BYE, 200; copied to sip-udp-disabled.pcap, judged
#                   with the module off (sip-disabled.config.json)
#   sip-tcp.pcap    the same call over TCP (sipp -t t1)
#   sip-video.pcap  audio and video m= lines in offer and answer, both
#                   streams both ways
#   sip-reinvite.pcap  the call; the streams stop, a re-INVITE moves each
#                   side's audio to its port + 2 (200, ACK), the audio goes
#                   on between the new ports, then BYE
#   sip-cancel.pcap INVITE, 100, 180, CANCEL, 200, 487, ACK: no media
#   sip-rejected.pcap  INVITE, 100, 486 Busy Here, ACK: no media
#   sip-ipv6.pcap   the sip-udp call over IPv6
#
# Everything the script starts (namespaces, servers, SIPp, tcpdump) is
# removed on exit, also on failure or interruption; KEEP_WORK=1 keeps the
# scratch directory (tcpdump, server, iperf3 and SIPp logs) for a look after
# a failure.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
GROUPS_WANTED="base ftp sip"
if [ "${1:-}" = --only ]; then
  case "${2:-}" in
    base|ftp|sip) GROUPS_WANTED=$2 ;;
    *) echo "record.sh: --only takes base, ftp or sip" >&2; exit 2 ;;
  esac
  shift 2
fi
OUT=${1:-$HERE/real}
PY=/usr/bin/python3
MAX_BYTES=300000

if [ "$(id -u)" != 0 ]; then
  echo "record.sh: must run as root (network namespaces, tcpdump)" >&2
  exit 1
fi
export PATH=$PATH:/usr/sbin:/sbin  # vsftpd lives in /usr/sbin
wants() { case " $GROUPS_WANTED " in *" $1 "*) return 0 ;; esac; return 1; }
TOOLS="ip ethtool tcpdump tshark curl ss"
if wants base; then TOOLS="$TOOLS iperf3 ping"; fi
if wants ftp; then TOOLS="$TOOLS vsftpd"; fi
if wants sip; then TOOLS="$TOOLS sipp"; fi
for tool in $TOOLS; do
  if ! command -v "$tool" >/dev/null; then
    echo "record.sh: $tool is missing (apt-get install iproute2 ethtool tcpdump tshark curl iperf3 iputils-ping vsftpd sip-tester)" >&2
    exit 1
  fi
done
if wants ftp && ! id ftp >/dev/null 2>&1; then
  echo "record.sh: user ftp is missing (vsftpd's anonymous sessions run as ftp; the vsftpd package creates it)" >&2
  exit 1
fi

NS_IN=hf-in-$$
NS_OUT=hf-out-$$
VETH_A=hfa$$
VETH_B=hfb$$
IN_V4=10.0.0.10
IN_V6=fd00:0:0:1::10
OUT_V4=198.51.100.20
OUT_V6=2001:db8:100::20
WORK=$(mktemp -d /tmp/holdfast-record.XXXXXX)
BG_PIDS=()

cleanup() {
  local rc=$?
  set +e
  for pid in "${BG_PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${BG_PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  ip netns del "$NS_IN" 2>/dev/null
  ip netns del "$NS_OUT" 2>/dev/null
  ip link del "$VETH_A" 2>/dev/null
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Drops a process that has been waited for from the cleanup list, so cleanup
# never signals a process id that may have been reused.
forget_pid() {
  local keep=() p
  for p in "${BG_PIDS[@]}"; do
    if [ "$p" != "$1" ]; then keep+=("$p"); fi
  done
  BG_PIDS=("${keep[@]}")
}

in_ns() { ip netns exec "$NS_IN" "$@"; }
out_ns() { ip netns exec "$NS_OUT" "$@"; }

# Waits until a TCP or UDP port listens in the outside namespace.
wait_listen() {
  local flags=$1 port=$2
  for _ in $(seq 100); do
    if out_ns ss "-H$flags" "sport = :$port" | grep -q .; then return 0; fi
    sleep 0.05
  done
  echo "record.sh: nothing listens on port $port in $NS_OUT" >&2
  return 1
}

setup_host() {
  local ns=$1 dev=$2 mac=$3 v4=$4 v6=$5 peer_v4_net=$6 peer_v6_net=$7
  ip link set "$dev" netns "$ns"
  ip netns exec "$ns" ip link set "$dev" name eth0
  ip netns exec "$ns" ip link set eth0 address "$mac"
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.eth0.accept_dad=0
  ip netns exec "$ns" ethtool -K eth0 tx off rx off tso off gso off gro off >/dev/null
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip addr add "$v4/24" dev eth0
  ip netns exec "$ns" ip -6 addr add "$v6/64" dev eth0 nodad
  ip netns exec "$ns" ip link set eth0 up
  ip netns exec "$ns" ip route add "$peer_v4_net" dev eth0
  ip netns exec "$ns" ip -6 route add "$peer_v6_net" dev eth0
}

setup() {
  ip netns add "$NS_IN"
  ip netns add "$NS_OUT"
  ip link add "$VETH_A" type veth peer name "$VETH_B"
  setup_host "$NS_IN" "$VETH_A" 02:00:00:00:00:0a "$IN_V4" "$IN_V6" 198.51.100.0/24 2001:db8:100::/64
  setup_host "$NS_OUT" "$VETH_B" 02:00:00:00:00:14 "$OUT_V4" "$OUT_V6" 10.0.0.0/24 fd00:0:0:1::/64
  # Let link-up chatter (router solicitations, MLD reports) settle so the
  # captures hold the traffic under test, not the bring-up.
  sleep 2
}

# capture NAME FUNCTION: runs FUNCTION while tcpdump records the inside
# host's eth0 into $WORK/NAME.pcap.
capture() {
  local name=$1 fn=$2
  local log=$WORK/$name.tcpdump.log
  # Started with ip netns exec directly (not through a function, which would
  # put a subshell between $! and tcpdump), so the signal reaches tcpdump.
  ip netns exec "$NS_IN" tcpdump -i eth0 -n -s 0 -U --immediate-mode -w "$WORK/$name.pcap" 2>"$log" &
  local pid=$!
  BG_PIDS+=("$pid")
  for _ in $(seq 100); do
    if grep -q "listening on" "$log"; then break; fi
    sleep 0.05
  done
  grep -q "listening on" "$log" || { echo "record.sh: tcpdump did not start" >&2; cat "$log" >&2; return 1; }
  "$fn"
  # Late frames (the last ACKs, an ICMP error) still arrive; then stop
  # tcpdump and make sure it wrote everything the filter took.
  sleep 1
  kill -TERM "$pid"
  wait "$pid" || true
  forget_pid "$pid"
  local got took
  got=$(sed -n 's/^\([0-9]*\) packets\? captured$/\1/p' "$log")
  took=$(sed -n 's/^\([0-9]*\) packets\? received by filter$/\1/p' "$log")
  if [ -z "$got" ] || [ "$got" != "$took" ]; then
    echo "record.sh: tcpdump wrote ${got:-?} of ${took:-?} frames for $name" >&2
    return 1
  fi
  local size
  size=$(stat -c %s "$WORK/$name.pcap")
  if [ "$size" -gt "$MAX_BYTES" ]; then
    echo "record.sh: $name.pcap is $size bytes, more than $MAX_BYTES" >&2
    return 1
  fi
  cp "$WORK/$name.pcap" "$OUT/$name.pcap"
  echo "record.sh: $name.pcap: $(tshark -r "$OUT/$name.pcap" 2>/dev/null | wc -l) frames, $size bytes"
}

start_http_server() {
  mkdir -p "$WORK/www"
  printf '<html><body><h1>Holdfast test page</h1></body></html>\n' >"$WORK/www/index.html"
  # 60000 bytes of a fixed pattern: a transfer of some 40 full segments.
  "$PY" -c 'import sys; sys.stdout.write(("0123456789abcdef" * 3750))' >"$WORK/www/big.bin"
  ip netns exec "$NS_OUT" "$PY" -m http.server 8000 --bind :: --directory "$WORK/www" >"$WORK/http.log" 2>&1 &
  BG_PIDS+=("$!")
  wait_listen tln 8000
}

fetch() {
  in_ns curl -sS -o /dev/null -w "record.sh: GET $1 -> %{http_code}\n" "$1"
}

traffic_http() {
  fetch "http://$OUT_V4:8000/"
  fetch "http://$OUT_V4:8000/big.bin"
  fetch "http://$OUT_V4:8000/missing"
  fetch "http://[$OUT_V6]:8000/index.html"
}

# iperf3_udp RATE: one UDP test of 1 s at RATE with 200-byte datagrams.
iperf3_udp() {
  ip netns exec "$NS_OUT" iperf3 -s -1 -p 5201 >"$WORK/iperf3-server.log" 2>&1 &
  local server=$!
  BG_PIDS+=("$server")
  wait_listen tln 5201
  in_ns iperf3 -c "$OUT_V4" -p 5201 -u -b "$1" -t 1 -l 200 >"$WORK/iperf3-client.log"
  wait "$server"
  forget_pid "$server"
}

traffic_iperf3() {
  iperf3_udp 800K
}

# One UDP datagram to a port where nothing listens: the outside host answers
# with an ICMP (or ICMPv6) port unreachable.
udp_to_closed_port() {
  in_ns "$PY" -c '
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.sendto(b"is anybody there?", (sys.argv[1], 9))
' "$1"
  sleep 0.2
}

traffic_icmp() {
  in_ns ping -n -q -c 3 -i 0.2 "$OUT_V4" >/dev/null
  in_ns ping -6 -n -q -c 3 -i 0.2 "$OUT_V6" >/dev/null
  in_ns ping -n -q -c 1 -s 2000 "$OUT_V4" >/dev/null
  in_ns ping -6 -n -q -c 1 -s 2000 "$OUT_V6" >/dev/null
  udp_to_closed_port "$OUT_V4"
  udp_to_closed_port "$OUT_V6"
}

traffic_demo() {
  fetch "http://$OUT_V4:8000/"
  in_ns ping -n -q -c 2 -i 0.2 "$OUT_V4" >/dev/null
  fetch "http://$OUT_V4:8000/big.bin"
  iperf3_udp 200K
  in_ns ping -6 -n -q -c 2 -i 0.2 "$OUT_V6" >/dev/null
  fetch "http://[$OUT_V6]:8000/index.html"
}

# vsftpd in the outside namespace: anonymous downloads from pub/, uploads
# into upload/, passive ports 30000-30099, active data connections from port
# 20. No seccomp sandbox and no namespaces of its own (it already runs in
# one); in the foreground, so cleanup stops it.
start_ftp_server() {
  local root=$WORK/ftp
  mkdir -p "$root/pub" "$root/upload" "$WORK/empty"
  chmod 755 "$WORK" "$root" "$root/pub"
  chmod 555 "$WORK/empty"
  chown ftp "$root/upload"
  # Small files of a fixed pattern: a readme, 2000 and 20000 bytes, and
  # 2 MB for the aborted download (of which a fraction crosses the wire).
  printf 'Holdfast test FTP server: these files are for the capture tests.\r\n' >"$root/pub/README"
  "$PY" -c 'import sys; sys.stdout.write("0123456789abcdef" * 125)' >"$root/pub/small.bin"
  "$PY" -c 'import sys; sys.stdout.write("fedcba9876543210" * 1250)' >"$root/pub/medium.bin"
  "$PY" -c 'import sys; sys.stdout.write("holdfast-aborted" * 131072)' >"$root/pub/large.bin"
  chmod 644 "$root"/pub/*
  printf 'uploaded by the capture test\n' >"$WORK/upload.txt"
  cat >"$WORK/vsftpd.conf" <<EOF
listen=NO
listen_ipv6=YES
background=NO
anonymous_enable=YES
no_anon_password=YES
local_enable=NO
anon_root=$root
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=NO
anon_other_write_enable=NO
anon_umask=022
pasv_enable=YES
pasv_min_port=30000
pasv_max_port=30099
port_enable=YES
connect_from_port_20=YES
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
secure_chroot_dir=$WORK/empty
dirmessage_enable=NO
hide_ids=YES
ftpd_banner=Holdfast test FTP server
xferlog_enable=YES
vsftpd_log_file=$WORK/vsftpd.log
EOF
  ip netns exec "$NS_OUT" vsftpd "$WORK/vsftpd.conf" >"$WORK/vsftpd.out" 2>&1 &
  BG_PIDS+=("$!")
  wait_listen tln 21
}

# ftp_get CURL-ARGS... URL: one curl run, described on stdout.
ftp_get() {
  in_ns curl -sS -o /dev/null -w "record.sh: %{url_effective} -> %{response_code}, %{size_download} bytes\n" "$@"
}

traffic_ftp_passive() { ftp_get --disable-epsv "ftp://$OUT_V4/pub/small.bin"; }
traffic_ftp_active() { ftp_get -P - --disable-eprt "ftp://$OUT_V4/pub/small.bin"; }
traffic_ftp_epsv() { ftp_get "ftp://$OUT_V4/pub/small.bin"; }
traffic_ftp_eprt() { ftp_get -P - "ftp://$OUT_V4/pub/small.bin"; }

traffic_ftp_ipv6() {
  ftp_get "ftp://[$OUT_V6]/pub/small.bin"
  ftp_get -P - "ftp://[$OUT_V6]/pub/README"
}

# One curl, one control connection (--next keeps it): three downloads, a
# listing of pub/ and an upload.
traffic_ftp_multi() {
  in_ns curl -sS -w "record.sh: %{url_effective} -> %{response_code}, %{num_connects} new connections\n" \
    -o /dev/null "ftp://$OUT_V4/pub/README" \
    -o /dev/null "ftp://$OUT_V4/pub/small.bin" \
    -o /dev/null "ftp://$OUT_V4/pub/medium.bin" \
    -o /dev/null "ftp://$OUT_V4/pub/" \
    --next -T "$WORK/upload.txt" "ftp://$OUT_V4/upload/"
}

# A download curl reads at 16 kB/s and gives up after 2 s (exit 28): it
# closes the data connection with most of the file unsent.
traffic_ftp_aborted() {
  local rc=0
  in_ns curl -sS -o /dev/null --limit-rate 16k --max-time 2 "ftp://$OUT_V4/pub/large.bin" 2>/dev/null || rc=$?
  if [ "$rc" != 28 ]; then
    echo "record.sh: the aborted download exited $rc, not 28 (timed out)" >&2
    return 1
  fi
  echo "record.sh: ftp://$OUT_V4/pub/large.bin given up by --max-time"
}

# SIPp, one call a capture: the callee (uas-X.xml) in the outside namespace
# on port 5060, the caller (uac-X.xml) in the inside namespace from port
# 5061. Media ports (-mp, [media_port] in the SDP): 6000 for the caller,
# 7000 for the callee; SIPp binds that port for audio (its rtp_stream sends
# from it) and the port + 2 for video. play_pcap_audio and play_pcap_video
# send from the port of the last m=audio or m=video line SIPp wrote
# ([media_port+2] for video, and for audio after the re-INVITE). Both run
# in $SIP_DIR, where the media files are (SIPp opens rtp_stream files from
# its working directory), and log there; SIPp's own screen goes to
# NAME.uac.screen / NAME.uas.screen.
SIP_DIR=$WORK/sip
SIP_CALLER_PORT=5061
SIP_CALLER_MEDIA=6000
SIP_CALLEE_MEDIA=7000

# The media the scenarios play, written once: tone-pcmu.raw, 1.5 s of a
# 440 Hz tone in PCMU (G.711 mu-law, 8000 samples/s) without a header, as
# SIPp 3.6's rtp_stream sends a file's bytes as they are (160 a packet, so
# 75 packets); tone-pcmu-rtp.pcap, its last 0.8 s as 40 RTP packets of
# 20 ms, and video-h264.pcap, 1.5 s of RTP with payload type 96
# (H264/90000 in the SDP) at 15 frames/s, one packet of 400-900 bytes a
# frame (a NAL header and filler, no decodable picture): captures SIPp's
# play_pcap_audio and play_pcap_video send on with the ports and
# addresses of the call (only their UDP payloads and timing count).
make_sip_media() {
  mkdir -p "$SIP_DIR"
  "$PY" -c '
import math, struct, sys
sys.path.insert(0, sys.argv[2])
from pcapfile import write_pcap

def ulaw(x):
    sign = 0x80 if x < 0 else 0
    x = min(abs(x), 32635) + 0x84
    exp = 7
    while exp > 0 and not x & (0x4000 >> (7 - exp)):
        exp -= 1
    return ~(sign | exp << 4 | (x >> (exp + 3)) & 15) & 255

def rtp_frame(i, payload_type, marker, timestamp, ssrc, payload):
    rtp = struct.pack("!BBHII", 0x80, marker << 7 | payload_type, i, timestamp, ssrc) + payload
    udp = struct.pack("!HHHH", 20000, 20000, 8 + len(rtp), 0) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                     bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    s = sum(struct.unpack("!10H", ip))
    s = (s & 0xFFFF) + (s >> 16)
    ip = ip[:10] + struct.pack("!H", ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF) + ip[12:]
    return bytes.fromhex("020000000002" "020000000001" "0800") + ip + udp

tone = bytes(ulaw(round(8000 * math.sin(2 * math.pi * 440 * k / 8000))) for k in range(12000))
with open(sys.argv[1] + "/tone-pcmu.raw", "wb") as fh:
    fh.write(tone)
write_pcap(sys.argv[1] + "/tone-pcmu-rtp.pcap", [
    (i * 20000, rtp_frame(i, 0, i == 0, i * 160, 0x504D4355, tone[(35 + i) * 160:(36 + i) * 160]))
    for i in range(40)])
video = []
for i in range(23):
    size = 900 if i == 0 else 400 + (i * 37) % 200
    nal = 0x65 if i == 0 else 0x41  # an IDR slice first, then non-IDR slices
    payload = bytes([nal]) + bytes((i * 7 + k) & 0xFF for k in range(size - 1))
    video.append((i * 1000000 // 15, rtp_frame(i, 96, 1, i * 6000, 0x48323634, payload)))
write_pcap(sys.argv[1] + "/video-h264.pcap", video)
' "$SIP_DIR" "$HERE"
}

# sip_call NAME SCENARIO TRANSPORT FAMILY: one call of uac-SCENARIO.xml
# against uas-SCENARIO.xml over TRANSPORT (u1: UDP, t1: TCP, one socket
# each) and IP version FAMILY (4 or 6). Each SIPp handles one call (-m 1)
# and fails (exit status not 0) when its scenario does not run through or
# takes over 30 s; either failing fails the recording. Both run in the
# background (in BG_PIDS, so cleanup stops them on any exit) and are
# waited for.
sip_call() {
  local name=$1 scenario=$2 transport=$3 family=$4
  local caller=$IN_V4 callee=$OUT_V4 target=$OUT_V4:5060 listen=uln
  if [ "$family" = 6 ]; then
    caller=$IN_V6 callee=$OUT_V6 target="[$OUT_V6]:5060"
  fi
  if [ "$transport" = t1 ]; then listen=tln; fi
  local common=(-t "$transport" -m 1 -timeout 30 -timeout_error -trace_err -trace_msg)
  ip netns exec "$NS_OUT" env -C "$SIP_DIR" sipp -sf "$HERE/sip/uas-$scenario.xml" \
    -i "$callee" -mi "$callee" -p 5060 -mp "$SIP_CALLEE_MEDIA" "${common[@]}" \
    -error_file "$SIP_DIR/$name.uas.errors" -message_file "$SIP_DIR/$name.uas.messages" \
    </dev/null >"$SIP_DIR/$name.uas.screen" 2>&1 &
  local uas=$!
  BG_PIDS+=("$uas")
  wait_listen "$listen" 5060
  ip netns exec "$NS_IN" env -C "$SIP_DIR" sipp -sf "$HERE/sip/uac-$scenario.xml" "$target" \
    -i "$caller" -mi "$caller" -p "$SIP_CALLER_PORT" -mp "$SIP_CALLER_MEDIA" "${common[@]}" \
    -error_file "$SIP_DIR/$name.uac.errors" -message_file "$SIP_DIR/$name.uac.messages" \
    </dev/null >"$SIP_DIR/$name.uac.screen" 2>&1 &
  local uac=$!
  BG_PIDS+=("$uac")
  local rc=0
  wait "$uac" || rc=$?
  forget_pid "$uac"
  if [ "$rc" != 0 ]; then
    echo "record.sh: the SIPp caller of $name exited $rc (KEEP_WORK=1 keeps $SIP_DIR/$name.uac.*)" >&2
    return 1
  fi
  wait "$uas" || rc=$?
  forget_pid "$uas"
  if [ "$rc" != 0 ]; then
    echo "record.sh: the SIPp callee of $name exited $rc (KEEP_WORK=1 keeps $SIP_DIR/$name.uas.*)" >&2
    return 1
  fi
}

traffic_sip_udp() { sip_call sip-udp call u1 4; }
traffic_sip_tcp() { sip_call sip-tcp call t1 4; }
traffic_sip_video() { sip_call sip-video video u1 4; }
traffic_sip_reinvite() { sip_call sip-reinvite reinvite u1 4; }
traffic_sip_cancel() { sip_call sip-cancel cancel u1 4; }
traffic_sip_rejected() { sip_call sip-rejected rejected u1 4; }
traffic_sip_ipv6() { sip_call sip-ipv6 call u1 6; }

# sip_check NAME MEDIA: reads the capture back with tshark and prints its
# SIP messages, SDP media lines and RTP streams. Fails unless every UDP
# datagram off port 5060 is RTP that tshark ties to an SDP of the capture
# (rtp.setup-frame: it went to an address and port some SDP announced),
# and, with MEDIA yes, RTP flows both ways; with MEDIA no, there is none.
sip_check() {
  local name=$1 media=$2
  tshark -r "$OUT/$name.pcap" -n -T fields -E separator=/t -E occurrence=a \
    -e frame.number -e ip.src -e ipv6.src -e ip.dst -e ipv6.dst \
    -e udp.srcport -e udp.dstport -e sip.Method -e sip.Status-Code -e sip.CSeq.method \
    -e sdp.connection_info -e sdp.media -e rtp.setup-frame 2>/dev/null |
  "$PY" -c '
import sys
name, media, inside = sys.argv[1], sys.argv[2] == "yes", sys.argv[3].split()
sip, sdp, rtp, stray = [], [], {}, []

def where(addr, port):
    return ("[%s]:%s" if ":" in addr else "%s:%s") % (addr, port)

for line in sys.stdin:
    f = line.rstrip("\n").split("\t")
    num, src, dst, sport, dport = f[0], f[1] or f[2], f[3] or f[4], f[5], f[6]
    # A frame may hold several messages (TCP): requests, then responses.
    requests = [m for m in f[7].split(",") if m]
    sip += requests
    sip += ["%s(%s)" % cq for cq in zip([c for c in f[8].split(",") if c], f[9].split(",")[len(requests):])]
    if f[11]:
        conn = f[10].split(",")[0].split()[-1]
        sdp += ["%s %s" % (conn, " ".join(m.split()[:2])) for m in f[11].split(",")]
    if sport and "5060" not in (sport, dport):
        if f[12]:
            key = (src, sport, dst, dport)
            rtp[key] = rtp.get(key, 0) + 1
        else:
            stray.append(num)
print("record.sh: %s: SIP %s" % (name, " ".join(sip)))
print("record.sh: %s: SDP %s" % (name, ", ".join(sdp) or "none"))
print("record.sh: %s: RTP %s" % (name, ", ".join(
    "%s > %s %d" % (where(k[0], k[1]), where(k[2], k[3]), n) for k, n in rtp.items()) or "none"))
if stray:
    sys.exit("record.sh: %s: UDP off port 5060 that is no RTP of an SDP: frames %s" % (name, " ".join(stray)))
if media and not (any(k[0] in inside for k in rtp) and any(k[0] not in inside for k in rtp)):
    sys.exit("record.sh: %s: RTP does not flow both ways" % name)
if not media and rtp:
    sys.exit("record.sh: %s: RTP in a call without media" % name)
' "$name" "$media" "$IN_V4 $IN_V6"
}

mkdir -p "$OUT"
setup
if wants base; then
  start_http_server
  capture http traffic_http
  capture iperf3-udp traffic_iperf3
  capture icmp traffic_icmp
  capture demo-traffic traffic_demo
  for name in http iperf3-udp icmp demo-traffic; do
    "$PY" "$HERE/oracle.py" --config "$HERE/lab.config.json" --pcap "$OUT/$name.pcap" \
      --out "$OUT/$name.expected.jsonl"
  done
fi
if wants ftp; then
  start_ftp_server
  for name in passive active epsv eprt ipv6 multi aborted; do
    capture "ftp-$name" "traffic_ftp_$name"
    "$PY" "$HERE/oracle.py" --config "$HERE/ftp.config.json" --pcap "$OUT/ftp-$name.pcap" \
      --out "$OUT/ftp-$name.expected.jsonl"
  done
  # The control: the same passive session judged with the module off.
  cp "$OUT/ftp-passive.pcap" "$OUT/ftp-passive-disabled.pcap"
  "$PY" "$HERE/oracle.py" --config "$HERE/ftp-disabled.config.json" \
    --pcap "$OUT/ftp-passive-disabled.pcap" --out "$OUT/ftp-passive-disabled.expected.jsonl"
fi
if wants sip; then
  make_sip_media
  for name in udp tcp video reinvite cancel rejected ipv6; do
    capture "sip-$name" "traffic_sip_$name"
    case $name in
      cancel|rejected) sip_check "sip-$name" no ;;
      *) sip_check "sip-$name" yes ;;
    esac
    "$PY" "$HERE/oracle.py" --config "$HERE/sip.config.json" --pcap "$OUT/sip-$name.pcap" \
      --out "$OUT/sip-$name.expected.jsonl"
  done
  # The control: the same UDP call judged with the module off.
  cp "$OUT/sip-udp.pcap" "$OUT/sip-udp-disabled.pcap"
  "$PY" "$HERE/oracle.py" --config "$HERE/sip-disabled.config.json" \
    --pcap "$OUT/sip-udp-disabled.pcap" --out "$OUT/sip-udp-disabled.expected.jsonl"
fi
# The demo is real/demo-traffic.pcap, the session of real/ftp-active.pcap,
# the call of real/sip-udp.pcap and attacks: rebuilt after recording any of
# them into pcaps/real.
if [ "$OUT" = "$HERE/real" ]; then
  "$PY" "$HERE/make_demo.py" --traffic "$OUT/demo-traffic.pcap" \
    --traffic-expected "$OUT/demo-traffic.expected.jsonl" \
    --ftp "$OUT/ftp-active.pcap" --ftp-expected "$OUT/ftp-active.expected.jsonl" \
    --sip "$OUT/sip-udp.pcap" --sip-expected "$OUT/sip-udp.expected.jsonl" --out-dir "$HERE"
fi
echo "record.sh: done"
