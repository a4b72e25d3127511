/* Layer norm over the last dimension (shaders/layernorm.comp, host/ops/layernorm.c):
 * one workgroup per row; statistics in fp32, shifted by the row's first value and
 * taken in two passes (mean, then centered sum of squares). */
#include "push.h"

VKD_PUSH_BEGIN(vkd_push_layernorm)
    pc_uint rows;   /* rows in this dispatch */
    pc_uint c;      /* row length */
    pc_uint x_off;  /* element offsets inside each binding window */
    pc_uint o_off;
    pc_uint g_off;
    pc_uint b_off;
    pc_float eps;
VKD_PUSH_END(vkd_push_layernorm)
