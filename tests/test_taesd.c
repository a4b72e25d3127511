/* TAESD and TAESDXL against the PyTorch oracle (tools/oracle/taesd_ref.py, written from
 * madebyollin/taesd taesd.py; tests/data/golden-taesd.safetensors), in every file
 * layout: madebyollin's decoder/encoder pair (a folder, and the decoder file alone),
 * diffusers' AutoencoderTiny (one file, and a folder with config.json), ComfyUI's
 * prefixed keys, and weights stored in fp16. The files are written at test time by
 * tools/make_taesd.py (numpy; deterministic, so they hold the oracle's numbers).
 *
 *   - the decoder: the latent as is (no VAE scale factor), clamped by 3 tanh(x / 3)
 *     (the golden latent passes 3), image in [0, 1] not clamped; the encoder: [0, 1]
 *     image -> latent. Thresholds of the other stage tests: relative error <= 1e-4 in
 *     fp32, <= 1e-2 in fp16 (fp16 activations through 22 convs: ~2e-3 seen).
 *   - the real width (64) and the tiny test width (16), read from the shapes
 *   - damaged and wrong files refused with an error, never a crash: a tensor of the
 *     wrong shape or dtype, a missing one, an extra one, an SD checkpoint, a text file.
 *   - the public API's previews on the shipped shapes model and its shipped decoder:
 *     the callback after steps 3, 6 and 7 of 7 (preview_every 3) at the image's size,
 *     the last preview equal to the final image decoded with the same TAESD (DPM++ 2M's
 *     last step returns the denoised estimate), a nonzero return cancels, and previews
 *     without a decoder are refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "harness.h"
#include "io/layout_taesd.h"
#include "models/taesd.h"
#include "st_edit.h"
#include "vkdiff.h"

static int make(const char *out, const char *args)
{
    const char *py = getenv("VKD_PYTHON") ? getenv("VKD_PYTHON") : "python3";
    const char *src = getenv("VKD_SOURCE") ? getenv("VKD_SOURCE") : ".";
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && %s %s/tools/make_taesd.py '%s' %s", out, py, src, out, args);
    int rc = system(cmd);
    TEST_CHECK(rc == 0, "could not run: %s (needs python3 + numpy)", cmd);
    return rc == 0;
}

/* golden NCHW [1, C, H, W] as [1, HW, C]; *c, *h, *w its sizes */
static float *load_nhwc(golden *g, const char *name, int64_t *c, int64_t *h, int64_t *w)
{
    const vkd_st_tensor *t = vkd_st_find(g->f, name);
    TEST_CHECK(t && t->rank == 4, "golden %s present", name);
    if (!t || t->rank != 4)
        return NULL;
    *c = t->shape[1], *h = t->shape[2], *w = t->shape[3];
    float *x = gload(g, name, NULL), *y = malloc((size_t)(*c * *h * *w) * sizeof *y);
    if (x && y)
        nchw_to_nhwc(x, y, 1, *c, *h * *w);
    free(x);
    return y;
}

/* One network (decoder or encoder) of cfg on the golden input -> compared with the golden output. */
static void run_net(vkd_device *d, vkd_wstore *ws, const vkd_taesd_config *cfg, golden *g, vkd_dtype dt,
                    const char *key, int dec, const char *what)
{
    char in_name[64], out_name[64];
    snprintf(in_name, sizeof in_name, "%s%s", key, dec ? "dec_z" : "enc_img");
    snprintf(out_name, sizeof out_name, "%s%s", key, dec ? "dec_out" : "enc_out");
    int64_t c, h, w, oc, oh, ow;
    float *in = load_nhwc(g, in_name, &c, &h, &w), *want = load_nhwc(g, out_name, &oc, &oh, &ow);
    stage s;
    if (in && want && stage_begin(&s, d, ws, dt)) {
        vkd_tensor t;
        int64_t shape[3] = {1, h * w, c};
        vkd_result r = vkd_tensor_create_in(d, s.g.pool, dt, 3, shape, &t);
        if (!r)
            r = vkd_tensor_upload_f32(d, &t, in);
        if (!r)
            r = dec ? vkd_taesd_decode_record(&s.g, cfg, &t, h, w, &s.out)
                    : vkd_taesd_encode_record(&s.g, cfg, &t, h, w, &s.out);
        char full[256];
        snprintf(full, sizeof full, "%s %s [%lldx%lld -> %lldx%lld]", what, dec ? "decode" : "encode", (long long)h,
                 (long long)w, (long long)oh, (long long)ow);
        float *got = stage_finish(&s, r, full);
        if (got)
            expect_rel(d, full, dt, got, want, (size_t)(oc * oh * ow));
        free(got);
    }
    free(in), free(want);
}

