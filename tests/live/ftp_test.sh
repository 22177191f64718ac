#!/bin/bash
# Live FTP test: vsftpd outside, curl inside, holdfast between them on
# net_af_packet (tests/live/netns.sh) under `holdfastctl supervise`,
# checkpointing into holdfast-ckptd. The policy lets the inside open TCP to
# port 21 and nothing else (default deny), so a data connection, which goes
# to a port the server or the client announced on the control connection,
# passes only through the pinhole the FTP module opened for it.
#
# MODE=passive: a 40 MiB download announced with EPSV (229), then a 40 MiB
#   upload announced with PASV (227); the inside opens the data connections.
# MODE=active: a 40 MiB download announced with EPRT, then a 40 MiB upload
#   announced with PORT; the server opens the data connections to the inside.
# In the middle of each transfer the dataplane is killed with SIGKILL; the
# supervisor restarts it with --recover, it rebuilds the control and data
# connections and the FTP session from the store, and the transfer must
# complete with the right checksum. Then a second, small file goes the same
# way over the same control connection: its data connection passes only if
# the recovered FTP session reads the new announcement. The stall (how long
# the file stood still after the kill) is measured and printed. In between,
# the dataplane is killed once more after a PASV (passive) or PORT (active)
# and before its data connection opens, which must then pass through the
# recovered pinhole.
#
# FTP=0: the FTP module is disabled in the configuration and nothing is
# killed. A passive and an active download must then both fail: the control
# connection is allowed, the data connection's SYN is dropped by the default
# deny (final statistics), which shows the test can fail.
#
# usage: [MODE=passive|active] [FTP=1|0] ftp_test.sh HOLDFAST HOLDFASTCTL CKPTD
set -euo pipefail

HOLDFAST=$(realpath "$1")
HOLDFASTCTL=$(realpath "$2")
CKPTD=$(realpath "$3")
MODE=${MODE:-passive}
FTP=${FTP:-1}
case "$MODE" in passive | active) ;; *) echo "unknown MODE $MODE"; exit 1 ;; esac
MIB=40
source "$(dirname "$0")/netns.sh"
command -v vsftpd >/dev/null || fail "vsftpd is not installed (Debian package vsftpd)"
# Anonymous sessions run as the user 'ftp', which the vsftpd package creates.
getent passwd ftp >/dev/null || fail "there is no user 'ftp' for vsftpd's anonymous sessions"
netns_setup
if [ "$FTP" = 1 ]; then enabled=true; else enabled=false; fi
# ICMPv6 is allowed only so that the kernel's multicast listener reports
# (not neighbour discovery, so judged by the rules) do not count as
# default_deny: with the module disabled, every packet the default denies
# must be a data connection's.
netns_config '[{"name": "ftp-control", "side": "inside", "protocol": "tcp", "dst_ports": 21, "action": "allow"},
  {"name": "icmpv6", "protocol": "icmpv6", "action": "allow"}]' \
  "\"modules\": {\"ftp\": {\"enabled\": $enabled}}"

# The checkpoint server and the supervised dataplane.
start_supervised ftp

