/* ggml's block formats; see quant.h.
 *
 * Byte-for-byte agreement with ggml needs every float operation in ggml's order and
 * precision: sums accumulate left to right in float, `w*x*l` is (w*x)*l, an int meets a
 * float as a float, and nothing is fused. CMakeLists.txt builds this file with
 * -ffp-contract=off: an FMA (ARM64 compilers contract a*b+c by default) rounds once
 * where ggml's reference rounds twice and changes the chosen quants. Scales go through
 * fp16 with round-to-nearest-even (vkd_f32_to_f16, as ggml's GGML_FP32_TO_FP16). */
#include "io/quant.h"

#include <math.h>
#include <string.h>

#include "io/safetensors.h" /* vkd_f16_to_f32, vkd_f32_to_f16 */

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define QK 32
#define QK_K 256
/* ggml's GROUP_MAX_EPS: a group whose largest |x| is below this is all zeros */
#define GROUP_MAX_EPS 1e-15f

static const struct { const char *name; size_t block, bytes; int quantize; } qinfo[VKD_QTYPE_COUNT] = {
    [VKD_Q4_0] = {"Q4_0", QK, 18, 1},    [VKD_Q4_1] = {"Q4_1", QK, 20, 1},
    [VKD_Q5_0] = {"Q5_0", QK, 22, 1},    [VKD_Q5_1] = {"Q5_1", QK, 24, 1},
    [VKD_Q8_0] = {"Q8_0", QK, 34, 1},    [VKD_Q2_K] = {"Q2_K", QK_K, 84, 0},
    [VKD_Q3_K] = {"Q3_K", QK_K, 110, 0}, [VKD_Q4_K] = {"Q4_K", QK_K, 144, 1},
    [VKD_Q5_K] = {"Q5_K", QK_K, 176, 0}, [VKD_Q6_K] = {"Q6_K", QK_K, 210, 1},
};

const char *vkd_qtype_name(vkd_qtype t) { return (unsigned)t < VKD_QTYPE_COUNT ? qinfo[t].name : "?"; }
size_t vkd_qtype_block(vkd_qtype t) { return (unsigned)t < VKD_QTYPE_COUNT ? qinfo[t].block : 0; }
size_t vkd_qtype_block_bytes(vkd_qtype t) { return (unsigned)t < VKD_QTYPE_COUNT ? qinfo[t].bytes : 0; }
int vkd_qtype_can_quantize(vkd_qtype t) { return (unsigned)t < VKD_QTYPE_COUNT && qinfo[t].quantize; }

static float h2f(const uint8_t *p) { return vkd_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static void f2h(uint8_t *p, float f)
{
    uint16_t h = vkd_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* ggml's nearest_int: round half to even by adding 1.5 * 2^23 and reading the mantissa.
 * Exact for |f| < 2^22; beyond that it returns the same garbage ggml does (ggml only
 * asserts), which keeps the bytes identical even for extreme inputs. Not lrintf: that
 * follows the current rounding mode and saturates differently. */
static int nearest_int(float f)
{
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* ---- 32-value blocks --------------------------------------------------------------- */

static void q8_0(const float *x, uint8_t *y)
{
    float amax = 0.0f;
    for (int j = 0; j < QK; j++)
        amax = fmaxf(amax, fabsf(x[j])); /* ggml: MAX(amax, fabsf(v)); same for finite x */
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(y, d);
    for (int j = 0; j < QK; j++)
        y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id); /* roundf: halves away from zero */
}

/* Q4_0 / Q5_0: symmetric, d = (the value of largest |x|, with its sign) / -2^(bits-1). */
static void q4_0(const float *x, uint8_t *y)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++)
        if (amax < fabsf(x[j])) { /* strict: the first of equal |x| wins */
            amax = fabsf(x[j]);
            max = x[j];
        }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(y, d);
    for (int j = 0; j < QK / 2; j++) {
        /* (int8_t) truncates toward zero: x*id + 8.5 is >= 0.5, so this rounds */
        int a = imin(15, (int8_t)(x[j] * id + 8.5f));
        int b = imin(15, (int8_t)(x[QK / 2 + j] * id + 8.5f));
        y[2 + j] = (uint8_t)(a | (b << 4));
    }
}

