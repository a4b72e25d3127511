/* Linear layer on the tiled GEMM core (shaders/gemm.comp, the matmul* kernels). */
#include "ops/matmul.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/half.h"
#include "common/log.h"

/* CPU devices without the subgroup kernel, and shapes it cannot run (see below) */
static const vkd_gemm_tile cpu_direct = {256, 8, 1, 8, 8, 1};
const vkd_gemm_tile vkd_gemm_coopmat_tile = {64, 64, 32, 2, 16, 3};
/* 32 x 64: the emulation's shared memory (As, Bs, Cs and the emulated accumulators,
 * all fp32: 32,640 bytes) then fits 32 KiB, and the kernel still has two subgroups and
 * two k steps */
const vkd_gemm_tile vkd_gemm_coopmat_emu_tile = {32, 64, 32, 2, 16, 4};

int vkd_gemm_split_target(const vkd_device *d)
{
    return d->knobs.split_k == 0 ? VKD_SPLITK_TARGET_WG : d->knobs.split_k < 0 ? 0 : d->knobs.split_k;
}

/* The device's tile without the cooperative-matrix kernel and without the knob. */
static vkd_gemm_tile plain_tile(const vkd_device *d)
{
    /* 128x128 tiles with 8x8 per invocation: 256 invocations, 16.5 KiB shared */
    vkd_gemm_tile big = {128, 128, 16, 8, 8, 0};
    /* 64x64 with 4x4: 256 invocations, 8.3 KiB; also what a CPU device (lavapipe)
     * runs, where each shader register is a SIMD vector and 64 accumulators spill */
    vkd_gemm_tile mid = {64, 64, 16, 4, 4, 0};
    /* 32x32 with 4x4: 64 invocations, 4.2 KiB, for small devices */
    vkd_gemm_tile small = {32, 32, 16, 4, 4, 0};
    /* CPU devices: the direct kernel, 8x8 outputs per invocation, 32 invocations.
     * On lavapipe (Mesa 22.3, 2 busy cores, M=1024 K=640 N=640) it measured 0.4
     * GFLOP/s against 0.1 for the shared-memory tiles and 0.2-0.3 for 4x4, 2x16, 4x8
     * direct blocks: every shared or storage load is a per-lane loop there, so the
     * kernel with the most FMAs per load wins. */
    vkd_gemm_tile cpu = cpu_direct;
    /* CPU devices with shuffles and 8-lane subgroups (lavapipe on AVX2): the subgroup
     * kernel, one subgroup per workgroup owning 32 rows x 64 columns, 4 x 64 per lane;
     * each weight value is loaded by one lane and shuffled to the others. M=1024 K=640
     * N=640 on lavapipe (Mesa 22.3.6, 2 busy Zen cores), 4-wide storage loads and
     * subgroupBroadcast: 2.9 GFLOP/s fp32 and fp16, against 0.9 / 1.0 for `cpu` above
     * and 1.4-2.2 for 8x16, 4x16, 4x32, 4x64 per lane; 32-byte loads 3.3-5 fp32, 6-7
     * fp16; subgroupShuffle 10.5 / 14.3; texel fetches instead of storage loads 16-23 /
     * 19-21 (BENCHMARKS.md). With texel fetches, 4 x 64 per lane measured 5-11% faster
     * than 8 x 32 in bracketed runs (8 x 16, 16 x 16, 4 x 32 no better). */
    vkd_gemm_tile cpu_sg = {32, 64, 1, 4, 64, 2};
    if (d->profile.cpu)
        return vkd_gemm_subgroup_ok(d) ? cpu_sg : cpu;
    /* GPUs: 64x64 / 4x4 first. On an NVIDIA H200 (driver 580.159) the 128x128 / 8x8 tile
     * ran the SD1.5 level-0 GEMMs at 1.5-2.3 TFLOP/s and 64x64 / 4x4 at 19-22 (BENCHMARKS.md,
     * `bench ops --tile`): 64 fp32 accumulators per invocation do not stay in registers. */
    const vkd_gemm_tile *order[3] = {&mid, &big, &small};
    for (int i = 0; i < 3; i++) {
        uint32_t inv = (order[i]->bm / order[i]->tm) * (order[i]->bn / order[i]->tn);
        uint32_t shared = order[i]->bk * (order[i]->bm + order[i]->bn + 2) * 4;
        if (inv <= d->caps.max_wg_invocations && shared <= d->caps.max_shared)
            return *order[i];
    }
    return small;
}