# vsftpd outside: anonymous, downloads from its root, uploads into upload/,
# passive data ports 40000-40100, no sandboxing that a namespace could trip
# over (seccomp, per-session namespaces), the protocol logged.
mkdir -p "$WORK/ftp/upload" "$WORK/empty" "$WORK/in"
chmod 755 "$WORK/ftp" "$WORK/empty"
chown ftp: "$WORK/ftp/upload"
head -c $((MIB * 1024 * 1024)) /dev/urandom >"$WORK/ftp/down"
head -c $((MIB * 1024 * 1024)) /dev/urandom >"$WORK/in/up"
head -c $((1024 * 1024)) /dev/urandom >"$WORK/ftp/after"
head -c $((1024 * 1024)) /dev/urandom >"$WORK/in/after"
chmod 644 "$WORK/ftp/down" "$WORK/ftp/after"
cat >"$WORK/vsftpd.conf" <<EOF
listen=YES
listen_address=10.9.0.2
listen_ipv6=NO
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
anon_root=$WORK/ftp
write_enable=YES
anon_upload_enable=YES
anon_umask=022
pasv_enable=YES
pasv_min_port=40000
pasv_max_port=40100
port_enable=YES
connect_from_port_20=NO
connect_timeout=5
data_connection_timeout=30
idle_session_timeout=120
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
secure_chroot_dir=$WORK/empty
xferlog_enable=YES
xferlog_std_format=NO
log_ftp_protocol=YES
vsftpd_log_file=$WORK/vsftpd.log
syslog_enable=NO
EOF
ip netns exec "$NS_OUT" vsftpd "$WORK/vsftpd.conf" >"$WORK/vsftpd-stderr.log" 2>&1 &
disown  # netns_cleanup kills it with everything else in the namespace
vsftpd_up=0
for _ in $(seq 100); do
  ip netns exec "$NS_OUT" bash -c "exec 3<>/dev/tcp/10.9.0.2/21" 2>/dev/null && { vsftpd_up=1; break; }
  sleep 0.05
done
[ "$vsftpd_up" = 1 ] || fail "vsftpd did not start"

# Both ends send at 32 Mbit/s (about 4 MB/s, so a transfer lasts ten
# seconds) through a token bucket on their own veth, which paces TCP
# smoothly: the file grows every few milliseconds, so a stall shows. (curl's
# --limit-rate reads in bursts with pauses of over two seconds between them
# even without a crash; it is the fallback if tbf is missing.)
PACE=()
if ! ip netns exec "$NS_IN" tc qdisc add dev hfi$ID root tbf rate 32mbit burst 32kb latency 50ms ||
  ! ip netns exec "$NS_OUT" tc qdisc add dev hfo$ID root tbf rate 32mbit burst 32kb latency 50ms; then
  echo "note: no tbf qdisc, pacing with curl --limit-rate: the stall measured is coarse"
  PACE=(--limit-rate 4M)
fi

# The curl options that choose how the data connection is announced.
announce_args() {
  case "$1" in
    EPSV) echo "--ftp-pasv" ;;
    PASV) echo "--ftp-pasv --disable-epsv" ;;
    EPRT) echo "--ftp-port -" ;;
    PORT) echo "--ftp-port - --disable-eprt" ;;
  esac
}
# How many lines of vsftpd's protocol log match PATTERN (0 before it exists).
logged() {
  local n
  n=$(grep -c "$1" "$WORK/vsftpd.log" 2>/dev/null) || true
  echo "${n:-0}"
}
# How many times the client sent COMMAND.
sent() { logged "FTP command: .*\"$1[ \"]"; }

