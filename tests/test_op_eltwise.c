/* Element-wise ops against a double reference, both storage precisions, including
 * a device whose binding range is lowered so the ops must split their work. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "ops/eltwise.h"

enum { ADD, MUL, ADD_CH, ADD_ROWS, SILU, GELU, QGELU, SCALE, N_KINDS };
static const char *const kind_name[] = {"add", "mul", "add_channels", "add_rows", "silu", "gelu", "quick_gelu", "scale"};

static double ref_op(int k, double x, double y)
{
    switch (k) {
    case ADD: case ADD_CH: case ADD_ROWS: return x + y;
    case MUL: return x * y;
    case SILU: return x / (1 + exp(-x));
    case GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case QGELU: return x / (1 + exp(-1.702 * x));
    default: return 0.5 * x - 0.25;
    }
}

static void run_case(vkd_device *d, vkd_dtype dt, int k, int64_t n, int64_t l, int64_t ch, test_rng *rng)
{
    int64_t shape[3] = {n, l, ch};
    size_t total = (size_t)(n * l * ch);
    size_t nb = k == ADD_CH ? (size_t)ch : k == ADD_ROWS ? (size_t)(n * ch) : total;
    float *a = malloc(total * 4), *b = malloc(nb * 4);
    double *ref = malloc(total * 8);
    test_fill_normal(rng, a, total, 2.0);
    test_fill_normal(rng, b, nb, 1.0);
    test_round_to(dt, a, total);
    test_round_to(dt, b, nb);
    for (size_t i = 0; i < total; i++) {
        double y = k == ADD_CH ? b[i % ch] : k == ADD_ROWS ? b[(i / (l * ch)) * ch + i % ch] : b[i];
        ref[i] = ref_op(k, a[i], y);
    }
    vkd_tensor ta = test_tensor_from(d, dt, 3, shape, a);
    int64_t bshape_ch[1] = {ch}, bshape_rows[2] = {n, ch};
    vkd_tensor tb = k == ADD_CH ? test_tensor_from(d, dt, 1, bshape_ch, b)
                    : k == ADD_ROWS ? test_tensor_from(d, dt, 2, bshape_rows, b)
                                    : test_tensor_from(d, dt, 3, shape, b);
    vkd_tensor to = test_tensor_poisoned(d, dt, 3, shape);
    vkd_cmd *c = NULL;
    vkd_result r = vkd_cmd_create(d, &c);
    if (!r) r = vkd_cmd_begin(c);
    if (!r) {
        switch (k) {
        case ADD: r = vkd_op_add(c, &ta, &tb, &to); break;
        case MUL: r = vkd_op_mul(c, &ta, &tb, &to); break;
        case ADD_CH: r = vkd_op_add_channels(c, &ta, &tb, &to); break;
        case ADD_ROWS: r = vkd_op_add_rows(c, &ta, &tb, &to); break;
        case SILU: r = vkd_op_silu(c, &ta, &to); break;
        case GELU: r = vkd_op_gelu(c, &ta, &to); break;
        case QGELU: r = vkd_op_quick_gelu(c, &ta, &to); break;
        default: r = vkd_op_scale(c, &ta, 0.5f, -0.25f, &to); break;
        }
    }
    if (!r) r = vkd_cmd_end(c);
    if (!r) r = vkd_cmd_submit_wait(c);
    TEST_CHECK(r == VKD_OK, "%s: %s", kind_name[k], vkd_result_str(r));
    char what[128];
    snprintf(what, sizeof what, "%s_%s [%lld,%lld,%lld] (%u dispatches)", kind_name[k], vkd_dtype_suffix(dt),
             (long long)n, (long long)l, (long long)ch, c ? vkd_cmd_dispatch_count(c) : 0);
    /* fp32: exact up to the shader's exp/erf; fp16: one output rounding (~1e-7 nmse) */
    test_expect_close(d, &to, ref, dt == VKD_F16 ? 1e-6 : 1e-11, what);
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &ta);
    vkd_tensor_destroy(d, &tb);
    vkd_tensor_destroy(d, &to);
    free(a);
    free(b);
    free(ref);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++)
        for (int k = 0; k < N_KINDS; k++) {
            run_case(d, dts[i], k, 2, 77, 320, &rng);
            run_case(d, dts[i], k, 1, 4095, 7, &rng);
        }
    test_device_close(d);

    /* 64 KiB bindings: a [2, 1024, 40] fp32 tensor (320 KiB) must be split. */
    d = test_device_open(64 * 1024);
    ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++)
        for (int k = 0; k < N_KINDS; k++)
            run_case(d, dts[i], k, 2, 1024, 40, &rng);
    test_device_close(d);
    return test_finish();
}