static void q5_0(const float *x, uint8_t *y)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    const float d = max / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(y, d);
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
        int a = imin(31, (int8_t)(x[j] * id + 16.5f));
        int b = imin(31, (int8_t)(x[QK / 2 + j] * id + 16.5f));
        y[6 + j] = (uint8_t)((a & 0xf) | ((b & 0xf) << 4));
        qh |= (uint32_t)((a >> 4) & 1) << j;
        qh |= (uint32_t)((b >> 4) & 1) << (j + QK / 2);
    }
    for (int k = 0; k < 4; k++)
        y[2 + k] = (uint8_t)(qh >> (8 * k));
}

/* Q4_1 / Q5_1: asymmetric, x = d*q + m with m the block minimum. */
static void q4_1(const float *x, uint8_t *y)
{
    float min = 3.402823466e38f, max = -3.402823466e38f;
    for (int j = 0; j < QK; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(y, d);
    f2h(y + 2, min);
    for (int j = 0; j < QK / 2; j++) {
        int a = imin(15, (int8_t)((x[j] - min) * id + 0.5f));
        int b = imin(15, (int8_t)((x[QK / 2 + j] - min) * id + 0.5f));
        y[4 + j] = (uint8_t)(a | (b << 4));
    }
}

static void q5_1(const float *x, uint8_t *y)
{
    float min = 3.402823466e38f, max = -3.402823466e38f;
    for (int j = 0; j < QK; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(y, d);
    f2h(y + 2, min);
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
        int a = (uint8_t)((x[j] - min) * id + 0.5f); /* ggml: no clamp here */
        int b = (uint8_t)((x[QK / 2 + j] - min) * id + 0.5f);
        y[8 + j] = (uint8_t)((a & 0xf) | ((b & 0xf) << 4));
        qh |= (uint32_t)((a >> 4) & 1) << j;
        qh |= (uint32_t)((b >> 4) & 1) << (j + QK / 2);
    }
    for (int k = 0; k < 4; k++)
        y[4 + k] = (uint8_t)(qh >> (8 * k));
}

/* ---- K-quant helpers (ggml: make_qx_quants, make_qkx2_quants) ------------------------ */

/* Symmetric scale for n values into [-nmax, nmax-1] (rmse_type 1), weights qw or, when
 * NULL, x^2: start from -nmax/max, then try the 18 scales -(nmax +- 0.1*is)/max and keep
 * the one maximising (sum w x l)^2 / sum w l^2. L gets l + nmax. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L, const float *qw)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Scale and min for n values into [0, nmax] (x ~ scale*l - the_min); ggml's
 * make_qkx3_quants with weights and use_mad false is the same computation (its
 * `max <= min` test is `max == min` here, min being at most x[0] <= max): start from the
 * min/max range, then try nstep+1 scales (rmin + rdelta*is + nmax)/(max - min), each with
 * the weighted least-squares scale and min for its quants, keeping the lowest weighted
 * squared error. The order of every sum matters for the bytes. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += weights[i] * (diff * diff);
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* 6-bit scale j and min of a Q4_K/Q5_K block's 12 packed bytes (ggml: get_scale_min_k4). */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* ---- super-blocks of 256 ------------------------------------------------------------- */

static void q4_K(const float *x, uint8_t *y)
{
    uint8_t L[QK_K], Laux[32], *sc = y + 4, *qs = y + 16;
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0; /* scales are positive: the min is taken out */
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(xs[l]);
        scales[j] = make_qkx2_quants(32, 15, xs, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]); /* uint8_t: ggml's truncation */
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (uint8_t)((ls & 0xf) | ((lm & 0xf) << 4));
            sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    f2h(y, max_scale / 63.f);
    f2h(y + 2, max_min / 63.f);
    /* requantize against the stored (fp16, 6-bit) scales; a sub-block whose scale
     * rounds to 0 keeps the quants make_qkx2_quants chose, as in ggml */
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        scale_min_k4(j, sc, &s, &m);
        const float d = h2f(y) * s;
        if (d == 0.0f)
            continue;
        const float dm = h2f(y + 2) * m;
        for (int ii = 0; ii < 32; ii++)
            L[32 * j + ii] = (uint8_t)imax(0, imin(15, nearest_int((x[32 * j + ii] + dm) / d)));
    }
    for (int j = 0; j < QK_K; j += 64, qs += 32)
        for (int l = 0; l < 32; l++)
            qs[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

/* qw: NULL (quantize_row_q6_K_ref) or the block's 256 importance weights
 * (quantize_row_q6_K_impl, which passes them to make_qx_quants as they are) */
static void q6_K(const float *x, uint8_t *y, const float *qw)
{
    int8_t L[QK_K];
    float scales[16];
    uint8_t *ql = y, *qh = y + 128;
    int8_t *sc = (int8_t *)(y + 192);
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ib++) {
        scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, qw ? qw + 16 * ib : NULL);
        if (fabsf(scales[ib]) > max_abs_scale) {
            max_abs_scale = fabsf(scales[ib]);
            max_scale = scales[ib];
        }
    }
    memset(y, 0, 210);
    if (max_abs_scale < GROUP_MAX_EPS)
        return; /* all zeros, d = +0 */
    float iscale = -128.f / max_scale;
    f2h(y + 208, 1 / iscale);
    for (int ib = 0; ib < 16; ib++)
        sc[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
    for (int j = 0; j < 16; j++) {
        float d = h2f(y + 208) * sc[j];
        if (d == 0.0f)
            continue;
        for (int ii = 0; ii < 16; ii++)
            L[16 * j + ii] = (int8_t)(imax(-32, imin(31, nearest_int(x[16 * j + ii] / d))) + 32);
    }
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; l++) {
            int a = L[j + l], b = L[j + l + 32], c = L[j + l + 64], e = L[j + l + 96];
            ql[l] = (uint8_t)((a & 0xf) | ((c & 0xf) << 4));
            ql[l + 32] = (uint8_t)((b & 0xf) | ((e & 0xf) << 4));
            qh[l] = (uint8_t)((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6));
        }
}

