/* safetensors reader: round trip of files written here, exact dtype conversions, and
 * damaged files (each must give a clear error, never a crash; run under ASan in CI). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "harness.h"
#include "io/safetensors.h"

/* ---- a tiny writer: header JSON given as text, data appended ---------------------- */

typedef struct {
    uint8_t *p;
    size_t n;
} buf;

static buf make_file(const char *json, const void *data, size_t data_len)
{
    size_t h = strlen(json);
    buf b = {malloc(8 + h + data_len + 1), 8 + h + data_len};
    for (int i = 0; i < 8; i++)
        b.p[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b.p + 8, json, h);
    if (data_len)
        memcpy(b.p + 8 + h, data, data_len);
    return b;
}

static vkd_result open_json(const char *json, size_t data_len)
{
    uint8_t *data = calloc(data_len + 1, 1);
    buf b = make_file(json, data, data_len);
    vkd_st_file *f = NULL;
    vkd_result r = vkd_st_open_memory(b.p, b.n, "case", &f);
    if (r == VKD_OK)
        vkd_st_close(f);
    free(b.p);
    free(data);
    return r;
}

static void test_conversions_are_exact(void)
{
    /* anchor values from IEEE 754 binary16 and the OCP FP8 spec */
    TEST_CHECK(vkd_f16_to_f32(0x3c00) == 1.0f, "f16 1.0");
    TEST_CHECK(vkd_f16_to_f32(0x0001) == ldexpf(1, -24), "f16 smallest subnormal");
    TEST_CHECK(vkd_f16_to_f32(0x7bff) == 65504.0f, "f16 max");
    TEST_CHECK(isinf(vkd_f16_to_f32(0xfc00)) && vkd_f16_to_f32(0xfc00) < 0, "f16 -inf");
    TEST_CHECK(isnan(vkd_f16_to_f32(0x7e00)), "f16 nan");
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) { /* every non-NaN half survives f16 -> f32 -> f16 */
        float f = vkd_f16_to_f32((uint16_t)h);
        if (!isnan(f) && vkd_f32_to_f16(f) != h)
            bad++;
    }
    TEST_CHECK(bad == 0, "%d halves do not round trip", bad);
    TEST_CHECK(vkd_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00, "tie rounds to even (down)");
    TEST_CHECK(vkd_f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02, "tie rounds to even (up)");
    TEST_CHECK(vkd_f32_to_f16(65520.0f) == 0x7c00, "65520 overflows to inf");
    TEST_CHECK(vkd_f32_to_f16(ldexpf(1, -25)) == 0x0000, "2^-25 ties to zero");
    TEST_CHECK(vkd_f32_to_f16(ldexpf(3, -26)) == 0x0001, "1.5 * 2^-25 rounds up to the smallest subnormal");
    TEST_CHECK(vkd_bf16_to_f32(0x3f80) == 1.0f && vkd_bf16_to_f32(0xc000) == -2.0f, "bf16");
    TEST_CHECK(vkd_f8e4m3_to_f32(0x38) == 1.0f && vkd_f8e4m3_to_f32(0xb8) == -1.0f, "e4m3 +-1");
    TEST_CHECK(vkd_f8e4m3_to_f32(0x7e) == 448.0f, "e4m3 max 448");
    TEST_CHECK(vkd_f8e4m3_to_f32(0x08) == ldexpf(1, -6), "e4m3 min normal");
    TEST_CHECK(vkd_f8e4m3_to_f32(0x01) == ldexpf(1, -9), "e4m3 min subnormal");
    TEST_CHECK(isnan(vkd_f8e4m3_to_f32(0x7f)) && isnan(vkd_f8e4m3_to_f32(0xff)), "e4m3 nan");
    TEST_CHECK(vkd_f8e5m2_to_f32(0x3c) == 1.0f && vkd_f8e5m2_to_f32(0x7b) == 57344.0f, "e5m2 1, max");
    TEST_CHECK(isinf(vkd_f8e5m2_to_f32(0x7c)), "e5m2 inf");
    TEST_CHECK(vkd_f8e5m2_to_f32(0x01) == ldexpf(1, -16), "e5m2 min subnormal");
    /* f8 -> f16 must be exact: compare to the f32 path for all 256 codes */
    int bad8 = 0;
    for (int v = 0; v < 256; v++) {
        uint8_t b = (uint8_t)v;
        uint16_t h[2];
        float f[2];
        vkd_st_convert_f16(VKD_ST_F8_E4M3, &b, 0, 1, &h[0]);
        vkd_st_convert_f16(VKD_ST_F8_E5M2, &b, 0, 1, &h[1]);
        f[0] = vkd_f8e4m3_to_f32(b);
        f[1] = vkd_f8e5m2_to_f32(b);
        for (int k = 0; k < 2; k++)
            if (!isnan(f[k]) && vkd_f16_to_f32(h[k]) != f[k])
                bad8++;
    }
    TEST_CHECK(bad8 == 0, "%d fp8 codes change on the way to f16", bad8);
}

