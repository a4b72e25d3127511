/* SDXL against the PyTorch oracle (tools/oracle/, golden-tiny-sdxl.safetensors), in
 * both layouts: the single-file sgm/CompVis checkpoint tests/data/tiny-sdxl.safetensors
 * and the same numbers as a diffusers folder, which tools/make_checkpoint.py --from
 * writes into the build folder at test time. fp32 and fp16 storage.
 *
 *   - the two text encoders (CLIP-L penultimate without the final norm; OpenCLIP
 *     penultimate without ln_final, and its pooled vector at the end-of-text row)
 *   - the text stage: the OpenCLIP ids derived from the CLIP ids, both encoders in one
 *     recording, the context concatenated, the pooled vector per item, and the empty
 *     negative as zeros
 *   - y (pooled + size embeddings) and the UNet with label_emb
 *   - the VAE (scale 0.13025), every sampler, the zero negative, SDXL-Turbo (euler_a,
 *     trailing, no guidance, 1 and 4 steps)
 *   - a generation from a prompt through the whole pipeline
 * Thresholds (issue 4): 1e-4 / 1e-2 per stage, PSNR 40 / 30 dB per image. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "harness.h"
#include "io/layout.h"
#include "models/clip.h"
#include "models/sdxl_cond.h"
#include "pipeline/text_stage.h"
#include "vkdiff_dev.h"

enum { L = 77 };

/* y from the golden pooled vector and sizes: host arithmetic, fp32 as torch does it */
static void test_vector(golden *g)
{
    size_t np, ny, ns;
    float *pooled = gload(g, "pooled", &np), *want = gload(g, "unet_y", &ny), *sizes = gload(g, "y_sizes", &ns);
    if (pooled && want && sizes && ns == 6) {
        int proj = (int)(np / 2), adm = (int)(ny / 2);
        vkd_sdxl_sizes sz = {(int)sizes[0], (int)sizes[1], (int)sizes[2], (int)sizes[3], (int)sizes[4], (int)sizes[5]};
        float *y = malloc((size_t)adm * 2 * sizeof *y);
        for (int r = 0; r < 2; r++)
            vkd_sdxl_vector(pooled + r * proj, proj, &sz, y + r * adm);
        /* torch evaluates cos/sin of the fp32 argument with its own vectorised routines: a few ulp */
        expect_rel_lim("SDXL y (pooled + size embeddings)", VKD_F32, y, want, ny, 1e-5);
        free(y);
    }
    free(pooled), free(want), free(sizes);
}

/* The text stage on the golden's tokens: [uncond, cond] = golden rows 1, 0. */
static void test_text_stage(vkd_ctx *ctx, golden *g, vkd_dtype dt, const char *lay)
{
    vkd_pipe *p = vkd_ctx_pipe(ctx);
    uint32_t tl[2 * L], tg[2 * L];
    size_t nc, npool;
    float *want = gload(g, "context", &nc), *wpool = gload(g, "pooled", &npool);
    if (!golden_ids(g, "tokens_l", tl) || !golden_ids(g, "tokens_g", tg) || !want || !wpool) {
        free(want), free(wpool);
        return;
    }
    size_t per = nc / 2, pp = npool / 2;
    int32_t ids[2 * L], ids2[2 * L], want2[2 * L];
    float weights[2 * L];
    for (int k = 0; k < L; k++) {
        ids[k] = (int32_t)tl[L + k], ids[L + k] = (int32_t)tl[k];
        want2[k] = (int32_t)tg[L + k], want2[L + k] = (int32_t)tg[k];
    }
    for (int k = 0; k < 2 * L; k++)
        weights[k] = 1;
    vkd_text_ids_openclip(ids, 2, ids2);
    TEST_CHECK(!memcmp(ids2, want2, sizeof ids2), "SDXL: the OpenCLIP ids (0 after the end-of-text) differ from tokens_g");
    vkd_text_batch b = {.ids = ids, .ids2 = ids2, .weights = weights, .items = 2, .chunks = 1, .skip = 1};
    float *got = malloc(nc * sizeof *got), *reorder = malloc(nc * sizeof *reorder), *pr = malloc(npool * sizeof *pr);
    for (int zero = 0; zero < 2; zero++) {
        b.zero_uncond = zero;
        const vkd_tensor *t = NULL;
        vkd_result r = vkd_text_stage_run(p->text, &b, &t, NULL);
        TEST_CHECK(r == VKD_OK, "SDXL %s text stage: %s", lay, vkd_result_str(r));
        if (r || (size_t)vkd_tensor_numel(t) != nc) {
            TEST_CHECK(r != VKD_OK, "SDXL text stage: context of %lld values, expected %zu",
                       (long long)vkd_tensor_numel(t), nc);
            break;
        }
        vkd_tensor_download_f32(p->d, t, got);
        const float *pooled = vkd_text_stage_pooled(p->text);
        char what[96];
        if (!zero) {
            memcpy(reorder, got + per, per * sizeof *got), memcpy(reorder + per, got, per * sizeof *got);
            snprintf(what, sizeof what, "SDXL %s text stage -> context", lay);
            expect_rel(vkd_ctx_pipe(ctx)->d, what, dt, reorder, want, nc);
            memcpy(pr, pooled + pp, pp * sizeof *pr), memcpy(pr + pp, pooled, pp * sizeof *pr);
            snprintf(what, sizeof what, "SDXL %s text stage -> pooled", lay);
            expect_rel(vkd_ctx_pipe(ctx)->d, what, dt, pr, wpool, npool);
        } else { /* the uncond item all zeros, the cond item as before */
            size_t nz = 0;
            for (size_t i = 0; i < per; i++)
                nz += got[i] != 0;
            for (size_t i = 0; i < pp; i++)
                nz += pooled[i] != 0;
            TEST_CHECK(nz == 0, "SDXL empty negative as zeros: %zu values are not 0", nz);
            snprintf(what, sizeof what, "SDXL %s zero negative: cond item", lay);
            expect_rel(vkd_ctx_pipe(ctx)->d, what, dt, got + per, want, per);
        }
    }
    vkd_text_stage_release(p->text);
    free(got), free(reorder), free(pr), free(want), free(wpool);
}

