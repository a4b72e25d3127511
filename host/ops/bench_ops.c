/* `vkdiff bench ops [--device N] [--repeat R] [--quick] [--batch B] [--winograd]`: GPU time of the
 * linear and conv2d ops at the shapes an SD1.5 UNet at 512x512 (64x64 latent) runs,
 * fp32 and fp16 storage, as median ms over R submissions (GPU timestamps, after one
 * warm-up) and GFLOP/s (2 flops per multiply-add); beside each linear shape, the
 * sgemm GFLOP/s of OpenBLAS on the host at the same shape, in the same run. With
 * --winograd: the 3x3 convs on the implicit GEMM beside the Winograd conv (ops/winograd.h).
 * Prints a markdown table for BENCHMARKS.md. Nothing here fails on time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/pin_libs.h"
#include "vkdiff_dev.h"
#include "ops/attention.h"
#include "ops/conv2d.h"
#include "ops/groupnorm.h"
#include "ops/matmul.h"
#include "ops/op.h"
#include "ops/winograd.h"
#include "ops/push_peak.h"
#include "vk/cmd.h"
#include "vk/device.h"
#include "vk/pipeline.h"


typedef struct bench_case {
    const char *what;
    int conv;          /* 0: linear [M, K] x [N, K]^T; 1: 3x3 conv, stride 1, pad 1; 2: fused attention */
    int64_t m, k, n;   /* linear: rows per image (x batch), in, out; attention: tokens, width, heads */
    int64_t hw, cin, cout;
    int tier;          /* 0: in --quick; 1: in a CPU device's default run; 2: GPU default or --all */
} bench_case;

/* SD1.5 UNet at 512x512: latent 64x64 (4096 tokens), levels at C = 320/640/1280/1280. */
static const bench_case cases[] = {
    {"attn q/k/v/out, level 0", 0, 4096, 320, 320, 0, 0, 0, 1},
    {"GEGLU proj, level 0", 0, 4096, 320, 2560, 0, 0, 0, 2},
    {"FF out, level 0", 0, 4096, 1280, 320, 0, 0, 0, 2},
    {"attn q/k/v/out, level 1", 0, 1024, 640, 640, 0, 0, 0, 0},
    {"attn q/k/v/out, level 2", 0, 256, 1280, 1280, 0, 0, 0, 1},
    {"cross-attn k/v (77 tokens)", 0, 77, 768, 320, 0, 0, 0, 1},
    {"ResBlock conv 64x64 320->320", 1, 0, 0, 0, 64, 320, 320, 2},
    {"ResBlock conv 32x32 640->640", 1, 0, 0, 0, 32, 640, 640, 2},
    {"ResBlock conv 16x16 1280->1280", 1, 0, 0, 0, 16, 1280, 1280, 2},
    {"ResBlock conv 8x8 1280->1280", 1, 0, 0, 0, 8, 1280, 1280, 0},
    {"self-attention, level 0 (8 heads x 40)", 2, 4096, 320, 8, 0, 0, 0, 1},
    {"self-attention, level 1 (8 heads x 80)", 2, 1024, 640, 8, 0, 0, 0, 0},
    {"VAE mid-block attention (1 head x 512)", 2, 4096, 512, 1, 0, 0, 0, 1},
    /* a 64x64 image (latent 8x8): small M, the weights streamed for a few rows (issue 24) */
    {"64x64 image: attn q/k/v/out, level 2 (4 tokens)", 0, 4, 1280, 1280, 0, 0, 0, 1},
    {"64x64 image: ResBlock conv 1x1 1280->1280, level 3", 1, 0, 0, 0, 1, 1280, 1280, 1},
    {"64x64 image: ResBlock conv 8x8 320->320, level 0", 1, 0, 0, 0, 8, 320, 320, 1},
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill(float *x, size_t n, float scale, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = scale * ((float)(seed >> 8) / 16777216.0f - 0.5f);
    }
}

/* End the recording c (r: how recording went), submit it once to warm up, then
 * `repeat` times: the median GPU ms, < 0 on failure (reported). */
