# Shared by the live tests (sourced): two hosts on one /24 joined through
# holdfast on net_af_packet, a bump in the wire.
#
#   ns in (10.9.0.1) --veth-- [ns fw: holdfast] --veth-- ns out (10.9.0.2)
#
# The caller sets HOLDFAST (and CKPTD and HOLDFASTCTL for start_supervised)
# and optionally WORKERS, then calls netns_setup; netns_cleanup runs on EXIT
# and removes every namespace, interface, process and file made here, also
# on failure.

ID=$$
NS_IN=hf-in-$ID
NS_OUT=hf-out-$ID
NS_FW=hf-fw-$ID
WORK=$(mktemp -d /tmp/hf-live-XXXXXX)
WORKERS=${WORKERS:-1}
CLEANUP_EXTRA=()

netns_cleanup() {
  set +e
  for cmd in "${CLEANUP_EXTRA[@]}"; do eval "$cmd"; done
  for ns in "$NS_IN" "$NS_OUT" "$NS_FW"; do
    # Kill whatever still runs in the namespace, then remove it (and its veths).
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$WORK" "/var/run/dpdk/hf-live-$ID"
}
trap netns_cleanup EXIT

fail() {
  echo "FAIL: $*"
  for f in "$WORK"/*.log; do
    [ -f "$f" ] && { echo "--- $(basename "$f")"; tail -n 40 "$f"; }
  done
  exit 1
}

netns_setup() {
  for ns in "$NS_IN" "$NS_OUT" "$NS_FW"; do ip netns add "$ns"; done
  ip link add hfi$ID netns "$NS_IN" type veth peer name fwi$ID netns "$NS_FW"
  ip link add hfo$ID netns "$NS_OUT" type veth peer name fwo$ID netns "$NS_FW"
  ip -n "$NS_IN" addr add 10.9.0.1/24 dev hfi$ID
  ip -n "$NS_OUT" addr add 10.9.0.2/24 dev hfo$ID
  local spec
  for spec in "$NS_IN hfi$ID" "$NS_OUT hfo$ID" "$NS_FW fwi$ID" "$NS_FW fwo$ID"; do
    set -- $spec
    ip -n "$1" link set "$2" up
    # veth leaves TCP/UDP checksums to "hardware" that does not exist once a
    # frame crosses a userspace bridge; have the kernel fill them in.
    ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
  done
  ip -n "$NS_IN" link set lo up
  ip -n "$NS_OUT" link set lo up

  netns_config '[{"name": "inside-out", "side": "inside", "action": "allow"}]'
}

# Writes the configuration holdfast_command points at: the port pair, the
# given rules (a JSON list), default deny, and optionally more top-level
# members (JSON, without the braces: '"modules": {...}'). netns_setup writes
# the default, inside may open anything; a test may call this again after it.
netns_config() {
  local rules=$1 extra=${2:-}
  cat >"$WORK/config.json" <<EOF
{
  "ports": [{"inside": "net_af_packet0", "outside": "net_af_packet1"}],
  "inside_networks": ["10.9.0.1/32"],
  "rules": $rules,
  "default": "deny"${extra:+,
  $extra}
}
EOF
}

# The holdfast command line for this namespace setup: EAL options, then
# "--" and the application options (the caller may add more). With
# TELEMETRY=1 the dataplane serves its telemetry socket (holdfastctl
# --file-prefix hf-live-$ID); otherwise it runs without one.
holdfast_command() {
  local lcores="0@0" w
  if [ "$WORKERS" -gt 1 ]; then
    # Main lcore plus WORKERS worker lcores, spread over the CPUs there are.
    for w in $(seq 1 "$WORKERS"); do lcores="$lcores,$w@$((w % $(nproc)))"; done
  fi
  local telemetry="--no-telemetry"
  [ "${TELEMETRY:-0}" = 1 ] && telemetry=""
  echo "$HOLDFAST --no-huge --no-pci -m 512 --lcores $lcores --no-shconf $telemetry" \
    "--file-prefix hf-live-$ID" \
    "--vdev net_af_packet0,iface=fwi$ID,qpairs=$WORKERS" \
    "--vdev net_af_packet1,iface=fwo$ID,qpairs=$WORKERS" \
    "-- --config $WORK/config.json"
}

# start_supervised NAME: holdfast-ckptd ($CKPTD) on the store
# /dev/shm/hf-live-NAME-$ID.store, then the dataplane in the firewall
# namespace under `holdfastctl supervise` ($HOLDFASTCTL), checkpointing into
# it, its statistics to $WORK/stats.json and its log to $WORK/holdfast.log;
# waits until it forwards. Sets STORE, CKPTD_PID and SUPERVISOR; the exit
# stops both and removes the store.
start_supervised() {
  local _
  STORE=/dev/shm/hf-live-$1-$ID.store
  CLEANUP_EXTRA+=("rm -f $STORE")
  "$CKPTD" --socket "$WORK/ckptd.sock" --store "$STORE" --size-mb 128 >"$WORK/ckptd.log" 2>&1 &
  CKPTD_PID=$!
  CLEANUP_EXTRA+=("kill -TERM $CKPTD_PID 2>/dev/null; wait $CKPTD_PID 2>/dev/null")
  for _ in $(seq 100); do [ -S "$WORK/ckptd.sock" ] && break; sleep 0.05; done
  [ -S "$WORK/ckptd.sock" ] || fail "holdfast-ckptd did not start"
  ip netns exec "$NS_FW" "$HOLDFASTCTL" supervise -- $(holdfast_command) \
    --ckpt "$WORK/ckptd.sock" >"$WORK/stats.json" 2>"$WORK/holdfast.log" &
  SUPERVISOR=$!
  CLEANUP_EXTRA+=("kill -TERM $SUPERVISOR 2>/dev/null; wait $SUPERVISOR 2>/dev/null")
  wait_forwarding "$WORK/holdfast.log"
}

# Waits until LOG says the dataplane forwards (the n-th time, default 1).
wait_forwarding() {
  local log=$1 times=${2:-1} n _
  for _ in $(seq 200); do
    n=$(grep -c "forwarding with" "$log" 2>/dev/null) || true  # no log yet: nothing
    [ "${n:-0}" -ge "$times" ] && return 0
    sleep 0.05
  done
  fail "holdfast did not start forwarding"
}

# Starts an HTTP server in a namespace, serving a directory, and waits for it.
http_server() {
  local ns=$1 addr=$2 port=$3 dir=$4 _
  ip netns exec "$ns" /usr/bin/python3 -m http.server "$port" --bind "$addr" \
    --directory "$dir" >/dev/null 2>&1 &
  for _ in $(seq 100); do
    ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "HTTP server on $addr:$port did not start"
}
