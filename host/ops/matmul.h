/* Linear layer (nn.Linear): out[M, N] = a[M, K] · w[N, K]^T (+ bias[N]) (+ residual[M, N]).
 * Leading dimensions of a are flattened into M; the work is split by rows of M when
 * a, out or residual exceed one binding window. Weights stay in PyTorch's [out, in]
 * layout, which is what the GEMM core (shaders/gemm.comp) reads. */
#ifndef VKD_MATMUL_H
#define VKD_MATMUL_H

#include "ops/op.h"
#include "push_matmul.h"

/* vkd_gemm_tile (vk/kernel.h): the tile shape of the GEMM core, spec constants 3..7 of
 * the matmul / conv2d kernels, and its kernel family, `direct` (VKD_GEMM_FAM_*,
 * push_matmul.h; see shaders/gemm.comp):
 *   TILED (0)       shared-memory tiles;
 *   DIRECT (1)      no shared memory; bm/tm invocations, each owning tm rows and the
 *                   workgroup's bn = tn columns;
 *   SUBGROUP (2)    the same with bm/tm = 8 invocations forming one subgroup that shares
 *                   weight loads by shuffles (tn a multiple of 8; vkd_gemm_subgroup_ok);
 *   COOPMAT (3)     cooperative matrices, fp16 only (vkd_gemm_coopmat_tile: bm, bn
 *                   multiples of 32, bk a multiple of 16; tn the accumulators' columns,
 *                   16 or 8, device->profile.coopmat_n for the real kernel);
 *   COOPMAT_EMU (4) the same kernel with the matrix operations emulated (tests). */

/* The cooperative-matrix tile (direct = 3), used where device->profile.coopmat, and its
 * emulation in plain shared memory (direct = 4), for tests on any device. */
extern const vkd_gemm_tile vkd_gemm_coopmat_tile;
extern const vkd_gemm_tile vkd_gemm_coopmat_emu_tile;

/* The tile used on this device: large register blocks for GPUs, a smaller one for
 * devices with little shared memory or few invocations per workgroup; the device's
 * knobs.gemm_tile where set (tests, bench ops --tile). */
vkd_gemm_tile vkd_gemm_tile_for(const vkd_device *d);
/* The tile for an M x N output over K: on CPU devices small GEMMs take a smaller subgroup
 * tile, which LLVM compiles several times faster (matmul.c). */
vkd_gemm_tile vkd_gemm_tile_for_shape(const vkd_device *d, int64_t m, int64_t n, int64_t k);
/* Whether the device can run the subgroup kernel (direct = 2): compute subgroups of
 * 8 lanes with shuffles, 16-byte texel windows (device->profile.subgroup8). */
int vkd_gemm_subgroup_ok(const vkd_device *d);
/* The load width for tile *t (VKD_GEMM_LOAD_*, push_matmul.h): vec4 (SCALAR or VEC4: K,
 * or conv's Cin, and the A and w window offsets are multiples of 4), 32B for the
 * subgroup kernel (kstep and the offsets multiples of 32 bytes), HALF8 or SCALAR for the
 * cooperative-matrix kernel (8 halves per load, or scalars). Where the subgroup kernel cannot run the
 * shape, *t becomes the CPU direct tile; where the cooperative-matrix kernel cannot
 * (fp32, or a device without it), the device's own tile. kstep: K for a linear layer,
 * Cin for a convolution (a load must not cross a tap). */
int vkd_gemm_vec_width(const vkd_device *d, vkd_gemm_tile *t, vkd_dtype dt, int vec4, int64_t kstep, uint32_t a_off,
                       uint32_t w_off);
/* The matmul (conv: conv2d) kernel's pipeline for a tile's family (tile.direct,
 * VKD_GEMM_FAM_*); vec4: the load width from vkd_gemm_vec_width; lnfold: the linear
 * layer that layer-normalises its input (vkd_linear_opts.ln). */
vkd_result vkd_gemm_pipeline(vkd_cmd *c, bool conv, vkd_dtype dt, const vkd_gemm_tile *t, int vec4, int lnfold,
                             const vkd_pipeline **out);

/* Split-K for the cooperative-matrix kernels (tile.direct 3 and 4): a GEMM with few
 * output tiles and a long K -- the UNet's 16x16 and 8x8 ResBlock convs, M = 512 and 128
 * rows, K = 11520 -- leaves most of a GPU idle while each workgroup walks hundreds of k
 * steps one after another (measured on an H200: 1.6-6.4 TFLOP/s there against ~45 on
 * the large shapes). Splitting K into chunks that run side by side, then adding them in
 * a second pass that applies the epilogue, fills the device. Returns the number of
 * chunks (1: no split) and their width in *kchunk (a multiple of tile.bk); the fp32
 * partial sums take chunks * m * n * 4 bytes of at most scratch_bytes. Never with the
 * folded LayerNorm (its row sums span the whole K). target_wg: the workgroups to aim for
 * (vkd_gemm_split_target; 0: no split). */
