/* libFuzzer target: the A1111 prompt handling of host/text/prompt.c -- the emphasis
 * parser (vkd_prompt_parse_attention) and the 75-token chunking with comma backtrack
 * (vkd_prompt_tokenize) -- with checks on what they return.
 *
 * Input: one byte of flags, then the prompt (bytes, NUL-terminated by the harness).
 *   bit 0    pad with 0 (SD2) instead of EOS (SD1)
 *   bit 1    emphasis off
 *   bits 2-3 comma backtrack 20, 0 (off), 74, 1
 *   bit 4    the small built-in vocabulary (every byte one token, a few merges: chunks
 *            fill after ~75 characters) instead of CLIP's; CLIP's comes from
 *            $VKD_SHARED/clip/bpe_simple_vocab_16e6.txt.gz or ../shared/clip/ and, where
 *            absent, the built-in one serves for both
 * Checks: every chunk is BOS + 75 + EOS with weight 1 at both ends, ids in the
 * vocabulary, zero padding after the first EOS (bit 0); without emphasis and comma
 * backtrack the chunks hold exactly vkd_tokenizer_encode's ids, 75 a chunk; runs of
 * equal weight come out merged; text without ( ) [ ] \ : and BREAK parses to itself.
 * Run: tools/fuzz.sh, or ./fuzz_prompt -max_total_time=60 tests/fuzz_corpus/prompt */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "lora/lora_set.h"
#include "text/prompt.h"
#include "text/tokenizer.h"

static void quiet(vkd_log_level level, const char *msg, void *user) { (void)level, (void)msg, (void)user; }

#define CHECK(c)                                                                    \
    do {                                                                            \
        if (!(c)) {                                                                 \
            fprintf(stderr, "fuzz_prompt: check failed at line %d: %s\n", __LINE__, #c); \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* GPT-2/CLIP bytes_to_unicode (text/bpe_vocab.c): printable bytes stand for themselves, the
 * others for 256 + n. */
static uint32_t byte_cp(int b)
{
    int n = 0;
    for (int k = 0; k < 256; k++) {
        int printable = (k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || k >= 0xAE;
        if (k == b)
            return printable ? (uint32_t)k : (uint32_t)(256 + n);
        n += !printable;
    }
    return 0;
}

static size_t put_utf8(char *o, uint32_t c)
{
    if (c < 0x80)
        return o[0] = (char)c, 1;
    o[0] = (char)(0xC0 | (c >> 6));
    o[1] = (char)(0x80 | (c & 0x3F));
    return 2; /* byte_cp() < 0x800 */
}

/* A CLIP-style vocabulary: the 512 byte tokens, some merges, the two specials. */
static vkd_tokenizer *tiny_tokenizer(void)
{
    static const char *const merges[][2] = {
        {"a", "n"}, {"an", "d</w>"}, {"t", "h"}, {"th", "e</w>"}, {"c", "a"}, {"ca", "t</w>"},
        {"o", "f</w>"}, {"p", "h"}, {"ph", "o"}, {"pho", "t"}, {"phot", "o</w>"}, {"i", "n"},
        {"in", "g</w>"}, {"r", "e"}, {"e", "d</w>"}, {"b", "r"}, {"br", "e"}, {"bre", "a"}, {"brea", "k</w>"},
    };
    const size_t nm = sizeof(merges) / sizeof(merges[0]);
    char *vocab = malloc(64 * 1024), *mtext = malloc(4096);
    vkd_tokenizer *tok = NULL;
    if (!vocab || !mtext)
        goto done;
    size_t o = 0, mo = 0;
    int id = 0;
    vocab[o++] = '{';
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            uint32_t c = byte_cp(b);
            vocab[o++] = '"';
            if (c == '"' || c == '\\')
                vocab[o++] = '\\';
            o += put_utf8(vocab + o, c);
            o += (size_t)sprintf(vocab + o, "%s\":%d,", pass ? "</w>" : "", id++);
        }
    mo += (size_t)sprintf(mtext + mo, "#version: 0.2\n");
    for (size_t m = 0; m < nm; m++) {
        o += (size_t)sprintf(vocab + o, "\"%s%s\":%d,", merges[m][0], merges[m][1], id++);
        mo += (size_t)sprintf(mtext + mo, "%s %s\n", merges[m][0], merges[m][1]);
    }
    o += (size_t)sprintf(vocab + o, "\"<|startoftext|>\":%d,\"<|endoftext|>\":%d}", id, id + 1);
    if (vkd_tokenizer_load_hf_text(vocab, o, mtext, mo, &tok) != VKD_OK)
        tok = NULL;
done:
    free(vocab);
    free(mtext);
    return tok;
}

static vkd_tokenizer *clip_tokenizer(void)
{
    char path[4096];
    const char *env = getenv("VKD_SHARED");
    const char *roots[] = {env, "../shared", "../../shared", "shared"};
    vkd_tokenizer *tok = NULL;
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]) && !tok; i++) {
        if (!roots[i])
            continue;
        snprintf(path, sizeof(path), "%s/clip/bpe_simple_vocab_16e6.txt.gz", roots[i]);
        if (vkd_tokenizer_load(path, &tok) != VKD_OK)
            tok = NULL;
    }
    return tok;
}

