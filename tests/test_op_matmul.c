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

/* One claim: x w^T (+ b) (+ res) equals the double reference on [batch * m, k] x [n, k]. */
typedef struct mm_case {
    bool ln;         /* LayerNorm(x) folded into the GEMM (vkd_ln_fold): run_case_ln, batch 1 */
    int64_t batch, m, k, n;
    int flags;
    double mean_off; /* ln: rows offset by up to this many standard deviations */
    bool split_k;    /* only on the kernels that split K (cooperative matrix): 1 dispatch, 2 with the knob */
} mm_case;

/* fp32: accumulation order only (~K * eps^2); fp16: one output rounding (~1e-7) */
static const test_tol tol = {.f32 = 1e-11, .f16 = 1e-6};
/* fp32: ~1e-13; fp16: w * gamma rounded once more than the reference's weights plus the
 * output rounding (~1e-7) */
static const test_tol tol_ln = {.f32 = 1e-10, .f16 = 2e-6};

/* The fp16-arithmetic kernels (gemm_f16.glsl, docs/fp16.md): each output's error is
 * the rounding of HC-long fp16 partial sums (variance ~ (u^2/3) * HC/2 per product's
 * square, u = 2^-11, rounding errors uniform in +-u relative), of each product or fma
 * (u^2/3), of the staged input (the LayerNorm shift's, u^2/3) and of the output (u^2/3):
 * nmse ~ (u^2/3) * (3 + HC/2) = 8.7e-7 at HC = 16, whatever K. u^2/3 is the variance at
 * the top of a binade, the worst (over a binade it averages ~u^2/7), so this is already
 * an upper estimate; allowed: 2x it. The folded norm's shifted rows (the shift is one
 * sample of the row) carry up to twice their variance in mean: 2x more. Summing all of K
 * in fp16 instead gives ~(u^2/3) * K/8 (the direct kernel adds 4-product sums) = 5e-5 at
 * K = 5120 (measured 1.2e-5 with that break: red). */
#define U2_3 (0x1p-22 / 3.0)
static const test_tol tol_h = {.f32 = 0, .f16 = 2 * U2_3 * (3 + 16 / 2)};
static const test_tol tol_ln_h = {.f32 = 0, .f16 = 2 * 2 * U2_3 * (3 + 16 / 2)};

/* SD shapes with the device's own kernel */
static const mm_case sd[] = {
    {false, 2, 77, 768, 320, 0, 0, false},                   /* cross-attn k/v from CLIP context */
    {false, 1, 4096, 320, 320, BIAS | RES, 0, false},        /* attn out proj at 64x64 */
    {false, 1, 64, 1280, 5120, BIAS, 0, false},              /* GEGLU proj at C=1280 (few rows) */
    {false, 1, 40, 5120, 320, BIAS | RES_IN_PLACE, 0, false}, /* FF out, long K */
    {false, 2, 256, 960, 320, BIAS | SPLIT, 0, false},       /* skip 1x1 conv on cat(640, 320), 16x16 */
    {true, 1, 1024, 320, 960, 0, 0, false},                  /* norm1 + q/k/v at 32x32 */
    {true, 1, 256, 640, 5120, BIAS, 8, false},               /* norm3 + GEGLU proj, offset rows */
};
/* on every GEMM kernel. The folded norm runs on the awkward shapes for all but the
 * subgroup kernel, which takes it at the SD shapes above (its every extra variant costs
 * ~1 min of LLVM on lavapipe at the first dispatch). */
