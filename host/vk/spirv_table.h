/* The embedded SPIR-V modules, generated at build time from the .comp files in shaders/.
 * Each shader file yields two entries: "<stem>_f32" and "<stem>_f16" (fp16 storage). */
#ifndef VKD_SPIRV_TABLE_H
#define VKD_SPIRV_TABLE_H
#include <stddef.h>
#include <stdint.h>

typedef struct vkd_spirv {
    const char *name;
    const uint32_t *words;
    size_t unused;
} vkd_spirv;

extern const vkd_spirv vkd_spirv_table[];
extern const size_t vkd_spirv_table_len;
extern const size_t *const vkd_spirv_sizes[]; /* byte size of entry i */

#endif
