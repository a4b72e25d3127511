/* Concatenation along the last (channel) dimension: UNet skip connections. */
#ifndef VKD_CONCAT_H
#define VKD_CONCAT_H

#include "ops/op.h"

/* a: [..., C1], b: [..., C2] with the same leading dimensions, out: [..., C1+C2],
 * all one dtype. out[..., :C1] = a, out[..., C1:] = b. */
vkd_result vkd_op_concat(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *b, vkd_tensor *out);

#endif