#define VKD_SPLITK_TARGET_WG 512  /* workgroups to aim for: several per compute unit on large GPUs */
#define VKD_SPLITK_MIN_STEPS 8    /* k steps (tile.bk each) per chunk at least */
#define VKD_SPLITK_SCRATCH (16u << 20) /* bytes of partial sums per GEMM, at most */
uint32_t vkd_gemm_ksplit(const vkd_gemm_tile *t, int lnfold, int64_t m, int64_t n, int64_t k, uint64_t scratch_bytes,
                         int target_wg, uint32_t *kchunk);
/* The device's split-K target: VKD_SPLITK_TARGET_WG, or its knobs.split_k (0: off). */
int vkd_gemm_split_target(const vkd_device *d);
/* fp32 elements of scratch a GEMM of m x n x k on this device splits into (0: it would
 * not split), for the caller to allocate and pass (vkd_linear_opts.scratch,
 * vkd_conv2d_params.scratch); kstep: K for a linear layer, Cin for a convolution. */
int64_t vkd_gemm_split_scratch_numel(const vkd_device *d, vkd_dtype dt, int lnfold, int64_t m, int64_t n, int64_t k,
                                     int64_t kstep);
/* Record one GEMM dispatch of a pipeline from vkd_gemm_pipeline over pc->M x pc->N: as
 * it is, or, with scratch (fp32, may be NULL) where vkd_gemm_ksplit splits, along K
 * into a partial-sum dispatch and a reduce dispatch (binding 7). bind holds 8 entries
 * for the cooperative-matrix kernels (n_bind otherwise); pc->phase is left 0. */
vkd_result vkd_gemm_dispatch(vkd_cmd *c, const vkd_pipeline *p, const vkd_gemm_tile *t, int lnfold, vkd_binding *bind,
                             uint32_t n_bind, vkd_push_gemm *pc, const vkd_tensor *scratch, const char *op);

/* Upload nn.Linear weights given as fp32 [n_out, n_in] (PyTorch layout) into a new
 * tensor of dtype dt, shape [n_out, n_in]. The caller owns *out (vkd_tensor_destroy). */
vkd_result vkd_linear_weight_upload(vkd_device *d, vkd_dtype dt, const float *w, int64_t n_out, int64_t n_in,
                                    vkd_tensor *out);

/* a: [..., K]; w: [N, K]; bias: [N] or NULL; residual: out's shape or NULL (may be
 * the same tensor as out: each element is read before it is written);
 * out: [..., N] with a's leading dims. All tensors share one dtype; out must not
 * overlap a. Returns VKD_ERR_SHAPE (logged) on mismatched shapes, VKD_ERR_TOO_LARGE
 * when w alone exceeds a binding window. */
vkd_result vkd_op_linear(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *w, const vkd_tensor *bias,
                         const vkd_tensor *residual, vkd_tensor *out);

/* What vkd_op_linear_ex adds to the plain layer. */
typedef struct vkd_linear_opts {
    const vkd_tensor *bias;     /* [N] or NULL */
    const vkd_tensor *residual; /* out's shape or NULL, added last */
    /* LayerNorm folded in: out = LayerNorm(a; gamma, beta, ln_eps) w^T + b, where w and
     * ln come from vkd_ln_fold (w there is w diag(gamma); ln is fp32 [2, N] holding s
     * and c, and includes the bias: leave .bias NULL). No normalised copy of a exists. */
    const vkd_tensor *ln;
    float ln_eps;
    /* A in two parts read in place, as torch.cat([a, a2], -1) would give (a UNet skip
     * concatenation): a [.., K1] with K1 a multiple of 16, a2 [.., K - K1]; not with ln */
    const vkd_tensor *a2;
    /* fp32 partial sums for split-K (vkd_gemm_split_scratch_numel elements, e.g. from the
     * graph's planned pool), or NULL: the GEMM runs unsplit */
    const vkd_tensor *scratch;
} vkd_linear_opts;

vkd_result vkd_op_linear_ex(vkd_cmd *c, const vkd_tensor *a, const vkd_tensor *w, const vkd_linear_opts *o,
                            vkd_tensor *out);

/* Host side of the folded LayerNorm + linear (gemm.comp LNFOLD): from w [n, k] (fp32,
 * PyTorch layout), bias b [n] (NULL: none), the norm's gamma and beta [k]:
 *   w_out[n, k] = w[n, k] * gamma[k], rounded to dt (what the device will hold),
 *   sc[n]       = s[n] = sum_k w_out[n, k] of the rounded values (so that the
 *                 kernel's mean * s[n] cancels exactly what its product holds),
 *   sc[n + N]   = c[n] = sum_k beta[k] * w[n, k] + b[n], in double. */
void vkd_ln_fold(const float *w, const float *b, const float *gamma, const float *beta, int64_t n, int64_t k,
                 vkd_dtype dt, float *w_out, float *sc);

#endif
