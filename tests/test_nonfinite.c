/* Issue 18 item 4: NaN or Inf never becomes a silent black image.
 *
 * tiny-sd1 with one weight made NaN (a UNet conv, the text encoder's final norm, the
 * VAE's conv_out): generation fails with VKD_ERR_NON_FINITE and a message naming the
 * stage (and the UNet's step), in fp16 and fp32. A VAE whose fp16 decode overflows
 * (a conv_out bias of 1e5, finite in fp32, Inf as fp16) is decoded again in fp32, said
 * once, and the image comes out. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pipeline/encode_stage.h"
#include "pipeline/txt2img.h"
#include "st_edit.h"
#include "vkdiff.h"
#include "vkdiff_dev.h"

static char logged[16384];
static void keep_log(vkd_log_level l, const char *m, void *u)
{
    (void)l, (void)u;
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "%s\n", m);
}

static vkd_ctx *open_ctx(const char *model, vkd_precision prec)
{
    vkd_ctx_params cp;
    vkd_ctx_params_init(&cp);
    cp.model_path = model;
    cp.tokenizer_path = test_shared_path("clip/bpe_simple_vocab_16e6.txt.gz");
    cp.validation = getenv("VKD_NO_VALIDATION") == NULL;
    cp.precision = prec;
    cp.log = keep_log;
    vkd_ctx *ctx = NULL;
    vkd_result r = vkd_ctx_create(&cp, &ctx);
    TEST_CHECK(r == VKD_OK, "create: %s\n%s", vkd_result_str(r), logged);
    test_pin_driver_libs();
    test_ctx_validation_loaded(ctx, cp.validation);
    return ctx;
}

static const uint8_t *init_rgb; /* set: img2img from it (the encoder runs) */

static vkd_result gen(vkd_ctx *ctx, uint8_t *rgb)
{
    vkd_gen_params gp;
    vkd_gen_params_init(&gp);
    if (init_rgb)
        gp.init_image = init_rgb, gp.init_width = gp.init_height = 64;
    gp.prompt = "a red circle";
    gp.width = gp.height = 64;
    gp.steps = 2;
    gp.cfg = 1;
    gp.sampler = "euler";
    gp.seed = 3;
    memset(rgb, 0x5a, vkd_image_bytes(&gp));
    return vkd_generate(ctx, &gp, rgb);
}

