#version 450
#extension GL_GOOGLE_include_directive : require
// Group norm: the STATS and COMBINE passes (and APPLY) of groupnorm.glsl.
#include "groupnorm.glsl"
