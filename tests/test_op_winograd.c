/* The Winograd F(2x2,3x3) conv (ops/winograd.h) against a direct 3x3 convolution in
 * double from PyTorch-layout weights (not a Winograd reference): both storage
 * precisions, each of its kernels this device runs (generic; the subgroup one where Cin
 * is a multiple of a texel's values), odd sizes (partial edge tiles), N = 2, Cin not a
 * multiple of 4 or 8, UNet-sized channels, bias, residual, residual in place; the
 * images split over dispatches and a refused oversize image on a device with 64 KiB
 * bindings; bad shapes refused; the poison check (unwritten outputs). Beside the
 * 320-channel case, the implicit-GEMM conv's error on the same inputs, so the
 * precision Winograd costs reads off the log (docs/winograd.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/conv2d.h"
#include "ops/winograd.h"

enum { BIAS = 1, RES = 2, INPLACE = 4, VS_GEMM = 8 };

typedef struct wino_case {
    int64_t n, h, w, cin, cout;
    int flags;
} wino_case;

/* fp32: the transforms' few extra roundings (each V value sums 4 inputs, each U 9 weights
 * by 1/4ths) on top of the accumulation order: measured ~1e-14, 1e-11 allowed as for
 * conv2d. fp16: U rounded to fp16 (relative error 2^-11 on each of 16 values per weight,
 * against 9 in the plain conv) and the output's rounding: measured 1e-7 .. 4e-7 (the
 * implicit GEMM's: 1e-7 .. 2e-7), 1e-6 allowed as for conv2d. */
static const test_tol tol = {.f32 = 1e-11, .f16 = 1e-6};

typedef struct wino_job {
    const wino_case *cc;
    vkd_winograd_kernel kern;
    vkd_tensor x, w, u, b, res, out;
} wino_job;

/* this test's name for the subgroup kernel given the plain weight, which it transforms in
 * registers (winograd_sg_g: what the models run) instead of U */
#define KERN_SG_G ((vkd_winograd_kernel)100)

static vkd_result record(vkd_cmd *c, void *ctx)
{
    wino_job *j = ctx;
    const vkd_tensor *res = j->cc->flags & INPLACE ? &j->out : j->cc->flags & RES ? &j->res : NULL;
    if (j->kern == KERN_SG_G)
        return vkd_op_conv2d_winograd_ex(c, &j->x, j->cc->h, j->cc->w, &j->w, j->cc->flags & BIAS ? &j->b : NULL, res,
                                         VKD_WINO_SUBGROUP, &j->out);
    vkd_result r = vkd_conv2d_winograd_weights(c, &j->w, &j->u);
    return r ? r : vkd_op_conv2d_winograd_ex(c, &j->x, j->cc->h, j->cc->w, &j->u, j->cc->flags & BIAS ? &j->b : NULL,
                                             res, j->kern, &j->out);
}

static vkd_result record_gemm(vkd_cmd *c, void *ctx)
{
    wino_job *j = ctx;
    vkd_conv2d_params p = vkd_conv2d_params_sym(1, 1);
    return vkd_op_conv2d(c, &j->x, j->cc->h, j->cc->w, &j->w, j->cc->flags & BIAS ? &j->b : NULL,
                         j->cc->flags & RES ? &j->res : NULL, &p, &j->out);
}

/* conv 3x3 pad 1 in double: x [n, h*w, cin], w PyTorch's [cout, cin, 3, 3] */
static void reference(const wino_case *cc, const float *x, const float *w, const float *b, const float *res,
                      double *ref)
{
    for (int64_t img = 0; img < cc->n; img++)
        for (int64_t oy = 0; oy < cc->h; oy++)
            for (int64_t ox = 0; ox < cc->w; ox++)
                for (int64_t o = 0; o < cc->cout; o++) {
                    double s = cc->flags & BIAS ? b[o] : 0.0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int64_t iy = oy + ky - 1, ix = ox + kx - 1;
                            if (iy < 0 || iy >= cc->h || ix < 0 || ix >= cc->w)
                                continue;
                            const float *xp = x + ((img * cc->h + iy) * cc->w + ix) * cc->cin;
                            const float *wp = w + o * cc->cin * 9 + ky * 3 + kx;
                            for (int64_t i = 0; i < cc->cin; i++)
                                s += (double)xp[i] * wp[i * 9];
                        }
                    size_t oi = (size_t)(((img * cc->h + oy) * cc->w + ox) * cc->cout + o);
                    ref[oi] = s + (cc->flags & (RES | INPLACE) ? res[oi] : 0.0);
                }
}

