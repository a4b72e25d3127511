/* Winograd F(2x2,3x3) convolution (shaders/winograd.comp; docs/winograd.md). */
#include "ops/winograd.h"

#include "common/log.h"
#include "ops/conv2d.h"
#include "push_winograd.h"
#include "vk/device.h"

/* Tiles per invocation (along x) and output channels per workgroup: spec constants 3, 4.
 * The subgroup kernel: 2 x 8 (bench ops on lavapipe: docs/winograd.md). The generic one:
 * 1 x 4 in workgroups of 64 invocations over the tiles -- it is the fallback for odd Cin,
 * and with 2 x 8 its JIT compile took 25 s (fp32) and 49 s (fp16) in an ASan process on
 * lavapipe, where every storage load is a loop over the lanes. */
#define WINO_SG_TT 2
#define WINO_SG_TC 8
#define WINO_TT 1
#define WINO_TC 4
#define WINO_LOCAL 64

vkd_result vkd_conv2d_winograd_weights(vkd_cmd *c, const vkd_tensor *weight, vkd_tensor *u)
{
    static const char op[] = "winograd_weights";
    if (weight->ndim != 4 || weight->shape[1] != 3 || weight->shape[2] != 3)
        return vkd_op_shape_error(op, "weight must be [Cout, 3, 3, Cin] (vkd_conv2d_weight_upload)", weight);
    int64_t cout = weight->shape[0], cin = weight->shape[3], cinp = vkd_conv2d_winograd_cin_padded(cin);
    if (u->ndim != 3 || u->shape[0] != cout || u->shape[1] != 16 || u->shape[2] != cinp || u->dtype != weight->dtype)
        return vkd_op_shape_error(op, "u must be [Cout, 16, Cin rounded up to 8] of the weight's dtype", u);
    int64_t maxe = vkd_op_max_elems(c, u->dtype);
    if (vkd_tensor_numel(u) > maxe || cout * cinp > 0xffffffffll) {
        VKD_ERROR("%s: U of %lld elements exceeds one binding window", op, (long long)vkd_tensor_numel(u));
        return VKD_ERR_TOO_LARGE;
    }
    const vkd_pipeline *p;
    uint32_t spec[3] = {WINO_LOCAL, 1, 1};
    vkd_result r = vkd_op_pipeline(c, VKD_KERNEL_WINOGRAD_U, u->dtype, spec, 3, &p);
    vkd_binding bind[2];
    vkd_push_winograd pc = {.cin = (uint32_t)cin, .cinp = (uint32_t)cinp, .cout = (uint32_t)cout};
    if (!r)
        r = vkd_op_bind(c, weight, 0, vkd_tensor_numel(weight), &bind[0], &pc.a_off);
    if (!r)
        r = vkd_op_bind(c, u, 0, vkd_tensor_numel(u), &bind[1], &pc.u_off);
    if (r)
        return r;
    uint32_t gx, gy;
    vkd_op_grid_1d((uint64_t)(cout * cinp), WINO_LOCAL, &gx, &gy);
    return vkd_cmd_dispatch(c, p, bind, 2, &pc, sizeof pc, gx, gy, 1, op);
}

vkd_result vkd_op_conv2d_winograd(vkd_cmd *c, const vkd_tensor *x, int64_t h, int64_t w, const vkd_tensor *u,
                                  const vkd_tensor *bias, const vkd_tensor *residual, vkd_tensor *out)
{
    return vkd_op_conv2d_winograd_ex(c, x, h, w, u, bias, residual, VKD_WINO_AUTO, out);
}

