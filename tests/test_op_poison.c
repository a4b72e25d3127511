/* Issue 18 item 8 (b): each op gives the same bytes however its memory was left.
 *
 * Attention (the flash kernel, the subgroup kernel where it applies, the emulated
 * cooperative-matrix kernel in fp16; head dims 4 and 8, which the UNet of a tiny model
 * has, 40 and 64, causal, packed q/k/v), conv2d (3x3 stride 1 and 2, the VAE's
 * asymmetric padding, the upsampling conv, 1x1; every GEMM kernel this device runs, and
 * split-K, whose partial sums live in scratch), group norm (plain, SiLU, the
 * concatenated and the added-embedding forms, several statistics blocks; its partial
 * statistics live in scratch) and the linear layer (bias, residual, two-part input,
 * folded LayerNorm, split-K), both storage precisions, each run three times on a device
 * with vkd_device_opts.poison: inputs, outputs, scratch, buffer tails and the free
 * memory filled with NaN, zero, then 1.0h bits first (tests/harness.h
 * test_same_over_poison). An output element an op does not write, scratch it reads
 * before writing, or a value read past a tensor's end that reaches a result shows as
 * differing bytes. The op tests (tests/test_op_*.c) check the values themselves. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/attention.h"
#include "ops/conv2d.h"
#include "ops/groupnorm.h"
#include "ops/matmul.h"

/* ---- helpers ---------------------------------------------------------------------- */

/* a new tensor holding host data (the device poisons the allocation first) */
static vkd_result upload(vkd_device *d, vkd_dtype dt, int ndim, const int64_t *shape, const float *x, vkd_tensor *t)
{
    vkd_result r = vkd_tensor_create(d, dt, ndim, shape, t);
    if (!r && x)
        r = vkd_tensor_upload_f32(d, t, x);
    return r;
}

/* The pass on the fp16-arithmetic kernels (docs/fp16.md: knobs.fp16_arith forced on, fp16
 * only): the flash attention and the tiled and direct GEMMs, the others skipped (the knob
 * does not change them); the direct one on a 64x4 tile, which LLVM compiles in a fraction
 * of the 256x8 one's time. */
static bool h_pass;

/* The GEMM kernel the conv and linear cases run on: t, or the device's own choice
 * (NULL). The one place this test chooses a kernel. */
static void use_gemm_tile(vkd_device *d, const vkd_gemm_tile *t)
{
    d->knobs.gemm_tile = t ? *t : (vkd_gemm_tile){0};
    if (h_pass && t && t->direct == 1)
        d->knobs.gemm_tile = (vkd_gemm_tile){64, 4, 1, 4, 4, 1};
}

/* h_pass: whether tile slot t (0: the device's own) runs one of the *_h kernels */
static bool skip_in_h_pass(const vkd_gemm_tile *tiles, int t)
{
    return h_pass && (t == 0 || tiles[t].direct > 1);
}

static const char *tile_name(const vkd_gemm_tile *t)
{
    static const char *const family[5] = {"tiled", "direct", "subgroup", "coopmat", "coopmat-emu"};
    static char buf[4][48];
    static int next;
    char *b = buf[next++ & 3];
    if (!t)
        return "device's";
    if (h_pass) /* the tile use_gemm_tile sets */
        snprintf(b, sizeof buf[0], "%s fp16-arith", t->direct == 1 ? "direct 64x4/4" : "tiled 64x64/4");
    else
        snprintf(b, sizeof buf[0], "%s %ux%u/%u", family[t->direct], t->bm, t->bn, t->tn);
    return b;
}

/* A split-K case (run once already, *dispatches its count): one dispatch, the last
 * workgroup of each tile adding the partial sums; with vkd_knobs.splitk_reduce the same
 * over poison again in two, the reduce a dispatch of its own. */
