/* Layer norm over the last dimension (CLIP, SpatialTransformer blocks). */
#ifndef VKD_LAYERNORM_H
#define VKD_LAYERNORM_H

#include "ops/op.h"

/* x: [..., C], gamma/beta: [C] (x's dtype), out: x's shape and dtype (may alias x).
 * out = (x - mean) / sqrt(var + eps) * gamma + beta over each row of C values
 * (biased variance, fp32 statistics; torch.nn.LayerNorm, eps 1e-5 in CLIP/SD). */
vkd_result vkd_op_layernorm(vkd_cmd *c, const vkd_tensor *x, float eps, const vkd_tensor *gamma,
                            const vkd_tensor *beta, vkd_tensor *out);

#endif
