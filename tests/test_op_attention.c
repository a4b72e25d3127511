/* Fused attention against a double reference (softmax in double), both storage
 * precisions, at the shapes SD 1.x/2.x, CLIP and the VAE use, at odd sizes, with
 * q/k/v as views into packed projections, and on a device whose binding range is
 * lowered so that the op must split q and out over query rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/attention.h"

typedef enum { SEPARATE, PACKED_QKV, PACKED_KV, PACKED_Q } packing;

typedef struct acase {
    const char *name;
    int64_t n, lq, lk, heads, dim;
    bool causal;
    float scale;     /* 0: default 1/sqrt(D) */
    packing pack;    /* PACKED_QKV: q, k, v in one [N, L, 3HD]; PACKED_KV: k, v in one [N, Lk, 2HD];
                        PACKED_Q: q is the first third of a [N, Lq, 3HD] (its rows are wide) */
    int64_t out_pad; /* out is [N, Lq, HD + 2 pad] written at column pad; the pads must stay untouched */
} acase;

/* One operand as the reference reads it: rows of `stride` floats from column col. */
typedef struct view {
    const float *x;
    int64_t stride, col;
} view;

static void reference(const acase *tc, view q, view k, view v, double scale, double *out, int64_t out_stride,
                      int64_t out_col)
{
    int64_t hd = tc->heads * tc->dim;
    double *s = malloc((size_t)tc->lk * sizeof *s);
    for (int64_t b = 0; b < tc->n; b++)
        for (int64_t h = 0; h < tc->heads; h++)
            for (int64_t i = 0; i < tc->lq; i++) {
                const float *qi = q.x + (b * tc->lq + i) * q.stride + q.col + h * tc->dim;
                double mx = -INFINITY;
                int64_t jend = tc->causal && i + 1 < tc->lk ? i + 1 : tc->lk;
                for (int64_t j = 0; j < jend; j++) {
                    const float *kj = k.x + (b * tc->lk + j) * k.stride + k.col + h * tc->dim;
                    double acc = 0;
                    for (int64_t d = 0; d < tc->dim; d++)
                        acc += (double)qi[d] * kj[d];
                    s[j] = acc * scale;
                    if (s[j] > mx)
                        mx = s[j];
                }
                double sum = 0;
                for (int64_t j = 0; j < jend; j++)
                    sum += s[j] = exp(s[j] - mx);
                double *o = out + (b * tc->lq + i) * out_stride + out_col + h * tc->dim;
                for (int64_t d = 0; d < tc->dim; d++)
                    o[d] = 0;
                for (int64_t j = 0; j < jend; j++) {
                    const float *vj = v.x + (b * tc->lk + j) * v.stride + v.col + h * tc->dim;
                    double w = s[j] / sum;
                    for (int64_t d = 0; d < tc->dim; d++)
                        o[d] += w * vj[d];
                }
            }
    (void)hd;
    free(s);
}

static float *random_rows(test_rng *rng, vkd_dtype dt, int64_t rows, int64_t cols)
{
    return test_randn(rng, dt, (size_t)(rows * cols), 1.0);
}

/* Cases the subgroup kernel ran (on a CPU device with 8-lane subgroups it must run
 * the SD shapes: counted by name below). */
static int subgroup_runs, subgroup_sd_runs;

/* Returns false when the forced kernel does not apply (VKD_ERR_UNSUPPORTED). */
static int coopmat_runs; /* cases the cooperative-matrix kernel ran */

/* fp32: only the summation order and the shader's exp differ from double (~1e-13);
 * fp16: inputs are the same rounded values, the output is rounded once (~1e-7); the
 * cooperative-matrix kernel also rounds the probabilities to fp16 before P V (each
 * weight's relative error <= 2^-11, normalised by their rounded sum: ~1e-7 more). */
