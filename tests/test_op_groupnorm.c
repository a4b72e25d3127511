/* Group norm against a double reference, both storage precisions, SD shapes and odd
 * ones, a large-mean input (catches E[x^2]-E[x]^2 cancellation), and a device whose
 * binding range is lowered so the row-chunked statistics path runs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/groupnorm.h"

static void ref_groupnorm(const float *x, const float *gm, const float *bt, int64_t n, int64_t hw, int64_t c,
                          int64_t groups, double eps, int silu, double *out)
{
    int64_t cpg = c / groups;
    for (int64_t s = 0; s < n; s++)
        for (int64_t g = 0; g < groups; g++) {
            const float *xs = x + s * hw * c + g * cpg;
            double sum = 0, q = 0;
            for (int64_t r = 0; r < hw; r++)
                for (int64_t k = 0; k < cpg; k++)
                    sum += xs[r * c + k];
            double mean = sum / (double)(hw * cpg);
            for (int64_t r = 0; r < hw; r++)
                for (int64_t k = 0; k < cpg; k++)
                    q += (xs[r * c + k] - mean) * (xs[r * c + k] - mean);
            double rstd = 1.0 / sqrt(q / (double)(hw * cpg) + eps);
            for (int64_t r = 0; r < hw; r++)
                for (int64_t k = 0; k < cpg; k++) {
                    int64_t ch = g * cpg + k, i = s * hw * c + r * c + ch;
                    double y = (x[i] - mean) * rstd * gm[ch] + bt[ch];
                    out[i] = silu ? y / (1 + exp(-y)) : y;
                }
        }
}

/* with_add: normalise x + e[n] through vkd_op_groupnorm_add, against the reference on
 * the sum. e is a column slice: C columns from E_COL of [N, C + E_EXTRA] (the UNet's
 * time embeddings of all ResBlocks side by side), so a wrong stride or offset shows. */
#define E_COL 16
#define E_EXTRA 24
static void run_case_add(vkd_device *d, vkd_dtype dt, int64_t n, int64_t hw, int64_t c, uint32_t groups, float eps,
                         int silu, double mean_offset, int with_add, test_rng *rng)
{
    int64_t shape[3] = {n, hw, c}, cshape[1] = {c};
    size_t total = (size_t)(n * hw * c);
    float *x = malloc(total * 4), *gm = malloc((size_t)c * 4), *bt = malloc((size_t)c * 4);
    double *ref = malloc(total * 8);
    test_fill_normal(rng, x, total, 1.5);
    for (size_t i = 0; i < total; i++)
        x[i] += (float)mean_offset;
    test_fill_normal(rng, gm, (size_t)c, 1.0);
    test_fill_normal(rng, bt, (size_t)c, 0.5);
    test_round_to(dt, x, total);
    test_round_to(dt, gm, (size_t)c);
    test_round_to(dt, bt, (size_t)c);
    size_t ew = (size_t)c + E_EXTRA;
    int64_t eshape[2] = {n, (int64_t)ew};
    float *e = malloc((size_t)n * ew * 4), *xe = malloc(total * 4);
    test_fill_normal(rng, e, (size_t)n * ew, 2.0);
    test_round_to(dt, e, (size_t)n * ew);
    for (size_t i = 0; i < total; i++) /* the sum as the shader forms it: in fp32 */
        xe[i] = with_add ? x[i] + e[(i / (size_t)(hw * c)) * ew + E_COL + i % (size_t)c] : x[i];
    ref_groupnorm(xe, gm, bt, n, hw, c, groups, eps, silu, ref);
    vkd_tensor te = test_tensor_from(d, dt, 2, eshape, e);

    vkd_tensor tx = test_tensor_from(d, dt, 3, shape, x);
    vkd_tensor tg = test_tensor_from(d, dt, 1, cshape, gm);
    vkd_tensor tb = test_tensor_from(d, dt, 1, cshape, bt);
    vkd_tensor to = test_tensor_poisoned(d, dt, 3, shape);
    vkd_tensor ts = {0};
    vkd_cmd *cmd = NULL;
    int64_t sn = 0;
    vkd_result r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_op_groupnorm_scratch_numel(cmd, &tx, groups, &sn);
    if (!r) {
        ts = test_tensor_poisoned(d, VKD_F32, 1, &sn);
        r = vkd_cmd_begin(cmd);
    }
    if (!r)
        r = with_add ? vkd_op_groupnorm_add(cmd, &tx, &te, E_COL, groups, eps, &tg, &tb, silu, &ts, &to)
                     : vkd_op_groupnorm(cmd, &tx, groups, eps, &tg, &tb, silu, &ts, &to);
    if (!r)
        r = vkd_cmd_end(cmd);
    if (!r)
        r = vkd_cmd_submit_wait(cmd);
    TEST_CHECK(r == VKD_OK, "groupnorm: %s", vkd_result_str(r));
    char what[160];
    snprintf(what, sizeof what, "groupnorm_%s%s [%lld,%lld,%lld] G%u eps %g%s (%u dispatches)", vkd_dtype_suffix(dt),
             silu ? "+silu" : "", (long long)n, (long long)hw, (long long)c, groups, (double)eps,
             mean_offset ? " offset" : with_add ? " + e[n]" : "", cmd ? vkd_cmd_dispatch_count(cmd) : 0);
    /* measured: fp32 ~5e-15 (also at mean/std = 133), fp16 ~4e-8 (one output rounding) */
    test_expect_close(d, &to, ref, dt == VKD_F16 ? 2e-7 : 1e-12, what);
    vkd_cmd_destroy(cmd);
    vkd_tensor_destroy(d, &tx);
    vkd_tensor_destroy(d, &tg);
    vkd_tensor_destroy(d, &tb);
    vkd_tensor_destroy(d, &to);
    vkd_tensor_destroy(d, &ts);
    vkd_tensor_destroy(d, &te);
    free(e);
    free(xe);
    free(x);
    free(gm);
    free(bt);
    free(ref);
}

