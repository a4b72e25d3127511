/* txt2img: the three stages composed into one image (see txt2img.h, pipe.h). */
#include "pipeline/txt2img.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "pipeline/decode_stage.h"
#include "pipeline/denoise_stage.h"
#include "pipeline/image_in.h"
#include "pipeline/memplan.h"
#include "pipeline/op_profile.h"
#include "pipeline/taesd_stage.h"
#include "pipeline/text_stage.h"
#include "sample/rng.h"
#include "sample/sampler.h"

typedef struct denoise_job {
    vkd_pipe *p;
    float cfg;
    vkd_prediction pred;
    float *eps;                 /* [4, hw] */
    vkd_gen_progress_fn progress;
    void *progress_user;
    int evals;
    int steps_done;             /* from the sampler's progress: the step running is steps_done + 1 */
    double unet_ms;
    /* previews (vkd_gen_params.preview): the last denoised estimate [4, hw], decoded with
     * TAESD after every preview_every-th step */
    const vkd_gen_params *gp;
    float *estimate, *preview_img;
    uint8_t *preview_rgb;
    int64_t h, w;
    vkd_result preview_err;
} denoise_job;

/* k-diffusion's DiscreteEpsDDPMDenoiser/DiscreteVDDPMDenoiser around the UNet, with
 * CFGDenoiser's guidance (on the device): x is the NCHW latent [4, h, w]. */
static vkd_result denoise(void *user, const float *x, float sigma, float *denoised, size_t n)
{
    denoise_job *j = user;
    vkd_pipe *p = j->p;
    double t0 = vkd_now_ms();
    vkd_result r = vkd_denoise_stage_eval(p->denoise, x, vkd_sigma_to_t(&p->table, sigma), vkd_c_in(sigma), j->cfg,
                                          j->eps);
    j->unet_ms += vkd_now_ms() - t0;
    j->evals++;
    if (!r && j->evals == 1 && p->d->timestamps)
        vkd_op_profile_log(vkd_denoise_stage_cmd(p->denoise), "UNet");
    if (r)
        return r;
    size_t bad = vkd_count_non_finite(j->eps, n);
    if (bad) {
        VKD_ERROR("UNet: %zu of %zu output values are NaN/Inf at step %d (evaluation %d, sigma %g); %s", bad, n,
                  j->steps_done + 1, j->evals, sigma, vkd_fp32_hint);
        return VKD_ERR_NON_FINITE;
    }
    vkd_denoised_from_output(j->pred, sigma, x, j->eps, denoised, n);
    if (j->estimate)
        memcpy(j->estimate, denoised, n * sizeof *denoised);
    return VKD_OK;
}

/* The TAESD stage for path, kept in the pipe while the same file is asked for. */
static vkd_result taesd_for(vkd_pipe *P, const char *path, vkd_taesd_stage **out)
{
    if (!P->taesd || strcmp(vkd_taesd_stage_path(P->taesd), path) != 0) {
        vkd_taesd_stage_destroy(P->taesd);
        P->taesd = NULL;
        vkd_result r = vkd_taesd_stage_open(P, path, &P->taesd);
        if (r)
            return r;
    }
    *out = P->taesd;
    return VKD_OK;
}

/* [-1, 1] channels-last -> RGB8, clamped (CompVis scripts/txt2img.py: clamp((x + 1) / 2, 0, 1) * 255) */
static void to_rgb8(const float *img, int64_t numel, uint8_t *rgb)
{
    for (int64_t i = 0; i < numel; i++) {
        float v = (img[i] + 1.0f) * 0.5f;
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        rgb[i] = (uint8_t)lrintf(v * 255.0f);
    }
}

static int preview(denoise_job *j, int step, int total)
{
    const vkd_gen_params *p = j->gp;
    vkd_taesd_stage *ts;
    vkd_result r = taesd_for(j->p, p->preview_taesd ? p->preview_taesd : p->taesd, &ts);
    if (!r)
        r = vkd_taesd_stage_run(ts, j->estimate, j->h, j->w, j->preview_img);
    if (r) { /* stop the sampler; vkd_txt2img returns this error */
        j->preview_err = r;
        return 1;
    }
    to_rgb8(j->preview_img, 64 * j->h * j->w * 3, j->preview_rgb);
    return p->preview(p->preview_user, step, total, j->preview_rgb, (int)(8 * j->w), (int)(8 * j->h));
}

