/* TAESD / TAESDXL, the tiny distilled autoencoders of madebyollin/taesd (taesd.py),
 * recorded into a vkd_graph. Weights come from io/layout_taesd.h (either file layout)
 * under taesd.py's Sequential indices: "taesd.decoder.3.conv.0", ...
 *
 * Semantics (docs/taesd.md, SEMANTICS.md): the decoder takes the UNet's latents as they
 * are (no division by the VAE's scale factor), soft-clamps them with 3 tanh(x / 3), and
 * gives an image in [0, 1] (not clamped); the encoder takes an image in [0, 1] and gives
 * latents on the UNet's scale. TAESD (SD1/SD2) and TAESDXL (SDXL) have the same
 * architecture and different weights: which one a file is cannot be read from it. */
#ifndef VKD_MODELS_TAESD_H
#define VKD_MODELS_TAESD_H

#include "models/graph.h"

typedef struct vkd_taesd_config {
    int has_decoder, has_encoder;
    int latent_channels; /* 4 for TAESD and TAESDXL */
    int dec_width;       /* 64 in madebyollin's files; read from the shapes (smaller trained ones) */
    int enc_width;
} vkd_taesd_config;

/* Every tensor of the decoder and/or encoder present with its expected shape and a
 * float dtype, and nothing else under "taesd.": VKD_OK, or VKD_ERR_FORMAT with each
 * finding logged (naming the file's label `what` and the tensor). At least one half. */
vkd_result vkd_taesd_detect(const vkd_weights *w, const char *what, vkd_taesd_config *cfg);

/* z: [N, h*w, latent_channels], the sampler's latent as is -> *out: [N, (8h)*(8w), 3]
 * in [0, 1] (not clamped), from g's pool. */
vkd_result vkd_taesd_decode_record(vkd_graph *g, const vkd_taesd_config *cfg, const vkd_tensor *z, int64_t h,
                                   int64_t w, vkd_tensor *out);
/* img: [N, H*W, 3] in [0, 1], H and W multiples of 8 -> *out: [N, (H/8)*(W/8),
 * latent_channels], latents on the UNet's scale. */
vkd_result vkd_taesd_encode_record(vkd_graph *g, const vkd_taesd_config *cfg, const vkd_tensor *img, int64_t h,
                                   int64_t w, vkd_tensor *out);

#endif
