/* Nearest 2x upsample (shaders/upsample.comp). The output is split into element
 * ranges; each range reads a bounded span of input rows, bound as its own window. */
#include "ops/upsample.h"

#include "common/log.h"
#include "push_upsample.h"

#define LOCAL 256

/* Input pixel read by output element e (image rows r of 2W pixels, C channels). */
static int64_t src_pixel(int64_t e, int64_t w, int64_t ch)
{
    int64_t t = e / ch, r = t / (2 * w), x = t % (2 * w);
    return (r / 2) * w + x / 2;
}

/* Input element span [lo, hi) read by output elements [e0, e1). Within one output
 * row the source pixel never decreases. When the range spans output rows r0..r1,
 * rows after r0 start at source row (r0+1)/2 and rows before r1 run to the end of
 * source row (r1-1)/2, which bound the span from below and above. */
static void src_span(int64_t e0, int64_t e1, int64_t w, int64_t ch, int64_t *lo, int64_t *hi)
{
    int64_t r0 = e0 / ch / (2 * w), r1 = (e1 - 1) / ch / (2 * w);
    int64_t p_lo = src_pixel(e0, w, ch), p_hi = src_pixel(e1 - 1, w, ch);
    if (r1 > r0) {
        int64_t row_start = ((r0 + 1) / 2) * w, row_end = ((r1 - 1) / 2) * w + w - 1;
        if (row_start < p_lo)
            p_lo = row_start;
        if (row_end > p_hi)
            p_hi = row_end;
    }
    *lo = p_lo * ch;
    *hi = (p_hi + 1) * ch;
}

vkd_result vkd_op_upsample2x(vkd_cmd *c, const vkd_tensor *in, int64_t h, int64_t w, vkd_tensor *out)
{
    if (in->ndim != 3 || h < 1 || w < 1 || in->shape[1] != h * w)
        return vkd_op_shape_error("upsample2x", "want in [N, H*W, C] with H*W matching h, w", in);
    int64_t n = in->shape[0], ch = in->shape[2], total = n * 4 * h * w * ch;
    if (out->dtype != in->dtype || out->ndim != 3 || out->shape[0] != n || out->shape[1] != 4 * h * w ||
        out->shape[2] != ch)
        return vkd_op_shape_error("upsample2x", "out must be [N, 4*H*W, C] in in's dtype", out);
    if (total > 0xffffffffll) {
        VKD_ERROR("upsample2x: %lld output elements exceed 32-bit indexing", (long long)total);
        return VKD_ERR_TOO_LARGE;
    }
    const vkd_pipeline *p;
    uint32_t spec[3] = {LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_UPSAMPLE, in->dtype, spec, 3, &p);
    if (r)
        return r;
    int64_t maxe = vkd_op_max_elems(c, in->dtype);
    for (int64_t e0 = 0; e0 < total;) {
        int64_t ne = total - e0 < maxe ? total - e0 : maxe, lo, hi;
        for (;;) {
            src_span(e0, e0 + ne, w, ch, &lo, &hi);
            if (hi - lo <= maxe)
                break;
            ne /= 2; /* an input row larger than half a window: take smaller pieces */
        }
        if (ne < 1)
            return VKD_ERR_INTERNAL;
        vkd_push_upsample pc = {.n = (uint32_t)ne, .base = (uint32_t)e0, .c = (uint32_t)ch, .w = (uint32_t)w,
                                .i_lo = (uint32_t)lo};
        vkd_binding b[2];
        if ((r = vkd_op_bind(c, in, lo, hi - lo, &b[0], &pc.i_off)) || (r = vkd_op_bind(c, out, e0, ne, &b[1], &pc.o_off)))
            return r;
        uint32_t gx, gy;
        vkd_op_grid_1d((uint64_t)ne, LOCAL, &gx, &gy);
        if ((r = vkd_cmd_dispatch(c, p, b, 2, &pc, sizeof pc, gx, gy, 1, "upsample2x")))
            return r;
        e0 += ne;
    }
    return VKD_OK;
}