static const test_tol tol = {.f32 = 1e-11, .f16 = 1e-6};
/* The fp16-arithmetic flash kernel (attention_h, docs/fp16.md), u = 2^-11, rounding errors
 * uniform in +-u relative (variance u^2/3 each): each score's error is the rounding of
 * its fp16 products and UB-column partial sums, ~(u^2/3) * (1 + UB/2) in variance (the
 * scaled score has unit variance here), which moves each weight by the same relative
 * amount; each p is rounded to fp16 once (u^2/3); P V's products and BC-key partial sums
 * add (u^2/3) * (1 + BC/2) relative to the output; the output rounding u^2/3. So
 * nmse ~ (u^2/3) * (4 + UB/2 + BC/2), UB = BC = 16 at most: 1.6e-6 (u^2/3 is the worst
 * binade's variance, so an upper estimate, as tests/test_op_matmul.c says). Allowed: 2x it.
 * The output accumulators rounded to fp16 after each 16-key tile instead of kept in fp32
 * gave 6.4e-6 at 4096 keys (red). */
static const test_tol tol_h = {.f32 = 0, .f16 = 2 * (0x1p-22 / 3.0) * (4 + 16 / 2 + 16 / 2)};

typedef struct att_job {
    vkd_attention_params p;
    const vkd_tensor *q, *k, *v;
    vkd_tensor out;
} att_job;

static vkd_result record(vkd_cmd *c, void *ctx)
{
    att_job *j = ctx;
    return vkd_op_attention(c, j->q, j->k, j->v, &j->out, &j->p);
}

