/* Channel concat: an exact copy (nmse 0), both storage precisions, UNet skip shapes
 * and odd ones, and a lowered binding range (row chunks). */
#include <stdlib.h>

#include "harness.h"
#include "ops/concat.h"

static void run_case(vkd_device *d, vkd_dtype dt, int64_t n, int64_t l, int64_t c1, int64_t c2, test_rng *rng)
{
    int64_t ashape[3] = {n, l, c1}, bshape[3] = {n, l, c2}, oshape[3] = {n, l, c1 + c2};
    size_t rows = (size_t)(n * l);
    float *a = malloc(rows * (size_t)c1 * 4), *b = malloc(rows * (size_t)c2 * 4);
    double *ref = malloc(rows * (size_t)(c1 + c2) * 8);
    test_fill_normal(rng, a, rows * (size_t)c1, 1.0);
    test_fill_normal(rng, b, rows * (size_t)c2, 3.0);
    test_round_to(dt, a, rows * (size_t)c1);
    test_round_to(dt, b, rows * (size_t)c2);
    for (size_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < c1 + c2; k++)
            ref[r * (size_t)(c1 + c2) + (size_t)k] = k < c1 ? a[r * (size_t)c1 + (size_t)k] : b[r * (size_t)c2 + (size_t)(k - c1)];
    vkd_tensor ta = test_tensor_from(d, dt, 3, ashape, a);
    vkd_tensor tb = test_tensor_from(d, dt, 3, bshape, b);
    vkd_tensor to = test_tensor_poisoned(d, dt, 3, oshape);
    vkd_cmd *cmd = NULL;
    vkd_result r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_cmd_begin(cmd);
    if (!r)
        r = vkd_op_concat(cmd, &ta, &tb, &to);
    if (!r)
        r = vkd_cmd_end(cmd);
    if (!r)
        r = vkd_cmd_submit_wait(cmd);
    TEST_CHECK(r == VKD_OK, "concat: %s", vkd_result_str(r));
    char what[128];
    snprintf(what, sizeof what, "concat_%s [%lld,%lld,%lld++%lld] (%u dispatches)", vkd_dtype_suffix(dt), (long long)n,
             (long long)l, (long long)c1, (long long)c2, cmd ? vkd_cmd_dispatch_count(cmd) : 0);
    test_expect_close(d, &to, ref, 0.0, what);
    vkd_cmd_destroy(cmd);
    vkd_tensor_destroy(d, &ta);
    vkd_tensor_destroy(d, &tb);
    vkd_tensor_destroy(d, &to);
    free(a);
    free(b);
    free(ref);
}

static void test_concat_rejects_bad_shapes(vkd_device *d)
{
    int64_t ashape[3] = {1, 10, 4}, bshape[3] = {1, 11, 4}, oshape[3] = {1, 10, 8};
    vkd_tensor ta = test_tensor_from(d, VKD_F32, 3, ashape, NULL);
    vkd_tensor tb = test_tensor_from(d, VKD_F32, 3, bshape, NULL);
    vkd_tensor to = test_tensor_from(d, VKD_F32, 3, oshape, NULL);
    vkd_cmd *cmd = NULL;
    vkd_result r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_cmd_begin(cmd);
    TEST_CHECK(r == VKD_OK, "cmd: %s", vkd_result_str(r));
    TEST_CHECK(vkd_op_concat(cmd, &ta, &tb, &to) == VKD_ERR_SHAPE, "10 rows ++ 11 rows accepted");
    TEST_CHECK(vkd_op_concat(cmd, &ta, &ta, &ta) == VKD_ERR_SHAPE, "output of 4 channels for 4 ++ 4 accepted");
    vkd_cmd_end(cmd);
    vkd_cmd_destroy(cmd);
    vkd_tensor_destroy(d, &ta);
    vkd_tensor_destroy(d, &tb);
    vkd_tensor_destroy(d, &to);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++) {
        run_case(d, dts[i], 2, 4096, 320, 320, &rng);   /* output_blocks at 64x64 */
        run_case(d, dts[i], 2, 256, 1280, 1280, &rng);  /* 2560 channels */
        run_case(d, dts[i], 2, 1024, 1280, 640, &rng);  /* 1920 channels */
        run_case(d, dts[i], 1, 77, 3, 5, &rng);
    }
    test_concat_rejects_bad_shapes(d);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++)
        run_case(d, dts[i], 2, 1000, 40, 24, &rng);
    test_device_close(d);
    return test_finish();
}
