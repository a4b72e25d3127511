#!/usr/bin/env bash
# Issue 6, "a GPU run in one command": on a machine with a real GPU and no network,
# build vkdiff, run the test suite on that GPU, then the op benchmark and the
# full-size SD1.5 model benchmark (random weights from tools/make_checkpoint.py), and,
# where PyTorch with CUDA is present, time the same UNet evaluation in PyTorch fp16
# (tools/gpu/time_unet.py, the oracle's UNet) and print the ratio.
#
#   tools/gpu/run.sh [OUT_DIR]          results and logs in OUT_DIR (default gpu-run-<date>)
#   VKD_GPU_SIZE=512                    image size of the model benchmark
#   VKD_SD15=/path/sd15.safetensors     use this checkpoint instead of making one
#   VKD_GPU_SKIP_TESTS=1                benchmarks only
#   VKD_GPU_SDXL=0                      skip the SDXL 1024x1024 benchmark (issue 20; on by default)
#   VKD_SDXL=/path/sdxl.safetensors     use this SDXL checkpoint instead of making one (6.6 GB)
#   VKD_GPU_PREBUILT=1                  use the build already in build-gpu (made elsewhere,
#                                       e.g. where glslang is installed); skip cmake. For the
#                                       VK_KHR_cooperative_matrix kernels build it with the
#                                       tools from tools/khr-toolchain.sh (Debian 12's are too old):
#                                       tools/gpu/prepare.sh does both
#   VKD_SHARED=dir                      folder holding clip/bpe_simple_vocab_16e6.txt.gz (default ../shared)
#
# Needs: cmake, ninja, a C compiler, glslang-tools, spirv-tools, libvulkan (or the
# packages tools/deps.sh installs), Python 3 with numpy for the checkpoint maker.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-gpu-run-$(date +%Y%m%d-%H%M%S)}
SIZE=${VKD_GPU_SIZE:-512}
SHARED=${VKD_SHARED:-$PWD/../shared}
PY=${VKD_PYTHON:-python3}
mkdir -p "$OUT"
B=build-gpu
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

log "vkdiff GPU run, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%MZ)"
if [[ -z "${VKD_GPU_PREBUILT:-}" ]]; then
  cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake.log"
  cmake --build "$B" -j"$(nproc)" >"$OUT/build.log"
fi
if [[ -n "${VKD_GPU_PREBUILT:-}" ]]; then
  # a build made on another machine names that machine's folders in its test file (and
  # its python3, which may lack numpy here): point them at this checkout and this python
  src=$(sed -n 's/^# Source directory: //p' "$B/CTestTestfile.cmake")
  if [[ -n "$src" && "$src" != "$PWD" ]]; then
    sed -i "s#$src/../shared#$SHARED#g; s#$src#$PWD#g" "$B/CTestTestfile.cmake"
  fi
  sed -i "s#VKD_PYTHON=[^;\"]*#VKD_PYTHON=$(command -v "$PY")#g" "$B/CTestTestfile.cmake"
fi
"$B/vkdiff" --list-devices | tee "$OUT/devices.txt"

if [[ -z "${VKD_GPU_SKIP_TESTS:-}" ]]; then
  log "test suite (validation layer on where installed)"
  if ctest --test-dir "$B" --output-on-failure -j"${VKD_GPU_CTEST_JOBS:-1}" --timeout 300 >"$OUT/ctest.log" 2>&1; then
    log "tests: all passed"
  else
    log "tests: FAILURES (see $OUT/ctest.log)"
  fi
  tail -3 "$OUT/ctest.log" | tee -a "$OUT/summary.txt"
fi

log "op benchmark (SD1.5 512x512 shapes)"
"$B/vkdiff" bench ops --repeat 5 | tee "$OUT/bench_ops.md"
# a cooperative-matrix GEMM is in use: NV offered, or KHR offered with its kernels built
if grep -q "cooperative matrix:.*NV fp16 16x" "$OUT/devices.txt" ||
   { grep -q "cooperative matrix: KHR fp16 16x" "$OUT/devices.txt" && ! grep -q "no KHR kernels" "$OUT/devices.txt"; }; then
  # the before of the cooperative-matrix GEMM: the shared-memory tile it replaced
  log "op benchmark with the shared-memory GEMM tile instead of cooperative matrices"
  "$B/vkdiff" bench ops --repeat 5 --tile 64x64x16x4x4 | tee "$OUT/bench_ops_tiled.md"
fi
if grep -q "cooperative matrix: KHR fp16 16x" "$OUT/devices.txt" && ! grep -q "no KHR kernels" "$OUT/devices.txt"; then
  # Debian 12's validation layer predates VK_KHR_cooperative_matrix, and the device is
  # not asked for the extension under it: the suite above ran the NV kernels (or none).
  # The KHR GEMM and attention kernels' tests, without the layer:
  log "GEMM and attention tests on the KHR cooperative-matrix kernels (validation layer off)"
  if VKD_NO_VALIDATION=1 ctest --test-dir "$B" --output-on-failure -R 'test_op_(matmul|conv2d|attention_cm)' \
       --timeout 300 >"$OUT/ctest_khr.log" 2>&1; then log "tests (KHR kernels): passed"; else log "tests (KHR kernels): FAILURES"; fi
fi
if grep -q "cooperative matrix: KHR fp16 16x[0-9]*x16;.*NV fp16" "$OUT/devices.txt"; then
  # both extensions offered and the KHR kernels built: the default ran KHR; now NV
  log "GEMM tests and op benchmark on the NV cooperative-matrix kernels (VKD_COOPMAT=nv)"
  if VKD_COOPMAT=nv ctest --test-dir "$B" --output-on-failure -R 'test_op_(matmul|conv2d)' --timeout 300 \
       >"$OUT/ctest_nv.log" 2>&1; then log "tests (NV kernels): passed"; else log "tests (NV kernels): FAILURES"; fi
  VKD_COOPMAT=nv "$B/vkdiff" bench ops --repeat 5 | tee "$OUT/bench_ops_nv.md"
