/* Image input for a generation (img2img, inpainting): the init image and mask brought
 * to the generation's size, their latents through the encode stage, the noise draws in
 * the order the reference pipelines make them, and the sampler's start and per-step
 * hooks. docs/img2img.md gives every rule with its source.
 *
 *   prepare:  init RGB8 -> resized (Lanczos) -> [H*W, 3] in [-1, 1];
 *             mask grey8 -> resized -> blurred (A1111 "Mask blur") -> [H*W] in [0, 1]
 *   latents:  img2img      eps = randn, z = posterior sample * scale, noise = randn;
 *                          start at sigma[steps - t_enc - 1] from z + noise * sigma
 *             inpainting, 9-channel UNet: (strength < 1: z as above) noise = randn, then
 *                          the masked image's latent (eps = randn) and the latent mask
 *                          ride along as the UNet's extra input channels
 *             inpainting, ordinary UNet: z, noise as img2img; after every step the known
 *                          region is put back: x = (1 - m) (z + noise sigma) + m x
 *   paste:    after decoding, the input's pixels where the mask is 0 (blended by the
 *             blurred mask), as A1111's overlay */
#ifndef VKD_PIPELINE_IMAGE_IN_H
#define VKD_PIPELINE_IMAGE_IN_H

#include "pipeline/pipe.h"
#include "sample/rng.h"
#include "sample/sampler.h"
#include "vkdiff.h"

typedef struct vkd_image_job {
    int64_t H, W, h, w;     /* image and latent size */
    int zc;                 /* latent channels */
    float *img;             /* [H*W, 3] in [-1, 1] */
    float *mask;            /* [H*W] in [0, 1], blurred (NULL: img2img) */
    uint8_t *img8, *mask8;  /* the resized input and blurred mask, 8-bit, for the paste */
    float *mask_lat;        /* [h*w] the binarised mask at latent size (nearest) */
    float *z;               /* [zc, h, w] the image's latent (scaled), NULL when not used */
    float *noise;           /* [zc, h, w] the start noise (kept for the per-step blend) */
    float *concat;          /* [1 + zc, h, w] a 9-channel UNet's extra input */
    int enc_tile;           /* the encoder's tile edge in latent pixels (the memory plan's; 0: whole) */
} vkd_image_job;

/* The init image and mask at p->width x p->height. */
vkd_result vkd_image_job_prepare(const vkd_gen_params *p, int zc, vkd_image_job *j);
/* The same from a latent already at the generation's size (the hires fix's upscaled
 * one): img2img without the encoder. */
vkd_result vkd_image_job_from_latent(const vkd_gen_params *p, int zc, const float *z, vkd_image_job *j);
/* Encode, draw, and set up: noise[n] gets the start noise, sp->first / init /
 * after_step are set, a 9-channel UNet's extra channels go to the denoise stage
 * (which must be prepared). n = zc * h * w. */
vkd_result vkd_image_job_latents(vkd_pipe *P, const vkd_gen_params *p, vkd_image_job *j, vkd_rng *rng, float *noise,
                                 vkd_sample_params *sp);
/* The steps img2img runs and where it starts: first = steps - t_enc - 1 with t_enc =
 * int(min(strength, 0.999) * steps) (A1111 sd_samplers_common.setup_img2img_steps). */
int vkd_img2img_first(double strength, int steps);
/* Inpainting: the input's pixels back where the mask is below 1 (out = in (1 - m) + out m). */
void vkd_image_job_paste(const vkd_image_job *j, uint8_t *rgb);
void vkd_image_job_free(vkd_image_job *j);

#endif
