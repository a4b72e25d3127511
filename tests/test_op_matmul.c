/* Linear layer against a double reference, both storage precisions, SD shapes and
 * awkward ones, bias/residual epilogues, the layer norm folded into the GEMM
 * (vkd_ln_fold), and the split-by-rows path on a device whose binding range is lowered. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/matmul.h"

/* SPLIT: A given as two tensors side by side along K (vkd_linear_opts.a2), cut at the
 * largest multiple of 16 not above K/2 */
enum { BIAS = 1, RES = 2, RES_IN_PLACE = 4, SPLIT = 16 };

static unsigned run_case(vkd_device *d, vkd_dtype dt, int64_t batch, int64_t m, int64_t k, int64_t n, int flags,
                     test_rng *rng)
{
    size_t na = (size_t)(batch * m * k), nw = (size_t)(n * k), no = (size_t)(batch * m * n);
    float *a = malloc(na * 4), *w = malloc(nw * 4), *b = malloc((size_t)n * 4), *res = malloc(no * 4);
    double *ref = malloc(no * 8);
    test_fill_normal(rng, a, na, 1.0);
    test_fill_normal(rng, w, nw, 1.0 / sqrt((double)k));
    test_fill_normal(rng, b, (size_t)n, 0.5);
    test_fill_normal(rng, res, no, 1.0);
    test_round_to(dt, a, na);
    test_round_to(dt, w, nw);
    test_round_to(dt, b, (size_t)n);
    test_round_to(dt, res, no);
    for (int64_t i = 0; i < batch * m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t q = 0; q < k; q++)
                s += (double)a[i * k + q] * w[j * k + q];
            if (flags & BIAS)
                s += b[j];
            if (flags & (RES | RES_IN_PLACE))
                s += res[i * n + j];
            ref[i * n + j] = s;
        }
    int64_t k1 = flags & SPLIT ? k / 2 / 16 * 16 : k, k2 = k - k1;
    int64_t ashape[3] = {batch, m, k1}, a2shape[3] = {batch, m, k2}, oshape[3] = {batch, m, n}, bshape[1] = {n};
    float *a1 = malloc((size_t)(batch * m * k1) * 4), *a2 = malloc((size_t)(batch * m * (k2 ? k2 : 1)) * 4);
    for (int64_t i = 0; i < batch * m; i++) { /* the two column ranges of a */
        memcpy(a1 + i * k1, a + i * k, (size_t)k1 * 4);
        memcpy(a2 + i * k2, a + i * k + k1, (size_t)k2 * 4);
    }
    vkd_tensor ta = test_tensor_from(d, dt, 3, ashape, a1);
    vkd_tensor ta2 = k2 ? test_tensor_from(d, dt, 3, a2shape, a2) : ta;
    free(a1), free(a2);
    vkd_tensor tw;
    vkd_result r = vkd_linear_weight_upload(d, dt, w, n, k, &tw);
    TEST_CHECK(r == VKD_OK, "weight upload: %s", vkd_result_str(r));
    vkd_tensor tb = test_tensor_from(d, dt, 1, bshape, b);
    vkd_tensor tr = test_tensor_from(d, dt, 3, oshape, res);
    vkd_tensor to = flags & RES_IN_PLACE ? tr : test_tensor_poisoned(d, dt, 3, oshape);
    /* split-K partial sums where this device's GEMM splits the shape, as the graph gives
     * them (kstep: the load width both parts allow, gcd(k1, k2)) */
    int64_t kstep = k;
    if (k2) {
        int64_t x = k1, y = k2;
        while (y) {
            int64_t t = x % y;
            x = y, y = t;
        }
        kstep = x;
    }
    int64_t sn = vkd_gemm_split_scratch_numel(d, dt, 0, batch * m, n, k, kstep);
    vkd_tensor ts;
    memset(&ts, 0, sizeof ts);
    if (sn)
        ts = test_tensor_poisoned(d, VKD_F32, 1, &sn);
    vkd_cmd *c = NULL;
    if (!r) r = vkd_cmd_create(d, &c);
    if (!r) r = vkd_cmd_begin(c);
    vkd_linear_opts o = {.bias = flags & BIAS ? &tb : NULL, .residual = flags & (RES | RES_IN_PLACE) ? &tr : NULL,
                         .a2 = flags & SPLIT ? &ta2 : NULL, .scratch = sn ? &ts : NULL};
    if (!r) r = vkd_op_linear_ex(c, &ta, &tw, &o, &to);
    if (!r) r = vkd_cmd_end(c);
    if (!r) r = vkd_cmd_submit_wait(c);
    TEST_CHECK(r == VKD_OK, "linear: %s", vkd_result_str(r));
    char what[128];
    snprintf(what, sizeof what, "linear_%s [%lld,%lld%s]x[%lld,%lld]%s%s%s (%u dispatches)", vkd_dtype_suffix(dt),
             (long long)(batch * m), (long long)k, flags & SPLIT ? " in 2 parts" : "", (long long)n, (long long)k,
             flags & BIAS ? " +bias" : "", flags & RES ? " +res" : "", flags & RES_IN_PLACE ? " +res in place" : "", c ? vkd_cmd_dispatch_count(c) : 0);
    /* fp32: accumulation order only (~K * eps^2); fp16: one output rounding (~1e-7) */
    test_expect_close(d, &to, ref, dt == VKD_F16 ? 1e-6 : 1e-11, what);
    unsigned nd = c ? vkd_cmd_dispatch_count(c) : 0;
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &ts);
    if (k2)
        vkd_tensor_destroy(d, &ta2);
    vkd_tensor_destroy(d, &ta);
    vkd_tensor_destroy(d, &tw);
    vkd_tensor_destroy(d, &tb);
    vkd_tensor_destroy(d, &tr);
    if (!(flags & RES_IN_PLACE))
        vkd_tensor_destroy(d, &to);
    free(a);
    free(w);
    free(b);
    free(res);
    free(ref);
    return nd;
}