static const char *kern_name(vkd_winograd_kernel k)
{
    return k == VKD_WINO_GENERIC ? "generic" : k == VKD_WINO_SUBGROUP ? "subgroup" : k == KERN_SG_G ? "subgroup, g in-kernel"
                                                                                                   : "device's";
}

/* The case on kernel k (the subgroup one only where it applies); returns the dispatches. */
static unsigned run_case(vkd_device *d, vkd_dtype dt, const wino_case *cc, vkd_winograd_kernel k, test_rng *rng)
{
    size_t nx = (size_t)(cc->n * cc->h * cc->w * cc->cin), nw = (size_t)(cc->cout * cc->cin * 9);
    size_t no = (size_t)(cc->n * cc->h * cc->w * cc->cout);
    float *x = test_randn(rng, dt, nx, 1.0), *w = test_randn(rng, dt, nw, 1.0 / sqrt(9.0 * (double)cc->cin));
    float *b = test_randn(rng, dt, (size_t)cc->cout, 0.5), *res = test_randn(rng, dt, no, 1.0);
    double *ref = test_alloc(no * 8);
    reference(cc, x, w, b, res, ref);
    int64_t xs[3] = {cc->n, cc->h * cc->w, cc->cin}, os[3] = {cc->n, cc->h * cc->w, cc->cout}, bs[1] = {cc->cout};
    int64_t us[3] = {cc->cout, 16, vkd_conv2d_winograd_cin_padded(cc->cin)};
    wino_job j = {.cc = cc, .kern = k, .x = test_tensor_from(d, dt, 3, xs, x)};
    vkd_result r = vkd_conv2d_weight_upload(d, dt, w, cc->cout, cc->cin, 3, 3, &j.w);
    TEST_CHECK(r == VKD_OK, "weight upload: %s", vkd_result_str(r));
    j.u = test_tensor_poisoned(d, dt, 3, us);
    j.b = test_tensor_from(d, dt, 1, bs, b);
    j.res = test_tensor_from(d, dt, 3, os, res);
    /* in place: out holds the residual before the conv */
    j.out = cc->flags & INPLACE ? test_tensor_from(d, dt, 3, os, res) : test_tensor_poisoned(d, dt, 3, os);
    char what[160];
    snprintf(what, sizeof what, "winograd_%s %s %lldx[%lldx%lld,%lld]->%lld%s%s%s", vkd_dtype_suffix(dt),
             kern_name(k), (long long)cc->n, (long long)cc->h, (long long)cc->w, (long long)cc->cin,
             (long long)cc->cout, cc->flags & BIAS ? " +bias" : "", cc->flags & RES ? " +res" : "",
             cc->flags & INPLACE ? " +res in place" : "");
    test_op op = {.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref, .tol = tol};
    if (!r)
        test_op_run(d, &op);
    if (!r && cc->flags & VS_GEMM && dt == VKD_F16) { /* the implicit GEMM on the same inputs, for its error */
        snprintf(what, sizeof what, "  beside it: conv2d (implicit GEMM) %s, same inputs", vkd_dtype_suffix(dt));
        test_op g = {.what = what, .record = record_gemm, .ctx = &j, .out = &j.out, .ref = ref, .tol = tol};
        test_op_run(d, &g);
    }
    TEST_DESTROY(d, &j.x, &j.w, &j.u, &j.b, &j.res, &j.out);
    TEST_FREE(x, w, b, res, ref);
    return op.dispatches;
}

