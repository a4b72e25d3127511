/* Layer norm against a double reference, both storage precisions, CLIP/SD row lengths
 * and odd ones, a large-mean input, and a lowered binding range (row chunks). */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "ops/layernorm.h"

/* rows of c over [n, l, c]; offset: added to every input (mean/std = offset / 2) */
typedef struct ln_case {
    int64_t n, l, c;
    float eps;
    double offset;
} ln_case;

static const ln_case cases[] = {
    {2, 77, 768, 1e-5f, 0},   /* CLIP ViT-L */
    {2, 77, 1024, 1e-5f, 0},  /* OpenCLIP ViT-H */
    {2, 4096, 320, 1e-5f, 0}, /* SpatialTransformer at 64x64 */
    {1, 256, 1280, 1e-5f, 0},
    {1, 4095, 640, 1e-6f, 0},
    {1, 7, 2560, 1e-5f, 0},
    {3, 5, 33, 1e-5f, 0},     /* row shorter than the workgroup */
};
static const ln_case offset_case = {1, 300, 1920, 1e-5f, 100.0}; /* fp32 */
/* 64 KiB bindings: row chunks */
static const ln_case split_cases[] = {
    {2, 77, 768, 1e-5f, 0},
    {1, 1000, 320, 1e-5f, 0},
};

/* measured: fp32 ~5e-15 (also with mean/std = 50), fp16 ~4e-8 (one output rounding) */
static const test_tol tol = {.f32 = 1e-12, .f16 = 2e-7};

typedef struct ln_job {
    float eps;
    vkd_tensor x, gamma, beta, out;
} ln_job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    ln_job *j = ctx;
    return vkd_op_layernorm(c, &j->x, j->eps, &j->gamma, &j->beta, &j->out);
}

static void run_case(vkd_device *d, vkd_dtype dt, const void *c_, test_rng *rng)
{
    const ln_case *lc = c_;
    int64_t n = lc->n, l = lc->l, c = lc->c;
    int64_t shape[3] = {n, l, c}, cshape[1] = {c};
    size_t rows = (size_t)(n * l), total = rows * (size_t)c;
    float *x = test_alloc(total * 4);
    test_fill_normal(rng, x, total, 2.0);
    for (size_t i = 0; i < total; i++)
        x[i] += (float)lc->offset;
    test_round_to(dt, x, total);
    float *gm = test_randn(rng, dt, (size_t)c, 1.0), *bt = test_randn(rng, dt, (size_t)c, 0.5);
    double *ref = test_alloc(total * 8);
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * (size_t)c;
        double sum = 0, q = 0;
        for (int64_t k = 0; k < c; k++)
            sum += xr[k];
        double mean = sum / (double)c;
        for (int64_t k = 0; k < c; k++)
            q += (xr[k] - mean) * (xr[k] - mean);
        double rstd = 1.0 / sqrt(q / (double)c + lc->eps);
        for (int64_t k = 0; k < c; k++)
            ref[r * (size_t)c + (size_t)k] = (xr[k] - mean) * rstd * gm[k] + bt[k];
    }
    ln_job j = {lc->eps, test_tensor_from(d, dt, 3, shape, x), test_tensor_from(d, dt, 1, cshape, gm),
                test_tensor_from(d, dt, 1, cshape, bt), test_tensor_poisoned(d, dt, 3, shape)};
    char what[160];
    snprintf(what, sizeof what, "layernorm_%s [%lld,%lld,%lld]%s", vkd_dtype_suffix(dt), (long long)n, (long long)l,
             (long long)c, lc->offset ? " offset" : "");
    test_op_run(d, &(test_op){.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref, .tol = tol});
    TEST_DESTROY(d, &j.x, &j.gamma, &j.beta, &j.out);
    TEST_FREE(x, gm, bt, ref);
}

static void test_layernorm_rejects_bad_shapes(vkd_device *d)
{
    int64_t shape[2] = {4, 64}, wrong[1] = {63};
    vkd_tensor tx = test_tensor_from(d, VKD_F32, 2, shape, NULL);
    vkd_tensor tw = test_tensor_from(d, VKD_F32, 1, wrong, NULL);
    vkd_cmd *cmd = test_cmd_open(d);
    TEST_CHECK(vkd_op_layernorm(cmd, &tx, 1e-5f, &tw, &tw, &tx) == VKD_ERR_SHAPE, "gamma of 63 for C=64 accepted");
    TEST_CHECK(vkd_op_layernorm(cmd, &tx, 1e-5f, &tx, &tx, &tw) == VKD_ERR_SHAPE, "wrong output accepted");
    test_cmd_close(cmd);
    TEST_DESTROY(d, &tx, &tw);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    TEST_EACH_DTYPE(d, cases, run_case, &rng);
    run_case(d, VKD_F32, &offset_case, &rng);
    test_layernorm_rejects_bad_shapes(d);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    TEST_EACH_DTYPE(d, split_cases, run_case, &rng);
    test_device_close(d);
    return test_finish();
}
