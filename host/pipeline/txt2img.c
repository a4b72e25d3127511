/* txt2img: tokenizer -> text encoder -> sampler loop over the UNet -> VAE decoder.
 *
 * The UNet evaluation is recorded once per (batch, latent size) and replayed for
 * every sampler step (decision 5); per-step inputs (latent, timestep) are written
 * into its input tensors before each replay. */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */
#include "vkdiff.h"
#include "common/clock.h"
#include "pipeline/txt2img.h"
#include "vk/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/version.h"
#include "io/layout.h"
#include "models/clip.h"
#include "models/check.h"
#include "models/detect.h"
#include "models/unet.h"
#include "models/vae.h"
#include "models/wstore.h"
#include "pipeline/memplan.h"
#include "pipeline/vae_decode.h"
#include "sample/rng.h"
#include "sample/sampler.h"
#include "sample/schedule.h"
#include "text/prompt.h"
#include "text/tokenizer.h"

struct vkd_ctx {
    vkd_device *d;
    vkd_weights *w;
    vkd_model_config cfg;
    vkd_wstore *ws;
    vkd_tokenizer *tok;
    vkd_dtype dt;
    vkd_noise_table table;
    vkd_timings timings;
    bool first_run_noted;
    /* the caller's log sink, installed on the calling thread for each API call */
    bool has_log;
    vkd_log_fn log;
    void *log_user;
    vkd_log_level log_level;
    uint64_t memory_budget; /* bytes; 0: the driver's */
    bool vae_fp32;          /* the VAE overflowed fp16 once: it decodes in fp32 from then on */
    /* the recorded UNet evaluation */
    struct {
        int64_t batch, h, w, ctx_len;
        vkd_pool *pool;
        vkd_cmd *cmd;
        vkd_tensor x, t, context, out;
    } unet;
};

static double now_ms(void)
{
    return vkd_clock_ms();
}

/* NaN/Inf among n values: never let them reach the image as black pixels (issue 18) */
static size_t count_non_finite(const float *v, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += !isfinite(v[i]);
    return bad;
}

static const char fp32_hint[] = "the weights may hold NaN/Inf (vkdiff info scans them), or fp16 overflowed "
                                "(try --precision fp32)";

void vkd_ctx_params_init(vkd_ctx_params *p)
{
    memset(p, 0, sizeof *p);
    p->model_fd = -1;
    p->device_index = -1;
    p->log_level = VKD_LOG_WARN;
}

void vkd_gen_params_init(vkd_gen_params *p)
{
    memset(p, 0, sizeof *p);
    p->negative = "";
    p->width = p->height = 512;
    p->steps = 20;
    p->cfg = 7.0f;
    p->seed = -1;
    p->sampler = "euler_a";
    p->schedule = "discrete";
    p->rng = "cpu";
}

size_t vkd_image_bytes(const vkd_gen_params *p) { return (size_t)p->width * (size_t)p->height * 3; }

vkd_result vkd_gen_params_check(const vkd_gen_params *p)
{
    if (!p->prompt) {
        VKD_ERROR("no prompt");
        return VKD_ERR_INVALID_ARG;
    }
    if (p->width < 8 || p->height < 8 || p->width % 8 || p->height % 8 || p->width > 8192 || p->height > 8192) {
        VKD_ERROR("width and height must be multiples of 8 between 8 and 8192 (got %dx%d)", p->width, p->height);
        return VKD_ERR_INVALID_ARG;
    }
    if (p->steps < 1 || p->steps > VKD_MAX_STEPS) {
        VKD_ERROR("steps must be between 1 and %d (got %d)", VKD_MAX_STEPS, p->steps);
        return VKD_ERR_INVALID_ARG;
    }
    if (!(p->cfg >= 0 && p->cfg <= 100)) {
        VKD_ERROR("cfg must be between 0 and 100");
        return VKD_ERR_INVALID_ARG;
    }
    if (p->vae_tiling < -1 || p->vae_tiling > 1 || p->vae_tile < 0 || p->vae_tile % 8 || p->vae_tile > 8192 ||
        (p->vae_tile > 0 && p->vae_tile < 64)) {
        VKD_ERROR("vae tiling must be -1, 0 or 1 and the tile a multiple of 8 between 64 and 8192 pixels (got %d, %d)",
                  p->vae_tiling, p->vae_tile);
        return VKD_ERR_INVALID_ARG;
    }
    if (p->clip_skip < 0 || p->clip_skip > 12) {
        VKD_ERROR("clip skip must be between 0 and 12");
        return VKD_ERR_INVALID_ARG;
    }
    vkd_sampler_kind sk;
    vkd_schedule sc;
    vkd_rng_kind rk;
    vkd_prediction pr;
    /* each parser names the bad value and the choices itself */
    if (vkd_sampler_parse(p->sampler, &sk) || vkd_schedule_parse(p->schedule, &sc) || vkd_rng_parse(p->rng, &rk) ||
        (p->prediction && vkd_prediction_parse(p->prediction, &pr)))
        return VKD_ERR_INVALID_ARG;
    return VKD_OK;
}

static void unet_release(vkd_ctx *c)
{
    vkd_cmd_destroy(c->unet.cmd);
    c->unet.cmd = NULL;
    vkd_pool_destroy(c->d, c->unet.pool);
    c->unet.pool = NULL;
    memset(&c->unet.x, 0, sizeof c->unet.x);
    memset(&c->unet.t, 0, sizeof c->unet.t);
    memset(&c->unet.context, 0, sizeof c->unet.context);
    memset(&c->unet.out, 0, sizeof c->unet.out);
    c->unet.batch = 0;
}

void vkd_ctx_free(vkd_ctx *c)
{
    if (!c)
        return;
    if (c->d)
        unet_release(c);
    vkd_wstore_destroy(c->ws);
    vkd_tokenizer_destroy(c->tok);
    vkd_weights_close(c->w);
    vkd_device_destroy(c->d);
    free(c);
}

static vkd_result load_tokenizer(vkd_ctx *c, const vkd_ctx_params *p)
{
    if (p->tokenizer_bpe)
        return vkd_tokenizer_load_bpe_text(p->tokenizer_bpe, p->tokenizer_bpe_len, &c->tok);
    const char *path = p->tokenizer_path;
    if (!path)
        path = vkd_weights_tokenizer_dir(c->w, 0);
    if (!path) {
        VKD_ERROR("no tokenizer: pass --tokenizer PATH (OpenAI's bpe_simple_vocab_16e6.txt.gz, or a folder "
                  "with vocab.json and merges.txt)");
        return VKD_ERR_INVALID_ARG;
    }
    return vkd_tokenizer_load(path, &c->tok);
}

typedef struct log_scope {
    vkd_log_fn fn;
    void *user;
    vkd_log_level level;
} log_scope;

static log_scope log_enter(bool has, vkd_log_fn fn, void *user, vkd_log_level level)
{
    log_scope s;
    vkd_log_get(&s.fn, &s.user, &s.level);
    if (has)
        vkd_log_set(fn, user, level);
    return s;
}

static void log_leave(log_scope s) { vkd_log_set(s.fn, s.user, s.level); }

static vkd_result ctx_create(const vkd_ctx_params *p, vkd_ctx **out);

vkd_result vkd_ctx_create(const vkd_ctx_params *p, vkd_ctx **out)
{
    log_scope s = log_enter(p->log != NULL, p->log, p->log_user, p->log_level);
    vkd_result r = ctx_create(p, out);
    if (!r && p->log) {
        (*out)->has_log = true;
        (*out)->log = p->log, (*out)->log_user = p->log_user, (*out)->log_level = p->log_level;
    }
    log_leave(s);
    return r;
}

