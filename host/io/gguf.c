/* GGUF reader (ggml's docs/gguf.md), versions 2 and 3: builds the same vkd_st_file as
 * the safetensors reader, so the layouts and the loader read a GGUF file unchanged.
 *
 *   "GGUF" u32 version u64 n_tensors u64 n_kv
 *   n_kv x  { string key, u32 value_type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *   padding to general.alignment (default 32), then the data section; each offset is
 *   relative to it and a multiple of the alignment.
 *   string = u64 length + bytes (no terminator); array = u32 type, u64 count, items.
 *
 * The file is untrusted like a safetensors one: every count is checked against the
 * bytes left before anything is allocated, every string length and array length
 * against the end, nested arrays to a depth of VKD_GGUF_MAX_DEPTH, n_dims <= 4, each ne
 * in [1, 2^40] with a product that cannot overflow, ne[0] a whole number of blocks,
 * the type from a known list (others refused by name: "IQ2_XXS"), offsets aligned and
 * inside the file, names unique, no two tensors sharing bytes. Version 1 (u32 counts,
 * 2023) is refused. Shapes are returned row-major: ggml's ne[0] is the innermost
 * dimension, our last. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "io/quant.h"
#include "io/tensor_file_impl.h"

#define VKD_GGUF_MAX_DEPTH 3   /* an array of arrays of arrays of scalars, no deeper */
#define VKD_GGUF_MAX_DIMS 4    /* GGML_MAX_DIMS */
#define VKD_GGUF_DEFAULT_ALIGN 32

#define FAIL(code, ...)         \
    do {                        \
        VKD_ERROR(__VA_ARGS__); \
        res = (code);           \
        goto fail;              \
    } while (0)

int vkd_gguf_is(const uint8_t *p, size_t size) { return size >= 4 && memcmp(p, "GGUF", 4) == 0; }

/* ---- ggml types -------------------------------------------------------------------- */

/* ggml's type ids (ggml.h enum ggml_type); -1: a ggml type vkdiff does not read */
static const struct { const char *name; int dtype; } ggml_types[] = {
    [0] = {"F32", VKD_ST_F32},     [1] = {"F16", VKD_ST_F16},      [2] = {"Q4_0", VKD_ST_Q4_0},
    [3] = {"Q4_1", VKD_ST_Q4_1},   [4] = {"Q4_2", -1},             [5] = {"Q4_3", -1},
    [6] = {"Q5_0", VKD_ST_Q5_0},   [7] = {"Q5_1", VKD_ST_Q5_1},    [8] = {"Q8_0", VKD_ST_Q8_0},
    [9] = {"Q8_1", -1},            [10] = {"Q2_K", VKD_ST_Q2_K},   [11] = {"Q3_K", VKD_ST_Q3_K},
    [12] = {"Q4_K", VKD_ST_Q4_K},  [13] = {"Q5_K", VKD_ST_Q5_K},   [14] = {"Q6_K", VKD_ST_Q6_K},
    [15] = {"Q8_K", -1},           [16] = {"IQ2_XXS", -1},         [17] = {"IQ2_XS", -1},
    [18] = {"IQ3_XXS", -1},        [19] = {"IQ1_S", -1},           [20] = {"IQ4_NL", -1},
    [21] = {"IQ3_S", -1},          [22] = {"IQ2_S", -1},           [23] = {"IQ4_XS", -1},
    [24] = {"I8", VKD_ST_I8},      [25] = {"I16", VKD_ST_I16},     [26] = {"I32", VKD_ST_I32},
    [27] = {"I64", VKD_ST_I64},    [28] = {"F64", VKD_ST_F64},     [29] = {"IQ1_M", -1},
    [30] = {"BF16", VKD_ST_BF16},  [31] = {"Q4_0_4_4", -1},        [32] = {"Q4_0_4_8", -1},
    [33] = {"Q4_0_8_8", -1},       [34] = {"TQ1_0", -1},           [35] = {"TQ2_0", -1},
    [36] = {"IQ4_NL_4_4", -1},     [37] = {"IQ4_NL_4_8", -1},      [38] = {"IQ4_NL_8_8", -1},
    [39] = {"MXFP4", -1},
};
#define N_GGML_TYPES (sizeof ggml_types / sizeof ggml_types[0])