/* Open path as a TAESD file and check what it holds against the goldens of key. */
static void check_file(vkd_device *d, golden *g, const char *path, const char *key, int width, int want_dec,
                       int want_enc, const char *what)
{
    vkd_weights *w = NULL;
    vkd_result r = vkd_weights_open_taesd(path, &w);
    TEST_CHECK(r == VKD_OK, "%s: open %s: %s", what, path, vkd_result_str(r));
    if (r)
        return;
    vkd_taesd_config cfg;
    r = vkd_taesd_detect(w, path, &cfg);
    TEST_CHECK(r == VKD_OK && cfg.has_decoder == want_dec && cfg.has_encoder == want_enc &&
                   cfg.latent_channels == 4 && (!want_dec || cfg.dec_width == width) &&
                   (!want_enc || cfg.enc_width == width),
               "%s: detect: %s, decoder %d encoder %d latent %d widths %d/%d", what, vkd_result_str(r),
               cfg.has_decoder, cfg.has_encoder, cfg.latent_channels, cfg.dec_width, cfg.enc_width);
    vkd_dtype dts[2];
    int ndt = r ? 0 : test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++) {
        vkd_wstore *ws = NULL;
        r = vkd_wstore_create(d, w, dts[i], &ws);
        TEST_CHECK(r == VKD_OK, "%s: weight store: %s", what, vkd_result_str(r));
        if (r)
            continue;
        if (want_dec)
            run_net(d, ws, &cfg, g, dts[i], key, 1, what);
        if (want_enc)
            run_net(d, ws, &cfg, g, dts[i], key, 0, what);
        vkd_wstore_destroy(ws);
    }
    vkd_weights_close(w);
}

/* A file that must be refused: open or detect fails, nothing crashes. */
static void expect_refused(const char *path, const char *what)
{
    vkd_weights *w = NULL;
    vkd_result r = vkd_weights_open_taesd(path, &w);
    vkd_taesd_config cfg;
    if (!r)
        r = vkd_taesd_detect(w, path, &cfg);
    printf("%s refused: %-44s (%s)\n", r ? "ok  " : "FAIL", what, vkd_result_str(r));
    TEST_CHECK(r != VKD_OK, "%s: %s was accepted", what, path);
    vkd_weights_close(w);
}

static void test_layouts(vkd_device *d, golden *g)
{
    static const struct {
        const char *model;
        int width;
    } nets[] = {{"taesd", 16}, {"taesdxl", 16}, {"taesd", 64}, {"taesdxl", 64}};
    static const struct {
        const char *name, *args;
        int dec, enc, tiny_only;
    } lays[] = {
        {"madebyollin pair", "--layout madebyollin", 1, 1, 0},
        {"madebyollin decoder", "--layout madebyollin --part decoder", 1, 0, 1},
        {"madebyollin encoder", "--layout madebyollin --part encoder", 0, 1, 1},
        {"diffusers file", "--layout diffusers", 1, 1, 0},
        {"diffusers folder", "--layout diffusers --folder", 1, 1, 1},
        {"comfy", "--layout comfy", 1, 1, 1},
    };
    char path[512], args[256], key[64], what[160];
    for (size_t n = 0; n < sizeof nets / sizeof nets[0]; n++)
        for (size_t l = 0; l < sizeof lays / sizeof lays[0]; l++) {
            if (lays[l].tiny_only && nets[n].width != 16)
                continue;
            snprintf(path, sizeof path, "%s/taesd-test-%s-%d-%zu", test_build_path(""), nets[n].model, nets[n].width,
                     l);
            snprintf(args, sizeof args, "%s --model %s --width %d", lays[l].args, nets[n].model, nets[n].width);
            snprintf(key, sizeof key, "%s_w%d_", nets[n].model, nets[n].width);
            snprintf(what, sizeof what, "%s w%d %s", nets[n].model, nets[n].width, lays[l].name);
            if (make(path, args))
                check_file(d, g, path, key, nets[n].width, lays[l].dec, lays[l].enc, what);
        }
    /* weights stored in fp16 (rounded: the fp32 run meets the fp16 threshold only) */
    snprintf(path, sizeof path, "%s/taesd-test-f16", test_build_path(""));
    if (make(path, "--layout diffusers --model taesdxl --width 16 --dtype f16")) {
        vkd_weights *w = NULL;
        vkd_taesd_config cfg;
        int opened = vkd_weights_open_taesd(path, &w) == VKD_OK && vkd_taesd_detect(w, path, &cfg) == VKD_OK;
        TEST_CHECK(opened, "fp16 file opens");
        if (opened) {
            vkd_wstore *ws = NULL;
            if (vkd_wstore_create(d, w, VKD_F16, &ws) == VKD_OK) {
                run_net(d, ws, &cfg, g, VKD_F16, "taesdxl_w16_", 1, "taesdxl w16 fp16 file");
                vkd_wstore_destroy(ws);
            }
        }
        vkd_weights_close(w);
    }
}

