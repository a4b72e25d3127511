/* The layout rule engine (rules are described in layout_impl.h): matching a key
 * against a rule set, building the internal name, and mapping the tensors of one file
 * part under its new names (q/k/v row splits, transposes, [C, C] -> [C, C, 1, 1]).
 * Knows no model: the tables are layout_tables.c. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "io/layout_impl.h"

/* ---- rule sets ---------------------------------------------------------------- */

void vkd_ruleset_free(ruleset *rs)
{
    for (size_t i = 0; i < rs->ngen; i++) {
        free((char *)rs->gen[i].from);
        free((char *)rs->gen[i].to);
    }
    free(rs->gen);
    memset(rs, 0, sizeof *rs);
}

int vkd_ruleset_add(ruleset *rs, unsigned op, const char *from, const char *to)
{
    if (rs->ngen == rs->capgen) {
        size_t cap = rs->capgen ? rs->capgen * 2 : 64;
        rule *g = realloc(rs->gen, cap * sizeof *g);
        if (!g)
            return 0;
        rs->gen = g;
        rs->capgen = cap;
    }
    char *f = strdup(from), *t = strdup(to);
    if (!f || !t) {
        free(f);
        free(t);
        return 0;
    }
    rs->gen[rs->ngen++] = (rule){f, t, op};
    return 1;
}

/* Match `from` against `key`. Returns the number of key bytes consumed, or -1; caps
 * receives the '#' numbers (as offsets/lengths into key). */
typedef struct { size_t off[4], len[4]; int n; } captures;

static long rule_match(const rule *r, const char *key, captures *cap)
{
    const char *f = r->from, *k = key;
    cap->n = 0;
    while (*f) {
        if (*f == '#') {
            const char *s = k;
            while (*k >= '0' && *k <= '9')
                k++;
            if (k == s || cap->n == 4)
                return -1;
            cap->off[cap->n] = (size_t)(s - key);
            cap->len[cap->n++] = (size_t)(k - s);
            f++;
        } else if (*f++ != *k++) {
            return -1;
        }
    }
    if ((r->op & RN_EXACT) && *k)
        return -1;
    return (long)(k - key);
}

static const rule *ruleset_match(const ruleset *rs, const char *key, captures *best_cap, long *consumed)
{
    const rule *best = NULL;
    long best_len = -1;
    for (int pass = 0; pass < 2; pass++) {
        const rule *rr = pass ? rs->gen : rs->fixed;
        size_t n = pass ? rs->ngen : rs->nfixed;
        for (size_t i = 0; i < n; i++) {
            captures c;
            long m = rule_match(&rr[i], key, &c);
            /* longest `from` wins; compare pattern length so "a.#." < "a.#.b." */
            if (m >= 0 && (long)strlen(rr[i].from) > best_len) {
                best = &rr[i];
                best_len = (long)strlen(rr[i].from);
                *best_cap = c;
                *consumed = m;
            }
        }
    }
    return best;
}

/* ---- mapping a file part ------------------------------------------------------- */

static int push_ignored(vkd_weights *w, const char *file, const char *key, const char *why)
{
    if (w->nign == w->capign) {
        size_t cap = w->capign ? w->capign * 2 : 32;
        char **p = realloc(w->ignored, cap * sizeof *p);
        if (!p)
            return 0;
        w->ignored = p;
        w->capign = cap;
    }
    size_t len = strlen(file) + strlen(key) + strlen(why) + 8;
    char *s = malloc(len);
    if (!s)
        return 0;
    snprintf(s, len, "%s: %s%s", file, key, why);
    w->ignored[w->nign++] = s;
    VKD_DEBUG("ignored %s", s);
    return 1;
}

static vkd_wtensor *push_tensor(vkd_weights *w)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 1024;
        vkd_wtensor *p = realloc(w->t, cap * sizeof *p);
        if (!p)
            return NULL;
        w->t = p;
        w->cap = cap;
    }
    vkd_wtensor *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    return t;
}

/* Build internal name: prefix + rule.to (captures substituted, %s -> qkv) + rest. */
static char *make_name(const char *prefix, const rule *r, const char *key, const captures *c, long consumed,
                       const char *qkv)
{
    size_t cap = strlen(prefix) + strlen(r->to) + strlen(key) + 64;
    char *s = malloc(cap), *o = s;
    if (!s)
        return NULL;
    o += sprintf(o, "%s", prefix);
    int ci = 0;
    for (const char *p = r->to; *p; p++) {
        if (*p == '#' && ci < c->n) {
            memcpy(o, key + c->off[ci], c->len[ci]);
            o += c->len[ci++];
        } else if (p[0] == '%' && p[1] == 's' && qkv) {
            o += sprintf(o, "%s", qkv);
            p++;
        } else {
            *o++ = *p;
        }
    }
    o += sprintf(o, "%s", key + consumed);
    return s;
}