static void test_rejects_bad_shapes(vkd_device *d)
{
    int64_t xs[3] = {1, 64, 4}, os[3] = {1, 64, 8}, us[3] = {8, 16, 8}, ws[4] = {8, 3, 3, 4};
    vkd_tensor x = test_tensor_from(d, VKD_F32, 3, xs, NULL), o = test_tensor_from(d, VKD_F32, 3, os, NULL);
    vkd_tensor u = test_tensor_from(d, VKD_F32, 3, us, NULL), wt = test_tensor_from(d, VKD_F32, 4, ws, NULL);
    vkd_cmd *c = test_cmd_open(d);
    TEST_CHECK(vkd_op_conv2d_winograd(c, &x, 8, 7, &u, NULL, NULL, &o) == VKD_ERR_SHAPE, "H*W mismatch: shape error");
    x.shape[2] = 9; /* Cin 9: u would need 16 padded channels */
    TEST_CHECK(vkd_op_conv2d_winograd(c, &x, 8, 8, &u, NULL, NULL, &o) == VKD_ERR_SHAPE, "Cin mismatch: shape error");
    x.shape[2] = 4, o.shape[2] = 7;
    TEST_CHECK(vkd_op_conv2d_winograd(c, &x, 8, 8, &u, NULL, NULL, &o) == VKD_ERR_SHAPE, "Cout mismatch: shape error");
    o.shape[2] = 8, u.dtype = VKD_F16;
    TEST_CHECK(vkd_op_conv2d_winograd(c, &x, 8, 8, &u, NULL, NULL, &o) == VKD_ERR_SHAPE, "dtype mismatch: shape error");
    u.dtype = VKD_F32, u.shape[2] = 4;
    TEST_CHECK(vkd_conv2d_winograd_weights(c, &wt, &u) == VKD_ERR_SHAPE, "U without padded channels: shape error");
    u.shape[2] = 8, wt.shape[1] = 1;
    TEST_CHECK(vkd_conv2d_winograd_weights(c, &wt, &u) == VKD_ERR_SHAPE, "a 1x3 weight: shape error");
    wt.shape[1] = 3;
    TEST_CHECK(vkd_cmd_dispatch_count(c) == 0, "nothing recorded on error");
    test_cmd_close(c);
    TEST_DESTROY(d, &x, &o, &u, &wt);
}

/* ---- the poison check: every output element written, nothing past a tensor read ---- */
typedef struct poison_job {
    vkd_dtype dt;
    wino_case cc;
    vkd_winograd_kernel kern;
    float *hx, *hw, *hb, *hr;
} poison_job;

static vkd_result poison_run(vkd_device *d, void *ctx, vkd_tensor *out)
{
    poison_job *p = ctx;
    const wino_case *cc = &p->cc;
    int64_t xs[3] = {cc->n, cc->h * cc->w, cc->cin}, os[3] = {cc->n, cc->h * cc->w, cc->cout}, bs[1] = {cc->cout};
    int64_t us[3] = {cc->cout, 16, vkd_conv2d_winograd_cin_padded(cc->cin)};
    wino_job j = {.cc = cc, .kern = p->kern};
    vkd_result r = vkd_tensor_create(d, p->dt, 3, xs, &j.x);
    if (!r) r = vkd_tensor_upload_f32(d, &j.x, p->hx);
    if (!r) r = vkd_conv2d_weight_upload(d, p->dt, p->hw, cc->cout, cc->cin, 3, 3, &j.w);
    if (!r) r = vkd_tensor_create(d, p->dt, 3, us, &j.u);
    if (!r) r = vkd_tensor_create(d, p->dt, 1, bs, &j.b);
    if (!r) r = vkd_tensor_upload_f32(d, &j.b, p->hb);
    if (!r) r = vkd_tensor_create(d, p->dt, 3, os, &j.res);
    if (!r) r = vkd_tensor_upload_f32(d, &j.res, p->hr);
    if (!r) r = vkd_tensor_create(d, p->dt, 3, os, out);
    j.out = *out;
    if (!r) r = test_submit(d, record, &j, NULL, NULL);
    TEST_DESTROY(d, &j.x, &j.w, &j.u, &j.b, &j.res);
    return r;
}

