#!/usr/bin/env bash
# Installs what vkdiff needs to build and test, when it is missing (Debian/Ubuntu).
# Usage: tools/deps.sh [--test]   (--test adds the validation layers, clang for fuzzing, torch for the oracle,
#                                  dpkg-dev for the .deb's dependencies: tests/install_test.sh, and for the
#                                  server's tests (tests/serve): node 18+ with npm, nginx, chromium, curl,
#                                  then `npm ci` in tests/serve)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkgs=(cmake ninja-build gcc pkg-config libvulkan-dev libvulkan-volk-dev glslang-tools spirv-tools
      libpng-dev libjpeg62-turbo-dev libcjson-dev zlib1g-dev libopenblas-dev mesa-vulkan-drivers libmicrohttpd-dev)
if [[ "${1:-}" == "--test" ]]; then
  pkgs+=(vulkan-validationlayers clang libclang-rt-dev python3 python3-numpy dpkg-dev chromium curl)
  # node, npm and nginx already there are kept (nodesource's nodejs bundles npm: Debian's npm would fight it)
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx-light)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "vkdiff: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [[ "${1:-}" == "--test" && ! -d "$root/tests/serve/node_modules" ]]; then
  echo "vkdiff: npm ci in tests/serve"
  npm ci --no-audit --no-fund --prefix "$root/tests/serve"
fi
