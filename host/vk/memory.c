/* Block sub-allocator and staging transfers. See memory.h. */
#include "vk/memory.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "vk/vk_util.h"

#define BLOCK_DEFAULT (256ull << 20) /* large enough to hold any SD weight, small enough for phones */
#define POOL_BLOCK (32ull << 20)     /* activation pools not sized by a plan; larger tensors get their own block */
/* Each block's VkBuffer spans 64 KiB (and, if that makes a power of two, 256 bytes)
 * more than the block hands out, never allocated to a tensor. Why: llvmpipe compiles
 * a shader that reads texel buffers once per "static" view state, which includes
 * whether the buffer's size is a power of two and bits 8-15 of the view's byte size
 * (a union with a mip level in Mesa 22.3). With the slack, vkd_cmd rounds every texel
 * view up to a multiple of 64 KiB and no block is a power of two, so one variant is
 * compiled per pipeline instead of one per combination (test_op_matmul: minutes). */
#define BLOCK_SLACK (64ull << 10)
#define ALIGN 256ull                 /* >= minStorageBufferOffsetAlignment on every known device */
#define STAGING_SIZE (32ull << 20)

typedef struct { VkDeviceSize off, size; } range;

typedef struct vkd_block {
    VkDeviceMemory mem;
    VkBuffer buf;
    VkDeviceSize size;
    VkDeviceSize vk_size; /* size + BLOCK_SLACK: what the VkBuffer spans */
    uint8_t *mapped;   /* non-NULL when the memory type is host-visible and coherent */
    range *free;       /* sorted by offset, coalesced */
    uint32_t n_free, cap_free;
    struct vkd_memory *owner; /* the pool this block belongs to */
    struct vkd_block *next;
} vkd_block;

typedef struct vkd_memory {
    vkd_block *blocks;
    uint32_t type_index;     /* memory type of the blocks */
    bool blocks_mapped;
    VkDeviceSize block_size;
    VkDeviceSize expect;     /* bytes still expected (vkd_memory_expect); 0: none */
    VkDeviceSize align;
    vkd_memory_stats stats;
    bool is_pool;            /* a separate pool (vkd_pool_create): no staging of its own */
    bool sized;              /* a pool sized by a plan (vkd_pool_create_sized) */
    /* staging, only when device memory is not host-visible */
    VkBuffer staging_buf;
    VkDeviceMemory staging_mem;
    uint8_t *staging_map;
    VkCommandBuffer cb;
    VkFence fence;
} vkd_memory;

static int find_type(const VkPhysicalDeviceMemoryProperties *mp, uint32_t bits, VkMemoryPropertyFlags want)
{
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++)
        if ((bits & (1u << i)) && (mp->memoryTypes[i].propertyFlags & want) == want)
            return (int)i;
    return -1;
}

static VkBufferUsageFlags usage(void)
{
    /* uniform texel buffers: the subgroup GEMM reads its operands through texel views */
    return VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
           VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
}

static vkd_result make_buffer(vkd_device *d, VkDeviceSize size, VkBuffer *buf, VkMemoryRequirements *req)
{
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = usage(),
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VK_TRY(vkCreateBuffer(d->dev, &bci, NULL, buf));
    vkGetBufferMemoryRequirements(d->dev, *buf, req);
    return VKD_OK;
}

vkd_result vkd_pool_create(vkd_device *d, vkd_memory **out)
{
    vkd_memory *m = calloc(1, sizeof *m);
    if (!m)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    *m = *d->mem;
    m->blocks = NULL;
    memset(&m->stats, 0, sizeof m->stats);
    m->is_pool = true;
    m->expect = 0;
    m->sized = false;
    if (m->block_size > POOL_BLOCK)
        m->block_size = POOL_BLOCK;
    m->staging_buf = VK_NULL_HANDLE;
    m->staging_mem = VK_NULL_HANDLE;
    m->staging_map = NULL;
    m->cb = VK_NULL_HANDLE;
    m->fence = VK_NULL_HANDLE;
    *out = m;
    return VKD_OK;
}

static vkd_result pool_create_gran(vkd_device *d, uint64_t block_bytes, uint64_t gran, vkd_memory **out)
{
    vkd_result r = vkd_pool_create(d, out);
    if (r)
        return r;
    uint64_t b = (block_bytes + gran - 1) & ~(gran - 1);
    if (b < gran)
        b = gran;
    if (d->caps.max_alloc && b > d->caps.max_alloc)
        b = d->caps.max_alloc;
    (*out)->block_size = b;
    (*out)->sized = true;
    return VKD_OK;
}

