/* Lanczos resampling as Pillow computes it, and A1111's Gaussian mask blur
 * (image/resize.h; docs/image_input.md says why these two and where they come from). */
#include "image/resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- Lanczos (Pillow's src/libImaging/Resample.c, re-derived) ------------------------ */

/* Weights in fixed point with 22 fractional bits: 8 bits of pixel, and 2 to spare
 * because a Lanczos row's partial sums can leave [0, 1] (Pillow's PRECISION_BITS). */
#define FRAC_BITS 22
#define PI 3.14159265358979323846

/* Past A1111's slider (64) by a margin; the cost grows with the kernel: 5 * blur + 1 taps a pixel */
#define MAX_BLUR_PX 256

static double sinc(double x)
{
    if (x == 0.0)
        return 1.0;
    x *= PI;
    return sin(x) / x;
}

static double lanczos3(double x)
{
    return (x >= -3.0 && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0;
}

/* One axis: for each output index o the first input index first[o], the tap count
 * count[o] and the weights w[o * ksize + t]. */
typedef struct axis {
    int ksize;
    int *first, *count;
    int32_t *w;
} axis;

static void axis_free(axis *a)
{
    free(a->first);
    free(a->count);
    free(a->w);
}

/* Output pixel o covers input [o * scale, (o + 1) * scale); the kernel is centred there
 * and, when shrinking, stretched by the scale so it averages every input pixel it covers
 * (the antialiasing Pillow added in 2.7; a plain Lanczos would alias). Taps are cut at the
 * image edge and the weights renormalised, which is the same as clamping. */
static vkd_result axis_init(axis *a, int in, int out)
{
    memset(a, 0, sizeof *a);
    double scale = (double)in / out;
    double stretch = scale < 1.0 ? 1.0 : scale;
    double support = 3.0 * stretch;
    a->ksize = (int)ceil(support) * 2 + 1;
    a->first = malloc((size_t)out * sizeof *a->first);
    a->count = malloc((size_t)out * sizeof *a->count);
    a->w = malloc((size_t)out * (size_t)a->ksize * sizeof *a->w);
    double *tmp = malloc((size_t)a->ksize * sizeof *tmp);
    if (!a->first || !a->count || !a->w || !tmp) {
        free(tmp);
        axis_free(a);
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale;
        int lo = (int)(center - support + 0.5); /* truncation toward 0, as Pillow rounds */
        int hi = (int)(center + support + 0.5);
        if (lo < 0)
            lo = 0;
        if (hi > in)
            hi = in;
        int n = hi - lo;
        double sum = 0.0;
        for (int t = 0; t < n; t++) {
            tmp[t] = lanczos3((lo + t - center + 0.5) / stretch);
            sum += tmp[t];
        }
        int32_t *w = a->w + (size_t)o * (size_t)a->ksize;
        for (int t = 0; t < n; t++) {
            double v = (sum != 0.0 ? tmp[t] / sum : tmp[t]) * (1 << FRAC_BITS);
            w[t] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5); /* to nearest, halves away from 0 */
        }
        a->first[o] = lo;
        a->count[o] = n;
    }
    free(tmp);
    return VKD_OK;
}

/* The fixed-point sum (with its rounding half already added) back to 8 bits, clamped. */
static uint8_t clamp8(int64_t acc)
{
    if (acc < 0)
        return 0;
    acc >>= FRAC_BITS;
    return acc > 255 ? 255 : (uint8_t)acc;
}

/* rows [h, sw, ch] -> [h, dw, ch] */
static void pass_x(const axis *a, const uint8_t *src, int sw, int h, int ch, uint8_t *dst, int dw)
{
    for (int y = 0; y < h; y++) {
        const uint8_t *row = src + (size_t)y * (size_t)sw * (size_t)ch;
        for (int o = 0; o < dw; o++) {
            const int32_t *w = a->w + (size_t)o * (size_t)a->ksize;
            const uint8_t *p = row + (size_t)a->first[o] * (size_t)ch;
            for (int c = 0; c < ch; c++) {
                int64_t acc = 1 << (FRAC_BITS - 1);
                for (int t = 0; t < a->count[o]; t++)
                    acc += (int64_t)p[(size_t)t * (size_t)ch + (size_t)c] * w[t];
                dst[((size_t)y * (size_t)dw + (size_t)o) * (size_t)ch + (size_t)c] = clamp8(acc);
            }
        }
    }
}

