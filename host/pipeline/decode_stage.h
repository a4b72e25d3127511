/* The decode stage: the sampler's latent -> pixels through the VAE decoder, whole or
 * in tiles (vae_decode.h), in the storage precision, or again in fp32 where fp16
 * overflowed (then in fp32 for the rest of the model's life). The decoder's weights
 * are uploaded for each image and freed after it (the memory plan's stage order).
 *
 * An encode stage (image input: img2img, inpainting) goes beside it: the same
 * create / request / run / release, owning the encoder's "first_stage_model.encoder."
 * weights. */
#ifndef VKD_PIPELINE_DECODE_STAGE_H
#define VKD_PIPELINE_DECODE_STAGE_H

#include "pipeline/stage_in.h"
#include "pipeline/pipe.h"
#include "pipeline/vae_decode.h"

vkd_result vkd_decode_stage_create(vkd_pipe *p, vkd_decode_stage **out);
void vkd_decode_stage_destroy(vkd_decode_stage *s); /* NULL is fine */

/* Memory request of decoding an h x w latent in one piece (tile 0), or in tiles of
 * th x tw with the latent-resolution part on the whole latent (a dry run). */
vkd_result vkd_decode_stage_request(const vkd_memplan_in *in, int64_t th, int64_t tw, uint64_t *weights,
                                    uint64_t *activations);

/* How to decode, from the memory plan: tiles (0: whole) and their overlap in latent
 * pixels, the decoder's weight bytes and one piece's activation bytes. */
typedef struct vkd_decode_plan {
    int tile, overlap;
    uint64_t weights, activations;
} vkd_decode_plan;

/* latent: the sampler's [4, h, w] NCHW; img: [8h * 8w, 3] channels-last in [-1, 1]
 * (not clamped). st: see vae_decode.h. */
vkd_result vkd_decode_stage_run(vkd_decode_stage *s, const float *latent, int64_t h, int64_t w,
                                const vkd_decode_plan *plan, float *img, vkd_vae_decode_stats *st);
/* Free the decoder's weights. */
void vkd_decode_stage_release(vkd_decode_stage *s);

#endif