vkd_result vkd_pool_create_sized(vkd_device *d, uint64_t block_bytes, vkd_memory **out)
{
    return pool_create_gran(d, block_bytes, 1u << 20, out); /* whole MiB */
}

vkd_result vkd_pool_create_small(vkd_device *d, uint64_t bytes, vkd_memory **out)
{
    return pool_create_gran(d, bytes, 64u << 10, out);
}

vkd_result vkd_pool_create_planned(vkd_device *d, uint64_t planned_bytes, vkd_pool **out)
{
    return vkd_pool_create_sized(d, planned_bytes + planned_bytes / 32, out);
}

void vkd_pool_destroy(vkd_device *d, vkd_memory *m)
{
    if (!m)
        return;
    if (d->mem) {
        d->mem->stats.reserved -= m->stats.reserved;
        d->mem->stats.allocated -= m->stats.allocated;
    }
    vkd_memory_destroy(d, m);
}

vkd_result vkd_memory_create(vkd_device *d, vkd_memory **out)
{
    vkd_result res = VKD_OK;
    vkd_memory *m = calloc(1, sizeof *m);
    if (!m)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    *out = m;
    m->align = d->caps.ssbo_align > ALIGN ? d->caps.ssbo_align : ALIGN;
    m->block_size = BLOCK_DEFAULT;
    if (d->caps.max_alloc && m->block_size > d->caps.max_alloc)
        m->block_size = d->caps.max_alloc;
    /* Find the memory type our storage buffers can live in. */
    VkBuffer probe = VK_NULL_HANDLE;
    VkMemoryRequirements req;
    if ((res = make_buffer(d, 4096, &probe, &req)))
        return res;
    vkDestroyBuffer(d->dev, probe, NULL);
    /* UMA devices (lavapipe, phones, iGPUs) often expose device-local memory that is
     * also host-visible: then uploads are a memcpy and no staging is needed. */
    int t = find_type(&d->memprops, req.memoryTypeBits,
                      VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                          VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
    if (t >= 0 && d->caps.type != VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU) {
        m->blocks_mapped = true;
    } else {
        /* On discrete GPUs the host-visible device-local window (ReBAR) is slow to read; use staging. */
        t = find_type(&d->memprops, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
        if (t < 0)
            t = find_type(&d->memprops, req.memoryTypeBits, 0);
    }
    if (t < 0) {
        VKD_ERROR("no memory type for storage buffers");
        return VKD_ERR_VULKAN;
    }
    m->type_index = (uint32_t)t;
    if (!m->blocks_mapped) {
        VkMemoryRequirements sreq;
        if ((res = make_buffer(d, STAGING_SIZE, &m->staging_buf, &sreq)))
            return res;
        int st = find_type(&d->memprops, sreq.memoryTypeBits,
                           VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT |
                               VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
        if (st < 0)
            st = find_type(&d->memprops, sreq.memoryTypeBits,
                           VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
        if (st < 0) {
            VKD_ERROR("no host-visible memory type for staging");
            return VKD_ERR_VULKAN;
        }
        VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                   .allocationSize = sreq.size, .memoryTypeIndex = (uint32_t)st};
        VK_TRY(vkAllocateMemory(d->dev, &ai, NULL, &m->staging_mem));
        VK_TRY(vkBindBufferMemory(d->dev, m->staging_buf, m->staging_mem, 0));
        void *p;
        VK_TRY(vkMapMemory(d->dev, m->staging_mem, 0, VK_WHOLE_SIZE, 0, &p));
        m->staging_map = p;
    }
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = d->cmd_pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = 1};
    VK_TRY(vkAllocateCommandBuffers(d->dev, &cai, &m->cb));
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VK_TRY(vkCreateFence(d->dev, &fci, NULL, &m->fence));
    return VKD_OK;
}

static void block_free(vkd_device *d, vkd_block *b)
{
    if (b->buf)
        vkDestroyBuffer(d->dev, b->buf, NULL);
    if (b->mem)
        vkFreeMemory(d->dev, b->mem, NULL);
    free(b->free);
    free(b);
}

void vkd_memory_destroy(vkd_device *d, vkd_memory *m)
{
    if (!m)
        return;
    while (m->blocks) {
        vkd_block *n = m->blocks->next;
        block_free(d, m->blocks);
        m->blocks = n;
    }
    if (m->staging_buf)
        vkDestroyBuffer(d->dev, m->staging_buf, NULL);
    if (m->staging_mem)
        vkFreeMemory(d->dev, m->staging_mem, NULL);
    if (m->fence)
        vkDestroyFence(d->dev, m->fence, NULL);
    if (m->cb)
        vkFreeCommandBuffers(d->dev, d->cmd_pool, 1, &m->cb);
    free(m);
}

void vkd_memory_stats_get(const vkd_device *d, vkd_memory_stats *s) { *s = d->mem->stats; }
void vkd_pool_stats_get(const vkd_memory *p, vkd_memory_stats *s) { *s = p->stats; }

static vkd_result block_new(vkd_device *d, vkd_memory *m, VkDeviceSize size, vkd_block **out)
{
    vkd_result res = VKD_OK;
    vkd_block *b = calloc(1, sizeof *b);
    if (!b)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    b->cap_free = 16;
    b->free = calloc(b->cap_free, sizeof *b->free);
    if (!b->free) {
        res = VKD_ERR_OUT_OF_HOST_MEMORY;
        goto fail;
    }
    VkMemoryRequirements req;
    VkDeviceSize vk_size = size + BLOCK_SLACK;
    while ((vk_size & (vk_size - 1)) == 0)
        vk_size += 256;
    if (d->caps.max_alloc && vk_size > d->caps.max_alloc)
        vk_size = size;
    if ((res = make_buffer(d, vk_size, &b->buf, &req)))
        goto fail;
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                               .allocationSize = req.size, .memoryTypeIndex = m->type_index};
    uint64_t held = d->mem ? d->mem->stats.reserved : m->stats.reserved;
    /* a device made smaller for a test (vkd_device_opts.max_device_bytes) answers as a
     * driver out of memory does */
    VkResult vr = d->max_device_bytes && held + req.size > d->max_device_bytes
                      ? VK_ERROR_OUT_OF_DEVICE_MEMORY
                      : vkAllocateMemory(d->dev, &ai, NULL, &b->mem);
    if (vr != VK_SUCCESS) {
        VKD_ERROR("could not allocate %.1f MiB of device memory (%s; %.1f MiB already held in %u blocks)",
                  req.size / 1048576.0, vkd_vk_result_name(vr), m->stats.reserved / 1048576.0, m->stats.blocks);
        res = vr == VK_ERROR_OUT_OF_HOST_MEMORY ? VKD_ERR_OUT_OF_HOST_MEMORY : VKD_ERR_OUT_OF_DEVICE_MEMORY;
        goto fail;
    }
    VK_TRY_GOTO(vkBindBufferMemory(d->dev, b->buf, b->mem, 0), res);
    if (m->blocks_mapped) {
        void *p;
        VK_TRY_GOTO(vkMapMemory(d->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &p), res);
        b->mapped = p;
    }
    b->size = size;
    b->vk_size = vk_size;
    b->owner = m;
    b->free[0] = (range){0, size};
    b->n_free = 1;
    b->next = m->blocks;
    m->blocks = b;
    m->stats.reserved += size;
    m->stats.blocks++;
    if (m != d->mem && d->mem)
        d->mem->stats.reserved += size;
    if (m->stats.reserved > m->stats.peak_reserved)
        m->stats.peak_reserved = m->stats.reserved;
    if (d->mem && d->mem->stats.reserved > d->mem->stats.peak_reserved)
        d->mem->stats.peak_reserved = d->mem->stats.reserved;
    *out = b;
    return VKD_OK;
fail:
    block_free(d, b);
    return res;
}

static bool block_take(vkd_block *b, VkDeviceSize size, VkDeviceSize align, VkDeviceSize *off)
{
    for (uint32_t i = 0; i < b->n_free; i++) {
        range *r = &b->free[i];
        VkDeviceSize start = (r->off + align - 1) / align * align;
        if (start + size > r->off + r->size)
            continue;
        /* blocks hand out aligned offsets only, so start == r->off in practice */
        VkDeviceSize end = start + size;
        VkDeviceSize r_end = r->off + r->size;
        if (start == r->off && end == r_end) {
            memmove(r, r + 1, (b->n_free - i - 1) * sizeof *r);
            b->n_free--;
        } else if (start == r->off) {
            r->off = end;
            r->size = r_end - end;
        } else {
            /* keep the head as is, only possible with a stricter alignment request */
            r->size = start - r->off;
            if (end < r_end) {
                /* would need a split: not used since all sizes are multiples of align */
                return false;
            }
        }
        *off = start;
        return true;
    }
    return false;
}

static vkd_result block_give(vkd_block *b, VkDeviceSize off, VkDeviceSize size)
{
    uint32_t i = 0;
    while (i < b->n_free && b->free[i].off < off)
        i++;
    bool merge_prev = i > 0 && b->free[i - 1].off + b->free[i - 1].size == off;
    bool merge_next = i < b->n_free && off + size == b->free[i].off;
    if (merge_prev && merge_next) {
        b->free[i - 1].size += size + b->free[i].size;
        memmove(&b->free[i], &b->free[i + 1], (b->n_free - i - 1) * sizeof *b->free);
        b->n_free--;
    } else if (merge_prev) {
        b->free[i - 1].size += size;
    } else if (merge_next) {
        b->free[i].off = off;
        b->free[i].size += size;
    } else {
        if (b->n_free == b->cap_free) {
            range *nf = realloc(b->free, 2 * b->cap_free * sizeof *nf);
            if (!nf)
                return VKD_ERR_OUT_OF_HOST_MEMORY;
            b->free = nf;
            b->cap_free *= 2;
        }
        memmove(&b->free[i + 1], &b->free[i], (b->n_free - i) * sizeof *b->free);
        b->free[i] = (range){off, size};
        b->n_free++;
    }
    return VKD_OK;
}

vkd_result vkd_buffer_create(vkd_device *d, VkDeviceSize size, vkd_buffer *out)
{
    return vkd_buffer_create_in(d, d->mem, size, out);
}

vkd_result vkd_buffer_create_in(vkd_device *d, vkd_memory *m, VkDeviceSize size, vkd_buffer *out)
{
    memset(out, 0, sizeof *out);
    if (size == 0)
        size = 1;
    size = (size + m->align - 1) / m->align * m->align;
    if (d->caps.max_alloc && size > d->caps.max_alloc) {
        VKD_ERROR("a buffer of %.1f MiB is larger than this device's maxMemoryAllocationSize (%.1f MiB)",
                  size / 1048576.0, d->caps.max_alloc / 1048576.0);
        return VKD_ERR_TOO_LARGE;
    }
    VkDeviceSize off = 0;
    vkd_block *b;
    for (b = m->blocks; b; b = b->next)
        if (block_take(b, size, m->align, &off))
            break;
    if (!b) {
        VkDeviceSize bs = m->block_size;
        if (m->expect) {
            /* the last block of an expected stage: only what is left beyond the free
             * space of the blocks already made (later, smaller tensors fill their
             * holes), plus a margin; if the estimate falls short, the next block is
             * sized the same way again */
            VkDeviceSize holes = 0;
            for (vkd_block *h = m->blocks; h; h = h->next)
                for (uint32_t i = 0; i < h->n_free; i++)
                    holes += h->free[i].size;
            VkDeviceSize left = m->expect > holes ? m->expect - holes : 0;
            left = (left + left / 64 + (64u << 10) + (1u << 20) - 1) & ~(VkDeviceSize)((1u << 20) - 1);
            if (left < bs)
                bs = left;
        }
        if (m->sized && m->blocks) {
            /* a planned pool outgrown: the plan counts live bytes, and the ranges freed
             * during recording can be too fragmented for a later tensor; grow by an
             * eighth, not by a whole second pool */
            bs = ((bs / 8) + (1u << 20) - 1) & ~(VkDeviceSize)((1u << 20) - 1);
        }
        vkd_result res = block_new(d, m, size > bs ? size : bs, &b);
        if (res)
            return res;
        if (!block_take(b, size, m->align, &off))
            return VKD_ERR_INTERNAL;
    }
    out->vk = b->buf;
    out->offset = off;
    out->size = size;
    out->vk_size = b->vk_size;
    out->block = b;
    out->mapped = b->mapped ? b->mapped + off : NULL;
    m->expect = m->expect > size ? m->expect - size : 0;
    m->stats.allocated += size;
    if (m->stats.allocated > m->stats.peak_allocated)
        m->stats.peak_allocated = m->stats.allocated;
    if (m != d->mem) {
        /* pools also count towards the device-wide figures */
        d->mem->stats.allocated += size;
        if (d->mem->stats.allocated > d->mem->stats.peak_allocated)
            d->mem->stats.peak_allocated = d->mem->stats.allocated;
    }
    /* tests (vkd_device_opts.poison): no range is handed out holding what it held before.
     * (A pool range reused within one recording is filled now, at record time, before any
     * op of the recording runs: the later tensor then sees what the earlier tensor's ops
     * left, which is the reuse the recording intends, not the pattern) */
    if (d->poison) {
        vkd_result res = vkd_buffer_fill(d, out, d->poison_pattern);
        if (res) {
            vkd_buffer_destroy(d, out);
            return res;
        }
    }
    return VKD_OK;
}

void vkd_buffer_destroy(vkd_device *d, vkd_buffer *b)
{
    if (!d || !b || !b->block)
        return;
    vkd_memory *m = b->block->owner;
    if (block_give(b->block, b->offset, b->size) == VKD_OK) {
        m->stats.allocated -= b->size;
        if (m != d->mem)
            d->mem->stats.allocated -= b->size;
    }
    /* Return fully free, oversized blocks to the driver at once: they were made for one
     * tensor. Not in a pool: a pool's tensors are freed while a graph is recorded (their
     * memory goes to later tensors of the same recording), and the recorded commands
     * still bind the freed range's VkBuffer, so a pool's blocks live until the pool does.
     * (Destroying one here made replays use a destroyed buffer: on an NVIDIA H200 the
     * batch-2 SD1.5 UNet of `bench model`, in 32 MiB default blocks, never finished.) */
    vkd_block *blk = b->block;
    if (!m->is_pool && blk->n_free == 1 && blk->free[0].size == blk->size && blk->size > m->block_size) {
        vkd_block **pp = &m->blocks;
        while (*pp && *pp != blk)
            pp = &(*pp)->next;
        if (*pp) {
            *pp = blk->next;
            m->stats.reserved -= blk->size;
            if (m != d->mem)
                d->mem->stats.reserved -= blk->size;
            m->stats.blocks--;
            block_free(d, blk);
        }
    }
    memset(b, 0, sizeof *b);
}

void vkd_memory_set_block_size(vkd_device *d, uint64_t bytes)
{
    if (bytes < (1u << 20))
        bytes = 1u << 20;
    if (d->caps.max_alloc && bytes > d->caps.max_alloc)
        bytes = d->caps.max_alloc;
    d->mem->block_size = bytes;
}

void vkd_memory_expect(vkd_device *d, uint64_t bytes) { d->mem->expect = bytes; }

void vkd_memory_trim(vkd_device *d)
{
    vkd_memory *m = d->mem;
    for (vkd_block **pp = &m->blocks; *pp;) {
        vkd_block *b = *pp;
        if (b->n_free == 1 && b->free[0].size == b->size) {
            *pp = b->next;
            m->stats.reserved -= b->size;
            m->stats.blocks--;
            block_free(d, b);
        } else {
            pp = &b->next;
        }
    }
}

/* One blocking copy through the staging buffer. */
static vkd_result staged_copy(vkd_device *d, VkBuffer src, VkDeviceSize src_off, VkBuffer dst, VkDeviceSize dst_off,
                              VkDeviceSize n)
{
    vkd_memory *m = d->mem;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VK_TRY(vkResetCommandBuffer(m->cb, 0));
    VK_TRY(vkBeginCommandBuffer(m->cb, &bi));
    VkBufferCopy c = {src_off, dst_off, n};
    vkCmdCopyBuffer(m->cb, src, dst, 1, &c);
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_SHADER_READ_BIT};
    vkCmdPipelineBarrier(m->cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0,
                         NULL);
    VK_TRY(vkEndCommandBuffer(m->cb));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &m->cb};
    VK_TRY(vkResetFences(d->dev, 1, &m->fence));
    VK_TRY(vkQueueSubmit(d->queue, 1, &si, m->fence));
    VK_TRY(vkWaitForFences(d->dev, 1, &m->fence, VK_TRUE, UINT64_MAX));
    return VKD_OK;
}

