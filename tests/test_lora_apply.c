/* LoRAs applied on the device, end to end (issue 22): tools/make_lora.py draws a LoRA
 * in each format for the tiny SD1, SD2 and SDXL (seeded, numpy: at test time);
 * tools/oracle/lora_golden.py --all drew the same files, merged their deltas (numpy
 * float64, from the maker's own factors) into the checkpoint in PyTorch and recomputed
 * the goldens in tests/data/lora/ (its CASES are this file's); the stages here run on the weight store with the LoRA applied
 * by the device kernel (ops/lora.h through models/wstore_delta.c) and must match them as
 * any stage does (1e-4 fp32, 1e-2 fp16). Then, through the API: multiplier 0 gives the
 * image without the LoRA bit for bit, switching sets back and forth gives the bytes of a
 * fresh context, <lora:NAME:W> in the prompt is the same as the list, two LoRAs add (the
 * oracle with both), and bad requests are refused with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "harness.h"
#include "lora/lora_set.h"
#include "pipeline/txt2img.h"

static int run(const char *cmd)
{
    int rc = system(cmd);
    TEST_CHECK(rc == 0, "could not run: %s (needs Debian's python3 with numpy and torch)", cmd);
    return rc == 0;
}

static const char *python(void) { return getenv("VKD_PYTHON") ? getenv("VKD_PYTHON") : "python3"; }

/* lora-apply-<fam>-<format>-<seed>.safetensors in the build folder (and its .deltas) */
static const char *make_lora(const char *fam, const char *format, int seed)
{
    char rel[128], cmd[4096];
    snprintf(rel, sizeof rel, "lora-apply-%s-%s-%d.safetensors", fam, format, seed);
    const char *out = test_build_path(rel);
    snprintf(cmd, sizeof cmd, "%s %s %s/tiny-%s.safetensors %s --format %s --rank 4 --seed %d >/dev/null", python(),
             test_source_path("tools/make_lora.py"), test_data_path(""), fam, out, format, seed);
    return run(cmd) ? out : NULL;
}

/* The text encoder (SD1/SD2) and the UNet with the LoRAs applied, against the golden. */
static void stages(vkd_device *d, const char *fam, const vkd_lora_use *use, size_t n, const char *golden_path,
                   const char *what)
{
    char rel[64];
    snprintf(rel, sizeof rel, "tiny-%s.safetensors", fam);
    golden g = {0};
    vkd_weights *w = NULL;
    vkd_model_config cfg;
    vkd_result r = vkd_st_open(golden_path, &g.f);
    if (!r && !(r = vkd_weights_open(test_data_path(rel), NULL, &w)))
        r = vkd_model_detect(w, &cfg, NULL, 0);
    TEST_CHECK(r == VKD_OK, "%s: golden, model: %s", what, vkd_result_str(r));
    vkd_dtype dts[2];
    for (int i = 0, ndt = r ? 0 : test_dtypes(d, dts); i < ndt; i++) {
        vkd_wstore *ws = NULL;
        vkd_lora_set *set = NULL;
        if (vkd_wstore_create(d, w, dts[i], &ws) || vkd_lora_set_create(w, &cfg, ws, &set))
            break;
        r = vkd_lora_set_apply(set, use, n);
        TEST_CHECK(r == VKD_OK, "%s: applied: %s", what, vkd_result_str(r));
        if (!r && cfg.family != VKD_FAMILY_SDXL)
            golden_text(d, ws, &cfg, &g, dts[i], what);
        if (!r && cfg.family == VKD_FAMILY_SDXL)
            golden_text_sdxl(d, ws, &cfg, &g, dts[i], what);
        if (!r)
            golden_unet(d, ws, &cfg, &g, dts[i], what);
        vkd_wstore_set_deltas(ws, NULL);
        vkd_lora_set_free(set);
        vkd_wstore_destroy(ws);
    }
    vkd_weights_close(w);
    vkd_st_close(g.f);
}

static const char *golden_path(const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "lora/golden-%s.safetensors", name);
    return test_data_path(rel);
}

static void every_format(vkd_device *d)
{
    static const char *const families[] = {"sd1", "sd2", "sdxl"};
    static const char *const formats[] = {"kohya", "locon", "loha", "lokr", "peft"};
    for (size_t k = 0; k < 15; k++) {
        const char *fam = families[k / 5], *fmt = formats[k % 5];
        const char *lora = make_lora(fam, fmt, 3);
        char name[64], what[96];
        if (!lora)
            continue;
        /* The maker's factors are N(0, 0.5^2): at weight 1 a delta is as large as the weight
         * itself. These weights keep the changed model's activations O(1), as a trained LoRA
         * does; past that the tiny SDXL's text encoders grow a context of std 7 at 0.4 (PEFT,
         * scale 1), its attention saturates and any rounding is amplified. */
        float weight = strcmp(fam, "sdxl") ? 0.4f : 0.15f;
        snprintf(name, sizeof name, "%s-%s", fam, fmt);
        snprintf(what, sizeof what, "%s + %s LoRA at %g", fam, fmt, (double)weight);
        vkd_lora_use use = {lora, weight};
        stages(d, fam, &use, 1, golden_path(name), what);
    }
}

/* two LoRAs on the same tensors: their deltas add (the oracle merges both) */
static void two_add(vkd_device *d)
{
    const char *a = make_lora("sd1", "kohya", 3), *b = make_lora("sd1", "loha", 5);
    vkd_lora_use use[2] = {{a, 0.4f}, {b, -0.7f}};
    if (a && b)
        stages(d, "sd1", use, 2, golden_path("sd1-two"), "sd1 + kohya at 0.4 + loha at -0.7");
}

/* ---- through the API ------------------------------------------------------------------ */