static const mm_case awkward[] = {
    {false, 1, 4095, 7, 33, BIAS | RES, 0, false},           /* nothing a multiple of a tile */
    {false, 2, 77, 320, 20, BIAS | RES_IN_PLACE, 0, false},
    {false, 1, 130, 132, 72, BIAS, 0, false},
    {false, 3, 5, 1, 1, BIAS, 0, false},
    {false, 1, 130, 37, 20, BIAS | SPLIT, 0, false},         /* 16 + 21: scalar loads */
    {false, 2, 77, 48, 24, RES | SPLIT, 0, false},           /* 16 + 32 */
    {false, 1, 33, 40, 24, BIAS | SPLIT, 0, false},          /* 16 + 24: 8-wide */
    /* split-K: few output tiles, long K (vkd_gemm_ksplit) */
    {false, 1, 70, 2400, 40, BIAS | RES, 0, true},
    {false, 2, 9, 1040, 24, RES_IN_PLACE | SPLIT, 0, true},  /* 512 + 528, last chunk short */
    {true, 1, 130, 132, 72, BIAS | RES, 8, false},
    {true, 1, 67, 7, 9, 0, 0, false},
};
/* the fp16-arithmetic kernels, forced, besides the awkward shapes: the UNet's long K */
static const mm_case longk_h[] = {
    {false, 1, 40, 5120, 320, BIAS | RES_IN_PLACE, 0, false}, /* FF out at C=1280 */
    {false, 1, 64, 2560, 320, BIAS, 0, false},                /* FF out at C=640 */
    {true, 1, 64, 640, 256, BIAS, 8, false},                  /* norm + proj, offset rows */
};
/* 64 KiB bindings: a [600, 40] input and [600, 70] output must be split by rows. */
static const mm_case split[] = {
    {false, 2, 300, 40, 70, BIAS | RES, 0, false},
    {false, 1, 1000, 33, 17, 0, 0, false},
    {true, 1, 600, 40, 70, BIAS | RES, 8, false},
    {false, 2, 300, 48, 70, BIAS | SPLIT, 0, false},
};

typedef struct mm_job {
    vkd_linear_opts o;
    vkd_tensor a, a2, w, b, res, ln, scratch, out;
} mm_job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    mm_job *j = ctx;
    return vkd_op_linear_ex(c, &j->a, &j->w, &j->o, &j->out);
}

/* The recording c submitted again onto a poisoned output and partial sums equals ref
 * again (a workgroup that reduced before the others wrote would read NaN), and leaves
 * every ticket of its recorder at zero (vk/cmd.h vkd_cmd_tickets). */
static void check_replay(vkd_device *d, vkd_cmd *c, vkd_tensor *out, vkd_tensor *scratch, const double *ref,
                         double max_nmse, const char *what)
{
    char again[160];
    snprintf(again, sizeof again, "%s, replayed", what);
    vkd_buffer_fill(d, &out->buf, out->dtype == VKD_F16 ? 0x7e007e00u : 0x7fc00000u);
    vkd_buffer_fill(d, &scratch->buf, 0x7fc00000u);
    vkd_result r = vkd_cmd_submit_wait(c);
    TEST_CHECK(r == VKD_OK, "%s: %s", again, vkd_result_str(r));
    test_expect_close(d, out, ref, max_nmse, again);
    vkd_binding t;
    uint32_t *tickets = test_alloc(4 * VKD_CMD_TICKETS), nonzero = 0;
    r = vkd_cmd_tickets(c, VKD_CMD_TICKETS, &t);
    if (!r)
        r = vkd_buffer_download(d, t.buf, t.offset, tickets, 4 * VKD_CMD_TICKETS);
    for (uint32_t i = 0; !r && i < VKD_CMD_TICKETS; i++)
        nonzero += tickets[i] != 0;
    TEST_CHECK(r == VKD_OK && nonzero == 0, "%s: %u tickets left non-zero (%s)", again, nonzero, vkd_result_str(r));
    free(tickets);
}