static double replay_median(vkd_cmd *c, vkd_result r, double *ms, int repeat, const bench_case *bc, vkd_dtype dt)
{
    if (!r) r = vkd_cmd_end(c);
    if (!r) r = vkd_cmd_submit_wait(c); /* warm-up */
    for (int i = 0; !r && i < repeat; i++) {
        r = vkd_cmd_submit_wait(c);
        ms[i] = vkd_cmd_total_ms(c);
    }
    if (r) {
        fprintf(stderr, "bench: %s %s failed: %s\n", bc->what, vkd_dtype_suffix(dt), vkd_result_str(r));
        return -1;
    }
    return median(ms, repeat);
}

/* Median GPU ms of the fused attention on a packed qkv [B, L, 3C] -> [B, L, C] with kernel
 * attn_kernel (--attention shared: the shared-memory flash kernel on every device, e.g. to
 * time its fp16-arithmetic variant against its fp32 one on a CPU device); < 0 on failure. */
static double time_attention(vkd_device *d, vkd_dtype dt, const bench_case *bc, int64_t batch, int repeat,
                             vkd_attention_kernel attn_kernel)
{
    vkd_tensor x = {0}, o = {0};
    vkd_cmd *c = NULL;
    double res = -1, *ms = calloc((size_t)repeat, sizeof *ms);
    int64_t L = bc->m, C = bc->k;
    float *hx = malloc((size_t)(batch * L * 3 * C) * 4);
    if (!ms || !hx)
        goto done;
    fill(hx, (size_t)(batch * L * 3 * C), 2.0f, 1);
    int64_t xs[3] = {batch, L, 3 * C}, os[3] = {batch, L, C};
    vkd_attention_params p;
    vkd_attention_params_init(&p);
    p.kernel = attn_kernel;
    p.heads = bc->n, p.head_dim = C / bc->n, p.k_col = C, p.v_col = 2 * C;
    vkd_result r = vkd_tensor_create(d, dt, 3, xs, &x);
    if (!r) r = vkd_tensor_upload_f32(d, &x, hx);
    if (!r) r = vkd_tensor_create(d, dt, 3, os, &o);
    if (!r) r = vkd_cmd_create(d, &c);
    if (!r) r = vkd_cmd_begin(c);
    if (!r) r = vkd_op_attention(c, &x, &x, &x, &o, &p);
    res = replay_median(c, r, ms, repeat, bc, dt);
done:
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &x);
    vkd_tensor_destroy(d, &o);
    free(ms);
    free(hx);
    return res;
}

/* U = G g G^T for the Winograd conv, transformed on the device in a submission of its own */
static vkd_result winograd_weights(vkd_device *d, const vkd_tensor *w, vkd_tensor *u)
{
    int64_t us[3] = {w->shape[0], 16, vkd_conv2d_winograd_cin_padded(w->shape[3])};
    vkd_cmd *c = NULL;
    vkd_result r = vkd_tensor_create(d, w->dtype, 3, us, u);
    if (!r) r = vkd_cmd_create(d, &c);
    if (!r) r = vkd_cmd_begin(c);
    if (!r) r = vkd_conv2d_winograd_weights(c, w, u);
    if (!r) r = vkd_cmd_end(c);
    if (!r) r = vkd_cmd_submit_wait(c);
    vkd_cmd_destroy(c);
    return r;
}

/* Median GPU ms of one op over `repeat` submissions; < 0 on failure. wino: a 3x3 conv
 * case on the Winograd conv (U's transform, where it is made beforehand, not timed). */
