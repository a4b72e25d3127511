/* The encode stage: an image -> the VAE posterior's moments on the host, for img2img,
 * inpainting and the hires fix's second pass.
 *
 *   image [H*W, 3] channels-last in [-1, 1] -> encoder + quant_conv (models/vae.h)
 *   -> mean, logvar [z, h, w] NCHW fp32 (logvar clamped to [-30, 20] as
 *   DiagonalGaussianDistribution does)
 *
 * An image is encoded once or twice per generation, so the recording is not kept; the
 * encoder's weights are released after each run (decode_stage.h's VAE decoder keeps
 * its own). The whole image in one piece, or in tiles (vae_encode.h) when the memory
 * plan says so. */
#ifndef VKD_PIPELINE_ENCODE_STAGE_H
#define VKD_PIPELINE_ENCODE_STAGE_H

#include "pipeline/pipe.h"
#include "pipeline/stage_in.h"

/* Memory request of encoding an image of in->h x in->w latent pixels (a dry run), whole
 * (tile 0, or a tile covering the image) or in tiles of `tile` latent pixels. */
vkd_result vkd_encode_stage_request(const vkd_memplan_in *in, int tile, uint64_t *weights, uint64_t *activations);

/* Encode img [H*W, 3] (H, W: 8 x the latent size) into mean and logvar [z, H/8, W/8],
 * whole (tile 0, or a tile covering the image) or in tiles of `tile` latent pixels. */
vkd_result vkd_encode_stage_run(vkd_pipe *p, const float *img, int64_t H, int64_t W, int tile, float *mean,
                                float *logvar);

/* The latent a diffusers pipeline draws from the posterior: (mean + exp(0.5 logvar) *
 * eps) * scale, element by element in torch's fp32 order; n = z * h * w. */
void vkd_posterior_sample(const float *mean, const float *logvar, const float *eps, float scale, float *z, size_t n);

#endif
