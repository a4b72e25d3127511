/* vkdiff bench model: each stage timed as a generation runs it (bench.h). The text
 * stage encodes an image's prompt and negative prompt; the denoise stage is recorded
 * at batch 1 and 2 and evaluated `repeat` times after a warm-up; the decode stage
 * decodes once. Allocation is the generation's: the plan's pools, weight blocks
 * without slack. */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */
#include "pipeline/bench.h"

#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/version.h"
#include "pipeline/decode_stage.h"
#include "pipeline/denoise_stage.h"
#include "pipeline/memplan.h"
#include "pipeline/op_profile.h"
#include "pipeline/text_stage.h"
#include "vk/pipeline.h"

typedef struct run_stats {
    double gpu_ms, wall_ms, flops;
    uint32_t dispatches;
} run_stats;

typedef struct bench {
    run_stats text, text_image, unet[2], vae;
    double host_replay_ms[2], host_eval_ms[2], warmup_ms[2];
    vkd_op_profile prof[2], first_use[2], vae_prof;
    double unet_bytes;          /* bound by the batch-2 recording's dispatches */
    uint64_t unet_weights;
    vkd_memory_stats ms_unet, ms_all;
} bench;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double ms_of(const run_stats *st) { return st->gpu_ms > 0 ? st->gpu_ms : st->wall_ms; }

static void bench_line(FILE *f, const char *stage, const run_stats *st, double total_ms)
{
    double ms = ms_of(st);
    fprintf(f, "| %s | %.1f | %.1f | %.1f | %.2f | %u | %.0f%% |\n", stage, ms, st->wall_ms, st->flops / 1e9,
            ms > 0 ? st->flops / 1e6 / ms : 0, st->dispatches, total_ms > 0 ? 100 * ms / total_ms : 0);
}

/* The run as one row of the table vkd_bench_row_header() heads, for BENCHMARKS.md:
 * when, on what, from which commit, and the per-stage milliseconds ("-": not run). */
static void bench_row(FILE *f, const vkd_pipe *p, const vkd_bench_model_opts *o, const bench *b, double peak_mib)
{
    char date[32] = "?";
    time_t now = time(NULL);
    struct tm tmv;
    if (gmtime_r(&now, &tmv))
        strftime(date, sizeof date, "%Y-%m-%d", &tmv);
    char cell[4][32];
    const run_stats *st[4] = {&b->text, &b->unet[0], &b->unet[1], &b->vae};
    bool ran[4] = {true, o->only_batch != 2, o->only_batch != 1, o->with_vae};
    for (int i = 0; i < 4; i++)
        snprintf(cell[i], sizeof cell[i], ran[i] ? "%.1f" : "-", ms_of(st[i]));
    double ms2 = ms_of(&b->unet[1]);
    char rate[32] = "-";
    if (ran[2] && ms2 > 0)
        snprintf(rate, sizeof rate, "%.2f", b->unet[1].flops / 1e6 / ms2);
    fprintf(f, "| %s | %s | %s | %s | %dx%d | %s | %s | %s | %s | %s | %s | %u | %.1f |\n", date, p->d->caps.name,
            p->d->caps.driver, p->dt == VKD_F16 ? "fp16" : "fp32", o->width, o->height, vkd_git_revision(), cell[0],
            cell[1], cell[2], rate, cell[3], ran[2] ? b->unet[1].dispatches : b->unet[0].dispatches, peak_mib);
}

const char *vkd_bench_row_header(void)
{
    return "| date | device | driver | precision | size | commit | text encoder ms | UNet batch 1 ms | "
           "UNet batch 2 ms | UNet batch 2 GFLOP/s | VAE decode ms | UNet dispatches | peak MiB |\n"
           "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
}

/* The text stage as an image runs it (prompt + negative, weights uploaded, recorded),
 * then replayed with its weights kept: the encoder's own time. */