vkd_gemm_tile vkd_gemm_tile_for(const vkd_device *d)
{
    if (d->knobs.gemm_tile.bm)
        return d->knobs.gemm_tile;
    /* fp16 GEMMs on cooperative matrices where offered: 64 x 64 per workgroup of 2 x 2
     * subgroups, each with 2 x 2 accumulator matrices of 16 x 16 (or 2 x 4 of 16 x 8); BK
     * 32; the KHR or the NV extension's kernels (device->profile.coopmat). Not yet run on a
     * device (none with either extension lent since it was written). The fp32 path and
     * shapes it cannot take fall back in vkd_gemm_vec_width. */
    if (d->profile.coopmat != VKD_COOPMAT_NONE) {
        vkd_gemm_tile t = vkd_gemm_coopmat_tile;
        t.tn = d->profile.coopmat_n; /* the accumulators' columns the device offers */
        return t;
    }
    return plain_tile(d);
}

int vkd_gemm_subgroup_ok(const vkd_device *d)
{
    return d->profile.subgroup8;
}

vkd_gemm_tile vkd_gemm_tile_for_shape(const vkd_device *d, int64_t m, int64_t n, int64_t k)
{
    vkd_gemm_tile t = vkd_gemm_tile_for(d);
    /* CPU devices, small GEMMs (the shipped model's, a VAE's thin end convs): 4 x 16 outputs
     * per lane instead of 4 x 64. llvmpipe compiles each kernel with LLVM at its first
     * dispatch, and the 256-accumulator kernel took most of a cold first run: the README's
     * first command took 47 s cold with it and 8 s with this one, and ran its UNet faster
     * (40 against 53 ms per evaluation). Where the weights are large the big tile stays: at
     * full-size SD1.5 64x64 (M=128, N*K up to 15M) the small one on every GEMM ran the UNet
     * 17% slower; with this rule (N*K < 512K for M < 1024, e.g. the attention projections)
     * it runs as before, 1435 against 1434 ms (lavapipe, Mesa 22.3.6; BENCHMARKS.md). */
    static const vkd_gemm_tile cpu_sg_small = {32, 16, 1, 4, 16, 2};
    int64_t nk = n * k;
    if (t.direct == VKD_GEMM_FAM_SUBGROUP && !d->knobs.gemm_tile.bm &&
        ((m < 1024 && nk < (1 << 19)) || nk < (1 << 16)))
        t = cpu_sg_small;
    return t;
}

