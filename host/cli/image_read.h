/* Reading the command's input images (img2img's init image, inpainting's mask): PNG
 * (libpng) and JPEG (libjpeg-turbo). The library takes RGB8 / grey8 buffers; only the
 * command reads files (decision 11). What each input becomes, and why: docs/image_input.md. */
#ifndef VKD_CLI_IMAGE_READ_H
#define VKD_CLI_IMAGE_READ_H
#include <stddef.h>
#include <stdint.h>

/* Limits checked from the header, before any pixel memory is allocated. */
#define VKD_CLI_IMAGE_MAX_SIDE 16384
#define VKD_CLI_IMAGE_MAX_PIXELS (64ll << 20) /* 64 Mpx: 192 MiB as RGB8 */

typedef struct vkd_cli_image {
    uint8_t *pixels; /* [height, width, channels], rows top to bottom; malloc'd, vkd_cli_image_free */
    int width, height;
    int channels;    /* 3 (RGB) or 1 (grey) */
} vkd_cli_image;

/* An image file as 8-bit RGB, as PIL's Image.open(path).convert("RGB") gives it (A1111
 * and diffusers load init images so): alpha dropped, grey and palettes expanded, 16-bit
 * PNG reduced to its high byte, a JPEG's EXIF orientation applied (ImageOps.exif_transpose).
 * Returns 0 on success; else -1 with *out zeroed and a message naming the file in err. */
int vkd_cli_image_read(const char *path, vkd_cli_image *out, char *err, size_t errlen);

/* A mask file as 8-bit grey (channels 1): colour converted as PIL's convert("L")
 * (ITU-R 601-2 luma, Pillow's rounding), alpha ignored; EXIF orientation as above. */
int vkd_cli_mask_read(const char *path, vkd_cli_image *out, char *err, size_t errlen);

/* The decoders on bytes in memory (the fuzz target's entry, and what the readers call).
 * name is put in messages; channels is 3 or 1 as above, or 2 for the OpenAI images API's
 * edit mask (one channel out: 255 - alpha where the image has alpha, so that transparent
 * pixels are repainted; else its luma); max_pixels (0: the default
 * VKD_CLI_IMAGE_MAX_PIXELS) lowers the pixel limit. Same returns as vkd_cli_image_read. */
int vkd_cli_image_decode(const uint8_t *data, size_t n, const char *name, int channels, int64_t max_pixels,
                         vkd_cli_image *out, char *err, size_t errlen);

void vkd_cli_image_free(vkd_cli_image *img);

#endif