static void check_split_k(vkd_device *d, const char *what, test_poison_run run, void *ctx, const unsigned *dispatches)
{
    TEST_CHECK(*dispatches == 1, "%s: split-K should take 1 dispatch, took %u", what, *dispatches);
    char again[192];
    snprintf(again, sizeof again, "%s, reduce dispatch", what);
    d->knobs.splitk_reduce = true;
    test_same_over_poison(d, again, run, ctx);
    d->knobs.splitk_reduce = false;
    TEST_CHECK(*dispatches == 2, "%s: split-K should take 2 dispatches, took %u", again, *dispatches);
}

/* ---- attention -------------------------------------------------------------------- */

typedef struct att_job {
    vkd_dtype dt;
    int64_t n, lq, lk, heads, dim;
    bool causal, packed; /* packed: q, k, v are column ranges of one [N, L, 3HD] */
    vkd_attention_kernel kernel;
    float *hq, *hk, *hv;
    vkd_tensor q, k, v, *out;
} att_job;

static vkd_result att_record(vkd_cmd *c, void *ctx)
{
    att_job *j = ctx;
    int64_t hd = j->heads * j->dim;
    vkd_attention_params p;
    vkd_attention_params_init(&p);
    p.heads = j->heads;
    p.causal = j->causal;
    p.kernel = j->kernel;
    if (j->packed) {
        p.k_col = hd, p.v_col = 2 * hd;
        return vkd_op_attention(c, &j->q, &j->q, &j->q, j->out, &p);
    }
    return vkd_op_attention(c, &j->q, &j->k, &j->v, j->out, &p);
}

static vkd_result att_run(vkd_device *d, void *ctx, vkd_tensor *out)
{
    att_job *j = ctx;
    int64_t hd = j->heads * j->dim;
    int64_t sq[3] = {j->n, j->lq, j->packed ? 3 * hd : hd}, skv[3] = {j->n, j->lk, hd}, so[3] = {j->n, j->lq, hd};
    memset(&j->k, 0, sizeof j->k), memset(&j->v, 0, sizeof j->v);
    vkd_result r = upload(d, j->dt, 3, sq, j->hq, &j->q);
    if (!r && !j->packed) r = upload(d, j->dt, 3, skv, j->hk, &j->k);
    if (!r && !j->packed) r = upload(d, j->dt, 3, skv, j->hv, &j->v);
    if (!r) r = vkd_tensor_create(d, j->dt, 3, so, out);
    j->out = out;
    if (!r) r = test_submit(d, att_record, j, NULL, NULL);
    vkd_tensor_destroy(d, &j->q);
    vkd_tensor_destroy(d, &j->k);
    vkd_tensor_destroy(d, &j->v);
    return r;
}

