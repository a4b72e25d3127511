/* Sinusoidal timestep embedding against a double reference (CompVis util.py:
 * cos half first, then sin; freq_i = 10000^(-i/half)), both output precisions,
 * SD timesteps up to 999, fractional ones, odd dim; and replay of one recorded
 * command buffer with new timesteps written into its input buffer. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "ops/timestep_embedding.h"

/* measured fp32 ~2e-15 (float-float arguments); torch 1.13's own fp32 version of this
 * function is 9e-11 (max 5e-5 absolute) from double at t = 999, which a plain fp32
 * shader would match at best. fp16: one output rounding (~3e-8). */
static const test_tol tol = {.f32 = 1e-12, .f16 = 2e-7};

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

typedef struct ts_job {
    int64_t dim;
    vkd_tensor t, out;
} ts_job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    ts_job *j = ctx;
    return vkd_op_timestep_embedding(c, &j->t, (uint32_t)j->dim, 10000.0, &j->out);
}

static void run_case(vkd_device *d, vkd_dtype dt, const float *t, int64_t n, int64_t dim)
{
    int64_t tshape[1] = {n}, oshape[2] = {n, dim};
    double *ref = test_alloc((size_t)(n * dim) * 8);
    ts_job j = {dim, test_tensor_from(d, VKD_F32, 1, tshape, t), test_tensor_poisoned(d, dt, 2, oshape)};
    ref_embed(t, n, dim, ref);
    char what[128];
    snprintf(what, sizeof what, "timestep_embedding_%s [%lld,%lld] t0=%g", vkd_dtype_suffix(dt), (long long)n,
             (long long)dim, (double)t[0]);
    test_op op = {.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref, .tol = tol, .keep_cmd = true};
    vkd_result r = test_op_run(d, &op);

    /* replay: same recorded commands, new timesteps in the buffer */
    if (!r) {
        float *t2 = test_alloc((size_t)n * 4);
        for (int64_t b = 0; b < n; b++)
            t2[b] = (float)(999 - (double)t[b] * 0.5);
        r = vkd_tensor_upload_f32(d, &j.t, t2);
        vkd_buffer_fill(d, &j.out.buf, dt == VKD_F16 ? 0x7e007e00u : 0x7fc00000u);
        if (!r)
            r = vkd_cmd_submit_wait(op.cmd);
        TEST_CHECK(r == VKD_OK, "replay: %s", vkd_result_str(r));
        ref_embed(t2, n, dim, ref);
        snprintf(what, sizeof what, "timestep_embedding_%s [%lld,%lld] replayed", vkd_dtype_suffix(dt), (long long)n,
                 (long long)dim);
        test_expect_close(d, &j.out, ref, test_tol_for(tol, dt), what);
        free(t2);
    }
    vkd_cmd_destroy(op.cmd);
    TEST_DESTROY(d, &j.t, &j.out);
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
    const struct {
        const float *t;
        int64_t n, dim;
    } cases[] = {
        {sd, 2, 320},
        {mix, 5, 320},
        {all, 1000, 320},
        {mix, 5, 257}, /* odd: zero column */
        {sd, 2, 256},  /* SDXL size embedding width */
    };
    for (int i = 0; i < ndt; i++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
            run_case(d, dts[i], cases[k].t, cases[k].n, cases[k].dim);
    run_case(d, VKD_F32, big, 2, 320);
    test_device_close(d);
    return test_finish();
}
