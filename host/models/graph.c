/* Op wrappers with an error latch. See graph.h. */
#include "models/graph.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "ops/concat.h"
#include "ops/embedding.h"
#include "ops/conv2d.h"
#include "ops/winograd.h"
#include "ops/dequant.h"
#include "ops/eltwise.h"
#include "ops/geglu.h"
#include "ops/groupnorm.h"
#include "ops/layernorm.h"
#include "ops/matmul.h"
#include "ops/upsample.h"

bool g_ok(const vkd_graph *g) { return g->err == VKD_OK; }
bool g_recording(const vkd_graph *g) { return g->err == VKD_OK && !g->plan; }

/* Whether to record the op now; in a dry run, count it instead. */
static bool rec(vkd_graph *g)
{
    if (g->err)
        return false;
    if (g->plan) {
        g->plan->ops++;
        return false;
    }
    return true;
}

#define POOL_ALIGN 256u /* the pool's rounding (host/vk/memory.c ALIGN) */

static uint64_t pool_bytes(const vkd_tensor *t)
{
    uint64_t b = vkd_tensor_bytes(t);
    return (b + POOL_ALIGN - 1) / POOL_ALIGN * POOL_ALIGN;
}

vkd_result g_fail(vkd_graph *g, vkd_result r)
{
    if (g->err == VKD_OK)
        g->err = r;
    return g->err;
}

static vkd_tensor empty(void)
{
    vkd_tensor t;
    memset(&t, 0, sizeof t);
    return t;
}

static vkd_tensor new_dt(vkd_graph *g, vkd_dtype dt, int ndim, const int64_t *shape)
{
    vkd_tensor t = empty();
    if (!g_ok(g))
        return t;
    if (g->plan) { /* a tensor with a shape and no memory */
        t.dtype = dt;
        t.ndim = ndim;
        for (int i = 0; i < VKD_MAX_DIMS; i++)
            t.shape[i] = i < ndim ? shape[i] : 1;
        t.owner = true;
        uint64_t b = pool_bytes(&t);
        g->plan->live += b;
        g->plan->act_bytes += vkd_tensor_bytes(&t);
        if (g->plan->live > g->plan->peak)
            g->plan->peak = g->plan->live;
        return t;
    }
    vkd_result r = vkd_tensor_create_in(g->d, g->pool, dt, ndim, shape, &t);
    if (r)
        g_fail(g, r);
    return t;
}

vkd_tensor g_new(vkd_graph *g, int ndim, const int64_t *shape) { return new_dt(g, g->dt, ndim, shape); }
vkd_tensor g_new_f32(vkd_graph *g, int ndim, const int64_t *shape) { return new_dt(g, VKD_F32, ndim, shape); }

vkd_tensor g_new3(vkd_graph *g, int64_t n, int64_t l, int64_t c)
{
    int64_t s[3] = {n, l, c};
    return g_new(g, 3, s);
}

void g_free(vkd_graph *g, vkd_tensor *t)
{
    if (!t || !t->owner)
        return;
    if (g->plan) {
        g->plan->live -= pool_bytes(t);
        t->owner = false;
        return;
    }
    vkd_tensor_destroy(g->d, t);
}

/* name <- printf(fmt, ...) of the enclosing variadic function */
#define FORMAT_NAME(name, fmt)                                                           \
    do {                                                                                 \
        va_list ap_;                                                                     \
        va_start(ap_, fmt);                                                              \
        vsnprintf(name, sizeof name, fmt, ap_);                                          \
        va_end(ap_);                                                                     \
    } while (0)

/* "<name><suffix>" from the weight store; in a dry run only its shape as the op would
 * see it (into *slot), from the checkpoint header. NULL if absent (error logged). */