/* The zero-negative run and SDXL-Turbo (no guidance, euler_a on trailing timesteps). */
static void test_runs(vkd_ctx *ctx, golden *g, vkd_dtype dt, const char *lay)
{
    const vkd_st_tensor *ct = vkd_st_find(g->f, "context");
    float *context = gload(g, "context", NULL), *y = gload(g, "pipe_y", NULL), *zy = gload(g, "pipe_zneg_y", NULL);
    if (ct && context && y && zy) {
        int64_t Lc = ct->shape[1], C = ct->shape[2], adm = ctx ? vkd_ctx_pipe(ctx)->cfg.unet.adm_in_channels : 0;
        float *zeros = calloc((size_t)(Lc * C), sizeof *zeros);
        char what[96];
        vkd_gen_params gp;
        vkd_gen_params_init(&gp);
        gp.prompt = "", gp.steps = 4, gp.cfg = 7, gp.seed = 1234, gp.sampler = "euler", gp.schedule = "discrete";
        vkd_txt2img_io io = {.cond = context, .uncond = zeros, .ctx_len = Lc, .y_cond = y, .y_uncond = zy + adm};
        snprintf(what, sizeof what, "SDXL %s zero negative, euler latent", lay);
        golden_run(ctx, g, dt, &gp, &io, "pipe_zneg_euler", what);
        const int steps[2] = {1, 4};
        for (int k = 0; k < 2; k++) {
            vkd_gen_params_init(&gp);
            gp.prompt = "", gp.steps = steps[k], gp.cfg = 1, gp.seed = 1234, gp.sampler = "euler_a";
            gp.schedule = "trailing";
            vkd_txt2img_io io1 = {.cond = context, .ctx_len = Lc, .y_cond = y};
            char prefix[32];
            snprintf(prefix, sizeof prefix, "turbo_%d", steps[k]);
            snprintf(what, sizeof what, "SDXL %s Turbo %d step%s latent", lay, steps[k], steps[k] > 1 ? "s" : "");
            golden_run(ctx, g, dt, &gp, &io1, prefix, what);
        }
        free(zeros);
    }
    free(context), free(y), free(zy);
}

/* From a prompt through the whole pipeline (tokenizer, both encoders, y, UNet, VAE):
 * an image that is not flat, and the empty negative's two rules differ. */
