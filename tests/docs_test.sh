#!/bin/bash
# Every verdict reason in dataplane/verdict.h is documented in
# docs/dataplane.md, and nothing documented there is a reason that no longer
# exists.
set -euo pipefail
root=$(dirname "$(readlink -f "$0")")/..
reasons=$(grep -oE 'X\([a-z0-9_]+, (true|false)\)' "$root/dataplane/verdict.h" | sed -E 's/X\(([a-z0-9_]+),.*/\1/')
[ -n "$reasons" ] || { echo "FAIL: no reasons found in verdict.h"; exit 1; }
rc=0
for r in $reasons; do
  grep -q "\`$r\`" "$root/docs/dataplane.md" || { echo "FAIL: reason $r is not documented in docs/dataplane.md"; rc=1; }
done
documented=$(sed -n '/^## Verdict reasons/,$p' "$root/docs/dataplane.md" | grep -oE '^\| `[a-z0-9_]+`(, `[a-z0-9_]+`)*' | grep -oE '[a-z0-9_]+')
for d in $documented; do
  echo "$reasons" | grep -qx "$d" || { echo "FAIL: docs/dataplane.md documents $d, which verdict.h does not have"; rc=1; }
done
[ $rc -eq 0 ] && echo "ok: $(echo "$reasons" | wc -l) reasons documented"
exit $rc
