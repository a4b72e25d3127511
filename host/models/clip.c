/* CLIP text transformer: token + position embedding, pre-LN blocks with causal
 * self-attention and an MLP (quick-GELU for OpenAI CLIP, GELU for OpenCLIP), then
 * the final LayerNorm. Sources: openai/CLIP model.py, HF modeling_clip.py
 * (CLIPTextTransformer), open_clip transformer.py; SD2 takes the penultimate
 * layer (Stability-AI ldm/modules/encoders/modules.py FrozenOpenCLIPEmbedder,
 * layer="penultimate"), A1111's clip skip does the same for SD1. */
#include "models/clip.h"

#include <stdio.h>
#include <string.h>

#include "ops/embedding.h"

#define LN_EPS 1e-5f /* HF CLIPTextConfig.layer_norm_eps and nn.LayerNorm default */

vkd_result vkd_clip_record(vkd_graph *g, const vkd_text_config *cfg, const vkd_buffer *ids, int64_t n, int64_t l,
                           int skip, vkd_tensor *out)
{
    memset(out, 0, sizeof *out);
    char p[200];
    const char *tm = "text_model.";
    if (skip < 0 || skip >= cfg->layers)
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
    int heads = cfg->heads;
    for (int i = 0; i < cfg->layers - skip && g_ok(g); i++) {
        snprintf(p, sizeof p, "%s%sencoder.layers.%d.", cfg->prefix, tm, i);
        vkd_tensor h = g_layernorm(g, &x, LN_EPS, "%slayer_norm1", p);
        vkd_tensor q = g_linear(g, &h, NULL, "%sself_attn.q_proj", p);
        vkd_tensor k = g_linear(g, &h, NULL, "%sself_attn.k_proj", p);
        vkd_tensor v = g_linear(g, &h, NULL, "%sself_attn.v_proj", p);
        g_free(g, &h);
        vkd_tensor a = g_attention(g, &q, &k, &v, heads, true);
        g_free(g, &q);
        g_free(g, &k);
        g_free(g, &v);
        vkd_tensor x1 = g_linear(g, &a, &x, "%sself_attn.out_proj", p);
        g_free(g, &a);
        g_free(g, &x);
        h = g_layernorm(g, &x1, LN_EPS, "%slayer_norm2", p);
        vkd_tensor f = g_linear(g, &h, NULL, "%smlp.fc1", p);                          // [N, 77, 4C]
        g_free(g, &h);
        g_act_inplace(g, &f, cfg->quick_gelu ? 2 : 1);
        x = g_linear(g, &f, &x1, "%smlp.fc2", p);
        g_free(g, &f);
        g_free(g, &x1);
    }
    *out = g_layernorm(g, &x, LN_EPS, "%s%sfinal_layer_norm", cfg->prefix, tm);
    g_free(g, &x);
    return g->err;
}
