/* CLIP tokenizer and A1111 prompt handling against tests/data/tokenizer_golden.json,
 * made by tools/oracle/tokenizer_ref.py from the real vocabulary in ../shared/clip. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "common/log.h"
#include "harness.h"
#include "text/prompt.h"
#include "text/tokenizer.h"

static int write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

/* ids vs a JSON array; returns the first differing index or -1 */
static long first_diff_ids(const int32_t *got, size_t n, const cJSON *want)
{
    size_t wn = (size_t)cJSON_GetArraySize(want), i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, want)
    {
        if (i >= n || got[i] != (int32_t)e->valuedouble)
            return (long)i;
        i++;
    }
    return n == wn ? -1 : (long)wn;
}

static void show_ids(const char *what, const int32_t *got, size_t n, const cJSON *want, long at)
{
    fprintf(stderr, "  %s first mismatch at %ld: got", what, at);
    for (long k = at < 3 ? 0 : at - 3; k < at + 4 && k < (long)n; k++)
        fprintf(stderr, " %d", got[k]);
    fprintf(stderr, " | want");
    for (long k = at < 3 ? 0 : at - 3; k < at + 4 && k < cJSON_GetArraySize(want); k++)
        fprintf(stderr, " %d", (int)cJSON_GetArrayItem(want, (int)k)->valuedouble);
    fprintf(stderr, "  (lengths %zu vs %d)\n", n, cJSON_GetArraySize(want));
}

/* Every golden case through one tokenizer: plain encode, the emphasis parse, SD1 and
 * SD2 chunks with weights, and the no-emphasis path. */
