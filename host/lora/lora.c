/* LoRA files: modules, formats, checks and the host-side delta (see lora.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "lora/lora.h"
#include "lora/lora_names.h"

/* ---- module parts ---------------------------------------------------------------- */

enum part { DOWN, UP, MID, ALPHA, H1A, H1B, H2A, H2B, HT1, HT2, K1, K1A, K1B, K2, K2A, K2B, KT2, NPART };
static const struct { const char *suffix; enum part p; } suffixes[] = {
    {".lora_down.weight", DOWN}, {".lora_up.weight", UP},    {".lora_mid.weight", MID},
    {".lora_A.weight", DOWN},    {".lora_B.weight", UP},     {".lora.down.weight", DOWN},
    {".lora.up.weight", UP},     {".alpha", ALPHA},          {".hada_w1_a", H1A},
    {".hada_w1_b", H1B},         {".hada_w2_a", H2A},        {".hada_w2_b", H2B},
    {".hada_t1", HT1},           {".hada_t2", HT2},          {".lokr_w1", K1},
    {".lokr_w1_a", K1A},         {".lokr_w1_b", K1B},        {".lokr_w2", K2},
    {".lokr_w2_a", K2A},         {".lokr_w2_b", K2B},        {".lokr_t2", KT2},
};

enum kind { KIND_LORA, KIND_LOHA, KIND_LOKR };

typedef struct lora_module {
    char *name;                       /* the LoRA's module name */
    const vkd_st_tensor *part[NPART];
    enum kind kind;
    const vkd_wtensor *target;
    double scale;                     /* alpha / rank, or 1 */
    int64_t a, c;                     /* LoKr: w1 is [a, c] */
} lora_module;

struct vkd_lora {
    vkd_st_file *f;
    lora_module *m;                        /* matched, sorted by target name */
    size_t n;
    char **unmatched;
    size_t nun;
};

typedef struct { char *module; enum part p; const vkd_st_tensor *t; } entry;

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->module, ((const entry *)b)->module);
}

static int cmp_module(const void *a, const void *b)
{
    return strcmp(((const lora_module *)a)->target->name, ((const lora_module *)b)->target->name);
}

/* ---- checks ------------------------------------------------------------------------- */

#define BAD(...)                                                                                                        \
    do {                                                                                                                \
        VKD_ERROR(__VA_ARGS__);                                                                                         \
        return VKD_ERR_FORMAT;                                                                                          \
    } while (0)

static int64_t tail(const vkd_st_tensor *t) /* elements per row */
{
    return t->shape[0] ? (int64_t)t->nelem / t->shape[0] : 0;
}

/* 2-D [rows, cols] or 4-D [rows, cols, 1, 1] */
static int mat(const vkd_st_tensor *t, int64_t rows, int64_t cols)
{
    return (t->rank == 2 || (t->rank == 4 && t->shape[2] == 1 && t->shape[3] == 1)) && t->shape[0] == rows &&
           t->shape[1] == cols;
}

