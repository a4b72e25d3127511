/* Command recording. See cmd.h. */
#include "vk/cmd.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "vk/vk_util.h"

#define SETS_PER_POOL 512

typedef struct pool_node {
    VkDescriptorPool pool;
    uint32_t used;
    struct pool_node *next;
} pool_node;

struct vkd_cmd {
    vkd_device *d;
    VkCommandBuffer cb;
    VkFence fence;
    pool_node *pools;
    VkBufferView *views; /* texel views of the recorded dispatches, alive until re-recording */
    uint32_t n_views, views_cap;
    uint32_t n_dispatch;
    double flops;      /* counted work of the recorded ops (vkd_cmd_add_flops) */
    double bytes;      /* bytes bound by the recorded dispatches */
    bool recording;
    /* timestamps: two queries per dispatch */
    VkQueryPool queries;
    uint32_t query_cap;
    char (*labels)[64];
    const char **label_ptrs;
    double *ms;
    double *dflops;          /* counted work attributed to each timed dispatch */
    double flops_attributed; /* flops already attributed to a dispatch */
    uint32_t n_timed;
    double total_ms;
    uint32_t label_cap;
    vkd_buffer tickets; /* VKD_CMD_TICKETS zeroed counters (vkd_cmd_tickets), made at first use */
};

vkd_result vkd_cmd_create(vkd_device *d, vkd_cmd **out)
{
    vkd_cmd *c = calloc(1, sizeof *c);
    if (!c)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    c->d = d;
    *out = c;
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = d->cmd_pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VK_TRY(vkAllocateCommandBuffers(d->dev, &ai, &c->cb));
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO, .flags = VK_FENCE_CREATE_SIGNALED_BIT};
    VK_TRY(vkCreateFence(d->dev, &fci, NULL, &c->fence));
    return VKD_OK;
}

static void free_views(vkd_cmd *c)
{
    for (uint32_t i = 0; i < c->n_views; i++)
        vkDestroyBufferView(c->d->dev, c->views[i], NULL);
    c->n_views = 0;
}

static void free_pools(vkd_cmd *c)
{
    while (c->pools) {
        pool_node *n = c->pools->next;
        vkDestroyDescriptorPool(c->d->dev, c->pools->pool, NULL);
        free(c->pools);
        c->pools = n;
    }
}

void vkd_cmd_destroy(vkd_cmd *c)
{
    if (!c)
        return;
    vkd_device *d = c->d;
    if (c->fence) {
        vkWaitForFences(d->dev, 1, &c->fence, VK_TRUE, UINT64_MAX);
        vkDestroyFence(d->dev, c->fence, NULL);
    }
    free_pools(c);
    free_views(c);
    free(c->views);
    vkd_buffer_destroy(d, &c->tickets);
    if (c->queries)
        vkDestroyQueryPool(d->dev, c->queries, NULL);
    if (c->cb)
        vkFreeCommandBuffers(d->dev, d->cmd_pool, 1, &c->cb);
    free(c->labels);
    free(c->label_ptrs);
    free(c->ms);
    free(c->dflops);
    free(c);
}

static vkd_result ensure_queries(vkd_cmd *c, uint32_t n_dispatch)
{
    if (n_dispatch < c->label_cap)
        return VKD_OK;
    uint32_t cap = c->label_cap ? c->label_cap * 2 : 256;
    void *l = realloc(c->labels, cap * sizeof *c->labels);
    if (!l)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    c->labels = l;
    void *lp = realloc(c->label_ptrs, cap * sizeof *c->label_ptrs);
    if (!lp)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    c->label_ptrs = lp;
    void *m = realloc(c->ms, cap * sizeof *c->ms);
    if (!m)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    c->ms = m;
    void *fl = realloc(c->dflops, cap * sizeof *c->dflops);
    if (!fl)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    c->dflops = fl;
    c->label_cap = cap;
    return VKD_OK;
}

vkd_result vkd_cmd_begin(vkd_cmd *c)
{
    vkd_device *d = c->d;
    /* never re-record while a previous submission may still run */
    VK_TRY(vkWaitForFences(d->dev, 1, &c->fence, VK_TRUE, UINT64_MAX));
    free_pools(c);
    free_views(c);
    c->n_dispatch = 0;
    c->flops = 0;
    c->flops_attributed = 0;
    c->bytes = 0;
    c->n_timed = 0;
    VK_TRY(vkResetCommandBuffer(c->cb, 0));
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    VK_TRY(vkBeginCommandBuffer(c->cb, &bi));
    if (d->timestamps) {
        /* the query pool is sized at end(); recording writes into a pool big enough for
         * what was recorded last time, grown by re-recording if needed */
        if (!c->queries) {
            c->query_cap = 8192;
            VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                        .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = c->query_cap};
            VK_TRY(vkCreateQueryPool(d->dev, &qi, NULL, &c->queries));
        }
        vkCmdResetQueryPool(c->cb, c->queries, 0, c->query_cap);
    }
    c->recording = true;
    return VKD_OK;
}

