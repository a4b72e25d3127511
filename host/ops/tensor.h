/* Device tensors: a byte range of a vkd_buffer with a dtype and a row-major shape.
 * Activations are channels-last: [N, H*W, C] (decision 2). */
#ifndef VKD_TENSOR_H
#define VKD_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "vk/memory.h"

typedef enum vkd_dtype { VKD_F32 = 0, VKD_F16 = 1 } vkd_dtype;

#define VKD_MAX_DIMS 4

typedef struct vkd_tensor {
    vkd_buffer buf;          /* the allocation (shared by views) */
    VkDeviceSize offset;     /* byte offset of element 0 inside buf */
    vkd_dtype dtype;
    int ndim;
    int64_t shape[VKD_MAX_DIMS]; /* outermost first; shape[ndim-1] is contiguous */
    bool owner;              /* destroy frees buf */
} vkd_tensor;

static inline uint32_t vkd_dtype_size(vkd_dtype t) { return t == VKD_F16 ? 2 : 4; }
const char *vkd_dtype_suffix(vkd_dtype t); /* "f32" / "f16": the shader variant */

int64_t vkd_tensor_numel(const vkd_tensor *t);
static inline VkDeviceSize vkd_tensor_bytes(const vkd_tensor *t)
{
    return (VkDeviceSize)vkd_tensor_numel(t) * vkd_dtype_size(t->dtype);
}

/* Allocate a tensor (zeroed struct on failure). */
vkd_result vkd_tensor_create(vkd_device *d, vkd_dtype dt, int ndim, const int64_t *shape, vkd_tensor *out);
/* Same, from a pool (NULL: the device's general memory). */
vkd_result vkd_tensor_create_in(vkd_device *d, vkd_pool *pool, vkd_dtype dt, int ndim, const int64_t *shape,
                                vkd_tensor *out);
void vkd_tensor_destroy(vkd_device *d, vkd_tensor *t);
/* A view of rows [row0, row0+rows) of the outermost dimension (no allocation). */
vkd_tensor vkd_tensor_rows(const vkd_tensor *t, int64_t row0, int64_t rows);
/* Same storage, new shape with the same element count. */
vkd_result vkd_tensor_reshape(const vkd_tensor *t, int ndim, const int64_t *shape, vkd_tensor *out);

/* Host <-> device in fp32, converting to/from the tensor's dtype. */
vkd_result vkd_tensor_upload_f32(vkd_device *d, const vkd_tensor *t, const float *src);
vkd_result vkd_tensor_download_f32(vkd_device *d, const vkd_tensor *t, float *dst);

/* "[2, 4096, 320] f16" into buf, for error messages. */
const char *vkd_tensor_str(const vkd_tensor *t, char *buf, size_t n);

#endif
