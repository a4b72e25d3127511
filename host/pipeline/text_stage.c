/* The text stage: see text_stage.h. */
#include "pipeline/text_stage.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "models/clip.h"
#include "models/graph.h"
#include "ops/emphasis.h"

enum { KEPT_MAX = 4 }; /* batch shapes kept recorded (1 or 2 items x a few chunk counts) */

typedef struct recording {
    int n_chunks, skip;   /* the shape: n_chunks = items * chunks */
    vkd_pool *pool;
    vkd_cmd *cmd;
    vkd_buffer ids[2];    /* [n_chunks * 77] uint32 per encoder */
    vkd_buffer eos;       /* [n_chunks] uint32: each chunk's end-of-text row (pooling) */
    vkd_tensor weights;   /* [n_chunks * 77] fp32 emphasis multipliers */
    vkd_tensor out;       /* [n_chunks * 77, width (SDXL: both encoders')] */
    vkd_tensor pooled;    /* [n_chunks, proj] (SDXL), else empty */
    uint64_t last_use;
} recording;

struct vkd_text_stage {
    vkd_pipe *p;
    recording kept[KEPT_MAX];
    uint64_t clock;
    /* the last run's context, in memory of its own: it outlives the recordings and the
     * weights (released before the UNet stage), until the next run */
    vkd_pool *ctx_pool;
    vkd_tensor ctx;
    float *pooled;        /* [items, proj] on the host (SDXL) */
};

static void recording_free(vkd_device *d, recording *k)
{
    vkd_cmd_destroy(k->cmd);
    vkd_pool_destroy(d, k->pool); /* ids, weights and out live in the pool */
    memset(k, 0, sizeof *k);
}

vkd_result vkd_text_stage_create(vkd_pipe *p, vkd_text_stage **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    (*out)->p = p;
    return VKD_OK;
}

void vkd_text_stage_release_ex(vkd_text_stage *s, bool keep_weights)
{
    if (!s)
        return;
    for (int i = 0; i < KEPT_MAX; i++)
        if (s->kept[i].cmd || s->kept[i].pool)
            recording_free(s->p->d, &s->kept[i]);
    if (!keep_weights)
        for (int k = 0; k < s->p->cfg.n_text; k++)
            vkd_wstore_release(s->p->ws, s->p->cfg.text[k].prefix);
    vkd_memory_trim(s->p->d);
}

void vkd_text_stage_release(vkd_text_stage *s) { vkd_text_stage_release_ex(s, false); }

void vkd_text_stage_destroy(vkd_text_stage *s)
{
    if (!s)
        return;
    for (int i = 0; i < KEPT_MAX; i++)
        if (s->kept[i].cmd || s->kept[i].pool)
            recording_free(s->p->d, &s->kept[i]);
    vkd_pool_destroy(s->p->d, s->ctx_pool);
    free(s->pooled);
    free(s);
}


/* The stage's context tensor shaped like out (its pool made again when the size changes). */
static vkd_result ctx_fit(vkd_text_stage *s, const vkd_tensor *out)
{
    vkd_device *d = s->p->d;
    if (s->ctx_pool && vkd_tensor_numel(&s->ctx) == vkd_tensor_numel(out) && s->ctx.dtype == out->dtype)
        return vkd_tensor_reshape(&s->ctx, out->ndim, out->shape, &s->ctx);
    vkd_pool_destroy(d, s->ctx_pool);
    s->ctx_pool = NULL;
    memset(&s->ctx, 0, sizeof s->ctx);
    uint64_t bytes = (uint64_t)vkd_tensor_numel(out) * vkd_dtype_size(out->dtype);
    vkd_result r = vkd_pool_create_small(d, (bytes + 255) / 256 * 256, &s->ctx_pool);
    if (!r)
        r = vkd_tensor_create_in(d, s->ctx_pool, out->dtype, out->ndim, out->shape, &s->ctx);
    return r;
}

void vkd_text_batch_free(vkd_text_batch *b)
{
    free(b->ids);
    free(b->ids2);
    free(b->weights);
    memset(b, 0, sizeof *b);
}

