/* Group norm against a double reference, both storage precisions, SD shapes and odd
 * ones, a large-mean input (catches E[x^2]-E[x]^2 cancellation), and a device whose
 * binding range is lowered so the row-chunked statistics path runs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/groupnorm.h"

/* GN_PLAIN: vkd_op_groupnorm of x [n, hw, c].
 * GN_ADD: vkd_op_groupnorm_add, the norm of x + e[n]; e is a column slice: c columns
 *   from E_COL of [N, c + E_EXTRA] (the UNet's time embeddings of all ResBlocks side by
 *   side), so a wrong stride or offset shows.
 * GN_CAT: vkd_op_groupnorm_cat, the norm of cat([x1, x2], -1) read from the two
 *   tensors (c and c2 channels; the second part on another scale, so a mix-up shows). */
typedef enum { GN_PLAIN, GN_ADD, GN_CAT } gn_form;
#define E_COL 16
#define E_EXTRA 24

typedef struct gn_case {
    gn_form form;
    int64_t n, hw, c, c2;
    uint32_t groups;
    float eps;
    int silu;
    double offset; /* added to x: mean/std = offset / 1.5 */
} gn_case;

static const gn_case cases[] = {
    {GN_PLAIN, 2, 4096, 320, 0, 32, 1e-5f, 1, 0},  /* UNet ResBlock at 64x64 latent, batch 2 (CFG) */
    {GN_PLAIN, 1, 1024, 640, 0, 32, 1e-6f, 0, 0},  /* SpatialTransformer norm */
    {GN_PLAIN, 1, 4095, 320, 0, 32, 1e-5f, 1, 0},  /* odd row count */
    {GN_PLAIN, 1, 1023, 1920, 0, 32, 1e-5f, 1, 0}, /* C not a power of two */
    {GN_PLAIN, 2, 77, 2560, 0, 32, 1e-5f, 0, 0},
    {GN_PLAIN, 1, 256, 1280, 0, 32, 1e-6f, 1, 0},
    {GN_PLAIN, 1, 8192, 128, 0, 32, 1e-6f, 1, 0},  /* VAE-like: 4 channels per group, one block */
    {GN_PLAIN, 1, 20000, 128, 0, 32, 1e-6f, 1, 0}, /* 80000 per group > VKD_GN_ONE_BLOCK: blocks + COMBINE */
    {GN_ADD, 2, 4096, 320, 0, 32, 1e-5f, 1, 0},    /* ResBlock out_layers.0 on conv1 + time embedding */
    {GN_ADD, 2, 20000, 128, 0, 32, 1e-5f, 0, 0},   /* the same through blocks + COMBINE */
    {GN_CAT, 2, 1024, 640, 320, 32, 1e-5f, 1, 0},  /* output block: 30 channels a group, one straddles */
    {GN_CAT, 1, 4096, 320, 320, 32, 1e-5f, 1, 0},  /* level 0: blocks + COMBINE */
};
static const gn_case offset_case = {GN_PLAIN, 1, 4096, 320, 0, 32, 1e-5f, 0, 200.0}; /* fp32: mean 200, std 1.5 */

/* 64 KiB bindings: samples are split into row chunks whose partial statistics merge. */
static const gn_case split_cases[] = {
    {GN_PLAIN, 2, 4096, 64, 0, 32, 1e-6f, 1, 0},
    {GN_PLAIN, 1, 1000, 96, 0, 32, 1e-5f, 0, 0},
    {GN_PLAIN, 3, 77, 320, 0, 32, 1e-5f, 1, 0},
    {GN_ADD, 3, 1000, 96, 0, 32, 1e-5f, 1, 0},     /* + e[n] with samples in row chunks */
    {GN_CAT, 3, 1000, 40, 56, 32, 1e-5f, 0, 0},    /* cat in row chunks */
};
static const gn_case split_offset_case = {GN_PLAIN, 1, 2047, 128, 0, 32, 1e-6f, 0, 100.0}; /* fp32 */

/* VKD_TEST_LARGE=1: the SD VAE's last norm at 1024x1024 ([1, 1M, 128], 256 MiB in
 * fp16) with 128 MiB bindings, as on lavapipe and many phones. Minutes on lavapipe. */
