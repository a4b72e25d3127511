#!/usr/bin/env bash
# The main command (README): installs what is missing, builds vkdiff, and draws a picture.
# With no arguments it renders the default prompt with the shipped shapes model
# (weights/) to ./vkdiff.png; any arguments are passed to vkdiff instead, e.g.
#   tools/run.sh -p "a small yellow triangle in the top left on a purple background"
#   tools/run.sh -m sd15.safetensors --tokenizer bpe_simple_vocab_16e6.txt.gz -p "a cat"
set -euo pipefail
here=$PWD
cd "$(dirname "$0")/.."
tools/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
args=("$@")
has_out=0
for a in "$@"; do [[ $a == -o || $a == --output || $a == --list-devices || $a == info || $a == bench || $a == tokenize || $a == -h || $a == --help ]] && has_out=1; done
if [[ $has_out -eq 0 ]]; then
  args+=(-o "$here/vkdiff.png")
fi
./build/vkdiff "${args[@]}"
[[ $has_out -eq 0 ]] && echo "your picture: $here/vkdiff.png"
exit 0