int vkd_gemm_vec_width(const vkd_device *d, vkd_gemm_tile *t, vkd_dtype dt, int vec4, int64_t kstep, uint32_t a_off,
                       uint32_t w_off)
{
    if (t->direct == VKD_GEMM_FAM_COOPMAT || t->direct == VKD_GEMM_FAM_COOPMAT_EMU) {
        /* the emulation needs fp16 tensors, subgroup ids and its 32 KiB of shared memory */
        /* shared memory (gemm.comp family 3): As, Bs fp16 (the emulation: fp32) with rows
         * of bk + 8, Cs fp32 with rows of bn + 4, the LN shift and sums; the emulation's
         * accumulators, 4 KiB per subgroup */
        uint64_t el = t->direct == VKD_GEMM_FAM_COOPMAT ? 2 : 4, sg = (t->bm / 32) * (t->bn / 32);
        uint64_t shared = el * (t->bm + t->bn) * (t->bk + 8) + 4ull * t->bm * (t->bn + 4) + 12ull * t->bm +
                          (t->direct == VKD_GEMM_FAM_COOPMAT_EMU ? 4096ull * sg : 0);
        bool ok = dt == VKD_F16 && t->bm % 32 == 0 && t->bn % 32 == 0 && t->bk % 16 == 0 &&
                  (t->tn == 16 || t->tn == 8) && shared <= d->caps.max_shared &&
                  sg * d->profile.cm_subgroup <= d->caps.max_wg_invocations &&
                  (!d->profile.cm_subgroup_required || sg <= d->caps.max_wg_subgroups) &&
                  (t->direct == VKD_GEMM_FAM_COOPMAT ? d->profile.coopmat != VKD_COOPMAT_NONE && t->tn == d->profile.coopmat_n
                                  : vkd_kernel_usable(&d->profile, VKD_KERNEL_MATMUL_CMEMU, VKD_VARIANT_F16));
        /* 16-byte loads of 8 halves where every offset allows, each invocation holding at
         * most 16 groups of each operand in registers (gemm.comp PF) */
        uint64_t inv = sg * d->profile.cm_subgroup;
        bool pf = (uint64_t)t->bm * t->bk / 8 <= 16 * inv && (uint64_t)t->bn * t->bk / 8 <= 16 * inv;
        if (ok)
            return kstep % 8 == 0 && a_off % 8 == 0 && w_off % 8 == 0 && pf ? VKD_GEMM_LOAD_HALF8 : VKD_GEMM_LOAD_SCALAR;
        *t = plain_tile(d); /* fp32, or a device without it (a test's override) */
        return vkd_gemm_vec_width(d, t, dt, vec4, kstep, a_off, w_off);
    }
    if (t->direct != VKD_GEMM_FAM_SUBGROUP)
        return vec4;
    /* 32-byte loads: 16 fp16 or 8 fp32 values */
    uint32_t e32 = dt == VKD_F16 ? 16 : 8;
    if (kstep % e32 == 0 && a_off % e32 == 0 && w_off % e32 == 0)
        return VKD_GEMM_LOAD_32B;
    *t = cpu_direct; /* e.g. the first conv of a UNet or VAE (4 input channels) */
    return vec4;
}

vkd_result vkd_gemm_pipeline(vkd_cmd *c, bool conv, vkd_dtype dt, const vkd_gemm_tile *t, int vec4, int lnfold,
                             const vkd_pipeline **out)
{
    const vkd_device *d = vkd_cmd_device(c);
    /* one module per kernel family (shaders/kernels.txt, gemm.comp), indexed by direct;
     * family 3 on the KHR extension: *_cmk */
    static const vkd_kernel family[2][5] = {
        {VKD_KERNEL_MATMUL, VKD_KERNEL_MATMUL_DIRECT, VKD_KERNEL_MATMUL_SG, VKD_KERNEL_MATMUL_CM, VKD_KERNEL_MATMUL_CMEMU},
        {VKD_KERNEL_CONV2D, VKD_KERNEL_CONV2D_DIRECT, VKD_KERNEL_CONV2D_SG, VKD_KERNEL_CONV2D_CM, VKD_KERNEL_CONV2D_CMEMU}};
    if (t->direct > VKD_GEMM_FAM_COOPMAT_EMU)
        return VKD_ERR_INTERNAL;
    vkd_kernel k = family[conv][t->direct];
    if (t->direct == VKD_GEMM_FAM_COOPMAT && d->profile.coopmat == VKD_COOPMAT_KHR)
        k = conv ? VKD_KERNEL_CONV2D_CMK : VKD_KERNEL_MATMUL_CMK;
    /* fp16 arithmetic (gemm_f16.glsl): the tiled kernel multiplies 4 columns at a time */
    if (dt == VKD_F16 && vkd_fp16_arith_on(&d->profile, &d->knobs) &&
        (t->direct == VKD_GEMM_FAM_DIRECT || (t->direct == VKD_GEMM_FAM_TILED && t->tn % 4 == 0))) {
        static const vkd_kernel half[2][2] = {{VKD_KERNEL_MATMUL_H, VKD_KERNEL_MATMUL_DIRECT_H},
                                              {VKD_KERNEL_CONV2D_H, VKD_KERNEL_CONV2D_DIRECT_H}};
        if (vkd_kernel_usable(&d->profile, half[conv][t->direct], VKD_VARIANT_F16))
            k = half[conv][t->direct];
    }
    /* invocations: the shared-memory tile's (bm/tm) x (bn/tn); a direct kernel's bm/tm; the
     * cooperative-matrix kernel's subgroups (32 x 32 outputs each) times the subgroup size
     * they are sized for, required of the pipeline where the device allows (the kernel
     * indexes its blocks by gl_SubgroupID: another size would leave blocks out or index
     * past them) */
    uint32_t inv = t->direct >= VKD_GEMM_FAM_COOPMAT ? (t->bm / 32) * (t->bn / 32) * d->profile.cm_subgroup
                   : t->direct  ? t->bm / t->tm
                                : (t->bm / t->tm) * (t->bn / t->tn);
    /* spec 11: the cooperative kernels' accumulator columns (16 or 8: tile.tn) */
    uint32_t spec[12] = {inv,       1, 1, t->bm, t->bn, t->bk, t->tm, t->tn, t->direct, t->direct ? (uint32_t)vec4 : 0,
                         lnfold ? 1u : 0u, t->direct >= VKD_GEMM_FAM_COOPMAT ? t->tn : 16u};
    uint32_t subgroup = t->direct >= VKD_GEMM_FAM_COOPMAT && d->profile.cm_subgroup_required ? d->profile.cm_subgroup : 0;
    return vkd_op_pipeline_subgroup(c, k, dt, spec, 12, subgroup, out);
}

