#!/bin/bash
# The files an operator installs (docs/operations.md): both systemd units
# pass `systemd-analyze verify` without a word once their /usr/local/bin
# paths name this build's binaries, they agree with the example
# configuration on the checkpoint socket and token, the dataplane's unit
# recovers on every start, and the example configuration is one holdfast
# accepts.
#
# usage: service_test.sh HOLDFAST HOLDFASTCTL HOLDFAST_CKPTD CKPTD_UNIT HOLDFAST_UNIT EXAMPLE_JSON
set -euo pipefail
if [ $# -ne 6 ]; then
  echo "usage: $0 HOLDFAST HOLDFASTCTL HOLDFAST_CKPTD CKPTD_UNIT HOLDFAST_UNIT EXAMPLE_JSON" >&2
  exit 2
fi
holdfast=$(readlink -f "$1")
holdfastctl=$(readlink -f "$2")
ckptd=$(readlink -f "$3")
ckptd_unit=$4
holdfast_unit=$5
example=$6

if ! command -v systemd-analyze >/dev/null; then
  echo "FAIL: systemd-analyze is missing: it comes with Debian's systemd package" \
    "(apt-get install systemd), which ./run's PACKAGES should list"
  exit 1
fi

work=$(mktemp -d /tmp/hf-units-XXXXXX)
trap 'rm -rf "$work"' EXIT
rc=0
fail() {
  echo "FAIL: $*"
  rc=1
}

# 1. systemd-analyze verify, on copies that run the binaries of this build
# (it checks that every Exec command exists and is executable). It reports
# unknown keys and bad values as warnings with status 0: any output fails.
for unit in "$ckptd_unit" "$holdfast_unit"; do
  sed -e "s|/usr/local/bin/holdfast-ckptd|$ckptd|g" \
    -e "s|/usr/local/bin/holdfastctl|$holdfastctl|g" \
    -e "s|/usr/local/bin/holdfast\([[:space:]]\)|$holdfast\1|g" \
    "$unit" >"$work/$(basename "$unit")"
  if grep -n /usr/local/bin "$work/$(basename "$unit")"; then
    fail "$(basename "$unit") names a program this test does not know"
  fi
done
out=$(systemd-analyze verify "$work/holdfast-ckptd.service" "$work/holdfast.service" 2>&1) ||
  fail "systemd-analyze verify failed"
if [ -n "$out" ]; then
  echo "$out"
  fail "systemd-analyze verify has something to say about the units"
else
  echo "ok: systemd-analyze verify accepts both units"
fi

# 2. The units and the example configuration fit together.
exec_of() { sed -n "s/^$2=//p" "$1"; }
ckptd_cmd=$(exec_of "$ckptd_unit" ExecStart)
holdfast_cmd=$(exec_of "$holdfast_unit" ExecStart)
option() { sed -n "s/.* $1 \([^ ]*\).*/\1/p" <<<"$2"; }
socket=$(option --socket "$ckptd_cmd")
token=$(option --token-file "$ckptd_cmd")
config=$(option --config "$holdfast_cmd")
read -r example_socket example_token < <(python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["checkpoint"]
print(c["socket"], c["token_file"])' "$example")
[ "$socket" = "$example_socket" ] ||
  fail "holdfast-ckptd listens on \"$socket\", the example configuration's checkpoint.socket is \"$example_socket\""
[ "$token" = "$example_token" ] ||
  fail "holdfast-ckptd reads its token from \"$token\", the example's checkpoint.token_file is \"$example_token\""
[ "$(dirname "$socket")" = "/run/$(exec_of "$ckptd_unit" RuntimeDirectory)" ] ||
  fail "the socket $socket is not in the unit's RuntimeDirectory"
case "$holdfast_cmd" in
  /usr/local/bin/holdfastctl\ supervise\ --\ /usr/local/bin/holdfast\ *) ;;
  *) fail "holdfast.service does not run the dataplane under holdfastctl supervise: $holdfast_cmd" ;;
esac
grep -qw -- --recover <<<"$holdfast_cmd" ||
  fail "holdfast.service does not recover on every start: $holdfast_cmd"
[ "$config" = /etc/holdfast/holdfast.json ] || fail "holdfast.service reads \"$config\""
[ $rc -eq 0 ] && echo "ok: the units and the example configuration agree on socket, token and --recover"

# 3. The example configuration loads.
if "$holdfast" -- --check --config "$example"; then
  echo "ok: holdfast accepts the example configuration"
else
  fail "holdfast refuses the example configuration $example"
fi
exit $rc