static vkd_tokenizer *tokenizer(int tiny)
{
    static int tried;
    static vkd_tokenizer *small, *clip;
    if (!tried) {
        tried = 1;
        small = tiny_tokenizer();
        clip = clip_tokenizer();
        if (!small)
            abort(); /* the built-in vocabulary must load */
        if (!clip)
            fprintf(stderr, "fuzz_prompt: no CLIP vocabulary found (set VKD_SHARED); the built-in one serves\n");
    }
    return tiny || !clip ? small : clip;
}

static int has_syntax(const char *s)
{
    return strpbrk(s, "()[]\\:") != NULL || strstr(s, "BREAK") != NULL;
}

static void check_segments(const char *text)
{
    vkd_prompt_segment *segs = NULL;
    size_t n = 0;
    vkd_result r = vkd_prompt_parse_attention(text, &segs, &n);
    if (r != VKD_OK) {
        CHECK(r == VKD_ERR_INVALID_ARG && strchr(text, ':')); /* only a bad "(x:w)" weight */
        CHECK(!segs && n == 0);
        return;
    }
    CHECK(segs && n >= 1);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(segs[i].text);
        total += strlen(segs[i].text);
        if (i)
            CHECK(segs[i].weight != segs[i - 1].weight); /* runs merged (NaN never equals) */
    }
    CHECK(total <= strlen(text)); /* parsing only drops characters */
    if (!has_syntax(text)) {
        CHECK(n == 1 && segs[0].weight == 1.0 && strcmp(segs[0].text, text) == 0);
    }
    vkd_prompt_segments_free(segs, n);
}

/* <lora:NAME:W> tags (lora/lora_set.h): the text left is the prompt with whole tags cut
 * out, so never longer; each name is safe to join to a folder; weights are finite. */
