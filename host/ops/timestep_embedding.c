/* Timestep embedding (shaders/timestep_embedding.comp). */
#include "ops/timestep_embedding.h"

#include <math.h>

#include "common/log.h"
#include "push_timestep_embedding.h"

#define LOCAL 64

vkd_result vkd_op_timestep_embedding(vkd_cmd *c, const vkd_tensor *t, uint32_t dim, double max_period,
                                     vkd_tensor *out)
{
    if (t->dtype != VKD_F32 || t->ndim != 1)
        return vkd_op_shape_error("timestep_embedding", "timesteps must be an fp32 [N]", t);
    int64_t n = t->shape[0];
    if (dim < 2 || out->ndim != 2 || out->shape[0] != n || out->shape[1] != dim)
        return vkd_op_shape_error("timestep_embedding", "out must be [N, dim] with dim >= 2", out);
    if (!(max_period > 1.0)) {
        VKD_ERROR("timestep_embedding: max_period must exceed 1 (got %g)", max_period);
        return VKD_ERR_INVALID_ARG;
    }
    if (n * dim > vkd_op_max_elems(c, out->dtype)) {
        VKD_ERROR("timestep_embedding: [%lld, %u] exceeds a binding window", (long long)n, dim);
        return VKD_ERR_TOO_LARGE;
    }
    const vkd_pipeline *p;
    uint32_t spec[3] = {LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_TIMESTEP_EMBEDDING, out->dtype, spec, 3, &p);
    if (r)
        return r;
    uint32_t half = dim / 2;
    double b = exp(-log(max_period) / half);
    vkd_push_timestep pc = {.n = (uint32_t)n, .dim = dim, .b_hi = (float)b};
    pc.b_lo = (float)(b - (double)pc.b_hi);
    vkd_binding bd[2];
    if ((r = vkd_op_bind(c, t, 0, n, &bd[0], &pc.t_off)) || (r = vkd_op_bind(c, out, 0, n * dim, &bd[1], &pc.o_off)))
        return r;
    uint32_t gx, gy;
    vkd_op_grid_1d((uint64_t)n * half, LOCAL, &gx, &gy);
    return vkd_cmd_dispatch(c, p, bd, 2, &pc, sizeof pc, gx, gy, 1, "timestep_embedding");
}