static bool run_case(vkd_device *d, vkd_dtype dt, const acase *tc, test_rng *rng, vkd_attention_kernel kernel)
{
    int64_t n = tc->n, lq = tc->lq, lk = tc->lk, hd = tc->heads * tc->dim;
    /* host arrays and device tensors of the (up to three) backing tensors */
    float *hq = NULL, *hk = NULL, *hv = NULL;
    vkd_tensor tq = {0}, tk = {0}, tv = {0};
    view vq, vk, vv;
    vkd_attention_params p;
    vkd_attention_params_init(&p);
    p.heads = tc->heads;
    p.head_dim = tc->out_pad ? tc->dim : 0; /* 0 also exercises the default (out's width / heads) */
    p.causal = tc->causal;
    p.scale = tc->scale;
    p.kernel = kernel;
    int64_t sq[3] = {n, lq, hd}, sk[3] = {n, lk, hd};
    switch (tc->pack) {
    case PACKED_QKV: {
        int64_t s3[3] = {n, lq, 3 * hd};
        hq = random_rows(rng, dt, n * lq, 3 * hd);
        tq = test_tensor_from(d, dt, 3, s3, hq);
        vq = (view){hq, 3 * hd, 0};
        vk = (view){hq, 3 * hd, hd};
        vv = (view){hq, 3 * hd, 2 * hd};
        break;
    }
    case PACKED_KV: {
        int64_t s2[3] = {n, lk, 2 * hd};
        hq = random_rows(rng, dt, n * lq, hd);
        hk = random_rows(rng, dt, n * lk, 2 * hd);
        tq = test_tensor_from(d, dt, 3, sq, hq);
        tk = test_tensor_from(d, dt, 3, s2, hk);
        vq = (view){hq, hd, 0};
        vk = (view){hk, 2 * hd, 0};
        vv = (view){hk, 2 * hd, hd};
        break;
    }
    default: {
        int64_t qw = tc->pack == PACKED_Q ? 3 * hd : hd;
        int64_t s3[3] = {n, lq, qw};
        hq = random_rows(rng, dt, n * lq, qw);
        hk = random_rows(rng, dt, n * lk, hd);
        hv = random_rows(rng, dt, n * lk, hd);
        tq = test_tensor_from(d, dt, 3, s3, hq);
        tk = test_tensor_from(d, dt, 3, sk, hk);
        tv = test_tensor_from(d, dt, 3, sk, hv);
        vq = (view){hq, qw, 0};
        vk = (view){hk, hd, 0};
        vv = (view){hv, hd, 0};
        break;
    }
    }
    p.q_col = vq.col;
    p.k_col = vk.col;
    p.v_col = vv.col;
    const vkd_tensor *pk = tc->pack == PACKED_QKV ? &tq : &tk;
    const vkd_tensor *pv = tc->pack == PACKED_QKV ? &tq : tc->pack == PACKED_KV ? &tk : &tv;

    int64_t ow = hd + 2 * tc->out_pad;
    int64_t so[3] = {n, lq, ow};
    size_t on = (size_t)(n * lq * ow);
    double *ref = test_alloc(on * sizeof *ref);
    vkd_tensor to;
    if (tc->out_pad) {
        /* pads hold 7, the written columns NaN: both a stray and a missing write fail */
        float *init = test_alloc(on * sizeof *init);
        for (size_t i = 0; i < on; i++) {
            int64_t col = (int64_t)(i % (size_t)ow);
            bool pad = col < tc->out_pad || col >= tc->out_pad + hd;
            init[i] = pad ? 7.0f : NAN;
            ref[i] = 7.0;
        }
        to = test_tensor_from(d, dt, 3, so, init);
        free(init);
        p.out_col = tc->out_pad;
    } else {
        to = test_tensor_poisoned(d, dt, 3, so);
    }
    double scale = tc->scale != 0.0f ? (double)tc->scale : 1.0 / sqrt((double)tc->dim);
    reference(tc, vq, vk, vv, scale, ref, ow, tc->out_pad);

    const char *forced = kernel == VKD_ATTENTION_SUBGROUP ? " subgroup" : kernel == VKD_ATTENTION_COOPMAT ? " coopmat"
                         : d->knobs.fp16_arith > 0 && dt == VKD_F16                                 ? " fp16-arith"
                                                                                                     : "";
    char what[160];
    snprintf(what, sizeof what, "attention_%s%s %s N%lld Lq%lld Lk%lld H%lld D%lld%s", vkd_dtype_suffix(dt), forced,
             tc->name, (long long)n, (long long)lq, (long long)lk, (long long)tc->heads, (long long)tc->dim,
             tc->causal ? " causal" : "");
    att_job j = {p, &tq, pk, pv, to};
    /* a forced kernel that does not apply (VKD_ERR_UNSUPPORTED) is no failure */
    test_op op = {.what = what, .record = record, .ctx = &j, .out = &j.out, .ref = ref,
                  .tol = d->knobs.fp16_arith > 0 ? tol_h : tol,
                  .skip_unsupported = kernel == VKD_ATTENTION_SUBGROUP || kernel == VKD_ATTENTION_COOPMAT};
    bool applies = test_op_run(d, &op) != VKD_ERR_UNSUPPORTED || !op.skip_unsupported;
    if (!applies) {
        printf("  (%s kernel does not apply: %s %s)\n", kernel == VKD_ATTENTION_SUBGROUP ? "subgroup" : "cooperative-matrix",
               vkd_dtype_suffix(dt), tc->name);
    } else {
        coopmat_runs += kernel == VKD_ATTENTION_COOPMAT;
        if (kernel == VKD_ATTENTION_SUBGROUP) {
            subgroup_runs++;
            subgroup_sd_runs += strncmp(tc->name, "sd1_", 4) == 0 || strcmp(tc->name, "long_keys") == 0;
        }
    }
    TEST_DESTROY(d, &tq, &tk, &tv, &j.out);
    TEST_FREE(hq, hk, hv, ref);
    return applies;
}

