/* Weight store: name -> device tensor, uploaded on first use. See wstore.h. */
#include "models/wstore.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "models/wstore_impl.h"
#include "ops/conv2d.h"
#include "ops/matmul.h"

#define HOST_KEEP (16u << 20) /* elements: 32 MiB */

/* Room for n fp16 values: s->host where n <= HOST_KEEP, else a buffer of its own that
 * host_f16_done frees. NULL when out of memory. */
static uint16_t *host_f16(vkd_wstore *s, size_t n)
{
    if (n > HOST_KEEP)
        return malloc(n * sizeof(uint16_t));
    if (n > s->host_cap) {
        uint16_t *h = realloc(s->host, n * sizeof *h);
        if (!h)
            return NULL;
        s->host = h, s->host_cap = n;
    }
    return s->host;
}

static void host_f16_done(vkd_wstore *s, uint16_t *h)
{
    if (h != s->host)
        free(h);
}

static uint64_t hash(const char *s, vkd_wkind k)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)k;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

vkd_result vkd_wstore_create(vkd_device *d, const vkd_weights *w, vkd_dtype dt, vkd_wstore **out)
{
    vkd_wstore *s = calloc(1, sizeof *s);
    if (!s)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    s->d = d;
    s->w = w;
    s->dt = dt;
    s->cap = 4096; /* an SD1 checkpoint has ~1,100 tensors; SDXL ~2,500 */
    s->slots = calloc(s->cap, sizeof *s->slots);
    if (!s->slots) {
        free(s);
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    *out = s;
    return VKD_OK;
}

void vkd_wstore_destroy(vkd_wstore *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->cap; i++)
        if (s->slots[i].name) {
            vkd_tensor_destroy(s->d, &s->slots[i].t);
            free(s->slots[i].name);
        }
    free(s->slots);
    free(s->host);
    vkd_cmd_destroy(s->cmd);
    free(s);
}

/* fp16 values into a new fp16 tensor of this shape */
static vkd_result create_f16(vkd_wstore *s, int nd, const int64_t *shape, const uint16_t *h, size_t n, vkd_tensor *out)
{
    vkd_result r = vkd_tensor_create(s->d, VKD_F16, nd, shape, out);
    if (!r && (r = vkd_buffer_upload(s->d, &out->buf, out->offset, h, (VkDeviceSize)n * 2)))
        vkd_tensor_destroy(s->d, out);
    return r;
}

/* An fp16 checkpoint into fp16 storage goes up as its bytes (a conv kernel re-laid), with
 * no round trip through fp32: two software conversions per weight were most of the
 * 6.9 s a 1.6 GB UNet took to set up on the H200 machine (BENCHMARKS.md). Other source
 * dtypes convert through fp32 as before. */
static bool direct_f16(const vkd_wstore *s, const vkd_wtensor *wt)
{
    return s->dt == VKD_F16 && wt->src->dtype == VKD_ST_F16;
}

/* An fp16 tensor of the file, as vkd_fill_fn wants it: bytes [at, at + len) of the
 * upload. A conv kernel [cout, cin, kh, kw] is written re-laid as [cout, kh, kw, cin]. */
typedef struct f16_source {
    const uint8_t *p; /* the tensor's first element in the mapping (not aligned) */
    bool conv;
    int64_t co, ci, kh, kw;
} f16_source;

static vkd_result fill_f16(void *dst, VkDeviceSize at, VkDeviceSize len, void *ctx)
{
    const f16_source *s = ctx;
    if (s->conv)
        vkd_conv2d_relay_f16(dst, (int64_t)(at / 2), (int64_t)(len / 2), s->p, s->co, s->ci, s->kh, s->kw);
    else
        memcpy(dst, s->p + at, len);
    return VKD_OK;
}

