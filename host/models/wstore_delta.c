/* LoRA deltas added to the store's device tensors in place (wstore.h, issue 22).
 *
 * A device tensor is built from one or more checkpoint tensors (its slot key says how,
 * wstore_impl.h): a weight as it is, a conv kernel re-laid [out, kh, kw, in], linears
 * stacked by rows, or linears with a layer norm folded in (w diag(gamma), plus fp32
 * scales [2, rows]: row sums and b + w beta). Every one of those is linear in W, so a
 * delta u d becomes u d' with d' re-laid or scaled on the host (d is [rank, in*kh*kw],
 * small), and the product is made on the device by ops/lora.h into the tensor's rows. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "models/wstore_impl.h"
#include "ops/lora.h"

#define MAX_DELTAS 16 /* LoRAs changing one tensor at once */

/* One checkpoint tensor behind a slot, and where its rows start in the device tensor. */
typedef struct source {
    char *name;  /* checkpoint name */
    char *layer; /* folded pair: the name without ".weight" */
    const vkd_wtensor *wt;
    int64_t row0;
} source;

typedef struct plan {
    source *src;
    int n;
    char *ln;   /* folded pair: the layer norm's name */
    slot *sc;   /* folded pair: the scales' slot */
    char *key;  /* a copy the names point into */
} plan;

static void plan_free(plan *p)
{
    for (int j = 0; j < p->n; j++)
        free(p->src[j].name), free(p->src[j].layer);
    free(p->src);
    free(p->key);
}

static vkd_result add_source(vkd_wstore *s, plan *p, const char *layer, bool folded, int64_t *row)
{
    source *src = &p->src[p->n];
    memset(src, 0, sizeof *src);
    size_t len = strlen(layer);
    if (!(src->name = malloc(len + 8)) || (folded && !(src->layer = strdup(layer))))
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    memcpy(src->name, layer, len + 1);
    if (folded)
        strcat(src->name, ".weight");
    p->n++;
    if (!(src->wt = vkd_weights_find(s->w, src->name)) || src->wt->rank < 1) {
        VKD_ERROR("the checkpoint has no tensor %s", src->name);
        return VKD_ERR_FORMAT;
    }
    src->row0 = *row;
    *row += src->wt->shape[0];
    return VKD_OK;
}

/* Which checkpoint tensors the slot is made of. A bias concatenation and a folded pair's
 * scales have none (the pair's weight slot does the scales). */
static vkd_result plan_slot(vkd_wstore *s, slot *sl, plan *p)
{
    memset(p, 0, sizeof *p);
    if (!(p->key = strdup(sl->name)))
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    char *fold = strstr(p->key, LNFOLD_SEP), *list = p->key;
    bool stacked = strchr(p->key, '+') != NULL;
    if ((fold || stacked) && sl->kind == VKD_W_RAW)
        return VKD_OK;
    if (fold) {
        *fold = 0;
        p->ln = p->key;
        list = fold + strlen(LNFOLD_SEP);
        if (!(p->sc = vkd_ws_find_slot(s, sl->name, VKD_W_RAW)) || !p->sc->name)
            return VKD_ERR_INTERNAL;
    }
    int count = 1;
    for (const char *c = list; *c; c++)
        count += *c == '+';
    if (!(p->src = calloc((size_t)count, sizeof *p->src)))
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    int64_t row = 0;
    for (char *tok = list, *next; tok; tok = next) {
        if ((next = strchr(tok, '+')))
            *next++ = 0;
        vkd_result r = add_source(s, p, tok, fold != NULL, &row);
        if (r)
            return r;
    }
    return VKD_OK;
}

/* ---- one delta onto the device -------------------------------------------------------- */

/* Device tensors a slot's refresh records on, freed after the submit. Each is allocated
 * on its own: the recorded ops keep pointers to them while the list grows. */
typedef struct temps {
    vkd_tensor **t;
    int n, cap;
} temps;

static vkd_tensor *temp_slot(temps *tp)
{
    if (tp->n == tp->cap) {
        int cap = tp->cap ? tp->cap * 2 : 16;
        vkd_tensor **t = realloc(tp->t, (size_t)cap * sizeof *t);
        if (!t)
            return NULL;
        tp->t = t, tp->cap = cap;
    }
    return (tp->t[tp->n] = calloc(1, sizeof **tp->t)) ? tp->t[tp->n++] : NULL;
}

