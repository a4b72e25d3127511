/* The tokenizer's two hash maps: token text -> id (also the word cache's index), and
 * a merge pair (left id, right id) -> (rank, merged id). Open addressing, grown by
 * doubling; kept apart from the loaders and the merge loop so that those read as the
 * reference's Python does. */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_impl.h"

static uint64_t hash_bytes(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

void vkd_strmap_free(strmap *m)
{
    free(m->pool);
    free(m->off);
    free(m->len);
    free(m->val);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static size_t strmap_find(const strmap *m, const char *k, size_t kl, int *found)
{
    size_t mask = m->scap - 1, s = (size_t)hash_bytes(k, kl) & mask;
    for (;;) {
        uint32_t e = m->slots[s];
        if (!e) {
            *found = 0;
            return s;
        }
        e--;
        if (m->len[e] == kl && memcmp(m->pool + m->off[e], k, kl) == 0) {
            *found = 1;
            return s;
        }
        s = (s + 1) & mask;
    }
}

static int strmap_grow_slots(strmap *m)
{
    size_t ncap = m->scap ? m->scap * 2 : 1024;
    uint32_t *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t e = 0; e < m->n; e++) {
        size_t s = (size_t)hash_bytes(m->pool + m->off[e], m->len[e]) & (ncap - 1);
        while (ns[s])
            s = (s + 1) & (ncap - 1);
        ns[s] = (uint32_t)(e + 1);
    }
    free(m->slots);
    m->slots = ns;
    m->scap = ncap;
    return 0;
}

int vkd_strmap_put(strmap *m, const char *k, size_t kl, int32_t v)
{
    if ((m->n + 1) * 2 > m->scap && strmap_grow_slots(m))
        return -1;
    int found;
    size_t s = strmap_find(m, k, kl, &found);
    if (found) {
        m->val[m->slots[s] - 1] = v;
        return 0;
    }
    if (m->n == m->ecap) {
        size_t nc = m->ecap ? m->ecap * 2 : 1024;
        uint32_t *o = realloc(m->off, nc * sizeof(*o));
        if (!o)
            return -1;
        m->off = o;
        uint32_t *l = realloc(m->len, nc * sizeof(*l));
        if (!l)
            return -1;
        m->len = l;
        int32_t *vv = realloc(m->val, nc * sizeof(*vv));
        if (!vv)
            return -1;
        m->val = vv;
        m->ecap = nc;
    }
    if (m->pool_len + kl + 1 > m->pool_cap) {
        size_t nc = m->pool_cap ? m->pool_cap : 1 << 16;
        while (nc < m->pool_len + kl + 1)
            nc *= 2;
        if (nc > UINT32_MAX)
            return -1;
        char *p = realloc(m->pool, nc);
        if (!p)
            return -1;
        m->pool = p;
        m->pool_cap = nc;
    }
    memcpy(m->pool + m->pool_len, k, kl);
    m->pool[m->pool_len + kl] = 0;           /* so vkd_tokenizer_token_str can hand it out */
    m->off[m->n] = (uint32_t)m->pool_len;
    m->len[m->n] = (uint32_t)kl;
    m->val[m->n] = v;
    m->pool_len += kl + 1;
    m->slots[s] = (uint32_t)(m->n + 1);
    m->n++;
    return 0;
}

int vkd_strmap_get(const strmap *m, const char *k, size_t kl, int32_t *v)
{
    if (!m->scap)
        return 0;
    int found;
    size_t s = strmap_find(m, k, kl, &found);
    if (found)
        *v = m->val[m->slots[s] - 1];
    return found;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

void vkd_bpe_pairs_put(vkd_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t mask = t->pair_cap - 1, s = (size_t)mix64(key) & mask;
    while (t->pairs[s].key && t->pairs[s].key != key)
        s = (s + 1) & mask;
    t->pairs[s].key = key;
    t->pairs[s].rank = rank;
    t->pairs[s].merged = merged;
}

const pair_slot *vkd_bpe_pairs_get(const vkd_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t mask = t->pair_cap - 1, s = (size_t)mix64(key) & mask;
    while (t->pairs[s].key) {
        if (t->pairs[s].key == key)
            return &t->pairs[s];
        s = (s + 1) & mask;
    }
    return NULL;
}