static vkd_result ctx_create(const vkd_ctx_params *p, vkd_ctx **out)
{
    *out = NULL;
    if (!p->model_path && p->model_fd < 0) {
        VKD_ERROR("no model given");
        return VKD_ERR_INVALID_ARG;
    }
    const char *label = p->model_path ? p->model_path : "(model descriptor)";
    double t0 = now_ms();
    vkd_ctx *c = calloc(1, sizeof *c);
    if (c)
        c->memory_budget = (uint64_t)p->memory_budget_mb << 20;
    if (!c)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result r;
    char why[512] = "";
    if (p->model_path)
        r = vkd_weights_open(p->model_path, p->vae_path, &c->w);
    else
        r = vkd_weights_open_fd(p->model_fd, p->model_fd_offset, p->model_fd_length, label, &c->w);
    if (r)
        goto fail;
    if ((r = vkd_model_detect(c->w, &c->cfg, why, sizeof why))) {
        VKD_ERROR("%s: not a supported model: %s", label, why);
        goto fail;
    }
    if (c->cfg.family != VKD_FAMILY_SD1 && c->cfg.family != VKD_FAMILY_SD2) {
        VKD_ERROR("%s: %s models are not supported yet (SD1.x and SD2.x are)", label,
                  vkd_family_name(c->cfg.family));
        r = VKD_ERR_UNSUPPORTED;
        goto fail;
    }
    { /* every tensor the model reads, its shape and dtype, before any GPU work (the
       * values' NaN/Inf scan is `vkdiff info`'s: the stages' outputs are checked) */
        vkd_weight_check chk = {.limit = 20};
        if ((r = vkd_model_check_weights(c->w, &c->cfg, &chk))) {
            VKD_ERROR("%s: %zu tensor%s missing, %zu of another shape, %zu not floats (above; vkdiff info lists "
                      "all with -v)",
                      label, chk.missing, chk.missing == 1 ? "" : "s", chk.wrong_shape, chk.wrong_dtype);
            goto fail;
        }
    }
    if ((r = load_tokenizer(c, p)))
        goto fail;
    vkd_device_opts o;
    vkd_device_opts_init(&o);
    o.device_index = p->device_index;
    o.validation = p->validation;
    o.force_fp32 = p->precision == VKD_PRECISION_FP32;
    o.cache_dir = p->cache_dir;
    o.coopmat = p->coopmat;
    o.timestamps = p->gpu_timestamps;
    if ((r = vkd_device_create(&o, &c->d)))
        goto fail;
    if (p->precision == VKD_PRECISION_FP16 && !c->d->use_f16)
        VKD_WARN("this device has no 16-bit storage: running in fp32");
    c->dt = c->d->use_f16 ? VKD_F16 : VKD_F32;
    { /* weights are allocated in blocks of an eighth of the budget, 16..256 MiB */
        bool drv;
        uint64_t budget = c->memory_budget ? c->memory_budget : vkd_device_memory_budget(c->d, &drv);
        uint64_t blk = budget / 8;
        vkd_memory_set_block_size(c->d, blk < (16u << 20) ? (16u << 20) : blk > (256u << 20) ? (256u << 20) : blk);
    }
    if ((r = vkd_wstore_create(c->d, c->w, c->dt, &c->ws)))
        goto fail;
    vkd_noise_table_init(&c->table);
    c->timings.load_ms = now_ms() - t0;
    *out = c;
    return VKD_OK;
fail:
    vkd_ctx_free(c);
    return r;
}

uint32_t vkd_ctx_validation_errors(const vkd_ctx *c) { return c && c->d ? c->d->validation_errors : 0; }
uint32_t vkd_ctx_validation_layer(const vkd_ctx *c) { return c && c->d ? c->d->validation_layer : 0; }

const char *vkd_ctx_family(const vkd_ctx *c) { return vkd_family_name(c->cfg.family); }
void vkd_last_timings(const vkd_ctx *c, vkd_timings *t) { *t = c->timings; }

/* Record-free helper: run a graph built by `build` once and return its output on the host. */
typedef vkd_result (*build_fn)(vkd_graph *g, void *user, vkd_tensor *out);

struct op_profile;
typedef struct run_stats {
    double gpu_ms, wall_ms, flops;
    uint32_t dispatches;
    struct op_profile *prof; /* non-NULL: filled with the run's GPU time by op */
} run_stats;
static void op_profile_get(vkd_cmd *cmd, struct op_profile *p);

static vkd_result run_once_stats(vkd_ctx *c, build_fn build, void *user, float **host, int64_t *numel,
                                 run_stats *st, uint64_t pool_bytes);

/* pool_bytes: the recording's activations as planned (its pool is one block of that
 * size, + 1/8); 0: a pool growing by default blocks */
static vkd_result run_once(vkd_ctx *c, build_fn build, void *user, float **host, int64_t *numel,
                           uint64_t pool_bytes)
{
    return run_once_stats(c, build, user, host, numel, NULL, pool_bytes);
}