/* LayerNorm(x; gamma, beta, eps) then x w^T (+ b) (+ res) as one folded GEMM, against
 * the two steps in double. Rows get a mean offset of mean_off standard deviations
 * (the shift in the kernel must keep the statistics exact when |mean| >> std). */
static void run_case_ln(vkd_device *d, vkd_dtype dt, int64_t m, int64_t k, int64_t n, int flags, double mean_off,
                        test_rng *rng)
{
    const float eps = 1e-5f;
    size_t na = (size_t)(m * k), nw = (size_t)(n * k), no = (size_t)(m * n);
    float *a = malloc(na * 4), *w = malloc(nw * 4), *b = malloc((size_t)n * 4), *res = malloc(no * 4);
    float *gm = malloc((size_t)k * 4), *bt = malloc((size_t)k * 4), *wf = malloc(nw * 4), *sc = malloc((size_t)n * 8);
    double *ref = malloc(no * 8), *xn = malloc((size_t)k * 8);
    test_fill_normal(rng, a, na, 1.5);
    for (int64_t i = 0; i < m; i++) /* a different offset per row, up to mean_off std */
        for (int64_t q = 0; q < k; q++)
            a[i * k + q] += (float)(mean_off * 1.5 * (double)((i % 7) - 3) / 3.0);
    test_fill_normal(rng, w, nw, 1.0 / sqrt((double)k));
    test_fill_normal(rng, b, (size_t)n, 0.5);
    test_fill_normal(rng, res, no, 1.0);
    test_fill_normal(rng, gm, (size_t)k, 1.0);
    test_fill_normal(rng, bt, (size_t)k, 0.5);
    test_round_to(dt, a, na);
    test_round_to(dt, w, nw);
    test_round_to(dt, b, (size_t)n);
    test_round_to(dt, res, no);
    test_round_to(dt, gm, (size_t)k);
    test_round_to(dt, bt, (size_t)k);
    for (int64_t i = 0; i < m; i++) {
        double mean = 0, var = 0;
        for (int64_t q = 0; q < k; q++)
            mean += a[i * k + q];
        mean /= (double)k;
        for (int64_t q = 0; q < k; q++)
            var += (a[i * k + q] - mean) * (a[i * k + q] - mean);
        double rstd = 1.0 / sqrt(var / (double)k + eps);
        for (int64_t q = 0; q < k; q++)
            xn[q] = (a[i * k + q] - mean) * rstd * gm[q] + bt[q];
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t q = 0; q < k; q++)
                s += xn[q] * w[j * k + q];
            if (flags & BIAS)
                s += b[j];
            if (flags & RES)
                s += res[i * n + j];
            ref[i * n + j] = s;
        }
    }
    vkd_ln_fold(w, flags & BIAS ? b : NULL, gm, bt, n, k, dt, wf, sc);
    int64_t ashape[2] = {m, k}, oshape[2] = {m, n}, lshape[2] = {2, n};
    vkd_tensor ta = test_tensor_from(d, dt, 2, ashape, a);
    vkd_tensor tw;
    vkd_result r = vkd_linear_weight_upload(d, dt, wf, n, k, &tw);
    TEST_CHECK(r == VKD_OK, "weight upload: %s", vkd_result_str(r));
    vkd_tensor tl = test_tensor_from(d, VKD_F32, 2, lshape, sc);
    vkd_tensor tr = test_tensor_from(d, dt, 2, oshape, res);
    vkd_tensor to = test_tensor_poisoned(d, dt, 2, oshape);
    vkd_cmd *c = NULL;
    vkd_linear_opts o = {.residual = flags & RES ? &tr : NULL, .ln = &tl, .ln_eps = eps};
    if (!r) r = vkd_cmd_create(d, &c);
    if (!r) r = vkd_cmd_begin(c);
    if (!r) r = vkd_op_linear_ex(c, &ta, &tw, &o, &to);
    if (!r) r = vkd_cmd_end(c);
    if (!r) r = vkd_cmd_submit_wait(c);
    TEST_CHECK(r == VKD_OK, "linear ln: %s", vkd_result_str(r));
    char what[128];
    snprintf(what, sizeof what, "layernorm+linear_%s [%lld,%lld]x[%lld,%lld]%s%s%s (%u dispatches)",
             vkd_dtype_suffix(dt), (long long)m, (long long)k, (long long)n, (long long)k, flags & BIAS ? " +bias" : "",
             flags & RES ? " +res" : "", mean_off ? " offset" : "", c ? vkd_cmd_dispatch_count(c) : 0);
    /* fp32: ~1e-13; fp16: w * gamma rounded once more than the reference's weights
     * plus the output rounding (~1e-7) */
    test_expect_close(d, &to, ref, dt == VKD_F16 ? 2e-6 : 1e-10, what);
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &ta);
    vkd_tensor_destroy(d, &tw);
    vkd_tensor_destroy(d, &tl);
    vkd_tensor_destroy(d, &tr);
    vkd_tensor_destroy(d, &to);
    free(a), free(w), free(b), free(res), free(gm), free(bt), free(wf), free(sc), free(ref), free(xn);
}

