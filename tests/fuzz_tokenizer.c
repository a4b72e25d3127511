/* libFuzzer target: prompt text through the A1111 parser and the CLIP tokenizer, and
 * vocabulary files through both loaders.
 *
 * The first byte picks what the rest is:
 *   0..0xEF  a prompt, tokenized with the real vocabulary (low bits pick SD1/SD2,
 *            emphasis on/off, comma backtrack); the vocabulary comes from
 *            $VKD_SHARED/clip/bpe_simple_vocab_16e6.txt.gz or ../shared/clip/ (if absent,
 *            only the loaders are fuzzed)
 *   0xF0..F7 a decompressed bpe_simple_vocab text
 *   0xF8..FF vocab.json, a NUL byte, merges.txt
 * Run: ./fuzz_tokenizer -max_total_time=60 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "text/prompt.h"
#include "text/tokenizer.h"

static void quiet(vkd_log_level level, const char *msg, void *user) { (void)level, (void)msg, (void)user; }

static vkd_tokenizer *shared_tokenizer(void)
{
    static int tried;
    static vkd_tokenizer *tok;
    if (tried)
        return tok;
    tried = 1;
    char path[4096];
    const char *env = getenv("VKD_SHARED");
    const char *roots[] = {env, "../shared", "../../shared", "shared"};
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]) && !tok; i++) {
        if (!roots[i])
            continue;
        snprintf(path, sizeof(path), "%s/clip/bpe_simple_vocab_16e6.txt.gz", roots[i]);
        if (vkd_tokenizer_load(path, &tok) != VKD_OK)
            tok = NULL;
    }
    if (!tok)
        fprintf(stderr, "fuzz_tokenizer: no vocabulary found (set VKD_SHARED); fuzzing the loaders only\n");
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vkd_log_set(quiet, NULL, VKD_LOG_ERROR);
    if (size < 1)
        return 0;
    const uint8_t mode = data[0];
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    if (mode >= 0xF0) {
        vkd_tokenizer *t = NULL;
        if (mode < 0xF8) {
            vkd_tokenizer_load_bpe_text(rest, n, &t);
        } else {
            const char *nul = memchr(rest, 0, n);
            size_t vl = nul ? (size_t)(nul - rest) : n;
            vkd_tokenizer_load_hf_text(rest, vl, nul ? nul + 1 : "", nul ? n - vl - 1 : 0, &t);
        }
        if (t) {
            int32_t ids[64];
            size_t k;
            vkd_tokenizer_encode(t, "a photo of a cat", 16, ids, 64, &k);
        }
        vkd_tokenizer_destroy(t);
        return 0;
    }
    vkd_tokenizer *tok = shared_tokenizer();
    if (!tok)
        return 0;
    char *text = malloc(n + 1);
    if (!text)
        return 0;
    memcpy(text, rest, n);
    text[n] = 0;

    size_t cap = vkd_tokenizer_encode_bound(n), got;
    int32_t *ids = malloc(cap * sizeof(*ids));
    if (ids && vkd_tokenizer_encode(tok, text, n, ids, cap, &got) == VKD_OK) {
        for (size_t i = 0; i < got; i++)
            if (ids[i] < 0 || ids[i] >= vkd_tokenizer_vocab_size(tok))
                abort();
    }
    free(ids);

    vkd_prompt_params p;
    vkd_prompt_params_init(&p);
    p.pad = (mode & 1) ? VKD_PROMPT_PAD_ZERO : VKD_PROMPT_PAD_EOS;
    p.emphasis = !(mode & 2);
    p.comma_backtrack = (mode & 4) ? 0 : (mode & 8) ? 74 : 20;
    vkd_prompt_tokens t;
    if (vkd_prompt_tokenize(tok, text, &p, &t) == VKD_OK) {
        /* every chunk is BOS ... EOS ... and 77 long */
        for (int c = 0; c < t.n_chunks; c++)
            if (t.ids[c * VKD_PROMPT_CHUNK_LEN] != vkd_tokenizer_bos(tok))
                abort();
        vkd_prompt_tokens_free(&t);
    }
    free(text);
    return 0;
}
