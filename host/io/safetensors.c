/* safetensors reader; see safetensors.h. Only POSIX open/fstat/mmap so that Bionic
 * (Android) builds it too. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise(MADV_DONTNEED): Linux and Bionic */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "io/quant.h"
#include "io/tensor_file_impl.h"

/* The data section is read in place: tensors are little-endian on disk, and so must be
 * the host (every GPU host vkdiff targets is). */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vkdiff reads safetensors in place and needs a little-endian host"
#endif

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ---- dtypes ----------------------------------------------------------------- */

static const struct { const char *name; size_t size; int is_float; } dtype_info[VKD_ST_COUNT] = {
    [VKD_ST_F32] = {"F32", 4, 1},       [VKD_ST_F16] = {"F16", 2, 1},
    [VKD_ST_BF16] = {"BF16", 2, 1},     [VKD_ST_F8_E4M3] = {"F8_E4M3", 1, 1},
    [VKD_ST_F8_E5M2] = {"F8_E5M2", 1, 1}, [VKD_ST_F64] = {"F64", 8, 1},
    [VKD_ST_I64] = {"I64", 8, 0},       [VKD_ST_I32] = {"I32", 4, 0},
    [VKD_ST_I16] = {"I16", 2, 0},       [VKD_ST_I8] = {"I8", 1, 0},
    [VKD_ST_U64] = {"U64", 8, 0},       [VKD_ST_U32] = {"U32", 4, 0},
    [VKD_ST_U16] = {"U16", 2, 0},       [VKD_ST_U8] = {"U8", 1, 0},
    [VKD_ST_BOOL] = {"BOOL", 1, 0},
    /* GGUF's block-quantized types (size: bytes per block, see block_info) */
    [VKD_ST_Q4_0] = {"Q4_0", 18, 1}, [VKD_ST_Q4_1] = {"Q4_1", 20, 1}, [VKD_ST_Q5_0] = {"Q5_0", 22, 1},
    [VKD_ST_Q5_1] = {"Q5_1", 24, 1}, [VKD_ST_Q8_0] = {"Q8_0", 34, 1}, [VKD_ST_Q2_K] = {"Q2_K", 84, 1},
    [VKD_ST_Q3_K] = {"Q3_K", 110, 1}, [VKD_ST_Q4_K] = {"Q4_K", 144, 1}, [VKD_ST_Q5_K] = {"Q5_K", 176, 1},
    [VKD_ST_Q6_K] = {"Q6_K", 210, 1},
};

const char *vkd_st_dtype_name(vkd_st_dtype t) { return (unsigned)t < VKD_ST_COUNT ? dtype_info[t].name : "?"; }
size_t vkd_st_dtype_size(vkd_st_dtype t) { return vkd_st_dtype_is_quantized(t) ? 0 : vkd_st_dtype_block_bytes(t); }
int vkd_st_dtype_is_float(vkd_st_dtype t) { return (unsigned)t < VKD_ST_COUNT && dtype_info[t].is_float; }
int vkd_st_dtype_is_quantized(vkd_st_dtype t) { return t >= VKD_ST_Q4_0 && t < VKD_ST_COUNT; }
size_t vkd_st_dtype_block(vkd_st_dtype t)
{
    if (vkd_st_dtype_is_quantized(t))
        return vkd_qtype_block((vkd_qtype)(t - VKD_ST_Q4_0));
    return (unsigned)t < VKD_ST_COUNT ? 1 : 0;
}
size_t vkd_st_dtype_block_bytes(vkd_st_dtype t) { return (unsigned)t < VKD_ST_COUNT ? dtype_info[t].size : 0; }

/* safetensors dtypes only: a "Q4_0" in a JSON header is not a safetensors dtype */
static int dtype_parse(const char *s, vkd_st_dtype *out)
{
    for (int i = 0; i < VKD_ST_Q4_0; i++)
        if (strcmp(s, dtype_info[i].name) == 0) {
            *out = (vkd_st_dtype)i;
            return 1;
        }
    return 0;
}

