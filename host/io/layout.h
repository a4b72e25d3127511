/* Checkpoint layouts: one internal naming for every way SD weights are shipped.
 *
 * A vkd_weights is the set of tensors a model reads, gathered from a CompVis/A1111
 * single file, or a diffusers folder (unet/, vae/, text_encoder/, text_encoder_2/,
 * tokenizer/), plus an optional separate VAE file that replaces the checkpoint's VAE.
 *
 * Internal names are the CompVis checkpoint keys, so model code names each block after
 * the key it reads:
 *   model.diffusion_model.input_blocks.1.0.in_layers.2.weight          UNet
 *   first_stage_model.decoder.up.3.block.0.conv1.weight                 VAE
 *   cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight
 * Text encoders always use the transformers CLIPTextModel naming under the slot's
 * CompVis prefix (cond_stage_model.transformer. for SD1/SD2; conditioner.embedders.0.
 * transformer. and conditioner.embedders.1.transformer. for SDXL). OpenCLIP towers
 * (SD2, SDXL's second encoder) are renamed to it: in_proj_weight/bias become q/k/v
 * row slices, text_projection [width, proj] becomes text_projection.weight [proj, width]
 * (transposed, as a linear weight), as sd.cpp and diffusers' converters do. Then one
 * text-encoder implementation reads all of them.
 *
 * Shapes are the CompVis ones: VAE attention q/k/v/proj_out are [C, C, 1, 1] even where
 * diffusers stores [C, C] (same bytes).
 *
 * The name maps are tables in layout_tables.c (fixed pairs plus block-prefix pairs generated
 * from the block counts found in the file). Source keys no table claims (model_ema.*,
 * alphas_cumprod, position_ids, logit_scale, ...) are ignored and listed. */
#ifndef VKD_IO_LAYOUT_H
#define VKD_IO_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "common/result.h"
#include "io/safetensors.h"

typedef enum vkd_layout { VKD_LAYOUT_COMPVIS = 0, VKD_LAYOUT_DIFFUSERS = 1 } vkd_layout;

/* How an internal tensor is read out of its source tensor. */
enum {
    VKD_WT_TRANSPOSE = 1, /* internal [a, b] = source [b, a] transposed */
};

/* One tensor under its internal name. Points into a file of the vkd_weights. */
typedef struct vkd_wtensor {
    const char *name;            /* internal (CompVis) name */
    const vkd_st_tensor *src;    /* where the bytes are */
    const char *file;            /* label (path) of the source file */
    size_t first;                /* first source element (row slices of in_proj) */
    int rank;
    int64_t shape[VKD_ST_MAX_RANK]; /* internal shape */
    size_t nelem;
    unsigned flags;              /* VKD_WT_* */
} vkd_wtensor;

typedef struct vkd_weights vkd_weights;

/* model_path: a .safetensors file or a diffusers folder. vae_path: NULL, or a VAE
 * .safetensors file (CompVis keys with or without "first_stage_model.", or diffusers
 * keys) or a diffusers vae/ folder. */
vkd_result vkd_weights_open(const char *model_path, const char *vae_path, vkd_weights **out);
/* A CompVis single file given as an open descriptor and a byte range of it (Android
 * hands assets out as (fd, offset, length)); label names it in messages. The
 * descriptor may be closed after the call (the mapping stays valid). */
vkd_result vkd_weights_open_fd(int fd, uint64_t offset, size_t length, const char *label, vkd_weights **out);
void vkd_weights_close(vkd_weights *w); /* NULL is fine */

vkd_layout vkd_weights_layout(const vkd_weights *w);
const char *vkd_layout_name(vkd_layout l);      /* "CompVis single file" / "diffusers folder" */
size_t vkd_weights_count(const vkd_weights *w);
const vkd_wtensor *vkd_weights_at(const vkd_weights *w, size_t i);      /* sorted by name */
const vkd_wtensor *vkd_weights_find(const vkd_weights *w, const char *name); /* NULL if absent */
/* Convenience: the shape of `name`, or rank -1 when absent. */
int vkd_weights_shape(const vkd_weights *w, const char *name, int64_t shape[VKD_ST_MAX_RANK]);

size_t vkd_weights_file_count(const vkd_weights *w);
const vkd_st_file *vkd_weights_file(const vkd_weights *w, size_t i);
/* Source keys that no table maps ("file: key"), ignored. */
size_t vkd_weights_ignored_count(const vkd_weights *w);
const char *vkd_weights_ignored(const vkd_weights *w, size_t i);
/* A diffusers folder's tokenizer/ (and tokenizer_2/) directory, or NULL. */
const char *vkd_weights_tokenizer_dir(const vkd_weights *w, int which);

/* Read a whole tensor (nelem elements, internal shape, row-major) into dst,
 * converting from the source dtype as vkd_st_tensor_to_f32/_f16 do. */
vkd_result vkd_wtensor_read_f32(const vkd_wtensor *t, float *dst);
vkd_result vkd_wtensor_read_f16(const vkd_wtensor *t, uint16_t *dst);

#endif
