#version 450
#extension GL_GOOGLE_include_directive : require
// Group norm's APPLY pass in a module of its own (groupnorm.glsl): llvmpipe compiles a
// shader with barriers or shared memory as coroutines, which the element-wise pass
// would pay for with the statistics passes in the same module.
#define VKD_GN_APPLY_ONLY 1
#include "groupnorm.glsl"
