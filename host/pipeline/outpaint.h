/* Outpainting: the init image on a larger canvas, the new area filled with its nearest
 * edge's colour (replicated outwards, A1111's "fill" from the border) and masked, then
 * inpainting at the larger size (image_in.h). docs/img2img.md. */
#ifndef VKD_PIPELINE_OUTPAINT_H
#define VKD_PIPELINE_OUTPAINT_H

#include "pipeline/pipe.h"
#include "pipeline/txt2img.h"

/* p->pad_* set (checked); rgb holds the larger image (vkd_image_bytes). */
vkd_result vkd_outpaint(vkd_pipe *P, vkd_gen_params *p, const vkd_txt2img_io *io, uint8_t *rgb, vkd_timings *tm);

/* src [sh, sw, ch] onto dst [sh + t + b, sw + l + r, ch], edges replicated outwards. */
void vkd_pad_replicate(const uint8_t *src, int sw, int sh, int ch, int l, int t, int r, int b, uint8_t *dst);

#endif