/* item `it` of the batch: t's chunks, then the empty prompt's chunk until `chunks` */
static void place(vkd_text_batch *b, int it, const vkd_prompt_tokens *t, const vkd_prompt_tokens *empty)
{
    const int L = VKD_PROMPT_CHUNK_LEN;
    for (int k = 0; k < b->chunks; k++) {
        const vkd_prompt_tokens *src = k < t->n_chunks ? t : empty;
        int from = k < t->n_chunks ? k : 0;
        memcpy(b->ids + (size_t)(it * b->chunks + k) * L, src->ids + (size_t)from * L, L * sizeof *b->ids);
        memcpy(b->weights + (size_t)(it * b->chunks + k) * L, src->weights + (size_t)from * L, L * sizeof *b->weights);
    }
}

/* The first end-of-text position of a 77-token chunk: argmax of its ids (the EOS id
 * is the vocabulary's largest; torch.argmax returns the first maximum), as
 * FrozenOpenCLIPEmbedder2.pool finds it. */
static int chunk_eos(const int32_t *row)
{
    int best = 0;
    for (int k = 1; k < VKD_PROMPT_CHUNK_LEN; k++)
        if (row[k] > row[best])
            best = k;
    return best;
}

void vkd_text_ids_openclip(const int32_t *ids, size_t n_chunks, int32_t *out)
{
    for (size_t c = 0; c < n_chunks; c++) {
        const int32_t *row = ids + c * VKD_PROMPT_CHUNK_LEN;
        int32_t *row2 = out + c * VKD_PROMPT_CHUNK_LEN;
        int e = chunk_eos(row);
        for (int k = 0; k < VKD_PROMPT_CHUNK_LEN; k++)
            row2[k] = k <= e ? row[k] : 0;
    }
}

