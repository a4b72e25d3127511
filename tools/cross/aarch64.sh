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
cross_pkgs=("gcc-$TRIPLE" qemu-user libcjson-dev:arm64 libpng-dev:arm64 zlib1g-dev:arm64)
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
    if grep -qE 'test_device_open|vkd_device_create|#include "(vk|ops)/' "$src"; then
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

# ---- run ----------------------------------------------------------------------------------
# Each test is run by hand (not ctest) so the CPU set needs no ctest label and the GPU
# set gets its own environment; the harness environment is ctest's.
QEMU=(qemu-aarch64 -L "/usr/$TRIPLE")
export VKD_TEST_DATA="$ROOT/tests/data" VKD_SHARED="$ROOT/../shared" VKD_BUILD="$ROOT/$B" VKD_SOURCE="$ROOT"
passed=0 failed=0 failed_names=()
run_one() { # name, then VAR=value... environment, then program arguments
    local t=$1 start rc log envs=() args=()
    shift
    while (($#)) && [[ "$1" == *=* ]]; do envs+=("$1"); shift; done
    args=("$@")
    log="$B/$t.qemu.log"
    start=$(date +%s)
    set +e
    env "${envs[@]}" timeout "${VKD_CROSS_TIMEOUT:-600}" "${QEMU[@]}" "$B/$t" "${args[@]}" >"$log" 2>&1
    rc=$?
    set -e
    if ((rc == 0)); then
        passed=$((passed + 1))
        echo "aarch64: PASS $t ($(($(date +%s) - start)) s)"
    else
        failed=$((failed + 1))
        failed_names+=("$t")
        echo "aarch64: FAIL $t (exit $rc, $(($(date +%s) - start)) s); last lines of $log:"
        grep -v '^ok' "$log" | tail -20 | sed 's/^/    /'
    fi
}
for t in "${cpu_tests[@]}"; do run_one "$t"; done
if [[ "$mode" != none ]]; then
    # The CLI's device listing: the arm64 build finds libvulkan.so.1 through volk, creates
    # an instance and queries lavapipe. Same check as ctest's cli_list_devices.
    run_one vkdiff "${env_gpu[@]}" --list-devices
    grep -qE '16-bit storage: +(yes|no)' "$B/vkdiff.qemu.log" ||
        { passed=$((passed - 1)); failed=$((failed + 1)); failed_names+=("vkdiff --list-devices (output)"); }
fi
for t in "${gpu_tests[@]}"; do run_one "$t" "${env_gpu[@]}"; done

echo "aarch64: CPU tests: ${cpu_tests[*]}; Vulkan: $mode${gpu_tests:+ (${gpu_tests[*]})}"
echo "aarch64: $passed passed, $failed failed${failed_names:+ (${failed_names[*]})}"
((failed == 0))
