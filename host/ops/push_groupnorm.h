/* Group norm over channels-last [N, HW, C] (shaders/groupnorm.comp, host/ops/groupnorm.c).
 * Three passes share one shader, picked by `mode`:
 *   STATS   one workgroup per (row block, group, sample): count, shift k (the block's
 *           first value), mean of x - k, centered sum of squares (4 floats per block);
 *   COMBINE one workgroup per (group, sample): Chan's merge of the block partials into
 *           (k0, mean - k0, 1/sqrt(var + eps)), VKD_GN_FINAL_STRIDE floats per (sample, group);
 *   APPLY   one invocation per element, or per 4 channels of a pixel (spec constant VEC;
 *           the groupnorm_apply kernel): (x - mean) * rstd * gamma + beta, optional SiLU.
 * Blocks are small so a feature map larger than one binding window (a 1024x1024 VAE
 * map is 256 MiB in fp16) is handled by chunking rows; statistics stay exact per group.
 * A group of at most VKD_GN_ONE_BLOCK elements is one block: STATS then writes the
 * finals itself and COMBINE is not dispatched (2 dispatches per norm, not 3). */
#include "push.h"

/* floats per (sample, group) of the finals (k0, mean - k0, rstd, unused): 16 bytes, so the
 * vectorised APPLY reads a group's finals in one load */
#define VKD_GN_FINAL_STRIDE 4u

#define VKD_GN_STATS 0
#define VKD_GN_COMBINE 1
#define VKD_GN_APPLY 2

VKD_PUSH_BEGIN(vkd_push_groupnorm)
    pc_uint mode;
    pc_uint n;          /* APPLY: elements in this dispatch */
    pc_uint c;          /* channels */
    pc_uint cpg;        /* channels per group */
    pc_uint groups;
    pc_uint rows;       /* rows (pixels) per sample covered by this dispatch */
    pc_uint block_rows; /* rows per STATS block */
    pc_uint nblk;       /* STATS blocks per sample (over all chunks) */
    pc_uint blk0;       /* block index of this dispatch's row 0 */
    pc_uint n0;         /* sample index of this dispatch's first sample */
    pc_uint stride_n;   /* elements between samples inside the x/out windows */
    pc_uint x_off;      /* element offsets inside each binding window */
    pc_uint o_off;
    pc_uint g_off;
    pc_uint b_off;
    pc_uint s_off;      /* partials: s[s_off + ((n * groups + g) * nblk + blk) * 4 + {0..3}] */
    pc_uint fin_off;    /* finals:   s[fin_off + (n * groups + g) * VKD_GN_FINAL_STRIDE + {0,1,2}] */
    pc_uint silu;
    pc_float eps;
    pc_uint finals;     /* STATS with one block per sample: also write the finals (no COMBINE) */
    pc_uint add;        /* normalise x + e[n, c] (binding 5) instead of x */
    pc_uint e_off;
    pc_uint e_stride;   /* elements between samples of the added rows (>= c: a column slice) */
    /* c1 > 0 (vkd_op_groupnorm_cat): channels < c1 from x ([.., c1], stride_1 elements
     * between samples), the rest from x2 (binding 6, [.., c - c1], stride_2); stride_n
     * is then the output's */
    pc_uint c1;
    pc_uint x2_off;
    pc_uint stride_1;
    pc_uint stride_2;
VKD_PUSH_END(vkd_push_groupnorm)