static vkd_result check_module(const char *file, lora_module *m)
{
    const vkd_wtensor *t = m->target;
    int64_t out = t->shape[0], in = t->shape[1], S = t->rank == 4 ? t->shape[2] * t->shape[3] : 1, K = in * S;
    const vkd_st_tensor *const *p = m->part;
    for (int i = 0; i < NPART; i++)
        if (p[i] && (!vkd_st_dtype_is_float(p[i]->dtype) || p[i]->rank < (i == ALPHA ? 0 : 2) || p[i]->rank > 4))
            BAD("%s: LoRA tensor '%s' is %s rank %d: expected a float %s", file, p[i]->name,
                vkd_st_dtype_name(p[i]->dtype), p[i]->rank, i == ALPHA ? "scalar" : "matrix");
    if (p[ALPHA] && p[ALPHA]->nelem != 1)
        BAD("%s: LoRA tensor '%s' should hold one value, holds %zu", file, p[ALPHA]->name, p[ALPHA]->nelem);
    int64_t rank = 0;
    if (m->kind == KIND_LORA) {
        if (!p[DOWN] || !p[UP])
            BAD("%s: LoRA module '%s' lacks its %s", file, m->name, p[DOWN] ? "up (lora_up / lora_B)" : "down (lora_down / lora_A)");
        rank = p[DOWN]->shape[0];
        int64_t ru = p[MID] ? p[MID]->shape[0] : rank;
        int down_ok = p[MID] ? mat(p[DOWN], rank, in)
                             : mat(p[DOWN], rank, in) ? S == 1
                                                      : p[DOWN]->rank == 4 && p[DOWN]->shape[1] == in &&
                                                            p[DOWN]->shape[2] == t->shape[2] && p[DOWN]->shape[3] == t->shape[3];
        int mid_ok = !p[MID] || (p[MID]->rank == 4 && p[MID]->shape[1] == rank && t->rank == 4 &&
                                  p[MID]->shape[2] == t->shape[2] && p[MID]->shape[3] == t->shape[3]);
        if (!down_ok || !mid_ok || !mat(p[UP], out, ru))
            BAD("%s: LoRA module '%s' (rank %lld) does not fit %s [%lld, %lld%s]: down %s[%lld, %lld, ..], up [%lld, %lld, ..]",
                file, m->name, (long long)rank, t->name, (long long)out, (long long)in, t->rank == 4 ? ", kh, kw" : "",
                p[MID] ? "(with a mid core) " : "", (long long)p[DOWN]->shape[0], (long long)p[DOWN]->shape[1],
                (long long)p[UP]->shape[0], (long long)p[UP]->shape[1]);
        if (ru < 1 || ru > out || ru > K)
            BAD("%s: LoRA module '%s': rank %lld is outside 1..%lld for %s", file, m->name, (long long)ru,
                (long long)(out < K ? out : K), t->name);
    } else if (m->kind == KIND_LOHA) {
        if (!p[H1A] || !p[H1B] || !p[H2A] || !p[H2B] || !p[HT1] != !p[HT2])
            BAD("%s: LoHa module '%s' lacks one of hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b%s", file, m->name,
                p[HT1] || p[HT2] ? ", or has one Tucker core of two" : "");
        rank = p[H1B]->shape[0];
        int64_t r2 = p[H2B]->shape[0];
        if (p[HT1]) { /* Tucker (LyCORIS use_tucker, conv only): a [r, out], b [r, in], t [r, r, kh, kw] */
            const vkd_st_tensor *t1 = p[HT1], *t2 = p[HT2];
            if (t->rank != 4 || t1->rank != 4 || t2->rank != 4 || !mat(p[H1A], rank, out) || !mat(p[H2A], r2, out) ||
                !mat(p[H1B], rank, in) || !mat(p[H2B], r2, in) || t1->shape[0] != rank || t1->shape[1] != rank ||
                t2->shape[0] != r2 || t2->shape[1] != r2 || t1->shape[2] != t->shape[2] ||
                t1->shape[3] != t->shape[3] || t2->shape[2] != t->shape[2] || t2->shape[3] != t->shape[3])
                BAD("%s: LoHa module '%s' with Tucker cores does not fit %s [%lld, %lld, kh, kw]: w1_a [%lld, %lld], "
                    "w1_b [%lld, %lld], t1 [%lld, %lld, ..] (expected a [r, out], b [r, in], t [r, r, kh, kw])",
                    file, m->name, t->name, (long long)out, (long long)in, (long long)p[H1A]->shape[0],
                    (long long)p[H1A]->shape[1], (long long)p[H1B]->shape[0], (long long)p[H1B]->shape[1],
                    (long long)t1->shape[0], (long long)t1->shape[1]);
        } else if (!mat(p[H1A], out, rank) || !mat(p[H2A], out, r2) || tail(p[H1B]) != K || tail(p[H2B]) != K) {
            BAD("%s: LoHa module '%s' does not fit %s [%lld, %lld]: w1_a [%lld, %lld], w1_b [%lld, %lld elements a row]",
                file, m->name, t->name, (long long)out, (long long)K, (long long)p[H1A]->shape[0],
                (long long)p[H1A]->shape[1], (long long)p[H1B]->shape[0], (long long)tail(p[H1B]));
        }
        if (rank < 1 || r2 < 1 || rank > out || rank > K || r2 > out || r2 > K)
            BAD("%s: LoHa module '%s': ranks %lld, %lld outside 1..%lld for %s", file, m->name, (long long)rank,
                (long long)r2, (long long)(out < K ? out : K), t->name);
    } else {
        if (p[KT2]) {
            VKD_ERROR("%s: LoKr module '%s' has a Tucker core (lokr_t2): not supported yet", file, m->name);
            return VKD_ERR_UNSUPPORTED;
        }
        int w1 = p[K1] ? 1 : (p[K1A] && p[K1B]) ? 2 : 0, w2 = p[K2] ? 1 : (p[K2A] && p[K2B]) ? 2 : 0;
        if (!w1 || !w2)
            BAD("%s: LoKr module '%s' lacks lokr_w1 (or _a/_b) or lokr_w2 (or _a/_b)", file, m->name);
        int64_t a = w1 == 1 ? p[K1]->shape[0] : p[K1A]->shape[0], c = w1 == 1 ? p[K1]->shape[1] : tail(p[K1B]);
        if (w1 == 1 && p[K1]->rank != 2)
            BAD("%s: LoKr '%s': lokr_w1 should be 2-D", file, p[K1]->name);
        if (w1 == 2 && (p[K1A]->rank != 2 || p[K1A]->shape[1] != p[K1B]->shape[0] || p[K1B]->rank != 2))
            BAD("%s: LoKr module '%s': lokr_w1_a and lokr_w1_b do not chain", file, m->name);
        if (a < 1 || c < 1 || out % a || in % c)
            BAD("%s: LoKr module '%s': w1 [%lld, %lld] does not divide %s [%lld, %lld]", file, m->name, (long long)a,
                (long long)c, t->name, (long long)out, (long long)in);
        int64_t b = out / a, d = in / c;
        int w2ok = w2 == 1 ? p[K2]->shape[0] == b && tail(p[K2]) == d * S && p[K2]->shape[1] == d &&
                                 (p[K2]->rank == 2 ? S == 1 : p[K2]->rank == 4 && p[K2]->shape[2] * p[K2]->shape[3] == S &&
                                                                  p[K2]->shape[2] == t->shape[2])
                           : mat(p[K2A], b, p[K2B]->shape[0]) && tail(p[K2B]) == d * S;
        if (!w2ok)
            BAD("%s: LoKr module '%s': w2 is not [%lld, %lld%s] for %s", file, m->name, (long long)b, (long long)d,
                S > 1 ? ", kh, kw" : "", t->name);
        if (w1 == 2)
            rank = p[K1B]->shape[0];
        else if (w2 == 2)
            rank = p[K2B]->shape[0];
        if (w1 == 2 && (rank < 1 || rank > a || rank > c))
            BAD("%s: LoKr module '%s': rank %lld too large for w1 [%lld, %lld]", file, m->name, (long long)rank,
                (long long)a, (long long)c);
        if (w1 != 2 && w2 == 2 && (rank < 1 || rank > b || rank > d * S))
            BAD("%s: LoKr module '%s': rank %lld too large for w2 [%lld, %lld]", file, m->name, (long long)rank,
                (long long)b, (long long)(d * S));
        m->a = a;
        m->c = c;
    }
    m->scale = 1.0;
    if (p[ALPHA] && rank > 0) { /* LoKr with whole factors: scale 1 (LyCORIS, A1111) */
        float alpha;
        if (vkd_st_tensor_to_f32(p[ALPHA], &alpha) != VKD_OK)
            BAD("%s: LoRA tensor '%s' cannot be read", file, p[ALPHA]->name);
        m->scale = (double)alpha / (double)rank;
    }
    return VKD_OK;
}

