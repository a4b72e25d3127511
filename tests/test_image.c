/* Image input (issue 21): Lanczos resize and mask blur against double references written
 * here, and the command's PNG/JPEG readers on good files of every accepted kind, all
 * eight EXIF orientations, and damaged or hostile inputs (each an error naming the file,
 * never a crash: this test runs under ASan + UBSan). */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cli/image_read.h"
#include "cli/png_write.h"
#include "image/resize.h"

#ifdef VKD_HAVE_JPEG
#include <jpeglib.h>
#endif

static uint8_t *random_image(test_rng *r, int w, int h, int ch)
{
    uint8_t *p = test_alloc((size_t)w * h * ch);
    for (size_t i = 0; i < (size_t)w * h * ch; i++)
        p[i] = (uint8_t)(test_rng_u64(r) >> 56);
    return p;
}

/* ---- resize ---------------------------------------------------------------------------- */

/* The weights of output o along an axis, written from the definition: every input pixel i
 * weighted by lanczos3((i + 0.5 - centre) / s), s = max(in / out, 1), normalised. */
static double ref_lanczos(double x)
{
    if (fabs(x) >= 3.0)
        return 0.0;
    if (x == 0.0)
        return 1.0;
    double px = 3.14159265358979323846 * x;
    return 3.0 * sin(px) * sin(px / 3.0) / (px * px);
}

static void ref_weights(int in, int out, int o, double *w)
{
    double scale = (double)in / out, s = scale > 1.0 ? scale : 1.0, c = (o + 0.5) * scale, sum = 0.0;
    for (int i = 0; i < in; i++)
        sum += w[i] = ref_lanczos((i + 0.5 - c) / s);
    for (int i = 0; i < in; i++)
        w[i] /= sum;
}

