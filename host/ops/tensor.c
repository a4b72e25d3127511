#include "ops/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/half.h"
#include "common/log.h"

const char *vkd_dtype_suffix(vkd_dtype t) { return t == VKD_F16 ? "f16" : "f32"; }

int64_t vkd_tensor_numel(const vkd_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

vkd_result vkd_tensor_create(vkd_device *d, vkd_dtype dt, int ndim, const int64_t *shape, vkd_tensor *out)
{
    return vkd_tensor_create_in(d, NULL, dt, ndim, shape, out);
}

vkd_result vkd_tensor_create_in(vkd_device *d, vkd_pool *pool, vkd_dtype dt, int ndim, const int64_t *shape,
                                vkd_tensor *out)
{
    memset(out, 0, sizeof *out);
    if (ndim < 1 || ndim > VKD_MAX_DIMS)
        return VKD_ERR_INVALID_ARG;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0 || shape[i] > (1ll << 40) / n) {
            VKD_ERROR("tensor dimension %d = %lld is out of range", i, (long long)shape[i]);
            return VKD_ERR_INVALID_ARG;
        }
        n *= shape[i];
    }
    vkd_result r = vkd_buffer_create_in(d, pool ? pool : d->mem, (VkDeviceSize)n * vkd_dtype_size(dt), &out->buf);
    if (r)
        return r;
    out->dtype = dt;
    out->ndim = ndim;
    memcpy(out->shape, shape, ndim * sizeof *shape);
    out->owner = true;
    return VKD_OK;
}

void vkd_tensor_destroy(vkd_device *d, vkd_tensor *t)
{
    if (t && t->owner)
        vkd_buffer_destroy(d, &t->buf);
    if (t)
        memset(t, 0, sizeof *t);
}

vkd_tensor vkd_tensor_rows(const vkd_tensor *t, int64_t row0, int64_t rows)
{
    vkd_tensor v = *t;
    int64_t inner = vkd_tensor_numel(t) / t->shape[0];
    v.offset += (VkDeviceSize)(row0 * inner) * vkd_dtype_size(t->dtype);
    v.shape[0] = rows;
    v.owner = false;
    return v;
}

vkd_result vkd_tensor_reshape(const vkd_tensor *t, int ndim, const int64_t *shape, vkd_tensor *out)
{
    vkd_tensor v = *t;
    v.ndim = ndim;
    memcpy(v.shape, shape, ndim * sizeof *shape);
    if (vkd_tensor_numel(&v) != vkd_tensor_numel(t))
        return VKD_ERR_SHAPE;
    v.owner = false;
    *out = v;
    return VKD_OK;
}

vkd_result vkd_tensor_upload_f32(vkd_device *d, const vkd_tensor *t, const float *src)
{
    int64_t n = vkd_tensor_numel(t);
    if (t->dtype == VKD_F32)
        return vkd_buffer_upload(d, &t->buf, t->offset, src, (VkDeviceSize)n * 4);
    uint16_t *h = malloc((size_t)n * 2);
    if (!h)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    for (int64_t i = 0; i < n; i++)
        h[i] = vkd_float_to_half(src[i]);
    vkd_result r = vkd_buffer_upload(d, &t->buf, t->offset, h, (VkDeviceSize)n * 2);
    free(h);
    return r;
}

vkd_result vkd_tensor_download_f32(vkd_device *d, const vkd_tensor *t, float *dst)
{
    int64_t n = vkd_tensor_numel(t);
    if (t->dtype == VKD_F32)
        return vkd_buffer_download(d, &t->buf, t->offset, dst, (VkDeviceSize)n * 4);
    uint16_t *h = malloc((size_t)n * 2);
    if (!h)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result r = vkd_buffer_download(d, &t->buf, t->offset, h, (VkDeviceSize)n * 2);
    if (!r)
        for (int64_t i = 0; i < n; i++)
            dst[i] = vkd_half_to_float(h[i]);
    free(h);
    return r;
}

const char *vkd_tensor_str(const vkd_tensor *t, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "] %s", vkd_dtype_suffix(t->dtype));
    return buf;
}
