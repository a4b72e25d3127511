/* Pipeline creation and the on-disk pipeline cache. See pipeline.h. */
#define _POSIX_C_SOURCE 200809L /* getpid, mkdir */
#include "vk/pipeline.h"

#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "vk/kernel.h"
#include "vk/spirv_shared.h"
#include "vk/vk_util.h"

typedef struct entry {
    vkd_kernel kernel;
    uint32_t variant;
    uint32_t spec[VKD_MAX_SPEC];
    uint32_t n_spec;
    uint32_t subgroup; /* required subgroup size (full subgroups), 0: the driver's choice */
    vkd_pipeline p;
} entry;

/* A layout with some bindings as uniform texel buffers, made on first use. */
typedef struct texel_layout {
    uint32_t n_bindings, mask;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
} texel_layout;
#define MAX_TEXEL_LAYOUTS 8

typedef struct vkd_pipelines {
    VkPipelineCache cache;
    VkDescriptorSetLayout set_layouts[VKD_MAX_BINDINGS + 1];
    VkPipelineLayout layouts[VKD_MAX_BINDINGS + 1];
    texel_layout texel[MAX_TEXEL_LAYOUTS];
    uint32_t n_texel;
    VkShaderModule modules[VKD_KERNEL_COUNT][VKD_VARIANTS]; /* created lazily */
    entry *entries;
    uint32_t n, cap;
    vkd_pipeline_stats stats;
} vkd_pipelines;

static void *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    void *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        if (len > 0 && len < (1l << 30) && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)len);
            if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
                free(buf);
                buf = NULL;
            }
            *n = (size_t)len;
        }
    }
    fclose(f);
    return buf;
}

/* Set and pipeline layout of n storage buffers, those in texel_mask uniform texel buffers. */
static vkd_result make_layout(vkd_device *d, uint32_t n, uint32_t texel_mask, VkDescriptorSetLayout *set_layout,
                              VkPipelineLayout *layout)
{
    VkDescriptorSetLayoutBinding bind[VKD_MAX_BINDINGS];
    for (uint32_t i = 0; i < n; i++)
        bind[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                                 .descriptorType = (texel_mask >> i & 1u)
                                                                       ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                                                       : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                                 .descriptorCount = 1,
                                                 .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = n, .pBindings = bind};
    VK_TRY(vkCreateDescriptorSetLayout(d->dev, &lci, NULL, set_layout));
    VkPushConstantRange pr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, VKD_PUSH_MAX};
    VkPipelineLayoutCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                      .setLayoutCount = 1, .pSetLayouts = set_layout,
                                      .pushConstantRangeCount = 1, .pPushConstantRanges = &pr};
    VkResult r = vkCreatePipelineLayout(d->dev, &pci, NULL, layout);
    if (r != VK_SUCCESS) {
        vkDestroyDescriptorSetLayout(d->dev, *set_layout, NULL);
        *set_layout = VK_NULL_HANDLE;
    }
    VK_TRY(r);
    return VKD_OK;
}

vkd_result vkd_pipelines_create(vkd_device *d, vkd_pipelines **out)
{
    vkd_pipelines *p = calloc(1, sizeof *p);
    if (!p)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    *out = p;
    size_t n = 0;
    void *data = d->cache_path[0] ? read_file(d->cache_path, &n) : NULL;
    /* The driver validates the header (vendor, device, UUID) and ignores a foreign blob. */
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                    .initialDataSize = data ? n : 0, .pInitialData = data};
    VkResult r = vkCreatePipelineCache(d->dev, &ci, NULL, &p->cache);
    if (r != VK_SUCCESS && data) {
        VKD_WARN("pipeline cache %s rejected (%s); starting empty", d->cache_path, vkd_vk_result_name(r));
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = vkCreatePipelineCache(d->dev, &ci, NULL, &p->cache);
    }
    if (r == VK_SUCCESS && data)
        p->stats.cache_bytes_loaded = n;
    free(data);
    VK_TRY(r);
    for (uint32_t b = 1; b <= VKD_MAX_BINDINGS; b++) {
        vkd_result res = make_layout(d, b, 0, &p->set_layouts[b], &p->layouts[b]);
        if (res)
            return res;
    }
    return VKD_OK;
}

