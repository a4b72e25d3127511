/* libFuzzer target: the safetensors header parser (vkd_st_open_memory) on arbitrary
 * bytes. Every accepted file is then read back in full, so a bad bound shows up under
 * ASan. Build: configure with clang and -DVKD_FUZZ=ON, or run tests/run_fuzz.sh. */
#include <stdint.h>
#include <stdlib.h>

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
    vkd_st_file *f = NULL;
    if (vkd_st_open_memory(data, size, "fuzz", &f) != VKD_OK)
        return 0;
    for (size_t i = 0; i < vkd_st_count(f); i++) {
        const vkd_st_tensor *t = vkd_st_at(f, i);
        if (vkd_st_find(f, t->name) != t)
            abort(); /* names are unique and findable */
        if (t->nelem > (1u << 20) || !vkd_st_dtype_is_float(t->dtype))
            continue;
        float *dst = malloc(t->nelem * sizeof *dst + 1);
        if (dst && vkd_st_tensor_to_f32(t, dst) != VKD_OK)
            abort();
        free(dst);
    }
    const char *k, *v;
    for (size_t i = 0; vkd_st_metadata_at(f, i, &k, &v); i++)
        if (!k || !v)
            abort();
    vkd_st_close(f);
    return 0;
}
