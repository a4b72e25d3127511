/* A weight changed in place by a LoRA (shaders/lora.comp): the recorded model keeps
 * using the same buffers, so nothing is re-recorded when LoRAs change (issue 22). */
#ifndef VKD_OPS_LORA_H
#define VKD_OPS_LORA_H

#include "ops/op.h"

/* W[row0 + o, c] += sum_r u[o, r] dt[c, r] for o < rows, c < cols, with w seen as
 * [numel / cols, cols] (a re-laid conv kernel's row is kh*kw*in): the low-rank product by
 * vkd_op_linear with the weight's rows as its residual and output, so the sum is
 * accumulated in fp32 and the weight rounded once to its dtype, with no scratch.
 * u [rows, rank] (the scale folded in) and dt [cols, rank] (the down factor transposed)
 * are of w's dtype. */
vkd_result vkd_op_lora_product(vkd_cmd *c, const vkd_tensor *w, int64_t row0, int64_t rows, int64_t cols,
                               const vkd_tensor *u, const vkd_tensor *dt);

/* Rows [row0, row0 + rows) of the weight w (elements (row0 + o) * ldw + c, c < cols):
 * W[o, c] += scale * u[o, c], u fp32 [rows, cols] (a LoHa or LoKr delta made on the
 * host), rounded once to w's dtype. */
vkd_result vkd_op_lora_update(vkd_cmd *c, const vkd_tensor *w, int64_t row0, int64_t rows, int64_t cols, int64_t ldw,
                              const vkd_tensor *u, float scale);

/* out[out0 + o] = sum_c float(W[(row0 + o) * ldw + c]) over c < cols, for o < rows; out fp32
 * (a folded layer norm's row sums, vkd_ln_fold, after its weight changed). */
vkd_result vkd_op_row_sum(vkd_cmd *c, const vkd_tensor *w, int64_t row0, int64_t rows, int64_t cols, int64_t ldw,
                          vkd_tensor *out, int64_t out0);

#endif
