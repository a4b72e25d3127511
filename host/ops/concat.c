/* Channel concat (shaders/concat.comp): rows chunked so each window fits one binding. */
#include "ops/concat.h"

#include "common/log.h"
#include "push_concat.h"

#define LOCAL 256

vkd_result vkd_op_concat(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *b, vkd_tensor *out)
{
    int64_t c1 = a->shape[a->ndim - 1], c2 = b->shape[b->ndim - 1], co = c1 + c2;
    int64_t rows = vkd_tensor_numel(a) / c1;
    if (b->dtype != a->dtype || b->ndim != a->ndim || vkd_tensor_numel(b) != rows * c2)
        return vkd_op_shape_error("concat", "b must match a in dtype and leading dimensions", b);
    for (int i = 0; i < a->ndim - 1; i++)
        if (b->shape[i] != a->shape[i] || (out->ndim == a->ndim && out->shape[i] != a->shape[i]))
            return vkd_op_shape_error("concat", "leading dimensions differ", b->shape[i] != a->shape[i] ? b : out);
    if (out->dtype != a->dtype || out->ndim != a->ndim || out->shape[out->ndim - 1] != co)
        return vkd_op_shape_error("concat", "out must be [..., C1+C2] in a's dtype", out);
    int64_t chunk = vkd_op_max_elems(c, a->dtype) / co;
    if (chunk < 1) {
        VKD_ERROR("concat: a row of %lld values exceeds a binding window", (long long)co);
        return VKD_ERR_TOO_LARGE;
    }
    const vkd_pipeline *p;
    uint32_t spec[3] = {LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_CONCAT, a->dtype, spec, 3, &p);
    if (r)
        return r;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        vkd_push_concat pc = {.n = (uint32_t)(nr * co), .c1 = (uint32_t)c1, .c2 = (uint32_t)c2};
        vkd_binding bd[3];
        if ((r = vkd_op_bind(c, a, r0 * c1, nr * c1, &bd[0], &pc.a_off)) ||
            (r = vkd_op_bind(c, b, r0 * c2, nr * c2, &bd[1], &pc.b_off)) ||
            (r = vkd_op_bind(c, out, r0 * co, nr * co, &bd[2], &pc.o_off)))
            return r;
        uint32_t gx, gy;
        vkd_op_grid_1d(pc.n, LOCAL, &gx, &gy);
        if ((r = vkd_cmd_dispatch(c, p, bd, 3, &pc, sizeof pc, gx, gy, 1, "concat")))
            return r;
    }
    return VKD_OK;
}
