/* TAESD files (madebyollin/taesd) under one internal naming, whichever of the layouts
 * people have them in:
 *
 *   madebyollin   taesd_decoder.safetensors: the decoder nn.Sequential's own keys,
 *                 "1.weight", "3.conv.0.weight", "3.skip.weight", ... (index 0 is the
 *                 Clamp, so a decoder file has no "0." key); taesd_encoder.safetensors
 *                 likewise from "0.weight". TAESDXL files have the same keys.
 *   ComfyUI       the same under "taesd_decoder." / "taesd_encoder." (its TAESD module)
 *   diffusers     AutoencoderTiny: "decoder.layers.N..." (DecoderTiny has no Clamp
 *                 module: its layer N is the Sequential's N + 1) and "encoder.layers.N..."
 *                 (the same indices as taesd.py's Encoder); one file, or a folder with
 *                 diffusion_pytorch_model.safetensors (or vae/ holding one)
 *
 * Internal names are taesd.py's: "taesd.decoder.N..." and "taesd.encoder.N..." with the
 * indices of its Decoder()/Encoder() Sequentials (docs/taesd.md). */
#ifndef VKD_IO_LAYOUT_TAESD_H
#define VKD_IO_LAYOUT_TAESD_H

#include "io/layout.h"

#define VKD_TAESD_DEC "taesd.decoder."
#define VKD_TAESD_ENC "taesd.encoder."

/* path: a .safetensors file in one of the layouts above, or a folder holding
 * diffusion_pytorch_model.safetensors (directly or in vae/) or the madebyollin pair
 * taesd[xl]_decoder/_encoder.safetensors. VKD_ERR_UNSUPPORTED (logged, naming the
 * file) when no key is a TAESD key; the shapes are checked by models/taesd.h. */
vkd_result vkd_weights_open_taesd(const char *path, vkd_weights **out);
/* The same for one file's bytes in memory (which must outlive *out); label names it in
 * messages. */
vkd_result vkd_weights_open_taesd_memory(const void *data, size_t size, const char *label, vkd_weights **out);

#endif
