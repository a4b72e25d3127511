#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
// Linear layer, the cooperative-matrix kernel (gemm.glsl, DIRECT = 3) with its matrix
// operations emulated in shared memory (DIRECT = 4): for the tests only, so that the
// kernel's staging, edges and epilogue are checked on devices without cooperative matrices.
#define VKD_GEMM_CONV 0
#define VKD_GEMM_FAMILY 3
#define VKD_CM_EMULATE 1
#include "gemm.glsl"
