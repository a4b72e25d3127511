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

static unsigned run_case(vkd_device *d, vkd_dtype dt, conv_case cc, test_rng *rng)
{
    vkd_conv2d_params p = cc.p;
    int64_t oh = vkd_conv2d_out_dim(cc.h, cc.k, p.stride, p.pad_top, p.pad_bottom);
    int64_t ow = vkd_conv2d_out_dim(cc.w, cc.k, p.stride, p.pad_left, p.pad_right);
    int up = p.upsample ? 1 : 0;
    int64_t sh = cc.h >> up, sw = cc.w >> up; /* the stored input */
    if (up && p.up_h) /* upsampled to h x w from up_h x up_w: torch's nearest, floor(y * in / out) */
        sh = p.up_h, sw = p.up_w;
    size_t nx = (size_t)(cc.n * sh * sw * cc.cin), nw = (size_t)(cc.cout * cc.cin * cc.k * cc.k);
    size_t no = (size_t)(cc.n * oh * ow * cc.cout);
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)cc.cout * 4), *res = malloc(no * 4);
    double *ref = malloc(no * 8);
    test_fill_normal(rng, x, nx, 1.0);
    test_fill_normal(rng, w, nw, 1.0 / sqrt((double)(cc.cin * cc.k * cc.k)));
    test_fill_normal(rng, b, (size_t)cc.cout, 0.5);
    test_fill_normal(rng, res, no, 1.0);
    test_round_to(dt, x, nx);
    test_round_to(dt, w, nw);
    test_round_to(dt, b, (size_t)cc.cout);
    test_round_to(dt, res, no);
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
    vkd_tensor tx = test_tensor_from(d, dt, 3, xs, x), tw;
    vkd_result r = vkd_conv2d_weight_upload(d, dt, w, cc.cout, cc.cin, cc.k, cc.k, &tw);
    TEST_CHECK(r == VKD_OK, "weight upload: %s", vkd_result_str(r));
    vkd_tensor tb = test_tensor_from(d, dt, 1, bs, b);
    vkd_tensor tr = test_tensor_from(d, dt, 3, os, res);
    vkd_tensor to = test_tensor_poisoned(d, dt, 3, os);
    /* split-K partial sums where this device's GEMM splits the shape, as the graph gives them */
    int64_t sn = vkd_gemm_split_scratch_numel(d, dt, 0, cc.n * oh * ow, cc.cout, cc.k * cc.k * cc.cin, cc.cin);
    vkd_tensor ts;
    memset(&ts, 0, sizeof ts);
    if (sn)
        ts = test_tensor_poisoned(d, VKD_F32, 1, &sn);
    p.scratch = sn ? &ts : NULL;
    vkd_cmd *c = NULL;
    if (!r) r = vkd_cmd_create(d, &c);
    if (!r) r = vkd_cmd_begin(c);
    if (!r)
        r = vkd_op_conv2d(c, &tx, cc.h, cc.w, &tw, cc.flags & BIAS ? &tb : NULL, cc.flags & RES ? &tr : NULL, &p, &to);
    if (!r) r = vkd_cmd_end(c);
    if (!r) r = vkd_cmd_submit_wait(c);
    TEST_CHECK(r == VKD_OK, "conv2d: %s", vkd_result_str(r));
    char what[160];
    snprintf(what, sizeof what, "conv2d_%s %lldx[%lldx%lld,%lld]->%lld k%d s%d pad(%d,%d,%d,%d)%s%s%s (%u disp)",
             vkd_dtype_suffix(dt), (long long)cc.n, (long long)cc.h, (long long)cc.w, (long long)cc.cin,
             (long long)cc.cout, cc.k, p.stride, p.pad_top, p.pad_bottom, p.pad_left, p.pad_right,
             cc.flags & BIAS ? " +bias" : "", cc.flags & RES ? " +res" : "", up ? " upsampled" : "",
             c ? vkd_cmd_dispatch_count(c) : 0);
    test_expect_close(d, &to, ref, dt == VKD_F16 ? 1e-6 : 1e-11, what);
    unsigned nd = c ? vkd_cmd_dispatch_count(c) : 0;
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &ts);
    vkd_tensor_destroy(d, &tx);
    vkd_tensor_destroy(d, &tw);
    vkd_tensor_destroy(d, &tb);
    vkd_tensor_destroy(d, &tr);
    vkd_tensor_destroy(d, &to);
    free(x);
    free(w);
    free(b);
    free(res);
    free(ref);
    return nd;
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
    vkd_cmd *c = NULL;
    if (!r) r = vkd_cmd_create(d, &c);
    if (!r) r = vkd_cmd_begin(c);
    TEST_CHECK(r == VKD_OK, "cmd: %s", vkd_result_str(r));
    vkd_conv2d_params p = vkd_conv2d_params_sym(1, 1);
    TEST_CHECK(vkd_op_conv2d(c, &x, 8, 8, &w, NULL, NULL, &p, &o) == VKD_ERR_SHAPE, "Cin mismatch must be a shape error");
    w.shape[3] = 4;
    TEST_CHECK(vkd_op_conv2d(c, &x, 8, 7, &w, NULL, NULL, &p, &o) == VKD_ERR_SHAPE, "H*W mismatch must be a shape error");
    p = vkd_conv2d_params_sym(2, 1);
    TEST_CHECK(vkd_op_conv2d(c, &x, 8, 8, &w, NULL, NULL, &p, &o) == VKD_ERR_SHAPE, "output size must be checked");
    p = vkd_conv2d_params_sym(0, 1);
    TEST_CHECK(vkd_op_conv2d(c, &x, 8, 8, &w, NULL, NULL, &p, &o) == VKD_ERR_SHAPE, "stride 0 must be refused");
    TEST_CHECK(vkd_cmd_dispatch_count(c) == 0, "nothing recorded on error");
    vkd_cmd_end(c);
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &x);
    vkd_tensor_destroy(d, &o);
    vkd_tensor_destroy(d, &w);
}

