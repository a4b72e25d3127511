#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_ballot : require
#extension GL_ARB_gpu_shader_int64 : require
// Implicit-GEMM convolution, the subgroup variant (gemm.glsl, DIRECT = 2): chosen by host/ops/matmul.c
// only on devices whose compute subgroups have ballot and 8 lanes, with shaderInt64.
#define VKD_GEMM_CONV 1
#define VKD_GEMM_SUBGROUP 1
#define VKD_GEMM_FAMILY 2
#include "gemm.glsl"
