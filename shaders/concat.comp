#version 450
#extension GL_GOOGLE_include_directive : require
// Channel concat, torch.cat([a, b], dim=1) of NCHW maps = last dimension of our
// channels-last [N, H*W, C] (UNet output-block skip connections).
#include "common.glsl"
#include "push_concat.h"

layout(std430, binding = 0) readonly buffer A { T a[]; };
layout(std430, binding = 1) readonly buffer B { T b[]; };
layout(std430, binding = 2) writeonly buffer O { T o[]; };

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.n)
        return;
    uint c = pc.c1 + pc.c2;
    uint m = i / c;
    uint k = i - m * c;
    // branches, not ?: on T: a select on float16_t needs the Float16 arithmetic capability
    if (k < pc.c1)
        o[pc.o_off + i] = a[pc.a_off + m * pc.c1 + k];
    else
        o[pc.o_off + i] = b[pc.b_off + m * pc.c2 + (k - pc.c1)];
}
