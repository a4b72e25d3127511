#!/usr/bin/env bash
# The main command (README): installs what is missing, builds vkdiff, and runs it.
# For now it lists the Vulkan devices; arguments are passed to vkdiff.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
if [[ $# -eq 0 ]]; then
  exec ./build/vkdiff --list-devices
fi
exec ./build/vkdiff "$@"
