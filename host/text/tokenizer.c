/* CLIP byte-level BPE, after openai/CLIP clip/simple_tokenizer.py: the merge loop
 * (SimpleTokenizer.bpe), the cache of encoded words, and vkd_tokenizer_encode, which
 * runs pre-tokenization (pretokenize.c) and BPE on each word. Loading is bpe_vocab.c,
 * the maps bpe_maps.c. */
#include "text/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"

#define CACHE_MAX_WORDS 8192
#define CACHE_MAX_WORD_BYTES 64

/* ---- BPE --------------------------------------------------------------------------- */

static int heap_less(const struct heap_entry *a, const struct heap_entry *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct heap_entry *h, size_t *n, struct heap_entry e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static struct heap_entry heap_pop(struct heap_entry *h, size_t *n)
{
    struct heap_entry top = h[0], e = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && heap_less(&h[c + 1], &h[c]))
            c++;
        if (!heap_less(&h[c], &e))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = e;
    return top;
}

static int ensure_scratch(vkd_tokenizer *t, size_t m)
{
    if (m <= t->scratch_cap)
        return 0;
    size_t cap = t->scratch_cap ? t->scratch_cap : 64;
    while (cap < m)
        cap *= 2;
    int32_t *a = realloc(t->sym_id, cap * sizeof(*a));
    if (!a)
        return -1;
    t->sym_id = a;
    a = realloc(t->sym_prev, cap * sizeof(*a));
    if (!a)
        return -1;
    t->sym_prev = a;
    a = realloc(t->sym_next, cap * sizeof(*a));
    if (!a)
        return -1;
    t->sym_next = a;
    a = realloc(t->sym_stamp, cap * sizeof(*a));
    if (!a)
        return -1;
    t->sym_stamp = a;
    /* m - 1 initial pairs, and each of at most m - 1 merges pushes at most two */
    struct heap_entry *h = realloc(t->heap, 3 * cap * sizeof(*h));
    if (!h)
        return -1;
    t->heap = h;
    h = realloc(t->batch, 3 * cap * sizeof(*h));
    if (!h)
        return -1;
    t->batch = h;
    t->scratch_cap = cap;
    return 0;
}

static void push_pair(vkd_tokenizer *t, size_t *nh, int32_t p)
{
    int32_t q = t->sym_next[p];
    if (q < 0)
        return;
    const pair_slot *ps = vkd_bpe_pairs_get(t, t->sym_id[p], t->sym_id[q]);
    if (ps)
        heap_push(t->heap, nh, (struct heap_entry){ps->rank, p, t->sym_id[p], t->sym_id[q]});
}

/* SimpleTokenizer.bpe on the byte-encoded word w[0..m): repeatedly take the pair of
 * lowest rank and merge all its occurrences left to right. The heap gives the lowest
 * rank; all entries of that rank are taken as one batch (in position order) before any
 * pair they create is considered, which is what the reference's loop does. Writes
 * the symbol ids to out and returns their count. */
