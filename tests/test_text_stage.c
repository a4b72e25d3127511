/* The text stage (host/pipeline/text_stage.c) on tiny-sd1 with the real CLIP vocabulary:
 * 1. emphasis on the device equals A1111's rule applied in double to the unweighted
 *    encoding of the same tokens ("a red circle" vs "a (red:1.5) circle [blue]").
 * 2. a guided batch is [negative, prompt]: its prompt item equals the prompt encoded
 *    alone, and a negative shorter than the prompt is padded with the empty prompt's
 *    encoding (A1111 pad_cond).
 * 3. a batch shape's recording is kept and replayed; releasing the stage drops it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pipeline/text_stage.h"
#include "pipeline/txt2img.h"
#include "vkdiff_dev.h"

/* Encode and download: [items, chunks * 77, width]; the batch's weights out when asked. */
static float *encode(vkd_pipe *p, const char *prompt, const char *negative, bool guided, int *items, int *chunks,
                     float **weights, vkd_stage_stats *st)
{
    vkd_text_batch b;
    const vkd_tensor *ctx = NULL;
    vkd_result r = vkd_text_stage_tokenize(p->text, prompt, negative, guided, 0, true, &b);
    if (!r)
        r = vkd_text_stage_run(p->text, &b, &ctx, st);
    TEST_CHECK(r == VKD_OK, "encode '%s': %s", prompt, vkd_result_str(r));
    if (r) {
        vkd_text_batch_free(&b);
        return NULL;
    }
    int64_t n = vkd_tensor_numel(ctx);
    float *host = malloc((size_t)n * sizeof *host);
    vkd_tensor_download_f32(p->d, ctx, host);
    *items = b.items, *chunks = b.chunks;
    if (weights) {
        size_t nw = (size_t)b.items * b.chunks * 77;
        *weights = malloc(nw * sizeof **weights);
        memcpy(*weights, b.weights, nw * sizeof **weights);
    }
    vkd_text_batch_free(&b);
    return host;
}

static double nmse(const float *got, const float *want, size_t n)
{
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++)
        e += ((double)got[i] - want[i]) * ((double)got[i] - want[i]), s += (double)want[i] * want[i];
    return e / (s > 0 ? s : 1e-30);
}

static void run(vkd_precision prec)
{
    vkd_ctx_params cp;
    vkd_ctx_params_init(&cp);
    cp.model_path = test_data_path("tiny-sd1.safetensors");
    cp.tokenizer_path = test_shared_path("clip/bpe_simple_vocab_16e6.txt.gz");
    cp.precision = prec;
    cp.validation = true;
    vkd_ctx *ctx = NULL;
    vkd_result r = vkd_ctx_create(&cp, &ctx);
    TEST_CHECK(r == VKD_OK, "context: %s", vkd_result_str(r));
    if (r)
        return;
    test_ctx_validation_loaded(ctx, 1);
    vkd_pipe *p = vkd_ctx_pipe(ctx);
    const char *dt = p->dt == VKD_F16 ? "f16" : "f32";
    int64_t width = p->cfg.text[0].width, per = 77 * width;
    int items, chunks;
    vkd_stage_stats st;

    /* 1. emphasis */
    float *plain = encode(p, "a red circle blue", NULL, false, &items, &chunks, NULL, &st);
    float *wts = NULL;
    float *weighted = encode(p, "a (red:1.5) circle [blue]", NULL, false, &items, &chunks, &wts, &st);
    if (plain && weighted && wts) {
        double *ref = malloc((size_t)per * sizeof *ref), before = 0, after = 0;
        for (int64_t i = 0; i < per; i++)
            before += plain[i], after += (double)plain[i] * wts[i / width];
        for (int64_t i = 0; i < per; i++)
            ref[i] = (double)plain[i] * wts[i / width] * (before / after);
        int off = 0;
        for (int t = 0; t < 77; t++)
            off += wts[t] != 1.0f;
        TEST_CHECK(off == 2, "emphasis: %d weighted tokens, want 2 (red, blue)", off);
        float *reff = malloc((size_t)per * sizeof *reff);
        for (int64_t i = 0; i < per; i++)
            reff[i] = (float)ref[i];
        double e = nmse(weighted, reff, (size_t)per), lim = p->dt == VKD_F16 ? 1e-6 : 1e-12;
        printf("%s text stage emphasis vs A1111 in double %s: nmse %.2e (max %.0e)\n", e <= lim ? "ok  " : "FAIL", dt,
               e, lim);
        TEST_CHECK(e <= lim, "emphasis nmse %.2e > %.0e", e, lim);
        free(ref), free(reff);
    }
    free(plain), free(weighted), free(wts);

    /* 2. a guided batch, the prompt two chunks long, the negative one */
    char longp[1200] = "";
    for (int i = 0; i < 100; i++)
        strcat(longp, i % 2 ? "blue " : "red ");
    int it1, ch1, it2, ch2, it3, ch3;
    float *alone = encode(p, longp, NULL, false, &it1, &ch1, NULL, &st);
    float *empty = encode(p, "", NULL, false, &it2, &ch2, NULL, &st);
    float *both = encode(p, longp, "square", true, &it3, &ch3, NULL, &st);
    TEST_CHECK(it1 == 1 && ch1 == 2 && it2 == 1 && ch2 == 1 && it3 == 2 && ch3 == 2,
               "batch shapes %dx%d, %dx%d, %dx%d (want 1x2, 1x1, 2x2)", it1, ch1, it2, ch2, it3, ch3);
    if (alone && empty && both && ch3 == 2) {
        double e1 = nmse(both + 2 * per, alone, (size_t)(2 * per)); /* item 1 = the prompt */
        double e2 = nmse(both + per, empty, (size_t)per);             /* item 0, chunk 1 = padding */
        double lim = p->dt == VKD_F16 ? 1e-7 : 1e-12;
        printf("%s guided batch %s: prompt item vs alone nmse %.1e, padding vs the empty prompt nmse %.1e\n",
               e1 <= lim && e2 <= lim ? "ok  " : "FAIL", dt, e1, e2);
        TEST_CHECK(e1 <= lim, "prompt item differs from the prompt alone: nmse %.2e", e1);
        TEST_CHECK(e2 <= lim, "padding differs from the empty prompt: nmse %.2e", e2);
    }
    free(alone), free(empty), free(both);

    /* 3. recordings kept until release */
    float *a = encode(p, "a red circle", NULL, false, &items, &chunks, NULL, &st);
    TEST_CHECK(a && !st.recorded, "a 1x1 batch was recorded again (kept from part 1)");
    free(a);
    vkd_text_stage_release(p->text);
    a = encode(p, "a red circle", NULL, false, &items, &chunks, NULL, &st);
    TEST_CHECK(a && st.recorded, "after release the batch was not recorded again");
    free(a);
    TEST_CHECK(vkd_ctx_validation_errors(ctx) == 0, "validation errors");
    vkd_ctx_free(ctx);
}

int main(void)
{
    run(VKD_PRECISION_FP32);
    run(VKD_PRECISION_FP16);
    return test_finish();
}
