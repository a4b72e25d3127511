/* Pre-flight memory plan. See memplan.h. */
#include "pipeline/memplan.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "pipeline/decode_stage.h"
#include "pipeline/denoise_stage.h"
#include "pipeline/encode_stage.h"
#include "pipeline/text_stage.h"
#include "pipeline/vae_encode.h"


static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* resident bytes per stage for a choice (keep the UNet or not, keep the text encoder's
 * weights or not, a_vae) */
static void stages(vkd_memplan *p, bool keep, bool keep_text, uint64_t a_vae)
{
    uint64_t unet = p->w_unet + p->a_unet, text = keep_text ? p->w_text : 0;
    p->keep_unet = keep;
    p->keep_text = keep_text;
    p->a_vae = a_vae;
    p->stage_unet = unet + text;
    p->stage_text = p->w_text + p->a_text + (keep ? unet : 0);
    p->stage_enc = p->w_enc || p->a_enc ? p->w_enc + p->a_enc + (keep ? unet : 0) + text : 0;
    p->stage_vae = p->w_vae + a_vae + (keep ? unet : 0) + text;
    p->peak = max_u64(max_u64(p->stage_unet, p->stage_enc), max_u64(p->stage_text, p->stage_vae));
    p->fits = p->peak <= p->budget;
}

/* The encoder's tiles, chosen before the rest: when asked, or when the whole-image
 * encode does not fit even alone, the requested edge or, halving from 512 px, the
 * largest that fits. Never below twice the overlap (vkd_vae_encode_overlap: a tile
 * smaller would mostly recompute its neighbours), a requested edge included. An
 * encoder the segments cannot follow encodes whole. */
static vkd_result enc_tiles(const vkd_memplan_in *in, vkd_memplan *p)
{
    if (in->tiling == VKD_TILING_OFF ||
        (in->tiling == VKD_TILING_AUTO && p->w_enc + p->a_enc_whole <= p->budget))
        return VKD_OK;
    bool fixed = in->tiling == VKD_TILING_ON && in->tile_px > 0;
    int req = in->tile_px > 0 ? in->tile_px / 8 : 64, least = 2 * vkd_vae_encode_overlap(&in->cfg->vae, 0);
    for (int tile = req; tile > 0; tile = fixed ? 0 : tile / 2) {
        if (tile >= in->h && tile >= in->w)
            continue; /* one tile: the whole encode */
        if (fixed && tile < least)
            tile = least;
        if (tile < least || (tile >= in->h && tile >= in->w))
            break;
        uint64_t w, a;
        vkd_result r = vkd_encode_stage_request(in, tile, &w, &a);
        if (r == VKD_ERR_UNSUPPORTED)
            break;
        if (r)
            return r;
        p->enc_tile = tile, p->w_enc = w, p->a_enc = a;
        if (w + a <= p->budget)
            break;
    }
    return VKD_OK;
}

vkd_result vkd_memplan_make(const vkd_memplan_in *in, vkd_memplan *p)
{
    memset(p, 0, sizeof *p);
    p->budget = in->budget;
    if (!p->budget)
        p->budget = vkd_device_memory_budget(in->d, &p->budget_from_driver);
    /* the stages' requests, each from a dry run of its recording */
    vkd_denoise_request u;
    uint64_t a_vae = 0;
    vkd_result r;
    if ((r = vkd_text_stage_request(in, in->text_chunks > 0 ? in->text_chunks : 1, in->text_skip, &p->w_text,
                                    &p->a_text)) ||
        (r = vkd_denoise_stage_request(in, &u)) ||
        (r = vkd_decode_stage_request(in, in->h, in->w, &p->w_vae, &p->a_vae_whole)) ||
        (in->encode && (r = vkd_encode_stage_request(in, 0, &p->w_enc, &p->a_enc))))
        return r;
    p->a_enc_whole = p->a_enc;
    if (in->encode && (r = enc_tiles(in, p)))
        return r;
    p->w_unet = u.weights, p->a_unet = u.activations, p->r_unet = u.reserve;
    p->unet_ops = u.ops;
    p->unet_act_written = u.act_written;

    /* 1. whole-image decode, the UNet and the text encoder's weights kept; 2. the UNet
     * kept; 3. the UNet freed before the VAE */
    if (in->tiling != VKD_TILING_ON) {
        stages(p, true, true, p->a_vae_whole);
        if (p->fits)
            return VKD_OK;
        stages(p, true, false, p->a_vae_whole);
        if (p->fits)
            return VKD_OK;
        stages(p, false, false, p->a_vae_whole);
        if (p->fits || in->tiling == VKD_TILING_OFF)
            return VKD_OK;
    }
    /* 3. tiles: the requested edge, or halving from 512 px until one fits */
    int req = in->tile_px > 0 ? in->tile_px / 8 : 64;
    if (req < 8)
        req = 8;
    for (int tile = req; tile >= 8; tile = in->tiling == VKD_TILING_ON && in->tile_px > 0 ? 0 : tile * 3 / 4) {
        if (tile < req && p->stage_unet > p->budget)
            break; /* smaller tiles cannot help when the UNet alone does not fit */
        int64_t th = in->h < tile ? in->h : tile, tw = in->w < tile ? in->w : tile;
        uint64_t w_vae;
        if ((r = vkd_decode_stage_request(in, th, tw, &w_vae, &a_vae)))
            return r;
        p->vae_tile = tile;
        p->vae_overlap = tile / 4;
        stages(p, true, false, a_vae);
        if (!p->fits)
            stages(p, false, false, a_vae);
        if (p->fits || (in->tiling == VKD_TILING_ON && in->tile_px > 0))
            break;
    }
    return VKD_OK;
}

