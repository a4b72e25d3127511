/* Channel concat (shaders/concat.comp, host/ops/concat.c): out[m] = a[m] ++ b[m]. */
#include "push.h"

VKD_PUSH_BEGIN(vkd_push_concat)
    pc_uint n;      /* output elements in this dispatch (rows * (C1 + C2)) */
    pc_uint c1;     /* channels of a */
    pc_uint c2;     /* channels of b */
    pc_uint a_off;  /* element offsets inside each binding window */
    pc_uint b_off;
    pc_uint o_off;
VKD_PUSH_END(vkd_push_concat)
