/* Every model stage and every sampler against the PyTorch oracle (tools/oracle/):
 * tiny SD1-like and SD2-like checkpoints in the CompVis layout, fp32 and fp16
 * storage. Thresholds (issue 4): relative error <= 1e-4 per stage in fp32, <= 1e-2
 * in fp16; images PSNR >= 40 dB fp32, >= 30 dB fp16. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/layout.h"
#include "io/safetensors.h"
#include "models/clip.h"
#include "models/detect.h"
#include "models/unet.h"
#include "models/vae.h"
#include "pipeline/txt2img.h"
#include "vkdiff_dev.h"

#include "golden.h"

static void test_text(vkd_device *d, vkd_wstore *ws, const vkd_model_config *cfg, golden *g, vkd_dtype dt,
                      const char *fam)
{
    size_t nt;
    float *tokf = gload(g, "tokens", &nt);
    if (!tokf)
        return;
    uint32_t ids[2 * 77];
    for (size_t i = 0; i < nt && i < 154; i++)
        ids[i] = (uint32_t)tokf[i];
    int sd2 = cfg->family == VKD_FAMILY_SD2;
    /* SD1: last layer (skip 0) = context, penultimate = context_skip2; SD2: penultimate = context */
    const char *names[2] = {"context", sd2 ? "context_last" : "context_skip2"};
    int skips[2] = {sd2 ? 1 : 0, sd2 ? 0 : 1};
    for (int k = 0; k < 2; k++) {
        stage s;
        if (!stage_begin(&s, d, ws, dt))
            continue;
        vkd_buffer buf;
        vkd_result r = vkd_buffer_create_in(d, s.g.pool, sizeof ids, &buf);
        if (!r)
            r = vkd_buffer_upload(d, &buf, 0, ids, sizeof ids);
        if (!r)
            r = vkd_clip_record(&s.g, &cfg->text[0], &buf, 2, 77, skips[k], &s.out);
        char what[96];
        snprintf(what, sizeof what, "%s text encoder -> %s", fam, names[k]);
        float *got = stage_finish(&s, r, what);
        size_t n;
        float *ref = gload(g, names[k], &n);
        if (got && ref)
            expect_rel(what, dt, got, ref, n);
        free(got);
        free(ref);
    }
    free(tokf);
}

static void test_unet(vkd_device *d, vkd_wstore *ws, const vkd_model_config *cfg, golden *g, vkd_dtype dt,
                      const char *fam)
{
    const vkd_st_tensor *xt = vkd_st_find(g->f, "unet_x");
    TEST_CHECK(xt != NULL, "unet_x present");
    if (!xt)
        return;
    int64_t T = xt->shape[0], B = xt->shape[1], C = xt->shape[2], h = xt->shape[3], w = xt->shape[4];
    float *x = gload(g, "unet_x", NULL), *ts = gload(g, "unet_t", NULL), *ctx = gload(g, "unet_context", NULL);
    float *ref = gload(g, "unet_out", NULL);
    const vkd_st_tensor *ct = vkd_st_find(g->f, "unet_context");
    size_t per = (size_t)(B * C * h * w);
    float *xin = malloc(per * sizeof *xin), *want = malloc(per * sizeof *want);
    for (int64_t k = 0; k < T && x && ts && ctx && ref; k++) {
        stage s;
        if (!stage_begin(&s, d, ws, dt))
            break;
        vkd_tensor tx, tt, tc;
        int64_t xs[3] = {B, h * w, C}, tsz[1] = {B}, cs[3] = {B, ct->shape[1], ct->shape[2]};
        vkd_result r = vkd_tensor_create_in(d, s.g.pool, dt, 3, xs, &tx);
        if (!r)
            r = vkd_tensor_create_in(d, s.g.pool, VKD_F32, 1, tsz, &tt);
        if (!r)
            r = vkd_tensor_create_in(d, s.g.pool, dt, 3, cs, &tc);
        nchw_to_nhwc(x + (size_t)k * per, xin, B, C, h * w);
        float tv[8];
        for (int64_t b = 0; b < B && b < 8; b++)
            tv[b] = ts[k];
        if (!r)
            r = vkd_tensor_upload_f32(d, &tx, xin);
        if (!r)
            r = vkd_tensor_upload_f32(d, &tt, tv);
        if (!r)
            r = vkd_tensor_upload_f32(d, &tc, ctx);
        if (!r)
            r = vkd_unet_record(&s.g, &cfg->unet, &tx, h, w, &tt, &tc, NULL, &s.out);
        char what[96];
        snprintf(what, sizeof what, "%s UNet t=%g [%lld, %lldx%lld]", fam, ts[k], (long long)B, (long long)h,
                 (long long)w);
        float *got = stage_finish(&s, r, what);
        if (got) {
            nchw_to_nhwc(ref + (size_t)k * per, want, B, C, h * w);
            expect_rel(what, dt, got, want, per);
        }
        free(got);
    }
    free(x), free(ts), free(ctx), free(ref), free(xin), free(want);
}

