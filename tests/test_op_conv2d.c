/* conv2d against a double reference computed from PyTorch-layout weights, both
 * storage precisions: 3x3 stride 1 / stride 2 (symmetric and the VAE encoder's
 * (0,1,0,1) padding), 1x1, UNet conv_in/conv_out channel counts, odd sizes, the
 * conv of a 2x nearest upsampling (the UNet's Upsample), and the band split on a
 * device whose binding range is lowered. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/conv2d.h"
#include "ops/matmul.h"

enum { BIAS = 1, RES = 2 };

typedef struct conv_case {
    int64_t n, h, w, cin, cout;
    int k;
    vkd_conv2d_params p;
    int flags;
} conv_case;

/* fp32: accumulation order only; fp16: one output rounding */
static const test_tol tol = {.f32 = 1e-11, .f16 = 1e-6};
/* the fp16-arithmetic kernels (gemm_f16.glsl): as tests/test_op_matmul.c tol_h derives,
 * nmse ~ (u^2/3) * (3 + HC/2), u = 2^-11, HC = 16 (fp16 partial sums over 16 steps of k)
 * whatever K; allowed 2x that */
static const test_tol tol_h = {.f32 = 0, .f16 = 2 * (0x1p-22 / 3.0) * (3 + 16 / 2)};

typedef struct conv_job {
    const conv_case *cc;
    vkd_conv2d_params p;
    vkd_tensor x, w, b, res, scratch, out;
} conv_job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    conv_job *j = ctx;
    return vkd_op_conv2d(c, &j->x, j->cc->h, j->cc->w, &j->w, j->cc->flags & BIAS ? &j->b : NULL,
                         j->cc->flags & RES ? &j->res : NULL, &j->p, &j->out);
}

/* Returns the number of dispatches the conv took. */
static unsigned run_case(vkd_device *d, vkd_dtype dt, const conv_case *ccp, test_rng *rng)
{
    const conv_case cc = *ccp;
    vkd_conv2d_params p = cc.p;
    int64_t oh = vkd_conv2d_out_dim(cc.h, cc.k, p.stride, p.pad_top, p.pad_bottom);
    int64_t ow = vkd_conv2d_out_dim(cc.w, cc.k, p.stride, p.pad_left, p.pad_right);
    int up = p.upsample ? 1 : 0;
    int64_t sh = cc.h >> up, sw = cc.w >> up; /* the stored input */
    if (up && p.up_h) /* upsampled to h x w from up_h x up_w: torch's nearest, floor(y * in / out) */
        sh = p.up_h, sw = p.up_w;
    size_t nx = (size_t)(cc.n * sh * sw * cc.cin), nw = (size_t)(cc.cout * cc.cin * cc.k * cc.k);
    size_t no = (size_t)(cc.n * oh * ow * cc.cout);
    float *x = test_randn(rng, dt, nx, 1.0), *w = test_randn(rng, dt, nw, 1.0 / sqrt((double)(cc.cin * cc.k * cc.k)));
    float *b = test_randn(rng, dt, (size_t)cc.cout, 0.5), *res = test_randn(rng, dt, no, 1.0);
    double *ref = test_alloc(no * 8);
    /* reference: PyTorch weight layout [cout, cin, kh, kw], NCHW semantics on [N, H*W, C] data */
    for (int64_t img = 0; img < cc.n; img++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++)
                for (int64_t o = 0; o < cc.cout; o++) {
                    double s = cc.flags & BIAS ? b[o] : 0.0;
                    for (int ky = 0; ky < cc.k; ky++) {
                        int64_t iy = oy * p.stride - p.pad_top + ky;
                        if (iy < 0 || iy >= cc.h)
                            continue;
                        for (int kx = 0; kx < cc.k; kx++) {
                            int64_t ix = ox * p.stride - p.pad_left + kx;
                            if (ix < 0 || ix >= cc.w)
                                continue;
                            int64_t sy = up ? iy * sh / cc.h : iy, sx = up ? ix * sw / cc.w : ix;
                            const float *xp = x + ((img * sh + sy) * sw + sx) * cc.cin;
                            const float *wp = w + o * cc.cin * cc.k * cc.k + ky * cc.k + kx;
                            for (int64_t i = 0; i < cc.cin; i++)
                                s += (double)xp[i] * wp[i * cc.k * cc.k];
                        }
                    }
                    size_t oi = (size_t)(((img * oh + oy) * ow + ox) * cc.cout + o);
                    ref[oi] = s + (cc.flags & RES ? res[oi] : 0.0);
                }
    int64_t xs[3] = {cc.n, sh * sw, cc.cin}, os[3] = {cc.n, oh * ow, cc.cout}, bs[1] = {cc.cout};
    conv_job j = {.cc = ccp, .x = test_tensor_from(d, dt, 3, xs, x)};
    vkd_result r = vkd_conv2d_weight_upload(d, dt, w, cc.cout, cc.cin, cc.k, cc.k, &j.w);
    TEST_CHECK(r == VKD_OK, "weight upload: %s", vkd_result_str(r));
    j.b = test_tensor_from(d, dt, 1, bs, b);
    j.res = test_tensor_from(d, dt, 3, os, res);
    j.out = test_tensor_poisoned(d, dt, 3, os);
    /* split-K partial sums where this device's GEMM splits the shape, as the graph gives them */
    int64_t sn = vkd_gemm_split_scratch_numel(d, dt, 0, cc.n * oh * ow, cc.cout, cc.k * cc.k * cc.cin, cc.cin);
    if (sn)
        j.scratch = test_tensor_poisoned(d, VKD_F32, 1, &sn);
    p.scratch = sn ? &j.scratch : NULL;
    j.p = p;
    char what[160];
    snprintf(what, sizeof what, "conv2d_%s%s %lldx[%lldx%lld,%lld]->%lld k%d s%d pad(%d,%d,%d,%d)%s%s%s",
             vkd_dtype_suffix(dt), d->knobs.fp16_arith > 0 ? " fp16-arith" : "", (long long)cc.n, (long long)cc.h, (long long)cc.w, (long long)cc.cin,
             (long long)cc.cout, cc.k, p.stride, p.pad_top, p.pad_bottom, p.pad_left, p.pad_right,
             cc.flags & BIAS ? " +bias" : "", cc.flags & RES ? " +res" : "", up ? " upsampled" : "");
    test_op op = {.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref,
                  .tol = d->knobs.fp16_arith > 0 ? tol_h : tol};
    if (!r)
        test_op_run(d, &op);
    TEST_DESTROY(d, &j.scratch, &j.x, &j.w, &j.b, &j.res, &j.out);
    TEST_FREE(x, w, b, res, ref);
    return op.dispatches;
}