vkd_result vkd_text_stage_tokenize(vkd_text_stage *s, const char *prompt, const char *negative, bool guided,
                                   int clip_skip, bool zero_empty_negative, vkd_text_batch *out)
{
    const vkd_model_config *cfg = &s->p->cfg;
    const vkd_text_config *tc = &cfg->text[0];
    bool sdxl = cfg->n_text == 2;
    memset(out, 0, sizeof *out);
    vkd_prompt_params pp;
    vkd_prompt_params_init(&pp);
    int skip = 0;
    if (cfg->family == VKD_FAMILY_SD2) {
        pp.pad = VKD_PROMPT_PAD_ZERO;
        skip = 1; /* FrozenOpenCLIPEmbedder layer="penultimate" */
    } else if (sdxl) {
        /* both encoders' penultimate layer (sd_xl_base.yaml); a clip skip past it moves
         * both, as ComfyUI's CLIPSetLastLayer and stable-diffusion.cpp do (docs/sdxl.md) */
        skip = clip_skip > 2 ? clip_skip - 1 : 1;
    } else if (clip_skip > 1) {
        skip = clip_skip - 1;
    }
    for (int k = 0; k < cfg->n_text; k++)
        if (skip >= cfg->text[k].layers) {
            VKD_ERROR("clip skip %d: the text encoder %s has only %d layers", clip_skip, cfg->text[k].prefix,
                      cfg->text[k].layers);
            return VKD_ERR_INVALID_ARG;
        }
    vkd_prompt_tokens tp = {0}, tn = {0}, te = {0};
    vkd_result r = vkd_prompt_tokenize(s->p->tok, prompt ? prompt : "", &pp, &tp);
    if (!r && guided)
        r = vkd_prompt_tokenize(s->p->tok, negative ? negative : "", &pp, &tn);
    if (!r && guided && tn.n_chunks != tp.n_chunks) /* the padding chunk */
        r = vkd_prompt_tokenize(s->p->tok, "", &pp, &te);
    size_t n = 0;
    if (!r) {
        out->items = guided ? 2 : 1;
        out->chunks = guided && tn.n_chunks > tp.n_chunks ? tn.n_chunks : tp.n_chunks;
        out->skip = skip;
        out->zero_uncond = sdxl && guided && zero_empty_negative && !(negative && negative[0]);
        n = (size_t)out->items * out->chunks * VKD_PROMPT_CHUNK_LEN;
        out->ids = malloc(n * sizeof *out->ids);
        out->weights = malloc(n * sizeof *out->weights);
        if (sdxl)
            out->ids2 = malloc(n * sizeof *out->ids2);
        if (!out->ids || !out->weights || (sdxl && !out->ids2))
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    if (!r) {
        if (guided) /* [uncond, cond]: the order of k-diffusion's CFGDenoiser batch */
            place(out, 0, &tn, &te);
        place(out, guided ? 1 : 0, &tp, &te);
        for (size_t i = 0; i < n && !r; i++)
            if (out->ids[i] < 0 || out->ids[i] >= tc->vocab || (sdxl && out->ids[i] >= cfg->text[1].vocab)) {
                VKD_ERROR("token id %d is outside the text encoder's vocabulary of %d: tokenizer and model differ",
                          out->ids[i], tc->vocab);
                r = VKD_ERR_INVALID_ARG;
            }
    }
    if (!r && sdxl)
        vkd_text_ids_openclip(out->ids, n / VKD_PROMPT_CHUNK_LEN, out->ids2);
    vkd_prompt_tokens_free(&tp);
    vkd_prompt_tokens_free(&tn);
    vkd_prompt_tokens_free(&te);
    if (r)
        vkd_text_batch_free(out);
    return r;
}

/* One encoder's context, emphasis applied: [n * 77, width] (and the pooled rows). */
static vkd_tensor encode_one(vkd_graph *g, const vkd_text_config *tc, recording *k, int which, bool sdxl)
{
    size_t n = (size_t)k->n_chunks * VKD_PROMPT_CHUNK_LEN;
    vkd_clip_opts o = {.skip = k->skip, .final_norm = !sdxl};
    if (sdxl && which == 1) /* FrozenOpenCLIPEmbedder2: the pooled vector of every chunk */
        o.pool_rows = &k->eos, o.pool_n = k->n_chunks;
    vkd_tensor emb, z = {0};
    vkd_clip_record_ex(g, tc, g_recording(g) ? &k->ids[which] : NULL, k->n_chunks, VKD_PROMPT_CHUNK_LEN, &o, &emb,
                       o.pool_n ? &k->pooled : NULL);
    if (!g_recording(g))
        return emb;
    int64_t s2[2] = {(int64_t)n, tc->width};
    vkd_result r = vkd_tensor_reshape(&emb, 2, s2, &z);
    if (!r)
        r = vkd_op_emphasis(g->c, &z, &k->weights, VKD_PROMPT_CHUNK_LEN);
    if (r)
        g_fail(g, r);
    return z;
}

/* The encoder(s) on n_chunks chunks, with or without recording (g->plan: a dry run). */
static void record_encoder(vkd_graph *g, const vkd_model_config *cfg, recording *k)
{
    size_t n = (size_t)k->n_chunks * VKD_PROMPT_CHUNK_LEN;
    bool sdxl = cfg->n_text == 2;
    if (g_recording(g)) {
        int64_t ws[1] = {(int64_t)n};
        vkd_result r = VKD_OK;
        for (int e = 0; e < cfg->n_text && !r; e++)
            r = vkd_buffer_create_in(g->d, g->pool, n * sizeof(uint32_t), &k->ids[e]);
        if (!r && sdxl)
            r = vkd_buffer_create_in(g->d, g->pool, (size_t)k->n_chunks * sizeof(uint32_t), &k->eos);
        if (!r)
            r = vkd_tensor_create_in(g->d, g->pool, VKD_F32, 1, ws, &k->weights);
        if (r) {
            g_fail(g, r);
            return;
        }
    }
    vkd_tensor z0 = encode_one(g, &cfg->text[0], k, 0, sdxl);
    if (!sdxl) {
        if (g_recording(g))
            k->out = z0;
        else
            g_free(g, &z0);
        return;
    }
    /* SDXL: torch.cat([CLIP-L, OpenCLIP bigG], -1) per token (GeneralConditioner) */
    vkd_tensor z1 = encode_one(g, &cfg->text[1], k, 1, sdxl);
    int64_t s3a[3] = {1, (int64_t)n, cfg->text[0].width}, s3b[3] = {1, (int64_t)n, cfg->text[1].width};
    vkd_tensor a = z0, b = z1;
    if (g_ok(g) && ((g->err = vkd_tensor_reshape(&z0, 3, s3a, &a)) || (g->err = vkd_tensor_reshape(&z1, 3, s3b, &b))))
        return;
    vkd_tensor cat = g_concat(g, &a, &b);                                           // [1, n * 77, 2048]
    g_free(g, &z0);
    g_free(g, &z1);
    int64_t s2[2] = {(int64_t)n, cfg->text[0].width + cfg->text[1].width};
    if (g_ok(g) && (g->err = vkd_tensor_reshape(&cat, 2, s2, &cat)))
        return;
    if (g_recording(g))
        k->out = cat;
    else
        g_free(g, &cat);
}

vkd_result vkd_text_stage_request(const vkd_memplan_in *in, int n_chunks, int skip, uint64_t *weights,
                                  uint64_t *activations)
{
    vkd_graph_plan plan;
    memset(&plan, 0, sizeof plan);
    vkd_graph g = {.d = in->d, .ws = in->ws, .dt = in->dt, .plan = &plan};
    vkd_result r = vkd_cmd_create(in->d, &g.c); /* ops read device limits through it; nothing is recorded */
    if (r)
        return r;
    recording k = {.n_chunks = n_chunks, .skip = skip};
    record_encoder(&g, in->cfg, &k);
    vkd_cmd_destroy(g.c);
    if (g.err)
        return g.err;
    /* + the ids (per encoder), the emphasis weights and the pooling rows, in the same pool */
    uint64_t io = (uint64_t)(1 + in->cfg->n_text) * (((uint64_t)n_chunks * VKD_PROMPT_CHUNK_LEN * 4 + 255) / 256 * 256) +
                  (in->cfg->n_text == 2 ? ((uint64_t)n_chunks * 4 + 255) / 256 * 256 : 0);
    *weights = plan.weight_bytes;
    *activations = plan.peak + io;
    return VKD_OK;
}

static vkd_result record(vkd_text_stage *s, int n_chunks, int skip, recording *k)
{
    vkd_pipe *p = s->p;
    memset(k, 0, sizeof *k);
    k->n_chunks = n_chunks, k->skip = skip;
    vkd_memplan_in in = {.d = p->d, .ws = p->ws, .dt = p->dt, .cfg = &p->cfg};
    uint64_t w = 0, act = 0;
    vkd_result r = vkd_text_stage_request(&in, n_chunks, skip, &w, &act);
    vkd_graph g = {.d = p->d, .ws = p->ws, .dt = p->dt};
    if (!r)
        r = vkd_pool_create_planned(p->d, act, &g.pool);
    k->pool = g.pool;
    if (!r)
        r = vkd_cmd_create(p->d, &g.c);
    k->cmd = g.c;
    if (!r)
        r = vkd_cmd_begin(g.c);
    if (!r) {
        uint64_t wb = 0;
        for (int e = 0; e < p->cfg.n_text; e++)
            wb += vkd_wstore_prefix_bytes(p->ws, p->cfg.text[e].prefix);
        vkd_memory_expect(p->d, wb); /* weight blocks without slack */
        record_encoder(&g, &p->cfg, k);
        vkd_memory_expect(p->d, 0);
        r = g.err;
    }
    if (!r)
        r = vkd_cmd_end(g.c);
    if (r)
        recording_free(p->d, k);
    return r;
}

/* The pooled vector of each item's first chunk, to the host. */
static vkd_result pooled_of_items(vkd_text_stage *s, const vkd_text_batch *b, const recording *k)
{
    int64_t proj = s->p->cfg.text[1].proj_dim, n_chunks = (int64_t)b->items * b->chunks;
    float *all = malloc((size_t)(n_chunks * proj) * sizeof *all);
    float *items = realloc(s->pooled, (size_t)(b->items * proj) * sizeof *items);
    if (items)
        s->pooled = items;
    vkd_result r = all && items ? vkd_tensor_download_f32(s->p->d, &k->pooled, all) : VKD_ERR_OUT_OF_HOST_MEMORY;
    for (int it = 0; it < b->items && !r; it++)
        memcpy(s->pooled + it * proj, all + (size_t)it * b->chunks * proj, (size_t)proj * sizeof *all);
    free(all);
    return r;
}

/* SDXL's empty negative as zeros: item 0 (the uncond) of the context and pooled vector
 * (diffusers force_zeros_for_empty_prompt; A1111 sd_models_xl.py force_zero_negative_prompt). */
static vkd_result zero_item0(vkd_text_stage *s, const vkd_text_batch *b, int64_t width)
{
    size_t per = (size_t)b->chunks * VKD_PROMPT_CHUNK_LEN * (size_t)width;
    float *zeros = calloc(per, sizeof *zeros);
    if (!zeros)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_tensor item0 = vkd_tensor_rows(&s->ctx, 0, 1);
    vkd_result r = vkd_tensor_upload_f32(s->p->d, &item0, zeros);
    free(zeros);
    memset(s->pooled, 0, (size_t)s->p->cfg.text[1].proj_dim * sizeof *s->pooled);
    return r;
}

vkd_result vkd_text_stage_run(vkd_text_stage *s, const vkd_text_batch *b, const vkd_tensor **context,
                              vkd_stage_stats *st)
{
    vkd_pipe *p = s->p;
    int n_chunks = b->items * b->chunks;
    recording *k = NULL;
    for (int i = 0; i < KEPT_MAX && !k; i++)
        if (s->kept[i].cmd && s->kept[i].n_chunks == n_chunks && s->kept[i].skip == b->skip)
            k = &s->kept[i];
    bool recorded = !k;
    if (!k) { /* an empty slot, else the least recently used */
        k = &s->kept[0];
        for (int i = 0; i < KEPT_MAX; i++)
            if (!s->kept[i].cmd || s->kept[i].last_use < k->last_use)
                k = &s->kept[i];
        if (k->cmd)
            recording_free(p->d, k);
        vkd_result r = record(s, n_chunks, b->skip, k);
        if (r)
            return r;
        VKD_INFO("text encoder recorded: %u dispatches, %d chunk%s", vkd_cmd_dispatch_count(k->cmd), n_chunks,
                 n_chunks == 1 ? "" : "s");
    }
    k->last_use = ++s->clock;
    const vkd_model_config *cfg = &p->cfg;
    bool sdxl = cfg->n_text == 2;
    size_t n = (size_t)n_chunks * VKD_PROMPT_CHUNK_LEN;
    double t0 = vkd_now_ms();
    vkd_result r = vkd_buffer_upload(p->d, &k->ids[0], 0, b->ids, n * sizeof(uint32_t)); /* int32 ids, all >= 0 */
    if (!r && sdxl)
        r = vkd_buffer_upload(p->d, &k->ids[1], 0, b->ids2, n * sizeof(uint32_t));
    if (!r && sdxl) {
        uint32_t *eos = malloc((size_t)n_chunks * sizeof *eos);
        if (!eos)
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        for (int c = 0; c < n_chunks; c++)
            eos[c] = (uint32_t)(c * VKD_PROMPT_CHUNK_LEN + chunk_eos(b->ids2 + (size_t)c * VKD_PROMPT_CHUNK_LEN));
        r = vkd_buffer_upload(p->d, &k->eos, 0, eos, (size_t)n_chunks * sizeof *eos);
        free(eos);
    }
    if (!r)
        r = vkd_tensor_upload_f32(p->d, &k->weights, b->weights);
    if (!r)
        r = vkd_cmd_submit_wait(k->cmd);
    /* [items, chunks * 77, width]: the same shape of batch may split into items either way */
    int64_t width = k->out.ndim ? k->out.shape[k->out.ndim - 1] : 0;
    int64_t s3[3] = {b->items, (int64_t)b->chunks * VKD_PROMPT_CHUNK_LEN, width};
    if (!r)
        r = vkd_tensor_reshape(&k->out, 3, s3, &k->out);
    if (!r)
        r = ctx_fit(s, &k->out);
    if (!r)
        r = vkd_copy_now(p->d, &k->out, &s->ctx);
    if (!r && sdxl)
        r = pooled_of_items(s, b, k);
    if (!r && b->zero_uncond)
        r = zero_item0(s, b, width);
    if (r)
        return r;
    if (st) {
        st->wall_ms = vkd_now_ms() - t0;
        st->gpu_ms = vkd_cmd_total_ms(k->cmd);
        st->flops = vkd_cmd_flops(k->cmd);
        st->dispatches = vkd_cmd_dispatch_count(k->cmd);
        st->recorded = recorded;
    }
    /* NaN/Inf: the encoding is small ([B, L, width]); checked on the host */
    int64_t numel = vkd_tensor_numel(&k->out);
    float *host = malloc((size_t)numel * sizeof *host);
    if (!host)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    r = vkd_tensor_download_f32(p->d, &s->ctx, host);
    size_t bad = r ? 0 : vkd_count_non_finite(host, (size_t)numel);
    free(host);
    if (!r && sdxl)
        bad += vkd_count_non_finite(s->pooled, (size_t)b->items * (size_t)cfg->text[1].proj_dim);
    if (r)
        return r;
    if (bad) {
        VKD_ERROR("text encoder: %zu of %lld output values are NaN/Inf; %s", bad, (long long)numel, vkd_fp32_hint);
        return VKD_ERR_NON_FINITE;
    }
    *context = &s->ctx;
    return VKD_OK;
}

const float *vkd_text_stage_pooled(const vkd_text_stage *s) { return s->p->cfg.n_text == 2 ? s->pooled : NULL; }
