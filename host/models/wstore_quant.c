/* Weights kept quantized in device memory (issue 25): which linear and conv weights, and
 * their blocks, uploaded on first use. A GGUF file's quantized tensors go up as the file's
 * bytes; with vkd_wstore_set_quant the store quantizes fp16 / fp32 checkpoints itself
 * (io/quant.c, ggml's block formats byte for byte). Either way a block row is one output
 * channel in the checkpoint's order ([Cout, Cin * kh * kw] for a conv kernel), and the
 * dequant kernel re-lays conv kernels as it writes them (ops/dequant.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/half.h"
#include "common/log.h"
#include "io/quant.h"
#include "models/wstore_impl.h"
#include "ops/dequant.h"

/* ggml's type number to io/quant.h's */
static int host_qtype(uint32_t ggml_type, vkd_qtype *out)
{
    static const struct { uint32_t ggml; vkd_qtype q; } map[] = {
        {2, VKD_Q4_0}, {3, VKD_Q4_1}, {6, VKD_Q5_0}, {7, VKD_Q5_1}, {8, VKD_Q8_0},
        {10, VKD_Q2_K}, {11, VKD_Q3_K}, {12, VKD_Q4_K}, {13, VKD_Q5_K}, {14, VKD_Q6_K},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].ggml == ggml_type) {
            *out = map[i].q;
            return 0;
        }
    return -1;
}

/* Rows quantized as stable-diffusion.cpp's convert does (ggml_quantize_chunk with an
 * importance matrix of ones: ggml's weighted quantizers, io/quant.h vkd_quantize_rows), so
 * --weight-type gives the blocks sd.cpp would write for the same rows. 0 or -1. */
static int quantize_like_sdcpp(vkd_qtype hq, const float *m, void *dst, int64_t rows, int64_t cols)
{
    float *ones = malloc((size_t)cols * sizeof *ones);
    if (!ones)
        return -1;
    for (int64_t i = 0; i < cols; i++)
        ones[i] = 1.0f;
    int r = vkd_quantize_rows(hq, m, dst, (size_t)rows, (size_t)cols, ones);
    free(ones);
    return r;
}

void vkd_wstore_set_quant(vkd_wstore *s, uint32_t ggml_type, const char *prefix)
{
    s->qtype = ggml_type;
    snprintf(s->qprefix, sizeof s->qprefix, "%s", prefix ? prefix : "");
}

/* The layers kept in the store's float precision when it quantizes (the practice of
 * stable-diffusion.cpp and llama.cpp, docs/gguf.md): the UNet's first conv (4 input
 * channels: rows of 36, and every image passes it) and its last (the output itself). */
static bool kept_float(const char *name)
{
    return strstr(name, "input_blocks.0.0.") || strstr(name, "diffusion_model.out.2.");
}

static int64_t row_elems(const vkd_wtensor *wt)
{
    return wt->rank >= 1 && wt->shape[0] > 0 ? (int64_t)wt->nelem / wt->shape[0] : 0;
}

/* a GGUF tensor's block dtype to ggml's type number (0: not a block type) */
static uint32_t st_ggml_type(vkd_st_dtype dt)
{
    static const struct { vkd_st_dtype st; uint32_t ggml; } map[] = {
        {VKD_ST_Q4_0, 2}, {VKD_ST_Q4_1, 3}, {VKD_ST_Q5_0, 6}, {VKD_ST_Q5_1, 7}, {VKD_ST_Q8_0, 8},
        {VKD_ST_Q2_K, 10}, {VKD_ST_Q3_K, 11}, {VKD_ST_Q4_K, 12}, {VKD_ST_Q5_K, 13}, {VKD_ST_Q6_K, 14},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].st == dt)
            return map[i].ggml;
    return 0;
}

/* the file's own block type when the kernel reads it and the bytes can go up as they are */
static uint32_t file_qtype(const vkd_wtensor *wt)
{
    uint32_t t = st_ggml_type(wt->src->dtype);
    const vkd_dequant_info *qt = t ? vkd_dequant_info_of(t) : NULL;
    if (!qt || (wt->flags & VKD_WT_TRANSPOSE) || wt->first % qt->block_elems)
        return 0;
    return t;
}