/* ---- open ----------------------------------------------------------------------------- */

static int add_unmatched(vkd_lora *l, const char *name)
{
    char **u = realloc(l->unmatched, (l->nun + 1) * sizeof *u);
    if (!u)
        return 0;
    l->unmatched = u;
    return (u[l->nun] = strdup(name)) ? (l->nun++, 1) : 0;
}

/* A module name only another family's LoRA has: kohya's and diffusers' text-encoder
 * prefixes tell SDXL (two encoders) from SD1/SD2 (one). */
static const char *foreign_family(const char *module, vkd_family f)
{
    static const char *const sdxl_only[] = {"lora_te1_", "lora_te2_", "text_encoder_2."};
    if (f == VKD_FAMILY_SDXL)
        return strncmp(module, "lora_te_", 8) ? NULL : "SD1.x/SD2.x";
    for (size_t i = 0; i < sizeof sdxl_only / sizeof sdxl_only[0]; i++)
        if (!strncmp(module, sdxl_only[i], strlen(sdxl_only[i])))
            return "SDXL";
    return NULL;
}

static vkd_result build(vkd_lora *l, const vkd_weights *w, const vkd_model_config *cfg)
{
    const char *file = vkd_st_label(l->f);
    size_t n = vkd_st_count(l->f), ne = 0;
    entry *e = calloc(n ? n : 1, sizeof *e);
    vkd_lora_names names = {0};
    vkd_result r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!e || vkd_lora_names_build(w, cfg, &names) != VKD_OK)
        goto done;
    for (size_t i = 0; i < n; i++) {
        const vkd_st_tensor *t = vkd_st_at(l->f, i);
        size_t len = strlen(t->name), best = 0;
        int which = -1;
        for (size_t k = 0; k < sizeof suffixes / sizeof suffixes[0]; k++) {
            size_t sl = strlen(suffixes[k].suffix);
            if (len > sl && sl > best && !strcmp(t->name + len - sl, suffixes[k].suffix))
                best = sl, which = (int)k;
        }
        if (which < 0) {
            if (!add_unmatched(l, t->name))
                goto done;
            continue;
        }
        if (!(e[ne].module = strndup(t->name, len - best)))
            goto done;
        e[ne].p = suffixes[which].p;
        e[ne++].t = t;
    }
    qsort(e, ne, sizeof *e, cmp_entry);
    l->m = calloc(ne ? ne : 1, sizeof *l->m);
    if (!l->m)
        goto done;
    for (size_t i = 0; i < ne;) {
        size_t j = i;
        lora_module m = {0};
        unsigned kinds = 0;
        for (; j < ne && !strcmp(e[j].module, e[i].module); j++) {
            if (m.part[e[j].p]) {
                VKD_ERROR("%s: LoRA module '%s' has two tensors for one part ('%s', '%s')", file, e[i].module,
                          m.part[e[j].p]->name, e[j].t->name);
                r = VKD_ERR_FORMAT;
                goto done;
            }
            m.part[e[j].p] = e[j].t;
            enum part p = e[j].p;
            kinds |= p == ALPHA ? 0u : p <= MID ? 1u : p <= HT2 ? 2u : 4u;
        }
        const char *other = foreign_family(e[i].module, cfg->family);
        if (other) {
            VKD_ERROR("%s: a LoRA for %s (module '%s'), the model is %s", file, other, e[i].module,
                      vkd_family_name(cfg->family));
            r = VKD_ERR_UNSUPPORTED;
            goto done;
        }
        if (kinds != 1 && kinds != 2 && kinds != 4) {
            VKD_ERROR("%s: LoRA module '%s' %s", file, e[i].module,
                      kinds ? "mixes the tensors of LoRA, LoHa and LoKr" : "has an alpha and nothing else");
            r = VKD_ERR_FORMAT;
            goto done;
        }
        m.kind = kinds == 1 ? KIND_LORA : kinds == 2 ? KIND_LOHA : KIND_LOKR;
        m.target = vkd_lora_names_find(&names, e[i].module);
        if (!m.target) {
            if (!add_unmatched(l, e[i].module))
                goto done;
        } else {
            m.name = e[i].module;
            e[i].module = NULL; /* moved */
            l->m[l->n++] = m;
            if ((r = check_module(file, &l->m[l->n - 1])) != VKD_OK)
                goto done;
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
        }
        i = j;
    }
    if (l->n)
        qsort(l->m, l->n, sizeof *l->m, cmp_module);
    for (size_t i = 1; i < l->n; i++)
        if (l->m[i].target == l->m[i - 1].target) {
            VKD_ERROR("%s: LoRA modules '%s' and '%s' both change %s", file, l->m[i - 1].name, l->m[i].name,
                      l->m[i].target->name);
            r = VKD_ERR_FORMAT;
            goto done;
        }
    if (l->nun) {
        char list[512] = "";
        for (size_t i = 0; i < l->nun && i < 4; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", l->unmatched[i]);
        VKD_WARN("%s: %zu LoRA module(s) match nothing in this %s model, ignored: %s%s", file, l->nun,
                 vkd_family_name(cfg->family), list, l->nun > 4 ? ", ..." : "");
    }
    if (!l->n) {
        VKD_ERROR("%s: no LoRA module matches a tensor of this %s model", file, vkd_family_name(cfg->family));
        r = VKD_ERR_UNSUPPORTED;
        goto done;
    }
    r = VKD_OK;
done:
    for (size_t i = 0; e && i < ne; i++)
        free(e[i].module);
    free(e);
    vkd_lora_names_free(&names);
    return r;
}

