/* Linear layer and implicit-GEMM convolution (shaders/gemm.comp: the matmul* and
 * conv2d* kernels): out[m, n] = sum_k A(m, k) * w[n, k] (+ bias[n]) (+ res[m, n]).
 * Both ops share the GEMM core, so the first fields are common; conv2d adds the
 * im2col geometry. Element offsets (*_off) are positions inside binding windows. */
#ifndef VKD_PUSH_MATMUL_H
#define VKD_PUSH_MATMUL_H
#include "push.h"

/* The GEMM kernel families: vkd_gemm_tile.direct and spec constant 8 (DIRECT), one
 * module each (shaders/kernels.txt: matmul, matmul_direct, matmul_sg, matmul_cm or
 * matmul_cmk, matmul_cmemu; conv2d* likewise) */
#define VKD_GEMM_FAM_TILED 0u       /* shared-memory tiles */
#define VKD_GEMM_FAM_DIRECT 1u      /* no shared memory, no barriers (CPU devices) */
#define VKD_GEMM_FAM_SUBGROUP 2u    /* 8-lane subgroups sharing weight loads by shuffles (CPU devices) */
#define VKD_GEMM_FAM_COOPMAT 3u     /* cooperative matrices, fp16 */
#define VKD_GEMM_FAM_COOPMAT_EMU 4u /* the same with the matrix operations emulated (tests) */
/* Load widths: spec constant 9 (VEC4), host/ops/matmul.h vkd_gemm_vec_width */
#define VKD_GEMM_LOAD_SCALAR 0u
#define VKD_GEMM_LOAD_VEC4 1u  /* 4-vectors along k */
#define VKD_GEMM_LOAD_HALF8 2u /* 8 packed halves (the cooperative-matrix kernels) */
#define VKD_GEMM_LOAD_32B 3u   /* 32 bytes (the subgroup kernel) */

#define VKD_GEMM_BIAS 1u     /* flags: add bias[n] */
#define VKD_GEMM_RESIDUAL 2u /* flags: add res[m, n] (same layout as out) */

VKD_PUSH_BEGIN(vkd_push_gemm)
    pc_uint M;       /* output rows in this dispatch */
    pc_uint N;       /* output columns (out features / Cout) */
    pc_uint K;       /* reduction length (in features / kh*kw*Cin) */
    pc_uint a_off;
    pc_uint w_off;   /* w is [N, K] row-major */
    pc_uint b_off;
    pc_uint r_off;
    pc_uint o_off;   /* out and res are [M, N] row-major from here */
    pc_uint flags;
    /* conv2d only: A(m, k) reads input pixel (img, iy, ix) channel ci, where
     * m = (img * rows + oy - oy0) * ow + ox and k = (ky * kw + kx) * cin + ci */
    pc_uint cin;
    pc_uint h;       /* input height and width (bounds for the zero padding) */
    pc_uint w;
    pc_uint ow;      /* output width */
    pc_uint rows;    /* output rows per image in this dispatch */
    pc_uint oy0;     /* first output row of this dispatch */
    pc_uint iy_lo;   /* first input row inside the input window */
    pc_uint img_stride; /* elements between images in the input window */
    pc_uint stride;
    pc_uint pad_top;
    pc_uint pad_left;
    pc_uint kw;
    pc_uint k1;      /* linear: 0, or A's first k1 columns from binding 0 and the rest from 6 */
    pc_uint a2_off;
    pc_uint up;      /* conv2d: nonzero reads the nearest upsampling to h x w of the stored
                      * input of (up >> 16) x (up & 0xffff) (iy_lo and img_stride count rows
                      * and elements of the stored input); 0: no upsampling */
    /* linear with LNFOLD only (gemm.comp): s and c at binding 5 from l_off, the norm's eps */
    pc_uint l_off;
    pc_float ln_eps;
    /* split-K (the cooperative-matrix kernels, gemm.comp family 3/4): phase 1 writes the
     * fp32 sums of k chunk z = gl_WorkGroupID.z (kchunk wide) to part[s_off + (z * M + m)
     * * N + n] (binding 7); phase 2 adds the ksplit chunks and applies the epilogue;
     * phase 3 is phase 1 whose last workgroup per output tile (counted in binding 5's
     * tickets) then does phase 2's work for that tile */
    pc_uint phase;   /* 0: whole K in one pass; 1: partial sums; 2: reduce; 3: 1 then 2 */
    pc_uint kchunk;
    pc_uint ksplit;
    pc_uint s_off;
VKD_PUSH_END(vkd_push_gemm)

#endif
