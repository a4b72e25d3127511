#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_shuffle : require
// Linear layer, the subgroup variant (gemm.glsl, DIRECT = 2): chosen by host/ops/matmul.c
// only on devices whose compute subgroups have shuffles and 8 lanes (A and w bound as uniform texel buffers).
#define VKD_GEMM_CONV 0
#define VKD_GEMM_SUBGROUP 1
#define VKD_GEMM_FAMILY 2
#include "gemm.glsl"
