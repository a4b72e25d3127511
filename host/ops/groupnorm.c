/* Group norm (shaders/groupnorm.comp): STATS per row block, COMBINE per group, APPLY
 * per element. Rows are chunked so every x/out window fits one binding. */
#include "ops/groupnorm.h"

#include <math.h>
#include <string.h>

#include "common/log.h"
#include "push_groupnorm.h"
#include "vk/cmd.h"

#define LOCAL 256
/* Group elements one STATS workgroup reduces: a few per invocation, and enough
 * blocks for a 64x64 SD latent to fill a GPU (4096 rows x 10 ch/group -> 21 blocks). */
#define BLOCK_ELEMS 2048
/* CPU devices: larger blocks. Each STATS workgroup pays ~20 barriers, and on llvmpipe a
 * barrier switches between all of its coroutines: with 2048-element blocks the VAE's
 * [1, 256x256, 256] norm was 8192 workgroups and its STATS mostly barriers. */
#define BLOCK_ELEMS_CPU 32768
/* ...unless the whole group is at most this many elements: then it is one block and
 * STATS writes the finals (no COMBINE dispatch). Every norm of the SD1.5 UNet at
 * 512x512 (up to 4096 x 10 = 40960 per group, 160 per invocation) qualifies: 61
 * dispatches fewer per evaluation, at 32 groups x batch workgroups per norm. */
#define VKD_GN_ONE_BLOCK 65536

/* the bindings read through texel buffers: shaders/kernels.txt, groupnorm_tx and groupnorm_apply_tx */

typedef struct gn_plan {
    int64_t n, hw, c;
    uint32_t cpg;
    int64_t block_rows;     /* rows per STATS block */
    int64_t nblk;           /* blocks per sample */
    int64_t chunk_rows;     /* rows per dispatch when one sample is split */
    int whole;              /* the whole tensor fits one window: one dispatch per pass */
    int64_t scratch;        /* fp32 elements of scratch */
    int64_t add_col;        /* first column of the added rows (vkd_op_groupnorm_add) */
    const vkd_tensor *x2;   /* vkd_op_groupnorm_cat: channels c1 .. c-1 come from x2 */
    int64_t c1;
    const vkd_pipeline *apply4;   /* APPLY over 4 channels per invocation, where a dispatch allows */
    const vkd_pipeline *apply_tx; /* the same through texel buffers (CPU devices), or NULL */
    const vkd_pipeline *stats_tx; /* STATS through texel buffers (CPU devices), or NULL */
} gn_plan;

/* Which kernels a dispatch may take: 0 APPLY one element per invocation, plain loads;
 * 1 APPLY four channels per invocation; 2 (the default) also texel-buffer reads in STATS
 * and APPLY, where the plan has those pipelines (the device's developer knob). */
static int kernel_limit(vkd_cmd *c)
{
    switch (vkd_cmd_device(c)->knobs.groupnorm_kernels) {
    case VKD_GN_KERNELS_SCALAR: return 0;
    case VKD_GN_KERNELS_VEC4: return 1;
    default: return 2;
    }
}

/* Whether the dispatch's bindings in texel_mask fit texel views on this device. */
static bool texel_windows_fit(vkd_cmd *c, const vkd_binding *b, vkd_kernel k)
{
    uint32_t texel_mask = vkd_kernel_table[k].texel_mask;
    for (int i = 0; i < 7; i++)
        if ((texel_mask >> i & 1u) && b[i].range / VKD_TEXEL_BYTES >= vkd_cmd_device(c)->caps.max_texels)
            return false;
    return true;
}