static uint8_t round8(double v)
{
    v = floor(v + 0.5);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* horizontal then vertical, rounded to 8 bits between, as Pillow orders the passes */
static uint8_t *ref_resize(const uint8_t *src, int sw, int sh, int ch, int dw, int dh)
{
    uint8_t *mid = test_alloc((size_t)dw * sh * ch), *dst = test_alloc((size_t)dw * dh * ch);
    double *w = test_alloc(sizeof(double) * (size_t)(sw > sh ? sw : sh));
    for (int o = 0; o < dw; o++) {
        ref_weights(sw, dw, o, w);
        for (int y = 0; y < sh; y++)
            for (int c = 0; c < ch; c++) {
                double acc = 0;
                for (int i = 0; i < sw; i++)
                    acc += w[i] * src[((size_t)y * sw + i) * ch + c];
                mid[((size_t)y * dw + o) * ch + c] = sw == dw ? src[((size_t)y * sw + o) * ch + c] : round8(acc);
            }
    }
    for (int o = 0; o < dh; o++) {
        ref_weights(sh, dh, o, w);
        for (int x = 0; x < dw * ch; x++) {
            double acc = 0;
            for (int i = 0; i < sh; i++)
                acc += w[i] * mid[(size_t)i * dw * ch + x];
            dst[(size_t)o * dw * ch + x] = sh == dh ? mid[(size_t)o * dw * ch + x] : round8(acc);
        }
    }
    free(mid);
    free(w);
    return dst;
}

static void test_resize_matches_double_reference(test_rng *r)
{
    static const int cases[][5] = {
        {64, 48, 3, 160, 120}, /* up 2.5x */
        {97, 61, 3, 29, 17},   /* down ~3.4x, odd sizes */
        {40, 30, 1, 40, 75},   /* vertical only */
        {50, 20, 4, 13, 20},   /* horizontal only, 4 channels */
        {1, 9, 3, 5, 3},       /* a one-pixel-wide source */
        {300, 7, 2, 3, 1},     /* to a single row, 100x down */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int sw = cases[k][0], sh = cases[k][1], ch = cases[k][2], dw = cases[k][3], dh = cases[k][4];
        uint8_t *src = random_image(r, sw, sh, ch), *got = test_alloc((size_t)dw * dh * ch);
        vkd_result rc = vkd_image_resize(src, sw, sh, ch, got, dw, dh);
        uint8_t *ref = ref_resize(src, sw, sh, ch, dw, dh);
        int maxd = 0;
        for (size_t i = 0; i < (size_t)dw * dh * ch; i++)
            maxd = abs(got[i] - ref[i]) > maxd ? abs(got[i] - ref[i]) : maxd;
        /* Fixed-point weights against double ones: one pass may round a level apart. When both
         * axes are resampled, a level of difference in the 8-bit intermediate is carried through
         * the second pass's weights, whose absolute sum exceeds 1 (Lanczos' negative lobes), and
         * the second rounding adds its own level: 2 apart at most. */
        int bound = (sw != dw && sh != dh) ? 2 : 1;
        TEST_CHECK(rc == VKD_OK && maxd <= bound, "resize %dx%dx%d -> %dx%d: rc %d, max |got - ref| %d (want <= %d)",
                   sw, sh, ch, dw, dh, rc, maxd, bound);
        TEST_FREE(src, got, ref);
    }
}

static void test_resize_identity_is_exact(test_rng *r)
{
    uint8_t *src = random_image(r, 13, 7, 3), *dst = test_alloc(13 * 7 * 3);
    TEST_CHECK(vkd_image_resize(src, 13, 7, 3, dst, 13, 7) == VKD_OK && memcmp(src, dst, 13 * 7 * 3) == 0,
               "resize to the same size copies exactly");
    TEST_FREE(src, dst);
}

static void test_resize_constant_stays_constant(void)
{
    static const int sizes[][4] = {{37, 23, 64, 48}, {512, 512, 77, 91}, {8, 8, 1000, 3}, {5, 300, 5, 1}};
    for (size_t k = 0; k < 4; k++) {
        for (int ch = 1; ch <= 4; ch++) {
            int sw = sizes[k][0], sh = sizes[k][1], dw = sizes[k][2], dh = sizes[k][3];
            uint8_t *src = test_alloc((size_t)sw * sh * ch), *dst = test_alloc((size_t)dw * dh * ch);
            for (size_t i = 0; i < (size_t)sw * sh * ch; i++)
                src[i] = (uint8_t)(i % ch == 0 ? 255 : 37 * (int)(i % ch));
            int bad = vkd_image_resize(src, sw, sh, ch, dst, dw, dh) != VKD_OK;
            for (size_t i = 0; i < (size_t)dw * dh * ch && !bad; i++)
                bad = dst[i] != (i % ch == 0 ? 255 : 37 * (int)(i % ch));
            TEST_CHECK(!bad, "a constant %dx%dx%d image resized to %dx%d stays constant", sw, sh, ch, dw, dh);
            TEST_FREE(src, dst);
        }
    }
}

static void test_resize_downscale_4x_of_checkerboard_averages(void)
{
    uint8_t src[64 * 64], dst[16 * 16];
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            src[y * 64 + x] = ((x + y) & 1) ? 255 : 0;
    int ok = vkd_image_resize(src, 64, 64, 1, dst, 16, 16) == VKD_OK;
    int lo = 255, hi = 0;
    for (int i = 0; i < 256; i++)
        lo = dst[i] < lo ? dst[i] : lo, hi = dst[i] > hi ? dst[i] : hi;
    /* the antialiasing kernel spans 24 input pixels: the 1-pixel pattern averages out */
    TEST_CHECK(ok && lo >= 126 && hi <= 129, "a 1-px checkerboard shrunk 4x is grey: values %d..%d", lo, hi);
}

static void test_resize_refuses_bad_arguments(void)
{
    uint8_t a[16], b[16];
    TEST_CHECK(vkd_image_resize(a, 0, 4, 1, b, 4, 4) == VKD_ERR_INVALID_ARG &&
                   vkd_image_resize(a, 4, 4, 5, b, 4, 4) == VKD_ERR_INVALID_ARG &&
                   vkd_image_resize(NULL, 4, 4, 1, b, 4, 4) == VKD_ERR_INVALID_ARG &&
                   vkd_image_resize(a, 4, 4, 1, b, -1, 4) == VKD_ERR_INVALID_ARG,
               "resize refuses a zero or negative size, 5 channels, NULL");
}

/* ---- mask blur ------------------------------------------------------------------------- */

/* reflection without repeating the edge, written as a fold of a period 2n-2 */
static int ref_fold(int p, int n)
{
    if (n == 1)
        return 0;
    int period = 2 * n - 2, m = ((p % period) + period) % period;
    return m < n ? m : period - m;
}

static void ref_blur(uint8_t *m, int w, int h, int blur)
{
    int r = (int)(2.5 * blur + 0.5);
    double *k = test_alloc(sizeof(double) * (2 * r + 1)), sum = 0;
    for (int i = -r; i <= r; i++)
        sum += k[i + r] = exp(-(double)(i * i) / (2.0 * blur * blur));
    uint8_t *t = test_alloc((size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double a = 0;
            for (int i = -r; i <= r; i++)
                a += k[i + r] / sum * m[y * w + ref_fold(x + i, w)];
            t[y * w + x] = round8(a);
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double a = 0;
            for (int i = -r; i <= r; i++)
                a += k[i + r] / sum * t[ref_fold(y + i, h) * w + x];
            m[y * w + x] = round8(a);
        }
    free(k);
    free(t);
}

static void test_mask_blur_matches_double_reference(test_rng *r)
{
    static const int cases[][3] = {{64, 48, 4}, {33, 17, 1}, {20, 9, 8}, {1, 30, 3}, {7, 5, 64}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int w = cases[c][0], h = cases[c][1], b = cases[c][2];
        uint8_t *m = test_alloc((size_t)w * h), *ref = test_alloc((size_t)w * h);
        /* a hard-edged mask (a rectangle) with noise in one corner */
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                m[y * w + x] = (x > w / 4 && x < 3 * w / 4 && y > h / 3) ? 255
                               : (x < 3 && y < 3)                        ? (uint8_t)(test_rng_u64(r) >> 56)
                                                                         : 0;
        memcpy(ref, m, (size_t)w * h);
        ref_blur(ref, w, h, b);
        vkd_result rc = vkd_mask_blur(m, w, h, b);
        int maxd = 0;
        for (int i = 0; i < w * h; i++)
            maxd = abs(m[i] - ref[i]) > maxd ? abs(m[i] - ref[i]) : maxd;
        TEST_CHECK(rc == VKD_OK && maxd <= 1, "mask blur %d px on %dx%d: rc %d, max |got - ref| %d (want <= 1)", b,
                   w, h, rc, maxd);
        TEST_FREE(m, ref);
    }
}

static void test_mask_blur_zero_and_constant(test_rng *r)
{
    uint8_t *m = random_image(r, 10, 10, 1), copy[100], flat[100];
    memcpy(copy, m, 100);
    memset(flat, 200, 100);
    TEST_CHECK(vkd_mask_blur(m, 10, 10, 0) == VKD_OK && memcmp(m, copy, 100) == 0, "mask blur 0 changes nothing");
    int ok = vkd_mask_blur(flat, 10, 10, 5) == VKD_OK;
    for (int i = 0; i < 100; i++)
        ok &= flat[i] == 200;
    TEST_CHECK(ok, "a constant mask stays constant under blur");
    TEST_CHECK(vkd_mask_blur(m, 10, 10, 257) == VKD_ERR_INVALID_ARG && vkd_mask_blur(m, 0, 10, 4) ==
               VKD_ERR_INVALID_ARG, "mask blur refuses a blur over 256 px and an empty mask");
    free(m);
}

/* ---- decoders: inputs made here ---------------------------------------------------------- */

typedef struct bytes {
    uint8_t *p;
    size_t n;
} bytes;

static void put(bytes *b, const void *d, size_t n)
{
    uint8_t *p = realloc(b->p, b->n + n);
    if (!p)
        abort();
    memcpy(p + b->n, d, n);
    b->p = p;
    b->n += n;
}

static void put32be(bytes *b, uint32_t v)
{
    uint8_t q[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, q, 4);
}

static void png_chunk(bytes *b, const char *type, const uint8_t *d, size_t n)
{
    put32be(b, (uint32_t)n);
    size_t at = b->n;
    put(b, type, 4);
    if (n)
        put(b, d, n);
    put32be(b, (uint32_t)crc32(0, b->p + at, (uInt)(n + 4)));
}

/* A PNG written by hand (not libpng): rows of rowbytes each, filter 0, one IDAT. */
static bytes make_png(int w, int h, int depth, int type, const uint8_t *rows, size_t rowbytes, const uint8_t *plte,
                      int nplte, const uint8_t *trns, int ntrns)
{
    bytes b = {0};
    put(&b, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {(uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w,
                        (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h,
                        (uint8_t)depth,     (uint8_t)type,      0,                 0, 0};
    png_chunk(&b, "IHDR", ihdr, 13);
    if (plte)
        png_chunk(&b, "PLTE", plte, (size_t)nplte * 3);
    if (trns)
        png_chunk(&b, "tRNS", trns, (size_t)ntrns);
    size_t raw_n = (size_t)h * (rowbytes + 1);
    uint8_t *raw = test_alloc(raw_n);
    for (int y = 0; y < h; y++) {
        raw[(size_t)y * (rowbytes + 1)] = 0;
        memcpy(raw + (size_t)y * (rowbytes + 1) + 1, rows + (size_t)y * rowbytes, rowbytes);
    }
    uLongf zn = compressBound((uLong)raw_n);
    uint8_t *z = test_alloc(zn);
    if (compress2(z, &zn, raw, (uLong)raw_n, 9) != Z_OK)
        abort();
    png_chunk(&b, "IDAT", z, zn);
    png_chunk(&b, "IEND", NULL, 0);
    TEST_FREE(raw, z);
    return b;
}

static void write_file(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(d, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

/* VKD_IMAGE_SEEDS=DIR ./test_image also writes the inputs named here into DIR: how
 * tests/fuzz_corpus/image/ was made (fuzz_image's seeds). */
static void seed(const char *name, const bytes *b)
{
    const char *dir = getenv("VKD_IMAGE_SEEDS");
    if (!dir || !*dir)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, b->p, b->n);
}

/* decodes from memory as "mem"; on success compares with want (w x h x ch) */
static void expect_decoded(const bytes *b, int ch, int w, int h, const uint8_t *want, const char *what)
{
    vkd_cli_image img;
    char err[300] = "";
    int rc = vkd_cli_image_decode(b->p, b->n, "mem", ch, 0, &img, err, sizeof err);
    int ok = rc == 0 && img.width == w && img.height == h && img.channels == ch &&
             memcmp(img.pixels, want, (size_t)w * h * ch) == 0;
    TEST_CHECK(ok, "%s: decoded as expected (rc %d, %s, %dx%dx%d)", what, rc, err, img.width, img.height,
               img.channels);
    vkd_cli_image_free(&img);
}

/* decoding must fail with a message that names the input and contains word (if given) */
static void expect_refused(const bytes *b, const char *word, const char *what)
{
    vkd_cli_image img;
    char err[300] = "";
    int rc = vkd_cli_image_decode(b->p, b->n, "mem.img", 3, 0, &img, err, sizeof err);
    TEST_CHECK(rc == -1 && img.pixels == NULL && strncmp(err, "mem.img: ", 9) == 0 && (!word || strstr(err, word)),
               "%s: refused with a message naming the input%s%s (got rc %d: '%s')", what, word ? " and saying " : "",
               word ? word : "", rc, err);
    vkd_cli_image_free(&img);
}

static void expect_file_refused(const char *path, const char *word, const char *what)
{
    vkd_cli_image img;
    char err[400] = "";
    int rc = vkd_cli_image_read(path, &img, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, path) && strstr(err, word), "%s: refused saying '%s' (got rc %d: '%s')", what,
               word, rc, err);
    vkd_cli_image_free(&img);
}

/* Every prefix of a valid file is refused (a truncated file never decodes to made-up pixels). */
static void expect_prefixes_refused(const bytes *b, const char *what)
{
    size_t first_ok = SIZE_MAX;
    for (size_t n = 0; n < b->n && first_ok == SIZE_MAX; n++) {
        vkd_cli_image img;
        char err[300] = "";
        if (vkd_cli_image_decode(b->p, n, "cut", 3, 0, &img, err, sizeof err) == 0 || strncmp(err, "cut: ", 5) != 0)
            first_ok = n;
        vkd_cli_image_free(&img);
    }
    TEST_CHECK(first_ok == SIZE_MAX, "%s: each of its %zu prefixes is refused with a message (first not: %zu)",
               what, b->n, first_ok);
}

static void test_png_kinds(test_rng *r)
{
    /* RGB through the command's own writer and a file */
    uint8_t *rgb = random_image(r, 7, 5, 3);
    const char *path = test_build_path("image_rgb.png");
    vkd_cli_image img;
    char err[300] = "";
    int rc = vkd_png_write(path, rgb, 7, 5, "p", 0) == 0 ? vkd_cli_image_read(path, &img, err, sizeof err) : -2;
    TEST_CHECK(rc == 0 && img.width == 7 && img.height == 5 && memcmp(img.pixels, rgb, 7 * 5 * 3) == 0,
               "an RGB PNG from png_write reads back exactly (rc %d %s)", rc, err);
    if (rc == 0)
        vkd_cli_image_free(&img);

    uint8_t grey[6] = {0, 50, 100, 150, 200, 255}, want[18];
    for (int i = 0; i < 6; i++)
        want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = grey[i];
    bytes b = make_png(3, 2, 8, 0, grey, 3, NULL, 0, NULL, 0);
    expect_decoded(&b, 3, 3, 2, want, "grey 8-bit PNG as RGB");
    expect_decoded(&b, 1, 3, 2, grey, "grey 8-bit PNG as a mask");
    seed("grey8.png", &b);
    free(b.p);

    uint8_t ga[12], rgba[24];
    for (int i = 0; i < 6; i++) {
        ga[2 * i] = grey[i], ga[2 * i + 1] = (uint8_t)(i * 40);
        rgba[4 * i] = want[3 * i], rgba[4 * i + 1] = want[3 * i + 1], rgba[4 * i + 2] = want[3 * i + 2];
        rgba[4 * i + 3] = (uint8_t)(7 * i); /* alpha is dropped, not composited */
    }
    b = make_png(3, 2, 8, 4, ga, 6, NULL, 0, NULL, 0);
    expect_decoded(&b, 3, 3, 2, want, "grey+alpha PNG as RGB (alpha dropped)");
    seed("grey-alpha.png", &b);
    free(b.p);
    b = make_png(3, 2, 8, 6, rgba, 12, NULL, 0, NULL, 0);
    expect_decoded(&b, 3, 3, 2, want, "RGBA PNG as RGB (alpha dropped)");
    seed("rgba.png", &b);
    free(b.p);

    /* 16-bit: the high byte (PIL's "RGB;16B"); the low byte differs to show it is ignored */
    uint8_t rgb16[36];
    for (int i = 0; i < 18; i++)
        rgb16[2 * i] = want[i], rgb16[2 * i + 1] = (uint8_t)(0xff - i);
    b = make_png(3, 2, 16, 2, rgb16, 18, NULL, 0, NULL, 0);
    expect_decoded(&b, 3, 3, 2, want, "16-bit RGB PNG as RGB (high byte)");
    seed("rgb16.png", &b);
    free(b.p);
    uint8_t g16[12];
    for (int i = 0; i < 6; i++)
        g16[2 * i] = grey[i], g16[2 * i + 1] = 0x80;
    b = make_png(3, 2, 16, 0, g16, 6, NULL, 0, NULL, 0);
    expect_decoded(&b, 1, 3, 2, grey, "16-bit grey PNG as a mask (high byte)");
    free(b.p);

    /* palette, 8-bit with a tRNS (ignored) and 2-bit */
    uint8_t plte[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30}, idx[6] = {0, 1, 2, 3, 2, 1}, pw[18];
    for (int i = 0; i < 6; i++)
        memcpy(pw + 3 * i, plte + 3 * idx[i], 3);
    uint8_t trns[2] = {0, 128};
    b = make_png(3, 2, 8, 3, idx, 3, plte, 4, trns, 2);
    expect_decoded(&b, 3, 3, 2, pw, "8-bit palette PNG with tRNS as RGB");
    seed("palette-trns.png", &b);
    free(b.p);
    uint8_t packed[2] = {0 << 6 | 1 << 4 | 2 << 2, 3 << 6 | 2 << 4 | 1 << 2}; /* 2-bit indices: 0 1 2 | 3 2 1 */
    b = make_png(3, 2, 2, 3, packed, 1, plte, 4, NULL, 0);
    expect_decoded(&b, 3, 3, 2, pw, "2-bit palette PNG as RGB");
    seed("palette2.png", &b);
    free(b.p);
    uint8_t bits[2] = {0xa0, 0x40}, bw[6] = {255, 0, 255, 0, 255, 0}; /* 1-bit grey: 101 / 010 */
    b = make_png(3, 2, 1, 0, bits, 1, NULL, 0, NULL, 0);
    expect_decoded(&b, 1, 3, 2, bw, "1-bit grey PNG as a mask (0 and 255)");
    seed("grey1.png", &b);
    free(b.p);

    /* the mask's luma: Pillow's rounded L24; pure green is 150 (truncating /1000: 149) */
    uint8_t cols[15] = {255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30};
    uint8_t luma[5] = {255, 76, 150, 29, 18};
    b = make_png(5, 1, 8, 2, cols, 15, NULL, 0, NULL, 0);
    expect_decoded(&b, 1, 5, 1, luma, "RGB PNG as a mask (convert(\"L\"))");
    free(b.p);
    free(rgb);
}

static void test_png_damaged(void)
{
    uint8_t px[5 * 4 * 3];
    for (int i = 0; i < 60; i++)
        px[i] = (uint8_t)(i * 4);
    bytes good = make_png(5, 4, 8, 2, px, 15, NULL, 0, NULL, 0);
    expect_prefixes_refused(&good, "a 5x4 RGB PNG");
    bytes b = {test_alloc(good.n), good.n};
    memcpy(b.p, good.p, good.n);
    b.p[30] ^= 1; /* IHDR's CRC */
    expect_refused(&b, "CRC", "a PNG with a bad IHDR CRC");
    memcpy(b.p, good.p, good.n);
    b.p[good.n - 12 - 2] ^= 0x55; /* IDAT's CRC (IEND is the last 12 bytes) */
    expect_refused(&b, "CRC", "a PNG with a bad IDAT CRC");
    free(b.p);
    free(good.p);
    static const struct { int w, h; const char *word; } dims[] = {
        {20000, 10, "16384"}, {10, 16385, "16384"}, {10000, 10000, "67108864"}, {0, 4, NULL}, {5, 0, NULL},
        {0x7fffffff, 0x7fffffff, NULL}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        /* a header claiming the size over a few bytes of pixels: refused before any allocation */
        b = make_png(5, 4, 8, 2, px, 15, NULL, 0, NULL, 0);
        uint32_t wh[2] = {(uint32_t)dims[i].w, (uint32_t)dims[i].h};
        for (int k = 0; k < 8; k++)
            b.p[16 + k] = (uint8_t)(wh[k / 4] >> (24 - 8 * (k % 4)));
        uint32_t crc = (uint32_t)crc32(0, b.p + 12, 17);
        for (int k = 0; k < 4; k++)
            b.p[29 + k] = (uint8_t)(crc >> (24 - 8 * k));
        char what[80];
        snprintf(what, sizeof what, "a PNG header of %d x %d", dims[i].w, dims[i].h);
        expect_refused(&b, dims[i].word, what);
        free(b.p);
    }
    b = make_png(5, 4, 3, 0, px, 2, NULL, 0, NULL, 0);
    expect_refused(&b, NULL, "a PNG of bit depth 3");
    free(b.p);
    b = make_png(2, 2, 8, 3, px, 2, NULL, 0, NULL, 0); /* palette type with no PLTE */
    expect_refused(&b, NULL, "a palette PNG without PLTE");
    free(b.p);
}

#ifdef VKD_HAVE_JPEG
/* A JPEG made with libjpeg (quality 95, 4:2:0), with an APP1 segment when app1 is given. */
static bytes make_jpeg(const uint8_t *pix, int w, int h, int comps, J_COLOR_SPACE cs, const uint8_t *app1,
                       size_t app1n)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long outn = 0;
    jpeg_mem_dest(&c, &out, &outn);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h;
    c.input_components = comps, c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    if (app1)
        jpeg_write_marker(&c, JPEG_APP0 + 1, app1, (unsigned)app1n);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(pix + (size_t)c.next_scanline * w * comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    bytes b = {test_alloc(outn), outn};
    memcpy(b.p, out, outn);
    free(out);
    return b;
}

/* APP1 "Exif\0\0" + a TIFF header in either byte order + IFD0 of two entries: Make
 * (ASCII, first, so the reader has to walk), Orientation (SHORT). Returns its length. */
static size_t make_exif(uint8_t *e, int little, int orientation)
{
    memset(e, 0, 64);
    memcpy(e, "Exif\0\0", 6);
    uint8_t *t = e + 6;
#define P16(q, v) ((q)[little ? 0 : 1] = (uint8_t)(v), (q)[little ? 1 : 0] = (uint8_t)((v) >> 8))
#define P32(q, v) (P16((q) + (little ? 0 : 2), (v) & 0xffff), P16((q) + (little ? 2 : 0), (v) >> 16))
    t[0] = t[1] = little ? 'I' : 'M';
    P16(t + 2, 42);
    P32(t + 4, 8);
    P16(t + 8, 2);
    P16(t + 10, 0x010f), P16(t + 12, 2), P32(t + 14, 4), memcpy(t + 18, "ab\0", 4);
    P16(t + 22, 0x0112), P16(t + 24, 3), P32(t + 26, 1), P16(t + 30, orientation);
    P32(t + 34, 0);
#undef P16
#undef P32
    return 6 + 38;
}

/* PIL's transposes built from one rotation: ROTATE_90 is counter-clockwise (the top-right
 * corner goes to the top left); grids of labels, [h][w]. */
static void rot_ccw(int *g, int *w, int *h)
{
    int t[64];
    for (int r = 0; r < *w; r++)
        for (int c = 0; c < *h; c++)
            t[r * *h + c] = g[c * *w + (*w - 1 - r)];
    int s = *w;
    *w = *h, *h = s;
    memcpy(g, t, sizeof(int) * (size_t)(*w * *h));
}

static void flip_lr(int *g, int w, int h)
{
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w / 2; c++) {
            int s = g[r * w + c];
            g[r * w + c] = g[r * w + w - 1 - c], g[r * w + w - 1 - c] = s;
        }
}

/* exif_transpose: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE
 * (= ROTATE_90 of FLIP_LEFT_RIGHT), 6 ROTATE_270, 7 TRANSVERSE (= ROTATE_90 of
 * FLIP_TOP_BOTTOM), 8 ROTATE_90 */
static void pil_exif_transpose(int *g, int *w, int *h, int o)
{
    int flips_lr = o == 2 || o == 5, flips_tb = o == 4 || o == 7;
    int turns = o == 3 ? 2 : o == 6 ? 3 : (o == 5 || o == 7 || o == 8) ? 1 : 0;
    if (flips_lr)
        flip_lr(g, *w, *h);
    if (flips_tb) { /* flip_tb = rot180 after flip_lr */
        flip_lr(g, *w, *h);
        rot_ccw(g, w, h), rot_ccw(g, w, h);
    }
    for (int i = 0; i < turns; i++)
        rot_ccw(g, w, h);
}

static void test_jpeg_orientations(void)
{
    /* 3 x 2 blocks of 16 px (the 4:2:0 MCU) in six far-apart colours */
    static const uint8_t col[6][3] = {{230, 20, 20}, {20, 230, 20}, {20, 20, 230},
                                      {230, 230, 20}, {20, 230, 230}, {230, 20, 230}};
    uint8_t pix[48 * 32 * 3];
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 48; x++)
            memcpy(pix + (y * 48 + x) * 3, col[(y / 16) * 3 + x / 16], 3);
    for (int little = 0; little <= 1; little++) {
        for (int o = 1; o <= 8; o++) {
            uint8_t exif[64];
            size_t en = make_exif(exif, little, o);
            bytes b = make_jpeg(pix, 48, 32, 3, JCS_RGB, exif, en);
            if (o == 6 || o == 5)
                seed(little ? (o == 6 ? "exif6-II.jpg" : "exif5-II.jpg") : (o == 6 ? "exif6-MM.jpg" : "exif5-MM.jpg"),
                     &b);
            int g[6] = {0, 1, 2, 3, 4, 5}, gw = 3, gh = 2;
            pil_exif_transpose(g, &gw, &gh, o);
            vkd_cli_image img;
            char err[300] = "";
            int rc = vkd_cli_image_decode(b.p, b.n, "exif.jpg", 3, 0, &img, err, sizeof err);
            int ok = rc == 0 && img.width == gw * 16 && img.height == gh * 16, worst = 0;
            for (int by = 0; ok && by < gh; by++)
                for (int bx = 0; bx < gw; bx++)
                    for (int c = 0; c < 3; c++) {
                        int d = abs(img.pixels[((by * 16 + 8) * img.width + bx * 16 + 8) * 3 + c] - col[g[by * gw + bx]][c]);
                        worst = d > worst ? d : worst;
                    }
            TEST_CHECK(ok && worst <= 16, "EXIF orientation %d (%s): %dx%d, blocks where exif_transpose puts them "
                       "(rc %d %s, worst channel error %d)", o, little ? "II" : "MM", img.width, img.height, rc, err,
                       worst);
            vkd_cli_image_free(&img);
            free(b.p);
        }
    }
    /* an EXIF segment whose IFD offset points past its end: no orientation, no crash */
    uint8_t exif[64];
    size_t en = make_exif(exif, 1, 6);
    exif[6 + 4] = 0xf0;
    bytes b = make_jpeg(pix, 48, 32, 3, JCS_RGB, exif, en);
    vkd_cli_image img;
    char err[300] = "";
    int rc = vkd_cli_image_decode(b.p, b.n, "bad-exif.jpg", 3, 0, &img, err, sizeof err);
    TEST_CHECK(rc == 0 && img.width == 48 && img.height == 32, "a broken EXIF IFD offset is ignored (rc %d %s)", rc,
               err);
    vkd_cli_image_free(&img);
    free(b.p);
}

static void test_jpeg_kinds_and_damage(void)
{
    uint8_t grey[16 * 8];
    for (int i = 0; i < 128; i++)
        grey[i] = (uint8_t)(i < 64 ? 40 : 200);
    bytes b = make_jpeg(grey, 16, 8, 1, JCS_GRAYSCALE, NULL, 0);
    vkd_cli_image img;
    char err[300] = "";
    int rc = vkd_cli_image_decode(b.p, b.n, "grey.jpg", 3, 0, &img, err, sizeof err);
    int ok = rc == 0 && img.width == 16 && img.height == 8;
    for (int i = 0; ok && i < 128; i++)
        ok = img.pixels[3 * i] == img.pixels[3 * i + 1] && img.pixels[3 * i] == img.pixels[3 * i + 2] &&
             abs(img.pixels[3 * i] - grey[i]) <= 8;
    TEST_CHECK(ok, "a grey JPEG reads as R = G = B near the original (rc %d %s)", rc, err);
    vkd_cli_image_free(&img);
    expect_prefixes_refused(&b, "a 16x8 grey JPEG");
    seed("grey.jpg", &b);
    /* the frame header's height and width (SOF0: FF C0, length, precision, H, W) */
    size_t sof = 0;
    for (size_t i = 2; i + 9 < b.n && !sof; i++)
        if (b.p[i] == 0xff && b.p[i + 1] == 0xc0)
            sof = i;
    TEST_CHECK(sof != 0, "the test JPEG has a baseline frame header");
    static const struct { int w, h; const char *word; } dims[] = {
        {30000, 8, "16384"}, {16, 20000, "16384"}, {9000, 9000, "67108864"}, {16, 0, NULL}, {0, 8, NULL}};
    for (size_t i = 0; sof && i < sizeof dims / sizeof dims[0]; i++) {
        bytes d = {test_alloc(b.n), b.n};
        memcpy(d.p, b.p, b.n);
        d.p[sof + 5] = (uint8_t)(dims[i].h >> 8), d.p[sof + 6] = (uint8_t)dims[i].h;
        d.p[sof + 7] = (uint8_t)(dims[i].w >> 8), d.p[sof + 8] = (uint8_t)dims[i].w;
        char what[80];
        snprintf(what, sizeof what, "a JPEG header of %d x %d", dims[i].w, dims[i].h);
        expect_refused(&d, dims[i].word, what);
        free(d.p);
    }
    free(b.p);

    uint8_t cmyk[16 * 16 * 4];
    memset(cmyk, 100, sizeof cmyk);
    b = make_jpeg(cmyk, 16, 16, 4, JCS_CMYK, NULL, 0);
    expect_refused(&b, "CMYK", "a CMYK JPEG");
    seed("cmyk.jpg", &b);
    free(b.p);
    bytes junk = {test_alloc(64), 64};
    memset(junk.p, 0x5a, 64);
    junk.p[0] = 0xff, junk.p[1] = 0xd8, junk.p[2] = 0xff;
    expect_refused(&junk, NULL, "a JPEG SOI followed by junk");
    free(junk.p);
}
#endif

static void test_files(void)
{
    const char *empty = test_build_path("image_empty.png");
    write_file(empty, "", 0);
    expect_file_refused(empty, "empty", "an empty file");
    const char *dir = test_build_path("image_dir.png");
    mkdir(dir, 0755);
    expect_file_refused(dir, "folder", "a folder");
    const char *fifo = test_build_path("image_fifo.png");
    unlink(fifo);
    if (mkfifo(fifo, 0644) == 0) /* with no writer: an open without O_NONBLOCK would wait forever */
        expect_file_refused(fifo, "not a regular file", "a FIFO");
    unlink(fifo);
    expect_file_refused(test_build_path("image_missing.png"), "cannot open", "a missing file");
    const char *text = test_build_path("image_text.png");
    write_file(text, "this is not an image\n", 21);
    expect_file_refused(text, "not a PNG or JPEG", "a text file");
    const char *gif = test_build_path("image_gif.png");
    write_file(gif, "GIF89a\x01\x00\x01\x00", 10);
    expect_file_refused(gif, "GIF", "a GIF");
    bytes b = {(uint8_t *)"\x89PNG\r\n\x1a\n", 8};
    expect_refused(&b, "truncated", "a PNG signature alone");
#ifndef VKD_HAVE_JPEG
    bytes j = {(uint8_t *)"\xff\xd8\xff\xe0", 4};
    expect_refused(&j, "without JPEG support", "a JPEG in a build without libjpeg");
#endif
}

static void test_image_files(test_rng *r)
{
    test_png_kinds(r);
    test_png_damaged();
#ifdef VKD_HAVE_JPEG
    test_jpeg_orientations();
    test_jpeg_kinds_and_damage();
#endif
    test_files();
}

int main(void)
{
    test_rng r = {test_seed()};
    test_resize_identity_is_exact(&r);
    test_resize_constant_stays_constant();
    test_resize_downscale_4x_of_checkerboard_averages();
    test_resize_matches_double_reference(&r);
    test_resize_refuses_bad_arguments();
    test_mask_blur_matches_double_reference(&r);
    test_mask_blur_zero_and_constant(&r);
    test_image_files(&r);
    return test_finish();
}