static int on_progress(void *user, int step, int total)
{
    denoise_job *j = user;
    j->steps_done = step;
    int every = j->gp && j->gp->preview_every > 1 ? j->gp->preview_every : 1;
    if (j->estimate && (step % every == 0 || step == total) && preview(j, step, total))
        return 1;
    return j->progress ? j->progress(j->progress_user, step, total) : 0;
}

/* Rows [uncond, cond] (guided) or [cond] of per floats each, from two host arrays. */
static float *rows_of(const float *cond, const float *uncond, size_t per, bool guided)
{
    float *v = malloc((guided ? 2 : 1) * per * sizeof *v);
    if (v) {
        memcpy(v, guided ? uncond : cond, per * sizeof *v);
        if (guided)
            memcpy(v + per, cond, per * sizeof *v);
    }
    return v;
}

/* The context (and SDXL's y) from the test's host arrays. */
static vkd_result context_from_host(vkd_pipe *P, const vkd_txt2img_io *io, bool guided)
{
    float *ctx = rows_of(io->cond, io->uncond, (size_t)io->ctx_len * (size_t)P->cfg.unet.context_dim, guided);
    vkd_result r = ctx ? vkd_denoise_stage_set_context(P->denoise, NULL, ctx) : VKD_ERR_OUT_OF_HOST_MEMORY;
    free(ctx);
    if (r || !P->cfg.unet.adm_in_channels)
        return r;
    if (!io->y_cond || (guided && !io->y_uncond))
        return VKD_ERR_INVALID_ARG;
    float *y = rows_of(io->y_cond, io->y_uncond, (size_t)P->cfg.unet.adm_in_channels, guided);
    r = y ? vkd_denoise_stage_set_vector(P->denoise, y) : VKD_ERR_OUT_OF_HOST_MEMORY;
    free(y);
    return r;
}

/* SDXL's y per batch row from the text stage's pooled vectors and the requested sizes
 * (defaults: original = target = the image, crop 0, 0: diffusers' and A1111's). */
static vkd_result vector_from_text(vkd_pipe *P, const vkd_gen_params *p)
{
    const float *pooled = vkd_text_stage_pooled(P->text);
    vkd_sdxl_sizes sz = {
        .orig_h = p->sdxl_original_height ? p->sdxl_original_height : p->height,
        .orig_w = p->sdxl_original_width ? p->sdxl_original_width : p->width,
        .crop_top = p->sdxl_crop_top,
        .crop_left = p->sdxl_crop_left,
        .target_h = p->sdxl_target_height ? p->sdxl_target_height : p->height,
        .target_w = p->sdxl_target_width ? p->sdxl_target_width : p->width,
    };
    return vkd_denoise_stage_set_sdxl(P->denoise, pooled, &sz);
}

