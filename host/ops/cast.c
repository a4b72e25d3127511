/* Cast (shaders/cast.comp): elements chunked so both windows fit one binding. */
#include "ops/cast.h"

#include "common/log.h"
#include "push_cast.h"

#define LOCAL 256

vkd_result vkd_op_cast(vkd_cmd *c, const vkd_tensor *in, vkd_tensor *out)
{
    int64_t n = vkd_tensor_numel(in);
    if (vkd_tensor_numel(out) != n)
        return vkd_op_shape_error("cast", "out must have in's element count", out);
    if (in->dtype == VKD_F16 && out->dtype == VKD_F16)
        return vkd_op_shape_error("cast", "fp16 -> fp16 is not a cast", out);
    vkd_dtype variant = in->dtype == VKD_F16 || out->dtype == VKD_F16 ? VKD_F16 : VKD_F32;
    if (variant == VKD_F16 && !vkd_cmd_device(c)->caps.storage16) {
        VKD_ERROR("cast: fp16 tensors need 16-bit storage, which this device lacks");
        return VKD_ERR_UNSUPPORTED;
    }
    /* binding 0 is always the fp32 side, binding 1 the variant's T side */
    uint32_t dir = in->dtype == VKD_F32 ? VKD_CAST_TO_T : VKD_CAST_TO_F32;
    const vkd_tensor *ft = dir == VKD_CAST_TO_T ? in : out, *ht = dir == VKD_CAST_TO_T ? out : in;
    const vkd_pipeline *p;
    uint32_t spec[3] = {LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_CAST, variant, spec, 3, &p);
    if (r)
        return r;
    int64_t chunk = vkd_op_max_elems(c, VKD_F32); /* the fp32 side is the larger */
    for (int64_t e0 = 0; e0 < n; e0 += chunk) {
        int64_t ne = n - e0 < chunk ? n - e0 : chunk;
        vkd_push_cast pc = {.n = (uint32_t)ne, .dir = dir};
        vkd_binding b[2];
        if ((r = vkd_op_bind(c, ft, e0, ne, &b[0], &pc.f_off)) || (r = vkd_op_bind(c, ht, e0, ne, &b[1], &pc.h_off)))
            return r;
        uint32_t gx, gy;
        vkd_op_grid_1d((uint64_t)ne, LOCAL, &gx, &gy);
        if ((r = vkd_cmd_dispatch(c, p, b, 2, &pc, sizeof pc, gx, gy, 1, "cast")))
            return r;
    }
    return VKD_OK;
}
