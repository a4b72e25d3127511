#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
// Attention on cooperative matrices (attention_cm.glsl) with the matrix operations
// emulated in shared memory: for the tests only, so that the kernel's staging, masking,
// online softmax and output are checked on devices without cooperative matrices.
#define VKD_CM_EMULATE 1
#include "attention_cm.glsl"
