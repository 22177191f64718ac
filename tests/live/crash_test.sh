#!/bin/bash
# Live crash test: a 40 MiB HTTP download from inside to outside through
# holdfast on net_af_packet (tests/live/netns.sh), the dataplane running
# under `holdfastctl supervise` and checkpointing into holdfast-ckptd. In the
# middle of the transfer the dataplane is killed with SIGKILL; the supervisor
# restarts it with --recover, it rebuilds the connection from the store and
# the download completes with the right checksum. The stall (from the kill
# until the download moves again) is measured and printed.
#
# FAULT chooses what fails:
#   dataplane  (default) the dataplane is killed once;
#   ckptd      holdfast-ckptd is killed while the dataplane forwards (which
#              must go on, on its mapped store), restarted (the dataplane
#              must reattach), then the dataplane is killed and must recover
#              what it checkpointed during and after the outage;
#   both       the dataplane and holdfast-ckptd are killed together, then
#              the server restarted: the supervisor's restarts fail until it
#              is back, then one recovers.
# With RECOVER=0 the dataplane does not checkpoint, so the restarted one
# knows nothing of the connection and drops its mid-stream segments: the
# download must then stall and fail, which shows the test can fail.
#
# usage: [RECOVER=0|1] [FAULT=dataplane|ckptd|both] crash_test.sh HOLDFAST HOLDFASTCTL CKPTD
set -euo pipefail

HOLDFAST=$(realpath "$1")
HOLDFASTCTL=$(realpath "$2")
CKPTD=$(realpath "$3")
RECOVER=${RECOVER:-1}
FAULT=${FAULT:-dataplane}
source "$(dirname "$0")/netns.sh"
netns_setup

STORE=/dev/shm/hf-live-crash-$ID.store
CLEANUP_EXTRA+=("rm -f $STORE")
CKPT_ARGS=""
CKPTD_PID=""
start_ckptd() {
  rm -f "$WORK/ckptd.sock"
  "$CKPTD" --socket "$WORK/ckptd.sock" --store "$STORE" --size-mb 128 >>"$WORK/ckptd.log" 2>&1 &
  CKPTD_PID=$!
  for _ in $(seq 100); do [ -S "$WORK/ckptd.sock" ] && return 0; sleep 0.05; done
  fail "holdfast-ckptd did not start"
}
if [ "$RECOVER" = 1 ]; then
  start_ckptd
  CLEANUP_EXTRA+=('kill -TERM $CKPTD_PID 2>/dev/null; wait $CKPTD_PID 2>/dev/null')
  CKPT_ARGS="--ckpt $WORK/ckptd.sock"
fi

ip netns exec "$NS_FW" "$HOLDFASTCTL" supervise -- $(holdfast_command) $CKPT_ARGS \
  >"$WORK/stats.json" 2>"$WORK/holdfast.log" &
SUPERVISOR=$!
CLEANUP_EXTRA+=("kill -TERM $SUPERVISOR 2>/dev/null; wait $SUPERVISOR 2>/dev/null")
wait_forwarding "$WORK/holdfast.log"

# 40 MiB at about 3 MiB/s: over ten seconds of transfer.
mkdir -p "$WORK/www"
head -c $((40 * 1024 * 1024)) /dev/urandom >"$WORK/www/big"
http_server "$NS_OUT" 10.9.0.2 8080 "$WORK/www"
ip netns exec "$NS_IN" curl -sS --limit-rate 3M --speed-limit 1 --speed-time 6 --max-time 90 \
  -o "$WORK/big" http://10.9.0.2:8080/big 2>"$WORK/curl.log" &
CURL=$!

# Progress samples (seconds since epoch, bytes so far) to measure the stall.
(
  while kill -0 "$CURL" 2>/dev/null; do
    echo "$(date +%s.%N) $(stat -c %s "$WORK/big" 2>/dev/null || echo 0)"
    sleep 0.01
  done
) >"$WORK/progress.txt" &
SAMPLER=$!

