/* Group norm over channels-last feature maps, optional fused SiLU.
 *
 * eps is the caller's: CompVis UNet ResBlocks use 1e-5 (`normalization` in
 * ldm/modules/diffusionmodules/util.py: GroupNorm32(32, C) with torch's default eps),
 * SpatialTransformer and every VAE norm use 1e-6 (`Normalize` in attention.py/model.py). */
#ifndef VKD_GROUPNORM_H
#define VKD_GROUPNORM_H

#include <stdbool.h>

#include "ops/op.h"

/* Elements (fp32) of scratch vkd_op_groupnorm needs for x with `groups` groups.
 * Returns VKD_ERR_SHAPE / VKD_ERR_TOO_LARGE as vkd_op_groupnorm would. */
vkd_result vkd_op_groupnorm_scratch_numel(vkd_cmd *c, const vkd_tensor *x, uint32_t groups, int64_t *numel);

/* x: [N, HW, C], gamma/beta: [C] (x's dtype), scratch: fp32 with at least
 * vkd_op_groupnorm_scratch_numel elements (per-block statistics; contents are
 * overwritten), out: x's shape and dtype (may alias x).
 * out = (x - mean_g) / sqrt(var_g + eps) * gamma + beta, then SiLU when silu is set;
 * mean/var (biased) over the HW x C/groups values of each sample's group, in fp32. */
vkd_result vkd_op_groupnorm(vkd_cmd *c, const vkd_tensor *x, uint32_t groups, float eps, const vkd_tensor *gamma,
                            const vkd_tensor *beta, bool silu, const vkd_tensor *scratch, vkd_tensor *out);

/* The same with statistics from outside (the tiled VAE decode normalises every tile
 * with the whole image's statistics, pipeline/vae_decode.c): with external_stats the
 * COMBINE pass is left out and APPLY reads the finals the caller wrote into scratch;
 * STATS still writes this call's per-block partials for the caller to gather. */
vkd_result vkd_op_groupnorm_ex(vkd_cmd *c, const vkd_tensor *x, uint32_t groups, float eps, const vkd_tensor *gamma,
                               const vkd_tensor *beta, bool silu, const vkd_tensor *scratch, vkd_tensor *out,
                               bool external_stats);

/* GroupNorm of torch.cat([x, x2], -1) without materialising the concatenation (a UNet
 * output block's input: the upsampling path's x and the skip x2, [N, HW, C1] and
 * [N, HW, C2]); groups may straddle the two. out [N, HW, C1 + C2]; scratch from
 * vkd_op_groupnorm_cat_scratch_numel. */
vkd_result vkd_op_groupnorm_cat(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *x2, uint32_t groups, float eps,
                                const vkd_tensor *gamma, const vkd_tensor *beta, bool silu,
                                const vkd_tensor *scratch, vkd_tensor *out);
vkd_result vkd_op_groupnorm_cat_scratch_numel(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *x2, uint32_t groups,
                                              int64_t *numel);

/* GroupNorm(x + add[n]) without materialising the sum: columns add_col .. add_col+C-1
 * of add [N, W] (x's dtype) are added to every row of sample n as it is read (a
 * ResBlock's time embedding, which the reference adds to the first conv's output right
 * before this norm; the UNet computes all ResBlocks' embeddings as one [N, W]). */
vkd_result vkd_op_groupnorm_add(vkd_cmd *c, const vkd_tensor *x, const vkd_tensor *add, int64_t add_col,
                                uint32_t groups, float eps, const vkd_tensor *gamma, const vkd_tensor *beta, bool silu,
                                const vkd_tensor *scratch, vkd_tensor *out);

/* The statistics in the fp32 scratch, for a caller that gathers or supplies them (the
 * tiled VAE decode: vkd_op_groupnorm_ex's external_stats). Per-block partials at [0,
 * finals): for sample n, group g, block b (pixel rows [b * block_rows, (b + 1) *
 * block_rows)), 4 values at ((n * groups + g) * nblk + b) * 4: count (uint bits), shift
 * k, mean of x - k, centred sum of squares; then the finals APPLY reads, per (n, g)
 * (vkd_groupnorm_finals_set). Which kernels a dispatch takes: the device's
 * knobs.groupnorm_kernels (developer knob, vk/kernel.h). */
typedef struct vkd_groupnorm_layout {
    int64_t numel;      /* fp32 elements of scratch (vkd_op_groupnorm_scratch_numel) */
    int64_t groups;
    int64_t nblk;       /* STATS blocks per sample */
    int64_t block_rows; /* pixel rows per block */
    int64_t finals;     /* element index of the finals */
} vkd_groupnorm_layout;
vkd_result vkd_op_groupnorm_layout(vkd_cmd *c, const vkd_tensor *x, uint32_t groups, vkd_groupnorm_layout *l);

/* Writes the statistics of sample n's group g -- mean and (biased) variance over the
 * group, and the norm's eps -- as the finals APPLY reads, into a host copy of the
 * scratch (l->numel floats) that the caller uploads. */
void vkd_groupnorm_finals_set(const vkd_groupnorm_layout *l, float *scratch, int64_t n, int64_t g, double mean,
                              double var, float eps);

#endif
