/* GEGLU against a double reference (value half first, gate half second), both storage
 * precisions, SD feed-forward widths, and a lowered binding range (row chunks). */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "ops/geglu.h"

static void run_case(vkd_device *d, vkd_dtype dt, int64_t m, int64_t f, test_rng *rng)
{
    int64_t ishape[2] = {m, 2 * f}, oshape[2] = {m, f};
    size_t nin = (size_t)(m * 2 * f), nout = (size_t)(m * f);
    float *x = malloc(nin * 4);
    double *ref = malloc(nout * 8);
    test_fill_normal(rng, x, nin, 2.0);
    test_round_to(dt, x, nin);
    for (int64_t r = 0; r < m; r++)
        for (int64_t k = 0; k < f; k++) {
            double v = x[r * 2 * f + k], g = x[r * 2 * f + f + k];
            ref[r * f + k] = v * 0.5 * g * (1 + erf(g / sqrt(2.0)));
        }
    vkd_tensor ti = test_tensor_from(d, dt, 2, ishape, x);
    vkd_tensor to = test_tensor_poisoned(d, dt, 2, oshape);
    vkd_cmd *cmd = NULL;
    vkd_result r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_cmd_begin(cmd);
    if (!r)
        r = vkd_op_geglu(cmd, &ti, &to);
    if (!r)
        r = vkd_cmd_end(cmd);
    if (!r)
        r = vkd_cmd_submit_wait(cmd);
    TEST_CHECK(r == VKD_OK, "geglu: %s", vkd_result_str(r));
    char what[128];
    snprintf(what, sizeof what, "geglu_%s [%lld,%lld] (%u dispatches)", vkd_dtype_suffix(dt), (long long)m,
             (long long)(2 * f), cmd ? vkd_cmd_dispatch_count(cmd) : 0);
    /* fp32: erfc fit (1.2e-7 relative) and roundings; fp16: one output rounding */
    test_expect_close(d, &to, ref, dt == VKD_F16 ? 2e-7 : 1e-12, what);
    vkd_cmd_destroy(cmd);
    vkd_tensor_destroy(d, &ti);
    vkd_tensor_destroy(d, &to);
    free(x);
    free(ref);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++) {
        run_case(d, dts[i], 4096, 1280, &rng); /* SD1.5 64x64 level: 320 -> 2 x 1280 */
        run_case(d, dts[i], 256, 5120, &rng);  /* 8x8 level: 1280 -> 2 x 5120 */
        run_case(d, dts[i], 77, 2560, &rng);
        run_case(d, dts[i], 33, 7, &rng);
    }
    test_device_close(d);

    d = test_device_open(64 * 1024);
    ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++)
        run_case(d, dts[i], 1000, 160, &rng);
    test_device_close(d);
    return test_finish();
}
