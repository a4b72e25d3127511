/* See check.h. */
#include "models/check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "io/safetensors.h"

void vkd_shape_str(char *buf, size_t len, int rank, const int64_t *s)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

typedef struct {
    const vkd_weights *w;
    vkd_weight_check *c;
    size_t reported;
} walk_ctx;

static void report(walk_ctx *k, int warning, const char *fmt, ...)
{
    vkd_weight_check *c = k->c;
    if (c->limit && k->reported >= c->limit)
        return;
    k->reported++;
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (c->say)
        c->say(c->user, line);
    else if (warning)
        VKD_WARN("%s", line);
    else
        VKD_ERROR("%s", line);
}

/* NaN/Inf among a tensor's values, read in chunks as fp32 (any float source dtype) */
static size_t count_non_finite(const vkd_wtensor *t)
{
    enum { CHUNK = 1 << 16 };
    float *buf = malloc(CHUNK * sizeof *buf);
    if (!buf)
        return 0;
    size_t bad = 0;
    const unsigned char *base = t->src->data;
    for (size_t e = 0; e < t->nelem; e += CHUNK) {
        size_t n = t->nelem - e < CHUNK ? t->nelem - e : CHUNK;
        if (vkd_st_convert_f32(t->src->dtype, base, t->first + e, n, buf) != VKD_OK)
            break;
        for (size_t i = 0; i < n; i++)
            bad += !isfinite(buf[i]);
    }
    free(buf);
    return bad;
}

static int check_one(const char *name, int rank, const int64_t *shape, void *user)
{
    walk_ctx *k = user;
    vkd_weight_check *c = k->c;
    const vkd_wtensor *t = vkd_weights_find(k->w, name);
    if (!t) {
        c->missing++;
        report(k, 0, "missing: %s", name);
        return 0;
    }
    if (c->used)
        c->used[t - vkd_weights_at(k->w, 0)] = 1;
    c->elems += t->nelem;
    int same = t->rank == rank;
    for (int i = 0; same && i < rank; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char a[128], b[128];
        vkd_shape_str(a, sizeof a, t->rank, t->shape);
        vkd_shape_str(b, sizeof b, rank, shape);
        c->wrong_shape++;
        report(k, 0, "wrong shape: %s is %s, expected %s (in %s)", name, a, b, t->file);
        return 0;
    }
    if (!vkd_st_dtype_is_float(t->src->dtype)) {
        c->wrong_dtype++;
        report(k, 0, "wrong dtype: %s is %s, expected a float type (F32, F16, BF16, F8) (in %s)", name,
               vkd_st_dtype_name(t->src->dtype), t->file);
        return 0;
    }
    if (c->scan_values) {
        size_t bad = count_non_finite(t);
        if (bad) {
            c->non_finite++;
            report(k, 1, "non-finite: %s holds %zu NaN/Inf value%s (in %s)", name, bad, bad == 1 ? "" : "s", t->file);
        }
    }
    return 0;
}

vkd_result vkd_model_check_weights(const vkd_weights *w, const vkd_model_config *cfg, vkd_weight_check *c)
{
    c->missing = c->wrong_shape = c->wrong_dtype = c->non_finite = 0;
    c->elems = 0;
    walk_ctx k = {w, c, 0};
    vkd_model_expected(cfg, check_one, &k);
    return c->missing || c->wrong_shape || c->wrong_dtype ? VKD_ERR_FORMAT : VKD_OK;
}
