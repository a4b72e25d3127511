#!/bin/sh
# Issue 20: the CLI on the oracle's tiny SDXL (tests/data/tiny-sdxl.safetensors) with
# the real CLIP vocabulary: a guided image, SDXL-Turbo settings, the size-conditioning
# and empty-negative flags, and bad values of those flags refused before any GPU work.
#   cli_sdxl.sh VKDIFF SOURCE_DIR SHARED_DIR
set -u
V=$1 SRC=$2 SHARED=$3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
MODEL=$SRC/tests/data/tiny-sdxl.safetensors
TOK=$SHARED/clip/bpe_simple_vocab_16e6.txt.gz
[ -f "$TOK" ] || fail "no CLIP vocabulary at $TOK"
gen() { "$V" -m "$MODEL" --tokenizer "$TOK" -W 64 -H 48 --seed 3 "$@"; }
png() { [ -s "$1" ] && head -c 8 "$1" | od -An -tx1 | grep -q "89 50 4e 47" || fail "$1 is not a PNG"; }

gen -p "a (red:1.3) circle, blue background" --steps 2 -o "$W/guided.png" || fail "guided: exit $?"
png "$W/guided.png"
gen -p "a cat" --steps 1 --cfg 1 --sampler euler_a --schedule trailing -o "$W/turbo.png" || fail "turbo: exit $?"
png "$W/turbo.png"
gen -p "a cat" --steps 2 --original-size 1024x768 --crop 16,32 --target-size 64x48 --empty-negative encode \
  -o "$W/sizes.png" || fail "size flags: exit $?"
png "$W/sizes.png"
cmp -s "$W/guided.png" "$W/sizes.png" && fail "the size conditioning changed nothing"
for bad in "--original-size 1024" "--original-size 10x-3" "--target-size x" "--crop 5" "--empty-negative none"; do
  # shellcheck disable=SC2086
  gen -p x $bad -o "$W/bad.png" 2>"$W/err.txt"
  rc=$?
  [ $rc -eq 2 ] || fail "'$bad' gave exit $rc, expected 2"
  [ -e "$W/bad.png" ] && fail "'$bad' wrote an image"
  grep -q "vkdiff: --" "$W/err.txt" || fail "'$bad': no message naming the option: $(cat "$W/err.txt")"
done
echo "cli_sdxl: ok"