/* ---- element conversions ---------------------------------------------------- */

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float vkd_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)
        return f32_from_bits(sign | 0x7f800000u | (man << 13)); /* inf, NaN keeps payload */
    if (exp == 0) {
        float v = ldexpf((float)man, -24); /* subnormal (or zero): man * 2^-24, exact */
        return sign ? -v : v;
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t vkd_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t exp = (u >> 23) & 0xff, man = u & 0x7fffff;
    if (exp == 0xff) /* inf stays inf; NaN stays a quiet NaN */
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f)
        return (uint16_t)(sign | 0x7c00);
    if (e <= 0) { /* subnormal half or zero: shift the full mantissa, round to nearest even */
        if (e < -10)
            return sign;
        uint32_t m = man | 0x800000;
        int shift = 14 - e;
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
        half++; /* may carry into the exponent, up to inf: still correct */
    return (uint16_t)(sign | half);
}

float vkd_bf16_to_f32(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }

/* OCP FP8 E4M3 ("fn"): bias 7, no infinities, S.1111.111 is NaN, max 448. */
float vkd_f8e4m3_to_f32(uint8_t v)
{
    int sign = v & 0x80, exp = (v >> 3) & 0xf, man = v & 7;
    float r;
    if (exp == 0xf && man == 7)
        r = NAN;
    else if (exp == 0)
        r = ldexpf((float)man, -9);
    else
        r = ldexpf((float)(8 + man), exp - 10);
    return sign ? -r : r;
}

/* E5M2 is the top byte of an IEEE half. */
float vkd_f8e5m2_to_f32(uint8_t v) { return vkd_f16_to_f32((uint16_t)(v << 8)); }

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

vkd_result vkd_st_convert_f32(vkd_st_dtype t, const void *src, size_t first, size_t n, float *dst)
{
    const uint8_t *p = (const uint8_t *)src;
    switch (t) {
    case VKD_ST_F32: memcpy(dst, p + first * 4, n * 4); break;
    case VKD_ST_F16: for (size_t i = 0; i < n; i++) dst[i] = vkd_f16_to_f32(rd16(p + (first + i) * 2)); break;
    case VKD_ST_BF16: for (size_t i = 0; i < n; i++) dst[i] = vkd_bf16_to_f32(rd16(p + (first + i) * 2)); break;
    case VKD_ST_F8_E4M3: for (size_t i = 0; i < n; i++) dst[i] = vkd_f8e4m3_to_f32(p[first + i]); break;
    case VKD_ST_F8_E5M2: for (size_t i = 0; i < n; i++) dst[i] = vkd_f8e5m2_to_f32(p[first + i]); break;
    case VKD_ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + (first + i) * 8, 8);
            dst[i] = (float)d;
        }
        break;
    default:
        if (vkd_st_dtype_is_quantized(t))
            return vkd_st_dequant_f32(t, src, first, n, dst);
        VKD_ERROR("dtype %s cannot be converted to f32 (only float dtypes are weights)", vkd_st_dtype_name(t));
        return VKD_ERR_UNSUPPORTED;
    }
    return VKD_OK;
}

vkd_result vkd_st_convert_f16(vkd_st_dtype t, const void *src, size_t first, size_t n, uint16_t *dst)
{
    const uint8_t *p = (const uint8_t *)src;
    switch (t) {
    case VKD_ST_F16: memcpy(dst, p + first * 2, n * 2); break;
    case VKD_ST_F8_E5M2: for (size_t i = 0; i < n; i++) dst[i] = (uint16_t)(p[first + i] << 8); break;
    case VKD_ST_F32:
        for (size_t i = 0; i < n; i++) {
            float f;
            memcpy(&f, p + (first + i) * 4, 4);
            dst[i] = vkd_f32_to_f16(f);
        }
        break;
    case VKD_ST_BF16:
    case VKD_ST_F8_E4M3:
    case VKD_ST_F64:
    case VKD_ST_Q4_0: case VKD_ST_Q4_1: case VKD_ST_Q5_0: case VKD_ST_Q5_1: case VKD_ST_Q8_0:
    case VKD_ST_Q2_K: case VKD_ST_Q3_K: case VKD_ST_Q4_K: case VKD_ST_Q5_K: case VKD_ST_Q6_K: {
        /* through f32, in chunks to keep the stack small (256: whole blocks of every
         * quantized type); E4M3 is exact (|x| <= 448, smallest subnormal 2^-9, both
         * representable in half). */
        float tmp[256];
        for (size_t i = 0; i < n; i += 256) {
            size_t m = n - i < 256 ? n - i : 256;
            vkd_result r = vkd_st_convert_f32(t, src, first + i, m, tmp);
            if (r)
                return r;
            for (size_t j = 0; j < m; j++)
                dst[i + j] = vkd_f32_to_f16(tmp[j]);
        }
        break;
    }
    default:
        VKD_ERROR("dtype %s cannot be converted to f16 (only float dtypes are weights)", vkd_st_dtype_name(t));
        return VKD_ERR_UNSUPPORTED;
    }
    return VKD_OK;
}