static vkd_result upload_from_file(vkd_wstore *s, const vkd_wtensor *wt, vkd_wkind kind, vkd_tensor *out)
{
    size_t n = wt->nelem;
    int64_t rows = wt->rank >= 1 ? wt->shape[0] : 1, cols = (int64_t)n / (rows ? rows : 1);
    if (kind == VKD_W_CONV && wt->rank != 4) {
        VKD_ERROR("%s: a conv kernel must have rank 4 (has %d)", wt->name, wt->rank);
        return VKD_ERR_FORMAT;
    }
    if (kind == VKD_W_LINEAR && wt->rank == 4 && (wt->shape[2] != 1 || wt->shape[3] != 1)) {
        VKD_ERROR("%s: a linear weight must be [out, in] or [out, in, 1, 1]", wt->name);
        return VKD_ERR_FORMAT;
    }
    int nd = wt->rank < 1 ? 1 : wt->rank;
    if (kind == VKD_W_RAW && nd > VKD_MAX_DIMS)
        return VKD_ERR_FORMAT;
    int64_t shape[VKD_MAX_DIMS];
    for (int i = 0; i < nd && i < VKD_MAX_DIMS; i++)
        shape[i] = wt->rank < 1 ? 1 : wt->shape[i];

    if (direct_f16(s, wt)) {
        int64_t ts[VKD_MAX_DIMS] = {rows, cols};
        int tnd = kind == VKD_W_LINEAR ? 2 : nd;
        if (kind == VKD_W_CONV) { /* re-laid [cout, kh, kw, cin], as vkd_conv2d_weight_upload */
            int64_t cs[4] = {wt->shape[0], wt->shape[2], wt->shape[3], wt->shape[1]};
            if (cs[0] <= 0 || cs[1] <= 0 || cs[2] <= 0 || cs[3] <= 0)
                return VKD_ERR_SHAPE;
            memcpy(ts, cs, sizeof cs);
        } else if (kind == VKD_W_RAW) {
            memcpy(ts, shape, sizeof ts);
        }
        vkd_result r = vkd_tensor_create(s->d, VKD_F16, tnd, ts, out);
        if (r)
            return r;
        if (wt->flags & VKD_WT_TRANSPOSE) { /* a [b, a] source: through a host copy read_f16 transposes */
            uint16_t *h = host_f16(s, n ? n : 1);
            r = !h ? VKD_ERR_OUT_OF_HOST_MEMORY : vkd_wtensor_read_f16(wt, h);
            if (!r)
                r = vkd_buffer_upload(s->d, &out->buf, out->offset, h, (VkDeviceSize)n * 2);
            host_f16_done(s, h);
        } else { /* from the file's mapping straight into device memory or the staging buffer */
            f16_source src = {(const uint8_t *)wt->src->data + wt->first * 2, kind == VKD_W_CONV, ts[0], ts[3],
                              ts[1], ts[2]};
            r = vkd_buffer_upload_fill(s->d, &out->buf, out->offset, (VkDeviceSize)n * 2, fill_f16, &src);
        }
        if (r)
            vkd_tensor_destroy(s->d, out);
        return r;
    }

    float *host = malloc(n * sizeof *host);
    if (!host)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result r = vkd_wtensor_read_f32(wt, host);
    if (r)
        goto done;
    if (kind == VKD_W_CONV)
        r = vkd_conv2d_weight_upload(s->d, s->dt, host, wt->shape[0], wt->shape[1], wt->shape[2], wt->shape[3], out);
    else if (kind == VKD_W_LINEAR)
        r = vkd_linear_weight_upload(s->d, s->dt, host, rows, cols, out);
    else if (!(r = vkd_tensor_create(s->d, s->dt, nd, shape, out)) && (r = vkd_tensor_upload_f32(s->d, out, host)))
        vkd_tensor_destroy(s->d, out);
done:
    free(host);
    return r;
}

/* The tensor uploaded, then its file pages dropped from the process (issue 24: they would
 * otherwise stay resident beside the device copy; vkd_st_tensor_drop_pages) */
static vkd_result upload(vkd_wstore *s, const vkd_wtensor *wt, vkd_wkind kind, vkd_tensor *out)
{
    vkd_result r = upload_from_file(s, wt, kind, out);
    vkd_st_tensor_drop_pages(wt->src);
    return r;
}

vkd_result vkd_ws_build_single(vkd_wstore *s, const char *name, vkd_wkind kind, vkd_tensor *t)
{
    const vkd_wtensor *wt = vkd_weights_find(s->w, name);
    return wt ? upload(s, wt, kind, t) : VKD_ERR_FORMAT;
}

slot *vkd_ws_find_slot(vkd_wstore *s, const char *name, vkd_wkind kind)
{
    uint32_t i = (uint32_t)(hash(name, kind) & (s->cap - 1));
    while (s->slots[i].name) {
        if (s->slots[i].kind == kind && !strcmp(s->slots[i].name, name))
            return &s->slots[i];
        i = (i + 1) & (s->cap - 1);
    }
    if (s->count * 4 >= s->cap * 3) {
        VKD_ERROR("weight store full (%u tensors)", s->count);
        return NULL;
    }
    return &s->slots[i];
}