/* [sh, w, ch] -> [dh, w, ch]; row0 is the input row that src's first row holds */
static void pass_y(const axis *a, const uint8_t *src, int row0, int w, int ch, uint8_t *dst, int dh)
{
    size_t stride = (size_t)w * (size_t)ch;
    for (int o = 0; o < dh; o++) {
        const int32_t *k = a->w + (size_t)o * (size_t)a->ksize;
        const uint8_t *p = src + (size_t)(a->first[o] - row0) * stride;
        for (size_t i = 0; i < stride; i++) {
            int64_t acc = 1 << (FRAC_BITS - 1);
            for (int t = 0; t < a->count[o]; t++)
                acc += (int64_t)p[(size_t)t * stride + i] * k[t];
            dst[(size_t)o * stride + i] = clamp8(acc);
        }
    }
}

vkd_result vkd_image_resize(const uint8_t *src, int sw, int sh, int ch, uint8_t *dst, int dw, int dh)
{
    if (!src || !dst || sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0 || ch < 1 || ch > 4)
        return VKD_ERR_INVALID_ARG;
    if (sw == dw && sh == dh) {
        memcpy(dst, src, (size_t)sw * (size_t)sh * (size_t)ch);
        return VKD_OK;
    }
    axis ay = {0}, ax = {0};
    vkd_result r = VKD_OK;
    uint8_t *tmp = NULL;
    if (sh != dh && (r = axis_init(&ay, sh, dh)) != VKD_OK)
        return r;
    /* only the rows the vertical pass reads are resampled horizontally */
    int y0 = sh != dh ? ay.first[0] : 0;
    int y1 = sh != dh ? ay.first[dh - 1] + ay.count[dh - 1] : sh;
    const uint8_t *mid = src + (size_t)y0 * (size_t)sw * (size_t)ch;
    if (sw != dw) {
        if ((r = axis_init(&ax, sw, dw)) != VKD_OK)
            goto done;
        tmp = malloc((size_t)(y1 - y0) * (size_t)dw * (size_t)ch);
        if (!tmp) {
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
            goto done;
        }
        pass_x(&ax, mid, sw, y1 - y0, ch, sh != dh ? tmp : dst, dw);
        mid = tmp;
    }
    if (sh != dh)
        pass_y(&ay, mid, y0, dw, ch, dst, dh);
done:
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    return r;
}

/* ---- Gaussian mask blur (A1111 modules/processing.py, OpenCV's GaussianBlur) ---------- */

/* cv::borderInterpolate for BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba), repeated for
 * a kernel wider than the image; a single pixel reflects onto itself. */
static int reflect101(int p, int n)
{
    if (n == 1)
        return 0;
    while (p < 0 || p >= n)
        p = p < 0 ? -p : 2 * n - 2 - p;
    return p;
}

/* One 1-D pass over a line of len pixels, rounded to 8 bits. */
static void blur_line(const uint8_t *in, uint8_t *out, int len, const double *k, int r)
{
    for (int i = 0; i < len; i++) {
        double acc = 0.0;
        for (int t = -r; t <= r; t++)
            acc += k[t + r] * in[reflect101(i + t, len)];
        long v = lround(acc); /* ties do not occur in practice: weights are irrational */
        out[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

vkd_result vkd_mask_blur(uint8_t *mask, int w, int h, int blur_px)
{
    if (!mask || w <= 0 || h <= 0)
        return VKD_ERR_INVALID_ARG;
    if (blur_px <= 0)
        return VKD_OK;
    if (blur_px > MAX_BLUR_PX)
        return VKD_ERR_INVALID_ARG;
    int r = (int)(2.5 * blur_px + 0.5); /* A1111: kernel_size = 2 * int(2.5 * blur + 0.5) + 1 */
    int n = 2 * r + 1, len = w > h ? w : h;
    double *k = malloc((size_t)n * sizeof *k);
    uint8_t *line = malloc((size_t)len), *res = malloc((size_t)len);
    if (!k || !line || !res) {
        free(k), free(line), free(res);
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    /* cv::getGaussianKernel for sigma > 0: exp(-x^2 / (2 sigma^2)), x = i - (n-1)/2, summing to 1 */
    double sum = 0.0, s2 = 2.0 * (double)blur_px * (double)blur_px;
    for (int i = 0; i < n; i++)
        sum += k[i] = exp(-(double)(i - r) * (i - r) / s2);
    for (int i = 0; i < n; i++)
        k[i] /= sum;
    /* A1111 blurs x (ksize (n, 1)) into an 8-bit image, then y (ksize (1, n)) */
    for (int y = 0; y < h; y++) {
        uint8_t *row = mask + (size_t)y * (size_t)w;
        blur_line(row, res, w, k, r);
        memcpy(row, res, (size_t)w);
    }
    for (int x = 0; x < w; x++) {
        for (int y = 0; y < h; y++)
            line[y] = mask[(size_t)y * (size_t)w + (size_t)x];
        blur_line(line, res, h, k, r);
        for (int y = 0; y < h; y++)
            mask[(size_t)y * (size_t)w + (size_t)x] = res[y];
    }
    free(k), free(line), free(res);
    return VKD_OK;
}