/* x2: NULL, or the second part of the channels (vkd_op_groupnorm_cat) */
static vkd_result plan_make2(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *x2, uint32_t groups, gn_plan *p)
{
    if (x->ndim != 3)
        return vkd_op_shape_error("groupnorm", "want x [N, HW, C]", x);
    if (x2 && (x2->ndim != 3 || x2->shape[0] != x->shape[0] || x2->shape[1] != x->shape[1] || x2->dtype != x->dtype))
        return vkd_op_shape_error("groupnorm", "x2 must be [N, HW, C2] like x", x2);
    p->n = x->shape[0];
    p->hw = x->shape[1];
    p->c = x->shape[2] + (x2 ? x2->shape[2] : 0);
    p->x2 = x2;
    p->c1 = x2 ? x->shape[2] : 0;
    if (groups == 0 || p->c % groups)
        return vkd_op_shape_error("groupnorm", "channels must be a multiple of groups", x);
    p->cpg = (uint32_t)(p->c / groups);
    int64_t maxe = vkd_op_max_elems(c, x->dtype);
    int64_t rows_per_window = maxe / p->c;
    if (rows_per_window < 1) {
        VKD_ERROR("groupnorm: one row of %lld channels exceeds a binding window", (long long)p->c);
        return VKD_ERR_TOO_LARGE;
    }
    int64_t rb = (vkd_cmd_device(c)->profile.cpu ? BLOCK_ELEMS_CPU : BLOCK_ELEMS) / p->cpg;
    if (p->hw * p->cpg <= VKD_GN_ONE_BLOCK)
        rb = p->hw; /* one block per group (if it fits a window, checked below) */
    if (rb < 1)
        rb = 1;
    if (rb > rows_per_window)
        rb = rows_per_window;
    if (rb > p->hw)
        rb = p->hw;
    p->block_rows = rb;
    p->nblk = (p->hw + rb - 1) / rb;
    p->whole = p->n * p->hw * p->c <= maxe;
    p->chunk_rows = p->whole ? p->hw : rows_per_window / rb * rb;
    p->scratch = p->n * groups * (p->nblk * 4 + VKD_GN_FINAL_STRIDE);
    if (p->chunk_rows / rb > 65535 || p->n > 65535 || p->scratch > vkd_op_max_elems(c, VKD_F32)) {
        VKD_ERROR("groupnorm: %lld x %lld x %lld is too large", (long long)p->n, (long long)p->hw, (long long)p->c);
        return VKD_ERR_TOO_LARGE;
    }
    return VKD_OK;
}

static vkd_result plan_make(vkd_cmd *c, const vkd_tensor *x, uint32_t groups, gn_plan *p)
{
    return plan_make2(c, x, NULL, groups, p);
}

vkd_result vkd_op_groupnorm_cat_scratch_numel(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *x2, uint32_t groups,
                                              int64_t *numel)
{
    gn_plan p;
    memset(&p, 0, sizeof p);
    vkd_result r = plan_make2(c, x, x2, groups, &p);
    *numel = r ? 0 : p.scratch;
    return r;
}

vkd_result vkd_op_groupnorm_scratch_numel(vkd_cmd *c, const vkd_tensor *x, uint32_t groups, int64_t *numel)
{
    gn_plan p;
    memset(&p, 0, sizeof p);
    vkd_result r = plan_make(c, x, groups, &p);
    *numel = r ? 0 : p.scratch;
    return r;
}

