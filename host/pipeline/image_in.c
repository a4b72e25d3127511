/* Image input for a generation: see image_in.h and docs/img2img.md. */
#include "pipeline/image_in.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "image/resize.h"
#include "pipeline/denoise_stage.h"
#include "pipeline/encode_stage.h"

void vkd_image_job_free(vkd_image_job *j)
{
    free(j->img), free(j->mask), free(j->img8), free(j->mask8), free(j->mask_lat), free(j->z), free(j->noise);
    free(j->concat);
    memset(j, 0, sizeof *j);
}

int vkd_img2img_first(double strength, int steps)
{
    int t_enc = (int)((strength < 0.999 ? strength : 0.999) * steps);
    return steps - t_enc - 1;
}

/* src (sw x sh x ch) at dw x dh, copied when the size is already right */
static uint8_t *fit(const uint8_t *src, int sw, int sh, int ch, int dw, int dh)
{
    uint8_t *dst = malloc((size_t)dw * dh * ch);
    if (!dst)
        return NULL;
    if (sw == dw && sh == dh)
        memcpy(dst, src, (size_t)dw * dh * ch);
    else if (vkd_image_resize(src, sw, sh, ch, dst, dw, dh)) {
        free(dst);
        return NULL;
    }
    return dst;
}

vkd_result vkd_image_job_prepare(const vkd_gen_params *p, int zc, vkd_image_job *j)
{
    memset(j, 0, sizeof *j);
    j->H = p->height, j->W = p->width, j->h = p->height / 8, j->w = p->width / 8, j->zc = zc;
    size_t px = (size_t)(j->H * j->W);
    j->img8 = fit(p->init_image, p->init_width, p->init_height, 3, p->width, p->height);
    j->img = malloc(px * 3 * sizeof *j->img);
    if (!j->img8 || !j->img)
        goto nomem;
    if (p->init_width != p->width || p->init_height != p->height)
        VKD_INFO("init image %dx%d resized to %dx%d (Lanczos)", p->init_width, p->init_height, p->width, p->height);
    for (size_t i = 0; i < px * 3; i++) /* diffusers VaeImageProcessor: x / 255, then 2x - 1 */
        j->img[i] = 2.0f * ((float)j->img8[i] / 255.0f) - 1.0f;
    if (!p->mask)
        return VKD_OK;
    j->mask8 = fit(p->mask, p->mask_width, p->mask_height, 1, p->width, p->height);
    j->mask = malloc(px * sizeof *j->mask);
    j->mask_lat = malloc((size_t)(j->h * j->w) * sizeof *j->mask_lat);
    if (!j->mask8 || !j->mask || !j->mask_lat)
        goto nomem;
    if (p->mask_blur > 0 && vkd_mask_blur(j->mask8, p->width, p->height, p->mask_blur))
        goto nomem;
    for (size_t i = 0; i < px; i++)
        j->mask[i] = (float)j->mask8[i] / 255.0f;
    return VKD_OK;
nomem:
    vkd_image_job_free(j);
    return VKD_ERR_OUT_OF_HOST_MEMORY;
}

vkd_result vkd_image_job_from_latent(const vkd_gen_params *p, int zc, const float *z, vkd_image_job *j)
{
    memset(j, 0, sizeof *j);
    j->H = p->height, j->W = p->width, j->h = p->height / 8, j->w = p->width / 8, j->zc = zc;
    size_t n = (size_t)(zc * j->h * j->w);
    if (!(j->z = malloc(n * sizeof *j->z)))
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    memcpy(j->z, z, n * sizeof *j->z);
    return VKD_OK;
}

/* The latent mask: binarised at 0.5 (diffusers' mask processor; A1111 rounds its
 * latent mask too), then nearest to h x w (F.interpolate: source pixel 8y, 8x). */
static void latent_mask(vkd_image_job *j)
{
    for (int64_t y = 0; y < j->h; y++)
        for (int64_t x = 0; x < j->w; x++)
            j->mask_lat[y * j->w + x] = j->mask[(y * j->H / j->h) * j->W + x * j->W / j->w] >= 0.5f ? 1.0f : 0.0f;
}

