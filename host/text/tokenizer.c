/* CLIP byte-level BPE, after openai/CLIP clip/simple_tokenizer.py.
 *
 * Sections: string and pair hash maps · vocabulary construction (bpe .gz / HF files) ·
 * text cleanup (html.unescape, whitespace, lower) · word splitting · BPE · encode. */
#define _POSIX_C_SOURCE 200809L /* open flags, fstat */
#include "text/tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "common/log.h"
#include "text/unicode.h"

/* simple_tokenizer.py keeps merges[1:49152-256-2+1]: 48,894 merges, so that
 * 256 bytes + 256 bytes</w> + merges + 2 specials = 49,408 ids. */
#define CLIP_N_MERGES (49152 - 256 - 2)
#define MAX_BPE_TEXT (64u << 20)       /* refuse to inflate more than this (gzip bombs) */
#define MAX_VOCAB_ID (1 << 24)
#define CACHE_MAX_WORDS 8192
#define CACHE_MAX_WORD_BYTES 64

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

static uint64_t hash_bytes(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static void strmap_free(strmap *m)
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

/* Inserts or overwrites (a later key wins, as in a Python dict built by zip). */
static int strmap_put(strmap *m, const char *k, size_t kl, int32_t v)
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

static int strmap_get(const strmap *m, const char *k, size_t kl, int32_t *v)
{
    if (!m->scap)
        return 0;
    int found;
    size_t s = strmap_find(m, k, kl, &found);
    if (found)
        *v = m->val[m->slots[s] - 1];
    return found;
}

/* ---- (id, id) -> (rank, merged id) map ------------------------------------------ */

typedef struct {
    uint64_t key;                 /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank, merged;
} pair_slot;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

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

static int pairs_put(vkd_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t mask = t->pair_cap - 1, s = (size_t)mix64(key) & mask;
    while (t->pairs[s].key && t->pairs[s].key != key)
        s = (s + 1) & mask;
    t->pairs[s].key = key;
    t->pairs[s].rank = rank;
    t->pairs[s].merged = merged;
    return 0;
}

static const pair_slot *pairs_get(const vkd_tokenizer *t, int32_t a, int32_t b)
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

/* ---- vocabulary ------------------------------------------------------------------ */

/* GPT-2/CLIP bytes_to_unicode(): printable bytes stand for themselves, the others are
 * shifted to U+0100.. so that no token contains whitespace or control characters.
 * order[i] is the byte whose symbol is vocabulary entry i. */
static void bytes_to_unicode(uint32_t cp[256], uint8_t order[256])
{
    int k = 0, n = 0;
    int printable[256] = {0};
    for (int b = '!'; b <= '~'; b++)
        printable[b] = 1;
    for (int b = 0xA1; b <= 0xAC; b++)
        printable[b] = 1;
    for (int b = 0xAE; b <= 0xFF; b++)
        printable[b] = 1;
    for (int b = 0; b < 256; b++)
        if (printable[b]) {
            cp[b] = (uint32_t)b;
            order[k++] = (uint8_t)b;
        }
    for (int b = 0; b < 256; b++)
        if (!printable[b]) {
            cp[b] = (uint32_t)(256 + n++);
            order[k++] = (uint8_t)b;
        }
}

void vkd_tokenizer_destroy(vkd_tokenizer *t)
{
    if (!t)
        return;
    strmap_free(&t->vocab);
    strmap_free(&t->cache);
    free(t->cache_ids);
    free(t->id_off);
    free(t->pairs);
    free(t->sym_id);
    free(t->sym_prev);
    free(t->sym_next);
    free(t->sym_stamp);
    free(t->heap);
    free(t->batch);
    free(t);
}

static vkd_result oom(void)
{
    VKD_ERROR("tokenizer: out of host memory");
    return VKD_ERR_OUT_OF_HOST_MEMORY;
}

static vkd_tokenizer *tok_new(void)
{
    vkd_tokenizer *t = calloc(1, sizeof(*t));
    return t;
}

static int vocab_lookup(const vkd_tokenizer *t, const char *s, int32_t *id)
{
    return strmap_get(&t->vocab, s, strlen(s), id);
}

/* After the vocabulary map is filled: the id -> text table, the byte symbols and the
 * special ids, which every CLIP vocabulary must have. */
static vkd_result finish_vocab(vkd_tokenizer *t, const char *what)
{
    int32_t max_id = -1;
    for (size_t e = 0; e < t->vocab.n; e++)
        if (t->vocab.val[e] > max_id)
            max_id = t->vocab.val[e];
    t->n_ids = max_id + 1;
    t->id_off = malloc(((size_t)t->n_ids + 1) * sizeof(*t->id_off));
    if (!t->id_off)
        return oom();
    for (int32_t i = 0; i < t->n_ids; i++)
        t->id_off[i] = UINT32_MAX;
    for (size_t e = 0; e < t->vocab.n; e++)
        if (t->id_off[t->vocab.val[e]] == UINT32_MAX)
            t->id_off[t->vocab.val[e]] = t->vocab.off[e];

    uint32_t cp[256];
    uint8_t order[256];
    bytes_to_unicode(cp, order);
    for (int b = 0; b < 256; b++) {
        char s[16];
        int n = vkd_utf8_encode(cp[b], s);
        memcpy(s + n, "</w>", 5);
        if (!strmap_get(&t->vocab, s, (size_t)n, &t->byte_id[b]) ||
            !strmap_get(&t->vocab, s, (size_t)n + 4, &t->byte_end_id[b])) {
            s[n + 4] = 0;
            VKD_ERROR("%s: the vocabulary lacks the byte token '%.*s' or '%s' (byte 0x%02X): not a CLIP byte-level BPE vocabulary",
                      what, n, s, s, b);
            return VKD_ERR_FORMAT;
        }
    }
    if (!vocab_lookup(t, "<|startoftext|>", &t->bos) || !vocab_lookup(t, "<|endoftext|>", &t->eos) ||
        !vocab_lookup(t, ",</w>", &t->comma)) {
        VKD_ERROR("%s: the vocabulary lacks <|startoftext|>, <|endoftext|> or ',</w>'", what);
        return VKD_ERR_FORMAT;
    }
    return VKD_OK;
}

/* One merge line "A B" -> (A, B) spans. Returns 0 if malformed. */
static int split_merge(const char *line, size_t n, size_t *a_len, const char **b, size_t *b_len)
{
    if (n && line[n - 1] == '\r')          /* tolerate CRLF files */
        n--;
    const char *sp = memchr(line, ' ', n);
    if (!sp || sp == line || sp == line + n - 1)
        return 0;
    *a_len = (size_t)(sp - line);
    *b = sp + 1;
    *b_len = n - *a_len - 1;
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\t' || line[i] == '\n' || line[i] == '\v' || line[i] == '\f' || line[i] == '\0' ||
            (line[i] == ' ' && line + i != sp) || (line[i] == '\r' && i + 1 < n))
            return 0;
    return 1;
}

