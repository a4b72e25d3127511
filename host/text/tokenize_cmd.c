#include "text/tokenize_cmd.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "text/prompt.h"
#include "text/tokenizer.h"

int vkd_tokenize_main(int argc, char **argv, FILE *out)
{
    const char *path = NULL;
    int sd2 = 0, emphasis = 1, raw = 0, verbose = 0, rc = 1;
    size_t text_len = 0;
    char *text = NULL;
    vkd_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    vkd_prompt_tokens pt = {0};

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--sd2") == 0)
            sd2 = 1;
        else if (strcmp(argv[i], "--no-emphasis") == 0)
            emphasis = 0;
        else if (strcmp(argv[i], "--raw") == 0)
            raw = 1;
        else if (strcmp(argv[i], "-v") == 0)
            verbose = 1;
        else if (strncmp(argv[i], "--", 2) == 0 && argv[i][2]) {
            VKD_ERROR("tokenize: unknown option '%s'", argv[i]);
            return 2;
        } else
            text_len += strlen(argv[i]) + 1;
    if (!path) {
        VKD_ERROR("tokenize: --tokenizer PATH is required (bpe_simple_vocab_16e6.txt.gz, vocab.json or a model folder)");
        return 2;
    }
    text = calloc(text_len + 1, 1);
    if (!text)
        goto done;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--", 2) == 0 && argv[i][2])
            continue;
        if (strcmp(argv[i], "-v") == 0)
            continue;
        if (*text)
            strcat(text, " ");
        strcat(text, argv[i]);
    }
    if (vkd_tokenizer_load(path, &tok))
        goto done;
    if (raw) {
        size_t cap = vkd_tokenizer_encode_bound(strlen(text)), n;
        ids = malloc(cap * sizeof(*ids));
        if (!ids || vkd_tokenizer_encode(tok, text, strlen(text), ids, cap, &n))
            goto done;
        for (size_t k = 0; k < n; k++) {
            if (verbose)
                fprintf(out, "%zu\t%d\t%s\n", k, ids[k], vkd_tokenizer_token_str(tok, ids[k]));
            else
                fprintf(out, "%s%d", k ? " " : "", ids[k]);
        }
        if (!verbose)
            fputc('\n', out);
        rc = 0;
        goto done;
    }
    vkd_prompt_params p;
    vkd_prompt_params_init(&p);
    p.pad = sd2 ? VKD_PROMPT_PAD_ZERO : VKD_PROMPT_PAD_EOS;
    p.emphasis = emphasis;
    if (vkd_prompt_tokenize(tok, text, &p, &pt))
        goto done;
    for (int ch = 0; ch < pt.n_chunks; ch++) {
        for (int k = 0; k < VKD_PROMPT_CHUNK_LEN; k++) {
            size_t i = (size_t)ch * VKD_PROMPT_CHUNK_LEN + (size_t)k;
            if (verbose) {
                const char *s = vkd_tokenizer_token_str(tok, pt.ids[i]);
                fprintf(out, "%d:%d\t%d\t%.6g\t%s\n", ch, k, pt.ids[i], pt.weights[i], s ? s : "");
            } else {
                fprintf(out, "%s%d", k ? " " : "", pt.ids[i]);
            }
        }
        if (!verbose)
            fputc('\n', out);
    }
    if (verbose)
        fprintf(out, "# %d chunk(s), %d tokens (A1111 count)\n", pt.n_chunks, pt.token_count);
    rc = 0;
done:
    vkd_prompt_tokens_free(&pt);
    free(ids);
    vkd_tokenizer_destroy(tok);
    free(text);
    return rc;
}