vkd_result vkd_pipeline_cache_save(vkd_device *d)
{
    vkd_pipelines *p = d->pipes;
    if (!p || !p->cache || !d->cache_path[0] || p->stats.created == 0)
        return VKD_OK;
    size_t n = 0;
    VK_TRY(vkGetPipelineCacheData(d->dev, p->cache, &n, NULL));
    void *buf = malloc(n ? n : 1);
    if (!buf)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result res = VKD_OK;
    VkResult r = vkGetPipelineCacheData(d->dev, p->cache, &n, buf);
    if (r == VK_SUCCESS) {
        /* write to a temporary name and rename, so a crash never leaves half a cache */
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", d->cache_path, (long)getpid()); /* two processes may save at once */
        FILE *f = fopen(tmp, "wb");
        if (f && fwrite(buf, 1, n, f) == n && fclose(f) == 0) {
            if (rename(tmp, d->cache_path) != 0)
                remove(tmp);
        } else {
            if (f)
                fclose(f);
            remove(tmp);
            VKD_WARN("could not write the pipeline cache %s", d->cache_path);
            res = VKD_ERR_IO;
        }
    }
    free(buf);
    return res;
}

void vkd_pipelines_destroy(vkd_device *d, vkd_pipelines *p)
{
    if (!p)
        return;
    vkd_pipeline_cache_save(d);
    for (uint32_t i = 0; i < p->n; i++)
        vkDestroyPipeline(d->dev, p->entries[i].p.pipeline, NULL);
    free(p->entries);
    for (uint32_t k = 0; k < VKD_KERNEL_COUNT; k++)
        for (uint32_t v = 0; v < VKD_VARIANTS; v++)
            if (p->modules[k][v])
                vkDestroyShaderModule(d->dev, p->modules[k][v], NULL);
    for (uint32_t i = 0; i < p->n_texel; i++) {
        vkDestroyPipelineLayout(d->dev, p->texel[i].layout, NULL);
        vkDestroyDescriptorSetLayout(d->dev, p->texel[i].set_layout, NULL);
    }
    for (uint32_t b = 0; b <= VKD_MAX_BINDINGS; b++) {
        if (p->layouts[b])
            vkDestroyPipelineLayout(d->dev, p->layouts[b], NULL);
        if (p->set_layouts[b])
            vkDestroyDescriptorSetLayout(d->dev, p->set_layouts[b], NULL);
    }
    if (p->cache)
        vkDestroyPipelineCache(d->dev, p->cache, NULL);
    free(p);
}

static vkd_result module_get(vkd_device *d, vkd_kernel k, uint32_t variant, VkShaderModule *out)
{
    vkd_pipelines *p = d->pipes;
    if (!vkd_kernel_built(k, variant)) {
        VKD_ERROR("kernel %s has no %s variant in this build", (unsigned)k < VKD_KERNEL_COUNT ? vkd_kernel_table[k].name : "?",
                  variant == VKD_VARIANT_F16 ? "f16" : "f32");
        return VKD_ERR_NO_SHADER;
    }
    if (!p->modules[k][variant]) {
        VkShaderModuleCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                       .codeSize = *vkd_kernel_table[k].spirv_bytes[variant],
                                       .pCode = vkd_kernel_table[k].spirv[variant]};
        VK_TRY(vkCreateShaderModule(d->dev, &ci, NULL, &p->modules[k][variant]));
    }
    *out = p->modules[k][variant];
    return VKD_OK;
}

