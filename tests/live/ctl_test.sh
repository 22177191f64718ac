#!/bin/bash
# holdfastctl against a running dataplane (net_af_packet, two workers, under
# supervision, checkpointing into holdfast-ckptd; tests/live/netns.sh),
# checking what it prints against the traffic the test sent:
#   - a rate-limited 64 MiB HTTP download from inside (a minute at 1 MiB/s,
#     so it is still running at the last reload however slow the steps
#     before it are), 5 pings, 3 UDP datagrams from outside that no rule
#     allows;
#   - stats: workers, the pings' and datagrams' counts, ports, rule hits;
#   - conns with filters, conns show (the TCP slice), rules show;
#   - rules reload of a bad file: refused with the JSON path, old rules stay;
#   - metrics: parses as Prometheus text, holds the same numbers;
#   - ckpt status: the store holds the live connections;
#   - crash --signal SEGV --after-packets: the supervisor restarts the
#     dataplane with --recover and the download goes on, same connection ID;
#   - rules reload of rules that deny the download: it is closed and stalls.
#
# usage: ctl_test.sh HOLDFAST HOLDFASTCTL CKPTD PROM_CHECK
set -euo pipefail

HOLDFAST=$(realpath "$1")
HOLDFASTCTL=$(realpath "$2")
CKPTD=$(realpath "$3")
PROM_CHECK=$(realpath "$4")
export WORKERS=2 TELEMETRY=1
source "$(dirname "$0")/netns.sh"
netns_setup
# No IPv6 chatter (MLD, router solicitations): the drop counts below are exact.
for ns in "$NS_IN" "$NS_OUT" "$NS_FW"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
netns_config '[{"name": "inside-out", "side": "inside", "action": "allow"}]'
start_supervised ctl

# (conns with --ckpt would read the store instead of asking the dataplane)
ctl() { "$HOLDFASTCTL" "$@" --file-prefix "hf-live-$ID"; }
ctlc() { ctl "$@" --ckpt "$WORK/ckptd.sock"; }
# jget FILE PYTHON-EXPRESSION-ON-j: prints the value.
jget() { /usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

ctlc stats --json >"$WORK/before.json" || fail "stats before traffic"
[ "$(jget "$WORK/before.json" 'j["info"]["workers"]')" = 2 ] || fail "stats: workers != 2"
[ "$(jget "$WORK/before.json" 'j["info"]["ckpt"]')" = connected ] || fail "stats: not checkpointing"

# Traffic. The download runs at 1 MiB/s, longer than everything below.
mkdir -p "$WORK/www"
head -c $((64 * 1024 * 1024)) /dev/urandom >"$WORK/www/big"
http_server "$NS_OUT" 10.9.0.2 8080 "$WORK/www"
ip netns exec "$NS_IN" curl -s --limit-rate 1M --speed-limit 1 --speed-time 6 \
  -o "$WORK/big" http://10.9.0.2:8080/big 2>"$WORK/curl.log" &
CURL=$!
CLEANUP_EXTRA+=("kill $CURL 2>/dev/null")
ip netns exec "$NS_IN" ping -c 5 -i 0.2 -q 10.9.0.2 >/dev/null || fail "ping through holdfast"
ip netns exec "$NS_OUT" /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3): s.sendto(b"x", ("10.9.0.1", 9999))'
sleep 2

# stats: the numbers of the traffic above.
ctlc stats --json >"$WORK/stats1.json" || fail "stats"
denied=$(jget "$WORK/stats1.json" \
  'j["stats"]["drop_reasons"]["default_deny"]')
denied0=$(jget "$WORK/before.json" 'j["stats"]["drop_reasons"]["default_deny"]')
[ $((denied - denied0)) -eq 3 ] ||
  fail "stats: default_deny grew by $((denied - denied0)), sent 3: $(cat "$WORK/before.json" "$WORK/stats1.json")"
[ "$(jget "$WORK/stats1.json" 'j["rules"][0]["name"]')" = inside-out ] || fail "stats: rules"
hits=$(jget "$WORK/stats1.json" 'j["rules"][0]["hits"]')
[ "$hits" -ge 2 ] || fail "stats: inside-out hits $hits, want >= 2 (download, ping)"
rx=$(jget "$WORK/stats1.json" 'sum(p["rx_packets"] for p in j["ports"].values())')
wrx=$(jget "$WORK/stats1.json" 'sum(w["rx"] for w in j["workers"].values())')
[ "$rx" -ge 13 ] || fail "stats: ports received $rx packets"
[ "$wrx" -le "$rx" ] || fail "stats: workers received $wrx > ports $rx"
ctlc stats >"$WORK/stats1.txt" || fail "stats (table)"
grep -q "default_deny" "$WORK/stats1.txt" || fail "stats table lacks default_deny"
grep -q "Store: " "$WORK/stats1.txt" || fail "stats table lacks the store"

# conns: the ping (5 echo requests, 5 replies) and the download.
ctl conns proto icmp --json >"$WORK/icmp.json" || fail "conns proto icmp"
[ "$(jget "$WORK/icmp.json" 'len(j["connections"])')" = 1 ] || fail "conns proto icmp: not one"
[ "$(jget "$WORK/icmp.json" \
  'j["connections"][0]["packets_original"], j["connections"][0]["packets_reply"]')" = "5 5" ] ||
  fail "conns: the ping's packets are not 5 and 5: $(cat "$WORK/icmp.json")"