int main(void)
{
    st_image s;
    const char *src = test_data_path("tiny-sd1.safetensors");
    if (st_load(src, &s)) {
        TEST_CHECK(0, "read %s", src);
        return test_finish();
    }
    /* a copy: the harness's path buffers rotate (8 deep), and this one is written to and
     * removed after many more path lookups (once it became the CLIP vocabulary's path) */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%.4000s", test_build_path("nonfinite.safetensors"));
    uint8_t *rgb = malloc(64 * 64 * 3);
    const float nan = 0.0f / 0.0f, inf = 1.0f / 0.0f;
    static const struct {
        const char *tensor;
        int inf;
        const char *want; /* in the error */
    } cases[] = {
        {"model.diffusion_model.input_blocks.0.0.weight", 0, "UNet: "},
        {"cond_stage_model.transformer.text_model.final_layer_norm.weight", 1, "text encoder: "},
        {"first_stage_model.decoder.conv_out.weight", 0, "VAE decode: "},
        {"first_stage_model.encoder.conv_in.weight", 0, "VAE encoder: "}, /* with an init image */
    };
    uint8_t *grey = malloc(64 * 64 * 3);
    memset(grey, 100, 64 * 64 * 3);
    for (int p = 0; p < 2; p++) {
        vkd_precision prec = p ? VKD_PRECISION_FP32 : VKD_PRECISION_AUTO;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            TEST_CHECK(st_write_value(&s, cases[i].tensor, 5, cases[i].inf ? inf : nan, tmp) == 0, "write");
            logged[0] = 0;
            vkd_ctx *ctx = open_ctx(tmp, prec);
            if (!ctx)
                continue;
            init_rgb = strstr(cases[i].want, "encoder") ? grey : NULL;
            vkd_result r = gen(ctx, rgb);
            init_rgb = NULL;
            TEST_CHECK(r == VKD_ERR_NON_FINITE && strstr(logged, cases[i].want),
                       "%s %s: generation %s (expected '%s...' and %s)\n%s", p ? "fp32" : "auto", cases[i].tensor,
                       vkd_result_str(r), cases[i].want, vkd_result_str(VKD_ERR_NON_FINITE), logged);
            if (strstr(cases[i].want, "UNet"))
                TEST_CHECK(strstr(logged, "at step 1 ") != NULL, "the UNet's error names the step:\n%s", logged);
            vkd_ctx_free(ctx);
        }
    }

    /* fp16 overflow in the VAE: Inf once stored as fp16, 1e5 in fp32 */
    const char *bias = "first_stage_model.decoder.conv_out.bias";
    st_image s32;
    TEST_CHECK(st_write_changed(&s, bias, "F32", 0, tmp) == 0 && st_load(tmp, &s32) == 0, "the bias as F32");
    TEST_CHECK(st_write_value(&s32, bias, 0, 1e5f, tmp) == 0, "write");
    st_free(&s32);
    logged[0] = 0;
    vkd_ctx *ctx = open_ctx(tmp, VKD_PRECISION_AUTO);
    if (ctx) {
        for (int k = 0; k < 2; k++) {
            vkd_result r = gen(ctx, rgb);
            TEST_CHECK(r == VKD_OK, "image %d with an overflowing VAE: %s\n%s", k, vkd_result_str(r), logged);
            int red = 1;
            for (int q = 0; q < 64 * 64; q++)
                red = red && rgb[3 * q] == 255;
            TEST_CHECK(r || red, "image %d: the bias of 1e5 saturates red in every pixel", k);
        }
        const char *say = "overflowed fp16";
        char *first = strstr(logged, say);
        vkd_device *d = test_device_open(0);
        int fp16 = d->use_f16;
        test_device_close(d);
        if (fp16) {
            TEST_CHECK(first != NULL, "the fp32 fallback is said:\n%s", logged);
            TEST_CHECK(first && !strstr(first + 1, say), "... once:\n%s", logged);
        } else {
            printf("skip: no fp16 storage on this device: nothing overflows\n");
        }
        vkd_ctx_free(ctx);
    }

    /* fp16 overflow in the VAE encoder: encoded again in fp32, said */
    const char *qb = "first_stage_model.quant_conv.bias";
    TEST_CHECK(st_write_changed(&s, qb, "F32", 0, tmp) == 0 && st_load(tmp, &s32) == 0, "the bias as F32");
    TEST_CHECK(st_write_value(&s32, qb, 0, 1e5f, tmp) == 0, "write");
    st_free(&s32);
    logged[0] = 0;
    ctx = open_ctx(tmp, VKD_PRECISION_AUTO);
    if (ctx) {
        vkd_pipe *pp = vkd_ctx_pipe(ctx);
        float *img = malloc(64 * 64 * 3 * sizeof *img), *mean = malloc(4 * 8 * 8 * sizeof *mean);
        float *logvar = malloc(4 * 8 * 8 * sizeof *logvar);
        for (int q = 0; q < 64 * 64 * 3; q++)
            img[q] = (float)(q % 7) / 7.0f - 0.5f;
        vkd_log_set(keep_log, NULL, VKD_LOG_WARN); /* a stage called directly logs through the process sink */
        vkd_result r = vkd_encode_stage_run(pp, img, 64, 64, 0, mean, logvar);
        vkd_log_set(NULL, NULL, VKD_LOG_WARN);
        TEST_CHECK(r == VKD_OK, "encode with an overflowing encoder: %s\n%s", vkd_result_str(r), logged);
        TEST_CHECK(r || (mean[0] > 9e4f && mean[0] < 1.1e5f), "the mean's channel 0 carries the bias of 1e5: %g",
                   r ? 0.0 : mean[0]);
        if (pp->dt == VKD_F16)
            TEST_CHECK(strstr(logged, "encoder overflowed fp16") != NULL, "the fp32 encode is said:\n%s", logged);
        free(img), free(mean), free(logvar);
        vkd_ctx_free(ctx);
    }
    free(grey);
    remove(tmp);
    free(rgb);
    st_free(&s);
    return test_finish();
}