static vkd_result alloc_set(vkd_cmd *c, VkDescriptorSetLayout layout, VkDescriptorSet *out)
{
    vkd_device *d = c->d;
    if (!c->pools || c->pools->used == SETS_PER_POOL) {
        pool_node *n = calloc(1, sizeof *n);
        if (!n)
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        VkDescriptorPoolSize ps[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SETS_PER_POOL * VKD_MAX_BINDINGS},
                                      {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, SETS_PER_POOL * 3}};
        VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                         .maxSets = SETS_PER_POOL, .poolSizeCount = 2, .pPoolSizes = ps};
        VkResult r = vkCreateDescriptorPool(d->dev, &pi, NULL, &n->pool);
        if (r != VK_SUCCESS) {
            free(n);
            VK_TRY(r);
        }
        n->next = c->pools;
        c->pools = n;
    }
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = c->pools->pool, .descriptorSetCount = 1,
                                      .pSetLayouts = &layout};
    VK_TRY(vkAllocateDescriptorSets(d->dev, &ai, out));
    c->pools->used++;
    return VKD_OK;
}

/* A texel view (VKD_TEXEL_FORMAT) from byte off of buf's VkBuffer covering range bytes,
 * kept until the next begin. The view is rounded up to a multiple of 64 KiB where the
 * VkBuffer allows (memory.c BLOCK_SLACK says why), else to whole texels, else down
 * (the shaders read only whole texels inside the window). */
static vkd_result make_view(vkd_cmd *c, const vkd_pipeline *p, uint32_t i, const vkd_buffer *buf, VkDeviceSize off,
                            VkDeviceSize range, VkBufferView *out)
{
    vkd_device *d = c->d;
    VkDeviceSize end = buf->vk_size ? buf->vk_size : buf->offset + buf->size; /* of the VkBuffer */
    VkDeviceSize texel = VKD_TEXEL_BYTES, room = end > off ? end - off : 0;
    VkDeviceSize bytes = (range + texel - 1) / texel * texel, padded = (bytes + 65535) & ~(VkDeviceSize)65535;
    if (padded <= room)
        bytes = padded;
    else if (bytes > room)
        bytes = range / texel * texel;
    VkDeviceSize n = bytes / texel;
    if (!d->caps.texel_rgba32ui || off % (d->caps.texel_align ? d->caps.texel_align : 1) || n == 0 ||
        n > d->caps.max_texels) {
        VKD_ERROR("%s: binding %u (%llu bytes at %llu) cannot be a texel view on this device", p->name, i,
                  (unsigned long long)range, (unsigned long long)off);
        return VKD_ERR_TOO_LARGE;
    }
    if (c->n_views == c->views_cap) {
        uint32_t cap = c->views_cap ? 2 * c->views_cap : 64;
        VkBufferView *v = realloc(c->views, cap * sizeof *v);
        if (!v)
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        c->views = v;
        c->views_cap = cap;
    }
    VkBufferViewCreateInfo vi = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO, .buffer = buf->vk,
                                 .format = VKD_TEXEL_FORMAT, .offset = off, .range = n * texel};
    VK_TRY(vkCreateBufferView(d->dev, &vi, NULL, out));
    c->views[c->n_views++] = *out;
    return VKD_OK;
}