static void check_goldens(vkd_tokenizer *tok, const cJSON *doc, const char *which)
{
    TEST_CHECK(vkd_tokenizer_bos(tok) == cJSON_GetObjectItem(doc, "bos")->valueint, "%s: bos", which);
    TEST_CHECK(vkd_tokenizer_eos(tok) == cJSON_GetObjectItem(doc, "eos")->valueint, "%s: eos", which);
    TEST_CHECK(vkd_tokenizer_comma(tok) == cJSON_GetObjectItem(doc, "comma")->valueint, "%s: comma", which);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(doc, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
        size_t len = strlen(prompt), cap = vkd_tokenizer_encode_bound(len), n = 0;
        int32_t *ids = malloc(cap * sizeof(*ids));
        vkd_result r = vkd_tokenizer_encode(tok, prompt, len, ids, cap, &n);
        const cJSON *want = cJSON_GetObjectItem(c, "encode");
        long at = r ? 0 : first_diff_ids(ids, n, want);
        TEST_CHECK(r == VKD_OK && at < 0, "%s: encode('%s') matches the reference (r=%d)", which, name, r);
        if (!r && at >= 0)
            show_ids("encode", ids, n, want, at);
        free(ids);

        /* emphasis segments: text and weight exactly as A1111's parser */
        vkd_prompt_segment *segs;
        size_t ns;
        r = vkd_prompt_parse_attention(prompt, &segs, &ns);
        const cJSON *wsegs = cJSON_GetObjectItem(c, "segments");
        int seg_ok = r == VKD_OK && ns == (size_t)cJSON_GetArraySize(wsegs);
        for (size_t k = 0; seg_ok && k < ns; k++) {
            const cJSON *ws = cJSON_GetArrayItem(wsegs, (int)k);
            seg_ok = strcmp(segs[k].text, cJSON_GetArrayItem(ws, 0)->valuestring) == 0 &&
                     segs[k].weight == cJSON_GetArrayItem(ws, 1)->valuedouble;
            if (!seg_ok)
                fprintf(stderr, "  segment %zu: got ('%s', %.17g) want ('%s', %.17g)\n", k, segs[k].text,
                        segs[k].weight, cJSON_GetArrayItem(ws, 0)->valuestring, cJSON_GetArrayItem(ws, 1)->valuedouble);
        }
        TEST_CHECK(seg_ok, "%s: parse_prompt_attention('%s') matches A1111 (%zu segments)", which, name, ns);
        if (!r)
            vkd_prompt_segments_free(segs, ns);

        for (int variant = 0; variant < 3; variant++) {
            static const char *const key[] = {"sd1_ids", "sd2_ids", "no_emphasis_ids"};
            vkd_prompt_params p;
            vkd_prompt_params_init(&p);
            p.pad = variant == 1 ? VKD_PROMPT_PAD_ZERO : VKD_PROMPT_PAD_EOS;
            p.emphasis = variant != 2;
            vkd_prompt_tokens t;
            r = vkd_prompt_tokenize(tok, prompt, &p, &t);
            want = cJSON_GetObjectItem(c, key[variant]);
            size_t total = r ? 0 : (size_t)t.n_chunks * VKD_PROMPT_CHUNK_LEN;
            at = r ? 0 : first_diff_ids(t.ids, total, want);
            TEST_CHECK(r == VKD_OK && at < 0, "%s: %s of '%s' match the reference", which, key[variant], name);
            if (!r && at >= 0)
                show_ids(key[variant], t.ids, total, want, at);
            if (variant == 0 && !r) {
                TEST_CHECK(t.n_chunks == cJSON_GetObjectItem(c, "n_chunks")->valueint, "%s: '%s' has %d chunks, want %d",
                           which, name, t.n_chunks, cJSON_GetObjectItem(c, "n_chunks")->valueint);
                TEST_CHECK(t.token_count == cJSON_GetObjectItem(c, "token_count")->valueint,
                           "%s: '%s' token count %d, want %d", which, name, t.token_count,
                           cJSON_GetObjectItem(c, "token_count")->valueint);
                const cJSON *ww = cJSON_GetObjectItem(c, "weights");
                int wok = cJSON_GetArraySize(ww) == (int)total;
                for (size_t k = 0; wok && k < total; k++) {
                    float w = (float)cJSON_GetArrayItem(ww, (int)k)->valuedouble;
                    wok = t.weights[k] == w;
                    if (!wok)
                        fprintf(stderr, "  weight %zu: got %.9g want %.9g\n", k, t.weights[k], w);
                }
                TEST_CHECK(wok, "%s: per-token weights of '%s' match A1111", which, name);
            }
            vkd_prompt_tokens_free(&t);
        }
    }
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(doc, "errors"))
    {
        vkd_prompt_params p;
        vkd_prompt_params_init(&p);
        vkd_prompt_tokens t;
        vkd_result r = vkd_prompt_tokenize(tok, cJSON_GetObjectItem(c, "prompt")->valuestring, &p, &t);
        TEST_CHECK(r == VKD_ERR_INVALID_ARG && t.ids == NULL, "%s: '%s' is refused as A1111 refuses it (r=%d)", which,
                   cJSON_GetObjectItem(c, "name")->valuestring, r);
    }
}