/* One dispatch of `mode` over samples [n0, n0+ns) and rows [row0, row0+rows). */
static vkd_result pass(vkd_cmd *c, const vkd_pipeline *pl, const gn_plan *p, vkd_push_groupnorm pc, int64_t n0,
                       int64_t ns, int64_t row0, int64_t rows, const vkd_tensor *x, const vkd_tensor *add,
                       const vkd_tensor *gamma, const vkd_tensor *beta, const vkd_tensor *scratch, vkd_tensor *out)
{
    vkd_binding b[7];
    int64_t e0 = (n0 * p->hw + row0) * p->c, ne = ((ns - 1) * p->hw + rows) * p->c;
    int64_t cx = p->x2 ? p->c1 : p->c, c2 = p->c - p->c1; /* x's channels; x2's */
    uint32_t soff;
    vkd_result r;
    if ((r = vkd_op_bind(c, x, (n0 * p->hw + row0) * cx, ((ns - 1) * p->hw + rows) * cx, &b[0], &pc.x_off)) ||
        (r = vkd_op_bind(c, gamma, 0, p->c, &b[1], &pc.g_off)) ||
        (r = vkd_op_bind(c, beta, 0, p->c, &b[2], &pc.b_off)) ||
        (r = vkd_op_bind(c, scratch, 0, p->scratch, &b[3], &soff)) || (r = vkd_op_bind(c, out, e0, ne, &b[4], &pc.o_off)))
        return r;
    /* the added rows (C columns from add_col of [N, W]), or gamma as a placeholder
     * binding when there are none */
    int64_t ew = add ? add->shape[add->ndim - 1] : p->c;
    if ((r = add ? vkd_op_bind(c, add, p->add_col, (p->n - 1) * ew + p->c, &b[5], &pc.e_off)
                 : vkd_op_bind(c, gamma, 0, p->c, &b[5], &pc.e_off)))
        return r;
    pc.e_stride = (uint32_t)ew;
    b[6] = b[0]; /* x2, or x again as a placeholder */
    pc.c1 = (uint32_t)p->c1;
    pc.stride_1 = (uint32_t)(p->hw * p->c1);
    pc.stride_2 = (uint32_t)(p->hw * c2);
    if (p->x2 && (r = vkd_op_bind(c, p->x2, (n0 * p->hw + row0) * c2, ((ns - 1) * p->hw + rows) * c2, &b[6], &pc.x2_off)))
        return r;
    pc.add = add != NULL;
    pc.s_off = soff;
    pc.fin_off = soff + (uint32_t)(p->n * pc.groups * p->nblk * 4);
    pc.n0 = (uint32_t)n0;
    pc.rows = (uint32_t)rows;
    pc.blk0 = (uint32_t)(row0 / p->block_rows);
    pc.stride_n = (uint32_t)(p->hw * p->c);
    uint32_t gx, gy = 1, gz = 1;
    if (pc.mode == VKD_GN_STATS) {
        if (kernel_limit(c) >= 2 && p->stats_tx && texel_windows_fit(c, b, VKD_KERNEL_GROUPNORM_TX))
            pl = p->stats_tx;
        gx = vkd_div_up((uint64_t)rows, (uint64_t)p->block_rows);
        gy = pc.groups;
        gz = (uint32_t)ns;
    } else if (pc.mode == VKD_GN_COMBINE) {
        gx = pc.groups;
        gy = (uint32_t)p->n;
    } else {
        pc.n = (uint32_t)(ns * rows * p->c);
        /* 4 channels per invocation: C, the split and every window offset multiples of 4
         * (so are the strides), and 4 aligned channels in at most two groups (cpg >= 2) */
        uint32_t offs = pc.x_off | pc.o_off | pc.g_off | pc.b_off | pc.fin_off | (p->x2 ? pc.x2_off : 0) |
                        (add ? pc.e_off | pc.e_stride : 0);
        bool vec4 = kernel_limit(c) >= 1 && p->c % 4 == 0 && p->c1 % 4 == 0 && offs % 4 == 0 && p->cpg >= 2;
        bool tx = vec4 && kernel_limit(c) >= 2 && p->apply_tx && texel_windows_fit(c, b, VKD_KERNEL_GROUPNORM_APPLY_TX);
        if (vec4)
            pl = tx ? p->apply_tx : p->apply4;
        vkd_op_grid_1d(vec4 ? pc.n / 4 : pc.n, LOCAL, &gx, &gy);
    }
    static const char *const labels[] = {"groupnorm_stats", "groupnorm_combine", "groupnorm_apply"};
    return vkd_cmd_dispatch(c, pl, b, 7, &pc, sizeof pc, gx, gy, gz, labels[pc.mode]);
}

/* Run one pass over the whole tensor, chunked by the plan. */
static vkd_result pass_all(vkd_cmd *c, const vkd_pipeline *pl, const gn_plan *p, vkd_push_groupnorm pc,
                           const vkd_tensor *x, const vkd_tensor *add, const vkd_tensor *gamma,
                           const vkd_tensor *beta, const vkd_tensor *scratch, vkd_tensor *out)
{
    if (p->whole)
        return pass(c, pl, p, pc, 0, p->n, 0, p->hw, x, add, gamma, beta, scratch, out);
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t r0 = 0; r0 < p->hw; r0 += p->chunk_rows) {
            int64_t rows = p->hw - r0 < p->chunk_rows ? p->hw - r0 : p->chunk_rows;
            vkd_result r = pass(c, pl, p, pc, n, 1, r0, rows, x, add, gamma, beta, scratch, out);
            if (r)
                return r;
        }
    return VKD_OK;
}

