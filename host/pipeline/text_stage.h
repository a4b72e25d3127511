/* The text stage: prompts -> the UNet's context [B, L, width] on the device.
 *
 * Both prompts of a guided image are encoded in one batch: [negative chunks, prompt
 * chunks], the shorter padded with chunks of the empty prompt (A1111
 * sd_samplers_cfg_denoiser pad_cond), so that the encoder's output is the context
 * itself, B = 2 items of L = chunks * 77 tokens. SDXL's two encoders run in the same
 * recording, their outputs concatenated per token (768 + 1280 = 2048), and the second
 * also gives the pooled vector. Emphasis is applied on the device, to each encoder's
 * output on its own as A1111 does
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
    int32_t *ids2;          /* SDXL's second encoder (OpenCLIP): ids with 0 after each chunk's
                               first end-of-text (A1111 process_tokens, open_clip tokenize) */
    float *weights;
    int items, chunks;
    int skip;               /* final encoder layers left out (clip skip - 1; SD2, SDXL: 1) */
    bool zero_uncond;       /* SDXL, empty negative: item 0's context and pooled vector are zeros */
} vkd_text_batch;

vkd_result vkd_text_stage_create(vkd_pipe *p, vkd_text_stage **out);
void vkd_text_stage_destroy(vkd_text_stage *s); /* NULL is fine */

/* Tokenize: negative is read when guided (NULL = ""). zero_empty_negative: SDXL's
 * empty negative prompt as zeros (diffusers, A1111) rather than the encoding of ""
 * (ComfyUI); docs/sdxl.md. Free with vkd_text_batch_free. */
vkd_result vkd_text_stage_tokenize(vkd_text_stage *s, const char *prompt, const char *negative, bool guided,
                                   int clip_skip, bool zero_empty_negative, vkd_text_batch *out);
void vkd_text_batch_free(vkd_text_batch *b);
/* SDXL's OpenCLIP ids from the CLIP ids (padded with end-of-text): each 77-token chunk
 * with 0 after its first end-of-text (A1111 FrozenOpenCLIPEmbedder2WithCustomWords
 * id_pad = 0; open_clip tokenize zero-fills). */
void vkd_text_ids_openclip(const int32_t *ids, size_t n_chunks, int32_t *out);

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
/* SDXL: the pooled text vector of each item's first chunk (A1111 sd_hijack_clip.py:
 * zs[0].pooled; ComfyUI keeps the first chunk's too), [items, proj] on the host, valid
 * like *context; NULL for a model without one. */
const float *vkd_text_stage_pooled(const vkd_text_stage *s);
/* Free the recordings and the encoder's weights (uploaded again by the next run). */
void vkd_text_stage_release(vkd_text_stage *s);
/* The recordings only, the weights kept resident when keep_weights (the plan's keep_text) */
void vkd_text_stage_release_ex(vkd_text_stage *s, bool keep_weights);

#endif
