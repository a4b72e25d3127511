/* Element-wise ops (shaders/eltwise.comp). */
#include "ops/eltwise.h"

#define LOCAL 256

static const char *const op_names[] = {
    [VKD_ELT_ADD] = "add", [VKD_ELT_MUL] = "mul", [VKD_ELT_ADD_BCAST_C] = "add_channels",
    [VKD_ELT_ADD_BCAST_ROW] = "add_rows", [VKD_ELT_SILU] = "silu", [VKD_ELT_GELU] = "gelu",
    [VKD_ELT_QUICK_GELU] = "quick_gelu", [VKD_ELT_SCALE] = "scale",
    [VKD_ELT_RELU] = "relu", [VKD_ELT_TANH_CLAMP] = "tanh_clamp",
};

/* b_mode: 0 = b has a's shape (windowed with a), 1 = b is small and bound whole, 2 = no b */
static vkd_result run(vkd_cmd *c, uint32_t op, const vkd_tensor *a, const vkd_tensor *b, int b_mode, uint32_t ch,
                      uint32_t inner, float alpha, float beta, vkd_tensor *out)
{
    if (out->dtype != a->dtype || (b && b->dtype != a->dtype))
        return vkd_op_shape_error(op_names[op], "operands must share a dtype", out);
    if (vkd_tensor_numel(out) != vkd_tensor_numel(a))
        return vkd_op_shape_error(op_names[op], "output size differs from input", out);
    if (b_mode == 0 && vkd_tensor_numel(b) != vkd_tensor_numel(a))
        return vkd_op_shape_error(op_names[op], "operand sizes differ", b);
    const vkd_pipeline *p;
    uint32_t spec[3] = {LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_ELTWISE, a->dtype, spec, 3, &p);
    if (r)
        return r;
    int64_t n = vkd_tensor_numel(a);
    int64_t chunk = vkd_op_max_elems(c, a->dtype);
    for (int64_t e0 = 0; e0 < n; e0 += chunk) {
        int64_t ne = n - e0 < chunk ? n - e0 : chunk;
        vkd_binding bind[3];
        vkd_push_eltwise pc = {.n = (uint32_t)ne, .base = (uint32_t)e0, .op = op, .c = ch ? ch : 1,
                               .inner = inner ? inner : 1, .alpha = alpha, .beta = beta};
        if ((r = vkd_op_bind(c, a, e0, ne, &bind[0], &pc.a_off)))
            return r;
        if (b_mode == 0)
            r = vkd_op_bind(c, b, e0, ne, &bind[1], &pc.b_off);
        else if (b_mode == 1)
            r = vkd_op_bind(c, b, 0, vkd_tensor_numel(b), &bind[1], &pc.b_off);
        else
            r = vkd_op_bind(c, a, e0, ne, &bind[1], &pc.b_off); /* unused, but every binding needs a buffer */
        if (r)
            return r;
        if ((r = vkd_op_bind(c, out, e0, ne, &bind[2], &pc.o_off)))
            return r;
        uint32_t gx, gy;
        vkd_op_grid_1d((uint64_t)ne, LOCAL, &gx, &gy);
        if ((r = vkd_cmd_dispatch(c, p, bind, 3, &pc, sizeof pc, gx, gy, 1, op_names[op])))
            return r;
    }
    return VKD_OK;
}

vkd_result vkd_op_add(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *b, vkd_tensor *out)
{
    return run(c, VKD_ELT_ADD, a, b, 0, 0, 0, 0, 0, out);
}

vkd_result vkd_op_mul(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *b, vkd_tensor *out)
{
    return run(c, VKD_ELT_MUL, a, b, 0, 0, 0, 0, 0, out);
}

vkd_result vkd_op_add_channels(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *bias, vkd_tensor *out)
{
    int64_t ch = a->shape[a->ndim - 1];
    if (vkd_tensor_numel(bias) != ch)
        return vkd_op_shape_error("add_channels", "bias must have one value per channel", bias);
    return run(c, VKD_ELT_ADD_BCAST_C, a, bias, 1, (uint32_t)ch, 0, 0, 0, out);
}

vkd_result vkd_op_add_rows(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *v, vkd_tensor *out)
{
    if (a->ndim != 3 || v->ndim != 2 || v->shape[0] != a->shape[0] || v->shape[1] != a->shape[2])
        return vkd_op_shape_error("add_rows", "want a [N, L, C] and v [N, C]", v);
    return run(c, VKD_ELT_ADD_BCAST_ROW, a, v, 1, (uint32_t)a->shape[2], (uint32_t)(a->shape[1] * a->shape[2]), 0, 0,
               out);
}

vkd_result vkd_op_silu(vkd_cmd *c, const vkd_tensor *a, vkd_tensor *out)
{
    return run(c, VKD_ELT_SILU, a, NULL, 2, 0, 0, 0, 0, out);
}

vkd_result vkd_op_gelu(vkd_cmd *c, const vkd_tensor *a, vkd_tensor *out)
{
    return run(c, VKD_ELT_GELU, a, NULL, 2, 0, 0, 0, 0, out);
}

vkd_result vkd_op_quick_gelu(vkd_cmd *c, const vkd_tensor *a, vkd_tensor *out)
{
    return run(c, VKD_ELT_QUICK_GELU, a, NULL, 2, 0, 0, 0, 0, out);
}

vkd_result vkd_op_scale(vkd_cmd *c, const vkd_tensor *a, float alpha, float beta, vkd_tensor *out)
{
    return run(c, VKD_ELT_SCALE, a, NULL, 2, 0, 0, alpha, beta, out);
}

vkd_result vkd_op_relu(vkd_cmd *c, const vkd_tensor *a, vkd_tensor *out)
{
    return run(c, VKD_ELT_RELU, a, NULL, 2, 0, 0, 0, 0, out);
}

vkd_result vkd_op_tanh_clamp(vkd_cmd *c, const vkd_tensor *a, float m, vkd_tensor *out)
{
    if (!(m > 0))
        return vkd_op_shape_error("tanh_clamp", "the magnitude must be positive", a);
    return run(c, VKD_ELT_TANH_CLAMP, a, NULL, 2, 0, 0, m, 0, out);
}
