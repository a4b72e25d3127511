/* Command recording: dispatches with their descriptor sets, barriers, GPU timestamps.
 *
 * A vkd_cmd is recorded once and may be submitted many times (decision 5: record
 * once, replay per step). Its descriptor sets live as long as it does. */
#ifndef VKD_CMD_H
#define VKD_CMD_H

#include <stdbool.h>
#include <stdint.h>
#include <volk.h>

#include "vk/device.h"
#include "vk/memory.h"
#include "vk/pipeline.h"

/* A range of a buffer bound to one binding. Offset is relative to the vkd_buffer. */
typedef struct vkd_binding {
    const vkd_buffer *buf;
    VkDeviceSize offset;
    VkDeviceSize range;
} vkd_binding;

typedef struct vkd_cmd vkd_cmd;

/* Bindings a pipeline declares as uniform texel buffers (vkd_pipeline.texel_mask) are
 * bound as views of this format: 16 bytes per texel (8 fp16 or 4 fp32 values) that a
 * shader reads with texelFetch on a usamplerBuffer. The window's offset must suit
 * minTexelBufferOffsetAlignment. */
#define VKD_TEXEL_FORMAT VK_FORMAT_R32G32B32A32_UINT
#define VKD_TEXEL_BYTES 16u

vkd_result vkd_cmd_create(vkd_device *d, vkd_cmd **out);
void vkd_cmd_destroy(vkd_cmd *c);

/* Start recording (drops anything recorded before). */
vkd_result vkd_cmd_begin(vkd_cmd *c);
/* Record one dispatch. The binding ranges are checked against maxStorageBufferRange
 * and the offset alignment; push is copied (push_size <= VKD_PUSH_MAX). A barrier
 * making earlier shader writes visible is recorded before it. */
vkd_result vkd_cmd_dispatch(vkd_cmd *c, const vkd_pipeline *p, const vkd_binding *b, uint32_t n_bindings,
                            const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz,
                            const char *label);
vkd_result vkd_cmd_end(vkd_cmd *c);
/* Record a copy of bytes [src_off, +bytes) of src to dst_off of dst, ordered after the
 * recording's earlier writes and before its later reads. */
vkd_result vkd_cmd_copy(vkd_cmd *c, const vkd_buffer *src, VkDeviceSize src_off, const vkd_buffer *dst,
                        VkDeviceSize dst_off, VkDeviceSize bytes);
/* Record filling bytes [off, +bytes) of buf with the 32-bit word `value` (off and bytes
 * multiples of 4), ordered like vkd_cmd_copy. */
vkd_result vkd_cmd_fill(vkd_cmd *c, const vkd_buffer *buf, VkDeviceSize off, VkDeviceSize bytes, uint32_t value);
/* Tickets: n zeroed 32-bit counters this recorder owns, for a dispatch whose workgroups
 * meet through atomics (the split-K GEMM's last workgroup per tile adds the partial sums:
 * ops/matmul.c). A dispatch must leave the counters it used at zero again; every
 * dispatch of a recording is ordered after the one before (vkd_cmd_dispatch), and one
 * recorder's submissions never overlap (submit waits), so dispatches never share them
 * at once. VKD_ERR_UNSUPPORTED when n exceeds VKD_CMD_TICKETS (the caller takes
 * another way). The buffer lives as long as the recorder. */
#define VKD_CMD_TICKETS 4096u
vkd_result vkd_cmd_tickets(vkd_cmd *c, uint32_t n, vkd_binding *out);
/* Submit the recorded work and wait for it. May be called many times after end. */
vkd_result vkd_cmd_submit_wait(vkd_cmd *c);

/* Number of dispatches recorded. */
uint32_t vkd_cmd_dispatch_count(const vkd_cmd *c);
/* Counted floating-point work (2 per multiply-add) of what was recorded: the matmul,
 * conv and attention ops add theirs, so a benchmark can report achieved GFLOP/s. */
void vkd_cmd_add_flops(vkd_cmd *c, double flops);
double vkd_cmd_flops(const vkd_cmd *c);
/* Bytes of every binding window of every recorded dispatch: what the dispatches may
 * read or write, an upper bound of their traffic (a window is read at least once
 * where the op reads it all, as the model's ops do). */
double vkd_cmd_bytes_bound(const vkd_cmd *c);

/* With timestamps on (device opts), the GPU time of each dispatch of the last submit.
 * Returns the count; labels[i] points into the cmd and lives until the next begin. */
uint32_t vkd_cmd_timings(const vkd_cmd *c, const char *const **labels, const double **ms);
/* With timestamps on: the counted work (vkd_cmd_add_flops) of each timed dispatch, in
 * the order of vkd_cmd_timings; an op's work goes to its first dispatch. */
const double *vkd_cmd_dispatch_flops(const vkd_cmd *c);
/* GPU time of the whole last submission in ms (0 without timestamps). */
double vkd_cmd_total_ms(const vkd_cmd *c);

/* Find the largest binding window containing bytes [off, off+len) of buf that a
 * descriptor may address: the window starts at an aligned offset <= off. Returns
 * the binding and, in *elem_shift, how many `elem_size` elements into the window
 * `off` lies. Fails with VKD_ERR_TOO_LARGE when the span cannot be bound in one
 * range (the op must split its work). */
vkd_result vkd_binding_window(const vkd_device *d, const vkd_buffer *buf, VkDeviceSize off, VkDeviceSize len,
                              uint32_t elem_size, vkd_binding *out, uint32_t *elem_shift);

#endif
