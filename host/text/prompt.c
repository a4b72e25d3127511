/* A1111 prompt handling: emphasis parse (prompt_parser.parse_prompt_attention) and
 * 75-token chunking (sd_hijack_clip.FrozenCLIPEmbedderWithCustomWordsBase.tokenize_line). */
#include "text/prompt.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "text/unicode.h"

void vkd_prompt_params_init(vkd_prompt_params *p)
{
    p->pad = VKD_PROMPT_PAD_EOS;
    p->emphasis = 1;
    p->comma_backtrack = 20;
}

/* ---- segment list -------------------------------------------------------------------- */

typedef struct {
    vkd_prompt_segment *s;
    size_t n, cap;
} seglist;

static int seg_add(seglist *l, const char *text, size_t len, double w)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        vkd_prompt_segment *s = realloc(l->s, cap * sizeof(*s));
        if (!s)
            return -1;
        l->s = s;
        l->cap = cap;
    }
    char *t = malloc(len + 1);
    if (!t)
        return -1;
    memcpy(t, text, len);
    t[len] = 0;
    l->s[l->n].text = t;
    l->s[l->n].weight = w;
    l->n++;
    return 0;
}

void vkd_prompt_segments_free(vkd_prompt_segment *segs, size_t n)
{
    if (!segs)
        return;
    for (size_t i = 0; i < n; i++)
        free(segs[i].text);
    free(segs);
}

/* ---- BREAK: re.split(r"\s*\bBREAK\b\s*", text), stdlib re classes ------------------------ */

/* The code point that ends just before byte i; for bytes that are not UTF-8 (a caller
 * of vkd_prompt_parse_attention that did not check), the lead byte, as cp_at does. */
static uint32_t cp_before(const char *s, size_t i)
{
    size_t k = i - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    uint32_t c;
    size_t n, bad;
    if (vkd_utf8_decode(s + k, i - k, &c, &n, &bad) || n != 1)
        c = (unsigned char)s[k];
    return c;
}

/* Length in bytes of the code point at s[i] and the code point. */
static size_t cp_at(const char *s, size_t len, size_t i, uint32_t *c)
{
    unsigned char b = (unsigned char)s[i];
    size_t l = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    if (l > len - i)
        l = len - i;
    size_t n, bad;
    if (vkd_utf8_decode(s + i, l, c, &n, &bad) || n != 1)
        *c = b;
    return l;
}

static int add_plain(seglist *l, const char *s, size_t len)
{
    size_t part = 0, i = 0;
    while (i < len) {
        /* \s* greedy from i, then \bBREAK\b; a match can only start its BREAK where the
         * whitespace run ends, so a failed run is skipped whole (linear time) */
        size_t j = i;
        uint32_t c;
        while (j < len) {
            size_t cl = cp_at(s, len, j, &c);
            if (!vkd_uc_is_pyspace(c))
                break;
            j += cl;
        }
        int ok = len - j >= 5 && memcmp(s + j, "BREAK", 5) == 0 &&
                 (j > i || j == 0 || !vkd_uc_is_word(cp_before(s, j)));
        if (ok && j + 5 < len) {
            cp_at(s, len, j + 5, &c);
            ok = !vkd_uc_is_word(c);
        }
        if (!ok) {
            if (j > i)
                i = j;
            else
                i += cp_at(s, len, i, &c);
            continue;
        }
        size_t end = j + 5;
        while (end < len) {
            size_t cl = cp_at(s, len, end, &c);
            if (!vkd_uc_is_pyspace(c))
                break;
            end += cl;
        }
        if (seg_add(l, s + part, i - part, 1.0) || seg_add(l, "BREAK", 5, -1.0))
            return -1;
        part = i = end;
    }
    return seg_add(l, s + part, len - part, 1.0);
}

/* ---- emphasis ----------------------------------------------------------------------- */

