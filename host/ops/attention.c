/* Fused multi-head attention (shaders/attention.comp). */
#include "ops/attention.h"

#include <math.h>

#include "common/log.h"
#include "push_attention.h"

void vkd_attention_params_init(vkd_attention_params *p)
{
    *p = (vkd_attention_params){.heads = 1};
}

/* Workgroup shape: specialization constants 0 and 3..6 of the shader. */
typedef struct tiling {
    uint32_t wg, r, bc, kd, dv, ub, nsplit; /* wg invocations of r query rows each: br = wg * r rows */
    uint32_t br;
} tiling;

static uint64_t shared_bytes(const tiling *t)
{
    return 4ull * ((uint64_t)t->bc * t->kd + (uint64_t)t->br * (t->dv + 1));
}

/* K/V slices of at most 80 columns keep the unrolled tile loads (and lavapipe's
 * compile time) small. Three head-dim classes keep the pipeline count small (lavapipe compiles each one
 * for seconds): D <= 64 (CLIP, SD2 UNet, SD1 UNet's 40; 4 rows per invocation),
 * D <= 160 (SD1 UNet's 80 and 160) and larger (the VAE's single 512-wide head), whose
 * output columns are split over DV = 128 wide workgroups so that the accumulators
 * fit in shared memory; it steps 16 columns per unrolled block so that a 16384-token
 * sequence stays under lavapipe's loop limit (see the shader). */
static bool pick_tiling(const vkd_device *d, int64_t dim, tiling *t)
{
    if (dim <= 64)
        *t = (tiling){.wg = 16, .r = 4, .bc = 16, .kd = 64, .dv = 64, .ub = 8};
    else if (dim <= 160)
        *t = (tiling){.wg = 16, .r = 2, .bc = 16, .kd = 80, .dv = 160, .ub = 8};
    else
        *t = (tiling){.wg = 16, .r = 2, .bc = 16, .kd = 64, .dv = 128, .ub = 16};
    if (d->profile.cpu) {
        /* CPU devices without the subgroup kernel's needs (or forced here by a test): more query rows per invocation, so each K/V value
         * broadcast from shared memory and each per-lane load feeds more multiply-adds.
         * Measured on lavapipe (Mesa 22.3.6, 2 Zen cores, `vkdiff bench ops`, 1024
         * tokens): D = 40, r 4 -> 8: 2.02 -> 1.59 s; D = 80, r 2 -> 4: 6.1 -> 4.1 s
         * (r 8 there: 4.6 s, the accumulators no longer fit 16 invocations' shared memory). */
        t->r = dim <= 64 ? 8 : dim <= 160 ? 4 : t->r;
    }
    t->br = t->wg * t->r;
    while (shared_bytes(t) > d->caps.max_shared) {
        if (t->wg > 4)
            t->br = (t->wg /= 2) * t->r;
        else if (t->bc > 4)
            t->bc /= 2;
        else if (t->kd > 2 * t->ub && t->kd % (2 * t->ub) == 0)
            t->kd /= 2;
        else if (t->dv > 2 * t->ub && t->dv % (2 * t->ub) == 0)
            t->dv /= 2;
        else
            return false;
    }
    t->nsplit = vkd_div_up((uint64_t)dim, t->dv);
    return true;
}

/* One operand of the attention: a tensor [N, L, C] read as rows of stride C from column col. */
typedef struct operand {
    const vkd_tensor *t;
    int64_t len, stride, col; /* L, C, column of head 0 */
} operand;

/* The subgroup kernel (shaders/attention_sg.comp) keeps a lane's R query rows and
 * their accumulators in registers, 2 * R * D floats, R * D <= 320. More rows per lane
 * make each K/V load and broadcast feed more multiply-adds, and cost JIT time: lavapipe
 * (Mesa 22.3.6, 2 Zen cores, `vkdiff bench ops`, fp32 / fp16 ms at the SD1.5 512x512
 * shapes, first-dispatch compile of the fp32 + fp16 pair in brackets):
 *   D = 40, 4096 tokens: R 2: 5894 / 5242 (~13 s), R 4: 3514 / 3059 (~18 s), R 8: 2043 / 2070 (~40 s)
 *   D = 80, 1024 tokens: R 2:  865 /  826 (~60 s), R 4:  524 /  378 (~78 s)
 * Under AddressSanitizer (the test build) LLVM's compile runs several times slower. */