static double time_op(vkd_device *d, vkd_dtype dt, const bench_case *bc, int64_t batch, int repeat, int wino)
{
    vkd_tensor x = {0}, w = {0}, b = {0}, o = {0}, s = {0}, u = {0};
    vkd_cmd *c = NULL;
    double res = -1, *ms = calloc((size_t)repeat, sizeof *ms);
    int64_t rows = bc->conv ? bc->hw * bc->hw : bc->m;
    int64_t k = bc->conv ? bc->cin : bc->k, n = bc->conv ? bc->cout : bc->n;
    int64_t kk = bc->conv ? 9 * k : k;
    float *hx = malloc((size_t)(batch * rows * k) * 4), *hw = malloc((size_t)(n * kk) * 4);
    float *hb = malloc((size_t)n * 4);
    if (!ms || !hx || !hw || !hb)
        goto done;
    fill(hx, (size_t)(batch * rows * k), 2.0f, 1);
    fill(hw, (size_t)(n * kk), 0.1f, 2);
    fill(hb, (size_t)n, 0.1f, 3);
    int64_t xs[3] = {batch, rows, k}, os[3] = {batch, rows, n}, bs[1] = {n};
    vkd_result r = vkd_tensor_create(d, dt, 3, xs, &x);
    if (!r) r = vkd_tensor_upload_f32(d, &x, hx);
    if (!r) r = bc->conv ? vkd_conv2d_weight_upload(d, dt, hw, n, k, 3, 3, &w)
                         : vkd_linear_weight_upload(d, dt, hw, n, k, &w);
    if (!r) r = vkd_tensor_create(d, dt, 1, bs, &b);
    if (!r) r = vkd_tensor_upload_f32(d, &b, hb);
    if (!r) r = vkd_tensor_create(d, dt, 3, os, &o);
    /* the Winograd conv as the models run it where its rule says so (the kernel transforming
     * the stored weight in registers, winograd_sg_g); elsewhere from U in memory */
    bool from_g = wino && vkd_conv2d_winograd_worth(d, batch, bc->hw, bc->hw, bc->cin, bc->cout);
    if (!r && wino && !from_g) r = winograd_weights(d, &w, &u);
    /* split-K partial sums where the device's GEMM splits this shape, as the model has them */
    int64_t sn = vkd_gemm_split_scratch_numel(d, dt, 0, batch * rows, n, kk, k);
    if (!r && sn) r = vkd_tensor_create(d, VKD_F32, 1, &sn, &s);
    if (!r) r = vkd_cmd_create(d, &c);
    if (!r) r = vkd_cmd_begin(c);
    if (!r) {
        vkd_conv2d_params p = vkd_conv2d_params_sym(1, 1);
        p.scratch = sn ? &s : NULL;
        vkd_linear_opts lo = {.bias = &b, .scratch = sn ? &s : NULL};
        r = wino       ? vkd_op_conv2d_winograd(c, &x, bc->hw, bc->hw, from_g ? &w : &u, &b, NULL, &o)
            : bc->conv ? vkd_op_conv2d(c, &x, bc->hw, bc->hw, &w, &b, NULL, &p, &o)
                       : vkd_op_linear_ex(c, &x, &w, &lo, &o);
    }
    res = replay_median(c, r, ms, repeat, bc, dt);
done:
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &x);
    vkd_tensor_destroy(d, &w);
    vkd_tensor_destroy(d, &b);
    vkd_tensor_destroy(d, &o);
    vkd_tensor_destroy(d, &s);
    vkd_tensor_destroy(d, &u);
    free(ms);
    free(hx);
    free(hw);
    free(hb);
    return res;
}

/* Median GPU ms of GroupNorm(32 groups) + SiLU over [batch, hw*hw, c] (all its passes); < 0 on failure. */

