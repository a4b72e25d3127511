/* TAESD decoder and encoder (madebyollin/taesd taesd.py; the same network as diffusers'
 * AutoencoderTiny, models/autoencoders/vae.py DecoderTiny/EncoderTiny). Channels-last
 * [N, H*W, C] throughout. Sequential indices (the internal key names):
 *
 *   Decoder  0 Clamp, 1 conv(L, C), 2 ReLU, 3-5 Block, 6 Upsample, 7 conv (no bias),
 *            8-10 Block, 11 Upsample, 12 conv, 13-15 Block, 16 Upsample, 17 conv,
 *            18 Block, 19 conv(C, 3)
 *   Encoder  0 conv(3, C), 1 Block, 2 conv stride 2 (no bias), 3-5 Block, 6 conv s2,
 *            7-9 Block, 10 conv s2, 11-13 Block, 14 conv(C, L)
 *
 * Every conv is 3x3 with padding 1; Block(C, C) = ReLU(conv.4(ReLU(conv.2(ReLU(conv.0(x)))))
 * + x) (its 1x1 skip exists only when n_in != n_out, never in TAESD). */
#include "models/taesd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "io/layout_taesd.h"
#include "models/check.h"
#include "ops/eltwise.h"

#define D VKD_TAESD_DEC
#define E VKD_TAESD_ENC

enum { CONV_BIAS = 1, CONV_NOBIAS = 2, BLOCK = 3 };
/* what each Sequential index holds; 0: a module without weights */
static const int dec_layers[20] = {0, CONV_BIAS, 0, BLOCK, BLOCK, BLOCK, 0, CONV_NOBIAS, BLOCK, BLOCK,
                                   BLOCK, 0, CONV_NOBIAS, BLOCK, BLOCK, BLOCK, 0, CONV_NOBIAS, BLOCK, CONV_BIAS};
static const int enc_layers[15] = {CONV_BIAS, BLOCK, CONV_NOBIAS, BLOCK, BLOCK, BLOCK, CONV_NOBIAS, BLOCK,
                                   BLOCK, BLOCK, CONV_NOBIAS, BLOCK, BLOCK, BLOCK, CONV_BIAS};

/* ---- the weight check ---------------------------------------------------------------- */

typedef struct checker {
    const vkd_weights *w;
    const char *what;
    size_t bad;
    unsigned char *seen; /* per tensor of w: expected */
} checker;

static void expect(checker *c, const char *name, int rank, int64_t a, int64_t b, int64_t k)
{
    int64_t want[4] = {a, b, k, k};
    const vkd_wtensor *t = vkd_weights_find(c->w, name);
    if (!t) {
        VKD_ERROR("%s: TAESD tensor '%s' is missing", c->what, name);
        c->bad++;
        return;
    }
    c->seen[t - vkd_weights_at(c->w, 0)] = 1;
    int same = t->rank == rank;
    for (int i = 0; same && i < rank; i++)
        same = t->shape[i] == want[i];
    if (!same) {
        char got[96], exp[96];
        vkd_shape_str(got, sizeof got, t->rank, t->shape);
        vkd_shape_str(exp, sizeof exp, rank, want);
        VKD_ERROR("%s: TAESD tensor '%s' (%s) is %s, expected %s", c->what, name, t->src->name, got, exp);
        c->bad++;
    } else if (!vkd_st_dtype_is_float(t->src->dtype)) {
        VKD_ERROR("%s: TAESD tensor '%s' (%s) is %s, expected a float type", c->what, name, t->src->name,
                  vkd_st_dtype_name(t->src->dtype));
        c->bad++;
    }
}

static void expect_conv(checker *c, const char *p, int idx, const char *sub, int bias, int64_t cout, int64_t cin)
{
    char n[128];
    snprintf(n, sizeof n, "%s%d.%sweight", p, idx, sub);
    expect(c, n, 4, cout, cin, 3);
    if (bias) {
        snprintf(n, sizeof n, "%s%d.%sbias", p, idx, sub);
        expect(c, n, 1, cout, 0, 0);
    }
}

