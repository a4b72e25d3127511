#!/usr/bin/env bash
# Shader tools that know VK_KHR_cooperative_matrix, for a build with the *_cmk kernels on
# a system whose own are too old (Debian 12: glslang 12, SPIRV-Tools 2023.1). Fetches
# Debian 13's glslang-tools and spirv-tools, and the C and C++ runtimes they link
# against, unpacks them into DIR (nothing is installed) and writes wrappers that run them
# with their own loader. Then:
#   tools/khr-toolchain.sh DIR
#   cmake -S . -B build-gpu -G Ninja -DGLSLANG=DIR/bin/glslangValidator -DSPIRV_VAL=DIR/bin/spirv-val
# The configure step prints "VK_KHR_cooperative_matrix kernels: built". Only the build
# machine needs these tools: the SPIR-V is embedded in the binary.
set -euo pipefail
DIR=${1:?usage: tools/khr-toolchain.sh DIR}
MIRROR=${VKD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=${VKD_DEBIAN_SUITE:-trixie}
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
case "$ARCH" in
  amd64) TRIPLE=x86_64-linux-gnu LOADER=ld-linux-x86-64.so.2 ;;
  arm64) TRIPLE=aarch64-linux-gnu LOADER=ld-linux-aarch64.so.1 ;;
  *) echo "khr-toolchain: no recipe for $ARCH" >&2; exit 2 ;;
esac
mkdir -p "$DIR/debs" "$DIR/root" "$DIR/bin"
DIR=$(cd "$DIR" && pwd)
# the package index names each package's current file (versions move with updates)
curl -fsS "$MIRROR/dists/$SUITE/main/binary-$ARCH/Packages.xz" | xz -dc > "$DIR/Packages"
for pkg in glslang-tools spirv-tools libc6 libstdc++6 libgcc-s1; do
  file=$(awk -v P="$pkg" '$0 == "Package: " P {p = 1} p && /^Filename:/ {print $2; exit}' "$DIR/Packages")
  [[ -n "$file" ]] || { echo "khr-toolchain: $pkg not in $SUITE's index" >&2; exit 1; }
  deb="$DIR/debs/$(basename "$file")"
  if [[ ! -s "$deb" ]]; then # through a temporary name: an interrupted download is never reused
    curl -fsS -o "$deb.part" "$MIRROR/$file"
    mv "$deb.part" "$deb"
  fi
  dpkg-deb -x "$deb" "$DIR/root"
done
LIB="$DIR/root/usr/lib/$TRIPLE"
for tool in glslangValidator spirv-val spirv-dis; do
  printf '#!/bin/sh\nexec "%s/%s" --library-path "%s" "%s/root/usr/bin/%s" "$@"\n' \
    "$LIB" "$LOADER" "$LIB" "$DIR" "$tool" > "$DIR/bin/$tool"
  chmod +x "$DIR/bin/$tool"
done
"$DIR/bin/glslangValidator" --version | head -1
"$DIR/bin/spirv-val" --version | head -1
echo "khr-toolchain: cmake ... -DGLSLANG=$DIR/bin/glslangValidator -DSPIRV_VAL=$DIR/bin/spirv-val"