static void test_round_trip_every_float_dtype(void)
{
    /* one tensor per dtype, values chosen exactly representable in each */
    float vals[6] = {1.0f, -2.5f, 0.15625f, 448.0f, -0.001953125f, 0.0f};
    uint8_t data[256] = {0};
    size_t o = 0;
    memcpy(data + o, vals, 24), o += 24; /* F32 [2,3] */
    for (int i = 0; i < 6; i++) {
        uint16_t h = vkd_f32_to_f16(vals[i]);
        memcpy(data + o + 2 * i, &h, 2);
    }
    o += 12;
    for (int i = 0; i < 6; i++) {
        uint32_t u;
        memcpy(&u, &vals[i], 4);
        uint16_t b = (uint16_t)(u >> 16); /* these values have 8 significant bits at most */
        memcpy(data + o + 2 * i, &b, 2);
    }
    o += 12;
    const uint8_t e4[6] = {0x38, 0xc2, 0x22, 0x7e, 0x81, 0x00}; /* 1, -2.5, 0.15625, 448, -2^-9, 0 */
    memcpy(data + o, e4, 6), o += 6;
    int64_t i64[2] = {7, -1};
    memcpy(data + o, i64, 16), o += 16;
    char json[1024];
    snprintf(json, sizeof json,
             "{\"__metadata__\":{\"format\":\"pt\",\"name\":\"test\"},"
             "\"a.f32\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
             "\"b.f16\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[24,36]},"
             "\"c.bf16\":{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[36,48]},"
             "\"d.e4m3\":{\"dtype\":\"F8_E4M3\",\"shape\":[6],\"data_offsets\":[48,54]},"
             "\"e.ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[54,70]},"
             "\"f.scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]},"
             "\"g.empty\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[70,70]}}    ");
    buf b = make_file(json, data, o);
    /* through a real file, so vkd_st_open's mmap path runs */
    const char *path = test_build_path("st_roundtrip.safetensors");
    FILE *fp = fopen(path, "wb");
    TEST_CHECK(fp && fwrite(b.p, 1, b.n, fp) == b.n, "write %s", path);
    if (fp)
        fclose(fp);
    free(b.p);
    vkd_st_file *f = NULL;
    /* f.scalar claims [0,0) but rank 0 means 1 element: must be refused */
    TEST_CHECK(vkd_st_open(path, &f) == VKD_ERR_FORMAT && !f, "scalar with 0 bytes is refused");
    /* fix the scalar entry (4 bytes at the end) and retry */
    char *s = strstr(json, "\"f.scalar\"");
    memcpy(s, "\"f.scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[70,74]},"
              "\"g.empty\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[74,74]}}",
           strlen("\"f.scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[70,74]},"
                  "\"g.empty\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[74,74]}}") + 1);
    float one = 3.0f;
    memcpy(data + o, &one, 4), o += 4;
    b = make_file(json, data, o);
    vkd_result r = vkd_st_open_memory(b.p, b.n, "roundtrip", &f);
    TEST_CHECK(r == VKD_OK, "valid file opens (%d)", r);
    if (r == VKD_OK) {
        TEST_CHECK(vkd_st_count(f) == 7, "7 tensors, got %zu", vkd_st_count(f));
        const char *names[4] = {"a.f32", "b.f16", "c.bf16", "d.e4m3"};
        for (int k = 0; k < 4; k++) {
            const vkd_st_tensor *t = vkd_st_find(f, names[k]);
            float got[6] = {0};
            uint16_t h[6];
            TEST_CHECK(t && t->nelem == 6, "%s found with 6 elements", names[k]);
            if (!t)
                continue;
            TEST_CHECK(vkd_st_tensor_to_f32(t, got) == VKD_OK, "%s converts", names[k]);
            TEST_CHECK(memcmp(got, vals, sizeof vals) == 0, "%s values round trip exactly", names[k]);
            TEST_CHECK(vkd_st_tensor_to_f16(t, h) == VKD_OK, "%s converts to f16", names[k]);
            for (int i = 0; i < 6; i++)
                TEST_CHECK(vkd_f16_to_f32(h[i]) == vals[i], "%s f16[%d]", names[k], i);
        }
        const vkd_st_tensor *t = vkd_st_find(f, "e.ids");
        float tmp[2];
        TEST_CHECK(t && t->dtype == VKD_ST_I64 && vkd_st_tensor_to_f32(t, tmp) == VKD_ERR_UNSUPPORTED,
                   "I64 is parsed but refused as a weight");
        t = vkd_st_find(f, "f.scalar");
        TEST_CHECK(t && t->rank == 0 && t->nelem == 1 && vkd_st_tensor_to_f32(t, tmp) == VKD_OK && tmp[0] == 3.0f,
                   "rank-0 scalar");
        t = vkd_st_find(f, "g.empty");
        TEST_CHECK(t && t->nelem == 0 && t->nbytes == 0, "zero-size tensor");
        TEST_CHECK(vkd_st_find(f, "nope") == NULL, "absent name");
        TEST_CHECK(vkd_st_metadata(f, "name") && strcmp(vkd_st_metadata(f, "name"), "test") == 0, "metadata kept");
        TEST_CHECK(vkd_st_metadata_count(f) == 2, "2 metadata pairs");
        vkd_st_close(f);
    }
    /* every truncation of the valid file is refused */
    int accepted = 0;
    for (size_t cut = 0; cut < b.n; cut++) {
        f = NULL;
        if (vkd_st_open_memory(b.p, cut, "truncated", &f) == VKD_OK) {
            accepted++;
            vkd_st_close(f);
        }
    }
    TEST_CHECK(accepted == 0, "%d truncated copies were accepted", accepted);
    free(b.p);
}

