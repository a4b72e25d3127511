/* Implicit-GEMM convolution (the conv2d* kernels of shaders/gemm.comp). */
#include "ops/conv2d.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ops/matmul.h"
#include "push_matmul.h"

vkd_result vkd_conv2d_weight_upload(vkd_device *d, vkd_dtype dt, const float *w_pytorch, int64_t cout, int64_t cin,
                                    int kh, int kw, vkd_tensor *out)
{
    if (cout <= 0 || cin <= 0 || kh <= 0 || kw <= 0) {
        VKD_ERROR("conv2d weight: bad shape [%lld, %lld, %d, %d]", (long long)cout, (long long)cin, kh, kw);
        return VKD_ERR_SHAPE;
    }
    size_t n = (size_t)(cout * cin * kh * kw);
    float *t = malloc(n * sizeof *t);
    if (!t)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    /* [cout, cin, kh, kw] -> [cout, kh, kw, cin] */
    for (int64_t o = 0; o < cout; o++)
        for (int64_t i = 0; i < cin; i++)
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++)
                    t[((o * kh + y) * kw + x) * cin + i] = w_pytorch[((o * cin + i) * kh + y) * kw + x];
    int64_t shape[4] = {cout, kh, kw, cin};
    vkd_result r = vkd_tensor_create(d, dt, 4, shape, out);
    if (!r && (r = vkd_tensor_upload_f32(d, out, t)))
        vkd_tensor_destroy(d, out);
    free(t);
    return r;
}

void vkd_conv2d_relay_f16(void *dst, int64_t e0, int64_t n, const void *src, int64_t cout, int64_t cin, int64_t kh,
                          int64_t kw)
{
    (void)cout;
    uint8_t *d = dst;
    const uint8_t *p = src;
    int64_t i = e0 % cin, t = e0 / cin, x = t % kw, y = (t / kw) % kh, o = t / kw / kh;
    for (int64_t k = 0; k < n; k++) { /* destination order: o, y, x, i */
        memcpy(d + 2 * k, p + 2 * (((o * cin + i) * kh + y) * kw + x), 2);
        if (++i == cin) {
            i = 0;
            if (++x == kw) {
                x = 0;
                if (++y == kh)
                    y = 0, o++;
            }
        }
    }
}

vkd_result vkd_conv_check_epilogue(const char *op, const vkd_tensor *x, const vkd_tensor *weight,
                                   const vkd_tensor *bias, const vkd_tensor *residual, const vkd_tensor *out,
                                   int64_t nimg, int64_t pixels, int64_t cout)
{
    if (out->ndim != 3 || out->shape[0] != nimg || out->shape[1] != pixels || out->shape[2] != cout) {
        char s[96];
        VKD_ERROR("%s: output must be [%lld, %lld, %lld] (got %s)", op, (long long)nimg, (long long)pixels,
                  (long long)cout, vkd_tensor_str(out, s, sizeof s));
        return VKD_ERR_SHAPE;
    }
    if (bias && vkd_tensor_numel(bias) != cout)
        return vkd_op_shape_error(op, "bias must have Cout elements", bias);
    if (residual && vkd_tensor_numel(residual) != vkd_tensor_numel(out))
        return vkd_op_shape_error(op, "residual must have the output's shape", residual);
    if (weight->dtype != x->dtype || out->dtype != x->dtype || (bias && bias->dtype != x->dtype) ||
        (residual && residual->dtype != x->dtype))
        return vkd_op_shape_error(op, "all operands must share a dtype", out);
    return VKD_OK;
}