static void attention_cases(vkd_device *d, const vkd_dtype *dts, int ndt, test_rng *rng)
{
    static const struct {
        int64_t n, lq, lk, heads, dim;
        bool causal, packed;
    } cases[] = {
        {2, 37, 29, 3, 4, false, false},   /* head dim 4: the tiny models' UNets */
        {1, 50, 77, 2, 8, false, false},   /* head dim 8, cross-attention over a prompt */
        {1, 45, 45, 4, 8, true, true},     /* causal self-attention, packed q/k/v (CLIP) */
        {1, 64, 77, 8, 40, false, false},  /* SD1 cross-attention */
        {2, 33, 33, 2, 64, true, true},
    };
    static const vkd_attention_kernel kernels[3] = {VKD_ATTENTION_FLASH, VKD_ATTENTION_SUBGROUP,
                                                    VKD_ATTENTION_COOPMAT};
    static const char *const kname[3] = {"flash", "subgroup", "coopmat"};
    for (int i = 0; i < ndt; i++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
            for (int k = 0; k < 3; k++) {
                if (h_pass && kernels[k] != VKD_ATTENTION_FLASH)
                    continue;
                att_job j;
                memset(&j, 0, sizeof j);
                j.dt = dts[i], j.n = cases[c].n, j.lq = cases[c].lq, j.lk = cases[c].lk;
                j.heads = cases[c].heads, j.dim = cases[c].dim, j.causal = cases[c].causal;
                j.packed = cases[c].packed, j.kernel = kernels[k];
                if (kernels[k] == VKD_ATTENTION_COOPMAT && dts[i] != VKD_F16)
                    continue; /* fp16 only */
                int64_t hd = j.heads * j.dim;
                j.hq = test_randn(rng, VKD_F32, (size_t)(j.n * j.lq * (j.packed ? 3 * hd : hd)), 1.0);
                j.hk = test_randn(rng, VKD_F32, (size_t)(j.n * j.lk * hd), 1.0);
                j.hv = test_randn(rng, VKD_F32, (size_t)(j.n * j.lk * hd), 1.0);
                char what[128];
                snprintf(what, sizeof what, "attention_%s %s N%lld Lq%lld Lk%lld H%lld D%lld%s%s",
                         vkd_dtype_suffix(j.dt), kname[k], (long long)j.n, (long long)j.lq, (long long)j.lk,
                         (long long)j.heads, (long long)j.dim, j.causal ? " causal" : "", j.packed ? " packed" : "");
                /* a forced kernel that does not apply to this shape or device: skipped */
                vkd_tensor probe;
                memset(&probe, 0, sizeof probe);
                vkd_result r = k ? att_run(d, &j, &probe) : VKD_OK;
                vkd_tensor_destroy(d, &probe);
                if (r == VKD_ERR_UNSUPPORTED)
                    printf("  (%s: the %s kernel does not apply)\n", what, kname[k]);
                else
                    test_same_over_poison(d, what, att_run, &j);
                free(j.hq), free(j.hk), free(j.hv);
            }
}

/* ---- conv2d ----------------------------------------------------------------------- */

typedef struct conv_job {
    vkd_dtype dt;
    int64_t n, h, w, cin, cout;
    int k;
    vkd_conv2d_params p;
    bool bias, res;
    float *hx, *hw, *hb, *hr;
    vkd_tensor x, wt, b, r, s, *out;
    unsigned dispatches;
} conv_job;

static vkd_result conv_record(vkd_cmd *c, void *ctx)
{
    conv_job *j = ctx;
    vkd_conv2d_params p = j->p;
    p.scratch = j->s.buf.block ? &j->s : NULL;
    vkd_result r = vkd_op_conv2d(c, &j->x, j->h, j->w, &j->wt, j->bias ? &j->b : NULL, j->res ? &j->r : NULL, &p,
                                 j->out);
    j->dispatches = vkd_cmd_dispatch_count(c);
    return r;
}

static vkd_result conv_run(vkd_device *d, void *ctx, vkd_tensor *out)
{
    conv_job *j = ctx;
    int64_t oh = vkd_conv2d_out_dim(j->h, j->k, j->p.stride, j->p.pad_top, j->p.pad_bottom);
    int64_t ow = vkd_conv2d_out_dim(j->w, j->k, j->p.stride, j->p.pad_left, j->p.pad_right);
    int up = j->p.upsample ? 1 : 0;
    int64_t sh = up && j->p.up_h ? j->p.up_h : j->h >> up, sw = up && j->p.up_w ? j->p.up_w : j->w >> up;
    int64_t xs[3] = {j->n, sh * sw, j->cin}, os[3] = {j->n, oh * ow, j->cout}, bs[1] = {j->cout};
    int64_t sn = vkd_gemm_split_scratch_numel(d, j->dt, 0, j->n * oh * ow, j->cout, j->k * j->k * j->cin, j->cin);
    memset(&j->s, 0, sizeof j->s);
    memset(&j->wt, 0, sizeof j->wt);
    vkd_result r = upload(d, j->dt, 3, xs, j->hx, &j->x);
    if (!r) r = vkd_conv2d_weight_upload(d, j->dt, j->hw, j->cout, j->cin, j->k, j->k, &j->wt);
    if (!r) r = upload(d, j->dt, 1, bs, j->hb, &j->b);
    if (!r) r = upload(d, j->dt, 3, os, j->hr, &j->r);
    if (!r && sn) r = vkd_tensor_create(d, VKD_F32, 1, &sn, &j->s);
    if (!r) r = vkd_tensor_create(d, j->dt, 3, os, out);
    j->out = out;
    if (!r) r = test_submit(d, conv_record, j, NULL, NULL);
    vkd_tensor_destroy(d, &j->x), vkd_tensor_destroy(d, &j->wt), vkd_tensor_destroy(d, &j->b);
    vkd_tensor_destroy(d, &j->r), vkd_tensor_destroy(d, &j->s);
    return r;
}

static void conv_cases(vkd_device *d, const vkd_dtype *dts, int ndt, test_rng *rng)
{
    const vkd_conv2d_params s1 = vkd_conv2d_params_sym(1, 1), s2 = vkd_conv2d_params_sym(2, 1);
    const vkd_conv2d_params asym = {2, 0, 1, 0, 1, 0, NULL, 0, 0}, up = {1, 1, 1, 1, 1, 1, NULL, 0, 0};
    const vkd_conv2d_params up_odd = {1, 1, 1, 1, 1, 1, NULL, 5, 3}; /* 5x3 -> 9x5: a skip of odd size */
    const struct {
        int64_t n, h, w, cin, cout;
        int k;
        vkd_conv2d_params p;
        bool bias, res, longk; /* longk: split-K on the cooperative-matrix kernels */
    } cases[] = {
        {2, 7, 9, 5, 3, 3, s1, true, true, false},  /* odd everything */
        {1, 9, 7, 8, 12, 3, s2, true, false, false},
        {1, 8, 8, 8, 8, 3, asym, true, false, false}, /* VAE encoder downsample */
        {2, 6, 10, 5, 7, 3, up, true, true, false},   /* upsampled (UNet Upsample) */
        {1, 9, 5, 8, 6, 3, up_odd, true, false, false},
        {1, 5, 6, 16, 20, 1, vkd_conv2d_params_sym(1, 0), true, false, false}, /* 1x1: the linear kernel */
        {1, 6, 6, 320, 40, 3, s1, true, true, true},  /* K = 2880: split into chunks */
    };
    vkd_gemm_tile tiles[7];
    int nt = test_gemm_tiles(d, tiles + 1);
    tiles[0] = (vkd_gemm_tile){0}; /* slot 0: no override (the device's own choice) */
    for (int t = 0; t <= nt; t++) {
        if (skip_in_h_pass(tiles, t))
            continue;
        use_gemm_tile(d, t ? &tiles[t] : NULL);
        for (int i = t ? test_gemm_first_dtype(&tiles[t], ndt) : 0; i < ndt; i++)
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                if (cases[c].longk && (t == 0 || tiles[t].direct < 3))
                    continue; /* split-K: the cooperative-matrix kernels only */
                conv_job j;
                memset(&j, 0, sizeof j);
                j.dt = dts[i], j.n = cases[c].n, j.h = cases[c].h, j.w = cases[c].w, j.cin = cases[c].cin;
                j.cout = cases[c].cout, j.k = cases[c].k, j.p = cases[c].p, j.bias = cases[c].bias;
                j.res = cases[c].res;
                int64_t oh = vkd_conv2d_out_dim(j.h, j.k, j.p.stride, j.p.pad_top, j.p.pad_bottom);
                int64_t ow = vkd_conv2d_out_dim(j.w, j.k, j.p.stride, j.p.pad_left, j.p.pad_right);
                int up1 = j.p.upsample ? 1 : 0;
                int64_t sh = up1 && j.p.up_h ? j.p.up_h : j.h >> up1, sw = up1 && j.p.up_w ? j.p.up_w : j.w >> up1;
                j.hx = test_randn(rng, VKD_F32, (size_t)(j.n * sh * sw * j.cin), 1.0);
                j.hw = test_randn(rng, VKD_F32, (size_t)(j.cout * j.cin * j.k * j.k), 1.0 / sqrt((double)(j.cin * j.k * j.k)));
                j.hb = test_randn(rng, VKD_F32, (size_t)j.cout, 0.5);
                j.hr = test_randn(rng, VKD_F32, (size_t)(j.n * oh * ow * j.cout), 1.0);
                char what[160];
                snprintf(what, sizeof what, "conv2d_%s %s %lldx[%lldx%lld,%lld]->%lld k%d s%d%s%s%s",
                         vkd_dtype_suffix(j.dt), tile_name(t ? &tiles[t] : NULL), (long long)j.n, (long long)j.h,
                         (long long)j.w, (long long)j.cin, (long long)j.cout, j.k, j.p.stride,
                         j.p.pad_top != j.p.pad_bottom ? " asym" : "", j.p.upsample ? " up" : "",
                         cases[c].longk ? " split-K" : "");
                test_same_over_poison(d, what, conv_run, &j);
                if (cases[c].longk) /* the last workgroup of each tile reduces; the knob: a dispatch */
                    check_split_k(d, what, conv_run, &j, &j.dispatches);
                free(j.hx), free(j.hw), free(j.hb), free(j.hr);
            }
    }
    use_gemm_tile(d, NULL);
}