vkd_result vkd_op_conv2d_winograd_ex(vkd_cmd *c, const vkd_tensor *x, int64_t h, int64_t w, const vkd_tensor *u,
                                     const vkd_tensor *bias, const vkd_tensor *residual, vkd_winograd_kernel kern,
                                     vkd_tensor *out)
{
    static const char op[] = "conv2d_winograd";
    const vkd_device *d = vkd_cmd_device(c);
    /* u: U [Cout, 16, cinp], or the plain weight [Cout, 3, 3, Cin] transformed in the
     * kernel (winograd_sg_g: the subgroup kernel only) */
    bool from_g = u->ndim == 4;
    if (from_g ? u->shape[1] != 3 || u->shape[2] != 3 : u->ndim != 3 || u->shape[1] != 16)
        return vkd_op_shape_error(op, "u must be [Cout, 16, cinp] (vkd_conv2d_winograd_weights) or the weight "
                                      "[Cout, 3, 3, Cin]", u);
    int64_t cout = u->shape[0], cinp = from_g ? u->shape[3] : u->shape[2];
    if (x->ndim != 3 || h <= 0 || w <= 0 || x->shape[1] != h * w ||
        (from_g ? x->shape[2] != cinp : vkd_conv2d_winograd_cin_padded(x->shape[2]) != cinp))
        return vkd_op_shape_error(op, "input must be [N, H*W, Cin] with u's Cin", x);
    int64_t nimg = x->shape[0], cin = x->shape[2];
    vkd_result rc = vkd_conv_check_epilogue(op, x, u, bias, residual, out, nimg, h * w, cout);
    if (rc)
        return rc;

    int64_t maxe = vkd_op_max_elems(c, x->dtype);
    int64_t in_img = h * w * cin, out_img = h * w * cout;
    if (vkd_tensor_numel(u) > maxe) {
        VKD_ERROR("%s: U of %lld elements exceeds one binding window", op, (long long)vkd_tensor_numel(u));
        return VKD_ERR_TOO_LARGE;
    }
    /* the kernel: the subgroup one where the device and the shape allow */
    uint32_t ept = x->dtype == VKD_F16 ? 8 : 4;
    bool sg_dev = d->profile.subgroup8 && vkd_kernel_usable(&d->profile, VKD_KERNEL_WINOGRAD_SG,
                                                             x->dtype == VKD_F16 ? VKD_VARIANT_F16 : VKD_VARIANT_F32);
    bool sg = from_g || kern == VKD_WINO_SUBGROUP || (kern == VKD_WINO_AUTO && sg_dev && cin % ept == 0);
    if (sg && (!sg_dev || cin % ept || kern == VKD_WINO_GENERIC)) {
        VKD_ERROR("%s: the subgroup kernel needs 8-lane shuffles and Cin a multiple of %u", op, ept);
        return VKD_ERR_UNSUPPORTED;
    }
    uint32_t tt = sg ? WINO_SG_TT : WINO_TT, tc = sg ? WINO_SG_TC : WINO_TC, local = sg ? 8 : WINO_LOCAL;
    int64_t th = (h + 1) / 2, twg = ((w + 1) / 2 + tt - 1) / tt, per_img = th * twg;
    /* Work per dispatch: several whole images where they fit the windows and the grid's y
     * (65535 workgroups), else bands of tile rows of one image: a band of R tile rows
     * writes 2R output rows and reads 2R + 2 input rows (the halo), both windows must
     * hold them. */
    int64_t max_groups = 65535ll * local;
    int64_t imgs = maxe / (in_img > out_img ? in_img : out_img);
    if (imgs * per_img > max_groups)
        imgs = max_groups / per_img;
    int64_t band = th;
    if (imgs < 1) {
        imgs = 1;
        int64_t by_in = (maxe / (w * cin) - 2) / 2, by_out = maxe / (2 * w * cout);
        band = by_in < by_out ? by_in : by_out;
        if (band * twg > max_groups)
            band = max_groups / twg;
        if (band > th)
            band = th;
        if (band < 1) {
            VKD_ERROR("%s: two output rows (W=%lld, Cin=%lld, Cout=%lld) exceed a binding window", op, (long long)w,
                      (long long)cin, (long long)cout);
            return VKD_ERR_TOO_LARGE;
        }
    }
    if (vkd_div_up((uint64_t)cout, tc) > 65535) {
        VKD_ERROR("%s: Cout %lld exceeds one dispatch", op, (long long)cout);
        return VKD_ERR_TOO_LARGE;
    }
    /* counted as the direct conv's multiply-adds, so GFLOP/s compare with vkd_op_conv2d's */
    vkd_cmd_add_flops(c, 2.0 * (double)nimg * (double)(h * w) * (double)cout * 9.0 * (double)cin);

    const vkd_pipeline *p;
    uint32_t spec[5] = {local, 1, 1, tt, tc};
    vkd_result r = vkd_op_pipeline(c, from_g ? VKD_KERNEL_WINOGRAD_SG_G : sg ? VKD_KERNEL_WINOGRAD_SG : VKD_KERNEL_WINOGRAD,
                                   x->dtype, spec, 5, &p);
    if (r)
        return r;
    vkd_binding bind[5];
    vkd_push_winograd pc = {.cin = (uint32_t)cin, .cinp = (uint32_t)cinp, .cout = (uint32_t)cout,
                            .h = (uint32_t)h, .w = (uint32_t)w, .th = (uint32_t)th, .twg = (uint32_t)twg,
                            .flags = (bias ? VKD_WINO_BIAS : 0) | (residual ? VKD_WINO_RESIDUAL : 0)};
    if ((r = vkd_op_bind(c, u, 0, vkd_tensor_numel(u), &bind[1], &pc.u_off)))
        return r;
    bind[2] = bind[1], bind[3] = bind[1]; /* unused operands still need a buffer */
    if (bias && (r = vkd_op_bind(c, bias, 0, cout, &bind[2], &pc.b_off)))
        return r;
    for (int64_t n0 = 0; n0 < nimg; n0 += imgs)
        for (int64_t ty0 = 0; ty0 < th; ty0 += band) {
            int64_t nn = nimg - n0 < imgs ? nimg - n0 : imgs, rows = th - ty0 < band ? th - ty0 : band;
            int64_t iy_lo = 0, iy_hi = h, oy_lo = 0, oy_hi = h; /* whole images */
            if (band < th) {
                iy_lo = 2 * ty0 - 1 > 0 ? 2 * ty0 - 1 : 0, iy_hi = 2 * (ty0 + rows) + 1 < h ? 2 * (ty0 + rows) + 1 : h;
                oy_lo = 2 * ty0, oy_hi = 2 * (ty0 + rows) < h ? 2 * (ty0 + rows) : h;
            }
            pc.th = (uint32_t)rows, pc.ty0 = (uint32_t)(band < th ? ty0 : 0), pc.iy_lo = (uint32_t)iy_lo;
            pc.groups = (uint32_t)(nn * rows * twg);
            int64_t in0 = n0 * in_img + iy_lo * w * cin, in_n = (nn - 1) * in_img + (iy_hi - iy_lo) * w * cin;
            int64_t out0 = n0 * out_img + oy_lo * w * cout, out_n = (nn - 1) * out_img + (oy_hi - oy_lo) * w * cout;
            if ((r = vkd_op_bind(c, x, in0, in_n, &bind[0], &pc.a_off)))
                return r;
            if ((r = vkd_op_bind(c, out, out0, out_n, &bind[4], &pc.o_off)))
                return r;
            if (residual && (r = vkd_op_bind(c, residual, out0, out_n, &bind[3], &pc.r_off)))
                return r;
            if ((sg && pc.a_off % ept) || pc.u_off % ept) { /* texel fetches, 4-wide U loads: on 16 bytes */
                VKD_ERROR("%s: %s does not start on 16 bytes", op, pc.u_off % ept ? "u" : "x");
                return VKD_ERR_UNSUPPORTED;
            }
            if ((r = vkd_cmd_dispatch(c, p, bind, 5, &pc, sizeof pc, vkd_div_up((uint64_t)cout, tc),
                                      vkd_div_up(pc.groups, local), 1, op)))
                return r;
        }
    return VKD_OK;
}

