#version 450
#extension GL_GOOGLE_include_directive : require
// 2D convolution as an implicit GEMM over a channels-last input (host/ops/conv2d.c).
#define VKD_GEMM_CONV 1
#include "gemm.glsl"
