#!/bin/sh
# Short fuzz run of every tests/fuzz_*.c target: builds them with clang (libFuzzer +
# ASan + UBSan) in BUILD (default build-fuzz) and runs each for SECONDS (default 30)
# on a copy of its committed corpus tests/fuzz_corpus/<name>/ (the corpus in git is
# never modified). Exit status is nonzero if a build fails or a fuzzer finds a crash.
#   tests/run_fuzz.sh [SECONDS] [BUILD]
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-30}
BUILD=${2:-$SRC/build-fuzz}
CC_FUZZ=${CC_FUZZ:-$(command -v clang || command -v clang-14)}
cmake -S "$SRC" -B "$BUILD" -DCMAKE_C_COMPILER="$CC_FUZZ" -DVKD_FUZZ=ON -DVKD_SANITIZE=ON -DVKD_TESTS=ON >/dev/null
status=0
for f in "$SRC"/tests/fuzz_*.c; do
    name=$(basename "$f" .c)
    corpus_name=${name#fuzz_}
    cmake --build "$BUILD" -j2 --target "$name"
    work="$BUILD/fuzz-corpus/$corpus_name"
    mkdir -p "$work"
    if [ -d "$SRC/tests/fuzz_corpus/$corpus_name" ]; then
        cp "$SRC/tests/fuzz_corpus/$corpus_name"/* "$work"/ 2>/dev/null || true
    fi
    echo "fuzzing $name for ${SECS}s"
    if ! (cd "$BUILD" && ASAN_OPTIONS=detect_leaks=1 "./$name" -max_total_time="$SECS" -max_len=65536 \
            -rss_limit_mb=2048 -print_final_stats=1 "$work"); then
        echo "FAIL: $name found a crash (reproducer in $BUILD)" >&2
        status=1
    fi
done
exit $status
