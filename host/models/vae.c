/* KL-f8 VAE decoder and encoder. Architecture: CompVis ldm/modules/diffusionmodules/model.py
 * (Decoder, ResnetBlock, AttnBlock, Upsample); every GroupNorm there is
 * Normalize(): 32 groups, eps 1e-6. Channels-last [N, H*W, C] throughout. */
#include "models/vae.h"

#include <stdio.h>
#include <string.h>

#define P "first_stage_model."
#define GN_EPS 1e-6f

/* ResnetBlock without time embedding: norm1, SiLU, conv1, norm2, SiLU, conv2, + shortcut.
 * In two halves, each starting at a group norm (the tiled decode syncs the statistics
 * of the whole image there): conv1(SiLU(norm1(x))) -> b, then conv2(SiLU(norm2(b))) +
 * shortcut(x), which frees b once read. */
static vkd_tensor resnet_a(vkd_graph *g, const char *p, const vkd_tensor *x, int64_t h, int64_t w)
{
    vkd_tensor a = g_groupnorm(g, x, 32, GN_EPS, true, "%snorm1", p);
    vkd_tensor b = g_conv(g, &a, h, w, 1, 1, NULL, "%sconv1", p);
    g_free(g, &a);
    return b;
}

static vkd_tensor resnet_b(vkd_graph *g, const char *p, const vkd_tensor *x, vkd_tensor *b, int64_t h, int64_t w)
{
    vkd_tensor c = g_groupnorm(g, b, 32, GN_EPS, true, "%snorm2", p);
    g_free(g, b);
    vkd_tensor skip = *x;
    bool own = false;
    if (g_ok(g) && vkd_wstore_has(g->ws, "%snin_shortcut.weight", p)) {
        skip = g_conv(g, x, h, w, 1, 0, NULL, "%snin_shortcut", p);
        own = true;
    }
    vkd_tensor out = g_conv(g, &c, h, w, 1, 1, &skip, "%sconv2", p);
    g_free(g, &c);
    if (own)
        g_free(g, &skip);
    return out;
}

static vkd_tensor resnet(vkd_graph *g, const char *p, const vkd_tensor *x, int64_t h, int64_t w)
{
    vkd_tensor b = resnet_a(g, p, x, h, w);
    return resnet_b(g, p, x, &b, h, w);
}

/* AttnBlock: single-head self-attention over the H*W pixels, head width C, scale
 * C^-1/2; q/k/v/proj_out are 1x1 convs (linear on channels-last data). */
static vkd_tensor attn(vkd_graph *g, const char *p, const vkd_tensor *x)
{
    vkd_tensor n = g_groupnorm(g, x, 32, GN_EPS, false, "%snorm", p);
    vkd_tensor q = g_linear(g, &n, NULL, "%sq", p);
    vkd_tensor k = g_linear(g, &n, NULL, "%sk", p);
    vkd_tensor v = g_linear(g, &n, NULL, "%sv", p);
    g_free(g, &n);
    vkd_tensor a = g_attention(g, &q, &k, &v, 1, false);
    g_free(g, &q);
    g_free(g, &k);
    g_free(g, &v);
    vkd_tensor out = g_linear(g, &a, x, "%sproj_out", p);
    g_free(g, &a);
    return out;
}

vkd_result vkd_vae_decode_mid_record(vkd_graph *g, const vkd_vae_config *cfg, const vkd_tensor *z, int64_t h,
                                     int64_t w, vkd_tensor *out)
{
    memset(out, 0, sizeof *out);
    if (z->ndim != 3 || z->shape[1] != h * w || z->shape[2] != cfg->z_channels)
        return vkd_op_shape_error("vae", "z must be [N, h*w, z_channels]", z);
    vkd_tensor pq = g_linear(g, z, NULL, P "post_quant_conv");                        // [N, hw, 4]
    vkd_tensor cur = g_conv(g, &pq, h, w, 1, 1, NULL, P "decoder.conv_in");          // [N, hw, 512]
    g_free(g, &pq);
    vkd_tensor t = resnet(g, P "decoder.mid.block_1.", &cur, h, w);
    g_free(g, &cur);
    cur = attn(g, P "decoder.mid.attn_1.", &t);
    g_free(g, &t);
    *out = resnet(g, P "decoder.mid.block_2.", &cur, h, w);                          // [N, hw, 512]
    g_free(g, &cur);
    return g->err;
}

