/* Family and config detection from tensor shapes; see detect.h. Block structure follows
 * CompVis ldm/modules/diffusionmodules/openaimodel.py (UNetModel) and model.py
 * (Encoder/Decoder), transformers CLIPTextModel. */
#include "models/detect.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "common/log.h"

#define UNET "model.diffusion_model."
#define VAE "first_stage_model."

const char *vkd_family_name(vkd_family f)
{
    switch (f) {
    case VKD_FAMILY_SD1: return "SD1.x";
    case VKD_FAMILY_SD2: return "SD2.x";
    case VKD_FAMILY_SDXL: return "SDXL";
    default: return "unknown";
    }
}

/* rank of the tensor named by the format, its shape in s; -1 if absent */
static int shp(const vkd_weights *w, int64_t s[VKD_ST_MAX_RANK], const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    memset(s, 0, sizeof(int64_t) * VKD_ST_MAX_RANK);
    return vkd_weights_shape(w, name, s);
}

static void say(char *why, size_t len, const char *fmt, ...)
{
    if (!why || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* a dimension as an int, 0 when absurd: no real one comes near 2^24 (vocab 49408, widths <= 2560), so
 * products such as 8 * ch in vkd_model_expected stay far inside int */
static int dim(int64_t v) { return v > 0 && v < (1 << 24) ? (int)v : 0; }

static int count_blocks(const vkd_weights *w, const char *fmt_with_d, const char *base)
{
    int64_t s[VKD_ST_MAX_RANK];
    int d = 0;
    while (d < 1000 && shp(w, s, fmt_with_d, base, d) >= 0)
        d++;
    return d;
}

static vkd_result detect_unet(const vkd_weights *w, vkd_unet_config *u, char *why, size_t wl)
{
    int64_t s[VKD_ST_MAX_RANK];
    if (shp(w, s, UNET "input_blocks.0.0.weight") != 4) {
        say(why, wl, "no UNet (model.diffusion_model.input_blocks.0.0.weight missing or not a conv)");
        return VKD_ERR_UNSUPPORTED;
    }
    u->model_channels = dim(s[0]);
    u->in_channels = dim(s[1]);
    if (shp(w, s, UNET "out.2.weight") == 4)
        u->out_channels = dim(s[0]);
    if (shp(w, s, UNET "time_embed.0.weight") == 2)
        u->time_embed_dim = dim(s[0]);
    if (shp(w, s, UNET "label_emb.0.0.weight") == 2)
        u->adm_in_channels = dim(s[1]);
    int mc = u->model_channels, level = 0, in_level = 0, nrb = -1, n = 1, ctx = 0, linear = -1;
    if (!mc) {
        say(why, wl, "UNet input conv has no output channels");
        return VKD_ERR_UNSUPPORTED;
    }
    for (;; n++) {
        if (shp(w, s, UNET "input_blocks.%d.0.op.weight", n) >= 0) {
            if (nrb < 0)
                nrb = in_level;
            if (in_level != nrb || level + 1 >= VKD_MAX_LEVELS) {
                say(why, wl, "UNet level %d has %d res blocks, level 0 has %d", level, in_level, nrb);
                return VKD_ERR_UNSUPPORTED;
            }
            level++;
            in_level = 0;
            continue;
        }
        if (shp(w, s, UNET "input_blocks.%d.0.in_layers.2.weight", n) != 4)
            break;
        int c = dim(s[0]);
        if (c % mc) {
            say(why, wl, "UNet input block %d has %d channels, not a multiple of %d", n, c, mc);
            return VKD_ERR_UNSUPPORTED;
        }
        if (in_level == 0)
            u->channel_mult[level] = c / mc;
        else if (u->channel_mult[level] != c / mc) {
            say(why, wl, "UNet input block %d changes width inside a level", n);
            return VKD_ERR_UNSUPPORTED;
        }
        char base[64];
        snprintf(base, sizeof base, "%d", n);
        int depth = count_blocks(w, UNET "input_blocks.%s.1.transformer_blocks.%d.norm1.weight", base);
        if (in_level > 0 && depth != u->transformer_depth[level]) {
            say(why, wl, "UNet input block %d has transformer depth %d, its level %d", n, depth, u->transformer_depth[level]);
            return VKD_ERR_UNSUPPORTED;
        }
        u->transformer_depth[level] = depth;
        if (depth) {
            int r = shp(w, s, UNET "input_blocks.%d.1.proj_in.weight", n);
            if (linear < 0)
                linear = r == 2;
            if (shp(w, s, UNET "input_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight", n) == 2 && !ctx)
                ctx = dim(s[1]);
        }
        in_level++;
    }
    if (nrb < 0)
        nrb = in_level;
    if (in_level != nrb || nrb == 0) {
        say(why, wl, "UNet last level has %d res blocks, level 0 has %d", in_level, nrb);
        return VKD_ERR_UNSUPPORTED;
    }
    u->num_levels = level + 1;
    u->num_res_blocks = nrb;
    u->mid_depth = count_blocks(w, UNET "middle_block.%s.transformer_blocks.%d.norm1.weight", "1");
    if (linear < 0 && u->mid_depth)
        linear = shp(w, s, UNET "middle_block.1.proj_in.weight") == 2;
    if (!ctx && shp(w, s, UNET "middle_block.1.transformer_blocks.0.attn2.to_k.weight") == 2)
        ctx = dim(s[1]);
    u->linear_proj = linear > 0;
    u->context_dim = ctx;
    if (!ctx) {
        say(why, wl, "UNet has no cross-attention (attn2.to_k) to read the context width from");
        return VKD_ERR_UNSUPPORTED;
    }
    return VKD_OK;
}

static int gcd(int a, int b)
{
    while (b > 0) {
        int t = a % b;
        a = b, b = t;
    }
    return a;
}

static void detect_vae(const vkd_weights *w, vkd_vae_config *v)
{
    int64_t s[VKD_ST_MAX_RANK];
    v->has_encoder = shp(w, s, VAE "encoder.conv_in.weight") == 4;
    if (shp(w, s, VAE "post_quant_conv.weight") == 4)
        v->z_channels = dim(s[0]);
    v->num_levels = count_blocks(w, VAE "decoder.up.%s%d.block.0.conv1.weight", "");
    if (v->num_levels > VKD_MAX_LEVELS)
        v->num_levels = 0;
    /* The decoder holds only the products ch * mult[i]. The encoder's conv_in gives ch;
     * without an encoder ch is their greatest common divisor (SD's 128 for 128, 256,
     * 512, 512, where mult[0] = 1; a VAE whose last level is wider than ch, such as
     * the oracle's tiny-sd2 with mult (2, 1, 1, 1), is described right too). */
    int widths[VKD_MAX_LEVELS] = {0}, g = 0;
    if (shp(w, s, VAE "decoder.conv_out.weight") == 4)
        g = dim(s[1]);
    for (int i = 0; i < v->num_levels; i++)
        if (shp(w, s, VAE "decoder.up.%d.block.0.conv1.weight", i) == 4 && (widths[i] = dim(s[0])) > 0)
            g = gcd(g, widths[i]);
    v->ch = g;
    if (v->has_encoder && shp(w, s, VAE "encoder.conv_in.weight") == 4 && dim(s[0]) > 0)
        v->ch = dim(s[0]);
    /* a level whose first conv is not a conv (width 0), or whose width is not a multiple
     * of ch, keeps multiplier 0: vkd_model_detect refuses the VAE */
    for (int i = 0; i < v->num_levels && v->ch; i++)
        if (widths[i] % v->ch == 0)
            v->ch_mult[i] = widths[i] / v->ch;
    v->num_res_blocks = count_blocks(w, VAE "decoder.up.%s0.block.%d.conv1.weight", "") - 1;
}

static void detect_text(const vkd_weights *w, vkd_text_config *t, const char *prefix)
{
    int64_t s[VKD_ST_MAX_RANK];
    t->prefix = prefix;
    if (shp(w, s, "%stext_model.embeddings.token_embedding.weight", prefix) == 2) {
        t->vocab = dim(s[0]);
        t->width = dim(s[1]);
    }
    if (shp(w, s, "%stext_model.embeddings.position_embedding.weight", prefix) == 2)
        t->positions = dim(s[0]);
    t->layers = count_blocks(w, "%stext_model.encoder.layers.%d.layer_norm1.weight", prefix);
    if (shp(w, s, "%stext_model.encoder.layers.0.mlp.fc1.weight", prefix) == 2)
        t->mlp = dim(s[0]);
    if (shp(w, s, "%stext_projection.weight", prefix) == 2)
        t->proj_dim = dim(s[0]);
    t->heads = t->width / 64;
}

/* Head layout is the one number the weights cannot tell (see detect.h). Real
 * checkpoints follow their family's; small models made by our own tools (the oracle's
 * tiny checkpoints, weights/) record theirs in the safetensors metadata key
 * "vkdiff.config": JSON with unet.num_heads or unet.num_head_channels (-1 = unused)
 * and text.heads. Nothing else in that key is read. */
static void apply_head_overrides(const vkd_weights *w, vkd_model_config *cfg)
{
    for (size_t i = 0; i < vkd_weights_file_count(w); i++) {
        const char *js = vkd_st_metadata(vkd_weights_file(w, i), "vkdiff.config");
        if (!js)
            continue;
        cJSON *root = cJSON_Parse(js);
        if (!root) {
            VKD_WARN("%s: metadata vkdiff.config is not JSON; ignored", vkd_st_label(vkd_weights_file(w, i)));
            continue;
        }
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "unet");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "text");
        const cJSON *nh = u ? cJSON_GetObjectItemCaseSensitive(u, "num_heads") : NULL;
        const cJSON *hd = u ? cJSON_GetObjectItemCaseSensitive(u, "num_head_channels") : NULL;
        const cJSON *th = t ? cJSON_GetObjectItemCaseSensitive(t, "heads") : NULL;
        if (cJSON_IsNumber(nh) && nh->valueint > 0 && nh->valueint <= 1024) {
            cfg->unet.num_heads = nh->valueint;
            cfg->unet.head_dim = 0;
        }
        if (cJSON_IsNumber(hd) && hd->valueint > 0 && hd->valueint <= 1024) {
            cfg->unet.head_dim = hd->valueint;
            cfg->unet.num_heads = 0;
        }
        if (cJSON_IsNumber(th) && th->valueint > 0 && th->valueint <= 1024)
            for (int k = 0; k < cfg->n_text; k++)
                cfg->text[k].heads = th->valueint;
        cJSON_Delete(root);
    }
}

