/* The encode stage: see encode_stage.h. */
#include "pipeline/encode_stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "models/graph.h"
#include "models/vae.h"
#include "pipeline/vae_encode.h"

#define ENC_PREFIX "first_stage_model.encoder."
#define QUANT_PREFIX "first_stage_model.quant_conv."

vkd_result vkd_encode_stage_request(const vkd_memplan_in *in, int tile, uint64_t *weights, uint64_t *activations)
{
    if (tile > 0 && (tile < in->h || tile < in->w))
        return vkd_vae_encode_tiled_request(in->d, in->ws, in->dt, &in->cfg->vae, in->h, in->w, tile, weights,
                                            activations);
    vkd_graph_plan plan;
    memset(&plan, 0, sizeof plan);
    vkd_graph g = {.d = in->d, .ws = in->ws, .dt = in->dt, .plan = &plan};
    vkd_result r = vkd_cmd_create(in->d, &g.c); /* ops read device limits through it; nothing is recorded */
    if (r)
        return r;
    int64_t H = 8 * in->h, W = 8 * in->w;
    vkd_tensor img = g_new3(&g, 1, H * W, 3), out;
    vkd_vae_encode_record(&g, &in->cfg->vae, &img, H, W, &out);
    vkd_cmd_destroy(g.c);
    if (g.err)
        return g.err;
    *weights = plan.weight_bytes;
    *activations = plan.peak;
    return VKD_OK;
}

/* One encode with weights from ws in dtype dt, whole or in tiles (tile: as
 * vkd_encode_stage_run's): moments -> mean, clamped logvar; the count of NaN/Inf
 * moments in *bad. */
static vkd_result encode_with(vkd_pipe *p, vkd_wstore *ws, vkd_dtype dt, const float *img, int64_t H, int64_t W,
                              int tile, float *mean, float *logvar, size_t *bad)
{
    const vkd_vae_config *vc = &p->cfg.vae;
    int64_t h = H / 8, w = W / 8, zc = vc->z_channels;
    vkd_graph g = {.d = p->d, .ws = ws, .dt = dt};
    vkd_tensor in, out;
    float *moments = NULL;
    vkd_result r = VKD_OK;
    if (tile > 0 && (tile < h || tile < w)) { /* in tiles (vae_encode.h) */
        vkd_vae_encode_stats es;
        if (!(moments = malloc((size_t)(h * w * 2 * zc) * sizeof *moments)))
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
        if (!r)
            r = vkd_vae_encode_tiled(p->d, ws, dt, vc, img, h, w, tile, 0, moments, &es);
        goto moments_out;
    }
    r = vkd_pool_create(p->d, &g.pool);
    if (!r)
        r = vkd_cmd_create(p->d, &g.c);
    if (!r)
        r = vkd_cmd_begin(g.c);
    int64_t is[3] = {1, H * W, 3};
    if (!r)
        r = vkd_tensor_create_in(p->d, g.pool, dt, 3, is, &in);
    if (!r)
        r = vkd_tensor_upload_f32(p->d, &in, img);
    if (!r)
        r = vkd_vae_encode_record(&g, vc, &in, H, W, &out);
    if (!r)
        r = vkd_cmd_end(g.c);
    if (!r)
        r = vkd_cmd_submit_wait(g.c);
    if (!r && !(moments = malloc((size_t)(h * w * 2 * zc) * sizeof *moments)))
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!r)
        r = vkd_tensor_download_f32(p->d, &out, moments);
moments_out:
    *bad = 0;
    if (!r) /* [hw, 2z] channels-last -> mean, logvar NCHW; DiagonalGaussianDistribution's clamp */
        for (int64_t px = 0; px < h * w; px++)
            for (int64_t c = 0; c < zc; c++) {
                float m = moments[px * 2 * zc + c], lv = moments[px * 2 * zc + zc + c];
                *bad += !isfinite(m) || !isfinite(lv);
                mean[c * h * w + px] = m;
                logvar[c * h * w + px] = lv < -30.0f ? -30.0f : lv > 20.0f ? 20.0f : lv;
            }
    free(moments);
    vkd_cmd_destroy(g.c);
    vkd_pool_destroy(p->d, g.pool);
    vkd_wstore_release(ws, ENC_PREFIX);
    vkd_wstore_release(ws, QUANT_PREFIX);
    vkd_memory_trim(p->d);
    return r;
}

vkd_result vkd_encode_stage_run(vkd_pipe *p, const float *img, int64_t H, int64_t W, int tile, float *mean,
                                float *logvar)
{
    if (!p->cfg.vae.has_encoder) {
        VKD_ERROR("this checkpoint's VAE has no encoder (first_stage_model.encoder.*): it cannot take an image; "
                  "pass a VAE that has one with --vae");
        return VKD_ERR_UNSUPPORTED;
    }
    size_t bad = 0, n = (size_t)(H / 8 * (W / 8) * 2 * p->cfg.vae.z_channels);
    vkd_result r = encode_with(p, p->ws, p->dt, img, H, W, tile, mean, logvar, &bad);
    if (!r && bad && p->dt == VKD_F16) {
        /* as the decode: SD VAEs may overflow fp16; encode again with fp32 weights of its own */
        VKD_WARN("the VAE encoder overflowed fp16 (NaN/Inf in its output): encoding again in fp32");
        vkd_wstore *ws32 = NULL;
        r = vkd_wstore_create(p->d, p->w, VKD_F32, &ws32);
        if (!r)
            r = encode_with(p, ws32, VKD_F32, img, H, W, tile, mean, logvar, &bad);
        vkd_wstore_destroy(ws32);
        vkd_memory_trim(p->d);
    }
    if (!r && bad) {
        VKD_ERROR("VAE encoder: %zu of %zu output values are NaN/Inf; the VAE's weights may hold NaN/Inf (vkdiff "
                  "info scans them)", bad, n);
        r = VKD_ERR_NON_FINITE;
    }
    return r;
}

void vkd_posterior_sample(const float *mean, const float *logvar, const float *eps, float scale, float *z, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float std = (float)exp((double)(0.5f * logvar[i])); /* torch.exp(0.5 * logvar) */
        z[i] = (mean[i] + std * eps[i]) * scale;
    }
}