static vkd_result finish(vkd_st_file *f, const vkd_weights *w, const vkd_model_config *cfg, vkd_lora **out)
{
    vkd_lora *l = calloc(1, sizeof *l);
    if (!l) {
        vkd_st_close(f);
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    l->f = f;
    vkd_result r = build(l, w, cfg);
    if (r != VKD_OK) {
        vkd_lora_close(l);
        return r;
    }
    *out = l;
    return VKD_OK;
}

vkd_result vkd_lora_open(const char *path, const vkd_weights *w, const vkd_model_config *cfg, vkd_lora **out)
{
    *out = NULL;
    vkd_st_file *f = NULL;
    vkd_result r = vkd_st_open(path, &f);
    return r != VKD_OK ? r : finish(f, w, cfg, out);
}

vkd_result vkd_lora_open_memory(const void *data, size_t size, const char *label, const vkd_weights *w,
                                const vkd_model_config *cfg, vkd_lora **out)
{
    *out = NULL;
    vkd_st_file *f = NULL;
    vkd_result r = vkd_st_open_memory(data, size, label, &f);
    return r != VKD_OK ? r : finish(f, w, cfg, out);
}

void vkd_lora_close(vkd_lora *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->m[i].name);
    free(l->m);
    for (size_t i = 0; i < l->nun; i++)
        free(l->unmatched[i]);
    free(l->unmatched);
    vkd_st_close(l->f);
    free(l);
}