static vkd_result check_range(const vkd_buffer *b, VkDeviceSize off, VkDeviceSize n)
{
    if (!b->block || off > b->size || n > b->size - off) {
        VKD_ERROR("buffer access [%llu, +%llu) outside a buffer of %llu bytes", (unsigned long long)off,
                  (unsigned long long)n, (unsigned long long)b->size);
        return VKD_ERR_INVALID_ARG;
    }
    return VKD_OK;
}

vkd_result vkd_buffer_upload_fill(vkd_device *d, const vkd_buffer *b, VkDeviceSize off, VkDeviceSize n,
                                  vkd_fill_fn fill, void *ctx)
{
    vkd_result res = check_range(b, off, n);
    if (res)
        return res;
    if (b->mapped) /* device writes from earlier submissions are finished (blocking submits) */
        return fill(b->mapped + off, 0, n, ctx);
    vkd_memory *m = d->mem;
    for (VkDeviceSize done = 0; done < n;) {
        VkDeviceSize chunk = n - done < STAGING_SIZE ? n - done : STAGING_SIZE;
        if ((res = fill(m->staging_map, done, chunk, ctx)) ||
            (res = staged_copy(d, m->staging_buf, 0, b->vk, b->offset + off + done, chunk)))
            return res;
        done += chunk;
    }
    return VKD_OK;
}

