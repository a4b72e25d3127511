#!/usr/bin/env bash
# Builds build-gpu for tools/gpu/run.sh on a machine that has the network and the
# shader tools (the GPU machines lent here have neither glslang nor the network): a
# Release build with the VK_KHR_cooperative_matrix kernels, their shader tools fetched
# by tools/khr-toolchain.sh when the system's are too old (Debian 12). Then carry
# build-gpu to the GPU machine and run VKD_GPU_PREBUILT=1 tools/gpu/run.sh there.
#   tools/gpu/prepare.sh                  tools in ${VKD_KHR_TOOLS:-$HOME/.cache/vkd-khr-tools}
#   VKD_GPU_NO_KHR=1 tools/gpu/prepare.sh the system's tools as they are (NV kernels only)
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build-gpu
args=(-S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release)
if [[ -z "${VKD_GPU_NO_KHR:-}" ]]; then
  T=${VKD_KHR_TOOLS:-$HOME/.cache/vkd-khr-tools}
  [[ -x "$T/bin/glslangValidator" && -x "$T/bin/spirv-val" ]] || tools/khr-toolchain.sh "$T"
  args+=(-DGLSLANG="$T/bin/glslangValidator" -DSPIRV_VAL="$T/bin/spirv-val")
fi
mkdir -p "$B"
cmake "${args[@]}" > "$B/configure.log" || { cat "$B/configure.log"; exit 1; }
grep "cooperative_matrix" "$B/configure.log" || true
cmake --build "$B" -j"$(nproc)"
ls "$B"/spv/*_cmk_* >/dev/null 2>&1 && echo "prepare: build-gpu has the KHR cooperative-matrix kernels" ||
  echo "prepare: build-gpu has no KHR cooperative-matrix kernels (NV only)"
echo "prepare: carry build-gpu; on the GPU machine: VKD_GPU_PREBUILT=1 tools/gpu/run.sh"
