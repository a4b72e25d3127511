/* Prompt emphasis on the device (shaders/emphasis.comp): A1111's rule
 * (modules/sd_hijack_clip.py process_tokens) applied to the text encoder's output in
 * place, so the encoding never goes to the host. */
#ifndef VKD_OPS_EMPHASIS_H
#define VKD_OPS_EMPHASIS_H
#include "ops/op.h"

/* z: [chunks * tokens, width] (T), weights: [chunks * tokens] fp32. Per chunk:
 * z[t] *= weights[t], then z *= sum_before / sum_after (when sum_after is not 0 and
 * the sums differ). */
vkd_result vkd_op_emphasis(vkd_cmd *c, vkd_tensor *z, const vkd_tensor *weights, int64_t tokens);
#endif