/* layers[first] is the conv that reads the input (first_in channels), layers[n - 1]
 * the one that writes the output */
static void expect_net(checker *c, const char *p, const int *layers, int n, int first, int64_t width,
                       int64_t first_in, int64_t last_out)
{
    for (int i = 0; i < n; i++) {
        int64_t cin = i == first ? first_in : width;
        int64_t cout = i == n - 1 ? last_out : width;
        if (layers[i] == BLOCK)
            for (int k = 0; k <= 4; k += 2) {
                char sub[16];
                snprintf(sub, sizeof sub, "conv.%d.", k);
                expect_conv(c, p, i, sub, 1, width, width);
            }
        else if (layers[i])
            expect_conv(c, p, i, "", layers[i] == CONV_BIAS, cout, cin);
    }
}

/* the width from the first conv: [C, in, 3, 3] */
static int first_conv(const vkd_weights *w, const char *name, int64_t *width, int64_t *cin)
{
    int64_t s[VKD_ST_MAX_RANK];
    if (vkd_weights_shape(w, name, s) != 4 || s[0] < 1 || s[0] > 4096 || s[1] < 1 || s[1] > 4096)
        return 0;
    *width = s[0], *cin = s[1];
    return 1;
}

vkd_result vkd_taesd_detect(const vkd_weights *w, const char *what, vkd_taesd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    checker c = {w, what, 0, NULL};
    size_t n = vkd_weights_count(w);
    c.seen = calloc(n + 1, 1);
    if (!c.seen)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    int64_t dw = 0, dl = 0, ew = 0, e3 = 0, el = 0, s[VKD_ST_MAX_RANK];
    cfg->has_decoder = first_conv(w, D "1.weight", &dw, &dl);
    cfg->has_encoder = first_conv(w, E "0.weight", &ew, &e3);
    if (cfg->has_encoder && vkd_weights_shape(w, E "14.weight", s) == 4)
        el = s[0];
    if (!cfg->has_decoder && !cfg->has_encoder) {
        VKD_ERROR("%s: no TAESD decoder ('1.weight' / 'decoder.layers.0.weight') or encoder ('0.weight' / "
                  "'encoder.layers.0.weight') of a usable shape", what);
        c.bad++;
    }
    if (cfg->has_decoder)
        expect_net(&c, D, dec_layers, 20, 1, dw, dl, 3);
    if (cfg->has_encoder) {
        if (e3 != 3) {
            VKD_ERROR("%s: the TAESD encoder reads %lld channels, expected 3 (RGB)", what, (long long)e3);
            c.bad++;
        }
        expect_net(&c, E, enc_layers, 15, 0, ew, 3, el ? el : (dl ? dl : 4));
    }
    if (cfg->has_decoder && cfg->has_encoder && el && el != dl) {
        VKD_ERROR("%s: the TAESD encoder makes %lld latent channels, the decoder reads %lld", what, (long long)el,
                  (long long)dl);
        c.bad++;
    }
    for (size_t i = 0; i < n; i++) {
        const vkd_wtensor *t = vkd_weights_at(w, i);
        if (!c.seen[i]) {
            VKD_ERROR("%s: tensor '%s' (%s) is not part of TAESD's architecture", what, t->name, t->src->name);
            c.bad++;
        }
    }
    free(c.seen);
    cfg->latent_channels = (int)(dl ? dl : el);
    cfg->dec_width = (int)dw, cfg->enc_width = (int)ew;
    return c.bad ? VKD_ERR_FORMAT : VKD_OK;
}

/* ---- the networks ----------------------------------------------------------------- */