# Waits until N MiB of the file have crossed.
wait_for_mib() {
  for _ in $(seq 1500); do
    [ "$(stat -c %s "$WORK/big" 2>/dev/null || echo 0)" -gt $(($1 * 1024 * 1024)) ] && return 0
    kill -0 "$CURL" 2>/dev/null || fail "the download ended before $1 MiB"
    sleep 0.02
  done
  fail "the download did not reach $1 MiB"
}
kill_dataplane() {
  DATAPLANE=$(pgrep -P "$SUPERVISOR" | head -1)  # the supervisor's child
  [ -n "$DATAPLANE" ] || fail "cannot find the dataplane process"
  KILLED_AT=$(date +%s.%N)
  kill -KILL "$DATAPLANE"
  echo "killed the dataplane (pid $DATAPLANE) with SIGKILL mid-transfer"
}

case "$FAULT" in
  dataplane)
    wait_for_mib 6
    kill_dataplane
    ;;
  ckptd)
    wait_for_mib 3
    kill -KILL "$CKPTD_PID"
    echo "killed holdfast-ckptd with SIGKILL mid-transfer"
    for _ in $(seq 100); do grep -q "lost holdfast-ckptd" "$WORK/holdfast.log" && break; sleep 0.05; done
    grep -q "lost holdfast-ckptd" "$WORK/holdfast.log" || fail "the dataplane did not notice the outage"
    size=$(stat -c %s "$WORK/big")
    wait_for_mib $((size / 1024 / 1024 + 2))
    echo "ok: forwarding went on without holdfast-ckptd ($size -> $(stat -c %s "$WORK/big") bytes)"
    start_ckptd
    for _ in $(seq 200); do grep -q "reattached" "$WORK/holdfast.log" && break; sleep 0.05; done
    grep -q "reattached" "$WORK/holdfast.log" || fail "the dataplane did not reattach"
    echo "ok: the dataplane reattached to the restarted holdfast-ckptd"
    size=$(stat -c %s "$WORK/big")
    wait_for_mib $((size / 1024 / 1024 + 2))
    kill_dataplane
    ;;
  both)
    wait_for_mib 6
    kill -KILL "$CKPTD_PID"
    kill_dataplane
    echo "killed holdfast-ckptd too"
    # Long enough for the supervisor's first restarts to find no server.
    sleep 1.5
    start_ckptd
    ;;
  *) fail "unknown FAULT $FAULT" ;;
esac

if wait "$CURL"; then DOWNLOAD=ok; else DOWNLOAD=failed; fi
wait "$SAMPLER" 2>/dev/null || true

if [ "$RECOVER" = 0 ]; then
  [ "$DOWNLOAD" = failed ] || fail "without checkpointing the download survived the crash: the \
test cannot tell recovery from luck"
  grep -q "tcp_mid_stream" "$WORK/holdfast.log" ||
    grep -q "restart 1 with --recover" "$WORK/holdfast.log" || fail "the dataplane was not restarted"
  echo "ok: without checkpointing the download died with the dataplane ($(tail -n1 "$WORK/curl.log"))"
  exit 0
fi

[ "$DOWNLOAD" = ok ] || fail "the download did not survive the crash: $(cat "$WORK/curl.log")"
[ "$(sha256sum <"$WORK/www/big")" = "$(sha256sum <"$WORK/big")" ] ||
  fail "the downloaded file differs from the original"
grep -q "restart 1 with --recover" "$WORK/holdfast.log" || fail "the supervisor did not restart"
if [ "$FAULT" = both ]; then
  grep -q "cannot reach holdfast-ckptd" "$WORK/holdfast.log" ||
    echo "note: the supervisor's first restart already found holdfast-ckptd back"
fi
grep -Eq "restored: .*tcp [1-9]" "$WORK/holdfast.log" || fail "no TCP connection was recovered"
# The stall: from the kill until the file grew again.
STALL=$(/usr/bin/python3 - "$WORK/progress.txt" "$KILLED_AT" <<'EOF'
import sys
killed = float(sys.argv[2])
samples = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 2]
at_kill = max((size for t, size in samples if t <= killed), default=0)
resumed = next((t for t, size in samples if t > killed and size > at_kill), None)
print("%.0f" % ((resumed - killed) * 1000) if resumed else "unknown")
EOF
)
RESTART=$(grep -o "first packet forwarded [0-9.]* ms after start" "$WORK/holdfast.log" | tail -n1)
echo "ok: 40 MiB download survived ($FAULT killed), checksum matches"
echo "ok: stall ${STALL} ms from the kill until the download moved again; restarted dataplane: $RESTART"