/* A new tensor [rows, cols] of dtype dt in the list, holding host's values converted. */
static vkd_tensor *temp_new(vkd_wstore *s, temps *tp, vkd_dtype dt, int64_t rows, int64_t cols, const float *host,
                            vkd_result *r)
{
    int64_t shape[2] = {rows, cols};
    vkd_tensor *t = temp_slot(tp);
    if (!t) {
        *r = VKD_ERR_OUT_OF_HOST_MEMORY;
        return NULL;
    }
    if ((*r = vkd_tensor_create(s->d, dt, 2, shape, t)))
        return NULL;
    return (*r = vkd_tensor_upload_f32(s->d, t, host)) ? NULL : t;
}

static void temps_free(vkd_wstore *s, temps *tp)
{
    for (int i = 0; i < tp->n; i++) {
        vkd_tensor_destroy(s->d, tp->t[i]); /* a zeroed tensor (creation failed) is fine */
        free(tp->t[i]);
    }
    free(tp->t);
    memset(tp, 0, sizeof *tp);
}

/* The rows of a [rows, in, kh, kw] matrix re-laid as conv2d keeps kernels: [rows, kh, kw, in]. */
static void relay_rows(const float *x, float *y, int64_t rows, int64_t in, int64_t k)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < in; c++)
            for (int64_t q = 0; q < k; q++)
                y[(r * k + q) * in + c] = x[(r * in + c) * k + q];
}

/* Records delta dl onto source src of slot sl (and the folded scales, gamma/beta given).
 * A low-rank delta goes up as u * scale and the down factor transposed, [cols, rank] as
 * vkd_op_linear takes a weight, both in the weight's dtype (fp16 factors, as most LoRA
 * files store them; the GEMM still sums in fp32 and rounds the weight once). */
static vkd_result record_delta(vkd_wstore *s, vkd_cmd *c, temps *tp, const plan *p, const slot *sl,
                               const source *src, const vkd_wdelta *dl, const float *gamma, const float *beta)
{
    const vkd_wtensor *wt = src->wt;
    int64_t out = wt->shape[0], cols = (int64_t)wt->nelem / out, total_rows = sl->t.shape[0];
    int64_t rows_d = dl->rank ? dl->rank : out; /* the factor re-laid or scaled: d, or a dense u */
    const float *x = dl->rank ? dl->d : dl->u;
    float *y = malloc((size_t)(rows_d * cols) * sizeof *y), *xb = NULL, *yt = NULL;
    vkd_result r = VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!y)
        return r;
    if (sl->kind == VKD_W_CONV && wt->rank == 4) {
        relay_rows(x, y, rows_d, wt->shape[1], wt->shape[2] * wt->shape[3]);
    } else if (gamma) { /* (u d) diag(gamma) = u (d diag(gamma)); the bias moves by u (d beta) */
        if (!(xb = malloc((size_t)rows_d * sizeof *xb)))
            goto done;
        for (int64_t i = 0; i < rows_d; i++) {
            double acc = 0;
            for (int64_t q = 0; q < cols; q++) {
                y[i * cols + q] = x[i * cols + q] * gamma[q];
                acc += (double)x[i * cols + q] * beta[q];
            }
            xb[i] = (float)acc;
        }
    } else {
        memcpy(y, x, (size_t)(rows_d * cols) * sizeof *y);
    }
    const vkd_tensor *dy, *du, *db;
    vkd_dtype wdt = sl->t.dtype;
    if (dl->rank) { /* u * scale [out, rank] and d' transposed [cols, rank], in the weight's dtype */
        float *us = malloc((size_t)(out * dl->rank) * sizeof *us);
        if (!us || !(yt = malloc((size_t)(rows_d * cols) * sizeof *yt))) {
            free(us);
            goto done;
        }
        for (int64_t i = 0; i < out * dl->rank; i++)
            us[i] = dl->u[i] * dl->scale;
        for (int64_t i = 0; i < rows_d; i++)
            for (int64_t q = 0; q < cols; q++)
                yt[q * rows_d + i] = y[i * cols + q];
        if ((dy = temp_new(s, tp, wdt, cols, dl->rank, yt, &r)) && (du = temp_new(s, tp, wdt, out, dl->rank, us, &r)))
            r = vkd_op_lora_product(c, &sl->t, src->row0, out, cols, du, dy);
        /* the folded bias [out] moves by (u * scale) (d beta): the scales are fp32 */
        if (!r && gamma && (du = temp_new(s, tp, VKD_F32, out, dl->rank, us, &r)) &&
            (db = temp_new(s, tp, VKD_F32, 1, dl->rank, xb, &r)))
            r = vkd_op_lora_product(c, &p->sc->t, total_rows + src->row0, out, 1, du, db);
        free(us);
    } else {
        if ((dy = temp_new(s, tp, VKD_F32, out, cols, y, &r)))
            r = vkd_op_lora_update(c, &sl->t, src->row0, out, cols, cols, dy, dl->scale);
        if (!r && gamma && (db = temp_new(s, tp, VKD_F32, out, 1, xb, &r)))
            r = vkd_op_lora_update(c, &p->sc->t, total_rows + src->row0, out, 1, 1, db, dl->scale);
    }
