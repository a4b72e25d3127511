/* `vkdiff bench lora`: what switching LoRAs costs on a warm context (issue 22). Each
 * round makes a small image without the LoRA, then with it, then without it again: the
 * second image's lora_ms is the LoRA applied to the weights already on the device (the
 * UNet's), the third's the touched tensors restored from the checkpoint; the text
 * encoder is uploaded per image, so its share shows as the rise of text_ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/env.h"
#include "vkdiff.h"

static void to_stderr(vkd_log_level level, const char *msg, void *user)
{
    (void)level, (void)user;
    fprintf(stderr, "vkdiff: %s\n", msg);
}

static int one(vkd_ctx *ctx, const vkd_lora_spec *l, int w, int h, vkd_timings *t)
{
    vkd_gen_params p;
    vkd_gen_params_init(&p);
    p.prompt = "a photograph of a cat";
    p.width = w, p.height = h, p.steps = 1, p.seed = 1;
    p.loras = l, p.n_loras = l ? 1 : 0;
    uint8_t *rgb = malloc(vkd_image_bytes(&p));
    vkd_result r = rgb ? vkd_generate(ctx, &p, rgb) : VKD_ERR_OUT_OF_HOST_MEMORY;
    free(rgb);
    if (r) {
        fprintf(stderr, "vkdiff bench lora: %s\n", vkd_result_str(r));
        return 1;
    }
    vkd_last_timings(ctx, t);
    return 0;
}

int vkd_cli_bench_lora(int argc, char **argv)
{
    vkd_ctx_params cp;
    vkd_ctx_params_init(&cp);
    vkd_cli_env env;
    vkd_cli_env_read(&env);
    cp.cache_dir = env.cache_dir;
    vkd_lora_spec lora = {NULL, 1.0f};
    int w = 64, h = 64, repeat = 3;
    for (int i = 3; i < argc; i++) { /* argv: vkdiff bench lora ... */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v)
            cp.model_path = v, i++;
        else if (!strcmp(a, "--tokenizer") && v)
            cp.tokenizer_path = v, i++;
        else if (!strcmp(a, "--lora") && v)
            lora.path = v, i++;
        else if (!strcmp(a, "--weight") && v)
            lora.weight = (float)atof(v), i++;
        else if (!strcmp(a, "-W") && v)
            w = atoi(v), i++;
        else if (!strcmp(a, "-H") && v)
            h = atoi(v), i++;
        else if (!strcmp(a, "-v"))
            cp.log_level = VKD_LOG_INFO, cp.log = to_stderr;
        else if (!strcmp(a, "--repeat") && v)
            repeat = atoi(v), i++;
        else {
            fprintf(stderr, "usage: vkdiff bench lora -m MODEL --tokenizer TOK --lora FILE [--weight W] [-W -H] "
                            "[--repeat N] [-v]\n");
            return 2;
        }
    }
    if (!cp.model_path || !lora.path || repeat < 1) {
        fprintf(stderr, "vkdiff bench lora: -m MODEL and --lora FILE are needed\n");
        return 2;
    }
    vkd_ctx *ctx = NULL;
    vkd_result r = vkd_ctx_create(&cp, &ctx);
    if (r) {
        fprintf(stderr, "vkdiff bench lora: %s\n", vkd_result_str(r));
        return 1;
    }
    vkd_timings t0, t1, t2;
    int rc = one(ctx, NULL, w, h, &t0); /* warm: kernels compiled, the UNet resident */
    printf("| round | apply to resident UNet (ms) | restore (ms) | text encoder with / without LoRA (ms) |\n"
           "| ---: | ---: | ---: | ---: |\n");
    for (int k = 0; k < repeat && !rc; k++) {
        rc = one(ctx, &lora, w, h, &t1) || one(ctx, NULL, w, h, &t2);
        if (!rc)
            printf("| %d | %.0f | %.0f | %.0f / %.0f |\n", k + 1, t1.lora_ms, t2.lora_ms, t1.text_ms, t2.text_ms);
    }
    vkd_ctx_free(ctx);
    return rc;
}
