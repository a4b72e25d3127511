/* The TAESD stage: see taesd_stage.h. */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/taesd_stage.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "io/layout_taesd.h"
#include "models/graph.h"
#include "models/taesd.h"

struct vkd_taesd_stage {
    vkd_pipe *p;
    char *path;
    vkd_weights *w;
    vkd_wstore *ws;
    vkd_taesd_config cfg;
};

void vkd_taesd_stage_destroy(vkd_taesd_stage *s)
{
    if (!s)
        return;
    vkd_wstore_destroy(s->ws);
    vkd_weights_close(s->w);
    free(s->path);
    free(s);
}

const char *vkd_taesd_stage_path(const vkd_taesd_stage *s) { return s ? s->path : NULL; }

/* "taesd" / "taesdxl" as the files say (metadata, then madebyollin's names), or NULL */
static const char *claimed_family(const vkd_weights *w)
{
    for (size_t i = 0; i < vkd_weights_file_count(w); i++) {
        const vkd_st_file *f = vkd_weights_file(w, i);
        const char *m = vkd_st_metadata(f, "taesd_model");
        if (m)
            return m;
        const char *base = strrchr(vkd_st_label(f), '/');
        base = base ? base + 1 : vkd_st_label(f);
        if (strncmp(base, "taesdxl_", 8) == 0)
            return "taesdxl";
        if (strncmp(base, "taesd_", 6) == 0)
            return "taesd";
    }
    return NULL;
}

vkd_result vkd_taesd_stage_open(vkd_pipe *p, const char *path, vkd_taesd_stage **out)
{
    *out = NULL;
    vkd_taesd_stage *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    s->p = p;
    vkd_result r = vkd_weights_open_taesd(path, &s->w);
    if (!r)
        r = vkd_taesd_detect(s->w, path, &s->cfg);
    if (!r && !s->cfg.has_decoder) {
        VKD_ERROR("%s: a TAESD encoder only; decoding needs the decoder (taesd_decoder.safetensors)", path);
        r = VKD_ERR_FORMAT;
    }
    if (!r && s->cfg.latent_channels != p->cfg.unet.out_channels) {
        VKD_ERROR("%s: a TAESD decoder of %d latent channels; this %s model's latents have %d", path,
                  s->cfg.latent_channels, vkd_family_name(p->cfg.family), p->cfg.unet.out_channels);
        r = VKD_ERR_UNSUPPORTED;
    }
    const char *fam = r ? NULL : claimed_family(s->w);
    const char *want = p->cfg.family == VKD_FAMILY_SDXL ? "taesdxl" : "taesd";
    if (fam && strcmp(fam, want) != 0) {
        VKD_ERROR("%s: this is %s (by its %s), but a %s model needs %s (TAESD for SD1.x/SD2.x, TAESDXL for SDXL)",
                  path, strcmp(fam, "taesdxl") == 0 ? "TAESDXL" : "TAESD", "metadata or file name",
                  vkd_family_name(p->cfg.family), strcmp(want, "taesdxl") == 0 ? "TAESDXL" : "TAESD");
        r = VKD_ERR_UNSUPPORTED;
    }
    if (!r)
        r = vkd_wstore_create(p->d, s->w, p->dt, &s->ws);
    if (r) {
        vkd_taesd_stage_destroy(s);
        return r;
    }
    VKD_INFO("TAESD decoder %s: width %d, %s", path, s->cfg.dec_width, fam ? fam : "family not stated");
    *out = s;
    return VKD_OK;
}

vkd_result vkd_taesd_stage_run(vkd_taesd_stage *s, const float *latent, int64_t h, int64_t w, float *img)
{
    vkd_pipe *p = s->p;
    int64_t hw = h * w, zc = s->cfg.latent_channels, numel = 64 * hw * 3;
    float *z = malloc((size_t)(hw * zc) * sizeof *z);
    if (!z)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    for (int64_t q = 0; q < hw; q++) /* NCHW -> [hw, zc]; TAESD reads the latent unscaled */
        for (int64_t k = 0; k < zc; k++)
            z[q * zc + k] = latent[k * hw + q];
    /* a dry run first: the activation pool is made as large as the recording needs,
     * not in the allocator's 256 MiB steps (memplan.h) */
    vkd_graph_plan plan;
    memset(&plan, 0, sizeof plan);
    vkd_graph g = {.d = p->d, .ws = s->ws, .dt = p->dt, .plan = &plan};
    vkd_tensor tz, out;
    memset(&out, 0, sizeof out);
    int64_t zs[3] = {1, hw, zc};
    vkd_result r = vkd_cmd_create(p->d, &g.c);
    if (!r) {
        tz = g_new3(&g, 1, hw, zc);
        r = vkd_taesd_decode_record(&g, &s->cfg, &tz, h, w, &out);
        g.plan = NULL, g.err = VKD_OK;
    }
    if (!r)
        r = vkd_pool_create_planned(p->d, plan.peak + (uint64_t)hw * (uint64_t)zc * 4, &g.pool);
    /* the weights' blocks (uploaded at the first decode) without slack */
    vkd_memory_expect(p->d, vkd_wstore_prefix_bytes(s->ws, VKD_TAESD_DEC));
    if (!r)
        r = vkd_cmd_begin(g.c);
    if (!r)
        r = vkd_tensor_create_in(p->d, g.pool, p->dt, 3, zs, &tz);
    if (!r)
        r = vkd_tensor_upload_f32(p->d, &tz, z);
    if (!r)
        r = vkd_taesd_decode_record(&g, &s->cfg, &tz, h, w, &out);
    vkd_memory_expect(p->d, 0);
    if (!r)
        r = vkd_cmd_end(g.c);
    if (!r)
        r = vkd_cmd_submit_wait(g.c);
    if (!r)
        r = vkd_tensor_download_f32(p->d, &out, img);
    vkd_cmd_destroy(g.c);
    vkd_pool_destroy(p->d, g.pool);
    free(z);
    if (r)
        return r;
    size_t bad = vkd_count_non_finite(img, (size_t)numel);
    if (bad) {
        VKD_ERROR("TAESD decode: %zu of %lld output values are NaN/Inf; %s", bad, (long long)numel, vkd_fp32_hint);
        return VKD_ERR_NON_FINITE;
    }
    for (int64_t i = 0; i < numel; i++) /* [0, 1] -> the VAE's [-1, 1] */
        img[i] = 2.0f * img[i] - 1.0f;
    return VKD_OK;
}