/* The linear layer, a given as one tensor or (SPLIT) as two side by side along K. */
static unsigned run_case(vkd_device *d, vkd_dtype dt, const mm_case *mc, test_rng *rng)
{
    int64_t batch = mc->batch, m = mc->m, k = mc->k, n = mc->n;
    int flags = mc->flags;
    size_t na = (size_t)(batch * m * k), nw = (size_t)(n * k), no = (size_t)(batch * m * n);
    float *a = test_randn(rng, dt, na, 1.0), *w = test_randn(rng, dt, nw, 1.0 / sqrt((double)k));
    float *b = test_randn(rng, dt, (size_t)n, 0.5), *res = test_randn(rng, dt, no, 1.0);
    double *ref = test_alloc(no * 8);
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
    float *a1 = test_alloc((size_t)(batch * m * k1) * 4), *a2 = test_alloc((size_t)(batch * m * (k2 ? k2 : 1)) * 4);
    for (int64_t i = 0; i < batch * m; i++) { /* the two column ranges of a */
        memcpy(a1 + i * k1, a + i * k, (size_t)k1 * 4);
        memcpy(a2 + i * k2, a + i * k + k1, (size_t)k2 * 4);
    }
    mm_job j = {.a = test_tensor_from(d, dt, 3, ashape, a1)};
    if (k2)
        j.a2 = test_tensor_from(d, dt, 3, a2shape, a2);
    TEST_FREE(a1, a2);
    vkd_result r = vkd_linear_weight_upload(d, dt, w, n, k, &j.w);
    TEST_CHECK(r == VKD_OK, "weight upload: %s", vkd_result_str(r));
    j.b = test_tensor_from(d, dt, 1, bshape, b);
    j.res = test_tensor_from(d, dt, 3, oshape, res);
    if (flags & RES_IN_PLACE)
        j.out = j.res; /* in place: the output is the residual tensor itself */
    else
        j.out = test_tensor_poisoned(d, dt, 3, oshape);
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
    if (sn)
        j.scratch = test_tensor_poisoned(d, VKD_F32, 1, &sn);
    j.o = (vkd_linear_opts){.bias = flags & BIAS ? &j.b : NULL, .residual = flags & (RES | RES_IN_PLACE) ? &j.res : NULL,
                            .a2 = flags & SPLIT ? &j.a2 : NULL, .scratch = sn ? &j.scratch : NULL};
    char what[128];
    snprintf(what, sizeof what, "linear_%s%s [%lld,%lld%s]x[%lld,%lld]%s%s%s", vkd_dtype_suffix(dt),
             d->knobs.fp16_arith > 0 ? " fp16-arith" : "",
             (long long)(batch * m), (long long)k, flags & SPLIT ? " in 2 parts" : "", (long long)n, (long long)k,
             flags & BIAS ? " +bias" : "", flags & RES ? " +res" : "", flags & RES_IN_PLACE ? " +res in place" : "");
    /* split-K's last workgroups (phase 3) set their tickets back to zero: the recording,
     * replayed onto a poisoned output, computes it again (not in place: the residual would
     * be added twice) */
    bool replay = mc->split_k && !(flags & RES_IN_PLACE) && !d->knobs.splitk_reduce;
    test_op op = {.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref,
                  .tol = d->knobs.fp16_arith > 0 ? tol_h : tol, .keep_cmd = replay};
    if (!r)
        test_op_run(d, &op);
    if (op.cmd) {
        check_replay(d, op.cmd, &j.out, &j.scratch, ref, test_tol_for(op.tol, dt), what);
        vkd_cmd_destroy(op.cmd);
    }
    if (flags & RES_IN_PLACE)
        memset(&j.out, 0, sizeof j.out); /* j.res's buffer: destroyed once, as j.res */
    TEST_DESTROY(d, &j.scratch, &j.a2, &j.a, &j.w, &j.b, &j.res, &j.out);
    TEST_FREE(a, w, b, res, ref);
    return op.dispatches;
}

/* LayerNorm(x; gamma, beta, eps) then x w^T (+ b) (+ res) as one folded GEMM, against
 * the two steps in double. Rows get a mean offset of mean_off standard deviations
 * (the shift in the kernel must keep the statistics exact when |mean| >> std). */
