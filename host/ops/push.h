/* Push-constant blocks, shared by C and GLSL (decision 6: push constants carry
 * shapes and strides). Each op family has a push_<family>.h that includes this
 * file and declares its block with VKD_PUSH_BEGIN/END using pc_uint/pc_float
 * fields only (4 bytes each, so std430 and C agree without padding rules).
 * A shader includes exactly one push_<family>.h; C includes any. */
#ifndef VKD_PUSH_H
#define VKD_PUSH_H

#ifdef VKD_GLSL
#define VKD_PUSH_BEGIN(name) layout(push_constant) uniform name##_block {
#define VKD_PUSH_END(name) } pc;
#define pc_uint uint
#define pc_float float
#else
#include <stdint.h>
#define VKD_PUSH_BEGIN(name) typedef struct name {
#define VKD_PUSH_END(name) } name;
typedef uint32_t pc_uint;
typedef float pc_float;
#endif

#endif
