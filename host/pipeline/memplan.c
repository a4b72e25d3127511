/* Pre-flight memory plan. See memplan.h. */
#include "pipeline/memplan.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "models/clip.h"
#include "models/graph.h"
#include "models/unet.h"
#include "models/vae.h"

typedef struct dry {
    vkd_graph g;
    vkd_graph_plan p;
} dry;

static vkd_result dry_begin(const vkd_memplan_in *in, dry *r)
{
    memset(r, 0, sizeof *r);
    r->g.d = in->d;
    r->g.ws = in->ws;
    r->g.dt = in->dt;
    r->g.plan = &r->p;
    return vkd_cmd_create(in->d, &r->g.c); /* ops read device limits through it; nothing is recorded */
}

static vkd_result dry_end(dry *r)
{
    vkd_cmd_destroy(r->g.c);
    return r->g.err;
}

/* text encoder on n_chunks 77-token chunks */
static vkd_result dry_text_chunks(const vkd_memplan_in *in, int n_chunks, int skip, vkd_graph_plan *out)
{
    dry r;
    vkd_result e = dry_begin(in, &r);
    if (!e) {
        vkd_tensor emb;
        vkd_clip_record(&r.g, &in->cfg->text[0], NULL, n_chunks, 77, skip, &emb);
        g_free(&r.g, &emb);
    }
    e = e ? e : dry_end(&r);
    *out = r.p;
    return e;
}

static vkd_result dry_text(const vkd_memplan_in *in, vkd_graph_plan *out) { return dry_text_chunks(in, 1, 0, out); }

vkd_result vkd_memplan_text_activations(const vkd_memplan_in *in, int n_chunks, int skip, uint64_t *bytes)
{
    vkd_graph_plan t;
    vkd_result r = dry_text_chunks(in, n_chunks, skip, &t);
    *bytes = r ? 0 : t.peak;
    return r;
}

/* one UNet evaluation with its input tensors (they live in the same pool) */
static vkd_result dry_unet(const vkd_memplan_in *in, vkd_graph_plan *out)
{
    dry r;
    vkd_result e = dry_begin(in, &r);
    if (!e) {
        const vkd_unet_config *u = &in->cfg->unet;
        vkd_graph *g = &r.g;
        int64_t ts[1] = {in->batch};
        vkd_tensor x = g_new3(g, in->batch, in->h * in->w, u->in_channels);
        vkd_tensor t = g_new_f32(g, 1, ts);
        vkd_tensor ctx = g_new3(g, in->batch, in->ctx_len, u->context_dim);
        vkd_tensor o;
        if (g_ok(g))
            vkd_unet_record(g, u, &x, in->h, in->w, &t, &ctx, &o);
    }
    e = e ? e : dry_end(&r);
    *out = r.p;
    return e;
}

/* tiled decode: the middle part on the whole latent, then the upsampling part per
 * tile with its input kept (vae_decode.c); the larger of the two */
static vkd_result dry_vae_tiled(const vkd_memplan_in *in, int64_t th, int64_t tw, vkd_graph_plan *out)
{
    dry r;
    vkd_tensor t, mid, img;
    vkd_result e = dry_begin(in, &r);
    if (!e) {
        t = g_new3(&r.g, 1, in->h * in->w, in->cfg->vae.z_channels);
        if (g_ok(&r.g))
            vkd_vae_decode_mid_record(&r.g, &in->cfg->vae, &t, in->h, in->w, &mid);
    }
    e = e ? e : dry_end(&r);
    *out = r.p;
    if (e)
        return e;
    int64_t cmid = mid.shape[2];
    e = dry_begin(in, &r);
    if (!e) {
        t = g_new3(&r.g, 1, th * tw, cmid);
        if (g_ok(&r.g))
            vkd_vae_decode_up_record(&r.g, &in->cfg->vae, &t, false, th, tw, &img);
    }
    e = e ? e : dry_end(&r);
    if (r.p.peak > out->peak)
        out->peak = r.p.peak;
    return e;
}