static uint32_t subgroup_rows(int64_t dim, int64_t query_rows)
{
    /* Small attentions (the text encoder's 77 tokens, the lower UNet levels, the test
     * models) take one row per lane: their time is small either way and a fifth of the
     * unrolled code compiles several times faster at the first dispatch. */
    if (query_rows < 8192)
        return 1;
    return dim <= 40 ? 8 : dim <= 80 ? 4 : 2;
}

/* Every row of the operand starts on a 16-byte boundary: the subgroup kernel reads
 * 16 bytes per load. Binding windows start on minStorageBufferOffsetAlignment, a
 * power of two, so an aligned element stays aligned inside its window. */
static bool operand_aligned(const operand *o, int64_t e)
{
    uint64_t es = vkd_dtype_size(o->t->dtype);
    return o->t->offset % es == 0 && ((int64_t)(o->t->offset / es) + o->col) % e == 0 && o->stride % e == 0;
}

/* The subgroup kernel applies: a CPU device (where shared memory and barriers are
 * what cost, see the shader) with 8-lane subgroups and shuffles, and aligned operands. */
static bool subgroup_applies(const vkd_device *d, int64_t dim, const operand *ops, int nops)
{
    if (!d->profile.cpu || !d->profile.subgroup8)
        return false;
    int64_t e = 16 / (int64_t)vkd_dtype_size(ops[0].t->dtype);
    if (dim % e != 0) /* (past 160: attention_sgw.comp) */
        return false;
    for (int i = 0; i < nops; i++)
        if (!operand_aligned(&ops[i], e))
            return false;
    return true;
}

/* The cooperative-matrix kernel (shaders/attention_cm.comp): subgroups per workgroup
 * (nsg, 16 query rows each), keys per block (bc) and the padded head dim (dp) that fit
 * the device, or false. emulate: attention_cmemu (fp32 shared copies of everything, the
 * accumulators in shared memory too). */
typedef struct cm_tiling {
    uint32_t nsg, bc, dp;
} cm_tiling;

static bool cm_tiling_for(const vkd_device *d, int64_t dim, bool emulate, cm_tiling *t)
{
    if (dim > 160 || !d->profile.cm_subgroup)
        return false;
    uint64_t dp = (uint64_t)(dim + 15) / 16 * 16, dps = dp + 8, el = emulate ? 4 : 2;
    uint64_t bc = emulate ? 16 : 32;
    for (uint64_t nsg = 4; nsg >= 1; nsg /= 2) {
        uint64_t br = 16 * nsg;
        /* Q, K and V staged (the real kernel stages Q where K and V go later) */
        uint64_t qkv = emulate ? (br + 2 * bc) * dps * el : (br > 2 * bc ? br : 2 * bc) * dps * el;
        uint64_t shared = qkv + 4 * nsg * 16 * (bc + 4) + el * nsg * 16 * (bc + 8) + 4 * nsg * 256 + 8 * br +
                          (emulate ? 4 * nsg * (dp / 16 + bc / 16) * 256 : 0);
        if (shared <= d->caps.max_shared && nsg * d->profile.cm_subgroup <= d->caps.max_wg_invocations &&
            (!d->profile.cm_subgroup_required || nsg <= d->caps.max_wg_subgroups)) {
            *t = (cm_tiling){(uint32_t)nsg, (uint32_t)bc, (uint32_t)dp};
            return true;
        }
    }
    return false;
}

/* Whether the real (KHR) cooperative-matrix kernel can run here: fp16 GEMMs on the KHR
 * extension with 16 x 16 accumulators, and the kernel built (newer shader tools) */
static bool cm_khr_applies(const vkd_device *d, vkd_dtype dt)
{
    return dt == VKD_F16 && d->profile.coopmat == VKD_COOPMAT_KHR && d->profile.coopmat_n == 16 &&
           vkd_kernel_usable(&d->profile, VKD_KERNEL_ATTENTION_CMK, VKD_VARIANT_F16);
}

/* Bind flattened rows [row, row + rows) of an operand (rows of all heads): *off gets
 * the element index of column col of the first row inside the window. */
