/* SD UNet. Architecture: CompVis ldm/modules/diffusionmodules/openaimodel.py
 * (UNetModel, ResBlock, Downsample, Upsample) and ldm/modules/attention.py
 * (SpatialTransformer, BasicTransformerBlock, CrossAttention, FeedForward/GEGLU).
 * Activations are channels-last [N, H*W, C] throughout. */
#include "models/unet.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "ops/timestep_embedding.h"

#define P "model.diffusion_model."
#define GN_EPS_RES 1e-5f  /* ResBlock / out norm: GroupNorm32 default eps (util.py normalization) */
#define GN_EPS_XF 1e-6f   /* SpatialTransformer norm: Normalize() in attention.py */
#define LN_EPS 1e-5f      /* nn.LayerNorm default in BasicTransformerBlock */

/* ResBlock: in_layers = [GN, SiLU, conv3x3], emb_layers = [SiLU, linear],
 * out_layers = [GN, SiLU, dropout, conv3x3], skip_connection = identity or 1x1 conv.
 * emb: every ResBlock's emb_layers(SiLU(time embedding)) side by side [N, sum Cout]
 * (emb_layers_all); this block's columns start at *emb_col, which it advances.
 * x2: NULL, or the skip connection of an output block: the input is then
 * torch.cat([x, x2], 1), which its two readers (in_layers.0 and skip_connection) take
 * from x and x2 in place: the concatenation is never written. */
static vkd_tensor resblock(vkd_graph *g, const char *p, const vkd_tensor *x, const vkd_tensor *x2, int64_t h, int64_t w,
                           const vkd_tensor *emb, int64_t *emb_col)
{
    vkd_tensor a = x2 ? g_groupnorm_cat(g, x, x2, 32, GN_EPS_RES, true, "%sin_layers.0", p)
                      : g_groupnorm(g, x, 32, GN_EPS_RES, true, "%sin_layers.0", p);  // [N, HW, Cin]
    vkd_tensor b = g_conv(g, &a, h, w, 1, 1, NULL, "%sin_layers.2", p);              // [N, HW, Cout]
    g_free(g, &a);
    /* h = b + e[n] feeds only out_layers.0: the norm adds e as it reads b */
    vkd_tensor c = g_groupnorm_add(g, &b, emb, *emb_col, 32, GN_EPS_RES, true, "%sout_layers.0", p);
    *emb_col += b.shape[2];
    g_free(g, &b);
    vkd_tensor skip = *x;
    bool own_skip = false;
    if (g_ok(g) && vkd_wstore_has(g->ws, "%sskip_connection.weight", p)) {
        skip = x2 ? g_linear_pair(g, x, x2, NULL, "%sskip_connection", p)           // 1x1 conv on the pair
                  : g_conv(g, x, h, w, 1, 0, NULL, "%sskip_connection", p);         // [N, HW, Cout]
        own_skip = true;
    } else if (x2) { /* an identity skip needs the concatenation itself */
        g_fail(g, VKD_ERR_UNSUPPORTED);
    }
    /* out_layers.3 with the skip added in the conv epilogue */
    vkd_tensor out = g_conv(g, &c, h, w, 1, 1, &skip, "%sout_layers.3", p);
    g_free(g, &c);
    if (own_skip)
        g_free(g, &skip);
    return out;
}

/* x + CrossAttention(LayerNorm(x), ctx): to_q/to_k/to_v without bias, to_out.0 with
 * bias and the residual x fused. The norm before the attention ("<ln>") is folded into
 * the projections of x (g_linear_ln), and the projections that read the same input run
 * as one GEMM on stacked weights (q, k and v for self-attention, ctx NULL; k and v of
 * cross-attention); the attention reads its heads from the packed result. */
