/* Element-wise ops against a double reference, both storage precisions, including
 * a device whose binding range is lowered so the ops must split their work. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "ops/eltwise.h"

enum { ADD, MUL, ADD_CH, ADD_ROWS, SILU, GELU, QGELU, SCALE, RELU, TCLAMP, N_KINDS };
static const char *const kind_name[] = {"add", "mul", "add_channels", "add_rows", "silu", "gelu", "quick_gelu", "scale",
                                          "relu", "tanh_clamp"};

/* every kind on [n, l, ch] */
typedef struct elt_shape {
    int64_t n, l, ch;
} elt_shape;

static const elt_shape shapes[] = {
    {2, 77, 320},
    {1, 4095, 7},
};
/* 64 KiB bindings: a [2, 1024, 40] fp32 tensor (320 KiB) must be split. */
static const elt_shape split_shapes[] = {
    {2, 1024, 40},
};

/* fp32: exact up to the shader's exp/erf; fp16: one output rounding (~1e-7 nmse) */
static const test_tol tol = {.f32 = 1e-11, .f16 = 1e-6};

static double ref_op(int k, double x, double y)
{
    switch (k) {
    case ADD: case ADD_CH: case ADD_ROWS: return x + y;
    case MUL: return x * y;
    case SILU: return x / (1 + exp(-x));
    case GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case QGELU: return x / (1 + exp(-1.702 * x));
    case RELU: return x > 0 ? x : 0;
    case TCLAMP: return 3 * tanh(x / 3);
    default: return 0.5 * x - 0.25;
    }
}

typedef struct elt_job {
    int k;
    vkd_tensor a, b, out;
} elt_job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    elt_job *j = ctx;
    switch (j->k) {
    case ADD: return vkd_op_add(c, &j->a, &j->b, &j->out);
    case MUL: return vkd_op_mul(c, &j->a, &j->b, &j->out);
    case ADD_CH: return vkd_op_add_channels(c, &j->a, &j->b, &j->out);
    case ADD_ROWS: return vkd_op_add_rows(c, &j->a, &j->b, &j->out);
    case SILU: return vkd_op_silu(c, &j->a, &j->out);
    case GELU: return vkd_op_gelu(c, &j->a, &j->out);
    case QGELU: return vkd_op_quick_gelu(c, &j->a, &j->out);
    case RELU: return vkd_op_relu(c, &j->a, &j->out);
    case TCLAMP: return vkd_op_tanh_clamp(c, &j->a, 3.0f, &j->out);
    default: return vkd_op_scale(c, &j->a, 0.5f, -0.25f, &j->out);
    }
}

static void run_case(vkd_device *d, vkd_dtype dt, int k, const elt_shape *sh, test_rng *rng)
{
    int64_t n = sh->n, l = sh->l, ch = sh->ch;
    int64_t shape[3] = {n, l, ch};
    size_t total = (size_t)(n * l * ch);
    size_t nb = k == ADD_CH ? (size_t)ch : k == ADD_ROWS ? (size_t)(n * ch) : total;
    float *a = test_randn(rng, dt, total, 2.0), *b = test_randn(rng, dt, nb, 1.0);
    double *ref = test_alloc(total * 8);
    for (size_t i = 0; i < total; i++) {
        double y = k == ADD_CH ? b[i % ch] : k == ADD_ROWS ? b[(i / (l * ch)) * ch + i % ch] : b[i];
        ref[i] = ref_op(k, a[i], y);
    }
    int64_t bshape_ch[1] = {ch}, bshape_rows[2] = {n, ch};
    elt_job j = {k, test_tensor_from(d, dt, 3, shape, a),
                 k == ADD_CH     ? test_tensor_from(d, dt, 1, bshape_ch, b)
                 : k == ADD_ROWS ? test_tensor_from(d, dt, 2, bshape_rows, b)
                                 : test_tensor_from(d, dt, 3, shape, b),
                 test_tensor_poisoned(d, dt, 3, shape)};
    char what[128];
    snprintf(what, sizeof what, "%s_%s [%lld,%lld,%lld]", kind_name[k], vkd_dtype_suffix(dt), (long long)n,
             (long long)l, (long long)ch);
    test_op_run(d, &(test_op){.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref, .tol = tol});
    TEST_DESTROY(d, &j.a, &j.b, &j.out);
    TEST_FREE(a, b, ref);
}

/* for each dtype, each kind on each shape */
static void run_shapes(vkd_device *d, const elt_shape *s, size_t n, test_rng *rng)
{
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++)
        for (int k = 0; k < N_KINDS; k++)
            for (size_t c = 0; c < n; c++)
                run_case(d, dts[i], k, &s[c], rng);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    run_shapes(d, shapes, sizeof shapes / sizeof shapes[0], &rng);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    run_shapes(d, split_shapes, sizeof split_shapes / sizeof split_shapes[0], &rng);
    test_device_close(d);
    return test_finish();
}