static vkd_result bench_text(vkd_pipe *p, vkd_text_batch *tb, const vkd_tensor **context, bench *b)
{
    VKD_INFO("bench: text stage (weights upload, record, run; then a replay)");
    vkd_stage_stats st;
    double t0 = vkd_now_ms();
    vkd_result r = vkd_text_stage_run(p->text, tb, context, &st); /* first use: compiles where the driver does */
    vkd_text_stage_release(p->text);
    t0 = vkd_now_ms();
    if (!r)
        r = vkd_text_stage_run(p->text, tb, context, &st); /* as every image after the first */
    b->text_image = (run_stats){.gpu_ms = st.gpu_ms, .wall_ms = vkd_now_ms() - t0, .flops = st.flops,
                                .dispatches = st.dispatches};
    if (!r)
        r = vkd_text_stage_run(p->text, tb, context, &st); /* the kept recording */
    b->text = (run_stats){.gpu_ms = st.gpu_ms, .wall_ms = st.wall_ms, .flops = st.flops, .dispatches = st.dispatches};
    return r;
}

/* The denoise stage at batch `batch`: recorded, a warm-up evaluation, then `repeat`
 * evaluations and `repeat` bare replays (submit and wait only), medians. */
static vkd_result bench_unet(vkd_pipe *p, const vkd_bench_model_opts *o, int batch, const vkd_tensor *ctx2,
                             const float *x, float *eps, vkd_memplan *up, bench *b)
{
    int64_t h = o->height / 8, w = o->width / 8, L = ctx2->shape[1];
    double t0 = vkd_now_ms();
    VKD_INFO("bench: UNet batch %d: weights upload and recording", batch);
    vkd_memplan_in in = {.d = p->d, .ws = p->ws, .dt = p->dt, .cfg = &p->cfg, .h = h, .w = w, .batch = batch,
                         .ctx_len = L, .budget = p->memory_budget, .text_chunks = 2};
    vkd_result r = vkd_memplan_make(&in, up);
    if (r)
        return r;
    vkd_memory_expect(p->d, up->w_unet);
    r = vkd_denoise_stage_prepare(p->denoise, batch, h, w, L, up->a_unet);
    vkd_memory_expect(p->d, 0);
    if (r)
        return r;
    vkd_tensor ctx = *ctx2; /* batch 1: the prompt's half, [cond] */
    if (batch == 1)
        ctx = vkd_tensor_rows(ctx2, 1, 1);
    if ((r = vkd_denoise_stage_set_context(p->denoise, &ctx, NULL)))
        return r;
    const float *pooled = vkd_text_stage_pooled(p->text); /* SDXL: [uncond, cond] */
    if (p->cfg.unet.adm_in_channels) {
        vkd_sdxl_sizes sz = {o->height, o->width, 0, 0, o->height, o->width};
        if ((r = vkd_denoise_stage_set_sdxl(p->denoise, pooled + (batch == 1 ? p->cfg.text[1].proj_dim : 0), &sz)))
            return r;
    }
    VKD_INFO("bench: UNet batch %d: prepared in %.0f ms; warm-up and %d evaluations", batch, vkd_now_ms() - t0,
             o->repeat);
    vkd_cmd *cmd = vkd_denoise_stage_cmd(p->denoise);
    /* the warm-up: drivers that compile at the first dispatch (lavapipe) do it here */
    t0 = vkd_now_ms();
    if ((r = vkd_denoise_stage_eval(p->denoise, x, 500, 0.1f, 7, eps)))
        return r;
    b->warmup_ms[batch - 1] = vkd_now_ms() - t0;
    const char *const *labels;
    const double *ms;
    uint32_t n_first = vkd_cmd_timings(cmd, &labels, &ms);
    double *first = n_first ? malloc(n_first * sizeof *first) : NULL;
    if (first)
        memcpy(first, ms, n_first * sizeof *first);
    int n = o->repeat;
    double *gpu = calloc((size_t)n, sizeof *gpu), *walls = calloc((size_t)n, sizeof *walls);
    double *replay = calloc((size_t)n, sizeof *replay), *rgpu = calloc((size_t)n, sizeof *rgpu);
    if (!gpu || !walls || !replay || !rgpu)
        r = VKD_ERR_OUT_OF_HOST_MEMORY;
    for (int k = 0; k < n && !r; k++) {
        t0 = vkd_now_ms();
        r = vkd_cmd_submit_wait(cmd);
        replay[k] = vkd_now_ms() - t0;
        rgpu[k] = vkd_cmd_total_ms(cmd);
        t0 = vkd_now_ms();
        if (!r)
            r = vkd_denoise_stage_eval(p->denoise, x, 500, 0.1f, 7, eps);
        walls[k] = vkd_now_ms() - t0;
        gpu[k] = vkd_cmd_total_ms(cmd);
        VKD_INFO("bench: UNet batch %d evaluation %d/%d: %.1f ms wall, %.1f ms GPU", batch, k + 1, n, walls[k], gpu[k]);
    }
    if (!r) {
        qsort(gpu, (size_t)n, sizeof *gpu, cmp_double);
        qsort(walls, (size_t)n, sizeof *walls, cmp_double);
        qsort(replay, (size_t)n, sizeof *replay, cmp_double);
        qsort(rgpu, (size_t)n, sizeof *rgpu, cmp_double);
        run_stats *st = &b->unet[batch - 1];
        st->gpu_ms = gpu[n / 2], st->wall_ms = walls[n / 2];
        st->flops = vkd_cmd_flops(cmd), st->dispatches = vkd_cmd_dispatch_count(cmd);
        b->host_eval_ms[batch - 1] = st->gpu_ms > 0 ? st->wall_ms - st->gpu_ms : 0;
        b->host_replay_ms[batch - 1] = rgpu[n / 2] > 0 ? replay[n / 2] - rgpu[n / 2] : 0;
        vkd_op_profile_get(cmd, &b->prof[batch - 1]); /* the last evaluation's dispatches */
        if (first)
            vkd_op_profile_first_use(cmd, first, n_first, &b->first_use[batch - 1]);
        b->unet_bytes = vkd_cmd_bytes_bound(cmd);
    }
    free(first), free(gpu), free(walls), free(replay), free(rgpu);
    return r;
}

