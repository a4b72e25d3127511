/* GGUF reader (host/io/gguf.c) on files written at test time by tools/make_gguf.py
 * (numpy; the way stable-diffusion.cpp's convert writes them) from the tiny
 * checkpoints, and on damaged files built here: every damaged file is refused with
 * VKD_ERR_FORMAT or VKD_ERR_UNSUPPORTED, never a crash (ASan in CI). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "harness.h"
#include "io/layout.h"
#include "io/quant.h"
#include "io/safetensors.h"

static const char *make_gguf(const char *src, const char *type, int convert_name)
{
    const char *py = getenv("VKD_PYTHON") ? getenv("VKD_PYTHON") : "python3";
    char rel[256], cmd[4096];
    const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
    snprintf(rel, sizeof rel, "gguf-%.*s-%s%s.gguf", (int)(strlen(base) - 12), base, type, convert_name ? "-cn" : "");
    const char *out = test_build_path(rel);
    snprintf(cmd, sizeof cmd, "%s %s --type %s %s %s %s >/dev/null", py, test_source_path("tools/make_gguf.py"), type,
             convert_name ? "--convert-name" : "", test_data_path(src), out);
    int rc = system(cmd);
    TEST_CHECK(rc == 0, "could not run: %s (needs python3 + numpy)", cmd);
    return rc == 0 ? out : NULL;
}

/* stable-diffusion.cpp's ModelLoader::tensor_should_be_converted, the SD part */
static int should_convert(const vkd_st_tensor *t, vkd_st_dtype dst)
{
    static const char *const keep[] = {"time_embed.", "label_emb.", "embedding"};
    size_t n = strlen(t->name), ne0 = t->rank ? (size_t)t->shape[t->rank - 1] : 1;
    if (vkd_st_dtype_is_quantized(dst) && ne0 % vkd_st_dtype_block(dst))
        return 0;
    if ((n >= 5 && !strcmp(t->name + n - 5, ".bias")) || (n >= 6 && !strcmp(t->name + n - 6, ".scale")))
        return 0;
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (strstr(t->name, keep[i]))
            return 0;
    return 1;
}

/* Equal shapes, but for leading 1s: ggml_n_dims drops trailing ne of 1, so a scalar
 * (logit_scale) is [1] and a [1, 77] tensor [77] in a GGUF file. */
static int same_shape(const vkd_st_tensor *a, const vkd_st_tensor *b)
{
    int i = 0, j = 0;
    while (i < a->rank && a->shape[i] == 1)
        i++;
    while (j < b->rank && b->shape[j] == 1)
        j++;
    if (a->nelem != b->nelem || a->rank - i != b->rank - j)
        return 0;
    return !memcmp(a->shape + i, b->shape + j, (size_t)(a->rank - i) * sizeof a->shape[0]);
}

/* sd.cpp's unused_tensors (src/model_loader.cpp): dropped when it reads a file, the
 * ones the tiny checkpoints have */
static int sdcpp_unused(const char *name)
{
    static const char *const unused[] = {
        "cond_stage_model.transformer.text_model.embeddings.position_ids", "cond_stage_model.model.logit_scale",
        "conditioner.embedders.0.transformer.text_model.embeddings.position_ids",
        "conditioner.embedders.0.model.logit_scale", "conditioner.embedders.1.model.logit_scale", "betas",
        "alphas_cumprod_prev", "model_ema.",
    };
    for (size_t i = 0; i < sizeof unused / sizeof unused[0]; i++)
        if (!strncmp(name, unused[i], strlen(unused[i])))
            return 1;
    return 0;
}

/* relative RMS error bound of ggml's quantizers on weights (2x what N(0,1) data gives) */
static double tolerance(vkd_st_dtype t)
{
    switch (t) {
    case VKD_ST_Q8_0: return 0.012;
    case VKD_ST_Q6_K: return 0.04;
    case VKD_ST_Q5_0: case VKD_ST_Q5_1: return 0.1;
    default: return 0.2; /* Q4_0, Q4_1, Q4_K */
    }
}

/* Every float tensor of the checkpoint is in the GGUF under its own name, with its
 * shape, in the type sd.cpp's rule gives; F16 values identical, quantized bytes identical
 * to vkdiff's C quantizer on sd.cpp's path (vkd_quantize_rows, an importance matrix of
 * ones; the oracle and the C agree on real weights too), dequantized values within the
 * type's error. Then both open through the layout
 * to the same internal names and shapes. */
