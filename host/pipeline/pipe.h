/* The loaded model and its three stages: what the public context (host/api.c) holds
 * below the API, and what a generation (txt2img.c), the model bench (bench_model.c)
 * and the plan report (plan_report.c) compose.
 *
 *   prompt --tokenize--> ids + weights --text stage--> context [B, L, C] (device)
 *          --denoise stage, once per sampler evaluation--> latent [4, h, w]
 *          --decode stage--> pixels [8h * 8w, 3]
 *
 * Each stage owns its weights (a name prefix of the weight store), its recordings and
 * its memory request (a dry run of its recording, host/pipeline/memplan.c composes
 * them). docs/architecture.md walks through it. */
#ifndef VKD_PIPELINE_PIPE_H
#define VKD_PIPELINE_PIPE_H

#include "io/layout.h"
#include "models/detect.h"
#include "models/wstore.h"
#include "ops/tensor.h"
#include "sample/schedule.h"
#include "text/tokenizer.h"
#include "vk/device.h"

typedef struct vkd_text_stage vkd_text_stage;
typedef struct vkd_denoise_stage vkd_denoise_stage;
typedef struct vkd_decode_stage vkd_decode_stage;
typedef struct vkd_taesd_stage vkd_taesd_stage;

typedef struct vkd_pipe {
    vkd_device *d;
    vkd_weights *w;          /* the checkpoint (mapped), read by the weight store */
    vkd_model_config cfg;
    vkd_wstore *ws;          /* device copies of the weights, uploaded at first use */
    vkd_tokenizer *tok;
    vkd_dtype dt;            /* storage precision of weights and activations */
    vkd_noise_table table;   /* the model's sigmas */
    uint64_t memory_budget;  /* bytes; 0: the driver's */
    vkd_text_stage *text;
    vkd_denoise_stage *denoise;
    vkd_decode_stage *decode;
    vkd_taesd_stage *taesd;  /* the last TAESD file a generation asked for (kept for the next), or NULL */
} vkd_pipe;

/* Count of NaN/Inf in v[n] (each stage checks its output). */
size_t vkd_count_non_finite(const float *v, size_t n);
/* The advice every non-finite message ends with. */
extern const char vkd_fp32_hint[];
/* Copy src to dst (same element count and dtype) on the device now: a one-off command. */
vkd_result vkd_copy_now(vkd_device *d, const vkd_tensor *src, const vkd_tensor *dst);
/* Wall clock, ms. */
double vkd_now_ms(void);

#endif
