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
            golden_text(d, ws, &cfg, &g, dts[i], fam);
            golden_unet(d, ws, &cfg, &g, dts[i], fam);
            if (!strcmp(fam, "SD1")) { /* a latent that does not halve evenly (9x7, issue 18 item 12) */
                golden odd = {0};
                vkd_result ro = vkd_st_open(test_data_path("golden-tiny-sd1-odd.safetensors"), &odd.f);
                TEST_CHECK(ro == VKD_OK, "golden-tiny-sd1-odd: %s", vkd_result_str(ro));
                if (!ro)
                    golden_unet(d, ws, &cfg, &odd, dts[i], "SD1 odd size");
                vkd_st_close(odd.f);
            }
            golden_vae(d, ws, &cfg, &g, dts[i], fam);
            vkd_wstore_destroy(ws);
            golden_pipeline(model, &g, dts[i], fam, prediction);
            if (!strcmp(fam, "SD1")) { /* issue 27's samplers (tools/oracle/sampler_goldens.py) */
                static const char *const more[][2] = {
                    {"lms", "lms"}, {"dpm2", "dpm2"}, {"dpm++2m_sde", "dpmpp2m_sde"}, {"uni_pc", "uni_pc"}};
                golden gs = {0};
                vkd_result rs = vkd_st_open(test_data_path("golden-samplers-sd1.safetensors"), &gs.f);
                TEST_CHECK(rs == VKD_OK, "golden-samplers-sd1: %s", vkd_result_str(rs));
                if (!rs)
                    golden_pipeline_samplers(model, &gs, dts[i], "SD1", prediction, more, 4);
                vkd_st_close(gs.f);
            }
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
