/* CLI previews: see preview.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli/preview.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/png_write.h"

int vkd_cli_preview_write(void *user, int step, int total, const uint8_t *rgb, int width, int height)
{
    vkd_cli_preview *p = user;
    char text[64];
    snprintf(text, sizeof text, "preview: step %d of %d (TAESD)", step, total);
    if (vkd_png_write(p->path, rgb, width, height, text, 0) != 0)
        return 1;
    p->written++;
    return 0;
}

int vkd_cli_taesd_beside(const char *model, char *out, size_t n)
{
    const char *slash = strrchr(model, '/');
    size_t dir = slash ? (size_t)(slash - model) + 1 : 0;
    const char *stem = model + dir, *dot = strrchr(stem, '.');
    size_t stem_len = dot ? (size_t)(dot - stem) : strlen(stem);
    int len = snprintf(out, n, "%.*s%.*s_taesd_decoder.safetensors", (int)dir, model, (int)stem_len, stem);
    return len > 0 && (size_t)len < n && access(out, R_OK) == 0;
}
