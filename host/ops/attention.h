/* Fused multi-head attention (flash style: online softmax in fp32, the score
 * matrix is never stored), shaders/attention.comp.
 *
 *   out[n, i, h*D + d] = sum_j softmax_j(scale * q[n, i, h] . k[n, j, h]) v[n, j, h*D + d]
 *
 * q [N, Lq, *], k and v [N, Lk, *], out [N, Lq, *]: channels-last token matrices as
 * the linear layers produce them. Head h of q uses columns q_col + h*D .. + D - 1 of
 * q's last dimension, whose size is the row stride; so q, k, v may be views into one
 * packed qkv projection [N, L, 3*H*D] (q_col = 0, k_col = H*D, v_col = 2*H*D) or a
 * packed kv [N, Lk, 2*H*D] without copies. Likewise out_col for out.
 *
 * Supported: any Lq, Lk >= 1, head dims up to 512 (and larger where the device's
 * shared memory allows). q and out larger than one binding window are split over
 * query rows; k and v of one batch item must each fit in one binding window. */
#ifndef VKD_ATTENTION_H
#define VKD_ATTENTION_H

#include <stdbool.h>

#include "ops/op.h"

/* Which kernel runs it. AUTO picks the cooperative-matrix kernel
 * (attention_cmk, shaders/attention_cm.comp: fp16, head_dim <= 160) where the device
 * runs the GEMMs on VK_KHR_cooperative_matrix with 16x16x16 matrices (unless the
 * device's developer knob knobs.attention_no_coopmat rules it out); else the subgroup kernel
 * (shaders/attention_sg.comp, or attention_sgw.comp for head dims past 160) where it
 * applies -- a CPU device with 8-lane subgroups and shuffles, head_dim a multiple of
 * 16 bytes, every operand's rows and columns 16-byte aligned -- and the shared-memory
 * flash kernel (shaders/attention.comp) everywhere else. Tests force each one; COOPMAT
 * runs the KHR kernel where the device has it and its emulation in shared memory
 * (attention_cmemu) elsewhere. Forcing a kernel where it does not apply is
 * VKD_ERR_UNSUPPORTED. */
typedef enum vkd_attention_kernel {
    VKD_ATTENTION_AUTO = 0,
    VKD_ATTENTION_FLASH,
    VKD_ATTENTION_SUBGROUP,
    VKD_ATTENTION_COOPMAT,
} vkd_attention_kernel;

typedef struct vkd_attention_params {
    int64_t heads;      /* H (>= 1) */
    int64_t head_dim;   /* D; 0: out's last dimension / heads */
    float scale;        /* 0: 1/sqrt(D) */
    bool causal;        /* mask key j for query i when j > i (CLIP text encoder) */
    int64_t q_col, k_col, v_col, out_col; /* column of head 0 in each tensor's last dimension */
    vkd_attention_kernel kernel;          /* AUTO unless a test forces one */
} vkd_attention_params;

/* heads 1, head_dim 0, scale 0 (1/sqrt(D)), no mask, columns 0, kernel AUTO. */
void vkd_attention_params_init(vkd_attention_params *p);

/* Records the attention dispatches. Returns VKD_ERR_SHAPE (with a message) for
 * mismatched shapes/dtypes and VKD_ERR_TOO_LARGE when k or v of one batch item
 * cannot be bound in one window. */
vkd_result vkd_op_attention(vkd_cmd *c, const vkd_tensor *q, const vkd_tensor *k, const vkd_tensor *v,
                            vkd_tensor *out, const vkd_attention_params *p);

#endif