/* The named linear weights stacked (VKD_W_LINEAR) or biases concatenated (VKD_W_RAW) into
 * a new tensor *t; the key names them in errors. */
vkd_result vkd_ws_build_cat(vkd_wstore *s, vkd_wkind kind, int n, const char *const *names, const char *key,
                            vkd_tensor *t)
{
    const vkd_wtensor **wt = malloc((size_t)n * sizeof *wt);
    float *host = NULL;
    vkd_result r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!wt)
        goto done;
    r = VKD_ERR_FORMAT; /* absent, or shapes that do not stack */
    int64_t rows = 0, cols = -1;
    for (int j = 0; j < n; j++) {
        if (!(wt[j] = vkd_weights_find(s->w, names[j]))) {
            VKD_ERROR("the checkpoint has no tensor %s", names[j]);
            goto done;
        }
        if (kind == VKD_W_RAW) { /* 1-D concatenation (biases) */
            rows += (int64_t)wt[j]->nelem, cols = 1;
            continue;
        }
        int64_t rj = wt[j]->rank >= 1 ? wt[j]->shape[0] : 1, c = rj ? (int64_t)wt[j]->nelem / rj : 0;
        bool one_by_one = wt[j]->rank == 2 || (wt[j]->rank == 4 && wt[j]->shape[2] == 1 && wt[j]->shape[3] == 1);
        if (!one_by_one || (cols >= 0 && c != cols)) {
            VKD_ERROR("%s: cannot be stacked with %s (shapes differ or not a linear weight)", names[j], names[0]);
            goto done;
        }
        cols = c, rows += rj;
    }
    bool all_f16 = !s->q_build; /* quantizing: through fp32 */
    for (int j = 0; j < n; j++)
        all_f16 = all_f16 && direct_f16(s, wt[j]);
    int64_t shape[2] = {rows, cols};
    if (all_f16) { /* the blocks' fp16 bytes one after the other (see direct_f16) */
        uint16_t *h = host_f16(s, (size_t)(rows * cols));
        r = h ? VKD_OK : VKD_ERR_OUT_OF_HOST_MEMORY;
        size_t at = 0;
        for (int j = 0; j < n && !r; j++) {
            r = vkd_wtensor_read_f16(wt[j], h + at);
            vkd_st_tensor_drop_pages(wt[j]->src);
            at += wt[j]->nelem;
        }
        if (!r)
            r = create_f16(s, kind == VKD_W_LINEAR ? 2 : 1, shape, h, (size_t)(rows * cols), t);
        host_f16_done(s, h);
        goto done;
    }
    r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!(host = malloc((size_t)(rows * cols) * sizeof *host)))
        goto done;
    r = VKD_OK;
    size_t at = 0;
    for (int j = 0; j < n && !r; j++) { /* one block after the other */
        r = vkd_wtensor_read_f32(wt[j], host + at);
        vkd_st_tensor_drop_pages(wt[j]->src);
        at += wt[j]->nelem;
    }
    if (!r && kind == VKD_W_LINEAR && s->q_build)
        r = vkd_ws_upload_blocks(s, s->q_build, host, rows, cols, t);
    else if (!r && kind == VKD_W_LINEAR)
        r = vkd_linear_weight_upload(s->d, s->dt, host, rows, cols, t);
    else if (!r && !(r = vkd_tensor_create(s->d, s->dt, 1, shape, t)) && (r = vkd_tensor_upload_f32(s->d, t, host)))
        vkd_tensor_destroy(s->d, t);
done:
    if (r && r != VKD_ERR_FORMAT)
        VKD_ERROR("%s: upload failed: %s", key, vkd_result_str(r));
    free(host);
    free(wt);
    return r;
}

