/* The model goldens (tools/oracle/make_goldens.py) as the C tests read them, and the
 * comparisons with issue 4's thresholds: relative error <= 1e-4 per stage in fp32,
 * <= 1e-2 in fp16; images PSNR >= 40 dB fp32, >= 30 dB fp16. */
#ifndef VKD_TESTS_GOLDEN_H
#define VKD_TESTS_GOLDEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "models/detect.h"
#include "models/graph.h"
#include "pipeline/txt2img.h"

typedef struct golden {
    vkd_st_file *f;
} golden;

/* a golden tensor as fp32 (NULL if absent: a failed check); I32 converted */
float *gload(golden *g, const char *name, size_t *n);
/* [B, C, HW] (NCHW) -> [B, HW, C] */
void nchw_to_nhwc(const float *in, float *out, int64_t b, int64_t c, int64_t hw);
double rel_err(const float *got, const float *ref, size_t n);
/* PSNR of two [-1, 1] images mapped to [0, 1] and clamped */
double psnr01(const float *got, const float *ref, size_t n);
void expect_rel_lim(const char *what, vkd_dtype dt, const float *got, const float *ref, size_t n, double lim);
/* one stage on device d: 1e-4 fp32, 1e-2 fp16 (2e-2 where fp16 tensors multiply in fp16:
 * golden_stage_lim) */
void expect_rel(const vkd_device *d, const char *what, vkd_dtype dt, const float *got, const float *ref, size_t n);
/* the stage bound on device d for dtype dt */
double golden_stage_lim(const vkd_device *d, vkd_dtype dt);
/* whether d's ops on fp16 tensors take the fp16-arithmetic kernels (docs/fp16.md) */
bool golden_fp16_arith(const vkd_device *d);
/* the image criterion: PSNR >= 40 dB fp32, >= 30 dB fp16 */
void expect_psnr(const char *what, vkd_dtype dt, const float *got, const float *ref, size_t n);

/* Build a graph, run it once, return its output on the host. */
typedef struct stage {
    vkd_graph g;
    vkd_tensor out;
    vkd_tensor out2;  /* a second output (ndim > 0), downloaded into host2 */
    float *host2;     /* the caller frees it */
} stage;
int stage_begin(stage *s, vkd_device *d, vkd_wstore *ws, vkd_dtype dt);
/* end, submit, download s->out (NULL on failure, which is a failed check) */
float *stage_finish(stage *s, vkd_result r, const char *what);

/* The stages of a family against its golden (unet_*, vae_*; SDXL's unet_y; SD1/SD2's
 * text encoder: tokens -> context and context_skip2 / context_last). */
void golden_text(vkd_device *d, vkd_wstore *ws, const vkd_model_config *cfg, golden *g, vkd_dtype dt,
                 const char *fam);
/* SDXL's encoders on their own: tokens_l/tokens_g -> context_l, context_g and pooled. */
void golden_text_sdxl(vkd_device *d, vkd_wstore *ws, const vkd_model_config *cfg, golden *g, vkd_dtype dt,
                      const char *what);
/* golden I32 [2, 77] tokens as uint32; 0 when absent (a failed check) */
int golden_ids(golden *g, const char *name, uint32_t ids[2 * 77]);
void golden_unet(vkd_device *d, vkd_wstore *ws, const vkd_model_config *cfg, golden *g, vkd_dtype dt,
                 const char *fam);
void golden_vae(vkd_device *d, vkd_wstore *ws, const vkd_model_config *cfg, golden *g, vkd_dtype dt,
                const char *fam);
/* A context on model in dt's precision (validation on unless VKD_NO_VALIDATION); NULL
 * on failure (a failed check). */
vkd_ctx *golden_ctx(const char *model, vkd_dtype dt);
/* One run with gp (its size set from the golden) and io's conditioning against
 * <prefix>_latent / <prefix>_image. */
void golden_run(vkd_ctx *ctx, golden *g, vkd_dtype dt, vkd_gen_params *gp, const vkd_txt2img_io *io,
                const char *prefix, const char *what);
/* Every sampler, 4 steps, cfg 7, from the golden's context (and pipe_y). */
void golden_pipeline(const char *model, golden *g, vkd_dtype dt, const char *fam, const char *prediction);
/* The same for the n samplers of names: {library name, golden key} pairs (pipe_<key>_latent) */
void golden_pipeline_samplers(const char *model, golden *g, vkd_dtype dt, const char *fam, const char *prediction,
                              const char *const (*names)[2], size_t n);

#endif