/* passes: print each pass's time too (VKD_BENCH_PASSES, read by the CLI) */
static double time_groupnorm(vkd_device *d, vkd_dtype dt, int64_t batch, int64_t hw, int64_t ch, int repeat,
                             bool print_passes)
{
    vkd_tensor x = {0}, g = {0}, b = {0}, s = {0}, o = {0};
    vkd_cmd *c = NULL;
    bench_case bc = {.what = "group norm"};
    double res = -1, *ms = calloc((size_t)repeat, sizeof *ms);
    size_t n = (size_t)(batch * hw * hw * ch);
    float *hx = malloc(n * 4), *hg = malloc((size_t)ch * 8);
    if (!ms || !hx || !hg)
        goto done;
    fill(hx, n, 2.0f, 1);
    fill(hg, (size_t)ch * 2, 1.0f, 2);
    int64_t xs[3] = {batch, hw * hw, ch}, cs[1] = {ch}, ss[1] = {0};
    vkd_result r = vkd_tensor_create(d, dt, 3, xs, &x);
    if (!r) r = vkd_tensor_upload_f32(d, &x, hx);
    if (!r) r = vkd_tensor_create(d, dt, 1, cs, &g);
    if (!r) r = vkd_tensor_upload_f32(d, &g, hg);
    if (!r) r = vkd_tensor_create(d, dt, 1, cs, &b);
    if (!r) r = vkd_tensor_upload_f32(d, &b, hg + ch);
    if (!r) r = vkd_tensor_create(d, dt, 3, xs, &o);
    if (!r) r = vkd_cmd_create(d, &c);
    if (!r) r = vkd_op_groupnorm_scratch_numel(c, &x, 32, &ss[0]);
    if (!r) r = vkd_tensor_create(d, VKD_F32, 1, ss, &s);
    if (!r) r = vkd_cmd_begin(c);
    if (!r) r = vkd_op_groupnorm(c, &x, 32, 1e-5f, &g, &b, true, &s, &o);
    res = replay_median(c, r, ms, repeat, &bc, dt);
    if (print_passes) { /* developer aid (VKD_BENCH_PASSES): the last replay's passes */
        const char *const *lab;
        const double *t;
        uint32_t nt = vkd_cmd_timings(c, &lab, &t);
        for (uint32_t i = 0; i < nt; i++)
            fprintf(stderr, "  %s %.2f ms\n", lab[i], t[i]);
    }
done:
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &x);
    vkd_tensor_destroy(d, &g);
    vkd_tensor_destroy(d, &b);
    vkd_tensor_destroy(d, &s);
    vkd_tensor_destroy(d, &o);
    free(ms);
    free(hx);
    free(hg);
    return res;
}

/* GFLOP/s of shaders/peak.comp, fp32 on registers only (mode 0: 64 independent fma
 * chains per invocation; 1 and 2: the subgroup GEMM's inner step, 8 x 8 outputs per
 * lane with the other operand taken from lane c by subgroupBroadcast (1) or
 * subgroupShuffle (2)): what the device's compiler reaches with no memory traffic,
 * the ceiling of every kernel in the table. < 0 where the device cannot run it. */
static double time_peak(vkd_device *d, uint32_t mode, int repeat)
{
    uint32_t need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_BALLOT_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
    if ((d->caps.subgroup_ops & need) != need || d->caps.subgroup_size < 8)
        return -1;
    int cpu = d->profile.cpu;
    /* llvmpipe ends any loop after 65535 trips (its guard against endless shaders),
     * so the work grows with the grid, not the trip count */
    const uint32_t tm = 8, iters = 20000;
    uint32_t local = cpu ? 8 : 256, groups = cpu ? 256 : 2048;
    vkd_tensor o = {0};
    vkd_cmd *c = NULL;
    double res = -1, *ms = calloc((size_t)repeat, sizeof *ms);
    int64_t os[1] = {(int64_t)local * groups};
    bench_case bc = {.what = "arithmetic ceiling"};
    vkd_result r = ms ? vkd_tensor_create(d, VKD_F32, 1, os, &o) : VKD_ERR_OUT_OF_HOST_MEMORY;
    if (!r) r = vkd_cmd_create(d, &c);
    if (!r) r = vkd_cmd_begin(c);
    const vkd_pipeline *p = NULL;
    uint32_t spec[5] = {local, 1, 1, mode, tm};
    if (!r) r = vkd_op_pipeline(c, VKD_KERNEL_PEAK, VKD_F32, spec, 5, &p);
    vkd_binding b;
    uint32_t shift;
    if (!r) r = vkd_op_bind(c, &o, 0, os[0], &b, &shift);
    vkd_push_peak pc = {.iters = iters, .a = 0.999f, .b = 0.001f};
    if (!r) r = vkd_cmd_dispatch(c, p, &b, 1, &pc, sizeof pc, groups, 1, 1, "peak");
    double t = replay_median(c, r, ms, repeat, &bc, VKD_F32);
    if (t > 0)
        res = 2.0 * 8 * tm * (double)iters * local * groups / (t * 1e6);
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &o);
    free(ms);
    return res;
}

/* --winograd: each 3x3 conv case on the implicit GEMM and on the Winograd conv, one
 * after the other per dtype (same run, same machine state) */
