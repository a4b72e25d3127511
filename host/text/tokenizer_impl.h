/* What the tokenizer's modules share, and nothing outside host/text/ includes:
 * struct vkd_tokenizer, the two hash maps it is built of, and the pre-tokenizer's
 * entry points. The public API is text/tokenizer.h.
 *
 *   bpe_maps.c      the string -> id map and the (id, id) -> merge map
 *   bpe_vocab.c     building a tokenizer from bpe_simple_vocab (.txt/.gz) or from
 *                   vocab.json + merges.txt, files or memory
 *   pretokenize.c   text cleanup (html.unescape, whitespace, lower) and word splitting
 *   tokenizer.c     the BPE merge loop, the word cache and vkd_tokenizer_encode */
#ifndef VKD_TEXT_TOKENIZER_IMPL_H
#define VKD_TEXT_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"

/* simple_tokenizer.py keeps merges[1:49152-256-2+1]: 48,894 merges, so that
 * 256 bytes + 256 bytes</w> + merges + 2 specials = 49,408 ids. */
#define CLIP_N_MERGES (49152 - 256 - 2)

/* ---- string -> int32 map (open addressing; keys live in a pool) ---------------- */

typedef struct {
    char *pool;
    size_t pool_len, pool_cap;
    uint32_t *off, *len;          /* [n] key of entry i: pool[off[i] .. off[i]+len[i]) */
    int32_t *val;                 /* [n] */
    size_t n, ecap;
    uint32_t *slots;              /* [scap] 0 = empty, else entry index + 1 */
    size_t scap;                  /* power of two */
} strmap;

void vkd_strmap_free(strmap *m);
/* Inserts or overwrites (a later key wins, as in a Python dict built by zip). Keys are
 * stored NUL-terminated. Returns 0, or -1 when out of memory. */
int vkd_strmap_put(strmap *m, const char *k, size_t kl, int32_t v);
/* 1 and *v if k is present, else 0. */
int vkd_strmap_get(const strmap *m, const char *k, size_t kl, int32_t *v);

/* ---- (id, id) -> (rank, merged id) map ------------------------------------------ */

typedef struct {
    uint64_t key;                 /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank, merged;
} pair_slot;

struct heap_entry {
    int32_t rank, pos;            /* ordered by (rank, pos) */
    int32_t left, right;          /* the ids the pair had when pushed, to spot stale entries */
};

struct vkd_tokenizer {
    strmap vocab;                 /* token text -> id */
    uint32_t *id_off;             /* [n_ids] pool offset of id's text, UINT32_MAX if none */
    int32_t n_ids;
    pair_slot *pairs;             /* [pair_cap] merge ranks */
    size_t pair_cap;
    int32_t byte_id[256];         /* byte b as a symbol inside a word */
    int32_t byte_end_id[256];     /* byte b ending a word: "b</w>" */
    int32_t bos, eos, comma;

    strmap cache;                 /* word bytes -> index into cache_ids: [count, ids...] */
    int32_t *cache_ids;
    size_t cache_len, cache_cap;

    /* per-word scratch for BPE, grown as needed */
    int32_t *sym_id, *sym_prev, *sym_next, *sym_stamp;
    struct heap_entry *heap, *batch;
    size_t scratch_cap, heap_cap;
};

/* t->pairs must have room (pair_cap a power of two, at most half full). */
void vkd_bpe_pairs_put(vkd_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged);
/* The merge of (a, b), or NULL if the pair has none. */
const pair_slot *vkd_bpe_pairs_get(const vkd_tokenizer *t, int32_t a, int32_t b);

/* Logs "out of host memory" and returns VKD_ERR_OUT_OF_HOST_MEMORY. */
vkd_result vkd_tokenizer_oom(void);

/* ---- pre-tokenization (pretokenize.c) -------------------------------------------- */

/* simple_tokenizer's basic_clean (less ftfy), whitespace_clean and lower on the code
 * points a[0..n): a is clobbered (>= n + 1 entries), the result goes to b (>= 2n + 1:
 * lower-casing may lengthen). Returns the result's length. */
size_t vkd_pretok_clean(uint32_t *a, size_t n, uint32_t *b);
/* Length of the word simple_tokenizer's pattern matches at t[i], 0 if none
 * (whitespace). */
size_t vkd_pretok_match_word(const uint32_t *t, size_t n, size_t i);

#endif
