#version 450
#extension GL_GOOGLE_include_directive : require
// Group norm's STATS and COMBINE passes reading x through texel buffers
// (groupnorm.glsl VKD_GN_STATS_TX; chosen by host/ops/groupnorm.c on CPU devices).
#define VKD_GN_STATS_TX 1
#include "groupnorm.glsl"
