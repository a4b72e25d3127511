#version 450
#extension GL_GOOGLE_include_directive : require
// Linear layer: out[M, N] = a[M, K] * w[N, K]^T (+ bias) (+ residual) (host/ops/matmul.c).
#define VKD_GEMM_CONV 0
#include "gemm.glsl"