/* GGUF metadata value types (gguf.md) */
enum { T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STRING, T_ARRAY, T_U64, T_I64, T_F64, T_COUNT };
static const char *const kv_type_name[T_COUNT] = {"uint8", "int8",  "uint16", "int16",  "uint32", "int32", "float32",
                                                  "bool",  "string", "array", "uint64", "int64",  "float64"};
static const uint8_t kv_type_size[T_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* ---- a bounds-checked cursor --------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t pos, size;
    const char *label;
} cur;

static size_t left(const cur *c) { return c->size - c->pos; }

static int rd(cur *c, void *out, size_t n)
{
    if (left(c) < n)
        return 0;
    memcpy(out, c->p + c->pos, n); /* little-endian host (safetensors.c checks) */
    c->pos += n;
    return 1;
}

/* A string: u64 length, then that many bytes, which must be in the file. */
static int rd_str(cur *c, const char **s, uint64_t *len)
{
    if (!rd(c, len, 8) || *len > left(c))
        return 0;
    *s = (const char *)c->p + c->pos;
    c->pos += (size_t)*len;
    return 1;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* Skips one value of type `type` (reading strings and nested arrays), checking every
 * length against the bytes left. Returns 0 with a message when it runs off the end. */
static int skip_value(cur *c, uint32_t type, int depth, const char *key)
{
    if (type >= T_COUNT) {
        VKD_ERROR("%s: key '%s': value type %u is not a GGUF type", c->label, key, type);
        return 0;
    }
    if (type == T_STRING) {
        const char *s;
        uint64_t n;
        if (!rd_str(c, &s, &n)) {
            VKD_ERROR("%s: key '%s': a string runs past the end of the file (truncated?)", c->label, key);
            return 0;
        }
        return 1;
    }
    if (type == T_ARRAY) {
        uint32_t et;
        uint64_t n;
        if (depth >= VKD_GGUF_MAX_DEPTH) {
            VKD_ERROR("%s: key '%s': arrays nested deeper than %d", c->label, key, VKD_GGUF_MAX_DEPTH);
            return 0;
        }
        if (!rd(c, &et, 4) || !rd(c, &n, 8)) {
            VKD_ERROR("%s: key '%s': array header runs past the end of the file", c->label, key);
            return 0;
        }
        if (et >= T_COUNT) {
            VKD_ERROR("%s: key '%s': array of value type %u, not a GGUF type", c->label, key, et);
            return 0;
        }
        /* every item takes at least 1 byte (8 for strings, 12 for arrays): a count past
         * that is refused before looping over it */
        size_t min_item = et == T_STRING ? 8 : et == T_ARRAY ? 12 : kv_type_size[et];
        if (n > left(c) / min_item) {
            VKD_ERROR("%s: key '%s': array of %" PRIu64 " %s items runs past the end of the file", c->label, key, n,
                      kv_type_name[et]);
            return 0;
        }
        if (et != T_STRING && et != T_ARRAY) {
            c->pos += (size_t)n * min_item;
            return 1;
        }
        for (uint64_t i = 0; i < n; i++)
            if (!skip_value(c, et, depth + 1, key))
                return 0;
        return 1;
    }
    if (left(c) < kv_type_size[type]) {
        VKD_ERROR("%s: key '%s': value runs past the end of the file (truncated?)", c->label, key);
        return 0;
    }
    c->pos += kv_type_size[type];
    return 1;
}

/* The value at c (already checked by skip_value) as a string for vkd_st_metadata. */
static char *value_string(const uint8_t *p, uint32_t type)
{
    char buf[64];
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f; uint64_t u64;
            int64_t i64; double d; } v;
    memcpy(&v, p, type < T_COUNT && kv_type_size[type] ? kv_type_size[type] : 0);
    switch (type) {
    case T_U8: snprintf(buf, sizeof buf, "%u", (unsigned)v.u8); break;
    case T_I8: snprintf(buf, sizeof buf, "%d", (int)v.i8); break;
    case T_U16: snprintf(buf, sizeof buf, "%u", (unsigned)v.u16); break;
    case T_I16: snprintf(buf, sizeof buf, "%d", (int)v.i16); break;
    case T_U32: snprintf(buf, sizeof buf, "%" PRIu32, v.u32); break;
    case T_I32: snprintf(buf, sizeof buf, "%" PRId32, v.i32); break;
    case T_F32: snprintf(buf, sizeof buf, "%.9g", (double)v.f); break;
    case T_BOOL: snprintf(buf, sizeof buf, "%s", v.u8 ? "true" : "false"); break;
    case T_U64: snprintf(buf, sizeof buf, "%" PRIu64, v.u64); break;
    case T_I64: snprintf(buf, sizeof buf, "%" PRId64, v.i64); break;
    case T_F64: snprintf(buf, sizeof buf, "%.17g", v.d); break;
    case T_STRING: {
        uint64_t n;
        memcpy(&n, p, 8);
        if (!vkd_st_utf8_valid(p + 8, (size_t)n)) {
            snprintf(buf, sizeof buf, "(%" PRIu64 " bytes, not UTF-8)", n);
            break;
        }
        return dup_n((const char *)p + 8, (size_t)n);
    }
    case T_ARRAY: {
        uint32_t et;
        uint64_t n;
        memcpy(&et, p, 4);
        memcpy(&n, p + 4, 8);
        snprintf(buf, sizeof buf, "[%" PRIu64 " items of %s]", n, kv_type_name[et]);
        break;
    }
    default: snprintf(buf, sizeof buf, "?"); break;
    }
    return dup_n(buf, strlen(buf));
}

