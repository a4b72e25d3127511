#version 450
#extension GL_GOOGLE_include_directive : require
// out[n, l, :] = tok[ids[n, l], :] + pos[l, :] (CLIP token_embedding + position_embedding).
#include "common.glsl"
#include "push_embedding.h"

layout(std430, binding = 0) readonly buffer Ids { uint ids[]; };
layout(std430, binding = 1) readonly buffer Tok { T tok[]; };
layout(std430, binding = 2) readonly buffer Pos { T pos[]; };
layout(std430, binding = 3) writeonly buffer O { T o[]; };

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.n)
        return;
    uint j = i / pc.c;
    uint k = i - j * pc.c;
    uint id = ids[pc.id_off + j];
    uint rel = id - pc.v0; // wraps for id < v0
    float e;
    if (rel < pc.vn)
        e = float(tok[pc.t_off + rel * pc.c + k]);
    else if (id >= pc.v && pc.first != 0u)
        e = 0.0; // out-of-range id: no table read, the position embedding alone
    else
        return; // another window writes this token
    uint p = (pc.t0 + j) % pc.l;
    o[pc.o_off + i] = T(e + float(pos[pc.p_off + p * pc.c + k]));
}