typedef struct {
    const char *s;
    size_t n;
} span;

/* Splits text into lines; returns them in *out (malloc'd, caller frees). */
static vkd_result split_lines(const char *text, size_t len, span **out, size_t *n_out)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    span *l = malloc(n * sizeof(*l));
    if (!l)
        return oom();
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len; i++)
        if (i == len || text[i] == '\n') {
            l[k].s = text + start;
            l[k].n = i - start;
            k++;
            start = i + 1;
        }
    *out = l;
    *n_out = k;
    return VKD_OK;
}

/* Registers merges[0..n) (already split) with ranks 0..n-1. The parts and the joined
 * token must be vocabulary entries; line_base names the file line of merge 0. */
static vkd_result add_merges(vkd_tokenizer *t, const span *lines, size_t n, size_t line_base, const char *what)
{
    size_t cap = 1;
    while (cap < n * 2 + 2)
        cap *= 2;
    t->pairs = calloc(cap, sizeof(*t->pairs));
    if (!t->pairs)
        return oom();
    t->pair_cap = cap;
    char buf[512];
    for (size_t r = 0; r < n; r++) {
        size_t al, bl;
        const char *b;
        if (!split_merge(lines[r].s, lines[r].n, &al, &b, &bl)) {
            VKD_ERROR("%s:%zu: a merge line must be two tokens separated by one space", what, line_base + r);
            return VKD_ERR_FORMAT;
        }
        if (al + bl >= sizeof(buf)) {
            VKD_ERROR("%s:%zu: merge longer than %zu bytes", what, line_base + r, sizeof(buf) - 1);
            return VKD_ERR_FORMAT;
        }
        int32_t ia, ib, im;
        memcpy(buf, lines[r].s, al);
        memcpy(buf + al, b, bl);
        if (!strmap_get(&t->vocab, buf, al, &ia) || !strmap_get(&t->vocab, b, bl, &ib) ||
            !strmap_get(&t->vocab, buf, al + bl, &im)) {
            VKD_ERROR("%s:%zu: merge '%.*s %.*s' uses or makes a token missing from the vocabulary",
                      what, line_base + r, (int)al, lines[r].s, (int)bl, b);
            return VKD_ERR_FORMAT;
        }
        pairs_put(t, ia, ib, (int32_t)r, im);
    }
    return VKD_OK;
}

