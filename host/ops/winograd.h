/* Winograd F(2x2,3x3) convolution (shaders/winograd.comp, docs/winograd.md): the 3x3,
 * stride-1, padding-1 convs of a UNet or VAE with 16 multiplies per 2x2 output tile and
 * input channel instead of 36. The weights are transformed once (U = G g G^T) from the
 * re-laid conv weight that vkd_op_conv2d reads; vkd_conv2d_winograd_worth says where it
 * beats the implicit GEMM (vkd_op_conv2d) on a device. */
#ifndef VKD_WINOGRAD_H
#define VKD_WINOGRAD_H

#include <stdbool.h>

#include "ops/op.h"

/* U's channel stride: cin rounded up to 8 (so a texel of U never straddles a row). */
static inline int64_t vkd_conv2d_winograd_cin_padded(int64_t cin) { return (cin + 7) / 8 * 8; }

/* Record the transform of a 3x3 conv weight [Cout, 3, 3, Cin] (vkd_conv2d_weight_upload)
 * into u, a tensor of the weight's dtype with shape [Cout, 16, cinp] (cinp from
 * vkd_conv2d_winograd_cin_padded; the caller creates and owns it):
 *   u[co, 4i + j, ci] = (G g G^T)[i, j] for g = weight[co, :, :, ci], 0 for ci >= Cin.
 * Computed in fp32, stored in the storage dtype (docs/winograd.md: the precision rule).
 * VKD_ERR_SHAPE (logged) on a mismatch. */
vkd_result vkd_conv2d_winograd_weights(vkd_cmd *c, const vkd_tensor *weight, vkd_tensor *u);

/* Which conv kernel vkd_op_conv2d_winograd_ex runs (tests and bench; AUTO: the device's). */
typedef enum vkd_winograd_kernel {
    VKD_WINO_AUTO = 0,
    VKD_WINO_GENERIC, /* winograd: any device, any Cin */
    VKD_WINO_SUBGROUP /* winograd_sg: 8-lane shuffles + texel fetches; VKD_ERR_UNSUPPORTED where it cannot run */
} vkd_winograd_kernel;

/* out = conv3x3(x, pad 1, stride 1) (+ bias) (+ residual), as vkd_op_conv2d with
 * vkd_conv2d_params_sym(1, 1) computes it. x: [N, H*W, Cin] (h, w given, any >= 1);
 * u: [Cout, 16, cinp] from vkd_conv2d_winograd_weights of this conv's weight (its shape
 * carries Cin only rounded up to 8: the U of a conv with another Cin of the same rounding
 * is not caught), or the weight itself, [Cout, 3, 3, Cin] (vkd_conv2d_weight_upload), which
 * the subgroup kernel transforms in registers (winograd_sg_g: no U pass, no U in memory;
 * VKD_ERR_UNSUPPORTED where that kernel cannot run); bias: [Cout] or NULL; residual:
 * out's shape or NULL (may be out itself); out: [N, H*W, Cout]. One dtype for all; out
 * must not overlap x; u must start on 16 bytes (a tensor of its own from vkd_tensor_create
 * does), VKD_ERR_UNSUPPORTED otherwise. Several images per dispatch where they fit one binding window,
 * else bands of output rows of one image (as vkd_op_conv2d); VKD_ERR_TOO_LARGE (logged) where
 * two output rows or u do not fit one. VKD_ERR_SHAPE (logged) on a
 * mismatch; nothing is recorded on an error. */
vkd_result vkd_op_conv2d_winograd(vkd_cmd *c, const vkd_tensor *x, int64_t h, int64_t w, const vkd_tensor *u,
                                  const vkd_tensor *bias, const vkd_tensor *residual, vkd_tensor *out);
vkd_result vkd_op_conv2d_winograd_ex(vkd_cmd *c, const vkd_tensor *x, int64_t h, int64_t w, const vkd_tensor *u,
                                     const vkd_tensor *bias, const vkd_tensor *residual, vkd_winograd_kernel k,
                                     vkd_tensor *out);

/* Whether vkd_op_conv2d_winograd beats vkd_op_conv2d on this device for a 3x3 stride-1
 * pad-1 conv of n images of h x w, cin -> cout (from bench ops: docs/winograd.md). */
bool vkd_conv2d_winograd_worth(const vkd_device *d, int64_t n, int64_t h, int64_t w, int64_t cin, int64_t cout);

#endif
