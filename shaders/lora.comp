#version 450
#extension GL_GOOGLE_include_directive : require
// A LoRA's change to one weight, made in place (host/ops/lora.c):
//   LOW_RANK  W[o, c] = T(float(W[o, c]) + scale * sum_r U[o, r] D[r, c])
//   DENSE     W[o, c] = T(float(W[o, c]) + scale * U[o, c])
//   ROW_SUM   U[o]    = sum_c float(W[o, c])
// The product is accumulated in fp32 and the weight rounded once to its storage type
// (issue 22). 16x16 tiles: U and D are staged through shared memory 16 ranks at a time,
// so each factor element is read from memory once per tile instead of once per weight.
#include "common.glsl"
#include "push_lora.h"

layout(std430, binding = 0) buffer W { T w[]; };
layout(std430, binding = 1) buffer U { float u[]; };
layout(std430, binding = 2) readonly buffer D { float d[]; };

#define TILE 16
shared float su[TILE][TILE]; // [row in tile][rank in chunk]
shared float sd[TILE][TILE]; // [rank in chunk][column in tile]

void main()
{
    uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
    uint c = gl_WorkGroupID.x * TILE + lx, o = gl_WorkGroupID.y * TILE + ly;
    if (pc.mode == VKD_LORA_ROW_SUM) { // one invocation a row, rows flattened over the grid
        uint row = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * TILE * TILE + ly * TILE + lx;
        if (row < pc.rows) {
            float s = 0.0;
            for (uint q = 0; q < pc.cols; q++)
                s += float(w[pc.w_off + row * pc.ldw + q]);
            u[pc.u_off + row] = s;
        }
        return;
    }
    float acc = 0.0;
    if (pc.mode == VKD_LORA_DENSE) {
        if (o < pc.rows && c < pc.cols)
            acc = u[pc.u_off + o * pc.cols + c];
    } else {
        uint ou = gl_WorkGroupID.y * TILE + lx; // the row whose U this invocation stages
        for (uint r0 = 0; r0 < pc.rank; r0 += TILE) {
            su[lx][ly] = (ou < pc.rows && r0 + ly < pc.rank) ? u[pc.u_off + ou * pc.rank + r0 + ly] : 0.0;
            sd[ly][lx] = (c < pc.cols && r0 + ly < pc.rank) ? d[pc.d_off + (r0 + ly) * pc.cols + c] : 0.0;
            barrier();
            [[unroll]] for (uint k = 0; k < TILE; k++)
                acc += su[ly][k] * sd[k][lx];
            barrier();
        }
    }
    if (o < pc.rows && c < pc.cols) {
        uint i = pc.w_off + o * pc.ldw + c;
        w[i] = T(float(w[i]) + pc.scale * acc);
    }
}
