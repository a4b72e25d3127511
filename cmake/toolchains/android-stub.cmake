# NOT an Android build. This stands in for the NDK's android.toolchain.cmake on machines
# without an NDK (CI here), so that the ANDROID branches of CMakeLists.txt and the cache
# variables docs/android.md tells Android builders to pass are configured and compiled
# (tools/cross/android-configure.sh). It does what the NDK file does to find_*: looks
# for headers, libraries and packages only under a sysroot (VKD_STUB_SYSROOT, which the
# script fills with what the NDK sysroot has: the Vulkan headers, no cJSON, no libpng,
# no volk, no OpenBLAS), and for programs (glslangValidator, spirv-val) on the host.
#
# What it cannot do: the compiler is still the host gcc against glibc, so it proves
# nothing about Bionic or the NDK's clang; see docs/android.md for what is verified.
set(CMAKE_SYSTEM_NAME Linux)
set(ANDROID TRUE)
set(ANDROID_ABI arm64-v8a)
set(ANDROID_PLATFORM android-26)

if(NOT VKD_STUB_SYSROOT)
  set(VKD_STUB_SYSROOT $ENV{VKD_STUB_SYSROOT})
endif()
if(NOT VKD_STUB_SYSROOT)
  message(FATAL_ERROR "android-stub.cmake: set VKD_STUB_SYSROOT (tools/cross/android-configure.sh does)")
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES VKD_STUB_SYSROOT)  # try_compile re-reads this file
set(CMAKE_FIND_ROOT_PATH ${VKD_STUB_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
