#version 450
#extension GL_GOOGLE_include_directive : require
// A1111's prompt emphasis (modules/sd_hijack_clip.py, process_tokens) on the text
// encoder's output, in place: every token's embedding times its weight, then the chunk
// rescaled so its mean is the mean it had before. One workgroup per 77-token chunk;
// both sums in fp32 over the whole chunk (host/ops/emphasis.c, host/ops/latent.c).
#include "common.glsl"
#include "push_emphasis.h"

layout(std430, binding = 0) buffer Z { T z[]; };           // [chunks * tokens, width]
layout(std430, binding = 1) readonly buffer W { float w[]; }; // [chunks * tokens]

shared float s_before[256];
shared float s_after[256];

void main()
{
    uint lid = gl_LocalInvocationID.x, n = pc.tokens * pc.width;
    uint base = pc.z_off + gl_WorkGroupID.x * n, wbase = pc.w_off + gl_WorkGroupID.x * pc.tokens;
    float before = 0.0, after = 0.0;
    for (uint i = lid; i < n; i += gl_WorkGroupSize.x) {
        float v = float(z[base + i]);
        before += v;
        after += v * w[wbase + i / pc.width];
    }
    s_before[lid] = before;
    s_after[lid] = after;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
        if (lid < s) {
            s_before[lid] += s_before[lid + s];
            s_after[lid] += s_after[lid + s];
        }
        barrier();
    }
    before = s_before[0];
    after = s_after[0];
    float k = after != 0.0 && before != after ? before / after : 1.0;
    for (uint i = lid; i < n; i += gl_WorkGroupSize.x)
        z[base + i] = T(float(z[base + i]) * w[wbase + i / pc.width] * k);
}