vkd_result vkd_txt2img(vkd_pipe *P, vkd_gen_params *p, const vkd_txt2img_io *io, uint8_t *rgb, vkd_timings *tm)
{
    vkd_sampler_kind sk;
    vkd_schedule sc;
    vkd_rng_kind rk;
    vkd_prediction pred = VKD_PREDICTION_EPS;
    vkd_sampler_parse(p->sampler, &sk);
    vkd_schedule_parse(p->schedule, &sc);
    /* A1111's "Align Your Steps" takes NVIDIA's SDXL table for an SDXL model */
    if (sc == VKD_SCHEDULE_AYS && P->cfg.unet.adm_in_channels)
        sc = VKD_SCHEDULE_AYS_SDXL;
    vkd_rng_parse(p->rng, &rk);
    if (p->prediction)
        vkd_prediction_parse(p->prediction, &pred);
    uint64_t seed = p->seed < 0 ? vkd_seed_random() : (uint64_t)p->seed;
    p->seed_used = (int64_t)seed;
    int64_t h = p->height / 8, w = p->width / 8, hw = h * w, zc = P->cfg.unet.out_channels; /* the latent's */
    size_t nl = (size_t)(hw * zc);
    bool guided = p->cfg != 1.0f;
    int64_t batch = guided ? 2 : 1;
    bool given = io && io->cond;
    vkd_text_batch tb;
    memset(&tb, 0, sizeof tb);
    float *noise = NULL, *x = NULL, *img = NULL;
    vkd_rng *rng = NULL;
    vkd_image_job ij;
    memset(&ij, 0, sizeof ij);
    vkd_sample_params sp = {.sampler = sk, .schedule = sc, .steps = p->steps, .table = &P->table};
    denoise_job job = {.p = P, .cfg = p->cfg, .pred = pred, .progress = p->progress,
                       .progress_user = p->progress_user, .gp = p, .h = h, .w = w};

    /* an inpainting checkpoint reads a mask and a masked image beside the latent */
    if (P->cfg.unet.in_channels > P->cfg.unet.out_channels && !p->mask) {
        VKD_ERROR("this is an inpainting checkpoint (a UNet of %d input channels): give it an image and a mask "
                  "(-i, --mask)", P->cfg.unet.in_channels);
        return VKD_ERR_INVALID_ARG;
    }
    /* 1. tokens: the plan needs the context's length */
    vkd_result r = given ? VKD_OK
                         : vkd_text_stage_tokenize(P->text, p->prompt, p->negative, guided, p->clip_skip,
                                                   !p->sdxl_encode_empty_negative, &tb);
    if (r)
        return r;
    int64_t L = given ? io->ctx_len : (int64_t)tb.chunks * VKD_PROMPT_CHUNK_LEN;
    /* image input at the generation's size (tests may hand the [-1, 1] image and the mask in directly) */
    if (io && io->init_latent)
        r = vkd_image_job_from_latent(p, (int)zc, io->init_latent, &ij);
    else if (p->init_image)
        r = vkd_image_job_prepare(p, (int)zc, &ij);
    if (r)
        goto done;
    if (ij.img && io && io->image_in)
        memcpy(ij.img, io->image_in, (size_t)(ij.H * ij.W * 3) * sizeof *ij.img);
    if (ij.mask && io && io->mask_in)
        memcpy(ij.mask, io->mask_in, (size_t)(ij.H * ij.W) * sizeof *ij.mask);

    /* 2. pre-flight: what each stage will hold; refuse before allocating if it cannot fit */
    vkd_memplan plan;
    vkd_memplan_in pin = {.d = P->d, .ws = P->ws, .dt = P->dt, .cfg = &P->cfg, .h = h, .w = w, .batch = batch,
                          .ctx_len = L, .budget = P->memory_budget, .tiling = p->vae_tiling,
                          .tile_px = p->vae_tile, .text_chunks = tb.items * tb.chunks, .text_skip = tb.skip,
                          .encode = p->init_image != NULL};
    if ((r = vkd_memplan_make(&pin, &plan)))
        goto done;
    vkd_memplan_log(&plan);
    tm->planned_peak_bytes = plan.peak;
    if (!plan.fits) {
        char why[400];
        vkd_memplan_explain(&plan, why, sizeof why);
        VKD_ERROR("not enough device memory for %dx%d: %s", p->width, p->height, why);
        r = VKD_ERR_OUT_OF_DEVICE_MEMORY;
        goto done;
    }

    /* 3. text stage; its weights are not needed while the UNet runs (the plan's stage order) */
    double t0 = vkd_now_ms();
    const vkd_tensor *context = NULL;
    if (!given) {
        r = vkd_text_stage_run(P->text, &tb, &context, NULL);
        vkd_text_stage_release_ex(P->text, plan.keep_text); /* the weights stay when the plan keeps them */
        if (r)
            goto done;
    }
    tm->text_ms = vkd_now_ms() - t0;

    /* 3b. image input: the encoder, and the start noise drawn in the reference pipelines' order */
    noise = malloc(nl * sizeof *noise);
    x = malloc(nl * sizeof *x);
    job.eps = malloc(nl * sizeof *job.eps);
    if (!noise || !x || !job.eps)
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!r && p->preview) {
        job.estimate = malloc(nl * sizeof *job.estimate);
        job.preview_img = malloc((size_t)(64 * hw * 3) * sizeof *job.preview_img);
        job.preview_rgb = malloc((size_t)(64 * hw * 3));
        if (!job.estimate || !job.preview_img || !job.preview_rgb)
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    if (!r)
        r = vkd_rng_create(rk, seed, &rng);
    if (!r && (ij.img || ij.z)) {
        t0 = vkd_now_ms();
        ij.enc_tile = plan.enc_tile;
        r = vkd_image_job_latents(P, p, &ij, rng, noise, &sp);
        tm->encode_ms = vkd_now_ms() - t0;
    } else if (!r) { /* noise [1, 4, h, w] as torch.randn draws it (the RNG also feeds ancestral steps) */
        r = vkd_rng_randn(rng, noise, nl);
    }
    if (r)
        goto done;

    /* 4. denoise stage: recorded for this shape (or kept from the last image) */
    t0 = vkd_now_ms();
    vkd_memory_expect(P->d, plan.w_unet); /* weight blocks sized to the plan: no slack in the last */
    r = vkd_denoise_stage_prepare(P->denoise, batch, h, w, L, plan.a_unet);
    vkd_memory_expect(P->d, 0);
    tm->unet_setup_ms = vkd_now_ms() - t0;
    if (!r)
        r = given ? context_from_host(P, io, guided) : vkd_denoise_stage_set_context(P->denoise, context, NULL);
    if (!r && !given && P->cfg.unet.adm_in_channels)
        r = vector_from_text(P, p);
    if (!r && ij.concat) /* a 9-channel UNet's mask and masked-image latent */
        r = vkd_denoise_stage_set_concat(P->denoise, ij.concat);
    if (r)
        goto done;
    if (io && io->noise) /* the generator has still advanced past the start noise, as it would have */
        memcpy(noise, io->noise, nl * sizeof *noise);
    sp.denoise = denoise, sp.denoise_user = &job, sp.rng = rng;
    sp.progress = on_progress, sp.progress_user = &job;
    if ((r = vkd_sample(&sp, noise, x, nl))) {
        if (job.preview_err)
            r = job.preview_err;
        goto done;
    }
    tm->unet_ms = job.unet_ms;
    tm->unet_evals = job.evals;
    if (io && io->latent_out)
        memcpy(io->latent_out, x, nl * sizeof *x);
    if (io && io->no_decode)
        goto done;

    /* 5. decode stage, after freeing the UNet where the plan needs its memory */
    t0 = vkd_now_ms();
    if (!plan.keep_unet)
        vkd_denoise_stage_release(P->denoise);
    int64_t numel = 64 * hw * 3;
    vkd_vae_decode_stats vs;
    memset(&vs, 0, sizeof vs);
    if (!(img = malloc((size_t)numel * sizeof *img))) {
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    vkd_decode_plan dp = {.tile = plan.vae_tile, .overlap = plan.vae_overlap, .weights = plan.w_vae,
                          .activations = plan.a_vae};
    if (p->taesd) { /* TAESD instead of the VAE (docs/taesd.md) */
        vkd_taesd_stage *ts;
        if ((r = taesd_for(P, p->taesd, &ts)) || (r = vkd_taesd_stage_run(ts, x, h, w, img)))
            goto done;
        vs.tiles = 1;
    } else if ((r = vkd_decode_stage_run(P->decode, x, h, w, &dp, img, &vs))) {
        goto done;
    }
    tm->vae_tiles = vs.tiles;
    if (io && io->image_out)
        memcpy(io->image_out, img, (size_t)numel * sizeof *img);
    to_rgb8(img, numel, rgb);
    if (ij.mask && !p->no_paste_back) /* inpainting: the input's pixels back outside the mask (A1111) */
        vkd_image_job_paste(&ij, rgb);
    tm->vae_ms = vkd_now_ms() - t0;
    vkd_memory_stats ms;
    vkd_memory_stats_get(P->d, &ms);
    tm->peak_bytes = ms.peak_reserved;
done:
    vkd_text_batch_free(&tb);
    vkd_image_job_free(&ij);
    vkd_rng_destroy(rng);
    free(noise);
    free(x);
    free(img);
    free(job.eps);
    free(job.estimate);
    free(job.preview_img);
    free(job.preview_rgb);
    return r;
}
