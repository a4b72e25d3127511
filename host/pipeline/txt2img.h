/* Internal entry points of the txt2img pipeline, below the public API (tests use
 * them to feed the oracle's conditioning and noise). */
#ifndef VKD_PIPELINE_TXT2IMG_H
#define VKD_PIPELINE_TXT2IMG_H

#include <stdbool.h>
#include <stdio.h>

#include "vkdiff.h"

/* Sample and decode from given conditioning: cond/uncond [L, context_dim] (uncond
 * unused when cfg == 1), noise [4, h, w] NCHW or NULL (then the seed's RNG draws it).
 * latent_out [4, h, w] and image_out [H*W, 3] (channels-last, before clamping) are
 * optional. */
vkd_result vkd_txt2img_from_context(vkd_ctx *c, vkd_gen_params *p, const float *cond, const float *uncond,
                                    int64_t L, const float *noise, float *latent_out, float *image_out,
                                    uint8_t *rgb);

/* vkdiff bench model: text encoder, UNet at batch 1 and 2 (median of `repeat` replays),
 * VAE decode at width x height, with counted GFLOP, achieved GFLOP/s, dispatches, host
 * time per replayed step and peak device memory, as a markdown table on f. Create the
 * context with gpu_timestamps for GPU times. */
/* only_batch: 0 times the UNet at batch 1 and 2, else at that batch only; with_vae:
 * also time the VAE decode (at full size on a CPU device it takes longer than the rest). */
vkd_result vkd_bench_model(vkd_ctx *c, int width, int height, int repeat, bool with_vae, int only_batch, FILE *f,
                           FILE *row);
/* The header of the one-row-per-run table that vkd_bench_model writes to `row` (when not
 * NULL) and at the end of its report: date, device, driver, precision, size, commit,
 * per-stage ms, the UNet's rate and dispatches, peak device memory. */
const char *vkd_bench_row_header(void);

/* vkdiff bench model --plan: the pre-flight memory plan at width x height for UNet
 * batch 1 and 2 under the context's budget, as a markdown table; with `record`, also
 * records (never submits) the UNet at batch 2 for its dispatch count and the bytes its
 * dispatches bind against the floor (this uploads the UNet weights). */
vkd_result vkd_plan_report(vkd_ctx *c, int width, int height, int tiling, bool record, FILE *f);

/* Validation-layer errors seen by the context's device so far (tests). */
uint32_t vkd_ctx_validation_errors(const vkd_ctx *c);
/* The validation layer's specVersion when it is loaded, else 0 (tests require it) */
uint32_t vkd_ctx_validation_layer(const vkd_ctx *c);

#endif