/* vkd_conv2d_relay_f16 (a weight's upload in chunks from a file mapping) against the
 * re-lay done whole, for chunks that start anywhere in the kernel */
static void test_relay_chunks(void)
{
    enum { CO = 3, CI = 5, KH = 3, KW = 2, N = CO * CI * KH * KW };
    uint16_t src[N], want[N], got[N];
    for (int e = 0; e < N; e++)
        src[e] = (uint16_t)(e * 7 + 1);
    for (int o = 0; o < CO; o++)
        for (int i = 0; i < CI; i++)
            for (int y = 0; y < KH; y++)
                for (int x = 0; x < KW; x++)
                    want[((o * KH + y) * KW + x) * CI + i] = src[((o * CI + i) * KH + y) * KW + x];
    int bad = 0;
    for (int chunk = 1; chunk <= N; chunk += 6) {
        memset(got, 0, sizeof got);
        for (int e0 = 0; e0 < N; e0 += chunk)
            vkd_conv2d_relay_f16(got + e0, e0, e0 + chunk <= N ? chunk : N - e0, src, CO, CI, KH, KW);
        bad += memcmp(got, want, sizeof got) != 0;
    }
    TEST_CHECK(bad == 0, "conv kernel re-laid in chunks: %d chunk sizes differ from the whole re-lay", bad);
}

static void test_conv2d_rejects_bad_shapes(vkd_device *d)
{
    int64_t xs[3] = {1, 64, 4}, os[3] = {1, 64, 8};
    float wv[8 * 5 * 9] = {0};
    vkd_tensor x = test_tensor_from(d, VKD_F32, 3, xs, NULL), o = test_tensor_from(d, VKD_F32, 3, os, NULL), w;
    vkd_result r = vkd_conv2d_weight_upload(d, VKD_F32, wv, 8, 5, 3, 3, &w);
    TEST_CHECK(r == VKD_OK, "weight upload: %s", vkd_result_str(r));
    vkd_cmd *c = test_cmd_open(d);
    vkd_conv2d_params p = vkd_conv2d_params_sym(1, 1);
    TEST_CHECK(vkd_op_conv2d(c, &x, 8, 8, &w, NULL, NULL, &p, &o) == VKD_ERR_SHAPE, "Cin mismatch must be a shape error");
    w.shape[3] = 4;
    TEST_CHECK(vkd_op_conv2d(c, &x, 8, 7, &w, NULL, NULL, &p, &o) == VKD_ERR_SHAPE, "H*W mismatch must be a shape error");
    p = vkd_conv2d_params_sym(2, 1);
    TEST_CHECK(vkd_op_conv2d(c, &x, 8, 8, &w, NULL, NULL, &p, &o) == VKD_ERR_SHAPE, "output size must be checked");
    p = vkd_conv2d_params_sym(0, 1);
    TEST_CHECK(vkd_op_conv2d(c, &x, 8, 8, &w, NULL, NULL, &p, &o) == VKD_ERR_SHAPE, "stride 0 must be refused");
    TEST_CHECK(vkd_cmd_dispatch_count(c) == 0, "nothing recorded on error");
    test_cmd_close(c);
    TEST_DESTROY(d, &x, &o, &w);
}

