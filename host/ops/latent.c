/* Latent conversions around the UNet (shaders/latent.comp). */
#include "ops/latent.h"

#include "push_latent.h"

#define LOCAL 256

static vkd_result latent(vkd_cmd *c, uint32_t mode, const vkd_tensor *f, const vkd_tensor *s, const vkd_tensor *t,
                         int64_t scaled)
{
    if (f->dtype != VKD_F32 || f->ndim != 2 || s->dtype != VKD_F32 || vkd_tensor_numel(s) < 2)
        return vkd_op_shape_error("latent", "x/eps must be fp32 [ch, hw], scalars fp32 [2]", f);
    int64_t ch = f->shape[0], hw = f->shape[1];
    if (t->ndim != 3 || t->shape[1] != hw || t->shape[2] != ch || t->shape[0] < 1 || t->shape[0] > 2)
        return vkd_op_shape_error("latent", "the UNet side must be [1 or 2, hw, ch]", t);
    const vkd_pipeline *p;
    uint32_t spec[3] = {LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_LATENT, t->dtype, spec, 3, &p);
    if (r)
        return r;
    if (scaled < 0 || scaled > ch)
        return vkd_op_shape_error("latent", "scaled channels must be 0..ch", f);
    vkd_push_latent pc = {.mode = mode, .hw = (uint32_t)hw, .ch = (uint32_t)ch, .batch = (uint32_t)t->shape[0],
                          .scaled = (uint32_t)scaled};
    vkd_binding b[3];
    if ((r = vkd_op_bind(c, f, 0, vkd_tensor_numel(f), &b[0], &pc.f_off)) ||
        (r = vkd_op_bind(c, s, 0, vkd_tensor_numel(s), &b[1], &pc.s_off)) ||
        (r = vkd_op_bind(c, t, 0, vkd_tensor_numel(t), &b[2], &pc.t_off)))
        return r;
    uint32_t gx, gy;
    vkd_op_grid_1d((uint64_t)(hw * ch), LOCAL, &gx, &gy);
    return vkd_cmd_dispatch(c, p, b, 3, &pc, sizeof pc, gx, gy, 1, mode == VKD_LATENT_IN ? "latent_in" : "guidance");
}

vkd_result vkd_op_latent_in(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *scalars, vkd_tensor *unet_x)
{
    return latent(c, VKD_LATENT_IN, x, scalars, unet_x, x->ndim == 2 ? x->shape[0] : 0);
}

vkd_result vkd_op_latent_in_cond(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *scalars, int64_t scaled,
                                 vkd_tensor *unet_x)
{
    return latent(c, VKD_LATENT_IN, x, scalars, unet_x, scaled);
}

vkd_result vkd_op_latent_guide(vkd_cmd *c, const vkd_tensor *unet_out, const vkd_tensor *scalars, vkd_tensor *eps)
{
    return latent(c, VKD_LATENT_GUIDE, eps, scalars, unet_out, 0);
}
