/* libFuzzer target: the GGUF reader (vkd_st_open_memory on bytes starting "GGUF") on
 * arbitrary bytes. Every accepted file is read back in full, every tensor converted to
 * f32 and f16 (dequantized), so a bad bound shows up under ASan. Seeds:
 * tests/fuzz_corpus/gguf (tools/fuzz_seeds.py). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "io/safetensors.h"

static void quiet(vkd_log_level l, const char *m, void *u)
{
    (void)l, (void)m, (void)u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vkd_log_set(quiet, NULL, VKD_LOG_DEBUG); /* format every message, print none */
    /* only GGUF: the safetensors reader has its own target */
    uint8_t *buf = malloc(size + 4);
    if (!buf)
        return 0;
    memcpy(buf, "GGUF", 4);
    if (size)
        memcpy(buf + 4, data, size);
    vkd_st_file *f = NULL;
    if (vkd_st_open_memory(buf, size + 4, "fuzz", &f) != VKD_OK) {
        free(buf);
        return 0;
    }
    for (size_t i = 0; i < vkd_st_count(f); i++) {
        const vkd_st_tensor *t = vkd_st_at(f, i);
        if (vkd_st_find(f, t->name) != t)
            abort(); /* names are unique and findable */
        size_t block = vkd_st_dtype_block(t->dtype);
        if (!block || t->nbytes != t->nelem / block * vkd_st_dtype_block_bytes(t->dtype))
            abort();
        if (t->nelem > (1u << 16) || !vkd_st_dtype_is_float(t->dtype))
            continue;
        float *dst = malloc(t->nelem * sizeof *dst + 1);
        uint16_t *h = malloc(t->nelem * sizeof *h + 1);
        if (dst && h && (vkd_st_tensor_to_f32(t, dst) != VKD_OK || vkd_st_tensor_to_f16(t, h) != VKD_OK))
            abort();
        free(dst);
        free(h);
    }
    const char *k, *v;
    for (size_t i = 0; vkd_st_metadata_at(f, i, &k, &v); i++)
        if (!k || !v)
            abort();
    vkd_st_close(f);
    free(buf);
    return 0;
}