vkd_result vkd_tokenizer_load_bpe_text(const char *text, size_t len, vkd_tokenizer **out)
{
    static const char what[] = "bpe_simple_vocab";
    vkd_result r = VKD_OK;
    span *lines = NULL;
    size_t n_lines = 0;
    *out = NULL;
    vkd_tokenizer *t = tok_new();
    if (!t)
        return oom();
    if ((r = split_lines(text, len, &lines, &n_lines)))
        goto fail;
    if (n_lines < 1 + CLIP_N_MERGES) {
        VKD_ERROR("%s: %zu merge lines, need %d (file truncated or not a CLIP BPE file)", what,
                  n_lines ? n_lines - 1 : 0, CLIP_N_MERGES);
        r = VKD_ERR_FORMAT;
        goto fail;
    }
    /* The vocabulary in simple_tokenizer's order: ids are list positions, and a text
     * that appears twice keeps its later id (dict(zip(vocab, range(len(vocab))))). */
    uint32_t cp[256];
    uint8_t order[256];
    bytes_to_unicode(cp, order);
    int32_t id = 0;
    char buf[520];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 256; i++) {
            int n = vkd_utf8_encode(cp[order[i]], buf);
            if (pass)
                memcpy(buf + n, "</w>", 4), n += 4;
            if (strmap_put(&t->vocab, buf, (size_t)n, id++))
                goto nomem;
        }
    for (size_t m = 0; m < CLIP_N_MERGES; m++) {
        const span *l = &lines[1 + m];
        size_t al, bl;
        const char *b;
        if (!split_merge(l->s, l->n, &al, &b, &bl)) {
            VKD_ERROR("%s:%zu: a merge line must be two tokens separated by one space", what, m + 2);
            r = VKD_ERR_FORMAT;
            goto fail;
        }
        if (al + bl >= sizeof(buf)) {
            VKD_ERROR("%s:%zu: merge longer than %zu bytes", what, m + 2, sizeof(buf) - 1);
            r = VKD_ERR_FORMAT;
            goto fail;
        }
        memcpy(buf, l->s, al);
        memcpy(buf + al, b, bl);
        if (strmap_put(&t->vocab, buf, al + bl, id++))
            goto nomem;
    }
    if (strmap_put(&t->vocab, "<|startoftext|>", 15, id++) || strmap_put(&t->vocab, "<|endoftext|>", 13, id++))
        goto nomem;
    if ((r = finish_vocab(t, what)) || (r = add_merges(t, lines + 1, CLIP_N_MERGES, 2, what)))
        goto fail;
    free(lines);
    *out = t;
    return VKD_OK;