/* ---- group norm ------------------------------------------------------------------- */

typedef enum { GN_PLAIN, GN_CAT, GN_ADD } gn_form;

typedef struct gn_job {
    vkd_dtype dt;
    gn_form form;
    int64_t n, hw, c, c2; /* c2: x2's channels (GN_CAT) */
    uint32_t groups;
    bool silu;
    float *hx, *hx2, *he, *hg, *hb;
    vkd_tensor x, x2, e, g, b, s, *out;
} gn_job;

static vkd_result gn_record(vkd_cmd *c, void *ctx)
{
    gn_job *j = ctx;
    const float eps = 1e-5f;
    switch (j->form) {
    case GN_CAT:
        return vkd_op_groupnorm_cat(c, &j->x, &j->x2, j->groups, eps, &j->g, &j->b, j->silu, &j->s, j->out);
    case GN_ADD:
        return vkd_op_groupnorm_add(c, &j->x, &j->e, 3, j->groups, eps, &j->g, &j->b, j->silu, &j->s, j->out);
    default:
        return vkd_op_groupnorm(c, &j->x, j->groups, eps, &j->g, &j->b, j->silu, &j->s, j->out);
    }
}

static vkd_result gn_run(vkd_device *d, void *ctx, vkd_tensor *out)
{
    gn_job *j = ctx;
    int64_t ct = j->c + j->c2;
    int64_t xs[3] = {j->n, j->hw, j->c}, x2s[3] = {j->n, j->hw, j->c2}, os[3] = {j->n, j->hw, ct};
    int64_t es[2] = {j->n, j->c + 8}, cs[1] = {ct}, sn = 0;
    memset(&j->x2, 0, sizeof j->x2), memset(&j->e, 0, sizeof j->e), memset(&j->s, 0, sizeof j->s);
    vkd_result r = upload(d, j->dt, 3, xs, j->hx, &j->x);
    if (!r && j->form == GN_CAT) r = upload(d, j->dt, 3, x2s, j->hx2, &j->x2);
    if (!r && j->form == GN_ADD) r = upload(d, j->dt, 2, es, j->he, &j->e);
    if (!r) r = upload(d, j->dt, 1, cs, j->hg, &j->g);
    if (!r) r = upload(d, j->dt, 1, cs, j->hb, &j->b);
    vkd_cmd *c = NULL;
    if (!r) r = vkd_cmd_create(d, &c);
    if (!r)
        r = j->form == GN_CAT ? vkd_op_groupnorm_cat_scratch_numel(c, &j->x, &j->x2, j->groups, &sn)
                              : vkd_op_groupnorm_scratch_numel(c, &j->x, j->groups, &sn);
    vkd_cmd_destroy(c);
    if (!r) r = vkd_tensor_create(d, VKD_F32, 1, &sn, &j->s);
    if (!r) r = vkd_tensor_create(d, j->dt, 3, os, out);
    j->out = out;
    if (!r) r = test_submit(d, gn_record, j, NULL, NULL);
    vkd_tensor_destroy(d, &j->x), vkd_tensor_destroy(d, &j->x2), vkd_tensor_destroy(d, &j->e);
    vkd_tensor_destroy(d, &j->g), vkd_tensor_destroy(d, &j->b), vkd_tensor_destroy(d, &j->s);
    return r;
}

