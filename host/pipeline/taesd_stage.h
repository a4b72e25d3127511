/* The TAESD stage: a TAESD/TAESDXL decoder (models/taesd.h) beside the model's VAE, for
 * a fast final decode (--taesd) and for previews of the denoised estimate during
 * sampling (--preview). Owns its own weights (a small store of its own, kept while the
 * same file is asked for) and records its decode per call: some 40 dispatches, small
 * beside the decode itself.
 *
 * Which family a TAESD file was trained for is not in its tensors (TAESD and TAESDXL
 * differ in values only): a file is refused when its metadata ("taesd_model", written
 * by tools/make_taesd.py and tools/shapes) or madebyollin's file name (taesdxl_decoder
 * vs taesd_decoder) says it is the other family; otherwise it is taken as is. */
#ifndef VKD_PIPELINE_TAESD_STAGE_H
#define VKD_PIPELINE_TAESD_STAGE_H

#include "pipeline/pipe.h"

typedef struct vkd_taesd_stage vkd_taesd_stage;

/* Open path (a TAESD file or folder, any layout of io/layout_taesd.h) for p's model:
 * a decoder whose latent channels are the UNet's and whose family (above) is not the
 * other one. VKD_ERR_FORMAT / VKD_ERR_UNSUPPORTED (logged, naming the file) otherwise. */
vkd_result vkd_taesd_stage_open(vkd_pipe *p, const char *path, vkd_taesd_stage **out);
void vkd_taesd_stage_destroy(vkd_taesd_stage *s); /* NULL is fine */
const char *vkd_taesd_stage_path(const vkd_taesd_stage *s);

/* latent: the sampler's [zc, h, w] NCHW (not scaled) -> img [8h * 8w, 3] channels-last in
 * [-1, 1] (the VAE decode stage's convention: TAESD's [0, 1] times 2 minus 1, not
 * clamped). VKD_ERR_NON_FINITE when the output holds NaN/Inf. */
vkd_result vkd_taesd_stage_run(vkd_taesd_stage *s, const float *latent, int64_t h, int64_t w, float *img);

#endif
