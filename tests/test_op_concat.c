/* Channel concat: an exact copy (nmse 0), both storage precisions, UNet skip shapes
 * and odd ones, and a lowered binding range (row chunks). */
#include <stdlib.h>

#include "harness.h"
#include "ops/concat.h"

/* [n, l, c1] ++ [n, l, c2] -> [n, l, c1 + c2] */
typedef struct concat_case {
    int64_t n, l, c1, c2;
} concat_case;

static const concat_case cases[] = {
    {2, 4096, 320, 320},  /* output_blocks at 64x64 */
    {2, 256, 1280, 1280}, /* 2560 channels */
    {2, 1024, 1280, 640}, /* 1920 channels */
    {1, 77, 3, 5},
};
/* 64 KiB bindings: row chunks */
static const concat_case split_cases[] = {
    {2, 1000, 40, 24},
};

/* a copy: exact */
static const test_tol exact = {0.0, 0.0};

typedef struct concat_job {
    vkd_tensor a, b, out;
} concat_job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    concat_job *j = ctx;
    return vkd_op_concat(c, &j->a, &j->b, &j->out);
}

static void run_case(vkd_device *d, vkd_dtype dt, const void *c_, test_rng *rng)
{
    const concat_case *cc = c_;
    int64_t n = cc->n, l = cc->l, c1 = cc->c1, c2 = cc->c2;
    int64_t ashape[3] = {n, l, c1}, bshape[3] = {n, l, c2}, oshape[3] = {n, l, c1 + c2};
    size_t rows = (size_t)(n * l);
    float *a = test_randn(rng, dt, rows * (size_t)c1, 1.0), *b = test_randn(rng, dt, rows * (size_t)c2, 3.0);
    double *ref = test_alloc(rows * (size_t)(c1 + c2) * 8);
    for (size_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < c1 + c2; k++)
            ref[r * (size_t)(c1 + c2) + (size_t)k] = k < c1 ? a[r * (size_t)c1 + (size_t)k] : b[r * (size_t)c2 + (size_t)(k - c1)];
    concat_job j = {test_tensor_from(d, dt, 3, ashape, a), test_tensor_from(d, dt, 3, bshape, b),
                    test_tensor_poisoned(d, dt, 3, oshape)};
    char what[128];
    snprintf(what, sizeof what, "concat_%s [%lld,%lld,%lld++%lld]", vkd_dtype_suffix(dt), (long long)n, (long long)l,
             (long long)c1, (long long)c2);
    test_op_run(d, &(test_op){.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref, .tol = exact});
    TEST_DESTROY(d, &j.a, &j.b, &j.out);
    TEST_FREE(a, b, ref);
}

static void test_concat_rejects_bad_shapes(vkd_device *d)
{
    int64_t ashape[3] = {1, 10, 4}, bshape[3] = {1, 11, 4}, oshape[3] = {1, 10, 8};
    vkd_tensor ta = test_tensor_from(d, VKD_F32, 3, ashape, NULL);
    vkd_tensor tb = test_tensor_from(d, VKD_F32, 3, bshape, NULL);
    vkd_tensor to = test_tensor_from(d, VKD_F32, 3, oshape, NULL);
    vkd_cmd *cmd = test_cmd_open(d);
    TEST_CHECK(vkd_op_concat(cmd, &ta, &tb, &to) == VKD_ERR_SHAPE, "10 rows ++ 11 rows accepted");
    TEST_CHECK(vkd_op_concat(cmd, &ta, &ta, &ta) == VKD_ERR_SHAPE, "output of 4 channels for 4 ++ 4 accepted");
    test_cmd_close(cmd);
    TEST_DESTROY(d, &ta, &tb, &to);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    TEST_EACH_DTYPE(d, cases, run_case, &rng);
    test_concat_rejects_bad_shapes(d);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    TEST_EACH_DTYPE(d, split_cases, run_case, &rng);
    test_device_close(d);
    return test_finish();
}
