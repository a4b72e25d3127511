#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
// Attention on VK_KHR_cooperative_matrix (attention_cm.glsl), fp16 only, chosen by
// host/ops/attention.c where the device offers 16x16x16 fp16 x fp16 + fp32 there.
// Built only where the shader compiler knows the extension (CMakeLists.txt).
#include "attention_cm.glsl"