static void test_vae(vkd_device *d, vkd_wstore *ws, const vkd_model_config *cfg, golden *g, vkd_dtype dt,
                     const char *fam)
{
    const vkd_st_tensor *zt = vkd_st_find(g->f, "vae_z"), *ot = vkd_st_find(g->f, "vae_out");
    TEST_CHECK(zt && ot, "vae goldens present");
    if (!zt || !ot)
        return;
    int64_t h = zt->shape[2], w = zt->shape[3], zc = zt->shape[1];
    int64_t H = ot->shape[2], W = ot->shape[3];
    float *z = gload(g, "vae_z", NULL), *ref = gload(g, "vae_out", NULL);
    float *zin = malloc((size_t)(h * w * zc) * sizeof *zin), *want = malloc((size_t)(H * W * 3) * sizeof *want);
    nchw_to_nhwc(z, zin, 1, zc, h * w);
    nchw_to_nhwc(ref, want, 1, 3, H * W);
    stage s;
    if (stage_begin(&s, d, ws, dt)) {
        vkd_tensor tz;
        int64_t zs[3] = {1, h * w, zc};
        vkd_result r = vkd_tensor_create_in(d, s.g.pool, dt, 3, zs, &tz);
        if (!r)
            r = vkd_tensor_upload_f32(d, &tz, zin);
        if (!r)
            r = vkd_vae_decode_record(&s.g, &cfg->vae, &tz, h, w, &s.out);
        char what[96];
        snprintf(what, sizeof what, "%s VAE decode [%lldx%lld -> %lldx%lld]", fam, (long long)h, (long long)w,
                 (long long)H, (long long)W);
        float *got = stage_finish(&s, r, what);
        if (got)
            expect_rel(what, dt, got, want, (size_t)(H * W * 3));
        free(got);
    }
    free(z), free(ref), free(zin), free(want);
}

static void test_pipeline(const char *model, golden *g, vkd_dtype dt, const char *fam, const char *prediction)
{
    vkd_ctx_params cp;
    vkd_ctx_params_init(&cp);
    cp.model_path = model;
    cp.tokenizer_path = test_shared_path("clip/bpe_simple_vocab_16e6.txt.gz");
    cp.precision = dt == VKD_F16 ? VKD_PRECISION_FP16 : VKD_PRECISION_FP32;
    cp.validation = getenv("VKD_NO_VALIDATION") == NULL;
    vkd_ctx *ctx = NULL;
    vkd_result r = vkd_ctx_create(&cp, &ctx);
    TEST_CHECK(r == VKD_OK, "%s: context: %s", fam, vkd_result_str(r));
    if (r)
        return;
    test_ctx_validation_loaded(ctx, cp.validation);
    const vkd_st_tensor *ct = vkd_st_find(g->f, "context"), *nt = vkd_st_find(g->f, "pipe_noise");
    const vkd_st_tensor *it = vkd_st_find(g->f, "pipe_euler_image");
    float *context = gload(g, "context", NULL), *noise = gload(g, "pipe_noise", NULL);
    if (!ct || !nt || !it || !context || !noise)
        goto done;
    int64_t L = ct->shape[1], C = ct->shape[2], h = nt->shape[2], w = nt->shape[3];
    int64_t H = it->shape[2], W = it->shape[3];
    size_t nl = (size_t)(4 * h * w), ni = (size_t)(H * W * 3);
    static const char *const samplers[][2] = {{"euler", "euler"},   {"euler_a", "euler_a"}, {"heun", "heun"},
                                              {"dpm++2m", "dpmpp2m"}, {"ddim", "ddim"},     {"lcm", "lcm"}};
    float *lat = malloc(nl * sizeof *lat), *img = malloc(ni * sizeof *img), *want = malloc(ni * sizeof *want);
    uint8_t *rgb = malloc(ni);
    for (size_t k = 0; k < sizeof samplers / sizeof samplers[0]; k++) {
        vkd_gen_params gp;
        vkd_gen_params_init(&gp);
        gp.prompt = "";
        gp.width = (int)W, gp.height = (int)H, gp.steps = 4, gp.cfg = 7, gp.seed = 1234;
        gp.sampler = samplers[k][0], gp.schedule = "discrete", gp.rng = "cpu", gp.prediction = prediction;
        /* the oracle draws its own start noise from the same seed: ours must agree */
        vkd_txt2img_io io = {.cond = context, .uncond = context + L * C, .ctx_len = L, .latent_out = lat,
                             .image_out = img};
        r = vkd_generate_io(ctx, &gp, &io, rgb);
        TEST_CHECK(r == VKD_OK, "%s %s: %s", fam, samplers[k][0], vkd_result_str(r));
        if (r)
            continue;
        char name[64], what[96];
        snprintf(name, sizeof name, "pipe_%s_latent", samplers[k][1]);
        float *rl = gload(g, name, NULL);
        snprintf(name, sizeof name, "pipe_%s_image", samplers[k][1]);
        float *ri = gload(g, name, NULL);
        if (rl && ri) {
            snprintf(what, sizeof what, "%s pipeline %s latent (4 steps, cfg 7)", fam, samplers[k][0]);
            /* A whole 4-step run is not one stage: fp16 storage error compounds over the
             * steps and guidance multiplies the cond - uncond difference by 7, so the
             * fp16 latent gets 3e-2 (measured 0.3-1.5%); the image criterion (PSNR)
             * is the issue's. fp32 keeps the per-stage 1e-4. */
            expect_rel_lim(what, dt, lat, rl, nl, dt == VKD_F16 ? 3e-2 : 1e-4);
            nchw_to_nhwc(ri, want, 1, 3, H * W);
            double p = psnr01(img, want, ni), lim = dt == VKD_F16 ? 30 : 40;
            printf("%s %-48s %s PSNR %.1f dB (min %.0f)\n", p >= lim ? "ok  " : "FAIL", "  image", vkd_dtype_suffix(dt),
                   p, lim);
            TEST_CHECK(p >= lim, "%s %s image PSNR %.1f < %.0f", fam, samplers[k][0], p, lim);
        }
        free(rl), free(ri);
    }
    free(lat), free(img), free(want), free(rgb);
done:
    free(context), free(noise);
    TEST_CHECK(vkd_ctx_validation_errors(ctx) == 0, "%s pipeline: validation errors", fam);
    vkd_ctx_free(ctx);
}

