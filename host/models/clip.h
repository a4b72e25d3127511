/* CLIP text encoders (HF CLIPTextModel naming under the slot's prefix): SD1's
 * OpenAI ViT-L/14 and SD2's OpenCLIP ViT-H/14 (renamed to the same keys at load). */
#ifndef VKD_MODELS_CLIP_H
#define VKD_MODELS_CLIP_H

#include <stdbool.h>

#include "models/detect.h"
#include "models/graph.h"

/* ids: n*l uint32 token ids in a device buffer (row-major [n, l]);
 * skip: how many final layers to leave out (0: all layers = SD1 default;
 * 1: penultimate = SD2's FrozenOpenCLIPEmbedder and A1111's --clip-skip 2);
 * the final layer norm is applied either way.
 * *out: [N, 77, width] from g's pool. */
vkd_result vkd_clip_record(vkd_graph *g, const vkd_text_config *cfg, const vkd_buffer *ids, int64_t n, int64_t l,
                           int skip, vkd_tensor *out);

/* The general form. SDXL's encoders: skip 1 without the final norm; the second also
 * pools (pool_n > 0): final_layer_norm of the LAST layer's output at the rows that
 * pool_rows names (pool_n uint32 indices into the [n * l] tokens: the end-of-text
 * positions, written before each run), times text_projection -> *pooled [pool_n, proj]. */
typedef struct vkd_clip_opts {
    int skip;               /* final layers left out of the context */
    bool final_norm;        /* final_layer_norm on the context (SD1, SD2: yes; SDXL: no) */
    const vkd_buffer *pool_rows;
    int64_t pool_n;         /* 0: no pooled output */
} vkd_clip_opts;
vkd_result vkd_clip_record_ex(vkd_graph *g, const vkd_text_config *cfg, const vkd_buffer *ids, int64_t n, int64_t l,
                              const vkd_clip_opts *o, vkd_tensor *out, vkd_tensor *pooled);

#endif
