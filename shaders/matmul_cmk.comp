#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
// Linear layer, the cooperative-matrix variant on VK_KHR_cooperative_matrix (gemm.glsl,
// DIRECT = 3 with VKD_CM_KHR), fp16 only: matmul_cm.comp's kernel with the KHR types, chosen by
// host/ops/matmul.c where the device offers 16xNx16 fp16 x fp16 + fp32 there (host/vk/device.c).
// Built only where the shader compiler knows the extension (CMakeLists.txt).
#define VKD_GEMM_CONV 0
#define VKD_GEMM_FAMILY 3
#define VKD_CM_KHR 1
#include "gemm.glsl"
