/* GEGLU against a double reference (value half first, gate half second), both storage
 * precisions, SD feed-forward widths, and a lowered binding range (row chunks). */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "ops/geglu.h"

/* [m, 2f] -> [m, f] */
typedef struct geglu_case {
    int64_t m, f;
} geglu_case;

static const geglu_case cases[] = {
    {4096, 1280}, /* SD1.5 64x64 level: 320 -> 2 x 1280 */
    {256, 5120},  /* 8x8 level: 1280 -> 2 x 5120 */
    {77, 2560},
    {33, 7},
};
/* 64 KiB bindings: row chunks */
static const geglu_case split_cases[] = {
    {1000, 160},
};

/* fp32: erfc fit (1.2e-7 relative) and roundings; fp16: one output rounding */
static const test_tol tol = {.f32 = 1e-12, .f16 = 2e-7};

typedef struct geglu_job {
    vkd_tensor in, out;
} geglu_job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    geglu_job *j = ctx;
    return vkd_op_geglu(c, &j->in, &j->out);
}

static void run_case(vkd_device *d, vkd_dtype dt, const void *c_, test_rng *rng)
{
    const geglu_case *gc = c_;
    int64_t m = gc->m, f = gc->f;
    int64_t ishape[2] = {m, 2 * f}, oshape[2] = {m, f};
    size_t nin = (size_t)(m * 2 * f), nout = (size_t)(m * f);
    float *x = test_randn(rng, dt, nin, 2.0);
    double *ref = test_alloc(nout * 8);
    for (int64_t r = 0; r < m; r++)
        for (int64_t k = 0; k < f; k++) {
            double v = x[r * 2 * f + k], g = x[r * 2 * f + f + k];
            ref[r * f + k] = v * 0.5 * g * (1 + erf(g / sqrt(2.0)));
        }
    geglu_job j = {test_tensor_from(d, dt, 2, ishape, x), test_tensor_poisoned(d, dt, 2, oshape)};
    char what[128];
    snprintf(what, sizeof what, "geglu_%s [%lld,%lld]", vkd_dtype_suffix(dt), (long long)m, (long long)(2 * f));
    test_op_run(d, &(test_op){.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref, .tol = tol});
    TEST_DESTROY(d, &j.in, &j.out);
    TEST_FREE(x, ref);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    TEST_EACH_DTYPE(d, cases, run_case, &rng);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    TEST_EACH_DTYPE(d, split_cases, run_case, &rng);
    test_device_close(d);
    return test_finish();
}
