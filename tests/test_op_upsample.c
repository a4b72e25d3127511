/* Nearest 2x upsample: an exact copy, so the output must equal the reference bit
 * for bit (nmse 0), both storage precisions, odd sizes, and a lowered binding range
 * (output split into element ranges, some inside one output row). */
#include <stdlib.h>

#include "harness.h"
#include "ops/upsample.h"

/* [n, h*w, c] -> [n, 2h*2w, c] */
typedef struct up_case {
    int64_t n, h, w, c;
} up_case;

static const up_case cases[] = {
    {2, 16, 16, 1280}, /* UNet upsampler at a 64x64 latent: 16x16 -> 32x32 */
    {2, 32, 32, 640},
    {1, 7, 5, 3},
    {1, 1, 1, 320},
};
/* 64 KiB bindings */
static const up_case split_cases[] = {
    {2, 32, 32, 40},  /* 640 KiB fp32 output: many ranges */
    {1, 3, 200, 60},  /* fp32 output row 400x60x4 B = 94 KiB > 64 KiB window */
};

/* a copy: exact */
static const test_tol exact = {0.0, 0.0};

typedef struct up_job {
    vkd_tensor in, out;
    int64_t h, w;
} up_job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    up_job *j = ctx;
    return vkd_op_upsample2x(c, &j->in, j->h, j->w, &j->out);
}

static void run_case(vkd_device *d, vkd_dtype dt, const void *c_, test_rng *rng)
{
    const up_case *uc = c_;
    int64_t n = uc->n, h = uc->h, w = uc->w, c = uc->c;
    int64_t ishape[3] = {n, h * w, c}, oshape[3] = {n, 4 * h * w, c};
    size_t nin = (size_t)(n * h * w * c), nout = nin * 4;
    float *x = test_randn(rng, dt, nin, 1.0);
    double *ref = test_alloc(nout * 8);
    for (int64_t s = 0; s < n; s++)
        for (int64_t y = 0; y < 2 * h; y++)
            for (int64_t xx = 0; xx < 2 * w; xx++)
                for (int64_t k = 0; k < c; k++)
                    ref[((s * 2 * h + y) * 2 * w + xx) * c + k] = x[((s * h + y / 2) * w + xx / 2) * c + k];
    up_job j = {test_tensor_from(d, dt, 3, ishape, x), test_tensor_poisoned(d, dt, 3, oshape), h, w};
    char what[128];
    snprintf(what, sizeof what, "upsample2x_%s [%lld,%lldx%lld,%lld]", vkd_dtype_suffix(dt), (long long)n,
             (long long)h, (long long)w, (long long)c);
    test_op_run(d, &(test_op){.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref, .tol = exact});
    TEST_DESTROY(d, &j.in, &j.out);
    TEST_FREE(x, ref);
}

static void test_upsample_rejects_bad_shapes(vkd_device *d)
{
    int64_t ishape[3] = {1, 12, 8}, oshape[3] = {1, 48, 8}, bad[3] = {1, 47, 8};
    vkd_tensor ti = test_tensor_from(d, VKD_F32, 3, ishape, NULL);
    vkd_tensor to = test_tensor_from(d, VKD_F32, 3, oshape, NULL);
    vkd_tensor tb = test_tensor_from(d, VKD_F32, 3, bad, NULL);
    vkd_cmd *cmd = test_cmd_open(d);
    TEST_CHECK(vkd_op_upsample2x(cmd, &ti, 3, 5, &to) == VKD_ERR_SHAPE, "H*W = 15 accepted for 12 rows");
    TEST_CHECK(vkd_op_upsample2x(cmd, &ti, 3, 4, &tb) == VKD_ERR_SHAPE, "47-row output accepted");
    test_cmd_close(cmd);
    TEST_DESTROY(d, &ti, &to, &tb);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    TEST_EACH_DTYPE(d, cases, run_case, &rng);
    test_upsample_rejects_bad_shapes(d);
    test_device_close(d);

    d = test_device_open(64 * 1024);
    TEST_EACH_DTYPE(d, split_cases, run_case, &rng);
    test_device_close(d);
    return test_finish();
}