vkd_result vkd_st_tensor_to_f32(const vkd_st_tensor *t, float *dst)
{
    if (!t || (!dst && t->nelem))
        return VKD_ERR_INVALID_ARG;
    vkd_result r = vkd_st_convert_f32(t->dtype, t->data, 0, t->nelem, dst);
    if (r)
        VKD_ERROR("tensor '%s' is %s, not a float weight", t->name, vkd_st_dtype_name(t->dtype));
    return r;
}

vkd_result vkd_st_tensor_to_f16(const vkd_st_tensor *t, uint16_t *dst)
{
    if (!t || (!dst && t->nelem))
        return VKD_ERR_INVALID_ARG;
    vkd_result r = vkd_st_convert_f16(t->dtype, t->data, 0, t->nelem, dst);
    if (r)
        VKD_ERROR("tensor '%s' is %s, not a float weight", t->name, vkd_st_dtype_name(t->dtype));
    return r;
}

/* ---- validation helpers ----------------------------------------------------- */

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
int vkd_st_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07, min = 0x10000;
        else return 0;
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

/* A name made safe to print in a log line: printable ASCII only, cut at 96 chars. */
const char *vkd_st_printable(const char *s, char buf[128])
{
    size_t j = 0;
    for (size_t i = 0; s && s[i] && j < 96; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (s && strlen(s) > 96) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = 0;
    return buf;
}

/* JSON numbers are doubles: accept only exact non-negative integers up to 2^53. */
static int json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || d != floor(d))
        return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_offset(const void *a, const void *b)
{
    const vkd_st_tensor *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int cmp_name_ptr(const void *a, const void *b)
{
    return strcmp((*(const vkd_st_tensor *const *)a)->name, (*(const vkd_st_tensor *const *)b)->name);
}

/* ---- header parsing ----------------------------------------------------------- */

#define FAIL(code, ...)          \
    do {                         \
        VKD_ERROR(__VA_ARGS__);  \
        res = (code);            \
        goto fail;               \
    } while (0)

static vkd_result parse_tensor(vkd_st_file *f, const cJSON *item, vkd_st_tensor *t)
{
    vkd_result res = VKD_ERR_FORMAT;
    char pn[128];
    const char *L = f->label, *pname = vkd_st_printable(t->name, pn);
    if (!cJSON_IsObject(item))
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': header entry is not a JSON object", L, pname);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(jd) || !jd->valuestring)
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", L, pname);
    if (!dtype_parse(jd->valuestring, &t->dtype)) {
        char pd[128];
        FAIL(VKD_ERR_UNSUPPORTED, "%s: tensor '%s': dtype '%s' is not supported (weights may be F32, F16, BF16, F8_E4M3, F8_E5M2)",
             L, pname, vkd_st_printable(jd->valuestring, pd));
    }
    if (!cJSON_IsArray(js))
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", L, pname);
    int rank = cJSON_GetArraySize(js);
    if (rank > VKD_ST_MAX_RANK)
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': rank %d is over the limit of %d", L, pname, rank, VKD_ST_MAX_RANK);
    t->rank = rank;
    uint64_t nelem = 1;
    int k = 0;
    for (const cJSON *d = js->child; d; d = d->next, k++) {
        uint64_t dim;
        /* 2^40 per dimension is far beyond any weight and keeps products checkable */
        if (!json_u64(d, &dim) || dim > (1ull << 40))
            FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': shape dimension %d is %s (must be an integer in [0, 2^40])", L,
                 pname, k, cJSON_IsNumber(d) ? "out of range" : "not a number");
        t->shape[k] = (int64_t)dim;
        if (dim && nelem > (UINT64_MAX >> 4) / dim)
            FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': element count overflows", L, pname);
        nelem *= dim;
    }
    uint64_t nbytes = nelem * vkd_st_dtype_size(t->dtype); /* nelem < 2^60, size <= 8: no overflow */
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be an array [begin, end]", L, pname);
    uint64_t begin, end;
    if (!json_u64(jo->child, &begin) || !json_u64(jo->child->next, &end))
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': data_offsets are not non-negative integers", L, pname);
    if (begin > end)
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] are in the wrong order", L, pname,
             (unsigned long long)begin, (unsigned long long)end);
    if (end > f->data_size)
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': data [%llu, %llu) runs past the end of the data section (%llu bytes; file truncated?)",
             L, pname, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)f->data_size);
    if (end - begin != nbytes)
        FAIL(VKD_ERR_FORMAT, "%s: tensor '%s': data is %llu bytes but shape and dtype %s need %llu", L, pname,
             (unsigned long long)(end - begin), vkd_st_dtype_name(t->dtype), (unsigned long long)nbytes);
    /* end <= data_size <= size_t file size, so these fit in size_t */
    t->nelem = (size_t)nelem;
    t->nbytes = (size_t)nbytes;
    t->offset = begin;
    t->data = f->data + begin;
    t->mapped = f->map != NULL;
    return VKD_OK;
