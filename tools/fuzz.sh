#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz_*.c) with clang and runs each for N
# seconds (default 20) over its committed corpus in tests/fuzz_corpus/<name>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
ls tests/fuzz_*.c >/dev/null 2>&1 || { echo "no fuzz targets"; exit 0; }
B=build-fuzz
CC=clang cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKD_FUZZ=ON -DVKD_SANITIZE=ON \
  -DCMAKE_C_COMPILER=clang >/dev/null
targets=()
for f in tests/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
cmake --build "$B" -j"$(nproc)" --target "${targets[@]}"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  corpus=tests/fuzz_corpus/$name
  work=$B/corpus-$name
  mkdir -p "$work"
  [[ -d $corpus ]] && cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  echo "fuzz: $t for ${secs}s"
  VKD_SHARED=${VKD_SHARED:-$PWD/../shared} "$B/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$work" 2>&1 | tail -n 3
  echo "fuzz: $t ok"
done
