/* Layer norm against a double reference, both storage precisions, CLIP/SD row lengths
 * and odd ones, a large-mean input, and a lowered binding range (row chunks). */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "ops/layernorm.h"

static void run_case(vkd_device *d, vkd_dtype dt, int64_t n, int64_t l, int64_t c, float eps, double offset,
                     test_rng *rng)
{
    int64_t shape[3] = {n, l, c}, cshape[1] = {c};
    size_t rows = (size_t)(n * l), total = rows * (size_t)c;
    float *x = malloc(total * 4), *gm = malloc((size_t)c * 4), *bt = malloc((size_t)c * 4);
    double *ref = malloc(total * 8);
    test_fill_normal(rng, x, total, 2.0);
    for (size_t i = 0; i < total; i++)
        x[i] += (float)offset;
    test_fill_normal(rng, gm, (size_t)c, 1.0);
    test_fill_normal(rng, bt, (size_t)c, 0.5);
    test_round_to(dt, x, total);
    test_round_to(dt, gm, (size_t)c);
    test_round_to(dt, bt, (size_t)c);
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * (size_t)c;
        double sum = 0, q = 0;
        for (int64_t k = 0; k < c; k++)
            sum += xr[k];
        double mean = sum / (double)c;
        for (int64_t k = 0; k < c; k++)
            q += (xr[k] - mean) * (xr[k] - mean);
        double rstd = 1.0 / sqrt(q / (double)c + eps);
        for (int64_t k = 0; k < c; k++)
            ref[r * (size_t)c + (size_t)k] = (xr[k] - mean) * rstd * gm[k] + bt[k];
    }
    vkd_tensor tx = test_tensor_from(d, dt, 3, shape, x);
    vkd_tensor tg = test_tensor_from(d, dt, 1, cshape, gm);
    vkd_tensor tb = test_tensor_from(d, dt, 1, cshape, bt);
    vkd_tensor to = test_tensor_poisoned(d, dt, 3, shape);
    vkd_cmd *cmd = NULL;
    vkd_result r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_cmd_begin(cmd);
    if (!r)
        r = vkd_op_layernorm(cmd, &tx, eps, &tg, &tb, &to);
    if (!r)
        r = vkd_cmd_end(cmd);
    if (!r)
        r = vkd_cmd_submit_wait(cmd);
    TEST_CHECK(r == VKD_OK, "layernorm: %s", vkd_result_str(r));
    char what[160];
    snprintf(what, sizeof what, "layernorm_%s [%lld,%lld,%lld]%s (%u dispatches)", vkd_dtype_suffix(dt), (long long)n,
             (long long)l, (long long)c, offset ? " offset" : "", cmd ? vkd_cmd_dispatch_count(cmd) : 0);
    /* measured: fp32 ~5e-15 (also with mean/std = 50), fp16 ~4e-8 (one output rounding) */
    test_expect_close(d, &to, ref, dt == VKD_F16 ? 2e-7 : 1e-12, what);
    vkd_cmd_destroy(cmd);
    vkd_tensor_destroy(d, &tx);
    vkd_tensor_destroy(d, &tg);
    vkd_tensor_destroy(d, &tb);
    vkd_tensor_destroy(d, &to);
    free(x);
    free(gm);
    free(bt);
    free(ref);
}

static void test_layernorm_rejects_bad_shapes(vkd_device *d)
{
    int64_t shape[2] = {4, 64}, wrong[1] = {63};
    vkd_tensor tx = test_tensor_from(d, VKD_F32, 2, shape, NULL);
    vkd_tensor tw = test_tensor_from(d, VKD_F32, 1, wrong, NULL);
    vkd_cmd *cmd = NULL;
    vkd_result r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_cmd_begin(cmd);
    TEST_CHECK(r == VKD_OK, "cmd: %s", vkd_result_str(r));
    TEST_CHECK(vkd_op_layernorm(cmd, &tx, 1e-5f, &tw, &tw, &tx) == VKD_ERR_SHAPE, "gamma of 63 for C=64 accepted");
    TEST_CHECK(vkd_op_layernorm(cmd, &tx, 1e-5f, &tx, &tx, &tw) == VKD_ERR_SHAPE, "wrong output accepted");
    vkd_cmd_end(cmd);
    vkd_cmd_destroy(cmd);
    vkd_tensor_destroy(d, &tx);
    vkd_tensor_destroy(d, &tw);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++) {
        run_case(d, dts[i], 2, 77, 768, 1e-5f, 0, &rng);    /* CLIP ViT-L */
        run_case(d, dts[i], 2, 77, 1024, 1e-5f, 0, &rng);   /* OpenCLIP ViT-H */
        run_case(d, dts[i], 2, 4096, 320, 1e-5f, 0, &rng);  /* SpatialTransformer at 64x64 */
        run_case(d, dts[i], 1, 256, 1280, 1e-5f, 0, &rng);
        run_case(d, dts[i], 1, 4095, 640, 1e-6f, 0, &rng);
        run_case(d, dts[i], 1, 7, 2560, 1e-5f, 0, &rng);
        run_case(d, dts[i], 3, 5, 33, 1e-5f, 0, &rng);      /* row shorter than the workgroup */
    }
    run_case(d, VKD_F32, 1, 300, 1920, 1e-5f, 100.0, &rng);
    test_layernorm_rejects_bad_shapes(d);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++) {
        run_case(d, dts[i], 2, 77, 768, 1e-5f, 0, &rng);
        run_case(d, dts[i], 1, 1000, 320, 1e-5f, 0, &rng);
    }
    test_device_close(d);
    return test_finish();
}