/* ---- with an importance matrix (ggml's quantize_row_*_impl) ---------------------------- */

/* Non-negative values (sub-block scales or mins) into [0, nmax] with weights: the best
 * of 9 scales by weighted squared error, then up to 5 passes moving single quants while
 * (sum w x l)^2 / sum w l^2 grows. Note (w*diff)*diff here, w*(diff*diff) in qkx2. */
static float make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *qw)
{
    float max = 0;
    for (int i = 0; i < n; i++)
        max = x[i] > max ? x[i] : max;
    if (max < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)nearest_int(iscale * x[i]);
    float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * L[i];
        best_mse += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0)
            continue;
        float iscale_is = (0.1f * is + nmax) / max;
        float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            int l = imin(nmax, nearest_int(iscale_is * x[i]));
            float diff = x[i] - scale_is * l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imin(nmax, nearest_int(iscale * x[i]));
        L[i] = (uint8_t)l;
        sumlx += qw[i] * x[i] * l;
        suml2 += qw[i] * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = qw[i];
            float slx = sumlx - w * x[i] * L[i];
            float sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = imin(nmax, nearest_int(x[i] * sl2 / slx));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed)
            break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* One 32-value block with weights qw[j] * sqrt(sigma2 + x^2), sigma2 the ROW's mean
 * square (quantize_row_q4_0_impl ... q5_1_impl). */
static void small_block_weighted(vkd_qtype t, const float *x, uint8_t *y, const float *qw, float sigma2)
{
    float weight[QK];
    int8_t L[QK];
    uint8_t Lu[QK], Laux[QK];
    for (int j = 0; j < QK; j++)
        weight[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
    const int five = t == VKD_Q5_0 || t == VKD_Q5_1, asym = t == VKD_Q4_1 || t == VKD_Q5_1;
    if (asym) {
        float min;
        float d = make_qkx2_quants(QK, five ? 31 : 15, x, weight, Lu, &min, Laux, -0.9f, 0.05f, 36);
        f2h(y, d);
        f2h(y + 2, -min);
    } else {
        float d = make_qx_quants(QK, five ? 16 : 8, x, L, weight);
        f2h(y, d);
        for (int j = 0; j < QK; j++)
            Lu[j] = (uint8_t)L[j];
    }
    uint8_t *qs = y + (asym ? 4 : 2) + (five ? 4 : 0);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((Lu[j] & 0xf) | ((Lu[j + 16] & 0xf) << 4));
        qh |= (uint32_t)((Lu[j] >> 4) & 1) << j;
        qh |= (uint32_t)((Lu[j + 16] >> 4) & 1) << (j + 16);
    }
    if (five)
        for (int k = 0; k < 4; k++)
            y[(asym ? 4 : 2) + k] = (uint8_t)(qh >> (8 * k));
}