static vkd_result run_once_stats(vkd_ctx *c, build_fn build, void *user, float **host, int64_t *numel,
                                 run_stats *st, uint64_t pool_bytes)
{
    vkd_graph g = {.d = c->d, .ws = c->ws, .dt = c->dt};
    vkd_tensor out;
    memset(&out, 0, sizeof out);
    vkd_result r = pool_bytes ? vkd_pool_create_planned(c->d, pool_bytes, &g.pool)
                              : vkd_pool_create(c->d, &g.pool);
    if (!r)
        r = vkd_cmd_create(c->d, &g.c);
    if (!r)
        r = vkd_cmd_begin(g.c);
    if (!r)
        r = build(&g, user, &out);
    if (!r)
        r = vkd_cmd_end(g.c);
    double t0 = now_ms();
    if (!r)
        r = vkd_cmd_submit_wait(g.c);
    if (!r && st) {
        st->wall_ms = now_ms() - t0;
        st->gpu_ms = vkd_cmd_total_ms(g.c);
        st->flops = vkd_cmd_flops(g.c);
        st->dispatches = vkd_cmd_dispatch_count(g.c);
        if (st->prof)
            op_profile_get(g.c, st->prof);
    }
    if (!r) {
        *numel = vkd_tensor_numel(&out);
        *host = malloc((size_t)*numel * sizeof **host);
        r = *host ? vkd_tensor_download_f32(c->d, &out, *host) : VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    vkd_cmd_destroy(g.c);
    vkd_pool_destroy(c->d, g.pool);
    return r;
}

/* ---- text conditioning ------------------------------------------------------ */

typedef struct clip_job {
    const vkd_text_config *cfg;
    const int32_t *ids; /* [n_chunks * 77] */
    int n_chunks;
    int skip;
} clip_job;

static vkd_result build_clip(vkd_graph *g, void *user, vkd_tensor *out)
{
    clip_job *j = user;
    size_t n = (size_t)j->n_chunks * VKD_PROMPT_CHUNK_LEN;
    vkd_buffer ids;
    vkd_result r = vkd_buffer_create_in(g->d, g->pool, n * sizeof(uint32_t), &ids);
    if (!r)
        r = vkd_buffer_upload(g->d, &ids, 0, j->ids, n * sizeof(uint32_t)); /* int32 ids, all >= 0 */
    if (!r)
        r = vkd_clip_record(g, j->cfg, &ids, j->n_chunks, VKD_PROMPT_CHUNK_LEN, j->skip, out);
    return r;
}

/* Encode a prompt into [n_chunks * 77, width] on the host, emphasis applied as A1111
 * does (sd_hijack_clip.py process_tokens): multiply each token's embedding by its
 * weight, then rescale the chunk so its mean is the original mean. */
static vkd_result encode_prompt(vkd_ctx *c, const char *text, int clip_skip, float **emb, int *n_chunks)
{
    const vkd_text_config *tc = &c->cfg.text[0];
    vkd_prompt_params pp;
    vkd_prompt_params_init(&pp);
    int skip = 0;
    if (c->cfg.family == VKD_FAMILY_SD2) {
        pp.pad = VKD_PROMPT_PAD_ZERO;
        skip = 1; /* FrozenOpenCLIPEmbedder layer="penultimate" */
    } else if (clip_skip > 1) {
        skip = clip_skip - 1;
    }
    if (skip >= tc->layers) {
        VKD_ERROR("clip skip %d: the text encoder has only %d layers", clip_skip, tc->layers);
        return VKD_ERR_INVALID_ARG;
    }
    vkd_prompt_tokens toks;
    vkd_result r = vkd_prompt_tokenize(c->tok, text, &pp, &toks);
    if (r)
        return r;
    for (int i = 0; i < toks.n_chunks * VKD_PROMPT_CHUNK_LEN; i++)
        if (toks.ids[i] < 0 || toks.ids[i] >= tc->vocab) {
            VKD_ERROR("token id %d is outside the text encoder's vocabulary of %d: tokenizer and model differ",
                      toks.ids[i], tc->vocab);
            vkd_prompt_tokens_free(&toks);
            return VKD_ERR_INVALID_ARG;
        }
    clip_job job = {.cfg = tc, .ids = toks.ids, .n_chunks = toks.n_chunks, .skip = skip};
    int64_t numel = 0;
    /* weights in blocks without slack, activations in a pool of the planned size (+ the ids) */
    vkd_memplan_in pin = {.d = c->d, .ws = c->ws, .dt = c->dt, .cfg = &c->cfg};
    uint64_t act = 0;
    r = vkd_memplan_text_activations(&pin, job.n_chunks, job.skip, &act);
    if (!r) {
        act += ((uint64_t)job.n_chunks * VKD_PROMPT_CHUNK_LEN * sizeof(uint32_t) + 255) / 256 * 256;
        vkd_memory_expect(c->d, vkd_wstore_prefix_bytes(c->ws, job.cfg->prefix));
        r = run_once(c, build_clip, &job, emb, &numel, act);
        vkd_memory_expect(c->d, 0);
    }
    size_t bad = !r ? count_non_finite(*emb, (size_t)numel) : 0;
    if (bad) {
        VKD_ERROR("text encoder: %zu of %lld output values are NaN/Inf; %s", bad, (long long)numel, fp32_hint);
        free(*emb);
        *emb = NULL;
        r = VKD_ERR_NON_FINITE;
    }
    if (!r) {
        int64_t per = (int64_t)VKD_PROMPT_CHUNK_LEN * tc->width;
        for (int k = 0; k < toks.n_chunks; k++) {
            float *z = *emb + k * per;
            double before = 0, after = 0;
            for (int64_t i = 0; i < per; i++)
                before += z[i];
            for (int t = 0; t < VKD_PROMPT_CHUNK_LEN; t++) {
                float wgt = toks.weights[k * VKD_PROMPT_CHUNK_LEN + t];
                for (int ch = 0; ch < tc->width; ch++)
                    z[t * tc->width + ch] *= wgt;
            }
            for (int64_t i = 0; i < per; i++)
                after += z[i];
            if (after != 0 && before != after)
                for (int64_t i = 0; i < per; i++)
                    z[i] = (float)(z[i] * (before / after));
        }
        *n_chunks = toks.n_chunks;
    }
    vkd_prompt_tokens_free(&toks);
    return r;
}

/* Give cond and uncond the same number of chunks by appending the empty prompt's
 * encoding to the shorter (A1111 sd_samplers_cfg_denoiser pad_cond). */
static vkd_result pad_chunks(vkd_ctx *c, float **emb, int *n, int target, const float *empty)
{
    size_t per = (size_t)VKD_PROMPT_CHUNK_LEN * c->cfg.text[0].width;
    if (*n >= target)
        return VKD_OK;
    float *g = realloc(*emb, per * (size_t)target * sizeof *g);
    if (!g)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    for (int k = *n; k < target; k++)
        memcpy(g + per * (size_t)k, empty, per * sizeof *g);
    *emb = g;
    *n = target;
    return VKD_OK;
}

/* ---- the UNet, recorded once per shape -------------------------------------- */

/* pool_bytes: the memory plan's activation figure (0: unknown) sizes the pool's block */
static vkd_result unet_prepare(vkd_ctx *c, int64_t batch, int64_t h, int64_t w, int64_t ctx_len, uint64_t pool_bytes)
{
    if (c->unet.cmd && c->unet.batch == batch && c->unet.h == h && c->unet.w == w && c->unet.ctx_len == ctx_len)
        return VKD_OK;
    unet_release(c);
    const vkd_unet_config *u = &c->cfg.unet;
    vkd_graph g = {.d = c->d, .ws = c->ws, .dt = c->dt};
    vkd_result r = pool_bytes ? vkd_pool_create_planned(c->d, pool_bytes, &g.pool)
                              : vkd_pool_create(c->d, &g.pool);
    if (r)
        return r;
    c->unet.pool = g.pool;
    if ((r = vkd_cmd_create(c->d, &g.c)))
        return r;
    c->unet.cmd = g.c;
    int64_t xs[3] = {batch, h * w, u->in_channels}, ts[1] = {batch}, cs[3] = {batch, ctx_len, u->context_dim};
    if ((r = vkd_tensor_create_in(c->d, g.pool, c->dt, 3, xs, &c->unet.x)) ||
        (r = vkd_tensor_create_in(c->d, g.pool, VKD_F32, 1, ts, &c->unet.t)) ||
        (r = vkd_tensor_create_in(c->d, g.pool, c->dt, 3, cs, &c->unet.context)))
        return r;
    if ((r = vkd_cmd_begin(g.c)))
        return r;
    r = vkd_unet_record(&g, u, &c->unet.x, h, w, &c->unet.t, &c->unet.context, &c->unet.out);
    if (!r)
        r = vkd_cmd_end(g.c);
    if (r) {
        unet_release(c);
        return r;
    }
    c->unet.batch = batch, c->unet.h = h, c->unet.w = w, c->unet.ctx_len = ctx_len;
    VKD_INFO("UNet recorded: %u dispatches, batch %lld, latent %lldx%lld", vkd_cmd_dispatch_count(g.c),
             (long long)batch, (long long)h, (long long)w);
    return VKD_OK;
}

static void log_unet_profile(vkd_cmd *cmd);

typedef struct denoise_job {
    vkd_ctx *c;
    int64_t h, w;
    float cfg;
    bool guided;                /* batch 2: [uncond, cond] */
    vkd_prediction pred;
    float *x_in, *out, *eps;    /* host scratch: [B, hw, 4] channels-last, [B, hw, 4], [4, hw] */
    vkd_gen_progress_fn progress;
    void *progress_user;
    int evals;
    int steps_done;             /* from the sampler's progress: the step running is steps_done + 1 */
    double unet_ms;
} denoise_job;

/* k-diffusion's DiscreteEpsDDPMDenoiser/DiscreteVDDPMDenoiser around the UNet, with
 * CFGDenoiser's guidance: x is the NCHW latent [4, h, w] of batch item 0. */
static vkd_result denoise(void *user, const float *x, float sigma, float *denoised, size_t n)
{
    denoise_job *j = user;
    vkd_ctx *c = j->c;
    int64_t hw = j->h * j->w, ch = c->cfg.unet.in_channels;
    int64_t batch = j->guided ? 2 : 1;
    float cin = vkd_c_in(sigma);
    float t = vkd_sigma_to_t(&c->table, sigma);
    /* NCHW -> channels-last, scaled by c_in, repeated per batch item */
    for (int64_t b = 0; b < batch; b++)
        for (int64_t p = 0; p < hw; p++)
            for (int64_t k = 0; k < ch; k++)
                j->x_in[(b * hw + p) * ch + k] = x[k * hw + p] * cin;
    float tt[2] = {t, t};
    double t0 = now_ms();
    vkd_result r = vkd_tensor_upload_f32(c->d, &c->unet.x, j->x_in);
    if (!r)
        r = vkd_tensor_upload_f32(c->d, &c->unet.t, tt);
    if (!r)
        r = vkd_cmd_submit_wait(c->unet.cmd);
    if (!r)
        r = vkd_tensor_download_f32(c->d, &c->unet.out, j->out);
    j->unet_ms += now_ms() - t0;
    j->evals++;
    if (!r && j->evals == 1 && c->d->timestamps)
        log_unet_profile(c->unet.cmd);
    if (r)
        return r;
    size_t bad = count_non_finite(j->out, (size_t)(batch * hw * ch));
    if (bad) {
        VKD_ERROR("UNet: %zu of %lld output values are NaN/Inf at step %d (evaluation %d, sigma %g); %s", bad,
                  (long long)(batch * hw * ch), j->steps_done + 1, j->evals, sigma, fp32_hint);
        return VKD_ERR_NON_FINITE;
    }
    /* back to NCHW; guidance on the model output (linear, so the same as on denoised) */
    for (int64_t p = 0; p < hw; p++)
        for (int64_t k = 0; k < ch; k++) {
            float cond = j->out[((batch - 1) * hw + p) * ch + k];
            float e = cond;
            if (j->guided) {
                float unc = j->out[p * ch + k];
                e = unc + j->cfg * (cond - unc);
            }
            j->eps[k * hw + p] = e;
        }
    vkd_denoised_from_output(j->pred, sigma, x, j->eps, denoised, n);
    return VKD_OK;
}

/* GPU time of a recorded command by op (dispatch label), largest first. */
enum { PROFILE_MAX_OPS = 48 };
typedef struct op_profile {
    int k;                          /* distinct labels */
    char name[PROFILE_MAX_OPS][40]; /* copies: the labels live only as long as the recording */
    double ms[PROFILE_MAX_OPS];
    double flops[PROFILE_MAX_OPS];  /* counted work of the family's dispatches */
    int count[PROFILE_MAX_OPS];
    double total;                   /* summed over dispatches */
    uint32_t n;                     /* dispatches timed */
} op_profile;

/* GPU time by label of n dispatches (fl, their counted work, may be NULL) */
static void op_profile_build(op_profile *p, uint32_t n, const char *const *labels, const double *ms, const double *fl)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    for (uint32_t i = 0; i < p->n; i++) {
        int j = 0;
        while (j < p->k && strcmp(p->name[j], labels[i]))
            j++;
        if (j == p->k) {
            if (p->k == PROFILE_MAX_OPS)
                continue;
            snprintf(p->name[j], sizeof p->name[j], "%s", labels[i]);
            p->ms[j] = 0, p->flops[j] = 0, p->count[j] = 0, p->k++;
        }
        p->ms[j] += ms[i], p->flops[j] += fl ? fl[i] : 0, p->count[j]++, p->total += ms[i];
    }
    /* largest first (a handful of labels: selection sort) */
    for (int a = 0; a < p->k; a++)
        for (int b = a + 1; b < p->k; b++)
            if (p->ms[b] > p->ms[a]) {
                char tn[sizeof p->name[0]];
                memcpy(tn, p->name[a], sizeof tn);
                memcpy(p->name[a], p->name[b], sizeof tn);
                memcpy(p->name[b], tn, sizeof tn);
                double tm = p->ms[a], tf = p->flops[a];
                int tc = p->count[a];
                p->ms[a] = p->ms[b], p->flops[a] = p->flops[b], p->count[a] = p->count[b];
                p->ms[b] = tm, p->flops[b] = tf, p->count[b] = tc;
            }
}

