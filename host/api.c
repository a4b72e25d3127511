/* The public API (host/vkdiff.h): the context, parameter checks, and each call's log
 * sink. A context holds the loaded model and its stages (pipeline/pipe.h); the work
 * is in pipeline/txt2img.c and the stages. */
#include "vkdiff.h"
#include "vkdiff_dev.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "lora/lora_set.h"
#include "models/check.h"
#include "pipeline/bench.h"
#include "pipeline/decode_stage.h"
#include "pipeline/denoise_stage.h"
#include "pipeline/taesd_stage.h"
#include "pipeline/text_stage.h"
#include "pipeline/hires.h"
#include "pipeline/outpaint.h"
#include "pipeline/txt2img.h"
#include "sample/rng.h"
#include "sample/sampler.h"
#include "ops/matmul.h"
#include "vk/pipeline.h"

struct vkd_ctx {
    vkd_pipe pipe;          /* the model, its device and its stages */
    vkd_lora_set *loras;    /* the LoRAs applied to the weights now */
    char *model_dir;        /* where <lora:NAME> tags look by default; NULL: nowhere (a descriptor) */
    vkd_timings timings;    /* of the last image (load_ms: of the context) */
    bool first_run_noted;
    /* the caller's log sink, installed on the calling thread for each API call */
    bool has_log;
    vkd_log_fn log;
    void *log_user;
    vkd_log_level log_level;
};

void vkd_ctx_params_init(vkd_ctx_params *p)
{
    memset(p, 0, sizeof *p);
    p->model_fd = -1;
    p->device_index = -1;
    p->log_level = VKD_LOG_WARN;
}

void vkd_dev_options_init(struct vkd_dev_options *o)
{
    memset(o, 0, sizeof *o);
    o->split_k = -1;
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
    p->strength = 0.75;
    p->mask_blur = 4;
    p->hires_strength = 0.7;
}

void vkd_image_size(const vkd_gen_params *p, int *width, int *height)
{
    bool hires = p->hires_scale > 1;
    *width = hires ? (int)(p->width * p->hires_scale) / 8 * 8 : p->width + p->pad_left + p->pad_right;
    *height = hires ? (int)(p->height * p->hires_scale) / 8 * 8 : p->height + p->pad_top + p->pad_bottom;
}