fi

CKPT=${VKD_SD15:-$OUT/sd15.safetensors}
if [[ ! -f "$CKPT" ]]; then
  log "making a full-size random SD1.5 checkpoint (fp16) at $CKPT"
  "$PY" tools/make_checkpoint.py sd15 "$CKPT" >"$OUT/make_checkpoint.log"
fi
TOK="$SHARED/clip/bpe_simple_vocab_16e6.txt.gz"
log "model benchmark: SD1.5 ${SIZE}x${SIZE}"
"$B/vkdiff" bench model -m "$CKPT" --tokenizer "$TOK" -W "$SIZE" -H "$SIZE" --repeat 5 \
  --append "$OUT/bench_rows.md" | tee "$OUT/bench_model.md"
"$B/vkdiff" bench model --record -m "$CKPT" --tokenizer "$TOK" -W "$SIZE" -H "$SIZE" | tee "$OUT/plan.md"
# the levers' before/after in the same run (developer knobs): no split-K, attention off
# cooperative matrices
log "model benchmark without split-K, then with attention on the flash kernel"
"$B/vkdiff" bench model -m "$CKPT" --tokenizer "$TOK" -W "$SIZE" -H "$SIZE" --repeat 5 --split-k 0 \
  | tee "$OUT/bench_model_nosplit.md" | grep -E "^\| UNet batch" || true
"$B/vkdiff" bench model -m "$CKPT" --tokenizer "$TOK" -W "$SIZE" -H "$SIZE" --repeat 5 --attention flash \
  | tee "$OUT/bench_model_flash.md" | grep -E "^\| UNet batch" || true
# issue 22: a typical kohya SD1.5 LoRA (264 modules) applied to and restored from a warm context
for R in 32 128; do
  "$PY" tools/make_lora.py "$CKPT" "$OUT/lora-r$R.safetensors" --rank "$R" --no-deltas >/dev/null &&
    "$B/vkdiff" bench lora -m "$CKPT" --tokenizer "$TOK" --lora "$OUT/lora-r$R.safetensors" --weight 0.01 \
      --repeat 3 -v 2>&1 | tee "$OUT/lora_r$R.txt" || true
done

VK_MS=$(sed -n 's/^| UNet batch 2 (guidance) | \([0-9.]*\) |.*/\1/p' "$OUT/bench_model.md")
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  log "PyTorch fp16 reference: the same UNet evaluation"
  # twice: the oracle's explicit softmax(QK^T)V, and torch's fused attention (its best)
  for variant in oracle sdpa; do
    flag=""; [[ $variant == sdpa ]] && flag=--sdpa
    "$PY" tools/gpu/time_unet.py --size "$SIZE" --batch 2 --repeat 10 $flag | tee "$OUT/pytorch_$variant.txt" || true
    PT_MS=$(sed -n 's/^PYTORCH_UNET_MS=//p' "$OUT/pytorch_$variant.txt")
    if [[ -n "$VK_MS" && -n "$PT_MS" ]]; then
      log "UNet batch 2 ${SIZE}x${SIZE}: vkdiff $VK_MS ms, PyTorch fp16 ($variant attention) $PT_MS ms, vkdiff / PyTorch = $(
        awk -v a="$VK_MS" -v b="$PT_MS" 'BEGIN { printf "%.2f", a / b }')"
    fi
  done
else
  log "no PyTorch with CUDA here: no reference timing"
fi
if [[ "${VKD_GPU_SDXL:-1}" != 0 ]]; then
  # issue 20: the SDXL 1024x1024 guided UNet evaluation against PyTorch fp16, same run
  XL=${VKD_SDXL:-$OUT/sdxl.safetensors}
  if [[ ! -f "$XL" ]]; then
    log "making a full-size random SDXL checkpoint (fp16) at $XL"
    "$PY" tools/make_checkpoint.py sdxl "$XL" >"$OUT/make_sdxl.log"
  fi
  log "model benchmark: SDXL 1024x1024"
  "$B/vkdiff" bench model -m "$XL" --tokenizer "$TOK" -W 1024 -H 1024 --repeat 5 \
    --append "$OUT/bench_rows.md" | tee "$OUT/bench_model_sdxl.md"
  XL_MS=$(sed -n 's/^| UNet batch 2 (guidance) | \([0-9.]*\) |.*/\1/p' "$OUT/bench_model_sdxl.md")
  if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    for variant in oracle sdpa; do
      flag=""; [[ $variant == sdpa ]] && flag=--sdpa
      "$PY" tools/gpu/time_unet.py --model sdxl --size 1024 --batch 2 --repeat 10 $flag \
        | tee "$OUT/pytorch_sdxl_$variant.txt" || true
      PT_MS=$(sed -n 's/^PYTORCH_UNET_MS=//p' "$OUT/pytorch_sdxl_$variant.txt")
      if [[ -n "$XL_MS" && -n "$PT_MS" ]]; then
        log "SDXL UNet batch 2 1024x1024: vkdiff $XL_MS ms, PyTorch fp16 ($variant attention) $PT_MS ms, vkdiff / PyTorch = $(
          awk -v a="$XL_MS" -v b="$PT_MS" 'BEGIN { printf "%.2f", a / b }')"
      fi
    done
  fi
fi
log "done: results in $OUT"
