/* `vkdiff bench model`: per-stage times of a whole model (issue 6). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include "cli/env.h"
#include "vkdiff.h"
#include "vkdiff_dev.h"

int vkd_cli_bench_model(int argc, char **argv, const char *default_model, const char *default_tok)
{
    vkd_ctx_params cp;
    vkd_ctx_params_init(&cp);
    cp.gpu_timestamps = true;
    vkd_cli_env env;
    vkd_cli_env_read(&env);
    cp.cache_dir = env.cache_dir;
    cp.coopmat = env.coopmat;
    struct vkd_dev_options dev;
    vkd_dev_options_init(&dev);
    cp.dev = &dev;
    int w = 512, h = 512, repeat = 3, size_set = 0, plan = 0, tiling = 0, verbose = 0;
    bool no_vae = false;
    const char *append = NULL;
    int only_batch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "model"))
            continue;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v)
            cp.model_path = v, i++;
        else if (!strcmp(a, "--tokenizer") && v)
            cp.tokenizer_path = v, i++;
        else if (!strcmp(a, "--vae") && v)
            cp.vae_path = v, i++;
        else if (!strcmp(a, "-W") && v)
            w = atoi(v), i++, size_set = 1;
        else if (!strcmp(a, "-H") && v)
            h = atoi(v), i++, size_set = 1;
        else if (!strcmp(a, "--plan"))
            plan = 1;
        else if (!strcmp(a, "--record"))
            plan = 2;
        else if (!strcmp(a, "--no-vae"))
            no_vae = true;
        else if (!strcmp(a, "--batch") && v)
            only_batch = atoi(v), i++;
        else if (!strcmp(a, "--vae-tiling"))
            tiling = 1;
        else if (!strcmp(a, "--mem-budget") && v)
            cp.memory_budget_mb = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "-v"))
            verbose = 1;
        else if (!strcmp(a, "--append") && v)
            append = v, i++;
        else if (!strcmp(a, "--repeat") && v)
            repeat = atoi(v), i++;
        else if (!strcmp(a, "--split-k") && v) /* developer knob: split-K's target workgroups, 0 = off */
            dev.split_k = atoi(v), i++;
        else if (!strcmp(a, "--attention") && v) /* developer knob: flash = attention not on coopmat */
            dev.attention_flash = !strcmp(v, "flash"), i++;
        else if (!strcmp(a, "--winograd") && v) /* developer knob: off = the 3x3 convs on the implicit GEMM */
            dev.no_winograd = !strcmp(v, "off"), i++;
        else if (!strcmp(a, "--splitk-reduce")) /* developer knob: split-K's sums added by a dispatch of their own */
            dev.splitk_reduce = true;
        else if (!strcmp(a, "--gemm-coopmat-emu")) /* developer knob: the GPU path's GEMMs, emulated (--record) */
            dev.gemm_coopmat_emu = true;
        else if (!strcmp(a, "--device") && v)
            cp.device_index = atoi(v), i++;
        else if (!strcmp(a, "--precision") && v) {
            cp.precision = !strcmp(v, "fp32") ? VKD_PRECISION_FP32 : VKD_PRECISION_FP16;
            i++;
        } else if (!strcmp(a, "--weight-type") && v) { /* issue 25: the UNet's weights quantized */
            if (!strcmp(v, "f32") || !strcmp(v, "f16"))
                cp.precision = !strcmp(v, "f32") ? VKD_PRECISION_FP32 : VKD_PRECISION_FP16;
            else
                cp.weight_type = v;
            i++;
        } else {
            fprintf(stderr, "usage: vkdiff bench model [-m MODEL --tokenizer PATH] [-W 512 -H 512] [--repeat 3] [-v] "
                            "[--device N] [--precision fp16|fp32] [--weight-type q8_0|q4_0|...] [--no-vae] [--batch 1|2] "
                            "[--append FILE]\n"
                            "                         [--plan|--record [--mem-budget MIB] [--vae-tiling]]  (--plan: the "
                            "memory plan only, nothing run; --record: also record the UNet for its dispatches and "
                            "bytes bound; --append: add this run's one-line summary to FILE, a markdown table)\n"
                            "                         [--split-k N] [--attention flash|auto] [--winograd off|auto] "
                            "[--splitk-reduce] [--gemm-coopmat-emu]  (developer knobs: split-K's target workgroups, "
                            "0 = off; attention off cooperative matrices; 3x3 convs kept off Winograd; split-K's sums "
                            "added by a dispatch of their own; every fp16 GEMM on the emulated cooperative-matrix "
                            "kernel)\n"
                            "       (no -m: the shipped shapes model at 64x64)\n");
            return 2;
        }
    }
    if (!cp.model_path) {
        if (!default_model) {
            fprintf(stderr, "vkdiff: bench model: no model (-m) and no shipped model found\n");
            return 2;
        }
        cp.model_path = default_model;
        if (!cp.tokenizer_path)
            cp.tokenizer_path = default_tok;
        if (!size_set)
            w = h = 64;
    }
    if (w % 8 || h % 8 || w < 8 || h < 8 || repeat < 1 || only_batch < 0 || only_batch > 2) {
        fprintf(stderr, "vkdiff: bench model: sizes must be multiples of 8, repeat >= 1, --batch 1 or 2\n");
        return 2;
    }
    /* --append: opened before the run (minutes at full size), so that a bad path fails first */
    FILE *row = NULL;
    if (append && !plan) {
        row = fopen(append, "a");
        if (!row) {
            fprintf(stderr, "vkdiff: bench model: cannot append to %s: %s\n", append, strerror(errno));
            return 2;
        }
        if (fseek(row, 0, SEEK_END) == 0 && ftell(row) == 0) /* a new table: its header first */
            fputs(vkd_bench_row_header(), row);
    }
    /* -v: progress of each stage on stderr (a full-size model takes minutes on a CPU device) */
    cp.log_level = verbose ? VKD_LOG_INFO : VKD_LOG_WARN;
    vkd_log_set(NULL, NULL, cp.log_level);
    setvbuf(stdout, NULL, _IOLBF, 0); /* the table appears as it is written, also through a pipe */
    vkd_ctx *ctx = NULL;
    vkd_result r = vkd_ctx_create(&cp, &ctx);
#ifdef VKD_SANITIZE_BUILD
    vkd_pin_driver_libs();
#endif
    if (!r) {
        vkd_bench_model_opts bo = {.width = w, .height = h, .repeat = repeat, .with_vae = !no_vae,
                                   .only_batch = only_batch};
        r = plan ? vkd_plan_report(ctx, w, h, tiling, plan == 2, stdout) : vkd_bench_model(ctx, &bo, stdout, row);
    }
    if (r)
        fprintf(stderr, "vkdiff: bench model: %s\n", vkd_result_str(r));
    vkd_ctx_free(ctx);
    if (row && fclose(row) != 0 && !r) {
        fprintf(stderr, "vkdiff: bench model: writing %s: %s\n", append, strerror(errno));
        return 1;
    }
    return r ? 1 : 0;
}