static vkd_result dry_vae(const vkd_memplan_in *in, int64_t h, int64_t w, vkd_graph_plan *out)
{
    dry r;
    vkd_result e = dry_begin(in, &r);
    if (!e) {
        vkd_tensor z = g_new3(&r.g, 1, h * w, in->cfg->vae.z_channels);
        vkd_tensor img;
        if (g_ok(&r.g))
            vkd_vae_decode_record(&r.g, &in->cfg->vae, &z, h, w, &img);
    }
    e = e ? e : dry_end(&r);
    *out = r.p;
    return e;
}

int vkd_tile_starts(int64_t len, int tile, int overlap, int64_t *starts, int max)
{
    if (tile <= 0 || len <= tile) {
        starts[0] = 0;
        return 1;
    }
    int64_t stride = tile - overlap;
    if (stride < 1)
        stride = 1;
    int n = 0;
    for (int64_t s = 0;; s += stride) {
        if (n == max)
            return -1;
        if (s + tile >= len) {
            starts[n++] = len - tile; /* the last tile flush with the end */
            return n;
        }
        starts[n++] = s;
    }
}

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* resident bytes per stage for a choice (keep the UNet or not, a_vae) */
static void stages(vkd_memplan *p, bool keep, uint64_t a_vae)
{
    uint64_t unet = p->w_unet + p->a_unet;
    p->keep_unet = keep;
    p->a_vae = a_vae;
    p->stage_unet = unet;
    p->stage_text = p->w_text + p->a_text + (keep ? unet : 0);
    p->stage_vae = p->w_vae + a_vae + (keep ? unet : 0);
    p->peak = max_u64(p->stage_unet, max_u64(p->stage_text, p->stage_vae));
    p->fits = p->peak <= p->budget;
}

vkd_result vkd_memplan_make(const vkd_memplan_in *in, vkd_memplan *p)
{
    memset(p, 0, sizeof *p);
    p->budget = in->budget;
    if (!p->budget)
        p->budget = vkd_device_memory_budget(in->d, &p->budget_from_driver);
    vkd_graph_plan t, u, v;
    vkd_result r;
    if ((r = dry_text(in, &t)) || (r = dry_unet(in, &u)) || (r = dry_vae(in, in->h, in->w, &v)))
        return r;
    p->w_text = t.weight_bytes, p->a_text = t.peak;
    p->w_unet = u.weight_bytes, p->a_unet = u.peak;
    p->unet_ops = u.ops;
    p->unet_act_written = u.act_bytes;
    p->w_vae = v.weight_bytes, p->a_vae_whole = v.peak;

    /* 1. whole-image decode, UNet kept; 2. UNet freed before the VAE */
    if (in->tiling != VKD_TILING_ON) {
        stages(p, true, p->a_vae_whole);
        if (p->fits)
            return VKD_OK;
        stages(p, false, p->a_vae_whole);
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
        if ((r = th == in->h && tw == in->w ? dry_vae(in, th, tw, &v) : dry_vae_tiled(in, th, tw, &v)))
            return r;
        p->vae_tile = tile;
        p->vae_overlap = tile / 4;
        stages(p, true, v.peak);
        if (!p->fits)
            stages(p, false, v.peak);
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
    VKD_INFO("  resident: text %.1f MiB, UNet %.1f MiB, VAE %.1f MiB; peak %.1f MiB; UNet %s between images",
             mib(p->stage_text), mib(p->stage_unet), mib(p->stage_vae), mib(p->peak),
             p->keep_unet ? "kept" : "freed before the VAE and uploaded again");
}

void vkd_memplan_explain(const vkd_memplan *p, char *buf, size_t n)
{
    if (p->stage_unet > p->budget)
        snprintf(buf, n,
                 "the UNet needs %.0f MiB (weights %.0f + activations %.0f) but the memory budget is %.0f MiB; "
                 "try a smaller image, fp16, or a larger --mem-budget",
                 mib(p->stage_unet), mib(p->w_unet), mib(p->a_unet), mib(p->budget));
    else
        snprintf(buf, n, "the planned peak is %.0f MiB (text %.0f, UNet %.0f, VAE %.0f) but the memory budget is "
                         "%.0f MiB%s",
                 mib(p->peak), mib(p->stage_text), mib(p->stage_unet), mib(p->stage_vae), mib(p->budget),
                 p->vae_tile ? "" : "; --vae-tiling decodes in tiles");
}
