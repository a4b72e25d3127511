/* Compute pipelines, created on first use and keyed by (shader, specialization
 * constants, binding count); a VkPipelineCache saved to disk between runs.
 *
 * Shader conventions (shaders/common.glsl):
 *   - set 0, bindings 0..n_bindings-1, each a storage buffer or, where the pipeline's
 *     texel mask has its bit, a uniform texel buffer (vk/cmd.h binds those as views);
 *     both from the kernel manifest (shaders/kernels.txt, vk/kernel.h);
 *   - specialization constants 0,1,2 are local_size_x/y/z; 3.. are per-shader;
 *   - one push-constant block of at most VKD_PUSH_MAX bytes (structs in host/ops/push.h). */
#ifndef VKD_PIPELINE_H
#define VKD_PIPELINE_H

#include <stdint.h>
#include <volk.h>

#include "vk/device.h"

#define VKD_PUSH_MAX 128
#define VKD_MAX_SPEC 12
#define VKD_MAX_BINDINGS 8

typedef struct vkd_pipeline {
    VkPipeline pipeline;
    VkPipelineLayout layout;
    VkDescriptorSetLayout set_layout;
    uint32_t n_bindings;
    uint32_t texel_mask; /* bit i: binding i is a uniform texel buffer */
    uint32_t local[3];
    char name[64];
} vkd_pipeline;

typedef struct vkd_pipeline_stats {
    uint32_t created;       /* pipelines created in this run */
    double create_ms;       /* wall time spent creating them */
    uint64_t cache_bytes_loaded;
} vkd_pipeline_stats;

vkd_result vkd_pipelines_create(vkd_device *d, struct vkd_pipelines **out);
/* Saves the on-disk cache (when the device has a cache path) and frees everything. */
void vkd_pipelines_destroy(vkd_device *d, struct vkd_pipelines *p);

/* Get or create the pipeline for variant VARIANT (VKD_VARIANT_F32 / F16, as vkd_dtype) of
 * kernel K, with spec constants spec[0..n_spec-1] (spec[0..2] = local size), its bindings
 * and texel mask from the manifest (vk/kernel.h), running in full subgroups of SUBGROUP
 * invocations (0: the driver's choice; else device->caps.subgroup_size_control must allow
 * it, and the workgroup's x size, spec[0], be a multiple of it). VKD_ERR_NO_SHADER where
 * this build lacks the variant. */
vkd_result vkd_pipeline_get(vkd_device *d, vkd_kernel k, uint32_t variant, const uint32_t *spec, uint32_t n_spec,
                            uint32_t subgroup, const vkd_pipeline **out);

void vkd_pipeline_stats_get(const vkd_device *d, vkd_pipeline_stats *s);
/* Writes the cache file now (also done at destroy). */
vkd_result vkd_pipeline_cache_save(vkd_device *d);

#endif
