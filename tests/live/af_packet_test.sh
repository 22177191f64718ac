#!/bin/bash
# Live test: two network namespaces joined through holdfast on net_af_packet
# over veth pairs (tests/live/netns.sh). A real TCP transfer from inside
# (curl fetching a file from a Python HTTP server outside) must arrive
# intact; a connection from outside to a server inside must be blocked;
# holdfast's final statistics must show both.
#
# With WORKERS=2 it runs two workers (on two lcores sharing the CPUs) and two
# AF_PACKET queue pairs, so packets the kernel's fanout gives the wrong
# worker cross the handoff rings.
#
# usage: [WORKERS=N] af_packet_test.sh HOLDFAST
set -euo pipefail

HOLDFAST=$(realpath "$1")
source "$(dirname "$0")/netns.sh"
netns_setup

ip netns exec "$NS_FW" $(holdfast_command) >"$WORK/stats.json" 2>"$WORK/holdfast.log" &
HF_PID=$!
CLEANUP_EXTRA+=("kill -INT $HF_PID 2>/dev/null; wait $HF_PID 2>/dev/null")
wait_forwarding "$WORK/holdfast.log"

# Servers: outside serves a 4 MiB file, inside serves its own directory.
mkdir -p "$WORK/out-www" "$WORK/in-www"
head -c 4194304 /dev/urandom >"$WORK/out-www/blob"
echo "inside secret" >"$WORK/in-www/secret"
http_server "$NS_OUT" 10.9.0.2 8080 "$WORK/out-www"
http_server "$NS_IN" 10.9.0.1 8081 "$WORK/in-www"

# 1. Inside -> outside: allowed, the file must arrive intact.
ip netns exec "$NS_IN" curl -sS --max-time 60 -o "$WORK/blob" http://10.9.0.2:8080/blob ||
  fail "download from inside through holdfast failed"
[ "$(sha256sum <"$WORK/out-www/blob")" = "$(sha256sum <"$WORK/blob")" ] ||
  fail "downloaded file differs from the original"
echo "ok: 4 MiB downloaded from inside through holdfast, checksum matches"

# 2. Outside -> inside: no rule allows it, so the SYN must be dropped.
if ip netns exec "$NS_OUT" curl -sS --max-time 3 -o /dev/null http://10.9.0.1:8081/secret \
  2>/dev/null; then
  fail "an unsolicited connection from outside got through"
fi
echo "ok: connection from outside blocked"

kill -INT "$HF_PID"
wait "$HF_PID" || fail "holdfast exited with an error"
/usr/bin/python3 - "$WORK/stats.json" "$WORKERS" <<'EOF' || fail "final statistics are not as expected"
import json, sys
stats = json.load(open(sys.argv[1]))
assert len(stats["workers"]) == int(sys.argv[2]), stats["workers"]
s = stats["pipeline"]
reasons = s["reasons"]
assert s["connections"]["opened"]["tcp"] >= 1, s["connections"]
assert reasons.get("established", 0) > 1000, reasons   # the 4 MiB transfer
assert reasons.get("default_deny", 0) >= 1, reasons     # the SYN(s) from outside
assert reasons.get("arp", 0) >= 2, reasons              # neighbours resolved through it
rules = {r["name"]: r["hits"] for r in s["rules"]}
assert rules["inside-out"] >= 1 and rules["default"] >= 1, rules
handoffs = sum(w["handoff_in"] for w in stats["workers"])
assert handoffs == sum(w["handoff_out"] for w in stats["workers"]), stats["workers"]
assert sum(w["handoff_full"] for w in stats["workers"]) == 0, stats["workers"]
print("ok: statistics: %d established, %d default_deny, %d arp, %d handed off between workers" %
      (reasons["established"], reasons["default_deny"], reasons["arp"], handoffs))
EOF
