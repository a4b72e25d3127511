#version 450
#extension GL_GOOGLE_include_directive : require
// Linear layer, the direct variant (gemm.glsl, DIRECT = 1: no shared memory, no
// barriers): chosen by host/ops/matmul.c on CPU devices without 8-lane subgroups.
#define VKD_GEMM_CONV 0
#define VKD_GEMM_FAMILY 1
#include "gemm.glsl"
