/* PNG and JPEG input for the command (cli/image_read.h; the choices: docs/image_input.md).
 * The bytes come from outside: every size is checked before it is allocated, every
 * libpng/libjpeg error comes back here by longjmp and becomes one line naming the file. */
#define _POSIX_C_SOURCE 200809L
#include "cli/image_read.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef VKD_HAVE_PNG
#include <png.h>
#endif
#ifdef VKD_HAVE_JPEG
#include <jerror.h>
#include <jpeglib.h>
#endif

/* A file larger than this is refused before it is read: a 64 Mpx PNG that does not
 * compress at all is 192 MiB. */
#define MAX_FILE_BYTES (512u << 20)

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* The decoders' shared helpers (none is built without libpng and libjpeg: Android stubs). */
#if defined(VKD_HAVE_PNG) || defined(VKD_HAVE_JPEG)
/* The limits of image_read.h, from the header's numbers, before any pixel allocation. */
static int check_size(long long w, long long h, int64_t max_px, char *msg, size_t len)
{
    if (w <= 0 || h <= 0)
        return fail(msg, len, "the image is %lld x %lld pixels (empty)", w, h);
    if (w > VKD_CLI_IMAGE_MAX_SIDE || h > VKD_CLI_IMAGE_MAX_SIDE)
        return fail(msg, len, "the image is %lld x %lld pixels; at most %d a side is accepted", w, h,
                    VKD_CLI_IMAGE_MAX_SIDE);
    if (w * h > max_px)
        return fail(msg, len, "the image is %lld x %lld = %lld pixels; at most %lld are accepted", w, h, w * h,
                    (long long)max_px);
    return 0;
}

/* ---- pixel conversions --------------------------------------------------------------- */

/* PIL's convert("L"): ITU-R 601-2 luma in 16-bit fixed point, rounded (Pillow's
 * src/libImaging/Convert.c, L24: 19595, 38470, 7471 sum to 65536; + 0x8000, >> 16). */
static uint8_t luma(const uint8_t *rgb)
{
    return (uint8_t)((rgb[0] * 19595u + rgb[1] * 38470u + rgb[2] * 7471u + 0x8000u) >> 16);
}

/* src has sch channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), 8 bits; alpha is dropped
 * as convert("RGB") and convert("L") drop it. dst gets dch (3 or 1). */
static void convert_pixels(const uint8_t *src, int sch, uint8_t *dst, int dch, size_t npx)
{
    for (size_t i = 0; i < npx; i++, src += sch, dst += dch == 2 ? 1 : dch) {
        if (dch == 2) { /* the OpenAI edit mask: transparent = repaint (255); no alpha: luma */
            dst[0] = sch == 2 ? (uint8_t)(255 - src[1]) : sch == 4 ? (uint8_t)(255 - src[3])
                   : sch == 1 ? src[0] : luma(src);
        } else if (sch <= 2) {
            for (int c = 0; c < dch; c++)
                dst[c] = src[0];
        } else if (dch == 3) {
            dst[0] = src[0], dst[1] = src[1], dst[2] = src[2];
        } else {
            dst[0] = luma(src);
        }
    }
}

/* Finishes an image decoded to (pix, w, h, sch): the EXIF orientation applied as
 * ImageOps.exif_transpose does (orientation 1 or out of 1..8: none), channels converted.
 * Takes pix (frees it). */