/* float() of [+-]?[.\d]+ ; 0 if Python would raise. Independent of the C locale. */
static int parse_weight(const char *s, size_t n, double *out)
{
    char buf[128];
    size_t digits = 0, dots = 0;
    const char *point = localeconv()->decimal_point;
    size_t pl = strlen(point), o = 0;
    if (n + pl >= sizeof(buf))
        return 0;                 /* so long a number is not worth a special case */
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            dots++;
            memcpy(buf + o, point, pl);
            o += pl;
        } else {
            digits += s[i] >= '0' && s[i] <= '9';
            buf[o++] = s[i];
        }
    }
    buf[o] = 0;
    if (!digits || dots > 1)
        return 0;
    *out = strtod(buf, NULL);
    return 1;
}

static void multiply_range(seglist *l, size_t start, double m)
{
    for (size_t p = start; p < l->n; p++)
        l->s[p].weight *= m;
}

vkd_result vkd_prompt_parse_attention(const char *text, vkd_prompt_segment **segs, size_t *n_out)
{
    const double round_mult = 1.1, square_mult = 1 / 1.1;
    seglist l = {0};
    size_t *round = NULL, *square = NULL, nr = 0, ns = 0;
    size_t len = strlen(text);
    vkd_result r = VKD_OK;
    *segs = NULL;
    *n_out = 0;
    round = malloc((len + 1) * sizeof(*round));
    square = malloc((len + 1) * sizeof(*square));
    if (!round || !square)
        goto nomem;
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (c == '\\') {
            /* \( \) \[ \] \\ are the character; a lone \ is dropped (text[1:] of "\") */
            size_t k = i + 1 < len && strchr("()[]\\", text[i + 1]) ? 1 : 0;
            if (seg_add(&l, text + i + 1, k, 1.0))
                goto nomem;
            i += 1 + k;
        } else if (c == '(') {
            round[nr++] = l.n;
            i++;
        } else if (c == '[') {
            square[ns++] = l.n;
            i++;
        } else if (c == ':') {
            /* :([+-]?[.\d]+)\) */
            size_t j = i + 1, k;
            if (j < len && (text[j] == '+' || text[j] == '-'))
                j++;
            for (k = j; k < len && (text[k] == '.' || (text[k] >= '0' && text[k] <= '9')); k++)
                ;
            if (k > j && k < len && text[k] == ')') {
                if (nr) {
                    double w;
                    if (!parse_weight(text + i + 1, k - i - 1, &w)) {
                        VKD_ERROR("prompt: emphasis weight '%.*s' is not a number", (int)(k - i - 1), text + i + 1);
                        r = VKD_ERR_INVALID_ARG;
                        goto fail;
                    }
                    multiply_range(&l, round[--nr], w);
                } else if (add_plain(&l, text + i, k + 1 - i)) {
                    goto nomem;
                }
                i = k + 1;
            } else {
                if (add_plain(&l, ":", 1))
                    goto nomem;
                i++;
            }
        } else if (c == ')' && nr) {
            multiply_range(&l, round[--nr], round_mult);
            i++;
        } else if (c == ']' && ns) {
            multiply_range(&l, square[--ns], square_mult);
            i++;
        } else if (c == ')' || c == ']') {
            if (add_plain(&l, text + i, 1))
                goto nomem;
            i++;
        } else {
            size_t k = i;
            while (k < len && !strchr("\\()[]:", text[k]))
                k++;
            if (add_plain(&l, text + i, k - i))
                goto nomem;
            i = k;
        }
    }
    for (size_t k = 0; k < nr; k++)
        multiply_range(&l, round[k], round_mult);
    for (size_t k = 0; k < ns; k++)
        multiply_range(&l, square[k], square_mult);
    if (l.n == 0 && seg_add(&l, "", 0, 1.0))
        goto nomem;
    /* merge runs of identical weights */
    for (size_t i = 0; i + 1 < l.n;) {
        if (l.s[i].weight == l.s[i + 1].weight) {
            size_t a = strlen(l.s[i].text), b = strlen(l.s[i + 1].text);
            char *t = realloc(l.s[i].text, a + b + 1);
            if (!t)
                goto nomem;
            memcpy(t + a, l.s[i + 1].text, b + 1);
            l.s[i].text = t;
            free(l.s[i + 1].text);
            memmove(l.s + i + 1, l.s + i + 2, (l.n - i - 2) * sizeof(*l.s));
            l.n--;
        } else {
            i++;
        }
    }
    free(round);
    free(square);
    *segs = l.s;
    *n_out = l.n;
    return VKD_OK;
