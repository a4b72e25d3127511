/* CLIP text transformer: token + position embedding, pre-LN blocks with causal
 * self-attention and an MLP (quick-GELU for OpenAI CLIP, GELU for OpenCLIP), then
 * the final LayerNorm. Sources: openai/CLIP model.py, HF modeling_clip.py
 * (CLIPTextTransformer), open_clip transformer.py; SD2 takes the penultimate
 * layer (Stability-AI ldm/modules/encoders/modules.py FrozenOpenCLIPEmbedder,
 * layer="penultimate"), A1111's clip skip does the same for SD1. SDXL (Stability-AI
 * generative-models sgm/modules/encoders/modules.py): FrozenCLIPEmbedder layer "hidden"
 * (the penultimate layer, no final norm) and FrozenOpenCLIPEmbedder2 (penultimate
 * without ln_final, and the pooled vector of the last layer). */
#include "models/clip.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ops/embedding.h"

#define LN_EPS 1e-5f /* HF CLIPTextConfig.layer_norm_eps and nn.LayerNorm default */

/* One pre-LN encoder layer: x + attn(ln1(x)), then + mlp(ln2(.)). Frees *x unless keep. */
static vkd_tensor clip_layer(vkd_graph *g, const vkd_text_config *cfg, const char *p, vkd_tensor *x, bool keep)
{
    vkd_tensor h = g_layernorm(g, x, LN_EPS, "%slayer_norm1", p);
    vkd_tensor q = g_linear(g, &h, NULL, "%sself_attn.q_proj", p);
    vkd_tensor k = g_linear(g, &h, NULL, "%sself_attn.k_proj", p);
    vkd_tensor v = g_linear(g, &h, NULL, "%sself_attn.v_proj", p);
    g_free(g, &h);
    vkd_tensor a = g_attention(g, &q, &k, &v, cfg->heads, true);
    g_free(g, &q);
    g_free(g, &k);
    g_free(g, &v);
    vkd_tensor x1 = g_linear(g, &a, x, "%sself_attn.out_proj", p);
    g_free(g, &a);
    if (!keep)
        g_free(g, x);
    h = g_layernorm(g, &x1, LN_EPS, "%slayer_norm2", p);
    vkd_tensor f = g_linear(g, &h, NULL, "%smlp.fc1", p);                              // [N, 77, 4C]
    g_free(g, &h);
    g_act_inplace(g, &f, cfg->quick_gelu ? 2 : 1);
    vkd_tensor out = g_linear(g, &f, &x1, "%smlp.fc2", p);
    g_free(g, &f);
    g_free(g, &x1);
    return out;
}

vkd_result vkd_clip_record_ex(vkd_graph *g, const vkd_text_config *cfg, const vkd_buffer *ids, int64_t n, int64_t l,
                              const vkd_clip_opts *o, vkd_tensor *out, vkd_tensor *pooled)
{
    memset(out, 0, sizeof *out);
    if (pooled)
        memset(pooled, 0, sizeof *pooled);
    char p[200];
    const char *tm = "text_model.";
    bool pool = o->pool_n > 0;
    if (o->skip < 0 || o->skip >= cfg->layers || (pool && (!pooled || !cfg->proj_dim)))
        return g_fail(g, VKD_ERR_INVALID_ARG);
    vkd_tensor x = g_new3(g, n, l, cfg->width);                                        // [N, 77, C]
    g_plan_weight(g, "%s%sembeddings.token_embedding.weight", cfg->prefix, tm);
    g_plan_weight(g, "%s%sembeddings.position_embedding.weight", cfg->prefix, tm);
    if (g_recording(g)) { /* token + position embedding (a dry run only needs x's shape) */
        const vkd_tensor *tok =
            vkd_wstore_get(g->ws, VKD_W_RAW, "%s%sembeddings.token_embedding.weight", cfg->prefix, tm);
        const vkd_tensor *pos =
            vkd_wstore_get(g->ws, VKD_W_RAW, "%s%sembeddings.position_embedding.weight", cfg->prefix, tm);
        g_fail(g, tok && pos ? vkd_op_embedding(g->c, ids, 0, tok, pos, &x) : VKD_ERR_FORMAT);
    }
    /* the context is the output of layer (layers - skip); with pooling the rest run too */
    int ctx_at = cfg->layers - o->skip, run = pool ? cfg->layers : ctx_at;
    vkd_tensor ctx;
    bool have_ctx = false;
    for (int i = 0; i < run && g_ok(g); i++) {
        if (i == ctx_at)
            ctx = x, have_ctx = true;
        snprintf(p, sizeof p, "%s%sencoder.layers.%d.", cfg->prefix, tm, i);
        x = clip_layer(g, cfg, p, &x, have_ctx && i == ctx_at);
    }
    if (!have_ctx)
        ctx = x;
    if (pool) {
        /* FrozenOpenCLIPEmbedder2.pool: ln_final(last layer)[end-of-text] @ text_projection */
        vkd_tensor rows = g_gather_rows(g, &x, o->pool_rows, o->pool_n);               // [P, C]
        if (have_ctx)
            g_free(g, &x);
        vkd_tensor nr = g_layernorm(g, &rows, LN_EPS, "%s%sfinal_layer_norm", cfg->prefix, tm);
        g_free(g, &rows);
        *pooled = g_linear(g, &nr, NULL, "%stext_projection", cfg->prefix);             // [P, proj]
        g_free(g, &nr);
    }
    if (o->final_norm) {
        *out = g_layernorm(g, &ctx, LN_EPS, "%s%sfinal_layer_norm", cfg->prefix, tm);
        g_free(g, &ctx);
    } else {
        *out = ctx;
    }
    return g->err;
}

vkd_result vkd_clip_record(vkd_graph *g, const vkd_text_config *cfg, const vkd_buffer *ids, int64_t n, int64_t l,
                           int skip, vkd_tensor *out)
{
    vkd_clip_opts o = {.skip = skip, .final_norm = true};
    return vkd_clip_record_ex(g, cfg, ids, n, l, &o, out, NULL);
}
