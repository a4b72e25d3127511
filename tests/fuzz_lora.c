/* libFuzzer target: LoRA files (host/lora) on arbitrary bytes, against tiny-sd1
 * (opened once from $VKD_TEST_DATA, default tests/data). Every LoRA that opens has each
 * target's delta and its device factors computed (and found again by name), so a bound
 * missed by the shape checks shows up under ASan;
 * every refusal must leave *out NULL. Seeds: tests/fuzz_corpus/lora/ (make_lora.py at
 * rank 1: kohya, LoCon with a Tucker core, LoHa, LoKr, PEFT).
 * Run: ./fuzz_lora -max_total_time=60 tests/fuzz_corpus/lora */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "io/layout.h"
#include "lora/lora.h"
#include "models/detect.h"

static void quiet(vkd_log_level l, const char *m, void *u)
{
    (void)l, (void)m, (void)u;
}

static vkd_weights *model;
static vkd_model_config cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vkd_log_set(quiet, NULL, VKD_LOG_DEBUG); /* format every message, print none */
    if (!model) {
        char path[1024];
        const char *dir = getenv("VKD_TEST_DATA") ? getenv("VKD_TEST_DATA") : "tests/data";
        snprintf(path, sizeof path, "%s/tiny-sd1.safetensors", dir);
        if (vkd_weights_open(path, NULL, &model) != VKD_OK || vkd_model_detect(model, &cfg, NULL, 0) != VKD_OK) {
            fprintf(stderr, "fuzz_lora: cannot open %s (set VKD_TEST_DATA)\n", path);
            abort();
        }
    }
    vkd_lora *l = (vkd_lora *)1;
    if (vkd_lora_open_memory(data, size, "fuzz", model, &cfg, &l) != VKD_OK) {
        if (l)
            abort(); /* a refusal leaves no object */
        return 0;
    }
    for (size_t i = 0; i < vkd_lora_count(l); i++) {
        const char *name;
        int64_t shape[VKD_ST_MAX_RANK];
        int rank = vkd_lora_target(l, i, &name, shape);
        if (rank < 2 || !name)
            abort();
        size_t n = 1;
        for (int d = 0; d < rank; d++)
            n *= (size_t)shape[d];
        float *out = malloc(n * sizeof *out + 1);
        if (out && vkd_lora_delta(l, i, out, 1.0f) != VKD_OK)
            abort();
        free(out);
        vkd_wdelta f;
        if (vkd_lora_find(l, name) != (long)i || vkd_lora_factors(l, i, 0.5f, &f) != VKD_OK)
            abort();
        size_t rows = (size_t)shape[0], cols = n / rows; /* touch the last element of each factor */
        if (f.rank)
            f.u[rows * (size_t)f.rank - 1] += f.d[(size_t)f.rank * cols - 1];
        else
            f.u[n - 1] += 0.0f;
        free(f.u), free(f.d);
    }
    for (size_t i = 0; i < vkd_lora_unmatched_count(l); i++)
        if (!vkd_lora_unmatched(l, i))
            abort();
    vkd_lora_close(l);
    return 0;
}