/* Bad arguments give an error value, never a dispatch. */
static void test_attention_rejects_bad_shapes(vkd_device *d)
{
    int64_t s[3] = {1, 10, 64}, s_wide[3] = {1, 10, 128}, s_n2[3] = {2, 10, 64};
    vkd_tensor a = test_tensor_from(d, VKD_F32, 3, s, NULL);
    vkd_tensor w = test_tensor_from(d, VKD_F32, 3, s_wide, NULL);
    vkd_tensor b2 = test_tensor_from(d, VKD_F32, 3, s_n2, NULL);
    vkd_cmd *c = test_cmd_open(d);
    vkd_attention_params p;
    vkd_attention_params_init(&p);
    p.heads = 2;
    TEST_CHECK(vkd_op_attention(c, &a, &a, &b2, &a, &p) == VKD_ERR_SHAPE, "batch mismatch accepted");
    p.k_col = 32; /* columns 32..95 of a 64-wide k */
    TEST_CHECK(vkd_op_attention(c, &a, &a, &a, &a, &p) == VKD_ERR_SHAPE, "column past the row accepted");
    p.k_col = 64;
    TEST_CHECK(vkd_op_attention(c, &a, &w, &w, &a, &p) == VKD_OK, "k view at column 64 of a 128-wide row refused");
    p.k_col = 0;
    p.heads = 0;
    TEST_CHECK(vkd_op_attention(c, &a, &a, &a, &a, &p) == VKD_ERR_SHAPE, "0 heads accepted");
    p.heads = 3; /* 64 is not a multiple of 3 heads of 22 */
    p.head_dim = 22;
    TEST_CHECK(vkd_op_attention(c, &a, &a, &a, &a, &p) == VKD_ERR_SHAPE, "66 columns in a 64-wide row accepted");
    test_cmd_close(c);
    TEST_DESTROY(d, &a, &w, &b2);
}

/* K/V of one batch item larger than a binding window: a clear error, not a crash. */
static void test_attention_refuses_kv_over_one_window(vkd_device *d)
{
    int64_t sq[3] = {1, 4, 64}, skv[3] = {1, 1000, 64}; /* 256 KB of f32 keys */
    vkd_tensor q = test_tensor_from(d, VKD_F32, 3, sq, NULL);
    vkd_tensor kv = test_tensor_from(d, VKD_F32, 3, skv, NULL);
    vkd_cmd *c = test_cmd_open(d);
    vkd_attention_params p;
    vkd_attention_params_init(&p);
    vkd_result r = vkd_op_attention(c, &q, &kv, &kv, &q, &p);
    TEST_CHECK(r == VKD_ERR_TOO_LARGE, "k over one window: want VKD_ERR_TOO_LARGE, got %s", vkd_result_str(r));
    test_cmd_close(c);
    TEST_DESTROY(d, &q, &kv);
}

static const acase cases[] = {
    /* CLIP ViT-L/14 self-attention: q, k, v packed as one projection, causal */
    {"clip_l_qkv", 1, 77, 77, 12, 64, true, 0, PACKED_QKV, 0},
    /* OpenCLIP ViT-H/14 (C = 1024), cond and uncond */
    {"openclip_h", 2, 77, 77, 16, 64, true, 0, SEPARATE, 0},
    /* SD1.5 UNet self-attention at C = 320 (a 32x32 latent; 64x64 is 16x the work) */
    {"sd1_self", 1, 1024, 1024, 8, 40, false, 0, PACKED_QKV, 0},
    /* SD1.5 cross-attention: 77 context tokens, D = 40 / 80 / 160 at the three levels */
    {"sd1_cross_d40", 1, 1024, 77, 8, 40, false, 0, SEPARATE, 0},
    /* (8 heads x 1024 queries: enough rows for the subgroup kernel's many-rows-per-lane
     * variants, as at 512x512 (D 80) and 1024x1024 (D 160); small ones take 1 row per lane) */
    {"sd1_cross_d80", 1, 1024, 77, 8, 80, false, 0, PACKED_KV, 0},
    {"sd1_cross_d160", 1, 1024, 77, 8, 160, false, 0, SEPARATE, 0},
    {"sd1_cross_d160_small", 1, 64, 77, 8, 160, false, 0, SEPARATE, 0},
    /* SD2 at C = 320: 5 heads of 64, a two-chunk prompt (154 tokens) */
    {"sd2_cross_lk154", 2, 256, 154, 5, 64, false, 0, SEPARATE, 0},
    /* VAE mid-block: one head of 512 over H*W tokens (a 16x16 latent: 1024 tokens
     * take ~20 s per dtype on lavapipe) */
    {"vae_d512", 1, 256, 256, 1, 512, false, 0, SEPARATE, 0},
    /* many key tiles: lavapipe stops loops after 65535 iterations per invocation */
    {"long_keys", 1, 16, 4096, 2, 40, false, 0, SEPARATE, 0},
    /* odd sizes: no tile divides them; an explicit scale; out written into a wider tensor */
    {"odd", 2, 33, 13, 3, 40, false, 0.3f, SEPARATE, 5},
    /* (head dim 40: each head dim is a subgroup-kernel pipeline that lavapipe compiles
     * for 5-40 s; the SD dims 40/64/80/160 are tested anyway) */
    {"odd_causal", 1, 45, 45, 2, 40, true, 0, PACKED_QKV, 0},
    {"odd_d200", 1, 19, 21, 2, 200, false, 0, PACKED_KV, 3},
    /* head dims 4 and 8: the UNets of tiny models (the shipped weights/shapes.safetensors,
     * tools/make_checkpoint.py's); fewer columns than any kernel's load width or tile */
    {"small_d4", 2, 37, 29, 3, 4, false, 0, SEPARATE, 0},
    {"small_d8_causal", 1, 45, 45, 4, 8, true, 0, PACKED_QKV, 0},
};

