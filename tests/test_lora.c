/* LoRA files against the deltas tools/make_lora.py computes independently (numpy,
 * float64): every format on tiny SD1, SD2 and SDXL, written into the build folder at
 * test time ($VKD_PYTHON runs the maker). Then the refusals: another family's LoRA,
 * modules that match nothing, damaged shapes and dtypes. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "harness.h"
#include "io/layout.h"
#include "lora/lora.h"
#include "models/detect.h"
#include "st_edit.h"

static char last_error[1024], last_warn[1024];

static void capture(vkd_log_level l, const char *m, void *u)
{
    (void)u;
    if (l == VKD_LOG_ERROR)
        snprintf(last_error, sizeof last_error, "%s", m);
    if (l == VKD_LOG_WARN)
        snprintf(last_warn, sizeof last_warn, "%s", m);
    if (getenv("VKD_TEST_VERBOSE"))
        fprintf(stderr, "  log: %s\n", m);
}

static const char *make_lora(const char *family, const char *format)
{
    const char *py = getenv("VKD_PYTHON") ? getenv("VKD_PYTHON") : "python3";
    char rel[128], cmd[4096];
    snprintf(rel, sizeof rel, "lora-%s-%s.safetensors", family, format);
    const char *out = test_build_path(rel);
    snprintf(cmd, sizeof cmd, "%s %s %s/tiny-%s.safetensors %s --format %s --rank 4 --seed 7 >/dev/null", py,
             test_source_path("tools/make_lora.py"), test_data_path(""), family, out, format);
    int rc = system(cmd);
    TEST_CHECK(rc == 0, "could not run: %s (needs python3 + numpy)", cmd);
    return rc == 0 ? out : NULL;
}

typedef struct { vkd_weights *w; vkd_model_config cfg; } model;

static int open_model(const char *family, model *m)
{
    char rel[64];
    snprintf(rel, sizeof rel, "tiny-%s.safetensors", family);
    m->w = NULL;
    int ok = vkd_weights_open(test_data_path(rel), NULL, &m->w) == VKD_OK &&
             vkd_model_detect(m->w, &m->cfg, NULL, 0) == VKD_OK;
    TEST_CHECK(ok, "tiny-%s opens and is detected", family);
    return ok;
}

/* Every target's delta equals the maker's within 1e-5 of the tensor's largest value. */
static void test_every_format_matches_numpy_deltas(void)
{
    static const char *const families[] = {"sd1", "sd2", "sdxl"};
    static const char *const formats[] = {"kohya", "locon", "loha", "lokr", "peft"};
    for (size_t fi = 0; fi < 3; fi++) {
        model m;
        if (!open_model(families[fi], &m))
            continue;
        for (size_t k = 0; k < 5; k++) {
            const char *path = make_lora(families[fi], formats[k]);
            if (!path)
                continue;
            char dp[1024];
            snprintf(dp, sizeof dp, "%s.deltas.safetensors", path);
            vkd_st_file *ref = NULL;
            vkd_lora *l = NULL;
            vkd_result r = vkd_lora_open(path, m.w, &m.cfg, &l);
            TEST_CHECK(r == VKD_OK, "%s %s: opens (%s): %s", families[fi], formats[k], vkd_result_str(r), last_error);
            TEST_CHECK(vkd_st_open(dp, &ref) == VKD_OK, "%s: deltas open", dp);
            if (!l || !ref) {
                vkd_lora_close(l);
                vkd_st_close(ref);
                continue;
            }
            size_t bad = 0, missing = 0;
            double worst = 0;
            for (size_t i = 0; i < vkd_lora_count(l); i++) {
                const char *name;
                int64_t shape[VKD_ST_MAX_RANK];
                int rank = vkd_lora_target(l, i, &name, shape);
                const vkd_st_tensor *t = vkd_st_find(ref, name);
                if (!t) {
                    if (missing++ < 3)
                        fprintf(stderr, "  %s %s: %s has no numpy delta\n", families[fi], formats[k], name);
                    continue;
                }
                size_t n = 1;
                for (int d = 0; d < rank; d++)
                    n *= (size_t)shape[d];
                float *got = malloc(n * sizeof *got), *want = malloc(t->nelem * sizeof *want + 1);
                int ok = got && want && n == t->nelem && vkd_lora_delta(l, i, got, 1.0f) == VKD_OK &&
                         vkd_st_tensor_to_f32(t, want) == VKD_OK;
                double maxref = 0, maxerr = 0;
                for (size_t j = 0; ok && j < n; j++) {
                    maxref = fmax(maxref, fabs(want[j]));
                    maxerr = fmax(maxerr, fabs((double)got[j] - want[j]));
                }
                double rel = maxref > 0 ? maxerr / maxref : maxerr;
                worst = fmax(worst, rel);
                if (!ok || rel > 1e-5) {
                    if (bad++ < 3)
                        fprintf(stderr, "  %s %s: %s differs: %g relative\n", families[fi], formats[k], name, rel);
                }
                /* the multiplier scales */
                if (ok && i == 0 && vkd_lora_delta(l, i, got, -0.5f) == VKD_OK)
                    TEST_CHECK(fabs(got[0] + 0.5 * want[0]) <= 1e-5 * maxref + 1e-12, "multiplier -0.5 scales");
                free(got);
                free(want);
            }
            TEST_CHECK(vkd_lora_count(l) == vkd_st_count(ref) && !bad && !missing && !vkd_lora_unmatched_count(l),
                       "%s %s: %zu targets (numpy %zu), %zu differ, %zu missing, %zu unmatched, worst %.2g relative",
                       families[fi], formats[k], vkd_lora_count(l), vkd_st_count(ref), bad, missing,
                       vkd_lora_unmatched_count(l), worst);
            printf("%s %s: %zu targets, worst %.2g relative\n", families[fi], formats[k], vkd_lora_count(l), worst);
            vkd_lora_close(l);
            vkd_st_close(ref);
        }
        vkd_weights_close(m.w);
    }
}

