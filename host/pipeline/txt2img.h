/* txt2img: one image from a prompt, composed of the three stages (pipe.h):
 *
 *   tokenize -> plan memory -> text stage -> denoise stage (the sampler's loop)
 *   -> decode stage -> RGB8
 *
 * Below the public API (host/api.c checks the parameters and holds the context). */
#ifndef VKD_PIPELINE_TXT2IMG_H
#define VKD_PIPELINE_TXT2IMG_H

#include "pipeline/pipe.h"
#include "vkdiff.h"

/* What tests put in and take out beside the image (all optional): the conditioning
 * instead of the prompts (cond/uncond [ctx_len, C] each; uncond unused when cfg == 1),
 * the start noise [4, h, w] NCHW instead of the seed's first draw (the generator still
 * advances past it), the final latent [4, h, w] and the image [H*W, 3] channels-last
 * before clamping. */
typedef struct vkd_txt2img_io {
    const float *cond, *uncond;
    int64_t ctx_len;
    const float *y_cond, *y_uncond; /* SDXL: the vector conditioning [adm] each, with cond/uncond */
    const float *noise;
    const float *init_latent;        /* img2img from this latent [4, h, w] (scaled) instead of an image
                                        (the hires fix's second pass) */
    bool no_decode;                  /* stop after sampling: latent_out only (rgb may be NULL) */
    const float *image_in, *mask_in; /* with an init image (and mask): [H*W, 3] in [-1, 1] and [H*W] in [0, 1]
                                        instead of the RGB8 ones, resized and blurred */
    float *latent_out;
    float *image_out;
} vkd_txt2img_io;

/* p must have passed vkd_gen_params_check. Fills t's per-image fields and p->seed_used. */
vkd_result vkd_txt2img(vkd_pipe *pipe, vkd_gen_params *p, const vkd_txt2img_io *io, uint8_t *rgb, vkd_timings *t);

/* The context's model and stages (tests drive the stages directly). */
vkd_pipe *vkd_ctx_pipe(vkd_ctx *ctx);

/* vkd_generate with test inputs and outputs (host/api.c). */
vkd_result vkd_generate_io(vkd_ctx *ctx, vkd_gen_params *p, const vkd_txt2img_io *io, uint8_t *rgb);

#endif