static void test_damaged_headers_are_refused(void)
{
    static const struct { const char *json; size_t data; vkd_result want; const char *what; } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1,2],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "negative dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "overflowing product"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e30],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "huge dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "fractional dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "string dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "rank 9"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, VKD_ERR_FORMAT, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "same bytes twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, VKD_ERR_FORMAT, "begin > end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, VKD_ERR_FORMAT, "past the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, VKD_ERR_FORMAT, "wrong byte size"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "F16 size mismatch"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", 8, VKD_ERR_FORMAT, "negative offset"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, VKD_ERR_FORMAT, "one offset"},
        {"{\"a\":{\"dtype\":\"Q4_0\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, VKD_ERR_UNSUPPORTED, "unknown dtype"},
        {"{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "numeric dtype"},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "no dtype"},
        {"{\"a\":[1,2]}", 8, VKD_ERR_FORMAT, "entry not an object"},
        {"{\"\xff\xfe\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "non-UTF-8 name"},
        {"{\"\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "overlong UTF-8"},
        {"{\"\xed\xa0\x80\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "surrogate"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, VKD_ERR_FORMAT, "empty name"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, VKD_ERR_FORMAT, "duplicate name"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, VKD_ERR_FORMAT, "unterminated JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8, VKD_ERR_FORMAT, "junk after JSON"},
        {"[1,2,3]", 0, VKD_ERR_FORMAT, "header is an array"},
        {"{\"__metadata__\":[1]}", 0, VKD_ERR_FORMAT, "metadata not an object"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, VKD_ERR_FORMAT, "two metadata"},
        {"{}", 0, VKD_OK, "empty but valid"},
        {"{\"__metadata__\":{\"n\":1}}", 0, VKD_OK, "non-string metadata is skipped"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vkd_result r = open_json(cases[i].json, cases[i].data);
        TEST_CHECK(r == cases[i].want, "%s: got %d (%s), want %d", cases[i].what, r, vkd_result_str(r), cases[i].want);
    }
}

static void test_bad_framing_is_refused(void)
{
    vkd_st_file *f = NULL;
    uint8_t small[16] = {0};
    TEST_CHECK(vkd_st_open_memory(small, 5, "short", &f) == VKD_ERR_FORMAT && !f, "5-byte file");
    /* header length far beyond the file */
    small[0] = 0x40;
    TEST_CHECK(vkd_st_open_memory(small, 16, "hlen", &f) == VKD_ERR_FORMAT, "header length past the end");
    /* 100 MB declared header: refused by the cap, before any of it is read */
    uint64_t big = 100ull << 20;
    for (int i = 0; i < 8; i++)
        small[i] = (uint8_t)(big >> (8 * i));
    TEST_CHECK(vkd_st_open_memory(small, 16, "cap", &f) == VKD_ERR_FORMAT, "100 MB header length");
    memset(small, 0xff, 8);
    TEST_CHECK(vkd_st_open_memory(small, 16, "u64max", &f) == VKD_ERR_FORMAT, "2^64-1 header length");
    /* pickles, by magic */
    const uint8_t zip[16] = {'P', 'K', 3, 4};
    const uint8_t pkl[16] = {0x80, 0x02, 0x7d, 0x71};
    TEST_CHECK(vkd_st_open_memory(zip, 16, "zip", &f) == VKD_ERR_UNSUPPORTED, "torch zip refused");
    TEST_CHECK(vkd_st_open_memory(pkl, 16, "pkl", &f) == VKD_ERR_UNSUPPORTED, "pickle refused");
    /* and by extension, before the file is opened */
    TEST_CHECK(vkd_st_open("/nonexistent/model.ckpt", &f) == VKD_ERR_UNSUPPORTED, ".ckpt refused");
    TEST_CHECK(vkd_st_open("/nonexistent/x.PTH", &f) == VKD_ERR_UNSUPPORTED, ".PTH refused");
    TEST_CHECK(vkd_st_open("/nonexistent/x.safetensors", &f) == VKD_ERR_IO, "missing file is an I/O error");
    TEST_CHECK(vkd_st_open(test_build_path("."), &f) == VKD_ERR_IO, "a directory is not a file");
}

static void test_100mb_header_file_is_refused(void)
{
    /* a sparse file whose valid-looking header claims 100 MB: refused by the cap */
    const char *path = test_build_path("st_100mb_header.safetensors");
    FILE *fp = fopen(path, "wb");
    TEST_CHECK(fp != NULL, "create %s", path);
    if (!fp)
        return;
    uint64_t h = 100ull << 20;
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(h >> (8 * i));
    fwrite(len, 1, 8, fp);
    fputc('{', fp);
    fseek(fp, (long)(8 + h - 1), SEEK_SET);
    fputc('}', fp);
    fclose(fp);
    vkd_st_file *f = NULL;
    TEST_CHECK(vkd_st_open(path, &f) == VKD_ERR_FORMAT && !f, "100 MB header refused");
    remove(path);
}

static void quiet(vkd_log_level l, const char *m, void *u)
{
    (void)l, (void)u;
    if (getenv("VKD_TEST_VERBOSE"))
        fprintf(stderr, "  log: %s\n", m);
}

int main(void)
{
    vkd_log_set(quiet, NULL, VKD_LOG_DEBUG); /* every message is still formatted */
    test_conversions_are_exact();
    test_round_trip_every_float_dtype();
    test_damaged_headers_are_refused();
    test_bad_framing_is_refused();
    test_100mb_header_file_is_refused();
    return test_finish();
}