static void winograd_table(vkd_device *d, const vkd_dtype *dts, int ndt, int64_t batch, int repeat, int max_tier,
                           const char *filter)
{
    printf("| 3x3 conv | shape | GFLOP | fp32 GEMM ms | fp32 Winograd ms | speed-up | fp16 GEMM ms | fp16 Winograd ms "
           "| speed-up | Winograd worth |\n");
    printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bench_case *bc = &cases[i];
        if (bc->conv != 1 || bc->tier > max_tier || (filter && !strstr(bc->what, filter)))
            continue;
        printf("| %s | [%lld, %lldx%lld, %lld] -> %lld | %.2f |", bc->what, (long long)batch, (long long)bc->hw,
               (long long)bc->hw, (long long)bc->cin, (long long)bc->cout,
               2.0 * batch * bc->hw * bc->hw * bc->cout * 9.0 * bc->cin / 1e9);
        fflush(stdout);
        for (int j = 0; j < 2; j++) {
            double g = j < ndt ? time_op(d, dts[j], bc, batch, repeat, 0) : -1;
            double wg = j < ndt ? time_op(d, dts[j], bc, batch, repeat, 1) : -1;
            if (g > 0 && wg > 0)
                printf(" %.1f | %.1f | %.2fx |", g, wg, g / wg);
            else
                printf(" – | – | – |");
            fflush(stdout);
        }
        printf(" %s |\n", vkd_conv2d_winograd_worth(d, batch, bc->hw, bc->hw, bc->cin, bc->cout) ? "yes" : "no");
    }
}

int vkd_bench_ops_main(int argc, char **argv, const vkd_bench_ops_opts *bo)
{
    vkd_device_opts o;
    vkd_device_opts_init(&o);
    o.timestamps = true;
    o.coopmat = bo->coopmat;
    vkd_bench_host_sgemm_fn time_sgemm = bo->host_sgemm_ms; /* the caller's host reference, or NULL */
    int repeat = 0, quick = 0, all = 0, wino = 0;
    vkd_attention_kernel attn_kernel = VKD_ATTENTION_AUTO; /* --attention shared: the flash kernel */
    int64_t batch = 0;
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "ops"))
            continue;
        if (!strcmp(argv[i], "--device") && i + 1 < argc)
            o.device_index = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            filter = argv[++i];
        else if (!strcmp(argv[i], "--tile") && i + 1 < argc) {
            /* developer knob: time another GEMM tile (BMxBNxBKxTMxTN, shared-memory kernel;
             * xF: kernel family F, 1 the direct one) */
            vkd_gemm_tile t = {0};
            int nf = sscanf(argv[++i], "%ux%ux%ux%ux%ux%u", &t.bm, &t.bn, &t.bk, &t.tm, &t.tn, &t.direct);
            if ((nf != 5 && nf != 6) || t.direct > 1 || !t.tm || !t.tn || !t.bk || t.bm % t.tm || t.bn % t.tn ||
                (t.bm / t.tm) * (t.bn / t.tn) > 1024) {
                fprintf(stderr, "vkdiff: bench ops: --tile wants BMxBNxBKxTMxTN[x1], e.g. 128x128x16x8x8 (x1: the "
                                "direct kernel)\n");
                return 2;
            }
            o.knobs.gemm_tile = t;
        } else if (!strcmp(argv[i], "--split-k") && i + 1 < argc) { /* developer knob: 0 = off */
            int n = atoi(argv[++i]);
            o.knobs.split_k = n > 0 ? n : -1;
        } else if (!strcmp(argv[i], "--attention") && i + 1 < argc) { /* developer knob: flash = not on coopmat */
            i++;
            o.knobs.attention_no_coopmat = !strcmp(argv[i], "flash");
            attn_kernel = !strcmp(argv[i], "shared") ? VKD_ATTENTION_FLASH : VKD_ATTENTION_AUTO;
        } else if (!strcmp(argv[i], "--fp16-arith") && i + 1 < argc) /* developer knob: the *_h kernels */
            o.knobs.fp16_arith = !strcmp(argv[++i], "on") ? 1 : -1;
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--all"))
            all = 1;
        else if (!strcmp(argv[i], "--winograd"))
            wino = 1;
        else if (!strcmp(argv[i], "--splitk-reduce")) /* developer knob: split-K's sums in a dispatch of their own */
            o.knobs.splitk_reduce = true;
        else {
            fprintf(stderr, "usage: vkdiff bench ops [--device N] [--repeat R] [--batch B] [--quick | --all] [--filter TEXT] "
                            "[--tile BMxBNxBKxTMxTN[x1]] [--split-k WORKGROUPS] [--attention flash|shared|auto] "
                            "[--fp16-arith on|off] [--winograd] [--splitk-reduce]\n");
            return 2;
        }
    }
    vkd_device *d = NULL;
    vkd_result r = vkd_device_create(&o, &d);
    if (r) {
        fprintf(stderr, "vkdiff: %s\n", vkd_result_str(r));
        return 1;
    }