static int finish(uint8_t *pix, int w, int h, int sch, int orientation, int dch, const char *name,
                  vkd_cli_image *out, char *err, size_t errlen)
{
    int swap = orientation >= 5 && orientation <= 8; /* the four that exchange width and height */
    int och = dch == 2 ? 1 : dch; /* channels out: 2 asks for the alpha-or-luma mask, one channel */
    int ow = swap ? h : w, oh = swap ? w : h;
    uint8_t *dst = malloc((size_t)ow * (size_t)oh * (size_t)och);
    if (!dst) {
        free(pix);
        return fail(err, errlen, "%s: out of memory for %d x %d pixels", name, w, h);
    }
    for (int r = 0; r < oh; r++) {
        for (int c = 0; c < ow; c++) {
            /* the source pixel (sr, sc) that lands at (r, c): PIL's Transpose methods
             * (exif_transpose: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM,
             * 5 TRANSPOSE, 6 ROTATE_270 (clockwise), 7 TRANSVERSE, 8 ROTATE_90) */
            int sr = r, sc = c;
            switch (orientation) {
            case 2: sc = w - 1 - c; break;
            case 3: sr = h - 1 - r, sc = w - 1 - c; break;
            case 4: sr = h - 1 - r; break;
            case 5: sr = c, sc = r; break;
            case 6: sr = h - 1 - c, sc = r; break;
            case 7: sr = h - 1 - c, sc = w - 1 - r; break;
            case 8: sr = c, sc = w - 1 - r; break;
            default: break;
            }
            convert_pixels(pix + ((size_t)sr * (size_t)w + (size_t)sc) * (size_t)sch, sch,
                           dst + ((size_t)r * (size_t)ow + (size_t)c) * (size_t)och, dch, 1);
        }
    }
    free(pix);
    out->pixels = dst;
    out->width = ow;
    out->height = oh;
    out->channels = och;
    return 0;
}

#endif /* VKD_HAVE_PNG || VKD_HAVE_JPEG */

/* ---- PNG ----------------------------------------------------------------------------- */

#ifdef VKD_HAVE_PNG
typedef struct png_ctx {
    const uint8_t *data;
    size_t n, off;
    int64_t max_px;
    char msg[200];
    uint8_t *pix;          /* owned until finish() */
    png_bytep *rows;
} png_ctx;

static void png_read_mem(png_structp png, png_bytep dst, size_t len)
{
    png_ctx *c = png_get_io_ptr(png);
    if (c->n - c->off < len)
        png_error(png, "the file ends early (truncated)");
    memcpy(dst, c->data + c->off, len);
    c->off += len;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg; /* e.g. a bad ancillary chunk, which libpng skips: the pixels are whole */
}

/* Decodes into c->pix as 8-bit with 1-4 channels; returns the channel count, or -1 with
 * c->msg set. The state lives in *c, not in locals, so it survives the longjmp. */
static int png_decode(png_ctx *c, png_structp png, png_infop info, int *w, int *h)
{
    if (setjmp(png_jmpbuf(png)))
        return -1;
    png_set_read_fn(png, c, png_read_mem);
    /* our own limits come after the header, with their numbers in the message */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    /* libpng allocates an ancillary chunk's claimed length (or a zTXt/iCCP's inflated
     * size) before reading it: 1 GiB from a 40-byte file (fuzz_image). Metadata past
     * 16 MiB is refused; the pixels (IDAT) are streamed and not bound by this. */
    png_set_chunk_malloc_max(png, 16u << 20);
    png_read_info(png, info);
    png_uint_32 pw = png_get_image_width(png, info), ph = png_get_image_height(png, info);
    if (check_size(pw, ph, c->max_px, c->msg, sizeof c->msg) != 0)
        return -1;
    int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (depth == 16)
        png_set_strip_16(png); /* the high byte, as PIL reads 16-bit RGB(A) ("RGB;16B") */
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png); /* a tRNS becomes an alpha channel, dropped below */
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info);
    if (png_get_bit_depth(png, info) != 8 || ch < 1 || ch > 4 ||
        png_get_rowbytes(png, info) != (size_t)pw * (size_t)ch) {
        snprintf(c->msg, sizeof c->msg, "unexpected layout after conversion (%d bits, %d channels)",
                 png_get_bit_depth(png, info), ch);
        return -1;
    }
    c->pix = malloc((size_t)pw * ph * (size_t)ch);
    c->rows = malloc(ph * sizeof *c->rows);
    if (!c->pix || !c->rows) {
        snprintf(c->msg, sizeof c->msg, "out of memory for %u x %u pixels", pw, ph);
        return -1;
    }
    for (png_uint_32 y = 0; y < ph; y++)
        c->rows[y] = c->pix + (size_t)y * pw * (size_t)ch;
    png_read_image(png, c->rows);
    png_read_end(png, NULL); /* the chunks after the pixels, up to IEND: their CRCs too */
    *w = (int)pw, *h = (int)ph;
    return ch;
}

