/* Device memory: a few large blocks, sub-allocated; staging for upload/readback.
 *
 * Every block has one VkBuffer spanning it, so a vkd_buffer is (block buffer, offset,
 * size). No allocation exceeds maxMemoryAllocationSize; a request that cannot fit is
 * VKD_ERR_TOO_LARGE or VKD_ERR_OUT_OF_DEVICE_MEMORY, logged with the size asked for. */
#ifndef VKD_MEMORY_H
#define VKD_MEMORY_H

#include <stdint.h>
#include <volk.h>

#include "vk/device.h"

struct vkd_block;

typedef struct vkd_buffer {
    VkBuffer vk;            /* the block's buffer */
    VkDeviceSize offset;    /* byte offset of this allocation inside vk */
    VkDeviceSize size;      /* bytes */
    VkDeviceSize vk_size;   /* bytes of the whole VkBuffer vk (texel views may reach past size) */
    struct vkd_block *block;
    uint8_t *mapped;        /* host pointer to byte 0 of this allocation when the memory is host-visible */
} vkd_buffer;

typedef struct vkd_memory_stats {
    uint64_t allocated;      /* bytes in live sub-allocations */
    uint64_t peak_allocated; /* high-water mark of allocated */
    uint64_t reserved;       /* bytes of VkDeviceMemory held in blocks */
    uint64_t peak_reserved;  /* high-water mark of reserved: what the driver was asked for */
    uint32_t blocks;
} vkd_memory_stats;

vkd_result vkd_memory_create(vkd_device *d, struct vkd_memory **out);
void vkd_memory_destroy(vkd_device *d, struct vkd_memory *m);
void vkd_memory_stats_get(const vkd_device *d, vkd_memory_stats *s);

/* Size of the blocks the device's main allocator makes from now on (weights): a
 * small memory budget wants small steps. Capped at maxMemoryAllocationSize. */
void vkd_memory_set_block_size(vkd_device *d, uint64_t bytes);
/* The main allocator will next take about `bytes` (a stage's weights, from the memory
 * plan): the block that would outgrow what is still expected is made only as large as
 * that remainder, so the last block holds no unused slack (SD1.5's 1.64 GB UNet in 256
 * MiB blocks left 150 MiB of it). 0 ends the expectation. */
void vkd_memory_expect(vkd_device *d, uint64_t bytes);
/* Give every completely free block of the device's main allocator back to the driver
 * (after weights of a finished stage were released). */
void vkd_memory_trim(vkd_device *d);
/* Device-local storage buffer of `size` bytes (rounded up to 256). */
vkd_result vkd_buffer_create(vkd_device *d, VkDeviceSize size, vkd_buffer *out);
/* A separate pool of blocks (e.g. one recorded model's activations): ranges freed
 * while recording are reused only by later allocations from the same pool, so a
 * recorded command buffer can be replayed while the rest of the device allocates.
 * Destroying the pool frees its blocks (its buffers must not be used after). */
typedef struct vkd_memory vkd_pool;
vkd_result vkd_pool_create(vkd_device *d, vkd_pool **out);
/* The same with blocks of block_bytes (capped at maxMemoryAllocationSize): a pool sized
 * by the memory plan takes one block of what it needs instead of 256 MiB steps. */
vkd_result vkd_pool_create_sized(vkd_device *d, uint64_t block_bytes, vkd_pool **out);
/* A pool for a few small tensors of known size (a stage's output kept between stages):
 * one block of `bytes` in whole 64 KiB, not whole MiB. */
vkd_result vkd_pool_create_small(vkd_device *d, uint64_t bytes, vkd_pool **out);
/* A pool for a recording whose activations were planned (a dry run's peak of live
 * bytes): one block of that size + 1/32 for the ranges' fragmentation; if a recording
 * still outgrows it, it grows by an eighth at a time. */
vkd_result vkd_pool_create_planned(vkd_device *d, uint64_t planned_bytes, vkd_pool **out);
void vkd_pool_destroy(vkd_device *d, vkd_pool *p);
void vkd_pool_stats_get(const vkd_pool *p, vkd_memory_stats *s);
vkd_result vkd_buffer_create_in(vkd_device *d, vkd_pool *p, VkDeviceSize size, vkd_buffer *out);

/* Frees a buffer made by vkd_buffer_create(_in); safe on a zeroed or already destroyed buffer. */
void vkd_buffer_destroy(vkd_device *d, vkd_buffer *b);

/* Copy host bytes into b at byte offset `off`, and back. Blocking. */
vkd_result vkd_buffer_upload(vkd_device *d, const vkd_buffer *b, VkDeviceSize off, const void *src, VkDeviceSize n);
vkd_result vkd_buffer_download(vkd_device *d, const vkd_buffer *b, VkDeviceSize off, void *dst, VkDeviceSize n);
/* Like vkd_buffer_upload, the bytes written by fill(dst, at, len, ctx) -- bytes [at, at +
 * len) of the upload -- straight into mapped device memory or the staging buffer, so no
 * copy of the whole upload need exist in host memory first. Chunks are whole multiples
 * of 16 bytes but the last. */
typedef vkd_result (*vkd_fill_fn)(void *dst, VkDeviceSize at, VkDeviceSize len, void *ctx);
vkd_result vkd_buffer_upload_fill(vkd_device *d, const vkd_buffer *b, VkDeviceSize off, VkDeviceSize n,
                                  vkd_fill_fn fill, void *ctx);
/* Fill with a 32-bit pattern (used to poison outputs in tests). */
vkd_result vkd_buffer_fill(vkd_device *d, const vkd_buffer *b, uint32_t pattern);
/* Tests: fill every range of the device's main allocator that no buffer holds -- the free
 * ranges and each block's slack past what it hands out, which texel views and vector
 * loads past a tensor's end may read -- with a 32-bit pattern. With
 * vkd_device_opts.poison (every new buffer filled too) nothing an op can read holds
 * what an earlier run left there. */
vkd_result vkd_memory_poison_free(vkd_device *d, uint32_t pattern);

#endif