vkd_result vkd_op_groupnorm_layout(vkd_cmd *c, const vkd_tensor *x, uint32_t groups, vkd_groupnorm_layout *l)
{
    gn_plan p;
    memset(&p, 0, sizeof p);
    vkd_result r = plan_make(c, x, groups, &p);
    *l = (vkd_groupnorm_layout){.numel = r ? 0 : p.scratch, .groups = groups, .nblk = p.nblk,
                                .block_rows = p.block_rows, .finals = p.n * groups * p.nblk * 4};
    return r;
}

void vkd_groupnorm_finals_set(const vkd_groupnorm_layout *l, float *scratch, int64_t n, int64_t g, double mean,
                              double var, float eps)
{
    /* (k0, mean - k0, rstd): k0 the fp32 mean, mean - k0 the bits below its ulp */
    float *f = scratch + l->finals + (n * l->groups + g) * VKD_GN_FINAL_STRIDE;
    f[0] = (float)mean;
    f[1] = (float)(mean - (double)f[0]);
    f[2] = (float)(1.0 / sqrt((var > 0 ? var : 0) + eps));
}

vkd_result vkd_op_groupnorm(vkd_cmd *c, const vkd_tensor *x, uint32_t groups, float eps, const vkd_tensor *gamma,
                            const vkd_tensor *beta, bool silu, const vkd_tensor *scratch, vkd_tensor *out)
{
    return vkd_op_groupnorm_ex(c, x, groups, eps, gamma, beta, silu, scratch, out, false);
}

static vkd_result groupnorm(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *x2, const vkd_tensor *add, int64_t add_col, uint32_t groups, float eps,
                            const vkd_tensor *gamma, const vkd_tensor *beta, bool silu, const vkd_tensor *scratch,
                            vkd_tensor *out, bool external_stats);

vkd_result vkd_op_groupnorm_ex(vkd_cmd *c, const vkd_tensor *x, uint32_t groups, float eps, const vkd_tensor *gamma,
                               const vkd_tensor *beta, bool silu, const vkd_tensor *scratch, vkd_tensor *out,
                               bool external_stats)
{
    return groupnorm(c, x, NULL, NULL, 0, groups, eps, gamma, beta, silu, scratch, out, external_stats);
}

vkd_result vkd_op_groupnorm_cat(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *x2, uint32_t groups, float eps,
                                const vkd_tensor *gamma, const vkd_tensor *beta, bool silu,
                                const vkd_tensor *scratch, vkd_tensor *out)
{
    return groupnorm(c, x, x2, NULL, 0, groups, eps, gamma, beta, silu, scratch, out, false);
}

vkd_result vkd_op_groupnorm_add(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *add, int64_t add_col,
                                uint32_t groups, float eps, const vkd_tensor *gamma, const vkd_tensor *beta, bool silu,
                                const vkd_tensor *scratch, vkd_tensor *out)
{
    if (x->ndim == 3 && (add->dtype != x->dtype || add->ndim != 2 || add->shape[0] != x->shape[0] || add_col < 0 ||
                         add_col + x->shape[2] > add->shape[1]))
        return vkd_op_shape_error("groupnorm", "add must be [N, W] in x's dtype with add_col + C <= W", add);
    return groupnorm(c, x, NULL, add, add_col, groups, eps, gamma, beta, silu, scratch, out, false);
}

