#!/bin/sh
# `vkdiff bench model` on the shipped model: the report, and --append FILE adding one row
# (under a header, the first time) that names the commit; a path that cannot be written
# fails before anything runs.
vkdiff=$1
rows=$2
rm -f "$rows"
out=$("$vkdiff" bench model --repeat 1 --append "$rows" 2>&1)
rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "FAIL: exit $rc"; exit 1; }
echo "$out" | grep -q "UNet batch 2 (guidance)" || { echo "FAIL: no per-stage table"; exit 1; }
cat "$rows"
[ "$(grep -c '^| date |' "$rows")" -eq 1 ] || { echo "FAIL: header not written once"; exit 1; }
[ "$(grep -c '^| 20' "$rows")" -eq 1 ] || { echo "FAIL: not one row"; exit 1; }
# 13 cells: date device driver precision size commit text b1 b2 rate vae dispatches peak
cells=$(grep '^| 20' "$rows" | awk -F'|' '{print NF - 2}')
[ "$cells" -eq 13 ] || { echo "FAIL: $cells cells, expected 13"; exit 1; }
rev=$(grep '^| 20' "$rows" | awk -F'|' '{gsub(/ /, "", $7); print $7}')
[ -n "$rev" ] && [ "$rev" != "unknown" ] || { echo "FAIL: no commit in the row ($rev)"; exit 1; }
out=$("$vkdiff" bench model --repeat 1 --append /nonexistent/dir/rows.md 2>&1)
rc=$?
[ $rc -eq 2 ] || { echo "FAIL: an unwritable --append exits $rc, not 2"; exit 1; }
echo "$out" | grep -q "cannot append" || { echo "FAIL: no message for an unwritable --append"; exit 1; }
echo "bench model: table, one appended row naming $rev, unwritable path refused: ok"
