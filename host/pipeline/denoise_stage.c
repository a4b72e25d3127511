/* The denoise stage: see denoise_stage.h. */
#include "pipeline/denoise_stage.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "models/graph.h"
#include "models/unet.h"
#include "ops/latent.h"

struct vkd_denoise_stage {
    vkd_pipe *p;
    int64_t batch, h, w, ctx_len; /* the recorded shape (batch 0: none) */
    vkd_pool *pool;
    vkd_cmd *cmd;
    /* inputs written each evaluation: one fp32 buffer of [t (16 slots), scalars (16), x],
     * so that a step is one upload */
    vkd_tensor in, t, scalars, x;
    vkd_tensor unet_x, context, unet_out; /* [B, hw, ch], [B, L, C], [B, hw, ch] */
    vkd_tensor y;                         /* [B, adm] SDXL's vector conditioning (else empty) */
    vkd_tensor eps;                       /* [ch, hw] fp32 */
    float *staging;                       /* host copy of `in` */
};

enum { SLOTS = 16 }; /* fp32 slots for t and for the scalars: 64 bytes each */

vkd_result vkd_denoise_stage_create(vkd_pipe *p, vkd_denoise_stage **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    (*out)->p = p;
    return VKD_OK;
}

void vkd_denoise_stage_forget(vkd_denoise_stage *s)
{
    if (!s)
        return;
    vkd_pipe *p = s->p;
    vkd_cmd_destroy(s->cmd);
    vkd_pool_destroy(p->d, s->pool); /* every tensor above lives in it */
    free(s->staging);
    vkd_pipe *keep = s->p;
    memset(s, 0, sizeof *s);
    s->p = keep;
}

void vkd_denoise_stage_release(vkd_denoise_stage *s)
{
    if (!s)
        return;
    vkd_denoise_stage_forget(s);
    vkd_wstore_release(s->p->ws, "model.diffusion_model.");
    vkd_memory_trim(s->p->d);
}

void vkd_denoise_stage_destroy(vkd_denoise_stage *s)
{
    vkd_denoise_stage_forget(s);
    free(s);
}

vkd_cmd *vkd_denoise_stage_cmd(const vkd_denoise_stage *s) { return s->cmd; }

uint64_t vkd_denoise_stage_pool_peak(const vkd_denoise_stage *s)
{
    vkd_memory_stats st;
    memset(&st, 0, sizeof st);
    if (s->pool)
        vkd_pool_stats_get(s->pool, &st);
    return st.peak_allocated;
}

/* The evaluation: inputs, conversions and the UNet (g->plan: a dry run). */
static void record_eval(vkd_graph *g, const vkd_unet_config *u, int64_t batch, int64_t h, int64_t w,
                        int64_t ctx_len, vkd_denoise_stage *s)
{
    int64_t hw = h * w, ch = u->in_channels, och = u->out_channels;
    int64_t ins[1] = {2 * SLOTS + ch * hw}, xs[2] = {ch, hw}, es[2] = {och, hw};
    vkd_tensor in = g_new_f32(g, 1, ins);
    vkd_tensor eps = g_new_f32(g, 2, es);
    vkd_tensor x = g_new3(g, batch, hw, ch);
    vkd_tensor ctx = g_new3(g, batch, ctx_len, u->context_dim);
    int64_t ys[2] = {batch, u->adm_in_channels};
    vkd_tensor y = {0};
    if (u->adm_in_channels)
        y = g_new(g, 2, ys);
    vkd_tensor t, scalars, xn, out;
    if (!g_ok(g))
        return;
    int64_t ts[1] = {batch}, ss[1] = {2};
    t = vkd_tensor_rows(&in, 0, batch);
    scalars = vkd_tensor_rows(&in, SLOTS, 2);
    xn = vkd_tensor_rows(&in, 2 * SLOTS, ch * hw);
    vkd_result r = vkd_tensor_reshape(&t, 1, ts, &t);
    if (!r)
        r = vkd_tensor_reshape(&scalars, 1, ss, &scalars);
    if (!r)
        r = vkd_tensor_reshape(&xn, 2, xs, &xn);
    if (r) {
        g_fail(g, r);
        return;
    }
    /* an inpainting UNet's mask and masked-image latent follow the latent, unscaled */
    if (g_recording(g) && (r = vkd_op_latent_in_cond(g->c, &xn, &scalars, och, &x))) {
        g_fail(g, r);
        return;
    }
    vkd_unet_record(g, u, &x, h, w, &t, &ctx, u->adm_in_channels ? &y : NULL, &out);
    if (g_recording(g) && (r = vkd_op_latent_guide(g->c, &out, &scalars, &eps)))
        g_fail(g, r);
    if (s) {
        s->in = in, s->t = t, s->scalars = scalars, s->x = xn;
        s->unet_x = x, s->context = ctx, s->unet_out = out, s->eps = eps, s->y = y;
    }
}

vkd_result vkd_denoise_stage_request(const vkd_memplan_in *in, vkd_denoise_request *out)
{
    vkd_graph_plan plan;
    memset(&plan, 0, sizeof plan);
    vkd_graph g = {.d = in->d, .ws = in->ws, .dt = in->dt, .plan = &plan};
    vkd_result r = vkd_cmd_create(in->d, &g.c); /* ops read device limits through it; nothing is recorded */
    if (r)
        return r;
    record_eval(&g, &in->cfg->unet, in->batch, in->h, in->w, in->ctx_len, NULL);
    vkd_cmd_destroy(g.c);
    if (g.err)
        return g.err;
    out->weights = plan.weight_bytes;
    /* Quantized weights: each dequantized temporary (up to 59 MB) is allocated and freed
     * around its op among the activations, and the pool's free ranges fragment around
     * them: lavapipe runs held up to ~2 of the largest above the live-byte peak (SD1.5
     * q8_0: +117 MiB at 64x64, +157 MiB at 512x512). The plan reserves that room. */
    out->activations = plan.peak + 2 * plan.dq_max;
    out->reserve = 2 * plan.dq_max;
    out->ops = plan.ops;
    out->act_written = plan.act_bytes;
    return VKD_OK;
}

