/* Building a tokenizer: the vocabulary and the merge ranks, from OpenAI's
 * bpe_simple_vocab_16e6.txt(.gz) or from HF's vocab.json + merges.txt, in memory or
 * from files (gzip inflated, a folder or a diffusers model folder searched), checked
 * as it is read: a malformed file is an error with its name and line, never a
 * tokenizer that encodes differently from the reference. Also the accessors and
 * vkd_tokenizer_destroy. */
#define _POSIX_C_SOURCE 200809L /* open flags, fstat */
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
#include "text/tokenizer_impl.h"
#include "text/unicode.h"

#define MAX_BPE_TEXT (64u << 20)       /* refuse to inflate more than this (gzip bombs) */
#define MAX_VOCAB_ID (1 << 24)

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
    vkd_strmap_free(&t->vocab);
    vkd_strmap_free(&t->cache);
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

vkd_result vkd_tokenizer_oom(void)
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
    return vkd_strmap_get(&t->vocab, s, strlen(s), id);
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
        return vkd_tokenizer_oom();
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
        if (!vkd_strmap_get(&t->vocab, s, (size_t)n, &t->byte_id[b]) ||
            !vkd_strmap_get(&t->vocab, s, (size_t)n + 4, &t->byte_end_id[b])) {
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
        return vkd_tokenizer_oom();
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
        return vkd_tokenizer_oom();
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
        if (!vkd_strmap_get(&t->vocab, buf, al, &ia) || !vkd_strmap_get(&t->vocab, b, bl, &ib) ||
            !vkd_strmap_get(&t->vocab, buf, al + bl, &im)) {
            VKD_ERROR("%s:%zu: merge '%.*s %.*s' uses or makes a token missing from the vocabulary",
                      what, line_base + r, (int)al, lines[r].s, (int)bl, b);
            return VKD_ERR_FORMAT;
        }
        vkd_bpe_pairs_put(t, ia, ib, (int32_t)r, im);
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
        return vkd_tokenizer_oom();
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
            if (vkd_strmap_put(&t->vocab, buf, (size_t)n, id++))
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
        if (vkd_strmap_put(&t->vocab, buf, al + bl, id++))
            goto nomem;
    }
    if (vkd_strmap_put(&t->vocab, "<|startoftext|>", 15, id++) || vkd_strmap_put(&t->vocab, "<|endoftext|>", 13, id++))
        goto nomem;
    if ((r = finish_vocab(t, what)) || (r = add_merges(t, lines + 1, CLIP_N_MERGES, 2, what)))
        goto fail;
    free(lines);
    *out = t;
    return VKD_OK;
nomem:
    r = vkd_tokenizer_oom();
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
        return vkd_tokenizer_oom();
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
        if (vkd_strmap_put(&t->vocab, e->string, strlen(e->string), (int32_t)e->valuedouble))
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
    r = vkd_tokenizer_oom();
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
        return vkd_tokenizer_oom();
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
                return vkd_tokenizer_oom();
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
