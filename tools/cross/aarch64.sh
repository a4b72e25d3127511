#!/usr/bin/env bash
# aarch64 Linux: cross-build the library, the CLI and the tests with -Werror using
# Debian's cross toolchain, then run under qemu-user every test that needs no GPU.
#
#   tools/cross/aarch64.sh            build, CPU tests, Vulkan smoke test (what CI runs)
#   VKD_CROSS_VULKAN=smoke|none|all   smoke (default): `vkdiff --list-devices` on arm64
#                                     lavapipe under qemu (volk -> libvulkan.so.1 -> ICD);
#                                     all: also every Vulkan test there (far too slow
#                                     today: llvmpipe's LLVM JIT runs emulated, and the
#                                     first compute pipeline of test_op_eltwise did not
#                                     finish in 400 s); none: no arm64 Vulkan packages
#   VKD_CROSS_BUILD_DIR=dir           build folder (default build-aarch64)
#   VKD_CROSS_TIMEOUT=s               per-test limit under qemu (default 600)
#
# Idempotent: installs only what is missing, reuses the build folder. Ends with one line
# "aarch64: N passed, M failed" and exits non-zero when anything failed.
#
# Which tests need a GPU is read from the test's source (it opens a device through the
# harness or includes a vk/ or ops/ header), so a new CPU-only test runs here without an
# edit to this file.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=${VKD_CROSS_BUILD_DIR:-build-aarch64}
TRIPLE=aarch64-linux-gnu
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO=sudo

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
apt_install() {
    local missing=() p
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    echo "aarch64: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---- toolchain and arm64 libraries ------------------------------------------------
# Host side: the cross gcc and qemu-user (run as `qemu-aarch64 -L ...`: no binfmt_misc).
# Target side: the libraries we link (cJSON; libpng + zlib for the CLI and tests) as arm64
# multiarch packages. Vulkan and volk headers are architecture-independent: the host's
# libvulkan-dev / libvulkan-volk-dev serve (tools/deps.sh installs them); libvulkan is
# never linked (volk loads it at run time). glslangValidator and spirv-val run on the host.
tools/deps.sh
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "aarch64: adding the arm64 architecture to dpkg"
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -qq
fi
cross_pkgs=("gcc-$TRIPLE" qemu-user libcjson-dev:arm64 libpng-dev:arm64 zlib1g-dev:arm64 libmicrohttpd-dev:arm64)
for p in "${cross_pkgs[@]}"; do
    if ! installed "$p"; then $SUDO apt-get update -qq; break; fi
done
apt_install "${cross_pkgs[@]}"

# ---- build ----------------------------------------------------------------------------
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKD_WERROR=ON \
      -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/$TRIPLE.cmake" >/dev/null
cmake --build "$B" -j"${VKD_JOBS:-$(nproc)}"
file "$B/vkdiff" | grep -q 'ARM aarch64' || { echo "aarch64: $B/vkdiff is not an aarch64 binary"; exit 1; }

# ---- which tests ------------------------------------------------------------------------
cpu_tests=() gpu_tests=()
for src in tests/test_*.c; do
    t=$(basename "$src" .c)
    # (golden_ctx, stage_begin: tests/golden*.c make the context or device for the test)
    if grep -qE 'test_device_open|vkd_device_create|vkd_ctx_create|golden_ctx|stage_begin|#include "(vk|ops)/' "$src"; then
        gpu_tests+=("$t")
    else
        cpu_tests+=("$t")
    fi
done

# ---- Vulkan on arm64 lavapipe, private to the build folder -------------------------------
# The arm64 mesa-vulkan-drivers package is NOT installed system-wide: its ICD manifests in
# /usr/share/vulkan/icd.d would be read by the host's x86-64 loader too, which then logs
# an error for each arm64 driver it cannot load, and the test harness counts those as
# validation errors (every host Vulkan test fails). The .deb is unpacked under the build
# folder and named to the arm64 loader with VK_ICD_FILENAMES; only its arm64 library
# dependencies (inert for the host) are installed. Validation is off: there is no arm64
# validation layer installed, and it would multiply the emulated time.
mode=${VKD_CROSS_VULKAN:-smoke}
env_gpu=()
if [[ "$mode" != none ]]; then
    deps=$(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
               --no-replaces --no-enhances mesa-vulkan-drivers:arm64 |
           awk '$1 ~ /Depends:/ && $2 ~ /:arm64$/ {print $2}')
    # shellcheck disable=SC2086
    apt_install libvulkan1:arm64 $deps
    lvp="$ROOT/$B/lvp"
    if [[ ! -f "$lvp/lvp_icd.aarch64.json" ]]; then
        rm -rf "$lvp" && mkdir -p "$lvp"
        (cd "$lvp" && apt-get download mesa-vulkan-drivers:arm64 >/dev/null 2>&1 &&
         dpkg-deb -x mesa-vulkan-drivers_*_arm64.deb root)
        sed "s#/usr/lib/$TRIPLE/#$lvp/root/usr/lib/$TRIPLE/#" \
            "$lvp/root/usr/share/vulkan/icd.d/lvp_icd.aarch64.json" > "$lvp/lvp_icd.aarch64.json"
    fi
    env_gpu=(VK_ICD_FILENAMES="$lvp/lvp_icd.aarch64.json" VK_DRIVER_FILES="$lvp/lvp_icd.aarch64.json"
             VKD_NO_VALIDATION=1)
fi
[[ "$mode" == all ]] || gpu_tests=()

# ---- run ------------------------------------------------------------------------------------
# Through ctest, so each test gets exactly the environment CMakeLists.txt gives it; the
# toolchain file's CMAKE_CROSSCOMPILING_EMULATOR makes ctest start it under qemu-aarch64.
passed=0 failed=0 failed_names=()
run_ctest() { # regex, then VAR=value... for the tests' environment
    local regex=$1 log out total nfail
    shift
    log="$B/ctest-aarch64.log"
    set +e
    out=$(env "$@" ctest --test-dir "$B" -R "$regex" --output-on-failure -j1 \
              --timeout "${VKD_CROSS_TIMEOUT:-600}" 2>&1)
    set -e
    printf '%s\n' "$out" >>"$log"
    printf '%s\n' "$out" | grep -E 'Test +#|FAIL|failed' | grep -v '^ok' | sed 's/^/aarch64: /'
    total=$(printf '%s\n' "$out" | sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p')
    nfail=$(printf '%s\n' "$out" | sed -n 's/.*, \([0-9]*\) tests failed out of.*/\1/p')
    if [[ -z "$total" ]]; then # ctest found nothing or crashed: count it as a failure
        failed=$((failed + 1)); failed_names+=("ctest -R $regex"); return
    fi
    passed=$((passed + total - nfail)); failed=$((failed + nfail))
    mapfile -t names < <(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) .*/\1/p')
    failed_names+=("${names[@]}")
}
rm -f "$B/ctest-aarch64.log"
join() { local IFS='|'; echo "$*"; }
((${#cpu_tests[@]})) && run_ctest "^($(join "${cpu_tests[@]}"))\$"
# The CLI's device listing (ctest's cli_list_devices): the arm64 build finds
# libvulkan.so.1 through volk, creates an instance and queries lavapipe.
[[ "$mode" != none ]] && run_ctest '^cli_list_devices$' "${env_gpu[@]}"
((${#gpu_tests[@]})) && run_ctest "^($(join "${gpu_tests[@]}"))\$" "${env_gpu[@]}"

echo "aarch64: CPU tests: ${cpu_tests[*]}; Vulkan: $mode${gpu_tests:+ (${gpu_tests[*]})}; log: $B/ctest-aarch64.log"
echo "aarch64: $passed passed, $failed failed${failed_names:+ (${failed_names[*]})}"
((failed == 0))
