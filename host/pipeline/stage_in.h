/* What a stage is asked to plan for: the model, the device and the image's shape. The
 * stages' memory requests (text_stage.h, denoise_stage.h, decode_stage.h) read it, and
 * the planner (memplan.h) composes their answers; a header of its own so that the
 * stages need not know the planner. */
#ifndef VKD_PIPELINE_STAGE_IN_H
#define VKD_PIPELINE_STAGE_IN_H

#include <stdbool.h>

#include "models/detect.h"
#include "models/wstore.h"
#include "vk/device.h"

/* Tiling requests (vkd_gen_params.vae_tiling). */
enum { VKD_TILING_AUTO = 0, VKD_TILING_ON = 1, VKD_TILING_OFF = -1 };

typedef struct vkd_memplan_in {
    vkd_device *d;
    vkd_wstore *ws;
    vkd_dtype dt;
    const vkd_model_config *cfg;
    int64_t h, w;          /* latent size */
    int64_t batch;         /* UNet batch: 2 with guidance */
    int64_t ctx_len;       /* context tokens (77 per prompt chunk) */
    uint64_t budget;       /* 0: from the driver (memory budget extension, else the heap size) */
    int tiling;            /* VKD_TILING_* */
    int tile_px;           /* requested tile edge in image pixels (0: 512) */
    int text_chunks;       /* chunks the text stage encodes at once (items x chunks; 0: 1) */
    int text_skip;         /* final text-encoder layers left out */
    bool encode;           /* an image goes through the VAE encoder (img2img, inpainting) */
} vkd_memplan_in;

#endif