static void test_prompt(vkd_ctx *ctx, const char *lay)
{
    vkd_gen_params gp;
    vkd_gen_params_init(&gp);
    gp.prompt = "a (red:1.3) circle on a blue background";
    gp.width = 64, gp.height = 48, gp.steps = 2, gp.seed = 7;
    size_t n = vkd_image_bytes(&gp);
    uint8_t *a = malloc(n), *b = malloc(n);
    vkd_result r = vkd_generate(ctx, &gp, a);
    gp.sdxl_encode_empty_negative = true;
    if (!r)
        r = vkd_generate(ctx, &gp, b);
    TEST_CHECK(r == VKD_OK, "SDXL %s from a prompt: %s", lay, vkd_result_str(r));
    if (!r) {
        size_t lo = 255, hi = 0, diff = 0;
        for (size_t i = 0; i < n; i++) {
            lo = a[i] < lo ? a[i] : lo, hi = a[i] > hi ? a[i] : hi;
            diff += a[i] != b[i];
        }
        printf("%s SDXL %s from a prompt: values %zu..%zu, %zu differ between zero and encoded negatives\n",
               hi > lo && diff ? "ok  " : "FAIL", lay, lo, hi, diff);
        TEST_CHECK(hi > lo, "SDXL image from a prompt is flat");
        TEST_CHECK(diff > 0, "SDXL: the empty negative as zeros and as \"\" gave the same image");
    }
    free(a), free(b);
}

static void run_layout(vkd_device *d, golden *g, const char *model, const char *lay)
{
    vkd_weights *w = NULL;
    vkd_model_config cfg;
    vkd_result r = vkd_weights_open(model, NULL, &w);
    if (!r)
        r = vkd_model_detect(w, &cfg, NULL, 0);
    TEST_CHECK(r == VKD_OK, "SDXL %s: open + detect: %s", lay, vkd_result_str(r));
    if (r) {
        vkd_weights_close(w);
        return;
    }
    TEST_CHECK(cfg.family == VKD_FAMILY_SDXL && cfg.n_text == 2 && cfg.unet.adm_in_channels == 1584 &&
                   fabsf(cfg.vae.scale_factor - 0.13025f) < 1e-7f,
               "SDXL %s: detected as %s", lay, vkd_family_name(cfg.family));
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++) {
        vkd_wstore *ws = NULL;
        if (vkd_wstore_create(d, w, dts[i], &ws))
            continue;
        golden_text_sdxl(d, ws, &cfg, g, dts[i], lay);
        char fam[32];
        snprintf(fam, sizeof fam, "SDXL %s", lay);
        golden_unet(d, ws, &cfg, g, dts[i], fam);
        golden_vae(d, ws, &cfg, g, dts[i], fam);
        vkd_wstore_destroy(ws);
        golden_pipeline(model, g, dts[i], fam, "eps");
        vkd_ctx *ctx = golden_ctx(model, dts[i]);
        if (ctx) {
            test_text_stage(ctx, g, dts[i], lay);
            test_runs(ctx, g, dts[i], lay);
            if (i == 0)
                test_prompt(ctx, lay);
            TEST_CHECK(vkd_ctx_validation_errors(ctx) == 0, "SDXL %s: validation errors", lay);
            vkd_ctx_free(ctx);
        }
    }
    vkd_weights_close(w);
}

int main(void)
{
    vkd_device *d = test_device_open(0);
    golden g = {0};
    vkd_result r = vkd_st_open(test_data_path("golden-tiny-sdxl.safetensors"), &g.f);
    TEST_CHECK(r == VKD_OK, "golden-tiny-sdxl: %s", vkd_result_str(r));
    if (!r) {
        test_vector(&g);
        char model[2048];
        snprintf(model, sizeof model, "%.2000s", test_data_path("tiny-sdxl.safetensors"));
        run_layout(d, &g, model, "single file");
        /* the same numbers in the diffusers layout */
        char folder[2048], cmd[12288];
        snprintf(folder, sizeof folder, "%.2000s", test_build_path("tiny-sdxl-diffusers"));
        const char *py = getenv("VKD_PYTHON") ? getenv("VKD_PYTHON") : "python3";
        const char *src = getenv("VKD_SOURCE") ? getenv("VKD_SOURCE") : ".";
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && %s %s/tools/make_checkpoint.py sdxl '%s' --layout diffusers --from '%s'",
                 folder, py, src, folder, model);
        int rc = system(cmd);
        TEST_CHECK(rc == 0, "could not run: %s", cmd);
        if (rc == 0)
            run_layout(d, &g, folder, "diffusers");
    }
    vkd_st_close(g.f);
    test_device_close(d);
    return test_finish();
}