/* The two models are told apart by their numbers only: TAESD's weights on TAESDXL's
 * golden must fail, which also shows that the comparison can fail. */
static void test_models_differ(vkd_device *d, golden *g)
{
    char path[512];
    snprintf(path, sizeof path, "%s/taesd-test-taesd-16-3", test_build_path(""));
    vkd_weights *w = NULL;
    vkd_taesd_config cfg;
    if (vkd_weights_open_taesd(path, &w) || vkd_taesd_detect(w, path, &cfg)) {
        TEST_CHECK(0, "reopen %s", path);
        vkd_weights_close(w);
        return;
    }
    vkd_wstore *ws = NULL;
    if (vkd_wstore_create(d, w, VKD_F32, &ws) == VKD_OK) {
        int64_t c, h, wd, oc, oh, ow;
        float *z = load_nhwc(g, "taesdxl_w16_dec_z", &c, &h, &wd);
        float *want = load_nhwc(g, "taesdxl_w16_dec_out", &oc, &oh, &ow);
        stage s;
        if (z && want && stage_begin(&s, d, ws, VKD_F32)) {
            vkd_tensor t;
            int64_t shape[3] = {1, h * wd, c};
            vkd_result r = vkd_tensor_create_in(d, s.g.pool, VKD_F32, 3, shape, &t);
            if (!r)
                r = vkd_tensor_upload_f32(d, &t, z);
            if (!r)
                r = vkd_taesd_decode_record(&s.g, &cfg, &t, h, wd, &s.out);
            float *got = stage_finish(&s, r, "TAESD weights on TAESDXL's golden");
            double e = got ? rel_err(got, want, (size_t)(oc * oh * ow)) : 0;
            printf("%s TAESD weights on TAESDXL's golden: relative error %.3g (must be > 0.1)\n",
                   e > 0.1 ? "ok  " : "FAIL", e);
            TEST_CHECK(e > 0.1, "TAESD's weights matched TAESDXL's golden (rel %.3g): the test cannot fail", e);
            free(got);
        }
        free(z), free(want);
        vkd_wstore_destroy(ws);
    }
    vkd_weights_close(w);
}

static void test_refusals(void)
{
    char src[512], out[512];
    snprintf(src, sizeof src, "%s/taesd-test-taesd-16-3", test_build_path("")); /* diffusers, tiny */
    st_image s;
    int loaded = st_load(src, &s) == 0;
    TEST_CHECK(loaded, "load %s", src);
    if (!loaded)
        return;
    static const struct {
        const char *name, *dtype;
        int grow;
        const char *what;
    } edits[] = {
        {"decoder.layers.2.conv.2.weight", NULL, 1, "a Block conv of another shape"},
        {"decoder.layers.0.weight", NULL, 3, "a first conv of another shape"},
        {"encoder.layers.14.bias", NULL, 1, "a bias of another length"},
        {"decoder.layers.18.weight", "I32", 0, "a weight of an integer dtype"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        snprintf(out, sizeof out, "%s/taesd-bad-%zu.safetensors", test_build_path(""), i);
        int made = st_write_changed(&s, edits[i].name, edits[i].dtype, edits[i].grow, out) == 0;
        TEST_CHECK(made, "edit %s", edits[i].name);
        if (made)
            expect_refused(out, edits[i].what);
    }
    st_free(&s);
    /* a missing tensor and an extra one: tools/make_taesd.py's madebyollin encoder file
     * given where a decoder is expected is not "wrong" by itself, so edit names instead */
    snprintf(out, sizeof out, "%s/taesd-bad-missing.safetensors", test_build_path(""));
    const char *py = getenv("VKD_PYTHON") ? getenv("VKD_PYTHON") : "python3";
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s -c \"import sys; sys.path.insert(0, '%s/tools'); import make_taesd as m; "
             "t = m.read_safetensors('%s'); t.pop('decoder.layers.7.conv.4.bias'); m.write_safetensors('%s', t); "
             "t = m.read_safetensors('%s'); t['decoder.layers.2.skip.weight'] = t['decoder.layers.0.weight'][:, :, :1, :1]; "
             "m.write_safetensors('%s/taesd-bad-extra.safetensors', t)\"",
             py, test_source_path(""), src, out, src, test_build_path(""));
    int made = system(cmd) == 0;
    TEST_CHECK(made, "%s", cmd);
    if (made) {
        expect_refused(out, "a missing tensor");
        snprintf(out, sizeof out, "%s/taesd-bad-extra.safetensors", test_build_path(""));
        expect_refused(out, "a Block with a skip conv (not TAESD's)");
    }
    expect_refused(test_data_path("tiny-sd1.safetensors"), "an SD1 checkpoint");
    expect_refused(test_data_path("rng_golden.json"), "a JSON file");
    expect_refused(test_build_path("no-such-taesd.safetensors"), "a path that does not exist");
    expect_refused(test_data_path(""), "a folder without TAESD files");
}

