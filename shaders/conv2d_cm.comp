#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_NV_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
// Implicit-GEMM convolution, the cooperative-matrix variant (gemm.glsl, DIRECT = 3), fp16 only:
// chosen by host/ops/matmul.c on devices with VK_NV_cooperative_matrix 16x16x16
// fp16 x fp16 + fp32 (host/vk/device.c). glslang emits the Vulkan memory model for it.
#define VKD_GEMM_CONV 1
#define VKD_GEMM_FAMILY 3
#include "gemm.glsl"