static void vae_profile(void *user, vkd_cmd *cmd) { vkd_op_profile_get(cmd, user); }

static void bench_report(FILE *f, vkd_pipe *p, const vkd_bench_model_opts *o, const bench *b);

vkd_result vkd_pipe_bench_model(vkd_pipe *p, const vkd_bench_model_opts *o, FILE *f, FILE *row)
{
    if (o->width % 8 || o->height % 8 || o->width < 8 || o->height < 8 || o->repeat < 1)
        return VKD_ERR_INVALID_ARG;
    int64_t h = o->height / 8, w = o->width / 8, nl = h * w * p->cfg.unet.in_channels;
    bench *b = calloc(1, sizeof *b);
    float *x = malloc((size_t)nl * sizeof *x), *eps = malloc((size_t)nl * sizeof *eps);
    float *img = malloc((size_t)(64 * h * w * 3) * sizeof *img);
    vkd_text_batch tb;
    memset(&tb, 0, sizeof tb);
    vkd_result r = b && x && eps && img ? VKD_OK : VKD_ERR_OUT_OF_HOST_MEMORY;
    for (int64_t i = 0; i < nl && !r; i++)
        x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    const vkd_tensor *ctx = NULL;
    if (!r)
        r = vkd_text_stage_tokenize(p->text, "a photo of a cat", "blurry, low quality", true, 0, true, &tb);
    if (!r)
        r = bench_text(p, &tb, &ctx, b);
    vkd_text_stage_release(p->text); /* as a generation: freed before the UNet */
    vkd_memplan up; /* the last UNet batch's plan (its VAE figures for the decode) */
    memset(&up, 0, sizeof up);
    for (int batch = 1; batch <= 2 && !r; batch++)
        if (!o->only_batch || batch == o->only_batch)
            r = bench_unet(p, o, batch, ctx, x, eps, &up, b);
    if (!r) {
        vkd_memory_stats_get(p->d, &b->ms_unet);
        b->unet_weights = vkd_wstore_device_bytes(p->ws);
        vkd_denoise_stage_forget(p->denoise); /* the recording goes, the weights stay (the plan keeps the UNet) */
    }
    if (!r && o->with_vae) { /* skipped with --no-vae: at full size on a CPU device it takes longer than the rest */
        double t0 = vkd_now_ms();
        VKD_INFO("bench: VAE decode (weights upload, record, one run)");
        vkd_vae_decode_stats vs;
        memset(&vs, 0, sizeof vs);
        vs.on_run = vae_profile, vs.on_run_user = &b->vae_prof;
        vkd_decode_plan dp = {.tile = up.vae_tile, .overlap = up.vae_overlap, .weights = up.w_vae,
                            .activations = up.a_vae};
        r = vkd_decode_stage_run(p->decode, x, h, w, &dp, img, &vs);
        b->vae = (run_stats){.gpu_ms = vs.gpu_ms, .wall_ms = vkd_now_ms() - t0, .flops = vs.flops,
                             .dispatches = vs.dispatches};
        VKD_INFO("bench: VAE decode done, %.0f ms wall with upload", b->vae.wall_ms);
    }
    vkd_memory_stats_get(p->d, &b->ms_all);
    if (!r) {
        bench_report(f, p, o, b);
        bench_row(f, p, o, b, b->ms_all.peak_allocated / 1048576.0);
        if (row) {
            bench_row(row, p, o, b, b->ms_all.peak_allocated / 1048576.0);
            fflush(row);
        }
        vkd_pipeline_stats ps;
        vkd_pipeline_stats_get(p->d, &ps);
        fprintf(f, "pipelines: %u created in %.0f ms (on-disk cache: %s)\n", ps.created, ps.create_ms,
                ps.cache_bytes_loaded ? "loaded" : "none or cold");
        /* Cold vs warm start where the driver compiles at the first dispatch (lavapipe;
         * Mesa's own shader cache then decides): the first run minus an evaluation. */
        for (int k = 1; k <= 2; k++)
            if (b->warmup_ms[k - 1] > 0)
                fprintf(f, "UNet batch %d first run (warm-up) %.0f ms wall, evaluation %.0f ms: %.0f ms of first-use "
                           "cost\n",
                        k, b->warmup_ms[k - 1], b->unet[k - 1].wall_ms,
                        b->warmup_ms[k - 1] > b->unet[k - 1].wall_ms ? b->warmup_ms[k - 1] - b->unet[k - 1].wall_ms : 0.0);
        for (int k = 1; k <= 2; k++) /* where a cold start goes, kernel by kernel */
            if (b->first_use[k - 1].total > 1000) {
                char title[64];
                snprintf(title, sizeof title, "UNet batch %d first-use cost", k);
                vkd_op_profile_print(f, title, "warm-up minus the last evaluation, per dispatch", &b->first_use[k - 1]);
            }
    }
    vkd_decode_stage_release(p->decode);
    vkd_text_batch_free(&tb);
    free(b), free(x), free(eps), free(img);
    return r;
}

