#!/bin/sh
# Issue 18: the CLI's handling of hostile or careless arguments, end to end with the
# shipped model (64x64, one step: each generation is a second or two).
#   cli_hardening.sh VKDIFF SOURCE_DIR CASE
# CASE: long_prompt | same_file | fifo | batch_names | sigint | odd_size | twice_printed
set -u
V=$1 SRC=$2 CASE=$3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
MODEL=$SRC/weights/shapes.safetensors
TOK=$SRC/weights/tokenizer
PY=${VKD_PYTHON:-python3}
gen() { "$V" -m "$MODEL" --tokenizer "$TOK" -W 64 -H 64 --steps 1 --seed 5 "$@"; }

# the PNG's "parameters" text (tEXt or iTXt), printed as UTF-8
png_params() {
  "$PY" - "$1" <<'EOF'
import struct, sys, zlib
d = open(sys.argv[1], 'rb').read()
assert d[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
i = 8
while i < len(d):
    n, t = struct.unpack('>I4s', d[i:i + 8]); body = d[i + 8:i + 8 + n]; i += 12 + n
    if t == b'tEXt' and body.startswith(b'parameters\0'):
        sys.stdout.write(body[11:].decode('latin-1')); break
    if t == b'iTXt' and body.startswith(b'parameters\0'):
        rest = body[11:]; comp = rest[0]; rest = rest[2:]
        rest = rest.split(b'\0', 2)[2]
        sys.stdout.write((zlib.decompress(rest) if comp else rest).decode('utf-8')); break
EOF
}

case $CASE in
long_prompt)
  # 8.2 KB prompt and negative prompt: once a stack-buffer overflow in the infotext
  P=$("$PY" -c "print(', '.join(['a large red circle in the center on a blue background'] * 160))")
  N=$("$PY" -c "print(' '.join(['green'] * 1500))")
  gen -p "$P" -n "$N" -o "$W/long.png" || fail "exit $? on a long prompt"
  got=$(png_params "$W/long.png")
  printf '%s\n' "$got" | head -n 1 | grep -qxF "$P" || fail "the PNG does not hold the whole prompt"
  printf '%s\n' "$got" | grep -qxF "Negative prompt: $N" || fail "the PNG does not hold the whole negative prompt"
  echo "long prompt (${#P} + ${#N} bytes) kept whole: ok" ;;
same_file)
  cp "$MODEL" "$W/m.safetensors"
  ln -s "$W/m.safetensors" "$W/link.png"
  ln "$W/m.safetensors" "$W/hard.png"
  sum0=$(cksum < "$W/m.safetensors")
  for o in "$W/m.safetensors" "$W/link.png" "$W/hard.png" "$W/./m.safetensors"; do
    out=$("$V" -m "$W/m.safetensors" --tokenizer "$TOK" -W 64 -H 64 --steps 1 -p x -o "$o" 2>&1) && fail "-o $o was accepted"
    echo "$out" | grep -q "same file" || fail "-o $o: no clear message: $out"
  done
  cp -r "$TOK" "$W/tok"
  out=$("$V" -m "$W/m.safetensors" --tokenizer "$W/tok" -p x -o "$W/tok/vocab.json" 2>&1) && fail "-o onto the tokenizer was accepted"
  echo "$out" | grep -q "same file" || fail "tokenizer: no clear message: $out"
  [ "$(cksum < "$W/m.safetensors")" = "$sum0" ] || fail "the model file changed"
  echo "outputs that are an input refused, model intact: ok" ;;
fifo)
  mkfifo "$W/fifo.safetensors"
  timeout 20 "$V" info "$W/fifo.safetensors" > "$W/out" 2>&1
  rc=$?
  cat "$W/out"
  [ $rc -ne 124 ] || fail "vkdiff info on a FIFO hangs"
  [ $rc -ne 0 ] || fail "vkdiff info on a FIFO exits 0"
  grep -q "not a regular file" "$W/out" || fail "no clear message"
  timeout 20 "$V" -m "$W/fifo.safetensors" -p x -o "$W/x.png" > "$W/out" 2>&1
  rc=$?
  [ $rc -ne 124 ] || fail "generation from a FIFO hangs"
  [ $rc -ne 0 ] || fail "generation from a FIFO exits 0"
  echo "FIFO refused: ok" ;;