typedef struct preview_log {
    int calls, steps[8], bad_size, stop_at;
    uint8_t last[64 * 64 * 3];
} preview_log;

static int on_preview(void *user, int step, int total, const uint8_t *rgb, int width, int height)
{
    preview_log *l = user;
    if (l->calls < 8)
        l->steps[l->calls] = step;
    l->calls++;
    if (width != 64 || height != 64 || !rgb || total != 7)
        l->bad_size++;
    else
        memcpy(l->last, rgb, sizeof l->last);
    return l->stop_at && step >= l->stop_at;
}

static void test_api_previews(void)
{
    vkd_ctx_params cp;
    vkd_ctx_params_init(&cp);
    cp.model_path = test_source_path("weights/shapes.safetensors");
    cp.tokenizer_path = test_source_path("weights/tokenizer");
    cp.validation = true;
    vkd_ctx *ctx = NULL;
    vkd_result r = vkd_ctx_create(&cp, &ctx);
    TEST_CHECK(r == VKD_OK, "shapes context: %s", vkd_result_str(r));
    if (r)
        return;
    const char *tae = test_source_path("weights/shapes_taesd_decoder.safetensors");
    vkd_gen_params gp;
    vkd_gen_params_init(&gp);
    gp.prompt = "a large red circle in the center on a blue background";
    gp.width = gp.height = 64, gp.steps = 7, gp.cfg = 5, gp.seed = 2;
    gp.sampler = "dpm++2m", gp.schedule = "karras";
    static preview_log log;
    memset(&log, 0, sizeof log);
    gp.preview = on_preview, gp.preview_user = &log, gp.preview_every = 3;
    TEST_CHECK(vkd_gen_params_check(&gp) == VKD_ERR_INVALID_ARG, "previews without a TAESD decoder refused");
    gp.taesd = tae;
    static uint8_t rgb[64 * 64 * 3];
    r = vkd_generate(ctx, &gp, rgb);
    int steps_ok = log.calls == 3 && log.steps[0] == 3 && log.steps[1] == 6 && log.steps[2] == 7;
    int same = memcmp(log.last, rgb, sizeof rgb) == 0;
    printf("%s API previews: %d calls at steps %d %d %d, size errors %d, last preview %s the final image\n",
           !r && steps_ok && !log.bad_size && same ? "ok  " : "FAIL", log.calls, log.steps[0], log.steps[1],
           log.steps[2], log.bad_size, same ? "equals" : "differs from");
    TEST_CHECK(r == VKD_OK && steps_ok && !log.bad_size && same, "API previews (%s)", vkd_result_str(r));
    memset(&log, 0, sizeof log);
    log.stop_at = 3;
    r = vkd_generate(ctx, &gp, rgb);
    printf("%s API preview returning nonzero at step 3: %s after %d calls\n",
           r == VKD_ERR_CANCELLED && log.calls == 1 ? "ok  " : "FAIL", vkd_result_str(r), log.calls);
    TEST_CHECK(r == VKD_ERR_CANCELLED && log.calls == 1, "a preview callback's nonzero return cancels");
    vkd_ctx_free(ctx);
}

int main(void)
{
    golden g = {0};
    vkd_result r = vkd_st_open(test_data_path("golden-taesd.safetensors"), &g.f);
    TEST_CHECK(r == VKD_OK, "open golden-taesd.safetensors: %s", vkd_result_str(r));
    vkd_device *d = r ? NULL : test_device_open(0);
    if (d) {
        test_layouts(d, &g);
        test_models_differ(d, &g);
        test_device_close(d);
    }
    test_refusals();
    test_api_previews();
    vkd_st_close(g.f);
    return test_finish();
}