nomem:
    r = oom();
fail:
    free(lines);
    vkd_tokenizer_destroy(t);
    return r;
}

vkd_result vkd_tokenizer_load_hf_text(const char *vocab_json, size_t vocab_len, const char *merges,
                                      size_t merges_len, vkd_tokenizer **out)
{
    vkd_result r = VKD_OK;
    span *lines = NULL;
    size_t n_lines = 0;
    cJSON *root = NULL;
    *out = NULL;
    vkd_tokenizer *t = tok_new();
    if (!t)
        return oom();
    root = cJSON_ParseWithLength(vocab_json, vocab_len);
    if (!root || !cJSON_IsObject(root)) {
        VKD_ERROR("vocab.json: not a JSON object (token -> id)");
        r = VKD_ERR_FORMAT;
        goto fail;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= MAX_VOCAB_ID ||
            e->valuedouble != (double)(int32_t)e->valuedouble || !e->string) {
            VKD_ERROR("vocab.json: token '%.40s' has no integer id in [0, %d)", e->string ? e->string : "?",
                      MAX_VOCAB_ID);
            r = VKD_ERR_FORMAT;
            goto fail;
        }
        if (strmap_put(&t->vocab, e->string, strlen(e->string), (int32_t)e->valuedouble))
            goto nomem;
    }
    cJSON_Delete(root);
    root = NULL;
    if ((r = finish_vocab(t, "vocab.json")))
        goto fail;

    /* HF CLIPTokenizer: strip(), split on newlines, skip the "#version" line, keep at
     * most 48,894 merges. */
    while (merges_len && (merges[merges_len - 1] == '\n' || merges[merges_len - 1] == '\r' ||
                          merges[merges_len - 1] == ' '))
        merges_len--;
    if ((r = split_lines(merges, merges_len, &lines, &n_lines)))
        goto fail;
    size_t first = (n_lines && lines[0].n >= 8 && memcmp(lines[0].s, "#version", 8) == 0) ? 1 : 0;
    size_t n = n_lines - first;
    if (merges_len == 0)
        n = 0;
    if (n > CLIP_N_MERGES)
        n = CLIP_N_MERGES;
    if (n == 0) {
        VKD_ERROR("merges.txt: no merges");
        r = VKD_ERR_FORMAT;
        goto fail;
    }
    if ((r = add_merges(t, lines + first, n, first + 1, "merges.txt")))
        goto fail;
    free(lines);
    *out = t;
    return VKD_OK;
nomem:
    r = oom();
fail:
    cJSON_Delete(root);
    free(lines);
    vkd_tokenizer_destroy(t);
    return r;
}