done:
    free(y), free(xb), free(yt);
    return r;
}

static float *read_vec(const vkd_wstore *s, const char *ln, const char *suffix, int64_t n)
{
    char name[520];
    snprintf(name, sizeof name, "%s%s", ln, suffix);
    const vkd_wtensor *t = vkd_weights_find(s->w, name);
    float *v = t && (int64_t)t->nelem == n ? malloc((size_t)n * sizeof *v) : NULL;
    vkd_result rr = v ? vkd_wtensor_read_f32(t, v) : VKD_OK;
    if (v)
        vkd_st_tensor_drop_pages(t->src);
    if (v && rr) {
        free(v);
        v = NULL;
    }
    if (!v)
        VKD_ERROR("%s: cannot be read as %lld values", name, (long long)n);
    return v;
}

/* ---- a slot: restored from the checkpoint, then the current deltas -------------------- */

/* Records copies of freshly built base tensors over the slot's (and its folded scales'). */
static vkd_result record_restore(vkd_wstore *s, vkd_cmd *c, temps *tp, const plan *p, slot *sl)
{
    vkd_tensor t[2];
    vkd_result r;
    int nt = 1;
    if (p->ln) {
        const char **layers = malloc((size_t)p->n * sizeof *layers);
        if (!layers)
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        for (int j = 0; j < p->n; j++)
            layers[j] = p->src[j].layer;
        r = vkd_ws_build_lnfold(s, p->ln, p->n, layers, &t[0], &t[1]);
        free(layers);
        nt = 2;
    } else if (p->n > 1) {
        const char **names = malloc((size_t)p->n * sizeof *names);
        if (!names)
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        for (int j = 0; j < p->n; j++)
            names[j] = p->src[j].name;
        r = vkd_ws_build_cat(s, sl->kind, p->n, names, sl->name, &t[0]);
        free(names);
    } else {
        r = vkd_ws_build_single(s, sl->name, sl->kind, &t[0]);
    }
    if (r)
        return r;
    for (int i = 0; i < nt; i++) { /* kept until the submit, freed with the other temps */
        vkd_tensor *slot_t = temp_slot(tp);
        if (!slot_t) {
            for (int k = i; k < nt; k++)
                vkd_tensor_destroy(s->d, &t[k]);
            return VKD_ERR_OUT_OF_HOST_MEMORY;
        }
        *slot_t = t[i];
    }
    const vkd_tensor *dst[2] = {&sl->t, p->ln ? &p->sc->t : NULL};
    for (int i = 0; i < nt && !r; i++) {
        if (vkd_tensor_bytes(&t[i]) != vkd_tensor_bytes(dst[i]))
            return VKD_ERR_INTERNAL;
        r = vkd_cmd_copy(c, &t[i].buf, t[i].offset, &dst[i]->buf, dst[i]->offset, vkd_tensor_bytes(&t[i]));
    }
    return r;
}

