/* Checkpoint layouts and family detection on tiny random checkpoints that
 * tools/make_checkpoint.py writes into the build folder at test time (numpy only;
 * $VKD_PYTHON overrides the interpreter). The maker maps CompVis -> diffusers in
 * Python; host/io/layout.c maps diffusers -> CompVis in C: the same numbers must come
 * back under the same internal names. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "harness.h"
#include "io/layout.h"
#include "models/detect.h"

static int make(const char *config, const char *out, const char *extra)
{
    const char *py = getenv("VKD_PYTHON") ? getenv("VKD_PYTHON") : "python3";
    const char *src = getenv("VKD_SOURCE") ? getenv("VKD_SOURCE") : ".";
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s/tools/make_checkpoint.py %s %s --vocab 320 %s 2>/dev/null", py, src, config, out,
             extra);
    int rc = system(cmd);
    TEST_CHECK(rc == 0, "could not run: %s (needs python3 + numpy)", cmd);
    return rc == 0;
}

/* Every diffusers tensor equals the CompVis tensor of the same internal name, value
 * for value; CompVis-only names must all start with one of `allowed_extra`. */
static void compare(const char *what, const vkd_weights *cv, const vkd_weights *df, const char *const *allowed_extra)
{
    size_t same = 0, diff = 0, absent = 0, extra = 0;
    for (size_t i = 0; i < vkd_weights_count(df); i++) {
        const vkd_wtensor *d = vkd_weights_at(df, i), *c = vkd_weights_find(cv, d->name);
        if (!c) {
            if (absent++ < 5)
                fprintf(stderr, "  %s: %s only in diffusers\n", what, d->name);
            continue;
        }
        int ok = c->rank == d->rank && c->nelem == d->nelem && !memcmp(c->shape, d->shape, sizeof c->shape);
        float *a = malloc(c->nelem * 4 + 4), *b = malloc(d->nelem * 4 + 4);
        ok = ok && a && b && vkd_wtensor_read_f32(c, a) == VKD_OK && vkd_wtensor_read_f32(d, b) == VKD_OK &&
             memcmp(a, b, c->nelem * 4) == 0;
        free(a);
        free(b);
        if (ok)
            same++;
        else if (diff++ < 5)
            fprintf(stderr, "  %s: %s differs\n", what, d->name);
    }
    for (size_t i = 0; i < vkd_weights_count(cv); i++) {
        const char *n = vkd_weights_at(cv, i)->name;
        if (vkd_weights_find(df, n))
            continue;
        int ok = 0;
        for (int k = 0; allowed_extra && allowed_extra[k]; k++)
            ok |= strncmp(n, allowed_extra[k], strlen(allowed_extra[k])) == 0;
        if (!ok && extra++ < 5)
            fprintf(stderr, "  %s: %s only in CompVis\n", what, n);
    }
    TEST_CHECK(same > 100 && diff == 0 && absent == 0 && extra == 0,
               "%s: CompVis vs diffusers: %zu equal, %zu differ, %zu only diffusers, %zu only CompVis", what, same, diff,
               absent, extra);
}

typedef struct {
    const char *config;
    vkd_family family;
    int mc, levels, nrb, ctx, linear, adm, n_text, text_width, text_layers;
    const char *const extra[3]; /* CompVis names diffusers does not ship */
} tiny_case;

static void check_config(const char *what, const vkd_model_config *c, const tiny_case *t, int text_layers)
{
    TEST_CHECK(c->family == t->family, "%s: family %s", what, vkd_family_name(c->family));
    TEST_CHECK(c->unet.model_channels == t->mc && c->unet.num_levels == t->levels && c->unet.num_res_blocks == t->nrb,
               "%s: unet %d ch, %d levels, %d res blocks", what, c->unet.model_channels, c->unet.num_levels,
               c->unet.num_res_blocks);
    TEST_CHECK(c->unet.context_dim == t->ctx && c->unet.linear_proj == t->linear && c->unet.adm_in_channels == t->adm,
               "%s: context %d linear %d adm %d", what, c->unet.context_dim, c->unet.linear_proj, c->unet.adm_in_channels);
    TEST_CHECK(c->n_text == t->n_text && c->text[0].width == t->text_width && c->text[0].layers == text_layers,
               "%s: %d text encoders, width %d, %d layers", what, c->n_text, c->text[0].width, c->text[0].layers);
    TEST_CHECK(c->vae.ch == 32 && c->vae.num_levels == 4 && c->vae.z_channels == 4 && c->vae.num_res_blocks == 1,
               "%s: vae ch %d levels %d z %d", what, c->vae.ch, c->vae.num_levels, c->vae.z_channels);
    TEST_CHECK(c->text[0].vocab == 320 && c->text[0].positions == 77, "%s: vocab %d", what, c->text[0].vocab);
}

static int count_missing(const char *name, int rank, const int64_t *shape, void *user)
{
    const vkd_weights *w = ((void **)user)[0];
    size_t *bad = ((void **)user)[1];
    const vkd_wtensor *t = vkd_weights_find(w, name);
    if (!t || t->rank != rank || memcmp(t->shape, shape, (size_t)rank * sizeof *shape)) {
        if ((*bad)++ < 3)
            fprintf(stderr, "  missing or wrong shape: %s\n", name);
    }
    return 0;
}