/* GroupNorm of cat([x1, x2], -1) read from the two tensors (vkd_op_groupnorm_cat),
 * against the reference on the concatenation */
static void run_case_cat(vkd_device *d, vkd_dtype dt, int64_t n, int64_t hw, int64_t c1, int64_t c2, uint32_t groups,
                         int silu, test_rng *rng)
{
    int64_t c = c1 + c2, s1[3] = {n, hw, c1}, s2[3] = {n, hw, c2}, shape[3] = {n, hw, c}, cshape[1] = {c};
    size_t total = (size_t)(n * hw * c), p = (size_t)(n * hw);
    float *x = malloc(total * 4), *x1 = malloc(p * (size_t)c1 * 4), *x2 = malloc(p * (size_t)c2 * 4);
    float *gm = malloc((size_t)c * 4), *bt = malloc((size_t)c * 4);
    double *ref = malloc(total * 8);
    test_fill_normal(rng, x, total, 1.5);
    for (size_t i = 0; i < p; i++) /* the second part on another scale, so a mix-up shows */
        for (int64_t k = c1; k < c; k++)
            x[i * (size_t)c + (size_t)k] = 3.0f * x[i * (size_t)c + (size_t)k] + 1.0f;
    test_fill_normal(rng, gm, (size_t)c, 1.0);
    test_fill_normal(rng, bt, (size_t)c, 0.5);
    test_round_to(dt, x, total);
    test_round_to(dt, gm, (size_t)c);
    test_round_to(dt, bt, (size_t)c);
    for (size_t i = 0; i < p; i++) {
        memcpy(x1 + i * (size_t)c1, x + i * (size_t)c, (size_t)c1 * 4);
        memcpy(x2 + i * (size_t)c2, x + i * (size_t)c + (size_t)c1, (size_t)c2 * 4);
    }
    ref_groupnorm(x, gm, bt, n, hw, c, groups, 1e-5f, silu, ref);
    vkd_tensor t1 = test_tensor_from(d, dt, 3, s1, x1), t2 = test_tensor_from(d, dt, 3, s2, x2);
    vkd_tensor tg = test_tensor_from(d, dt, 1, cshape, gm), tb = test_tensor_from(d, dt, 1, cshape, bt);
    vkd_tensor to = test_tensor_poisoned(d, dt, 3, shape), ts = {0};
    vkd_cmd *cmd = NULL;
    int64_t sn = 0;
    vkd_result r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_op_groupnorm_cat_scratch_numel(cmd, &t1, &t2, groups, &sn);
    if (!r) {
        ts = test_tensor_poisoned(d, VKD_F32, 1, &sn);
        r = vkd_cmd_begin(cmd);
    }
    if (!r)
        r = vkd_op_groupnorm_cat(cmd, &t1, &t2, groups, 1e-5f, &tg, &tb, silu, &ts, &to);
    if (!r)
        r = vkd_cmd_end(cmd);
    if (!r)
        r = vkd_cmd_submit_wait(cmd);
    TEST_CHECK(r == VKD_OK, "groupnorm cat: %s", vkd_result_str(r));
    char what[160];
    snprintf(what, sizeof what, "groupnorm_%s%s of cat [%lld,%lld,%lld+%lld] G%u (%u dispatches)",
             vkd_dtype_suffix(dt), silu ? "+silu" : "", (long long)n, (long long)hw, (long long)c1, (long long)c2,
             groups, cmd ? vkd_cmd_dispatch_count(cmd) : 0);
    test_expect_close(d, &to, ref, dt == VKD_F16 ? 2e-7 : 1e-12, what);
    vkd_cmd_destroy(cmd);
    vkd_tensor_destroy(d, &t1), vkd_tensor_destroy(d, &t2), vkd_tensor_destroy(d, &tg), vkd_tensor_destroy(d, &tb);
    vkd_tensor_destroy(d, &to), vkd_tensor_destroy(d, &ts);
    free(x), free(x1), free(x2), free(gm), free(bt), free(ref);
}