static void test_linear_rejects_bad_shapes(vkd_device *d)
{
    int64_t as[2] = {4, 8}, ws[2] = {5, 9}, os[2] = {4, 5}, bs[1] = {6};
    vkd_tensor a = test_tensor_from(d, VKD_F32, 2, as, NULL), w = test_tensor_from(d, VKD_F32, 2, ws, NULL);
    vkd_tensor o = test_tensor_from(d, VKD_F32, 2, os, NULL), b = test_tensor_from(d, VKD_F32, 1, bs, NULL);
    vkd_cmd *c = NULL;
    vkd_result r = vkd_cmd_create(d, &c);
    if (!r) r = vkd_cmd_begin(c);
    TEST_CHECK(r == VKD_OK, "cmd: %s", vkd_result_str(r));
    TEST_CHECK(vkd_op_linear(c, &a, &w, NULL, NULL, &o) == VKD_ERR_SHAPE, "K mismatch must be a shape error");
    w.shape[1] = 8;
    TEST_CHECK(vkd_op_linear(c, &a, &w, &b, NULL, &o) == VKD_ERR_SHAPE, "bias size mismatch must be a shape error");
    TEST_CHECK(vkd_op_linear(c, &a, &w, NULL, &a, &o) == VKD_ERR_SHAPE, "residual mismatch must be a shape error");
    TEST_CHECK(vkd_cmd_dispatch_count(c) == 0, "nothing recorded on error");
    vkd_cmd_end(c);
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &a);
    vkd_tensor_destroy(d, &w);
    vkd_tensor_destroy(d, &o);
    vkd_tensor_destroy(d, &b);
}


