#version 450
#extension GL_GOOGLE_include_directive : require
// Layer norm, one workgroup per row (host/ops/push_layernorm.h). Rows are short
// (320..1280 in SD/CLIP), so the three passes over a row hit the cache.
#include "common.glsl"
#include "push_layernorm.h"

layout(std430, binding = 0) readonly buffer X { T x[]; };
layout(std430, binding = 1) readonly buffer Gm { T gamma[]; };
layout(std430, binding = 2) readonly buffer Bt { T beta[]; };
layout(std430, binding = 3) writeonly buffer O { T o[]; };

shared float sh[gl_WorkGroupSize.x];

float wg_sum(float v)
{
    uint l = gl_LocalInvocationID.x;
    sh[l] = v;
    barrier();
    for (uint h = gl_WorkGroupSize.x / 2; h > 0; h >>= 1) {
        if (l < h)
            sh[l] += sh[l + h];
        barrier();
    }
    float r = sh[0];
    barrier();
    return r;
}

void main()
{
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= pc.rows) // uniform per workgroup: no barrier is skipped by part of it
        return;
    uint l = gl_LocalInvocationID.x;
    uint base = pc.x_off + row * pc.c;
    // the shift keeps x - k small when |mean| >> std (x - k is exact for nearby values)
    float k = float(x[base]);
    float acc = 0.0;
    for (uint i = l; i < pc.c; i += gl_WorkGroupSize.x)
        acc += float(x[base + i]) - k;
    float dm = wg_sum(acc) / float(pc.c);
    acc = 0.0;
    for (uint i = l; i < pc.c; i += gl_WorkGroupSize.x) {
        float d = (float(x[base + i]) - k) - dm;
        acc += d * d;
    }
    float rstd = 1.0 / sqrt(wg_sum(acc) / float(pc.c) + pc.eps);
    uint ob = pc.o_off + row * pc.c;
    for (uint i = l; i < pc.c; i += gl_WorkGroupSize.x) {
        float y = ((float(x[base + i]) - k) - dm) * rstd;
        o[ob + i] = T(y * float(gamma[pc.g_off + i]) + float(beta[pc.b_off + i]));
    }
}