ctl conns addr 10.9.0.2/32 port 8080 --json >"$WORK/web.json" || fail "conns addr port"
[ "$(jget "$WORK/web.json" 'len(j["connections"])')" = 1 ] || fail "conns addr port: not one"
WEB=$(jget "$WORK/web.json" 'j["connections"][0]["id"]')
[ "$(jget "$WORK/web.json" 'j["connections"][0]["state"]')" = ESTABLISHED ] ||
  fail "conns: download not ESTABLISHED"
ctl conns state ESTABLISHED proto tcp | grep -q "10.9.0.2:8080" || fail "conns table: download"
[ "$(ctl conns module ftp --json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["connections"]))')" = 0 ] ||
  fail "conns module ftp lists connections"
ctl conns show "$WEB" --json >"$WORK/show.json" || fail "conns show"
[ "$(jget "$WORK/show.json" 'j["tcp"]["state"]')" = ESTABLISHED ] || fail "conns show: tcp state"
[ "$(jget "$WORK/show.json" 'j["tcp"]["reply"]["end"] > 0')" = True ] || fail "conns show: window"
ctl conns show "$WEB" | grep -q "maxwin" || fail "conns show table"
if ctl conns show 12345 2>"$WORK/err.txt"; then fail "conns show of no connection succeeded"; fi
grep -q "no connection 12345" "$WORK/err.txt" || fail "conns show: $(cat "$WORK/err.txt")"

# rules show, and a reload of a bad file.
ctl rules show | grep -q "inside-out" || fail "rules show"
sed 's/"action": "allow"/"action": "allow", "dst_ports": ["99999"]/' "$WORK/config.json" \
  >"$WORK/bad.json"
if ctl rules reload "$WORK/bad.json" 2>"$WORK/err.txt"; then fail "a bad file was reloaded"; fi
grep -q "/rules/0/dst_ports/0" "$WORK/err.txt" || fail "bad reload: no JSON path: $(cat "$WORK/err.txt")"
ctl rules show --json | grep -q '"dst_ports": "any"' || fail "bad reload changed the rules"

# metrics: Prometheus text with the same numbers.
ctlc metrics >"$WORK/metrics.txt" || fail "metrics"
/usr/bin/python3 "$PROM_CHECK" <"$WORK/metrics.txt" 'holdfast_up==1' 'holdfast_ckptd_up==1' \
  "holdfast_verdicts_total{reason=\"default_deny\",verdict=\"drop\"}>=$denied" ||
  fail "metrics do not parse or hold the numbers"

# ckpt status: the store holds the live connections.
ctlc ckpt status --json >"$WORK/ckpt.json" || fail "ckpt status"
[ "$(jget "$WORK/ckpt.json" \
  '[a for a in j["apps"] if a["app"] == "holdfast"][0]["committed"]["connections"] >= 2')" = True ] ||
  fail "ckpt status: the store does not hold the connections"

# crash: SEGV after a few more packets, the supervisor recovers, the download
# goes on as the same connection.
size_before=$(stat -c %s "$WORK/big")
ctl crash --signal SEGV --after-packets 50 | grep -q "will crash" || fail "crash"
wait_forwarding "$WORK/holdfast.log" 2
grep -q "restarting" "$WORK/holdfast.log" ||
  grep -q -- "--recover" "$WORK/holdfast.log" || fail "no restart with --recover"
sleep 2
ctlc stats --json >"$WORK/stats2.json" || fail "stats after the crash"
[ "$(jget "$WORK/stats2.json" 'j["info"]["recovered"]')" = 1 ] || fail "not recovered"
ctl conns id "$WEB" --json >"$WORK/web2.json" || fail "conns id after the crash"
[ "$(jget "$WORK/web2.json" 'len(j["connections"])')" = 1 ] ||
  fail "the download's connection did not survive the crash"
size_after=$(stat -c %s "$WORK/big")
[ "$size_after" -gt "$size_before" ] || fail "the download did not go on after the crash"

# A reload that denies the download closes it.
netns_config '[{"name": "no-web", "protocol": "tcp", "dst_ports": ["8080"], "action": "deny"},
               {"name": "inside-out", "side": "inside", "action": "allow"}]'
ctl rules reload "$WORK/config.json" >"$WORK/reload.txt" || fail "reload"
grep -q ", 1 closed" "$WORK/reload.txt" || fail "reload did not close the download: $(cat "$WORK/reload.txt")"
[ "$(ctl conns id "$WEB" --json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["connections"]))')" = 0 ] ||
  fail "the denied connection is still listed"
if wait "$CURL"; then fail "the download completed although its connection was closed"; fi
[ "$(stat -c %s "$WORK/big")" -lt $((64 * 1024 * 1024)) ] || fail "the download completed"
ctlc stats --json >"$WORK/stats3.json" || fail "stats after the reload"
[ "$(jget "$WORK/stats3.json" 'j["stats"]["totals"]["reload_closed"]')" -ge 1 ] ||
  fail "stats: reload_closed"
echo "PASS: stats, conns, rules, reload, metrics, ckpt status and crash recovery as sent"