#ifdef VKD_SANITIZE_BUILD
    vkd_pin_driver_libs();
#endif
    if (!d->caps.timestamps) {
        fprintf(stderr, "vkdiff: %s has no compute-queue timestamps\n", d->caps.name);
        vkd_device_destroy(d);
        return 1;
    }
    /* a CPU device runs the UNet's batch of 2 (cond + uncond) and the level-0 and
     * conv shapes too slowly to time in minutes: it defaults to batch 1, one timed
     * run, and the smaller shapes (--all runs every one), and says so */
    int cpu = d->profile.cpu;
    if (batch < 1)
        batch = cpu ? 1 : 2;
    if (repeat < 1)
        repeat = quick || cpu ? 1 : 10;
    int max_tier = quick ? 0 : all || !cpu ? 2 : 1;
    vkd_dtype dts[2] = {VKD_F32, VKD_F16};
    int ndt = d->caps.storage16 ? 2 : 1;
    vkd_gemm_tile t = vkd_gemm_tile_for(d);
    static const char *const family[5] = {"tiled", "direct", "subgroup", "cooperative-matrix (fp16; fp32 tiled)",
                                          "cooperative-matrix emulation"};

    printf("device: %s (%s)\n", d->caps.name, d->caps.driver);
    printf("batch %lld (SD1.5 512x512 with CFG runs batch 2), median of %d after a warm-up, %s shapes, GEMM %s %ux%ux%u, "
           "%ux%u per invocation\n\n",
           (long long)batch, repeat, max_tier == 2 ? "all" : "a subset of the", family[t.direct <= 4 ? t.direct : 0], t.bm, t.bn,
           t.bk, t.tm, t.tn);
    printf("fp16 columns: fp16 arithmetic (the *_h kernels, docs/fp16.md) %s; attention kernel %s\n",
           vkd_fp16_arith_on(&d->profile, &d->knobs) ? "on" : "off",
           attn_kernel == VKD_ATTENTION_FLASH ? "shared-memory flash (forced)" : "the device's");
    /* the ceiling first: every GFLOP/s below reads against it (and OpenBLAS's) */
    double ceil_chain = time_peak(d, 0, repeat), ceil_bcast = time_peak(d, 1, repeat);
    double ceil_shuffle = time_peak(d, 2, repeat), blas_sq = time_sgemm ? time_sgemm(1024, 1024, 1024, repeat) : -1;
    if (ceil_chain > 0)
        printf("arithmetic ceiling, fp32 on registers only (shaders/peak.comp): %.1f GFLOP/s in 64 fma chains, "
               "%.1f in the subgroup GEMM's inner step with subgroupShuffle, %.1f with subgroupBroadcast\n",
               ceil_chain, ceil_shuffle, ceil_bcast);
    if (blas_sq > 0)
        printf("OpenBLAS sgemm 1024x1024x1024 on the host: %.1f GFLOP/s\n", 2.0 * 1024 * 1024 * 1024 / (blas_sq * 1e6));
    printf("\n");
    if (wino) {
        winograd_table(d, dts, ndt, batch, repeat, max_tier, filter);
        vkd_device_destroy(d);
        return 0;
    }
    printf("| op | shape | GFLOP | fp32 ms | fp32 GFLOP/s | fp16 ms | fp16 GFLOP/s | OpenBLAS sgemm GFLOP/s |\n");
    printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    fflush(stdout);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bench_case *bc = &cases[i];
        if (bc->tier > max_tier || (filter && !strstr(bc->what, filter)))
            continue;
        char shape[96];
        double flop;
        if (bc->conv == 2) { /* QK^T and PV: 2 * 2 * L^2 * C */
            snprintf(shape, sizeof shape, "[%lld, %lld tokens, %lld]", (long long)batch, (long long)bc->m,
                     (long long)bc->k);
            flop = 4.0 * batch * bc->m * bc->m * bc->k;
        } else if (bc->conv) {
            snprintf(shape, sizeof shape, "[%lld, %lldx%lld, %lld] 3x3 -> %lld", (long long)batch, (long long)bc->hw,
                     (long long)bc->hw, (long long)bc->cin, (long long)bc->cout);
            flop = 2.0 * batch * bc->hw * bc->hw * bc->cout * 9.0 * bc->cin;
        } else {
            snprintf(shape, sizeof shape, "M=%lld K=%lld N=%lld", (long long)(batch * bc->m), (long long)bc->k,
                     (long long)bc->n);
            flop = 2.0 * batch * bc->m * bc->k * bc->n;
        }
        printf("| %s | %s | %.2f |", bc->what, shape, flop / 1e9);
        for (int j = 0; j < 2; j++) {
            double ms = j >= ndt ? -1 : bc->conv == 2 ? time_attention(d, dts[j], bc, batch, repeat, attn_kernel)
                                                       : time_op(d, dts[j], bc, batch, repeat, 0);
            if (ms > 0)
                printf(" %.2f | %.1f |", ms, flop / (ms * 1e6));
            else
                printf(" – | – |");
        }
        double blas = -1;
        if (bc->conv == 2)
            blas = -1; /* no BLAS counterpart */
        else if (bc->conv) /* the conv's GEMM: [B*HW, 9*Cin] x [Cout, 9*Cin]^T */
            blas = time_sgemm ? time_sgemm(batch * bc->hw * bc->hw, 9 * bc->cin, bc->cout, repeat) : -1;
        else
            blas = time_sgemm ? time_sgemm(batch * bc->m, bc->k, bc->n, repeat) : -1;
        if (blas > 0)
            printf(" %.1f%s |\n", flop / (blas * 1e6), bc->conv ? " (im2col GEMM)" : "");
        else
            printf(" – |\n");
        fflush(stdout);
    }
    /* memory-bound ops: bytes the passes must move (group norm: x read by the statistics
     * and again by the apply pass, out written once) */
    static const struct { const char *what; int64_t hw, c; int tier; } norms[] = {
        {"GroupNorm+SiLU, UNet level 0", 64, 320, 0},
        {"GroupNorm+SiLU, UNet level 2", 16, 1280, 1},
        {"GroupNorm+SiLU, VAE 256x256", 256, 256, 2},
    };
    printf("\n| memory-bound op | shape | MB moved | fp32 ms | fp32 GB/s | fp16 ms | fp16 GB/s |\n");
    printf("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (size_t i = 0; i < sizeof norms / sizeof norms[0]; i++) {
        if (norms[i].tier > max_tier || (filter && !strstr(norms[i].what, filter)))
            continue;
        double elems = (double)batch * norms[i].hw * norms[i].hw * norms[i].c;
        printf("| %s | [%lld, %lldx%lld, %lld] | %.1f (fp16) |", norms[i].what, (long long)batch, (long long)norms[i].hw,
               (long long)norms[i].hw, (long long)norms[i].c, 3 * elems * 2 / 1e6);
        for (int j = 0; j < 2; j++) {
            double ms = j >= ndt ? -1 : time_groupnorm(d, dts[j], batch, norms[i].hw, norms[i].c, repeat,
                                                                bo->passes);
            double bytes = 3 * elems * (dts[j] == VKD_F16 ? 2 : 4);
            if (ms > 0)
                printf(" %.2f | %.1f |", ms, bytes / (ms * 1e6));
            else
                printf(" – | – |");
        }
        printf("\n");
        fflush(stdout);
    }
    vkd_pipeline_stats ps;
    vkd_pipeline_stats_get(d, &ps);
    printf("\n%u pipelines created in %.0f ms\n", ps.created, ps.create_ms);
    vkd_device_destroy(d);
    return 0;
}