static void groupnorm_cases(vkd_device *d, const vkd_dtype *dts, int ndt, test_rng *rng)
{
    static const struct {
        gn_form form;
        int64_t n, hw, c, c2;
        uint32_t groups;
        bool silu;
    } cases[] = {
        {GN_PLAIN, 2, 64, 64, 0, 32, true},    /* 2 channels a group, SiLU */
        {GN_PLAIN, 1, 4096, 64, 0, 2, false},  /* 4 statistics blocks a group, then COMBINE */
        {GN_PLAIN, 1, 49, 30, 0, 3, true},     /* odd: 10 channels a group */
        {GN_CAT, 2, 64, 48, 16, 32, true},     /* a group straddles x and x2 */
        {GN_ADD, 2, 81, 64, 0, 32, true},      /* + a time-embedding column slice */
    };
    static const char *const form[3] = {"", " cat", " add"};
    for (int i = 0; i < ndt; i++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            gn_job j;
            memset(&j, 0, sizeof j);
            j.dt = dts[i], j.form = cases[c].form, j.n = cases[c].n, j.hw = cases[c].hw, j.c = cases[c].c;
            j.c2 = cases[c].c2, j.groups = cases[c].groups, j.silu = cases[c].silu;
            int64_t ct = j.c + j.c2;
            j.hx = test_randn(rng, VKD_F32, (size_t)(j.n * j.hw * j.c), 1.5);
            j.hx2 = test_randn(rng, VKD_F32, (size_t)(j.n * j.hw * j.c2), 1.5);
            j.he = test_randn(rng, VKD_F32, (size_t)(j.n * (j.c + 8)), 2.0);
            j.hg = test_randn(rng, VKD_F32, (size_t)ct, 1.0);
            j.hb = test_randn(rng, VKD_F32, (size_t)ct, 0.5);
            char what[128];
            snprintf(what, sizeof what, "groupnorm_%s%s [%lld,%lld,%lld] G%u%s", vkd_dtype_suffix(j.dt),
                     form[j.form], (long long)j.n, (long long)j.hw, (long long)ct, j.groups, j.silu ? " silu" : "");
            test_same_over_poison(d, what, gn_run, &j);
            free(j.hx), free(j.hx2), free(j.he), free(j.hg), free(j.hb);
        }
}