/* The whole file is in memory: a chunk that claims more bytes than follow it is a
 * truncated file, refused here because libpng allocates a chunk's claimed length before
 * reading it (1 GiB from a 40-byte file: fuzz_image). Stops at IEND. */
static int png_chunks_fit(const uint8_t *p, size_t n)
{
    for (size_t off = 8; off + 12 <= n;) {
        size_t len = (size_t)p[off] << 24 | (size_t)p[off + 1] << 16 | (size_t)p[off + 2] << 8 | p[off + 3];
        if (len > n - off - 12)
            return 0;
        if (memcmp(p + off + 4, "IEND", 4) == 0)
            return 1;
        off += len + 12;
    }
    return 1; /* a file cut between chunks: libpng says so */
}

static int decode_png(const uint8_t *data, size_t n, const char *name, int dch, int64_t max_px,
                      vkd_cli_image *out, char *err, size_t errlen)
{
    if (!png_chunks_fit(data, n))
        return fail(err, errlen, "%s: bad PNG: a chunk runs past the end of the file (truncated)", name);
    png_ctx c = {.data = data, .n = n, .max_px = max_px};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return fail(err, errlen, "%s: out of memory starting the PNG decoder", name);
    }
    int w = 0, h = 0;
    int ch = png_decode(&c, png, info, &w, &h);
    png_destroy_read_struct(&png, &info, NULL);
    free(c.rows);
    if (ch < 0) {
        free(c.pix);
        return fail(err, errlen, "%s: bad PNG: %s", name, c.msg);
    }
    return finish(c.pix, w, h, ch, 1, dch, name, out, err, errlen);
}
#else
static int decode_png(const uint8_t *data, size_t n, const char *name, int dch, int64_t max_px,
                      vkd_cli_image *out, char *err, size_t errlen)
{
    (void)data, (void)n, (void)dch, (void)max_px, (void)out;
    return fail(err, errlen, "%s: a PNG image, but vkdiff was built without PNG support (libpng)", name);
}
#endif

/* ---- JPEG ---------------------------------------------------------------------------- */

/* The Orientation tag (0x0112) of IFD0 in an APP1 "Exif\0\0" segment (TIFF layout, either
 * byte order); 1 (none) when absent or unreadable: PIL reads the same tag. */
static int exif_orientation(const uint8_t *p, size_t n)
{
    if (n < 14 || memcmp(p, "Exif\0\0", 6) != 0)
        return 1;
    p += 6, n -= 6; /* offsets below count from the TIFF header */
    int le;
    if (p[0] == 'I' && p[1] == 'I')
        le = 1;
    else if (p[0] == 'M' && p[1] == 'M')
        le = 0;
    else
        return 1;
#define U16(q) (le ? (uint32_t)(q)[0] | (uint32_t)(q)[1] << 8 : (uint32_t)(q)[0] << 8 | (uint32_t)(q)[1])
#define U32(q) (le ? U16(q) | U16((q) + 2) << 16 : U16(q) << 16 | U16((q) + 2))
    if (U16(p + 2) != 42)
        return 1;
    uint32_t ifd = U32(p + 4);
    if (ifd > n || n - ifd < 2)
        return 1;
    uint32_t count = U16(p + ifd);
    for (uint32_t i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n)
            return 1;
        if (U16(p + e) != 0x0112)
            continue;
        uint32_t type = U16(p + e + 2), v;
        if (type == 3) /* SHORT: the value sits in the first two bytes of the value field */
            v = U16(p + e + 8);
        else if (type == 4) /* LONG */
            v = U32(p + e + 8);
        else
            return 1;
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
#undef U16
#undef U32
}

#ifdef VKD_HAVE_JPEG
typedef struct jpeg_ctx {
    struct jpeg_error_mgr pub; /* first: libjpeg hands back a pointer to it */
    struct jpeg_progress_mgr progress;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX + 64];
    int64_t max_px;
    uint8_t *pix;              /* owned until finish() */
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr ci)
{
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    ci->err->format_message(ci, c->msg);
    longjmp(c->jmp, 1);
}