KILLS=0
# transfer download|upload EPSV|PASV|EPRT|PORT: a 40 MiB transfer, the
# dataplane killed once 6 MiB have crossed, then a 1 MiB one on the same
# control connection (curl reuses it for the second URL).
transfer() {
  local direction=$1 cmd=$2 src dst src2 dst2 before connects
  if [ "$direction" = download ]; then
    src=$WORK/ftp/down dst=$WORK/in/down src2=$WORK/ftp/after dst2=$WORK/in/after
    set -- -o "$dst" ftp://10.9.0.2/down -o "$dst2" ftp://10.9.0.2/after
  else
    src=$WORK/in/up dst=$WORK/ftp/upload/up src2=$WORK/in/after dst2=$WORK/ftp/upload/after
    set -- -T "$src" ftp://10.9.0.2/upload/up -T "$src2" ftp://10.9.0.2/upload/after
  fi
  before=$(sent "$cmd") connects=$(logged "CONNECT: Client \"10.9.0.1\"")
  ip netns exec "$NS_IN" curl -sS $(announce_args "$cmd") "${PACE[@]}" \
    --connect-timeout 10 --speed-limit 1 --speed-time 6 --max-time 60 "$@" 2>"$WORK/curl.log" &
  local curl_pid=$!  # on failure netns_cleanup kills it with the namespace
  # Progress samples (seconds since epoch, bytes so far; they stop with curl)
  # to measure the stall.
  (
    while kill -0 "$curl_pid" 2>/dev/null; do
      echo "$(date +%s.%N) $(stat -c %s "$dst" 2>/dev/null || echo 0)"
      sleep 0.01
    done
  ) >"$WORK/progress.txt" &
  local sampler=$!

  local size=0
  for _ in $(seq 750); do
    size=$(stat -c %s "$dst" 2>/dev/null || echo 0)
    [ "$size" -gt $((6 * 1024 * 1024)) ] && break
    kill -0 "$curl_pid" 2>/dev/null ||
      fail "the $direction ($cmd) ended before 6 MiB: $(cat "$WORK/curl.log")"
    sleep 0.02
  done
  [ "$size" -gt $((6 * 1024 * 1024)) ] || fail "the $direction ($cmd) did not reach 6 MiB"
  local dataplane killed_at
  dataplane=$(pgrep -P "$SUPERVISOR" | head -1)  # the supervisor's child
  [ -n "$dataplane" ] || fail "cannot find the dataplane process"
  killed_at=$(date +%s.%N)
  kill -KILL "$dataplane"
  KILLS=$((KILLS + 1))
  echo "killed the dataplane (pid $dataplane) with SIGKILL mid-$direction ($cmd)"

  wait "$curl_pid" || fail "the $direction ($cmd) did not survive the crash: $(cat "$WORK/curl.log")"
  wait "$sampler" 2>/dev/null || true
  [ "$(sha256sum <"$src")" = "$(sha256sum <"$dst")" ] ||
    fail "the ${direction}ed file differs from the original"
  [ "$(sha256sum <"$src2")" = "$(sha256sum <"$dst2")" ] ||
    fail "the file ${direction}ed after the crash differs from the original"
  [ "$(sent "$cmd")" -ge $((before + 2)) ] ||
    fail "curl did not announce both data connections with $cmd"
  [ "$(logged "CONNECT: Client \"10.9.0.1\"")" -eq $((connects + 1)) ] ||
    fail "curl did not reuse its control connection for the second file"
  grep -q "restart $KILLS with --recover" "$WORK/holdfast.log" ||
    fail "the supervisor did not restart the dataplane (restart $KILLS)"
  # The control and the data connection, at least, came back from the store.
  local restored
  restored=$(grep -E "restored: " "$WORK/holdfast.log" | tail -n1)
  [ "$(grep -c "restored: " "$WORK/holdfast.log")" -ge "$KILLS" ] &&
    echo "$restored" | grep -Eq "tcp ([2-9]|[1-9][0-9]+)" ||
    fail "the control and data connections were not both recovered after kill $KILLS"
  # The stall: the longest time after the kill that the file did not grow
  # (not just until it first grew again: the receiver may still have been
  # reading what its socket held when the dataplane died).
  local stall restart
  stall=$(/usr/bin/python3 - "$WORK/progress.txt" "$killed_at" "$src" <<'EOF'
import os, sys
killed = float(sys.argv[2])
samples = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 2]
at_kill = max((size for t, size in samples if t <= killed), default=0)
if at_kill >= os.path.getsize(sys.argv[3]):
    print("complete")  # the kill came too late to interrupt anything
    sys.exit()
grew = [t for (t, size), (_, prev) in zip(samples[1:], samples) if t > killed and size > prev]
if not grew:
    print("unknown")
    sys.exit()
stops = [killed] + grew
gap, start, end = max((b - a, a, b) for a, b in zip(stops, stops[1:]))
print("%.0f ms (no progress from +%.2f s to +%.2f s after the kill)" %
      (gap * 1000, start - killed, end - killed))
EOF
)
  [ "$stall" != complete ] || fail "the $direction ($cmd) had finished before the kill"
  # The supervisor's back-off doubles with each restart (until a run of 30 s),
  # and the stall includes it.
  restart="$(grep -o "restart $KILLS with --recover in [0-9.]* s" "$WORK/holdfast.log" |
    grep -o "in [0-9.]* s"), then $(grep -o "first packet forwarded [0-9.]* ms after start" \
    "$WORK/holdfast.log" | tail -n1)"
  echo "ok: $MIB MiB $direction ($cmd) survived the kill, then 1 MiB more over the recovered" \
    "control connection; checksums match; stall $stall; restarted $restart"
  echo "    $(echo "$restored" | sed 's/.*recovery: *//'); $(grep -E "discarded: " "$WORK/holdfast.log" | tail -n1 | sed 's/.*discarded:/discarded:/')"
}

