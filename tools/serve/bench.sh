#!/usr/bin/env bash
# The server's throughput and overhead (BENCHMARKS.md, issue 23): the shipped shapes model,
# 64x64, 10 steps, DPM++ 2M Karras, cfg 5 (the README's first command), on one warm server:
#   1. the CLI: --batch-count N on one context, the mean time per image it reports (vkd_generate)
#   2. the server: N requests one after the other (curl), the mean wall time per request
#   3. the server: N requests from 2 and 4 clients at once, requests per second
# Usage: tools/serve/bench.sh [VKDIFF] [N]   (default build-rel/vkdiff, 20)
set -euo pipefail
cd "$(dirname "$0")/../.."
V=${1:-build-rel/vkdiff}
N=${2:-20}
T=$(mktemp -d)
trap 'kill $SP 2>/dev/null || true; rm -rf "$T"' EXIT
args=(-W 64 -H 64 --steps 10 --sampler dpm++2m --schedule karras --cfg 5)
body='{"prompt":"a large red circle in the center on a blue background","width":64,"height":64,"steps":10,"sampler_name":"DPM++ 2M","scheduler":"Karras","cfg_scale":5,"seed":1}'
# warm-up (the pipeline cache) and the CLI's per-image times
"$V" "${args[@]}" --seed 1 -o "$T/warm.png" >/dev/null 2>&1
"$V" "${args[@]}" --seed 1 --batch-count "$N" -o "$T/cli.png" 2>"$T/cli.log" >/dev/null
# the first image of the batch also sets the context up: left out, as the server's warm-up is
cli=$(grep -o 'wrote .* (\([0-9.]*\) s)' "$T/cli.log" | grep -o '([0-9.]* s)' | tr -d '(s)' |
      awk 'NR > 1 {s+=$1; n++} END {printf "%.3f", s/n}')
"$V" serve --port 0 --queue 64 --max-images 64 2>"$T/serve.log" &   # previews every 10 steps (the default)
SP=$!
for _ in $(seq 1 120); do grep -q listening "$T/serve.log" && break; sleep 0.5; done
port=$(grep -o '127.0.0.1:[0-9]*' "$T/serve.log" | cut -d: -f2)
url=http://127.0.0.1:$port/sdapi/v1/txt2img
curl -sf -X POST "$url" -d "$body" -o /dev/null # the server's first image (warm-up)
t0=$(date +%s.%N)
for _ in $(seq 1 "$N"); do curl -sf -X POST "$url" -d "$body" -o /dev/null; done
t1=$(date +%s.%N)
seq_s=$(echo "($t1 - $t0) / $N" | bc -l)
printf "| CLI, per image (vkd_generate, warm) | %.3f s |\n" "$cli"
printf "| server, one request at a time, per request (wall, curl) | %.3f s (overhead %+.3f s, %+.0f%%) |\n" \
  "$seq_s" "$(echo "$seq_s - $cli" | bc -l)" "$(echo "($seq_s - $cli) / $cli * 100" | bc -l)"
for c in 2 4; do
  t0=$(date +%s.%N)
  seq 1 "$N" | xargs -P "$c" -I{} curl -sf -X POST "$url" -d "$body" -o /dev/null
  t1=$(date +%s.%N)
  printf "| server, %d clients at once | %.2f requests/s |\n" "$c" "$(echo "$N / ($t1 - $t0)" | bc -l)"
done
kill -TERM $SP
wait $SP
