/* The stages' own kernels against references in double:
 * 1. emphasis (shaders/emphasis.comp): A1111's process_tokens rule -- every token times
 *    its weight, each 77-token chunk rescaled to its mean before -- over chunk counts
 *    1..3, widths 64 and 768, fp32 and fp16 storage; a chunk of weights all 1 must come
 *    back unchanged.
 * 2. latent_in: the sampler's NCHW fp32 latent, times c_in, channels-last, repeated per
 *    batch item; latent_guide: the UNet output back to NCHW with uncond + s * (cond -
 *    uncond) (batch 2) or cond (batch 1). The scalars are read from a buffer, so the
 *    same recording is replayed with new ones and checked again. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "ops/emphasis.h"
#include "ops/latent.h"

static vkd_result run(vkd_cmd *c)
{
    vkd_result r = vkd_cmd_end(c);
    return r ? r : vkd_cmd_submit_wait(c);
}

static void emphasis_case(vkd_device *d, vkd_dtype dt, int chunks, int width, test_rng *rng)
{
    const int T = 77;
    int64_t n = (int64_t)chunks * T * width, rows = (int64_t)chunks * T;
    float *z = malloc((size_t)n * sizeof *z), *wt = malloc((size_t)rows * sizeof *wt);
    double *ref = malloc((size_t)n * sizeof *ref);
    test_fill_normal(rng, z, (size_t)n, 1.0);
    for (int64_t i = 0; i < n; i++)
        z[i] += 0.05f; /* a mean away from 0, as CLIP's outputs have */
    test_round_to(dt, z, (size_t)n);
    for (int64_t t = 0; t < rows; t++) /* chunk 1: all 1; else A1111-like weights */
        wt[t] = t / T == 1 ? 1.0f : (float)(0.5 + test_rng_uniform(rng));
    for (int k = 0; k < chunks; k++) {
        double before = 0, after = 0;
        for (int64_t i = 0; i < (int64_t)T * width; i++) {
            int64_t e = (int64_t)k * T * width + i;
            before += z[e];
            after += (double)z[e] * wt[e / width];
        }
        double s = after != 0 && before != after ? before / after : 1.0;
        for (int64_t i = 0; i < (int64_t)T * width; i++) {
            int64_t e = (int64_t)k * T * width + i;
            ref[e] = (double)z[e] * wt[e / width] * s;
        }
    }
    int64_t zs[2] = {rows, width}, ws[1] = {rows};
    vkd_tensor tz = test_tensor_from(d, dt, 2, zs, z), tw = test_tensor_from(d, VKD_F32, 1, ws, wt);
    vkd_cmd *c = NULL;
    vkd_result r = vkd_cmd_create(d, &c);
    if (!r)
        r = vkd_cmd_begin(c);
    if (!r)
        r = vkd_op_emphasis(c, &tz, &tw, T);
    if (!r)
        r = run(c);
    TEST_CHECK(r == VKD_OK, "emphasis: %s", vkd_result_str(r));
    char what[96];
    snprintf(what, sizeof what, "emphasis %d chunk%s x 77 x %d %s", chunks, chunks == 1 ? "" : "s", width,
             vkd_dtype_suffix(dt));
    test_expect_close(d, &tz, ref, dt == VKD_F16 ? 1e-6 : 1e-12, what);
    if (chunks > 1) { /* the all-1 chunk exactly as it was */
        float *got = malloc((size_t)n * sizeof *got);
        vkd_tensor_download_f32(d, &tz, got);
        int same = 1;
        for (int64_t i = (int64_t)T * width; i < 2 * (int64_t)T * width; i++)
            same &= got[i] == z[i];
        TEST_CHECK(same, "%s: a chunk of weights 1 changed", what);
        free(got);
    }
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &tz), vkd_tensor_destroy(d, &tw);
    free(z), free(wt), free(ref);
}

