#version 450
#extension GL_GOOGLE_include_directive : require
// A LoRA's change to one weight, made in place (host/ops/lora.c):
//   DENSE    W[o, c] = T(float(W[o, c]) + scale * U[o, c])   U: a LoHa/LoKr delta in fp32
//            (a low-rank product is the GEMM's, with the weight as its residual)
//   ROW_SUM  U[o] = sum_c float(W[o, c])
// The weight is rounded once to its storage type (issue 22). Element-wise on purpose: no
// shared memory or barriers, which llvmpipe compiles as coroutines (kernels.txt).
#include "common.glsl"
#include "push_lora.h"

layout(std430, binding = 0) buffer W { T w[]; };
layout(std430, binding = 1) buffer U { float u[]; };

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (pc.mode == VKD_LORA_ROW_SUM) { // one invocation a row
        if (i < pc.rows) {
            float s = 0.0;
            for (uint q = 0; q < pc.cols; q++)
                s += float(w[pc.w_off + i * pc.ldw + q]);
            u[pc.u_off + i] = s;
        }
        return;
    }
    if (i >= pc.rows * pc.cols)
        return;
    uint o = i / pc.cols, c = i - o * pc.cols;
    uint k = pc.w_off + o * pc.ldw + c;
    w[k] = T(float(w[k]) + pc.scale * u[pc.u_off + i]);
}