fail:
    return res;
}

static vkd_result parse_metadata(vkd_st_file *f, const cJSON *meta)
{
    vkd_result res = VKD_ERR_FORMAT;
    if (!cJSON_IsObject(meta))
        FAIL(VKD_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", f->label);
    size_t n = (size_t)cJSON_GetArraySize(meta);
    f->meta_k = calloc(n ? n : 1, sizeof(char *));
    f->meta_v = calloc(n ? n : 1, sizeof(char *));
    if (!f->meta_k || !f->meta_v)
        FAIL(VKD_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory reading metadata", f->label);
    for (const cJSON *m = meta->child; m; m = m->next) {
        if (!cJSON_IsString(m) || !m->valuestring || !m->string) {
            char pk[128];
            VKD_DEBUG("%s: metadata '%s' is not a string; ignored", f->label, vkd_st_printable(m->string, pk));
            continue;
        }
        f->meta_k[f->n_meta] = strdup(m->string);
        f->meta_v[f->n_meta] = strdup(m->valuestring);
        if (!f->meta_k[f->n_meta] || !f->meta_v[f->n_meta]) {
            f->n_meta++;
            FAIL(VKD_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory reading metadata", f->label);
        }
        f->n_meta++;
    }
    vkd_st_sort_metadata(f);
    return VKD_OK;
fail:
    return res;
}

void vkd_st_sort_metadata(vkd_st_file *f)
{
    /* insertion sort: metadata has a handful of entries (GGUF: a few dozen) */
    for (size_t i = 1; i < f->n_meta; i++)
        for (size_t j = i; j > 0 && strcmp(f->meta_k[j - 1], f->meta_k[j]) > 0; j--) {
            char *tk = f->meta_k[j], *tv = f->meta_v[j];
            f->meta_k[j] = f->meta_k[j - 1], f->meta_v[j] = f->meta_v[j - 1];
            f->meta_k[j - 1] = tk, f->meta_v[j - 1] = tv;
        }
}

static int looks_like_pickle(const uint8_t *p, size_t size)
{
    if (size >= 4 && p[0] == 'P' && p[1] == 'K' && p[2] == 3 && p[3] == 4)
        return 1; /* torch >= 1.6 zip container */
    /* pickle PROTO opcode; a safetensors header whose length starts 0x80 0x02..0x05
     * still has '{' at byte 8 */
    if (size >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5 && !(size > 8 && p[8] == '{'))
        return 1;
    return 0;
}

static void pickle_message(const char *label)
{
    VKD_ERROR("%s is a PyTorch pickle checkpoint (.ckpt/.pt/.pth/.bin). vkdiff does not load pickles: "
              "unpickling can run arbitrary code. Convert it once, in a Python environment you trust, to "
              ".safetensors, e.g.: python3 -c \"import torch,sys; from safetensors.torch import save_file; "
              "sd=torch.load(sys.argv[1],map_location='cpu',weights_only=True); sd=sd.get('state_dict',sd); "
              "save_file({k:v.contiguous().clone() for k,v in sd.items() if torch.is_tensor(v)}, sys.argv[1]+'.safetensors')\" %s",
              label, label);
}

/* Validates f->base/f->size (already set) and fills tensors and metadata. */
static vkd_result parse_file(vkd_st_file *f)
{
    vkd_result res = VKD_ERR_FORMAT;
    cJSON *root = NULL;
    const char *L = f->label;
    if (!host_is_little_endian())
        FAIL(VKD_ERR_UNSUPPORTED, "%s: safetensors data is little-endian and this host is not", L);
    if (vkd_gguf_is(f->base, f->size))
        return vkd_gguf_parse(f);
    snprintf(f->format, sizeof f->format, "safetensors");
    if (looks_like_pickle(f->base, f->size)) {
        pickle_message(L);
        res = VKD_ERR_UNSUPPORTED;
        goto fail;
    }
    if (f->size < 8)
        FAIL(VKD_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header", L, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | f->base[i];
    if (hlen > VKD_ST_MAX_HEADER)
        FAIL(VKD_ERR_FORMAT, "%s: header length %llu bytes is over the %u-byte limit (not a safetensors file, or damaged)",
             L, (unsigned long long)hlen, (unsigned)VKD_ST_MAX_HEADER);
    if (hlen > f->size - 8)
        FAIL(VKD_ERR_FORMAT, "%s: header length %llu runs past the end of the %zu-byte file (truncated?)", L,
             (unsigned long long)hlen, f->size);
    if (hlen < 2 || f->base[8] != '{')
        FAIL(VKD_ERR_FORMAT, "%s: header does not start with a JSON object (not a safetensors file)", L);
    const char *hdr = (const char *)f->base + 8, *end = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root || !cJSON_IsObject(root))
        FAIL(VKD_ERR_FORMAT, "%s: header is not valid JSON (error near header byte %lld)", L,
             end ? (long long)(end - hdr) : -1LL);
    for (const char *p = end; p < hdr + hlen; p++) /* writers pad the header with spaces */
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0)
            FAIL(VKD_ERR_FORMAT, "%s: junk after the JSON header at header byte %lld", L, (long long)(p - hdr));
    f->data = f->base + 8 + hlen;
    f->data_size = f->size - 8 - hlen;

    size_t n = 0;
    int have_meta = 0;
    for (const cJSON *c = root->child; c; c = c->next)
        n += !(c->string && strcmp(c->string, "__metadata__") == 0);
    f->t = calloc(n ? n : 1, sizeof *f->t);
    f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
    if (!f->t || !f->by_name)
        FAIL(VKD_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory for %zu tensor entries", L, n);
    for (const cJSON *c = root->child; c; c = c->next) {
        char pn[128];
        if (!c->string)
            FAIL(VKD_ERR_FORMAT, "%s: header entry without a name", L);
        if (strcmp(c->string, "__metadata__") == 0) {
            if (have_meta++)
                FAIL(VKD_ERR_FORMAT, "%s: \"__metadata__\" appears twice", L);
            if ((res = parse_metadata(f, c)))
                goto fail;
            continue;
        }
        size_t len = strlen(c->string);
        if (len == 0 || len > VKD_ST_MAX_NAME)
            FAIL(VKD_ERR_FORMAT, "%s: tensor name '%s' has length %zu (must be 1..%d bytes)", L, vkd_st_printable(c->string, pn),
                 len, VKD_ST_MAX_NAME);
        if (!vkd_st_utf8_valid((const unsigned char *)c->string, len))
            FAIL(VKD_ERR_FORMAT, "%s: tensor name '%s' is not valid UTF-8", L, vkd_st_printable(c->string, pn));
        vkd_st_tensor *t = &f->t[f->n];
        if (!(t->name = strdup(c->string)))
            FAIL(VKD_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", L);
        f->n++;
        if ((res = parse_tensor(f, c, t)))
            goto fail;
    }
    cJSON_Delete(root);
    root = NULL;
    return vkd_st_finish_tensors(f);
fail:
    cJSON_Delete(root);
    return res;
}

vkd_result vkd_st_finish_tensors(vkd_st_file *f)
{
    vkd_result res = VKD_ERR_FORMAT;
    const char *L = f->label;
    /* Names unique: sort pointers by name and compare neighbours. */
    for (size_t i = 0; i < f->n; i++)
        f->by_name[i] = &f->t[i];
    qsort(f->by_name, f->n, sizeof *f->by_name, cmp_name_ptr);
    for (size_t i = 1; i < f->n; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0) {
            char pn[128];
            FAIL(VKD_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", L, vkd_st_printable(f->by_name[i]->name, pn));
        }
    /* No two tensors share bytes: sort by offset (by_name must be rebuilt afterwards). */
    qsort(f->t, f->n, sizeof *f->t, cmp_offset);
    uint64_t prev_end = 0;
    const vkd_st_tensor *prev = NULL;
    for (size_t i = 0; i < f->n; i++) {
        const vkd_st_tensor *t = &f->t[i];
        if (t->nbytes == 0)
            continue;
        if (prev && t->offset < prev_end) {
            char pa[128], pb[128];
            FAIL(VKD_ERR_FORMAT, "%s: tensor '%s' [%llu, %llu) overlaps tensor '%s' (ends at %llu)", L,
                 vkd_st_printable(t->name, pa), (unsigned long long)t->offset, (unsigned long long)(t->offset + t->nbytes),
                 vkd_st_printable(prev->name, pb), (unsigned long long)prev_end);
        }
        if (t->offset > prev_end)
            VKD_DEBUG("%s: %llu unused bytes before tensor '%s'", L, (unsigned long long)(t->offset - prev_end), t->name);
        prev = t;
        prev_end = t->offset + t->nbytes;
    }
    for (size_t i = 0; i < f->n; i++)
        f->by_name[i] = &f->t[i];
    qsort(f->by_name, f->n, sizeof *f->by_name, cmp_name_ptr);
    return VKD_OK;
fail:
    return res;
}

/* ---- open / close ------------------------------------------------------------ */

static vkd_st_file *file_new(const char *label)
{
    vkd_st_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    if (!(f->label = strdup(label ? label : "(memory)"))) {
        free(f);
        return NULL;
    }
    return f;
}

void vkd_st_close(vkd_st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free((char *)f->t[i].name);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_k[i]);
        free(f->meta_v[i]);
    }
    free(f->meta_k);
    free(f->meta_v);
    free(f->t);
    free(f->by_name);
    if (f->map)
        munmap(f->map, f->map_len);
    free(f->label);
    free(f);
}

vkd_result vkd_st_open_memory(const void *data, size_t size, const char *label, vkd_st_file **out)
{
    if (!out || (!data && size))
        return VKD_ERR_INVALID_ARG;
    *out = NULL;
    vkd_st_file *f = file_new(label);
    if (!f)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    static const uint8_t empty[1];
    f->base = data ? data : empty;
    f->size = size;
    vkd_result r = parse_file(f);
    if (r) {
        vkd_st_close(f);
        return r;
    }
    *out = f;
    return VKD_OK;
}

static vkd_result map_fd(vkd_st_file *f, int fd, uint64_t offset, uint64_t length)
{
    if (length > SIZE_MAX - 65536)
        return VKD_ERR_TOO_LARGE;
    if (length == 0) { /* mmap refuses 0 bytes; parse_file reports the short file */
        static const uint8_t empty[1];
        f->base = empty;
        f->size = 0;
        return VKD_OK;
    }
    long page = sysconf(_SC_PAGESIZE);
    uint64_t pg = page > 0 ? (uint64_t)page : 4096;
    uint64_t start = offset - offset % pg;
    size_t len = (size_t)(length + (offset - start));
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, (off_t)start);
    if (m == MAP_FAILED)
        return VKD_ERR_IO;
    f->map = m;
    f->map_len = len;
    f->base = (const uint8_t *)m + (offset - start);
    f->size = (size_t)length;
    return VKD_OK;
}

void vkd_st_tensor_drop_pages(const vkd_st_tensor *t)
{
#ifdef MADV_DONTNEED
    if (!t || !t->mapped || !t->nbytes)
        return;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t pg = page > 0 ? (uintptr_t)page : 4096;
    /* whole pages: the neighbours' bytes on the edge pages fault back in when read */
    uintptr_t a = (uintptr_t)t->data / pg * pg, b = ((uintptr_t)t->data + t->nbytes + pg - 1) / pg * pg;
    madvise((void *)a, b - a, MADV_DONTNEED);
#else
    (void)t;
#endif
}

vkd_result vkd_st_open_fd(int fd, uint64_t offset, size_t length, const char *label, vkd_st_file **out)
{
    if (!out || fd < 0)
        return VKD_ERR_INVALID_ARG;
    *out = NULL;
    vkd_st_file *f = file_new(label);
    if (!f)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result r = map_fd(f, fd, offset, length);
    if (r)
        VKD_ERROR("%s: cannot map %zu bytes at offset %llu: %s", f->label, length, (unsigned long long)offset,
                  strerror(errno));
    else
        r = parse_file(f);
    if (r) {
        vkd_st_close(f);
        return r;
    }
    *out = f;
    return VKD_OK;
}

static int has_pickle_extension(const char *path)
{
    static const char *const ext[] = {".ckpt", ".pt", ".pth", ".bin", ".pkl"};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t m = strlen(ext[i]);
        if (n >= m) {
            const char *s = path + n - m;
            size_t k = 0;
            while (k < m && (s[k] | 0x20) == ext[i][k])
                k++;
            if (k == m)
                return 1;
        }
    }
    return 0;
}

vkd_result vkd_st_open(const char *path, vkd_st_file **out)
{
    if (!out || !path)
        return VKD_ERR_INVALID_ARG;
    *out = NULL;
    if (has_pickle_extension(path)) {
        pickle_message(path);
        return VKD_ERR_UNSUPPORTED;
    }
    /* O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever; it is
     * refused below like any other file that is not a regular one */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        VKD_ERROR("%s: cannot open: %s", path, strerror(errno));
        return VKD_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        VKD_ERROR("%s: not a regular file (a FIFO, device or socket cannot be a model)", path);
        close(fd);
        return VKD_ERR_IO;
    }
    vkd_st_file *f = file_new(path);
    if (!f) {
        close(fd);
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    vkd_result r = map_fd(f, fd, 0, (uint64_t)st.st_size);
    if (r == VKD_ERR_TOO_LARGE)
        VKD_ERROR("%s: %lld bytes do not fit in this process's address space", path, (long long)st.st_size);
    else if (r)
        VKD_ERROR("%s: mmap failed: %s", path, strerror(errno));
    close(fd); /* the mapping keeps the file */
    if (!r)
        r = parse_file(f);
    if (r) {
        vkd_st_close(f);
        return r;
    }
    *out = f;
    return VKD_OK;
}

/* ---- queries ------------------------------------------------------------------ */

const char *vkd_st_label(const vkd_st_file *f) { return f ? f->label : ""; }
const char *vkd_st_format(const vkd_st_file *f) { return f ? f->format : ""; }
size_t vkd_st_count(const vkd_st_file *f) { return f ? f->n : 0; }
const vkd_st_tensor *vkd_st_at(const vkd_st_file *f, size_t i) { return f && i < f->n ? &f->t[i] : NULL; }

const vkd_st_tensor *vkd_st_find(const vkd_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->name, name);
        if (c == 0)
            return f->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t vkd_st_metadata_count(const vkd_st_file *f) { return f ? f->n_meta : 0; }

int vkd_st_metadata_at(const vkd_st_file *f, size_t i, const char **key, const char **value)
{
    if (!f || i >= f->n_meta)
        return 0;
    if (key)
        *key = f->meta_k[i];
    if (value)
        *value = f->meta_v[i];
    return 1;
}

const char *vkd_st_metadata(const vkd_st_file *f, const char *key)
{
    for (size_t i = 0; f && key && i < f->n_meta; i++)
        if (strcmp(f->meta_k[i], key) == 0)
            return f->meta_v[i];
    return NULL;
}
