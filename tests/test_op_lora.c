/* LoRA weight updates in place (ops/lora.h) against a double reference: the low-rank
 * product (the GEMM into the weight's rows: ranks 5 to 128), a dense delta, a window of rows
 * inside a larger weight (a block of stacked q/k/v, a row stride past the columns), the
 * row sums a folded layer norm keeps; rows outside the window must stay bit-identical.
 * Also on a device whose binding range is lowered to 64 KiB (rows chunked). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/lora.h"

/* fp16: the weight is rounded once (half an fp16 ulp, ~2.4e-4 relative, nmse ~1e-8) */
static const test_tol tol = {.f32 = 1e-11, .f16 = 1e-6};

typedef struct lora_case {
    int64_t total_rows, row0, rows, cols, ldw, rank; /* rank 0: dense delta */
    double scale;
} lora_case;

typedef struct lora_job {
    vkd_tensor w, u, d; /* d: the down factor transposed, [cols, rank] */
    const lora_case *k;
} lora_job;

static vkd_result record_update(vkd_cmd *c, void *ctx)
{
    lora_job *j = ctx;
    const lora_case *k = j->k;
    if (k->rank) /* the scale is folded into u by the caller */
        return vkd_op_lora_product(c, &j->w, k->row0, k->rows, k->cols, &j->u, &j->d);
    return vkd_op_lora_update(c, &j->w, k->row0, k->rows, k->cols, k->ldw, &j->u, (float)k->scale);
}

static void run_update(vkd_device *dev, vkd_dtype dt, const void *vk, test_rng *rng)
{
    const lora_case *k = vk;
    int64_t nw = k->total_rows * k->ldw, ucols = k->rank ? k->rank : k->cols;
    float *w = test_randn(rng, dt, (size_t)nw, 0.05);
    /* low rank: the factors in the weight's dtype, the scale folded into u; dense: fp32 */
    float *u = test_randn(rng, k->rank ? dt : VKD_F32, (size_t)(k->rows * ucols), 0.1);
    float *d = k->rank ? test_randn(rng, dt, (size_t)(k->rank * k->cols), 0.1) : NULL;
    double *ref = test_alloc((size_t)nw * sizeof *ref);
    for (int64_t i = 0; i < nw; i++)
        ref[i] = w[i];
    for (int64_t o = 0; o < k->rows; o++)
        for (int64_t c = 0; c < k->cols; c++) {
            double acc = 0;
            if (k->rank)
                for (int64_t r = 0; r < k->rank; r++)
                    acc += (double)u[o * k->rank + r] * d[c * k->rank + r];
            else
                acc = u[o * k->cols + c];
            ref[(k->row0 + o) * k->ldw + c] += (k->rank ? 1.0 : (double)(float)k->scale) * acc;
        }
    int64_t ws[2] = {k->total_rows, k->ldw}, us[2] = {k->rows, ucols}, ds[2] = {k->cols, k->rank};
    lora_job j = {.w = test_tensor_from(dev, dt, 2, ws, w), .u = test_tensor_from(dev, k->rank ? dt : VKD_F32, 2, us, u),
                  .k = k};
    if (k->rank)
        j.d = test_tensor_from(dev, dt, 2, ds, d);
    char what[200];
    snprintf(what, sizeof what, "%s %s: rows %lld..%lld of %lld, cols %lld (stride %lld), %s %lld",
             k->rank ? "lora_product" : "lora_update", vkd_dtype_suffix(dt), (long long)k->row0, (long long)(k->row0 + k->rows), (long long)k->total_rows,
             (long long)k->cols, (long long)k->ldw, k->rank ? "rank" : "dense", (long long)k->rank);
    test_op op = {.what = what, .record = record_update, .ctx = &j, .out = &j.w, .ref = ref, .tol = tol};
    test_op_run(dev, &op);
    /* what the update must not touch: rows outside the window, columns past cols */
    float *got = test_alloc((size_t)nw * sizeof *got);
    vkd_tensor_download_f32(dev, &j.w, got);
    int64_t changed = 0;
    for (int64_t row = 0; row < k->total_rows; row++)
        for (int64_t c = 0; c < k->ldw; c++) {
            bool inside = row >= k->row0 && row < k->row0 + k->rows && c < k->cols;
            changed += !inside && got[row * k->ldw + c] != w[row * k->ldw + c];
        }
    TEST_CHECK(changed == 0, "%s: %lld weights outside the window changed", what, (long long)changed);
    TEST_DESTROY(dev, &j.w, &j.u, &j.d);
    TEST_FREE(w, u, d, ref, got);
}

typedef struct sum_job {
    vkd_tensor w, out;
    int64_t rows, cols;
} sum_job;

static vkd_result record_sum(vkd_cmd *c, void *ctx)
{
    sum_job *j = ctx;
    return vkd_op_row_sum(c, &j->w, 0, j->rows, j->cols, j->cols, &j->out, 0);
}