static int64_t div_up64(int64_t a, int64_t b) { return (a + b - 1) / b; }

uint32_t vkd_gemm_ksplit(const vkd_gemm_tile *t, int lnfold, int64_t m, int64_t n, int64_t k, uint64_t scratch_bytes,
                         int split_target, uint32_t *kchunk)
{
    *kchunk = (uint32_t)k;
    if ((t->direct != VKD_GEMM_FAM_COOPMAT && t->direct != VKD_GEMM_FAM_COOPMAT_EMU) || lnfold || m < 1 || n < 1 || !split_target)
        return 1;
    int64_t wgs = div_up64(m, t->bm) * div_up64(n, t->bn);
    if (2 * wgs > split_target)
        return 1;
    int64_t steps = div_up64(k, t->bk);
    int64_t s = div_up64(split_target, wgs);
    if (s > steps / VKD_SPLITK_MIN_STEPS)
        s = steps / VKD_SPLITK_MIN_STEPS;
    if (s > (int64_t)(scratch_bytes / (4 * (uint64_t)m * (uint64_t)n)))
        s = (int64_t)(scratch_bytes / (4 * (uint64_t)m * (uint64_t)n));
    if (s < 2)
        return 1;
    int64_t chunk = div_up64(steps, s) * t->bk;
    *kchunk = (uint32_t)chunk;
    return (uint32_t)div_up64(k, chunk);
}

/* the most partial-sum bytes one GEMM may use: VKD_SPLITK_SCRATCH, or one binding window */
static uint64_t splitk_cap(const vkd_device *d)
{
    uint64_t align = d->caps.ssbo_align ? d->caps.ssbo_align : 256;
    uint64_t win = d->caps.max_binding > align ? (d->caps.max_binding - align) / 4 * 4 : 0;
    return win < VKD_SPLITK_SCRATCH ? win : VKD_SPLITK_SCRATCH;
}

int64_t vkd_gemm_split_scratch_numel(const vkd_device *d, vkd_dtype dt, int lnfold, int64_t m, int64_t n, int64_t k,
                                     int64_t kstep)
{
    vkd_gemm_tile t = vkd_gemm_tile_for(d);
    if (t.direct != VKD_GEMM_FAM_COOPMAT && t.direct != VKD_GEMM_FAM_COOPMAT_EMU)
        return 0;
    vkd_gemm_vec_width(d, &t, dt, 0, kstep, 0, 0); /* fp32 or an unsupported shape: another kernel */
    uint32_t chunk, s = vkd_gemm_ksplit(&t, lnfold, m, n, k, splitk_cap(d), vkd_gemm_split_target(d), &chunk);
    return s > 1 ? (int64_t)s * m * n : 0;
}

