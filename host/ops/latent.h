/* The denoise stage's latent conversions on the device (shaders/latent.comp). */
#ifndef VKD_OPS_LATENT_H
#define VKD_OPS_LATENT_H
#include "ops/op.h"

/* x: NCHW fp32 [ch, hw]; scalars: fp32 [2] = (c_in, guidance scale), read when the
 * recording runs; unet_x: [batch, hw, ch] (T) = x * c_in, channels-last, per item. */
vkd_result vkd_op_latent_in(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *scalars, vkd_tensor *unet_x);
/* The same where only channels [0, scaled) are the noisy latent (times c_in) and the
 * rest are an inpainting UNet's conditioning (mask, masked-image latent), copied. */
vkd_result vkd_op_latent_in_cond(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *scalars, int64_t scaled,
                                 vkd_tensor *unet_x);
/* unet_out: [batch, hw, ch] (T; batch 2 = [uncond, cond]) -> eps: NCHW fp32 [ch, hw],
 * uncond + scale * (cond - uncond) for batch 2, cond for batch 1. */
vkd_result vkd_op_latent_guide(vkd_cmd *c, const vkd_tensor *unet_out, const vkd_tensor *scalars, vkd_tensor *eps);
#endif