static void run_case(vkd_device *d, vkd_dtype dt, int64_t n, int64_t hw, int64_t c, uint32_t groups, float eps,
                     int silu, double mean_offset, test_rng *rng)
{
    run_case_add(d, dt, n, hw, c, groups, eps, silu, mean_offset, 0, rng);
}

static void test_groupnorm_rejects_bad_shapes(vkd_device *d)
{
    int64_t shape[3] = {1, 16, 48}, cshape[1] = {48}, small[1] = {4};
    vkd_tensor tx = test_tensor_from(d, VKD_F32, 3, shape, NULL);
    vkd_tensor tg = test_tensor_from(d, VKD_F32, 1, cshape, NULL);
    vkd_tensor ts = test_tensor_from(d, VKD_F32, 1, small, NULL);
    vkd_cmd *cmd = NULL;
    int64_t sn;
    vkd_result r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_cmd_begin(cmd);
    TEST_CHECK(r == VKD_OK, "cmd: %s", vkd_result_str(r));
    TEST_CHECK(vkd_op_groupnorm_scratch_numel(cmd, &tx, 32, &sn) == VKD_ERR_SHAPE, "48 channels in 32 groups accepted");
    TEST_CHECK(vkd_op_groupnorm(cmd, &tx, 32, 1e-5f, &tg, &tg, false, &ts, &tx) == VKD_ERR_SHAPE,
               "48 channels in 32 groups accepted");
    TEST_CHECK(vkd_op_groupnorm(cmd, &tx, 16, 1e-5f, &tg, &tg, false, &ts, &tx) == VKD_ERR_SHAPE,
               "too small scratch accepted");
    TEST_CHECK(vkd_op_groupnorm(cmd, &tx, 16, 1e-5f, &ts, &tg, false, &ts, &tx) == VKD_ERR_SHAPE,
               "gamma of the wrong size accepted");
    vkd_cmd_end(cmd);
    vkd_cmd_destroy(cmd);
    vkd_tensor_destroy(d, &tx);
    vkd_tensor_destroy(d, &tg);
    vkd_tensor_destroy(d, &ts);
}

/* Every case above on the kernels the device's developer knob knobs.groupnorm_kernels
 * allows (one APPLY kernel each, or all). */