vkd_result vkd_gemm_dispatch(vkd_cmd *c, const vkd_pipeline *p, const vkd_gemm_tile *t, int lnfold, vkd_binding *bind,
                             uint32_t n_bind, vkd_push_gemm *pc, const vkd_tensor *scratch, const char *op)
{
    const vkd_device *d = vkd_cmd_device(c);
    uint64_t gx = vkd_div_up(pc->N, t->bn), gy = vkd_div_up(pc->M, t->bm);
    pc->phase = 0;
    if (t->direct < VKD_GEMM_FAM_COOPMAT)
        return vkd_cmd_dispatch(c, p, bind, n_bind, pc, sizeof *pc, gx, gy, 1, op);
    uint64_t avail = 0;
    if (scratch && scratch->dtype == VKD_F32) {
        avail = 4 * (uint64_t)vkd_tensor_numel(scratch);
        if (avail > splitk_cap(d))
            avail = splitk_cap(d);
    }
    uint32_t kchunk, s = vkd_gemm_ksplit(t, lnfold, pc->M, pc->N, pc->K, avail, vkd_gemm_split_target(d), &kchunk);
    bind[7] = bind[1]; /* unused: any buffer */
    if (s < 2)
        return vkd_cmd_dispatch(c, p, bind, 8, pc, sizeof *pc, gx, gy, 1, op);
    vkd_result r = vkd_op_bind(c, scratch, 0, (int64_t)s * pc->M * pc->N, &bind[7], &pc->s_off);
    if (r)
        return r;
    pc->phase = 1, pc->kchunk = kchunk, pc->ksplit = s;
    /* Phase 3: each workgroup writes its chunk's sums, then takes a ticket for its tile;
     * the tile's last workgroup adds the chunks up and applies the epilogue, where a
     * reduce dispatch did (83 of 472 dispatches in the SD1.5 UNet on an H200). The
     * tickets take binding 5, LayerNorm's, which a split GEMM never uses. */
    vkd_binding tickets;
    if (!d->knobs.splitk_reduce && (r = vkd_cmd_tickets(c, (uint32_t)(gx * gy), &tickets)) != VKD_ERR_UNSUPPORTED) {
        if (r)
            return r;
        vkd_binding tb[8];
        memcpy(tb, bind, sizeof tb);
        tb[5] = tickets;
        pc->phase = 3;
        r = vkd_cmd_dispatch(c, p, tb, 8, pc, sizeof *pc, gx, gy, s, op);
        pc->phase = 0;
        return r;
    }
    if ((r = vkd_cmd_dispatch(c, p, bind, 8, pc, sizeof *pc, gx, gy, s, op)))
        return r;
    /* the reduce: one invocation per output, in workgroups of the pipeline's size. It
     * reads neither A nor w: their windows shrink to one element, so that the bytes a
     * recording is said to bind (vkd_cmd_bytes_bound) stay what it touches */
    vkd_binding rb[8];
    memcpy(rb, bind, sizeof rb);
    for (int i = 0; i < 8; i++) { /* it reads bias, res and the partial sums, writes out */
        bool used = i == 4 || i == 7 || (i == 2 && (pc->flags & VKD_GEMM_BIAS)) ||
                    (i == 3 && (pc->flags & VKD_GEMM_RESIDUAL));
        if (!used && rb[i].range > 16)
            rb[i].range = 16;
    }
    uint64_t inv = (uint64_t)(t->bm / 32) * (t->bn / 32) * d->profile.cm_subgroup;
    uint64_t groups = vkd_div_up((uint64_t)pc->M * pc->N, inv);
    uint64_t rx = groups < 65535 ? groups : 65535;
    pc->phase = 2;
    r = vkd_cmd_dispatch(c, p, rb, 8, pc, sizeof *pc, rx, vkd_div_up(groups, rx), 1, op);
    pc->phase = 0;
    return r;
}

