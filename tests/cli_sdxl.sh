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
# --vae: the same VAE as a separate diffusers vae/ folder gives the same pixels, and the
# PNG text names it as A1111 does
PY=${VKD_PYTHON:-python3}
"$PY" "$SRC/tools/make_checkpoint.py" sdxl "$W/df" --layout diffusers --from "$MODEL" 2>/dev/null ||
  fail "could not convert the model to a diffusers folder"
gen -p "a (red:1.3) circle, blue background" --steps 2 --vae "$W/df/vae" -o "$W/vae.png" || fail "--vae: exit $?"
"$PY" - "$W/guided.png" "$W/vae.png" <<'PYEOF' || fail "--vae: other pixels, or no 'VAE: vae' in the PNG text"
import struct, sys, zlib
def chunks(p):
    d = open(p, 'rb').read(); i = 8; out = {}
    while i < len(d):
        n, t = struct.unpack('>I4s', d[i:i + 8]); out.setdefault(t, b''); out[t] += d[i + 8:i + 8 + n]; i += 12 + n
    return out
a, b = chunks(sys.argv[1]), chunks(sys.argv[2])
assert zlib.decompress(a[b'IDAT']) == zlib.decompress(b[b'IDAT']), 'pixels differ'
text = b.get(b'tEXt', b'') + b.get(b'iTXt', b'')
assert b'VAE: vae' in text, text
PYEOF
for bad in "--original-size 1024" "--original-size 10x-3" "--target-size x" "--crop 5" "--empty-negative none"; do
  # shellcheck disable=SC2086
  gen -p x $bad -o "$W/bad.png" 2>"$W/err.txt"
  rc=$?
  [ $rc -eq 2 ] || fail "'$bad' gave exit $rc, expected 2"
  [ -e "$W/bad.png" ] && fail "'$bad' wrote an image"
  grep -q "vkdiff: --" "$W/err.txt" || fail "'$bad': no message naming the option: $(cat "$W/err.txt")"
done
echo "cli_sdxl: ok"
