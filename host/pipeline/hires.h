/* Hires fix (A1111's "Hires. fix", modules/processing.py StableDiffusionProcessingTxt2Img):
 * the image at the size asked, its latent upscaled (bilinear, "Latent") or its pixels
 * (Lanczos, then encoded again), then img2img at the larger size with the second pass's
 * steps and strength and the same seed. Each pass plans its own memory (txt2img.h). */
#ifndef VKD_PIPELINE_HIRES_H
#define VKD_PIPELINE_HIRES_H

#include "pipeline/pipe.h"
#include "vkdiff.h"

/* p->hires_scale > 1; rgb holds the larger image (vkd_image_bytes). */
vkd_result vkd_hires(vkd_pipe *P, vkd_gen_params *p, uint8_t *rgb, vkd_timings *tm);

/* torch.nn.functional.interpolate(mode="bilinear", align_corners=False) of x [c, h, w]
 * to out [c, oh, ow], in fp32 as torch computes it. */
void vkd_latent_bilinear(const float *x, int64_t c, int64_t h, int64_t w, float *out, int64_t oh, int64_t ow);

#endif
