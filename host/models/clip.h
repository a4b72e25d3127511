/* CLIP text encoders (HF CLIPTextModel naming under the slot's prefix): SD1's
 * OpenAI ViT-L/14 and SD2's OpenCLIP ViT-H/14 (renamed to the same keys at load). */
#ifndef VKD_MODELS_CLIP_H
#define VKD_MODELS_CLIP_H

#include "models/detect.h"
#include "models/graph.h"

/* ids: n*l uint32 token ids in a device buffer (row-major [n, l]);
 * skip: how many final layers to leave out (0: all layers = SD1 default;
 * 1: penultimate = SD2's FrozenOpenCLIPEmbedder and A1111's --clip-skip 2);
 * the final layer norm is applied either way.
 * *out: [N, 77, width] from g's pool. */
vkd_result vkd_clip_record(vkd_graph *g, const vkd_text_config *cfg, const vkd_buffer *ids, int64_t n, int64_t l,
                           int skip, vkd_tensor *out);

#endif