static void check_converted(const char *src, const char *type, vkd_st_dtype dst, int convert_name)
{
    const char *path = make_gguf(src, type, convert_name);
    vkd_st_file *s = NULL, *g = NULL;
    if (!path || vkd_st_open(test_data_path(src), &s) || vkd_st_open(path, &g)) {
        TEST_CHECK(0, "%s %s: open", src, type);
        vkd_st_close(s);
        return;
    }
    size_t n_quant = 0, n_same = 0, bad_type = 0, bad_bytes = 0, bad_val = 0, missing = 0;
    double worst = 0;
    for (size_t i = 0; i < vkd_st_count(s) && !convert_name; i++) { /* renamed: the layout check below */
        const vkd_st_tensor *a = vkd_st_at(s, i), *b = vkd_st_find(g, a->name);
        if (sdcpp_unused(a->name)) {
            TEST_CHECK(!b, "%s: '%s' is on sd.cpp's unused list and left out", type, a->name);
            continue;
        }
        if (a->dtype == VKD_ST_I64) { /* position_ids: sd.cpp stores I64 as I32 */
            TEST_CHECK(b && b->dtype == VKD_ST_I32 && same_shape(a, b) && ((const int32_t *)b->data)[1] == 1,
                       "%s: I64 '%s' is I32 in the GGUF, as sd.cpp writes it", type, a->name);
            continue;
        }
        if (!b || !same_shape(a, b)) {
            if (missing++ < 3)
                fprintf(stderr, "  %s: '%s' missing or of another shape\n", type, a->name);
            continue;
        }
        vkd_st_dtype want = should_convert(a, dst) ? dst : a->dtype;
        if (b->dtype != want) {
            if (bad_type++ < 3)
                fprintf(stderr, "  %s: '%s' is %s, sd.cpp's rule gives %s\n", type, a->name, vkd_st_dtype_name(b->dtype),
                        vkd_st_dtype_name(want));
            continue;
        }
        float *x = malloc(a->nelem * sizeof *x), *y = malloc(a->nelem * sizeof *y);
        TEST_CHECK(vkd_st_tensor_to_f32(a, x) == VKD_OK && vkd_st_tensor_to_f32(b, y) == VKD_OK, "convert %s", a->name);
        if (vkd_st_dtype_is_quantized(b->dtype)) {
            n_quant++;
            /* sd.cpp's path: ggml's weighted quantizers, an importance matrix of ones, rows of ne[0] */
            uint8_t *q = malloc(b->nbytes);
            size_t npr = (size_t)a->shape[a->rank - 1];
            float *ones = malloc(npr * sizeof *ones);
            for (size_t k = 0; k < npr; k++)
                ones[k] = 1.0f;
            vkd_quantize_rows((vkd_qtype)(b->dtype - VKD_ST_Q4_0), x, q, a->nelem / npr, npr, ones);
            free(ones);
            bad_bytes += memcmp(q, b->data, b->nbytes) != 0;
            free(q);
            double e2 = 0, x2 = 0;
            for (size_t k = 0; k < a->nelem; k++)
                e2 += (double)(y[k] - x[k]) * (y[k] - x[k]), x2 += (double)x[k] * x[k];
            double rel = x2 > 0 ? sqrt(e2 / x2) : sqrt(e2);
            worst = rel > worst ? rel : worst;
            if (rel > tolerance(b->dtype) && bad_val++ < 3)
                fprintf(stderr, "  %s: '%s' relative error %.4f\n", type, a->name, rel);
        } else {
            n_same++;
            for (size_t k = 0; k < a->nelem; k++) /* F16 stays F16; F32 -> F16 rounds to nearest even */
                if (memcmp(&x[k], &y[k], 4) && (b->dtype != VKD_ST_F16 || vkd_f32_to_f16(x[k]) != vkd_f32_to_f16(y[k]))) {
                    bad_val++;
                    break;
                }
        }
        free(x);
        free(y);
    }
    TEST_CHECK(!missing && !bad_type && !bad_bytes && !bad_val,
               "%s %s: %zu missing, %zu of the wrong type, %zu with other bytes than the C quantizer, %zu values off", src,
               type, missing, bad_type, bad_bytes, bad_val);
    TEST_CHECK(dst == VKD_ST_F16 || convert_name || n_quant > 0, "%s %s: some tensors are quantized (%zu)", src, type,
               n_quant);
    printf("  %s %s: %zu quantized (worst relative RMS error %.4f), %zu kept\n", src, type, n_quant, worst, n_same);
    vkd_st_close(s);
    vkd_st_close(g);

    /* through the layout: same internal names and shapes, the same values (within the
     * type's error where the GGUF holds a quantized tensor) */
    vkd_weights *ws = NULL, *wg = NULL;
    TEST_CHECK(vkd_weights_open(test_data_path(src), NULL, &ws) == VKD_OK, "layout opens %s", src);
    TEST_CHECK(vkd_weights_open(path, NULL, &wg) == VKD_OK, "layout opens the %s GGUF of %s", type, src);
    if (ws && wg) {
        TEST_CHECK(vkd_weights_count(ws) == vkd_weights_count(wg), "%s: %zu internal tensors, safetensors %zu", type,
                   vkd_weights_count(wg), vkd_weights_count(ws));
        size_t bad = 0, nq = 0;
        for (size_t i = 0; i < vkd_weights_count(ws); i++) {
            const vkd_wtensor *a = vkd_weights_at(ws, i), *b = vkd_weights_find(wg, a->name);
            if (!b || b->nelem != a->nelem || memcmp(a->shape, b->shape, sizeof a->shape)) {
                if (bad++ < 3)
                    fprintf(stderr, "  %s: internal '%s' %s\n", type, a->name, b ? "of another shape" : "missing");
                continue;
            }
            float *x = malloc(a->nelem * sizeof *x), *y = malloc(b->nelem * sizeof *y);
            if (vkd_wtensor_read_f32(a, x) != VKD_OK || vkd_wtensor_read_f32(b, y) != VKD_OK) {
                bad++;
            } else if (vkd_st_dtype_is_quantized(b->src->dtype)) {
                nq++;
                double e2 = 0, x2 = 0;
                for (size_t k = 0; k < a->nelem; k++)
                    e2 += (double)(y[k] - x[k]) * (y[k] - x[k]), x2 += (double)x[k] * x[k];
                bad += (x2 > 0 ? sqrt(e2 / x2) : sqrt(e2)) > tolerance(b->src->dtype);
            } else {
                for (size_t k = 0; k < a->nelem; k++)
                    if (vkd_f32_to_f16(x[k]) != vkd_f32_to_f16(y[k])) {
                        bad++;
                        break;
                    }
            }
            free(x);
            free(y);
        }
        TEST_CHECK(bad == 0, "%s %s%s: %zu internal tensors differ in name, shape or value", src, type,
                   convert_name ? " --convert-name" : "", bad);
        TEST_CHECK(dst == VKD_ST_F16 || nq > 0, "%s %s: quantized internal tensors (%zu)", src, type, nq);
    }
    vkd_weights_close(ws);
    vkd_weights_close(wg);

    /* the descriptor path (Android assets) recognises GGUF too */
    FILE *fp = fopen(path, "rb");
    vkd_weights *wf = NULL;
    if (fp) {
        fseek(fp, 0, SEEK_END);
        long len = ftell(fp);
        TEST_CHECK(vkd_weights_open_fd(fileno(fp), 0, (size_t)len, path, &wf) == VKD_OK && wf &&
                       vkd_weights_count(wf) > 0,
                   "%s %s: opens through a descriptor", src, type);
        fclose(fp);
    }
    vkd_weights_close(wf);
}