/* Where a set change spends its time (logged at INFO by vkd_wstore_set_deltas). */
typedef struct refresh_stats {
    double restore_ms, host_ms, device_ms;
    int restored, changed;
} refresh_stats;

static vkd_result refresh(vkd_wstore *s, slot *sl, bool restore, refresh_stats *st)
{
    double t0 = vkd_clock_ms();
    plan p;
    vkd_result r = plan_slot(s, sl, &p);
    vkd_wdelta dl[MAX_DELTAS];
    int got = 0;
    float *gamma = NULL, *beta = NULL;
    temps tp = {0};
    if (r || !p.n)
        goto done;
    if (!s->cmd && (r = vkd_cmd_create(s->d, &s->cmd)))
        goto done;
    if ((r = vkd_cmd_begin(s->cmd)))
        goto done;
    if (restore && (r = record_restore(s, s->cmd, &tp, &p, sl)))
        goto done;
    double t1 = vkd_clock_ms();
    for (int j = 0; j < p.n && !r && s->deltas.get; j++) {
        int k = s->deltas.get(s->deltas.ctx, p.src[j].name, dl, MAX_DELTAS);
        if (k < 0)
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
        if (k <= 0)
            continue;
        got += k;
        if (p.ln && !gamma) {
            int64_t cols = (int64_t)p.src[0].wt->nelem / p.src[0].wt->shape[0];
            if (!(gamma = read_vec(s, p.ln, ".weight", cols)) || !(beta = read_vec(s, p.ln, ".bias", cols)))
                r = VKD_ERR_FORMAT;
        }
        /* the factors are on the device (temps) once recorded: the host copies can go */
        for (int i = 0; i < k && !r; i++)
            r = record_delta(s, s->cmd, &tp, &p, sl, &p.src[j], &dl[i], gamma, beta);
        s->deltas.release(s->deltas.ctx, dl, k);
    }
    /* a folded pair's row sums follow its changed weight (vkd_ln_fold sums the stored values) */
    if (!r && got && p.ln)
        r = vkd_op_row_sum(s->cmd, &sl->t, 0, sl->t.shape[0], sl->t.shape[1], sl->t.shape[1], &p.sc->t, 0);
    double t2 = vkd_clock_ms();
    if (!r && (got || restore) && !(r = vkd_cmd_end(s->cmd)))
        r = vkd_cmd_submit_wait(s->cmd);
    if (!r)
        sl->changed = got > 0;
    if (!r && st) {
        st->restore_ms += t1 - t0, st->host_ms += t2 - t1, st->device_ms += vkd_clock_ms() - t2;
        st->restored += restore, st->changed += got > 0;
    }
done:
    if (r)
        VKD_ERROR("%s: applying LoRA deltas failed: %s", sl->name, vkd_result_str(r));
    temps_free(s, &tp);
    free(gamma), free(beta);
    plan_free(&p);
    return r;
}

vkd_result vkd_ws_slot_deltas(vkd_wstore *s, slot *sl)
{
    return s->deltas.get ? refresh(s, sl, false, NULL) : VKD_OK;
}

vkd_result vkd_wstore_set_deltas(vkd_wstore *s, const vkd_wdelta_source *src)
{
    if (src && src->get)
        s->deltas = *src;
    else
        memset(&s->deltas, 0, sizeof s->deltas);
    vkd_result first = VKD_OK;
    refresh_stats st = {0};
    double t0 = vkd_clock_ms();
    for (uint32_t i = 0; i < s->cap; i++) {
        slot *sl = &s->slots[i];
        if (!sl->name || (sl->kind == VKD_W_RAW && (strchr(sl->name, '+') || strstr(sl->name, LNFOLD_SEP))))
            continue;
        if (!sl->changed && !s->deltas.get)
            continue;
        vkd_result r = refresh(s, sl, sl->changed, &st);
        if (r && !first)
            first = r;
    }
    VKD_INFO("LoRA deltas: %d device tensors changed, %d restored, in %.0f ms (restore %.0f, factors on the host "
             "and uploaded %.0f, device %.0f)",
             st.changed, st.restored, vkd_clock_ms() - t0, st.restore_ms, st.host_ms, st.device_ms);
    return first;
}