static vkd_tensor attention(vkd_graph *g, const char *p, const vkd_tensor *x, const char *ln, const vkd_tensor *ctx,
                            int heads)
{
    char nq[400], nk[400], nv[400];
    snprintf(nq, sizeof nq, "%sto_q", p);
    snprintf(nk, sizeof nk, "%sto_k", p);
    snprintf(nv, sizeof nv, "%sto_v", p);
    vkd_tensor a;
    if (!ctx) {
        const char *names[3] = {nq, nk, nv};
        vkd_tensor qkv = g_linear_ln(g, x, ln, LN_EPS, NULL, 3, names);     // [N, HW, 3C]
        int64_t c = qkv.shape[qkv.ndim - 1] / 3;                            // inner width, heads * dim_head
        a = g_attention_cols(g, &qkv, &qkv, &qkv, heads, c, 0, c, 2 * c);   // [N, HW, C]
        g_free(g, &qkv);
    } else {
        const char *names[2] = {nk, nv}, *qn[1] = {nq};
        vkd_tensor q = g_linear_ln(g, x, ln, LN_EPS, NULL, 1, qn);           // [N, HW, C]
        vkd_tensor kv = g_linear_cat(g, ctx, 2, names);                      // [N, L, 2C]
        int64_t c = kv.shape[kv.ndim - 1] / 2;
        a = g_attention_cols(g, &q, &kv, &kv, heads, c, 0, 0, c);           // [N, HW, C]
        g_free(g, &q);
        g_free(g, &kv);
    }
    vkd_tensor out = g_linear(g, &a, x, "%sto_out.0", p);
    g_free(g, &a);
    return out;
}

/* SpatialTransformer: GN -> proj_in -> depth x BasicTransformerBlock -> proj_out, + x.
 * proj_in/out are 1x1 convs (SD1) or linears (SD2); on channels-last data both are a
 * linear layer (the store turns a [C, C, 1, 1] kernel into [C, C]). Each block is
 * h += attn1(norm1(h)); h += attn2(norm2(h), ctx); h += ff(norm3(h)), every norm
 * folded into the GEMM that reads it: no layer-norm dispatch. */
static vkd_tensor transformer(vkd_graph *g, const vkd_unet_config *cfg, const char *p, const vkd_tensor *x,
                              int depth, const vkd_tensor *ctx)
{
    int64_t ch = x->shape[2];
    int heads = cfg->head_dim ? (int)(ch / cfg->head_dim) : cfg->num_heads;
    vkd_tensor n = g_groupnorm(g, x, 32, GN_EPS_XF, false, "%snorm", p);
    vkd_tensor h = g_linear(g, &n, NULL, "%sproj_in", p);                             // [N, HW, C]
    g_free(g, &n);
    char b[300];
    for (int d = 0; d < depth && g_ok(g); d++) {
        snprintf(b, sizeof b, "%stransformer_blocks.%d.", p, d);
        char sub[340], ln[340], ff[340];
        snprintf(sub, sizeof sub, "%sattn1.", b);
        snprintf(ln, sizeof ln, "%snorm1", b);
        vkd_tensor h1 = attention(g, sub, &h, ln, NULL, heads);                     // self
        g_free(g, &h);
        snprintf(sub, sizeof sub, "%sattn2.", b);
        snprintf(ln, sizeof ln, "%snorm2", b);
        vkd_tensor h2 = attention(g, sub, &h1, ln, ctx, heads);                     // cross
        g_free(g, &h1);
        snprintf(ln, sizeof ln, "%snorm3", b);
        snprintf(ff, sizeof ff, "%sff.net.0.proj", b);
        const char *ffn[1] = {ff};
        vkd_tensor pr = g_linear_ln(g, &h2, ln, LN_EPS, NULL, 1, ffn);               // [N, HW, 8C]
        vkd_tensor gg = g_geglu(g, &pr);                                              // [N, HW, 4C]
        g_free(g, &pr);
        h = g_linear(g, &gg, &h2, "%sff.net.2", b);                                   // [N, HW, C]
        g_free(g, &gg);
        g_free(g, &h2);
    }
    vkd_tensor out = g_linear(g, &h, x, "%sproj_out", p);
    g_free(g, &h);
    return out;
}

/* The ResBlocks' prefixes in the order vkd_unet_record visits them; their count. */
static int resblock_prefixes(const vkd_unet_config *cfg, char (*pre)[80], int cap)
{
    int n = 0, blk = 1;
    for (int l = 0; l < cfg->num_levels; l++) {
        for (int r = 0; r < cfg->num_res_blocks; r++, blk++)
            if (n < cap)
                snprintf(pre[n++], sizeof pre[0], P "input_blocks.%d.0.", blk);
        blk += l != cfg->num_levels - 1; /* the downsample */
    }
    for (int i = 0; i < 2; i++)
        if (n < cap)
            snprintf(pre[n++], sizeof pre[0], P "middle_block.%d.", 2 * i);
    blk = 0;
    for (int l = cfg->num_levels - 1; l >= 0; l--)
        for (int r = 0; r <= cfg->num_res_blocks; r++, blk++)
            if (n < cap)
                snprintf(pre[n++], sizeof pre[0], P "output_blocks.%d.0.", blk);
    return n;
}