/* Reads a whole file; gzip-compressed files are inflated (zlib reads plain files as is). */
static vkd_result read_file_z(const char *path, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    /* O_NONBLOCK and fstat: a FIFO would block the open, and is not a vocabulary */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        VKD_ERROR("tokenizer: cannot open '%s': %s", path, strerror(errno));
        return VKD_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        VKD_ERROR("tokenizer: '%s' is not a regular file", path);
        close(fd);
        return VKD_ERR_IO;
    }
    gzFile f = gzdopen(fd, "rb"); /* owns fd from here */
    if (!f) {
        close(fd);
        VKD_ERROR("tokenizer: cannot open '%s'", path);
        return VKD_ERR_IO;
    }
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        gzclose(f);
        return oom();
    }
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_BPE_TEXT) {
                VKD_ERROR("tokenizer: '%s' is larger than %u MiB once inflated", path, MAX_BPE_TEXT >> 20);
                free(buf);
                gzclose(f);
                return VKD_ERR_FORMAT;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                gzclose(f);
                return oom();
            }
            buf = nb;
            cap *= 2;
        }
        int got = gzread(f, buf + n, (unsigned)(cap - n));
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            if (zerr == Z_ERRNO)
                VKD_ERROR("tokenizer: cannot read '%s' (a folder needs vocab.json + merges.txt)", path);
            else
                VKD_ERROR("tokenizer: '%s' is damaged: %s", path, msg ? msg : "zlib error");
            free(buf);
            gzclose(f);
            return zerr == Z_ERRNO ? VKD_ERR_IO : VKD_ERR_FORMAT;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    /* gzread stops quietly at a truncated stream; gzclose_r reports it. */
    int zerr;
    const char *msg = gzerror(f, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        VKD_ERROR("tokenizer: '%s' is damaged: %s", path, msg ? msg : "zlib error");
        free(buf);
        gzclose(f);
        return VKD_ERR_FORMAT;
    }
    gzclose(f);
    *data = buf;
    *len = n;
    return VKD_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int file_exists(const char *p) /* a regular file (stat: a FIFO must not block) */
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static vkd_result load_hf_files(const char *vocab_path, const char *merges_path, vkd_tokenizer **out)
{
    char *v = NULL, *m = NULL;
    size_t vl, ml;
    vkd_result r = read_file_z(vocab_path, &v, &vl);
    if (!r)
        r = read_file_z(merges_path, &m, &ml);
    if (!r) {
        r = vkd_tokenizer_load_hf_text(v, vl, m, ml, out);
        if (r)
            VKD_ERROR("tokenizer: could not load '%s' + '%s'", vocab_path, merges_path);
    }
    free(v);
    free(m);
    return r;
}

vkd_result vkd_tokenizer_load(const char *path, vkd_tokenizer **out)
{
    *out = NULL;
    if (!path || !*path) {
        VKD_ERROR("tokenizer: no path given");
        return VKD_ERR_INVALID_ARG;
    }
    size_t pl = strlen(path);
    if (pl > 4000) {
        VKD_ERROR("tokenizer: path too long");
        return VKD_ERR_INVALID_ARG;
    }
    char a[4200], b[4200];
    if (ends_with(path, ".json")) {
        /* merges.txt beside vocab.json */
        const char *slash = strrchr(path, '/');
        size_t dir = slash ? (size_t)(slash - path + 1) : 0;
        snprintf(b, sizeof(b), "%.*smerges.txt", (int)dir, path);
        return load_hf_files(path, b, out);
    }
    static const char *const sub[] = {"", "tokenizer/"};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof(a), "%s/%svocab.json", path, sub[i]);
        snprintf(b, sizeof(b), "%s/%smerges.txt", path, sub[i]);
        if (file_exists(a) && file_exists(b))
            return load_hf_files(a, b, out);
    }
    char *text;
    size_t len;
    vkd_result r = read_file_z(path, &text, &len);
    if (r)
        return r;
    r = vkd_tokenizer_load_bpe_text(text, len, out);
    free(text);
    if (r)
        VKD_ERROR("tokenizer: could not load '%s'", path);
    return r;
}

int32_t vkd_tokenizer_bos(const vkd_tokenizer *t) { return t->bos; }
int32_t vkd_tokenizer_eos(const vkd_tokenizer *t) { return t->eos; }
int32_t vkd_tokenizer_comma(const vkd_tokenizer *t) { return t->comma; }
int32_t vkd_tokenizer_vocab_size(const vkd_tokenizer *t) { return t->n_ids; }

const char *vkd_tokenizer_token_str(const vkd_tokenizer *t, int32_t id)
{
    if (id < 0 || id >= t->n_ids || t->id_off[id] == UINT32_MAX)
        return NULL;
    return t->vocab.pool + t->id_off[id];
}

/* ---- text cleanup ------------------------------------------------------------------ */

/* Python's html.unescape, for numeric references and the named references below (the
 * HTML5 entries for these names, with the legacy forms that need no ';'). */
static const struct {
    const char *name;
    uint32_t cp;
    int legacy;                       /* also valid without ';' */
} entities[] = {
    {"amp", '&', 1}, {"AMP", '&', 1}, {"lt", '<', 1}, {"LT", '<', 1}, {"gt", '>', 1}, {"GT", '>', 1},
    {"quot", '"', 1}, {"QUOT", '"', 1}, {"nbsp", 0xA0, 1}, {"apos", '\'', 0}, {"Lt", 0x226A, 0},
    {"Gt", 0x226B, 0},
};

