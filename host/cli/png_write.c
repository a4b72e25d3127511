#define _POSIX_C_SOURCE 200809L
#include "cli/png_write.h"

#include "cli/interrupt.h"

#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef VKD_HAVE_PNG
#include <png.h>
#include <setjmp.h>

/* writes to f, or to the growing buffer mem when f is NULL */
typedef struct png_mem {
    uint8_t *data;
    size_t len, cap;
} png_mem;

static void mem_write(png_structp png, png_bytep data, png_size_t n)
{
    png_mem *m = png_get_io_ptr(png);
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n)
            cap *= 2;
        uint8_t *d = realloc(m->data, cap);
        if (!d)
            png_error(png, "out of memory");
        m->data = d, m->cap = cap;
    }
    memcpy(m->data + m->len, data, n);
    m->len += n;
}

static void mem_flush(png_structp png) { (void)png; }

static int write_file(FILE *f, png_mem *mem, const uint8_t *rgb, int w, int h, const char *parameters)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!png)
        return -1;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    if (f)
        png_init_io(png, f);
    else
        png_set_write_fn(png, mem, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text text;
    memset(&text, 0, sizeof text);
    if (parameters) {
        text.compression = PNG_TEXT_COMPRESSION_NONE;
        text.key = (char *)"parameters";
        text.text = (char *)parameters;
        text.text_length = strlen(parameters);
        png_set_text(png, info, &text, 1);
    }
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)w * 3));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* sleeps ms or until a signal has been received */
static void pause_ms(int ms)
{
    for (int i = 0; i < ms / 10 && !vkd_cli_interrupted(); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int vkd_png_write(const char *path, const uint8_t *rgb, int width, int height, const char *parameters,
                  int test_pause_ms)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return -1;
    snprintf(tmp, n, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "vkdiff: cannot write %s: ", tmp);
        perror(NULL);
        free(tmp);
        return -1;
    }
    int rc = write_file(f, NULL, rgb, width, height, parameters);
    if (fclose(f) != 0)
        rc = -1;
    if (test_pause_ms > 0)
        pause_ms(test_pause_ms);
    if (rc == 0 && vkd_cli_interrupted()) {
        remove(tmp);
        free(tmp);
        fprintf(stderr, "vkdiff: interrupted; %s was not written\n", path);
        return -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        fprintf(stderr, "vkdiff: cannot rename %s to %s: ", tmp, path);
        perror(NULL);
        rc = -1;
    }
    if (rc != 0) {
        remove(tmp);
        fprintf(stderr, "vkdiff: writing %s failed; nothing was written\n", path);
    }
    free(tmp);
    return rc;
}

int vkd_png_encode(const uint8_t *rgb, int width, int height, const char *parameters, uint8_t **out, size_t *len)
{
    png_mem m = {0};
    *out = NULL, *len = 0;
    if (write_file(NULL, &m, rgb, width, height, parameters)) {
        free(m.data);
        return -1;
    }
    *out = m.data, *len = m.len;
    return 0;
}
#else
int vkd_png_encode(const uint8_t *rgb, int width, int height, const char *parameters, uint8_t **out, size_t *len)
{
    (void)rgb; (void)width; (void)height; (void)parameters;
    *out = NULL, *len = 0;
    return -1;
}

int vkd_png_write(const char *path, const uint8_t *rgb, int width, int height, const char *parameters,
                  int test_pause_ms)
{
    (void)rgb; (void)width; (void)height; (void)parameters; (void)test_pause_ms;
    fprintf(stderr, "vkdiff: built without libpng; cannot write %s\n", path);
    return -1;
}
#endif