size_t vkd_lora_count(const vkd_lora *l) { return l->n; }
size_t vkd_lora_unmatched_count(const vkd_lora *l) { return l->nun; }
const char *vkd_lora_unmatched(const vkd_lora *l, size_t i) { return i < l->nun ? l->unmatched[i] : NULL; }

int vkd_lora_target(const vkd_lora *l, size_t i, const char **name, int64_t shape[VKD_ST_MAX_RANK])
{
    if (i >= l->n)
        return 0;
    const vkd_wtensor *t = l->m[i].target;
    if (name)
        *name = t->name;
    if (shape)
        memcpy(shape, t->shape, sizeof t->shape);
    return t->rank;
}

/* ---- delta ------------------------------------------------------------------------------ */

static float *load(const vkd_st_tensor *t, vkd_result *r)
{
    float *v = t ? malloc(t->nelem * sizeof *v + 1) : NULL;
    if (t && !v)
        *r = VKD_ERR_OUT_OF_HOST_MEMORY;
    else if (t && (*r = vkd_st_tensor_to_f32(t, v)) != VKD_OK) {
        free(v);
        v = NULL;
    }
    return v;
}

/* c[M, N] = a[M, R] . b[R, N], in double */
static void matmul(const float *a, const float *b, double *c, int64_t M, int64_t R, int64_t N)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < R; k++)
                s += (double)a[i * R + k] * b[k * N + j];
            c[i * N + j] = s;
        }
}

