/* fp32 <-> fp16 conversion (shaders/cast.comp, host/ops/cast.c). */
#include "push.h"

#define VKD_CAST_TO_T 0    /* float f[] -> T h[] */
#define VKD_CAST_TO_F32 1  /* T h[] -> float f[] */

VKD_PUSH_BEGIN(vkd_push_cast)
    pc_uint n;      /* elements in this dispatch */
    pc_uint dir;    /* VKD_CAST_TO_T or VKD_CAST_TO_F32 */
    pc_uint f_off;  /* element offsets inside each binding window */
    pc_uint h_off;
VKD_PUSH_END(vkd_push_cast)
