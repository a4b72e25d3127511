/* Outpainting: see outpaint.h. */
#include "pipeline/outpaint.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "image/resize.h"

void vkd_pad_replicate(const uint8_t *src, int sw, int sh, int ch, int l, int t, int r, int b, uint8_t *dst)
{
    int dw = sw + l + r, dh = sh + t + b;
    for (int y = 0; y < dh; y++) {
        int sy = y - t < 0 ? 0 : y - t >= sh ? sh - 1 : y - t;
        for (int x = 0; x < dw; x++) {
            int sx = x - l < 0 ? 0 : x - l >= sw ? sw - 1 : x - l;
            memcpy(dst + ((size_t)y * dw + x) * ch, src + ((size_t)sy * sw + sx) * ch, (size_t)ch);
        }
    }
}

vkd_result vkd_outpaint(vkd_pipe *P, vkd_gen_params *p, const vkd_txt2img_io *io, uint8_t *rgb, vkd_timings *tm)
{
    int W = p->width, H = p->height, L = p->pad_left, T = p->pad_top;
    int W2 = W + L + p->pad_right, H2 = H + T + p->pad_bottom;
    uint8_t *img = malloc((size_t)W * H * 3), *big = malloc((size_t)W2 * H2 * 3), *mask = malloc((size_t)W2 * H2);
    uint8_t *inner = p->mask ? malloc((size_t)W * H) : NULL;
    vkd_result r = img && big && mask && (!p->mask || inner) ? VKD_OK : VKD_ERR_OUT_OF_HOST_MEMORY;
    /* the image (and mask) at width x height first, then onto the canvas */
    if (!r)
        r = vkd_image_resize(p->init_image, p->init_width, p->init_height, 3, img, W, H);
    if (!r && p->mask)
        r = vkd_image_resize(p->mask, p->mask_width, p->mask_height, 1, inner, W, H);
    if (!r) {
        vkd_pad_replicate(img, W, H, 3, L, T, p->pad_right, p->pad_bottom, big);
        memset(mask, 255, (size_t)W2 * H2);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                mask[(size_t)(y + T) * W2 + x + L] = inner ? inner[(size_t)y * W + x] : 0;
        vkd_gen_params p2 = *p;
        p2.width = W2, p2.height = H2;
        p2.init_image = big, p2.init_width = W2, p2.init_height = H2;
        p2.mask = mask, p2.mask_width = W2, p2.mask_height = H2;
        p2.pad_left = p2.pad_top = p2.pad_right = p2.pad_bottom = 0;
        VKD_INFO("outpainting: %dx%d on a %dx%d canvas, the new area masked", W, H, W2, H2);
        r = vkd_txt2img(P, &p2, io, rgb, tm);
        p->seed_used = p2.seed_used;
    }
    free(img), free(big), free(mask), free(inner);
    return r;
}
