/* SDXL's vector conditioning y (label_emb's input), built on the host: it is 2816
 * numbers per image, made once per image, and its size embeddings depend only on
 * the requested sizes.
 *
 *   y = [pooled (proj), e(orig_h), e(orig_w), e(crop_top), e(crop_left), e(target_h), e(target_w)]
 *
 * with e(v) the 256-wide timestep embedding [cos | sin] of v (Stability-AI
 * generative-models sd_xl_base.yaml: ConcatTimestepEmbedderND(outdim=256) for
 * original_size_as_tuple, crop_coords_top_left, target_size_as_tuple, in that order,
 * after FrozenOpenCLIPEmbedder2's pooled output; diffusers _get_add_time_ids). */
#ifndef VKD_MODELS_SDXL_COND_H
#define VKD_MODELS_SDXL_COND_H

#define VKD_SDXL_SIZE_EMB 256 /* per size number */
#define VKD_SDXL_SIZE_NUMBERS 6

typedef struct vkd_sdxl_sizes {
    int orig_h, orig_w;     /* original_size_as_tuple (h, w) */
    int crop_top, crop_left;
    int target_h, target_w; /* target_size_as_tuple (h, w) */
} vkd_sdxl_sizes;

/* y [pooled_dim + 6 * 256] from pooled [pooled_dim] and the sizes. */
void vkd_sdxl_vector(const float *pooled, int pooled_dim, const vkd_sdxl_sizes *sz, float *y);

/* The 256-wide embedding of one number, as sgm's timestep_embedding computes it in
 * fp32 (freqs = exp(-ln(10000) i / 128), args = v * freqs, [cos(args) | sin(args)]). */
void vkd_sdxl_size_embedding(int v, float *out);

#endif
