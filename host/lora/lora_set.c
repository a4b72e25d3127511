/* Prompt tags, the set of LoRAs in use and the weight store's delta source (lora_set.h). */
#define _POSIX_C_SOURCE 200809L
#include "lora/lora_set.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"

/* ---- <lora:NAME:WEIGHT> ----------------------------------------------------------------- */

void vkd_lora_tags_free(vkd_lora_tags *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->names[i]);
    free(t->names);
    free(t->weights);
    free(t->prompt);
    memset(t, 0, sizeof *t);
}

static bool safe_name(const char *name)
{
    return *name && !strchr(name, '/') && !strchr(name, '\\') && !strstr(name, "..");
}

/* One tag's inside, "NAME" or "NAME:WEIGHT" (A1111 also allows more ":"-fields, e.g. a
 * separate text-encoder weight: the first number is taken for both, as
 * stable-diffusion.cpp does). */
static vkd_result add_tag(vkd_lora_tags *t, const char *body, size_t len)
{
    char *in = strndup(body, len);
    if (!in)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    char *colon = strchr(in, ':');
    float weight = 1.0f;
    if (colon) {
        *colon = 0;
        char *w = colon + 1, *end;
        char *next = strchr(w, ':');
        if (next)
            *next = 0;
        double v = strtod(w, &end);
        while (isspace((unsigned char)*end))
            end++;
        if (end == w || *end || !isfinite(v) || fabs(v) > 1e4) {
            VKD_ERROR("<lora:%s:%s>: the weight is not a number", in, w);
            free(in);
            return VKD_ERR_INVALID_ARG;
        }
        weight = (float)v;
    }
    if (!safe_name(in)) {
        VKD_ERROR("<lora:%s>: a LoRA name is a file name in the LoRA folder (no path separators or \"..\")", in);
        free(in);
        return VKD_ERR_INVALID_ARG;
    }
    char **names = realloc(t->names, (t->n + 1) * sizeof *names);
    if (names)
        t->names = names;
    float *weights = names ? realloc(t->weights, (t->n + 1) * sizeof *weights) : NULL;
    if (!weights) {
        free(in);
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    t->weights = weights;
    t->names[t->n] = in;
    t->weights[t->n++] = weight;
    return VKD_OK;
}

vkd_result vkd_lora_tags_parse(const char *prompt, vkd_lora_tags *out)
{
    memset(out, 0, sizeof *out);
    size_t len = prompt ? strlen(prompt) : 0, at = 0;
    if (!(out->prompt = malloc(len + 1)))
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    for (size_t i = 0; i < len;) {
        const char *close = !strncmp(prompt + i, "<lora:", 6) ? strchr(prompt + i + 6, '>') : NULL;
        if (!close) {
            out->prompt[at++] = prompt[i++];
            continue;
        }
        vkd_result r = add_tag(out, prompt + i + 6, (size_t)(close - (prompt + i + 6)));
        if (r) {
            vkd_lora_tags_free(out);
            return r;
        }
        i = (size_t)(close - prompt) + 1;
    }
    out->prompt[at] = 0;
    return VKD_OK;
}

char *vkd_lora_resolve(const char *dir, const char *name)
{
    static const char *const ext[] = {".safetensors", ""};
    for (int k = 0; k < 2; k++) {
        size_t n = strlen(dir) + strlen(name) + strlen(ext[k]) + 2;
        char *path = malloc(n);
        struct stat st;
        if (!path)
            return NULL;
        snprintf(path, n, "%s/%s%s", dir, name, ext[k]);
        if (!stat(path, &st) && S_ISREG(st.st_mode))
            return path;
        free(path);
    }
    VKD_ERROR("<lora:%s>: no %s/%s.safetensors (nor %s/%s)", name, dir, name, dir, name);
    return NULL;
}

/* ---- the set in use ---------------------------------------------------------------------- */

typedef struct open_lora {
    char *path;
    vkd_lora *l;
    float weight;
} open_lora;

struct vkd_lora_set {
    const vkd_weights *w;
    const vkd_model_config *cfg;
    vkd_wstore *ws;
    open_lora *on; /* the LoRAs applied, in order */
    size_t n;
};

vkd_result vkd_lora_set_create(const vkd_weights *w, const vkd_model_config *cfg, vkd_wstore *ws, vkd_lora_set **out)
{
    if (!(*out = calloc(1, sizeof **out)))
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    (*out)->w = w, (*out)->cfg = cfg, (*out)->ws = ws;
    return VKD_OK;
}

static void close_all(open_lora *on, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        vkd_lora_close(on[i].l);
        free(on[i].path);
    }
    free(on);
}

