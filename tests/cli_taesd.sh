#!/bin/sh
# Issue 22 (TAESD): --taesd and --preview through the command. With the shipped shapes
# model (SD1): the final image decoded by a TAESD decoder (random weights from
# tools/make_taesd.py: other pixels than the VAE's, same size), previews written every N
# steps, and what must be refused with a message and exit 1 (or 2 before any GPU work):
# a TAESDXL file on an SD1 model, a decoder of 16 latent channels, an encoder alone, a
# damaged file, --preview without a decoder. Then TAESD on the tiny SD2 and TAESDXL on
# the tiny SDXL (and TAESD refused there), when the CLIP vocabulary is at SHARED_DIR.
#   cli_taesd.sh VKDIFF SOURCE_DIR SHARED_DIR
set -u
V=$1 SRC=$2 SHARED=$3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
PY=${VKD_PYTHON:-python3}
MK="$SRC/tools/make_taesd.py"
gen() { "$V" -m "$SRC/weights/shapes.safetensors" --tokenizer "$SRC/weights/tokenizer" -W 64 -H 64 --steps 4 --seed 5 \
  -p "a large red circle in the center on a blue background" "$@"; }
size() { "$PY" -c "import struct,sys; d=open(sys.argv[1],'rb').read(24); print('%dx%d' % struct.unpack('>II', d[16:24]))" "$1"; }
refused() { # refused EXPECTED_RC PATTERN ARGS...: the run exits EXPECTED_RC and says PATTERN
  want=$1 pat=$2; shift 2
  "$@" 2>"$W/err.txt"; rc=$?
  [ $rc -eq "$want" ] || fail "$*: exit $rc, expected $want ($(cat "$W/err.txt"))"
  grep -q "$pat" "$W/err.txt" || fail "$*: no '$pat' in: $(cat "$W/err.txt")"
}

"$PY" "$MK" "$W/taesd" --width 16 || fail "make_taesd"
"$PY" "$MK" "$W/taesd_decoder.safetensors" --part decoder --layout diffusers --width 16 || fail "make_taesd"
"$PY" "$MK" "$W/taesdxl" --model taesdxl --width 16 || fail "make_taesd xl"
"$PY" "$MK" "$W/lat16.safetensors" --part decoder --latent 16 --width 16 || fail "make_taesd 16"
"$PY" "$MK" "$W/enc.safetensors" --part encoder --width 16 || fail "make_taesd encoder"

gen -o "$W/vae.png" || fail "VAE: exit $?"
gen --taesd "$W/taesd" -o "$W/taesd.png" || fail "--taesd folder: exit $?"
[ "$(size "$W/taesd.png")" = 64x64 ] || fail "--taesd: size $(size "$W/taesd.png")"
cmp -s "$W/vae.png" "$W/taesd.png" && fail "--taesd gave the VAE's pixels"
gen --taesd "$W/taesd_decoder.safetensors" -o "$W/taesd2.png" || fail "--taesd diffusers file: exit $?"
cmp -s "$W/taesd.png" "$W/taesd2.png" || fail "the same TAESD in two layouts gave other pixels"
# previews: every 2 steps of 4 (steps 2 and 4); the final image as without them
gen --taesd "$W/taesd" --preview "$W/prev.png" --preview-every 2 -o "$W/p.png" -v 2>"$W/log.txt" ||
  fail "--preview: exit $? ($(tail -3 "$W/log.txt"))"
[ "$(size "$W/prev.png")" = 64x64 ] || fail "preview: size $(size "$W/prev.png")"
ls "$W" | grep -q "prev.png.tmp" && fail "a temporary preview file was left"
cmp -s "$W/p.png" "$W/taesd.png" || fail "--preview changed the final image"

# the shipped decoder (weights/shapes_taesd_decoder.safetensors): previews without
# --taesd, and its decode at least 20 dB from the VAE's image (24.4 dB measured) with the
# model's own settings (those of the command without -m; at cfg 7 with euler_a it is
# 18.7 dB: weights/README.md)
gen -o "$W/vae10.png" --steps 10 --cfg 5 --sampler dpm++2m --schedule karras --preview "$W/shipped.png" \
  --preview-every 5 || fail "shipped preview: exit $?"