static void latent_case(vkd_device *d, vkd_dtype dt, int batch, int64_t hw, test_rng *rng)
{
    const int64_t ch = 4;
    int64_t n = ch * hw;
    float *x = malloc((size_t)n * sizeof *x), *o = malloc((size_t)(batch * n) * sizeof *o);
    double *ref_in = malloc((size_t)(batch * n) * sizeof *ref_in), *ref_eps = malloc((size_t)n * sizeof *ref_eps);
    test_fill_normal(rng, x, (size_t)n, 3.0);
    test_fill_normal(rng, o, (size_t)(batch * n), 1.0);
    test_round_to(dt, o, (size_t)(batch * n));
    int64_t fs[2] = {ch, hw}, ts[3] = {batch, hw, ch}, ss[1] = {2};
    float sc[2] = {0.25f, 7.5f};
    vkd_tensor tx = test_tensor_from(d, VKD_F32, 2, fs, x), ts_ = test_tensor_from(d, VKD_F32, 1, ss, sc);
    vkd_tensor tin = test_tensor_poisoned(d, dt, 3, ts), tout = test_tensor_from(d, dt, 3, ts, o);
    vkd_tensor teps = test_tensor_poisoned(d, VKD_F32, 2, fs);
    vkd_cmd *c = NULL;
    vkd_result r = vkd_cmd_create(d, &c);
    if (!r)
        r = vkd_cmd_begin(c);
    if (!r)
        r = vkd_op_latent_in(c, &tx, &ts_, &tin);
    if (!r)
        r = vkd_op_latent_guide(c, &tout, &ts_, &teps);
    if (!r)
        r = vkd_cmd_end(c);
    for (int pass = 0; pass < 2 && !r; pass++) {
        if (pass == 1) { /* new scalars, the same recording */
            sc[0] = 1.5f, sc[1] = 1.0f;
            r = vkd_tensor_upload_f32(d, &ts_, sc);
        }
        if (!r)
            r = vkd_cmd_submit_wait(c);
        if (r)
            break;
        for (int64_t b = 0; b < batch; b++)
            for (int64_t p = 0; p < hw; p++)
                for (int64_t k = 0; k < ch; k++)
                    ref_in[(b * hw + p) * ch + k] = (double)x[k * hw + p] * sc[0];
        for (int64_t p = 0; p < hw; p++)
            for (int64_t k = 0; k < ch; k++) {
                double cond = o[((batch - 1) * hw + p) * ch + k], unc = o[p * ch + k];
                ref_eps[k * hw + p] = batch == 2 ? unc + (double)sc[1] * (cond - unc) : cond;
            }
        char what[96];
        snprintf(what, sizeof what, "latent_in batch %d, %lld px %s (scalars %d)", batch, (long long)hw,
                 vkd_dtype_suffix(dt), pass);
        test_expect_close(d, &tin, ref_in, dt == VKD_F16 ? 1e-6 : 1e-14, what);
        snprintf(what, sizeof what, "guidance batch %d, %lld px %s (scalars %d)", batch, (long long)hw,
                 vkd_dtype_suffix(dt), pass);
        test_expect_close(d, &teps, ref_eps, 1e-12, what);
    }
    TEST_CHECK(r == VKD_OK, "latent: %s", vkd_result_str(r));
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &tx), vkd_tensor_destroy(d, &ts_), vkd_tensor_destroy(d, &tin);
    vkd_tensor_destroy(d, &tout), vkd_tensor_destroy(d, &teps);
    free(x), free(o), free(ref_in), free(ref_eps);
}

int main(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    vkd_dtype dts[2];
    int nd = test_dtypes(d, dts);
    for (int i = 0; i < nd; i++) {
        for (int chunks = 1; chunks <= 3; chunks++)
            emphasis_case(d, dts[i], chunks, chunks == 3 ? 768 : 64, &rng);
        for (int batch = 1; batch <= 2; batch++)
            latent_case(d, dts[i], batch, batch == 1 ? 37 : 64 * 64, &rng);
    }
    test_device_close(d);
    return test_finish();
}