/* out is [2, rows] as a folded layer norm's scales: the sums go to the first row, the
 * second (the folded bias) must stay as it was */
static void run_row_sum(vkd_device *dev, vkd_dtype dt, int64_t rows, int64_t cols, test_rng *rng)
{
    float *w = test_randn(rng, dt, (size_t)(rows * cols), 0.05), *sc = test_randn(rng, VKD_F32, (size_t)rows * 2, 1.0);
    double *ref = test_alloc((size_t)rows * 2 * sizeof *ref);
    for (int64_t o = 0; o < rows; o++) {
        double s = 0;
        for (int64_t c = 0; c < cols; c++)
            s += w[o * cols + c];
        ref[o] = s, ref[rows + o] = sc[rows + o];
    }
    int64_t ws[2] = {rows, cols}, ss[2] = {2, rows};
    sum_job j = {test_tensor_from(dev, dt, 2, ws, w), test_tensor_from(dev, VKD_F32, 2, ss, sc), rows, cols};
    char what[128];
    snprintf(what, sizeof what, "row_sum %s [%lld, %lld]", vkd_dtype_suffix(dt), (long long)rows, (long long)cols);
    test_op op = {.what = what, .record = record_sum, .ctx = &j, .out = &j.out, .ref = ref, .tol = {1e-11, 1e-11}};
    test_op_run(dev, &op);
    TEST_DESTROY(dev, &j.w, &j.out);
    TEST_FREE(w, sc, ref);
}


int main(void)
{
    test_rng rng = {test_seed()};
    static const lora_case cases[] = {
        {40, 0, 40, 70, 70, 5, 1},           /* a whole linear, rank 5 */
        {144, 48, 48, 64, 64, 20, 1},        /* the k block of a stacked q/k/v */
        {32, 0, 32, 216, 216, 33, 1},        /* a 3x3 conv [32, 24*9], re-laid */
        {80, 0, 80, 320, 320, 128, 1},       /* rank 128 */
        {37, 3, 30, 50, 61, 0, 2.0},         /* a dense delta (LoHa, LoKr), rows strided past the columns */
    };
    for (int lowered = 0; lowered < 2; lowered++) {
        vkd_device *dev = test_device_open(lowered ? 64 * 1024 : 0);
        if (!lowered) {
            TEST_EACH_DTYPE(dev, cases, run_update, &rng);
        } else { /* the rank-128 factor [320, 128] is over the 64 KiB window: the GEMM refuses it */
            static const lora_case fit[] = {{40, 0, 40, 70, 70, 5, 1}, {37, 3, 30, 50, 61, 0, 2.0}};
            TEST_EACH_DTYPE(dev, fit, run_update, &rng);
        }
        if (lowered) { /* 300 x 320 fp32 weights: 384 KB, six times the window */
            static const lora_case big[] = {{300, 0, 300, 320, 320, 8, 1}, {300, 7, 290, 320, 320, 0, 1.0}};
            TEST_EACH_DTYPE(dev, big, run_update, &rng);
        }
        vkd_dtype dts[2];
        for (int i = 0, n = test_dtypes(dev, dts); i < n; i++) {
            run_row_sum(dev, dts[i], 70, 90, &rng);
            if (lowered)
                run_row_sum(dev, dts[i], 400, 320, &rng);
        }
        test_device_close(dev);
    }
    /* refusals: windows past the weight, wrongly shaped factors */
    vkd_device *dev = test_device_open(0);
    int64_t ws[2] = {16, 16}, us[2] = {8, 4}, ds[2] = {16, 4};
    lora_job j = {.w = test_tensor_poisoned(dev, VKD_F32, 2, ws), .u = test_tensor_poisoned(dev, VKD_F32, 2, us),
                  .d = test_tensor_poisoned(dev, VKD_F32, 2, ds)};
    vkd_cmd *c = test_cmd_open(dev);
    TEST_CHECK(vkd_op_lora_product(c, &j.w, 10, 8, 16, &j.u, &j.d) == VKD_ERR_SHAPE,
               "lora_product refuses rows past the weight's end");
    TEST_CHECK(vkd_op_lora_product(c, &j.w, 0, 8, 16, &j.u, &j.u) == VKD_ERR_SHAPE,
               "lora_product refuses a down factor of another shape");
    TEST_CHECK(vkd_op_lora_update(c, &j.w, 10, 8, 16, 16, &j.u, 1.0f) == VKD_ERR_SHAPE,
               "lora_update refuses rows past the weight's end");
    TEST_CHECK(vkd_op_lora_update(c, &j.w, 0, 8, 16, 16, &j.d, 1.0f) == VKD_ERR_SHAPE,
               "lora_update refuses a dense delta of another size");
    test_cmd_close(c);
    TEST_DESTROY(dev, &j.w, &j.u, &j.d);
    test_device_close(dev);
    return test_finish();
}