static void poison_cases(vkd_device *d, const vkd_dtype *dts, int ndt, test_rng *rng)
{
    static const wino_case cs[] = {
        {2, 7, 9, 5, 3, BIAS | RES}, /* odd sizes: partial tiles; Cin 5 */
        {1, 3, 5, 16, 24, BIAS},     /* the subgroup kernel's shapes too */
        {2, 1, 1, 8, 8, 0},
    };
    for (int i = 0; i < ndt; i++)
        for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++)
            for (int kk = VKD_WINO_GENERIC; kk <= VKD_WINO_SUBGROUP; kk++) {
                const wino_case *cc = &cs[k];
                if (kk == VKD_WINO_SUBGROUP && (!d->profile.subgroup8 || cc->cin % (dts[i] == VKD_F16 ? 8 : 4)))
                    continue;
                size_t nx = (size_t)(cc->n * cc->h * cc->w * cc->cin), no = (size_t)(cc->n * cc->h * cc->w * cc->cout);
                poison_job p = {dts[i], *cc, (vkd_winograd_kernel)kk, test_randn(rng, dts[i], nx, 1.0),
                                test_randn(rng, dts[i], (size_t)(cc->cout * cc->cin * 9), 0.3),
                                test_randn(rng, dts[i], (size_t)cc->cout, 0.5), test_randn(rng, dts[i], no, 1.0)};
                char what[128];
                snprintf(what, sizeof what, "winograd_%s %s %lldx[%lldx%lld,%lld]->%lld poisoned",
                         vkd_dtype_suffix(dts[i]), kern_name(p.kern), (long long)cc->n, (long long)cc->h,
                         (long long)cc->w, (long long)cc->cin, (long long)cc->cout);
                test_same_over_poison(d, what, poison_run, &p);
                TEST_FREE(p.hx, p.hw, p.hb, p.hr);
            }
}

/* each case on the generic kernel, and on the subgroup one where it applies */
static void run_each_kernel(vkd_device *d, vkd_dtype dt, const void *c, test_rng *rng)
{
    const wino_case *cc = c;
    run_case(d, dt, cc, VKD_WINO_GENERIC, rng);
    if (d->profile.subgroup8 && cc->cin % (dt == VKD_F16 ? 8 : 4) == 0) {
        run_case(d, dt, cc, VKD_WINO_SUBGROUP, rng);
        run_case(d, dt, cc, KERN_SG_G, rng);
    }
}

