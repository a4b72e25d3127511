/* Element-wise ops on tensors of equal dtype. Any size: work larger than one
 * binding window is split into several dispatches. */
#ifndef VKD_ELTWISE_H
#define VKD_ELTWISE_H

#include "ops/op.h"
#include "push_eltwise.h"

/* out = a (op) b, same shapes (out may alias a). */
vkd_result vkd_op_add(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *b, vkd_tensor *out);
vkd_result vkd_op_mul(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *b, vkd_tensor *out);
/* a: [..., C], bias: [C] -> out = a + bias (over the last dimension) */
vkd_result vkd_op_add_channels(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *bias, vkd_tensor *out);
/* a: [N, L, C], v: [N, C] -> out[n, l, c] = a[n, l, c] + v[n, c] (time embedding into a feature map) */
vkd_result vkd_op_add_rows(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *v, vkd_tensor *out);
vkd_result vkd_op_silu(vkd_cmd *c, const vkd_tensor *a, vkd_tensor *out);
vkd_result vkd_op_gelu(vkd_cmd *c, const vkd_tensor *a, vkd_tensor *out);
vkd_result vkd_op_quick_gelu(vkd_cmd *c, const vkd_tensor *a, vkd_tensor *out);
vkd_result vkd_op_relu(vkd_cmd *c, const vkd_tensor *a, vkd_tensor *out);
/* out = m * tanh(a / m), m > 0 (TAESD's Clamp, m = 3) */
vkd_result vkd_op_tanh_clamp(vkd_cmd *c, const vkd_tensor *a, float m, vkd_tensor *out);
/* out = alpha * a + beta */
vkd_result vkd_op_scale(vkd_cmd *c, const vkd_tensor *a, float alpha, float beta, vkd_tensor *out);

#endif