/* html._invalid_charrefs for 0x80..0x9F: the windows-1252 reading of those bytes */
static const uint16_t cp1252[32] = {
    0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
};

/* Returns the replacement of &#num; (0 code points if Python drops it). */
static int charref(uint32_t num, uint32_t *out)
{
    if (num == 0) {
        *out = 0xFFFD;
        return 1;
    }
    if (num == 0x0D) {
        *out = 0x0D;
        return 1;
    }
    if (num >= 0x80 && num <= 0x9F) {
        *out = cp1252[num - 0x80];
        return 1;
    }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        *out = 0xFFFD;
        return 1;
    }
    if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) || num == 0x7F ||
        (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
        return 0;
    *out = num;
    return 1;
}

static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int is_hex(uint32_t c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
static uint32_t hex_val(uint32_t c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

static int name_eq(const uint32_t *s, size_t n, const char *name)
{
    size_t k = strlen(name);
    if (k != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != (unsigned char)name[i])
            return 0;
    return 1;
}

/* out may not alias in; the result is never longer than the input. */
static size_t html_unescape(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t o = 0, i = 0;
    while (i < n) {
        if (in[i] != '&') {
            out[o++] = in[i++];
            continue;
        }
        size_t j = i + 1;
        if (j < n && in[j] == '#') {
            uint32_t num = 0;
            size_t k = j + 1;
            if (k < n && is_digit(in[k])) {
                for (; k < n && is_digit(in[k]); k++)
                    num = num > 0x10FFFF ? num : num * 10 + (in[k] - '0');
            } else if (k + 1 < n && (in[k] | 0x20) == 'x' && is_hex(in[k + 1])) {
                for (k++; k < n && is_hex(in[k]); k++)
                    num = num > 0x10FFFF ? num : num * 16 + hex_val(in[k]);
            } else {
                out[o++] = in[i++];
                continue;
            }
            if (k < n && in[k] == ';')
                k++;
            o += (size_t)charref(num, out + o);
            i = k;
            continue;
        }
        /* named: [^\t\n\f <&#;]{1,32};? */
        size_t k = j;
        while (k < n && k - j < 32 && in[k] != '\t' && in[k] != '\n' && in[k] != '\f' && in[k] != ' ' &&
               in[k] != '<' && in[k] != '&' && in[k] != '#' && in[k] != ';')
            k++;
        if (k == j) {
            out[o++] = in[i++];
            continue;
        }
        if (k < n && in[k] == ';')
            k++;
        const uint32_t *s = in + j;
        size_t sl = k - j;
        int done = 0;
        for (size_t e = 0; e < sizeof(entities) / sizeof(entities[0]) && !done; e++) {
            size_t nl = strlen(entities[e].name);
            if ((sl == nl + 1 && s[nl] == ';' && name_eq(s, nl, entities[e].name)) ||
                (entities[e].legacy && name_eq(s, sl, entities[e].name))) {
                out[o++] = entities[e].cp;
                done = 1;
            }
        }
        if (!done) {
            /* the longest legacy name that is a proper prefix (at least 2 long) */
            size_t best = 0;
            uint32_t cp = 0;
            for (size_t e = 0; e < sizeof(entities) / sizeof(entities[0]); e++) {
                size_t nl = strlen(entities[e].name);
                if (entities[e].legacy && nl >= 2 && nl < sl && nl > best && name_eq(s, nl, entities[e].name))
                    best = nl, cp = entities[e].cp;
            }
            if (best) {
                out[o++] = cp;
                for (size_t q = best; q < sl; q++)
                    out[o++] = s[q];
            } else {
                out[o++] = '&';
                for (size_t q = 0; q < sl; q++)
                    out[o++] = s[q];
            }
        }
        i = k;
    }
    return o;
}

/* str.strip(), in place; returns the new length. */
static size_t py_strip(uint32_t *t, size_t n)
{
    size_t a = 0;
    while (a < n && vkd_uc_is_pyspace(t[a]))
        a++;
    while (n > a && vkd_uc_is_pyspace(t[n - 1]))
        n--;
    memmove(t, t + a, (n - a) * sizeof(*t));
    return n - a;
}

/* re.sub(r'\s+', ' ', text), in place. */
static size_t collapse_space(uint32_t *t, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (vkd_uc_is_space(t[i])) {
            while (i < n && vkd_uc_is_space(t[i]))
                i++;
            t[o++] = ' ';
        } else {
            t[o++] = t[i++];
        }
    }
    return o;
}

/* ---- word splitting ------------------------------------------------------------------ */

/* The pattern is compiled with re.IGNORECASE; on lower-cased text the only letter that
 * still folds onto another is U+017F (long s), which matches 's'. */
static int ci_eq(uint32_t c, char want)
{
    return c == (unsigned char)want || (want == 's' && c == 0x017F);
}

static size_t match_lit(const uint32_t *t, size_t n, size_t i, const char *lit)
{
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || !ci_eq(t[i + k], lit[k]))
            return 0;
    return k;
}