static vkd_result bind_rows(vkd_cmd *c, const operand *o, int64_t hd, int64_t row, int64_t rows, vkd_binding *b,
                            uint32_t *off)
{
    return vkd_op_bind(c, o->t, row * o->stride + o->col, (rows - 1) * o->stride + hd, b, off);
}

static vkd_result check_operand(const char *name, const char *what, const vkd_tensor *t, const vkd_tensor *ref, int64_t col,
                                int64_t hd)
{
    if (t->ndim != 3)
        return vkd_op_shape_error("attention", what, t);
    if (t->dtype != ref->dtype)
        return vkd_op_shape_error("attention", "q, k, v and out must share a dtype", t);
    if (t->shape[0] != ref->shape[0])
        return vkd_op_shape_error("attention", "batch sizes of q, k, v and out differ", t);
    if (col < 0 || col + hd > t->shape[2]) {
        VKD_ERROR("attention: columns %lld..%lld (heads * head_dim from the column offset) lie outside %s's last "
                  "dimension %lld",
                  (long long)col, (long long)(col + hd - 1), name, (long long)t->shape[2]);
        return VKD_ERR_SHAPE;
    }
    return VKD_OK;
}

vkd_result vkd_op_attention(vkd_cmd *c, const vkd_tensor *q, const vkd_tensor *k, const vkd_tensor *v,
                            vkd_tensor *out, const vkd_attention_params *p)
{
    vkd_result r;
    if (!q || !k || !v || !out || !p)
        return VKD_ERR_INVALID_ARG;
    if (out->ndim != 3)
        return vkd_op_shape_error("attention", "out must be [N, Lq, C]", out);
    int64_t heads = p->heads;
    int64_t dim = p->head_dim ? p->head_dim : (heads > 0 ? (out->shape[2] - p->out_col) / heads : 0);
    if (heads < 1 || dim < 1 || heads > 65535) {
        VKD_ERROR("attention: need 1 <= heads <= 65535 and head_dim >= 1 (got heads %lld, head_dim %lld)",
                  (long long)heads, (long long)dim);
        return VKD_ERR_SHAPE;
    }
    int64_t hd = heads * dim;
    if ((r = check_operand("q", "q must be [N, Lq, C]", q, out, p->q_col, hd)) ||
        (r = check_operand("k", "k must be [N, Lk, C]", k, out, p->k_col, hd)) ||
        (r = check_operand("v", "v must be [N, Lk, C]", v, out, p->v_col, hd)) ||
        (r = check_operand("out", "out must be [N, Lq, C]", out, out, p->out_col, hd)))
        return r;
    if (q->shape[1] != out->shape[1] || q->shape[1] < 1)
        return vkd_op_shape_error("attention", "q and out need the same number (>= 1) of query rows", q);
    if (k->shape[1] != v->shape[1] || k->shape[1] < 1)
        return vkd_op_shape_error("attention", "k and v need the same number (>= 1) of key rows", v);
    if (out->dtype != VKD_F32 && out->dtype != VKD_F16)
        return vkd_op_shape_error("attention", "dtype must be f32 or f16", out);

    int64_t n = out->shape[0], lq = q->shape[1], lk = k->shape[1];
    /* q.k and p.v: 2 multiply-adds per (query, key, head-dim element) */
    vkd_cmd_add_flops(c, 4.0 * (double)n * (double)heads * (double)lq * (double)lk * (double)dim);
    operand oq = {q, lq, q->shape[2], p->q_col}, ok = {k, lk, k->shape[2], p->k_col};
    operand ov = {v, lk, v->shape[2], p->v_col}, oo = {out, lq, out->shape[2], p->out_col};

    /* The kernel and its rows per workgroup (br) and column splits (nsplit). */
    vkd_device *d = vkd_cmd_device(c);
    const operand all[4] = {oq, ok, ov, oo};
    bool subgroup = p->kernel != VKD_ATTENTION_FLASH && subgroup_applies(d, dim, all, 4);
    if (p->kernel == VKD_ATTENTION_SUBGROUP && !subgroup) {
        VKD_ERROR("attention: the subgroup kernel does not apply here (head_dim %lld, device %s)", (long long)dim,
                  d->profile.cpu ? "CPU" : "not a CPU");
        return VKD_ERR_UNSUPPORTED;
    }
    const vkd_pipeline *pipe;
    uint32_t br, nsplit;
    /* the cooperative-matrix kernel: AUTO where the KHR one applies; forced, the KHR one
     * or else its emulation (tests) */
    bool cm_khr = cm_khr_applies(d, out->dtype);
    bool cm_emu = p->kernel == VKD_ATTENTION_COOPMAT && !cm_khr && out->dtype == VKD_F16 &&
                  vkd_kernel_usable(&d->profile, VKD_KERNEL_ATTENTION_CMEMU, VKD_VARIANT_F16);
    cm_tiling ct;
    bool cm = (p->kernel == VKD_ATTENTION_AUTO && !d->knobs.attention_no_coopmat && cm_khr) ||
              (p->kernel == VKD_ATTENTION_COOPMAT && (cm_khr || cm_emu));
    cm = cm && cm_tiling_for(d, dim, cm_emu, &ct);
    if (p->kernel == VKD_ATTENTION_COOPMAT && !cm) {
        VKD_ERROR("attention: the cooperative-matrix kernel does not apply here (%s, head_dim %lld)",
                  vkd_dtype_suffix(out->dtype), (long long)dim);
        return VKD_ERR_UNSUPPORTED;
    }
    if (cm) {
        uint32_t spec[6] = {ct.nsg * d->profile.cm_subgroup, 1, 1, ct.dp, ct.nsg, ct.bc};
        br = 16 * ct.nsg;
        nsplit = 1;
        /* full subgroups of the size the workgroup is sized for (as the GEMM's) */
        uint32_t sgs = d->profile.cm_subgroup_required ? d->profile.cm_subgroup : 0;
        if ((r = vkd_op_pipeline_subgroup(c, cm_emu ? VKD_KERNEL_ATTENTION_CMEMU : VKD_KERNEL_ATTENTION_CMK, out->dtype,
                                          spec, 6, sgs, &pipe)))
            return r;
    } else if (subgroup && dim > 160) {
        /* wide heads (the VAE's 512): one query row per lane, output columns split into
         * DV-wide slices, DV the largest multiple of the load width up to 256 dividing D
         * (the accumulators of a lane: R * DV <= 320 floats, as below) */
        int64_t e = 16 / (int64_t)vkd_dtype_size(out->dtype), dv = e;
        for (int64_t x = e; x <= 256; x += e)
            if (dim % x == 0)
                dv = x;
        uint32_t spec[7] = {8, 1, 1, 1, (uint32_t)dim, (uint32_t)dv, (uint32_t)(dim / dv)};
        br = 8;
        nsplit = (uint32_t)(dim / dv);
        if ((r = vkd_op_pipeline(c, VKD_KERNEL_ATTENTION_SGW, out->dtype, spec, 7, &pipe)))
            return r;
    } else if (subgroup) {
        uint32_t rows = subgroup_rows(dim, n * heads * lq); /* query rows of all heads and batch items */
        uint32_t spec[5] = {8, 1, 1, rows, (uint32_t)dim};
        br = 8 * rows;
        nsplit = 1;
        /* q, k and v (bindings 0-2) are bound as uniform texel buffers (kernels.txt) */
        if ((r = vkd_op_pipeline(c, VKD_KERNEL_ATTENTION_SG, out->dtype, spec, 5, &pipe)))
            return r;
    } else {
        tiling tl;
        if (!pick_tiling(d, dim, &tl)) {
            VKD_ERROR("attention: head_dim %lld needs more shared memory than this device has (%u bytes)",
                      (long long)dim, d->caps.max_shared);
            return VKD_ERR_UNSUPPORTED;
        }
        uint32_t spec[9] = {tl.wg, 1, 1, tl.bc, tl.kd, tl.dv, tl.nsplit, tl.r, tl.ub};
        br = tl.br;
        nsplit = tl.nsplit;
        /* fp16 arithmetic (attention.comp VKD_F16_ARITH) where the profile or knob takes it */
        bool h = out->dtype == VKD_F16 && vkd_fp16_arith_on(&d->profile, &d->knobs) &&
                 vkd_kernel_usable(&d->profile, VKD_KERNEL_ATTENTION_H, VKD_VARIANT_F16);
        if ((r = vkd_op_pipeline(c, h ? VKD_KERNEL_ATTENTION_H : VKD_KERNEL_ATTENTION, out->dtype, spec, 9, &pipe)))
            return r;
    }
    vkd_push_attention pc = {
        .lk = (uint32_t)lk, .d = (uint32_t)dim, .causal = p->causal ? 1 : 0,
        .scale = p->scale != 0.0f ? p->scale : (float)(1.0 / sqrt((double)dim)),
        .q_rs = (uint32_t)oq.stride, .k_rs = (uint32_t)ok.stride, .v_rs = (uint32_t)ov.stride,
        .o_rs = (uint32_t)oo.stride,
    };
    vkd_binding bind[4];
    const uint32_t max_groups = d->caps.max_wg_count[0] < 65535 ? d->caps.max_wg_count[0] : 65535;

    /* Everything in one dispatch when every tensor fits one window (the usual case). */
    if (vkd_div_up((uint64_t)lq, br) <= max_groups && (uint64_t)n * nsplit <= d->caps.max_wg_count[2] &&
        !bind_rows(c, &oq, hd, 0, n * lq, &bind[0], &pc.q_off) &&
        !bind_rows(c, &ok, hd, 0, n * lk, &bind[1], &pc.k_off) &&
        !bind_rows(c, &ov, hd, 0, n * lk, &bind[2], &pc.v_off) &&
        !bind_rows(c, &oo, hd, 0, n * lq, &bind[3], &pc.o_off)) {
        pc.rows = (uint32_t)lq;
        pc.q_bs = (uint32_t)(lq * oq.stride);
        pc.k_bs = (uint32_t)(lk * ok.stride);
        pc.v_bs = (uint32_t)(lk * ov.stride);
        pc.o_bs = (uint32_t)(lq * oo.stride);
        return vkd_cmd_dispatch(c, pipe, bind, 4, &pc, sizeof pc, vkd_div_up((uint64_t)lq, br), (uint32_t)heads,
                                (uint32_t)(n * nsplit), "attention");
    }

    /* Otherwise one batch item at a time, its query rows in chunks whose q and out
     * windows fit; each workgroup still sees all keys of its batch item. */
    int64_t max_elems = vkd_op_max_elems(c, out->dtype);
    int64_t chunk = (int64_t)max_groups * br;
    int64_t fit_q = max_elems >= hd ? (max_elems - hd) / oq.stride + 1 : 0;
    int64_t fit_o = max_elems >= hd ? (max_elems - hd) / oo.stride + 1 : 0;
    if (fit_q < chunk) chunk = fit_q;
    if (fit_o < chunk) chunk = fit_o;
    if (chunk >= br)
        chunk = chunk / br * br; /* whole workgroups per dispatch */
    if (chunk < 1) {
        VKD_ERROR("attention: one query row of q or out does not fit in a binding window (%llu bytes)",
                  (unsigned long long)d->caps.max_binding);
        return VKD_ERR_TOO_LARGE;
    }
    pc.q_bs = pc.k_bs = pc.v_bs = pc.o_bs = 0;
    for (int64_t b = 0; b < n; b++) {
        if ((r = bind_rows(c, &ok, hd, b * lk, lk, &bind[1], &pc.k_off)) ||
            (r = bind_rows(c, &ov, hd, b * lk, lk, &bind[2], &pc.v_off))) {
            char s[96];
            VKD_ERROR("attention: k and v of one batch item (%lld rows of %s) must each fit in one binding window "
                      "(%llu bytes); this device cannot run this attention",
                      (long long)lk, vkd_tensor_str(k, s, sizeof s), (unsigned long long)d->caps.max_binding);
            return r == VKD_ERR_TOO_LARGE ? r : VKD_ERR_INTERNAL;
        }
        for (int64_t r0 = 0; r0 < lq; r0 += chunk) {
            int64_t rows = lq - r0 < chunk ? lq - r0 : chunk;
            if ((r = bind_rows(c, &oq, hd, b * lq + r0, rows, &bind[0], &pc.q_off)) ||
                (r = bind_rows(c, &oo, hd, b * lq + r0, rows, &bind[3], &pc.o_off)))
                return r;
            pc.rows = (uint32_t)rows;
            pc.row0 = (uint32_t)r0;
            if ((r = vkd_cmd_dispatch(c, pipe, bind, 4, &pc, sizeof pc, vkd_div_up((uint64_t)rows, br),
                                      (uint32_t)heads, nsplit, "attention")))
                return r;
        }
    }
    return VKD_OK;
}
