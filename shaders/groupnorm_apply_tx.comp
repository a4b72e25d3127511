#version 450
#extension GL_GOOGLE_include_directive : require
// Group norm's APPLY pass, 4 channels per invocation, reading through uniform texel
// buffers (groupnorm.glsl VKD_GN_TEXEL; chosen by host/ops/groupnorm.c where the device
// and the dispatch's windows allow).
#define VKD_GN_APPLY_ONLY 1
#define VKD_GN_TEXEL 1
#include "groupnorm.glsl"