/* Block(C, C): ReLU(conv.4(ReLU(conv.2(ReLU(conv.0(x))))) + x) */
static vkd_tensor block(vkd_graph *g, const char *p, int idx, const vkd_tensor *x, int64_t h, int64_t w)
{
    vkd_tensor a = g_conv(g, x, h, w, 1, 1, NULL, "%s%d.conv.0", p, idx);             // [N, hw, C]
    g_act_inplace(g, &a, VKD_ACT_RELU);
    vkd_tensor b = g_conv(g, &a, h, w, 1, 1, NULL, "%s%d.conv.2", p, idx);            // [N, hw, C]
    g_free(g, &a);
    g_act_inplace(g, &b, VKD_ACT_RELU);
    vkd_tensor out = g_conv(g, &b, h, w, 1, 1, x, "%s%d.conv.4", p, idx);             // [N, hw, C] (+ x)
    g_free(g, &b);
    g_act_inplace(g, &out, VKD_ACT_RELU);                                              // fuse
    return out;
}

vkd_result vkd_taesd_decode_record(vkd_graph *g, const vkd_taesd_config *cfg, const vkd_tensor *z, int64_t h,
                                   int64_t w, vkd_tensor *out)
{
    memset(out, 0, sizeof *out);
    if (!cfg->has_decoder)
        return g_fail(g, VKD_ERR_INVALID_ARG);
    if (z->ndim != 3 || z->shape[1] != h * w || z->shape[2] != cfg->latent_channels)
        return vkd_op_shape_error("taesd decoder", "z must be [N, h*w, latent_channels]", z);
    vkd_tensor x = g_new(g, z->ndim, z->shape);                                          // [N, hw, L]
    if (g_recording(g))
        g_fail(g, vkd_op_tanh_clamp(g->c, z, 3.0f, &x));                                // 0: Clamp
    vkd_tensor cur = g_conv(g, &x, h, w, 1, 1, NULL, D "1");                           // [N, hw, C]
    g_free(g, &x);
    g_act_inplace(g, &cur, VKD_ACT_RELU);                                               // 2
    for (int i = 3; i < 19 && g_ok(g); i++) {
        vkd_tensor t;
        if (dec_layers[i] == BLOCK) {
            t = block(g, D, i, &cur, h, w);                                              // [N, hw, C]
        } else if (dec_layers[i] == CONV_NOBIAS) {
            /* the Upsample before it (nearest 2x) and the conv as one pass */
            t = g_conv_up2(g, &cur, h, w, D "%d", i);                                    // [N, 4hw, C]
            h *= 2, w *= 2;
        } else {
            continue;
        }
        g_free(g, &cur);
        cur = t;
    }
    *out = g_conv(g, &cur, h, w, 1, 1, NULL, D "19");                                  // [N, HW, 3]
    g_free(g, &cur);
    return g->err;
}

vkd_result vkd_taesd_encode_record(vkd_graph *g, const vkd_taesd_config *cfg, const vkd_tensor *img, int64_t h,
                                   int64_t w, vkd_tensor *out)
{
    memset(out, 0, sizeof *out);
    if (!cfg->has_encoder || h % 8 || w % 8)
        return g_fail(g, VKD_ERR_INVALID_ARG);
    if (img->ndim != 3 || img->shape[1] != h * w || img->shape[2] != 3)
        return vkd_op_shape_error("taesd encoder", "the image must be [N, H*W, 3]", img);
    vkd_tensor cur = g_conv(g, img, h, w, 1, 1, NULL, E "0");                          // [N, HW, C]
    for (int i = 1; i < 14 && g_ok(g); i++) {
        vkd_tensor t;
        if (enc_layers[i] == BLOCK) {
            t = block(g, E, i, &cur, h, w);                                              // [N, hw, C]
        } else {
            t = g_conv(g, &cur, h, w, 2, 1, NULL, E "%d", i);                            // [N, hw/4, C]
            h /= 2, w /= 2;
        }
        g_free(g, &cur);
        cur = t;
    }
    *out = g_conv(g, &cur, h, w, 1, 1, NULL, E "14");                                  // [N, hw, L]
    g_free(g, &cur);
    return g->err;
}