static vkd_result fill_copy(void *dst, VkDeviceSize at, VkDeviceSize len, void *src)
{
    memcpy(dst, (const uint8_t *)src + at, len);
    return VKD_OK;
}

vkd_result vkd_buffer_upload(vkd_device *d, const vkd_buffer *b, VkDeviceSize off, const void *src, VkDeviceSize n)
{
    return vkd_buffer_upload_fill(d, b, off, n, fill_copy, (void *)src);
}

vkd_result vkd_buffer_download(vkd_device *d, const vkd_buffer *b, VkDeviceSize off, void *dst, VkDeviceSize n)
{
    vkd_result res = check_range(b, off, n);
    if (res)
        return res;
    if (b->mapped) {
        memcpy(dst, b->mapped + off, n);
        return VKD_OK;
    }
    vkd_memory *m = d->mem;
    for (VkDeviceSize done = 0; done < n;) {
        VkDeviceSize chunk = n - done < STAGING_SIZE ? n - done : STAGING_SIZE;
        if ((res = staged_copy(d, b->vk, b->offset + off + done, m->staging_buf, 0, chunk)))
            return res;
        memcpy((uint8_t *)dst + done, m->staging_map, chunk);
        done += chunk;
    }
    return VKD_OK;
}

vkd_result vkd_buffer_fill(vkd_device *d, const vkd_buffer *b, uint32_t pattern)
{
    if (b->mapped) {
        for (VkDeviceSize i = 0; i + 4 <= b->size; i += 4)
            memcpy(b->mapped + i, &pattern, 4);
        return VKD_OK;
    }
    vkd_memory *m = d->mem;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VK_TRY(vkResetCommandBuffer(m->cb, 0));
    VK_TRY(vkBeginCommandBuffer(m->cb, &bi));
    vkCmdFillBuffer(m->cb, b->vk, b->offset, b->size, pattern);
    VK_TRY(vkEndCommandBuffer(m->cb));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &m->cb};
    VK_TRY(vkResetFences(d->dev, 1, &m->fence));
    VK_TRY(vkQueueSubmit(d->queue, 1, &si, m->fence));
    VK_TRY(vkWaitForFences(d->dev, 1, &m->fence, VK_TRUE, UINT64_MAX));
    return VKD_OK;
}

/* pattern over bytes [off, off + n) of block b (n a multiple of 4) */
static vkd_result block_fill(vkd_device *d, vkd_block *b, VkDeviceSize off, VkDeviceSize n, uint32_t pattern)
{
    vkd_buffer v = {.vk = b->buf, .offset = off, .size = n, .vk_size = b->vk_size, .block = b,
                    .mapped = b->mapped ? b->mapped + off : NULL};
    return n ? vkd_buffer_fill(d, &v, pattern) : VKD_OK;
}

vkd_result vkd_memory_poison_free(vkd_device *d, uint32_t pattern)
{
    for (vkd_block *b = d->mem->blocks; b; b = b->next) {
        vkd_result r;
        for (uint32_t i = 0; i < b->n_free; i++)
            if ((r = block_fill(d, b, b->free[i].off, b->free[i].size & ~(VkDeviceSize)3, pattern)))
                return r;
        if ((r = block_fill(d, b, b->size, (b->vk_size - b->size) & ~(VkDeviceSize)3, pattern)))
            return r;
    }
    return VKD_OK;
}
