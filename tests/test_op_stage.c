/* The stages' own kernels against references in double, both storage precisions:
 * 1. emphasis (shaders/emphasis.comp): A1111's process_tokens rule -- every token times
 *    its weight, each 77-token chunk rescaled to the mean it had -- over 1..3 chunks,
 *    widths 64 and 768; a chunk whose weights are all 1 comes back bit for bit.
 * 2. latent_in: the sampler's NCHW fp32 latent times c_in, channels-last, once per
 *    batch item; latent_guide: the UNet output back to NCHW fp32, uncond + s * (cond -
 *    uncond) at batch 2, cond at batch 1. The scalars are read from a buffer: the same
 *    recording is replayed with new ones and checked again. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/emphasis.h"
#include "ops/latent.h"

typedef struct emphasis_case {
    int chunks, width;
} emphasis_case;
static const emphasis_case emphasis_cases[] = {
    {1, 64},
    {2, 64},  /* chunk 1's weights are all 1 */
    {3, 768}, /* SD1's width */
};

typedef struct latent_case {
    int batch;
    int64_t hw;
    int64_t in_ch; /* the UNet's input channels: 4, or 9 for inpainting (5 unscaled) */
} latent_case;
static const latent_case latent_cases[] = {
    {1, 37, 4},      /* unguided, an odd size */
    {2, 64 * 64, 4}, /* guided, a 512x512 image's latent */
    {2, 37, 9},      /* an inpainting UNet: mask and masked-image latent ride along */
};

/* fp32: the chunk's two sums in fp32 (59k values at width 768) vs double; fp16: one
 * rounding of the output */
static const test_tol emphasis_tol = {.f32 = 1e-12, .f16 = 1e-6};
/* latent_in: one multiply (fp16: a rounding); guidance reads T and writes fp32 */
static const test_tol latent_in_tol = {.f32 = 1e-14, .f16 = 1e-6};
static const test_tol guide_tol = {.f32 = 1e-12, .f16 = 1e-12};

typedef struct job {
    vkd_tensor z, w;                      /* emphasis */
    vkd_tensor x, s, unet_x, unet_o, eps; /* latent */
} job;

static vkd_result record_emphasis(vkd_cmd *c, void *ctx)
{
    job *j = ctx;
    return vkd_op_emphasis(c, &j->z, &j->w, 77);
}

static vkd_result record_latent(vkd_cmd *c, void *ctx)
{
    job *j = ctx;
    vkd_result r = j->x.shape[0] == 4 ? vkd_op_latent_in(c, &j->x, &j->s, &j->unet_x)
                                      : vkd_op_latent_in_cond(c, &j->x, &j->s, 4, &j->unet_x);
    return r ? r : vkd_op_latent_guide(c, &j->unet_o, &j->s, &j->eps);
}

static void run_emphasis(vkd_device *d, vkd_dtype dt, const void *c_, test_rng *rng)
{
    const emphasis_case *ec = c_;
    const int T = 77;
    int64_t rows = (int64_t)ec->chunks * T, per = (int64_t)T * ec->width, n = rows * ec->width;
    float *z = test_randn(rng, dt, (size_t)n, 1.0), *wt = test_alloc((size_t)rows * sizeof *wt);
    for (int64_t i = 0; i < n; i++) /* a mean away from 0, as CLIP's outputs have (else the rescale */
        z[i] += 0.25f;              /* before / after is a ratio of two near-zero sums) */
    test_round_to(dt, z, (size_t)n);
    double *ref = test_alloc((size_t)n * sizeof *ref);
    for (int64_t t = 0; t < rows; t++)
        wt[t] = t / T == 1 ? 1.0f : (float)(0.5 + test_rng_uniform(rng));
    for (int k = 0; k < ec->chunks; k++) {
        double before = 0, after = 0;
        for (int64_t e = k * per; e < (k + 1) * per; e++)
            before += z[e], after += (double)z[e] * wt[e / ec->width];
        double s = after != 0 && before != after ? before / after : 1.0;
        for (int64_t e = k * per; e < (k + 1) * per; e++)
            ref[e] = (double)z[e] * wt[e / ec->width] * s;
    }
    int64_t zs[2] = {rows, ec->width}, ws[1] = {rows};
    job j = {.z = test_tensor_from(d, dt, 2, zs, z), .w = test_tensor_from(d, VKD_F32, 1, ws, wt)};
    char what[96];
    snprintf(what, sizeof what, "emphasis_%s %d x 77 x %d", vkd_dtype_suffix(dt), ec->chunks, ec->width);
    test_op_run(d, &(test_op){.what = what, .record = record_emphasis, .ctx = &j, .out = &j.z, .ref = ref,
                              .tol = emphasis_tol});
    if (ec->chunks > 1) { /* the all-1 chunk exactly as it was */
        float *got = test_alloc((size_t)n * sizeof *got);
        vkd_tensor_download_f32(d, &j.z, got);
        TEST_CHECK(!memcmp(got + per, z + per, (size_t)per * sizeof *got), "%s: a chunk of weights 1 changed", what);
        free(got);
    }
    TEST_DESTROY(d, &j.z, &j.w);
    TEST_FREE(z, wt, ref);
}