bool vkd_conv2d_winograd_worth(const vkd_device *d, int64_t n, int64_t h, int64_t w, int64_t cin, int64_t cout)
{
    (void)n, (void)cout;
    /* From bench ops --winograd on lavapipe (docs/winograd.md, BENCHMARKS.md): the subgroup
     * kernel ran SD1.5's 3x3 convs 1.4-2.2x faster than the subgroup GEMM at 64x64 .. 8x8
     * (Cin 320-1280, fp16 and fp32), and slower at 1x1 (0.67-0.95x): on a tiny image
     * the partial tiles waste most of the 16 multiplies (16 per pixel at 1x1 against 9)
     * and U, 16/9 the weight's size, is read for a handful of pixels. So: the subgroup
     * kernel with Cin a multiple of 8 (its texel in fp16 and fp32), images of 8x8 and up.
     * GPUs: the generic kernel has not been measured against the tiled or cooperative-
     * matrix GEMM (no GPU lent while it was written): never, until it is. */
    if (d->knobs.winograd < 0 || !d->profile.subgroup8 || !vkd_kernel_usable(&d->profile, VKD_KERNEL_WINOGRAD_SG, VKD_VARIANT_F16) ||
        cin % 8 || h < 8 || w < 8)
        return false;
    /* the op refuses a U over one binding window, or two output rows over one: counted at
     * 4 bytes an element, as the caller's dtype is not known here */
    uint64_t win = d->caps.max_binding > d->caps.ssbo_align ? d->caps.max_binding - d->caps.ssbo_align : 0;
    uint64_t rows = 4ull * 4 * (uint64_t)w * (uint64_t)(cin > cout ? cin : cout);
    uint64_t u = 4ull * 16 * (uint64_t)cout * (uint64_t)vkd_conv2d_winograd_cin_padded(cin);
    return rows <= win && u <= win;
}