static unsigned run_case_ln(vkd_device *d, vkd_dtype dt, const mm_case *mc, test_rng *rng)
{
    const float eps = 1e-5f;
    int64_t m = mc->m, k = mc->k, n = mc->n;
    int flags = mc->flags;
    size_t na = (size_t)(m * k), nw = (size_t)(n * k), no = (size_t)(m * n);
    float *a = test_alloc(na * 4);
    test_fill_normal(rng, a, na, 1.5);
    for (int64_t i = 0; i < m; i++) /* a different offset per row, up to mean_off std */
        for (int64_t q = 0; q < k; q++)
            a[i * k + q] += (float)(mc->mean_off * 1.5 * (double)((i % 7) - 3) / 3.0);
    test_round_to(dt, a, na);
    float *w = test_randn(rng, dt, nw, 1.0 / sqrt((double)k)), *b = test_randn(rng, dt, (size_t)n, 0.5);
    float *res = test_randn(rng, dt, no, 1.0), *gm = test_randn(rng, dt, (size_t)k, 1.0);
    float *bt = test_randn(rng, dt, (size_t)k, 0.5), *wf = test_alloc(nw * 4), *sc = test_alloc((size_t)n * 8);
    double *ref = test_alloc(no * 8), *xn = test_alloc((size_t)k * 8);
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
    mm_job j = {.a = test_tensor_from(d, dt, 2, ashape, a)};
    vkd_result r = vkd_linear_weight_upload(d, dt, wf, n, k, &j.w);
    TEST_CHECK(r == VKD_OK, "weight upload: %s", vkd_result_str(r));
    j.ln = test_tensor_from(d, VKD_F32, 2, lshape, sc);
    j.res = test_tensor_from(d, dt, 2, oshape, res);
    j.out = test_tensor_poisoned(d, dt, 2, oshape);
    j.o = (vkd_linear_opts){.residual = flags & RES ? &j.res : NULL, .ln = &j.ln, .ln_eps = eps};
    char what[128];
    snprintf(what, sizeof what, "layernorm+linear_%s%s [%lld,%lld]x[%lld,%lld]%s%s%s", vkd_dtype_suffix(dt),
             d->knobs.fp16_arith > 0 ? " fp16-arith" : "",
             (long long)m, (long long)k, (long long)n, (long long)k, flags & BIAS ? " +bias" : "",
             flags & RES ? " +res" : "", mc->mean_off ? " offset" : "");
    test_op op = {.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref,
                  .tol = d->knobs.fp16_arith > 0 ? tol_ln_h : tol_ln};
    if (!r)
        test_op_run(d, &op);
    TEST_DESTROY(d, &j.a, &j.w, &j.ln, &j.res, &j.out);
    TEST_FREE(a, w, b, res, gm, bt, wf, sc, ref, xn);
    return op.dispatches;
}

/* The cases of a table that apply to kernel t (NULL: the device's own choice). */
static void run_table(vkd_device *d, vkd_dtype dt, const vkd_gemm_tile *t, const mm_case *cs, size_t ncs,
                      test_rng *rng)
{
    for (size_t i = 0; i < ncs; i++) {
        const mm_case *mc = &cs[i];
        if (mc->split_k && (!t || t->direct < 3))
            continue;
        if (mc->ln && t && t->direct == 2)
            continue; /* the subgroup kernel's folded norm: at the SD shapes only */
        unsigned nd = mc->ln ? run_case_ln(d, dt, mc, rng) : run_case(d, dt, mc, rng);
        if (!mc->split_k)
            continue;
        /* one dispatch, its last workgroup per tile adding the sums; with the knob, the
         * partial sums and a reduce dispatch */
        TEST_CHECK(nd == 1, "split-K linear [%lld,%lld]x[%lld,%lld]: 1 dispatch (partial sums, the last "
                   "workgroup of each tile adds them), got %u", (long long)(mc->batch * mc->m), (long long)mc->k,
                   (long long)mc->n, (long long)mc->k, nd);
        d->knobs.splitk_reduce = true;
        nd = run_case(d, dt, mc, rng);
        d->knobs.splitk_reduce = false;
        TEST_CHECK(nd == 2, "split-K linear [%lld,%lld]x[%lld,%lld], reduce dispatch: 2 dispatches (partial sums, "
                   "reduce), got %u", (long long)(mc->batch * mc->m), (long long)mc->k, (long long)mc->n,
                   (long long)mc->k, nd);
    }
}

static void run_on_own_kernel(vkd_device *d, vkd_dtype dt, const void *c, test_rng *rng)
{
    run_table(d, dt, NULL, c, 1, rng);
}

/* Every case of cs on every GEMM kernel this device can run (test_gemm_tiles), chosen by
 * override: the one place this test chooses a kernel. */