vkd_result vkd_op_conv2d(vkd_cmd *c, const vkd_tensor *x, int64_t h, int64_t w, const vkd_tensor *weight,
                         const vkd_tensor *bias, const vkd_tensor *residual, const vkd_conv2d_params *p,
                         vkd_tensor *out)
{
    static const char op[] = "conv2d";
    if (weight->ndim != 4)
        return vkd_op_shape_error(op, "weight must be [Cout, kh, kw, Cin] (vkd_conv2d_weight_upload)", weight);
    int64_t cout = weight->shape[0], kh = weight->shape[1], kw = weight->shape[2], cin = weight->shape[3];
    if (x->ndim != 3 || h <= 0 || w <= 0 || (!p->upsample && x->shape[1] != h * w) || x->shape[2] != cin)
        return vkd_op_shape_error(op, "input must be [N, H*W, Cin] with the weight's Cin", x);
    if (p->stride < 1 || p->pad_top < 0 || p->pad_bottom < 0 || p->pad_left < 0 || p->pad_right < 0 ||
        p->pad_top >= kh || p->pad_left >= kw) {
        VKD_ERROR("conv2d: bad stride %d / padding (%d,%d,%d,%d) for a %lldx%lld kernel", p->stride, p->pad_top,
                  p->pad_bottom, p->pad_left, p->pad_right, (long long)kh, (long long)kw);
        return VKD_ERR_SHAPE;
    }
    int up = p->upsample ? 1 : 0;
    int64_t sh = h, sw = w; /* stored input rows and columns */
    if (up) {
        sh = p->up_h ? p->up_h : h / 2, sw = p->up_w ? p->up_w : w / 2;
        if ((!p->up_h && (h % 2 || w % 2)) || sh < 1 || sw < 1 || sh > h || sw > w || sh > 0xffff || sw > 0xffff ||
            x->shape[1] != sh * sw)
            return vkd_op_shape_error(op, "upsample: input must be [N, up_h*up_w, Cin], at most H x W", x);
    }
    int64_t nimg = x->shape[0];
    int64_t oh = vkd_conv2d_out_dim(h, (int)kh, p->stride, p->pad_top, p->pad_bottom);
    int64_t ow = vkd_conv2d_out_dim(w, (int)kw, p->stride, p->pad_left, p->pad_right);
    if (oh < 1 || ow < 1)
        return vkd_op_shape_error(op, "input smaller than the kernel", x);
    vkd_result rc = vkd_conv_check_epilogue(op, x, weight, bias, residual, out, nimg, oh * ow, cout);
    if (rc)
        return rc;

    int64_t k = kh * kw * cin;
    /* A 1x1 stride-1 unpadded conv is a linear layer over the pixels. */
    if (kh == 1 && kw == 1 && p->stride == 1 && !up && !p->pad_top && !p->pad_bottom && !p->pad_left && !p->pad_right) {
        int64_t ws[2] = {cout, cin};
        vkd_tensor w2;
        vkd_result r = vkd_tensor_reshape(weight, 2, ws, &w2);
        vkd_linear_opts lo = {.bias = bias, .residual = residual, .scratch = p->scratch};
        return r ? r : vkd_op_linear_ex(c, x, &w2, &lo, out);
    }
    vkd_cmd_add_flops(c, 2.0 * (double)nimg * (double)(oh * ow) * (double)cout * (double)k);

    int64_t maxe = vkd_op_max_elems(c, x->dtype);
    if (cout * k > maxe) {
        VKD_ERROR("conv2d: weight of %lld elements exceeds one binding window", (long long)(cout * k));
        return VKD_ERR_TOO_LARGE;
    }
    vkd_gemm_tile tile = vkd_gemm_tile_for_shape(vkd_cmd_device(c), nimg * oh * ow, cout, k);
    const vkd_pipeline *pl;
    vkd_result r;

    /* Work per dispatch: several whole images when they fit a window, else bands of
     * output rows of one image. A band of R output rows reads (R-1)*stride + kh input
     * rows; both windows, and the grid's y, must hold it. */
    int64_t in_img = sh * sw * cin, out_img = oh * ow * cout;
    int64_t max_rows_grid = 65535ll * tile.bm;
    int64_t imgs = maxe / (in_img > out_img ? in_img : out_img);
    if (imgs * oh * ow > max_rows_grid)
        imgs = max_rows_grid / (oh * ow);
    int64_t band = oh;
    if (imgs < 1) {
        imgs = 1;
        /* (with upsample, R upsampled rows come from fewer stored ones: still a bound) */
        int64_t by_in = ((maxe / (sw * cin)) - kh) / p->stride + 1, by_out = maxe / (ow * cout);
        band = by_in < by_out ? by_in : by_out;
        if (band * ow > max_rows_grid)
            band = max_rows_grid / ow;
        if (band > oh)
            band = oh;
        if (band < 1) {
            VKD_ERROR("conv2d: one output row (W=%lld, Cin=%lld, Cout=%lld) exceeds a binding window",
                      (long long)w, (long long)cin, (long long)cout);
            return VKD_ERR_TOO_LARGE;
        }
    }

    vkd_binding bind[8];
    vkd_push_gemm pc = {.N = (uint32_t)cout, .K = (uint32_t)k,
                        .flags = (bias ? VKD_GEMM_BIAS : 0) | (residual ? VKD_GEMM_RESIDUAL : 0),
                        .cin = (uint32_t)cin, .h = (uint32_t)h, .w = (uint32_t)w, .ow = (uint32_t)ow,
                        .img_stride = (uint32_t)in_img, .stride = (uint32_t)p->stride,
                        .pad_top = (uint32_t)p->pad_top, .pad_left = (uint32_t)p->pad_left, .kw = (uint32_t)kw,
                        /* the stored size, packed (the push block is full) */
                        .up = up ? (uint32_t)(sh << 16 | sw) : 0};
    if ((r = vkd_op_bind(c, weight, 0, cout * k, &bind[1], &pc.w_off)))
        return r;
    bind[2] = bind[1]; /* unused operands still need a buffer */
    bind[5] = bind[1], bind[6] = bind[1]; /* the linear's (the cooperative-matrix kernels bind 8) */
    if (bias && (r = vkd_op_bind(c, bias, 0, cout, &bind[2], &pc.b_off)))
        return r;
    for (int64_t n0 = 0; n0 < nimg; n0 += imgs) {
        int64_t nn = nimg - n0 < imgs ? nimg - n0 : imgs;
        for (int64_t oy0 = 0; oy0 < oh; oy0 += band) {
            int64_t rows = oh - oy0 < band ? oh - oy0 : band;
            /* input rows this band reads, clamped to the image */
            int64_t iy_lo = oy0 * p->stride - p->pad_top, iy_hi = (oy0 + rows - 1) * p->stride - p->pad_top + kh;
            if (iy_lo < 0)
                iy_lo = 0;
            if (iy_hi > h)
                iy_hi = h;
            if (nn > 1 || band == oh) {
                iy_lo = 0;
                iy_hi = h;
            }
            if (up) /* the stored rows those upsampled rows come from */
                iy_lo = iy_lo * sh / h, iy_hi = (iy_hi - 1) * sh / h + 1;
            int64_t m = nn * rows * ow;
            pc.M = (uint32_t)m;
            pc.rows = (uint32_t)rows;
            pc.oy0 = (uint32_t)oy0;
            pc.iy_lo = (uint32_t)iy_lo;
            int64_t in0 = n0 * in_img + iy_lo * sw * cin, in_n = (nn - 1) * in_img + (iy_hi - iy_lo) * sw * cin;
            int64_t out0 = (n0 * oh * ow + oy0 * ow) * cout;
            if ((r = vkd_op_bind(c, x, in0, in_n, &bind[0], &pc.a_off)))
                return r;
            if ((r = vkd_op_bind(c, out, out0, m * cout, &bind[4], &pc.o_off)))
                return r;
            bind[3] = bind[1];
            pc.r_off = 0;
            if (residual && (r = vkd_op_bind(c, residual, out0, m * cout, &bind[3], &pc.r_off)))
                return r;
            int vec4 = cin % 4 == 0 && pc.a_off % 4 == 0 && pc.w_off % 4 == 0;
            vec4 = vkd_gemm_vec_width(vkd_cmd_device(c), &tile, x->dtype, vec4, cin, pc.a_off, pc.w_off);
            if ((r = vkd_gemm_pipeline(c, true, x->dtype, &tile, vec4, 0, &pl)))
                return r;
            if ((r = vkd_gemm_dispatch(c, pl, &tile, 0, bind, 5, &pc, p->scratch, op)))
                return r;
        }
    }
    return VKD_OK;
}