static vkd_result groupnorm(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *x2, const vkd_tensor *add, int64_t add_col, uint32_t groups, float eps,
                            const vkd_tensor *gamma, const vkd_tensor *beta, bool silu, const vkd_tensor *scratch,
                            vkd_tensor *out, bool external_stats)
{
    gn_plan p;
    memset(&p, 0, sizeof p);
    vkd_result r = plan_make2(c, x, x2, groups, &p);
    if (r)
        return r;
    p.add_col = add_col;
    if (gamma->dtype != x->dtype || vkd_tensor_numel(gamma) != p.c)
        return vkd_op_shape_error("groupnorm", "gamma must be [C] in x's dtype", gamma);
    if (beta->dtype != x->dtype || vkd_tensor_numel(beta) != p.c)
        return vkd_op_shape_error("groupnorm", "beta must be [C] in x's dtype", beta);
    if (out->dtype != x->dtype || out->ndim != 3 || out->shape[0] != p.n || out->shape[1] != p.hw ||
        out->shape[2] != p.c)
        return vkd_op_shape_error("groupnorm", "out must have x's shape and dtype", out);
    if (scratch->dtype != VKD_F32 || vkd_tensor_numel(scratch) < p.scratch) {
        VKD_ERROR("groupnorm: scratch needs %lld fp32 elements", (long long)p.scratch);
        return vkd_op_shape_error("groupnorm", "scratch too small or not fp32", scratch);
    }
    if (!(eps > 0.0f)) {
        VKD_ERROR("groupnorm: eps must be positive (got %g)", (double)eps);
        return VKD_ERR_INVALID_ARG;
    }
    const vkd_pipeline *pl, *pl_apply;
    uint32_t spec[3] = {LOCAL, 1, 1}, spec4[4] = {LOCAL, 1, 1, 4};
    /* APPLY has a module of its own: without the other passes' barriers llvmpipe need not
     * compile it as a coroutine (206 -> 95 ms for GroupNorm+SiLU of [1, 64x64, 320] fp16
     * on lavapipe, BENCHMARKS.md) */
    if ((r = vkd_op_pipeline(c, VKD_KERNEL_GROUPNORM, x->dtype, spec, 3, &pl)) ||
        (r = vkd_op_pipeline(c, VKD_KERNEL_GROUPNORM_APPLY, x->dtype, spec, 3, &pl_apply)) ||
        (r = vkd_op_pipeline(c, VKD_KERNEL_GROUPNORM_APPLY, x->dtype, spec4, 4, &p.apply4)))
        return r;
    /* CPU devices (lavapipe) read x through texel buffers in STATS and APPLY: there a
     * storage-buffer load is a loop over the SIMD lanes, a texel fetch a gather (GPUs
     * keep plain loads) */
    const vkd_device *dev = vkd_cmd_device(c);
    if (dev->profile.cpu && vkd_kernel_usable(&dev->profile, VKD_KERNEL_GROUPNORM_APPLY_TX, x->dtype) &&
        ((r = vkd_op_pipeline(c, VKD_KERNEL_GROUPNORM_APPLY_TX, x->dtype, spec, 3, &p.apply_tx)) ||
         (r = vkd_op_pipeline(c, VKD_KERNEL_GROUPNORM_TX, x->dtype, spec, 3, &p.stats_tx))))
        return r;
    vkd_push_groupnorm pc = {.c = (uint32_t)p.c, .cpg = p.cpg, .groups = groups, .block_rows = (uint32_t)p.block_rows,
                             .nblk = (uint32_t)p.nblk, .silu = silu, .eps = eps};
    pc.mode = VKD_GN_STATS;
    bool one_block = p.nblk == 1;
    pc.finals = one_block && !external_stats; /* external: the caller's finals stay */
    if ((r = pass_all(c, pl, &p, pc, x, add, gamma, beta, scratch, out)))
        return r;
    pc.finals = 0;
    pc.mode = VKD_GN_COMBINE; /* one dispatch: the bindings of the first chunk are just placeholders */
    if (!external_stats && !one_block &&
        (r = pass(c, pl, &p, pc, 0, 1, 0, p.whole ? p.hw : p.chunk_rows < p.hw ? p.chunk_rows : p.hw, x, add, gamma,
                  beta, scratch, out)))
        return r;
    pc.mode = VKD_GN_APPLY;
    return pass_all(c, pl_apply, &p, pc, x, add, gamma, beta, scratch, out);
}
