#!/usr/bin/env bash
# Configure + compile check of the Android CMake path WITHOUT an NDK (see
# cmake/toolchains/android-stub.cmake for what that does and does not prove).
#
# It lays out what an Android builder has (docs/android.md): a sysroot with only the
# Vulkan headers, a volk checkout, a prebuilt cJSON (include/cjson/cJSON.h + lib), then
# configures with the stub toolchain, the documented cache variables and -Werror, and
# checks that:
#   - host/ calls nothing Bionic lacks at API 26, no x86 intrinsics, no /proc (grep);
#   - configure succeeds with no system cJSON, libpng, volk or OpenBLAS in reach (zlib
#     and the Vulkan headers from the sysroot, as the NDK has them);
#   - the ANDROID branch is taken (VK_USE_PLATFORM_ANDROID_KHR on the library);
#   - the library and the CLI compile and link (the CLI without PNG);
#   - nothing links libvulkan (volk loads it at run time).
# Ends with "android-stub: OK" or exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=${VKD_ANDROID_STUB_BUILD_DIR:-build-android-stub}
S="$ROOT/$B/stub"
fail() { echo "android-stub: FAIL: $*"; exit 1; }

# ---- source check: what Bionic at android-26 or a non-x86 CPU lacks ------------------------
# Bionic declares these only from the API level in brackets (its headers guard them with
# __INTRODUCED_IN), so an android-26 build fails on them: timespec_get [29],
# aligned_alloc [28], getrandom/getentropy [28], glob [28], reallocarray [29]. The rest
# are glibc-only (qsort_r's argument order differs from the BSDs', fopencookie,
# mallinfo, program_invocation_name, <execinfo.h>), x86-only (intrinsics headers,
# __builtin_ia32_*, cpuid), or assume /proc (absent or restricted for Android apps).
bad='\b(timespec_get|aligned_alloc|getrandom|getentropy|glob|reallocarray|qsort_r|fopencookie|mallinfo2?|program_invocation_(short_)?name)[[:space:]]*\(|<(x86intrin|immintrin|emmintrin|xmmintrin|smmintrin|cpuid|execinfo)\.h>|__builtin_ia32_|"/proc/'
if hits=$(grep -rnE "$bad" host --include='*.c' --include='*.h'); then
    echo "$hits"
    fail "host/ uses something Bionic (android-26) or non-x86 targets lack (above)"
fi

rm -rf "$S"
mkdir -p "$S/sysroot/usr/include" "$S/volk" "$S/cjson/include/cjson" "$S/cjson/lib"
# The NDK sysroot ships the Vulkan headers (usr/include/vulkan) and zlib (a stable NDK
# API); nothing else we use.
for d in vulkan vk_video zlib.h; do
    [[ -e /usr/include/$d ]] && ln -s "/usr/include/$d" "$S/sysroot/usr/include/$d"
done
mkdir -p "$S/sysroot/usr/lib"
ln -s "/usr/lib/$(gcc -print-multiarch)/libz.so" "$S/sysroot/usr/lib/libz.so"
cp /usr/include/volk.c /usr/include/volk.h "$S/volk/"
# Stand-in for a cJSON built with the NDK: the host's header and library.
cp /usr/include/cjson/cJSON.h "$S/cjson/include/cjson/"
ln -s "/usr/lib/$(gcc -print-multiarch)/libcjson.so" "$S/cjson/lib/libcjson.so"

rm -f "$B/CMakeCache.txt"
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKD_WERROR=ON -DVKD_TESTS=OFF \
      -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/android-stub.cmake" \
      -DVKD_STUB_SYSROOT="$S/sysroot" \
      -DVOLK_DIR="$S/volk" \
      -DCJSON_INCLUDE="$S/cjson/include" -DCJSON_LIB="$S/cjson/lib/libcjson.so" >"$B/configure.log" 2>&1 ||
    { cat "$B/configure.log"; fail "configure"; }

cache() { sed -n "s/^$1:[A-Z]*=//p" "$B/CMakeCache.txt"; }
[[ "$(cache VULKAN_HDR)" == "$S/sysroot/usr/include" ]] || fail "Vulkan headers not from the sysroot: $(cache VULKAN_HDR)"
[[ "$(cache PNG_LIBRARY_RELEASE)" == *NOTFOUND* ]] || fail "libpng found outside the sysroot: $(cache PNG_LIBRARY_RELEASE)"
[[ "$(cache OPENBLAS_LIB)" == *NOTFOUND* ]] || fail "OpenBLAS found outside the sysroot: $(cache OPENBLAS_LIB)"
grep -q 'VK_USE_PLATFORM_ANDROID_KHR' "$B/build.ninja" || fail "the ANDROID branch did not define VK_USE_PLATFORM_ANDROID_KHR"
grep -q 'VKD_HAVE_PNG' "$B/build.ninja" && fail "the CLI is built with PNG"

cmake --build "$B" -j"${VKD_JOBS:-2}" || fail "build"
if readelf -d "$B/vkdiff" | grep -qE 'NEEDED.*(libvulkan|libpng)'; then
    fail "vkdiff links $(readelf -d "$B/vkdiff" | grep -oE 'lib(vulkan|png)[^]]*' | tr '\n' ' ')"
fi
echo "android-stub: OK (configure + library + CLI with the stub toolchain; not an NDK build)"