int main(void)
{
    test_rng rng = {test_seed()};
    const vkd_conv2d_params s1 = vkd_conv2d_params_sym(1, 1), s2 = vkd_conv2d_params_sym(2, 1),
                            pt1 = vkd_conv2d_params_sym(1, 0);
    const vkd_conv2d_params asym = {2, 0, 1, 0, 1, 0, NULL, 0, 0}; /* F.pad(x, (0,1,0,1)) then stride 2, pad 0 */
    const vkd_conv2d_params up = {1, 1, 1, 1, 1, 1, NULL, 0, 0}; /* Upsample: nearest 2x, then 3x3 pad 1 */
    /* diffusers' Upsample2D to a skip connection of odd size: 5x3 -> 9x5, 4x4 -> 7x8 */
    const vkd_conv2d_params up95 = {1, 1, 1, 1, 1, 1, NULL, 5, 3}, up78 = {1, 1, 1, 1, 1, 1, NULL, 4, 4};
    /* SD shapes, with Cout cut where the full layer would take lavapipe minutes */
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
    const conv_case cases[] = {
        {2, 7, 9, 5, 3, 3, s1, BIAS | RES},          /* odd everything */
        {1, 8, 8, 8, 12, 3, s1, BIAS | RES},
        {1, 9, 7, 6, 11, 3, s2, BIAS},
        {1, 8, 8, 8, 8, 3, asym, BIAS},              /* VAE encoder downsample */
        {2, 9, 7, 5, 13, 3, asym, RES},
        {1, 5, 6, 3, 7, 1, vkd_conv2d_params_sym(2, 0), BIAS}, /* 1x1 stride 2: the im2col path */
        {2, 6, 10, 5, 7, 3, up, BIAS | RES},         /* upsampled, odd channels */
        {1, 8, 8, 8, 12, 3, up, BIAS},
        {2, 9, 5, 8, 12, 3, up95, BIAS | RES},       /* upsampled to an odd size */
        {1, 7, 8, 5, 6, 3, up78, BIAS},
    };
    vkd_device *d = test_device_open(0);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    vkd_gemm_tile tiles[6];
    int ntiles = test_gemm_tiles(d, tiles);
    test_relay_chunks();
    test_conv2d_rejects_bad_shapes(d);
    for (int i = 0; i < ndt; i++)
        for (size_t j = 0; j < sizeof sd / sizeof sd[0]; j++)
            run_case(d, dts[i], sd[j], &rng);
    /* every GEMM kernel this device can run (test_gemm_tiles), by override */
    for (int t = 0; t < ntiles; t++) {
        d->knobs.gemm_tile = tiles[t];
        for (int i = test_gemm_first_dtype(&tiles[t], ndt); i < ndt; i++)
            for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++)
                run_case(d, dts[i], cases[j], &rng);
    }
    /* split-K (the cooperative-matrix kernels, vkd_gemm_ksplit): few output tiles, long K */
    const conv_case longk[] = {
        {1, 6, 6, 320, 40, 3, s1, BIAS | RES},       /* K = 2880 in 10 chunks */
        {2, 5, 7, 264, 24, 3, s2, BIAS},             /* K = 2376: the last chunk short */
    };
    for (int t = 0; t < ntiles; t++) {
        if (tiles[t].direct < 3)
            continue;
        d->knobs.gemm_tile = tiles[t];
        for (int i = test_gemm_first_dtype(&tiles[t], ndt); i < ndt; i++)
            for (size_t j = 0; j < sizeof longk / sizeof longk[0]; j++) {
                unsigned nd = run_case(d, dts[i], longk[j], &rng);
                TEST_CHECK(nd == 2, "split-K conv: 2 dispatches (partial sums, reduce), got %u", nd);
            }
    }
    d->knobs.gemm_tile = (vkd_gemm_tile){0};
    test_device_close(d);

    /* 64 KiB bindings: a 40x36x16 fp32 image (90 KiB) must be split into bands of
     * output rows whose input windows carry the halo rows. */
    const conv_case split[] = {
        {2, 40, 36, 16, 24, 3, s1, BIAS | RES},
        {1, 41, 36, 16, 8, 3, s2, BIAS},
        {1, 40, 36, 16, 8, 3, asym, RES},
        {3, 10, 12, 16, 20, 3, s1, BIAS},            /* several whole images per window */
        {1, 80, 36, 16, 8, 3, up, BIAS},             /* upsampled: bands of stored rows */
        {1, 79, 36, 16, 8, 3, {1, 1, 1, 1, 1, 1, NULL, 40, 18}, BIAS}, /* ... to an odd size */
    };
    d = test_device_open(64 * 1024);
    ndt = test_dtypes(d, dts);
    ntiles = test_gemm_tiles(d, tiles);
    for (int t = 0; t < ntiles; t++) {
        d->knobs.gemm_tile = tiles[t];
        for (int i = test_gemm_first_dtype(&tiles[t], ndt); i < ndt; i++)
            for (size_t j = 0; j < sizeof split / sizeof split[0]; j++)
                run_case(d, dts[i], split[j], &rng);
    }
    d->knobs.gemm_tile = (vkd_gemm_tile){0};
    test_device_close(d);
    return test_finish();
}
