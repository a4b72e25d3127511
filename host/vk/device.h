/* Vulkan instance + device: discovery, feature probing, selection, creation.
 *
 * One vkd_device owns: the instance (with the validation layer when asked), the
 * logical device and its compute queue, the memory allocator (memory.h), the
 * pipeline cache (pipeline.h) and a command pool (cmd.h). */
#ifndef VKD_DEVICE_H
#define VKD_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <volk.h>

#include "common/result.h"
#include "vk/kernel.h"

/* What a device can do, read once at creation. Every extension is optional. */
typedef struct vkd_device_caps {
    char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
    char driver[VK_MAX_DRIVER_NAME_SIZE + VK_MAX_DRIVER_INFO_SIZE + 4];
    VkPhysicalDeviceType type;
    uint32_t api_version;
    uint32_t vendor_id, device_id;
    uint32_t subgroup_size;
    /* VkSubgroupFeatureFlags usable in compute shaders (0 if compute is not among
     * the subgroup stages) */
    uint32_t subgroup_ops;
    bool fp16_arith;        /* shaderFloat16 */
    bool int64;             /* shaderInt64 (enabled when present) */
    bool int8_arith;        /* shaderInt8 */
    bool storage16;         /* storageBuffer16BitAccess: fp16 tensors in storage buffers */
    bool storage8;          /* storageBuffer8BitAccess */
    /* Cooperative matrices with 16 x N x 16 fp16 x fp16 + fp32 at subgroup scope, N the
     * value here (16, else 8; 0: not offered), with the shaderFloat16 and vulkanMemoryModel
     * features their SPIR-V needs (Vulkan 1.2+): the GEMM kernels of shaders/gemm.comp
     * DIRECT = 3 can run, matmul_cm / conv2d_cm on VK_NV_cooperative_matrix and
     * matmul_cmk / conv2d_cmk on VK_KHR_cooperative_matrix */
    uint32_t coopmat_nv;
    uint32_t coopmat_khr;
    bool coop_matrix_khr_ext; /* VK_KHR_cooperative_matrix offered at all (any shape) */
    bool memory_budget;     /* VK_EXT_memory_budget */
    /* compute pipelines can require a subgroup size in [subgroup_min, subgroup_max] with
     * full subgroups (subgroupSizeControl + computeFullSubgroups: Vulkan 1.3, or
     * VK_EXT_subgroup_size_control, then subgroup_size_ext); else min = max = subgroup_size */
    bool subgroup_size_control;
    bool subgroup_size_ext;
    uint32_t subgroup_min, subgroup_max;
    uint32_t max_wg_subgroups; /* maxComputeWorkgroupSubgroups (with subgroup_size_control) */
    bool timestamps;        /* compute queue supports timestamps */
    float timestamp_period; /* ns per tick */
    uint64_t max_alloc;     /* maxMemoryAllocationSize */
    uint64_t max_binding;   /* maxStorageBufferRange (possibly lowered by an override) */
    uint64_t ssbo_align;    /* minStorageBufferOffsetAlignment */
    uint64_t texel_align;   /* minTexelBufferOffsetAlignment */
    uint32_t max_texels;    /* maxTexelBufferElements */
    bool texel_rgba32ui;    /* R32G32B32A32_UINT uniform texel buffers (vk/cmd.h VKD_TEXEL_*) */
    uint32_t max_wg_invocations;
    uint32_t max_wg_count[3];
    uint32_t max_shared;    /* maxComputeSharedMemorySize */
    uint64_t device_local_bytes; /* size of the largest device-local heap */
    uint8_t pipeline_cache_uuid[VK_UUID_SIZE];
} vkd_device_caps;