const vkd_tensor *vkd_wstore_get_cat(vkd_wstore *s, vkd_wkind kind, int n, const char *const *names)
{
    if (n < 1 || (kind != VKD_W_LINEAR && kind != VKD_W_RAW))
        return NULL;
    size_t klen = 1;
    for (int j = 0; j < n; j++)
        klen += strlen(names[j]) + 1;
    char *key = malloc(klen); /* the key: the names joined by '+' */
    if (!key) {
        s->err = VKD_ERR_OUT_OF_HOST_MEMORY;
        return NULL;
    }
    key[0] = 0;
    for (int j = 0; j < n; j++) {
        if (j)
            strcat(key, "+");
        strcat(key, names[j]);
    }
    uint32_t qt = 0;
    bool q = kind == VKD_W_LINEAR && vkd_wstore_cat_quantized(s, n, names, &qt);
    slot *sl = vkd_ws_find_slot(s, key, q ? VKD_W_QBLOCKS : kind);
    vkd_result r = sl ? VKD_OK : VKD_ERR_INTERNAL; /* the table is full */
    if (sl && !sl->name && q && s->deltas.get)
        r = vkd_ws_refuse_deltas(key);
    if (!r && sl && !sl->name) {
        vkd_tensor t;
        s->q_build = q ? qt : 0;
        r = vkd_ws_build_cat(s, kind, n, names, key, &t);
        s->q_build = 0;
        if (!r)
            r = vkd_ws_keep(s, sl, key, q ? VKD_W_QBLOCKS : kind, t) ? (q ? VKD_OK : vkd_ws_slot_deltas(s, sl))
                                                                      : VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    free(key);
    if (r) {
        s->err = r;
        return NULL;
    }
    return &sl->t;
}

/* name + suffix read as fp32 into a new buffer of exactly `numel` values; NULL (error
 * logged) when absent or of another size */
static float *read_exact(vkd_wstore *s, const char *name, const char *suffix, int64_t numel)
{
    char full[520];
    snprintf(full, sizeof full, "%s%s", name, suffix);
    const vkd_wtensor *t = vkd_weights_find(s->w, full);
    if (!t || (int64_t)t->nelem != numel) {
        VKD_ERROR(t ? "%s: expected %lld values" : "the checkpoint has no tensor %s", full, (long long)numel);
        return NULL;
    }
    float *v = malloc((size_t)numel * sizeof *v);
    vkd_result rr = v ? vkd_wtensor_read_f32(t, v) : VKD_OK;
    if (v)
        vkd_st_tensor_drop_pages(t->src);
    if (v && rr) {
        free(v);
        v = NULL;
    }
    return v;
}

/* LayerNorm `ln` folded into the linears `layers` (names without ".weight"): new tensors
 * *tw (the stacked w diag(gamma)) and *ts (fp32 [2, rows]: row sums, folded biases). */
vkd_result vkd_ws_build_lnfold(vkd_wstore *s, const char *ln, int n, const char *const *layers, vkd_tensor *tw,
                               vkd_tensor *ts)
{
    char (*wn)[520] = malloc((size_t)n * sizeof *wn);
    float *w = NULL, *b = NULL, *gm = NULL, *bt = NULL, *wf = NULL, *sc = NULL;
    vkd_result r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!wn)
        goto done;
    for (int j = 0; j < n; j++)
        snprintf(wn[j], sizeof wn[j], "%s.weight", layers[j]);
    /* the stacked weight rows, then the biases (all or none) */
    int64_t rows = 0, cols = -1;
    int biases = 0;
    r = VKD_ERR_FORMAT;
    for (int j = 0; j < n; j++) {
        const vkd_wtensor *t = vkd_weights_find(s->w, wn[j]);
        if (!t || t->rank < 1 || (t->rank != 2 && !(t->rank == 4 && t->shape[2] == 1 && t->shape[3] == 1)) ||
            (cols >= 0 && (int64_t)t->nelem / t->shape[0] != cols)) {
            VKD_ERROR(t ? "%s: not a linear weight of the others' width" : "the checkpoint has no tensor %s", wn[j]);
            goto done;
        }
        cols = (int64_t)t->nelem / t->shape[0], rows += t->shape[0];
        biases += vkd_wstore_has(s, "%s.bias", layers[j]) != 0;
    }
    if (biases && biases != n) {
        VKD_ERROR("%s: cannot stack linears with and without bias", layers[0]);
        goto done;
    }
    r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!(w = malloc((size_t)(rows * cols) * sizeof *w)) || !(wf = malloc((size_t)(rows * cols) * sizeof *wf)) ||
        !(sc = malloc((size_t)rows * 2 * sizeof *sc)) || (biases && !(b = malloc((size_t)rows * sizeof *b))))
        goto done;
    r = VKD_ERR_FORMAT;
    int64_t at = 0;
    for (int j = 0; j < n; j++) {
        const vkd_wtensor *t = vkd_weights_find(s->w, wn[j]);
        vkd_result rr = vkd_wtensor_read_f32(t, w + at * cols);
        vkd_st_tensor_drop_pages(t->src);
        if (rr)
            goto done;
        if (biases) {
            float *bj = read_exact(s, layers[j], ".bias", t->shape[0]);
            if (!bj)
                goto done;
            memcpy(b + at, bj, (size_t)t->shape[0] * sizeof *b);
            free(bj);
        }
        at += t->shape[0];
    }
    if (!(gm = read_exact(s, ln, ".weight", cols)) || !(bt = read_exact(s, ln, ".bias", cols)))
        goto done;
    int64_t sshape[2] = {2, rows};
    if (s->q_build) {
        /* quantized: the fold in fp32, then its blocks; the row sums from what the dequant
         * kernel will write (the blocks' values rounded to the store's dtype), so the
         * kernel's mean * s[n] still cancels what its product holds (vkd_ln_fold) */
        vkd_ln_fold(w, b, gm, bt, rows, cols, VKD_F32, wf, sc);
        if ((r = vkd_ws_upload_blocks(s, s->q_build, wf, rows, cols, tw)))
            goto done;
        vkd_ws_row_sums_dequantized(s, s->q_build, wf, rows, cols, sc);
    } else {
        vkd_ln_fold(w, b, gm, bt, rows, cols, s->dt, wf, sc);
        if ((r = vkd_linear_weight_upload(s->d, s->dt, wf, rows, cols, tw)))
            goto done;
    }
    if ((r = vkd_tensor_create(s->d, VKD_F32, 2, sshape, ts))) {
        vkd_tensor_destroy(s->d, tw);
        goto done;
    }
    if ((r = vkd_tensor_upload_f32(s->d, ts, sc))) {
        vkd_tensor_destroy(s->d, ts);
        vkd_tensor_destroy(s->d, tw);
    }
