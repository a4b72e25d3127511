/* The SD UNet (CompVis openaimodel.UNetModel), recorded into a vkd_graph.
 * Blocks are named after the checkpoint keys under "model.diffusion_model.". */
#ifndef VKD_MODELS_UNET_H
#define VKD_MODELS_UNET_H

#include "models/detect.h"
#include "models/graph.h"

/* x: [N, H*W, in_channels] latent (channels-last), h, w: latent size;
 * t: [N] fp32 timesteps (a device buffer the sampler rewrites between replays);
 * context: [N, L, context_dim] text-encoder output;
 * y: [N, adm_in_channels] the vector conditioning of SDXL (label_emb's input: the pooled
 * text vector and the size embeddings), NULL for a UNet without label_emb.
 * *out: [N, H*W, out_channels], allocated from g's pool. h and w must be multiples
 * of 2^(levels-1). */
vkd_result vkd_unet_record(vkd_graph *g, const vkd_unet_config *cfg, const vkd_tensor *x, int64_t h, int64_t w,
                           const vkd_tensor *t, const vkd_tensor *context, const vkd_tensor *y, vkd_tensor *out);

#endif
