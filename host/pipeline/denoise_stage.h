/* The denoise stage: the UNet recorded once per (batch, latent size, context length)
 * and replayed for every sampler evaluation (decision 5).
 *
 * One evaluation: the sampler's latent x (NCHW fp32) is written to the device with the
 * step's scalars; the recording scales it by c_in into the UNet's channels-last input
 * (one copy per batch item), runs the UNet, and turns its output back into NCHW fp32
 * with classifier-free guidance applied (ops/latent.h), so only [4, h, w] goes each
 * way. The sampler's arithmetic (denoised from eps, the step) stays on the host. */
#ifndef VKD_PIPELINE_DENOISE_STAGE_H
#define VKD_PIPELINE_DENOISE_STAGE_H

#include "models/sdxl_cond.h"
#include "pipeline/stage_in.h"
#include "pipeline/pipe.h"
#include "vk/cmd.h"

vkd_result vkd_denoise_stage_create(vkd_pipe *p, vkd_denoise_stage **out);
void vkd_denoise_stage_destroy(vkd_denoise_stage *s); /* NULL is fine */

/* Memory request of one evaluation at in->batch, h, w, ctx_len (a dry run). */
typedef struct vkd_denoise_request {
    uint64_t weights, activations;
    uint64_t reserve;         /* of activations: room for the temporaries' fragmentation */
    uint32_t ops;             /* ops in one evaluation */
    uint64_t act_written;     /* bytes of all activations (each written once) */
} vkd_denoise_request;
vkd_result vkd_denoise_stage_request(const vkd_memplan_in *in, vkd_denoise_request *out);

/* Record for this shape unless the kept recording has it; pool_bytes: the plan's
 * activation figure (0: a pool growing by default blocks). */
vkd_result vkd_denoise_stage_prepare(vkd_denoise_stage *s, int64_t batch, int64_t h, int64_t w, int64_t ctx_len,
                                     uint64_t pool_bytes);
/* The context [batch, ctx_len, C]: from the text stage's output on the device, or
 * (host != NULL) from the host in fp32 (tests feed the oracle's). */
vkd_result vkd_denoise_stage_set_context(vkd_denoise_stage *s, const vkd_tensor *dev, const float *host);
/* SDXL's vector conditioning y [batch, adm] (the pooled text vector, then the size
 * embeddings; rows in the context's order), fp32 from the host. */
vkd_result vkd_denoise_stage_set_vector(vkd_denoise_stage *s, const float *y);
/* The same from the pooled text vectors [batch, proj] (rows in the context's order) and
 * the size conditioning. */
vkd_result vkd_denoise_stage_set_sdxl(vkd_denoise_stage *s, const float *pooled, const vkd_sdxl_sizes *sz);
/* An inpainting UNet's extra input channels [in - out channels, h, w] NCHW fp32 (the
 * latent mask, then the masked image's latent), constant through the sampling. */
vkd_result vkd_denoise_stage_set_concat(vkd_denoise_stage *s, const float *cond);
/* One evaluation: eps [4, h, w] NCHW (guided when prepared with batch 2) for x [4, h, w]
 * at UNet time t, input scale c_in, guidance scale cfg. */
vkd_result vkd_denoise_stage_eval(vkd_denoise_stage *s, const float *x, float t, float c_in, float cfg, float *eps);
/* The recording (bench and plan report: its timings, dispatches, bytes bound). */
vkd_cmd *vkd_denoise_stage_cmd(const vkd_denoise_stage *s);
/* The most the recording's pool held (bytes): the plan's activation figure, tested. */
uint64_t vkd_denoise_stage_pool_peak(const vkd_denoise_stage *s);
/* Free the recording (its pool), keeping the weights. */
void vkd_denoise_stage_forget(vkd_denoise_stage *s);
/* Free the recording and the UNet's weights (uploaded again by the next prepare). */
void vkd_denoise_stage_release(vkd_denoise_stage *s);

#endif
