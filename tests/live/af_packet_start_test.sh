#!/bin/bash
# Live test of the dataplane's start on net_af_packet: only the outside host
# sends (UDP to the inside host, as fast as it can) while holdfast is
# started and stopped several times. The driver opens each port's socket
# for every interface and binds it to its own only afterwards, so frames of
# the outside interface wait in the inside port's ring; judged as arriving
# from inside, the outside host's datagram would be allowed by the inside
# rule and set up a connection opened from the wrong side, whose real
# traffic then drops as side_mismatch. holdfast discards what waits in its
# rings once the ports are up (dataplane/ports.h): every start must judge
# the outside's datagrams as what they are, default_deny, and nothing else.
# Without the discard about every second start fails.
#
# usage: af_packet_start_test.sh HOLDFAST
set -euo pipefail

HOLDFAST=$(realpath "$1")
STARTS=5
source "$(dirname "$0")/netns.sh"
netns_setup

# The outside sends without waiting for ARP through a firewall that is not
# up yet: the inside host's address is resolved by hand.
mac=$(ip netns exec "$NS_IN" cat /sys/class/net/hfi$ID/address)
ip -n "$NS_OUT" neigh add 10.9.0.1 lladdr "$mac" dev hfo$ID
ip netns exec "$NS_OUT" /usr/bin/python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + 60
while time.time() < end:
    try:
        s.sendto(b"from outside", ("10.9.0.1", 9999))
    except OSError:
        pass
' &
disown  # netns_cleanup kills it with the namespace

for i in $(seq "$STARTS"); do
  ip netns exec "$NS_FW" $(holdfast_command) >"$WORK/stats$i.json" 2>"$WORK/holdfast$i.log" &
  pid=$!
  CLEANUP_EXTRA+=("kill -TERM $pid 2>/dev/null")
  wait_forwarding "$WORK/holdfast$i.log"
  sleep 0.3
  kill -TERM "$pid"
  wait "$pid" || fail "holdfast did not stop cleanly (start $i)"
  /usr/bin/python3 - "$WORK/stats$i.json" "$i" "$WORK/holdfast$i.log" <<'PY' ||
import json, re, sys
stats = json.load(open(sys.argv[1]))
reasons = stats["pipeline"]["reasons"]
log = open(sys.argv[3]).read()
stale = re.search(r"discarded (\d+) frames", log)
# The outside's datagrams: default_deny and nothing else (the hosts' own
# IPv6 neighbour and multicast chatter aside).
wrong = {r: n for r, n in reasons.items()
         if r not in ("default_deny", "ipv6_nd", "untracked")}
assert reasons.get("default_deny", 0) > 0, reasons
assert not wrong, "start %s judged frames as %s" % (sys.argv[2], wrong)
print("ok: start %s: %d datagrams from outside, all default_deny; %s frames discarded at start" %
      (sys.argv[2], reasons["default_deny"], stale.group(1) if stale else "no"))
PY
    fail "start $i: frames of the outside port were judged as the inside's"
done