/* ---- damaged files -------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} gbuf;

static void put(gbuf *b, const void *v, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, v, n);
    b->n += n;
}
static void u32(gbuf *b, uint32_t v) { put(b, &v, 4); }
static void u64(gbuf *b, uint64_t v) { put(b, &v, 8); }
static void str(gbuf *b, const char *s) { u64(b, strlen(s)), put(b, s, strlen(s)); }

/* knobs of the file build_gguf writes; zero-initialised = the valid file */
typedef struct {
    uint32_t version;       /* 0: 3 */
    uint64_t n_tensors, n_kv; /* 0: the real counts */
    uint64_t name_len;      /* 0: real; else the second tensor name's stated length */
    int nest;               /* depth of the nested array (0: 2) */
    uint32_t n_dims;        /* of the second tensor (0: 2) */
    uint64_t ne0, ne1;      /* of the second tensor (0: 32, 2) */
    uint32_t type;          /* of the second tensor (0: Q8_0 = 8) */
    uint64_t offset;        /* of the second tensor (0: 64) */
    const char *name2;      /* second tensor's name (NULL: "b") */
    const char *key3;       /* third key (NULL: "general.name") */
    uint32_t alignment;     /* 0: 32 */
    int cut_data;           /* drop this many bytes from the end */
    uint64_t a_ne;          /* elements of the first tensor (0: 8) */
} knobs;