vkd_result vkd_vae_decode_up_record(vkd_graph *g, const vkd_vae_config *cfg, vkd_tensor *mid, bool free_mid,
                                    int64_t h, int64_t w, vkd_tensor *out)
{
    memset(out, 0, sizeof *out);
    vkd_tensor cur = *mid, t;
    bool own = free_mid; /* free mid as soon as it is read */
    char p[160];
    /* up blocks run from the deepest level (up.3 in SD) to up.0 */
    for (int l = cfg->num_levels - 1; l >= 0 && g_ok(g); l--) {
        for (int b = 0; b <= cfg->num_res_blocks && g_ok(g); b++) {
            snprintf(p, sizeof p, P "decoder.up.%d.block.%d.", l, b);
            t = resnet(g, p, &cur, h, w);
            if (own)
                g_free(g, &cur);
            cur = t, own = true;
        }
        if (l != 0) {
            /* nearest 2x, then 3x3 conv, as one pass */
            vkd_tensor up = g_conv_up2(g, &cur, h, w, P "decoder.up.%d.upsample.conv", l);
            if (own)
                g_free(g, &cur);
            h *= 2, w *= 2;
            cur = up;
            own = true;
        }
    }
    t = g_groupnorm(g, &cur, 32, GN_EPS, true, P "decoder.norm_out");
    if (own)
        g_free(g, &cur);
    *out = g_conv(g, &t, h, w, 1, 1, NULL, P "decoder.conv_out");                     // [N, HW, 3]
    g_free(g, &t);
    return g->err;
}

int vkd_vae_up_segments(const vkd_vae_config *cfg, vkd_vae_seg *segs, int cap)
{
    int n = 0;
    for (int l = cfg->num_levels - 1; l >= 0; l--)
        for (int b = 0; b <= cfg->num_res_blocks; b++)
            for (int half = 0; half < 2; half++) {
                if (n < cap)
                    segs[n] = (vkd_vae_seg){half ? VKD_VAE_SEG_RESNET_B : VKD_VAE_SEG_RESNET_A, l, b,
                                            half && b == cfg->num_res_blocks && l != 0, false};
                n++;
            }
    if (n < cap)
        segs[n] = (vkd_vae_seg){VKD_VAE_SEG_OUT, 0, 0, false, false};
    return n + 1;
}

vkd_result vkd_vae_up_segment_record(vkd_graph *g, const vkd_vae_config *cfg, const vkd_vae_seg *s, vkd_tensor *x,
                                     vkd_tensor *b, int64_t h, int64_t w, vkd_tensor *out)
{
    memset(out, 0, sizeof *out);
    char p[160];
    snprintf(p, sizeof p, P "decoder.up.%d.block.%d.", s->level, s->block);
    if (s->kind == VKD_VAE_SEG_RESNET_A) {
        *out = resnet_a(g, p, x, h, w);                                              // [1, hw, Cout]
    } else if (s->kind == VKD_VAE_SEG_RESNET_B) {
        vkd_tensor bb = *b; /* freed once read, through a copy: *b stays the caller's handle */
        vkd_tensor y = resnet_b(g, p, x, &bb, h, w);                                 // [1, hw, Cout]
        if (s->upsample) {
            *out = g_conv_up2(g, &y, h, w, P "decoder.up.%d.upsample.conv", s->level); // [1, 4hw, Cout]
            g_free(g, &y);
        } else {
            *out = y;
        }
    } else {
        vkd_tensor t = g_groupnorm(g, x, 32, GN_EPS, true, P "decoder.norm_out");
        *out = g_conv(g, &t, h, w, 1, 1, NULL, P "decoder.conv_out");                // [1, hw, 3]
        g_free(g, &t);
    }
    (void)cfg;
    return g->err;
}

vkd_result vkd_vae_decode_record(vkd_graph *g, const vkd_vae_config *cfg, const vkd_tensor *z, int64_t h, int64_t w,
                                 vkd_tensor *out)
{
    vkd_tensor mid;
    memset(out, 0, sizeof *out);
    vkd_result r = vkd_vae_decode_mid_record(g, cfg, z, h, w, &mid);
    if (r)
        return r;
    return vkd_vae_decode_up_record(g, cfg, &mid, true, h, w, out);
}

/* Encoder (CompVis model.py Encoder, double_z): conv_in, per level num_res_blocks
 * ResnetBlocks and (but the last) a Downsample = F.pad(x, (0, 1, 0, 1)) then a 3x3
 * stride-2 conv, the middle (block_1, attn_1, block_2), norm_out + SiLU, conv_out to
 * 2 z_channels; then quant_conv (autoencoder.py AutoencoderKL.encode). */
