/* The decode stage: see decode_stage.h. */
#include "pipeline/decode_stage.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "models/graph.h"
#include "models/vae.h"

struct vkd_decode_stage {
    vkd_pipe *p;
    bool fp32; /* the VAE overflowed fp16 once: it decodes in fp32 from then on */
};

vkd_result vkd_decode_stage_create(vkd_pipe *p, vkd_decode_stage **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    (*out)->p = p;
    return VKD_OK;
}

void vkd_decode_stage_destroy(vkd_decode_stage *s) { free(s); }

void vkd_decode_stage_release(vkd_decode_stage *s)
{
    vkd_wstore_release(s->p->ws, "first_stage_model."); /* re-uploaded for the next image */
    vkd_memory_trim(s->p->d);
}

typedef struct dry {
    vkd_graph g;
    vkd_graph_plan p;
} dry;

static vkd_result dry_begin(const vkd_memplan_in *in, dry *r)
{
    memset(r, 0, sizeof *r);
    r->g.d = in->d, r->g.ws = in->ws, r->g.dt = in->dt, r->g.plan = &r->p;
    return vkd_cmd_create(in->d, &r->g.c); /* ops read device limits through it; nothing is recorded */
}

static vkd_result dry_end(dry *r)
{
    vkd_cmd_destroy(r->g.c);
    return r->g.err;
}

vkd_result vkd_decode_stage_request(const vkd_memplan_in *in, int64_t th, int64_t tw, uint64_t *weights,
                                    uint64_t *activations)
{
    const vkd_vae_config *vc = &in->cfg->vae;
    dry r;
    vkd_tensor t, mid, img;
    vkd_result e = dry_begin(in, &r);
    if (e)
        return e;
    if (th >= in->h && tw >= in->w) { /* one piece */
        t = g_new3(&r.g, 1, in->h * in->w, vc->z_channels);
        if (g_ok(&r.g))
            vkd_vae_decode_record(&r.g, vc, &t, in->h, in->w, &img);
        e = dry_end(&r);
        *weights = r.p.weight_bytes, *activations = r.p.peak;
        return e;
    }
    /* tiles: the middle part on the whole latent, then the upsampling part per tile with
     * its input kept (vae_decode.c); the larger of the two */
    t = g_new3(&r.g, 1, in->h * in->w, vc->z_channels);
    if (g_ok(&r.g))
        vkd_vae_decode_mid_record(&r.g, vc, &t, in->h, in->w, &mid);
    if ((e = dry_end(&r)))
        return e;
    *weights = r.p.weight_bytes, *activations = r.p.peak;
    int64_t cmid = mid.shape[2];
    if ((e = dry_begin(in, &r)))
        return e;
    t = g_new3(&r.g, 1, th * tw, cmid);
    if (g_ok(&r.g))
        vkd_vae_decode_up_record(&r.g, vc, &t, false, th, tw, &img);
    e = dry_end(&r);
    *weights += r.p.weight_bytes;
    if (r.p.peak > *activations)
        *activations = r.p.peak;
    return e;
}

/* The decode again with the VAE's weights and activations in fp32 (a store of its own,
 * freed after): where fp16 overflowed. Twice the memory of the fp16 decode. */
static vkd_result decode_fp32(vkd_pipe *p, const float *z, int64_t h, int64_t w, const vkd_decode_plan *plan,
                              float *img, vkd_vae_decode_stats *vs)
{
    vkd_wstore *ws32 = NULL;
    vkd_result r = vkd_wstore_create(p->d, p->w, VKD_F32, &ws32);
    uint64_t k = p->dt == VKD_F16 ? 2 : 1;
    if (!r) {
        vkd_memory_expect(p->d, plan->weights * k);
        r = vkd_vae_decode_image(p->d, ws32, VKD_F32, &p->cfg.vae, z, h, w, plan->tile, plan->overlap,
                                 plan->activations * k, img, vs);
        vkd_memory_expect(p->d, 0);
    }
    vkd_wstore_destroy(ws32);
    vkd_memory_trim(p->d);
    if (r)
        VKD_ERROR("the fp32 VAE decode failed: %s", vkd_result_str(r));
    return r;
}

vkd_result vkd_decode_stage_run(vkd_decode_stage *s, const float *latent, int64_t h, int64_t w,
                                const vkd_decode_plan *plan, float *img, vkd_vae_decode_stats *st)
{
    vkd_pipe *p = s->p;
    int64_t hw = h * w, zc = p->cfg.vae.z_channels, numel = 64 * hw * 3;
    /* z / scale, NCHW -> channels-last [hw, 4] */
    float *z = malloc((size_t)(hw * zc) * sizeof *z);
    if (!z)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    float inv = 1.0f / p->cfg.vae.scale_factor;
    for (int64_t q = 0; q < hw; q++)
        for (int64_t k = 0; k < zc; k++)
            z[q * zc + k] = latent[k * hw + q] * inv;
    vkd_result r = VKD_OK;
    if (!s->fp32) {
        vkd_memory_expect(p->d, plan->weights); /* weight blocks without slack */
        r = vkd_vae_decode_image(p->d, p->ws, p->dt, &p->cfg.vae, z, h, w, plan->tile, plan->overlap,
                                 plan->activations, img, st);
        vkd_memory_expect(p->d, 0);
        vkd_decode_stage_release(s);
        if (!r && p->dt == VKD_F16 && vkd_count_non_finite(img, (size_t)numel)) {
            /* SD VAEs are known to overflow fp16 (SDXL's most of all): decode again in
             * fp32, and keep doing so for this model (said once) */
            VKD_WARN("the VAE overflowed fp16 (NaN/Inf in its output): decoding in fp32 from now on");
            s->fp32 = true;
        }
    }
    if (!r && s->fp32)
        r = decode_fp32(p, z, h, w, plan, img, st);
    free(z);
    if (r)
        return r;
    size_t bad = vkd_count_non_finite(img, (size_t)numel);
    if (bad) {
        VKD_ERROR("VAE decode: %zu of %lld output values are NaN/Inf (%s); %s", bad, (long long)numel,
                  p->dt == VKD_F16 ? "also in fp32" : "fp32",
                  "the VAE's weights may hold NaN/Inf (vkdiff info scans them)");
        return VKD_ERR_NON_FINITE;
    }
    if (st->tiles > 1)
        VKD_INFO("VAE decoded in %d tiles", st->tiles);
    return VKD_OK;
}