static void run_on_each_tile(vkd_device *d, const mm_case *cs, size_t ncs, test_rng *rng)
{
    static const char *const family[5] = {"", " direct", " subgroup", " cooperative matrix",
                                          " cooperative matrix, emulated"};
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    vkd_gemm_tile tiles[6];
    int ntiles = test_gemm_tiles(d, tiles);
    for (int t = 0; t < ntiles; t++) {
        d->knobs.gemm_tile = tiles[t];
        printf("tile %ux%ux%u %ux%u%s\n", tiles[t].bm, tiles[t].bn, tiles[t].bk, tiles[t].tm, tiles[t].tn,
               family[tiles[t].direct]);
        for (int i = test_gemm_first_dtype(&tiles[t], ndt); i < ndt; i++)
            run_table(d, dts[i], &tiles[t], cs, ncs, rng);
    }
    d->knobs.gemm_tile = (vkd_gemm_tile){0};
}

/* The cases on the fp16-arithmetic kernels (the tiled and direct families), forced by the
 * knob on a device that offers fp16 arithmetic with fp16 storage (lavapipe does). */
static void run_fp16_arith(vkd_device *d, const mm_case *cs, size_t ncs, test_rng *rng)
{
    if (!(d->profile.features & VKD_KF_FP16_ARITH)) {
        printf("note: no fp16 arithmetic with fp16 storage here: the *_h GEMM kernels are not run\n");
        return;
    }
    const vkd_gemm_tile tiles[2] = {{64, 64, 16, 4, 4, 0}, {64, 4, 1, 4, 4, 1}};
    TEST_CHECK(vkd_kernel_usable(&d->profile, VKD_KERNEL_MATMUL_H, VKD_VARIANT_F16) &&
                   vkd_kernel_usable(&d->profile, VKD_KERNEL_MATMUL_DIRECT_H, VKD_VARIANT_F16),
               "the fp16-arithmetic GEMM kernels are usable where fp16 arithmetic is offered");
    d->knobs.fp16_arith = 1;
    for (int t = 0; t < 2; t++) {
        d->knobs.gemm_tile = tiles[t];
        printf("tile %ux%ux%u %ux%u%s, fp16 arithmetic\n", tiles[t].bm, tiles[t].bn, tiles[t].bk, tiles[t].tm,
               tiles[t].tn, tiles[t].direct ? " direct" : "");
        run_table(d, VKD_F16, &tiles[t], cs, ncs, rng);
    }
    d->knobs.gemm_tile = (vkd_gemm_tile){0};
    d->knobs.fp16_arith = 0;
}

static void test_linear_rejects_bad_shapes(vkd_device *d)
{
    int64_t as[2] = {4, 8}, ws[2] = {5, 9}, os[2] = {4, 5}, bs[1] = {6};
    vkd_tensor a = test_tensor_from(d, VKD_F32, 2, as, NULL), w = test_tensor_from(d, VKD_F32, 2, ws, NULL);
    vkd_tensor o = test_tensor_from(d, VKD_F32, 2, os, NULL), b = test_tensor_from(d, VKD_F32, 1, bs, NULL);
    vkd_cmd *c = test_cmd_open(d);
    TEST_CHECK(vkd_op_linear(c, &a, &w, NULL, NULL, &o) == VKD_ERR_SHAPE, "K mismatch must be a shape error");
    w.shape[1] = 8;
    TEST_CHECK(vkd_op_linear(c, &a, &w, &b, NULL, &o) == VKD_ERR_SHAPE, "bias size mismatch must be a shape error");
    TEST_CHECK(vkd_op_linear(c, &a, &w, NULL, &a, &o) == VKD_ERR_SHAPE, "residual mismatch must be a shape error");
    TEST_CHECK(vkd_cmd_dispatch_count(c) == 0, "nothing recorded on error");
    test_cmd_close(c);
    TEST_DESTROY(d, &a, &w, &o, &b);
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
    test_linear_rejects_bad_shapes(d);
    test_ksplit_choice();
    TEST_EACH_DTYPE(d, sd, run_on_own_kernel, &rng);
    run_on_each_tile(d, awkward, sizeof awkward / sizeof awkward[0], &rng);
    run_fp16_arith(d, longk_h, sizeof longk_h / sizeof longk_h[0], &rng);
    run_fp16_arith(d, awkward, sizeof awkward / sizeof awkward[0], &rng);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    run_on_each_tile(d, split, sizeof split / sizeof split[0], &rng);
    run_fp16_arith(d, split, sizeof split / sizeof split[0], &rng);
    test_device_close(d);
    return test_finish();
}