/* A Tucker module's down side, mid[ru, rd, S] . down[rd, I] as [ru, I, S] in double. */
static double *tucker_down(const lora_module *m, const float *mid, const float *down, int64_t I, int64_t S)
{
    int64_t ru = m->part[MID]->shape[0], rd = m->part[DOWN]->shape[0];
    double *t = calloc((size_t)(ru * I * S) + 1, sizeof *t);
    if (!t)
        return NULL;
    for (int64_t a = 0; a < ru; a++)
        for (int64_t c = 0; c < I; c++)
            for (int64_t s = 0; s < S; s++) {
                double acc = 0;
                for (int64_t j = 0; j < rd; j++)
                    acc += (double)mid[(a * rd + j) * S + s] * down[j * I + c];
                t[(a * I + c) * S + s] = acc;
            }
    return t;
}

/* A Tucker LoHa side: out[o, c, s] = sum_i a[i, o] sum_j t[i, j, s] b[j, c], a [r, O],
 * b [r, I], t [r, r, S], in double. */
static void tucker_side(const float *t, const float *a, const float *b, int64_t r, int64_t O, int64_t I, int64_t S,
                        double *out)
{
    for (int64_t o = 0; o < O * I * S; o++)
        out[o] = 0;
    for (int64_t i = 0; i < r; i++)
        for (int64_t c = 0; c < I; c++)
            for (int64_t s = 0; s < S; s++) {
                double tb = 0;
                for (int64_t j = 0; j < r; j++)
                    tb += (double)t[(i * r + j) * S + s] * b[j * I + c];
                for (int64_t o = 0; o < O; o++)
                    out[(o * I + c) * S + s] += (double)a[i * O + o] * tb;
            }
}