/* Every case of cs on every GEMM kernel this device can run (test_gemm_tiles), chosen by
 * override: the one place this test chooses a kernel. split_k: only the kernels that
 * split K (the cooperative-matrix ones, vkd_gemm_ksplit), each case in 1 dispatch (its
 * last workgroup per tile adds the partial sums) and with the knob in 2 (partial sums,
 * reduce). */
static void run_on_each_tile(vkd_device *d, const conv_case *cs, size_t ncs, bool split_k, test_rng *rng)
{
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    vkd_gemm_tile tiles[6];
    int ntiles = test_gemm_tiles(d, tiles);
    for (int t = 0; t < ntiles; t++) {
        if (split_k && tiles[t].direct < 3)
            continue;
        d->knobs.gemm_tile = tiles[t];
        for (int i = test_gemm_first_dtype(&tiles[t], ndt); i < ndt; i++)
            for (size_t j = 0; j < ncs; j++) {
                unsigned nd = run_case(d, dts[i], &cs[j], rng);
                if (!split_k)
                    continue;
                TEST_CHECK(nd == 1, "split-K conv: 1 dispatch (the last workgroup of each tile adds the "
                           "partial sums), got %u", nd);
                d->knobs.splitk_reduce = true;
                nd = run_case(d, dts[i], &cs[j], rng);
                d->knobs.splitk_reduce = false;
                TEST_CHECK(nd == 2, "split-K conv, reduce dispatch: 2 dispatches (partial sums, reduce), got %u", nd);
            }
    }
    d->knobs.gemm_tile = (vkd_gemm_tile){0};
}

/* The cases on the fp16-arithmetic kernels (conv2d_h, conv2d_direct_h; a 1x1 conv runs
 * the linear ones), forced by the knob where fp16 arithmetic is offered (lavapipe). */
static void run_fp16_arith(vkd_device *d, const conv_case *cs, size_t ncs, test_rng *rng)
{
    if (!(d->profile.features & VKD_KF_FP16_ARITH)) {
        printf("note: no fp16 arithmetic with fp16 storage here: the *_h conv kernels are not run\n");
        return;
    }
    const vkd_gemm_tile tiles[2] = {{64, 64, 16, 4, 4, 0}, {64, 4, 1, 4, 4, 1}};
    TEST_CHECK(vkd_kernel_usable(&d->profile, VKD_KERNEL_CONV2D_H, VKD_VARIANT_F16) &&
                   vkd_kernel_usable(&d->profile, VKD_KERNEL_CONV2D_DIRECT_H, VKD_VARIANT_F16),
               "the fp16-arithmetic conv kernels are usable where fp16 arithmetic is offered");
    d->knobs.fp16_arith = 1;
    for (int t = 0; t < 2; t++) {
        d->knobs.gemm_tile = tiles[t];
        for (size_t j = 0; j < ncs; j++)
            run_case(d, VKD_F16, &cs[j], rng);
    }
    d->knobs.gemm_tile = (vkd_gemm_tile){0};
    d->knobs.fp16_arith = 0;
}

static void run_on_own_kernel(vkd_device *d, vkd_dtype dt, const void *c, test_rng *rng) { run_case(d, dt, c, rng); }

