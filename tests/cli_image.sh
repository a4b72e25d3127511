#!/bin/sh
# Issue 21: image input through the command, with the shipped shapes model (64x64, a
# few steps): img2img from a PNG (the output takes the image's size), inpainting,
# outpainting and the hires fix (their output sizes and PNG text), and what must be
# refused: damaged or non-image files (exit 1, the file named), an output that would
# overwrite the init image or the mask, a mask without an image (exit 2).
#   cli_image.sh VKDIFF SOURCE_DIR
set -u
V=$1 SRC=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
PY=${VKD_PYTHON:-python3}
gen() { "$V" -m "$SRC/weights/shapes.safetensors" --tokenizer "$SRC/weights/tokenizer" --steps 3 --seed 5 "$@"; }
# size and "parameters" text of a PNG
info() {
  "$PY" - "$1" <<'PYEOF'
import struct, sys, zlib
d = open(sys.argv[1], 'rb').read(); i = 8; text = b''
while i < len(d):
    n, t = struct.unpack('>I4s', d[i:i + 8]); body = d[i + 8:i + 8 + n]; i += 12 + n
    if t == b'IHDR': w, h = struct.unpack('>II', body[:8])
    if t in (b'tEXt', b'iTXt') and body.startswith(b'parameters\0'): text = body
print('%dx%d' % (w, h), text.decode('latin-1').replace('\n', ' '))
PYEOF
}

gen -p "a large red circle in the center on a blue background" -W 72 -H 56 -o "$W/base.png" || fail "base: exit $?"
gen -p "a large yellow circle in the center on a blue background" -i "$W/base.png" --strength 0.6 \
  -o "$W/i2i.png" || fail "img2img: exit $?"
out=$(info "$W/i2i.png")
case $out in "72x56 "*"Denoising strength: 0.6"*) ;; *) fail "img2img: $out" ;; esac
"$PY" -c "
import zlib, struct
w, h = 72, 56
rows = b''.join(b'\0' + bytes(255 if (x < 12 or x >= 60) else 0 for x in range(w)) for y in range(h))
c = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
open('$W/mask.png', 'wb').write(b'\x89PNG\r\n\x1a\n' + c(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
                               + c(b'IDAT', zlib.compress(rows)) + c(b'IEND', b''))"
gen -p "a large red circle in the center on a green background" -i "$W/base.png" --mask "$W/mask.png" \
  --strength 1 --mask-blur 2 -o "$W/inp.png" || fail "inpainting: exit $?"
out=$(info "$W/inp.png")
case $out in "72x56 "*"Mask blur: 2"*) ;; *) fail "inpainting: $out" ;; esac
gen -p "a large red circle in the center on a blue background" -i "$W/base.png" --pad 8,0,16,8 --strength 1 \
  -o "$W/out.png" || fail "outpainting: exit $?"
out=$(info "$W/out.png")
case $out in "96x64 "*) ;; *) fail "outpainting: $out" ;; esac
gen -p "a large red circle in the center on a blue background" -W 64 -H 64 --hires-scale 1.5 --hires-steps 2 \
  -o "$W/hr.png" ||
  fail "hires: exit $?"
out=$(info "$W/hr.png")
case $out in "96x96 "*"Hires upscale: 1.5, Hires steps: 2, Hires upscaler: Latent"*) ;; *) fail "hires: $out" ;; esac

# refused
head -c 100 "$W/base.png" > "$W/cut.png"
printf 'not an image at all' > "$W/text.png"
for bad in cut text; do
  gen -p x -i "$W/$bad.png" -o "$W/never.png" 2>"$W/err.txt"; rc=$?
  [ $rc -eq 1 ] || fail "$bad.png: exit $rc, expected 1"
  grep -q "$bad.png" "$W/err.txt" || fail "$bad.png: the message does not name the file: $(cat "$W/err.txt")"
  [ -e "$W/never.png" ] && fail "$bad.png: an image was written"
done
gen -p x -i "$W/base.png" -o "$W/base.png" 2>/dev/null; rc=$?
[ $rc -eq 2 ] || fail "-o onto the init image: exit $rc, expected 2"
gen -p x -i "$W/base.png" --mask "$W/mask.png" -o "$W/mask.png" 2>/dev/null; rc=$?
[ $rc -eq 2 ] || fail "-o onto the mask: exit $rc, expected 2"
gen -p x --mask "$W/mask.png" -o "$W/never.png" 2>/dev/null; rc=$?
[ $rc -eq 2 ] || fail "--mask without -i: exit $rc, expected 2"
gen -p x -i "$W/base.png" --strength 2 -o "$W/never.png" 2>/dev/null; rc=$?
[ $rc -eq 2 ] || fail "--strength 2: exit $rc, expected 2"
gen -p x -i "$W/base.png" --pad 3,0,0,0 -o "$W/never.png" 2>/dev/null; rc=$?
[ $rc -eq 2 ] || fail "--pad 3,0,0,0: exit $rc, expected 2"
[ -e "$W/never.png" ] && fail "a refused run wrote an image"
echo "cli_image: ok"
