/* LoRA module names -> internal tensor names, for one model family.
 *
 * Built forward from the model's own tensors: for every weight a LoRA may change
 * (rank 2 or 4 under the UNet or a text encoder), the names each convention gives its
 * module, kept sorted for lookup. A LoRA name is never parsed back ('_' is both the
 * separator and part of names such as transformer_blocks). */
#ifndef VKD_LORA_NAMES_H
#define VKD_LORA_NAMES_H

#include <stddef.h>

#include "common/result.h"
#include "io/layout.h"
#include "models/detect.h"

typedef struct vkd_lora_name {
    char *module;            /* "lora_unet_down_blocks_0_attentions_0_proj_in" */
    const vkd_wtensor *target;
} vkd_lora_name;

typedef struct vkd_lora_names {
    vkd_lora_name *v;
    size_t n, cap;
} vkd_lora_names;

vkd_result vkd_lora_names_build(const vkd_weights *w, const vkd_model_config *cfg, vkd_lora_names *out);
void vkd_lora_names_free(vkd_lora_names *n);
const vkd_wtensor *vkd_lora_names_find(const vkd_lora_names *n, const char *module);
/* Internal UNet path ("input_blocks.1.1.proj_in") -> diffusers path, 0 when it has none. */
int vkd_unet_diffusers_path(const vkd_unet_config *u, const char *path, char *out, size_t cap);

#endif