size_t vkd_image_bytes(const vkd_gen_params *p)
{
    int w, h;
    vkd_image_size(p, &w, &h);
    return (size_t)w * (size_t)h * 3;
}
vkd_result vkd_gen_params_check(const vkd_gen_params *p)
{
    if (!p->prompt) {
        VKD_ERROR("no prompt");
        return VKD_ERR_INVALID_ARG;
    }
    if (p->n_loras < 0 || p->n_loras > 64 || (p->n_loras && !p->loras)) {
        VKD_ERROR("n_loras must be 0..64 with a list (got %d)", p->n_loras);
        return VKD_ERR_INVALID_ARG;
    }
    for (int i = 0; i < p->n_loras; i++)
        if (!p->loras[i].path || !isfinite(p->loras[i].weight) || fabsf(p->loras[i].weight) > 1e4f) {
            VKD_ERROR("LoRA %d: a file and a finite weight are needed", i);
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
    if (p->preview && (p->preview_every < 0 || (!p->taesd && !p->preview_taesd))) {
        VKD_ERROR("previews need a TAESD decoder (taesd or preview_taesd) and preview_every >= 0");
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
    const int sz[6] = {p->sdxl_original_width, p->sdxl_original_height, p->sdxl_crop_top, p->sdxl_crop_left,
                       p->sdxl_target_width, p->sdxl_target_height};
    for (int i = 0; i < 6; i++)
        if (sz[i] < 0 || sz[i] > 65536) {
            VKD_ERROR("SDXL size conditioning: sizes and crop must be between 0 and 65536 (got %d)", sz[i]);
            return VKD_ERR_INVALID_ARG;
        }
    if (p->init_image && (p->init_width < 1 || p->init_height < 1 || p->init_width > 16384 ||
                          p->init_height > 16384 || (int64_t)p->init_width * p->init_height > (64 << 20))) {
        VKD_ERROR("init image of %dx%d: sides must be 1 to 16384 pixels, at most 64 Mpx", p->init_width,
                  p->init_height);
        return VKD_ERR_INVALID_ARG;
    }
    if (p->mask && (!p->init_image || p->mask_width < 1 || p->mask_height < 1 || p->mask_width > 16384 ||
                    p->mask_height > 16384 || (int64_t)p->mask_width * p->mask_height > (64 << 20))) {
        VKD_ERROR(p->init_image ? "mask of %dx%d: sides must be 1 to 16384 pixels, at most 64 Mpx"
                                : "a mask needs an init image (inpainting repaints part of an image)",
                  p->mask_width, p->mask_height);
        return VKD_ERR_INVALID_ARG;
    }
    if (!(p->strength >= 0 && p->strength <= 1) || p->mask_blur < 0 || p->mask_blur > 256) {
        VKD_ERROR("strength must be between 0 and 1 and the mask blur between 0 and 256 pixels");
        return VKD_ERR_INVALID_ARG;
    }
    const int pads[4] = {p->pad_left, p->pad_top, p->pad_right, p->pad_bottom};
    for (int i = 0; i < 4; i++)
        if (pads[i] < 0 || pads[i] % 8 || pads[i] > 4096 || (pads[i] && (!p->init_image || p->hires_scale > 1)) ||
            p->width + p->pad_left + p->pad_right > 8192 || p->height + p->pad_top + p->pad_bottom > 8192) {
            VKD_ERROR("outpainting: padding must be multiples of 8 from 0 to 4096, the result at most 8192 pixels a "
                      "side, with an init image and without the hires fix (got %d,%d,%d,%d)",
                      p->pad_left, p->pad_top, p->pad_right, p->pad_bottom);
            return VKD_ERR_INVALID_ARG;
        }
    if (p->hires_scale != 0 && p->hires_scale != 1) {
        int w2 = (int)(p->width * p->hires_scale) / 8 * 8, h2 = (int)(p->height * p->hires_scale) / 8 * 8;
        if (!(p->hires_scale > 1 && p->hires_scale <= 8) || w2 > 8192 || h2 > 8192 || p->hires_steps < 0 ||
            p->hires_steps > VKD_MAX_STEPS || !(p->hires_strength >= 0 && p->hires_strength <= 1) ||
            (p->hires_upscale && strcmp(p->hires_upscale, "latent") && strcmp(p->hires_upscale, "lanczos"))) {
            VKD_ERROR("hires fix: scale must be over 1 and at most 8 (the result at most 8192 pixels a side), steps "
                      "0..%d, strength 0..1, upscale \"latent\" or \"lanczos\"", VKD_MAX_STEPS);
            return VKD_ERR_INVALID_ARG;
        }
        if ((p->sampler && !strcmp(p->sampler, "ddim")) || p->mask) {
            VKD_ERROR("hires fix: not with ddim (its second pass is img2img) nor with a mask");
            return VKD_ERR_INVALID_ARG;
        }
    }
    if (p->init_image && p->sampler && !strcmp(p->sampler, "ddim")) {
        VKD_ERROR("img2img and inpainting take the k-diffusion samplers (euler, euler_a, heun, dpm++2m, lcm), "
                  "not ddim");
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

/* ---- each call's log sink --------------------------------------------------------- */

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

static log_scope ctx_log_enter(const vkd_ctx *c) { return log_enter(c->has_log, c->log, c->log_user, c->log_level); }
static void log_leave(log_scope s) { vkd_log_set(s.fn, s.user, s.level); }

/* ---- the context ------------------------------------------------------------------- */

void vkd_ctx_free(vkd_ctx *c)
{
    if (!c)
        return;
    vkd_pipe *p = &c->pipe;
    if (p->ws)
        vkd_wstore_set_deltas(p->ws, NULL);
    vkd_lora_set_free(c->loras);
    free(c->model_dir);
    vkd_text_stage_destroy(p->text);
    vkd_denoise_stage_destroy(p->denoise);
    vkd_decode_stage_destroy(p->decode);
    vkd_taesd_stage_destroy(p->taesd);
    vkd_wstore_destroy(p->ws);
    vkd_tokenizer_destroy(p->tok);
    vkd_weights_close(p->w);
    vkd_device_destroy(p->d);
    free(c);
}

static vkd_result load_tokenizer(vkd_pipe *p, const vkd_ctx_params *cp)
{
    if (cp->tokenizer_bpe)
        return vkd_tokenizer_load_bpe_text(cp->tokenizer_bpe, cp->tokenizer_bpe_len, &p->tok);
    const char *path = cp->tokenizer_path;
    if (!path)
        path = vkd_weights_tokenizer_dir(p->w, 0);
    if (!path) {
        VKD_ERROR("no tokenizer: pass --tokenizer PATH (OpenAI's bpe_simple_vocab_16e6.txt.gz, or a folder "
                  "with vocab.json and merges.txt)");
        return VKD_ERR_INVALID_ARG;
    }
    return vkd_tokenizer_load(path, &p->tok);
}

static vkd_result open_model(vkd_pipe *p, const vkd_ctx_params *cp, const char *label)
{
    vkd_result r;
    char why[512] = "";
    if (cp->model_path)
        r = vkd_weights_open(cp->model_path, cp->vae_path, &p->w);
    else
        r = vkd_weights_open_fd(cp->model_fd, cp->model_fd_offset, cp->model_fd_length, label, &p->w);
    if (r)
        return r;
    if ((r = vkd_model_detect(p->w, &p->cfg, why, sizeof why))) {
        VKD_ERROR("%s: not a supported model: %s", label, why);
        return r;
    }
    if (p->cfg.family != VKD_FAMILY_SD1 && p->cfg.family != VKD_FAMILY_SD2 && p->cfg.family != VKD_FAMILY_SDXL) {
        VKD_ERROR("%s: %s models are not supported (SD1.x, SD2.x and SDXL are)", label, vkd_family_name(p->cfg.family));
        return VKD_ERR_UNSUPPORTED;
    }
    /* every tensor the model reads, its shape and dtype, before any GPU work (the
     * values' NaN/Inf scan is `vkdiff info`'s: the stages' outputs are checked) */
    vkd_weight_check chk = {.limit = 20};
    if ((r = vkd_model_check_weights(p->w, &p->cfg, &chk)))
        VKD_ERROR("%s: %zu tensor%s missing, %zu of another shape, %zu not floats (above; vkdiff info lists all "
                  "with -v)",
                  label, chk.missing, chk.missing == 1 ? "" : "s", chk.wrong_shape, chk.wrong_dtype);
    return r;
}

static vkd_result open_device(vkd_pipe *p, const vkd_ctx_params *cp)
{
    vkd_device_opts o;
    vkd_device_opts_init(&o);
    o.device_index = cp->device_index;
    o.validation = cp->validation;
    o.force_fp32 = cp->precision == VKD_PRECISION_FP32;
    o.cache_dir = cp->cache_dir;
    o.coopmat = cp->coopmat;
    o.timestamps = cp->gpu_timestamps;
    if (cp->dev) { /* developer knobs (vkdiff_dev.h), on this context's device only */
        if (cp->dev->split_k >= 0)
            o.knobs.split_k = cp->dev->split_k > 0 ? cp->dev->split_k : -1; /* 0: off */
        o.knobs.attention_no_coopmat = cp->dev->attention_flash;
        o.knobs.winograd = cp->dev->no_winograd ? -1 : 0;
        o.knobs.splitk_reduce = cp->dev->splitk_reduce;
        if (cp->dev->gemm_coopmat_emu)
            o.knobs.gemm_tile = vkd_gemm_coopmat_emu_tile;
    }
    vkd_result r = vkd_device_create(&o, &p->d);
    if (r)
        return r;
    if (cp->precision == VKD_PRECISION_FP16 && !p->d->use_f16)
        VKD_WARN("this device has no 16-bit storage: running in fp32");
    p->dt = p->d->use_f16 ? VKD_F16 : VKD_F32;
    /* weights are allocated in blocks of an eighth of the budget, 16..256 MiB */
    bool drv;
    uint64_t budget = p->memory_budget ? p->memory_budget : vkd_device_memory_budget(p->d, &drv);
    uint64_t blk = budget / 8;
    vkd_memory_set_block_size(p->d, blk < (16u << 20) ? (16u << 20) : blk > (256u << 20) ? (256u << 20) : blk);
    return VKD_OK;
}

/* The model's folder (a diffusers folder's parent), the LoRA tags' default folder. */
static vkd_result model_dir(const vkd_ctx_params *cp, char **out)
{
    *out = NULL;
    if (!cp->model_path)
        return VKD_OK;
    size_t n = strlen(cp->model_path);
    while (n > 1 && cp->model_path[n - 1] == '/') /* "folder/" */
        n--;
    while (n > 0 && cp->model_path[n - 1] != '/')
        n--;
    while (n > 1 && cp->model_path[n - 1] == '/')
        n--;
    const char *dir = n ? cp->model_path : ".";
    size_t len = n ? n : 1;
    if (!(*out = malloc(len + 1)))
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    memcpy(*out, dir, len);
    (*out)[len] = 0;
    return VKD_OK;
}

/* --weight-type: the UNet's weights quantized at load (wstore_quant.c) */
static vkd_result weight_type(vkd_pipe *p, const vkd_ctx_params *cp)
{
    const char *t = cp->weight_type;
    if (!t || !strcmp(t, "f16") || !strcmp(t, "f32"))
        return VKD_OK;
    static const struct { const char *name; uint32_t type; } names[] = {
        {"q8_0", 8}, {"q5_1", 7}, {"q5_0", 6}, {"q4_1", 3}, {"q4_0", 2}, {"q4_k", 12}, {"q6_k", 14},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(t, names[i].name)) {
            vkd_wstore_set_quant(p->ws, names[i].type, "model.diffusion_model.");
            return VKD_OK;
        }
    VKD_ERROR("unknown weight type '%s' (expected f32, f16, q8_0, q5_1, q5_0, q4_1, q4_0, q4_k or q6_k)", t);
    return VKD_ERR_INVALID_ARG;
}

static vkd_result ctx_create(const vkd_ctx_params *cp, vkd_ctx **out)
{
    *out = NULL;
    if (!cp->model_path && cp->model_fd < 0) {
        VKD_ERROR("no model given");
        return VKD_ERR_INVALID_ARG;
    }
    const char *label = cp->model_path ? cp->model_path : "(model descriptor)";
    double t0 = vkd_now_ms();
    vkd_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_pipe *p = &c->pipe;
    p->memory_budget = (uint64_t)cp->memory_budget_mb << 20;
    vkd_result r;
    if ((r = open_model(p, cp, label)) || (r = load_tokenizer(p, cp)) || (r = open_device(p, cp)) ||
        (r = vkd_wstore_create(p->d, p->w, p->dt, &p->ws)) || (r = weight_type(p, cp)) ||
        (r = vkd_text_stage_create(p, &p->text)) ||
        (r = vkd_denoise_stage_create(p, &p->denoise)) || (r = vkd_decode_stage_create(p, &p->decode)) ||
        (r = vkd_lora_set_create(p->w, &p->cfg, p->ws, &c->loras)) || (r = model_dir(cp, &c->model_dir))) {
        vkd_ctx_free(c);
        return r;
    }
    vkd_noise_table_init(&p->table);
    c->timings.load_ms = vkd_now_ms() - t0;
    *out = c;
    return VKD_OK;
}

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

uint32_t vkd_ctx_validation_errors(const vkd_ctx *c) { return c && c->pipe.d ? c->pipe.d->validation_errors : 0; }
uint32_t vkd_ctx_validation_layer(const vkd_ctx *c) { return c && c->pipe.d ? c->pipe.d->validation_layer : 0; }
const char *vkd_ctx_family(const vkd_ctx *c) { return vkd_family_name(c->pipe.cfg.family); }
void vkd_last_timings(const vkd_ctx *c, vkd_timings *t) { *t = c->timings; }
vkd_pipe *vkd_ctx_pipe(vkd_ctx *c) { return &c->pipe; }

/* ---- generation --------------------------------------------------------------------- */

/* An on-disk cache folder with nothing in it yet: on a CPU device the first image waits
 * for LLVM (BENCHMARKS.md, "Cold start"); said once per context. */
static void note_first_run(vkd_ctx *c)
{
    if (c->first_run_noted)
        return;
    vkd_pipeline_stats ps;
    vkd_pipeline_stats_get(c->pipe.d, &ps);
    if (c->pipe.d->caps.type == VK_PHYSICAL_DEVICE_TYPE_CPU && c->pipe.d->cache_path[0] && !ps.cache_bytes_loaded)
        VKD_WARN("first run on this CPU device: each kernel is compiled at its first use (%s); Mesa's shader "
                 "cache keeps them for the next runs",
                 /* measured on lavapipe, 2 cores: the shipped model (64 channels) 8 s cold against 1.2 s
                  * warm; full-size UNets compile their large-tile GEMM kernels, ~20 s each */
                 c->pipe.cfg.unet.model_channels <= 128 ? "about 10 s for a small model like this one"
                                                        : "a few minutes for a full-size model");
    c->first_run_noted = true;
}

static vkd_result generate(vkd_ctx *c, vkd_gen_params *p, const vkd_txt2img_io *io, uint8_t *rgb);

/* The LoRAs p asks for (its list, then the prompt's tags) applied to the weights; *tags
 * gets the prompt without its tags. */
static vkd_result use_loras(vkd_ctx *c, const vkd_gen_params *p, vkd_lora_tags *tags)
{
    vkd_result r = vkd_lora_tags_parse(p->prompt, tags);
    if (r)
        return r;
    size_t n = (size_t)(p->n_loras > 0 ? p->n_loras : 0), k = 0;
    vkd_lora_use *use = calloc(n + tags->n + 1, sizeof *use);
    char **found = calloc(tags->n + 1, sizeof *found);
    const char *dir = p->lora_dir && *p->lora_dir ? p->lora_dir : c->model_dir;
    if (!use || !found)
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
    for (size_t i = 0; !r && i < n; i++)
        use[k++] = (vkd_lora_use){p->loras[i].path, p->loras[i].weight};
    for (size_t i = 0; !r && i < tags->n; i++) {
        if (!dir) {
            VKD_ERROR("<lora:%s>: no LoRA folder (give lora_dir: the model was opened from a descriptor)",
                      tags->names[i]);
            r = VKD_ERR_INVALID_ARG;
        } else if (!(found[i] = vkd_lora_resolve(dir, tags->names[i]))) {
            r = VKD_ERR_IO;
        } else {
            use[k++] = (vkd_lora_use){found[i], tags->weights[i]};
        }
    }
    if (!r)
        r = vkd_lora_set_apply(c->loras, use, k);
    for (size_t i = 0; found && i < tags->n; i++)
        free(found[i]);
    free(found);
    free(use);
    return r;
}

vkd_result vkd_generate_io(vkd_ctx *c, vkd_gen_params *p, const vkd_txt2img_io *io, uint8_t *rgb)
{
    log_scope s = ctx_log_enter(c);
    vkd_result r = vkd_gen_params_check(p);
    vkd_lora_tags tags = {0};
    double tl = vkd_now_ms();
    if (!r)
        r = use_loras(c, p, &tags);
    double lora_ms = vkd_now_ms() - tl;
    if (!r) {
        vkd_gen_params q = *p; /* the prompt without its LoRA tags */
        q.prompt = tags.prompt;
        r = generate(c, &q, io, rgb);
        p->seed_used = q.seed_used;
        c->timings.lora_ms = lora_ms;
    }
    vkd_lora_tags_free(&tags);
    log_leave(s);
    return r;
}

static vkd_result generate(vkd_ctx *c, vkd_gen_params *p, const vkd_txt2img_io *io, uint8_t *rgb)
{
    double t0 = vkd_now_ms(), load_ms = c->timings.load_ms; /* the context's, kept */
    memset(&c->timings, 0, sizeof c->timings);
    c->timings.load_ms = load_ms;
    note_first_run(c);
    vkd_result r;
    if (p->hires_scale > 1)
        r = vkd_hires(&c->pipe, p, rgb, &c->timings);
    else if (p->pad_left || p->pad_top || p->pad_right || p->pad_bottom)
        r = vkd_outpaint(&c->pipe, p, io, rgb, &c->timings);
    else
        r = vkd_txt2img(&c->pipe, p, io, rgb, &c->timings);
    c->timings.total_ms = vkd_now_ms() - t0;
    return r;
}

vkd_result vkd_generate(vkd_ctx *c, vkd_gen_params *p, uint8_t *rgb) { return vkd_generate_io(c, p, NULL, rgb); }

/* ---- developer entry points (vkdiff_dev.h) ------------------------------------------- */

vkd_result vkd_bench_model(vkd_ctx *c, const vkd_bench_model_opts *o, FILE *f, FILE *row)
{
    log_scope s = ctx_log_enter(c);
    vkd_result r = vkd_pipe_bench_model(&c->pipe, o, f, row);
    log_leave(s);
    return r;
}

vkd_result vkd_plan_report(vkd_ctx *c, int width, int height, int tiling, bool record, FILE *f)
{
    log_scope s = ctx_log_enter(c);
    vkd_result r = vkd_pipe_plan_report(&c->pipe, width, height, tiling, record, f);
    log_leave(s);
    return r;
}