static size_t bpe_word(vkd_tokenizer *t, const unsigned char *w, size_t m, int32_t *out)
{
    int32_t *id = t->sym_id, *prev = t->sym_prev, *next = t->sym_next, *stamp = t->sym_stamp;
    int32_t batch_no = 0;
    for (size_t i = 0; i < m; i++) {
        stamp[i] = -1;
        id[i] = i + 1 < m ? t->byte_id[w[i]] : t->byte_end_id[w[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < m ? (int32_t)i + 1 : -1;
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < m; i++)
        push_pair(t, &nh, (int32_t)i);
    while (nh) {
        int32_t rank = t->heap[0].rank;
        size_t nb = 0;
        while (nh && t->heap[0].rank == rank) {
            struct heap_entry e = heap_pop(t->heap, &nh);
            if (nb < 3 * t->scratch_cap)
                t->batch[nb++] = e;
        }
        batch_no++;
        for (size_t k = 0; k < nb; k++) {
            struct heap_entry e = t->batch[k];
            int32_t p = e.pos, q = next[p];
            /* stale: p was merged away (id -1) or either side changed id since the push */
            if (id[p] != e.left || q < 0 || id[q] != e.right)
                continue;
            const pair_slot *ps = vkd_bpe_pairs_get(t, e.left, e.right);
            id[p] = ps->merged;
            next[p] = next[q];
            if (next[q] >= 0)
                prev[next[q]] = p;
            id[q] = -1;                       /* dead */
            next[q] = -1;
            stamp[p] = batch_no;
        }
        /* the pairs the batch made; a left neighbour merged in this batch pushes its
         * own right pair, so it is not pushed twice */
        for (size_t k = 0; k < nb; k++) {
            int32_t p = t->batch[k].pos;
            if (stamp[p] != batch_no || id[p] < 0)
                continue;
            if (prev[p] >= 0 && stamp[prev[p]] != batch_no && stamp[prev[p]] != -2 - batch_no)
                push_pair(t, &nh, prev[p]);
            push_pair(t, &nh, p);
            stamp[p] = -2 - batch_no;         /* done */
        }
    }
    size_t n = 0;
    for (int32_t p = 0; p >= 0; p = next[p])
        out[n++] = id[p];
    return n;
}

/* Ids of one word (its UTF-8 bytes), through the cache. */
static vkd_result encode_word(vkd_tokenizer *t, const char *w, size_t m, int32_t *out, size_t *n_out)
{
    int32_t at;
    if (vkd_strmap_get(&t->cache, w, m, &at)) {
        *n_out = (size_t)t->cache_ids[at];
        memcpy(out, t->cache_ids + at + 1, *n_out * sizeof(*out));
        return VKD_OK;
    }
    if ((m == 15 && memcmp(w, "<|startoftext|>", 15) == 0) || (m == 13 && memcmp(w, "<|endoftext|>", 13) == 0)) {
        out[0] = m == 15 ? t->bos : t->eos;
        *n_out = 1;
        return VKD_OK;
    }
    if (ensure_scratch(t, m))
        return vkd_tokenizer_oom();
    size_t n = bpe_word(t, (const unsigned char *)w, m, out);
    *n_out = n;
    if (m > CACHE_MAX_WORD_BYTES)
        return VKD_OK;
    if (t->cache.n >= CACHE_MAX_WORDS) {          /* full: start over rather than evict */
        vkd_strmap_free(&t->cache);
        t->cache_len = 0;
    }
    if (t->cache_len + n + 1 > t->cache_cap) {
        size_t cap = t->cache_cap ? t->cache_cap * 2 : 4096;
        while (cap < t->cache_len + n + 1)
            cap *= 2;
        int32_t *c = realloc(t->cache_ids, cap * sizeof(*c));
        if (!c)
            return VKD_OK;                      /* the cache is only an optimisation */
        t->cache_ids = c;
        t->cache_cap = cap;
    }
    if (vkd_strmap_put(&t->cache, w, m, (int32_t)t->cache_len))
        return VKD_OK;
    t->cache_ids[t->cache_len] = (int32_t)n;
    memcpy(t->cache_ids + t->cache_len + 1, out, n * sizeof(*out));
    t->cache_len += n + 1;
    return VKD_OK;
}

/* ---- encode ------------------------------------------------------------------------ */

size_t vkd_tokenizer_encode_bound(size_t text_len)
{
    /* html.unescape and whitespace cleanup never lengthen the text; str.lower() makes
     * at most 3 UTF-8 bytes of 2 (U+0130, U+023A...); a token has at least one byte. */
    return text_len + text_len / 2 + 1;
}

vkd_result vkd_tokenizer_encode(vkd_tokenizer *t, const char *text, size_t len, int32_t *ids, size_t cap,
                                size_t *n_out)
{
    vkd_result r = VKD_OK;
    *n_out = 0;
    if (len > (SIZE_MAX / 8) / sizeof(uint32_t)) {
        VKD_ERROR("tokenizer: text too long");
        return VKD_ERR_INVALID_ARG;
    }
    uint32_t *a = malloc((len + 1) * sizeof(*a));
    uint32_t *b = malloc((2 * len + 1) * sizeof(*b));
    int32_t *word_ids = malloc((4 * len + 1) * sizeof(*word_ids));
    char *word = malloc(4 * len + 1);
    if (!a || !b || !word_ids || !word) {
        r = vkd_tokenizer_oom();
        goto done;
    }
    size_t n, bad;
    if (vkd_utf8_decode(text, len, a, &n, &bad)) {
        VKD_ERROR("tokenizer: the text is not valid UTF-8 (byte %zu)", bad);
        r = VKD_ERR_INVALID_ARG;
        goto done;
    }
    n = vkd_pretok_clean(a, n, b);

    size_t out = 0;
    for (size_t i = 0; i < n;) {
        size_t m = vkd_pretok_match_word(b, n, i);
        if (!m) {
            i++;
            continue;
        }
        size_t wl = 0;
        for (size_t k = i; k < i + m; k++)
            wl += (size_t)vkd_utf8_encode(b[k], word + wl);
        i += m;
        size_t nw = 0; /* set by encode_word; 0 keeps cross-compilers' flow analysis quiet */
        if ((r = encode_word(t, word, wl, word_ids, &nw)))
            goto done;
        if (out + nw > cap) {
            VKD_ERROR("tokenizer: output room for %zu ids is too small", cap);
            r = VKD_ERR_INVALID_ARG;
            goto done;
        }
        memcpy(ids + out, word_ids, nw * sizeof(*ids));
        out += nw;
    }
    *n_out = out;
done:
    free(a);
    free(b);
    free(word_ids);
    free(word);
    return r;
}
