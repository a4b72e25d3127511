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

/* The two halves of the above: the latent-resolution part (post_quant_conv, conv_in,
 * the middle ResBlocks and attention) -> mid [N, h*w, C_mid], and the upsampling
 * levels, norm_out and conv_out from mid. The tiled decode runs the first on the
 * whole latent (its attention sees everything) and tiles only the second. */
vkd_result vkd_vae_decode_mid_record(vkd_graph *g, const vkd_vae_config *cfg, const vkd_tensor *z, int64_t h,
                                     int64_t w, vkd_tensor *mid);
/* free_mid: mid is freed (back to g's pool) once read */
vkd_result vkd_vae_decode_up_record(vkd_graph *g, const vkd_vae_config *cfg, vkd_tensor *mid, bool free_mid,
                                    int64_t h, int64_t w, vkd_tensor *out);

#endif
