/* vkdiff developer API: what the `vkdiff` command's developer verbs (info, tokenize,
 * bench, --list-devices) and the tests use beyond host/vkdiff.h. Not installed; no
 * stability promise. Developer knobs travel in vkd_dev_options (no process-wide
 * settings). */
#ifndef VKDIFF_DEV_H
#define VKDIFF_DEV_H

#include <stdio.h>

#include "vkdiff.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Developer knobs, through vkd_ctx_params.dev (NULL: the defaults). */
struct vkd_dev_options {
    int split_k;              /* split-K's target workgroups for GEMMs; -1: the default, 0: off */
    bool attention_flash;     /* attention off the cooperative-matrix kernels (the flash kernel) */
    bool no_winograd;         /* the 3x3 convs on the implicit GEMM, never on Winograd (ops/winograd.h) */
    bool splitk_reduce;       /* split-K's partial sums added by a dispatch of their own (ops/matmul.c) */
    /* every fp16 GEMM on the emulated cooperative-matrix kernel: the GPU path's dispatches
     * recorded on a device without cooperative matrices (bench model --record) */
    bool gemm_coopmat_emu;
};
void vkd_dev_options_init(struct vkd_dev_options *o);

/* The log sink of the calling thread (a context installs its own for each call). */
void vkd_log_set(vkd_log_fn fn, void *user, vkd_log_level level);

/* `vkdiff info MODEL`: what a checkpoint is, without loading it onto a device (printed
 * to out; lists are cut at 20 entries unless the log level is VKD_LOG_DEBUG). */
vkd_result vkd_info_print(FILE *out, const char *model_path, const char *vae_path);
/* `vkdiff tokenize ...`: argv[0] is the verb. Returns the exit status (0, 1, 2). */
int vkd_tokenize_main(int argc, char **argv, FILE *out);
/* `vkdiff --list-devices`: every Vulkan device with its type, driver, heaps, subgroup
 * size and features, to f. */
vkd_result vkd_device_list(FILE *f);

/* `vkdiff bench model`: text encoder, UNet at batch 1 and 2 (median of `repeat`
 * replays), VAE decode at width x height, with counted GFLOP, achieved GFLOP/s,
 * dispatches, host time per step and peak device memory, as markdown on f; `row`
 * (optional) gets the one-line summary. Create the context with gpu_timestamps.
 * only_batch: 0 times batch 1 and 2, else that batch only. */
typedef struct vkd_bench_model_opts {
    int width, height, repeat;
    bool with_vae;
    int only_batch;
} vkd_bench_model_opts;
vkd_result vkd_bench_model(vkd_ctx *ctx, const vkd_bench_model_opts *o, FILE *f, FILE *row);
/* The header of the table `row` gets. */
const char *vkd_bench_row_header(void);
/* `vkdiff bench model --plan`: the pre-flight memory plan at width x height for UNet
 * batch 1 and 2 as a markdown table; with `record`, also records (never submits) the
 * UNet at batch 2 for its dispatch count and bytes bound. */
vkd_result vkd_plan_report(vkd_ctx *ctx, int width, int height, int tiling, bool record, FILE *f);

/* `vkdiff bench ops ...` (argv[0] is a verb): GPU time of the UNet's ops at SD1.5
 * shapes. Returns the exit status (0, 1, 2). */
typedef double (*vkd_bench_host_sgemm_fn)(int64_t m, int64_t k, int64_t n, int repeat);
typedef struct vkd_bench_ops_opts {
    const char *coopmat;                  /* as vkd_ctx_params.coopmat */
    bool passes;                          /* also each group-norm pass's time */
    vkd_bench_host_sgemm_fn host_sgemm_ms; /* median ms of a host sgemm a[M,K] w[N,K]^T beside each
                                             linear shape (the CLI's OpenBLAS), < 0 or NULL: none */
} vkd_bench_ops_opts;
int vkd_bench_ops_main(int argc, char **argv, const vkd_bench_ops_opts *o);

/* Validation-layer errors the context's device has seen, and the layer's specVersion
 * when loaded (else 0): tests. */
uint32_t vkd_ctx_validation_errors(const vkd_ctx *ctx);
uint32_t vkd_ctx_validation_layer(const vkd_ctx *ctx);

/* Keep the Vulkan loader's driver libraries loaded until exit (LeakSanitizer builds). */
void vkd_pin_driver_libs(void);

#ifdef __cplusplus
}
#endif

#endif