/* ---- linear ----------------------------------------------------------------------- */

typedef struct lin_job {
    vkd_dtype dt;
    int64_t m, k, n, k1; /* k1 < k: a in two parts, k1 and k - k1 columns */
    bool bias, res, ln;
    float *ha, *hw, *hb, *hr, *hsc;
    vkd_tensor a, a2, w, b, r, sc, s, *out;
    unsigned dispatches;
} lin_job;

static vkd_result lin_record(vkd_cmd *c, void *ctx)
{
    lin_job *j = ctx;
    vkd_linear_opts o = {.bias = j->bias && !j->ln ? &j->b : NULL, .residual = j->res ? &j->r : NULL,
                         .ln = j->ln ? &j->sc : NULL, .ln_eps = 1e-5f,
                         .a2 = j->k1 < j->k ? &j->a2 : NULL, .scratch = j->s.buf.block ? &j->s : NULL};
    vkd_result r = vkd_op_linear_ex(c, &j->a, &j->w, &o, j->out);
    j->dispatches = vkd_cmd_dispatch_count(c);
    return r;
}

static vkd_result lin_run(vkd_device *d, void *ctx, vkd_tensor *out)
{
    lin_job *j = ctx;
    int64_t k2 = j->k - j->k1;
    int64_t as[2] = {j->m, j->k1}, a2s[2] = {j->m, k2 ? k2 : 1}, os[2] = {j->m, j->n}, bs[1] = {j->n};
    int64_t ls[2] = {2, j->n};
    float *a1 = malloc((size_t)(j->m * j->k1) * 4), *a2 = malloc((size_t)(j->m * (k2 ? k2 : 1)) * 4);
    for (int64_t i = 0; i < j->m; i++) {
        memcpy(a1 + i * j->k1, j->ha + i * j->k, (size_t)j->k1 * 4);
        memcpy(a2 + i * k2, j->ha + i * j->k + j->k1, (size_t)k2 * 4);
    }
    int64_t kstep = j->k;
    if (k2) { /* gcd(k1, k2): the load width both parts allow */
        int64_t x = j->k1, y = k2;
        while (y) {
            int64_t t = x % y;
            x = y, y = t;
        }
        kstep = x;
    }
    int64_t sn = j->ln ? 0 : vkd_gemm_split_scratch_numel(d, j->dt, 0, j->m, j->n, j->k, kstep);
    memset(&j->a2, 0, sizeof j->a2), memset(&j->sc, 0, sizeof j->sc), memset(&j->s, 0, sizeof j->s);
    memset(&j->w, 0, sizeof j->w);
    vkd_result r = upload(d, j->dt, 2, as, a1, &j->a);
    if (!r && k2) r = upload(d, j->dt, 2, a2s, a2, &j->a2);
    if (!r) r = vkd_linear_weight_upload(d, j->dt, j->hw, j->n, j->k, &j->w);
    if (!r) r = upload(d, j->dt, 1, bs, j->hb, &j->b);
    if (!r) r = upload(d, j->dt, 2, os, j->hr, &j->r);
    if (!r && j->ln) r = upload(d, VKD_F32, 2, ls, j->hsc, &j->sc);
    if (!r && sn) r = vkd_tensor_create(d, VKD_F32, 1, &sn, &j->s);
    if (!r) r = vkd_tensor_create(d, j->dt, 2, os, out);
    j->out = out;
    if (!r) r = test_submit(d, lin_record, j, NULL, NULL);
    free(a1), free(a2);
    vkd_tensor_destroy(d, &j->a), vkd_tensor_destroy(d, &j->a2), vkd_tensor_destroy(d, &j->w);
    vkd_tensor_destroy(d, &j->b), vkd_tensor_destroy(d, &j->r), vkd_tensor_destroy(d, &j->sc);
    vkd_tensor_destroy(d, &j->s);
    return r;
}