/* 32 KiB bindings: q and out must be split over batch items and query rows (with the
 * causal mask, each chunk must know its first row), k and v fit. */
static const acase split_cases[] = {
    {"split_causal_q_view", 2, 120, 120, 2, 32, true, 0, PACKED_Q, 0},
    {"split_cross", 2, 700, 77, 2, 40, false, 0, SEPARATE, 4},
};

/* argv[1], when given, runs only the cases whose name contains it (for debugging). */
static const char *only;
static bool selected(const acase *tc) { return !only || strstr(tc->name, only); }

/* `--coopmat`: the cooperative-matrix kernel on every case (a ctest of its own,
 * test_op_attention_cm, that runs beside this one): the KHR kernel where the device has
 * it, else its emulation, which lavapipe runs only where the keys are few (lavapipe
 * ends an invocation's loops after 65535 iterations in all, and the emulated matrix
 * products loop per element). */
static int run_coopmat(void)
{
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    bool khr = d->profile.coopmat == VKD_COOPMAT_KHR;
    int tried = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        if (!selected(&cases[k]))
            continue;
        if (!khr && cases[k].lk > 160) {
            printf("  (emulated cooperative-matrix kernel: %s has %lld keys, past lavapipe's loop limit)\n",
                   cases[k].name, (long long)cases[k].lk);
            continue;
        }
        tried++;
        run_case(d, VKD_F16, &cases[k], &rng, VKD_ATTENTION_COOPMAT);
    }
    printf("cooperative-matrix kernel (%s): %d of %d cases ran\n", khr ? "VK_KHR_cooperative_matrix" : "emulated",
           coopmat_runs, tried);
    /* it must have run every case up to head dim 80 (and on a device with it, to 160);
     * the emulation is sized for 32 KiB of shared memory: under a phone's 16
     * (VKD_EMULATE=mobile) only the small heads fit, and the count is not held */
    bool full = khr || d->caps.max_shared >= 32768;
    if (!full)
        printf("note: %u bytes of shared memory: the emulated kernel runs only the heads that fit\n",
               d->caps.max_shared);
    TEST_CHECK(!only && d->caps.storage16 && full ? coopmat_runs >= (khr ? 10 : 7) : true,
               "the cooperative-matrix kernel ran %d cases", coopmat_runs);
    test_device_close(d);
    /* the dispatches split over batch items and query rows (32 KiB bindings) */
    d = test_device_open(32 * 1024);
    int before = coopmat_runs;
    for (size_t k = 0; k < sizeof split_cases / sizeof split_cases[0]; k++)
        if (selected(&split_cases[k]))
            run_case(d, VKD_F16, &split_cases[k], &rng, VKD_ATTENTION_COOPMAT);
    TEST_CHECK(!only && d->caps.storage16 && full ? coopmat_runs - before == 2 : true,
               "the cooperative-matrix kernel ran %d of the 2 split cases", coopmat_runs - before);
    test_device_close(d);
    return test_finish();
}

