/* Prompt emphasis (shaders/emphasis.comp): one workgroup per chunk. */
#include "ops/emphasis.h"

#include "push_emphasis.h"

#define LOCAL 256 /* = the shader's shared arrays */

vkd_result vkd_op_emphasis(vkd_cmd *c, vkd_tensor *z, const vkd_tensor *weights, int64_t tokens)
{
    if (z->ndim != 2 || tokens < 1 || z->shape[0] % tokens)
        return vkd_op_shape_error("emphasis", "z must be [chunks * tokens, width]", z);
    if (weights->dtype != VKD_F32 || vkd_tensor_numel(weights) != z->shape[0])
        return vkd_op_shape_error("emphasis", "weights must be fp32 [chunks * tokens]", weights);
    int64_t chunks = z->shape[0] / tokens;
    const vkd_pipeline *p;
    uint32_t spec[3] = {LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_EMPHASIS, z->dtype, spec, 3, &p);
    if (r)
        return r;
    vkd_push_emphasis pc = {.tokens = (uint32_t)tokens, .width = (uint32_t)z->shape[1]};
    vkd_binding b[2];
    if ((r = vkd_op_bind(c, z, 0, vkd_tensor_numel(z), &b[0], &pc.z_off)) ||
        (r = vkd_op_bind(c, weights, 0, vkd_tensor_numel(weights), &b[1], &pc.w_off)))
        return r;
    return vkd_cmd_dispatch(c, p, b, 2, &pc, sizeof pc, (uint32_t)chunks, 1, 1, "emphasis");
}