done:
    if (r)
        VKD_ERROR("%s: folding the layer norm into %s failed: %s", ln, layers[0], vkd_result_str(r));
    free(wn), free(w), free(b), free(gm), free(bt), free(wf), free(sc);
    return r;
}

vkd_result vkd_wstore_get_ln_linear(vkd_wstore *s, const char *ln, int n, const char *const *layers,
                                    const vkd_tensor **w_out, const vkd_tensor **sc_out)
{
    *w_out = *sc_out = NULL;
    if (n < 1)
        return VKD_ERR_INVALID_ARG;
    size_t klen = strlen(ln) + 16;
    for (int j = 0; j < n; j++)
        klen += strlen(layers[j]) + 1;
    /* "<ln>|lnfold|<layer>+<layer>...": starts with the model's prefix, so that
     * vkd_wstore_release of the model frees it too */
    char *key = malloc(klen);
    if (!key)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    snprintf(key, klen, "%s%s", ln, LNFOLD_SEP);
    for (int j = 0; j < n; j++) {
        strcat(key, j ? "+" : "");
        strcat(key, layers[j]);
    }
    vkd_result r = VKD_ERR_OUT_OF_HOST_MEMORY;
    uint32_t qt = 0;
    bool q = vkd_wstore_ln_quantized(s, n, layers, &qt);
    vkd_wkind wk = q ? VKD_W_QBLOCKS : VKD_W_LINEAR;
    slot *sw = vkd_ws_find_slot(s, key, wk), *ss = vkd_ws_find_slot(s, key, VKD_W_RAW);
    if (!sw || !ss)
        goto done;
    if (sw->name && ss->name) {
        *w_out = &sw->t, *sc_out = &ss->t;
        r = VKD_OK;
        goto done;
    }
    if (q && s->deltas.get && (r = vkd_ws_refuse_deltas(key)))
        goto done;
    vkd_tensor tw, ts;
    s->q_build = q ? qt : 0;
    r = vkd_ws_build_lnfold(s, ln, n, layers, &tw, &ts);
    s->q_build = 0;
    if (r)
        goto done;
    r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!(*w_out = vkd_ws_keep(s, sw, key, wk, tw))) {
        vkd_tensor_destroy(s->d, &ts);
        goto done;
    }
    /* keep() filled sw, which may be the free slot ss pointed at too: look it up again */
    if (!(ss = vkd_ws_find_slot(s, key, VKD_W_RAW)) || !(*sc_out = vkd_ws_keep(s, ss, key, VKD_W_RAW, ts))) {
        vkd_tensor_destroy(s->d, &ts);
        *w_out = NULL;
        goto done;
    }
    /* the LoRA deltas after both are kept: the weight's slot updates the scales' too */
    r = VKD_OK;
    if (!q && (r = vkd_ws_slot_deltas(s, vkd_ws_find_slot(s, key, VKD_W_LINEAR))))
        *w_out = *sc_out = NULL;