vkd_result vkd_model_detect(const vkd_weights *w, vkd_model_config *cfg, char *why, size_t wl)
{
    char local[256];
    if (!why) {
        why = local;
        wl = sizeof local;
    }
    why[0] = 0;
    memset(cfg, 0, sizeof *cfg);
    if (!w)
        return VKD_ERR_INVALID_ARG;
    vkd_unet_config *u = &cfg->unet;
    vkd_result r = detect_unet(w, u, why, wl);
    detect_vae(w, &cfg->vae);
    int64_t s[VKD_ST_MAX_RANK];
    int sdxl_te = shp(w, s, "conditioner.embedders.1.transformer.text_model.embeddings.token_embedding.weight") >= 0;
    if (sdxl_te) {
        cfg->n_text = 2;
        detect_text(w, &cfg->text[0], "conditioner.embedders.0.transformer.");
        detect_text(w, &cfg->text[1], "conditioner.embedders.1.transformer.");
        cfg->text[0].quick_gelu = 1;
    } else if (shp(w, s, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight") >= 0) {
        cfg->n_text = 1;
        detect_text(w, &cfg->text[0], "cond_stage_model.transformer.");
    }
    if (r)
        goto refuse;

    r = VKD_ERR_UNSUPPORTED;
    if (u->in_channels == 9)
        cfg->inpaint = 1;
    else if (u->in_channels != 4) {
        say(why, wl, "UNet takes %d input channels (4 = txt2img, 9 = inpainting; others such as instruct-pix2pix's 8 are not supported)",
            u->in_channels);
        goto refuse;
    }
    if (u->out_channels != 4) {
        say(why, wl, "UNet gives %d output channels, expected 4", u->out_channels);
        goto refuse;
    }
    if (u->adm_in_channels) {
        cfg->family = VKD_FAMILY_SDXL;
        if (cfg->n_text != 2) {
            if (u->adm_in_channels == 2560) /* sd_xl_refiner.yaml: pooled 1280 + 5 x 256 (sizes, aesthetic score) */
                say(why, wl, "this is an SDXL refiner (label_emb of 2560 = pooled 1280 + crop, size and aesthetic-score "
                             "embeddings, one OpenCLIP text encoder): not supported; use the base model or a "
                             "fine-tune of it");
            else
                say(why, wl, "UNet has label_emb (SDXL-style) but the file lacks SDXL's two text encoders "
                             "conditioner.embedders.0 (CLIP) and .1 (OpenCLIP); an SDXL refiner is not supported");
            goto refuse;
        }
        if (u->context_dim != cfg->text[0].width + cfg->text[1].width) {
            say(why, wl, "SDXL context %d is not the sum of the text encoder widths %d + %d", u->context_dim,
                cfg->text[0].width, cfg->text[1].width);
            goto refuse;
        }
        if (u->adm_in_channels != cfg->text[1].proj_dim + 6 * 256) {
            say(why, wl, "SDXL label_emb takes %d inputs, expected pooled %d + 6 x 256 size embeddings",
                u->adm_in_channels, cfg->text[1].proj_dim);
            goto refuse;
        }
        u->head_dim = 64;
        cfg->vae.scale_factor = 0.13025f;
    } else {
        cfg->family = u->linear_proj ? VKD_FAMILY_SD2 : VKD_FAMILY_SD1;
        if (cfg->n_text != 1) {
            say(why, wl, "no text encoder (cond_stage_model.transformer.* / cond_stage_model.model.* / text_encoder/)");
            goto refuse;
        }
        if (u->context_dim != cfg->text[0].width) {
            say(why, wl, "UNet context %d differs from the text encoder width %d", u->context_dim, cfg->text[0].width);
            goto refuse;
        }
        if (cfg->family == VKD_FAMILY_SD1) {
            u->num_heads = 8;
            cfg->text[0].quick_gelu = 1;
        } else {
            u->head_dim = 64;
        }
        cfg->vae.scale_factor = 0.18215f;
    }
    apply_head_overrides(w, cfg);
    for (int i = 0; i < u->num_levels; i++) {
        int c = u->model_channels * u->channel_mult[i];
        if (u->transformer_depth[i] && (u->head_dim ? c % u->head_dim : c % u->num_heads)) {
            say(why, wl, "attention width %d at level %d does not split into %s", c, i,
                u->head_dim ? "the head width" : "the head count");
            goto refuse;
        }
    }
    for (int k = 0; k < cfg->n_text; k++) {
        vkd_text_config *t = &cfg->text[k];
        if (!t->width || !t->heads || t->width % t->heads || !t->layers || !t->positions || !t->vocab || !t->mlp) {
            say(why, wl, "text encoder %s is incomplete or has width %d (not a multiple of %d heads)", t->prefix,
                t->width, t->heads);
            goto refuse;
        }
    }
    if (!cfg->vae.num_levels || !cfg->vae.ch || !cfg->vae.z_channels || cfg->vae.num_res_blocks < 1) {
        say(why, wl, "no usable VAE decoder (first_stage_model.decoder.*); pass a VAE file");
        goto refuse;
    }
    if (cfg->vae.num_levels != VKD_VAE_LEVELS) {
        /* issue 18 item 8: the pipeline takes the image as 8x the latent; a 2-level
         * decoder wrote 1/16 of it and the rest was uninitialised memory */
        say(why, wl, "VAE decoder has %d levels: it upsamples the latent %dx where Stable Diffusion's VAE (%d levels) "
                     "upsamples 8x, which vkdiff needs; pass an SD VAE file",
            cfg->vae.num_levels, 1 << (cfg->vae.num_levels - 1), VKD_VAE_LEVELS);
        goto refuse;
    }
    for (int i = 0; i < cfg->vae.num_levels; i++)
        if (cfg->vae.ch_mult[i] < 1) {
            say(why, wl, "VAE decoder level %d: decoder.up.%d.block.0.conv1 is not a conv whose width is a multiple of %d",
                i, i, cfg->vae.ch);
            goto refuse;
        }
    return VKD_OK;
refuse:
    VKD_ERROR("model fits no supported family: %s", why);
    return VKD_ERR_UNSUPPORTED;
}

/* ---- expected tensors ------------------------------------------------------------- */

typedef struct {
    vkd_expect_fn fn;
    void *user;
    int stop;
} expect_ctx;

static void ex(expect_ctx *c, int rank, int64_t a, int64_t b, int64_t k, const char *fmt, ...)
{
    if (c->stop)
        return;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t s[4] = {a, b, k, k};
    c->stop = c->fn(name, rank, s, c->user);
}

/* weight + bias of a linear, conv (k > 0) or norm (b = 0) */
static void ex_layer(expect_ctx *c, int64_t out, int64_t in, int k, int bias, const char *p)
{
    if (in == 0) {
        ex(c, 1, out, 0, 0, "%s.weight", p);
    } else {
        ex(c, k ? 4 : 2, out, in, k, "%s.weight", p);
    }
    if (bias)
        ex(c, 1, out, 0, 0, "%s.bias", p);
}

static void ex_res(expect_ctx *c, const char *p, int cin, int cout, int ted)
{
    char n[200];
    snprintf(n, sizeof n, "%s.in_layers.0", p), ex_layer(c, cin, 0, 0, 1, n);
    snprintf(n, sizeof n, "%s.in_layers.2", p), ex_layer(c, cout, cin, 3, 1, n);
    snprintf(n, sizeof n, "%s.emb_layers.1", p), ex_layer(c, cout, ted, 0, 1, n);
    snprintf(n, sizeof n, "%s.out_layers.0", p), ex_layer(c, cout, 0, 0, 1, n);
    snprintf(n, sizeof n, "%s.out_layers.3", p), ex_layer(c, cout, cout, 3, 1, n);
    if (cin != cout)
        snprintf(n, sizeof n, "%s.skip_connection", p), ex_layer(c, cout, cin, 1, 1, n);
}

static void ex_xf(expect_ctx *c, const char *p, int ch, int depth, const vkd_unet_config *u)
{
    char n[200];
    int k = u->linear_proj ? 0 : 1;
    snprintf(n, sizeof n, "%s.norm", p), ex_layer(c, ch, 0, 0, 1, n);
    snprintf(n, sizeof n, "%s.proj_in", p), ex_layer(c, ch, ch, k, 1, n);
    for (int d = 0; d < depth; d++) {
        for (int a = 1; a <= 2; a++) {
            int kv = a == 1 ? ch : u->context_dim;
            snprintf(n, sizeof n, "%s.transformer_blocks.%d.attn%d.to_q", p, d, a), ex_layer(c, ch, ch, 0, 0, n);
            snprintf(n, sizeof n, "%s.transformer_blocks.%d.attn%d.to_k", p, d, a), ex_layer(c, ch, kv, 0, 0, n);
            snprintf(n, sizeof n, "%s.transformer_blocks.%d.attn%d.to_v", p, d, a), ex_layer(c, ch, kv, 0, 0, n);
            snprintf(n, sizeof n, "%s.transformer_blocks.%d.attn%d.to_out.0", p, d, a), ex_layer(c, ch, ch, 0, 1, n);
        }
        snprintf(n, sizeof n, "%s.transformer_blocks.%d.ff.net.0.proj", p, d), ex_layer(c, 8 * (int64_t)ch, ch, 0, 1, n);
        snprintf(n, sizeof n, "%s.transformer_blocks.%d.ff.net.2", p, d), ex_layer(c, ch, 4 * (int64_t)ch, 0, 1, n);
        for (int k2 = 1; k2 <= 3; k2++)
            snprintf(n, sizeof n, "%s.transformer_blocks.%d.norm%d", p, d, k2), ex_layer(c, ch, 0, 0, 1, n);
    }
    snprintf(n, sizeof n, "%s.proj_out", p), ex_layer(c, ch, ch, k, 1, n);
}

static void ex_unet(expect_ctx *c, const vkd_unet_config *u)
{
    char n[200];
    int mc = u->model_channels, ted = u->time_embed_dim, chans[64], nch = 0, ch = mc, b = 1;
    ex_layer(c, ted, mc, 0, 1, UNET "time_embed.0");
    ex_layer(c, ted, ted, 0, 1, UNET "time_embed.2");
    if (u->adm_in_channels) {
        ex_layer(c, ted, u->adm_in_channels, 0, 1, UNET "label_emb.0.0");
        ex_layer(c, ted, ted, 0, 1, UNET "label_emb.0.2");
    }
    ex_layer(c, mc, u->in_channels, 3, 1, UNET "input_blocks.0.0");
    chans[nch++] = mc;
    for (int l = 0; l < u->num_levels; l++) {
        for (int j = 0; j < u->num_res_blocks; j++, b++) {
            snprintf(n, sizeof n, UNET "input_blocks.%d.0", b);
            ex_res(c, n, ch, mc * u->channel_mult[l], ted);
            ch = mc * u->channel_mult[l];
            if (u->transformer_depth[l])
                snprintf(n, sizeof n, UNET "input_blocks.%d.1", b), ex_xf(c, n, ch, u->transformer_depth[l], u);
            if (nch < 64)
                chans[nch++] = ch;
        }
        if (l != u->num_levels - 1) {
            snprintf(n, sizeof n, UNET "input_blocks.%d.0.op", b++);
            ex_layer(c, ch, ch, 3, 1, n);
            if (nch < 64)
                chans[nch++] = ch;
        }
    }
    ex_res(c, UNET "middle_block.0", ch, ch, ted);
    ex_xf(c, UNET "middle_block.1", ch, u->mid_depth, u);
    ex_res(c, UNET "middle_block.2", ch, ch, ted);
    b = 0;
    for (int l = u->num_levels - 1; l >= 0; l--) {
        for (int j = 0; j <= u->num_res_blocks; j++, b++) {
            int skip = nch > 0 ? chans[--nch] : 0;
            snprintf(n, sizeof n, UNET "output_blocks.%d.0", b);
            ex_res(c, n, ch + skip, mc * u->channel_mult[l], ted);
            ch = mc * u->channel_mult[l];
            int k = 1;
            if (u->transformer_depth[l]) {
                snprintf(n, sizeof n, UNET "output_blocks.%d.1", b), ex_xf(c, n, ch, u->transformer_depth[l], u);
                k = 2;
            }
            if (l && j == u->num_res_blocks)
                snprintf(n, sizeof n, UNET "output_blocks.%d.%d.conv", b, k), ex_layer(c, ch, ch, 3, 1, n);
        }
    }
    ex_layer(c, ch, 0, 0, 1, UNET "out.0");
    ex_layer(c, u->out_channels, mc, 3, 1, UNET "out.2");
}

static void ex_vres(expect_ctx *c, const char *p, int cin, int cout)
{
    char n[200];
    snprintf(n, sizeof n, "%s.norm1", p), ex_layer(c, cin, 0, 0, 1, n);
    snprintf(n, sizeof n, "%s.conv1", p), ex_layer(c, cout, cin, 3, 1, n);
    snprintf(n, sizeof n, "%s.norm2", p), ex_layer(c, cout, 0, 0, 1, n);
    snprintf(n, sizeof n, "%s.conv2", p), ex_layer(c, cout, cout, 3, 1, n);
    if (cin != cout)
        snprintf(n, sizeof n, "%s.nin_shortcut", p), ex_layer(c, cout, cin, 1, 1, n);
}

static void ex_vmid(expect_ctx *c, const char *p, int ch)
{
    static const char *const a[] = {"q", "k", "v", "proj_out"};
    char n[200];
    snprintf(n, sizeof n, "%s.block_1", p), ex_vres(c, n, ch, ch);
    snprintf(n, sizeof n, "%s.attn_1.norm", p), ex_layer(c, ch, 0, 0, 1, n);
    for (int i = 0; i < 4; i++)
        snprintf(n, sizeof n, "%s.attn_1.%s", p, a[i]), ex_layer(c, ch, ch, 1, 1, n);
    snprintf(n, sizeof n, "%s.block_2", p), ex_vres(c, n, ch, ch);
}

static void ex_vae(expect_ctx *c, const vkd_vae_config *v)
{
    char n[200];
    int ch = v->ch, L = v->num_levels, z = v->z_channels, bi = ch;
    if (!L)
        return;
    if (v->has_encoder) {
        ex_layer(c, ch, 3, 3, 1, VAE "encoder.conv_in");
        for (int i = 0; i < L; i++) {
            for (int j = 0; j < v->num_res_blocks; j++) {
                snprintf(n, sizeof n, VAE "encoder.down.%d.block.%d", i, j), ex_vres(c, n, bi, ch * v->ch_mult[i]);
                bi = ch * v->ch_mult[i];
            }
            if (i != L - 1)
                snprintf(n, sizeof n, VAE "encoder.down.%d.downsample.conv", i), ex_layer(c, bi, bi, 3, 1, n);
        }
        ex_vmid(c, VAE "encoder.mid", bi);
        ex_layer(c, bi, 0, 0, 1, VAE "encoder.norm_out");
        ex_layer(c, 2 * z, bi, 3, 1, VAE "encoder.conv_out");
        ex_layer(c, 2 * z, 2 * z, 1, 1, VAE "quant_conv");
    }
    bi = ch * v->ch_mult[L - 1];
    ex_layer(c, bi, z, 3, 1, VAE "decoder.conv_in");
    ex_vmid(c, VAE "decoder.mid", bi);
    for (int i = L - 1; i >= 0; i--) {
        for (int j = 0; j <= v->num_res_blocks; j++) {
            snprintf(n, sizeof n, VAE "decoder.up.%d.block.%d", i, j), ex_vres(c, n, bi, ch * v->ch_mult[i]);
            bi = ch * v->ch_mult[i];
        }
        if (i)
            snprintf(n, sizeof n, VAE "decoder.up.%d.upsample.conv", i), ex_layer(c, bi, bi, 3, 1, n);
    }
    ex_layer(c, bi, 0, 0, 1, VAE "decoder.norm_out");
    ex_layer(c, 3, bi, 3, 1, VAE "decoder.conv_out");
    ex_layer(c, z, z, 1, 1, VAE "post_quant_conv");
}

static void ex_text(expect_ctx *c, const vkd_text_config *t)
{
    char n[256];
    const char *p = t->prefix;
    int w = t->width;
    snprintf(n, sizeof n, "%stext_model.embeddings.token_embedding", p), ex_layer(c, t->vocab, w, 0, 0, n);
    snprintf(n, sizeof n, "%stext_model.embeddings.position_embedding", p), ex_layer(c, t->positions, w, 0, 0, n);
    static const char *const proj[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (int l = 0; l < t->layers; l++) {
        for (int i = 0; i < 4; i++)
            snprintf(n, sizeof n, "%stext_model.encoder.layers.%d.self_attn.%s", p, l, proj[i]), ex_layer(c, w, w, 0, 1, n);
        snprintf(n, sizeof n, "%stext_model.encoder.layers.%d.layer_norm1", p, l), ex_layer(c, w, 0, 0, 1, n);
        snprintf(n, sizeof n, "%stext_model.encoder.layers.%d.mlp.fc1", p, l), ex_layer(c, t->mlp, w, 0, 1, n);
        snprintf(n, sizeof n, "%stext_model.encoder.layers.%d.mlp.fc2", p, l), ex_layer(c, w, t->mlp, 0, 1, n);
        snprintf(n, sizeof n, "%stext_model.encoder.layers.%d.layer_norm2", p, l), ex_layer(c, w, 0, 0, 1, n);
    }
    snprintf(n, sizeof n, "%stext_model.final_layer_norm", p), ex_layer(c, w, 0, 0, 1, n);
    if (t->proj_dim)
        snprintf(n, sizeof n, "%stext_projection", p), ex_layer(c, t->proj_dim, w, 0, 0, n);
}

int vkd_model_expected(const vkd_model_config *cfg, vkd_expect_fn fn, void *user)
{
    expect_ctx c = {fn, user, 0};
    if (cfg->unet.model_channels && cfg->unet.num_levels)
        ex_unet(&c, &cfg->unet);
    ex_vae(&c, &cfg->vae);
    for (int k = 0; k < cfg->n_text; k++)
        ex_text(&c, &cfg->text[k]);
    return c.stop;
}