int main(void)
{
    test_rng rng = {test_seed()};
    const wino_case cases[] = {
        {1, 1, 1, 3, 5, BIAS},             /* one pixel: one tile, three quarters outside */
        {1, 3, 5, 5, 7, BIAS | RES},       /* odd H and W, Cin 5 */
        {2, 7, 7, 3, 13, BIAS | RES},      /* N = 2, Cin 3, Cout not a multiple of 8 */
        {1, 9, 16, 16, 24, RES},           /* odd H, even W */
        {2, 5, 6, 8, 16, BIAS | INPLACE},  /* the residual is out itself */
        {1, 6, 5, 12, 9, BIAS},            /* Cin a multiple of 4, not of 8 */
        {2, 8, 8, 320, 64, BIAS | RES | VS_GEMM}, /* UNet channels at an 8x8 size (Cout cut: the GEMM beside it then
                                                    * takes its small tile, which compiles in a fraction of the time) */
        {1, 7, 5, 328, 24, BIAS},          /* Cin 320-ish, odd sizes */
    };
    vkd_dtype dts[2];
    vkd_device *d = test_device_open_poisoned(0);
    int ndt = test_dtypes(d, dts);
    test_rejects_bad_shapes(d);
    /* the rule the UNet and VAE will choose by: never a 1x1 image (16 multiplies per pixel
     * against 9), nor Cin off the texel; SD1.5's 64x64 .. 8x8 convs where the subgroup kernel runs */
    TEST_CHECK(!vkd_conv2d_winograd_worth(d, 2, 1, 1, 1280, 1280), "winograd not worth it on a 1x1 image");
    TEST_CHECK(!vkd_conv2d_winograd_worth(d, 2, 64, 64, 3, 128), "winograd not worth it at Cin 3");
    TEST_CHECK(vkd_conv2d_winograd_worth(d, 2, 64, 64, 320, 320) == d->profile.subgroup8,
               "winograd worth it at 64x64x320 exactly where the subgroup kernel runs");
    TEST_EACH_DTYPE(d, cases, run_each_kernel, &rng);
    poison_cases(d, dts, ndt, &rng);
    test_device_close(d);

    /* 64 KiB bindings: 3 images of 40x36x8 fp32 (45 KiB each) one dispatch each (plus the
     * weights' transform); images over one window in bands of output rows, each input
     * window with its halo rows (odd sizes: a short last band, a partial last tile row);
     * a row of 2 x 1100 x 8 fp32 (70 KiB) refused */
    d = test_device_open(64 * 1024);
    const wino_case split = {3, 40, 36, 8, 8, BIAS | RES};
    unsigned nd = run_case(d, VKD_F32, &split, VKD_WINO_AUTO, &rng);
    TEST_CHECK(nd == 4, "3 images over 64 KiB windows: 1 + 3 dispatches, got %u", nd);
    const wino_case bands[] = {{1, 80, 72, 8, 8, BIAS | RES}, {2, 81, 37, 8, 12, RES}, {1, 45, 50, 5, 16, BIAS}};
    for (int i = 0; i < 2; i++) { /* fp32, and fp16 on both kernels where it has 16-bit storage */
        int ndt2 = test_dtypes(d, dts);
        if (i < ndt2)
            for (size_t k = 0; k < sizeof bands / sizeof bands[0]; k++) {
                nd = run_case(d, dts[i], &bands[k], VKD_WINO_GENERIC, &rng);
                TEST_CHECK(nd > 2, "an image over one window in bands: %u dispatches", nd);
                if (d->profile.subgroup8 && bands[k].cin % (dts[i] == VKD_F16 ? 8 : 4) == 0) {
                    run_case(d, dts[i], &bands[k], VKD_WINO_SUBGROUP, &rng);
                    run_case(d, dts[i], &bands[k], KERN_SG_G, &rng);
                }
            }
    }
    TEST_CHECK(vkd_conv2d_winograd_worth(d, 1, 80, 72, 8, 8) == d->profile.subgroup8,
               "winograd chosen for an image over one window (it splits)");
    TEST_CHECK(!vkd_conv2d_winograd_worth(d, 1, 8, 1100, 8, 8), "winograd not chosen where two rows exceed a window");
    int64_t xs[3] = {1, 8 * 1100, 8}, us[3] = {8, 16, 8};
    vkd_tensor x = test_tensor_from(d, VKD_F32, 3, xs, NULL), o = test_tensor_from(d, VKD_F32, 3, xs, NULL);
    vkd_tensor u = test_tensor_from(d, VKD_F32, 3, us, NULL);
    vkd_cmd *c = test_cmd_open(d);
    TEST_CHECK(vkd_op_conv2d_winograd(c, &x, 8, 1100, &u, NULL, NULL, &o) == VKD_ERR_TOO_LARGE,
               "two output rows over one binding window: VKD_ERR_TOO_LARGE");
    test_cmd_close(c);
    TEST_DESTROY(d, &x, &o, &u);
    test_device_close(d);
    return test_finish();
}