done:
    free(key);
    return r;
}

const vkd_tensor *vkd_wstore_get(vkd_wstore *s, vkd_wkind kind, const char *fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    slot *sl = vkd_ws_find_slot(s, name, kind);
    if (!sl) {
        s->err = VKD_ERR_INTERNAL;
        return NULL;
    }
    if (sl->name)
        return &sl->t;
    const vkd_wtensor *wt = vkd_weights_find(s->w, name);
    if (!wt) {
        VKD_ERROR("the checkpoint has no tensor %s", name);
        s->err = VKD_ERR_FORMAT;
        return NULL;
    }
    vkd_tensor t;
    vkd_result r = upload(s, wt, kind, &t);
    if (r) {
        VKD_ERROR("%s: upload failed: %s", name, vkd_result_str(r));
        s->err = r;
        return NULL;
    }
    const vkd_tensor *kept = vkd_ws_keep(s, sl, name, kind, t);
    if (!kept) {
        s->err = VKD_ERR_OUT_OF_HOST_MEMORY;
        return NULL;
    }
    if ((r = vkd_ws_slot_deltas(s, sl))) {
        s->err = r;
        return NULL;
    }
    return kept;
}

const vkd_tensor *vkd_ws_keep(vkd_wstore *s, slot *sl, const char *name, vkd_wkind kind, vkd_tensor t)
{
    size_t i = (size_t)(sl - s->slots);
    s->slots[i].name = malloc(strlen(name) + 1);
    if (!s->slots[i].name) {
        vkd_tensor_destroy(s->d, &t);
        return NULL;
    }
    strcpy(s->slots[i].name, name);
    s->slots[i].kind = kind;
    s->slots[i].t = t;
    s->count++;
    s->bytes += t.buf.size;
    return &s->slots[i].t;
}

int vkd_wstore_has(vkd_wstore *s, const char *fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return vkd_weights_find(s->w, name) != NULL;
}

int vkd_wstore_shape(vkd_wstore *s, const char *name, int64_t shape[8])
{
    return vkd_weights_shape(s->w, name, shape);
}

vkd_dtype vkd_wstore_dtype(const vkd_wstore *s) { return s->dt; }
vkd_result vkd_wstore_error(const vkd_wstore *s) { return s->err ? s->err : VKD_ERR_FORMAT; }
uint64_t vkd_wstore_device_bytes(const vkd_wstore *s) { return s->bytes; }
uint32_t vkd_wstore_count(const vkd_wstore *s) { return s->count; }

void vkd_wstore_release(vkd_wstore *s, const char *prefix)
{
    free(s->host); /* a stage is done: its upload staging too */
    s->host = NULL, s->host_cap = 0;
    size_t n = strlen(prefix);
    /* rebuild the table without the released entries (open addressing has no cheap delete) */
    slot *old = s->slots;
    slot *fresh = calloc(s->cap, sizeof *fresh);
    if (!fresh)
        return;
    s->count = 0;
    for (uint32_t i = 0; i < s->cap; i++) {
        if (!old[i].name)
            continue;
        if (!strncmp(old[i].name, prefix, n)) {
            s->bytes -= old[i].t.buf.size;
            vkd_tensor_destroy(s->d, &old[i].t);
            free(old[i].name);
            continue;
        }
        uint32_t j = (uint32_t)(hash(old[i].name, old[i].kind) & (s->cap - 1));
        while (fresh[j].name)
            j = (j + 1) & (s->cap - 1);
        fresh[j] = old[i];
        s->count++;
    }
    free(old);
    s->slots = fresh;
}

uint64_t vkd_wstore_prefix_bytes(const vkd_wstore *s, const char *prefix)
{
    size_t n = vkd_weights_count(s->w), len = strlen(prefix);
    uint64_t bytes = 0, elem = s->dt == VKD_F16 ? 2 : 4;
    for (size_t i = 0; i < n; i++) {
        const vkd_wtensor *t = vkd_weights_at(s->w, i);
        if (strncmp(t->name, prefix, len))
            continue;
        uint64_t q = vkd_wstore_quant_bytes((vkd_wstore *)s, t->name); /* kept quantized */
        bytes += ((q ? q : (uint64_t)t->nelem * elem) + 255) / 256 * 256;
    }
    return bytes;
}