static void nested(gbuf *b, int depth)
{
    if (depth == 0) {
        u32(b, 4), u64(b, 2), u32(b, 7), u32(b, 9); /* [7, 9] of uint32 */
        return;
    }
    u32(b, 9), u64(b, 1); /* an array of one array */
    nested(b, depth - 1);
}

static gbuf build_gguf(knobs k)
{
    gbuf b = {0};
    put(&b, "GGUF", 4);
    u32(&b, k.version ? k.version : 3);
    u64(&b, k.n_tensors ? k.n_tensors : 2);
    u64(&b, k.n_kv ? k.n_kv : 4);
    str(&b, "general.alignment"), u32(&b, 4), u32(&b, k.alignment ? k.alignment : 32);
    str(&b, "general.architecture"), u32(&b, 8), str(&b, "tiny");
    str(&b, k.key3 ? k.key3 : "general.name"), u32(&b, 8), str(&b, "test");
    str(&b, "nested"), u32(&b, 9);
    int depth = k.nest ? k.nest : 2; /* array (depth 0 holds scalars) */
    if (depth > 0)
        u32(&b, 9), u64(&b, 1), nested(&b, depth - 1);
    else
        nested(&b, 0);
    /* tensor a: F32, ne [8], offset 0 */
    str(&b, "a"), u32(&b, 1), u64(&b, k.a_ne ? k.a_ne : 8), u32(&b, 0), u64(&b, 0);
    /* tensor b: Q8_0, ne [32, 2] = shape [2, 32], offset 64 */
    const char *n2 = k.name2 ? k.name2 : "b";
    u64(&b, k.name_len ? k.name_len : strlen(n2)), put(&b, n2, strlen(n2));
    uint32_t nd = k.n_dims ? k.n_dims : 2;
    u32(&b, nd);
    for (uint32_t i = 0; i < nd; i++)
        u64(&b, i == 0 ? (k.ne0 ? k.ne0 : 32) : i == 1 ? (k.ne1 ? k.ne1 : 2) : 1);
    u32(&b, k.type ? k.type : 8);
    u64(&b, k.offset ? k.offset : 64);
    while (b.n % 32)
        put(&b, "", 1);
    float a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    put(&b, a, sizeof a);
    static const uint8_t zero[64];
    put(&b, zero, 32); /* pad to 64 */
    float x[64];
    for (int i = 0; i < 64; i++)
        x[i] = (float)(i - 20) / 8;
    uint8_t q[68];
    vkd_quantize_row(VKD_Q8_0, x, q, 64);
    put(&b, q, 68);
    if (k.cut_data)
        b.n -= (size_t)k.cut_data;
    return b;
}

static vkd_result open_buf(gbuf b)
{
    vkd_st_file *f = NULL;
    vkd_result r = vkd_st_open_memory(b.p, b.n, "case", &f);
    vkd_st_close(f);
    free(b.p);
    return r;
}