static char last_error[512];
static void capture(vkd_log_level l, const char *m, void *u)
{
    if (l == VKD_LOG_ERROR)
        snprintf(last_error, sizeof last_error, "%s", m);
}

static uint8_t *image(vkd_ctx *ctx, const char *prompt, const vkd_lora_spec *l, int n, const char *dir, vkd_result *r)
{
    vkd_gen_params p;
    vkd_gen_params_init(&p);
    p.prompt = prompt;
    p.width = p.height = 64;
    p.steps = 2;
    p.seed = 42;
    p.loras = l, p.n_loras = n, p.lora_dir = dir;
    uint8_t *rgb = test_alloc(vkd_image_bytes(&p));
    last_error[0] = 0;
    *r = vkd_generate(ctx, &p, rgb);
    if (*r) {
        free(rgb);
        return NULL;
    }
    return rgb;
}

static int same(const uint8_t *a, const uint8_t *b) { return a && b && !memcmp(a, b, 64 * 64 * 3); }

static void api(void)
{
    const char *a = make_lora("sd1", "kohya", 3), *b = make_lora("sd1", "locon", 9), *xl = make_lora("sdxl", "kohya", 3);
    if (!a || !b || !xl)
        return;
    vkd_ctx_params cp;
    vkd_ctx_params_init(&cp);
    cp.model_path = test_data_path("tiny-sd1.safetensors");
    cp.tokenizer_path = test_shared_path("clip/bpe_simple_vocab_16e6.txt.gz");
    cp.validation = getenv("VKD_NO_VALIDATION") == NULL;
    cp.log = capture;
    vkd_ctx *ctx = NULL, *fresh = NULL;
    TEST_CHECK(vkd_ctx_create(&cp, &ctx) == VKD_OK && vkd_ctx_create(&cp, &fresh) == VKD_OK, "contexts");
    if (!ctx || !fresh)
        goto done;
    vkd_result r;
    const char *prompt = "a red circle";
    vkd_lora_spec la = {a, 0.6f}, lb = {b, 0.5f}, l0 = {a, 0.0f}, lx = {xl, 1.0f};
    uint8_t *none = image(ctx, prompt, NULL, 0, NULL, &r), *zero = image(ctx, prompt, &l0, 1, NULL, &r);
    TEST_CHECK(same(none, zero), "a LoRA at weight 0 gives the image without it, bit for bit");
    uint8_t *ia = image(ctx, prompt, &la, 1, NULL, &r), *ib = image(ctx, prompt, &lb, 1, NULL, &r);
    uint8_t *ia2 = image(ctx, prompt, &la, 1, NULL, &r), *none2 = image(ctx, prompt, NULL, 0, NULL, &r);
    uint8_t *fa = image(fresh, prompt, &la, 1, NULL, &r), *fb = image(fresh, prompt, &lb, 1, NULL, &r);
    TEST_CHECK(ia && !same(ia, none), "the LoRA changes the image");
    TEST_CHECK(same(ia, fa) && same(ia2, fa), "A, B, A again on one context: the bytes of a fresh context with A");
    TEST_CHECK(same(ib, fb), "B after A: the bytes of another context going A then B");
    TEST_CHECK(same(none2, none), "back to no LoRA: the tensors restored from the checkpoint, the first image");
    /* the prompt syntax: the tag names a file of the folder, and leaves the text */
    char tagged[512], dir[4096];
    snprintf(dir, sizeof dir, "%s", a);
    *strrchr(dir, '/') = 0;
    const char *base = strrchr(a, '/') + 1; /* the name: the file name without ".safetensors" */
    snprintf(tagged, sizeof tagged, "a red <lora:%.*s:0.6>circle", (int)(strstr(base, ".safetensors") - base), base);
    uint8_t *tag = image(ctx, tagged, NULL, 0, dir, &r);
    uint8_t *plain = image(ctx, "a red circle", &la, 1, NULL, &r);
    TEST_CHECK(same(tag, plain), "'%s' with lora_dir gives the image of the list with A at 0.6", tagged);
    /* refusals */
    uint8_t *bad = image(ctx, "x <lora:no-such-lora:1>", NULL, 0, dir, &r);
    TEST_CHECK(!bad && r != VKD_OK && strstr(last_error, "no-such-lora"), "a missing LoRA: %s (%s)",
               vkd_result_str(r), last_error);
    bad = image(ctx, "x <lora:../etc/passwd:1>", NULL, 0, dir, &r);
    TEST_CHECK(!bad && r == VKD_ERR_INVALID_ARG, "a tag with a path is refused: %s (%s)", vkd_result_str(r),
               last_error);
    bad = image(ctx, "x <lora:a:heavy>", NULL, 0, dir, &r);
    TEST_CHECK(!bad && r == VKD_ERR_INVALID_ARG, "a tag whose weight is no number: %s (%s)", vkd_result_str(r),
               last_error);
    bad = image(ctx, prompt, &lx, 1, NULL, &r);
    TEST_CHECK(!bad && r == VKD_ERR_UNSUPPORTED && strstr(last_error, "SDXL") && strstr(last_error, "SD1"),
               "an SDXL LoRA on SD1: refused naming both (%s)", last_error);
    uint8_t *after = image(ctx, prompt, NULL, 0, NULL, &r);
    TEST_CHECK(same(after, none), "after a refused LoRA the model is as loaded");
    TEST_FREE(none, zero, ia, ib, ia2, none2, fa, fb, tag, plain, after);
done:
    vkd_ctx_free(ctx);
    vkd_ctx_free(fresh);
}

int main(void)
{
    vkd_device *d = test_device_open(0);
    every_format(d);
    two_add(d);
    test_device_close(d);
    api();
    return test_finish();
}