/* encode img [H*W, 3], draw eps, -> the scaled posterior sample z[n] */
static vkd_result encode_sample(vkd_pipe *P, vkd_image_job *j, const float *img, vkd_rng *rng, float *z)
{
    size_t n = (size_t)(j->zc * j->h * j->w);
    float *mean = malloc(n * sizeof *mean), *logvar = malloc(n * sizeof *logvar), *eps = malloc(n * sizeof *eps);
    vkd_result r = mean && logvar && eps ? VKD_OK : VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!r)
        r = vkd_encode_stage_run(P, img, j->H, j->W, j->enc_tile, mean, logvar);
    if (!r)
        r = vkd_rng_randn(rng, eps, n);
    if (!r)
        vkd_posterior_sample(mean, logvar, eps, P->cfg.vae.scale_factor, z, n);
    free(mean), free(logvar), free(eps);
    return r;
}

/* diffusers' legacy inpainting with an ordinary UNet, after every step: the known
 * region is the image's latent noised to the new level, x = (1 - m) (z + noise sigma) + m x */
static vkd_result blend(void *user, float *x, size_t n, float sigma)
{
    const vkd_image_job *j = user;
    size_t hw = (size_t)(j->h * j->w);
    for (size_t i = 0; i < n; i++) {
        float m = j->mask_lat[i % hw];
        float known = j->z[i] + j->noise[i] * sigma;
        x[i] = (1.0f - m) * known + m * x[i];
    }
    return VKD_OK;
}

vkd_result vkd_image_job_latents(vkd_pipe *P, const vkd_gen_params *p, vkd_image_job *j, vkd_rng *rng, float *noise,
                                 vkd_sample_params *sp)
{
    size_t n = (size_t)(j->zc * j->h * j->w), hw = (size_t)(j->h * j->w);
    bool nine = P->cfg.unet.in_channels > j->zc, full = p->strength >= 1.0 && j->mask;
    if (j->mask && !nine && P->cfg.unet.in_channels != j->zc)
        return VKD_ERR_INTERNAL;
    if (!j->mask && nine) {
        VKD_ERROR("this is an inpainting checkpoint (a UNet of %d input channels): give it a mask (--mask)",
                  P->cfg.unet.in_channels);
        return VKD_ERR_INVALID_ARG;
    }
    j->noise = malloc(n * sizeof *j->noise);
    if (!j->noise)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result r = VKD_OK;
    /* the image's latent: img2img, the ordinary UNet's blend, a 9-channel UNet below strength 1 */
    if (!(nine && full) && !j->z) { /* (a hires pass brings its latent along) */
        if (!(j->z = malloc(n * sizeof *j->z)))
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        r = encode_sample(P, j, j->img, rng, j->z);
    }
    if (!r)
        r = vkd_rng_randn(rng, j->noise, n);
    if (r)
        return r;
    memcpy(noise, j->noise, n * sizeof *noise);
    if (!full) { /* A1111's cut of the schedule, from the image's latent plus noise */
        sp->first = vkd_img2img_first(p->strength, p->steps);
        sp->init = j->z;
    }
    if (!j->mask)
        return VKD_OK;
    latent_mask(j);
    if (!nine) {
        sp->after_step = blend;
        sp->after_step_user = j;
        return VKD_OK;
    }
    /* a 9-channel UNet: cat([x, mask, masked-image latent]); masked image = image * (mask < 0.5) */
    float *masked = malloc((size_t)(j->H * j->W) * 3 * sizeof *masked);
    j->concat = malloc((n + hw) * sizeof *j->concat);
    if (!masked || !j->concat) {
        free(masked);
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    for (int64_t i = 0; i < j->H * j->W; i++)
        for (int c = 0; c < 3; c++)
            masked[i * 3 + c] = j->mask[i] < 0.5f ? j->img[i * 3 + c] : 0.0f;
    memcpy(j->concat, j->mask_lat, hw * sizeof *j->concat);
    r = encode_sample(P, j, masked, rng, j->concat + hw);
    free(masked);
    return r;
}

void vkd_image_job_paste(const vkd_image_job *j, uint8_t *rgb)
{
    if (!j->mask8)
        return;
    for (int64_t i = 0; i < j->H * j->W; i++) {
        unsigned m = j->mask8[i];
        for (int c = 0; c < 3; c++) { /* A1111 apply_overlay: the input over the output, alpha 255 - mask */
            unsigned in = j->img8[i * 3 + c], out = rgb[i * 3 + c];
            rgb[i * 3 + c] = (uint8_t)((in * (255u - m) + out * m + 127u) / 255u);
        }
    }
}