static void run_family(vkd_device *d, const char *fam, const char *model_rel, const char *golden_rel,
                       const char *prediction)
{
    char model[4096];
    snprintf(model, sizeof model, "%s", test_data_path(model_rel));
    golden g = {0};
    vkd_weights *w = NULL;
    vkd_model_config cfg;
    vkd_result r = vkd_st_open(test_data_path(golden_rel), &g.f);
    TEST_CHECK(r == VKD_OK, "golden %s: %s", golden_rel, vkd_result_str(r));
    if (!r)
        r = vkd_weights_open(model, NULL, &w);
    if (!r)
        r = vkd_model_detect(w, &cfg, NULL, 0);
    TEST_CHECK(r == VKD_OK, "%s: open + detect: %s", fam, vkd_result_str(r));
    if (!r) {
        vkd_dtype dts[2];
        int ndt = test_dtypes(d, dts);
        for (int i = 0; i < ndt; i++) {
            vkd_wstore *ws = NULL;
            if (vkd_wstore_create(d, w, dts[i], &ws))
                continue;
            test_text(d, ws, &cfg, &g, dts[i], fam);
            test_unet(d, ws, &cfg, &g, dts[i], fam);
            if (!strcmp(fam, "SD1")) { /* a latent that does not halve evenly (9x7, issue 18 item 12) */
                golden odd = {0};
                vkd_result ro = vkd_st_open(test_data_path("golden-tiny-sd1-odd.safetensors"), &odd.f);
                TEST_CHECK(ro == VKD_OK, "golden-tiny-sd1-odd: %s", vkd_result_str(ro));
                if (!ro)
                    test_unet(d, ws, &cfg, &odd, dts[i], "SD1 odd size");
                vkd_st_close(odd.f);
            }
            test_vae(d, ws, &cfg, &g, dts[i], fam);
            vkd_wstore_destroy(ws);
            test_pipeline(model, &g, dts[i], fam, prediction);
        }
    }
    vkd_weights_close(w);
    vkd_st_close(g.f);
}

int main(void)
{
    vkd_device *d = test_device_open(0);
    run_family(d, "SD1", "tiny-sd1.safetensors", "golden-tiny-sd1.safetensors", "eps");
    run_family(d, "SD2", "tiny-sd2.safetensors", "golden-tiny-sd2.safetensors", "v");
    test_device_close(d);
    return test_finish();
}
