/* The LoRAs an image is made with: parsed from the prompt (<lora:NAME:WEIGHT>) and given
 * as files, opened once and kept while they stay in use, and handed to the weight store
 * as its deltas (models/wstore.h). Switching sets restores only the tensors the old set
 * changed. docs/lora.md. */
#ifndef VKD_LORA_LORA_SET_H
#define VKD_LORA_LORA_SET_H

#include <stddef.h>

#include "lora/lora.h"

/* One LoRA by file and multiplier. */
typedef struct vkd_lora_use {
    const char *path;
    float weight;
} vkd_lora_use;

/* The prompt without its <lora:NAME[:WEIGHT]> tags (A1111 and stable-diffusion.cpp syntax;
 * WEIGHT defaults to 1), and the tags' names and weights, in order. The strings are
 * owned by the result (vkd_lora_tags_free). VKD_ERR_INVALID_ARG (logged) for a tag with
 * an empty name, a name with a path separator or "..", or a weight that is not a number. */
typedef struct vkd_lora_tags {
    char *prompt;
    char **names;
    float *weights;
    size_t n;
} vkd_lora_tags;
vkd_result vkd_lora_tags_parse(const char *prompt, vkd_lora_tags *out);
void vkd_lora_tags_free(vkd_lora_tags *t);

/* The file a tag names in dir: dir/NAME.safetensors, else dir/NAME; malloc'ed, NULL
 * (logged) when neither exists. */
char *vkd_lora_resolve(const char *dir, const char *name);

typedef struct vkd_lora_set vkd_lora_set;

vkd_result vkd_lora_set_create(const vkd_weights *w, const vkd_model_config *cfg, vkd_wstore *ws,
                               vkd_lora_set **out);
/* Apply exactly these LoRAs (n = 0: none): nothing happens when they are the ones in use;
 * files already open are kept; the store's tensors change in place. On failure the
 * store is left with no LoRA applied. */
vkd_result vkd_lora_set_apply(vkd_lora_set *s, const vkd_lora_use *use, size_t n);
void vkd_lora_set_free(vkd_lora_set *s); /* the store's deltas must be cleared before, or it freed */

#endif
