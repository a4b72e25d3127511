/* The KL-f8 VAE decoder (CompVis ldm/modules/diffusionmodules/model.py Decoder),
 * recorded into a vkd_graph. Blocks named after "first_stage_model." keys. */
#ifndef VKD_MODELS_VAE_H
#define VKD_MODELS_VAE_H

#include "models/detect.h"
#include "models/graph.h"

/* z: [N, h*w, z_channels] latent already divided by the scale factor (0.18215 SD1/2);
 * *out: [N, (8h)*(8w), 3] image in [-1, 1] (not clamped), from g's pool. */
vkd_result vkd_vae_decode_record(vkd_graph *g, const vkd_vae_config *cfg, const vkd_tensor *z, int64_t h, int64_t w,
                                 vkd_tensor *out);

#endif