int vkd_wstore_quantized(vkd_wstore *s, const char *name, vkd_wkind kind, uint32_t *qtype)
{
    if (kind != VKD_W_LINEAR && kind != VKD_W_CONV)
        return 0;
    const vkd_wtensor *wt = vkd_weights_find(s->w, name);
    if (!wt || wt->rank < 2)
        return 0;
    uint32_t t = file_qtype(wt);
    if (!t && s->qtype && !strncmp(name, s->qprefix, strlen(s->qprefix)) && !kept_float(name))
        t = s->qtype;
    const vkd_dequant_info *qt = t ? vkd_dequant_info_of(t) : NULL;
    if (!qt || row_elems(wt) % qt->block_elems) /* rows must be whole blocks: else the float path */
        return 0;
    *qtype = t;
    /* the file's conv kernels keep ggml's [Cout, Cin, kh, kw] rows (the dequant kernel
     * re-lays them); the store's own are quantized already re-laid (build_blocks), which
     * lets the kernel write in order: 2x-5x faster on lavapipe than scattering */
    return kind == VKD_W_CONV && file_qtype(wt) == t ? 2 : 1;
}

uint64_t vkd_wstore_quant_bytes(vkd_wstore *s, const char *name)
{
    uint32_t t = 0;
    const vkd_wtensor *wt = vkd_weights_find(s->w, name);
    if (!wt || !vkd_wstore_quantized(s, name, VKD_W_LINEAR, &t))
        return 0;
    return 4 * (uint64_t)vkd_dequant_words(vkd_dequant_info_of(t), (int64_t)wt->nelem); /* padding included */
}

/* the blocks of wt as type t into a new F32 word tensor */
static vkd_result build_blocks(vkd_wstore *s, const vkd_wtensor *wt, vkd_wkind kind, uint32_t t, vkd_tensor *out)
{
    const vkd_dequant_info *qt = vkd_dequant_info_of(t);
    uint64_t bytes = vkd_dequant_bytes(qt, (int64_t)wt->nelem);
    int64_t words = vkd_dequant_words(qt, (int64_t)wt->nelem);
    vkd_result r = vkd_tensor_create(s->d, VKD_F32, 1, &words, out);
    if (r)
        return r;
    uint8_t *host = calloc((size_t)words, 4);
    float *f = NULL;
    if (!host) {
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
    } else if (file_qtype(wt) == t) { /* the file's bytes */
        memcpy(host, (const uint8_t *)wt->src->data + (uint64_t)(wt->first / qt->block_elems) * qt->block_bytes,
               bytes);
    } else if (!(f = malloc(wt->nelem * sizeof *f))) {
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
    } else if (!(r = vkd_wtensor_read_f32(wt, f))) {
        if (kind == VKD_W_CONV && wt->rank == 4) { /* [Cout, Cin, kh, kw] -> [Cout, kh, kw, Cin] */
            float *g = malloc(wt->nelem * sizeof *g);
            int64_t co = wt->shape[0], cin = wt->shape[1], taps = wt->shape[2] * wt->shape[3];
            if (!g) {
                free(f), free(host), vkd_tensor_destroy(s->d, out);
                return VKD_ERR_OUT_OF_HOST_MEMORY;
            }
            for (int64_t o = 0; o < co; o++)
                for (int64_t i = 0; i < cin; i++)
                    for (int64_t k = 0; k < taps; k++)
                        g[(o * taps + k) * cin + i] = f[(o * cin + i) * taps + k];
            free(f);
            f = g;
        }
        vkd_qtype hq;
        if (host_qtype(t, &hq) || !vkd_qtype_can_quantize(hq) || quantize_like_sdcpp(hq, f, host, wt->shape[0], row_elems(wt))) {
            VKD_ERROR("%s: cannot quantize to %s", wt->name, qt->name);
            r = VKD_ERR_UNSUPPORTED;
        }
    }
    if (!r)
        r = vkd_buffer_upload(s->d, &out->buf, out->offset, host, (VkDeviceSize)words * 4);
    free(f);
    free(host);
    if (r)
        vkd_tensor_destroy(s->d, out);
    return r;
}

