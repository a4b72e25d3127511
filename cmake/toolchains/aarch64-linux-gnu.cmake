# Cross-compile for 64-bit Arm Linux with Debian's multiarch cross toolchain.
#
#   apt-get install gcc-aarch64-linux-gnu qemu-user libcjson-dev:arm64 libpng-dev:arm64
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
#
# (tools/cross/aarch64.sh does all of it and runs the tests.) Libraries come from the
# arm64 multiarch packages in /usr/lib/aarch64-linux-gnu; headers that are the same on
# every architecture (Vulkan, volk, cJSON) are the host's in /usr/include, which the
# cross gcc searches after /usr/include/aarch64-linux-gnu. Build tools (glslangValidator,
# spirv-val) are the host's: shaders are SPIR-V, not machine code.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(VKD_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${VKD_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${VKD_CROSS_TRIPLE}-g++)
# find_library looks in <prefix>/lib/<this>: /usr/lib/aarch64-linux-gnu, never the host's
# /usr/lib/x86_64-linux-gnu (whose libraries the cross linker would reject anyway).
set(CMAKE_LIBRARY_ARCHITECTURE ${VKD_CROSS_TRIPLE})

# ctest runs each test executable through qemu-user: no binfmt_misc registration needed.
# -L points qemu at the cross libc's loader; the multiarch libraries are found by the
# arm64 loader in /usr/lib/aarch64-linux-gnu.
find_program(VKD_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(VKD_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${VKD_QEMU_AARCH64} -L /usr/${VKD_CROSS_TRIPLE})
endif()

# Programs run here; libraries and headers are the target's (multiarch paths above).
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