static const gn_case large_cases[] = {
    {GN_PLAIN, 1, 1024 * 1024, 128, 0, 32, 1e-6f, 1, 0},
};

/* measured: fp32 ~5e-15 (also at mean/std = 133), fp16 ~4e-8 (one output rounding) */
static const test_tol tol = {.f32 = 1e-12, .f16 = 2e-7};

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

typedef struct gn_job {
    const gn_case *gc;
    vkd_tensor x, x2, e, gamma, beta, scratch, out; /* x2: GN_CAT, e: GN_ADD */
} gn_job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    gn_job *j = ctx;
    const gn_case *g = j->gc;
    switch (g->form) {
    case GN_CAT:
        return vkd_op_groupnorm_cat(c, &j->x, &j->x2, g->groups, g->eps, &j->gamma, &j->beta, g->silu, &j->scratch,
                                    &j->out);
    case GN_ADD:
        return vkd_op_groupnorm_add(c, &j->x, &j->e, E_COL, g->groups, g->eps, &j->gamma, &j->beta, g->silu,
                                    &j->scratch, &j->out);
    default:
        return vkd_op_groupnorm(c, &j->x, g->groups, g->eps, &j->gamma, &j->beta, g->silu, &j->scratch, &j->out);
    }
}

/* the partial statistics' scratch, as large as the op asks, poisoned */
static vkd_tensor scratch_for(vkd_device *d, const gn_job *j)
{
    vkd_cmd *c = NULL;
    int64_t sn = 0;
    vkd_result r = vkd_cmd_create(d, &c);
    if (!r)
        r = j->gc->form == GN_CAT ? vkd_op_groupnorm_cat_scratch_numel(c, &j->x, &j->x2, j->gc->groups, &sn)
                                  : vkd_op_groupnorm_scratch_numel(c, &j->x, j->gc->groups, &sn);
    vkd_cmd_destroy(c);
    TEST_CHECK(r == VKD_OK, "groupnorm scratch size: %s", vkd_result_str(r));
    return test_tensor_poisoned(d, VKD_F32, 1, &sn);
}

static void run_case(vkd_device *d, vkd_dtype dt, const void *c_, test_rng *rng)
{
    const gn_case *g = c_;
    int64_t n = g->n, hw = g->hw, c1 = g->c, c2 = g->c2, c = c1 + c2;
    int64_t shape[3] = {n, hw, c}, s1[3] = {n, hw, c1}, s2[3] = {n, hw, c2}, cshape[1] = {c};
    size_t total = (size_t)(n * hw * c), p = (size_t)(n * hw), ew = (size_t)c + E_EXTRA;
    int64_t eshape[2] = {n, (int64_t)ew};
    float *x = test_alloc(total * 4), *e = NULL, *x1 = NULL, *x2 = NULL;
    test_fill_normal(rng, x, total, 1.5);
    if (g->form == GN_CAT)
        for (size_t i = 0; i < p; i++)
            for (int64_t k = c1; k < c; k++)
                x[i * (size_t)c + (size_t)k] = 3.0f * x[i * (size_t)c + (size_t)k] + 1.0f;
    else
        for (size_t i = 0; i < total; i++)
            x[i] += (float)g->offset;
    test_round_to(dt, x, total);
    float *gm = test_randn(rng, dt, (size_t)c, 1.0), *bt = test_randn(rng, dt, (size_t)c, 0.5);
    double *ref = test_alloc(total * 8);
    gn_job j = {.gc = g};
    if (g->form == GN_CAT) {
        x1 = test_alloc(p * (size_t)c1 * 4), x2 = test_alloc(p * (size_t)c2 * 4);
        for (size_t i = 0; i < p; i++) {
            memcpy(x1 + i * (size_t)c1, x + i * (size_t)c, (size_t)c1 * 4);
            memcpy(x2 + i * (size_t)c2, x + i * (size_t)c + (size_t)c1, (size_t)c2 * 4);
        }
        ref_groupnorm(x, gm, bt, n, hw, c, g->groups, g->eps, g->silu, ref);
        j.x = test_tensor_from(d, dt, 3, s1, x1), j.x2 = test_tensor_from(d, dt, 3, s2, x2);
    } else {
        e = test_randn(rng, dt, (size_t)n * ew, 2.0);
        float *xe = test_alloc(total * 4);
        for (size_t i = 0; i < total; i++) /* the sum as the shader forms it: in fp32 */
            xe[i] = g->form == GN_ADD ? x[i] + e[(i / (size_t)(hw * c)) * ew + E_COL + i % (size_t)c] : x[i];
        ref_groupnorm(xe, gm, bt, n, hw, c, g->groups, g->eps, g->silu, ref);
        free(xe);
        j.e = test_tensor_from(d, dt, 2, eshape, e);
        j.x = test_tensor_from(d, dt, 3, shape, x);
    }
    j.gamma = test_tensor_from(d, dt, 1, cshape, gm), j.beta = test_tensor_from(d, dt, 1, cshape, bt);
    j.out = test_tensor_poisoned(d, dt, 3, shape);
    j.scratch = scratch_for(d, &j);
    char what[160];
    if (g->form == GN_CAT)
        snprintf(what, sizeof what, "groupnorm_%s%s of cat [%lld,%lld,%lld+%lld] G%u", vkd_dtype_suffix(dt),
                 g->silu ? "+silu" : "", (long long)n, (long long)hw, (long long)c1, (long long)c2, g->groups);
    else
        snprintf(what, sizeof what, "groupnorm_%s%s [%lld,%lld,%lld] G%u eps %g%s", vkd_dtype_suffix(dt),
                 g->silu ? "+silu" : "", (long long)n, (long long)hw, (long long)c, g->groups, (double)g->eps,
                 g->offset ? " offset" : g->form == GN_ADD ? " + e[n]" : "");
    test_op_run(d, &(test_op){.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref, .tol = tol});
    TEST_DESTROY(d, &j.x, &j.x2, &j.e, &j.gamma, &j.beta, &j.scratch, &j.out);
    TEST_FREE(x, x1, x2, e, gm, bt, ref);
}

