#!/bin/sh
# `vkdiff bench model` on the shipped model: the report, and --append FILE adding one row
# (under a header, the first time) that names the commit it was built from (where the
# source is a git checkout; "unknown" otherwise); a path that cannot be written fails
# before anything runs.
vkdiff=$1
rows=$2
src=$3
rm -f "$rows"
out=$("$vkdiff" bench model --repeat 1 --append "$rows" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 0 ] || { echo "FAIL: exit $rc"; exit 1; }
printf '%s\n' "$out" | grep -q "UNet batch 2 (guidance)" || { echo "FAIL: no per-stage table"; exit 1; }
cat "$rows"
[ "$(grep -c '^| date |' "$rows")" -eq 1 ] || { echo "FAIL: header not written once"; exit 1; }
[ "$(grep -c '^| 20' "$rows")" -eq 1 ] || { echo "FAIL: not one row"; exit 1; }
# 13 cells: date device driver precision size commit text b1 b2 rate vae dispatches peak
cells=$(grep '^| 20' "$rows" | awk -F'|' '{print NF - 2}')
[ "$cells" -eq 13 ] || { echo "FAIL: $cells cells, expected 13"; exit 1; }
rev=$(grep '^| 20' "$rows" | awk -F'|' '{gsub(/ /, "", $7); print $7}')
head=$(git -C "$src" rev-parse --short=7 HEAD 2>/dev/null)
if [ -n "$head" ]; then # built from this checkout: the row names its commit (maybe -dirty)
  case "$rev" in *"$head"*) ;; *) echo "FAIL: the row names $rev, the checkout is at $head"; exit 1 ;; esac
else
  [ "$rev" = "unknown" ] || { echo "FAIL: no checkout, yet the row names $rev"; exit 1; }
fi
out=$("$vkdiff" bench model --repeat 1 --append /nonexistent/dir/rows.md 2>&1)
rc=$?
[ $rc -eq 2 ] || { echo "FAIL: an unwritable --append exits $rc, not 2"; exit 1; }
printf '%s\n' "$out" | grep -q "cannot append" || { echo "FAIL: no message for an unwritable --append"; exit 1; }
echo "bench model: table, one appended row naming $rev, unwritable path refused: ok"
