#include "ops/op.h"

#include <stdio.h>

#include "common/log.h"

vkd_result vkd_op_pipeline(vkd_cmd *c, vkd_kernel k, vkd_dtype dt, const uint32_t *spec, uint32_t n_spec,
                           const vkd_pipeline **out)
{
    return vkd_op_pipeline_subgroup(c, k, dt, spec, n_spec, 0, out);
}

vkd_result vkd_op_pipeline_subgroup(vkd_cmd *c, vkd_kernel k, vkd_dtype dt, const uint32_t *spec, uint32_t n_spec,
                                    uint32_t subgroup, const vkd_pipeline **out)
{
    return vkd_pipeline_get(vkd_cmd_device(c), k, (uint32_t)dt, spec, n_spec, subgroup, out);
}

vkd_result vkd_op_bind(vkd_cmd *c, const vkd_tensor *t, int64_t elem0, int64_t nelem, vkd_binding *b,
                       uint32_t *shift)
{
    uint32_t es = vkd_dtype_size(t->dtype);
    if (elem0 < 0 || nelem < 0 || elem0 + nelem > vkd_tensor_numel(t))
        return VKD_ERR_INTERNAL;
    return vkd_binding_window(vkd_cmd_device(c), &t->buf, t->offset + (VkDeviceSize)elem0 * es,
                              (VkDeviceSize)(nelem ? nelem : 1) * es, es, b, shift);
}

int64_t vkd_op_max_elems(vkd_cmd *c, vkd_dtype dt)
{
    const vkd_device *d = vkd_cmd_device(c);
    uint64_t align = d->caps.ssbo_align ? d->caps.ssbo_align : 256;
    /* a window may start up to align-1 bytes before the first element */
    uint64_t usable = d->caps.max_binding - align;
    /* shaders index with 32-bit uints */
    int64_t n = (int64_t)(usable / vkd_dtype_size(dt));
    return n > 0x7fffffffll ? 0x7fffffffll : n;
}

void vkd_op_grid_1d(uint64_t n, uint32_t local, uint32_t *gx, uint32_t *gy)
{
    uint64_t groups = (n + local - 1) / local;
    if (groups == 0)
        groups = 1;
    if (groups <= 65535) {
        *gx = (uint32_t)groups;
        *gy = 1;
    } else {
        *gx = 65535;
        *gy = (uint32_t)((groups + 65534) / 65535);
    }
}

vkd_result vkd_op_shape_error(const char *op, const char *what, const vkd_tensor *t)
{
    char s[96];
    VKD_ERROR("%s: %s (got %s)", op, what, t ? vkd_tensor_str(t, s, sizeof s) : "none");
    return VKD_ERR_SHAPE;
}