# pending PASV|PORT: a crash between the announcement and the data
# connection. A Python client announces the data connection (PASV: reads
# the server's 227; PORT: its PORT is acknowledged), then waits; the
# dataplane is killed and restarted; only then does the data connection
# open (passive: the client connects; active: RETR, and the server
# connects). It passes only if the pending expectation was recovered.
pending() {
  local cmd=$1 out
  rm -f "$WORK/announced" "$WORK/go"
  cat >"$WORK/pending.py" <<'EOF'
import ftplib, hashlib, os, socket, sys, time
cmd, work = sys.argv[1:3]
ftp = ftplib.FTP()
ftp.connect("10.9.0.2", 21, timeout=10)
ftp.login()
ftp.voidcmd("TYPE I")
if cmd == "PASV":
    addr = ftplib.parse227(ftp.sendcmd("PASV"))
else:
    listener = socket.create_server(("10.9.0.1", 0))
    listener.settimeout(10)
    ftp.sendport("10.9.0.1", listener.getsockname()[1])
open(os.path.join(work, "announced"), "w").close()
for _ in range(600):
    if os.path.exists(os.path.join(work, "go")):
        break
    time.sleep(0.05)
else:
    sys.exit("the test did not say go")
try:
    if cmd == "PASV":
        data = socket.create_connection(addr, timeout=10)
        ftp.sendcmd("RETR after")
    else:
        ftp.sendcmd("RETR after")
        data, _ = listener.accept()
except (OSError, ftplib.Error) as e:
    sys.exit("the data connection announced before the crash failed: %r" % e)
data.settimeout(10)
digest = hashlib.sha256()
while chunk := data.recv(65536):
    digest.update(chunk)
data.close()
ftp.voidresp()
ftp.quit()
print(digest.hexdigest())
EOF
  ip netns exec "$NS_IN" /usr/bin/python3 "$WORK/pending.py" "$cmd" "$WORK" \
    >"$WORK/pending.out" 2>"$WORK/pending.log" &
  local client=$!
  for _ in $(seq 200); do
    [ -e "$WORK/announced" ] && break
    kill -0 "$client" 2>/dev/null || fail "the FTP client ended before announcing: $(cat "$WORK/pending.log")"
    sleep 0.05
  done
  [ -e "$WORK/announced" ] || fail "the FTP client did not announce a data connection"
  local dataplane
  dataplane=$(pgrep -P "$SUPERVISOR" | head -1)
  [ -n "$dataplane" ] || fail "cannot find the dataplane process"
  kill -KILL "$dataplane"
  KILLS=$((KILLS + 1))
  echo "killed the dataplane (pid $dataplane) with SIGKILL between $cmd and the data connection"
  wait_forwarding "$WORK/holdfast.log" $((KILLS + 1))
  touch "$WORK/go"
  wait "$client" || fail "$(cat "$WORK/pending.log")"
  out=$(cat "$WORK/pending.out")
  [ "$out" = "$(sha256sum <"$WORK/ftp/after" | cut -d' ' -f1)" ] ||
    fail "the file fetched over the recovered pinhole differs from the original"
  grep -q "restart $KILLS with --recover" "$WORK/holdfast.log" ||
    fail "the supervisor did not restart the dataplane (restart $KILLS)"
  echo "ok: a $cmd data connection announced before the kill opened after the restart;" \
    "1 MiB, checksum matches"
  echo "    $(grep -E "restored: " "$WORK/holdfast.log" | tail -n1 | sed 's/.*recovery: *//')"
}