static void bench_report(FILE *f, vkd_pipe *p, const vkd_bench_model_opts *o, const bench *b)
{
    double step = ms_of(&b->unet[1]);
    int64_t h = o->height / 8, w = o->width / 8;
    fprintf(f, "model %s, %dx%d, %s storage, device %s (%s)\n", vkd_family_name(p->cfg.family), o->width, o->height,
            p->dt == VKD_F16 ? "fp16" : "fp32", p->d->caps.name, p->d->caps.driver);
    fprintf(f, "UNet: median of %d evaluations after a warm-up; ms = GPU time from timestamps where the device has "
               "them\n\n",
            o->repeat);
    fprintf(f, "| stage | ms | wall ms | GFLOP | GFLOP/s | dispatches | share of a guided step |\n");
    fprintf(f, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    bench_line(f, "text encoder (prompt + negative, 2 x 77 tokens)", &b->text, step);
    bench_line(f, "text stage of an image (weights upload, record, run)", &b->text_image, step);
    if (o->only_batch != 2)
        bench_line(f, "UNet batch 1", &b->unet[0], step);
    if (o->only_batch != 1)
        bench_line(f, "UNet batch 2 (guidance)", &b->unet[1], step);
    if (o->with_vae)
        bench_line(f, "VAE decode", &b->vae, step);
    else
        fprintf(f, "| VAE decode | not run (--no-vae) | | | | | |\n");
    for (int k = 2; k >= 1; k--) { /* the guided step's profile; batch 1's when only it ran */
        if (b->prof[k - 1].n == 0)
            continue;
        char title[64];
        snprintf(title, sizeof title, "UNet batch %d", k);
        vkd_op_profile_print(f, title, "last evaluation", &b->prof[k - 1]);
        break;
    }
    if (b->vae_prof.n)
        vkd_op_profile_print(f, "VAE decode", "its one run", &b->vae_prof);
    fprintf(f, "\nhost time per UNet step (wall - GPU): evaluation (latent up, eps down) batch 1 %.2f ms, batch 2 "
               "%.2f ms; bare replay batch 1 %.2f ms, batch 2 %.2f ms\n",
            b->host_eval_ms[0], b->host_eval_ms[1], b->host_replay_ms[0], b->host_replay_ms[1]);
    fprintf(f, "device memory: UNet weights %.1f MiB; peak allocated %.1f MiB (weights + activations + scratch); "
               "held in blocks %.1f MiB with the UNet recorded, %.1f MiB at the peak\n",
            b->unet_weights / 1048576.0, b->ms_all.peak_allocated / 1048576.0, b->ms_unet.reserved / 1048576.0,
            b->ms_all.peak_reserved / 1048576.0);
    struct rusage ru; /* host memory beside it: on a CPU device the device memory is host memory too */
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        fprintf(f, "host memory: peak resident set %.1f MiB (the process, device memory included on a CPU device)\n",
                ru.ru_maxrss / 1024.0);
    vkd_memplan pl;
    vkd_memplan_in in = {.d = p->d, .ws = p->ws, .dt = p->dt, .cfg = &p->cfg, .h = h, .w = w, .batch = 2,
                         .ctx_len = VKD_PROMPT_CHUNK_LEN, .budget = p->memory_budget, .text_chunks = 2};
    if (o->only_batch != 1 && vkd_memplan_make(&in, &pl) == VKD_OK) {
        double floor = (double)pl.w_unet + 2.0 * (double)pl.unet_act_written;
        fprintf(f, "UNet batch 2: bytes bound by its %u dispatches %.1f MiB; floor (weights once + every activation "
                   "written and read once) %.1f MiB; ratio %.2f\n",
                b->unet[1].dispatches, b->unet_bytes / 1048576.0, floor / 1048576.0,
                floor > 0 ? b->unet_bytes / floor : 0);
        fprintf(f, "memory plan: peak %.1f MiB (UNet weights %.1f + activations %.1f; VAE activations %.1f, %s)\n",
                pl.peak / 1048576.0, pl.w_unet / 1048576.0, pl.a_unet / 1048576.0, pl.a_vae / 1048576.0,
                pl.vae_tile ? "tiled" : "whole");
    }
    fprintf(f, "\nthis run as a row of BENCHMARKS.md's table (`--append FILE` adds it to FILE):\n\n%s",
            vkd_bench_row_header());
}