/* Dry run: the device tensor a checkpoint tensor becomes (shape and dtype only). */
static const vkd_tensor *weight_shape(vkd_graph *g, vkd_wkind kind, const char *key, vkd_tensor *slot)
{
    int64_t s[8];
    int nd = vkd_wstore_shape(g->ws, key, s);
    if (nd < 1) {
        VKD_ERROR("checkpoint has no tensor %s", key);
        return NULL;
    }
    int64_t numel = 1;
    for (int i = 0; i < nd; i++)
        numel *= s[i];
    *slot = empty();
    slot->dtype = vkd_wstore_dtype(g->ws);
    for (int i = 0; i < VKD_MAX_DIMS; i++)
        slot->shape[i] = 1;
    if (kind == VKD_W_LINEAR) {       /* [out, in] (also from [out, in, 1, 1]) */
        slot->ndim = 2, slot->shape[0] = s[0], slot->shape[1] = numel / s[0];
    } else if (kind == VKD_W_CONV && nd == 4) { /* [out, kh, kw, in] */
        slot->ndim = 4, slot->shape[0] = s[0], slot->shape[1] = s[2], slot->shape[2] = s[3], slot->shape[3] = s[1];
    } else {
        slot->ndim = 1, slot->shape[0] = numel;
    }
    return slot;
}

/* why a weight could not be had: the store's own cause (absent or mis-shaped, device
 * memory, ...), or in a dry run a format error (only the header is read) */
static vkd_result weight_err(const vkd_graph *g) { return g->plan ? VKD_ERR_FORMAT : vkd_wstore_error(g->ws); }

static const vkd_tensor *weight(vkd_graph *g, vkd_wkind kind, const char *name, const char *suffix,
                                vkd_tensor *slot)
{
    if (!g->plan)
        return vkd_wstore_get(g->ws, kind, "%s%s", name, suffix);
    char key[512];
    snprintf(key, sizeof key, "%s%s", name, suffix);
    if (!weight_shape(g, kind, key, slot))
        return NULL;
    g->plan->weight_bytes += pool_bytes(slot); /* the allocator's rounding */
    return slot;
}

static void check(vkd_graph *g, vkd_result r);

/* A linear or conv weight the store keeps quantized (ggml blocks, issue 25) comes out of
 * weight_q dequantized into *tmp: an activation planned like any other, live only for the
 * op that reads it (the caller frees it after recording the op). Other weights come from
 * weight() and leave *tmp empty. */
static const vkd_tensor *weight_q(vkd_graph *g, vkd_wkind kind, const char *name, const char *suffix,
                                  vkd_tensor *slot, vkd_tensor *tmp)
{
    char key[512];
    snprintf(key, sizeof key, "%s%s", name, suffix);
    uint32_t qt = 0;
    *tmp = empty();
    int how = vkd_wstore_quantized(g->ws, key, kind, &qt);
    if (!how)
        return weight(g, kind, name, suffix, slot);
    if (!weight_shape(g, kind, key, slot))
        return NULL;
    if (g->plan)
        g->plan->weight_bytes += (vkd_wstore_quant_bytes(g->ws, key) + POOL_ALIGN - 1) / POOL_ALIGN * POOL_ALIGN;
    *tmp = g_new(g, slot->ndim, slot->shape); /* [N, K] or [Cout, kh, kw, Cin] */
    if (g->plan && pool_bytes(tmp) > g->plan->dq_max)
        g->plan->dq_max = pool_bytes(tmp);
    if (!g->plan && g_ok(g)) {
        const vkd_tensor *blocks = vkd_wstore_get_blocks(g->ws, key, kind);
        if (!blocks) {
            g_free(g, tmp);
            return NULL;
        }
        int64_t taps = how == 2 ? slot->shape[1] * slot->shape[2] : 1; /* checkpoint-order rows: re-laid */
        int64_t cin = how == 2 ? slot->shape[3] : 1;
        if (rec(g))
            check(g, vkd_op_dequant(g->c, blocks, qt, taps, cin, tmp));
    }
    return g_ok(g) ? tmp : NULL;
}

void g_plan_weight(vkd_graph *g, const char *fmt, ...)
{
    if (!g->plan || !g_ok(g))
        return;
    char name[400];
    FORMAT_NAME(name, fmt);
    vkd_tensor slot;
    if (!weight(g, VKD_W_RAW, name, "", &slot))
        g_fail(g, weight_err(g));
}