# no_transfer passive|active: the data connection must be blocked, and the
# control connection must have got as far as announcing it (passive: the
# server's 229, or 227 when curl falls back to PASV; active: the server's 425
# after it could not connect).
no_transfer() {
  local mode=$1 args evidence before
  if [ "$mode" = passive ]; then
    args=$(announce_args EPSV) evidence='FTP response: .*"22[79] '
  else
    args=$(announce_args EPRT) evidence='FTP response: .*"425 '
  fi
  before=$(logged "$evidence")
  if ip netns exec "$NS_IN" curl -sS $args --connect-timeout 5 --max-time 20 \
    -o "$WORK/in/down-$mode" ftp://10.9.0.2/down 2>"$WORK/curl.log"; then
    fail "with the FTP module disabled a $mode data connection got through"
  fi
  [ "$(logged "$evidence")" -gt "$before" ] ||
    fail "the $mode control connection did not get as far as the data connection"
  echo "ok: with the FTP module disabled the $mode download failed: $(tail -n1 "$WORK/curl.log");" \
    "server: $(grep "$evidence" "$WORK/vsftpd.log" | tail -n1 | sed 's/.*", "//; s/"$//')"
}

if [ "$FTP" = 1 ]; then
  # The upload last: the final statistics are the last dataplane's, and
  # the upload's second file is what it must have let in.
  if [ "$MODE" = passive ]; then
    transfer download EPSV
    pending PASV
    transfer upload PASV
  else
    transfer download EPRT
    pending PORT
    transfer upload PORT
  fi
else
  no_transfer passive
  no_transfer active
fi

# Final statistics of the (last) dataplane.
kill -TERM "$SUPERVISOR"
wait "$SUPERVISOR" || fail "the dataplane did not stop cleanly (status $?)"
/usr/bin/python3 - "$WORK/stats.json" "$FTP" <<'EOF' || fail "final statistics are not as expected"
import json, sys
stats = json.load(open(sys.argv[1]))
s = stats["pipeline"]
reasons = s["reasons"]
rules = {r["name"]: r["hits"] for r in s["rules"]}
if sys.argv[2] == "0":
    # A passive and an active data connection, each at least its first SYN
    # dropped by the default deny, and nothing else dropped; the control
    # connections allowed.
    assert reasons.get("default_deny", 0) >= 2, reasons
    assert s["dropped"] == reasons["default_deny"], (s["dropped"], reasons)
    assert rules.get("default", 0) == reasons["default_deny"], rules
    assert rules.get("ftp-control", 0) >= 2, rules
    assert reasons.get("expected", 0) == 0, reasons  # nothing let in as announced
    print("ok: statistics: %d dropped, all as default_deny (the data connections' SYNs); "
          "rule hits %s" % (reasons["default_deny"], rules))
else:
    # The last dataplane was started by the kill during the upload: it saw
    # no control connection open, so the announcement it read and the data
    # connection it let in came from a recovered FTP session.
    ftp = s["ftp"]
    assert rules.get("ftp-control", 0) == 0, rules
    assert ftp["announcements"] >= 1 and ftp["expectations_opened"] >= 1, ftp
    assert reasons.get("expected", 0) >= 1, reasons
    print("ok: statistics of the last dataplane: %d announcement(s) read and %d data "
          "connection(s) let in by a recovered FTP session" %
          (ftp["announcements"], reasons["expected"]))
EOF
