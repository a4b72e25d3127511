#version 450
#extension GL_GOOGLE_include_directive : require
// Nearest-neighbour 2x upsample of channels-last maps (host/ops/push_upsample.h),
// as F.interpolate(x, scale_factor=2.0, mode="nearest") in CompVis `Upsample`.
#include "common.glsl"
#include "push_upsample.h"

layout(std430, binding = 0) readonly buffer I { T a[]; };
layout(std430, binding = 1) writeonly buffer O { T o[]; };

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.n)
        return;
    uint g = pc.base + i;
    uint t = g / pc.c;
    uint ch = g - t * pc.c;
    uint r = t / (2u * pc.w);
    uint x = t - r * 2u * pc.w;
    uint src = ((r >> 1) * pc.w + (x >> 1)) * pc.c + ch;
    o[pc.o_off + i] = a[pc.i_off + (src - pc.i_lo)];
}