nomem:
    VKD_ERROR("prompt: out of host memory");
    r = VKD_ERR_OUT_OF_HOST_MEMORY;
fail:
    free(round);
    free(square);
    vkd_prompt_segments_free(l.s, l.n);
    return r;
}

/* ---- chunking ----------------------------------------------------------------------- */

typedef struct {
    int32_t *ids;
    double *w;
    size_t n_chunks, cap;
    int32_t cur_ids[VKD_PROMPT_CHUNK_TOKENS];
    double cur_w[VKD_PROMPT_CHUNK_TOKENS];
    int cur_n, last_comma, token_count;
    int32_t bos, eos;
} chunker;

/* tokenize_line's next_chunk(): pad with EOS to 75, wrap in BOS/EOS. */
static int next_chunk(chunker *c, int is_last)
{
    c->token_count += is_last ? c->cur_n : VKD_PROMPT_CHUNK_TOKENS;
    if (c->n_chunks == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 2;
        int32_t *ids = realloc(c->ids, cap * VKD_PROMPT_CHUNK_LEN * sizeof(*ids));
        if (!ids)
            return -1;
        c->ids = ids;
        double *w = realloc(c->w, cap * VKD_PROMPT_CHUNK_LEN * sizeof(*w));
        if (!w)
            return -1;
        c->w = w;
        c->cap = cap;
    }
    int32_t *ids = c->ids + c->n_chunks * VKD_PROMPT_CHUNK_LEN;
    double *w = c->w + c->n_chunks * VKD_PROMPT_CHUNK_LEN;
    ids[0] = c->bos;
    w[0] = 1.0;
    for (int k = 0; k < VKD_PROMPT_CHUNK_TOKENS; k++) {
        ids[1 + k] = k < c->cur_n ? c->cur_ids[k] : c->eos;
        w[1 + k] = k < c->cur_n ? c->cur_w[k] : 1.0;
    }
    ids[VKD_PROMPT_CHUNK_LEN - 1] = c->eos;
    w[VKD_PROMPT_CHUNK_LEN - 1] = 1.0;
    c->n_chunks++;
    c->cur_n = 0;
    c->last_comma = -1;
    return 0;
}

