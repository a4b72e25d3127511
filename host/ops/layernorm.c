/* Layer norm (shaders/layernorm.comp): rows chunked so each window fits one binding. */
#include "ops/layernorm.h"

#include "common/log.h"
#include "push_layernorm.h"

/* 128 invocations: a 320..1280-channel row is a few values each */
#define LOCAL 128

vkd_result vkd_op_layernorm(vkd_cmd *c, const vkd_tensor *x, float eps, const vkd_tensor *gamma,
                            const vkd_tensor *beta, vkd_tensor *out)
{
    int64_t ch = x->shape[x->ndim - 1], rows = vkd_tensor_numel(x) / ch;
    if (gamma->dtype != x->dtype || vkd_tensor_numel(gamma) != ch)
        return vkd_op_shape_error("layernorm", "gamma must be [C] in x's dtype", gamma);
    if (beta->dtype != x->dtype || vkd_tensor_numel(beta) != ch)
        return vkd_op_shape_error("layernorm", "beta must be [C] in x's dtype", beta);
    if (out->dtype != x->dtype || vkd_tensor_numel(out) != vkd_tensor_numel(x) || out->shape[out->ndim - 1] != ch)
        return vkd_op_shape_error("layernorm", "out must have x's shape and dtype", out);
    if (!(eps > 0.0f)) {
        VKD_ERROR("layernorm: eps must be positive (got %g)", (double)eps);
        return VKD_ERR_INVALID_ARG;
    }
    int64_t chunk = vkd_op_max_elems(c, x->dtype) / ch;
    if (chunk < 1) {
        VKD_ERROR("layernorm: a row of %lld values exceeds a binding window", (long long)ch);
        return VKD_ERR_TOO_LARGE;
    }
    if (chunk > 65535ll * 65535ll)
        chunk = 65535ll * 65535ll;
    const vkd_pipeline *p;
    uint32_t spec[3] = {LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_LAYERNORM, x->dtype, spec, 3, &p);
    if (r)
        return r;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        vkd_push_layernorm pc = {.rows = (uint32_t)nr, .c = (uint32_t)ch, .eps = eps};
        vkd_binding b[4];
        if ((r = vkd_op_bind(c, x, r0 * ch, nr * ch, &b[0], &pc.x_off)) ||
            (r = vkd_op_bind(c, gamma, 0, ch, &b[1], &pc.g_off)) || (r = vkd_op_bind(c, beta, 0, ch, &b[2], &pc.b_off)) ||
            (r = vkd_op_bind(c, out, r0 * ch, nr * ch, &b[3], &pc.o_off)))
            return r;
        uint32_t gx, gy;
        vkd_op_grid_1d((uint64_t)nr, 1, &gx, &gy);
        if ((r = vkd_cmd_dispatch(c, p, b, 4, &pc, sizeof pc, gx, gy, 1, "layernorm")))
            return r;
    }
    return VKD_OK;
}