static void test_valid_file_reads_back(void)
{
    gbuf b = build_gguf((knobs){0});
    vkd_st_file *f = NULL;
    TEST_CHECK(vkd_st_open_memory(b.p, b.n, "valid", &f) == VKD_OK, "the valid file opens");
    if (f) {
        TEST_CHECK(!strcmp(vkd_st_format(f), "GGUF v3"), "format '%s'", vkd_st_format(f));
        const vkd_st_tensor *a = vkd_st_find(f, "a"), *t = vkd_st_find(f, "b");
        TEST_CHECK(a && a->dtype == VKD_ST_F32 && a->rank == 1 && a->shape[0] == 8, "a: F32 [8]");
        TEST_CHECK(t && t->dtype == VKD_ST_Q8_0 && t->rank == 2 && t->shape[0] == 2 && t->shape[1] == 32 &&
                       t->nelem == 64 && t->nbytes == 68,
                   "b: Q8_0 ne [32, 2] reads as shape [2, 32], 68 bytes");
        float y[64], part[32];
        TEST_CHECK(t && vkd_st_tensor_to_f32(t, y) == VKD_OK && fabsf(y[63] - 43.0f / 8) < 0.05f, "b dequantizes");
        TEST_CHECK(t && vkd_st_convert_f32(t->dtype, t->data, 32, 32, part) == VKD_OK && !memcmp(part, y + 32, 128),
                   "a row on a block boundary converts alone");
        TEST_CHECK(t && vkd_st_convert_f32(t->dtype, t->data, 16, 32, part) == VKD_ERR_UNSUPPORTED,
                   "a slice off the block boundary is refused");
        uint16_t h[64];
        TEST_CHECK(t && vkd_st_tensor_to_f16(t, h) == VKD_OK && h[63] == vkd_f32_to_f16(y[63]), "b to f16");
        const char *al = vkd_st_metadata(f, "general.alignment"), *nm = vkd_st_metadata(f, "general.name"),
                   *ns = vkd_st_metadata(f, "nested");
        TEST_CHECK(al && !strcmp(al, "32") && nm && !strcmp(nm, "test") && ns && !strcmp(ns, "[1 items of array]"),
                   "metadata as strings: '%s' '%s' '%s'", al ? al : "-", nm ? nm : "-", ns ? ns : "-");
        vkd_st_close(f);
    }
    free(b.p);
}

static void test_damaged_files_are_refused(void)
{
    static const struct { const char *what; knobs k; int unsupported; } cases[] = {
        {"version 1", {.version = 1}, 1},
        {"version 99", {.version = 99}, 1},
        {"2^40 tensors", {.n_tensors = 1ull << 40}, 0},
        {"2^60 key/values", {.n_kv = 1ull << 60}, 0},
        {"one tensor too many", {.n_tensors = 3}, 0},
        {"a name length past the end", {.name_len = 1ull << 50}, 0},
        {"arrays nested 4 deep", {.nest = 4}, 0},
        {"n_dims 5", {.n_dims = 5}, 0},
        {"ne 0", {.ne1 = 0xffffffffffffffffull}, 0},
        {"ne product overflows", {.ne0 = 1ull << 40, .ne1 = 1ull << 30}, 0},
        {"ne[0] not whole blocks", {.ne0 = 48}, 0},
        {"unaligned offset", {.offset = 48}, 0},
        {"overlapping tensors", {.a_ne = 24}, 0},
        {"data past the end", {.offset = 96}, 0},
        {"duplicate names", {.name2 = "a"}, 0},
        {"duplicate keys", {.key3 = "general.architecture"}, 0},
        {"alignment 3", {.alignment = 3}, 0},
        {"unknown type (IQ2_XXS)", {.type = 16}, 1},
        {"type 1000", {.type = 1000}, 1},
        {"name not UTF-8", {.name2 = "\xff\xfe"}, 0},
        {"data cut short", {.cut_data = 1}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vkd_result want = cases[i].unsupported ? VKD_ERR_UNSUPPORTED : VKD_ERR_FORMAT;
        knobs k = cases[i].k;
        if (k.ne1 == 0xffffffffffffffffull) /* "ne 0": a zero, which the knob cannot say */
            k.ne1 = 0, k.n_dims = 2;
        gbuf b = build_gguf(k);
        if (cases[i].k.ne1 == 0xffffffffffffffffull) { /* patch ne[1] of tensor b to 0 */
            for (size_t p = 0; p + 16 <= b.n; p++)
                if (!memcmp(b.p + p, "\x01\0\0\0\0\0\0\0b\x02\0\0\0", 13)) {
                    memset(b.p + p + 13 + 8, 0, 8);
                    break;
                }
        }
        vkd_result r = open_buf(b);
        TEST_CHECK(r == want, "%s: got %d, want %d", cases[i].what, (int)r, (int)want);
    }
    /* bad magic: not GGUF, so the safetensors reader refuses it */
    gbuf b = build_gguf((knobs){0});
    b.p[3] = 'X';
    TEST_CHECK(open_buf(b) == VKD_ERR_FORMAT, "bad magic");
    /* truncated at every byte */
    b = build_gguf((knobs){0});
    int bad = 0;
    for (size_t n = 0; n < b.n; n++) {
        uint8_t *cut = malloc(n + 1);
        memcpy(cut, b.p, n);
        vkd_st_file *f = NULL;
        vkd_result r = vkd_st_open_memory(cut, n, "cut", &f);
        if (r != VKD_ERR_FORMAT && bad++ < 3)
            fprintf(stderr, "  truncated to %zu bytes: %d\n", n, (int)r);
        vkd_st_close(f);
        free(cut);
    }
    TEST_CHECK(bad == 0, "%d truncations not refused as FORMAT", bad);
    free(b.p);
}

/* The fuzz seeds (tools/fuzz_seeds.py; GGUF without its magic) are valid files: every
 * tensor type vkdiff reads, BF16 and Q2_K/Q3_K/Q5_K included, opens and converts. */
static void test_fuzz_seeds_open(void)
{
    static const char *const seeds[] = {"every_type.gguf", "sd_names_q8_0.gguf", "v2_align64.gguf", "empty.gguf"};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tests/fuzz_corpus/gguf/%s", seeds[i]);
        size_t n = 0;
        char *raw = test_read_file(test_source_path(rel), &n);
        TEST_CHECK(raw != NULL, "read %s", rel);
        if (!raw)
            continue;
        uint8_t *buf = malloc(n + 4);
        memcpy(buf, "GGUF", 4);
        memcpy(buf + 4, raw, n);
        vkd_st_file *f = NULL;
        TEST_CHECK(vkd_st_open_memory(buf, n + 4, seeds[i], &f) == VKD_OK, "seed %s opens", seeds[i]);
        size_t converted = 0;
        for (size_t k = 0; f && k < vkd_st_count(f); k++) {
            const vkd_st_tensor *t = vkd_st_at(f, k);
            float *y = malloc(t->nelem * sizeof *y);
            uint16_t *h = malloc(t->nelem * sizeof *h);
            converted += vkd_st_tensor_to_f32(t, y) == VKD_OK && vkd_st_tensor_to_f16(t, h) == VKD_OK;
            free(y);
            free(h);
        }
        TEST_CHECK(f && converted == vkd_st_count(f), "%s: %zu of %zu tensors convert", seeds[i], converted,
                   vkd_st_count(f));
        if (!strcmp(seeds[i], "every_type.gguf"))
            TEST_CHECK(vkd_st_count(f) == 13, "every type: %zu tensors", vkd_st_count(f));
        vkd_st_close(f);
        free(buf);
        free(raw);
    }
}

