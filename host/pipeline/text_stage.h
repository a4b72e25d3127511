/* The text stage: prompts -> the UNet's context [B, L, width] on the device.
 *
 * Both prompts of a guided image are encoded in one batch: [negative chunks, prompt
 * chunks], the shorter padded with chunks of the empty prompt (A1111
 * sd_samplers_cfg_denoiser pad_cond), so that the encoder's output is the context
 * itself, B = 2 items of L = chunks * 77 tokens. Emphasis is applied on the device
 * (ops/emphasis.h). Each batch shape's recording is kept while the stage's weights
 * are resident; vkd_text_stage_release frees both. */
#ifndef VKD_PIPELINE_TEXT_STAGE_H
#define VKD_PIPELINE_TEXT_STAGE_H

#include <stdbool.h>

#include "pipeline/stage_in.h"
#include "pipeline/pipe.h"
#include "text/prompt.h"

/* What one run encodes: items (1, or 2 with guidance: [uncond, cond]) of `chunks`
 * chunks each, ids and weights [items * chunks * 77]. */
typedef struct vkd_text_batch {
    int32_t *ids;
    float *weights;
    int items, chunks;
    int skip;               /* final encoder layers left out (clip skip - 1; SD2: 1) */
} vkd_text_batch;

vkd_result vkd_text_stage_create(vkd_pipe *p, vkd_text_stage **out);
void vkd_text_stage_destroy(vkd_text_stage *s); /* NULL is fine */

/* Tokenize: negative is read when guided (NULL = ""). Free with vkd_text_batch_free. */
vkd_result vkd_text_stage_tokenize(vkd_text_stage *s, const char *prompt, const char *negative, bool guided,
                                   int clip_skip, vkd_text_batch *out);
void vkd_text_batch_free(vkd_text_batch *b);

/* Memory request of encoding items * chunks chunks (a dry run of the recording; only
 * in->d, ws, dt and cfg are read): the encoder's weight bytes and its pool. */
vkd_result vkd_text_stage_request(const vkd_memplan_in *in, int n_chunks, int skip, uint64_t *weights,
                                  uint64_t *activations);

typedef struct vkd_stage_stats {
    double gpu_ms, wall_ms, flops; /* GPU time from timestamps where the device has them */
    uint32_t dispatches;
    bool recorded;                 /* this run recorded (else it replayed a kept recording) */
} vkd_stage_stats;

/* Encode: *context is [items, chunks * 77, width] in the stage's memory, valid until
 * the next run or release. st may be NULL. */
vkd_result vkd_text_stage_run(vkd_text_stage *s, const vkd_text_batch *b, const vkd_tensor **context,
                              vkd_stage_stats *st);
/* Free the recordings and the encoder's weights (uploaded again by the next run). */
void vkd_text_stage_release(vkd_text_stage *s);

#endif
