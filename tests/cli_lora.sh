#!/bin/sh
# Issue 22: LoRAs from the CLI on the oracle's tiny SD1 with the real CLIP vocabulary:
# --lora FILE:W and the prompt tag <lora:NAME:W> (from --lora-dir, or the model's folder)
# give the same pixels, the LoRA changes them, W 0 gives the image without it, the PNG
# text carries the tags as A1111 writes them, and bad LoRAs are refused with a message,
# a non-zero exit and no file.
#   cli_lora.sh VKDIFF SOURCE_DIR SHARED_DIR
set -u
V=$1 SRC=$2 SHARED=$3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
PY=${VKD_PYTHON:-python3}
MODEL=$SRC/tests/data/tiny-sd1.safetensors
TOK=$SHARED/clip/bpe_simple_vocab_16e6.txt.gz
[ -f "$TOK" ] || fail "no CLIP vocabulary at $TOK"
mkdir "$W/loras"
"$PY" "$SRC/tools/make_lora.py" "$MODEL" "$W/loras/style.safetensors" --seed 4 >/dev/null || fail "make_lora.py"
"$PY" "$SRC/tools/make_lora.py" "$SRC/tests/data/tiny-sdxl.safetensors" "$W/loras/xl.safetensors" >/dev/null ||
  fail "make_lora.py (SDXL)"
gen() { "$V" -m "$MODEL" --tokenizer "$TOK" -W 64 -H 64 --steps 2 --seed 5 "$@"; }
same_pixels() {
  "$PY" - "$1" "$2" <<'PYEOF'
import struct, sys, zlib
def idat(p):
    d = open(p, 'rb').read(); i = 8; out = b''
    while i < len(d):
        n, t = struct.unpack('>I4s', d[i:i + 8])
        out += d[i + 8:i + 8 + n] if t == b'IDAT' else b''
        i += 12 + n
    return zlib.decompress(out)
sys.exit(0 if idat(sys.argv[1]) == idat(sys.argv[2]) else 1)
PYEOF
}
gen -p "a red circle" -o "$W/none.png" || fail "no LoRA: exit $?"
gen -p "a red circle" --lora "$W/loras/style.safetensors:0.6" -o "$W/flag.png" || fail "--lora: exit $?"
gen -p "a red <lora:style:0.6>circle" --lora-dir "$W/loras" -o "$W/tag.png" || fail "tag: exit $?"
same_pixels "$W/flag.png" "$W/tag.png" || fail "--lora FILE:0.6 and <lora:style:0.6> differ"
same_pixels "$W/flag.png" "$W/none.png" && fail "the LoRA changed nothing"
gen -p "a red circle" --lora "$W/loras/style.safetensors:0" -o "$W/zero.png" || fail "weight 0: exit $?"
same_pixels "$W/zero.png" "$W/none.png" || fail "a LoRA at weight 0 changed the image"
grep -a -q "a red circle <lora:style:0.6>" "$W/flag.png" || fail "the PNG text lacks the --lora tag"
grep -a -q "a red <lora:style:0.6>circle" "$W/tag.png" || fail "the PNG text lost the prompt's tag"
# the model's folder by default: a copy of the model beside the LoRA
cp "$MODEL" "$W/loras/model.safetensors"
"$V" -m "$W/loras/model.safetensors" --tokenizer "$TOK" -W 64 -H 64 --steps 2 --seed 5 \
  -p "a red <lora:style:0.6>circle" -o "$W/dir.png" || fail "tag from the model's folder: exit $?"
same_pixels "$W/dir.png" "$W/flag.png" || fail "the model's folder: other pixels"
bad() { # expected exit, message part, arguments...
  want=$1 msg=$2
  shift 2
  gen "$@" -o "$W/bad.png" 2>"$W/err.txt"
  rc=$?
  [ $rc -eq "$want" ] || fail "$*: exit $rc, expected $want ($(cat "$W/err.txt"))"
  [ -e "$W/bad.png" ] && fail "$*: wrote an image"
  grep -q "$msg" "$W/err.txt" || fail "$*: no message with '$msg': $(cat "$W/err.txt")"
}
bad 1 "LoRA" -p x --lora "$W/loras/missing.safetensors"
bad 1 "no-such" -p "x <lora:no-such:1>" --lora-dir "$W/loras"
bad 1 "SDXL" -p x --lora "$W/loras/xl.safetensors"
bad 1 "not a number" -p "x <lora:style:heavy>" --lora-dir "$W/loras"
head -c 100 "$W/loras/style.safetensors" >"$W/loras/cut.safetensors"
bad 1 "cut.safetensors" -p x --lora "$W/loras/cut.safetensors"
echo "cli_lora: ok"