vkd_result vkd_lora_delta(const vkd_lora *l, size_t i, float *out, float multiplier)
{
    if (i >= l->n)
        return VKD_ERR_INVALID_ARG;
    const lora_module *m = &l->m[i];
    const vkd_wtensor *t = m->target;
    int64_t O = t->shape[0], I = t->shape[1], S = t->rank == 4 ? t->shape[2] * t->shape[3] : 1, K = I * S;
    vkd_result r = VKD_OK;
    float *f[NPART] = {0};
    for (int p = 0; p < NPART; p++)
        if (p != ALPHA && m->part[p] && !(f[p] = load(m->part[p], &r)))
            goto done;
    double *d = malloc((size_t)(O * K) * sizeof *d + 1), *tmp = NULL;
    if (!d) {
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    if (m->kind == KIND_LORA && !f[MID]) {
        matmul(f[UP], f[DOWN], d, O, m->part[DOWN]->shape[0], K);
    } else if (m->kind == KIND_LORA) { /* up[O, ru] . (mid[ru, rd, S] . down[rd, I]) */
        int64_t ru = m->part[MID]->shape[0];
        if (!(tmp = tucker_down(m, f[MID], f[DOWN], I, S))) {
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
        } else {
            for (int64_t o = 0; o < O; o++)
                for (int64_t k = 0; k < K; k++) {
                    double acc = 0;
                    for (int64_t a = 0; a < ru; a++)
                        acc += (double)f[UP][o * ru + a] * tmp[a * K + k];
                    d[o * K + k] = acc;
                }
        }
    } else if (m->kind == KIND_LOHA) {
        tmp = malloc((size_t)(O * K) * sizeof *tmp + 1);
        if (!tmp) {
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
        } else {
            if (f[HT1]) { /* each side sum_ij t[i, j, s] a[i, o] b[j, c] (A1111's make_weight_cp) */
                tucker_side(f[HT1], f[H1A], f[H1B], m->part[H1B]->shape[0], O, I, S, d);
                tucker_side(f[HT2], f[H2A], f[H2B], m->part[H2B]->shape[0], O, I, S, tmp);
            } else {
                matmul(f[H1A], f[H1B], d, O, m->part[H1B]->shape[0], K);
                matmul(f[H2A], f[H2B], tmp, O, m->part[H2B]->shape[0], K);
            }
            for (int64_t k = 0; k < O * K; k++)
                d[k] *= tmp[k];
        }
    } else { /* kron(w1[a, c], w2[b, d, S]) */
        int64_t a = m->a, c = m->c, b = O / a, dd = I / c;
        double *w1 = malloc((size_t)(a * c) * sizeof *w1 + 1), *w2 = malloc((size_t)(b * dd * S) * sizeof *w2 + 1);
        if (!w1 || !w2) {
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
        } else {
            if (f[K1])
                for (int64_t k = 0; k < a * c; k++)
                    w1[k] = f[K1][k];
            else
                matmul(f[K1A], f[K1B], w1, a, m->part[K1B]->shape[0], c);
            if (f[K2])
                for (int64_t k = 0; k < b * dd * S; k++)
                    w2[k] = f[K2][k];
            else
                matmul(f[K2A], f[K2B], w2, b, m->part[K2B]->shape[0], dd * S);
            for (int64_t i1 = 0; i1 < a; i1++)
                for (int64_t i2 = 0; i2 < b; i2++)
                    for (int64_t j1 = 0; j1 < c; j1++)
                        for (int64_t j2 = 0; j2 < dd; j2++)
                            for (int64_t s = 0; s < S; s++)
                                d[((i1 * b + i2) * I + j1 * dd + j2) * S + s] =
                                    w1[i1 * c + j1] * w2[(i2 * dd + j2) * S + s];
        }
        free(w1);
        free(w2);
    }
    if (r == VKD_OK)
        for (int64_t k = 0; k < O * K; k++)
            out[k] = (float)(d[k] * m->scale * multiplier);
    free(tmp);
    free(d);
done:
    for (int p = 0; p < NPART; p++)
        free(f[p]);
    return r;
}

/* ---- factors for the device ------------------------------------------------------------- */

static int cmp_name_module(const void *key, const void *m)
{
    return strcmp(key, ((const lora_module *)m)->target->name);
}

long vkd_lora_find(const vkd_lora *l, const char *name)
{
    const lora_module *m = l->n ? bsearch(name, l->m, l->n, sizeof *l->m, cmp_name_module) : NULL;
    return m ? (long)(m - l->m) : -1;
}

vkd_result vkd_lora_factors(const vkd_lora *l, size_t i, float multiplier, vkd_wdelta *out)
{
    memset(out, 0, sizeof *out);
    if (i >= l->n)
        return VKD_ERR_INVALID_ARG;
    const lora_module *m = &l->m[i];
    const vkd_wtensor *t = m->target;
    int64_t O = t->shape[0], I = t->shape[1], S = t->rank == 4 ? t->shape[2] * t->shape[3] : 1;
    vkd_result r = VKD_OK;
    if (m->kind != KIND_LORA) { /* LoHa, LoKr: the whole delta, made here in double */
        out->u = malloc((size_t)(O * I * S) * sizeof *out->u + 1);
        if (!out->u)
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        out->scale = 1.0f;
        if ((r = vkd_lora_delta(l, i, out->u, multiplier)))
            free(out->u), out->u = NULL;
        return r;
    }
    out->scale = (float)(m->scale * multiplier);
    out->rank = m->part[MID] ? m->part[MID]->shape[0] : m->part[DOWN]->shape[0];
    if (!(out->u = load(m->part[UP], &r)))
        return r ? r : VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!m->part[MID]) {
        if (!(out->d = load(m->part[DOWN], &r)))
            goto fail;
        return VKD_OK;
    }
    float *mid = load(m->part[MID], &r), *down = mid ? load(m->part[DOWN], &r) : NULL;
    double *td = down ? tucker_down(m, mid, down, I, S) : NULL;
    if (td && (out->d = malloc((size_t)(out->rank * I * S) * sizeof *out->d + 1)))
        for (int64_t k = 0; k < out->rank * I * S; k++)
            out->d[k] = (float)td[k];
    free(mid), free(down), free(td);
    if (out->d)
        return VKD_OK;
    if (!r)
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
fail:
    free(out->u), free(out->d);
    memset(out, 0, sizeof *out);
    return r;
}
