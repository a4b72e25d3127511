/* Nearest-neighbour 2x upsample of a channels-last feature map (UNet/VAE Upsample). */
#ifndef VKD_UPSAMPLE_H
#define VKD_UPSAMPLE_H

#include "ops/op.h"

/* in: [N, H*W, C] holding an H x W map, out: [N, 4*H*W, C] (2H x 2W), same dtype:
 * out[n, (2y+dy)*2W + 2x+dx, c] = in[n, y*W + x, c] for dy, dx in {0, 1}. */
vkd_result vkd_op_upsample2x(vkd_cmd *c, const vkd_tensor *in, int64_t h, int64_t w, vkd_tensor *out);

#endif
