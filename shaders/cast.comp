#version 450
#extension GL_GOOGLE_include_directive : require
// Conversion between a float[] and a T[] buffer. cast_f16 converts fp32 <-> fp16
// (16-bit storage devices only); cast_f32 is the same shader as an fp32 copy.
#include "common.glsl"
#include "push_cast.h"

layout(std430, binding = 0) buffer F { float f[]; };
layout(std430, binding = 1) buffer H { T h[]; };

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.n)
        return;
    if (pc.dir == VKD_CAST_TO_T)
        h[pc.h_off + i] = T(f[pc.f_off + i]);
    else
        f[pc.f_off + i] = float(h[pc.h_off + i]);
}