vkd_result vkd_prompt_tokenize(vkd_tokenizer *tok, const char *prompt, const vkd_prompt_params *p,
                               vkd_prompt_tokens *out)
{
    memset(out, 0, sizeof(*out));
    vkd_prompt_segment *segs = NULL;
    size_t n_segs = 0;
    int32_t *ids = NULL;
    chunker c = {0};
    c.last_comma = -1;
    c.bos = vkd_tokenizer_bos(tok);
    c.eos = vkd_tokenizer_eos(tok);
    const int32_t comma = vkd_tokenizer_comma(tok);
    vkd_result r;
    size_t len = strlen(prompt);

    /* reject bad UTF-8 before parsing, so errors name the prompt's byte offset */
    {
        uint32_t *tmp = malloc((len + 1) * sizeof(*tmp));
        size_t n, bad;
        if (!tmp)
            goto nomem;
        int bad_utf8 = vkd_utf8_decode(prompt, len, tmp, &n, &bad);
        free(tmp);
        if (bad_utf8) {
            VKD_ERROR("prompt: not valid UTF-8 (byte %zu)", bad);
            return VKD_ERR_INVALID_ARG;
        }
    }
    if (p->emphasis) {
        if ((r = vkd_prompt_parse_attention(prompt, &segs, &n_segs)))
            return r;
    } else {
        segs = calloc(1, sizeof(*segs));
        if (!segs || !(segs[0].text = malloc(len + 1))) {
            free(segs);
            segs = NULL;
            goto nomem;
        }
        memcpy(segs[0].text, prompt, len + 1);
        segs[0].weight = 1.0;
        n_segs = 1;
    }
    ids = malloc(vkd_tokenizer_encode_bound(len) * sizeof(*ids));
    if (!ids)
        goto nomem;
    for (size_t s = 0; s < n_segs; s++) {
        const double weight = segs[s].weight;
        if (strcmp(segs[s].text, "BREAK") == 0 && weight == -1.0) {
            if (next_chunk(&c, 0))
                goto nomem;
            continue;
        }
        size_t n;
        const size_t tl = strlen(segs[s].text);
        if ((r = vkd_tokenizer_encode(tok, segs[s].text, tl, ids, vkd_tokenizer_encode_bound(tl), &n)))
            goto fail;
        for (size_t k = 0; k < n; k++) {
            if (ids[k] == comma) {
                c.last_comma = c.cur_n;
            } else if (p->comma_backtrack != 0 && c.cur_n == VKD_PROMPT_CHUNK_TOKENS && c.last_comma != -1 &&
                       c.cur_n - c.last_comma <= p->comma_backtrack) {
                /* move the words after the last comma to the next chunk */
                int at = c.last_comma + 1, nr = c.cur_n - at;
                int32_t rid[VKD_PROMPT_CHUNK_TOKENS];
                double rw[VKD_PROMPT_CHUNK_TOKENS];
                memcpy(rid, c.cur_ids + at, (size_t)nr * sizeof(*rid));
                memcpy(rw, c.cur_w + at, (size_t)nr * sizeof(*rw));
                c.cur_n = at;
                if (next_chunk(&c, 0))
                    goto nomem;
                memcpy(c.cur_ids, rid, (size_t)nr * sizeof(*rid));
                memcpy(c.cur_w, rw, (size_t)nr * sizeof(*rw));
                c.cur_n = nr;
            }
            if (c.cur_n == VKD_PROMPT_CHUNK_TOKENS && next_chunk(&c, 0))
                goto nomem;
            c.cur_ids[c.cur_n] = ids[k];
            c.cur_w[c.cur_n] = weight;
            c.cur_n++;
        }
    }
    if ((c.cur_n > 0 || c.n_chunks == 0) && next_chunk(&c, 1))
        goto nomem;

    size_t total = c.n_chunks * VKD_PROMPT_CHUNK_LEN;
    out->ids = c.ids;
    out->weights = malloc(total * sizeof(*out->weights));
    if (!out->weights) {
        out->ids = NULL;
        goto nomem;
    }
    for (size_t i = 0; i < total; i++)
        out->weights[i] = (float)c.w[i];
    if (p->pad == VKD_PROMPT_PAD_ZERO) {
        /* A1111 process_tokens: everything after the first EOS of a chunk becomes 0 */
        for (size_t ch = 0; ch < c.n_chunks; ch++) {
            int32_t *row = out->ids + ch * VKD_PROMPT_CHUNK_LEN;
            int k = 0;
            while (row[k] != c.eos)
                k++;
            for (k++; k < VKD_PROMPT_CHUNK_LEN; k++)
                row[k] = 0;
        }
    }
    out->n_chunks = (int)c.n_chunks;
    out->token_count = c.token_count;
    free(c.w);
    free(ids);
    vkd_prompt_segments_free(segs, n_segs);
    return VKD_OK;
nomem:
    VKD_ERROR("prompt: out of host memory");
    r = VKD_ERR_OUT_OF_HOST_MEMORY;
fail:
    free(c.ids);
    free(c.w);
    free(ids);
    vkd_prompt_segments_free(segs, n_segs);
    memset(out, 0, sizeof(*out));
    return r;
}

void vkd_prompt_tokens_free(vkd_prompt_tokens *t)
{
    if (!t)
        return;
    free(t->ids);
    free(t->weights);
    memset(t, 0, sizeof(*t));
}