/* `--fp16-arith`: the flash kernel's fp16-arithmetic variant (attention_h), forced by the
 * knob, on every case in fp16 (a ctest of its own, test_op_attention_h: lavapipe compiles
 * each head-dim class of it for 30-100 s at its first dispatch on a cold shader cache). */
static int run_fp16_arith(void)
{
    test_rng rng = {test_seed()};
    for (int pass = 0; pass < 2; pass++) { /* the cases, then the split ones on 32 KiB bindings */
        vkd_device *d = test_device_open(pass ? 32 * 1024 : 0);
        if (!(d->profile.features & VKD_KF_FP16_ARITH)) {
            printf("note: no fp16 arithmetic with fp16 storage here: attention_h is not run\n");
            test_device_close(d);
            break;
        }
        TEST_CHECK(vkd_kernel_usable(&d->profile, VKD_KERNEL_ATTENTION_H, VKD_VARIANT_F16),
                   "attention_h is usable where fp16 arithmetic is offered");
        d->knobs.fp16_arith = 1;
        const acase *cs = pass ? split_cases : cases;
        size_t n = pass ? sizeof split_cases / sizeof split_cases[0] : sizeof cases / sizeof cases[0];
        for (size_t k = 0; k < n; k++)
            if (selected(&cs[k]))
                run_case(d, VKD_F16, &cs[k], &rng, VKD_ATTENTION_FLASH);
        test_device_close(d);
    }
    return test_finish();
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--coopmat")) {
        only = argc > 2 ? argv[2] : NULL;
        return run_coopmat();
    }
    if (argc > 1 && !strcmp(argv[1], "--fp16-arith")) {
        only = argc > 2 ? argv[2] : NULL;
        return run_fp16_arith();
    }
    only = argc > 1 ? argv[1] : NULL;
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open(0);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    /* Each case on both kernels: the flash kernel (what GPUs run) and the subgroup
     * kernel wherever it applies (CPU devices with 8-lane subgroups: lavapipe). */
    bool cpu_sg = d->profile.cpu && d->profile.subgroup8;
    int sd_selected = 0;
    for (int i = 0; i < ndt; i++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
            if (selected(&cases[k])) {
                run_case(d, dts[i], &cases[k], &rng, VKD_ATTENTION_FLASH);
                run_case(d, dts[i], &cases[k], &rng, VKD_ATTENTION_SUBGROUP);
                sd_selected += strncmp(cases[k].name, "sd1_", 4) == 0 || strcmp(cases[k].name, "long_keys") == 0;
            }
    /* where it can run, it must have run every SD1 UNet shape (D = 40, 80, 160) */
    if (cpu_sg)
        TEST_CHECK(subgroup_sd_runs == sd_selected, "the subgroup kernel ran %d of the %d SD1 cases", subgroup_sd_runs,
                   sd_selected);
    printf("subgroup kernel: %d case runs (%s)\n", subgroup_runs,
           cpu_sg ? "CPU device with 8-lane subgroups" : "does not apply on this device");
    test_attention_rejects_bad_shapes(d);
    test_device_close(d);

    d = test_device_open(32 * 1024);
    ndt = test_dtypes(d, dts);
    for (int i = 0; i < ndt; i++)
        for (size_t k = 0; k < sizeof split_cases / sizeof split_cases[0]; k++)
            if (selected(&split_cases[k])) {
                run_case(d, dts[i], &split_cases[k], &rng, VKD_ATTENTION_FLASH);
                run_case(d, dts[i], &split_cases[k], &rng, VKD_ATTENTION_SUBGROUP);
            }
    test_attention_refuses_kv_over_one_window(d);
    test_device_close(d);
    return test_finish();
}