static void linear_cases(vkd_device *d, const vkd_dtype *dts, int ndt, test_rng *rng)
{
    static const struct {
        int64_t m, k, n, k1;
        bool bias, res, ln, longk;
    } cases[] = {
        {95, 7, 33, 7, true, true, false, false},         /* nothing a multiple of a tile */
        {154, 320, 20, 320, true, false, false, false},
        {130, 37, 20, 16, true, false, false, false},     /* two parts: 16 + 21 */
        {130, 132, 72, 132, true, true, true, false},     /* folded LayerNorm */
        {70, 2400, 40, 2400, true, true, false, true},    /* split-K */
    };
    vkd_gemm_tile tiles[7];
    int nt = test_gemm_tiles(d, tiles + 1);
    tiles[0] = (vkd_gemm_tile){0};
    for (int t = 0; t <= nt; t++) {
        if (skip_in_h_pass(tiles, t))
            continue;
        use_gemm_tile(d, t ? &tiles[t] : NULL);
        for (int i = t ? test_gemm_first_dtype(&tiles[t], ndt) : 0; i < ndt; i++)
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                if (cases[c].longk && (t == 0 || tiles[t].direct < 3))
                    continue;
                if (cases[c].ln && t && tiles[t].direct == 2)
                    continue; /* the subgroup kernel's LN variant: minutes of LLVM (test_op_matmul) */
                lin_job j;
                memset(&j, 0, sizeof j);
                j.dt = dts[i], j.m = cases[c].m, j.k = cases[c].k, j.n = cases[c].n, j.k1 = cases[c].k1;
                j.bias = cases[c].bias, j.res = cases[c].res, j.ln = cases[c].ln;
                j.ha = test_randn(rng, VKD_F32, (size_t)(j.m * j.k), 1.0);
                j.hw = test_randn(rng, VKD_F32, (size_t)(j.n * j.k), 1.0 / sqrt((double)j.k));
                j.hb = test_randn(rng, VKD_F32, (size_t)j.n, 0.5);
                j.hr = test_randn(rng, VKD_F32, (size_t)(j.m * j.n), 1.0);
                float *wf = NULL;
                if (j.ln) {
                    float *gm = test_randn(rng, VKD_F32, (size_t)j.k, 1.0), *bt = test_randn(rng, VKD_F32, (size_t)j.k, 0.5);
                    wf = malloc((size_t)(j.n * j.k) * 4);
                    j.hsc = malloc((size_t)j.n * 8);
                    vkd_ln_fold(j.hw, j.hb, gm, bt, j.n, j.k, j.dt, wf, j.hsc);
                    free(gm), free(bt), free(j.hw);
                    j.hw = wf;
                }
                char what[128];
                snprintf(what, sizeof what, "linear_%s %s [%lld,%lld]x[%lld,%lld]%s%s%s%s", vkd_dtype_suffix(j.dt),
                         tile_name(t ? &tiles[t] : NULL), (long long)j.m, (long long)j.k, (long long)j.n,
                         (long long)j.k, j.k1 < j.k ? " 2 parts" : "", j.ln ? " ln" : "", j.res ? " +res" : "",
                         cases[c].longk ? " split-K" : "");
                test_same_over_poison(d, what, lin_run, &j);
                if (cases[c].longk)
                    check_split_k(d, what, lin_run, &j, &j.dispatches);
                free(j.ha), free(j.hw), free(j.hb), free(j.hr), free(j.hsc);
            }
    }
    use_gemm_tile(d, NULL);
}