int main(void)
{
    test_rng rng = {test_seed()};
    const vkd_conv2d_params s1 = vkd_conv2d_params_sym(1, 1), s2 = vkd_conv2d_params_sym(2, 1),
                            pt1 = vkd_conv2d_params_sym(1, 0), pt2 = vkd_conv2d_params_sym(2, 0);
    const vkd_conv2d_params asym = {2, 0, 1, 0, 1, 0, NULL, 0, 0}; /* F.pad(x, (0,1,0,1)) then stride 2, pad 0 */
    const vkd_conv2d_params up = {1, 1, 1, 1, 1, 1, NULL, 0, 0};   /* Upsample: nearest 2x, then 3x3 pad 1 */
    /* diffusers' Upsample2D to a skip connection of odd size: 5x3 -> 9x5, 4x4 -> 7x8, 40x18 -> 79x36 */
    const vkd_conv2d_params up95 = {1, 1, 1, 1, 1, 1, NULL, 5, 3}, up78 = {1, 1, 1, 1, 1, 1, NULL, 4, 4},
                            up_79x36 = {1, 1, 1, 1, 1, 1, NULL, 40, 18};
    /* SD shapes on the device's own kernel, with Cout cut where the full layer would take
     * lavapipe minutes */
    const conv_case sd[] = {
        {1, 64, 64, 320, 64, 3, s1, BIAS},           /* UNet level 0 ResBlock conv (K = 2880) */
        {1, 32, 32, 640, 320, 3, s2, BIAS},          /* stride 2, channel change (K = 5760) */
        {2, 16, 16, 320, 640, 1, pt1, BIAS | RES},   /* 1x1 skip (runs the linear kernel) */
        {2, 16, 16, 4, 320, 3, s1, BIAS},            /* UNet conv_in */
        {1, 16, 16, 320, 4, 3, s1, BIAS},            /* UNet conv_out */
        {1, 24, 24, 128, 3, 3, s1, BIAS},            /* VAE conv_out */
        {1, 16, 16, 3, 128, 3, s1, BIAS},            /* VAE encoder conv_in: Cin 3 */
        {2, 32, 32, 640, 64, 3, up, BIAS},           /* UNet Upsample 16x16 -> 32x32 */
    };
    /* on every GEMM kernel */
    const conv_case cases[] = {
        {2, 7, 9, 5, 3, 3, s1, BIAS | RES},          /* odd everything */
        {1, 8, 8, 8, 12, 3, s1, BIAS | RES},
        {1, 9, 7, 6, 11, 3, s2, BIAS},
        {1, 8, 8, 8, 8, 3, asym, BIAS},              /* VAE encoder downsample */
        {2, 9, 7, 5, 13, 3, asym, RES},
        {1, 5, 6, 3, 7, 1, pt2, BIAS},               /* 1x1 stride 2: the im2col path */
        {2, 6, 10, 5, 7, 3, up, BIAS | RES},         /* upsampled, odd channels */
        {1, 8, 8, 8, 12, 3, up, BIAS},
        {2, 9, 5, 8, 12, 3, up95, BIAS | RES},       /* upsampled to an odd size */
        {1, 7, 8, 5, 6, 3, up78, BIAS},
    };
    /* split-K (the cooperative-matrix kernels, vkd_gemm_ksplit): few output tiles, long K */
    const conv_case longk[] = {
        {1, 6, 6, 320, 40, 3, s1, BIAS | RES},       /* K = 2880 in 10 chunks */
        {2, 5, 7, 264, 24, 3, s2, BIAS},             /* K = 2376: the last chunk short */
    };
    /* the fp16-arithmetic kernels: the UNet's long K (3x3 over 320 and 576 channels) */
    const conv_case longk_h[] = {
        {1, 12, 12, 320, 24, 3, s1, BIAS | RES},     /* K = 2880 */
        {1, 8, 8, 576, 16, 3, s1, BIAS},             /* K = 5184 */
        {2, 16, 16, 64, 32, 3, up, BIAS},            /* upsampled, K = 576 */
    };
    /* 64 KiB bindings: a 40x36x16 fp32 image (90 KiB) must be split into bands of output
     * rows whose input windows carry the halo rows. */
    const conv_case split[] = {
        {2, 40, 36, 16, 24, 3, s1, BIAS | RES},
        {1, 41, 36, 16, 8, 3, s2, BIAS},
        {1, 40, 36, 16, 8, 3, asym, RES},
        {3, 10, 12, 16, 20, 3, s1, BIAS},            /* several whole images per window */
        {1, 80, 36, 16, 8, 3, up, BIAS},             /* upsampled: bands of stored rows */
        {1, 79, 36, 16, 8, 3, up_79x36, BIAS},       /* ... to an odd size */
    };

    vkd_device *d = test_device_open(0);
    test_relay_chunks();
    test_conv2d_rejects_bad_shapes(d);
    TEST_EACH_DTYPE(d, sd, run_on_own_kernel, &rng);
    run_on_each_tile(d, cases, sizeof cases / sizeof cases[0], false, &rng);
    run_on_each_tile(d, longk, sizeof longk / sizeof longk[0], true, &rng);
    run_fp16_arith(d, longk_h, sizeof longk_h / sizeof longk_h[0], &rng);
    run_fp16_arith(d, cases, sizeof cases / sizeof cases[0], &rng);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    run_on_each_tile(d, split, sizeof split / sizeof split[0], false, &rng);
    run_fp16_arith(d, split, sizeof split / sizeof split[0], &rng);
    test_device_close(d);
    return test_finish();
}
