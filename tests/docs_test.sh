#!/bin/bash
# Every verdict reason in dataplane/verdict.h is documented in
# docs/dataplane.md, and nothing documented there is a reason that no longer
# exists; the complete example of docs/config.md loads.
#
# usage: docs_test.sh HOLDFAST
set -euo pipefail
root=$(dirname "$(readlink -f "$0")")/..
holdfast=$(readlink -f "$1")
reasons=$(grep -oE 'X\([a-z0-9_]+, (true|false)\)' "$root/dataplane/verdict.h" | sed -E 's/X\(([a-z0-9_]+),.*/\1/')
[ -n "$reasons" ] || { echo "FAIL: no reasons found in verdict.h"; exit 1; }
rc=0
for r in $reasons; do
  grep -q "\`$r\`" "$root/docs/dataplane.md" || { echo "FAIL: reason $r is not documented in docs/dataplane.md"; rc=1; }
done
documented=$(sed -n '/^## Verdict reasons/,$p' "$root/docs/dataplane.md" | grep -oE '^\| `[a-z0-9_]+`(, `[a-z0-9_]+`)*' | grep -oE '[a-z0-9_]+')
for d in $documented; do
  grep -qx "$d" <<<"$reasons" || { echo "FAIL: docs/dataplane.md documents $d, which verdict.h does not have"; rc=1; }
done
[ $rc -eq 0 ] && echo "ok: $(echo "$reasons" | wc -l) reasons documented"

# The complete configuration example must be a file holdfast accepts.
example=$(mktemp /tmp/hf-docs-XXXXXX.json)
trap 'rm -f "$example"' EXIT
sed -n '/^## Complete example/,/^```$/p' "$root/docs/config.md" | sed '1,/^```json$/d;/^```$/,$d' >"$example"
if "$holdfast" -- --config "$example" --check; then
  echo "ok: the complete example of docs/config.md loads"
else
  echo "FAIL: the complete example of docs/config.md does not load"
  rc=1
fi
exit $rc