vkd_result vkd_cmd_dispatch(vkd_cmd *c, const vkd_pipeline *p, const vkd_binding *b, uint32_t n_bindings,
                            const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz,
                            const char *label)
{
    vkd_device *d = c->d;
    if (!c->recording || n_bindings != p->n_bindings || push_size > VKD_PUSH_MAX)
        return VKD_ERR_INTERNAL;
    if (gx == 0 || gy == 0 || gz == 0)
        return VKD_OK; /* nothing to do */
    for (uint32_t i = 0; i < n_bindings; i++) {
        /* a window bound twice (a placeholder for an unused operand) is read once */
        bool again = false;
        for (uint32_t j = 0; j < i && !again; j++)
            again = b[j].buf->vk == b[i].buf->vk && b[j].offset == b[i].offset && b[j].range == b[i].range;
        if (!again)
            c->bytes += (double)b[i].range;
    }
    if (gx > d->caps.max_wg_count[0] || gy > d->caps.max_wg_count[1] || gz > d->caps.max_wg_count[2]) {
        VKD_ERROR("%s: dispatch %ux%ux%u exceeds the device's workgroup count limits", p->name, gx, gy, gz);
        return VKD_ERR_TOO_LARGE;
    }
    VkDescriptorBufferInfo info[VKD_MAX_BINDINGS];
    VkBufferView view[VKD_MAX_BINDINGS];
    VkWriteDescriptorSet w[VKD_MAX_BINDINGS];
    VkDescriptorSet set;
    vkd_result res = alloc_set(c, p->set_layout, &set);
    if (res)
        return res;
    for (uint32_t i = 0; i < n_bindings; i++) {
        const vkd_buffer *buf = b[i].buf;
        VkDeviceSize off = buf->offset + b[i].offset;
        VkDeviceSize range = b[i].range ? b[i].range : buf->size - b[i].offset;
        if (b[i].offset + range > buf->size || range > d->caps.max_binding || off % d->caps.ssbo_align) {
            VKD_ERROR("%s: binding %u [%llu, +%llu) is outside its buffer, over maxStorageBufferRange (%llu) "
                      "or misaligned",
                      p->name, i, (unsigned long long)b[i].offset, (unsigned long long)range,
                      (unsigned long long)d->caps.max_binding);
            return VKD_ERR_TOO_LARGE;
        }
        info[i] = (VkDescriptorBufferInfo){buf->vk, off, range};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set, .dstBinding = i,
                                      .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      .pBufferInfo = &info[i]};
        if (p->texel_mask >> i & 1u) {
            if ((res = make_view(c, p, i, buf, off, range, &view[i])))
                return res;
            w[i].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
            w[i].pBufferInfo = NULL;
            w[i].pTexelBufferView = &view[i];
        }
    }
    vkUpdateDescriptorSets(d->dev, n_bindings, w, 0, NULL);
    if (c->n_dispatch > 0) {
        /* Conservative: every dispatch sees all earlier writes. (A later pass can drop
         * barriers between independent dispatches using the graph's dependencies.) */
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
        vkCmdPipelineBarrier(c->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1,
                             &mb, 0, NULL, 0, NULL);
    }
    bool timed = d->timestamps && 2 * (c->n_dispatch + 1) <= c->query_cap;
    if (timed) {
        if ((res = ensure_queries(c, c->n_dispatch)))
            return res;
        snprintf(c->labels[c->n_dispatch], sizeof c->labels[0], "%s", label ? label : p->name);
        /* ops count their work before their first dispatch: it goes to that one */
        c->dflops[c->n_dispatch] = c->flops - c->flops_attributed;
        c->flops_attributed = c->flops;
        vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, c->queries, 2 * c->n_dispatch);
    }
    vkCmdBindPipeline(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipeline);
    vkCmdBindDescriptorSets(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
    if (push_size)
        vkCmdPushConstants(c->cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
    vkCmdDispatch(c->cb, gx, gy, gz);
    if (timed) {
        vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, c->queries, 2 * c->n_dispatch + 1);
        c->n_timed = c->n_dispatch + 1;
    }
    c->n_dispatch++;
    return VKD_OK;
}

vkd_result vkd_cmd_end(vkd_cmd *c)
{
    if (!c->recording)
        return VKD_ERR_INTERNAL;
    /* make the results visible to the host and to transfers (readback) */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT};
    vkCmdPipelineBarrier(c->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    VK_TRY(vkEndCommandBuffer(c->cb));
    c->recording = false;
    return VKD_OK;
}

vkd_result vkd_cmd_submit_wait(vkd_cmd *c)
{
    vkd_device *d = c->d;
    if (c->recording)
        return VKD_ERR_INTERNAL;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &c->cb};
    VK_TRY(vkResetFences(d->dev, 1, &c->fence));
    VK_TRY(vkQueueSubmit(d->queue, 1, &si, c->fence));
    VK_TRY(vkWaitForFences(d->dev, 1, &c->fence, VK_TRUE, UINT64_MAX));
    c->total_ms = 0;
    if (c->n_timed) {
        uint64_t *ts = malloc(2 * c->n_timed * sizeof *ts);
        if (!ts)
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        VkResult r = vkGetQueryPoolResults(d->dev, c->queries, 0, 2 * c->n_timed, 2 * c->n_timed * sizeof *ts, ts,
                                           sizeof *ts, VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
        if (r == VK_SUCCESS) {
            double period = d->caps.timestamp_period * 1e-6;
            for (uint32_t i = 0; i < c->n_timed; i++) {
                c->ms[i] = (double)(ts[2 * i + 1] - ts[2 * i]) * period;
                c->label_ptrs[i] = c->labels[i];
            }
            c->total_ms = (double)(ts[2 * c->n_timed - 1] - ts[0]) * period;
        }
        free(ts);
        VK_TRY(r);
    }
    return VKD_OK;
}