static void run_latent(vkd_device *d, vkd_dtype dt, const void *c_, test_rng *rng)
{
    const latent_case *lc = c_;
    const int64_t ch = 4, ci = lc->in_ch, hw = lc->hw, n = ch * hw, ni = ci * hw;
    int b = lc->batch;
    float *x = test_randn(rng, VKD_F32, (size_t)ni, 3.0), *o = test_randn(rng, dt, (size_t)(b * n), 1.0);
    double *ref_in = test_alloc((size_t)(b * ni) * sizeof *ref_in), *ref_eps = test_alloc((size_t)n * sizeof *ref_eps);
    float sc[2] = {0.25f, 7.5f};
    int64_t fs[2] = {ch, hw}, ts[3] = {b, hw, ch}, ss[1] = {2}, fi[2] = {ci, hw}, ti[3] = {b, hw, ci};
    job j = {.x = test_tensor_from(d, VKD_F32, 2, fi, x), .s = test_tensor_from(d, VKD_F32, 1, ss, sc),
             .unet_x = test_tensor_poisoned(d, dt, 3, ti), .unet_o = test_tensor_from(d, dt, 3, ts, o),
             .eps = test_tensor_poisoned(d, VKD_F32, 2, fs)};
    vkd_cmd *cmd = NULL;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) { /* new scalars, the same recording */
            sc[0] = 1.5f, sc[1] = 1.0f;
            TEST_CHECK(vkd_tensor_upload_f32(d, &j.s, sc) == VKD_OK, "scalars upload");
            TEST_CHECK(vkd_cmd_submit_wait(cmd) == VKD_OK, "replay");
        }
        for (int64_t bi = 0; bi < b; bi++)
            for (int64_t p = 0; p < hw; p++)
                for (int64_t k = 0; k < ci; k++)
                    ref_in[(bi * hw + p) * ci + k] = (double)x[k * hw + p] * (k < ch ? sc[0] : 1.0f);
        for (int64_t p = 0; p < hw; p++)
            for (int64_t k = 0; k < ch; k++) {
                double cond = o[((b - 1) * hw + p) * ch + k], unc = o[p * ch + k];
                ref_eps[k * hw + p] = b == 2 ? unc + (double)sc[1] * (cond - unc) : cond;
            }
        char what[96];
        snprintf(what, sizeof what, "latent_in_%s batch %d, %lld px, %lld ch, scalars %d", vkd_dtype_suffix(dt), b,
                 (long long)hw, (long long)ci, pass);
        if (pass == 0) {
            test_op op = {.what = what, .record = record_latent, .ctx = &j, .out = &j.unet_x, .ref = ref_in,
                          .tol = latent_in_tol, .keep_cmd = true};
            if (test_op_run(d, &op))
                break;
            cmd = op.cmd;
        } else {
            test_expect_close(d, &j.unet_x, ref_in, test_tol_for(latent_in_tol, dt), what);
        }
        snprintf(what, sizeof what, "guidance_%s batch %d, %lld px, scalars %d", vkd_dtype_suffix(dt), b,
                 (long long)hw, pass);
        test_expect_close(d, &j.eps, ref_eps, test_tol_for(guide_tol, dt), what);
    }
    vkd_cmd_destroy(cmd);
    TEST_DESTROY(d, &j.x, &j.s, &j.unet_x, &j.unet_o, &j.eps);
    TEST_FREE(x, o, ref_in, ref_eps);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    TEST_EACH_DTYPE(d, emphasis_cases, run_emphasis, &rng);
    TEST_EACH_DTYPE(d, latent_cases, run_latent, &rng);
    test_device_close(d);
    return test_finish();
}
