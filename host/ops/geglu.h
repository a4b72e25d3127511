/* GEGLU feed-forward gate of the SD transformer block. */
#ifndef VKD_GEGLU_H
#define VKD_GEGLU_H

#include "ops/op.h"

/* in: [..., 2F], out: [..., F] in in's dtype.
 * out = in[..., :F] * gelu_erf(in[..., F:]) (value half first, gate half second,
 * as CompVis ldm/modules/attention.py GEGLU). */
vkd_result vkd_op_geglu(vkd_cmd *c, const vkd_tensor *in, vkd_tensor *out);

#endif
