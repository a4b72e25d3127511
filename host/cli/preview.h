/* Previews for the CLI (--preview FILE --preview-every N): the library's preview callback
 * (vkd_gen_params.preview) writing each one as a PNG, under a temporary name and renamed
 * (png_write.h), so a viewer never reads half an image. */
#ifndef VKD_CLI_PREVIEW_H
#define VKD_CLI_PREVIEW_H

#include <stddef.h>
#include <stdint.h>

typedef struct vkd_cli_preview {
    const char *path;
    int written;
} vkd_cli_preview;

/* vkd_gen_preview_fn; user is a vkd_cli_preview. Returns nonzero (stop) when the write fails. */
int vkd_cli_preview_write(void *user, int step, int total, const uint8_t *rgb, int width, int height);

/* The TAESD decoder shipped beside a model: "<stem>_taesd_decoder.safetensors" in the
 * model file's folder (weights/shapes_taesd_decoder.safetensors for the shipped model).
 * 1 and the path in out when it exists and is readable, else 0. */
int vkd_cli_taesd_beside(const char *model, char *out, size_t n);

#endif