[ "$(size "$W/shipped.png")" = 64x64 ] || fail "shipped preview: size $(size "$W/shipped.png")"
gen -o "$W/tae10.png" --steps 10 --cfg 5 --sampler dpm++2m --schedule karras \
  --taesd "$SRC/weights/shapes_taesd_decoder.safetensors" || fail "shipped TAESD: exit $?"
"$PY" - "$W/vae10.png" "$W/tae10.png" <<'PYEOF' || fail "the shipped TAESD decoder is far from the VAE"
import struct, sys, zlib
def pixels(p):  # 8-bit RGB, non-interlaced: unfilter the rows
    d = open(p, 'rb').read(); i = 8; idat = b''
    while i < len(d):
        n, t = struct.unpack('>I4s', d[i:i + 8]); body = d[i + 8:i + 8 + n]; i += 12 + n
        if t == b'IHDR': w, h = struct.unpack('>II', body[:8])
        if t == b'IDAT': idat += body
    raw, s, out, prev = zlib.decompress(idat), w * 3, [], [0] * (w * 3)
    for y in range(h):
        f, row, cur = raw[y * (s + 1)], raw[y * (s + 1) + 1:(y + 1) * (s + 1)], []
        for x in range(s):
            a = cur[x - 3] if x >= 3 else 0; b = prev[x]; c = prev[x - 3] if x >= 3 else 0
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            p = [0, a, b, (a + b) // 2, a if pa <= pb and pa <= pc else (b if pb <= pc else c)][f]
            cur.append((row[x] + p) & 255)
        out += cur; prev = cur
    return out
a, b = pixels(sys.argv[1]), pixels(sys.argv[2])
import math
mse = sum((x - y) ** 2 for x, y in zip(a, b)) / len(a)
psnr = 10 * math.log10(255 ** 2 / max(mse, 1e-9))
print('shipped TAESD vs VAE: %.1f dB' % psnr)
sys.exit(0 if psnr >= 20 else 1)
PYEOF

refused 1 "TAESDXL" gen --taesd "$W/taesdxl" -o "$W/never.png"
refused 1 "16 latent channels" gen --taesd "$W/lat16.safetensors" -o "$W/never.png"
refused 1 "encoder only" gen --taesd "$W/enc.safetensors" -o "$W/never.png"
head -c 300 "$W/taesd_decoder.safetensors" > "$W/cut.safetensors"
refused 1 "cut.safetensors" gen --taesd "$W/cut.safetensors" -o "$W/never.png"
refused 2 "needs a TAESD decoder" "$V" -m "$W/taesd_decoder.safetensors" -p x --preview "$W/never.png"
refused 2 "expects a number" gen --taesd "$W/taesd" --preview "$W/never.png" --preview-every 0
[ -e "$W/never.png" ] && fail "a refused run wrote an image"

TOK=$SHARED/clip/bpe_simple_vocab_16e6.txt.gz
if [ -f "$TOK" ]; then
  "$V" -m "$SRC/tests/data/tiny-sd2.safetensors" --tokenizer "$TOK" -W 48 -H 40 --steps 2 --seed 1 -p "a cat" \
    --taesd "$W/taesd" --preview "$W/sd2p.png" -o "$W/sd2.png" || fail "SD2 with TAESD: exit $?"
  [ "$(size "$W/sd2.png")" = 48x40 ] || fail "SD2: size $(size "$W/sd2.png")"
  "$V" -m "$SRC/tests/data/tiny-sdxl.safetensors" --tokenizer "$TOK" -W 48 -H 40 --steps 2 --seed 1 -p "a cat" \
    --taesd "$W/taesdxl" -o "$W/xl.png" || fail "SDXL with TAESDXL: exit $?"
  refused 1 "needs TAESDXL" "$V" -m "$SRC/tests/data/tiny-sdxl.safetensors" --tokenizer "$TOK" -W 48 -H 40 \
    --steps 1 -p x --taesd "$W/taesd" -o "$W/never.png"
else
  echo "no CLIP vocabulary at $TOK: SD2/SDXL cases skipped"
fi
echo "cli_taesd: ok"