static void quiet(vkd_log_level l, const char *m, void *u)
{
    (void)l, (void)u;
    if (getenv("VKD_TEST_VERBOSE"))
        fprintf(stderr, "  log: %s\n", m);
}

int main(void)
{
    vkd_log_set(quiet, NULL, VKD_LOG_DEBUG);
    test_valid_file_reads_back();
    test_damaged_files_are_refused();
    test_fuzz_seeds_open();
    static const struct { const char *type; vkd_st_dtype dt; } sd1[] = {
        {"f16", VKD_ST_F16},   {"q8_0", VKD_ST_Q8_0}, {"q4_0", VKD_ST_Q4_0},
        {"q4_1", VKD_ST_Q4_1}, {"q5_0", VKD_ST_Q5_0}, {"q5_1", VKD_ST_Q5_1},
    };
    for (size_t i = 0; i < sizeof sd1 / sizeof sd1[0]; i++)
        check_converted("tiny-sd1.safetensors", sd1[i].type, sd1[i].dt, 0);
    check_converted("tiny-sd2.safetensors", "q8_0", VKD_ST_Q8_0, 0);  /* OpenCLIP: in_proj slices, text_projection */
    check_converted("tiny-sdxl.safetensors", "q4_k", VKD_ST_Q4_K, 0); /* 256-wide rows exist only here */
    check_converted("tiny-sdxl.safetensors", "q6_k", VKD_ST_Q6_K, 0);
    /* sd.cpp's --convert-name text-encoder names (docs/gguf.md) map to the same internal names */
    check_converted("tiny-sd1.safetensors", "q8_0", VKD_ST_Q8_0, 1);
    check_converted("tiny-sd2.safetensors", "q8_0", VKD_ST_Q8_0, 1);
    check_converted("tiny-sdxl.safetensors", "q8_0", VKD_ST_Q8_0, 1);
    return test_finish();
}
