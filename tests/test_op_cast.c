/* fp32 <-> fp16 cast and fp32 copy: exact operations, checked against the host
 * conversion (round to nearest even), including values that overflow fp16, on a
 * device whose binding range is lowered as well (chunked). */
#include <math.h>
#include <stdlib.h>

#include "common/half.h"
#include "harness.h"
#include "ops/cast.h"

/* exact on lavapipe; Vulkan leaves fp16 rounding to the implementation unless RTE is
 * requested, so a device that truncates would see ~1e-7 (fp32 -> fp16 only) */
static const test_tol to_f16 = {.f16 = 1e-6}, exact = {0.0, 0.0};

typedef struct cast_job {
    vkd_tensor in, out;
} cast_job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    cast_job *j = ctx;
    return vkd_op_cast(c, &j->in, &j->out);
}

static void run_case(vkd_device *d, vkd_dtype from, vkd_dtype to, int64_t n, test_rng *rng)
{
    int64_t shape[2] = {n, 1};
    float *x = test_alloc((size_t)n * 4);
    double *ref = test_alloc((size_t)n * 8);
    test_fill_normal(rng, x, (size_t)n, 30.0);
    for (int64_t i = 0; i < n; i += 97)
        x[i] *= 1e-6f; /* fp16 subnormals */
    /* fp32 -> fp16: 70000 overflows to inf (checked on its own: nmse cannot hold inf),
     * 65504 is the largest fp16 */
    int overflow = from == VKD_F32 && to == VKD_F16 && n > 3;
    if (overflow) {
        x[1] = 70000.0f;
        x[2] = 65504.0f;
    }
    test_round_to(from, x, (size_t)n);
    for (int64_t i = 0; i < n; i++)
        ref[i] = to == VKD_F16 ? vkd_half_to_float(vkd_float_to_half(x[i])) : x[i];
    if (overflow)
        ref[1] = 0;
    cast_job j = {test_tensor_from(d, from, 2, shape, x), test_tensor_poisoned(d, to, 2, shape)};
    char what[128];
    snprintf(what, sizeof what, "cast %s -> %s [%lld]", vkd_dtype_suffix(from), vkd_dtype_suffix(to), (long long)n);
    unsigned nd = 0;
    vkd_result r = test_submit(d, record, &j, &nd, NULL);
    TEST_CHECK(r == VKD_OK, "%s: %s", what, vkd_result_str(r));
    if (overflow) {
        float *got = test_alloc((size_t)n * 4);
        vkd_tensor_download_f32(d, &j.out, got);
        TEST_CHECK(isinf(got[1]) && got[1] > 0 && got[2] == 65504.0f, "cast: 70000 -> %g (want inf), 65504 -> %g",
                   got[1], got[2]);
        got[1] = 0; /* overwrite the inf so the comparison below sees the rest */
        vkd_tensor_upload_f32(d, &j.out, got);
        free(got);
    }
    char claim[160];
    snprintf(claim, sizeof claim, "%s (%u dispatches)", what, nd);
    test_expect_close(d, &j.out, ref, test_tol_for(from == VKD_F32 ? to_f16 : exact, to), claim);
    TEST_DESTROY(d, &j.in, &j.out);
    TEST_FREE(x, ref);
}

int main(void)
{
    test_rng rng = {test_seed()};
    for (int lowered = 0; lowered < 2; lowered++) {
        vkd_device *d = test_device_open(lowered ? 64 * 1024 : 0);
        int64_t n = lowered ? 100003 : 4096 * 320 * 2 + 7;
        run_case(d, VKD_F32, VKD_F32, n, &rng);
        if (d->caps.storage16) {
            run_case(d, VKD_F32, VKD_F16, n, &rng);
            run_case(d, VKD_F16, VKD_F32, n, &rng);
        } else {
            printf("note: no 16-bit storage: fp16 casts not run here\n");
        }
        test_device_close(d);
    }
    return test_finish();
}
