#!/bin/bash
# Records the real-traffic captures in pcaps/real/ with real programs in two
# network namespaces, then writes each capture's expected verdicts with the
# independent oracle (pcaps/oracle.py) and rebuilds pcaps/demo.pcap
# (pcaps/make_demo.py). Run as root from anywhere:
#
#   sudo pcaps/record.sh                 # records everything into pcaps/real/
#   sudo pcaps/record.sh DIR             # records into DIR instead
#   sudo pcaps/record.sh --only ftp      # only the FTP captures (or: base)
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
#   demo-traffic.pcap  the real half of the demo: three curl fetches (one
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
#
# Everything the script starts (namespaces, servers, tcpdump) is removed on
# exit, also on failure or interruption; KEEP_WORK=1 keeps the scratch
# directory (tcpdump, server and iperf3 logs) for a look after a failure.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
GROUPS_WANTED="base ftp"
if [ "${1:-}" = --only ]; then
  case "${2:-}" in
    base|ftp) GROUPS_WANTED=$2 ;;
    *) echo "record.sh: --only takes base or ftp" >&2; exit 2 ;;
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
for tool in $TOOLS; do
  if ! command -v "$tool" >/dev/null; then
    echo "record.sh: $tool is missing (apt-get install iproute2 ethtool tcpdump tshark curl iperf3 iputils-ping vsftpd)" >&2
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
# The demo is real/demo-traffic.pcap, the session of real/ftp-active.pcap and
# attacks: rebuilt after recording into pcaps/real.
if [ "$OUT" = "$HERE/real" ]; then
  "$PY" "$HERE/make_demo.py" --traffic "$OUT/demo-traffic.pcap" \
    --traffic-expected "$OUT/demo-traffic.expected.jsonl" \
    --ftp "$OUT/ftp-active.pcap" --ftp-expected "$OUT/ftp-active.expected.jsonl" --out-dir "$HERE"
fi
echo "record.sh: done"