static void test_tiny_families_both_layouts(void)
{
    static const tiny_case cases[] = {
        {"tiny-sd1", VKD_FAMILY_SD1, 32, 2, 1, 64, 0, 0, 1, 64, 2, {NULL}},
        /* diffusers ships SD2's text encoder without its last layer, and no projection */
        {"tiny-sd2", VKD_FAMILY_SD2, 64, 2, 1, 64, 1, 0, 1, 64, 2,
         {"cond_stage_model.transformer.text_model.encoder.layers.1.", "cond_stage_model.transformer.text_projection",
          NULL}},
        {"tiny-sdxl", VKD_FAMILY_SDXL, 64, 2, 1, 128, 1, 64 + 6 * 256, 2, 64, 2, {NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const tiny_case *t = &cases[i];
        char cvp[512], dfp[512];
        snprintf(cvp, sizeof cvp, "%s", test_build_path(t->config));
        strcat(cvp, ".safetensors");
        snprintf(dfp, sizeof dfp, "%s-diffusers", test_build_path(t->config));
        if (!make(t->config, cvp, "") || !make(t->config, dfp, "--layout diffusers"))
            continue;
        vkd_weights *cv = NULL, *df = NULL;
        TEST_CHECK(vkd_weights_open(cvp, NULL, &cv) == VKD_OK, "%s opens", cvp);
        TEST_CHECK(vkd_weights_open(dfp, NULL, &df) == VKD_OK, "%s opens", dfp);
        if (cv && df) {
            TEST_CHECK(vkd_weights_layout(cv) == VKD_LAYOUT_COMPVIS && vkd_weights_layout(df) == VKD_LAYOUT_DIFFUSERS,
                       "%s: layouts", t->config);
            compare(t->config, cv, df, t->extra);
            vkd_model_config c1, c2;
            TEST_CHECK(vkd_model_detect(cv, &c1, NULL, 0) == VKD_OK, "%s CompVis detected", t->config);
            TEST_CHECK(vkd_model_detect(df, &c2, NULL, 0) == VKD_OK, "%s diffusers detected", t->config);
            check_config(cvp, &c1, t, t->text_layers);
            check_config(dfp, &c2, t, t->family == VKD_FAMILY_SD2 ? t->text_layers - 1 : t->text_layers);
            size_t bad = 0;
            void *u[2] = {cv, &bad};
            vkd_model_expected(&c1, count_missing, u);
            TEST_CHECK(bad == 0, "%s: %zu expected tensors missing or misshapen", t->config, bad);
            TEST_CHECK(vkd_weights_tokenizer_dir(df, 0) != NULL, "%s: tokenizer/ found", dfp);
        }
        /* --vae: the diffusers VAE replaces the CompVis file's own */
        char vae[600];
        snprintf(vae, sizeof vae, "%s/vae/diffusion_pytorch_model.safetensors", dfp);
        vkd_weights *ov = NULL;
        TEST_CHECK(vkd_weights_open(cvp, vae, &ov) == VKD_OK, "%s with --vae %s", cvp, vae);
        const vkd_wtensor *v = ov ? vkd_weights_find(ov, "first_stage_model.decoder.up.1.upsample.conv.weight") : NULL;
        TEST_CHECK(v && strcmp(v->file, vae) == 0, "VAE tensor comes from the --vae file");
        vkd_weights_close(ov);
        vkd_weights_close(cv);
        vkd_weights_close(df);
    }
}

static void test_inpainting_and_refusals(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s", test_build_path("tiny-sd1-inpaint.safetensors"));
    if (make("tiny-sd1", p, "--inpaint --dtype bf16")) {
        vkd_weights *w = NULL;
        vkd_model_config c;
        TEST_CHECK(vkd_weights_open(p, NULL, &w) == VKD_OK, "inpainting file opens");
        TEST_CHECK(w && vkd_model_detect(w, &c, NULL, 0) == VKD_OK && c.inpaint && c.unet.in_channels == 9,
                   "9-channel UNet is detected as inpainting");
        vkd_weights_close(w);
        /* the diffusers VAE alone fits no family: no UNet */
        char vae[600];
        snprintf(vae, sizeof vae, "%s-diffusers/vae/diffusion_pytorch_model.safetensors", test_build_path("tiny-sd1"));
        w = NULL;
        vkd_result r = vkd_weights_open(vae, NULL, &w);
        char why[256] = "";
        TEST_CHECK(r != VKD_OK || vkd_model_detect(w, &c, why, sizeof why) == VKD_ERR_UNSUPPORTED,
                   "a VAE-only file is refused");
        TEST_CHECK(r != VKD_OK || strstr(why, "UNet") != NULL, "reason names the UNet: %s", why);
        vkd_weights_close(w);
    }
    vkd_weights *w = NULL;
    TEST_CHECK(vkd_weights_open("/nonexistent/model.ckpt", NULL, &w) == VKD_ERR_UNSUPPORTED && !w, "pickle refused");
    /* a diffusers folder with only a pickled UNet */
    char dir[512], cmd[1200];
    snprintf(dir, sizeof dir, "%s", test_build_path("pickle-diffusers"));
    snprintf(cmd, sizeof cmd, "mkdir -p %s/unet && printf 'PK\\003\\004' > %s/unet/diffusion_pytorch_model.bin", dir, dir);
    TEST_CHECK(system(cmd) == 0, "%s", cmd);
    TEST_CHECK(vkd_weights_open(dir, NULL, &w) == VKD_ERR_UNSUPPORTED && !w, "pickled diffusers UNet refused");
}

static void quiet(vkd_log_level l, const char *m, void *u)
{
    (void)l, (void)u;
    if (getenv("VKD_TEST_VERBOSE"))
        fprintf(stderr, "  log: %s\n", m);
}

int main(void)
{
    vkd_log_set(quiet, NULL, VKD_LOG_DEBUG);
    test_tiny_families_both_layouts();
    test_inpainting_and_refusals();
    return test_finish();
}
