#version 450
#extension GL_GOOGLE_include_directive : require
// GEGLU as CompVis attention.py `GEGLU.forward`: x, gate = proj(x).chunk(2, dim=-1);
// return x * F.gelu(gate) -- the value half comes first, the gate half second.
#include "common.glsl"
#include "push_geglu.h"

layout(std430, binding = 0) readonly buffer I { T a[]; };
layout(std430, binding = 1) writeonly buffer O { T o[]; };

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.n)
        return;
    uint m = i / pc.f;
    uint src = pc.i_off + i + m * pc.f; // row m starts at 2F*m; column i - m*F
    o[pc.o_off + i] = T(float(a[src]) * gelu_erf(float(a[src + pc.f])));
}