vkd_result vkd_denoise_stage_prepare(vkd_denoise_stage *s, int64_t batch, int64_t h, int64_t w, int64_t ctx_len,
                                     uint64_t pool_bytes)
{
    if (s->cmd && s->batch == batch && s->h == h && s->w == w && s->ctx_len == ctx_len)
        return VKD_OK;
    vkd_denoise_stage_forget(s);
    vkd_pipe *p = s->p;
    vkd_graph g = {.d = p->d, .ws = p->ws, .dt = p->dt};
    vkd_result r = pool_bytes ? vkd_pool_create_planned(p->d, pool_bytes, &g.pool) : vkd_pool_create(p->d, &g.pool);
    if (r)
        return r;
    s->pool = g.pool;
    if ((r = vkd_cmd_create(p->d, &g.c)))
        goto fail;
    s->cmd = g.c;
    if ((r = vkd_cmd_begin(g.c)))
        goto fail;
    record_eval(&g, &p->cfg.unet, batch, h, w, ctx_len, s);
    if ((r = g.err) || (r = vkd_cmd_end(g.c)))
        goto fail;
    s->staging = calloc((size_t)vkd_tensor_numel(&s->in), sizeof *s->staging);
    if (!s->staging) {
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
        goto fail;
    }
    s->batch = batch, s->h = h, s->w = w, s->ctx_len = ctx_len;
    VKD_INFO("UNet recorded: %u dispatches, batch %lld, latent %lldx%lld", vkd_cmd_dispatch_count(g.c),
             (long long)batch, (long long)h, (long long)w);
    return VKD_OK;
fail:
    vkd_denoise_stage_forget(s);
    return r;
}


vkd_result vkd_denoise_stage_set_context(vkd_denoise_stage *s, const vkd_tensor *dev, const float *host)
{
    if (!s->cmd)
        return VKD_ERR_INTERNAL;
    if (host)
        return vkd_tensor_upload_f32(s->p->d, &s->context, host);
    if (vkd_tensor_numel(dev) != vkd_tensor_numel(&s->context) || dev->dtype != s->context.dtype) {
        char a[64], b[64];
        VKD_ERROR("context %s does not fit the UNet's %s", vkd_tensor_str(dev, a, sizeof a),
                  vkd_tensor_str(&s->context, b, sizeof b));
        return VKD_ERR_INTERNAL;
    }
    return vkd_copy_now(s->p->d, dev, &s->context);
}

vkd_result vkd_denoise_stage_set_vector(vkd_denoise_stage *s, const float *y)
{
    if (!s->cmd || !s->p->cfg.unet.adm_in_channels)
        return VKD_ERR_INTERNAL;
    return vkd_tensor_upload_f32(s->p->d, &s->y, y);
}

vkd_result vkd_denoise_stage_set_sdxl(vkd_denoise_stage *s, const float *pooled, const vkd_sdxl_sizes *sz)
{
    int proj = s->p->cfg.n_text == 2 ? s->p->cfg.text[1].proj_dim : 0, adm = s->p->cfg.unet.adm_in_channels;
    if (!s->cmd || !pooled || !adm || adm != proj + VKD_SDXL_SIZE_NUMBERS * VKD_SDXL_SIZE_EMB)
        return VKD_ERR_INTERNAL;
    float *y = malloc((size_t)(s->batch * adm) * sizeof *y);
    if (!y)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    for (int64_t b = 0; b < s->batch; b++)
        vkd_sdxl_vector(pooled + b * proj, proj, sz, y + b * adm);
    vkd_result r = vkd_denoise_stage_set_vector(s, y);
    free(y);
    return r;
}

vkd_result vkd_denoise_stage_set_concat(vkd_denoise_stage *s, const float *cond)
{
    const vkd_unet_config *u = &s->p->cfg.unet;
    if (!s->cmd || u->in_channels <= u->out_channels)
        return VKD_ERR_INTERNAL;
    int64_t hw = s->h * s->w;
    memcpy(s->staging + 2 * SLOTS + u->out_channels * hw, cond,
           (size_t)((u->in_channels - u->out_channels) * hw) * sizeof *cond);
    return VKD_OK;
}

vkd_result vkd_denoise_stage_eval(vkd_denoise_stage *s, const float *x, float t, float c_in, float cfg, float *eps)
{
    if (!s->cmd)
        return VKD_ERR_INTERNAL;
    int64_t n = vkd_tensor_numel(&s->eps); /* the sampler's latent: out_channels x hw */
    for (int64_t b = 0; b < s->batch; b++)
        s->staging[b] = t;
    s->staging[SLOTS] = c_in;
    s->staging[SLOTS + 1] = cfg;
    memcpy(s->staging + 2 * SLOTS, x, (size_t)n * sizeof *x);
    vkd_result r = vkd_tensor_upload_f32(s->p->d, &s->in, s->staging);
    if (!r)
        r = vkd_cmd_submit_wait(s->cmd);
    if (!r)
        r = vkd_tensor_download_f32(s->p->d, &s->eps, eps);
    return r;
}