batch_names)
  mkdir "$W/out.dir"
  gen -p x --batch-count 2 -o "$W/out.dir/img" || fail "exit $?"
  [ -f "$W/out.dir/img-000" ] && [ -f "$W/out.dir/img-001" ] || { ls -R "$W"; fail "not numbered by stem"; }
  gen -p x --batch-count 2 -o "$W/out.dir/pic.png" || fail "exit $?"
  [ -f "$W/out.dir/pic-000.png" ] && [ -f "$W/out.dir/pic-001.png" ] || { ls -R "$W"; fail "not numbered by stem"; }
  echo "batch file names numbered by stem: ok" ;;
sigint)
  # VKD_TEST_WRITE_PAUSE_MS holds the finished temporary file before its rename, so
  # the signal lands while the PNG is being written
  for when in write step; do
    rm -f "$W"/*
    if [ $when = write ]; then
      env VKD_TEST_WRITE_PAUSE_MS=20000 "$V" -m "$MODEL" --tokenizer "$TOK" -W 64 -H 64 --steps 1 -p x -o "$W/i.png" > "$W/log" 2>&1 &
    else
      "$V" -m "$MODEL" --tokenizer "$TOK" -W 64 -H 64 --steps 1000 -p x -o "$W/i.png" > "$W/log" 2>&1 &
    fi
    pid=$!
    k=0
    while :; do
      if [ $when = write ]; then ls "$W" | grep -q "tmp-" && break; else grep -q "step" "$W/log" && break; fi
      k=$((k + 1)); [ $k -lt 600 ] || { kill -9 $pid; cat "$W/log"; fail "never reached the $when phase"; }
      sleep 0.1
    done
    kill -INT $pid
    wait $pid
    rc=$?
    cat "$W/log"
    [ $rc -eq 130 ] || fail "$when: exit $rc after SIGINT (expected 130)"
    left=$(ls "$W" | grep -v '^log$')
    [ -z "$left" ] || fail "$when: SIGINT left files behind: $left"
    grep -q "interrupted" "$W/log" || fail "$when: no message"
    # the sampler stops at the step the signal lands in, not after all 1000
    if [ $when = step ] && grep -q "step 1000/1000" "$W/log"; then fail "step: SIGINT did not stop the sampling"; fi
  done
  echo "SIGINT during a step and during the write leaves nothing: ok" ;;
odd_size)
  # sizes that are multiples of 8 but not of 8 * 2^(levels-1): each upsampling takes
  # its skip connection's size, as diffusers does
  for s in "72 64" "64 88" "40 56"; do
    set -- $s
    gen -p "a large red circle" -W $1 -H $2 --steps 3 -o "$W/o.png" > "$W/log" 2>&1 || { cat "$W/log"; fail "-W $1 -H $2 refused"; }
    "$PY" - "$W/o.png" "$1" "$2" <<'EOF' || fail "-W $1 -H $2: bad image"
import struct, sys, zlib
d = open(sys.argv[1], 'rb').read()
w, h = struct.unpack('>II', d[16:24])
assert (w, h) == (int(sys.argv[2]), int(sys.argv[3])), (w, h)
i, idat = 8, b''
while i < len(d):
    n, t = struct.unpack('>I4s', d[i:i + 8]); idat += d[i + 8:i + 8 + n] if t == b'IDAT' else b''; i += 12 + n
raw, st, prev, rows = zlib.decompress(idat), 3 * w + 1, bytearray(3 * w), []
for y in range(h):  # undo the PNG row filters
    f, r = raw[y * st], bytearray(raw[y * st + 1:(y + 1) * st])
    for x in range(3 * w):
        a = r[x - 3] if x >= 3 else 0
        b, c = prev[x], (prev[x - 3] if x >= 3 else 0)
        p = a + b - c
        pr = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else (b if abs(p - b) <= abs(p - c) else c)
        r[x] = (r[x] + [0, a, b, (a + b) // 2, pr][f]) & 255
    rows.append(r); prev = r
assert max(max(r) for r in rows) - min(min(r) for r in rows) > 32, 'a flat image'
EOF
  done
  echo "odd multiples of 8 generate: ok" ;;
twice_printed)
  out=$(gen -p x --sampler nope -o "$W/x.png" 2>&1) && fail "an unknown sampler was accepted"
  echo "$out"
  [ "$(echo "$out" | grep -c "nope")" -eq 1 ] || fail "the error is printed more than once"
  echo "errors printed once: ok" ;;
*) fail "unknown case $CASE" ;;
esac