static void run_all(test_rng *rngp, vkd_gn_kernels kernels)
{
    test_rng rng = *rngp;
    vkd_device *d = test_device_open(0);
    d->knobs.groupnorm_kernels = kernels;
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++) {
        vkd_dtype dt = dts[i];
        run_case(d, dt, 2, 4096, 320, 32, 1e-5f, 1, 0, &rng);   /* UNet ResBlock at 64x64 latent, batch 2 (CFG) */
        run_case(d, dt, 1, 1024, 640, 32, 1e-6f, 0, 0, &rng);   /* SpatialTransformer norm */
        run_case(d, dt, 1, 4095, 320, 32, 1e-5f, 1, 0, &rng);   /* odd row count */
        run_case(d, dt, 1, 1023, 1920, 32, 1e-5f, 1, 0, &rng);  /* C not a power of two */
        run_case(d, dt, 2, 77, 2560, 32, 1e-5f, 0, 0, &rng);
        run_case(d, dt, 1, 256, 1280, 32, 1e-6f, 1, 0, &rng);
        run_case(d, dt, 1, 8192, 128, 32, 1e-6f, 1, 0, &rng);   /* VAE-like: 4 channels per group, one block */
        run_case(d, dt, 1, 20000, 128, 32, 1e-6f, 1, 0, &rng);  /* 80000 per group > VKD_GN_ONE_BLOCK: blocks + COMBINE */
        run_case_add(d, dt, 2, 4096, 320, 32, 1e-5f, 1, 0, 1, &rng);  /* ResBlock out_layers.0 on conv1 + time embedding */
        run_case_add(d, dt, 2, 20000, 128, 32, 1e-5f, 0, 0, 1, &rng); /* the same through blocks + COMBINE */
        run_case_cat(d, dt, 2, 1024, 640, 320, 32, 1, &rng);   /* output block: 30 channels a group, one straddles */
        run_case_cat(d, dt, 1, 4096, 320, 320, 32, 1, &rng);   /* level 0: blocks + COMBINE */
    }
    run_case(d, VKD_F32, 1, 4096, 320, 32, 1e-5f, 0, 200.0, &rng); /* mean 200, std 1.5 */
    test_groupnorm_rejects_bad_shapes(d);
    test_device_close(d);

    /* 64 KiB bindings: samples are split into row chunks whose partial statistics merge. */
    d = test_device_open(64 * 1024);
    d->knobs.groupnorm_kernels = kernels;
    ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++) {
        run_case(d, dts[i], 2, 4096, 64, 32, 1e-6f, 1, 0, &rng);
        run_case(d, dts[i], 1, 1000, 96, 32, 1e-5f, 0, 0, &rng);
        run_case(d, dts[i], 3, 77, 320, 32, 1e-5f, 1, 0, &rng);
        run_case_add(d, dts[i], 3, 1000, 96, 32, 1e-5f, 1, 0, 1, &rng); /* + e[n] with samples in row chunks */
        run_case_cat(d, dts[i], 3, 1000, 40, 56, 32, 0, &rng);                 /* cat in row chunks */
    }
    run_case(d, VKD_F32, 1, 2047, 128, 32, 1e-6f, 0, 100.0, &rng);
    test_device_close(d);
    *rngp = rng;
}

int main(void)
{
    test_rng rng = {test_seed()};
    /* texel-buffer reads in STATS and APPLY, 4 channels per APPLY invocation (CPU
     * devices), then plain loads (GPUs), then one element per invocation (shapes that
     * allow no more) */
    static const vkd_gn_kernels kernels[3] = {VKD_GN_KERNELS_ALL, VKD_GN_KERNELS_VEC4, VKD_GN_KERNELS_SCALAR};
    static const char *const names[3] = {"all", "vec4", "scalar"};
    for (int k = 0; k < 3; k++) {
        printf("group norm kernels: %s\n", names[k]);
        run_all(&rng, kernels[k]);
    }

    /* VKD_TEST_LARGE=1: the SD VAE's last norm at 1024x1024 ([1, 1M, 128], 256 MiB in
     * fp16) with 128 MiB bindings, as on lavapipe and many phones. Minutes on lavapipe. */
    if (getenv("VKD_TEST_LARGE")) {
        vkd_device *d = test_device_open(128ull << 20);
        vkd_dtype dts[2];
        int ndt = test_dtypes(d, dts);
        for (int i = 0; i < ndt; i++)
            run_case(d, dts[i], 1, 1024 * 1024, 128, 32, 1e-6f, 1, 0, &rng);
        test_device_close(d);
    }
    return test_finish();
}