void vkd_lora_set_free(vkd_lora_set *s)
{
    if (!s)
        return;
    close_all(s->on, s->n);
    free(s);
}

/* The store's delta source: every LoRA of the set that changes `name`, its multiplier not
 * 0 (a LoRA at 0 changes nothing: the image is the one without it, bit for bit). */
static int get_deltas(void *ctx, const char *name, vkd_wdelta *out, int max)
{
    const vkd_lora_set *s = ctx;
    int k = 0;
    for (size_t i = 0; i < s->n; i++) {
        long t = s->on[i].weight != 0.0f ? vkd_lora_find(s->on[i].l, name) : -1;
        if (t < 0)
            continue;
        if (k == max || vkd_lora_factors(s->on[i].l, (size_t)t, s->on[i].weight, &out[k])) {
            VKD_ERROR("%s: %s", s->on[i].path, k == max ? "too many LoRAs on one tensor" : "cannot read its factors");
            for (int j = 0; j < k; j++)
                free(out[j].u), free(out[j].d);
            return -1;
        }
        k++;
    }
    return k;
}

static void release_deltas(void *ctx, vkd_wdelta *d, int n)
{
    for (int i = 0; i < n; i++)
        free(d[i].u), free(d[i].d);
}

static bool same_set(const vkd_lora_set *s, const vkd_lora_use *use, size_t n)
{
    if (n != s->n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->on[i].path, use[i].path) || s->on[i].weight != use[i].weight)
            return false;
    return true;
}

vkd_result vkd_lora_set_apply(vkd_lora_set *s, const vkd_lora_use *use, size_t n)
{
    if (same_set(s, use, n))
        return VKD_OK;
    open_lora *on = calloc(n ? n : 1, sizeof *on);
    if (!on)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkd_result r = VKD_OK;
    for (size_t i = 0; i < n && !r; i++) {
        on[i].weight = use[i].weight;
        if (!(on[i].path = strdup(use[i].path))) {
            r = VKD_ERR_OUT_OF_HOST_MEMORY;
            break;
        }
        for (size_t j = 0; j < s->n; j++) /* already open: moved over */
            if (s->on[j].l && !strcmp(s->on[j].path, use[i].path)) {
                on[i].l = s->on[j].l, s->on[j].l = NULL;
                break;
            }
        if (!on[i].l)
            r = vkd_lora_open(use[i].path, s->w, s->cfg, &on[i].l);
        if (!r)
            VKD_INFO("LoRA %s at %g: %zu tensors", use[i].path, (double)use[i].weight, vkd_lora_count(on[i].l));
    }
    if (r) { /* the store keeps the old set; then drops it, so nothing half-applied stays */
        close_all(on, n);
        vkd_wstore_set_deltas(s->ws, NULL);
        close_all(s->on, s->n);
        s->on = NULL, s->n = 0;
        return r;
    }
    open_lora *old = s->on;
    size_t old_n = s->n;
    s->on = on, s->n = n;
    vkd_wdelta_source src = {.get = get_deltas, .release = release_deltas, .ctx = s};
    r = vkd_wstore_set_deltas(s->ws, n ? &src : NULL);
    close_all(old, old_n);
    if (r) {
        vkd_wstore_set_deltas(s->ws, NULL);
        close_all(s->on, s->n);
        s->on = NULL, s->n = 0;
    }
    return r;
}