vkd_result vkd_pipeline_get(vkd_device *d, vkd_kernel k, uint32_t variant, const uint32_t *spec, uint32_t n_spec,
                            uint32_t subgroup, const vkd_pipeline **out)
{
    if ((unsigned)k >= VKD_KERNEL_COUNT || variant >= VKD_VARIANTS)
        return VKD_ERR_INTERNAL;
    const char *name = vkd_kernel_table[k].name;
    uint32_t n_bindings = vkd_kernel_table[k].bindings, texel_mask = vkd_kernel_table[k].texel_mask;
    vkd_pipelines *p = d->pipes;
    if (n_spec < 3 || n_spec > VKD_MAX_SPEC || n_bindings < 1 || n_bindings > VKD_MAX_BINDINGS ||
        (texel_mask >> n_bindings) != 0)
        return VKD_ERR_INTERNAL;
    if (subgroup && (!d->caps.subgroup_size_control || subgroup < d->caps.subgroup_min ||
                     subgroup > d->caps.subgroup_max || spec[0] % subgroup ||
                     (uint64_t)spec[0] * spec[1] * spec[2] > (uint64_t)subgroup * d->caps.max_wg_subgroups)) {
        VKD_ERROR("%s: subgroup size %u cannot be required here", name, subgroup);
        return VKD_ERR_INTERNAL;
    }
    for (uint32_t i = 0; i < p->n; i++) {
        entry *e = &p->entries[i];
        if (e->kernel == k && e->variant == variant && e->n_spec == n_spec && e->subgroup == subgroup &&
            !memcmp(e->spec, spec, n_spec * 4)) {
            *out = &e->p;
            return VKD_OK;
        }
    }
    uint64_t inv = (uint64_t)spec[0] * spec[1] * spec[2];
    if (inv == 0 || inv > d->caps.max_wg_invocations) {
        VKD_ERROR("%s: workgroup %ux%ux%u exceeds this device's %u invocations", name, spec[0], spec[1], spec[2],
                  d->caps.max_wg_invocations);
        return VKD_ERR_INTERNAL;
    }
    /* Shared memory, as the kernel's specialization sizes it: a kernel past the limit
     * (the device's, or the emulated phone's of vkd_device_opts.emulate) is refused here,
     * by name, rather than left to a driver that may fail it or not */
    uint64_t shared = 0;
    vkd_result res = vkd_kernel_built(k, variant)
                         ? vkd_spirv_shared_bytes(vkd_kernel_table[k].spirv[variant],
                                                  *vkd_kernel_table[k].spirv_bytes[variant] / 4, spec, n_spec, &shared)
                         : VKD_ERR_INTERNAL;
    if (res)
        return res;
    if (shared > d->caps.max_shared) {
        VKD_ERROR("%s: %llu bytes of shared memory exceed this device's %u (workgroup %ux%ux%u)", name,
                  (unsigned long long)shared, d->caps.max_shared, spec[0], spec[1], spec[2]);
        return VKD_ERR_INTERNAL;
    }
    VkShaderModule mod = VK_NULL_HANDLE;
    res = module_get(d, k, variant, &mod);
    if (res)
        return res;
    VkPipelineLayout layout = p->layouts[n_bindings];
    VkDescriptorSetLayout set_layout = p->set_layouts[n_bindings];
    if (texel_mask) {
        uint32_t t = 0;
        while (t < p->n_texel && (p->texel[t].n_bindings != n_bindings || p->texel[t].mask != texel_mask))
            t++;
        if (t == p->n_texel) {
            if (t == MAX_TEXEL_LAYOUTS)
                return VKD_ERR_INTERNAL;
            if ((res = make_layout(d, n_bindings, texel_mask, &p->texel[t].set_layout, &p->texel[t].layout)))
                return res;
            p->texel[t].n_bindings = n_bindings;
            p->texel[t].mask = texel_mask;
            p->n_texel++;
        }
        layout = p->texel[t].layout;
        set_layout = p->texel[t].set_layout;
    }
    if (p->n == p->cap) {
        /* Pipelines are handed out by pointer, so the table never moves: one fixed
         * allocation, far above the few dozen variants a model uses. */
        if (p->cap) {
            VKD_ERROR("more than %u pipeline variants", p->cap);
            return VKD_ERR_INTERNAL;
        }
        p->entries = calloc(1024, sizeof *p->entries);
        if (!p->entries)
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        p->cap = 1024;
    }
    VkSpecializationMapEntry map[VKD_MAX_SPEC];
    for (uint32_t i = 0; i < n_spec; i++)
        map[i] = (VkSpecializationMapEntry){i, i * 4, 4};
    VkSpecializationInfo si = {n_spec, map, n_spec * 4, spec};
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo rss = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
        .requiredSubgroupSize = subgroup};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .pNext = subgroup ? &rss : NULL,
                  .flags = subgroup ? VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT : 0,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = mod, .pName = "main",
                  .pSpecializationInfo = &si},
        .layout = layout,
    };
    entry *e = &p->entries[p->n];
    double t0 = vkd_clock_ms();
    VK_TRY(vkCreateComputePipelines(d->dev, p->cache, 1, &ci, NULL, &e->p.pipeline));
    p->stats.create_ms += vkd_clock_ms() - t0;
    p->stats.created++;
    e->kernel = k;
    e->variant = variant;
    memcpy(e->spec, spec, n_spec * 4);
    e->n_spec = n_spec;
    e->subgroup = subgroup;
    e->p.layout = layout;
    e->p.set_layout = set_layout;
    e->p.n_bindings = n_bindings;
    e->p.texel_mask = texel_mask;
    memcpy(e->p.local, spec, 12);
    snprintf(e->p.name, sizeof e->p.name, "%s_%s", name, variant == VKD_VARIANT_F16 ? "f16" : "f32");
    p->n++;
    VKD_DEBUG("pipeline %s [%u %u %u ...] created in %.1f ms", name, spec[0], spec[1], spec[2], vkd_clock_ms() - t0);
    *out = &e->p;
    return VKD_OK;
}

void vkd_pipeline_stats_get(const vkd_device *d, vkd_pipeline_stats *s) { *s = d->pipes->stats; }
