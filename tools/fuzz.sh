#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz_*.c; the library is built with libFuzzer's
# coverage instrumentation too, CMakeLists.txt) with clang and runs each over its
# committed corpus in tests/fuzz_corpus/<name>/ (seeds: tools/fuzz_seeds.py).
#
#   tools/fuzz.sh [SECONDS]        each target for SECONDS (default 20): the short run
#                                  of tools/test.sh, all targets in ~1.5 min + the build
#   tools/fuzz.sh --long [RUNS]    each target for RUNS inputs (default 1000000) from a
#                                  fresh copy of its corpus, then a table per target:
#                                  executions, exec/s, final cov/ft, finding. Takes
#                                  ~30 min on 2 cores (docs/testing.md, "Fuzzing").
#   VKD_FUZZ_ONLY="prompt detect"  only these targets
# A crash stops the short run (non-zero exit); the long run goes on to the next target
# and exits non-zero at the end. Crash inputs land in build-fuzz/artifacts/: fix the
# bug, then add the input to the target's corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
long=0
runs=1000000
secs=20
if [[ ${1:-} == --long ]]; then
  long=1
  runs=${2:-1000000}
else
  secs=${1:-20}
fi
ls tests/fuzz_*.c >/dev/null 2>&1 || { echo "no fuzz targets"; exit 0; }
B=build-fuzz
CC=clang cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKD_FUZZ=ON -DVKD_SANITIZE=ON \
  -DCMAKE_C_COMPILER=clang >/dev/null
targets=()
for f in tests/fuzz_*.c; do
  t=$(basename "$f" .c)
  if [[ -n ${VKD_FUZZ_ONLY:-} && " $VKD_FUZZ_ONLY " != *" ${t#fuzz_} "* ]]; then
    continue
  fi
  targets+=("$t")
done
cmake --build "$B" -j"$(nproc)" --target "${targets[@]}"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
# A 16 MiB quarantine instead of ASan's 256: the detection target allocates a JSON tree
# per input and ran 2x slower touching fresh pages (2026-12-06). Caller's options first.
export ASAN_OPTIONS="quarantine_size_mb=16${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
mkdir -p "$B/artifacts"
rows=()
failed=0
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  corpus=tests/fuzz_corpus/$name
  if (( long )); then
    work=$B/long-corpus-$name
    rm -rf "$work"
    limit=(-runs="$runs")
  else
    work=$B/corpus-$name
    limit=(-max_total_time="$secs")
  fi
  mkdir -p "$work"
  [[ -d $corpus ]] && cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  if (( long )); then
    echo "fuzz: $t for $runs inputs"
    log=$B/long-$name.log
    rc=0
    t0=$(date +%s.%N)
    VKD_SHARED=${VKD_SHARED:-$PWD/../shared} "$B/$t" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$B/artifacts/$name-" "$work" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    # libFuzzer's stat::average_exec_per_sec is whole runs over whole seconds; this is
    # executions over the wall time of the run (corpus loading included)
    eps=$(awk -v n="${execs:-0}" -v s="$wall" 'BEGIN { printf "%.0f", (s > 0 ? n / s : n) }')
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
    finding=none
    if (( rc )); then
      failed=1
      finding="exit $rc: $(grep -m1 -E 'ERROR:|check failed|runtime error' "$log" || echo see "$log")"
    fi
    rows+=("| $name | ${execs:-?} | $wall | $eps | ${cov:-?} | ${ft:-?} | ${corp:-?} | $finding |")
    echo "fuzz: $t: ${execs:-?} executions in ${wall}s, $eps exec/s, cov ${cov:-?} ft ${ft:-?} ($log)"
  else
    echo "fuzz: $t for ${secs}s"
    log=$B/short-$name.log
    if ! VKD_SHARED=${VKD_SHARED:-$PWD/../shared} "$B/$t" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$B/artifacts/$name-" "$work" >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "fuzz: $t FAILED (input in $B/artifacts/)"
      exit 1
    fi
    grep -E '^#[0-9]+' "$log" | tail -n 1
    echo "fuzz: $t ok"
  fi
done
if (( long )); then
  echo
  echo "| target | executions | seconds | exec/s | cov | ft | corpus | finding |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
fi
exit $failed
