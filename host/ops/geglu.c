/* GEGLU (shaders/geglu.comp): rows chunked so both windows fit one binding. */
#include "ops/geglu.h"

#include "common/log.h"
#include "push_geglu.h"

#define LOCAL 256

vkd_result vkd_op_geglu(vkd_cmd *c, const vkd_tensor *in, vkd_tensor *out)
{
    int64_t f2 = in->shape[in->ndim - 1], f = f2 / 2, rows = vkd_tensor_numel(in) / f2;
    if (f2 % 2)
        return vkd_op_shape_error("geglu", "input's last dimension must be even (value, gate)", in);
    if (out->dtype != in->dtype || out->shape[out->ndim - 1] != f || vkd_tensor_numel(out) != rows * f)
        return vkd_op_shape_error("geglu", "out must be [..., F] for in [..., 2F], same dtype", out);
    int64_t chunk = vkd_op_max_elems(c, in->dtype) / f2;
    if (chunk < 1) {
        VKD_ERROR("geglu: a row of %lld values exceeds a binding window", (long long)f2);
        return VKD_ERR_TOO_LARGE;
    }
    const vkd_pipeline *p;
    uint32_t spec[3] = {LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_GEGLU, in->dtype, spec, 3, &p);
    if (r)
        return r;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        vkd_push_geglu pc = {.n = (uint32_t)(nr * f), .f = (uint32_t)f};
        vkd_binding b[2];
        if ((r = vkd_op_bind(c, in, r0 * f2, nr * f2, &b[0], &pc.i_off)) ||
            (r = vkd_op_bind(c, out, r0 * f, nr * f, &b[1], &pc.o_off)))
            return r;
        uint32_t gx, gy;
        vkd_op_grid_1d(pc.n, LOCAL, &gx, &gy);
        if ((r = vkd_cmd_dispatch(c, p, b, 2, &pc, sizeof pc, gx, gy, 1, "geglu")))
            return r;
    }
    return VKD_OK;
}