/* Warnings are corrupt-data notes libjpeg recovers from, kept as PIL keeps them, except
 * the end of the data: libjpeg would make up the missing rows, PIL refuses ("image file
 * is truncated"), and so do we. */
static void jpeg_on_message(j_common_ptr ci, int level)
{
    if (level == -1 && ci->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_ctx *c = (jpeg_ctx *)ci->err;
        snprintf(c->msg, sizeof c->msg, "the file ends early (truncated)");
        longjmp(c->jmp, 1);
    }
}

/* A progressive JPEG of thousands of tiny scans costs a full pass each: refused past
 * 500, the limit libjpeg-turbo's own TurboJPEG API sets (turbojpeg.c). */
static void jpeg_on_progress(j_common_ptr ci)
{
    j_decompress_ptr d = (j_decompress_ptr)ci;
    if (d->is_decompressor && d->input_scan_number > 500) {
        jpeg_ctx *c = (jpeg_ctx *)ci->err;
        snprintf(c->msg, sizeof c->msg, "a progressive JPEG of more than 500 scans");
        longjmp(c->jmp, 1);
    }
}

static int jpeg_decode(jpeg_ctx *c, struct jpeg_decompress_struct *d, const uint8_t *data, size_t n, int *w,
                       int *h, int *orientation)
{
    if (setjmp(c->jmp))
        return -1;
    jpeg_create_decompress(d);
    d->progress = &c->progress;
    jpeg_mem_src(d, data, (unsigned long)n);
    jpeg_save_markers(d, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(d, TRUE);
    *orientation = 1;
    for (jpeg_saved_marker_ptr m = d->marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            *orientation = exif_orientation(m->data, m->data_length); /* the first Exif segment, as PIL */
            break;
        }
    }
    switch (d->jpeg_color_space) {
    case JCS_GRAYSCALE: d->out_color_space = JCS_GRAYSCALE; break;
    case JCS_YCbCr:
    case JCS_RGB: d->out_color_space = JCS_RGB; break;
    case JCS_CMYK:
        snprintf(c->msg, sizeof c->msg, "a CMYK JPEG is not supported (save it as RGB)");
        return -1;
    case JCS_YCCK:
        snprintf(c->msg, sizeof c->msg, "a YCCK (Adobe CMYK) JPEG is not supported (save it as RGB)");
        return -1;
    default:
        snprintf(c->msg, sizeof c->msg, "a JPEG of unknown colour space (%d components) is not supported",
                 d->num_components);
        return -1;
    }
    if (check_size(d->image_width, d->image_height, c->max_px, c->msg, sizeof c->msg) != 0)
        return -1;
    jpeg_start_decompress(d);
    int ch = d->output_components;
    if ((ch != 1 && ch != 3) || d->output_width != d->image_width || d->output_height != d->image_height) {
        snprintf(c->msg, sizeof c->msg, "unexpected output layout (%d components)", ch);
        return -1;
    }
    size_t stride = (size_t)d->output_width * (size_t)ch;
    c->pix = malloc(stride * d->output_height);
    if (!c->pix) {
        snprintf(c->msg, sizeof c->msg, "out of memory for %u x %u pixels", d->output_width, d->output_height);
        return -1;
    }
    while (d->output_scanline < d->output_height) {
        JSAMPROW row = c->pix + stride * d->output_scanline;
        if (jpeg_read_scanlines(d, &row, 1) != 1) {
            snprintf(c->msg, sizeof c->msg, "the decoder stopped at row %u", d->output_scanline);
            return -1;
        }
    }
    jpeg_finish_decompress(d);
    *w = (int)d->output_width, *h = (int)d->output_height;
    return ch;
}