/* argv[1], when given, runs only that op: attention, conv2d, groupnorm, linear */
int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    test_rng rng = {test_seed()};
    vkd_device *d = test_device_open_poisoned(0);
    vkd_dtype dts[2];
    int ndt = test_dtypes(d, dts);
    if (!only || !strcmp(only, "attention"))
        attention_cases(d, dts, ndt, &rng);
    if (!only || !strcmp(only, "conv2d"))
        conv_cases(d, dts, ndt, &rng);
    if (!only || !strcmp(only, "groupnorm"))
        groupnorm_cases(d, dts, ndt, &rng);
    if (!only || !strcmp(only, "linear"))
        linear_cases(d, dts, ndt, &rng);
    if ((d->profile.features & VKD_KF_FP16_ARITH) && ndt == 2) {
        printf("fp16 arithmetic (the *_h kernels, forced):\n");
        h_pass = true;
        d->knobs.fp16_arith = 1;
        if (!only || !strcmp(only, "attention"))
            attention_cases(d, &dts[1], 1, &rng);
        if (!only || !strcmp(only, "conv2d"))
            conv_cases(d, &dts[1], 1, &rng);
        if (!only || !strcmp(only, "linear"))
            linear_cases(d, &dts[1], 1, &rng);
        d->knobs.fp16_arith = 0;
        h_pass = false;
    } else {
        printf("note: no fp16 arithmetic with fp16 storage here: the *_h kernels are not run\n");
    }
    test_device_close(d);
    return test_finish();
}