static double mib(uint64_t b) { return (double)b / 1048576.0; }

void vkd_memplan_log(const vkd_memplan *p)
{
    VKD_INFO("memory plan (budget %.0f MiB, %s):", mib(p->budget),
             p->budget_from_driver ? "VK_EXT_memory_budget" : "heap size or --mem-budget");
    VKD_INFO("  text encoder: weights %7.1f MiB + activations %6.1f MiB", mib(p->w_text), mib(p->a_text));
    VKD_INFO("  UNet:         weights %7.1f MiB + activations %6.1f MiB (%u ops per evaluation)", mib(p->w_unet),
             mib(p->a_unet), p->unet_ops);
    if (p->vae_tile)
        VKD_INFO("  VAE decoder:  weights %7.1f MiB + activations %6.1f MiB per %dx%d-pixel tile, overlap %d px "
                 "(whole image: %.1f MiB)",
                 mib(p->w_vae), mib(p->a_vae), 8 * p->vae_tile, 8 * p->vae_tile, 8 * p->vae_overlap,
                 mib(p->a_vae_whole));
    else
        VKD_INFO("  VAE decoder:  weights %7.1f MiB + activations %6.1f MiB", mib(p->w_vae), mib(p->a_vae));
    if (p->enc_tile)
        VKD_INFO("  VAE encoder:  weights %7.1f MiB + activations %6.1f MiB per %dx%d-pixel tile (whole image: "
                 "%.1f MiB)",
                 mib(p->w_enc), mib(p->a_enc), 8 * p->enc_tile, 8 * p->enc_tile, mib(p->a_enc_whole));
    else if (p->w_enc || p->a_enc)
        VKD_INFO("  VAE encoder:  weights %7.1f MiB + activations %6.1f MiB", mib(p->w_enc), mib(p->a_enc));
    VKD_INFO("  resident: text %.1f MiB, UNet %.1f MiB, VAE %.1f MiB; peak %.1f MiB; UNet %s between images%s",
             mib(p->stage_text), mib(p->stage_unet), mib(p->stage_vae), mib(p->peak),
             p->keep_unet ? "kept" : "freed before the VAE and uploaded again",
             p->keep_text ? ", the text encoder's weights too" : "");
}

void vkd_memplan_explain(const vkd_memplan *p, char *buf, size_t n)
{
    if (p->stage_unet > p->budget)
        snprintf(buf, n,
                 "the UNet needs %.0f MiB (weights %.0f + activations %.0f) but the memory budget is %.0f MiB; "
                 "try a smaller image, fp16, or a larger --mem-budget",
                 mib(p->stage_unet), mib(p->w_unet), mib(p->a_unet), mib(p->budget));
    else
        snprintf(buf, n, "the planned peak is %.0f MiB (text %.0f, encoder %.0f, UNet %.0f, VAE %.0f) but the memory "
                         "budget is %.0f MiB%s",
                 mib(p->peak), mib(p->stage_text), mib(p->stage_enc), mib(p->stage_unet), mib(p->stage_vae),
                 mib(p->budget),
                 p->vae_tile ? "" : "; --vae-tiling decodes in tiles");
}
