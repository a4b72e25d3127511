#version 450
#extension GL_GOOGLE_include_directive : require
// Element-wise unary and binary ops over flat arrays (host/ops/eltwise.c).
#include "common.glsl"
#include "push_eltwise.h"

layout(std430, binding = 0) readonly buffer A { T a[]; };
layout(std430, binding = 1) readonly buffer B { T b[]; };
layout(std430, binding = 2) writeonly buffer O { T o[]; };

void main()
{
    // 2D grid so large tensors stay under maxComputeWorkGroupCount[0]
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.n)
        return;
    float x = float(a[pc.a_off + i]);
    float r;
    uint g = pc.base + i;
    switch (pc.op) {
    case VKD_ELT_ADD: r = x + float(b[pc.b_off + i]); break;
    case VKD_ELT_MUL: r = x * float(b[pc.b_off + i]); break;
    case VKD_ELT_ADD_BCAST_C: r = x + float(b[pc.b_off + g % pc.c]); break;
    case VKD_ELT_ADD_BCAST_ROW: r = x + float(b[pc.b_off + (g / pc.inner) * pc.c + g % pc.c]); break;
    case VKD_ELT_SILU: r = silu(x); break;
    case VKD_ELT_GELU: r = gelu_erf(x); break;
    case VKD_ELT_QUICK_GELU: r = quick_gelu(x); break;
    case VKD_ELT_RELU: r = max(x, 0.0); break;
    /* the argument clamped: tanh of a large value may be inf/inf = NaN in a driver's
     * exp-based tanh, and tanh(10) is 1 in fp32 anyway */
    case VKD_ELT_TANH_CLAMP: r = pc.alpha * tanh(clamp(x / pc.alpha, -10.0, 10.0)); break;
    default: r = pc.alpha * x + pc.beta; break;
    }
    o[pc.o_off + i] = T(r);
}
