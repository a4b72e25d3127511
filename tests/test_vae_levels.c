/* Issue 18 item 8: the same seed gave different images with tools/make_checkpoint.py's
 * old tiny-sd1, whose VAE had 2 levels. Such a decoder upsamples the latent 2x, not
 * 8x as every SD VAE and vkdiff's pipeline (latent = image / 8) do: the pipeline
 * allocated an 8x image, the decoder wrote 1/16 of it, and the PNG showed whatever the
 * heap held in the rest (heap pointers, freed data: different in every process).
 *
 * 1. Detection refuses a VAE decoder without 4 levels (2 and 3 here), naming the VAE;
 *    the 4-level tiny file is accepted (tools/make_checkpoint.py at test time).
 * 2. vkd_vae_decode_image, whole and tiled, writes every value of the 8h x 8w image
 *    (the caller's buffer is filled with NaN first), and returns an error, not a
 *    partly written image, when the decoder's output is another size (the tiny oracle
 *    file's VAE, all multipliers 1, run with its level count set to 2). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "harness.h"
#include "io/layout.h"
#include "models/detect.h"
#include "models/wstore.h"
#include "pipeline/vae_decode.h"

static int make(const char *out, const char *extra)
{
    const char *py = getenv("VKD_PYTHON") ? getenv("VKD_PYTHON") : "python3";
    const char *src = getenv("VKD_SOURCE") ? getenv("VKD_SOURCE") : ".";
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s/tools/make_checkpoint.py tiny-sd1 %s --vocab 320 %s 2>/dev/null", py, src, out,
             extra);
    int rc = system(cmd);
    TEST_CHECK(rc == 0, "could not run: %s (needs python3 + numpy)", cmd);
    return rc == 0;
}

static void test_detect(void)
{
    static const struct {
        const char *mult;
        int ok;
    } cases[] = {{"1,2", 0}, {"1,1,1", 0}, {NULL, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[600], extra[64] = "";
        snprintf(path, sizeof path, "%s-%zu.safetensors", test_build_path("tiny-sd1-vae-levels"), i);
        if (cases[i].mult)
            snprintf(extra, sizeof extra, "--vae-mult %s", cases[i].mult);
        if (!make(path, extra))
            continue;
        vkd_weights *w = NULL;
        vkd_model_config c;
        char why[512] = "";
        vkd_result r = vkd_weights_open(path, NULL, &w);
        TEST_CHECK(r == VKD_OK, "%s opens", path);
        if (!r)
            r = vkd_model_detect(w, &c, why, sizeof why);
        const char *mult = cases[i].mult ? cases[i].mult : "default";
        if (cases[i].ok) {
            TEST_CHECK(r == VKD_OK && c.vae.num_levels == 4, "VAE multipliers %s: detected (%s) with %d levels",
                       mult, vkd_result_str(r), c.vae.num_levels);
        } else {
            TEST_CHECK(r == VKD_ERR_UNSUPPORTED, "VAE multipliers %s: refused (got %s)", mult, vkd_result_str(r));
            TEST_CHECK(strstr(why, "VAE") != NULL, "VAE multipliers %s: the reason names the VAE: '%s'", mult, why);
        }
        vkd_weights_close(w);
    }
}

/* values of img[0, n) still NaN (never written) */
static size_t unwritten(const float *img, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += isnan(img[i]) != 0;
    return k;
}

static void test_decode(vkd_device *d)
{
    vkd_weights *w = NULL;
    vkd_model_config cfg;
    vkd_result r = vkd_weights_open(test_data_path("tiny-sd1.safetensors"), NULL, &w);
    if (!r)
        r = vkd_model_detect(w, &cfg, NULL, 0);
    TEST_CHECK(r == VKD_OK && cfg.vae.num_levels == 4, "tiny-sd1 opens with a 4-level VAE (%s)", vkd_result_str(r));
    if (r) {
        vkd_weights_close(w);
        return;
    }
    const int64_t h = 4, w_ = 4;
    const size_t n = (size_t)(64 * h * w_ * 3);
    float *z = malloc((size_t)(h * w_ * cfg.vae.z_channels) * sizeof *z), *img = malloc(n * sizeof *img);
    test_rng rng = {test_seed()};
    for (int64_t i = 0; i < h * w_ * cfg.vae.z_channels; i++)
        z[i] = (float)test_rng_normal(&rng);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    for (int di = 0; di < ndt; di++) {
        vkd_wstore *ws = NULL;
        if (vkd_wstore_create(d, w, dts[di], &ws))
            continue;
        const char *dn = vkd_dtype_suffix(dts[di]);
        for (int levels = 4; levels >= 2; levels -= 2) {
            vkd_vae_config vc = cfg.vae;
            vc.num_levels = levels;
            /* whole, then 2-latent-pixel tiles overlapping by 1 (3x3 tiles) */
            for (int tile = 0; tile <= 2; tile += 2) {
                for (size_t i = 0; i < n; i++)
                    img[i] = NAN;
                vkd_vae_decode_stats st = {0};
                r = vkd_vae_decode_image(d, ws, dts[di], &vc, z, h, w_, tile, 1, 0, img, &st);
                size_t nan = unwritten(img, n);
                if (levels == 4) {
                    TEST_CHECK(r == VKD_OK && nan == 0 && st.tiles == (tile ? 9 : 1),
                               "%s, %s decode: %s, %zu of %zu values unwritten, %d tiles", dn,
                               tile ? "tiled" : "whole", vkd_result_str(r), nan, n, st.tiles);
                } else {
                    TEST_CHECK(r != VKD_OK, "%s, %s decode by a 2x decoder into an 8x image: %s, %zu of %zu values "
                               "unwritten (must be an error)", dn, tile ? "tiled" : "whole", vkd_result_str(r), nan, n);
                }
            }
        }
        vkd_wstore_destroy(ws);
    }
    free(z), free(img);
    vkd_weights_close(w);
}

static void quiet(vkd_log_level l, const char *m, void *u)
{
    (void)l, (void)u;
    if (getenv("VKD_TEST_VERBOSE"))
        fprintf(stderr, "  log: %s\n", m);
}

int main(void)
{
    vkd_log_set(quiet, NULL, VKD_LOG_DEBUG); /* the refusals log errors on purpose */
    test_detect();
    vkd_device *d = test_device_open(0);
    test_decode(d);
    test_device_close(d);
    return test_finish();
}