/* ---- header ---------------------------------------------------------------------------- */

static vkd_result parse_kv(vkd_st_file *f, cur *c, uint64_t n_kv, uint32_t *alignment)
{
    vkd_result res = VKD_ERR_FORMAT;
    const char *L = f->label;
    /* each pair takes at least 13 bytes (u64 key length, a 1-byte key, u32 type, a 1-byte
     * value): n_kv is checked against the bytes left before allocating for it */
    if (n_kv > left(c) / 13)
        FAIL(VKD_ERR_FORMAT, "%s: GGUF header claims %" PRIu64 " key/value pairs, more than the file can hold", L, n_kv);
    f->meta_k = calloc(n_kv ? (size_t)n_kv : 1, sizeof(char *));
    f->meta_v = calloc(n_kv ? (size_t)n_kv : 1, sizeof(char *));
    if (!f->meta_k || !f->meta_v)
        FAIL(VKD_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory for %" PRIu64 " key/value pairs", L, n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        const char *k;
        uint64_t klen;
        uint32_t type;
        char pk[128];
        if (!rd_str(c, &k, &klen))
            FAIL(VKD_ERR_FORMAT, "%s: key/value %" PRIu64 ": key runs past the end of the file (truncated?)", L, i);
        if (klen == 0 || klen > VKD_ST_MAX_NAME || !vkd_st_utf8_valid((const unsigned char *)k, (size_t)klen) ||
            memchr(k, 0, (size_t)klen))
            FAIL(VKD_ERR_FORMAT, "%s: key/value %" PRIu64 ": key of %" PRIu64 " bytes is empty, too long or not UTF-8", L,
                 i, klen);
        if (!(f->meta_k[f->n_meta] = dup_n(k, (size_t)klen)))
            FAIL(VKD_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", L);
        const char *key = vkd_st_printable(f->meta_k[f->n_meta], pk);
        f->n_meta++;
        if (!rd(c, &type, 4))
            FAIL(VKD_ERR_FORMAT, "%s: key '%s': type runs past the end of the file", L, key);
        size_t at = c->pos;
        if (!skip_value(c, type, 0, key))
            goto fail; /* res is VKD_ERR_FORMAT; skip_value said why */
        if (!(f->meta_v[f->n_meta - 1] = value_string(c->p + at, type)))
            FAIL(VKD_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", L);
        if (strcmp(f->meta_k[f->n_meta - 1], "general.alignment") == 0) {
            uint32_t a;
            if (type != T_U32)
                FAIL(VKD_ERR_FORMAT, "%s: general.alignment is a %s, not a uint32", L, kv_type_name[type]);
            memcpy(&a, c->p + at, 4);
            if (a == 0 || (a & (a - 1)))
                FAIL(VKD_ERR_FORMAT, "%s: general.alignment %u is not a power of two", L, a);
            *alignment = a;
        }
    }
    vkd_st_sort_metadata(f);
    for (size_t i = 1; i < f->n_meta; i++)
        if (strcmp(f->meta_k[i - 1], f->meta_k[i]) == 0) {
            char pk[128];
            FAIL(VKD_ERR_FORMAT, "%s: key '%s' appears twice", L, vkd_st_printable(f->meta_k[i], pk));
        }
    return VKD_OK;
fail:
    return res;
}

/* One tensor info; its offset is checked later, against the data section. */
static vkd_result parse_info(vkd_st_file *f, cur *c, vkd_st_tensor *t, uint64_t *offset)
{
    vkd_result res = VKD_ERR_FORMAT;
    const char *L = f->label, *s;
    uint64_t len;
    char pn[128];
    if (!rd_str(c, &s, &len))
        FAIL(VKD_ERR_FORMAT, "%s: tensor %zu: name runs past the end of the file (truncated?)", L, f->n);
    if (len == 0 || len > VKD_ST_MAX_NAME || !vkd_st_utf8_valid((const unsigned char *)s, (size_t)len) ||
        memchr(s, 0, (size_t)len))
        FAIL(VKD_ERR_FORMAT, "%s: tensor %zu: name of %" PRIu64 " bytes is empty, over %d bytes or not UTF-8", L, f->n,
             len, VKD_ST_MAX_NAME);
    if (!(t->name = dup_n(s, (size_t)len)))
        FAIL(VKD_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", L);
    f->n++;
    const char *pname = vkd_st_printable(t->name, pn);
    uint32_t n_dims, type;
    if (!rd(c, &n_dims, 4))
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': header runs past the end of the file", L, pname);
    if (n_dims < 1 || n_dims > VKD_GGUF_MAX_DIMS)
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': n_dims %u (must be 1..%d)", L, pname, n_dims, VKD_GGUF_MAX_DIMS);
    uint64_t ne[VKD_GGUF_MAX_DIMS], nelem = 1;
    for (uint32_t k = 0; k < n_dims; k++) {
        if (!rd(c, &ne[k], 8))
            FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': header runs past the end of the file", L, pname);
        /* 2^40 per dimension is far beyond any weight and keeps the product checkable */
        if (ne[k] == 0 || ne[k] > (1ull << 40))
            FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': ne[%u] = %" PRIu64 " (must be 1..2^40)", L, pname, k, ne[k]);
        if (nelem > (UINT64_MAX >> 4) / ne[k])
            FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': element count overflows", L, pname);
        nelem *= ne[k];
    }
    if (!rd(c, &type, 4) || !rd(c, offset, 8))
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': header runs past the end of the file", L, pname);
    if (type >= N_GGML_TYPES || !ggml_types[type].name)
        FAIL(VKD_ERR_UNSUPPORTED, "%s: tensor '%s': ggml type %u is unknown", L, pname, type);
    if (ggml_types[type].dtype < 0)
        FAIL(VKD_ERR_UNSUPPORTED,
             "%s: tensor '%s' is %s, a ggml type vkdiff does not read (it reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
             "Q5_0, Q5_1 and Q2_K..Q6_K; re-quantize the file to one of them)",
             L, pname, ggml_types[type].name);
    t->dtype = (vkd_st_dtype)ggml_types[type].dtype;
    size_t block = vkd_st_dtype_block(t->dtype);
    if (ne[0] % block)
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': rows of %" PRIu64 " values are not whole %s blocks of %zu", L, pname, ne[0],
             vkd_st_dtype_name(t->dtype), block);
    t->rank = (int)n_dims;
    for (uint32_t k = 0; k < n_dims; k++) /* ggml's ne[0] is the innermost: our last */
        t->shape[n_dims - 1 - k] = (int64_t)ne[k];
    t->nelem = (size_t)nelem; /* nelem < 2^60; checked against the file below */
    t->nbytes = (size_t)(nelem / block * vkd_st_dtype_block_bytes(t->dtype));
    if (nelem / block > UINT64_MAX / 256 || (uint64_t)t->nbytes != nelem / block * vkd_st_dtype_block_bytes(t->dtype) ||
        (uint64_t)t->nelem != nelem)
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': size does not fit in memory", L, pname);
    return VKD_OK;
fail:
    return res;
}

vkd_result vkd_gguf_parse(vkd_st_file *f)
{
    vkd_result res = VKD_ERR_FORMAT;
    const char *L = f->label;
    cur c = {f->base, 4, f->size, L};
    uint32_t version, alignment = VKD_GGUF_DEFAULT_ALIGN;
    uint64_t n_tensors, n_kv, *offsets = NULL;
    if (!rd(&c, &version, 4))
        FAIL(VKD_ERR_FORMAT, "%s: GGUF file is %zu bytes, too short for a header", L, f->size);
    if (version == 1)
        FAIL(VKD_ERR_UNSUPPORTED, "%s: GGUF version 1 (2023, 32-bit counts) is not supported; convert the file again "
                                  "with a current tool (stable-diffusion.cpp's convert writes version 3)", L);
    if (version != 2 && version != 3)
        FAIL(VKD_ERR_UNSUPPORTED, "%s: GGUF version %u is unknown (vkdiff reads versions 2 and 3)", L, version);
    snprintf(f->format, sizeof f->format, "GGUF v%u", version);
    if (!rd(&c, &n_tensors, 8) || !rd(&c, &n_kv, 8))
        FAIL(VKD_ERR_FORMAT, "%s: GGUF header is truncated", L);
    if ((res = parse_kv(f, &c, n_kv, &alignment)))
        goto fail;
    /* a tensor info is at least 8 + 1 + 4 + 8 + 4 + 8 = 33 bytes */
    if (n_tensors > left(&c) / 33)
        FAIL(VKD_ERR_FORMAT, "%s: GGUF header claims %" PRIu64 " tensors, more than the file can hold", L, n_tensors);
    size_t n = (size_t)n_tensors;
    f->t = calloc(n ? n : 1, sizeof *f->t);
    f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
    offsets = calloc(n ? n : 1, sizeof *offsets);
    if (!f->t || !f->by_name || !offsets)
        FAIL(VKD_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory for %zu tensor entries", L, n);
    for (size_t i = 0; i < n; i++)
        if ((res = parse_info(f, &c, &f->t[i], &offsets[i])))
            goto fail;
    /* the data section starts at the next multiple of the alignment */
    uint64_t start = ((uint64_t)c.pos + alignment - 1) / alignment * alignment;
    if (start > f->size) {
        if (n)
            FAIL(VKD_ERR_FORMAT, "%s: GGUF data section (at byte %" PRIu64 ") starts past the end of the %zu-byte file "
                                 "(truncated?)", L, start, f->size);
        start = f->size;
    }
    f->data = f->base + start;
    f->data_size = f->size - start;
    for (size_t i = 0; i < n; i++) {
        vkd_st_tensor *t = &f->t[i];
        char pn[128];
        if (offsets[i] % alignment)
            FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': offset %" PRIu64 " is not a multiple of the alignment %u", L,
                 vkd_st_printable(t->name, pn), offsets[i], alignment);
        if (offsets[i] > f->data_size || t->nbytes > f->data_size - offsets[i])
            FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': data [%" PRIu64 ", +%zu) runs past the end of the data section "
                                 "(%" PRIu64 " bytes; file truncated?)", L, vkd_st_printable(t->name, pn), offsets[i],
                 t->nbytes, f->data_size);
        t->offset = offsets[i];
        t->data = f->data + offsets[i];
        t->mapped = f->map != NULL;
    }
    free(offsets);
    return vkd_st_finish_tensors(f);
fail:
    free(offsets);
    return res;
}

/* ---- dequantization for vkd_st_convert_* --------------------------------------------- */

vkd_result vkd_st_dequant_f32(vkd_st_dtype t, const void *src, size_t first, size_t n, float *dst)
{
    size_t block = vkd_st_dtype_block(t), bytes = vkd_st_dtype_block_bytes(t);
    if (!vkd_st_dtype_is_quantized(t) || first % block || n % block) {
        VKD_ERROR("%s: elements [%zu, +%zu) do not start and end on a block boundary (%zu values)",
                  vkd_st_dtype_name(t), first, n, block);
        return VKD_ERR_UNSUPPORTED;
    }
    const uint8_t *p = (const uint8_t *)src + first / block * bytes;
    if (vkd_dequantize_row((vkd_qtype)(t - VKD_ST_Q4_0), p, dst, n))
        return VKD_ERR_UNSUPPORTED;
    return VKD_OK;
}
