/* Hires fix: see hires.h. */
#include "pipeline/hires.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "image/resize.h"
#include "pipeline/txt2img.h"

/* aten's area_pixel_compute_source_index for align_corners=False: scale * (dst + 0.5) - 0.5, at least 0 */
static float source_index(float scale, int64_t dst) { float s = scale * ((float)dst + 0.5f) - 0.5f; return s < 0 ? 0 : s; }

void vkd_latent_bilinear(const float *x, int64_t c, int64_t h, int64_t w, float *out, int64_t oh, int64_t ow)
{
    float sy = (float)h / (float)oh, sx = (float)w / (float)ow;
    for (int64_t y = 0; y < oh; y++) {
        float fy = source_index(sy, y);
        int64_t y0 = (int64_t)fy, y1 = y0 + (y0 < h - 1);
        float ly = fy - (float)y0, hy = 1.0f - ly;
        for (int64_t xx = 0; xx < ow; xx++) {
            float fx = source_index(sx, xx);
            int64_t x0 = (int64_t)fx, x1 = x0 + (x0 < w - 1);
            float lx = fx - (float)x0, hx = 1.0f - lx;
            for (int64_t k = 0; k < c; k++) {
                const float *p = x + k * h * w;
                out[(k * oh + y) * ow + xx] =
                    hy * (hx * p[y0 * w + x0] + lx * p[y0 * w + x1]) + ly * (hx * p[y1 * w + x0] + lx * p[y1 * w + x1]);
            }
        }
    }
}

static void add_times(vkd_timings *to, const vkd_timings *t)
{
    to->text_ms += t->text_ms, to->encode_ms += t->encode_ms, to->unet_setup_ms += t->unet_setup_ms;
    to->unet_ms += t->unet_ms, to->vae_ms += t->vae_ms, to->unet_evals += t->unet_evals;
    to->vae_tiles = t->vae_tiles;
    to->planned_peak_bytes = to->planned_peak_bytes > t->planned_peak_bytes ? to->planned_peak_bytes
                                                                              : t->planned_peak_bytes;
    to->peak_bytes = t->peak_bytes;
}

vkd_result vkd_hires(vkd_pipe *P, vkd_gen_params *p, uint8_t *rgb, vkd_timings *tm)
{
    int W = p->width, H = p->height;
    int W2 = (int)(W * p->hires_scale) / 8 * 8, H2 = (int)(H * p->hires_scale) / 8 * 8;
    bool latent = !p->hires_upscale || !strcmp(p->hires_upscale, "latent");
    int64_t zc = P->cfg.unet.out_channels, h = H / 8, w = W / 8, h2 = H2 / 8, w2 = W2 / 8;
    float *lat = malloc((size_t)(zc * h * w) * sizeof *lat), *lat2 = NULL;
    uint8_t *rgb1 = malloc((size_t)W * H * 3), *rgb2 = NULL;
    if (!lat || !rgb1) {
        free(lat), free(rgb1);
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    /* 1. the image at the size asked (its latent only, for a latent upscale) */
    vkd_gen_params p1 = *p;
    p1.hires_scale = 0;
    vkd_txt2img_io io1 = {.latent_out = lat, .no_decode = latent};
    vkd_timings t;
    memset(&t, 0, sizeof t);
    VKD_INFO("hires fix: first pass at %dx%d", W, H);
    vkd_result r = vkd_txt2img(P, &p1, &io1, rgb1, &t);
    add_times(tm, &t);
    p->seed_used = p1.seed_used;
    /* 2. upscaled, then img2img at the larger size: A1111 draws the second pass's noise
     *    from the same seed again */
    vkd_gen_params p2 = *p;
    p2.hires_scale = 0;
    p2.width = W2, p2.height = H2, p2.seed = p1.seed_used;
    p2.steps = p->hires_steps > 0 ? p->hires_steps : p->steps;
    p2.strength = p->hires_strength;
    vkd_txt2img_io io2;
    memset(&io2, 0, sizeof io2);
    if (!r && latent) {
        if (!(lat2 = malloc((size_t)(zc * h2 * w2) * sizeof *lat2)))
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
        else
            vkd_latent_bilinear(lat, zc, h, w, lat2, h2, w2);
        io2.init_latent = lat2;
    } else if (!r) {
        if (!(rgb2 = malloc((size_t)W2 * H2 * 3)))
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
        else
            r = vkd_image_resize(rgb1, W, H, 3, rgb2, W2, H2);
        p2.init_image = rgb2, p2.init_width = W2, p2.init_height = H2;
    }
    if (!r) {
        VKD_INFO("hires fix: %s upscale to %dx%d, %d steps at strength %g", latent ? "latent" : "Lanczos", W2, H2,
                 p2.steps, p2.strength);
        memset(&t, 0, sizeof t);
        r = vkd_txt2img(P, &p2, &io2, rgb, &t);
        add_times(tm, &t);
    }
    free(lat), free(lat2), free(rgb1), free(rgb2);
    return r;
}
