/* Model family and configuration, read from tensor names and shapes (never from the
 * file name). Every number the UNet, VAE and text encoders need comes from here.
 *
 * The one number shapes cannot give is how the attention width splits into heads; it
 * is fixed per family, as in the reference configs: SD1 8 heads (v1-inference.yaml
 * num_heads: 8), SD2/SDXL 64-wide heads (v2-inference.yaml, sd_xl_base.yaml
 * num_head_channels: 64), text encoders 64-wide heads (CLIP ViT-L 12x64, OpenCLIP
 * ViT-H 16x64, ViT-bigG 20x64). Whether an SD2 model predicts eps or v is not in the
 * weights either: the caller chooses. */
#ifndef VKD_MODELS_DETECT_H
#define VKD_MODELS_DETECT_H

#include <stdint.h>

#include "common/result.h"
#include "io/layout.h"

#define VKD_MAX_LEVELS 8

typedef enum vkd_family {
    VKD_FAMILY_UNKNOWN = 0,
    VKD_FAMILY_SD1,  /* CLIP ViT-L, context 768, conv proj_in, 8 heads */
    VKD_FAMILY_SD2,  /* OpenCLIP ViT-H (penultimate layer), context 1024, linear proj_in, head dim 64; SD-Turbo */
    VKD_FAMILY_SDXL, /* CLIP ViT-L + OpenCLIP bigG, context 2048, label_emb (adm), head dim 64 */
} vkd_family;

typedef struct vkd_unet_config {
    int in_channels, out_channels;   /* 4/4; 9 in = inpainting */
    int model_channels;              /* 320 */
    int num_levels;
    int channel_mult[VKD_MAX_LEVELS];
    int num_res_blocks;
    int transformer_depth[VKD_MAX_LEVELS]; /* per level; 0 = no attention at that level */
    int mid_depth;
    int context_dim;
    int num_heads;                   /* > 0: fixed head count (SD1) */
    int head_dim;                    /* > 0: fixed head width (SD2, SDXL) */
    int linear_proj;                 /* proj_in/out are linear [C, C], else 1x1 conv */
    int adm_in_channels;             /* 0: no label_emb */
    int time_embed_dim;
} vkd_unet_config;

/* Levels of every SD VAE decoder: 3 upsamplings, the image 8x the latent in each
 * direction, which the pipeline assumes throughout (latent = image / 8); detection
 * refuses a VAE with another count. */
#define VKD_VAE_LEVELS 4

typedef struct vkd_vae_config {
    int has_encoder;
    int ch, num_levels, ch_mult[VKD_MAX_LEVELS], num_res_blocks, z_channels;
    float scale_factor;              /* latent = z * scale: 0.18215 SD1/2, 0.13025 SDXL */
} vkd_vae_config;

typedef struct vkd_text_config {
    const char *prefix;              /* internal prefix, e.g. "cond_stage_model.transformer." */
    int width, layers, heads, mlp, vocab, positions;
    int proj_dim;                    /* text_projection rows, 0 if none */
    int quick_gelu;                  /* 1 CLIP ViT-L, 0 OpenCLIP (gelu) */
} vkd_text_config;

typedef struct vkd_model_config {
    vkd_family family;
    int inpaint;
    vkd_unet_config unet;
    vkd_vae_config vae;
    int n_text;
    vkd_text_config text[2];
} vkd_model_config;

const char *vkd_family_name(vkd_family f); /* "SD1.x", "SD2.x", "SDXL", "unknown" */

/* Fill *cfg from the weights. Returns VKD_ERR_UNSUPPORTED (with the reason logged and
 * in `why`, if not NULL) when they fit no known family; *cfg then holds what was found. */
vkd_result vkd_model_detect(const vkd_weights *w, vkd_model_config *cfg, char *why, size_t why_len);

/* Every tensor a model of this config reads, with its shape (internal names). Stops
 * and returns the callback's nonzero value. */
typedef int (*vkd_expect_fn)(const char *name, int rank, const int64_t *shape, void *user);
int vkd_model_expected(const vkd_model_config *cfg, vkd_expect_fn fn, void *user);

#endif