typedef struct vkd_device_opts {
    int device_index;          /* -1: prefer discrete, then integrated, then virtual, then CPU */
    bool validation;           /* enable VK_LAYER_KHRONOS_validation (errors are counted) */
    bool force_fp32;           /* ignore 16-bit storage: run the fp32 path */
    bool timestamps;           /* record GPU timestamps per dispatch */
    uint64_t max_binding_override; /* >0: pretend maxStorageBufferRange is this (tests the split path) */
    uint64_t max_device_bytes; /* >0: refuse device memory past this many bytes, as a small GPU
                                * would (VKD_ERR_OUT_OF_DEVICE_MEMORY; tests the paths that meet it) */
    bool require_validation;   /* with validation: fail (VKD_ERR_NO_VULKAN... see below) when the
                                * layer is not installed, instead of warning (the test suite) */
    const char *cache_dir;     /* pipeline cache folder; NULL: no on-disk cache */
    const char *coopmat;       /* "off", "nv" or "khr" limits the cooperative-matrix kernels
                                * (vkd_kernel_profile_make); NULL: the device's best */
    /* Tests: every buffer vkd_buffer_create(_in) hands out -- the device's memory and its
     * activation pools, a range reused after a free included -- is first filled with
     * poison_pattern (repeated 32-bit word), so an op that reads memory it never wrote
     * (an output element it skips, scratch it assumes zeroed) gives different results over
     * different patterns (tests/harness.h test_poison_twice). Off: memory holds whatever
     * the driver or an earlier tensor left (lavapipe: zeros at first). */
    bool poison;
    uint32_t poison_pattern;
    vkd_knobs knobs;           /* developer knobs (vk/kernel.h): tests and benchmarks only */
    /* Tests: "mobile" runs with a phone GPU's limits and kernels (16 KiB shared memory, 256
     * invocations per workgroup, 1 GiB allocations, 128 MiB bindings, a GPU's device type)
     * on whatever device this is; NULL or "off": the device as it is. vkd_device_opts_init
     * takes it from the environment (VKD_EMULATE) */
    const char *emulate;
} vkd_device_opts;

void vkd_device_opts_init(vkd_device_opts *o);

struct vkd_memory;
struct vkd_pipelines;

typedef struct vkd_device {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice phys;
    VkDevice dev;
    VkQueue queue;
    uint32_t queue_family;
    VkCommandPool cmd_pool;
    VkPhysicalDeviceMemoryProperties memprops;
    vkd_device_caps caps;
    bool use_f16;                /* tensors are stored as fp16 (16-bit storage present, not forced off) */
    vkd_kernel_profile profile;  /* what the kernels may count on (vkd_kernel_profile_make) */
    vkd_knobs knobs;             /* vkd_device_opts.knobs: developer knobs, tests and benchmarks only */
    bool timestamps;
    uint32_t validation_layer;   /* VK_LAYER_KHRONOS_validation's specVersion when loaded, else 0 */
    uint32_t validation_errors;  /* validation messages of error severity seen so far */
    uint32_t validation_warnings;
    uint64_t max_device_bytes;   /* vkd_device_opts.max_device_bytes */
    struct vkd_memory *mem;
    struct vkd_pipelines *pipes;
    char cache_path[1024];       /* on-disk pipeline cache file, "" if none */
    bool poison;                 /* vkd_device_opts.poison; a test may change poison_pattern between runs */
    uint32_t poison_pattern;
} vkd_device;

/* The kernel profile of a device (vkd_device_create; exposed for tests over made-up
 * capabilities). The cooperative-matrix kernels the fp16 GEMMs take: the KHR extension's
 * where the device offers the shape (caps->coopmat_khr), the build has their SPIR-V
 * (khr_built: a shader compiler that knows the extension, CMakeLists.txt) and the device
 * can require full subgroups (caps->subgroup_size_control: the KHR modules are SPIR-V
 * 1.3), else the NV extension's, else none; none without fp16 storage (use_f16).
 * COOPMAT (vkd_device_opts.coopmat, the CLI's VKD_COOPMAT), if not NULL, limits the
 * choice: "off", "nv" or "khr" (to compare the two, or to rule them out). The rest
 * follows caps: the device type, subgroups, texel buffers (vk/kernel.h). */
vkd_kernel_profile vkd_kernel_profile_make(const vkd_device_caps *caps, bool use_f16, bool khr_built,
                                           const char *coopmat);

/* Create a device. On failure *out is NULL and the log says why, e.g. no driver
 * (VKD_ERR_NO_VULKAN / VKD_ERR_NO_DEVICE, naming the package that provides one). */
vkd_result vkd_device_create(const vkd_device_opts *opts, vkd_device **out);
/* Saves the pipeline cache, frees everything. Accepts NULL and half-built devices. */
void vkd_device_destroy(vkd_device *d);

/* Print every device with its type, driver, heaps, subgroup size and features. */
vkd_result vkd_device_list(FILE *f);

const char *vkd_device_type_str(VkPhysicalDeviceType t);

/* Bytes this process may use on the largest device-local heap: VK_EXT_memory_budget's
 * heapBudget where the driver has it (*from_driver = true), else the heap's size. */
uint64_t vkd_device_memory_budget(vkd_device *d, bool *from_driver);
/* Wait for the device to be idle (used before teardown and in tests). */
vkd_result vkd_device_wait_idle(vkd_device *d);

#endif