vkd_result vkd_vae_encode_record(vkd_graph *g, const vkd_vae_config *cfg, const vkd_tensor *img, int64_t h, int64_t w,
                                 vkd_tensor *out)
{
    memset(out, 0, sizeof *out);
    if (img->ndim != 3 || img->shape[1] != h * w || img->shape[2] != 3)
        return vkd_op_shape_error("vae encoder", "the image must be [N, H*W, 3]", img);
    int64_t down = (int64_t)1 << (cfg->num_levels - 1);
    if (!cfg->has_encoder || h % down || w % down)
        return g_fail(g, VKD_ERR_INVALID_ARG);
    char p[160];
    vkd_tensor cur = g_conv(g, img, h, w, 1, 1, NULL, P "encoder.conv_in");            // [N, HW, ch]
    for (int l = 0; l < cfg->num_levels - 1 && g_ok(g); l++) {
        for (int b = 0; b < cfg->num_res_blocks && g_ok(g); b++) {
            snprintf(p, sizeof p, P "encoder.down.%d.block.%d.", l, b);
            vkd_tensor t = resnet(g, p, &cur, h, w);
            g_free(g, &cur);
            cur = t;
        }
        /* pad right and bottom by one, then stride 2 */
        vkd_tensor t = g_conv_pad(g, &cur, h, w, 2, 0, 1, 0, 1, P "encoder.down.%d.downsample.conv", l);
        g_free(g, &cur);
        cur = t;
        h /= 2, w /= 2;
    }
    if (!g_ok(g))
        return g->err;
    return vkd_vae_encode_low_record(g, cfg, &cur, h, w, out);
}

vkd_result vkd_vae_encode_low_record(vkd_graph *g, const vkd_vae_config *cfg, vkd_tensor *x, int64_t h, int64_t w,
                                     vkd_tensor *out)
{
    memset(out, 0, sizeof *out);
    char p[160];
    vkd_tensor cur = *x;
    for (int b = 0; b < cfg->num_res_blocks && g_ok(g); b++) { /* the last level: no Downsample */
        snprintf(p, sizeof p, P "encoder.down.%d.block.%d.", cfg->num_levels - 1, b);
        vkd_tensor t = resnet(g, p, &cur, h, w);
        g_free(g, &cur);
        cur = t;
    }
    vkd_tensor t = resnet(g, P "encoder.mid.block_1.", &cur, h, w);
    g_free(g, &cur);
    cur = attn(g, P "encoder.mid.attn_1.", &t);
    g_free(g, &t);
    t = resnet(g, P "encoder.mid.block_2.", &cur, h, w);
    g_free(g, &cur);
    cur = g_groupnorm(g, &t, 32, GN_EPS, true, P "encoder.norm_out");
    g_free(g, &t);
    t = g_conv(g, &cur, h, w, 1, 1, NULL, P "encoder.conv_out");                        // [N, hw, 2z]
    g_free(g, &cur);
    *out = g_linear(g, &t, NULL, P "quant_conv");                                       // [N, hw, 2z]
    g_free(g, &t);
    return g->err;
}

int vkd_vae_down_segments(const vkd_vae_config *cfg, vkd_vae_seg *segs, int cap)
{
    int n = 0;
    if (n < cap)
        segs[n] = (vkd_vae_seg){VKD_VAE_SEG_IN, 0, 0, false, false};
    n++;
    for (int l = 0; l < cfg->num_levels - 1; l++)
        for (int b = 0; b < cfg->num_res_blocks; b++)
            for (int half = 0; half < 2; half++) {
                if (n < cap)
                    segs[n] = (vkd_vae_seg){half ? VKD_VAE_SEG_RESNET_B : VKD_VAE_SEG_RESNET_A, l, b, false,
                                            half && b == cfg->num_res_blocks - 1};
                n++;
            }
    return n;
}

vkd_result vkd_vae_down_segment_record(vkd_graph *g, const vkd_vae_config *cfg, const vkd_vae_seg *s, vkd_tensor *x,
                                       vkd_tensor *b, int64_t h, int64_t w, vkd_tensor *out)
{
    memset(out, 0, sizeof *out);
    char p[160];
    snprintf(p, sizeof p, P "encoder.down.%d.block.%d.", s->level, s->block);
    if (s->kind == VKD_VAE_SEG_IN) {
        *out = g_conv(g, x, h, w, 1, 1, NULL, P "encoder.conv_in");                    // [1, hw, ch]
    } else if (s->kind == VKD_VAE_SEG_RESNET_A) {
        *out = resnet_a(g, p, x, h, w);                                              // [1, hw, Cout]
    } else if (s->kind == VKD_VAE_SEG_RESNET_B) {
        vkd_tensor bb = *b; /* freed once read, through a copy: *b stays the caller's handle */
        vkd_tensor y = resnet_b(g, p, x, &bb, h, w);                                 // [1, hw, Cout]
        if (s->downsample) { /* as the whole encode: right/bottom padding (right only at the image's border) */
            *out = g_conv_pad(g, &y, h, w, 2, 0, 1, 0, 1, P "encoder.down.%d.downsample.conv", s->level);
            g_free(g, &y);                                                           // [1, hw/4, Cout]
        } else {
            *out = y;
        }
    } else {
        return g_fail(g, VKD_ERR_INVALID_ARG);
    }
    (void)cfg;
    return g->err;
}