vkd_result vkd_linear_weight_upload(vkd_device *d, vkd_dtype dt, const float *w, int64_t n_out, int64_t n_in,
                                    vkd_tensor *out)
{
    int64_t shape[2] = {n_out, n_in};
    vkd_result r = vkd_tensor_create(d, dt, 2, shape, out);
    if (r)
        return r;
    if ((r = vkd_tensor_upload_f32(d, out, w)))
        vkd_tensor_destroy(d, out);
    return r;
}

void vkd_ln_fold(const float *w, const float *b, const float *gamma, const float *beta, int64_t n, int64_t k,
                 vkd_dtype dt, float *w_out, float *sc)
{
    for (int64_t r = 0; r < n; r++) {
        double s = 0, cc = b ? b[r] : 0.0;
        for (int64_t q = 0; q < k; q++) {
            float v = w[r * k + q] * gamma[q];
            if (dt == VKD_F16)
                v = vkd_half_to_float(vkd_float_to_half(v));
            w_out[r * k + q] = v;
            s += v;
            cc += (double)beta[q] * w[r * k + q];
        }
        sc[r] = (float)s;
        sc[n + r] = (float)cc;
    }
}

vkd_result vkd_op_linear(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *w, const vkd_tensor *bias,
                         const vkd_tensor *residual, vkd_tensor *out)
{
    vkd_linear_opts o = {.bias = bias, .residual = residual};
    return vkd_op_linear_ex(c, a, w, &o, out);
}

