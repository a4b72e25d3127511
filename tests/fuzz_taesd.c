/* libFuzzer target: TAESD files (io/layout_taesd.h + models/taesd.h) on arbitrary bytes.
 * Every file the shape check accepts has each tensor read in full, so a bound the check
 * missed shows up under ASan; every refusal must leave *out NULL. Seeds:
 * tests/fuzz_corpus/taesd/ (tools/make_taesd.py at width 2: madebyollin decoder and
 * encoder, diffusers and ComfyUI files, F16 and F32).
 * Run: ./fuzz_taesd -max_total_time=60 tests/fuzz_corpus/taesd */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "io/layout_taesd.h"
#include "models/taesd.h"

static void quiet(vkd_log_level l, const char *m, void *u)
{
    (void)l, (void)m, (void)u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vkd_log_set(quiet, NULL, VKD_LOG_DEBUG); /* format every message, print none */
    vkd_weights *w = (vkd_weights *)1;
    if (vkd_weights_open_taesd_memory(data, size, "fuzz", &w) != VKD_OK) {
        if (w)
            abort(); /* a refusal leaves no object */
        return 0;
    }
    vkd_taesd_config cfg;
    if (vkd_taesd_detect(w, "fuzz", &cfg) == VKD_OK) {
        if (!cfg.has_decoder && !cfg.has_encoder)
            abort();
        for (size_t i = 0; i < vkd_weights_count(w); i++) {
            const vkd_wtensor *t = vkd_weights_at(w, i);
            float *v = malloc(t->nelem * sizeof *v + 1);
            if (v && vkd_wtensor_read_f32(t, v) != VKD_OK)
                abort(); /* the check accepted a tensor that cannot be read */
            free(v);
        }
    }
    vkd_weights_close(w);
    return 0;
}