static void test_groupnorm_rejects_bad_shapes(vkd_device *d)
{
    int64_t shape[3] = {1, 16, 48}, cshape[1] = {48}, small[1] = {4};
    vkd_tensor tx = test_tensor_from(d, VKD_F32, 3, shape, NULL);
    vkd_tensor tg = test_tensor_from(d, VKD_F32, 1, cshape, NULL);
    vkd_tensor ts = test_tensor_from(d, VKD_F32, 1, small, NULL);
    vkd_cmd *cmd = test_cmd_open(d);
    int64_t sn;
    TEST_CHECK(vkd_op_groupnorm_scratch_numel(cmd, &tx, 32, &sn) == VKD_ERR_SHAPE, "48 channels in 32 groups accepted");
    TEST_CHECK(vkd_op_groupnorm(cmd, &tx, 32, 1e-5f, &tg, &tg, false, &ts, &tx) == VKD_ERR_SHAPE,
               "48 channels in 32 groups accepted");
    TEST_CHECK(vkd_op_groupnorm(cmd, &tx, 16, 1e-5f, &tg, &tg, false, &ts, &tx) == VKD_ERR_SHAPE,
               "too small scratch accepted");
    TEST_CHECK(vkd_op_groupnorm(cmd, &tx, 16, 1e-5f, &ts, &tg, false, &ts, &tx) == VKD_ERR_SHAPE,
               "gamma of the wrong size accepted");
    test_cmd_close(cmd);
    TEST_DESTROY(d, &tx, &tg, &ts);
}

/* Every case above on the APPLY kernel main() has chosen. */
static void run_all(test_rng *rngp, vkd_gn_kernels kernels)
{
    test_rng rng = *rngp;
    vkd_device *d = test_device_open(0);
    d->knobs.groupnorm_kernels = kernels;
    TEST_EACH_DTYPE(d, cases, run_case, &rng);
    run_case(d, VKD_F32, &offset_case, &rng);
    test_groupnorm_rejects_bad_shapes(d);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    d->knobs.groupnorm_kernels = kernels;
    TEST_EACH_DTYPE(d, split_cases, run_case, &rng);
    run_case(d, VKD_F32, &split_offset_case, &rng);
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

    if (getenv("VKD_TEST_LARGE")) {
        vkd_device *d = test_device_open(128ull << 20);
        TEST_EACH_DTYPE(d, large_cases, run_case, &rng);
        test_device_close(d);
    }
    return test_finish();
}