const vkd_tensor *vkd_wstore_get_blocks(vkd_wstore *s, const char *name, vkd_wkind kind)
{
    uint32_t t = 0;
    if (!vkd_wstore_quantized(s, name, kind, &t)) {
        VKD_ERROR("%s: not a quantized weight", name);
        s->err = VKD_ERR_INTERNAL;
        return NULL;
    }
    if (s->deltas.get) { /* LoRA deltas are added to float weights on the device */
        s->err = vkd_ws_refuse_deltas(name);
        return NULL;
    }
    slot *sl = vkd_ws_find_slot(s, name, VKD_W_QBLOCKS);
    if (!sl) {
        s->err = VKD_ERR_INTERNAL;
        return NULL;
    }
    if (sl->name)
        return &sl->t;
    const vkd_wtensor *wt = vkd_weights_find(s->w, name);
    vkd_tensor blocks;
    vkd_result r = build_blocks(s, wt, kind, t, &blocks);
    vkd_st_tensor_drop_pages(wt->src);
    if (r) {
        VKD_ERROR("%s: upload of its %s blocks failed: %s", name, vkd_dequant_info_of(t)->name, vkd_result_str(r));
        s->err = r;
        return NULL;
    }
    const vkd_tensor *kept = vkd_ws_keep(s, sl, name, VKD_W_QBLOCKS, blocks);
    if (!kept)
        s->err = VKD_ERR_OUT_OF_HOST_MEMORY;
    return kept;
}

/* ---- stacked and layer-norm-folded linears ------------------------------------------ */

/* the store's own quantization applies to every one of these checkpoint tensors */
static int all_quantizable(vkd_wstore *s, int n, const char *const *names, const char *suffix, uint32_t *qtype)
{
    const vkd_dequant_info *qt = s->qtype ? vkd_dequant_info_of(s->qtype) : NULL;
    if (!qt || n < 1)
        return 0;
    for (int j = 0; j < n; j++) {
        char full[520];
        snprintf(full, sizeof full, "%s%s", names[j], suffix);
        const vkd_wtensor *wt = vkd_weights_find(s->w, full);
        if (!wt || wt->rank < 2 || strncmp(full, s->qprefix, strlen(s->qprefix)) || kept_float(full) ||
            row_elems(wt) % qt->block_elems)
            return 0;
    }
    *qtype = s->qtype;
    return 1;
}

int vkd_wstore_cat_quantized(vkd_wstore *s, int n, const char *const *names, uint32_t *qtype)
{
    return all_quantizable(s, n, names, "", qtype);
}

int vkd_wstore_ln_quantized(vkd_wstore *s, int n, const char *const *layers, uint32_t *qtype)
{
    return all_quantizable(s, n, layers, ".weight", qtype);
}

vkd_result vkd_ws_upload_blocks(vkd_wstore *s, uint32_t ggml_type, const float *m, int64_t rows, int64_t cols,
                                vkd_tensor *out)
{
    const vkd_dequant_info *qt = vkd_dequant_info_of(ggml_type);
    vkd_qtype hq;
    if (!qt || host_qtype(ggml_type, &hq) || !vkd_qtype_can_quantize(hq) || cols % qt->block_elems)
        return VKD_ERR_UNSUPPORTED;
    int64_t words = vkd_dequant_words(qt, rows * cols);
    uint8_t *host = calloc((size_t)words, 4);
    if (!host)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result r = VKD_ERR_UNSUPPORTED;
    if (!quantize_like_sdcpp(hq, m, host, rows, cols) &&
        !(r = vkd_tensor_create(s->d, VKD_F32, 1, &words, out)) &&
        (r = vkd_buffer_upload(s->d, &out->buf, out->offset, host, (VkDeviceSize)words * 4)))
        vkd_tensor_destroy(s->d, out);
    free(host);
    return r;
}

void vkd_ws_row_sums_dequantized(vkd_wstore *s, uint32_t ggml_type, const float *m, int64_t rows, int64_t cols,
                                 float *sc)
{
    const vkd_dequant_info *qt = vkd_dequant_info_of(ggml_type);
    vkd_qtype hq;
    size_t bb = vkd_dequant_bytes(qt, cols);
    uint8_t *blk = malloc(bb);
    float *v = malloc((size_t)cols * sizeof *v);
    if (!blk || !v || host_qtype(ggml_type, &hq)) {
        free(blk), free(v);
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        quantize_like_sdcpp(hq, m + r * cols, blk, 1, cols); /* one row's blocks, as uploaded */
        vkd_dequantize_row(hq, blk, v, (size_t)cols);
        double sum = 0;
        for (int64_t q = 0; q < cols; q++)
            sum += s->dt == VKD_F16 ? vkd_half_to_float(vkd_float_to_half(v[q])) : v[q];
        sc[r] = (float)sum;
    }
    free(blk), free(v);
}

vkd_result vkd_ws_refuse_deltas(const char *key)
{
    VKD_ERROR("%s: LoRA on quantized weights is not supported yet: load the model without --weight-type, "
              "or a float checkpoint", key);
    return VKD_ERR_UNSUPPORTED;
}