/* "<name>.weight" and "<name>.bias" of a norm layer; false (error latched) if absent */
static bool norm_params(vkd_graph *g, const char *name, const vkd_tensor **w, const vkd_tensor **b,
                        vkd_tensor slot[2])
{
    *w = weight(g, VKD_W_RAW, name, ".weight", &slot[0]);
    *b = weight(g, VKD_W_RAW, name, ".bias", &slot[1]);
    if (!*w || !*b) {
        g_fail(g, weight_err(g));
        return false;
    }
    return true;
}

static void check(vkd_graph *g, vkd_result r)
{
    if (r)
        g_fail(g, r);
}

/* x [.., K] (with o->a2: x and a2 side by side) times w [N, K]^T, the options of
 * vkd_linear_opts applied, into a new [.., N] */
static vkd_tensor linear_out(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *w, const vkd_linear_opts *o)
{
    int64_t shape[VKD_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = w->shape[0];
    vkd_tensor out = g_new(g, x->ndim, shape);
    /* split-K partial sums where the device's GEMM splits this shape: planned like any
     * activation, live only during the op */
    int64_t k = w->shape[1], k1 = x->shape[x->ndim - 1], kstep = k;
    if (o->a2) { /* both parts' widths must suit the load width: their gcd (ops/matmul.c) */
        int64_t a = k1, b = k - k1;
        while (b) {
            int64_t t = a % b;
            a = b, b = t;
        }
        kstep = a;
    }
    int64_t sn = g_ok(g) ? vkd_gemm_split_scratch_numel(g->d, g->dt, o->ln != NULL, vkd_tensor_numel(x) / k1,
                                                        w->shape[0], k, kstep)
                         : 0;
    vkd_tensor scratch = sn ? new_dt(g, VKD_F32, 1, &sn) : empty();
    vkd_linear_opts so = *o;
    so.scratch = sn ? &scratch : NULL;
    if (rec(g))
        check(g, vkd_op_linear_ex(g->c, x, w, &so, &out));
    g_free(g, &scratch);
    return out;
}

static vkd_tensor linear(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *x2, const vkd_tensor *residual,
                         const char *name);

vkd_tensor g_linear(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *residual, const char *fmt, ...)
{
    if (!g_ok(g))
        return empty();
    char name[400];
    FORMAT_NAME(name, fmt);
    return linear(g, x, NULL, residual, name);
}

vkd_tensor g_linear_pair(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *x2, const vkd_tensor *residual,
                         const char *fmt, ...)
{
    if (!g_ok(g))
        return empty();
    char name[400];
    FORMAT_NAME(name, fmt);
    return linear(g, x, x2, residual, name);
}

static vkd_tensor linear(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *x2, const vkd_tensor *residual,
                         const char *name)
{
    vkd_tensor slot[2], deq;
    const vkd_tensor *w = weight_q(g, VKD_W_LINEAR, name, ".weight", &slot[0], &deq);
    const vkd_tensor *b = vkd_wstore_has(g->ws, "%s.bias", name) ? weight(g, VKD_W_RAW, name, ".bias", &slot[1])
                                                                  : NULL;
    if (!w || (vkd_wstore_has(g->ws, "%s.bias", name) && !b)) {
        g_free(g, &deq);
        g_fail(g, weight_err(g));
        return empty();
    }
    vkd_linear_opts o = {.bias = b, .residual = residual, .a2 = x2};
    vkd_tensor out = linear_out(g, x, w, &o);
    g_free(g, &deq);
    return out;
}

/* The stacked tensor of the n names + suffix (vkd_wstore_get_cat); in a dry run only
 * its shape from the checkpoint header (into *slot), counted once. */
static const vkd_tensor *cat_weight(vkd_graph *g, vkd_wkind kind, int n, const char *const *full, vkd_tensor *slot)
{
    if (!g->plan)
        return vkd_wstore_get_cat(g->ws, kind, n, full);
    int64_t rows = 0, cols = 0;
    vkd_tensor one = empty();
    for (int j = 0; j < n; j++) {
        const vkd_tensor *o = weight_shape(g, kind, full[j], &one);
        if (!o)
            return NULL;
        rows += kind == VKD_W_LINEAR ? o->shape[0] : vkd_tensor_numel(o);
        cols = o->shape[1];
    }
    *slot = one;
    slot->shape[0] = rows;
    if (kind == VKD_W_LINEAR)
        slot->shape[1] = cols;
    g->plan->weight_bytes += pool_bytes(slot);
    return slot;
}

/* A stacked or folded weight the store keeps quantized (vkd_wstore_cat_quantized /
 * _ln_quantized): w is its blocks (in a dry run the float slot cat_weight counted), made
 * [rows, cols] of the store's dtype in *tmp just before the op, like weight_q's. */
static const vkd_tensor *stacked_dequant(vkd_graph *g, const vkd_tensor *w, uint32_t qt, int n,
                                         const char *const *full, vkd_tensor *tmp)
{
    int64_t rows = 0, cols = 0, sh[8];
    for (int j = 0; j < n; j++) {
        int nd = vkd_wstore_shape(g->ws, full[j], sh);
        if (nd < 2)
            return NULL;
        rows += sh[0];
        cols = 1;
        for (int i = 1; i < nd; i++)
            cols *= sh[i];
    }
    int64_t shape[2] = {rows, cols};
    if (g->plan) { /* the blocks in place of the float weight cat_weight counted */
        g->plan->weight_bytes -= pool_bytes(w);
        g->plan->weight_bytes += (4 * (uint64_t)vkd_dequant_words(vkd_dequant_info_of(qt), rows * cols) +
                                  POOL_ALIGN - 1) / POOL_ALIGN * POOL_ALIGN;
    }
    *tmp = g_new(g, 2, shape);
    if (g->plan && pool_bytes(tmp) > g->plan->dq_max)
        g->plan->dq_max = pool_bytes(tmp);
    if (rec(g))
        check(g, vkd_op_dequant(g->c, w, qt, 1, 1, tmp));
    return g_ok(g) ? tmp : NULL;
}

vkd_tensor g_linear_cat(vkd_graph *g, const vkd_tensor *x, int n, const char *const *names)
{
    if (!g_ok(g))
        return empty();
    if (n < 1 || n > VKD_LINEAR_CAT_MAX) {
        g_fail(g, VKD_ERR_INVALID_ARG);
        return empty();
    }
    char (*full)[420] = malloc((size_t)n * 2 * sizeof *full);
    const char **fn = malloc((size_t)n * 2 * sizeof *fn);
    vkd_tensor out = empty();
    if (!full || !fn) {
        g_fail(g, VKD_ERR_OUT_OF_HOST_MEMORY);
        goto done;
    }
    int biases = 0;
    for (int j = 0; j < n; j++) {
        snprintf(full[j], sizeof full[j], "%s.weight", names[j]), fn[j] = full[j];
        snprintf(full[n + j], sizeof full[n + j], "%s.bias", names[j]), fn[n + j] = full[n + j];
        biases += vkd_wstore_has(g->ws, "%s", fn[n + j]) != 0;
    }
    if (biases != 0 && biases != n) {
        VKD_ERROR("%s: cannot stack linears with and without bias", names[0]);
        g_fail(g, VKD_ERR_FORMAT);
        goto done;
    }
    vkd_tensor slot[2], deq = empty();
    uint32_t qt = 0;
    const vkd_tensor *w = cat_weight(g, VKD_W_LINEAR, n, fn, &slot[0]);
    if (w && vkd_wstore_cat_quantized(g->ws, n, fn, &qt))
        w = stacked_dequant(g, w, qt, n, fn, &deq);
    const vkd_tensor *b = biases ? cat_weight(g, VKD_W_RAW, n, fn + n, &slot[1]) : NULL;
    if (!w || (biases && !b)) {
        g_free(g, &deq);
        g_fail(g, weight_err(g));
        goto done;
    }
    vkd_linear_opts o = {.bias = b};
    out = linear_out(g, x, w, &o);
    g_free(g, &deq);
done:
    free(full);
    free(fn);
    return out;
}

vkd_tensor g_linear_ln(vkd_graph *g, const vkd_tensor *x, const char *ln, float eps, const vkd_tensor *residual, int n,
                       const char *const *layers)
{
    if (!g_ok(g))
        return empty();
    vkd_tensor slot[2];
    const vkd_tensor *w = NULL, *sc = NULL;
    if (!g->plan) {
        vkd_result r = vkd_wstore_get_ln_linear(g->ws, ln, n, layers, &w, &sc);
        if (r) {
            g_fail(g, r);
            return empty();
        }
    } else { /* dry run: w diag(gamma) as the stacked weight, and fp32 [2, rows] */
        char (*full)[420] = malloc((size_t)n * sizeof *full);
        const char **fn = malloc((size_t)n * sizeof *fn);
        if (full && fn) {
            for (int j = 0; j < n; j++)
                snprintf(full[j], sizeof full[j], "%s.weight", layers[j]), fn[j] = full[j];
            w = cat_weight(g, VKD_W_LINEAR, n, fn, &slot[0]);
        }
        free(full);
        free(fn);
        if (w) {
            slot[1] = empty();
            slot[1].dtype = VKD_F32, slot[1].ndim = 2;
            for (int i = 0; i < VKD_MAX_DIMS; i++)
                slot[1].shape[i] = 1;
            slot[1].shape[0] = 2, slot[1].shape[1] = w->shape[0];
            g->plan->weight_bytes += pool_bytes(&slot[1]);
            sc = &slot[1];
        }
    }
    vkd_tensor deq = empty();
    uint32_t qt = 0;
    if (w && sc && vkd_wstore_ln_quantized(g->ws, n, layers, &qt)) { /* w holds blocks */
        char (*full)[420] = malloc((size_t)n * sizeof *full);
        const char **fn = malloc((size_t)n * sizeof *fn);
        if (full && fn) {
            for (int j = 0; j < n; j++)
                snprintf(full[j], sizeof full[j], "%s.weight", layers[j]), fn[j] = full[j];
            w = stacked_dequant(g, w, qt, n, fn, &deq);
        } else {
            w = NULL;
        }
        free(full);
        free(fn);
    }
    if (!w || !sc) {
        g_free(g, &deq);
        g_fail(g, VKD_ERR_FORMAT);
        return empty();
    }
    vkd_linear_opts o = {.residual = residual, .ln = sc, .ln_eps = eps};
    vkd_tensor out = linear_out(g, x, w, &o);
    g_free(g, &deq);
    return out;
}

/* h, w: the size convolved (with upsample, of the 2x upsampling of x) */
static vkd_tensor conv(vkd_graph *g, const vkd_tensor *x, int64_t h, int64_t w, int stride, int pt, int pb, int pl,
                       int pr, int upsample, int64_t up_h, int64_t up_w, const vkd_tensor *residual, const char *name)
{
    vkd_tensor slot[2], deq;
    const vkd_tensor *wt = weight_q(g, VKD_W_CONV, name, ".weight", &slot[0], &deq);
    const vkd_tensor *b = vkd_wstore_has(g->ws, "%s.bias", name) ? weight(g, VKD_W_RAW, name, ".bias", &slot[1])
                                                                  : NULL;
    if (!wt || (!b && vkd_wstore_has(g->ws, "%s.bias", name))) { /* never a conv without its bias */
        g_free(g, &deq);
        g_fail(g, weight_err(g));
        return empty();
    }
    /* wt: [Cout, kh, kw, Cin] */
    int kh = (int)wt->shape[1], kw = (int)wt->shape[2];
    int64_t oh = vkd_conv2d_out_dim(h, kh, stride, pt, pb), ow = vkd_conv2d_out_dim(w, kw, stride, pl, pr);
    vkd_tensor out = g_new3(g, x->shape[0], oh * ow, wt->shape[0]);
    int64_t cin = wt->shape[3];
    /* 3x3 stride-1 pad-1 convs on Winograd F(2x2,3x3) where the device's rule says it wins
     * (docs/winograd.md), the kernel transforming the stored weight in registers: an
     * earlier wiring built U = G g G^T into a temporary before each conv, a pass that took
     * 729 of 7582 ms of SD1.5's guided 256x256 evaluation on lavapipe and a dispatch each */
    if (kh == 3 && kw == 3 && stride == 1 && pt == 1 && pb == 1 && pl == 1 && pr == 1 && !upsample && g_ok(g) &&
        vkd_conv2d_winograd_worth(g->d, x->shape[0], h, w, cin, wt->shape[0])) {
        if (rec(g))
            check(g, vkd_op_conv2d_winograd(g->c, x, h, w, wt, b, residual, &out));
        g_free(g, &deq);
        return out;
    }
    int64_t sn = g_ok(g) ? vkd_gemm_split_scratch_numel(g->d, g->dt, 0, x->shape[0] * oh * ow, wt->shape[0],
                                                        kh * kw * cin, cin)
                         : 0;
    vkd_tensor scratch = sn ? new_dt(g, VKD_F32, 1, &sn) : empty(); /* split-K partial sums (see linear_out) */
    vkd_conv2d_params p = {.stride = stride, .pad_top = pt, .pad_bottom = pb, .pad_left = pl, .pad_right = pr,
                           .upsample = upsample, .scratch = sn ? &scratch : NULL, .up_h = (int)up_h,
                           .up_w = (int)up_w};
    if (rec(g))
        check(g, vkd_op_conv2d(g->c, x, h, w, wt, b, residual, &p, &out));
    g_free(g, &scratch);
    g_free(g, &deq);
    return out;
}

vkd_tensor g_conv(vkd_graph *g, const vkd_tensor *x, int64_t h, int64_t w, int stride, int pad,
                  const vkd_tensor *residual, const char *fmt, ...)
{
    if (!g_ok(g))
        return empty();
    char name[400];
    FORMAT_NAME(name, fmt);
    return conv(g, x, h, w, stride, pad, pad, pad, pad, 0, 0, 0, residual, name);
}

vkd_tensor g_conv_up2(vkd_graph *g, const vkd_tensor *x, int64_t h, int64_t w, const char *fmt, ...)
{
    if (!g_ok(g))
        return empty();
    char name[400];
    FORMAT_NAME(name, fmt);
    return conv(g, x, 2 * h, 2 * w, 1, 1, 1, 1, 1, 1, 0, 0, NULL, name);
}

vkd_tensor g_conv_up_to(vkd_graph *g, const vkd_tensor *x, int64_t h, int64_t w, int64_t oh, int64_t ow,
                        const char *fmt, ...)
{
    if (!g_ok(g))
        return empty();
    char name[400];
    FORMAT_NAME(name, fmt);
    return conv(g, x, oh, ow, 1, 1, 1, 1, 1, 1, h, w, NULL, name);
}

vkd_tensor g_conv_pad(vkd_graph *g, const vkd_tensor *x, int64_t h, int64_t w, int stride, int pt, int pb, int pl,
                      int pr, const char *fmt, ...)
{
    if (!g_ok(g))
        return empty();
    char name[400];
    FORMAT_NAME(name, fmt);
    return conv(g, x, h, w, stride, pt, pb, pl, pr, 0, 0, 0, NULL, name);
}

static vkd_tensor groupnorm(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *x2, const vkd_tensor *add,
                            int64_t add_col, int groups, float eps, bool silu, const char *name);

vkd_tensor g_groupnorm(vkd_graph *g, const vkd_tensor *x, int groups, float eps, bool silu, const char *fmt, ...)
{
    if (!g_ok(g))
        return empty();
    char name[400];
    FORMAT_NAME(name, fmt);
    return groupnorm(g, x, NULL, NULL, 0, groups, eps, silu, name);
}

vkd_tensor g_groupnorm_cat(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *x2, int groups, float eps, bool silu,
                           const char *fmt, ...)
{
    if (!g_ok(g))
        return empty();
    char name[400];
    FORMAT_NAME(name, fmt);
    return groupnorm(g, x, x2, NULL, 0, groups, eps, silu, name);
}

vkd_tensor g_groupnorm_add(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *add, int64_t add_col, int groups,
                           float eps, bool silu, const char *fmt, ...)
{
    if (!g_ok(g))
        return empty();
    char name[400];
    FORMAT_NAME(name, fmt);
    return groupnorm(g, x, NULL, add, add_col, groups, eps, silu, name);
}

static vkd_tensor groupnorm(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *x2, const vkd_tensor *add,
                            int64_t add_col, int groups, float eps, bool silu, const char *name)
{
    if (g->gn && (x2 || add)) { /* captured statistics (tiled decode) are for plain norms only */
        g_fail(g, VKD_ERR_INTERNAL);
        return empty();
    }
    const vkd_tensor *gw, *gb;
    vkd_tensor slot[2];
    if (!norm_params(g, name, &gw, &gb, slot))
        return empty();
    int64_t numel = 0;
    if (x2)
        check(g, vkd_op_groupnorm_cat_scratch_numel(g->c, x, x2, (uint32_t)groups, &numel));
    else
        check(g, vkd_op_groupnorm_scratch_numel(g->c, x, (uint32_t)groups, &numel));
    int64_t s[1] = {numel > 0 ? numel : 1};
    vkd_tensor scratch = empty();
    if (g->gn && g_recording(g))
        check(g, vkd_tensor_create_in(g->d, g->gn->pool, VKD_F32, 1, s, &scratch));
    else if (!g->gn) /* a dry run of captured norms: their scratches are the caller's, not the activations' */
        scratch = new_dt(g, VKD_F32, 1, s);
    int64_t oshape[VKD_MAX_DIMS];
    memcpy(oshape, x->shape, sizeof oshape);
    if (x2)
        oshape[2] += x2->shape[2];
    vkd_tensor out = g_new(g, x->ndim, oshape);
    bool ext = g->gn && g->gn->external;
    if (rec(g))
        check(g, x2    ? vkd_op_groupnorm_cat(g->c, x, x2, (uint32_t)groups, eps, gw, gb, silu, &scratch, &out)
                 : add ? vkd_op_groupnorm_add(g->c, x, add, add_col, (uint32_t)groups, eps, gw, gb, silu, &scratch, &out)
                       : vkd_op_groupnorm_ex(g->c, x, (uint32_t)groups, eps, gw, gb, silu, &scratch, &out, ext));
    if (g->gn && g_recording(g)) { /* keep the scratch: the caller reads and writes its statistics */
        vkd_gn_capture *cap = g->gn;
        if (cap->count == cap->cap) {
            int nc = cap->cap ? 2 * cap->cap : 32;
            vkd_gn_entry *ne = realloc(cap->e, (size_t)nc * sizeof *ne);
            if (!ne) {
                g_fail(g, VKD_ERR_OUT_OF_HOST_MEMORY);
                return out;
            }
            cap->e = ne, cap->cap = nc;
        }
        vkd_gn_entry *e = &cap->e[cap->count++];
        e->scratch = scratch, e->n = x->shape[0], e->hw = x->shape[1], e->groups = groups, e->eps = eps;
        check(g, vkd_op_groupnorm_layout(g->c, x, (uint32_t)groups, &e->layout));
        return out;
    }
    if (!g->gn)
        g_free(g, &scratch);
    return out;
}

vkd_tensor g_layernorm(vkd_graph *g, const vkd_tensor *x, float eps, const char *fmt, ...)
{
    if (!g_ok(g))
        return empty();
    char name[400];
    FORMAT_NAME(name, fmt);
    const vkd_tensor *gw, *gb;
    vkd_tensor slot[2];
    if (!norm_params(g, name, &gw, &gb, slot))
        return empty();
    vkd_tensor out = g_new(g, x->ndim, x->shape);
    if (rec(g))
        check(g, vkd_op_layernorm(g->c, x, eps, gw, gb, &out));
    return out;
}

vkd_tensor g_attention(vkd_graph *g, const vkd_tensor *q, const vkd_tensor *k, const vkd_tensor *v, int heads,
                       bool causal)
{
    vkd_tensor out = g_new(g, q->ndim, q->shape);
    if (!rec(g))
        return out;
    vkd_attention_params p;
    vkd_attention_params_init(&p);
    p.heads = heads;
    p.causal = causal;
    check(g, vkd_op_attention(g->c, q, k, v, &out, &p));
    return out;
}

vkd_tensor g_attention_cols(vkd_graph *g, const vkd_tensor *q, const vkd_tensor *k, const vkd_tensor *v, int heads,
                            int64_t width, int64_t q_col, int64_t k_col, int64_t v_col)
{
    int64_t shape[VKD_MAX_DIMS];
    memcpy(shape, q->shape, sizeof shape);
    shape[q->ndim - 1] = width;
    vkd_tensor out = g_new(g, q->ndim, shape);
    if (!rec(g))
        return out;
    vkd_attention_params p;
    vkd_attention_params_init(&p);
    p.heads = heads;
    p.head_dim = width / heads;
    p.q_col = q_col, p.k_col = k_col, p.v_col = v_col;
    check(g, vkd_op_attention(g->c, q, k, v, &out, &p));
    return out;
}

vkd_tensor g_add(vkd_graph *g, const vkd_tensor *a, const vkd_tensor *b)
{
    vkd_tensor out = g_new(g, a->ndim, a->shape);
    if (rec(g))
        check(g, vkd_op_add(g->c, a, b, &out));
    return out;
}

void g_add_inplace(vkd_graph *g, vkd_tensor *a, const vkd_tensor *b)
{
    if (rec(g))
        check(g, vkd_op_add(g->c, a, b, a));
}

vkd_tensor g_silu(vkd_graph *g, const vkd_tensor *x)
{
    vkd_tensor out = g_new(g, x->ndim, x->shape);
    if (rec(g))
        check(g, vkd_op_silu(g->c, x, &out));
    return out;
}

void g_act_inplace(vkd_graph *g, vkd_tensor *x, int kind)
{
    if (!rec(g))
        return;
    if (kind == 0)
        check(g, vkd_op_silu(g->c, x, x));
    else if (kind == 1)
        check(g, vkd_op_gelu(g->c, x, x));
    else if (kind == VKD_ACT_RELU)
        check(g, vkd_op_relu(g->c, x, x));
    else
        check(g, vkd_op_quick_gelu(g->c, x, x));
}

vkd_tensor g_geglu(vkd_graph *g, const vkd_tensor *x)
{
    int64_t shape[VKD_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] /= 2;
    vkd_tensor out = g_new(g, x->ndim, shape);
    if (rec(g))
        check(g, vkd_op_geglu(g->c, x, &out));
    return out;
}

vkd_tensor g_upsample2x(vkd_graph *g, const vkd_tensor *x, int64_t h, int64_t w)
{
    vkd_tensor out = g_new3(g, x->shape[0], 4 * h * w, x->shape[2]);
    if (rec(g))
        check(g, vkd_op_upsample2x(g->c, x, h, w, &out));
    return out;
}

vkd_tensor g_concat(vkd_graph *g, const vkd_tensor *a, const vkd_tensor *b)
{
    vkd_tensor out = g_new3(g, a->shape[0], a->shape[1], a->shape[2] + b->shape[2]);
    if (rec(g))
        check(g, vkd_op_concat(g->c, a, b, &out));
    return out;
}


vkd_tensor g_gather_rows(vkd_graph *g, const vkd_tensor *x, const vkd_buffer *idx, int64_t n)
{
    int64_t c = x->shape[x->ndim - 1], zs[2] = {1, c}, os[3] = {n, 1, c}, ts[2] = {vkd_tensor_numel(x) / c, c};
    /* the embedding op's gather, out[i] = table[idx[i]] + pos[0], with a zero pos row */
    vkd_tensor zero = g_new(g, 2, zs);
    vkd_tensor out = g_new(g, 3, os);
    vkd_tensor table;
    if (rec(g) && !(g->err = vkd_tensor_reshape(x, 2, ts, &table))) {
        check(g, vkd_cmd_fill(g->c, &zero.buf, zero.offset, vkd_tensor_bytes(&zero), 0));
        check(g, vkd_op_embedding(g->c, idx, 0, &table, &zero, &out));
    }
    g_free(g, &zero);
    int64_t o2[2] = {n, c};
    if (g_ok(g))
        check(g, vkd_tensor_reshape(&out, 2, o2, &out));
    return out;
}