static int decode_jpeg(const uint8_t *data, size_t n, const char *name, int dch, int64_t max_px,
                       vkd_cli_image *out, char *err, size_t errlen)
{
    jpeg_ctx c;
    memset(&c, 0, sizeof c);
    c.max_px = max_px;
    struct jpeg_decompress_struct d;
    memset(&d, 0, sizeof d);
    d.err = jpeg_std_error(&c.pub);
    c.pub.error_exit = jpeg_on_error;
    c.pub.emit_message = jpeg_on_message;
    c.progress.progress_monitor = jpeg_on_progress;
    int w = 0, h = 0, orientation = 1;
    int ch = jpeg_decode(&c, &d, data, n, &w, &h, &orientation);
    jpeg_destroy_decompress(&d);
    if (ch < 0) {
        free(c.pix);
        return fail(err, errlen, "%s: bad JPEG: %s", name, c.msg);
    }
    return finish(c.pix, w, h, ch, orientation, dch, name, out, err, errlen);
}
#else
static int decode_jpeg(const uint8_t *data, size_t n, const char *name, int dch, int64_t max_px,
                       vkd_cli_image *out, char *err, size_t errlen)
{
    (void)data, (void)n, (void)dch, (void)max_px, (void)out;
    (void)exif_orientation;
    return fail(err, errlen, "%s: a JPEG image, but vkdiff was built without JPEG support (libjpeg)", name);
}
#endif

/* ---- entry points -------------------------------------------------------------------- */

/* Formats people may try, named in the refusal. */
static const char *other_format(const uint8_t *p, size_t n)
{
    if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return "WebP";
    if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
        return "GIF";
    if (n >= 4 && (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0))
        return "TIFF";
    if (n >= 2 && p[0] == 'B' && p[1] == 'M')
        return "BMP";
    return NULL;
}

int vkd_cli_image_decode(const uint8_t *data, size_t n, const char *name, int channels, int64_t max_pixels,
                         vkd_cli_image *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (channels < 1 || channels > 3)
        return fail(err, errlen, "%s: %d channels asked (1, 2 or 3)", name, channels);
    if (max_pixels <= 0 || max_pixels > VKD_CLI_IMAGE_MAX_PIXELS)
        max_pixels = VKD_CLI_IMAGE_MAX_PIXELS;
    if (n == 0)
        return fail(err, errlen, "%s: the file is empty", name);
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(data, png_magic, 8) == 0)
        return decode_png(data, n, name, channels, max_pixels, out, err, errlen);
    if (n >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return decode_jpeg(data, n, name, channels, max_pixels, out, err, errlen);
    const char *other = other_format(data, n);
    if (other)
        return fail(err, errlen, "%s: a %s image is not accepted (PNG or JPEG)", name, other);
    return fail(err, errlen, "%s: not a PNG or JPEG image (the accepted formats)", name);
}

/* The whole file in memory. O_NONBLOCK and fstat, as the model's reader does
 * (io/safetensors.c): opening a FIFO would wait for a writer forever. */
static int read_file(const char *path, uint8_t **data, size_t *n, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fail(err, errlen, "%s: cannot read: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, errlen, "%s: %s, not an image file", path,
                    S_ISDIR(st.st_mode) ? "a folder" : "not a regular file (a FIFO, device or socket)");
    }
    if ((unsigned long long)st.st_size > MAX_FILE_BYTES) {
        close(fd);
        return fail(err, errlen, "%s: %lld bytes; image files over %u MiB are not read", path,
                    (long long)st.st_size, MAX_FILE_BYTES >> 20);
    }
    size_t size = (size_t)st.st_size, got = 0;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return fail(err, errlen, "%s: out of memory for %zu bytes", path, size);
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            return fail(err, errlen, "%s: read failed: %s", path, r < 0 ? strerror(e) : "the file shrank");
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *n = size;
    return 0;
}

static int read_as(const char *path, int channels, vkd_cli_image *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    uint8_t *data = NULL;
    size_t n = 0;
    if (read_file(path, &data, &n, err, errlen) != 0)
        return -1;
    int rc = vkd_cli_image_decode(data, n, path, channels, 0, out, err, errlen);
    free(data);
    return rc;
}

int vkd_cli_image_read(const char *path, vkd_cli_image *out, char *err, size_t errlen)
{
    return read_as(path, 3, out, err, errlen);
}

int vkd_cli_mask_read(const char *path, vkd_cli_image *out, char *err, size_t errlen)
{
    return read_as(path, 1, out, err, errlen);
}

void vkd_cli_image_free(vkd_cli_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}