/* s with tensor `from` renamed `to`, written to out */
static int st_write_renamed(const st_image *s, const char *from, const char *to, const char *out)
{
    cJSON *h = cJSON_Duplicate(s->header, 1);
    cJSON *it = h ? cJSON_DetachItemFromObject(h, from) : NULL;
    if (!it) {
        cJSON_Delete(h);
        return -1;
    }
    cJSON_AddItemToObject(h, to, it);
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    FILE *f = js ? fopen(out, "wb") : NULL;
    int ok = f != NULL;
    if (f) {
        size_t n = strlen(js), pad = (8 - n % 8) % 8;
        unsigned long long hl = n + pad;
        unsigned char len[8];
        for (int i = 0; i < 8; i++)
            len[i] = (unsigned char)(hl >> (8 * i));
        ok = fwrite(len, 1, 8, f) == 8 && fwrite(js, 1, n, f) == n && fwrite("        ", 1, pad, f) == pad &&
             fwrite(s->bytes + s->data0, 1, s->size - s->data0, f) == s->size - s->data0;
        ok = fclose(f) == 0 && ok;
    }
    free(js);
    return ok ? 0 : -1;
}

static void test_refusals_and_unmatched(void)
{
    model sd1, sdxl;
    if (!open_model("sd1", &sd1) || !open_model("sdxl", &sdxl))
        return;
    const char *xl = make_lora("sdxl", "kohya"), *one = make_lora("sd1", "kohya");
    vkd_lora *l = NULL;
    if (xl) {
        last_error[0] = 0;
        TEST_CHECK(vkd_lora_open(xl, sd1.w, &sd1.cfg, &l) == VKD_ERR_UNSUPPORTED && !l, "an SDXL LoRA on SD1 is refused");
        TEST_CHECK(strstr(last_error, "SDXL") && strstr(last_error, "SD1.x"), "the message names both: %s", last_error);
    }
    if (one) {
        last_error[0] = 0;
        TEST_CHECK(vkd_lora_open(one, sdxl.w, &sdxl.cfg, &l) == VKD_ERR_UNSUPPORTED && !l, "an SD1 LoRA on SDXL is refused");
        TEST_CHECK(strstr(last_error, "SD1.x/SD2.x") && strstr(last_error, "SDXL"), "the message names both: %s",
                   last_error);
        st_image s;
        if (st_load(one, &s) == 0) {
            const char *mod = "lora_unet_down_blocks_0_attentions_0_proj_in";
            char from[256], to[256];
            /* a module no tensor of the model has: reported, the rest applies */
            snprintf(from, sizeof from, "%s.lora_up.weight", mod);
            snprintf(to, sizeof to, "lora_unet_down_blocks_9_attentions_0_proj_in.lora_up.weight");
            const char *p = test_build_path("lora-unmatched.safetensors");
            TEST_CHECK(st_write_renamed(&s, from, to, p) == 0, "renamed file written");
            last_warn[0] = 0;
            vkd_result r = vkd_lora_open(p, sd1.w, &sd1.cfg, &l);
            /* the module that lost its up is now incomplete: refused, naming it */
            TEST_CHECK(r == VKD_ERR_FORMAT && strstr(last_error, mod), "a module without its up is refused: %s",
                       last_error);
            vkd_lora_close(l);
            l = NULL;
            snprintf(from, sizeof from, "%s.alpha", mod);
            snprintf(to, sizeof to, "lora_unet_nothing_here.alpha");
            p = test_build_path("lora-unmatched2.safetensors");
            TEST_CHECK(st_write_renamed(&s, from, to, p) == 0, "renamed file written");
            r = vkd_lora_open(p, sd1.w, &sd1.cfg, &l);
            TEST_CHECK(r == VKD_ERR_FORMAT && strstr(last_error, "alpha and nothing else"), "a lone alpha: %s",
                       last_error);
            vkd_lora_close(l);
            l = NULL;
            snprintf(to, sizeof to, "lora_unet_nothing_here.lora_up.weight");
            snprintf(from, sizeof from, "%s.lora_up.weight", mod);
            /* both parts of a module renamed: unmatched, warned, the other modules kept */
            st_image s2;
            const char *p1 = test_build_path("lora-unmatched3a.safetensors");
            const char *p2 = test_build_path("lora-unmatched3.safetensors");
            if (st_write_renamed(&s, from, to, p1) == 0 && st_load(p1, &s2) == 0) {
                snprintf(from, sizeof from, "%s.lora_down.weight", mod);
                snprintf(to, sizeof to, "lora_unet_nothing_here.lora_down.weight");
                TEST_CHECK(st_write_renamed(&s2, from, to, p2) == 0, "renamed file written");
                st_free(&s2);
                snprintf(from, sizeof from, "%s.alpha", mod);
                snprintf(to, sizeof to, "lora_unet_nothing_here.alpha");
                if (st_load(p2, &s2) == 0) {
                    TEST_CHECK(st_write_renamed(&s2, from, to, p1) == 0, "renamed file written");
                    st_free(&s2);
                }
                r = vkd_lora_open(p1, sd1.w, &sd1.cfg, &l);
                TEST_CHECK(r == VKD_OK && l && vkd_lora_unmatched_count(l) == 1 &&
                               !strcmp(vkd_lora_unmatched(l, 0), "lora_unet_nothing_here"),
                           "one unmatched module, kept and listed (%s)", vkd_result_str(r));
                TEST_CHECK(strstr(last_warn, "1 LoRA module(s) match nothing") && strstr(last_warn, "nothing_here"),
                           "warned: %s", last_warn);
                vkd_lora_close(l);
                l = NULL;
            }
            /* a wrong shape, a non-float dtype */
            snprintf(from, sizeof from, "%s.lora_down.weight", mod);
            p = test_build_path("lora-badshape.safetensors");
            TEST_CHECK(st_write_changed(&s, from, NULL, 1, p) == 0, "grown file written");
            r = vkd_lora_open(p, sd1.w, &sd1.cfg, &l);
            TEST_CHECK(r == VKD_ERR_FORMAT && !l && strstr(last_error, "does not fit"), "a wrong shape: %s", last_error);
            p = test_build_path("lora-baddtype.safetensors");
            TEST_CHECK(st_write_changed(&s, from, "I32", 0, p) == 0, "I32 file written");
            r = vkd_lora_open(p, sd1.w, &sd1.cfg, &l);
            TEST_CHECK(r == VKD_ERR_FORMAT && !l && strstr(last_error, "I32"), "an integer factor: %s", last_error);
            st_free(&s);
        }
    }
    vkd_weights_close(sd1.w);
    vkd_weights_close(sdxl.w);
}

int main(void)
{
    vkd_log_set(capture, NULL, VKD_LOG_DEBUG);
    test_every_format_matches_numpy_deltas();
    test_refusals_and_unmatched();
    return test_finish();
}
