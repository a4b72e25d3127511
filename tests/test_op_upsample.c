/* Nearest 2x upsample: an exact copy, so the output must equal the reference bit
 * for bit (nmse 0), both storage precisions, odd sizes, and a lowered binding range
 * (output split into element ranges, some inside one output row). */
#include <stdlib.h>

#include "harness.h"
#include "ops/upsample.h"

static void run_case(vkd_device *d, vkd_dtype dt, int64_t n, int64_t h, int64_t w, int64_t c, test_rng *rng)
{
    int64_t ishape[3] = {n, h * w, c}, oshape[3] = {n, 4 * h * w, c};
    size_t nin = (size_t)(n * h * w * c), nout = nin * 4;
    float *x = malloc(nin * 4);
    double *ref = malloc(nout * 8);
    test_fill_normal(rng, x, nin, 1.0);
    test_round_to(dt, x, nin);
    for (int64_t s = 0; s < n; s++)
        for (int64_t y = 0; y < 2 * h; y++)
            for (int64_t xx = 0; xx < 2 * w; xx++)
                for (int64_t k = 0; k < c; k++)
                    ref[((s * 2 * h + y) * 2 * w + xx) * c + k] = x[((s * h + y / 2) * w + xx / 2) * c + k];
    vkd_tensor ti = test_tensor_from(d, dt, 3, ishape, x);
    vkd_tensor to = test_tensor_poisoned(d, dt, 3, oshape);
    vkd_cmd *cmd = NULL;
    vkd_result r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_cmd_begin(cmd);
    if (!r)
        r = vkd_op_upsample2x(cmd, &ti, h, w, &to);
    if (!r)
        r = vkd_cmd_end(cmd);
    if (!r)
        r = vkd_cmd_submit_wait(cmd);
    TEST_CHECK(r == VKD_OK, "upsample2x: %s", vkd_result_str(r));
    char what[128];
    snprintf(what, sizeof what, "upsample2x_%s [%lld,%lldx%lld,%lld] (%u dispatches)", vkd_dtype_suffix(dt),
             (long long)n, (long long)h, (long long)w, (long long)c, cmd ? vkd_cmd_dispatch_count(cmd) : 0);
    test_expect_close(d, &to, ref, 0.0, what);
    vkd_cmd_destroy(cmd);
    vkd_tensor_destroy(d, &ti);
    vkd_tensor_destroy(d, &to);
    free(x);
    free(ref);
}

static void test_upsample_rejects_bad_shapes(vkd_device *d)
{
    int64_t ishape[3] = {1, 12, 8}, oshape[3] = {1, 48, 8}, bad[3] = {1, 47, 8};
    vkd_tensor ti = test_tensor_from(d, VKD_F32, 3, ishape, NULL);
    vkd_tensor to = test_tensor_from(d, VKD_F32, 3, oshape, NULL);
    vkd_tensor tb = test_tensor_from(d, VKD_F32, 3, bad, NULL);
    vkd_cmd *cmd = NULL;
    vkd_result r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_cmd_begin(cmd);
    TEST_CHECK(r == VKD_OK, "cmd: %s", vkd_result_str(r));
    TEST_CHECK(vkd_op_upsample2x(cmd, &ti, 3, 5, &to) == VKD_ERR_SHAPE, "H*W = 15 accepted for 12 rows");
    TEST_CHECK(vkd_op_upsample2x(cmd, &ti, 3, 4, &tb) == VKD_ERR_SHAPE, "47-row output accepted");
    vkd_cmd_end(cmd);
    vkd_cmd_destroy(cmd);
    vkd_tensor_destroy(d, &ti);
    vkd_tensor_destroy(d, &to);
    vkd_tensor_destroy(d, &tb);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++) {
        run_case(d, dts[i], 2, 16, 16, 1280, &rng); /* UNet upsampler at a 64x64 latent: 16x16 -> 32x32 */
        run_case(d, dts[i], 2, 32, 32, 640, &rng);
        run_case(d, dts[i], 1, 7, 5, 3, &rng);
        run_case(d, dts[i], 1, 1, 1, 320, &rng);
    }
    test_upsample_rejects_bad_shapes(d);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++) {
        run_case(d, dts[i], 2, 32, 32, 40, &rng);  /* 640 KiB fp32 output: many ranges */
        run_case(d, dts[i], 1, 3, 200, 60, &rng);  /* fp32 output row 400x60x4 B = 94 KiB > 64 KiB window */
    }
    test_device_close(d);
    return test_finish();
}