vkd_result vkd_op_linear_ex(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *w, const vkd_linear_opts *o,
                            vkd_tensor *out)
{
    static const char op[] = "linear";
    const vkd_tensor *bias = o->bias, *residual = o->residual, *ln = o->ln, *a2 = o->a2;
    if (w->ndim != 2)
        return vkd_op_shape_error(op, "weight must be [N, K]", w);
    int64_t n = w->shape[0], k = w->shape[1];
    int64_t k1 = a->shape[a->ndim - 1], k2 = a2 ? a2->shape[a2->ndim - 1] : 0;
    if (k1 + k2 != k)
        return vkd_op_shape_error(op, "input's last dimension (a2's added) must equal the weight's K", a);
    int64_t m = vkd_tensor_numel(a) / k1;
    if (a2) {
        bool same = a2->ndim == a->ndim && a2->dtype == a->dtype && k1 % 16 == 0 && !ln;
        for (int i = 0; same && i < a->ndim - 1; i++)
            same = a2->shape[i] == a->shape[i];
        if (!same)
            return vkd_op_shape_error(op, "a2 must match a but in its last dimension (a's a multiple of 16; no ln)",
                                      a2);
    }
    if (out->ndim != a->ndim || out->shape[out->ndim - 1] != n || vkd_tensor_numel(out) != m * n)
        return vkd_op_shape_error(op, "output must be a's shape with the last dimension N", out);
    for (int i = 0; i < a->ndim - 1; i++)
        if (out->shape[i] != a->shape[i])
            return vkd_op_shape_error(op, "output must be a's shape with the last dimension N", out);
    if (bias && vkd_tensor_numel(bias) != n)
        return vkd_op_shape_error(op, "bias must have N elements", bias);
    if (residual && vkd_tensor_numel(residual) != m * n)
        return vkd_op_shape_error(op, "residual must have the output's shape", residual);
    if (w->dtype != a->dtype || out->dtype != a->dtype || (bias && bias->dtype != a->dtype) ||
        (residual && residual->dtype != a->dtype))
        return vkd_op_shape_error(op, "all operands must share a dtype", out);
    if (ln && (ln->dtype != VKD_F32 || vkd_tensor_numel(ln) != 2 * n || bias))
        return vkd_op_shape_error(op, "ln must be fp32 [2, N] from vkd_ln_fold (and no separate bias)", ln);
    if (ln && !(o->ln_eps > 0.0f)) {
        VKD_ERROR("linear: layer-norm eps must be positive (got %g)", (double)o->ln_eps);
        return VKD_ERR_INVALID_ARG;
    }

    int64_t maxe = vkd_op_max_elems(c, a->dtype);
    if (n * k > maxe) {
        VKD_ERROR("linear: weight [%lld, %lld] exceeds one binding window (%lld elements)", (long long)n,
                  (long long)k, (long long)maxe);
        return VKD_ERR_TOO_LARGE;
    }
    vkd_gemm_tile tile = vkd_gemm_tile_for_shape(vkd_cmd_device(c), m, n, k);
    const vkd_pipeline *p;
    vkd_result r;
    vkd_cmd_add_flops(c, 2.0 * (double)m * (double)n * (double)k);

    /* rows per dispatch: a, out and residual windows must fit, and the grid's y (a2's
     * rows are shorter than K) */
    int64_t rows = maxe / (k > n ? k : n);
    if (rows > 65535ll * tile.bm)
        rows = 65535ll * tile.bm;
    if (rows >= tile.bm)
        rows -= rows % tile.bm;
    if (rows < 1) {
        VKD_ERROR("linear: one row of K=%lld / N=%lld exceeds a binding window", (long long)k, (long long)n);
        return VKD_ERR_TOO_LARGE;
    }
    vkd_binding bind[8];
    vkd_push_gemm pc = {.N = (uint32_t)n, .K = (uint32_t)k, .ln_eps = o->ln_eps, .k1 = a2 ? (uint32_t)k1 : 0,
                        .flags = (bias ? VKD_GEMM_BIAS : 0) | (residual ? VKD_GEMM_RESIDUAL : 0)};
    if ((r = vkd_op_bind(c, w, 0, n * k, &bind[1], &pc.w_off)))
        return r;
    /* unused operands still need a buffer: bind the weight window again */
    bind[2] = bind[1];
    bind[5] = bind[1];
    bind[6] = bind[1];
    if (bias && (r = vkd_op_bind(c, bias, 0, n, &bind[2], &pc.b_off)))
        return r;
    if (ln && (r = vkd_op_bind(c, ln, 0, 2 * n, &bind[5], &pc.l_off)))
        return r;
    for (int64_t m0 = 0; m0 < m; m0 += rows) {
        int64_t mc = m - m0 < rows ? m - m0 : rows;
        pc.M = (uint32_t)mc;
        if ((r = vkd_op_bind(c, a, m0 * k1, mc * k1, &bind[0], &pc.a_off)))
            return r;
        if (a2 && (r = vkd_op_bind(c, a2, m0 * k2, mc * k2, &bind[6], &pc.a2_off)))
            return r;
        if ((r = vkd_op_bind(c, out, m0 * n, mc * n, &bind[4], &pc.o_off)))
            return r;
        bind[3] = bind[1];
        if (residual && (r = vkd_op_bind(c, residual, m0 * n, mc * n, &bind[3], &pc.r_off)))
            return r;
        /* with a2, both parts' widths and window offsets must suit the load width:
         * gcd(k1, k2) and a_off | a2_off carry that */
        int64_t kstep = k;
        if (a2) {
            int64_t x = k1, y = k2;
            while (y)
                kstep = x % y, x = y, y = kstep;
            kstep = x;
        }
        uint32_t aoff = pc.a_off | pc.a2_off;
        int vec4 = kstep % 4 == 0 && aoff % 4 == 0 && pc.w_off % 4 == 0;
        vec4 = vkd_gemm_vec_width(vkd_cmd_device(c), &tile, a->dtype, vec4, kstep, aoff, pc.w_off);
        if ((r = vkd_gemm_pipeline(c, false, a->dtype, &tile, vec4, ln != NULL, &p)))
            return r;
        if ((r = vkd_gemm_dispatch(c, p, &tile, ln != NULL, bind, 7, &pc, o->scratch, op)))
            return r;
    }
    return VKD_OK;
}