/* vocab.json + merges.txt as HF ships them, written from the .gz vocabulary. */
static int write_hf_files(const vkd_tokenizer *tok, const char *gz_path, const char *dir)
{
    char path[4200];
    cJSON *v = cJSON_CreateObject();
    for (int32_t id = 0; id < vkd_tokenizer_vocab_size(tok); id++) {
        const char *s = vkd_tokenizer_token_str(tok, id);
        if (s)
            cJSON_AddItemToObject(v, s, cJSON_CreateNumber(id));
    }
    char *json = cJSON_PrintUnformatted(v);
    cJSON_Delete(v);
    snprintf(path, sizeof(path), "%s/vocab.json", dir);
    int rc = json ? write_all(path, json, strlen(json)) : -1;
    free(json);
    if (rc)
        return rc;

    gzFile g = gzopen(gz_path, "rb");
    if (!g)
        return -1;
    size_t cap = 4 << 20, n = 0;
    char *buf = malloc(cap);
    int got;
    while (buf && (got = gzread(g, buf + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)got;
        if (n == cap)
            break;
    }
    gzclose(g);
    if (!buf)
        return -1;
    /* header line + 48,894 merges, with the header HF uses */
    size_t line = 0, end = 0;
    while (end < n && line < 48895)
        line += buf[end++] == '\n';
    const char *nl = memchr(buf, '\n', n);
    size_t hdr = nl ? (size_t)(nl - buf) + 1 : 0;
    snprintf(path, sizeof(path), "%s/merges.txt", dir);
    FILE *f = fopen(path, "wb");
    rc = -1;
    if (f) {
        fputs("#version: 0.2\n", f);
        fwrite(buf + hdr, 1, end - hdr, f);
        rc = fclose(f) ? -1 : 0;
    }
    free(buf);
    return rc;
}

static vkd_result load_text(const char *name, const char *text)
{
    const char *p = test_build_path(name);
    if (write_all(p, text, strlen(text)))
        return VKD_ERR_INTERNAL;
    vkd_tokenizer *t = NULL;
    vkd_result r = vkd_tokenizer_load(p, &t);
    TEST_CHECK(r != VKD_OK || t != NULL, "a loaded tokenizer is returned");
    vkd_tokenizer_destroy(t);
    return r;
}

static void test_malformed_vocab_files_give_errors(const char *gz_path)
{
    vkd_tokenizer *t = NULL;
    TEST_CHECK(vkd_tokenizer_load(test_build_path("no/such/file.txt.gz"), &t) == VKD_ERR_IO && !t,
               "a missing vocabulary is an I/O error");
    TEST_CHECK(load_text("tok_empty.txt", "") == VKD_ERR_FORMAT, "an empty vocabulary file is a format error");
    TEST_CHECK(load_text("tok_short.txt", "#version: 0.2\ni n\nt h\n") == VKD_ERR_FORMAT,
               "a vocabulary with 2 merges is a format error");

    size_t len;
    char *gz = test_read_file(gz_path, &len);
    if (gz) {
        const char *p = test_build_path("tok_truncated.txt.gz");
        write_all(p, gz, len / 2);
        TEST_CHECK(vkd_tokenizer_load(p, &t) == VKD_ERR_FORMAT && !t, "a truncated .gz is a format error");
        gz[len / 3] ^= 0x55;
        gz[len / 3 + 1] ^= 0xAA;
        p = test_build_path("tok_corrupt.txt.gz");
        write_all(p, gz, len);
        vkd_result r = vkd_tokenizer_load(p, &t);
        TEST_CHECK(r == VKD_ERR_FORMAT && !t, "a corrupted .gz is a format error (r=%d)", r);
        free(gz);
    }

    /* HF pairs */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", test_build_path("tok_bad"));
    mkdir(dir, 0777);
    char vp[4200], mp[4200];
    snprintf(vp, sizeof(vp), "%s/vocab.json", dir);
    snprintf(mp, sizeof(mp), "%s/merges.txt", dir);
    static const struct {
        const char *vocab, *merges, *what;
    } bad[] = {
        {"not json", "#version: 0.2\na b\n", "vocab.json that is not JSON"},
        {"[1, 2]", "#version: 0.2\na b\n", "vocab.json that is not an object"},
        {"{\"a\": \"x\"}", "#version: 0.2\na b\n", "a string id"},
        {"{\"a\": 1.5}", "#version: 0.2\na b\n", "a fractional id"},
        {"{\"a\": -3}", "#version: 0.2\na b\n", "a negative id"},
        {"{\"a\": 0, \"b\": 1}", "#version: 0.2\na b\n", "a vocabulary without the byte tokens"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_all(vp, bad[i].vocab, strlen(bad[i].vocab));
        write_all(mp, bad[i].merges, strlen(bad[i].merges));
        TEST_CHECK(vkd_tokenizer_load(dir, &t) == VKD_ERR_FORMAT && !t, "%s is a format error", bad[i].what);
    }
    /* a folder with neither layout, read as a bpe file, fails to open */
    mkdir(test_build_path("tok_emptydir"), 0777);
    vkd_result r = vkd_tokenizer_load(test_build_path("tok_emptydir"), &t);
    TEST_CHECK(r != VKD_OK && !t, "a folder without vocab.json/merges.txt is refused (r=%d)", r);
    TEST_CHECK(vkd_tokenizer_load("", &t) == VKD_ERR_INVALID_ARG, "an empty path is refused");
}

static void test_hf_merges_errors(const char *good_dir)
{
    /* the good vocab.json with damaged merges */
    char vp[4200], mp[4200];
    snprintf(vp, sizeof(vp), "%s/vocab.json", good_dir);
    size_t vl;
    char *vocab = test_read_file(vp, &vl);
    if (!vocab)
        return;
    static const char *const merges[] = {
        "#version: 0.2\ni n\nt  h\n",              /* two spaces */
        "#version: 0.2\ni n\nth\n",                /* one part */
        "#version: 0.2\ni n\nzzzz qqqq\n",         /* parts not in the vocabulary */
        "#version: 0.2\n",                         /* nothing */
    };
    for (size_t i = 0; i < sizeof(merges) / sizeof(merges[0]); i++) {
        vkd_tokenizer *t = NULL;
        vkd_result r = vkd_tokenizer_load_hf_text(vocab, vl, merges[i], strlen(merges[i]), &t);
        TEST_CHECK(r == VKD_ERR_FORMAT && !t, "damaged merges.txt #%zu is a format error (r=%d)", i, r);
    }
    (void)mp;
    free(vocab);
}

static void test_bad_utf8_is_refused(vkd_tokenizer *tok)
{
    static const char *const bad[] = {"abc\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int32_t ids[64];
        size_t n;
        TEST_CHECK(vkd_tokenizer_encode(tok, bad[i], strlen(bad[i]), ids, 64, &n) == VKD_ERR_INVALID_ARG,
                   "invalid UTF-8 #%zu is refused", i);
        vkd_prompt_params p;
        vkd_prompt_params_init(&p);
        vkd_prompt_tokens t;
        TEST_CHECK(vkd_prompt_tokenize(tok, bad[i], &p, &t) == VKD_ERR_INVALID_ARG, "invalid UTF-8 prompt #%zu is refused", i);
    }
    int32_t ids[4];
    size_t n;
    TEST_CHECK(vkd_tokenizer_encode(tok, "a photo of a cat", 16, ids, 4, &n) == VKD_ERR_INVALID_ARG,
               "a too small output buffer is refused, not overrun");
}

/* Random text of mixed scripts: never fails, stays within the bound, same ids twice
 * (the second time through the word cache). */
static void test_random_text_within_bound(vkd_tokenizer *tok)
{
    static const uint32_t pool[] = {'a', 'Z', ' ', ' ', ',', '(', ')', '[', ']', ':', '\\', '&', '#', ';', '1', '.',
                                    '\'', 0xE9, 0x130, 0x23A, 0x3A3, 0x3C3, 0x416, 0x4E00, 0x1F431, 0x17F, 0x2028,
                                    0x3000, 0x301, 0xFE0F};
    test_rng rng = {test_seed() ^ 0x70c3};
    int ok = 1;
    for (int it = 0; it < 200 && ok; it++) {
        char text[1024];
        size_t len = 0;
        int n_cp = (int)(test_rng_uniform(&rng) * 200);
        for (int k = 0; k < n_cp; k++) {
            uint32_t c = pool[test_rng_u64(&rng) % (sizeof(pool) / sizeof(pool[0]))];
            if (c < 0x80)
                text[len++] = (char)c;
            else if (c < 0x800)
                text[len++] = (char)(0xC0 | (c >> 6)), text[len++] = (char)(0x80 | (c & 0x3F));
            else if (c < 0x10000)
                text[len++] = (char)(0xE0 | (c >> 12)), text[len++] = (char)(0x80 | ((c >> 6) & 0x3F)),
                text[len++] = (char)(0x80 | (c & 0x3F));
            else
                text[len++] = (char)(0xF0 | (c >> 18)), text[len++] = (char)(0x80 | ((c >> 12) & 0x3F)),
                text[len++] = (char)(0x80 | ((c >> 6) & 0x3F)), text[len++] = (char)(0x80 | (c & 0x3F));
        }
        text[len] = 0;
        size_t cap = vkd_tokenizer_encode_bound(len), n1, n2;
        int32_t *a = malloc(cap * sizeof(*a)), *b = malloc(cap * sizeof(*b));
        ok = vkd_tokenizer_encode(tok, text, len, a, cap, &n1) == VKD_OK &&
             vkd_tokenizer_encode(tok, text, len, b, cap, &n2) == VKD_OK && n1 == n2 &&
             memcmp(a, b, n1 * sizeof(*a)) == 0;
        for (size_t k = 0; ok && k < n1; k++)
            ok = a[k] >= 0 && a[k] < vkd_tokenizer_vocab_size(tok);
        vkd_prompt_params p;
        vkd_prompt_params_init(&p);
        vkd_prompt_tokens t;
        vkd_result r = vkd_prompt_tokenize(tok, text, &p, &t);
        ok = ok && (r == VKD_OK || r == VKD_ERR_INVALID_ARG);
        vkd_prompt_tokens_free(&t);
        if (!ok)
            fprintf(stderr, "  random text %d failed: '%s'\n", it, text);
        free(a);
        free(b);
    }
    TEST_CHECK(ok, "random mixed-script text encodes within the bound, the same twice");
}

int main(void)
{
    vkd_log_set(NULL, NULL, VKD_LOG_WARN);
    char gz_path[4096];   /* test_*_path buffers rotate: keep a copy */
    snprintf(gz_path, sizeof(gz_path), "%s", test_shared_path("clip/bpe_simple_vocab_16e6.txt.gz"));
    size_t glen;
    char *golden = test_read_file(test_data_path("tokenizer_golden.json"), &glen);
    cJSON *doc = golden ? cJSON_Parse(golden) : NULL;
    free(golden);
    TEST_CHECK(doc != NULL, "tests/data/tokenizer_golden.json is readable");
    vkd_tokenizer *tok = NULL;
    vkd_result r = vkd_tokenizer_load(gz_path, &tok);
    TEST_CHECK(r == VKD_OK, "loads %s (r=%d)", gz_path, r);
    if (!doc || r)
        return test_finish();

    TEST_CHECK(vkd_tokenizer_vocab_size(tok) == 49408, "the CLIP vocabulary has 49408 ids");
    check_goldens(tok, doc, "bpe.gz");
    test_bad_utf8_is_refused(tok);
    test_random_text_within_bound(tok);

    /* the same vocabulary as HF files, loaded through both folder layouts */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", test_build_path("tok_hf"));
    mkdir(dir, 0777);
    char sub[4200];
    snprintf(sub, sizeof(sub), "%s/tokenizer", test_build_path("tok_diffusers"));
    mkdir(test_build_path("tok_diffusers"), 0777);
    mkdir(sub, 0777);
    TEST_CHECK(write_hf_files(tok, gz_path, dir) == 0 && write_hf_files(tok, gz_path, sub) == 0,
               "writes vocab.json + merges.txt (%s)", strerror(errno));
    vkd_tokenizer *hf = NULL;
    r = vkd_tokenizer_load(dir, &hf);
    TEST_CHECK(r == VKD_OK, "loads the vocab.json + merges.txt pair (r=%d)", r);
    if (!r)
        check_goldens(hf, doc, "hf-folder");
    vkd_tokenizer_destroy(hf);
    hf = NULL;
    r = vkd_tokenizer_load(test_build_path("tok_diffusers"), &hf);
    TEST_CHECK(r == VKD_OK, "loads tokenizer/ from a diffusers folder (r=%d)", r);
    vkd_tokenizer_destroy(hf);
    hf = NULL;
    char vj[4200];
    snprintf(vj, sizeof(vj), "%s/vocab.json", dir);
    r = vkd_tokenizer_load(vj, &hf);
    TEST_CHECK(r == VKD_OK, "loads a vocab.json path with merges.txt beside it (r=%d)", r);
    if (!r) {
        int32_t ids[8];
        size_t n;
        r = vkd_tokenizer_encode(hf, "a photo of a cat", 16, ids, 8, &n);
        TEST_CHECK(r == VKD_OK && n == 5 && ids[4] == 2368, "the vocab.json tokenizer encodes");
    }
    vkd_tokenizer_destroy(hf);
    test_hf_merges_errors(dir);

    /* loud errors are expected from here on */
    vkd_log_set(NULL, NULL, VKD_LOG_ERROR);
    test_malformed_vocab_files_give_errors(gz_path);

    vkd_tokenizer_destroy(tok);
    cJSON_Delete(doc);
    return test_finish();
}
