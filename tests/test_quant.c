/* ggml block formats (host/io/quant.c) against an independent numpy implementation of
 * ggml's reference quantizers (tools/oracle/quant_ref.py -> tests/data/quant_golden.bin):
 * for every input case and every type vkdiff quantizes, the C quantizer's bytes equal
 * the oracle's, and the C dequantizer's floats equal the oracle's bit for bit; the same
 * for ggml's importance-matrix quantizers with a matrix of ones (stable-diffusion.cpp's
 * path) and for the dequantizers of all ten types on random blocks.
 * Regenerate the golden file: /usr/bin/python3 tools/oracle/quant_ref.py --golden
 * tests/data/quant_golden.bin */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/quant.h"

typedef struct {
    const uint8_t *p, *end;
    int bad;
} reader;

static uint32_t rd_u32(reader *r)
{
    if (r->end - r->p < 4) {
        r->bad = 1;
        return 0;
    }
    uint32_t v = (uint32_t)r->p[0] | ((uint32_t)r->p[1] << 8) | ((uint32_t)r->p[2] << 16) | ((uint32_t)r->p[3] << 24);
    r->p += 4;
    return v;
}

static const uint8_t *rd_bytes(reader *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

static int qtype_by_name(const char *s, size_t n, vkd_qtype *out)
{
    for (int t = 0; t < VKD_QTYPE_COUNT; t++) {
        const char *name = vkd_qtype_name((vkd_qtype)t);
        size_t k = 0;
        while (k < n && name[k] && (name[k] | 0x20) == (s[k] | 0x20))
            k++;
        if (k == n && name[k] == 0) {
            *out = (vkd_qtype)t;
            return 1;
        }
    }
    return 0;
}

static void test_block_sizes_are_ggmls(void)
{
    static const struct { vkd_qtype t; size_t block, bytes; } want[] = {
        {VKD_Q4_0, 32, 18}, {VKD_Q4_1, 32, 20}, {VKD_Q5_0, 32, 22},   {VKD_Q5_1, 32, 24},   {VKD_Q8_0, 32, 34},
        {VKD_Q2_K, 256, 84}, {VKD_Q3_K, 256, 110}, {VKD_Q4_K, 256, 144}, {VKD_Q5_K, 256, 176}, {VKD_Q6_K, 256, 210},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        TEST_CHECK(vkd_qtype_block(want[i].t) == want[i].block && vkd_qtype_block_bytes(want[i].t) == want[i].bytes,
                   "%s: block %zu bytes %zu", vkd_qtype_name(want[i].t), vkd_qtype_block(want[i].t),
                   vkd_qtype_block_bytes(want[i].t));
    float x[48] = {0};
    uint8_t y[64];
    TEST_CHECK(vkd_quantize_row(VKD_Q8_0, x, y, 48) == -1, "a row that is not whole blocks is refused");
    TEST_CHECK(vkd_quantize_row(VKD_Q3_K, x, y, 0) == -1, "Q3_K does not quantize");
    TEST_CHECK(vkd_dequantize_row(VKD_QTYPE_COUNT, y, x, 32) == -1, "unknown type refused");
}

static void test_quantize_matches_ggml_reference_bytes_and_floats(void)
{
    size_t len = 0;
    char *buf = test_read_file(test_data_path("quant_golden.bin"), &len);
    TEST_CHECK(buf != NULL, "read quant_golden.bin");
    if (!buf)
        return;
    reader r = {(const uint8_t *)buf, (const uint8_t *)buf + len, 0};
    const uint8_t *magic = rd_bytes(&r, 4);
    uint32_t version = rd_u32(&r), ncases = rd_u32(&r), ntypes = rd_u32(&r);
    TEST_CHECK(magic && memcmp(magic, "VKQG", 4) == 0 && version == 1, "golden header");
    int checked = 0;
    float *case_x[64] = {0};
    size_t case_n[64] = {0};
    char case_name[64][32];
    for (uint32_t c = 0; c < ncases && !r.bad; c++) {
        uint32_t nl = rd_u32(&r);
        const char *name = (const char *)rd_bytes(&r, nl);
        uint32_t n = rd_u32(&r);
        const uint8_t *xin = rd_bytes(&r, (size_t)n * 4);
        if (r.bad)
            break;
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *yg = malloc(n * sizeof *yg);
        memcpy(x, xin, (size_t)n * 4);
        if (c < 64) { /* kept for the sd.cpp section below */
            case_x[c] = malloc(n * sizeof *x);
            memcpy(case_x[c], x, n * sizeof *x);
            case_n[c] = n;
            snprintf(case_name[c], sizeof case_name[c], "%.*s", (int)nl, name);
        }
        for (uint32_t k = 0; k < ntypes && !r.bad; k++) {
            uint32_t tl = rd_u32(&r);
            const char *tname = (const char *)rd_bytes(&r, tl);
            uint32_t nbytes = rd_u32(&r);
            const uint8_t *want = rd_bytes(&r, nbytes);
            const uint8_t *yin = rd_bytes(&r, (size_t)n * 4);
            vkd_qtype t;
            if (r.bad || !qtype_by_name(tname, tl, &t)) {
                TEST_CHECK(0, "case %.*s: unknown type %.*s", (int)nl, name, (int)tl, tname ? tname : "");
                continue;
            }
            memcpy(yg, yin, (size_t)n * 4);
            size_t nb = n / vkd_qtype_block(t) * vkd_qtype_block_bytes(t);
            TEST_CHECK(nb == nbytes, "%s: %zu bytes, golden %u", vkd_qtype_name(t), nb, nbytes);
            uint8_t *got = calloc(nb + 1, 1);
            TEST_CHECK(vkd_quantize_row(t, x, got, n) == 0, "quantize %s", vkd_qtype_name(t));
            size_t bad = nb;
            for (size_t i = 0; i < nb && i < nbytes; i++)
                if (got[i] != want[i]) {
                    bad = i;
                    break;
                }
            TEST_CHECK(bad == nb, "case %.*s, %s: byte %zu (block %zu, offset %zu) is 0x%02x, ggml reference 0x%02x",
                       (int)nl, name, vkd_qtype_name(t), bad, bad / vkd_qtype_block_bytes(t),
                       bad % vkd_qtype_block_bytes(t), bad < nb ? got[bad] : 0, bad < nb ? want[bad] : 0);
            /* dequantize the golden bytes: the floats must match to the bit */
            TEST_CHECK(vkd_dequantize_row(t, want, y, n) == 0, "dequantize %s", vkd_qtype_name(t));
            size_t badf = n;
            for (size_t i = 0; i < n; i++)
                if (memcmp(&y[i], &yg[i], 4) != 0) {
                    badf = i;
                    break;
                }
            TEST_CHECK(badf == n, "case %.*s, %s: dequantized value %zu is %.9g, reference %.9g", (int)nl, name,
                       vkd_qtype_name(t), badf, badf < n ? y[badf] : 0.0, badf < n ? yg[badf] : 0.0);
            free(got);
            checked++;
        }
        free(x);
        free(y);
        free(yg);
    }
    /* random blocks of every type (Q2_K, Q3_K, Q5_K included) dequantized by the oracle */
    uint32_t ndq = rd_u32(&r);
    int dq_checked = 0;
    for (uint32_t k = 0; k < ndq && !r.bad; k++) {
        uint32_t tl = rd_u32(&r);
        const char *tname = (const char *)rd_bytes(&r, tl);
        uint32_t nbytes = rd_u32(&r);
        const uint8_t *raw = rd_bytes(&r, nbytes);
        uint32_t n = rd_u32(&r);
        const uint8_t *yin = rd_bytes(&r, (size_t)n * 4);
        vkd_qtype t;
        if (r.bad || !qtype_by_name(tname, tl, &t))
            break;
        float *y = malloc((size_t)n * 4), *yg = malloc((size_t)n * 4);
        memcpy(yg, yin, (size_t)n * 4);
        TEST_CHECK(n / vkd_qtype_block(t) * vkd_qtype_block_bytes(t) == nbytes && vkd_dequantize_row(t, raw, y, n) == 0,
                   "dequantize random %s", vkd_qtype_name(t));
        size_t badf = n;
        for (size_t i = 0; i < n; i++)
            if (memcmp(&y[i], &yg[i], 4) != 0) {
                badf = i;
                break;
            }
        TEST_CHECK(badf == n, "random %s blocks: dequantized value %zu is %.9g, reference %.9g", vkd_qtype_name(t), badf,
                   badf < n ? y[badf] : 0.0, badf < n ? yg[badf] : 0.0);
        dq_checked++;
        free(y);
        free(yg);
    }
    TEST_CHECK(dq_checked == VKD_QTYPE_COUNT, "%d types dequantized from random blocks", dq_checked);
    /* stable-diffusion.cpp's path: ggml's weighted quantizers with an importance matrix of
     * ones (vkd_quantize_rows), each case one row */
    uint32_t nsd = rd_u32(&r);
    int sd_checked = 0;
    float ones[1024];
    for (int i = 0; i < 1024; i++)
        ones[i] = 1.0f;
    for (uint32_t k = 0; k < nsd && !r.bad; k++) {
        uint32_t ci = rd_u32(&r), tl = rd_u32(&r);
        const char *tname = (const char *)rd_bytes(&r, tl);
        uint32_t npr = rd_u32(&r), nbytes = rd_u32(&r);
        const uint8_t *want = rd_bytes(&r, nbytes);
        vkd_qtype t;
        if (r.bad || ci >= ncases || !npr || !qtype_by_name(tname, tl, &t))
            break;
        size_t n = (size_t)nbytes / vkd_qtype_block_bytes(t) * vkd_qtype_block(t);
        uint8_t *got = calloc(nbytes + 1, 1);
        TEST_CHECK(n == case_n[ci] && npr <= 1024 && n % npr == 0 && vkd_quantize_rows(t, case_x[ci], got, n / npr, npr, ones) == 0,
                   "quantize_rows %s", vkd_qtype_name(t));
        size_t bad = nbytes;
        for (size_t i = 0; i < nbytes; i++)
            if (got[i] != want[i]) {
                bad = i;
                break;
            }
        TEST_CHECK(bad == nbytes, "case %s, %s with an importance matrix of ones: byte %zu (block %zu, offset %zu) is "
                   "0x%02x, ggml 0x%02x", case_name[ci], vkd_qtype_name(t), bad, bad / vkd_qtype_block_bytes(t),
                   bad % vkd_qtype_block_bytes(t), bad < nbytes ? got[bad] : 0, bad < nbytes ? want[bad] : 0);
        free(got);
        sd_checked++;
    }
    TEST_CHECK(sd_checked == (int)(ncases * ntypes), "%d (case, type) pairs checked on sd.cpp's path", sd_checked);
    for (uint32_t c = 0; c < ncases && c < 64; c++)
        free(case_x[c]);
    TEST_CHECK(!r.bad && r.p == r.end, "golden file read to its end");
    TEST_CHECK(checked == (int)(ncases * ntypes) && checked >= 7 * 10, "%d (case, type) pairs checked", checked);
    free(buf);
}

int main(void)
{
    test_block_sizes_are_ggmls();
    test_quantize_matches_ggml_reference_bytes_and_floats();
    return test_finish();
}