static void check_lora_tags(const char *text)
{
    vkd_lora_tags t;
    if (vkd_lora_tags_parse(text, &t) != VKD_OK)
        return;
    CHECK(strlen(t.prompt) + 7 * t.n <= strlen(text));
    for (size_t i = 0; i < t.n; i++) {
        CHECK(t.names[i][0] && !strchr(t.names[i], '/') && !strstr(t.names[i], ".."));
        CHECK(t.weights[i] == t.weights[i] && t.weights[i] >= -1e4f && t.weights[i] <= 1e4f);
    }
    vkd_lora_tags_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vkd_log_set(quiet, NULL, VKD_LOG_DEBUG); /* format every message, print none */
    if (size < 1 || size > 16384)
        return 0;
    const uint8_t flags = data[0];
    vkd_tokenizer *tok = tokenizer(flags & 16);
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    const size_t len = strlen(text);

    check_segments(text);
    check_lora_tags(text);

    vkd_prompt_params p;
    vkd_prompt_params_init(&p);
    static const int backtrack[4] = {20, 0, 74, 1};
    p.pad = (flags & 1) ? VKD_PROMPT_PAD_ZERO : VKD_PROMPT_PAD_EOS;
    p.emphasis = !(flags & 2);
    p.comma_backtrack = backtrack[(flags >> 2) & 3];
    vkd_prompt_tokens t;
    vkd_result r = vkd_prompt_tokenize(tok, text, &p, &t);

    size_t cap = vkd_tokenizer_encode_bound(len), n_ids = 0;
    int32_t *ids = malloc((cap ? cap : 1) * sizeof(*ids));
    vkd_result er = ids ? vkd_tokenizer_encode(tok, text, len, ids, cap, &n_ids) : VKD_ERR_OUT_OF_HOST_MEMORY;
    if (er == VKD_ERR_INVALID_ARG) /* not UTF-8: the prompt is refused too */
        CHECK(r == VKD_ERR_INVALID_ARG);
    if (er == VKD_OK && !p.emphasis)
        CHECK(r == VKD_OK); /* plain valid text always tokenizes */

    if (r == VKD_OK) {
        const int32_t bos = vkd_tokenizer_bos(tok), eos = vkd_tokenizer_eos(tok), nv = vkd_tokenizer_vocab_size(tok);
        CHECK(t.n_chunks >= 1 && t.ids && t.weights);
        CHECK(t.token_count >= 0 && t.token_count <= t.n_chunks * VKD_PROMPT_CHUNK_TOKENS);
        for (int c = 0; c < t.n_chunks; c++) {
            const int32_t *row = t.ids + (size_t)c * VKD_PROMPT_CHUNK_LEN;
            const float *w = t.weights + (size_t)c * VKD_PROMPT_CHUNK_LEN;
            CHECK(row[0] == bos && w[0] == 1.0f);
            CHECK(w[VKD_PROMPT_CHUNK_LEN - 1] == 1.0f);
            if (p.pad == VKD_PROMPT_PAD_EOS)
                CHECK(row[VKD_PROMPT_CHUNK_LEN - 1] == eos);
            int seen_eos = 0;
            for (int k = 0; k < VKD_PROMPT_CHUNK_LEN; k++) {
                CHECK(row[k] >= 0 && row[k] < nv);
                if (p.pad == VKD_PROMPT_PAD_ZERO && seen_eos)
                    CHECK(row[k] == 0);
                seen_eos |= k > 0 && row[k] == eos;
                if (!p.emphasis)
                    CHECK(w[k] == 1.0f);
            }
            CHECK(seen_eos);
        }
        if (!p.emphasis && p.comma_backtrack == 0 && p.pad == VKD_PROMPT_PAD_EOS && er == VKD_OK) {
            /* chunks of 75 in order, the last one partial (one empty chunk for no text) */
            size_t want_chunks = n_ids ? (n_ids + VKD_PROMPT_CHUNK_TOKENS - 1) / VKD_PROMPT_CHUNK_TOKENS : 1;
            CHECK((size_t)t.n_chunks == want_chunks && (size_t)t.token_count == n_ids);
            for (size_t i = 0; i < n_ids; i++)
                CHECK(t.ids[(i / VKD_PROMPT_CHUNK_TOKENS) * VKD_PROMPT_CHUNK_LEN + 1 + i % VKD_PROMPT_CHUNK_TOKENS] ==
                      ids[i]);
        }
        vkd_prompt_tokens_free(&t);
    } else {
        CHECK(r == VKD_ERR_INVALID_ARG);
        CHECK(er != VKD_OK || (p.emphasis && strchr(text, ':'))); /* valid text: only a bad weight */
        CHECK(!t.ids && !t.weights && t.n_chunks == 0);
    }
    free(ids);
    free(text);
    return 0;
}