/* vkd_gemm_ksplit: the UNet's small-M long-K GEMMs split, into whole k steps that cover
 * K once; large ones, the folded norm and the other kernel families do not */
static void test_ksplit_choice(void)
{
    const vkd_gemm_tile cm = {.bm = 64, .bn = 64, .bk = 32, .tm = 2, .tn = 16, .direct = 3};
    const int64_t shapes[][3] = {{128, 1280, 11520}, {512, 1280, 11520}, {128, 1280, 23040}, {70, 40, 2400}};
    for (int i = 0; i < 4; i++) {
        int64_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        uint32_t chunk, s = vkd_gemm_ksplit(&cm, 0, m, n, k, VKD_SPLITK_SCRATCH, VKD_SPLITK_TARGET_WG, &chunk);
        TEST_CHECK(s >= 2 && chunk % cm.bk == 0 && chunk >= VKD_SPLITK_MIN_STEPS * cm.bk &&
                       (int64_t)s * chunk >= k && (int64_t)(s - 1) * chunk < k &&
                       4ull * s * m * n <= VKD_SPLITK_SCRATCH,
                   "split-K of M=%lld N=%lld K=%lld: %u chunks of %u", (long long)m, (long long)n, (long long)k, s,
                   chunk);
    }
    uint32_t chunk;
    TEST_CHECK(vkd_gemm_ksplit(&cm, 0, 8192, 320, 1280, VKD_SPLITK_SCRATCH, VKD_SPLITK_TARGET_WG, &chunk) == 1 && chunk == 1280,
               "a GEMM with 640 output tiles is not split");
    TEST_CHECK(vkd_gemm_ksplit(&cm, 1, 128, 1280, 11520, VKD_SPLITK_SCRATCH, VKD_SPLITK_TARGET_WG, &chunk) == 1,
               "the folded LayerNorm is never split");
    TEST_CHECK(vkd_gemm_ksplit(&cm, 0, 128, 1280, 200, VKD_SPLITK_SCRATCH, VKD_SPLITK_TARGET_WG, &chunk) == 1, "short K is not split");
    TEST_CHECK(vkd_gemm_ksplit(&cm, 0, 128, 1280, 11520, 4ull * 128 * 1280, VKD_SPLITK_TARGET_WG, &chunk) == 1,
               "no split where the scratch holds one chunk's sums");
    vkd_gemm_tile tiled = cm;
    tiled.direct = 0;
    TEST_CHECK(vkd_gemm_ksplit(&tiled, 0, 128, 1280, 11520, VKD_SPLITK_SCRATCH, VKD_SPLITK_TARGET_WG, &chunk) == 1,
               "only the cooperative-matrix kernels split");
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    vkd_gemm_tile tiles[6];
    int ntiles = test_gemm_tiles(d, tiles);
    test_linear_rejects_bad_shapes(d);
    test_ksplit_choice();
    /* SD shapes with the device's own kernel */
    for (int i = 0; i < ndt; i++) {
        run_case(d, dts[i], 2, 77, 768, 320, 0, &rng);          /* cross-attn k/v from CLIP context */
        run_case(d, dts[i], 1, 4096, 320, 320, BIAS | RES, &rng); /* attn out proj at 64x64 */
        run_case(d, dts[i], 1, 64, 1280, 5120, BIAS, &rng);     /* GEGLU proj at C=1280 (few rows) */
        run_case(d, dts[i], 1, 40, 5120, 320, BIAS | RES_IN_PLACE, &rng); /* FF out, long K */
        run_case(d, dts[i], 2, 256, 960, 320, BIAS | SPLIT, &rng); /* skip 1x1 conv on cat(640, 320), 16x16 */
        run_case_ln(d, dts[i], 1024, 320, 960, 0, 0, &rng);      /* norm1 + q/k/v at 32x32 */
        run_case_ln(d, dts[i], 256, 640, 5120, BIAS, 8, &rng);   /* norm3 + GEGLU proj, offset rows */
    }
    /* every GEMM kernel this device can run (test_gemm_tiles), by override */
    for (int t = 0; t < ntiles; t++) {
        d->knobs.gemm_tile = tiles[t];
        static const char *const family[5] = {"", " direct", " subgroup", " cooperative matrix",
                                              " cooperative matrix, emulated"};
        printf("tile %ux%ux%u %ux%u%s\n", tiles[t].bm, tiles[t].bn, tiles[t].bk, tiles[t].tm, tiles[t].tn,
               family[tiles[t].direct]);
        for (int i = test_gemm_first_dtype(&tiles[t], ndt); i < ndt; i++) {
            run_case(d, dts[i], 1, 4095, 7, 33, BIAS | RES, &rng); /* nothing a multiple of a tile */
            run_case(d, dts[i], 2, 77, 320, 20, BIAS | RES_IN_PLACE, &rng);
            run_case(d, dts[i], 1, 130, 132, 72, BIAS, &rng);
            run_case(d, dts[i], 3, 5, 1, 1, BIAS, &rng);
            run_case(d, dts[i], 1, 130, 37, 20, BIAS | SPLIT, &rng);  /* 16 + 21: scalar loads */
            run_case(d, dts[i], 2, 77, 48, 24, RES | SPLIT, &rng);    /* 16 + 32 */
            run_case(d, dts[i], 1, 33, 40, 24, BIAS | SPLIT, &rng);   /* 16 + 24: 8-wide */
            /* the folded norm on the awkward shapes for the tiled and direct kernels; the
             * subgroup kernel takes it at the SD shapes above (its every extra variant
             * costs ~1 min of LLVM on lavapipe at the first dispatch) */
            if (tiles[t].direct >= 3) { /* split-K: few output tiles, long K (vkd_gemm_ksplit) */
                unsigned nd = run_case(d, dts[i], 1, 70, 2400, 40, BIAS | RES, &rng);
                TEST_CHECK(nd == 2, "split-K linear: 2 dispatches (partial sums, reduce), got %u", nd);
                nd = run_case(d, dts[i], 2, 9, 1040, 24, RES_IN_PLACE | SPLIT, &rng); /* 512 + 528, last chunk short */
                TEST_CHECK(nd == 2, "split-K linear (two inputs): 2 dispatches, got %u", nd);
            }
            if (tiles[t].direct != 2) {
                run_case_ln(d, dts[i], 130, 132, 72, BIAS | RES, 8, &rng);
                run_case_ln(d, dts[i], 67, 7, 9, 0, 0, &rng);
            }
        }
    }
    d->knobs.gemm_tile = (vkd_gemm_tile){0};
    test_device_close(d);

    /* 64 KiB bindings: a [600, 40] input and [600, 70] output must be split by rows. */
    d = test_device_open(64 * 1024);
    ndt = test_dtypes(d, dts);
    ntiles = test_gemm_tiles(d, tiles);
    for (int t = 0; t < ntiles; t++) {
        d->knobs.gemm_tile = tiles[t];
        for (int i = test_gemm_first_dtype(&tiles[t], ndt); i < ndt; i++) {
            run_case(d, dts[i], 2, 300, 40, 70, BIAS | RES, &rng);
            run_case(d, dts[i], 1, 1000, 33, 17, 0, &rng);
            if (tiles[t].direct != 2)
                run_case_ln(d, dts[i], 600, 40, 70, BIAS | RES, 8, &rng);
            run_case(d, dts[i], 2, 300, 48, 70, BIAS | SPLIT, &rng);
        }
    }
    d->knobs.gemm_tile = (vkd_gemm_tile){0};
    test_device_close(d);
    return test_finish();
}
