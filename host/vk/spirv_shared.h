/* The workgroup (shared) memory a compute kernel uses once specialized, read from its
 * SPIR-V (spirv_shared.c), so that pipeline creation can hold every kernel to the
 * device's maxComputeSharedMemorySize -- or to a lower, emulated one (vk/device.h
 * vkd_device_opts.emulate) -- before a driver meets it. */
#ifndef VKD_SPIRV_SHARED_H
#define VKD_SPIRV_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "common/result.h"

/* Bytes of Workgroup-class variables in the module code[0 .. n_words), with spec
 * constant i (SpecId i) taking spec[i] for i < n_spec, the others their defaults.
 * VKD_ERR_INTERNAL (logged) on a module or an array size it cannot evaluate. */
vkd_result vkd_spirv_shared_bytes(const uint32_t *code, size_t n_words, const uint32_t *spec, uint32_t n_spec,
                                  uint64_t *bytes);

#endif