static void op_profile_get(vkd_cmd *cmd, op_profile *p)
{
    const char *const *labels;
    const double *ms;
    uint32_t n = vkd_cmd_timings(cmd, &labels, &ms);
    op_profile_build(p, n, labels, ms, vkd_cmd_dispatch_flops(cmd));
}

/* First-use cost by label: each dispatch's warm-up time (first[]) minus its time in the
 * last replay. Drivers that compile at the first dispatch (lavapipe: LLVM) pay it there,
 * so on a cold shader cache this is what each kernel costs to compile. */
static void first_use_profile(vkd_cmd *cmd, const double *first, uint32_t n_first, op_profile *p)
{
    const char *const *labels;
    const double *ms;
    uint32_t n = vkd_cmd_timings(cmd, &labels, &ms);
    double *excess = n == n_first && n ? malloc(n * sizeof *excess) : NULL;
    if (!excess) {
        memset(p, 0, sizeof *p);
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        excess[i] = first[i] > ms[i] ? first[i] - ms[i] : 0;
    op_profile_build(p, n, labels, excess, NULL);
    free(excess);
}

/* The first UNet evaluation's profile at INFO level (-vv on a generation). */
static void log_unet_profile(vkd_cmd *cmd)
{
    op_profile p;
    op_profile_get(cmd, &p);
    if (p.n == 0)
        return;
    VKD_INFO("UNet GPU time by op (%u dispatches, %.1f ms summed, %.1f ms end to end):", p.n, p.total,
             vkd_cmd_total_ms(cmd));
    for (int j = 0; j < p.k; j++)
        VKD_INFO("  %-24s %5d dispatches %10.2f ms %5.1f%%", p.name[j], p.count[j], p.ms[j],
                 p.total > 0 ? 100 * p.ms[j] / p.total : 0);
}

static int on_progress(void *user, int step, int total)
{
    denoise_job *j = user;
    j->steps_done = step;
    return j->progress ? j->progress(j->progress_user, step, total) : 0;
}

/* ---- VAE ---------------------------------------------------------------------- */

typedef struct vae_job {
    const vkd_vae_config *cfg;
    const float *z; /* [1, hw, 4] channels-last, already divided by the scale factor */
    int64_t h, w;
} vae_job;

static vkd_result build_vae(vkd_graph *g, void *user, vkd_tensor *out)
{
    vae_job *j = user;
    vkd_tensor z = g_new3(g, 1, j->h * j->w, j->cfg->z_channels);
    if (!g_ok(g))
        return g->err;
    vkd_result r = vkd_tensor_upload_f32(g->d, &z, j->z);
    if (r)
        return r;
    return vkd_vae_decode_record(g, j->cfg, &z, j->h, j->w, out);
}

/* The decode again with the VAE's weights and activations in fp32 (a store of its own,
 * freed after): where fp16 overflowed. Twice the memory of the fp16 decode. */
static vkd_result vae_decode_fp32(vkd_ctx *c, const float *z, int64_t h, int64_t w, const vkd_memplan *plan,
                                  float *img, vkd_vae_decode_stats *vs)
{
    vkd_wstore *ws32 = NULL;
    vkd_result r = vkd_wstore_create(c->d, c->w, VKD_F32, &ws32);
    if (!r) {
        vkd_memory_expect(c->d, plan->w_vae * (c->dt == VKD_F16 ? 2 : 1));
        r = vkd_vae_decode_image(c->d, ws32, VKD_F32, &c->cfg.vae, z, h, w, plan->vae_tile, plan->vae_overlap,
                                 plan->a_vae * (c->dt == VKD_F16 ? 2 : 1), img, vs);
        vkd_memory_expect(c->d, 0);
    }
    vkd_wstore_destroy(ws32);
    vkd_memory_trim(c->d);
    if (r)
        VKD_ERROR("the fp32 VAE decode failed: %s", vkd_result_str(r));
    return r;
}

/* ---- generate ------------------------------------------------------------------ */

vkd_result vkd_txt2img_from_context(vkd_ctx *c, vkd_gen_params *p, const float *cond, const float *uncond,
                                    int64_t L, const float *noise_in, float *latent_out, float *image_out,
                                    uint8_t *rgb)
{
    vkd_result r = vkd_gen_params_check(p);
    if (r)
        return r;
    vkd_sampler_kind sk;
    vkd_schedule sc;
    vkd_rng_kind rk;
    vkd_prediction pred = VKD_PREDICTION_EPS;
    vkd_sampler_parse(p->sampler, &sk);
    vkd_schedule_parse(p->schedule, &sc);
    vkd_rng_parse(p->rng, &rk);
    if (p->prediction)
        vkd_prediction_parse(p->prediction, &pred);
    uint64_t seed = p->seed < 0 ? vkd_seed_random() : (uint64_t)p->seed;
    p->seed_used = (int64_t)seed;
    int64_t h = p->height / 8, w = p->width / 8, hw = h * w;
    int64_t zc = c->cfg.unet.in_channels;
    bool guided = p->cfg != 1.0f;
    float *ctx = NULL, *noise = NULL, *x = NULL, *img = NULL;
    denoise_job job = {.c = c, .h = h, .w = w, .cfg = p->cfg, .guided = guided, .pred = pred,
                       .progress = p->progress, .progress_user = p->progress_user};
    vkd_rng *rng = NULL;
    double t0;

    /* the UNet recorded for this shape; the context uploaded once */
    int64_t C = c->cfg.unet.context_dim;
    int64_t batch = guided ? 2 : 1;
    /* pre-flight: what each stage will hold; refuse before allocating if it cannot fit */
    double t_setup = now_ms();
    vkd_memplan plan;
    vkd_memplan_in pin = {.d = c->d, .ws = c->ws, .dt = c->dt, .cfg = &c->cfg, .h = h, .w = w, .batch = batch,
                          .ctx_len = L, .budget = c->memory_budget, .tiling = p->vae_tiling,
                          .tile_px = p->vae_tile};
    if ((r = vkd_memplan_make(&pin, &plan)))
        goto done;
    vkd_memplan_log(&plan);
    c->timings.planned_peak_bytes = plan.peak;
    if (!plan.fits) {
        char why[400];
        vkd_memplan_explain(&plan, why, sizeof why);
        VKD_ERROR("not enough device memory for %dx%d: %s", p->width, p->height, why);
        r = VKD_ERR_OUT_OF_DEVICE_MEMORY;
        goto done;
    }
    vkd_memory_expect(c->d, plan.w_unet); /* weight blocks sized to the plan: no slack in the last */
    r = unet_prepare(c, batch, h, w, L, plan.a_unet);
    vkd_memory_expect(c->d, 0);
    c->timings.unet_setup_ms = now_ms() - t_setup;
    if (r)
        goto done;
    ctx = malloc((size_t)(batch * L * C) * sizeof *ctx);
    job.x_in = malloc((size_t)(batch * hw * zc) * sizeof(float));
    job.out = malloc((size_t)(batch * hw * zc) * sizeof(float));
    job.eps = malloc((size_t)(hw * zc) * sizeof(float));
    noise = malloc((size_t)(hw * zc) * sizeof *noise);
    x = malloc((size_t)(hw * zc) * sizeof *x);
    if (!ctx || !job.x_in || !job.out || !job.eps || !noise || !x) {
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    if (guided) {
        memcpy(ctx, uncond, (size_t)(L * C) * sizeof *ctx);
        memcpy(ctx + L * C, cond, (size_t)(L * C) * sizeof *ctx);
    } else {
        memcpy(ctx, cond, (size_t)(L * C) * sizeof *ctx);
    }
    if ((r = vkd_tensor_upload_f32(c->d, &c->unet.context, ctx)))
        goto done;

    /* noise [1, 4, h, w] as torch.randn draws it (the RNG also feeds ancestral steps) */
    if ((r = vkd_rng_create(rk, seed, &rng)))
        goto done;
    if ((r = vkd_rng_randn(rng, noise, (size_t)(hw * zc))))
        goto done;
    if (noise_in) /* the generator has still advanced past the start noise, as it would have */
        memcpy(noise, noise_in, (size_t)(hw * zc) * sizeof *noise);
    vkd_sample_params sp = {.sampler = sk, .schedule = sc, .steps = p->steps, .table = &c->table,
                            .denoise = denoise, .denoise_user = &job, .rng = rng,
                            .progress = on_progress, .progress_user = &job};
    if ((r = vkd_sample(&sp, noise, x, (size_t)(hw * zc))))
        goto done;
    c->timings.unet_ms = job.unet_ms;
    c->timings.unet_evals = job.evals;
    if (latent_out)
        memcpy(latent_out, x, (size_t)(hw * zc) * sizeof *x);

    /* VAE: z / scale, NCHW -> channels-last */
    t0 = now_ms();
    if (!plan.keep_unet) { /* the plan needs the UNet's memory for the decoder */
        unet_release(c);
        vkd_wstore_release(c->ws, "model.diffusion_model.");
        vkd_memory_trim(c->d);
    }
    float *z = job.x_in; /* reuse: [hw, 4] */
    float inv = 1.0f / c->cfg.vae.scale_factor;
    for (int64_t q = 0; q < hw; q++)
        for (int64_t k = 0; k < zc; k++)
            z[q * zc + k] = x[k * hw + q] * inv;
    int64_t numel = 64 * hw * 3;
    img = malloc((size_t)numel * sizeof *img);
    vkd_vae_decode_stats vs;
    if (!img) {
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    if (!c->vae_fp32) {
        vkd_memory_expect(c->d, plan.w_vae);
        r = vkd_vae_decode_image(c->d, c->ws, c->dt, &c->cfg.vae, z, h, w, plan.vae_tile, plan.vae_overlap,
                                 plan.a_vae, img, &vs);
        vkd_memory_expect(c->d, 0);
        vkd_wstore_release(c->ws, "first_stage_model."); /* re-uploaded for the next image */
        vkd_memory_trim(c->d);
        if (r)
            goto done;
        if (c->dt == VKD_F16 && count_non_finite(img, (size_t)numel)) {
            /* SD VAEs are known to overflow fp16 (SDXL's most of all): decode again in
             * fp32, and keep doing so for this model (said once) */
            VKD_WARN("the VAE overflowed fp16 (NaN/Inf in its output): decoding in fp32 from now on");
            c->vae_fp32 = true;
        }
    }
    if (c->vae_fp32 && (r = vae_decode_fp32(c, z, h, w, &plan, img, &vs)))
        goto done;
    size_t bad = count_non_finite(img, (size_t)numel);
    if (bad) {
        VKD_ERROR("VAE decode: %zu of %lld output values are NaN/Inf (%s); %s", bad, (long long)numel,
                  c->dt == VKD_F16 ? "also in fp32" : "fp32", "the VAE's weights may hold NaN/Inf (vkdiff info scans them)");
        r = VKD_ERR_NON_FINITE;
        goto done;
    }
    c->timings.vae_tiles = vs.tiles;
    if (vs.tiles > 1)
        VKD_INFO("VAE decoded in %d tiles", vs.tiles);
    if (image_out)
        memcpy(image_out, img, (size_t)numel * sizeof *img);
    /* [-1, 1] -> RGB8, clamped (CompVis scripts/txt2img.py: clamp((x + 1) / 2, 0, 1) * 255) */
    for (int64_t i = 0; i < (int64_t)p->width * p->height * 3; i++) {
        float v = (img[i] + 1.0f) * 0.5f;
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        rgb[i] = (uint8_t)lrintf(v * 255.0f);
    }
    c->timings.vae_ms = now_ms() - t0;
    vkd_memory_stats ms;
    vkd_memory_stats_get(c->d, &ms);
    c->timings.peak_bytes = ms.peak_reserved;
done:
    vkd_rng_destroy(rng);
    free(ctx);
    free(noise);
    free(x);
    free(img);
    free(job.x_in);
    free(job.out);
    free(job.eps);
    return r;
}

static vkd_result generate(vkd_ctx *c, vkd_gen_params *p, uint8_t *rgb);

vkd_result vkd_generate(vkd_ctx *c, vkd_gen_params *p, uint8_t *rgb)
{
    log_scope s = log_enter(c->has_log, c->log, c->log_user, c->log_level);
    vkd_result r = generate(c, p, rgb);
    log_leave(s);
    return r;
}

static vkd_result generate(vkd_ctx *c, vkd_gen_params *p, uint8_t *rgb)
{
    vkd_result r = vkd_gen_params_check(p);
    if (r)
        return r;
    double t_start = now_ms(), load_ms = c->timings.load_ms; /* the context's, kept */
    memset(&c->timings, 0, sizeof c->timings);
    c->timings.load_ms = load_ms;
    if (!c->first_run_noted) { /* an on-disk cache folder with nothing in it yet: on a CPU
                                * device the first image waits for LLVM (BENCHMARKS.md, "Cold start") */
        vkd_pipeline_stats ps;
        vkd_pipeline_stats_get(c->d, &ps);
        if (c->d->caps.type == VK_PHYSICAL_DEVICE_TYPE_CPU && c->d->cache_path[0] && !ps.cache_bytes_loaded)
            VKD_WARN("first run on this CPU device: each kernel is compiled at its first use (a minute or two "
                     "for a model); Mesa's shader cache keeps them for the next runs");
        c->first_run_noted = true;
    }
    bool guided = p->cfg != 1.0f;
    float *cond = NULL, *uncond = NULL, *empty = NULL;
    int nc = 0, nu = 0;
    double t0 = now_ms();
    if ((r = encode_prompt(c, p->prompt, p->clip_skip, &cond, &nc)))
        goto done;
    if (guided) {
        int ne = 0;
        if ((r = encode_prompt(c, p->negative ? p->negative : "", p->clip_skip, &uncond, &nu)))
            goto done;
        if ((r = encode_prompt(c, "", p->clip_skip, &empty, &ne)))
            goto done;
        int target = nc > nu ? nc : nu;
        if ((r = pad_chunks(c, &cond, &nc, target, empty)) || (r = pad_chunks(c, &uncond, &nu, target, empty)))
            goto done;
    }
    c->timings.text_ms = now_ms() - t0;
    /* The text encoder is not needed while the UNet runs: free its weights (issue 6's
     * memory plan: SD1.5 fp16 keeps ~1.6 GB of UNet resident, not ~2 GB). */
    vkd_wstore_release(c->ws, c->cfg.text[0].prefix);
    vkd_memory_trim(c->d);
    r = vkd_txt2img_from_context(c, p, cond, uncond, (int64_t)nc * VKD_PROMPT_CHUNK_LEN, NULL, NULL, NULL, rgb);
done:
    c->timings.total_ms = now_ms() - t_start;
    free(cond);
    free(uncond);
    free(empty);
    return r;
}

/* ---- benchmark (vkdiff bench model) ------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A stage's GPU time by op family as a table. */
static void print_profile(FILE *f, const char *stage, const char *which, const op_profile *p)
{
    fprintf(f, "\n%s, GPU time by op family (%s, %u dispatches timed, %.1f ms summed):\n\n", stage, which, p->n,
            p->total);
    fprintf(f, "| op | dispatches | ms | share of the stage | GFLOP | GFLOP/s |\n"
               "| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (int j = 0; j < p->k; j++) {
        fprintf(f, "| %s | %d | %.1f | %.1f%% |", p->name[j], p->count[j], p->ms[j],
                p->total > 0 ? 100 * p->ms[j] / p->total : 0);
        if (p->flops[j] > 0)
            fprintf(f, " %.1f | %.2f |\n", p->flops[j] / 1e9, p->ms[j] > 0 ? p->flops[j] / 1e6 / p->ms[j] : 0);
        else
            fprintf(f, " | |\n");
    }
}

static void bench_line(FILE *f, const char *stage, const run_stats *st, double total_ms)
{
    double ms = st->gpu_ms > 0 ? st->gpu_ms : st->wall_ms;
    fprintf(f, "| %s | %.1f | %.1f | %.1f | %.2f | %u | %.0f%% |\n", stage, ms, st->wall_ms, st->flops / 1e9,
            ms > 0 ? st->flops / 1e6 / ms : 0, st->dispatches, total_ms > 0 ? 100 * ms / total_ms : 0);
}

/* The run as one row of the table vkd_bench_row_header() heads, for BENCHMARKS.md:
 * when, on what, from which commit, and the per-stage milliseconds ("-": not run). */
static void bench_row(FILE *f, const vkd_ctx *c, int width, int height, const run_stats *text, const run_stats unet[2],
                      const run_stats *vae, bool with_vae, int only_batch, double peak_mib)
{
    char date[32] = "?";
    time_t now = time(NULL);
    struct tm tmv;
    if (gmtime_r(&now, &tmv))
        strftime(date, sizeof date, "%Y-%m-%d", &tmv);
    char cell[4][32];
    const run_stats *st[4] = {text, &unet[0], &unet[1], vae};
    bool ran[4] = {true, only_batch != 2, only_batch != 1, with_vae};
    for (int i = 0; i < 4; i++) {
        double ms = st[i]->gpu_ms > 0 ? st[i]->gpu_ms : st[i]->wall_ms;
        if (ran[i])
            snprintf(cell[i], sizeof cell[i], "%.1f", ms);
        else
            snprintf(cell[i], sizeof cell[i], "-");
    }
    double ms2 = unet[1].gpu_ms > 0 ? unet[1].gpu_ms : unet[1].wall_ms;
    char rate[32] = "-";
    if (ran[2] && ms2 > 0)
        snprintf(rate, sizeof rate, "%.2f", unet[1].flops / 1e6 / ms2);
    fprintf(f, "| %s | %s | %s | %s | %dx%d | %s | %s | %s | %s | %s | %s | %u | %.1f |\n", date, c->d->caps.name,
            c->d->caps.driver, c->dt == VKD_F16 ? "fp16" : "fp32", width, height, vkd_git_revision(), cell[0], cell[1],
            cell[2], rate, cell[3], ran[2] ? unet[1].dispatches : unet[0].dispatches, peak_mib);
}

const char *vkd_bench_row_header(void)
{
    return "| date | device | driver | precision | size | commit | text encoder ms | UNet batch 1 ms | "
           "UNet batch 2 ms | UNet batch 2 GFLOP/s | VAE decode ms | UNet dispatches | peak MiB |\n"
           "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
}

vkd_result vkd_bench_model(vkd_ctx *c, int width, int height, int repeat, bool with_vae, int only_batch, FILE *f,
                           FILE *row)
{
    if (width % 8 || height % 8 || width < 8 || height < 8 || repeat < 1)
        return VKD_ERR_INVALID_ARG;
    int64_t h = height / 8, w = width / 8, hw = h * w, zc = c->cfg.unet.in_channels;
    int64_t L = VKD_PROMPT_CHUNK_LEN, C = c->cfg.unet.context_dim;
    vkd_result r = VKD_OK;
    run_stats text, unet[2], vae;
    memset(&text, 0, sizeof text), memset(unet, 0, sizeof unet), memset(&vae, 0, sizeof vae);
    float *emb = NULL, *img = NULL, *x = NULL, *ctx = NULL;
    double host_ms[2] = {0, 0}, warmup_ms[2] = {0, 0};
    op_profile prof[2]; /* UNet GPU time by op, batch 1 and 2 */
    op_profile first_use[2]; /* ... and the warm-up's excess over the last replay, by op */
    op_profile *vae_prof = NULL; /* the VAE decode's */
    vkd_memplan up;     /* the plan of the last UNet batch run (its VAE figures for the decode) */
    memset(&up, 0, sizeof up);
    memset(prof, 0, sizeof prof);
    memset(first_use, 0, sizeof first_use);

    /* text encoder: one prompt chunk */
    vkd_prompt_params pp;
    vkd_prompt_params_init(&pp);
    vkd_prompt_tokens toks;
    if ((r = vkd_prompt_tokenize(c->tok, "a photo of a cat", &pp, &toks)))
        return r;
    clip_job job = {.cfg = &c->cfg.text[0], .ids = toks.ids, .n_chunks = 1,
                    .skip = c->cfg.family == VKD_FAMILY_SD2};
    int64_t numel;
    double tb = now_ms();
    VKD_INFO("bench: text encoder (weights upload, record, one run)");
    /* allocated as a generation allocates (encode_prompt, vkd_txt2img_from_context):
     * weight blocks without slack and pools of the planned size, so that the memory
     * figures below are what an image holds */
    vkd_memplan_in tin = {.d = c->d, .ws = c->ws, .dt = c->dt, .cfg = &c->cfg};
    uint64_t text_act = 0;
    r = vkd_memplan_text_activations(&tin, 1, job.skip, &text_act);
    text_act += (VKD_PROMPT_CHUNK_LEN * sizeof(uint32_t) + 255) / 256 * 256;
    vkd_memory_expect(c->d, vkd_wstore_prefix_bytes(c->ws, job.cfg->prefix));
    if (!r)
        r = run_once_stats(c, build_clip, &job, &emb, &numel, &text, text_act);
    vkd_memory_expect(c->d, 0);
    vkd_prompt_tokens_free(&toks);
    if (r)
        goto done;
    vkd_wstore_release(c->ws, c->cfg.text[0].prefix);
    vkd_memory_trim(c->d);
    VKD_INFO("bench: text encoder done, %.0f ms wall with upload", now_ms() - tb);

    /* UNet at batch 1 and 2: warm-up, then the median of `repeat` replays */
    x = calloc((size_t)(2 * hw * zc), sizeof *x);
    ctx = calloc((size_t)(2 * L * C), sizeof *ctx);
    double *samples = calloc((size_t)repeat, sizeof *samples), *walls = calloc((size_t)repeat, sizeof *walls);
    if (!x || !ctx || !samples || !walls) {
        free(samples), free(walls);
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    for (int64_t i = 0; i < 2 * hw * zc; i++)
        x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (int b = 1; b <= 2 && !r; b++) {
        if (only_batch && b != only_batch)
            continue;
        tb = now_ms();
        VKD_INFO("bench: UNet batch %d: weights upload and recording", b);
        vkd_memplan_in uin = {.d = c->d, .ws = c->ws, .dt = c->dt, .cfg = &c->cfg, .h = h, .w = w, .batch = b,
                              .ctx_len = L, .budget = c->memory_budget};
        if ((r = vkd_memplan_make(&uin, &up)))
            break;
        vkd_memory_expect(c->d, up.w_unet);
        r = unet_prepare(c, b, h, w, L, up.a_unet);
        vkd_memory_expect(c->d, 0);
        if (r)
            break;
        VKD_INFO("bench: UNet batch %d: prepared in %.0f ms; warm-up and %d replays", b, now_ms() - tb, repeat);
        float tt[2] = {500, 500};
        if ((r = vkd_tensor_upload_f32(c->d, &c->unet.x, x)) || (r = vkd_tensor_upload_f32(c->d, &c->unet.t, tt)) ||
            (r = vkd_tensor_upload_f32(c->d, &c->unet.context, ctx)))
            break;
        /* the warm-up: drivers that compile at the first dispatch (lavapipe) do it here */
        double tw = now_ms();
        if ((r = vkd_cmd_submit_wait(c->unet.cmd)))
            break;
        warmup_ms[b - 1] = now_ms() - tw;
        double *first = NULL; /* the warm-up's dispatch times */
        uint32_t n_first = 0;
        {
            const char *const *labels;
            const double *ms;
            n_first = vkd_cmd_timings(c->unet.cmd, &labels, &ms);
            if (n_first && (first = malloc(n_first * sizeof *first)))
                memcpy(first, ms, n_first * sizeof *first);
        }
        for (int k = 0; k < repeat && !r; k++) {
            double t0 = now_ms();
            r = vkd_cmd_submit_wait(c->unet.cmd);
            walls[k] = now_ms() - t0;
            samples[k] = vkd_cmd_total_ms(c->unet.cmd);
            VKD_INFO("bench: UNet batch %d replay %d/%d: %.1f ms wall, %.1f ms GPU", b, k + 1, repeat, walls[k],
                     samples[k]);
        }
        qsort(samples, (size_t)repeat, sizeof *samples, cmp_double);
        qsort(walls, (size_t)repeat, sizeof *walls, cmp_double);
        run_stats *st = &unet[b - 1];
        st->gpu_ms = samples[repeat / 2];
        st->wall_ms = walls[repeat / 2];
        st->flops = vkd_cmd_flops(c->unet.cmd);
        st->dispatches = vkd_cmd_dispatch_count(c->unet.cmd);
        host_ms[b - 1] = st->gpu_ms > 0 ? st->wall_ms - st->gpu_ms : 0;
        op_profile_get(c->unet.cmd, &prof[b - 1]); /* the last replay's dispatches */
        if (first)
            first_use_profile(c->unet.cmd, first, n_first, &first_use[b - 1]);
        free(first);
    }
    free(samples), free(walls);
    if (r)
        goto done;
    double unet_bytes = vkd_cmd_bytes_bound(c->unet.cmd); /* batch 2, the last recorded */
    vkd_memory_stats ms_unet;
    vkd_memory_stats_get(c->d, &ms_unet);
    uint64_t unet_weights = vkd_wstore_device_bytes(c->ws);
    unet_release(c);

    /* VAE decode (skipped with --no-vae: at full size on a CPU device it takes longer
     * than the UNet figures it would sit beside) */
    vae_job vj = {.cfg = &c->cfg.vae, .z = x, .h = h, .w = w};
    tb = now_ms();
    if (with_vae) {
        VKD_INFO("bench: VAE decode (weights upload, record, one run)");
        vkd_memory_expect(c->d, up.w_vae);
        vae.prof = vae_prof = calloc(1, sizeof *vae_prof);
        r = vae_prof ? run_once_stats(c, build_vae, &vj, &img, &numel, &vae, up.vae_tile ? 0 : up.a_vae)
                     : VKD_ERR_OUT_OF_HOST_MEMORY;
        vkd_memory_expect(c->d, 0);
        VKD_INFO("bench: VAE decode done, %.0f ms wall with upload", now_ms() - tb);
    }
    vkd_memory_stats ms_all;
    vkd_memory_stats_get(c->d, &ms_all);
    vkd_wstore_release(c->ws, "first_stage_model.");
    if (r)
        goto done;

    double step = unet[1].gpu_ms > 0 ? unet[1].gpu_ms : unet[1].wall_ms;
    fprintf(f, "model %s, %dx%d, %s storage, device %s (%s)\n", vkd_family_name(c->cfg.family), width, height,
            c->dt == VKD_F16 ? "fp16" : "fp32", c->d->caps.name, c->d->caps.driver);
    fprintf(f, "UNet: median of %d replays after a warm-up; ms = GPU time from timestamps where the device has them\n\n",
            repeat);
    fprintf(f, "| stage | ms | wall ms | GFLOP | GFLOP/s | dispatches | share of a guided step |\n");
    fprintf(f, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    bench_line(f, "text encoder (77 tokens)", &text, step);
    if (only_batch != 2)
        bench_line(f, "UNet batch 1", &unet[0], step);
    if (only_batch != 1)
        bench_line(f, "UNet batch 2 (guidance)", &unet[1], step);
    if (with_vae)
        bench_line(f, "VAE decode", &vae, step);
    else
        fprintf(f, "| VAE decode | not run (--no-vae) | | | | | |\n");
    for (int b = 2; b >= 1; b--) { /* the guided step's profile; batch 1's when only it ran */
        if (prof[b - 1].n == 0)
            continue;
        char title[64];
        snprintf(title, sizeof title, "UNet batch %d", b);
        print_profile(f, title, "last replay", &prof[b - 1]);
        break;
    }
    if (vae_prof && vae_prof->n)
        print_profile(f, "VAE decode", "its one run", vae_prof);
    fprintf(f, "\nhost time per replayed UNet step (wall - GPU): batch 1 %.2f ms, batch 2 %.2f ms\n", host_ms[0],
            host_ms[1]);
    fprintf(f, "device memory: UNet weights %.1f MiB; peak allocated %.1f MiB (weights + activations + scratch); "
               "held in blocks %.1f MiB with the UNet recorded, %.1f MiB at the peak\n",
            unet_weights / 1048576.0, ms_all.peak_allocated / 1048576.0, ms_unet.reserved / 1048576.0,
            ms_all.peak_reserved / 1048576.0);
    {
        vkd_memplan p;
        vkd_memplan_in in = {.d = c->d, .ws = c->ws, .dt = c->dt, .cfg = &c->cfg, .h = h, .w = w, .batch = 2,
                             .ctx_len = L, .budget = c->memory_budget};
        if (only_batch != 1 && vkd_memplan_make(&in, &p) == VKD_OK) {
            double floor = (double)p.w_unet + 2.0 * (double)p.unet_act_written;
            fprintf(f, "UNet batch 2: bytes bound by its %u dispatches %.1f MiB; floor (weights once + every "
                       "activation written and read once) %.1f MiB; ratio %.2f\n",
                    unet[1].dispatches, unet_bytes / 1048576.0, floor / 1048576.0, floor > 0 ? unet_bytes / floor : 0);
            fprintf(f, "memory plan: peak %.1f MiB (UNet weights %.1f + activations %.1f; VAE activations %.1f, %s)\n",
                    p.peak / 1048576.0, p.w_unet / 1048576.0, p.a_unet / 1048576.0, p.a_vae / 1048576.0,
                    p.vae_tile ? "tiled" : "whole");
        }
    }
    fprintf(f, "\nthis run as a row of BENCHMARKS.md's table (`--append FILE` adds it to FILE):\n\n%s",
            vkd_bench_row_header());
    bench_row(f, c, width, height, &text, unet, &vae, with_vae, only_batch, ms_all.peak_allocated / 1048576.0);
    if (row) {
        bench_row(row, c, width, height, &text, unet, &vae, with_vae, only_batch, ms_all.peak_allocated / 1048576.0);
        fflush(row);
    }
    vkd_pipeline_stats ps;
    vkd_pipeline_stats_get(c->d, &ps);
    fprintf(f, "pipelines: %u created in %.0f ms (on-disk cache: %s)\n", ps.created, ps.create_ms,
            ps.cache_bytes_loaded ? "loaded" : "none or cold");
    /* Cold vs warm start where the driver compiles at the first dispatch (lavapipe;
     * Mesa's own shader cache then decides): the first run minus a replay. */
    for (int b = 1; b <= 2; b++)
        if (warmup_ms[b - 1] > 0)
            fprintf(f, "UNet batch %d first run (warm-up) %.0f ms wall, replay %.0f ms: %.0f ms of first-use cost\n", b,
                    warmup_ms[b - 1], unet[b - 1].wall_ms,
                    warmup_ms[b - 1] > unet[b - 1].wall_ms ? warmup_ms[b - 1] - unet[b - 1].wall_ms : 0.0);
    /* where a cold start goes, kernel by kernel (the first batch run pays the compiles) */
    for (int b = 1; b <= 2; b++)
        if (first_use[b - 1].total > 1000) {
            char title[64];
            snprintf(title, sizeof title, "UNet batch %d first-use cost", b);
            print_profile(f, title, "warm-up minus the last replay, per dispatch", &first_use[b - 1]);
        }
done:
    free(vae_prof);
    free(emb);
    free(img);
    free(x);
    free(ctx);
    return r;
}

/* ---- memory plan report (vkdiff bench model --plan) ---------------------------- */

vkd_result vkd_plan_report(vkd_ctx *c, int width, int height, int tiling, bool record, FILE *f)
{
    if (width % 8 || height % 8 || width < 8 || height < 8)
        return VKD_ERR_INVALID_ARG;
    fprintf(f, "memory plan, %s, %dx%d, %s storage, device %s: dry runs of the recordings, nothing allocated\n\n",
            vkd_family_name(c->cfg.family), width, height, c->dt == VKD_F16 ? "fp16" : "fp32", c->d->caps.name);
    fprintf(f, "| UNet batch | budget MiB | weights text / UNet / VAE MiB | activations text / UNet / VAE MiB | "
               "VAE | UNet between images | resident text / UNet / VAE MiB | peak MiB | fits |\n");
    fprintf(f, "| ---: | ---: | --- | --- | --- | --- | --- | ---: | --- |\n");
    for (int batch = 1; batch <= 2; batch++) {
        vkd_memplan p;
        vkd_memplan_in in = {.d = c->d, .ws = c->ws, .dt = c->dt, .cfg = &c->cfg, .h = height / 8, .w = width / 8,
                             .batch = batch, .ctx_len = VKD_PROMPT_CHUNK_LEN, .budget = c->memory_budget,
                             .tiling = tiling};
        vkd_result r = vkd_memplan_make(&in, &p);
        if (r)
            return r;
        const double M = 1048576.0;
        char vae[64];
        if (p.vae_tile)
            snprintf(vae, sizeof vae, "%d-px tiles", 8 * p.vae_tile);
        else
            snprintf(vae, sizeof vae, "whole");
        fprintf(f, "| %d | %.0f | %.1f / %.1f / %.1f | %.1f / %.1f / %.1f | %s | %s | %.1f / %.1f / %.1f | %.1f | %s |\n",
                batch, p.budget / M, p.w_text / M, p.w_unet / M, p.w_vae / M, p.a_text / M, p.a_unet / M, p.a_vae / M,
                vae, p.keep_unet ? "kept" : "freed", p.stage_text / M, p.stage_unet / M, p.stage_vae / M,
                p.peak / M, p.fits ? "yes" : "no");
        if (batch == 2) {
            double floor = (double)p.w_unet + 2.0 * (double)p.unet_act_written;
            fprintf(f, "\nUNet evaluation (batch 2): %u ops; activations written %.1f MiB; weights read %.1f MiB; "
                       "floor of bytes moved (weights once + every activation written and read once) %.1f MiB\n",
                    p.unet_ops, p.unet_act_written / M, p.w_unet / M, floor / M);
            /* the real recording (nothing submitted): its dispatches and the bytes they bind */
            if (record) {
                vkd_memory_expect(c->d, p.w_unet); /* as vkdiff allocates it */
                r = unet_prepare(c, 2, height / 8, width / 8, VKD_PROMPT_CHUNK_LEN, p.a_unet);
                vkd_memory_expect(c->d, 0);
            }
            if (record && r == VKD_OK) {
                double bound = vkd_cmd_bytes_bound(c->unet.cmd);
                vkd_memory_stats ms;
                vkd_memory_stats_get(c->d, &ms);
                fprintf(f, "recorded: %u dispatches, bytes bound %.1f MiB = %.2f x the floor; pool %.1f MiB planned\n",
                        vkd_cmd_dispatch_count(c->unet.cmd), bound / M, floor > 0 ? bound / floor : 0,
                        p.a_unet / M);
                fprintf(f, "device memory held with the UNet recorded: %.1f MiB (%u weight blocks; planned UNet stage "
                           "%.1f MiB)\n",
                        ms.reserved / M, ms.blocks, (p.w_unet + p.a_unet) / M);
                unet_release(c);
            }
            if (r)
                return r;
        }
    }
    return VKD_OK;
}
