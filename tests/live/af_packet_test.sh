#!/bin/bash
# Live test: two network namespaces joined through holdfast on net_af_packet
# over veth pairs, a bump in the wire on one /24.
#
#   ns in (10.9.0.1) --veth-- [ns fw: holdfast] --veth-- ns out (10.9.0.2)
#
# A real TCP transfer from inside (curl fetching a file from a Python HTTP
# server outside) must arrive intact; a connection from outside to a server
# inside must be blocked; holdfast's final statistics must show both.
#
# With WORKERS=2 it runs two workers (on two lcores sharing the CPUs) and two
# AF_PACKET queue pairs, so packets the kernel's fanout gives the wrong
# worker cross the handoff rings.
#
# usage: [WORKERS=N] af_packet_test.sh HOLDFAST
set -euo pipefail

HOLDFAST=$(realpath "$1")
WORKERS=${WORKERS:-1}
ID=$$
NS_IN=hf-in-$ID
NS_OUT=hf-out-$ID
NS_FW=hf-fw-$ID
WORK=$(mktemp -d /tmp/hf-live-XXXXXX)
HF_PID=""

cleanup() {
  set +e
  [ -n "$HF_PID" ] && kill -INT "$HF_PID" 2>/dev/null && wait "$HF_PID" 2>/dev/null
  for ns in "$NS_IN" "$NS_OUT" "$NS_FW"; do
    # Kill whatever still runs in the namespace, then remove it (and its veths).
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$WORK" "/var/run/dpdk/hf-live-$ID"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  [ -f "$WORK/holdfast.err" ] && { echo "--- holdfast stderr"; cat "$WORK/holdfast.err"; }
  exit 1
}

for ns in "$NS_IN" "$NS_OUT" "$NS_FW"; do ip netns add "$ns"; done
ip link add hfi$ID netns "$NS_IN" type veth peer name fwi$ID netns "$NS_FW"
ip link add hfo$ID netns "$NS_OUT" type veth peer name fwo$ID netns "$NS_FW"
ip -n "$NS_IN" addr add 10.9.0.1/24 dev hfi$ID
ip -n "$NS_OUT" addr add 10.9.0.2/24 dev hfo$ID
for spec in "$NS_IN hfi$ID" "$NS_OUT hfo$ID" "$NS_FW fwi$ID" "$NS_FW fwo$ID"; do
  set -- $spec
  ip -n "$1" link set "$2" up
  # veth leaves TCP/UDP checksums to "hardware" that does not exist once a
  # frame crosses a userspace bridge; have the kernel fill them in.
  ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
done
ip -n "$NS_IN" link set lo up
ip -n "$NS_OUT" link set lo up

cat >"$WORK/config.json" <<EOF
{
  "ports": [{"inside": "net_af_packet0", "outside": "net_af_packet1"}],
  "inside_networks": ["10.9.0.1/32"],
  "rules": [{"name": "inside-out", "side": "inside", "action": "allow"}],
  "default": "deny"
}
EOF

if [ "$WORKERS" -eq 1 ]; then
  LCORES="0@0"
else
  # Main lcore plus WORKERS worker lcores, spread over the CPUs there are.
  LCORES="0@0"
  for w in $(seq 1 "$WORKERS"); do LCORES="$LCORES,$w@$((w % $(nproc)))"; done
fi
ip netns exec "$NS_FW" "$HOLDFAST" --no-huge --no-pci -m 512 --lcores "$LCORES" --no-shconf \
  --no-telemetry --file-prefix "hf-live-$ID" \
  --vdev "net_af_packet0,iface=fwi$ID,qpairs=$WORKERS" \
  --vdev "net_af_packet1,iface=fwo$ID,qpairs=$WORKERS" \
  -- --config "$WORK/config.json" >"$WORK/stats.json" 2>"$WORK/holdfast.err" &
HF_PID=$!
for _ in $(seq 100); do
  grep -q "forwarding with" "$WORK/holdfast.err" 2>/dev/null && break
  kill -0 "$HF_PID" 2>/dev/null || fail "holdfast exited during start"
  sleep 0.1
done
grep -q "forwarding with" "$WORK/holdfast.err" || fail "holdfast did not start forwarding"

# Servers: outside serves a 4 MiB file, inside serves its own directory.
mkdir -p "$WORK/out-www" "$WORK/in-www"
head -c 4194304 /dev/urandom >"$WORK/out-www/blob"
echo "inside secret" >"$WORK/in-www/secret"
ip netns exec "$NS_OUT" /usr/bin/python3 -m http.server 8080 --bind 10.9.0.2 \
  --directory "$WORK/out-www" >/dev/null 2>&1 &
ip netns exec "$NS_IN" /usr/bin/python3 -m http.server 8081 --bind 10.9.0.1 \
  --directory "$WORK/in-www" >/dev/null 2>&1 &
for _ in $(seq 50); do
  ip netns exec "$NS_OUT" bash -c 'exec 3<>/dev/tcp/10.9.0.2/8080' 2>/dev/null && break
  sleep 0.1
done

# 1. Inside -> outside: allowed, the file must arrive intact.
ip netns exec "$NS_IN" curl -sS --max-time 60 -o "$WORK/blob" http://10.9.0.2:8080/blob ||
  fail "download from inside through holdfast failed"
want=$(sha256sum <"$WORK/out-www/blob")
got=$(sha256sum <"$WORK/blob")
[ "$want" = "$got" ] || fail "downloaded file differs from the original"
echo "ok: 4 MiB downloaded from inside through holdfast, checksum matches"

# 2. Outside -> inside: no rule allows it, so the SYN must be dropped.
if ip netns exec "$NS_OUT" curl -sS --max-time 3 -o /dev/null http://10.9.0.1:8081/secret \
  2>/dev/null; then
  fail "an unsolicited connection from outside got through"
fi
echo "ok: connection from outside blocked"

kill -INT "$HF_PID"
wait "$HF_PID" || fail "holdfast exited with an error"
HF_PID=""
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
