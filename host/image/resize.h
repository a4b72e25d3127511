/* Image arithmetic for img2img and inpainting, on 8-bit interleaved pixels in caller
 * memory (plain C, no Vulkan). Both follow what A1111 does to its inputs, so an image
 * prepared here is the one A1111 would feed its VAE; sources and error bounds:
 * docs/image_input.md. */
#ifndef VKD_IMAGE_RESIZE_H
#define VKD_IMAGE_RESIZE_H

#include <stdint.h>

#include "common/result.h"

/* Resamples src [sh, sw, ch] into dst [dh, dw, ch] (ch 1..4, rows top to bottom) as
 * Pillow's Image.resize(size, Image.LANCZOS) does: Lanczos a=3, the kernel widened by
 * the downscale factor (antialiasing), horizontal pass then vertical, each rounded and
 * clamped to 8 bits, 22-bit fixed-point weights. The same size copies. src and dst must
 * not overlap. Returns VKD_OK, VKD_ERR_INVALID_ARG (a size <= 0, ch out of range, NULL)
 * or VKD_ERR_OUT_OF_HOST_MEMORY (scratch). */
vkd_result vkd_image_resize(const uint8_t *src, int sw, int sh, int ch, uint8_t *dst, int dw, int dh);

/* Blurs a grey mask [h, w] in place as A1111's "Mask blur" (modules/processing.py):
 * cv2.GaussianBlur with sigma blur_px and kernel size 2 * int(2.5 * blur_px + 0.5) + 1,
 * along x, rounded to 8 bits, then along y, borders reflected without repeating the edge
 * (cv2.BORDER_REFLECT_101). blur_px <= 0 leaves the mask as it is. Returns VKD_OK,
 * VKD_ERR_INVALID_ARG (blur_px over 256, a size <= 0, NULL) or VKD_ERR_OUT_OF_HOST_MEMORY. */
vkd_result vkd_mask_blur(uint8_t *mask, int w, int h, int blur_px);

#endif
