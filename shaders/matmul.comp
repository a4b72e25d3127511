#version 450
#extension GL_GOOGLE_include_directive : require
// Linear layer: out[M, N] = a[M, K] * w[N, K]^T (+ bias) (+ residual) (host/ops/matmul.c).
#include "common.glsl"
#include "push_matmul.h"

layout(std430, binding = 0) readonly buffer A { T a[]; };
layout(std430, binding = 0) readonly buffer A4 { T4 a4[]; };
layout(std430, binding = 1) readonly buffer W { T wt[]; };
layout(std430, binding = 1) readonly buffer W4 { T4 wt4[]; }; // the same buffer, 4-wide
layout(std430, binding = 2) readonly buffer Bias { T bias[]; };
layout(std430, binding = 3) readonly buffer Res { T res[]; };
layout(std430, binding = 4) writeonly buffer O { T outp[]; };

#include "gemm.glsl"

float load_a(uint m, uint k) { return float(a[pc.a_off + m * pc.K + k]); }

vec4 load_a4(uint m, uint k) { return vec4(a4[(pc.a_off + m * pc.K + k) / 4]); }

void main() { gemm_main(); }
