/* GEGLU (shaders/geglu.comp, host/ops/geglu.c): out[m, f] = in[m, f] * gelu(in[m, F + f]). */
#include "push.h"

VKD_PUSH_BEGIN(vkd_push_geglu)
    pc_uint n;      /* output elements in this dispatch (rows * F) */
    pc_uint f;      /* F: output row length; input rows are 2F */
    pc_uint i_off;  /* element offsets inside each binding window */
    pc_uint o_off;
VKD_PUSH_END(vkd_push_geglu)
