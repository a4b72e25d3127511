/* What every op needs: pick the shader variant for a dtype, bind tensor windows,
 * split work that is larger than one binding can address, size the grid.
 *
 * An op is one C function that checks shapes, picks a variant and records one or
 * more dispatches into a vkd_cmd. It never allocates device memory except through
 * an explicit scratch argument. */
#ifndef VKD_OP_H
#define VKD_OP_H

#include <stdint.h>

#include "ops/tensor.h"
#include "vk/cmd.h"

vkd_device *vkd_cmd_device(vkd_cmd *c);

/* Pipeline of kernel k (shaders/kernels.txt) for tensors of dtype dt, with spec constants
 * spec[0..n_spec-1] (spec[0..2] = local size); its bindings and texel buffers as the
 * manifest lists them. */
vkd_result vkd_op_pipeline(vkd_cmd *c, vkd_kernel k, vkd_dtype dt, const uint32_t *spec, uint32_t n_spec,
                           const vkd_pipeline **out);
/* The same, in full subgroups of SUBGROUP invocations (vkd_pipeline_get; 0: any). */
vkd_result vkd_op_pipeline_subgroup(vkd_cmd *c, vkd_kernel k, vkd_dtype dt, const uint32_t *spec, uint32_t n_spec,
                                    uint32_t subgroup, const vkd_pipeline **out);

/* Bind elements [elem0, elem0+nelem) of t: *shift gets the element index of elem0
 * inside the window (push it to the shader). VKD_ERR_TOO_LARGE if it cannot fit in one binding. */
vkd_result vkd_op_bind(vkd_cmd *c, const vkd_tensor *t, int64_t elem0, int64_t nelem, vkd_binding *b,
                       uint32_t *shift);

/* Most elements of dtype dt that one binding window can always address. */
int64_t vkd_op_max_elems(vkd_cmd *c, vkd_dtype dt);

/* 1D work of n invocations in groups of `local`: a 2D grid (x up to 65535 groups)
 * so that huge n stays within maxComputeWorkGroupCount. Shaders index with
 * gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * local. */
void vkd_op_grid_1d(uint64_t n, uint32_t local, uint32_t *gx, uint32_t *gy);

/* Shape check helper: logs "op: what (got [..], want ..)" and returns VKD_ERR_SHAPE. */
vkd_result vkd_op_shape_error(const char *op, const char *what, const vkd_tensor *t);

static inline uint32_t vkd_div_up(uint64_t a, uint64_t b) { return (uint32_t)((a + b - 1) / b); }

#endif