/* Length of the match of
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * at t[i], 0 if none (whitespace). Alternatives are tried in order, as the regex does. */
static size_t match_word(const uint32_t *t, size_t n, size_t i)
{
    static const char *const lits[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t k = 0; k < sizeof(lits) / sizeof(lits[0]); k++) {
        size_t m = match_lit(t, n, i, lits[k]);
        if (m)
            return m;
    }
    size_t j = i;
    if (vkd_uc_is_letter(t[i])) {
        while (j < n && vkd_uc_is_letter(t[j]))
            j++;
        return j - i;
    }
    if (vkd_uc_is_number(t[i]))
        return 1;
    while (j < n && !vkd_uc_is_space(t[j]) && !vkd_uc_is_letter(t[j]) && !vkd_uc_is_number(t[j]))
        j++;
    return j - i;
}

/* ---- BPE --------------------------------------------------------------------------- */

struct heap_entry {
    int32_t rank, pos;            /* ordered by (rank, pos) */
    int32_t left, right;          /* the ids the pair had when pushed, to spot stale entries */
};

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
    const pair_slot *ps = pairs_get(t, t->sym_id[p], t->sym_id[q]);
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
            const pair_slot *ps = pairs_get(t, e.left, e.right);
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
    if (strmap_get(&t->cache, w, m, &at)) {
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
        return oom();
    size_t n = bpe_word(t, (const unsigned char *)w, m, out);
    *n_out = n;
    if (m > CACHE_MAX_WORD_BYTES)
        return VKD_OK;
    if (t->cache.n >= CACHE_MAX_WORDS) {          /* full: start over rather than evict */
        strmap_free(&t->cache);
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
    if (strmap_put(&t->cache, w, m, (int32_t)t->cache_len))
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
        r = oom();
        goto done;
    }
    size_t n, bad;
    if (vkd_utf8_decode(text, len, a, &n, &bad)) {
        VKD_ERROR("tokenizer: the text is not valid UTF-8 (byte %zu)", bad);
        r = VKD_ERR_INVALID_ARG;
        goto done;
    }
    /* basic_clean (less ftfy): unescape twice, strip; whitespace_clean; lower */
    n = html_unescape(a, n, b);
    n = html_unescape(b, n, a);
    n = py_strip(a, n);
    n = collapse_space(a, n);
    n = py_strip(a, n);
    n = vkd_uc_lower(a, n, b);

    size_t out = 0;
    for (size_t i = 0; i < n;) {
        size_t m = match_word(b, n, i);
        if (!m) {
            i++;
            continue;
        }
        size_t wl = 0;
        for (size_t k = i; k < i + m; k++)
            wl += (size_t)vkd_utf8_encode(b[k], word + wl);
        i += m;
        size_t nw;
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