/* quantize_row_q4_K_impl: weights qw * sqrt(sigma2 + x^2) with sigma2 = 2 * the
 * super-block's mean square; sub-block scales and mins by make_qkx3_quants, then the
 * 6-bit scales and mins by make_qp_quants weighted by each sub-block's weight sum. */
static void q4_K_weighted(const float *x, uint8_t *y, const float *qw)
{
    uint8_t L[QK_K], Laux[32], Ls[8], Lm[8], *sc = y + 4, *qs = y + 16;
    float weights[32], mins[8], scales[8], sw[8];
    float sum_x2 = 0;
    for (int l = 0; l < QK_K; l++)
        sum_x2 += x[l] * x[l];
    float sigma2 = 2 * sum_x2 / QK_K;
    for (int j = 0; j < 8; j++) {
        for (int l = 0; l < 32; l++)
            weights[l] = qw[32 * j + l] * sqrtf(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; l++)
            sumw += weights[l];
        sw[j] = sumw;
        scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36);
    }
    float d_block = make_qp_quants(8, 63, scales, Ls, sw);
    float m_block = make_qp_quants(8, 63, mins, Lm, sw);
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = Ls[j], lm = Lm[j];
        if (j < 4) {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (uint8_t)((ls & 0xf) | ((lm & 0xf) << 4));
            sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    f2h(y, d_block);
    f2h(y + 2, m_block);
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        scale_min_k4(j, sc, &s, &m);
        const float d = h2f(y) * s;
        if (d == 0.0f)
            continue;
        const float dm = h2f(y + 2) * m;
        for (int ii = 0; ii < 32; ii++)
            L[32 * j + ii] = (uint8_t)imax(0, imin(15, nearest_int((x[32 * j + ii] + dm) / d)));
    }
    for (int j = 0; j < QK_K; j += 64, qs += 32)
        for (int l = 0; l < 32; l++)
            qs[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

int vkd_quantize_rows(vkd_qtype t, const float *src, void *dst, size_t nrows, size_t n_per_row, const float *imatrix)
{
    size_t bk = vkd_qtype_block(t), bb = vkd_qtype_block_bytes(t);
    if (!vkd_qtype_can_quantize(t) || n_per_row % bk)
        return -1;
    if (!imatrix || t == VKD_Q8_0) /* ggml's quantize_q8_0 ignores the matrix */
        return vkd_quantize_row(t, src, dst, nrows * n_per_row);
    uint8_t *p = (uint8_t *)dst;
    for (size_t r = 0; r < nrows; r++) {
        const float *x = src + r * n_per_row;
        uint8_t *y = p + r * (n_per_row / bk) * bb;
        float sum_x2 = 0;
        for (size_t j = 0; j < n_per_row; j++)
            sum_x2 += x[j] * x[j];
        float sigma2 = sum_x2 / n_per_row; /* the row's, for the 32-value types */
        for (size_t b = 0; b < n_per_row / bk; b++) {
            const float *xb = x + b * bk, *qw = imatrix + b * bk;
            uint8_t *yb = y + b * bb;
            if (t == VKD_Q4_K)
                q4_K_weighted(xb, yb, qw);
            else if (t == VKD_Q6_K)
                q6_K(xb, yb, qw);
            else
                small_block_weighted(t, xb, yb, qw, sigma2);
        }
    }
    return 0;
}

/* ---- dequantization (ggml: dequantize_row_*) ----------------------------------------- */

static void dq_block(vkd_qtype t, const uint8_t *b, float *y)
{
    switch (t) {
    case VKD_Q4_0: {
        const float d = h2f(b);
        for (int j = 0; j < 16; j++) {
            y[j] = ((b[2 + j] & 0xf) - 8) * d;
            y[j + 16] = ((b[2 + j] >> 4) - 8) * d;
        }
        break;
    }
    case VKD_Q4_1: {
        const float d = h2f(b), m = h2f(b + 2);
        for (int j = 0; j < 16; j++) {
            y[j] = (b[4 + j] & 0xf) * d + m;
            y[j + 16] = (b[4 + j] >> 4) * d + m;
        }
        break;
    }
    case VKD_Q5_0:
    case VKD_Q5_1: {
        const int one = t == VKD_Q5_1;
        const float d = h2f(b), m = one ? h2f(b + 2) : 0.0f;
        const uint8_t *qhp = b + (one ? 4 : 2), *qs = qhp + 4;
        uint32_t qh = (uint32_t)qhp[0] | ((uint32_t)qhp[1] << 8) | ((uint32_t)qhp[2] << 16) | ((uint32_t)qhp[3] << 24);
        for (int j = 0; j < 16; j++) {
            int x0 = (qs[j] & 0xf) | (int)(((qh >> j) << 4) & 0x10);
            int x1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            if (one) {
                y[j] = x0 * d + m;
                y[j + 16] = x1 * d + m;
            } else {
                y[j] = (x0 - 16) * d;
                y[j + 16] = (x1 - 16) * d;
            }
        }
        break;
    }
    case VKD_Q8_0: {
        const float d = h2f(b);
        for (int j = 0; j < 32; j++)
            y[j] = (int8_t)b[2 + j] * d;
        break;
    }
    case VKD_Q2_K: {
        const uint8_t *sc = b, *q = b + 16;
        const float d = h2f(b + 80), min = h2f(b + 82);
        int is = 0;
        for (int n = 0; n < QK_K; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int half = 0; half < 2; half++) {
                    uint8_t s = sc[is++];
                    float dl = d * (s & 0xf), ml = min * (s >> 4);
                    for (int l = 0; l < 16; l++)
                        *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
                }
        break;
    }
    case VKD_Q3_K: {
        const uint8_t *hm = b, *q = b + 32, *s = b + 96;
        const float d_all = h2f(b + 108);
        int8_t scales[16];
        for (int j = 0; j < 16; j++) { /* 4 low bits in bytes 0..7, 2 high bits in 8..11 */
            int lo = j < 8 ? s[j] & 0xf : s[j - 8] >> 4;
            int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
            scales[j] = (int8_t)((lo | (hi << 4)) - 32);
        }
        int is = 0;
        uint8_t m = 1;
        for (int n = 0; n < QK_K; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                for (int half = 0; half < 2; half++) {
                    float dl = d_all * scales[is++];
                    for (int l = 0; l < 16; l++) {
                        int k = l + 16 * half;
                        *y++ = dl * (((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
                    }
                }
        break;
    }
    case VKD_Q4_K:
    case VKD_Q5_K: {
        const int five = t == VKD_Q5_K;
        const float d = h2f(b), min = h2f(b + 2);
        const uint8_t *sc = b + 4, *qh = b + 16, *ql = b + (five ? 48 : 16);
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < QK_K; j += 64, ql += 32, is += 2, u1 <<= 2, u2 <<= 2) {
            uint8_t s, m;
            scale_min_k4(is, sc, &s, &m);
            const float d1 = d * s, m1 = min * m;
            scale_min_k4(is + 1, sc, &s, &m);
            const float d2 = d * s, m2 = min * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * ((ql[l] & 0xf) + (five && (qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * ((ql[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0)) - m2;
        }
        break;
    }
    case VKD_Q6_K: {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = h2f(b + 208);
        for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is] * q1; /* (d * sc) * q, as ggml */
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
        break;
    }
    default:
        break;
    }
}

int vkd_dequantize_row(vkd_qtype t, const void *src, float *dst, size_t n)
{
    size_t bk = vkd_qtype_block(t), bb = vkd_qtype_block_bytes(t);
    if (!bk || n % bk)
        return -1;
    const uint8_t *p = (const uint8_t *)src;
    for (size_t i = 0; i < n / bk; i++)
        dq_block(t, p + i * bb, dst + i * bk);
    return 0;
}

int vkd_quantize_row(vkd_qtype t, const float *src, void *dst, size_t n)
{
    size_t bk = vkd_qtype_block(t), bb = vkd_qtype_block_bytes(t);
    if (!vkd_qtype_can_quantize(t) || n % bk)
        return -1;
    uint8_t *p = (uint8_t *)dst;
    for (size_t i = 0; i < n / bk; i++) {
        const float *x = src + i * bk;
        uint8_t *y = p + i * bb;
        switch (t) {
        case VKD_Q4_0: q4_0(x, y); break;
        case VKD_Q4_1: q4_1(x, y); break;
        case VKD_Q5_0: q5_0(x, y); break;
        case VKD_Q5_1: q5_1(x, y); break;
        case VKD_Q8_0: q8_0(x, y); break;
        case VKD_Q4_K: q4_K(x, y); break;
        case VKD_Q6_K: q6_K(x, y, NULL); break;
        default: return -1;
        }
    }
    return 0;
}
