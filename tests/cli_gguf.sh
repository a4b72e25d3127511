#!/bin/sh
# Issue 25: the CLI generates from GGUF files as stable-diffusion.cpp's convert writes
# them (tools/make_gguf.py, from the oracle's tiny SD1): an F16 GGUF gives the same
# pixels as the safetensors file it came from (same weights, other container); a Q8_0
# one generates (its weights are dequantized at load for now).
#   cli_gguf.sh VKDIFF SOURCE_DIR SHARED_DIR
set -u
V=$1 SRC=$2 SHARED=$3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
PY=${VKD_PYTHON:-python3}
MODEL=$SRC/tests/data/tiny-sd1.safetensors
TOK=$SHARED/clip/bpe_simple_vocab_16e6.txt.gz
[ -f "$TOK" ] || fail "no CLIP vocabulary at $TOK"
for t in f16 q8_0; do
  "$PY" "$SRC/tools/make_gguf.py" "$MODEL" "$W/$t.gguf" --type "$t" >/dev/null || fail "make_gguf.py --type $t"
done
gen() { "$V" -m "$1" --tokenizer "$TOK" -W 64 -H 64 --seed 3 --steps 2 -p "a red circle" -o "$2"; }
gen "$MODEL" "$W/st.png" || fail "safetensors: exit $?"
gen "$W/f16.gguf" "$W/f16.png" || fail "F16 GGUF: exit $?"
gen "$W/q8_0.gguf" "$W/q8_0.png" || fail "Q8_0 GGUF: exit $?"
# pixels (the PNG text names the model file, so the files differ)
"$PY" - "$W/st.png" "$W/f16.png" "$W/q8_0.png" <<'PYEOF' || fail "pixels"
import struct, sys, zlib
def pixels(path):
    b = open(path, "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n", path
    i, idat = 8, b""
    while i < len(b):
        n = struct.unpack(">I", b[i:i + 4])[0]
        if b[i + 4:i + 8] == b"IDAT":
            idat += b[i + 8:i + 8 + n]
        i += 12 + n
    return zlib.decompress(idat)
st, f16, q8 = (pixels(p) for p in sys.argv[1:4])
if st != f16:
    sys.exit("the F16 GGUF gives other pixels than its safetensors")
diff = sum(abs(a - c) for a, c in zip(st, q8)) / len(st)
print(f"F16 GGUF: same pixels; Q8_0 GGUF: mean |byte difference| {diff:.2f}")
PYEOF
echo "cli_gguf: ok"