vkd_result vkd_layout_map_part(vkd_weights *w, const vkd_st_file *f, unsigned char *claimed, const char *src_prefix,
                           const ruleset *rs, const char *dst_prefix)
{
    size_t plen = strlen(src_prefix);
    for (size_t i = 0; i < vkd_st_count(f); i++) {
        const vkd_st_tensor *s = vkd_st_at(f, i);
        if (claimed[i] || strncmp(s->name, src_prefix, plen) != 0)
            continue;
        const char *key = s->name + plen;
        captures c = {{0}, {0}, 0};
        long consumed = 0;
        const rule *r = ruleset_match(rs, key, &c, &consumed);
        if (!r)
            continue;
        claimed[i] = 1;
        /* a tensor of a non-float dtype is mapped all the same: the model check
         * (models/check.h) then names it as of the wrong dtype, not as missing */
        int parts = (r->op & RN_SPLIT3) ? 3 : 1;
        if (parts == 3 && (s->rank < 1 || s->shape[0] % 3 != 0)) {
            VKD_ERROR("%s: tensor '%s' has %lld rows, which do not split into q, k, v", vkd_st_label(f), s->name,
                      s->rank ? (long long)s->shape[0] : 0LL);
            return VKD_ERR_FORMAT;
        }
        if ((r->op & RN_TRANSPOSE) && s->rank != 2) {
            VKD_ERROR("%s: tensor '%s' should be 2-D, is rank %d", vkd_st_label(f), s->name, s->rank);
            return VKD_ERR_FORMAT;
        }
        static const char *const qkv[3] = {"q", "k", "v"};
        for (int p = 0; p < parts; p++) {
            vkd_wtensor *t = push_tensor(w);
            if (!t)
                return VKD_ERR_OUT_OF_HOST_MEMORY;
            if (!(t->name = make_name(dst_prefix, r, key, &c, consumed, parts == 3 ? qkv[p] : NULL))) {
                w->n--;
                return VKD_ERR_OUT_OF_HOST_MEMORY;
            }
            t->src = s;
            t->file = vkd_st_label(f);
            t->rank = s->rank;
            memcpy(t->shape, s->shape, sizeof t->shape);
            t->nelem = s->nelem;
            if (parts == 3) {
                t->shape[0] = s->shape[0] / 3;
                t->nelem = s->nelem / 3;
                t->first = (size_t)p * t->nelem;
            }
            if (r->op & RN_TRANSPOSE) {
                t->shape[0] = s->shape[1];
                t->shape[1] = s->shape[0];
                t->flags |= VKD_WT_TRANSPOSE;
            }
            if ((r->op & RN_CONV1X1) && s->rank == 2) {
                t->rank = 4;
                t->shape[2] = t->shape[3] = 1;
            }
        }
    }
    return VKD_OK;
}

vkd_result vkd_layout_ignore_rest(vkd_weights *w, const vkd_st_file *f, const unsigned char *claimed, const char *why)
{
    for (size_t i = 0; i < vkd_st_count(f); i++)
        if (!claimed[i] && !push_ignored(w, vkd_st_label(f), vkd_st_at(f, i)->name, why))
            return VKD_ERR_OUT_OF_HOST_MEMORY;
    return VKD_OK;
}

int vkd_layout_count_index(const vkd_st_file *f, const char *prefix)
{
    size_t plen = strlen(prefix);
    int best = 0;
    for (size_t i = 0; i < vkd_st_count(f); i++) {
        const char *k = vkd_st_at(f, i)->name;
        if (strncmp(k, prefix, plen) != 0)
            continue;
        char *end;
        long v = strtol(k + plen, &end, 10);
        if (end != k + plen && *end == '.' && v >= 0 && v < 1000 && v + 1 > best)
            best = (int)v + 1;
    }
    return best;
}

int vkd_layout_has_prefix(const vkd_st_file *f, const char *prefix)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < vkd_st_count(f); i++)
        if (strncmp(vkd_st_at(f, i)->name, prefix, plen) == 0)
            return 1;
    return 0;
}