/* Every ResBlock's emb_layers.1 applied to SiLU(emb) [N, temb] as one GEMM on the
 * stacked weights (they all read the same input): [N, sum Cout], one dispatch where
 * there were one per ResBlock (22 in SD1). */
static vkd_tensor emb_layers_all(vkd_graph *g, const vkd_unet_config *cfg, const vkd_tensor *emb_silu)
{
    char pre[VKD_LINEAR_CAT_MAX][80], names[VKD_LINEAR_CAT_MAX][100];
    const char *np[VKD_LINEAR_CAT_MAX];
    int n = resblock_prefixes(cfg, pre, VKD_LINEAR_CAT_MAX);
    if (n > VKD_LINEAR_CAT_MAX) {
        g_fail(g, VKD_ERR_UNSUPPORTED);
        vkd_tensor none = {0};
        return none;
    }
    for (int i = 0; i < n; i++)
        snprintf(names[i], sizeof names[i], "%.80semb_layers.1", pre[i]), np[i] = names[i];
    return g_linear_cat(g, emb_silu, n, np);
}

vkd_result vkd_unet_record(vkd_graph *g, const vkd_unet_config *cfg, const vkd_tensor *x, int64_t h, int64_t w,
                           const vkd_tensor *t, const vkd_tensor *context, const vkd_tensor *yvec, vkd_tensor *out)
{
    memset(out, 0, sizeof *out);
    int64_t n = x->shape[0];
    /* any size: a level whose input is odd downsamples to ceil(h / 2), and its upsampling
     * returns to the skip connection's size (diffusers' UNet2DConditionModel,
     * forward_upsample_size) */
    if (x->ndim != 3 || x->shape[1] != h * w || x->shape[2] != cfg->in_channels)
        return vkd_op_shape_error("unet", "x must be [N, H*W, in_channels]", x);
    if (cfg->adm_in_channels &&
        (!yvec || yvec->ndim != 2 || yvec->shape[0] != n || yvec->shape[1] != cfg->adm_in_channels))
        return yvec ? vkd_op_shape_error("unet", "y must be [N, adm_in_channels]", yvec) : g_fail(g, VKD_ERR_INVALID_ARG);

    /* time embedding: sinusoidal(t, model_channels) -> linear -> SiLU -> linear; the
     * ResBlocks all take SiLU(emb), so it is applied once here. */
    int64_t ts[2] = {n, cfg->model_channels};
    vkd_tensor temb = g_new(g, 2, ts);
    if (g_recording(g))
        g_fail(g, vkd_op_timestep_embedding(g->c, t, (uint32_t)cfg->model_channels, 10000.0, &temb));
    vkd_tensor e1 = g_linear(g, &temb, NULL, P "time_embed.0");
    g_free(g, &temb);
    g_act_inplace(g, &e1, 0);
    vkd_tensor emb = g_linear(g, &e1, NULL, P "time_embed.2");                    // [N, 1280]
    g_free(g, &e1);
    if (cfg->adm_in_channels) {
        /* SDXL: emb += label_emb(y), label_emb = Linear, SiLU, Linear (sgm openaimodel.py
         * UNetModel.forward: emb = emb + self.label_emb(y)); the sum in the GEMM's epilogue */
        vkd_tensor l1 = g_linear(g, yvec, NULL, P "label_emb.0.0");                  // [N, 1280]
        g_act_inplace(g, &l1, 0);
        vkd_tensor sum = g_linear(g, &l1, &emb, P "label_emb.0.2");
        g_free(g, &l1);
        g_free(g, &emb);
        emb = sum;
    }
    g_act_inplace(g, &emb, 0);
    vkd_tensor emb_all = emb_layers_all(g, cfg, &emb);                            // [N, sum Cout]
    g_free(g, &emb);
    int64_t emb_col = 0;

    /* input blocks; every block's output is kept for the skip connections */
    vkd_tensor skips[64];
    int64_t skip_h[64], skip_w[64];
    int ns = 0, blk = 0;
    vkd_tensor cur = g_conv(g, x, h, w, 1, 1, NULL, P "input_blocks.0.0");        // [N, HW, mc]
    skips[ns] = cur, skip_h[ns] = h, skip_w[ns++] = w;
    blk = 1;
    char p[200];
    for (int l = 0; l < cfg->num_levels && g_ok(g); l++) {
        for (int r = 0; r < cfg->num_res_blocks && g_ok(g); r++, blk++) {
            snprintf(p, sizeof p, P "input_blocks.%d.0.", blk);
            vkd_tensor y = resblock(g, p, &cur, NULL, h, w, &emb_all, &emb_col);
            if (cfg->transformer_depth[l]) {
                snprintf(p, sizeof p, P "input_blocks.%d.1.", blk);
                vkd_tensor z = transformer(g, cfg, p, &y, cfg->transformer_depth[l], context);
                g_free(g, &y);
                y = z;
            }
            cur = y;
            skips[ns] = cur, skip_h[ns] = h, skip_w[ns++] = w;
        }
        if (l != cfg->num_levels - 1) {
            /* Downsample: 3x3 stride 2, padding 1 */
            cur = g_conv(g, &cur, h, w, 2, 1, NULL, P "input_blocks.%d.0.op", blk);
            h = (h + 1) / 2, w = (w + 1) / 2;
            skips[ns] = cur, skip_h[ns] = h, skip_w[ns++] = w;
            blk++;
        }
    }

    /* middle block: ResBlock, SpatialTransformer, ResBlock */
    vkd_tensor m0 = resblock(g, P "middle_block.0.", &cur, NULL, h, w, &emb_all, &emb_col);
    vkd_tensor m1 = transformer(g, cfg, P "middle_block.1.", &m0, cfg->mid_depth ? cfg->mid_depth : 1, context);
    g_free(g, &m0);
    cur = resblock(g, P "middle_block.2.", &m1, NULL, h, w, &emb_all, &emb_col);
    g_free(g, &m1);

    /* output blocks: concat the matching skip, ResBlock, [transformer], [Upsample] */
    blk = 0;
    for (int l = cfg->num_levels - 1; l >= 0 && g_ok(g); l--) {
        for (int r = 0; r <= cfg->num_res_blocks && g_ok(g); r++, blk++) {
            vkd_tensor *s = &skips[--ns];
            if (skip_h[ns] != h || skip_w[ns] != w) {
                VKD_ERROR("unet: skip %d is %lldx%lld, expected %lldx%lld", ns, (long long)skip_h[ns],
                          (long long)skip_w[ns], (long long)h, (long long)w);
                g_fail(g, VKD_ERR_INTERNAL);
                break;
            }
            /* torch.cat([cur, skip], 1): read in place by the ResBlock when cur's
             * channels suit the GEMM's two-part loads (multiples of 16), else written */
            snprintf(p, sizeof p, P "output_blocks.%d.0.", blk);
            if (cur.shape[2] % 16 == 0) {
                vkd_tensor y = resblock(g, p, &cur, s, h, w, &emb_all, &emb_col);
                g_free(g, &cur);
                g_free(g, s);
                cur = y;
            } else {
                vkd_tensor cat = g_concat(g, &cur, s);                                  // [N, HW, C + Cskip]
                g_free(g, &cur);
                g_free(g, s);
                cur = resblock(g, p, &cat, NULL, h, w, &emb_all, &emb_col);
                g_free(g, &cat);
            }
            int sub = 1;
            if (cfg->transformer_depth[l]) {
                snprintf(p, sizeof p, P "output_blocks.%d.1.", blk);
                vkd_tensor z = transformer(g, cfg, p, &cur, cfg->transformer_depth[l], context);
                g_free(g, &cur);
                cur = z;
                sub = 2;
            }
            if (l > 0 && r == cfg->num_res_blocks) {
                /* Upsample: nearest to the next skip's size (2x unless that is odd),
                 * then 3x3 conv (one pass: the conv reads the upsampling through its
                 * indexing) */
                int64_t uh = ns > 0 ? skip_h[ns - 1] : 2 * h, uw = ns > 0 ? skip_w[ns - 1] : 2 * w;
                vkd_tensor up = g_conv_up_to(g, &cur, h, w, uh, uw, P "output_blocks.%d.%d.conv", blk, sub);
                g_free(g, &cur);
                h = uh, w = uw;
                cur = up;
            }
        }
    }
    g_free(g, &emb_all);
    /* out: GN + SiLU, conv3x3 to out_channels */
    vkd_tensor o = g_groupnorm(g, &cur, 32, GN_EPS_RES, true, P "out.0");
    g_free(g, &cur);
    *out = g_conv(g, &o, h, w, 1, 1, NULL, P "out.2");
    g_free(g, &o);
    while (ns > 0)
        g_free(g, &skips[--ns]);
    return g->err;
}
