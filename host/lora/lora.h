/* LoRA files: which checkpoint tensor each module changes, and by how much (host fp32).
 *
 * A LoRA is a safetensors file of modules; a module is a name (kohya's
 * `lora_unet_down_blocks_0_attentions_0_proj_in`, PEFT's `unet.down_blocks.0...`) and a
 * few factors whose product is a weight delta. Formats, recognised per module by the
 * tensor suffixes (docs/lora.md has the sources):
 *   LoRA / LoCon   .lora_down.weight [r, in(,kh,kw)]  .lora_up.weight [out, r(,1,1)]
 *                  (.lora_mid.weight [r, r, kh, kw]: Tucker core, down then [r, in, 1, 1])
 *                  PEFT .lora_A.weight / .lora_B.weight, diffusers .lora.down / .lora.up
 *                  dW = up . (mid .) down
 *   LoHa           hada_w1_a [out, r] hada_w1_b [r, in*kh*kw] hada_w2_a hada_w2_b
 *                  dW = (w1a . w1b) * (w2a . w2b)   (elementwise)
 *   LoKr           lokr_w1 [a, c] or lokr_w1_a . lokr_w1_b; lokr_w2 [b, d(,kh,kw)] or
 *                  lokr_w2_a . lokr_w2_b; dW = kron(w1, w2), out = a*b, in = c*d
 * scale = alpha / rank (.alpha absent, or LoKr with both factors whole: 1); rank = rows
 * of lora_down / hada_w1_b / the decomposed LoKr factor's _b.
 *
 * Names are mapped to internal (CompVis) names for the detected family (lora_names.c);
 * a module that matches no target is reported (count and first names) and kept in
 * vkd_lora_unmatched; a LoRA of another family is refused naming both. */
#ifndef VKD_LORA_LORA_H
#define VKD_LORA_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "common/result.h"
#include "io/layout.h"
#include "models/detect.h"
#include "models/wstore.h"

typedef struct vkd_lora vkd_lora;

/* Open and check a LoRA against the model's weights. Returns VKD_OK, or
 * VKD_ERR_FORMAT (damaged, wrong shapes or ranks), VKD_ERR_UNSUPPORTED (another family,
 * a format not handled, non-float factors, nothing matches), VKD_ERR_IO; *out is NULL
 * on failure. The weights and config must outlive the LoRA. */
vkd_result vkd_lora_open(const char *path, const vkd_weights *w, const vkd_model_config *cfg, vkd_lora **out);
/* The same on bytes in memory (not copied: they must outlive the LoRA); label names them. */
vkd_result vkd_lora_open_memory(const void *data, size_t size, const char *label, const vkd_weights *w,
                                const vkd_model_config *cfg, vkd_lora **out);
void vkd_lora_close(vkd_lora *l); /* NULL is fine */

/* Target tensors (one per matched module), sorted by internal name. */
size_t vkd_lora_count(const vkd_lora *l);
/* Internal name (owned by l) and shape of target i; returns its rank, 0 if i is out of range. */
int vkd_lora_target(const vkd_lora *l, size_t i, const char **name, int64_t shape[VKD_ST_MAX_RANK]);
/* dW of target i times multiplier, into out (the target's element count, caller-owned),
 * accumulated in double. */
vkd_result vkd_lora_delta(const vkd_lora *l, size_t i, float *out, float multiplier);

/* The target index of the checkpoint tensor `name`, -1 if the LoRA does not change it. */
long vkd_lora_find(const vkd_lora *l, const char *name);
/* Target i's change times multiplier, for the device (models/wstore.h): LoRA and LoCon
 * as factors (u = up, d = down, or mid . down for a Tucker core, in the target's
 * [in, kh, kw] order; scale = alpha / rank * multiplier); LoHa and LoKr as the whole
 * delta (rank 0, scale 1). out->u and out->d are malloc'ed (the caller frees them). */
vkd_result vkd_lora_factors(const vkd_lora *l, size_t i, float multiplier, vkd_wdelta *out);

/* Modules that matched no tensor of the model (their LoRA names), reported once at open. */
size_t vkd_lora_unmatched_count(const vkd_lora *l);
const char *vkd_lora_unmatched(const vkd_lora *l, size_t i);

#endif