uint32_t vkd_cmd_dispatch_count(const vkd_cmd *c) { return c->n_dispatch; }
void vkd_cmd_add_flops(vkd_cmd *c, double flops) { c->flops += flops; }
double vkd_cmd_flops(const vkd_cmd *c) { return c->flops; }
double vkd_cmd_bytes_bound(const vkd_cmd *c) { return c->bytes; }

const double *vkd_cmd_dispatch_flops(const vkd_cmd *c) { return c->dflops; }

uint32_t vkd_cmd_timings(const vkd_cmd *c, const char *const **labels, const double **ms)
{
    *labels = c->label_ptrs;
    *ms = c->ms;
    return c->n_timed;
}

double vkd_cmd_total_ms(const vkd_cmd *c) { return c->total_ms; }

vkd_result vkd_binding_window(const vkd_device *d, const vkd_buffer *buf, VkDeviceSize off, VkDeviceSize len,
                              uint32_t elem_size, vkd_binding *out, uint32_t *elem_shift)
{
    VkDeviceSize align = d->caps.ssbo_align ? d->caps.ssbo_align : 256;
    /* buf->offset is aligned (the allocator hands out 256-aligned offsets) */
    VkDeviceSize start = off / align * align;
    VkDeviceSize shift = off - start;
    if (shift % elem_size)
        return VKD_ERR_INTERNAL;
    VkDeviceSize need = shift + len;
    if (need > d->caps.max_binding)
        return VKD_ERR_TOO_LARGE;
    if (off + len > buf->size)
        return VKD_ERR_INTERNAL;
    out->buf = buf;
    out->offset = start;
    out->range = need;
    *elem_shift = (uint32_t)(shift / elem_size);
    return VKD_OK;
}

vkd_device *vkd_cmd_device(vkd_cmd *c) { return c->d; }

vkd_result vkd_cmd_tickets(vkd_cmd *c, uint32_t n, vkd_binding *out)
{
    if (n > VKD_CMD_TICKETS)
        return VKD_ERR_UNSUPPORTED;
    if (!c->tickets.vk) { /* zeroed by a submission of its own: this recording may never be submitted */
        vkd_result r = vkd_buffer_create(c->d, 4ull * VKD_CMD_TICKETS, &c->tickets);
        if (!r)
            r = vkd_buffer_fill(c->d, &c->tickets, 0);
        if (r) {
            vkd_buffer_destroy(c->d, &c->tickets);
            return r;
        }
    }
    *out = (vkd_binding){&c->tickets, 0, 4ull * n};
    return VKD_OK;
}

/* Barriers around a transfer command: earlier shader (and host) writes before it, it
 * before later shader reads and writes and host reads. */
static void transfer_barrier(vkd_cmd *c, bool after)
{
    VkMemoryBarrier b = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    if (!after) {
        b.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_WRITE_BIT;
        b.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
        vkCmdPipelineBarrier(c->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                             VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &b, 0, NULL, 0, NULL);
    } else {
        b.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
        b.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_READ_BIT;
        vkCmdPipelineBarrier(c->cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &b, 0, NULL,
                             0, NULL);
    }
}

vkd_result vkd_cmd_fill(vkd_cmd *c, const vkd_buffer *buf, VkDeviceSize off, VkDeviceSize bytes, uint32_t value)
{
    if (!c->recording || off + bytes > buf->size || (buf->offset + off) % 4 || bytes % 4)
        return VKD_ERR_INTERNAL;
    transfer_barrier(c, false);
    vkCmdFillBuffer(c->cb, buf->vk, buf->offset + off, bytes, value);
    transfer_barrier(c, true);
    c->bytes += (double)bytes;
    return VKD_OK;
}

vkd_result vkd_cmd_copy(vkd_cmd *c, const vkd_buffer *src, VkDeviceSize src_off, const vkd_buffer *dst,
                        VkDeviceSize dst_off, VkDeviceSize bytes)
{
    if (!c->recording || src_off + bytes > src->size || dst_off + bytes > dst->size)
        return VKD_ERR_INTERNAL;
    transfer_barrier(c, false);
    VkBufferCopy region = {.srcOffset = src->offset + src_off, .dstOffset = dst->offset + dst_off, .size = bytes};
    vkCmdCopyBuffer(c->cb, src->vk, dst->vk, 1, &region);
    transfer_barrier(c, true);
    c->bytes += 2.0 * (double)bytes;
    return VKD_OK;
}
