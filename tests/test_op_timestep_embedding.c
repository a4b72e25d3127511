/* Sinusoidal timestep embedding against a double reference (CompVis util.py:
 * cos half first, then sin; freq_i = 10000^(-i/half)), both output precisions,
 * SD timesteps up to 999, fractional ones, odd dim; and replay of one recorded
 * command buffer with new timesteps written into its input buffer. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "ops/timestep_embedding.h"

static void ref_embed(const float *t, int64_t n, int64_t dim, double *out)
{
    int64_t half = dim / 2;
    for (int64_t b = 0; b < n; b++) {
        for (int64_t i = 0; i < half; i++) {
            double a = (double)t[b] * exp(-log(10000.0) * (double)i / (double)half);
            out[b * dim + i] = cos(a);
            out[b * dim + half + i] = sin(a);
        }
        if (dim % 2)
            out[b * dim + dim - 1] = 0;
    }
}

static void run_case(vkd_device *d, vkd_dtype dt, const float *t, int64_t n, int64_t dim)
{
    int64_t tshape[1] = {n}, oshape[2] = {n, dim};
    double *ref = malloc((size_t)(n * dim) * 8);
    vkd_tensor tt = test_tensor_from(d, VKD_F32, 1, tshape, t);
    vkd_tensor to = test_tensor_poisoned(d, dt, 2, oshape);
    vkd_cmd *cmd = NULL;
    vkd_result r = vkd_cmd_create(d, &cmd);
    if (!r)
        r = vkd_cmd_begin(cmd);
    if (!r)
        r = vkd_op_timestep_embedding(cmd, &tt, (uint32_t)dim, 10000.0, &to);
    if (!r)
        r = vkd_cmd_end(cmd);
    if (!r)
        r = vkd_cmd_submit_wait(cmd);
    TEST_CHECK(r == VKD_OK, "timestep_embedding: %s", vkd_result_str(r));
    ref_embed(t, n, dim, ref);
    char what[128];
    snprintf(what, sizeof what, "timestep_embedding_%s [%lld,%lld] t0=%g", vkd_dtype_suffix(dt), (long long)n,
             (long long)dim, (double)t[0]);
    /* measured fp32 ~2e-15 (float-float arguments); torch 1.13's own fp32 version of
     * this function is 9e-11 (max 5e-5 absolute) from double at t = 999, which a
     * plain fp32 shader would match at best. fp16: one output rounding (~3e-8). */
    test_expect_close(d, &to, ref, dt == VKD_F16 ? 2e-7 : 1e-12, what);

    /* replay: same recorded commands, new timesteps in the buffer */
    if (!r) {
        float *t2 = malloc((size_t)n * 4);
        for (int64_t b = 0; b < n; b++)
            t2[b] = (float)(999 - (double)t[b] * 0.5);
        r = vkd_tensor_upload_f32(d, &tt, t2);
        vkd_buffer_fill(d, &to.buf, dt == VKD_F16 ? 0x7e007e00u : 0x7fc00000u);
        if (!r)
            r = vkd_cmd_submit_wait(cmd);
        TEST_CHECK(r == VKD_OK, "replay: %s", vkd_result_str(r));
        ref_embed(t2, n, dim, ref);
        snprintf(what, sizeof what, "timestep_embedding_%s [%lld,%lld] replayed", vkd_dtype_suffix(dt), (long long)n,
                 (long long)dim);
        test_expect_close(d, &to, ref, dt == VKD_F16 ? 2e-7 : 1e-12, what);
        free(t2);
    }
    vkd_cmd_destroy(cmd);
    vkd_tensor_destroy(d, &tt);
    vkd_tensor_destroy(d, &to);
    free(ref);
}

int main(void)
{
    vkd_device *d = test_device_open(0);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    float sd[2] = {999.0f, 999.0f};                     /* first step, CFG batch */
    float mix[5] = {0.0f, 1.0f, 500.5f, 981.37158f, 3.25f}; /* fractional: k-diffusion's interpolated t */
    float all[1000];
    for (int i = 0; i < 1000; i++)
        all[i] = (float)i;
    float big[2] = {20000.0f, 65535.5f};
    for (int i = 0; i < ndt; i++) {
        run_case(d, dts[i], sd, 2, 320);
        run_case(d, dts[i], mix, 5, 320);
        run_case(d, dts[i], all, 1000, 320);
        run_case(d, dts[i], mix, 5, 257); /* odd: zero column */
        run_case(d, dts[i], sd, 2, 256);  /* SDXL size embedding width */
    }
    run_case(d, VKD_F32, big, 2, 320);
    test_device_close(d);
    return test_finish();
}
